/**
 * Fixed metadata: the blocks that belong to the filesystem itself and never
 * to a file — superblock copies, group descriptor blocks (classic GDT or
 * meta_bg), reserved GDT blocks, each group's block bitmap, inode bitmap and
 * inode table (under flex_bg possibly in another group: located by
 * descriptor), and the MMP block.
 *
 * Pure functions over the geometry and the descriptors' table pointers. They
 * mirror e2fsprogs (ext2fs_reserve_super_and_bgd, ext2fs_check_desc, e2fsck
 * pass 1's MMP block) and the kernel (ext4_check_descriptors,
 * ext4_valid_block_bitmap, the block_validity system zone), and serve the
 * allocator (never hand these out; validate a bitmap before trusting it) and
 * the space reports.
 */
import { Ext4Error, type Location } from '../errors.js';
import { findBit } from './bit-runs.js';
import {
  blocksInGroup, clusterRatio, descBlockCount, groupFirstBlock, groupFixedMetadata, groupOfBlock, inodeTableBlocks, type Geometry,
} from './geometry.js';
import { INCOMPAT, type Superblock } from './superblock.js';

/**
 * What a fixed run is. 'journal' is never produced here (the journal is an
 * inode's blocks): the allocator adds it to its guard, as the kernel's
 * block_validity system zone protects the journal inode's blocks.
 */
export type FixedKind = 'boot' | 'superblock' | 'gdt' | 'reserved_gdt' | 'block_bitmap' | 'inode_bitmap' | 'inode_table' | 'mmp' | 'journal';

/** A run of fixed metadata. `group` is the group it belongs to (whose copy, or whose table), not where it lies. */
export interface FixedExtent {
  start: number;
  length: number;
  kind: FixedKind;
  group: number;
}

export type FixedGeometry = Geometry & Pick<Superblock, 's_mmp_block'>;

/** The table pointers of a group descriptor (a GroupDesc satisfies it). */
export interface GroupTables {
  group: number;
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
}

/**
 * The superblock copy, descriptor blocks and reserved GDT blocks inside
 * group g (what ext2fs_reserve_super_and_bgd marks): classic GDT blocks plus
 * reserved GDT after each superblock copy; with meta_bg, the old-style GDT
 * (s_first_meta_bg blocks) and the meta_bg descriptor block of groups 0, 1
 * and the last of each meta group.
 */
export function groupSuperAndDescriptors(geo: Geometry, g: number): FixedExtent[] {
  const f = groupFixedMetadata(geo, g);
  const out: FixedExtent[] = [];
  if (f.superBlock >= 0) out.push({ start: f.superBlock, length: 1, kind: 'superblock', group: g });
  if (f.oldDescStart >= 0 && f.oldDescCount > 0) {
    // With meta_bg every old-style block is a descriptor block (no reserved GDT: resize_inode excludes meta_bg).
    const gdt = geo.s_feature_incompat & INCOMPAT.META_BG ? f.oldDescCount : Math.min(f.oldDescCount, descBlockCount(geo));
    out.push({ start: f.oldDescStart, length: gdt, kind: 'gdt', group: g });
    if (f.oldDescCount > gdt) out.push({ start: f.oldDescStart + gdt, length: f.oldDescCount - gdt, kind: 'reserved_gdt', group: g });
  }
  if (f.newDescBlock >= 0) out.push({ start: f.newDescBlock, length: 1, kind: 'gdt', group: g });
  return out;
}

/** A group's own bitmaps and inode table, wherever its descriptor puts them. */
export function groupTables(geo: Geometry, t: GroupTables): FixedExtent[] {
  return [
    { start: t.blockBitmap, length: 1, kind: 'block_bitmap', group: t.group },
    { start: t.inodeBitmap, length: 1, kind: 'inode_bitmap', group: t.group },
    { start: t.inodeTable, length: inodeTableBlocks(geo), kind: 'inode_table', group: t.group },
  ];
}

/** The MMP block (e2fsck pass 1 reserves it when it lies inside the filesystem), or null. */
export function mmpExtent(geo: FixedGeometry): FixedExtent | null {
  if (!(geo.s_feature_incompat & INCOMPAT.MMP)) return null;
  const b = geo.s_mmp_block;
  if (b <= geo.s_first_data_block || b >= geo.blocksCount) return null;
  return { start: b, length: 1, kind: 'mmp', group: groupOfBlock(geo, b) };
}

