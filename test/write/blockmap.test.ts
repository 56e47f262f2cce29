/**
 * Writes to block-mapped files (ext2 without a journal, ext3 with one, 1 KiB
 * blocks so the double and triple indirect trees are reached by modest
 * files): allocate, movedata and getFreeBlocks round trips.
 *
 * After every write: e2fsck -fn clean (strict), debugfs's `stat` BLOCKS list
 * (data blocks by logical position, and the IND/DIND/TIND blocks) equals the
 * map ext4kit reads, debugfs dump and the kernel (read-only loop mount) read
 * the expected bytes — the source tree fed to mkfs -d, changed as each call
 * says. Before block-map writes existed, every call here was EOPNOTSUPP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Filesystem } from '../../lib/node.js';
import { allocate, ALLOC_CONTIGUOUS, ALLOC_FIXED_LEN, ALLOC_FIXED_START } from '../../lib/ops/allocate.js';
import { movedata } from '../../lib/ops/movedata.js';
import { getFreeBlocks } from '../../lib/ops/free.js';
import { blockMapMaxBlocks } from '../../lib/ext4/blockmap-edit.js';
import type { Extent } from '../../lib/ext4/extents.js';
import { debugfsFull, expectE2fsckClean, mkfs, quoteDebugfs, run, sha256File, splitDebugfsOutput, withLoopMount, type FsKind } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { CAN_MOUNT, codeOf, HAVE_E2FSPROGS, LOOP_SKIP, pattern } from '../ops/helpers.js';
import { mergedExtents as merged } from '../helpers/extents.js';

const K = 1024;
if (LOOP_SKIP) console.log(`test/write/blockmap.test.ts: kernel read-back skipped: ${LOOP_SKIP}`);

/** Logical blocks where each level of the 1 KiB block map starts. */
const IND = 12, DIND = 12 + 256, TIND = 12 + 256 + 256 * 256;

/** A sparse file: `blocks` (logical → seed) written, the rest holes; `size` bytes. */
function sparse(blocks: number[], size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  for (const lb of blocks) out.set(pattern(K, seed * 100_000 + lb), lb * K);
  return out;
}

function sourceFiles(): Record<string, Uint8Array> {
  return {
    a: pattern(300 * K, 1), // direct + IND + DIND
    space: pattern(300 * K, 2),
    empty: new Uint8Array(0),
    sparse: sparse([0, 1, 2, 3, 20, 21, IND + 100, DIND + 5, DIND + 300, TIND + 7, TIND + 70_000], (TIND + 70_001) * K, 3),
    sp2: sparse([0, 5, 6, 7, 20, IND + 99, IND + 100, IND + 101, DIND + 300, DIND + 301, TIND + 6, TIND + 7, TIND + 8, TIND + 69_999], (TIND + 70_001) * K, 4),
  };
}

/** mkfs -d from the files (holes kept sparse: mkfs -d maps only the data). */
function build(kind: FsKind, files: Record<string, Uint8Array>): string {
  const src = tmpDir(`blockmap-${kind}-src`);
  for (const [name, data] of Object.entries(files)) {
    const fd = fs.openSync(path.join(src, name), 'w');
    for (let off = 0; off < data.length; off += K) {
      const blk = data.subarray(off, off + K);
      if (blk.some((b) => b !== 0)) fs.writeSync(fd, blk, 0, blk.length, off);
    }
    fs.ftruncateSync(fd, data.length);
    fs.closeSync(fd);
  }
  const img = tmpPath(`blockmap-${kind}.img`);
  mkfs(kind, img, 24 * 1024 * 1024, ['-b', '1024'], src);
  fs.rmSync(src, { recursive: true, force: true });
  return img;
}

/** debugfs stat's BLOCKS: data blocks by logical position, and the indirect blocks. */
function debugfsBlocks(raw: string): { extents: Extent[]; indirect: number[] } {
  const section = /(?:BLOCKS|EXTENTS):\s*\n([\s\S]*?)(?:\n\s*TOTAL: \d+|$)/.exec(raw)?.[1] ?? '';
  const extents: Extent[] = [];
  const indirect: number[] = [];
  for (const m of section.matchAll(/\((\d+)(?:-(\d+))?\):(\d+)(?:-(\d+))?/g)) {
    const lo = Number(m[1]), hi = m[2] ? Number(m[2]) : lo;
    extents.push({ logical: lo, physical: Number(m[3]), length: hi - lo + 1, unwritten: false });
  }
  for (const m of section.matchAll(/\((?:IND|DIND|TIND|ETB\d+)\):(\d+)(?:-(\d+))?/g)) {
    const lo = Number(m[1]), hi = m[2] ? Number(m[2]) : lo;
    for (let b = lo; b <= hi; b++) indirect.push(b);
  }
  return { extents, indirect };
}

