/**
 * Extent-tree mutation (extent-map.ts, extent-tree.ts, remap.ts) on a real
 * 1 KiB-block image: grow a file to depth 2 with 360 non-adjacent one-block
 * writes, fill holes with unwritten blocks and convert them by pwrite (the
 * merged extents bring the tree back to depth 1), punch with truncate and
 * with movedata from a hole-y space file, shrink to depth 0 and to nothing.
 * At every milestone: e2fsck -fn prints nothing (so i_blocks is exact and no
 * "could be narrower/shorter" prompt appears), debugfs's tree has the
 * expected depth and matches i_blocks, and `debugfs dump` equals the model.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { allocate, ALLOC_CONTIGUOUS } from '../../lib/ops/allocate.js';
import { movedata } from '../../lib/ops/movedata.js';
import { openFile } from '../../lib/ops/file.js';
import { debugfs, debugfsDump } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';
import { buildImage, bytes, debugfsExtents, HAVE_E2FSPROGS, verifyImage } from './helpers.js';

if (!HAVE_E2FSPROGS) console.log('skipping extent-tree tests: e2fsprogs not installed');

const BS = 1024;
const CAP = (BS - 12) / 12; // 84 entries per node

describe.skipIf(!HAVE_E2FSPROGS)('extent trees: depth 2 and back (1 KiB blocks)', () => {
  let dev: MemoryDevice;
  let f: Filesystem;
  let model = new Uint8Array(0);
  const imgFile = tmpPath('extents.img');
  const B = (n: number) => n * BS;

  beforeAll(async () => {
    const img = buildImage({ label: 'extents-1k', blockSize: BS, sizeMiB: 24, mkfsOpts: [] }, { f: new Uint8Array(0), space: new Uint8Array(0) });
    dev = new MemoryDevice(new Uint8Array(fs.readFileSync(img)));
    fs.rmSync(img);
    f = await Filesystem.open(dev, { write: true });
  });

  function write(data: Uint8Array, pos: number): void {
    if (pos + data.length > model.length) {
      const n = new Uint8Array(pos + data.length);
      n.set(model);
      model = n;
    }
    model.set(data, pos);
  }
  function resize(size: number): void {
    const n = new Uint8Array(size);
    n.set(model.subarray(0, Math.min(size, model.length)));
    model = n;
  }

  /** Close, check with the oracles, reopen. Returns debugfs's view of /f. */
  async function milestone(what: string, depth: number) {
    await f.close();
    fs.writeFileSync(imgFile, dev.data);
    verifyImage(imgFile, what);
    const ex = debugfsExtents(imgFile, '/f');
    expect(ex.depth, `${what}: depth`).toBe(depth);
    // i_blocks = data blocks + tree blocks (index/leaf nodes below the root), in 512-byte sectors.
    const stat = debugfs(imgFile, ['stat /f']);
    const blockcount = Number(/Blockcount: (\d+)/.exec(stat)![1]);
    const treeBlocks = ex.all.filter((e) => !e.leaf).length;
    expect(blockcount, `${what}: i_blocks`).toBe((ex.leaves.reduce((a, e) => a + e.length, 0) + treeBlocks) * (BS / 512));
    expect(Number(/Size: (\d+)/.exec(stat)![1]), `${what}: size`).toBe(model.length);
    const dumped = debugfsDump(imgFile, '/f');
    expect(dumped.length, `${what}: dumped size`).toBe(model.length);
    expect(Buffer.compare(dumped, Buffer.from(model)), `${what}: debugfs dump equals the model`).toBe(0);
    f = await Filesystem.open(dev, { write: true });
    return ex;
  }

  it('grows to depth 2 with 360 non-adjacent one-block writes', async () => {
    const h = await openFile(f, '/f');
    for (let i = 0; i < 360; i++) {
      const d = bytes(BS, 1000 + i);
      await h.pwrite(d, B(2 * i));
      write(d, B(2 * i));
    }
    const ex = await milestone('after 360 sparse writes', 2);
    expect(ex.leaves.length).toBe(360);
    expect(ex.leaves.length).toBeGreaterThan(4 * CAP);
    expect(ex.leaves.every((e) => !e.uninit && e.length === 1)).toBe(true);
  });

  it('fills holes with unwritten blocks, converts them by pwrite: the merged extent brings it back to depth 1', async () => {
    // The first tree blocks went into the gaps next to the first data blocks; further on the gaps are free,
    // so each unwritten block lands right after its written neighbour (default goal).
    for (let i = 100; i < 140; i++) await allocate(f, '/f', { offset: B(2 * i + 1), len: B(1) });
    let ex = await milestone('after 40 unwritten fills', 2);
    expect(ex.leaves.length).toBe(400);
    expect(ex.leaves.filter((e) => e.uninit).map((e) => e.logical)).toEqual(Array.from({ length: 40 }, (_, i) => 201 + 2 * i));
    // One pwrite over [200, 280): converts 40 unwritten blocks and overwrites 40 written ones.
    const d = bytes(B(80), 7);
    await (await openFile(f, '/f')).pwrite(d, B(200));
    write(d, B(200));
    ex = await milestone('after converting by pwrite', 1);
    const merged = ex.leaves.filter((e) => e.logical >= 200 && e.logical < 280);
    expect(merged.map((e) => [e.logical, e.length, e.uninit])).toEqual([[200, 81, false]]); // 280 (written, next to 279) joins too
    expect(ex.leaves.length).toBe(400 - 81 + 1);
    // A partial-block write into an unwritten block: the rest of the block reads as zeros.
    await allocate(f, '/f', { offset: B(301), len: B(1) });
    const small = bytes(100, 8);
    await (await openFile(f, '/f')).pwrite(small, B(301) + 300);
    write(small, B(301) + 300);
    await milestone('after a partial conversion', 1);
  });

  it('punches with movedata from a hole-y space file and with truncate', async () => {
    // /space: 10 unwritten blocks over [100,110), a hole over [110,200).
    await allocate(f, '/space', { offset: B(100), len: B(10), flags: ALLOC_CONTIGUOUS });
    await movedata(f, '/f', '/space', { from: B(100), len: B(100) });
    model.fill(0, B(110), B(200)); // a hole in space makes a hole in data
    let ex = await milestone('after movedata with a hole-y space file', 1);
    expect(ex.leaves.filter((e) => e.logical >= 110 && e.logical < 200)).toEqual([]);
    // [100,110) now sits on /space's former contiguous run: written where /f had data, unwritten where it had a hole.
    const moved = ex.leaves.filter((e) => e.logical >= 100 && e.logical < 110);
    // /f had data at 100,102,..,108 (copied into the space blocks) and holes at 101,..,109 (space
    // blocks over a data hole read as zeros: unwritten).
    expect(moved.map((e) => [e.logical, e.length, e.uninit])).toEqual(Array.from({ length: 10 }, (_, i) => [100 + i, 1, i % 2 === 1]));
    expect(new Set(moved.map((e) => e.physical - e.logical)).size).toBe(1); // one contiguous run
    expect(debugfsExtents(imgFile, '/space').leaves).toEqual([]);
    await (await openFile(f, '/f')).truncate(B(500) + 123);
    resize(B(500) + 123);
    ex = await milestone('after truncate to 500 blocks + 123 bytes', 1);
    expect(Math.max(...ex.leaves.map((e) => e.end))).toBe(500);
  });

  it('shrinks to depth 0 and to nothing', async () => {
    await (await openFile(f, '/f')).truncate(B(6) + 100);
    resize(B(6) + 100);
    const ex = await milestone('after truncate to 6 blocks + 100 bytes', 0);
    expect(ex.leaves.map((e) => [e.logical, e.length])).toEqual([[0, 1], [2, 1], [4, 1], [6, 1]]);
    await (await openFile(f, '/f')).truncate(0);
    resize(0);
    await milestone('after truncate to 0', 0);
    expect(debugfsExtents(imgFile, '/f').leaves).toEqual([]);
    await f.close();
  });
});