/**
 * Every fixed metadata run of the filesystem, ascending by start (ties:
 * shorter first). `tables[g]` is group g's descriptor. Runs are clipped to
 * the filesystem; on a damaged filesystem they may overlap (checkGroupTables
 * says so). Blocks before s_first_data_block (the boot block of a 1 KiB
 * filesystem) are one 'boot' run.
 */
export function fixedMetadataExtents(geo: FixedGeometry, tables: readonly GroupTables[]): FixedExtent[] {
  const out: FixedExtent[] = [];
  const add = (e: FixedExtent) => {
    const end = Math.min(e.start + e.length, geo.blocksCount);
    if (e.start >= 0 && end > e.start) out.push({ ...e, length: end - e.start });
  };
  // 1 KiB blocks: block 0 in front of the primary superblock (before group 0, or — bigalloc, first
  // data block 0 — inside it, which ext2fs_reserve_super_and_bgd then marks).
  const primary = groupFixedMetadata(geo, 0).superBlock;
  if (primary > 0) add({ start: 0, length: primary, kind: 'boot', group: 0 });
  for (let g = 0; g < geo.groupCount; g++) {
    for (const e of groupSuperAndDescriptors(geo, g)) add(e);
    const t = tables[g];
    if (t) for (const e of groupTables(geo, t)) add(e);
  }
  const mmp = mmpExtent(geo);
  if (mmp) add(mmp);
  return sortExtents(out);
}

function sortExtents(list: FixedExtent[]): FixedExtent[] {
  return list.sort((a, b) => a.start - b.start || a.length - b.length || a.group - b.group);
}

function describe(e: FixedExtent): string {
  const what = { boot: 'boot block', superblock: 'superblock', gdt: 'group descriptor block', reserved_gdt: 'reserved GDT block', block_bitmap: 'block bitmap', inode_bitmap: 'inode bitmap', inode_table: 'inode table', mmp: 'MMP block', journal: 'journal block' }[e.kind];
  const run = e.length > 1 ? `${e.start}-${e.start + e.length - 1}` : `${e.start}`;
  return e.kind === 'boot' || e.kind === 'mmp' || e.kind === 'journal' ? `${what} ${run}` : `group ${e.group}'s ${what} ${run}`;
}

/**
 * ext2fs_check_desc / ext4_check_descriptors: every group's block bitmap,
 * inode bitmap and inode table lie inside the filesystem (inside the group
 * itself without flex_bg), and on no superblock copy, descriptor or reserved
 * GDT block, MMP block or another table. Otherwise EFSCORRUPTED naming the
 * group and the pointer — such a descriptor would make the allocator flip
 * bits in, or hand out, somebody else's block.
 */
export function checkGroupTables(geo: FixedGeometry, tables: readonly GroupTables[]): void {
  const flex = (geo.s_feature_incompat & INCOMPAT.FLEX_BG) !== 0;
  const itb = inodeTableBlocks(geo);
  const all: FixedExtent[] = [];
  for (let g = 0; g < geo.groupCount; g++) all.push(...groupSuperAndDescriptors(geo, g));
  const mmp = mmpExtent(geo);
  if (mmp) all.push(mmp);
  const first = geo.s_first_data_block;
  for (const t of tables) {
    const lo = flex ? first : groupFirstBlock(geo, t.group);
    const hi = flex ? geo.blocksCount : groupFirstBlock(geo, t.group) + blocksInGroup(geo, t.group);
    const where = { structure: 'group descriptor', location: { kind: 'group', group: t.group } satisfies Location };
    const within = (b: number, n: number) => Number.isSafeInteger(b) && b >= lo && b + n <= hi && b > 0;
    const scope = flex ? 'the filesystem' : 'its group';
    if (!within(t.blockBitmap, 1)) throw new Ext4Error('EFSCORRUPTED', `block bitmap pointer ${t.blockBitmap} is outside ${scope}`, where);
    if (!within(t.inodeBitmap, 1)) throw new Ext4Error('EFSCORRUPTED', `inode bitmap pointer ${t.inodeBitmap} is outside ${scope}`, where);
    if (!within(t.inodeTable, itb)) throw new Ext4Error('EFSCORRUPTED', `inode table ${t.inodeTable}+${itb} is outside ${scope}`, where);
    all.push(...groupTables(geo, t));
  }
  sortExtents(all);
  // One sweep: an extent overlapping the furthest-reaching earlier one is a conflict.
  let reach: FixedExtent | null = null;
  for (const e of all) {
    if (reach && e.start < reach.start + reach.length) {
      // Blame a table (descriptors are what can be wrong; superblock copies sit where the geometry says).
      const isTable = (x: FixedExtent) => x.kind === 'block_bitmap' || x.kind === 'inode_bitmap' || x.kind === 'inode_table';
      const bad = isTable(e) ? e : reach;
      const other = bad === e ? reach : e;
      throw new Ext4Error('EFSCORRUPTED', `${describe(bad)} overlaps ${describe(other)}`, { structure: 'group descriptor', location: { kind: 'group', group: bad.group } });
    }
    if (!reach || e.start + e.length > reach.start + reach.length) reach = e;
  }
}

