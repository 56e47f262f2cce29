/**
 * lib/ext4/fixed-metadata.ts against its oracles.
 *
 * 1. dumpe2fs: for a matrix of mkfs layouts (1 KiB / 4 KiB blocks, flex_bg or
 *    not, meta_bg with 64- and 32-byte descriptors, sparse_super2,
 *    ^resize_inode with ^sparse_super, MMP), every group's superblock copy,
 *    descriptor blocks, reserved GDT blocks, bitmaps and inode table are
 *    exactly what dumpe2fs lists (and the MMP block its header names); none
 *    of them is in dumpe2fs's free ranges; the descriptors pass
 *    checkGroupTables and every group's bitmap passes the allocator's
 *    validation (no false alarm on a valid filesystem).
 * 2. Seeded synthetic geometries (no child processes): the listing agrees
 *    block for block with the BLOCK_UNINIT bitmap bitmap.ts computes, a
 *    descriptor pointer moved onto fixed metadata is always refused, and
 *    FixedIndex's range queries equal a brute-force answer.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { checkAllocatable } from '../../lib/ext4/alloc.js';
import { Ext4Error } from '../../lib/errors.js';
import {
  checkGroupTables, firstUnmarkedFixed, fixedMetadataExtents, FixedIndex, groupSuperAndDescriptors, type FixedGeometry, type GroupTables,
} from '../../lib/ext4/fixed-metadata.js';
import { computeUninitBlockBitmap, countFree } from '../../lib/ext4/bitmap.js';
import { blocksInGroup, descBlockCount, groupFirstBlock, inodeTableBlocks } from '../../lib/ext4/geometry.js';
import { COMPAT, INCOMPAT, RO_COMPAT } from '../../lib/ext4/superblock.js';
import type { GroupDesc } from '../../lib/ext4/group-desc.js';
import { dumpe2fsGroups, dumpe2fsHeader, haveTools, mkfs, type GroupInfo } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';
import { mulberry32 } from '../../lib/io/prng.js';

const HAVE_E2FSPROGS = haveTools(['mkfs.ext4', 'dumpe2fs']); // under CI a missing tool fails (oracleGate)
const MiB = 1024 * 1024;

interface Layout {
  label: string;
  size: number;
  opts: string[];
}

const MATRIX: Layout[] = [
  { label: '4k flex_bg resize_inode', size: 32 * MiB, opts: ['-b', '4096', '-g', '1024'] },
  { label: '1k flex_bg resize_inode', size: 24 * MiB, opts: ['-b', '1024', '-g', '1024'] },
  { label: '1k ^flex_bg', size: 24 * MiB, opts: ['-b', '1024', '-g', '1024', '-O', '^flex_bg'] },
  { label: '1k meta_bg (64-byte descriptors, 4 meta groups)', size: 16 * MiB, opts: ['-b', '1024', '-g', '256', '-N', '1024', '-O', 'meta_bg,^resize_inode'] },
  { label: '1k meta_bg ^64bit ^flex_bg (32-byte descriptors)', size: 16 * MiB, opts: ['-b', '1024', '-g', '256', '-N', '1024', '-O', 'meta_bg,^resize_inode,^64bit,^flex_bg'] },
  { label: '4k sparse_super2', size: 16 * MiB, opts: ['-b', '4096', '-g', '512', '-O', 'sparse_super2', '-E', 'num_backup_sb=2'] },
  { label: '4k ^resize_inode ^sparse_super', size: 16 * MiB, opts: ['-b', '4096', '-g', '512', '-O', '^resize_inode,^sparse_super'] },
  { label: '4k mmp', size: 16 * MiB, opts: ['-b', '4096', '-g', '1024', '-O', 'mmp'] },
];

const key = (e: { kind: string; start: number; length: number; group: number }) => `${e.kind} ${e.start}+${e.length} (group ${e.group})`;

/** What dumpe2fs says the fixed metadata is, in the module's terms. */
function fromDumpe2fs(groups: GroupInfo[], header: Record<string, string>, itb: number): string[] {
  const out: { kind: string; start: number; length: number; group: number }[] = [];
  const span = (kind: string, [s, e]: [number, number], group: number) => out.push({ kind, start: s, length: e - s + 1, group });
  for (const g of groups) {
    if (g.superblock) span('superblock', [g.superblock.block, g.superblock.block], g.group);
    if (g.groupDescriptors) span('gdt', g.groupDescriptors, g.group);
    if (g.reservedGdt) span('reserved_gdt', g.reservedGdt, g.group);
    span('block_bitmap', [g.blockBitmap, g.blockBitmap], g.group);
    span('inode_bitmap', [g.inodeBitmap, g.inodeBitmap], g.group);
    expect(g.inodeTable[1] - g.inodeTable[0] + 1).toBe(itb);
    span('inode_table', g.inodeTable, g.group);
  }
  const mmp = header['MMP block number'];
  if (mmp !== undefined) {
    const b = Number(mmp);
    const g = groups.find((x) => b >= x.firstBlock && b <= x.lastBlock)!;
    out.push({ kind: 'mmp', start: b, length: 1, group: g.group });
  }
  return out.map(key).sort();
}

