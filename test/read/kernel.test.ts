/**
 * The read path against images the Linux kernel wrote (test/helpers/kernel-images.ts; loop mounts,
 * skipped with a printed reason without them). The truth is what the kernel read back through the
 * mount (sha256, FIEMAP) and what debugfs reports — never ext4kit itself:
 *  - a file of 3,200 extents in a depth-2 tree: bytes, every extent, the tree shape;
 *  - fallocate: unwritten extents inside and past EOF read as zeros (even over garbage) and are
 *    reported unwritten; punched holes and zeroed ranges;
 *  - a 5.5 GiB sparse file with data past 4 GiB and across the 2^32-byte boundary;
 *  - an image copied while mounted: a read-only open lays the journal over it and reads what the
 *    kernel reads after replaying a copy; `journalRecovery: 'refuse'` throws; the file is untouched.
 */
import { describe, it, expect } from 'vitest';
import * as crypto from 'node:crypto';
import * as nodefs from 'node:fs';
import { bigSparseImage, fallocImage, kernelSkipReason, manyExtentsImage, needsRecoveryImage, type FiemapExtent, type KernelFile } from '../helpers/kernel-images.js';
import { debugfs, sha256File } from '../helpers/tools.js';
import { prngBytes } from '../helpers/tree.js';
import { Filesystem } from '../../lib/node.js';
import { extents as extentsView, list, stat } from '../../lib/ops/inspect.js';
import type { Extent } from '../../lib/ext4/extents.js';
import { Ext4Error } from '../../lib/errors.js';
import { outcomeOf, sha256Of } from './helpers.js';
import { internals } from '../../lib/ext4/internals.js';

const why = kernelSkipReason();
if (why) console.log(`test/read/kernel.test.ts: skipped: ${why}`);

/** One entry per logical block: physical block and unwritten flag (merging-insensitive comparison). */
function blockMap(list: { logical: number; physical: number; length: number; unwritten: boolean }[]): Map<number, string> {
  const m = new Map<number, string>();
  for (const e of list) for (let i = 0; i < e.length; i++) m.set(e.logical + i, `${e.physical + i}${e.unwritten ? 'u' : ''}`);
  return m;
}

function fromFiemap(x: FiemapExtent[]): { logical: number; physical: number; length: number; unwritten: boolean }[] {
  return x.map((e) => ({ logical: e.logical, physical: e.physical, length: e.length, unwritten: e.flags.includes('unwritten') }));
}

function expectSameBlocks(ours: Extent[], kernel: FiemapExtent[], what: string): void {
  const a = blockMap(ours);
  const b = blockMap(fromFiemap(kernel));
  const diff: string[] = [];
  for (const k of new Set([...a.keys(), ...b.keys()])) if (a.get(k) !== b.get(k)) diff.push(`block ${k}: ours ${a.get(k)}, kernel ${b.get(k)}`);
  expect(diff.slice(0, 10), what).toEqual([]);
}

/** `debugfs ex`: the tree depth, the leaf extents, and the blocks the index entries point at. */
function debugfsExtents(img: string, file: string): { depth: number; leaves: Extent[]; nodes: number[] } {
  const out = debugfs(img, [`ex ${file}`]);
  let depth = -1;
  const nodes: number[] = [];
  const leaves: Extent[] = [];
  for (const line of out.split('\n')) {
    const leaf = /^\s*(\d+)\/\s*(\d+)\s+\d+\/\s*\d+\s+(\d+)\s+-\s+\d+\s+(\d+)\s+-\s+\d+\s+(\d+)\s*(Uninit)?\s*$/.exec(line);
    const index = /^\s*(\d+)\/\s*(\d+)\s+\d+\/\s*\d+\s+\d+\s+-\s+\d+\s+(\d+)\s+\d+\s*$/.exec(line);
    if (leaf) {
      depth = Number(leaf[2]);
      leaves.push({ logical: Number(leaf[3]), physical: Number(leaf[4]), length: Number(leaf[5]), unwritten: leaf[6] === 'Uninit' });
    } else if (index) {
      depth = Number(index[2]);
      nodes.push(Number(index[3]));
    }
  }
  return { depth, leaves, nodes };
}