/** Index of the first extent of a start-sorted list that may reach block `b` or beyond. */
function firstReaching(list: readonly FixedExtent[], b: number, maxLen: number): number {
  // Extents starting before b - maxLen + 1 cannot reach b.
  let lo = 0, hi = list.length;
  const from = b - maxLen + 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!.start < from) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * A start-sorted list of fixed runs with fast range queries (the allocator's
 * guard). Overlapping runs (a damaged filesystem) are allowed.
 */
export class FixedIndex {
  readonly extents: readonly FixedExtent[];
  private readonly maxLen: number;

  constructor(extents: readonly FixedExtent[]) {
    this.extents = sortExtents(extents.slice());
    this.maxLen = this.extents.reduce((m, e) => Math.max(m, e.length), 1);
  }

  /** The fixed runs intersecting [start, start+length), ascending. */
  within(start: number, length: number): FixedExtent[] {
    const out: FixedExtent[] = [];
    const end = start + length;
    for (let i = firstReaching(this.extents, start, this.maxLen); i < this.extents.length; i++) {
      const e = this.extents[i]!;
      if (e.start >= end) break;
      if (e.start + e.length > start) out.push(e);
    }
    return out;
  }

  /** [start, start+length) minus every fixed run: the pieces, ascending. */
  subtract(start: number, length: number): { start: number; length: number }[] {
    const out: { start: number; length: number }[] = [];
    let s = start;
    const end = start + length;
    for (const e of this.within(start, length)) {
      if (e.start > s) out.push({ start: s, length: e.start - s });
      s = Math.max(s, e.start + e.length);
    }
    if (s < end) out.push({ start: s, length: end - s });
    return out;
  }
}

/**
 * ext4_valid_block_bitmap, strengthened: every fixed block lying inside
 * group g — its superblock copy, descriptor and reserved GDT blocks, its own
 * tables and (flex_bg) other groups' tables placed there — must be marked in
 * use in the group's bitmap `bm`. Returns the first fixed run with a clear
 * bit (and that block), or null when the bitmap is consistent. (The kernel
 * skips the check under flex_bg; knowing every descriptor, we need not.)
 */
export function firstUnmarkedFixed(geo: Geometry, index: FixedIndex, g: number, bm: Uint8Array): { extent: FixedExtent; block: number } | null {
  const first = groupFirstBlock(geo, g);
  const n = blocksInGroup(geo, g);
  const ratio = clusterRatio(geo); // bigalloc: one bit per cluster
  for (const e of index.within(first, n)) {
    const s = Math.max(e.start, first), end = Math.min(e.start + e.length, first + n);
    // The clusters holding [s, end), word-wise; the first block of the first clear one in the run.
    const c = findBit(bm, Math.floor((s - first) / ratio), Math.floor((end - 1 - first) / ratio) + 1, false);
    if (c >= 0) return { extent: e, block: Math.max(s, first + c * ratio) };
  }
  return null;
}

export { describe as describeFixed };