describe.skipIf(!HAVE_E2FSPROGS).each(MATRIX)('fixed metadata of $label equals dumpe2fs', (layout: Layout) => {
  let img: string;
  beforeAll(() => {
    img = tmpPath('fixed.img');
    mkfs('ext4', img, layout.size, layout.opts);
  });

  it('every group, every kind; validation passes; nothing fixed is free', async () => {
    const groups = dumpe2fsGroups(img);
    const header = dumpe2fsHeader(img);
    const fs = await Filesystem.open(img);
    try {
      const sb = fs.sb;
      expect(groups.length).toBe(sb.groupCount);
      const tables: GroupTables[] = [];
      for (let g = 0; g < sb.groupCount; g++) tables.push(await fs.group(g));
      const list = fixedMetadataExtents(sb, tables);
      // 1 KiB blocks: block 0 (boot block) comes first and is outside every bitmap.
      const boot = list.filter((e) => e.kind === 'boot');
      expect(boot).toEqual(sb.s_first_data_block ? [{ start: 0, length: 1, kind: 'boot', group: 0 }] : []);
      expect(list.filter((e) => e.kind !== 'boot').map(key).sort()).toEqual(fromDumpe2fs(groups, header, inodeTableBlocks(sb)));
      if (layout.opts.join(' ').includes('meta_bg')) expect(list.some((e) => e.kind === 'gdt' && e.group > 1)).toBe(true); // meta_bg copies seen
      expect(() => checkGroupTables(sb, tables)).not.toThrow();
      const index = new FixedIndex(list);
      for (let g = 0; g < sb.groupCount; g++) expect(firstUnmarkedFixed(sb, index, g, await fs.blockBitmap(g)), `group ${g}`).toBeNull();
      await checkAllocatable(fs); // the allocator's whole validation: no false alarm on a valid layout
      for (const g of groups)
        for (const [s, e] of g.freeBlockRanges) expect(index.within(s, e - s + 1).map(key), `free ${s}-${e}`).toEqual([]);
    } finally {
      await fs.close();
    }
  });
});

// ------------------------------------------------------------------------------- synthetic geometries

/** A random valid layout: tables in their own group right after its superblock/descriptor area (as mkfs ^flex_bg does), or packed into group 0 (flex_bg). */
function randomLayout(r: () => number): { geo: FixedGeometry; tables: GroupTables[] } | null {
  const bs = r() < 0.5 ? 1024 : 4096;
  const fdb = bs === 1024 ? 1 : 0;
  const bpg = 8 * (64 + Math.floor(r() * (bs - 64))); // ≤ 8 × block size bits
  const groupCount = 1 + Math.floor(r() * 80);
  const lastLen = 1 + Math.floor(r() * bpg);
  const blocksCount = fdb + (groupCount - 1) * bpg + lastLen;
  const descSize = r() < 0.5 ? 32 : 64;
  const metaBg = r() < 0.3;
  const flex = r() < 0.4;
  const sparse2 = r() < 0.2;
  let compat = 0, incompat = 0, ro = 0;
  if (metaBg) incompat |= INCOMPAT.META_BG;
  if (flex) incompat |= INCOMPAT.FLEX_BG;
  if (sparse2) compat |= COMPAT.SPARSE_SUPER2;
  if (r() < 0.8) ro |= RO_COMPAT.SPARSE_SUPER;
  if (descSize === 64) incompat |= INCOMPAT['64BIT'];
  const geo: FixedGeometry = {
    blockSize: bs, blocksCount, groupCount, descSize, s_first_data_block: fdb, s_blocks_per_group: bpg,
    s_inodes_per_group: 8 * (1 + Math.floor(r() * 16)), s_inode_size: r() < 0.5 ? 128 : 256,
    s_feature_compat: compat, s_feature_incompat: incompat, s_feature_ro_compat: ro,
    s_backup_bgs0: sparse2 ? Math.floor(r() * groupCount) : 0, s_backup_bgs1: sparse2 ? Math.floor(r() * groupCount) : 0,
    s_first_meta_bg: metaBg ? Math.floor(r() * (descBlockCount({ blockSize: bs, descSize, groupCount } as FixedGeometry) + 1)) : 0,
    s_reserved_gdt_blocks: metaBg ? 0 : Math.floor(r() * 40), s_log_groups_per_flex: flex ? 4 : 0,
    s_log_block_size: bs === 1024 ? 0 : 2, s_log_cluster_size: bs === 1024 ? 0 : 2, s_mmp_block: 0,
  };
  const itb = inodeTableBlocks(geo);
  const tables: GroupTables[] = [];
  // Next block after the superblock/descriptor area of group g.
  const afterSuper = (g: number) => Math.max(groupFirstBlock(geo, g), ...groupSuperAndDescriptors(geo, g).map((e) => e.start + e.length));
  if (flex) {
    const next = afterSuper(0);
    for (let g = 0; g < groupCount; g++) tables.push({ group: g, blockBitmap: next + g, inodeBitmap: next + groupCount + g, inodeTable: next + 2 * groupCount + g * itb });
    // Packed into group 0 (then no other group's superblock area can be hit).
    if (next + 2 * groupCount + groupCount * itb > groupFirstBlock(geo, 0) + blocksInGroup(geo, 0)) return null;
  } else {
    for (let g = 0; g < groupCount; g++) {
      const s = afterSuper(g);
      if (s + 2 + itb > groupFirstBlock(geo, g) + blocksInGroup(geo, g)) return null;
      tables.push({ group: g, blockBitmap: s, inodeBitmap: s + 1, inodeTable: s + 2 });
    }
  }
  return { geo, tables };
}

