/**
 * The allocator (alloc.ts via the `allocate` call) on real mkfs images of
 * every layout that changes its job: 4 KiB and 1 KiB blocks, ^flex_bg,
 * gdt_csum, no group checksums, 32-bit descriptors, no journal. After every
 * write: e2fsck -fn clean (nothing printed), every group's free counts equal
 * dumpe2fs's recount of its bitmaps, and the totals equal the superblock and
 * e2fsck's summary. Placement is checked with debugfs's view of the extents.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { allocate, ALLOC_CONTIGUOUS, ALLOC_FIXED_LEN, ALLOC_FIXED_START } from '../../lib/ops/allocate.js';
import { allocateInode } from '../../lib/ext4/alloc.js';
import { openFile } from '../../lib/ops/file.js';
import { debugfs, dumpe2fsGroups, type GroupInfo } from '../helpers/tools.js';
import { buildImage, CONFIGS, debugfsExtents, expectCode, HAVE_E2FSPROGS, sha256File, verifyImage, type ImageConfig } from './helpers.js';

if (!HAVE_E2FSPROGS) console.log('skipping allocator tests: e2fsprogs not installed');

/** Free runs of the whole fs from dumpe2fs (merged across group boundaries). */
function freeRuns(groups: GroupInfo[]): [number, number][] {
  const out: [number, number][] = [];
  for (const g of groups)
    for (const [s, e] of g.freeBlockRanges) {
      const last = out[out.length - 1];
      if (last && last[1] + 1 === s) last[1] = e;
      else out.push([s, e]);
    }
  return out;
}

function groupOf(groups: GroupInfo[], block: number): GroupInfo {
  return groups.find((g) => block >= g.firstBlock && block <= g.lastBlock)!;
}

async function withFs<T>(img: string, fn: (f: Filesystem) => Promise<T>): Promise<T> {
  const f = await Filesystem.open(img, { write: true });
  try {
    return await fn(f);
  } finally {
    await f.close();
  }
}

