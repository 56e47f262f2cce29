/**
 * The host reader's slab pool (lib/cli/host-reader.ts) in the shapes the import meets: thousands
 * of tiny files streaming through a one-slab window with the consumer releasing as it goes (the
 * steady state takes no new slab: two buffers in all; each file's block tail zeroed over the
 * older bytes), a file larger than the whole read-ahead
 * (pieces of a slab each, in order), a file vanishing between the walk and its read (the entries
 * before and after it still arrive, each with its own bytes), and the reader thread dying part-way (the
 * consumer gets an error instead of waiting forever; no thread is left). The consumer takes
 * entries as listed() / wholeNow() give them when they are there and waits otherwise, as
 * host-tree.ts does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ENTRY_FIELDS, HostReader } from '../../lib/cli/host-reader.js';
import { HOST_READER_WORKER } from '../../lib/cli/host-reader-worker.js';
import { SLAB_BYTES } from '../../lib/cli/host-read-start.js';
import { tmpDir } from '../helpers/tmp.js';
import { prngBytes } from '../helpers/tree.js';

const MiB = 1024 * 1024;
const TINY = 4500; // × 4 KiB in the slabs: 17.6 MiB, more than two slabs (SLAB_BYTES ≤ 8 MiB)
const threads = (): number => fs.readdirSync('/proc/self/task').length;

let tiny = '';
const tinyName = (i: number) => `t${String(i).padStart(5, '0')}`;
const tinySize = (i: number) => (i * 37) % 300;
beforeAll(() => {
  tiny = tmpDir('host-pool-tiny');
  for (let i = 0; i < TINY; i++) fs.writeFileSync(path.join(tiny, tinyName(i)), prngBytes(`t${i}`, tinySize(i)));
});
afterAll(() => {
  if (tiny) fs.rmSync(tiny, { recursive: true, force: true });
});

/** Entry i: without an await when listed already. */
async function entry(r: HostReader, i: number) {
  const l = r.listed(i);
  return l === undefined ? r.entry(i) : l;
}

async function whole(r: HostReader, i: number): Promise<Uint8Array> {
  return r.wholeNow(i) ?? r.whole(i);
}