describe('fixed metadata on seeded synthetic geometries', () => {
  it('agrees with the BLOCK_UNINIT bitmap, refuses moved pointers, answers range queries exactly', () => {
    const r = mulberry32(0xf17ed);
    let layouts = 0;
    for (let i = 0; i < 300 && layouts < 80; i++) {
      const l = randomLayout(r);
      if (!l) continue;
      layouts++;
      const { geo, tables } = l;
      const what = JSON.stringify({ ...geo, i });
      expect(() => checkGroupTables(geo, tables), what).not.toThrow();
      const list = fixedMetadataExtents(geo, tables);
      expect(list.filter((e) => e.start < 0 || e.start + e.length > geo.blocksCount), what).toEqual([]);
      const index = new FixedIndex(list);
      // The computed BLOCK_UNINIT bitmap marks exactly the fixed blocks of the group, no more, no
      // fewer — in every group that holds no other group's tables (mkfs clears BLOCK_UNINIT of
      // those): all groups without flex_bg, all but group 0 with it.
      // (The first 12 groups — backups at 1, 3, 5, 7, 9 and meta_bg copies at 0, 1, 15 — and the short last one.)
      for (let g = 0; g < geo.groupCount; g = g < 11 ? g + 1 : Math.max(g + 1, geo.groupCount - 1)) {
        if (geo.s_feature_incompat & INCOMPAT.FLEX_BG && g === 0) continue;
        const bm = computeUninitBlockBitmap(geo, tables[g] as GroupDesc);
        expect(firstUnmarkedFixed(geo, index, g, bm), `${what} group ${g}`).toBeNull();
        const first = groupFirstBlock(geo, g), n = blocksInGroup(geo, g);
        const used = n - countFree(bm, n);
        const fixedHere = n - index.subtract(first, n).reduce((a, x) => a + x.length, 0);
        expect(used, `${what} group ${g}`).toBe(fixedHere);
      }
      // Move one pointer onto a random fixed block that is not its own: always refused, naming a group.
      const g = Math.floor(r() * geo.groupCount);
      const field = (['blockBitmap', 'inodeBitmap', 'inodeTable'] as const)[Math.floor(r() * 3)]!;
      const others = list.filter((e) => e.kind !== 'boot' && !(e.group === g && e.kind === ({ blockBitmap: 'block_bitmap', inodeBitmap: 'inode_bitmap', inodeTable: 'inode_table' } as const)[field]));
      const target = others[Math.floor(r() * others.length)]!;
      const moved = tables.map((t) => (t.group === g ? { ...t, [field]: target.start + Math.floor(r() * target.length) } : t));
      let err: unknown = null;
      try {
        checkGroupTables(geo, moved);
      } catch (e) {
        err = e;
      }
      expect(err, `${what}: ${field} of group ${g} onto ${target.kind} ${target.start}`).toBeInstanceOf(Ext4Error);
      expect((err as Ext4Error).code).toBe('EFSCORRUPTED');
      expect((err as Ext4Error).location).toEqual({ kind: 'group', group: expect.any(Number) });
      // Range queries against brute force.
      const ownedMap = new Uint8Array(geo.blocksCount);
      for (const e of list) ownedMap.fill(1, e.start, e.start + e.length);
      const owned = (b: number) => b < geo.blocksCount && ownedMap[b] === 1;
      for (let q = 0; q < 10; q++) {
        const s = Math.floor(r() * geo.blocksCount), len = 1 + Math.floor(r() * 3000);
        const pieces = index.subtract(s, len);
        const brute: { start: number; length: number }[] = [];
        for (let b = s; b < s + len; b++) {
          if (owned(b)) continue;
          const last = brute[brute.length - 1];
          if (last && last.start + last.length === b) last.length++;
          else brute.push({ start: b, length: 1 });
        }
        expect(pieces, `${what} subtract ${s}+${len}`).toEqual(brute);
        expect(index.within(s, len).map(key).sort(), `${what} within ${s}+${len}`).toEqual(list.filter((e) => e.start < s + len && e.start + e.length > s).map(key).sort());
      }
    }
    expect(layouts).toBe(80);
  });
});