/**
 * The oracle checks after a write (filesystem closed): e2fsck; debugfs's BLOCKS equal our map;
 * the bytes at debugfs's blocks (read from the image file) and zeros elsewhere equal `files`
 * (a debugfs dump of a 64 MiB sparse file takes seconds; this is the same oracle, fast).
 */
async function verify(img: string, files: Record<string, Uint8Array>, what: string, extentFiles: string[] = []): Promise<void> {
  expectE2fsckClean(img, what);
  const hasJournal = path.basename(img).includes('ext3');
  const names = Object.keys(files);
  const parts = splitDebugfsOutput(debugfsFull(img, names.map((n) => `stat ${quoteDebugfs(`/${n}`)}`)).stdout);
  const fd = fs.openSync(img, 'r');
  const f = await Filesystem.open(img);
  try {
    for (const n of names) {
      const want = files[n]!;
      const st = parts.find((p) => p.cmd === `stat ${quoteDebugfs(`/${n}`)}`)!.output;
      expect(Number(/Size: (\d+)/.exec(st)?.[1]), `${what}: debugfs size of /${n}`).toBe(want.length);
      const oracle = debugfsBlocks(st);
      const seen = new Uint8Array(Math.ceil(want.length / K)); // blocks debugfs maps
      for (const e of oracle.extents) {
        const got = Buffer.alloc(e.length * K);
        fs.readSync(fd, got, 0, got.length, e.physical * K);
        const exp = want.subarray(e.logical * K, (e.logical + e.length) * K);
        expect(Buffer.compare(got.subarray(0, exp.length), exp) === 0, `${what}: /${n} blocks ${e.logical}+${e.length} at ${e.physical}`).toBe(true);
        seen.fill(1, e.logical, e.logical + e.length);
      }
      const zero = new Uint8Array(K);
      const dataInHoles = [...seen.keys()].filter((lb) => !seen[lb] && Buffer.compare(want.subarray(lb * K, (lb + 1) * K), zero.subarray(0, Math.min(K, want.length - lb * K))) !== 0);
      expect(dataInHoles, `${what}: /${n} has data where debugfs shows holes`).toEqual([]);
      const map = await f.fileMap(await f.resolve(`/${n}`));
      expect(map.kind).toBe(extentFiles.includes(n) ? 'extents' : 'blockmap');
      expect(merged(map.extents), `${what}: debugfs BLOCKS of /${n} vs ext4kit`).toEqual(merged(oracle.extents));
      expect([...map.metadataBlocks].sort((a, b) => a - b), `${what}: indirect blocks of /${n}`).toEqual(oracle.indirect.sort((a, b) => a - b));
    }
  } finally {
    fs.closeSync(fd);
    await f.close();
  }
  if (CAN_MOUNT) {
    await withLoopMount(
      img,
      (mp) => {
        for (const n of names) expect(Buffer.compare(fs.readFileSync(path.join(mp, n)), files[n]!) === 0, `${what}: the kernel reads /${n}`).toBe(true);
      },
      { readOnly: true, options: hasJournal ? ['noload'] : [] },
    );
  }
}

/** Fill every free block with 0xEE: a new block that is not zeroed then shows (free blocks' bytes are nobody's). */
async function dirtyFreeBlocks(img: string): Promise<void> {
  const free = await withWrite(img, (f) => getFreeBlocks(f));
  const fd = fs.openSync(img, 'r+');
  try {
    for (const r of free) fs.writeSync(fd, new Uint8Array(r.len).fill(0xee), 0, r.len, r.start);
  } finally {
    fs.closeSync(fd);
  }
}

async function withWrite<T>(img: string, fn: (f: Filesystem) => Promise<T>): Promise<T> {
  const f = await Filesystem.open(img, { write: true });
  try {
    return await fn(f);
  } finally {
    await f.close();
  }
}

async function mapOf(img: string, p: string): Promise<{ extents: Extent[]; indirect: number[] }> {
  const f = await Filesystem.open(img);
  try {
    const m = await f.fileMap(await f.resolve(p));
    return { extents: m.extents, indirect: m.metadataBlocks };
  } finally {
    await f.close();
  }
}

function freeBlocksSet(free: { start: number; len: number }[]): Set<number> {
  const s = new Set<number>();
  for (const r of free) for (let b = r.start / K; b < (r.start + r.len) / K; b++) s.add(b);
  return s;
}

function withBytes(base: Uint8Array, at: number, bytes: Uint8Array): Uint8Array {
  const size = Math.max(base.length, at + bytes.length);
  const out = new Uint8Array(size);
  out.set(base);
  out.set(bytes, at);
  return out;
}