describe.skipIf(!HAVE_E2FSPROGS).each(CONFIGS)('allocator on $label', (c: ImageConfig) => {
  let img: string;
  const B = (n: number) => n * c.blockSize;
  beforeAll(() => {
    img = buildImage(c);
    verifyImage(img, 'fresh mkfs');
  });

  it('BLOCK_UNINIT group: lazy initialisation on first allocation', async () => {
    const before = dumpe2fsGroups(img);
    const g = before.find((x) => x.flags.includes('BLOCK_UNINIT') && x.freeBlockRanges.length);
    if (!g) {
      console.log(`[alloc ${c.label}] no BLOCK_UNINIT group (${c.mkfsOpts.join(' ') || 'defaults'}): lazy init not applicable`);
      return;
    }
    const x = g.freeBlockRanges[0]![0] + 7;
    await withFs(img, (f) => allocate(f, '/empty', { offset: B(5000), len: B(3), goal: B(x), flags: ALLOC_FIXED_START | ALLOC_FIXED_LEN }));
    const after = verifyImage(img, 'after allocating in a BLOCK_UNINIT group').groups[g.group]!;
    expect(after.flags).not.toContain('BLOCK_UNINIT');
    expect(after.freeBlocks).toBe(g.freeBlocks - 3);
    expect(after.freeBlockRanges).toEqual([...(x > g.freeBlockRanges[0]![0] ? [[g.freeBlockRanges[0]![0], x - 1]] : []), [x + 3, g.freeBlockRanges[0]![1]], ...g.freeBlockRanges.slice(1)]);
  });

  it('goal-directed first fit, continuing after the previous extent, skipping used blocks', async () => {
    const groups = dumpe2fsGroups(img);
    const last = groups[groups.length - 1]!;
    const [s] = last.freeBlockRanges.reduce((a, r) => (r[1] - r[0] > a[1] - a[0] ? r : a));
    const goal = s + 5;
    await withFs(img, async (f) => {
      expect(await allocate(f, '/empty', { offset: 0, len: B(4), goal: B(goal) })).toBe(B(4));
      expect(await allocate(f, '/empty', { offset: B(4), len: B(4) })).toBe(B(4)); // default goal: after the previous extent
    });
    verifyImage(img, 'after goal-directed allocations');
    const ex = debugfsExtents(img, '/empty').leaves.filter((e) => e.logical < 100);
    expect(ex).toEqual([{ level: 0, depth: 0, logical: 0, end: 7, physical: goal, length: 8, uninit: true, leaf: true }]);
    // A goal inside used metadata (group 0's inode table): first free block at or after it.
    const g0 = dumpe2fsGroups(img)[0]!;
    const want = freeRuns(dumpe2fsGroups(img)).find(([, e]) => e >= g0.inodeTable[0])!;
    await withFs(img, (f) => allocate(f, '/empty', { offset: B(100), len: B(1), goal: B(g0.inodeTable[0]) }));
    verifyImage(img, 'after an allocation with a goal in used blocks');
    const got = debugfsExtents(img, '/empty').leaves.find((e) => e.logical === 100)!;
    expect(got.physical).toBe(Math.max(want[0], g0.inodeTable[0]));
  });

  it('contiguous run across a group boundary (CONTIGUOUS|FIXED_LEN), counts of both groups', async () => {
    const before = dumpe2fsGroups(img);
    const runs = freeRuns(before);
    const boundary = before.slice(1).map((g) => g.firstBlock).find((b) => runs.some(([s, e]) => s <= b - 64 && e >= b + 63));
    if (boundary === undefined) {
      console.log(`[alloc ${c.label}] no free run crosses a group boundary (each group starts with metadata): contiguous cross-group case not applicable`);
      return;
    }
    await withFs(img, (f) => allocate(f, '/empty', { offset: B(1000), len: B(128), goal: B(boundary - 64), flags: ALLOC_CONTIGUOUS | ALLOC_FIXED_LEN }));
    const after = verifyImage(img, 'after a cross-group contiguous allocation').groups;
    const ex = debugfsExtents(img, '/empty').leaves.filter((e) => e.logical >= 1000 && e.logical < 2000);
    expect(ex.map((e) => [e.logical, e.physical, e.length])).toEqual([[1000, boundary - 64, 128]]);
    const ga = groupOf(before, boundary - 1).group, gb = groupOf(before, boundary).group;
    expect(after[ga]!.freeBlocks).toBe(before[ga]!.freeBlocks - 64);
    expect(after[gb]!.freeBlocks).toBe(before[gb]!.freeBlocks - 64);
    for (const g of [ga, gb]) expect(after[g]!.flags).not.toContain('BLOCK_UNINIT');
  });

  it('exact-start runs (FIXED_START): at a free block, at a used block (ENOSPC, nothing written), shorter than asked', async () => {
    const runs = freeRuns(dumpe2fsGroups(img));
    const [s] = runs.find(([a, e]) => e - a >= 40)!;
    const x = s + 10;
    await withFs(img, async (f) => {
      expect(await allocate(f, '/empty', { offset: B(2000), len: B(10), goal: B(x), flags: ALLOC_FIXED_START | ALLOC_FIXED_LEN })).toBe(B(10));
      // Again at the same (now used) block: ENOSPC and not a byte written.
      const sha = sha256File(img);
      await expectCode(allocate(f, '/empty', { offset: B(3000), len: B(2), goal: B(x), flags: ALLOC_FIXED_START }), 'ENOSPC');
      expect(sha256File(img)).toBe(sha);
    });
    verifyImage(img, 'after an exact-start allocation');
    expect(debugfsExtents(img, '/empty').leaves.filter((e) => e.logical >= 2000 && e.logical < 3000).map((e) => [e.logical, e.physical, e.length])).toEqual([[2000, x, 10]]);
    // Only 3 blocks free at the start: FIXED_START gives those 3 there and the rest elsewhere;
    // with FIXED_LEN|CONTIGUOUS it is ENOSPC.
    const runs2 = freeRuns(dumpe2fsGroups(img));
    const short = runs2.find(([a, e]) => e - a >= 10 && e < runs2[runs2.length - 1]![1])!;
    const y = short[1] - 2; // 3 free blocks y..y+2, then used
    await withFs(img, async (f) => {
      const sha = sha256File(img);
      await expectCode(allocate(f, '/empty', { offset: B(4000), len: B(8), goal: B(y), flags: ALLOC_FIXED_START | ALLOC_FIXED_LEN | ALLOC_CONTIGUOUS }), 'ENOSPC');
      expect(sha256File(img)).toBe(sha);
      expect(await allocate(f, '/empty', { offset: B(4000), len: B(8), goal: B(y), flags: ALLOC_FIXED_START })).toBe(B(8));
    });
    verifyImage(img, 'after a short exact-start allocation');
    const ex = debugfsExtents(img, '/empty').leaves.filter((e) => e.logical >= 4000 && e.logical < 5000);
    expect(ex[0]).toMatchObject({ logical: 4000, physical: y, length: 3 });
    expect(ex.reduce((a, e) => a + e.length, 0)).toBe(8);
  });

  it('inode allocation in an INODE_UNINIT group (linked with debugfs ln, then e2fsck)', async () => {
    const before = dumpe2fsGroups(img);
    const g = before.find((x) => x.flags.includes('INODE_UNINIT')) ?? before[before.length - 1]!;
    let ino = 0;
    let ipg = 0;
    await withFs(img, async (f) => {
      ipg = f.sb.s_inodes_per_group;
      const template = await f.readInode((await f.resolve('/empty')).ino);
      ino = await f.transact(async (tx) => {
        const n = await allocateInode(tx, { goalGroup: g.group });
        // a regular file like /empty, but with no blocks: copy the inode, give it the new number
        const inode = { ...template, ino: n, raw: template.raw.slice(), base: { ...template.base } };
        const root = new Uint8Array(60);
        root.set([0x0a, 0xf3, 0, 0, 4, 0, 0, 0]);
        inode.base.i_block = root;
        inode.base.i_size_lo = 0;
        inode.base.i_size_high = 0;
        inode.base.i_blocks_lo = 0;
        inode.size = 0;
        await tx.writeInode(inode);
        return n;
      });
    });
    expect(Math.floor((ino - 1) / ipg)).toBe(g.group);
    debugfs(img, [`ln <${ino}> /newfile`], { write: true });
    const after = verifyImage(img, 'after allocating an inode').groups[g.group]!;
    expect(after.flags).not.toContain('INODE_UNINIT');
    expect(after.freeInodes).toBe(g.freeInodes - 1);
    const index = (ino - 1) % ipg;
    if (g.unusedInodes !== null) expect(after.unusedInodes).toBe(Math.min(g.unusedInodes, ipg - index - 1));
    if (g.flags.includes('INODE_UNINIT')) expect(index).toBe(0);
  });

  it('ENOSPC leaves the image byte-identical (allocate and pwrite on a full filesystem)', async () => {
    await withFs(img, async (f) => {
      const free = f.sb.freeBlocksCount;
      let sha = sha256File(img);
      await expectCode(allocate(f, '/empty', { offset: B(100_000), len: B(free + 1), flags: ALLOC_FIXED_LEN }), 'ENOSPC');
      expect(sha256File(img)).toBe(sha);
      // Fill the filesystem (leaving room for the extent-tree blocks), then block by block.
      await allocate(f, '/empty', { offset: B(100_000), len: B(free - 16) });
      for (let i = 0; ; i++) {
        try {
          await allocate(f, '/empty', { offset: B(200_000 + 2 * i), len: B(1) });
        } catch (e) {
          expect((e as { code?: string }).code).toBe('ENOSPC');
          break;
        }
      }
      expect(f.sb.freeBlocksCount).toBeLessThan(4);
      sha = sha256File(img);
      await expectCode(allocate(f, '/empty', { offset: B(300_000), len: B(8) }), 'ENOSPC');
      expect(sha256File(img)).toBe(sha);
      // pwrite over a written block of /a plus a hole past its end: ENOSPC, and the written block untouched.
      const h = await openFile(f, '/a');
      await expectCode(h.pwrite(new Uint8Array(B(8)).fill(0x5a), 4000), 'ENOSPC');
      expect(sha256File(img)).toBe(sha);
      // Release the space again.
      await (await openFile(f, '/empty')).truncate(B(8000));
    });
    verifyImage(img, 'after filling and releasing the filesystem');
  });
});