describe('host reader pool', () => {
  it('many tiny files through a one-slab window, released as consumed: right bytes, two slabs in all', async () => {
    const r = new HostReader(tiny, { reuse: true, windowSlabs: 1 });
    const buffers = new Set<ArrayBufferLike>();
    let files = 0;
    try {
      for (let i = 0; ; i++) {
        const l = await entry(r, i);
        if (!l) break;
        if (l.num[l.o + ENTRY_FIELDS.type] !== 0) continue;
        const k = Number(l.rel.slice(1));
        const b = await whole(r, i);
        buffers.add(b.buffer);
        expect(Buffer.from(b).equals(prngBytes(`t${k}`, tinySize(k))), l.rel).toBe(true);
        // zeros up to the next 4 KiB, also where a reused slab held older files' bytes
        const tail = new Uint8Array(b.buffer, b.byteOffset + b.length, (4096 - (b.length % 4096)) % 4096);
        expect(tail.every((x) => x === 0), `${l.rel}'s tail`).toBe(true);
        files++;
        // what importTree's `released` says after a commit: nothing handed out is held any more
        if (i % 100 === 0) r.recycle(null);
      }
    } finally {
      await r.close();
    }
    expect(files).toBe(TINY);
    expect(buffers.size).toBe(2);
  });

  it('a file larger than the whole read-ahead comes in slab-sized pieces, in order, between tiny ones', async () => {
    const dir = tmpDir('host-pool-big');
    try {
      fs.writeFileSync(path.join(dir, 'a'), prngBytes('a', 10));
      // Four pieces through a one-slab window: a seeded MiB repeated, each copy numbered (a piece out of order shows).
      const unit = prngBytes('big', MiB);
      const big = Buffer.concat(Array.from({ length: 25 }, (_, m) => Buffer.concat([Buffer.from([m]), unit.subarray(1)])), 3 * SLAB_BYTES + 12345);
      fs.writeFileSync(path.join(dir, 'b'), big);
      fs.writeFileSync(path.join(dir, 'c'), prngBytes('c', 20));
      const r = new HostReader(dir, { reuse: true, windowSlabs: 1 });
      try {
        expect((await entry(r, 0))!.rel).toBe('');
        expect(Buffer.from(await whole(r, 1)).equals(prngBytes('a', 10))).toBe(true);
        expect(HostReader.isWhole(big.length)).toBe(false);
        let at = 0;
        let pieces = 0;
        for await (const c of r.chunks(2)) {
          expect(c.length).toBeLessThanOrEqual(SLAB_BYTES);
          expect(Buffer.from(c).equals(big.subarray(at, at + c.length)), `piece at ${at}`).toBe(true);
          at += c.length;
          pieces++;
          r.recycle(c); // the piece being written is held; the ones before are free
        }
        expect({ at, pieces }).toEqual({ at: big.length, pieces: 4 });
        expect(Buffer.from(await whole(r, 3)).equals(prngBytes('c', 20))).toBe(true);
        expect(await entry(r, 4)).toBeNull();
      } finally {
        await r.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a read failing in the middle of the stream fails that entry only; its neighbours keep their bytes', async () => {
    const dir = tmpDir('host-pool-err');
    // t00000..t00019 fill most of the one slab (a 21st of it each): t00020 does not fit, so the
    // thread cannot read it before the consumer has taken the first slab's files — it vanishes meanwhile.
    const size = (i: number) => (i <= 20 ? Math.floor(SLAB_BYTES / 21) : 100 + i);
    try {
      for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(dir, tinyName(i)), prngBytes(`e${i}`, size(i)));
      const r = new HostReader(dir, { reuse: true, windowSlabs: 1 });
      try {
        expect((await entry(r, 0))!.rel).toBe('');
        fs.rmSync(path.join(dir, tinyName(20)));
        const got: string[] = [];
        for (let i = 1; i <= 40; i++) {
          const l = (await entry(r, i))!;
          expect(l.rel).toBe(tinyName(i - 1));
          try {
            const b = await whole(r, i);
            expect(Buffer.from(b).equals(prngBytes(`e${i - 1}`, size(i - 1))), l.rel).toBe(true);
            got.push('ok');
          } catch (e) {
            got.push(`${(e as NodeJS.ErrnoException).code} ${(e as NodeJS.ErrnoException).path}`);
          }
          if (i % 7 === 0) r.recycle(null);
        }
        expect(got.map((g, k) => (g === 'ok' ? null : [k, g])).filter(Boolean)).toEqual([[20, `ENOENT ${path.join(dir, tinyName(20))}`]]);
        expect(await entry(r, 41)).toBeNull();
      } finally {
        await r.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the reader thread dying part-way: the consumer gets an error, not a hang; no thread is left', async () => {
    const before = threads();
    // The thread exits right after posting its second batch of file bytes.
    const dying = `{ const wt = require('node:worker_threads'); const post = wt.parentPort.postMessage.bind(wt.parentPort); let n = 0;
      wt.parentPort.postMessage = (m) => { post(m); if (m.t === 'd' && ++n === 2) process.exit(7); }; }\n${HOST_READER_WORKER}`;
    const r = new HostReader(tiny, { reuse: true, windowSlabs: 1, workerSource: dying });
    let read = 0;
    const failure = await (async () => {
      for (let i = 0; ; i++) {
        const l = await entry(r, i);
        if (!l) return null;
        if (l.num[l.o + ENTRY_FIELDS.type] === 0) {
          await whole(r, i);
          read++;
        }
      }
    })().catch((e: Error) => e);
    expect(failure).toBeInstanceOf(Error);
    expect(failure!.message).toMatch(/host reader thread stopped before the end/);
    expect(read).toBeGreaterThan(0);
    expect(read).toBeLessThan(TINY);
    await r.close();
    expect(threads()).toBe(before);
  });
});