const sha = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');

describe.skipIf(why !== null)('kernel-written images', () => {
  it('a 3,200-extent file in a depth-2 tree: every extent as debugfs lists it, bytes as the kernel reads them, random ranges exact', async () => {
    const k = manyExtentsImage()!;
    const fs = await Filesystem.open(k.image);
    try {
      const inode = await fs.resolve(k.file.path);
      const map = await fs.fileMap(inode);
      const dbg = debugfsExtents(k.image, k.file.path);
      expect(dbg.depth).toBeGreaterThanOrEqual(2);
      expect(map.kind).toBe('extents');
      expect(map.depth).toBe(dbg.depth);
      expect(map.extents.length).toBeGreaterThanOrEqual(3000);
      expect(map.extents).toEqual(dbg.leaves);
      // the tree blocks: every node an index entry points at
      expect([...map.metadataBlocks].sort((a, b) => a - b)).toEqual([...dbg.nodes].sort((a, b) => a - b));
      expect(dbg.nodes.length).toBeGreaterThan(k.indexBlocks);
      expectSameBlocks(map.extents, k.file.extents, 'FIEMAP');
      const s = await stat(fs, k.file.path);
      expect([s.extents, s.depth, s.size]).toEqual([map.extents.length, dbg.depth, k.file.size]);
      // the whole file, in odd chunk sizes, fresh chunks and one reused buffer
      for (const chunk of [8 * 1024 * 1024, 1_000_003]) expect((await sha256Of(fs, inode, chunk)).sha256).toBe(k.file.sha256);
      for (const chunk of [1 << 20, 12_345]) {
        const h = crypto.createHash('sha256');
        for await (const c of fs.stream(inode, chunk, { reuseBuffer: true })) h.update(c);
        expect(h.digest('hex'), `reused ${chunk}-byte chunks`).toBe(k.file.sha256);
      }
      // ranges straddling extent and hole boundaries against the data the kernel wrote
      const bs = k.blockSize;
      const n = k.leafExtents;
      const data = prngBytes('many-extents', n * bs);
      const expected = (pos: number, len: number) => {
        const out = new Uint8Array(Math.max(0, Math.min(k.file.size, pos + len) - pos));
        for (let i = 0; i < out.length; i++) {
          const off = pos + i;
          const b = Math.floor(off / bs);
          out[i] = b % 2 === 0 ? data[(b / 2) * bs + (off % bs)]! : 0;
        }
        return out;
      };
      let seed = 12345;
      const rnd = (m: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % m);
      for (let i = 0; i < 200; i++) {
        const pos = rnd(k.file.size + bs);
        const len = 1 + rnd(5 * bs);
        const got = await fs.read(inode, pos, len, map);
        expect(sha(got), `read(${pos}, ${len})`).toBe(sha(expected(pos, len)));
        const into = new Uint8Array(len).fill(0xee);
        const n = await fs.readInto(inode, pos, into, map);
        expect(n).toBe(got.length);
        expect(sha(into.subarray(0, n)), `readInto(${pos}, ${len})`).toBe(sha(got));
        expect(into.subarray(n).every((x) => x === 0xee), 'readInto leaves the rest of the buffer alone').toBe(true);
      }
    } finally {
      await fs.close();
    }
  });

  it('fallocate: unwritten extents (inside and past EOF) read as zeros even over garbage and are reported unwritten; punched holes; zeroed ranges', async () => {
    const k = fallocImage()!;
    const bs = k.blockSize;
    // Fill the physical blocks under every unwritten extent with garbage: a reader that ignored
    // the flag would return it (the kernel reads zeros).
    {
      const fs = await Filesystem.open(k.image);
      const fd = nodefs.openSync(k.image, 'r+');
      try {
        for (const f of Object.values(k.files)) {
          for (const e of (await fs.fileMap(await fs.resolve(f.path))).extents) {
            if (e.unwritten) nodefs.writeSync(fd, Buffer.alloc(e.length * bs, 0xa5), 0, e.length * bs, e.physical * bs);
          }
        }
      } finally {
        nodefs.closeSync(fd);
        await fs.close();
      }
    }
    const fs = await Filesystem.open(k.image);
    try {
      const check = async (f: KernelFile) => {
        const inode = await fs.resolve(f.path);
        expect(inode.size, f.path).toBe(f.size);
        expect((await sha256Of(fs, inode)).sha256, `${f.path} bytes`).toBe(f.sha256);
        expect((await sha256Of(fs, inode, 4096 + 512)).sha256, `${f.path} bytes (unaligned chunks)`).toBe(f.sha256);
        const h = crypto.createHash('sha256');
        for await (const c of fs.stream(inode, 3 * 4096 + 100, { reuseBuffer: true })) h.update(c);
        expect(h.digest('hex'), `${f.path} bytes (one reused buffer: holes and unwritten blocks zero-filled over old contents)`).toBe(f.sha256);
        const ext = await extentsView(fs, f.path);
        expectSameBlocks(ext, f.extents, `${f.path} extents vs FIEMAP`);
        expect(inode.blocks512 * 512, `${f.path} allocated bytes`).toBe(f.allocatedBlocks * bs);
        // nothing is read past EOF, even where blocks are allocated
        expect((await fs.read(inode, f.size, 1 << 20)).length).toBe(0);
        return { inode, ext };
      };
      const pre = await check(k.files.prealloc);
      const unwritten = pre.ext.filter((e) => e.unwritten);
      expect(unwritten.length).toBeGreaterThanOrEqual(2);
      expect(unwritten.some((e) => e.logical * bs < k.files.prealloc.size && (e.logical + e.length) * bs > k.files.prealloc.size), 'an unwritten extent crosses EOF').toBe(true);
      expect(unwritten.some((e) => e.logical * bs >= k.files.prealloc.size), 'an unwritten extent lies wholly past EOF').toBe(true);
      // every unwritten range inside EOF reads as zeros (and the garbage is really on disk)
      for (const e of unwritten) {
        const from = e.logical * bs;
        const to = Math.min(k.files.prealloc.size, (e.logical + e.length) * bs);
        if (to <= from) continue;
        const got = await fs.read(pre.inode, from, to - from);
        expect(got.every((x) => x === 0), `unwritten ${e.logical}+${e.length} reads as zeros`).toBe(true);
        expect((await fs.readDataBlocks(e.physical, 1))[0]).toBe(0xa5);
      }
      // the written block inside the unwritten range is data
      const mid = await fs.read(pre.inode, 1.5 * 1024 * 1024, 4096);
      expect(sha(mid)).toBe(sha(prngBytes(`prealloc@${1.5 * 1024 * 1024}`, 4096)));
      const eof = await check(k.files['beyond-eof-only']);
      expect(eof.ext).toEqual([{ logical: 0, physical: eof.ext[0]!.physical, length: 64, unwritten: true }]);
      const punched = await check(k.files.punched);
      const holes = blockMap(punched.ext);
      for (let b = 64; b < 96; b++) expect(holes.has(b), `punched block ${b}`).toBe(false);
      expect(holes.has(255)).toBe(false);
      const p = await fs.read(punched.inode, 100000, 5000);
      expect(p.every((x) => x === 0), 'unaligned punch zeroes part of a block').toBe(true);
      const z = await check(k.files['zero-range']);
      expect((await fs.read(z.inode, 128 * 1024, 128 * 1024)).every((x) => x === 0)).toBe(true);
    } finally {
      await fs.close();
    }
  });

  it('a 5.5 GiB sparse file: data past 4 GiB and across the 2^32-byte boundary, zeros elsewhere', async () => {
    const k = bigSparseImage()!;
    const fs = await Filesystem.open(k.image);
    try {
      const inode = await fs.resolve(k.file.path);
      expect(inode.size).toBe(k.file.size);
      expect(inode.size).toBeGreaterThan(2 ** 32);
      const map = await fs.fileMap(inode);
      expectSameBlocks(map.extents, k.file.extents, 'FIEMAP');
      expect(map.extents.some((e) => e.logical * k.blockSize >= 2 ** 32)).toBe(true);
      for (const c of k.chunks) {
        expect(sha(await fs.read(inode, c.offset, c.length)), `chunk at ${c.offset}`).toBe(c.sha256);
        const lead = Math.min(4096, c.offset);
        const into = new Uint8Array(c.length + 8192).fill(0x77);
        await fs.readInto(inode, c.offset - lead, into, map);
        expect(sha(into.subarray(lead, lead + c.length)), `readInto chunk at ${c.offset}`).toBe(c.sha256);
        // around the chunk: zeros on both sides (unless another chunk is there)
        const before = await fs.read(inode, Math.max(0, c.offset - 3000), Math.min(3000, c.offset));
        const after = await fs.read(inode, c.offset + c.length, 3000);
        const touches = (a: number, b: number) => k.chunks.some((o) => o !== c && o.offset < b && o.offset + o.length > a);
        if (!touches(c.offset - 3000, c.offset)) expect(before.every((x) => x === 0), `before ${c.offset}`).toBe(true);
        if (!touches(c.offset + c.length, c.offset + c.length + 3000)) expect(after.every((x) => x === 0), `after ${c.offset}`).toBe(true);
      }
      // a read spanning the 4 GiB boundary equals the chunk bytes where they are
      const c = k.chunks.find((x) => x.offset < 2 ** 32 && x.offset + x.length > 2 ** 32)!;
      const whole = prngBytes(`big@${c.offset}`, c.length);
      const got = await fs.read(inode, 2 ** 32 - 10, 20);
      expect(Buffer.from(got).equals(whole.subarray(2 ** 32 - 10 - c.offset, 2 ** 32 + 10 - c.offset))).toBe(true);
      // the tail: a hole up to the odd size, and nothing past it
      const tail = await fs.read(inode, k.file.size - 100, 1000);
      expect(tail.length).toBe(100);
      expect(tail.every((x) => x === 0)).toBe(true);
      const rows = await list(fs, '/');
      expect(rows.find((r) => r.name === 'big')?.size).toBe(k.file.size);
    } finally {
      await fs.close();
    }
  });

  it('an image copied while mounted: a read-only open reads what the kernel reads after replaying a copy; refuse throws; the image is untouched', async () => {
    const k = needsRecoveryImage()!;
    const before = sha256File(k.image);
    // refuse
    const refused = await outcomeOf(Filesystem.open(k.image, { journalRecovery: 'refuse' }));
    expect(refused).toBeInstanceOf(Ext4Error);
    expect((refused as Ext4Error).code).toBe('EBUSY');
    expect((refused as Ext4Error).location).toEqual({ kind: 'field', field: 'needs_recovery' });
    // overlay (the default)
    const fs = await Filesystem.open(k.image);
    try {
      expect(internals(fs).overlay?.size ?? 0).toBeGreaterThan(0);
      const rows = (await list(fs, '/', { recursive: true })).filter((r) => r.path !== '/lost+found');
      const got = [];
      for (const r of rows) {
        const e: Record<string, unknown> = { path: r.path.slice(1), type: ['file', 'dir', 'symlink'].includes(r.type) ? r.type : 'other', mode: r.mode, size: r.size };
        if (r.type === 'file') e.sha256 = (await sha256Of(fs, await fs.readInode(r.ino))).sha256;
        if (r.type === 'symlink') e.target = r.target;
        got.push(e);
      }
      got.sort((a, b) => Buffer.compare(Buffer.from(a.path as string), Buffer.from(b.path as string)));
      expect(got).toEqual(k.expected);
      expect(k.missingWithoutReplay.length, 'the journal matters').toBeGreaterThan(0);
    } finally {
      await fs.close();
    }
    // 'ignore' reads the stale on-disk state: the replayed entries are not there
    const stale = await Filesystem.open(k.image, { journalRecovery: 'ignore' });
    try {
      for (const p of k.missingWithoutReplay) {
        const e = await outcomeOf(stale.resolve(`/${p}`));
        expect(e === 'ok' ? 'ok' : (e as Ext4Error).code, p).not.toBe('ok');
      }
    } finally {
      await stale.close();
    }
    expect(sha256File(k.image), 'a read-only open writes nothing').toBe(before);
  });
});
