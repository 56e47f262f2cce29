/**
 * copyRuns, the data copy of movedata and moveFiles (issue 10 items 2–3):
 *  - copyChunks: runs sorted by target, merged when contiguous on both sides, cut at the chunk
 *    size, target-contiguous pieces gathered into one chunk (one write);
 *  - the bytes land where they should (scattered sources, chunk boundaries, gathered pieces);
 *  - the chunk buffers are reused across calls on one filesystem (a defrag copies once per
 *    transaction: fresh 8 MiB arrays page-fault on every call);
 *  - a copy past WRITEBACK_KICK bytes starts flushes while it copies (the device writes back
 *    while the rest is read; the commit's flush finds little left), all finished when it
 *    returns; a small copy flushes nothing (the commit flushes once);
 *  - a read error rejects the copy, nothing unhandled;
 *  - startCopy reads ahead (COPY_DEPTH chunks, at most 4 reads in flight: libuv's pool threads)
 *    before anything is written, and writes only when run.
 */
import { describe, expect, it } from 'vitest';
import type { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { COPY_CHUNK, COPY_DEPTH, copyChunks, copyRuns, startCopy, type Copy } from '../../lib/ops/copy-runs.js';
import { Ext4Error } from '../../lib/errors.js';

const BS = 4096;
const MiB = 1024 * 1024;

/** What copyRuns uses of a Filesystem, over a memory device whose writes and flushes are logged. */
function stubFs(blocks: number, opts: { failRead?: number; noOriginal?: boolean } = {}) {
  const data = new Uint8Array(blocks * BS);
  for (let b = 0; b < blocks; b++) data.fill((b * 7 + 1) & 0xff, b * BS, b * BS + 8).fill(b >> 8, b * BS + 8, b * BS + 16);
  const mem = new MemoryDevice(data);
  // (a chunk buffer is named by its memory and offset: the buffers are views of one region)
  const log: ({ op: 'write'; pos: number; len: number; buffer: string } | { op: 'flush' | 'flushed' })[] = [];
  const ids = new Map<ArrayBufferLike, number>();
  const bufferId = (d: Uint8Array): string => {
    if (!ids.has(d.buffer)) ids.set(d.buffer, ids.size);
    return `${ids.get(d.buffer)}@${d.byteOffset}`;
  };
  const device = {
    size: mem.size,
    readOnly: false,
    name: 'stub',
    read: (p: number, n: number) => mem.read(p, n),
    write: async (p: number, d: Uint8Array) => {
      log.push({ op: 'write', pos: p, len: d.length, buffer: bufferId(d) });
      await mem.write(p, d);
    },
    flush: async () => {
      log.push({ op: 'flush' });
      await new Promise((r) => setTimeout(r, 5));
      log.push({ op: 'flushed' });
    },
    close: async () => undefined,
  };
  const fs = {
    blockSize: BS,
    device,
    readDataBlocksInto: async (n: number, count: number, target: Uint8Array) => {
      if (opts.failRead !== undefined && n <= opts.failRead && opts.failRead < n + count) throw new Ext4Error('EIO', `read of block ${opts.failRead} failed`);
      target.set(await mem.read(n * BS, count * BS));
    },
  } as unknown as Filesystem;
  return { fs, mem, log, original: opts.noOriginal ? data.subarray(0, 0) : data.slice() };
}

/** The image after the copies, computed block by block from the original. */
function expected(original: Uint8Array, copies: readonly Copy[]): Uint8Array {
  const out = original.slice();
  for (const c of copies) out.set(original.subarray(c.from * BS, (c.from + c.length) * BS), c.to * BS);
  return out;
}

describe('copyChunks', () => {
  it('sorts by target, merges runs contiguous on both sides, gathers target-contiguous pieces, cuts at the chunk size', () => {
    const chunks = copyChunks(
      [
        { from: 500, to: 20, length: 2 },
        { from: 10, to: 0, length: 4 },
        { from: 14, to: 4, length: 4 }, // contiguous with the one before on both sides: merged
        { from: 100, to: 8, length: 12 }, // target-contiguous, source elsewhere: same chunk, cut at 16
        { from: 0, to: 40, length: 0 }, // empty: ignored
      ],
      16,
    );
    expect(chunks).toEqual([
      { to: 0, n: 16, pieces: [{ from: 10, to: 0, length: 8 }, { from: 100, to: 8, length: 8 }] },
      { to: 16, n: 6, pieces: [{ from: 108, to: 16, length: 4 }, { from: 500, to: 20, length: 2 }] },
    ]);
  });
});

describe('copyRuns', () => {
  it('scattered one-block and multi-chunk runs: every byte where it belongs, one write per chunk', async () => {
    const { fs, mem, log, original } = stubFs(8192);
    const copies: Copy[] = [];
    for (let i = 0; i < 300; i++) copies.push({ from: 10 + 3 * i, to: 5000 + i, length: 1 }); // 300 one-block files packed together
    copies.push({ from: 1000, to: 5300, length: 2500 }); // crosses chunk boundaries (2048 blocks a chunk)
    const bytes = await copyRuns(fs, copies);
    expect(bytes).toBe(2800 * BS);
    expect(Buffer.compare(mem.data, expected(original, copies))).toBe(0);
    // targets 5000..7800 are contiguous: full chunks in target order, then the rest
    const per = COPY_CHUNK / BS;
    const want: number[][] = [];
    for (let b = 5000; b < 7800; b += per) want.push([b, Math.min(per, 7800 - b)]);
    expect(log.filter((e) => e.op === 'write').map((w) => [(w as { pos: number }).pos / BS, (w as { len: number }).len / BS])).toEqual(want);
    expect(log.some((e) => e.op === 'flush'), 'a small copy flushes nothing').toBe(false);
  });

  it('reuses its chunk buffers across calls on one filesystem', async () => {
    const per = COPY_CHUNK / BS;
    const { fs, log } = stubFs(4000 + 3 * COPY_DEPTH * per);
    await copyRuns(fs, [{ from: 0, to: 4000, length: 3 * COPY_DEPTH * per }]);
    const used = new Set(log.filter((e) => e.op === 'write').map((e) => (e as { buffer: string }).buffer));
    expect(used.size).toBe(COPY_DEPTH);
    log.length = 0;
    await copyRuns(fs, [{ from: 1, to: 2000, length: 2 * per + 5 }]);
    const again = log.filter((e) => e.op === 'write').map((e) => (e as { buffer: string }).buffer);
    expect(again.length).toBe(3);
    for (const b of again) expect(used.has(b), 'a second call writes from the first call\'s buffers').toBe(true);
  });

  it('a copy past 64 MiB starts flushes while it copies, all done when it returns', async () => {
    const blocks = (80 * MiB) / BS;
    const { fs, mem, log } = stubFs(2 * blocks + 16, { noOriginal: true });
    const copies = [{ from: 0, to: blocks + 16, length: blocks }];
    await copyRuns(fs, copies);
    const firstFlush = log.findIndex((e) => e.op === 'flush');
    const lastWrite = log.map((e) => e.op).lastIndexOf('write');
    expect(firstFlush, 'a flush started').toBeGreaterThan(0);
    expect(firstFlush, 'before the copy ends').toBeLessThan(lastWrite);
    expect(log.filter((e) => e.op === 'flushed').length, 'every flush finished').toBe(log.filter((e) => e.op === 'flush').length);
    // (source and target do not overlap: the source still holds what was copied)
    expect(Buffer.compare(mem.data.subarray((blocks + 16) * BS), mem.data.subarray(0, blocks * BS))).toBe(0);
  });

  it('a read error rejects the copy (nothing unhandled), and the next copy works', async () => {
    const { fs, mem, original } = stubFs(8000);
    await expect(copyRuns(fs, [{ from: 0, to: 4000, length: 3000 }])).resolves.toBe(3000 * BS);
    const bad = stubFs(8000, { failRead: 1500 });
    await expect(copyRuns(bad.fs, [{ from: 0, to: 4000, length: 3000 }])).rejects.toMatchObject({ code: 'EIO' });
    const copies = [{ from: 3, to: 5000, length: 2900 }];
    await copyRuns(fs, copies);
    expect(Buffer.compare(mem.data.subarray(5000 * BS, 7900 * BS), original.subarray(3 * BS, 2903 * BS))).toBe(0);
  });

  it('startCopy reads the first COPY_DEPTH chunks at once, 2 at a time (the caller\'s metadata reads share the pool), and writes nothing until run', async () => {
    const per = COPY_CHUNK / BS;
    const n = 2 * COPY_DEPTH * per;
    const { fs, mem, log, original } = stubFs(2 * n + 16);
    let inFlight = 0, most = 0;
    const reads: number[] = [];
    const read = fs.readDataBlocksInto.bind(fs);
    (fs as { readDataBlocksInto: typeof read }).readDataBlocksInto = async (b, count, target) => {
      reads.push(b);
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 2));
      await read(b, count, target);
      inFlight--;
    };
    const copies = [{ from: 0, to: n + 16, length: n }];
    const copy = startCopy(fs, copies);
    await new Promise((r) => setTimeout(r, 100));
    expect(reads.length, 'chunks read before run').toBe(COPY_DEPTH);
    expect(log.length, 'nothing written before run').toBe(0);
    expect(most, 'reads in flight at once before run (copy-runs-overlap: up to 4 once run is called)').toBe(2);
    expect(await copy.run()).toBe(n * BS);
    expect(Buffer.compare(mem.data, expected(original, copies))).toBe(0);
  });
});
