/**
 * Extent trees and the allocator at scale on real images (issue 9 item 4 and
 * its Measure section); the figures printed by bench/extent-insert.ts.
 *
 * - One insert into a 100,000-extent depth-2 file (4 KiB blocks) through the
 *   ordinary call (`allocate` of one block into a hole mid-file), on a
 *   RecordingDevice: the file's extent-tree blocks written in place plus
 *   the inode-table block (the root lives in the inode) are at most
 *   depth + 2; everything else written is named (one bitmap, one descriptor
 *   block, the superblock, the journal's own blocks). e2fsck clean, debugfs
 *   lists the new extent.
 * - movedata of a 50,000-extent file (1 KiB blocks, default journal) in ONE
 *   call: no transaction is refused with E2BIG; the data file then reads its
 *   bytes (debugfs dump) and e2fsck is clean.
 * - The allocator's free-extent index is the bitmaps' truth: after a run of
 *   allocations and frees in one session — with a transaction that throws
 *   and one the journal refuses (E2BIG) in between — every search gives
 *   the same runs as a fresh open that has no index yet.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { Filesystem } from '../../lib/node.js';
import { Ext4Error } from '../../lib/errors.js';
import { allocateBlocks, findFree, indexedFreeRuns, type FindOptions } from '../../lib/ext4/alloc.js';
import { FreeRuns } from '../../lib/ext4/free-space.js';
import { clustersInGroup } from '../../lib/ext4/geometry.js';
import type { Transaction } from '../../lib/ext4/transaction.js';
import { buildScaleImage, patternBlock } from '../../bench/extent-scale.js';
import { checkPattern, measureInsert, measureMove } from '../../bench/extent-insert.js';
import { debugfsDump, expectE2fsckClean } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';
import { mulberry32 } from '../../lib/io/prng.js';
import { debugfsExtents, HAVE_E2FSPROGS } from './helpers.js';

if (!HAVE_E2FSPROGS) console.log('skipping extent-scale tests: e2fsprogs not installed');

describe.skipIf(!HAVE_E2FSPROGS)('extent trees at scale', () => {
  const imgs: string[] = [];
  afterAll(() => { for (const i of imgs) fs.rmSync(i, { force: true }); });

  it('one insert into a 100,000-extent depth-2 file writes at most depth + 2 tree and inode blocks', async () => {
    const img = tmpPath('scale-insert.img');
    imgs.push(img);
    const N = 100_000;
    const inos = await buildScaleImage(img, { sizeMiB: 900, blockSize: 4096, files: [{ name: 'big', extents: N, layout: 'sparse' }] });
    expectE2fsckClean(img, 'the 100,000-extent file as built');
    expect(debugfsExtents(img, '/big').depth).toBe(2);
    const c = await measureInsert(img, inos.get('big')!);
    expect(c.depth).toBe(2);
    expect(c.treeBlocks + c.inodeTable, `extent-tree blocks (${c.treeBlocks}) + inode table (${c.inodeTable}) written in place`).toBeLessThanOrEqual(c.depth + 2);
    expect(c.inodeTable, 'the inode').toBe(1);
    expect(c.treeBlocks, 'the leaf that takes the extent').toBeGreaterThanOrEqual(1);
    // The rest: the bitmap of the new block, its group's descriptor block, the superblock (the
    // write session's needs_recovery, the checkpoint's free counts, the clean close) — and the
    // journal: its superblock, a descriptor, the logged copies, the commit.
    expect(c.bitmaps).toBe(1);
    expect(c.descriptors).toBe(1);
    expect(c.superblock).toBeLessThanOrEqual(3);
    expect(c.other, 'no other block written').toBe(0);
    expect(c.journal).toBeLessThanOrEqual(c.treeBlocks + c.inodeTable + c.bitmaps + c.descriptors + c.superblock + 4);
    expectE2fsckClean(img, 'after the insert');
    const ex = debugfsExtents(img, '/big');
    expect(ex.leaves.length, 'debugfs sees one more extent').toBe(N + 1);
    expect(ex.leaves.filter((e) => e.uninit).length, 'the new (unwritten) extent').toBe(1);
    fs.rmSync(img, { force: true });
  }, 300_000);

  it('movedata of a 50,000-extent file in one call: no E2BIG, the bytes kept', async () => {
    const img = tmpPath('scale-move.img');
    imgs.push(img);
    const M = 50_000, BS = 1024;
    const inos = await buildScaleImage(img, {
      sizeMiB: 160, blockSize: BS,
      files: [{ name: 'data', extents: M, layout: 'dense', pattern: true }, { name: 'space', extents: M, layout: 'contiguous' }],
    });
    expectE2fsckClean(img, 'the 50,000-extent file as built');
    expect(debugfsExtents(img, '/data').leaves.length).toBe(M);
    const m = await measureMove(img, inos.get('data')!, inos.get('space')!, M);
    expect(m.e2big, 'transactions refused by the journal (each halves the step)').toBe(0);
    expect(m.extentsAfter, 'the data file is now (nearly) contiguous').toBeLessThan(10);
    expectE2fsckClean(img, 'after movedata');
    await checkPattern(img, inos.get('data')!, M);
    const dumped = debugfsDump(img, '/data');
    expect(dumped.length).toBe(M * BS);
    for (let lb = 0; lb < M; lb += 997) expect(Buffer.compare(dumped.subarray(lb * BS, (lb + 1) * BS), patternBlock(lb, BS)), `debugfs: block ${lb}`).toBe(0);
    fs.rmSync(img, { force: true });
  }, 600_000);

  it('the free-extent index agrees with a fresh scan of the bitmaps after allocations, frees, a failed and a refused transaction', async () => {
    const img = tmpPath('scale-index.img');
    imgs.push(img);
    await buildScaleImage(img, { sizeMiB: 64, blockSize: 1024, mkfsOpts: ['-J', 'size=1'], files: [{ name: 'x', extents: 3000, layout: 'sparse' }] });
    const rnd = mulberry32(4242);
    const queries: FindOptions[] = [];
    const f = await Filesystem.open(img, { write: true });
    const blocks = f.sb.blocksCount;
    for (let i = 0; i < 40; i++) queries.push({ goal: Math.floor(rnd() * blocks), length: 1 + Math.floor(rnd() * (i % 3 === 0 ? 5000 : 40)), contiguous: i % 4 === 1, exact: i % 7 === 3 });
    const answers = async (fsx: typeof f) => fsx.transact(async (tx) => Promise.all(queries.map((q) => findFree(tx, q))).then((r) => JSON.parse(JSON.stringify(r)) as unknown));
    const held: { start: number; length: number }[] = [];
    try {
      for (let round = 0; round < 30; round++) {
        await f.transact(async (tx: Transaction) => {
          for (let k = 0; k < 4; k++) held.push(...(await allocateBlocks(tx, { goal: Math.floor(rnd() * blocks), length: 1 + Math.floor(rnd() * 50), partial: true })));
          for (let k = 0; k < 3 && held.length; k++) {
            const [r] = held.splice(Math.floor(rnd() * held.length), 1);
            tx.free(r!.start, r!.length);
          }
        });
        // The committed bitmaps carry the index the transaction kept in step (not rebuilt): it is
        // exactly their free runs.
        let indexed = 0;
        for (let g = 0; g < f.sb.groupCount; g++) {
          const bm = await f.blockBitmap(g);
          const idx = indexedFreeRuns(bm);
          if (!idx) continue;
          indexed++;
          const runs = (r: FreeRuns) => { const out: number[][] = []; r.forEach(0, clustersInGroup(f.sb, g), (s, l) => { out.push([s, l]); }); return out; };
          expect(runs(idx), `round ${round} group ${g}: the index is the bitmap's free runs`).toEqual(runs(FreeRuns.fromBitmap(bm, clustersInGroup(f.sb, g))));
        }
        expect(indexed, `round ${round}: groups whose committed bitmap carries an index`).toBeGreaterThan(0);
        if (round === 10) {
          // a transaction that allocates and then throws: nothing of it may stay in the index
          await expect(f.transact(async (tx) => {
            await allocateBlocks(tx, { goal: 0, length: 2000 });
            throw new Error('changed my mind');
          })).rejects.toThrow('changed my mind');
        }
        if (round === 20) {
          // a transaction the journal refuses (a 1 MiB journal takes 256 blocks per transaction)
          const err = await f.transact(async (tx) => {
            await allocateBlocks(tx, { goal: 0, length: 20 });
            for (let g = 0; g < f.sb.groupCount; g++) await tx.group(g);
            for (let b = 0; b < 400; b++) await tx.block(f.sb.s_first_data_block + 1 + b);
          }).catch((e: unknown) => e);
          expect(err instanceof Ext4Error && err.code, 'the journal refuses it').toBe('E2BIG');
        }
      }
      const mid = await answers(f);
      // give the test's blocks back (they belong to no file: e2fsck would see them leaked), and ask again
      await f.transact(async (tx) => { for (const r of held) tx.free(r.start, r.length); });
      const live = await answers(f);
      expect(live, 'the frees changed what the searches find').not.toEqual(mid);
      await f.close();
      const again = await Filesystem.open(img, { write: true });
      try {
        const fresh = await answers(again);
        expect(fresh, 'every search: the session index vs a fresh scan of the bitmaps').toEqual(live);
      } finally {
        await again.close();
      }
    } catch (e) {
      await f.close().catch(() => undefined);
      throw e;
    }
    expectE2fsckClean(img, 'after the allocation rounds');
  }, 300_000);
});