describe.skipIf(!HAVE_E2FSPROGS)('block-mapped files are written (ext2, ext3; 1 KiB blocks)', () => {
  let files: Record<string, Uint8Array>;
  const base = new Map<FsKind, string>();
  beforeAll(() => {
    files = sourceFiles();
    for (const kind of ['ext2', 'ext3'] as const) base.set(kind, build(kind, files));
  });
  afterAll(() => {
    for (const img of base.values()) fs.rmSync(img, { force: true });
  });
  const copy = (kind: FsKind, name: string) => {
    const p = tmpPath(`${kind}-${name}.img`);
    fs.copyFileSync(base.get(kind)!, p);
    return p;
  };

  for (const kind of ['ext2', 'ext3'] as const) {
    describe(kind, () => {
      it('allocate: new blocks read as zeros (written, not unwritten), grow the size, go through the IND/DIND/TIND trees; getFreeBlocks no longer lists them', async () => {
        const img = copy(kind, 'alloc');
        await dirtyFreeBlocks(img);
        const want = { ...files };
        expect((await mapOf(img, '/sparse')).extents.some((e) => e.logical >= TIND), 'the source reaches the triple-indirect tree').toBe(true);
        let freeBefore: Set<number> = new Set();
        const got = await withWrite(img, async (f) => {
          freeBefore = freeBlocksSet(await getFreeBlocks(f));
          return [
            await allocate(f, '/empty', { offset: 0, len: 300 * K }), // direct, IND and DIND, from nothing
            await allocate(f, '/sparse', { offset: (IND + 10) * K, len: 40 * K }), // into a hole under an existing IND
            await allocate(f, '/sparse', { offset: (TIND + 40_000) * K, len: 3 * K }), // a new DIND+IND under the TIND
            await allocate(f, '/a', { offset: 300 * K, len: 5 * K }), // past EOF
          ];
        });
        expect(got).toEqual([300 * K, 40 * K, 3 * K, 5 * K]);
        want.empty = new Uint8Array(300 * K);
        want.a = withBytes(files.a!, 300 * K, new Uint8Array(5 * K));
        await verify(img, want, 'allocate');
        const f = await Filesystem.open(img);
        try {
          const freeAfter = freeBlocksSet(await getFreeBlocks(f));
          const owned: number[] = [];
          for (const p of ['/empty', '/sparse', '/a']) {
            const m = await f.fileMap(await f.resolve(p));
            for (const e of m.extents) for (let i = 0; i < e.length; i++) owned.push(e.physical + i);
            owned.push(...m.metadataBlocks);
          }
          expect(owned.filter((b) => freeAfter.has(b)), 'owned blocks listed free').toEqual([]);
          const taken = [...freeBefore].filter((b) => !freeAfter.has(b)).length;
          // 348 data blocks + indirect: /empty's IND, DIND and one IND under it; under /sparse's TIND
          // (whose first DIND exists for TIND+7) one new IND; /a and the IND hole need none
          expect(taken).toBe(348 + 3 + 1);
        } finally {
          await f.close();
        }
      });

      it('allocate honours FIXED_START | FIXED_LEN | CONTIGUOUS at a run getFreeBlocks reported; EFBIG past the largest block-mapped file, image unchanged', async () => {
        const img = copy(kind, 'alloc-fixed');
        const free = await withWrite(img, (f) => getFreeBlocks(f));
        const run = free.find((r) => r.len >= 64 * K)!;
        expect(run).toBeDefined();
        const flags = ALLOC_FIXED_START | ALLOC_FIXED_LEN | ALLOC_CONTIGUOUS;
        expect(await withWrite(img, (f) => allocate(f, '/sparse', { offset: (DIND + 1000) * K, len: 32 * K, goal: run.start, flags }))).toBe(32 * K);
        const m = await mapOf(img, '/sparse');
        expect(m.extents.find((e) => e.logical === DIND + 1000)).toEqual({ logical: DIND + 1000, physical: run.start / K, length: 32, unwritten: false });
        await verify(img, files, 'allocate FIXED_START');
        const before = sha256File(img);
        const max = blockMapMaxBlocks(K);
        expect(await withWrite(img, (f) => codeOf(allocate(f, '/sparse', { offset: (max - 1) * K, len: 2 * K })))).toBe('EFBIG');
        expect(sha256File(img)).toBe(before);
      });

      it('movedata: a whole file moves onto space\'s blocks (data unchanged, its old blocks free again, space a hole); a sparse file onto another with other holes', async () => {
        const img = copy(kind, 'move');
        const aBefore = await mapOf(img, '/a');
        const spaceBefore = await mapOf(img, '/space');
        const sp2Before = await mapOf(img, '/sp2');
        const sp2Blocks = new Set(sp2Before.extents.flatMap((e) => Array.from({ length: e.length }, (_, i) => e.logical + i)));
        await withWrite(img, async (f) => {
          await movedata(f, '/a', '/space', { from: 0, len: 300 * K });
          await movedata(f, '/sparse', '/sp2', { from: 0, len: (TIND + 70_001) * K });
        });
        // semantics.md §1: data keeps its bytes where space had a block (zeros over data's holes),
        // and a hole in space makes a hole in data.
        const sparseAfter = new Uint8Array(files.sparse!.length);
        for (const lb of sp2Blocks) sparseAfter.set(files.sparse!.subarray(lb * K, (lb + 1) * K), lb * K);
        const want = { ...files, space: new Uint8Array(300 * K), sp2: new Uint8Array(files.sp2!.length), sparse: sparseAfter };
        await verify(img, want, 'movedata');
        const aAfter = await mapOf(img, '/a');
        expect(merged(aAfter.extents)).toEqual(merged(spaceBefore.extents));
        expect((await mapOf(img, '/space')).extents).toEqual([]);
        expect((await mapOf(img, '/space')).indirect).toEqual([]);
        // sparse now maps exactly where sp2 did, on sp2's old blocks (those over sparse's holes zeroed)
        const sp = await mapOf(img, '/sparse');
        expect(merged(sp.extents)).toEqual(merged(sp2Before.extents));
        expect(sp2Blocks.has(TIND + 6) && !sp2Blocks.has(TIND + 70_000)).toBe(true);
        const f = await Filesystem.open(img);
        try {
          const free = freeBlocksSet(await getFreeBlocks(f));
          const released = [...aBefore.extents.flatMap((e) => Array.from({ length: e.length }, (_, i) => e.physical + i)), ...aBefore.indirect];
          // a's data blocks are free again; a's indirect blocks still hold a's (new) pointers or were reused
          const dataReleased = aBefore.extents.flatMap((e) => Array.from({ length: e.length }, (_, i) => e.physical + i));
          expect(dataReleased.filter((b) => !free.has(b)), 'a\'s old data blocks are free').toEqual([]);
          expect(released.length).toBeGreaterThan(300);
        } finally {
          await f.close();
        }
      });
    });
  }

  it('ext3 with the extent feature turned on: movedata between block-mapped and extent-mapped files, both ways (unwritten space blocks over data holes are zeroed)', async () => {
    const img = copy('ext3', 'mixed');
    run('tune2fs', ['-O', 'extent', img]);
    const xsrc = tmpPath('x'), x2src = tmpPath('x2');
    fs.writeFileSync(xsrc, new Uint8Array(0));
    fs.writeFileSync(x2src, pattern(100 * K, 9));
    debugfsFull(img, [`write ${xsrc} x`, `write ${x2src} x2`], { write: true });
    fs.rmSync(xsrc, { force: true });
    fs.rmSync(x2src, { force: true });
    await dirtyFreeBlocks(img);
    const before = { a: await mapOf(img, '/a'), x2: await mapOf(img, '/x2') };
    await withWrite(img, async (f) => {
      expect((await f.fileMap(await f.resolve('/x'))).kind).toBe('extents');
      expect(await allocate(f, '/x', { offset: 0, len: 40 * K })).toBe(40 * K); // unwritten extents
      await movedata(f, '/sparse', '/x', { from: 0, len: 40 * K }); // block-mapped data, extent-mapped space
      await movedata(f, '/x2', '/a', { from: 0, len: 100 * K }); // extent-mapped data, block-mapped space
    });
    const sparseAfter = files.sparse!.slice();
    const want = {
      ...files,
      sparse: sparseAfter, // its bytes stay; [0,40) now all mapped (x's blocks, zeroed where sparse had holes)
      a: withBytes(new Uint8Array(100 * K), 100 * K, files.a!.subarray(100 * K)), // a hole where x2 took its blocks
      x: new Uint8Array(40 * K),
      x2: pattern(100 * K, 9),
    };
    await verify(img, want, 'mixed movedata', ['x', 'x2']);
    const sp = await mapOf(img, '/sparse');
    expect(merged(sp.extents.filter((e) => e.logical < 40)).map((e) => [e.logical, e.length])).toEqual([[0, 40]]);
    expect(merged((await mapOf(img, '/x2')).extents)).toEqual(merged(before.a.extents.flatMap((e) => (e.logical < 100 ? [{ ...e, length: Math.min(e.length, 100 - e.logical) }] : []))));
    expect(before.x2.extents.length).toBeGreaterThan(0);
  });
});
