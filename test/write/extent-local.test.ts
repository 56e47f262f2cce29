/**
 * Local extent-tree edits on a real image (issue 8 item 12, issue 9 item 4):
 * 1 KiB blocks, `mkfs.ext4 -J size=1` (a 1,024-block journal: at most 256
 * log blocks per transaction), a space file of 16,385 one-block extents
 * (a depth-2 tree of ~200 leaves), a 16 MiB data file of 16,384 one-block
 * extents.
 *
 * - Punching, replacing and inserting ranges through remapInode in small
 *   transactions logs a handful of blocks (the whole-tree writer rewrote
 *   every leaf from the edit on: ~200); after each, e2fsck -fn reports
 *   nothing (no "could be narrower/shorter" either) and `debugfs ex` lists
 *   exactly the model's extents.
 * - movedata of the whole 16 MiB range onto the space file succeeds (it used
 *   to fail with E2BIG), no step logs more than a quarter of the journal,
 *   the data file then reads the original bytes (debugfs dump) and e2fsck is
 *   clean.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import type { Transaction } from '../../lib/ext4/transaction.js';
import { allocateBlocks, findFree, markAllocated } from '../../lib/ext4/alloc.js';
import { remapInode, setSize, txFileMap } from '../../lib/ext4/remap.js';
import { insert, punch } from '../../lib/ext4/extent-map.js';
import { writeExtentTree } from '../../lib/ext4/extent-tree.js';
import type { Extent } from '../../lib/ext4/extents.js';
import { movedata } from '../../lib/ops/movedata.js';
import { resolveTarget } from '../../lib/ops/target.js';
import { debugfsDump } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';
import { buildImage, bytes, debugfsExtents, HAVE_E2FSPROGS, prng, verifyImage } from './helpers.js';

if (!HAVE_E2FSPROGS) console.log('skipping local extent-edit image tests: e2fsprogs not installed');

const BS = 1024;
const N = 16_385;
const DATA_BYTES = 16 * 1024 * 1024;

describe.skipIf(!HAVE_E2FSPROGS)('local extent edits on a 1 KiB-block image with a 1 MiB journal', () => {
  let dev: MemoryDevice;
  let f: Filesystem;
  let spaceIno = 0;
  let dataIno = 0;
  let model: Extent[] = [];
  const data = bytes(DATA_BYTES, 12);
  const imgFile = tmpPath('extent-local.img');

  /** Run `fn` in a transaction; returns its result and the number of blocks it logged. */
  async function inTx<T>(fn: (tx: Transaction) => Promise<T>): Promise<{ result: T; logged: number }> {
    let seen: Transaction | null = null;
    const result = await f.transact(async (tx) => {
      seen = tx;
      return fn(tx);
    });
    return { result, logged: (seen as Transaction | null)?.blocks.size ?? 0 };
  }

  /** Close, check with e2fsck and debugfs against the model, reopen. */
  async function milestone(what: string): Promise<void> {
    await f.close();
    fs.writeFileSync(imgFile, dev.data);
    verifyImage(imgFile, what);
    const ex = debugfsExtents(imgFile, '/space');
    expect(ex.leaves.length, `${what}: debugfs extent count`).toBe(model.length);
    const got = ex.leaves.map((e) => [e.logical, e.physical, e.length, e.uninit]);
    expect(got, `${what}: debugfs ex lists the model's extents`).toEqual(model.map((e) => [e.logical, e.physical, e.length, e.unwritten]));
    f = await Filesystem.open(dev, { write: true });
  }

  /** Map every other free block after the file's last one at its end, as one-block extents. */
  async function grow(ino: number, count: number, unwritten = true): Promise<number> {
    const { logged } = await inTx(async (tx) => {
      const inode = await tx.readInode(ino);
      const map = await txFileMap(tx, inode);
      const end = map.extents.length ? map.extents[map.extents.length - 1]!.logical + map.extents[map.extents.length - 1]!.length : 0;
      const goal = map.extents.length ? map.extents[map.extents.length - 1]!.physical + 2 : 0;
      const runs = await findFree(tx, { goal, length: 2 * count + 64 });
      const picks: number[] = [];
      for (const r of runs) for (let b = r.start; b < r.start + r.length && picks.length < count; b += 2) picks.push(b);
      expect(picks.length).toBe(count);
      await markAllocated(tx, picks.map((start) => ({ start, length: 1 })));
      const added = picks.map((physical, i) => ({ logical: end + i, physical, length: 1, unwritten }));
      setSize(tx, inode, (end + count) * BS);
      await remapInode(tx, inode, map, [...map.extents, ...added]);
      if (ino === spaceIno) model = [...map.extents, ...added];
    });
    return logged;
  }

  beforeAll(async () => {
    const img = buildImage({ label: 'extent-local-1k', blockSize: BS, sizeMiB: 64, mkfsOpts: ['-J', 'size=1'] }, { data: new Uint8Array(0), space: new Uint8Array(0) });
    dev = new MemoryDevice(new Uint8Array(fs.readFileSync(img)));
    fs.rmSync(img);
    f = await Filesystem.open(dev, { write: true });
    spaceIno = await resolveTarget(f, '/space');
    dataIno = await resolveTarget(f, '/data');
    // The space file, grown 2,048 extents per transaction (appends: only the tree's tail changes).
    for (let done = 0; done < N; done += 2048) await grow(spaceIno, Math.min(2048, N - done));
    await milestone('space file built');
    expect(debugfsExtents(imgFile, '/space').depth).toBe(2);
  }, 120_000);

  it('punch, replace and insert ranges in the middle of the tree: few blocks logged, e2fsck clean, debugfs agrees', async () => {
    const ino = spaceIno;
    const CAP = Math.floor((BS - 12) / 12);
    const logged: { what: string; local: number; whole: number }[] = [];
    const edit = async (what: string, change: (tx: Transaction, list: Extent[]) => Promise<Extent[]>) => {
      let whole = 0;
      const { logged: n } = await inTx(async (tx) => {
        const inode = await tx.readInode(ino);
        const map = await txFileMap(tx, inode);
        const next = await change(tx, map.extents);
        // What the whole-tree writer would have rewritten for the same change (the oracle, not applied).
        whole = (await writeExtentTree(next, {
          blockSize: BS, csumSeed: f.inodeCsumSeed(inode), oldTreeBlocks: map.metadataBlocks, goal: 0,
          allocate: async (count) => Array.from({ length: count }, (_, i) => 1_000_000 + i),
          readBlock: async (b) => tx.blocks.get(b) ?? (await f.readBlock(b)),
        })).writes.size;
        await remapInode(tx, inode, map, next);
        model = next;
      });
      logged.push({ what, local: n, whole });
    };
    const freeRemoved = (tx: Transaction, removed: Extent[]) => { for (const e of removed) tx.free(e.physical, e.length); };
    await edit('punch 64 extents', async (tx, list) => {
      const r = punch(list, list[8000]!.logical, 64);
      freeRemoved(tx, r.removed);
      return r.list;
    });
    await edit('replace 40 extents by one 40-block extent', async (tx, list) => {
      const lb = list[12000]!.logical;
      const r = punch(list, lb, 40);
      freeRemoved(tx, r.removed);
      const [run] = await allocateBlocks(tx, { goal: 40_000, length: 40, contiguous: true });
      return insert(r.list, [{ logical: lb, physical: run!.start, length: 40, unwritten: true }]);
    });
    await edit('insert into the first hole', async (tx, list) => {
      const [run] = await allocateBlocks(tx, { goal: 45_000, length: 1 });
      return insert(list, [{ logical: model[7999]!.logical + 5, physical: run!.start, length: 1, unwritten: true }]);
    });
    const rnd = prng(8);
    for (let i = 0; i < 24; i++) {
      const at = Math.floor(rnd() * (model.length - 10));
      if (i % 3 === 0) {
        await edit(`small punch ${i}`, async (tx, list) => {
          const r = punch(list, list[at]!.logical, 1 + Math.floor(rnd() * 4));
          freeRemoved(tx, r.removed);
          return r.list;
        });
      } else {
        await edit(`small replace ${i}`, async (tx, list) => {
          const lb = list[at]!.logical, n = 1 + Math.floor(rnd() * 3);
          const r = punch(list, lb, n);
          freeRemoved(tx, r.removed);
          const add: Extent[] = [];
          for (let k = 0; k < n; k++) {
            const [run] = await allocateBlocks(tx, { goal: 46_000 + Math.floor(rnd() * 4000) * 2, length: 1 });
            add.push({ logical: lb + k, physical: run!.start, length: 1, unwritten: true });
          }
          return insert(r.list, add);
        });
      }
    }
    await milestone('after punches, replacements and inserts');
    // Each logs the inode table block, superblock, descriptor block, bitmaps and the extent-tree
    // blocks it changes. The whole-tree writer rewrote every leaf from the edit on (~100 here).
    // When an edit pushes a level past e2fsck's slack limit, the window that frees a node spans
    // at most about one block's worth of entries' nodes (84 at 1 KiB), once per ~84 slots freed.
    for (const l of logged) {
      expect(l.local, `${l.what}: blocks logged`).toBeLessThanOrEqual(CAP + 16);
      expect(l.local, `${l.what}: blocks logged vs the whole-tree rewrite (${l.whole} tree blocks)`).toBeLessThan(Math.max(l.whole, 8));
    }
    const sorted = logged.map((l) => l.local).sort((a, b) => a - b);
    expect(sorted[Math.floor(sorted.length / 2)], `median blocks logged (${sorted.join(' ')})`).toBeLessThanOrEqual(8);
    expect(logged.find((l) => l.what.startsWith('insert'))!.local, 'a plain insert').toBeLessThanOrEqual(8);
  }, 120_000);

  it('movedata of 16 MiB onto the 16,385-extent space file succeeds (no E2BIG) and keeps the data', async () => {
    // Space must cover the whole range again (the punches above left holes): fill them.
    await inTx(async (tx) => {
      const inode = await tx.readInode(spaceIno);
      const map = await txFileMap(tx, inode);
      const add: Extent[] = [];
      let at = 0;
      for (const e of [...map.extents, { logical: DATA_BYTES / BS, physical: 0, length: 1, unwritten: true }]) {
        for (; at < Math.min(e.logical, DATA_BYTES / BS); at++) {
          const [run] = await allocateBlocks(tx, { goal: 50_000 + 2 * at, length: 1 }); // not adjacent: one extent each
          add.push({ logical: at, physical: run!.start, length: 1, unwritten: true });
        }
        at = Math.max(at, e.logical + e.length);
      }
      const next = insert(map.extents, add);
      await remapInode(tx, inode, map, next);
      model = next;
    });
    expect(model.length, 'the space file has ~16,385 extents again').toBeGreaterThanOrEqual(N - 64);
    // The data file: 16 MiB in 16,384 one-block extents too (as in the report: both trees are large).
    for (let done = 0; done < DATA_BYTES / BS; done += 2048) await grow(dataIno, 2048, false);
    await f.close();
    const ro = await Filesystem.open(dev);
    const dataMap = await ro.fileMap(await ro.readInode(dataIno));
    await ro.close();
    expect(dataMap.extents.length).toBe(DATA_BYTES / BS);
    for (const e of dataMap.extents) dev.data.set(data.subarray(e.logical * BS, (e.logical + e.length) * BS), e.physical * BS);
    f = await Filesystem.open(dev, { write: true });
    let worst = 0;
    const orig = f.transact.bind(f);
    f.transact = async <T>(fn: (tx: Transaction) => Promise<T>): Promise<T> => {
      let seen: Transaction | null = null;
      const r = await orig(async (tx) => {
        seen = tx;
        return fn(tx);
      });
      worst = Math.max(worst, (seen as Transaction | null)?.blocks.size ?? 0);
      return r;
    };
    try {
      await movedata(f, '/data', '/space', { from: 0, len: DATA_BYTES });
    } finally {
      f.transact = orig;
    }
    await f.close();
    fs.writeFileSync(imgFile, dev.data);
    verifyImage(imgFile, 'after movedata');
    const dumped = debugfsDump(imgFile, '/data');
    expect(dumped.length).toBe(DATA_BYTES);
    expect(Buffer.compare(dumped, Buffer.from(data)), '/data reads its original bytes').toBe(0);
    expect(debugfsExtents(imgFile, '/space').leaves.filter((e) => e.logical < DATA_BYTES / BS), 'space is a hole over the range').toEqual([]);
    // A quarter of the journal is 256 blocks; a step touches the edited paths of both trees, and
    // at worst one window per tree that frees a node (about one block's worth of entries' nodes).
    expect(worst, 'blocks logged by the largest movedata step').toBeLessThanOrEqual(Math.floor((BS - 12) / 12) + 32);
    f = await Filesystem.open(dev, { write: true });
    await f.close();
  }, 300_000);
});
