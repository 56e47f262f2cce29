/**
 * Pure layout math (ext4-format.md §1, §4): groups, backup groups, where
 * descriptor blocks live (classic and meta_bg), which blocks of a group are
 * fixed metadata. Mirrors ext2fs_bg_has_super, ext2fs_descriptor_block_loc2
 * and ext2fs_super_and_bgd_loc2.
 */
import { COMPAT, INCOMPAT, RO_COMPAT, type Superblock } from './superblock.js';

export type Geometry = Pick<
  Superblock,
  | 'blockSize' | 'blocksCount' | 'groupCount' | 'descSize' | 's_first_data_block' | 's_blocks_per_group'
  | 's_inodes_per_group' | 's_inode_size' | 's_feature_compat' | 's_feature_incompat' | 's_feature_ro_compat'
  | 's_backup_bgs0' | 's_backup_bgs1' | 's_first_meta_bg' | 's_reserved_gdt_blocks' | 's_log_groups_per_flex'
  | 's_log_block_size' | 's_log_cluster_size'
>;

export function groupFirstBlock(g: Geometry, group: number): number {
  return g.s_first_data_block + group * g.s_blocks_per_group;
}

/** Number of blocks in a group (the last one may be short). */
export function blocksInGroup(g: Geometry, group: number): number {
  // Both values computed on every call: the last group's arm, met only when an allocation first
  // reaches it, otherwise deoptimised every function this is inlined into (a fresh import: the
  // last group reached after TurboFan compiled them; V8 --trace-deopt).
  const per = g.s_blocks_per_group;
  const last = g.groupCount - 1;
  const tail = g.blocksCount - g.s_first_data_block - last * per;
  return group < last ? per : tail;
}

export function groupOfBlock(g: Geometry, block: number): number {
  return Math.floor((block - g.s_first_data_block) / g.s_blocks_per_group);
}

export function indexInGroup(g: Geometry, block: number): number {
  return (block - g.s_first_data_block) % g.s_blocks_per_group;
}

/**
 * log2 of the blocks per cluster: s_log_cluster_size - s_log_block_size with
 * bigalloc, else 0 (the kernel ignores the field then; parseSuperblock
 * insists it equals the block size, as ext4_handle_clustersize does).
 */
export function clusterBits(g: Geometry): number {
  return g.s_feature_ro_compat & RO_COMPAT.BIGALLOC ? g.s_log_cluster_size - g.s_log_block_size : 0;
}

/** Blocks per cluster (EXT4_C2B(1)): the allocation unit. 1 without bigalloc. */
export function clusterRatio(g: Geometry): number {
  return 2 ** clusterBits(g);
}

/**
 * Bits of group `group`'s block bitmap that mean something: one per cluster
 * (the last group's partial cluster counts, EXT4_NUM_B2C). Bits past it are padding.
 */
export function clustersInGroup(g: Geometry, group: number): number {
  return Math.ceil(blocksInGroup(g, group) / clusterRatio(g));
}

/** The bit of its group's block bitmap that covers `block` (its cluster's index in the group). */
export function bitOfBlock(g: Geometry, block: number): number {
  return Math.floor(indexInGroup(g, block) / clusterRatio(g));
}

/** First block of the cluster holding `block` (groups start on cluster boundaries). */
export function clusterFirstBlock(g: Geometry, block: number): number {
  const r = clusterRatio(g);
  return block - ((block - g.s_first_data_block) % r);
}

/** First block of the cluster that bit `bit` of group `group`'s block bitmap covers. */
export function blockOfBit(g: Geometry, group: number, bit: number): number {
  return groupFirstBlock(g, group) + bit * clusterRatio(g);
}

export function groupOfInode(g: Geometry, ino: number): number {
  return Math.floor((ino - 1) / g.s_inodes_per_group);
}

function isPowerOf(n: number, base: number): boolean {
  let x = base;
  while (x < n) x *= base;
  return x === n;
}

/** Does group `group` carry a superblock (and, outside meta_bg, GDT) copy? */
export function groupHasSuper(g: Geometry, group: number): boolean {
  if (group === 0) return true;
  if (g.s_feature_compat & COMPAT.SPARSE_SUPER2) return group === g.s_backup_bgs0 || group === g.s_backup_bgs1;
  if (group <= 1 || !(g.s_feature_ro_compat & RO_COMPAT.SPARSE_SUPER)) return true;
  if (!(group & 1)) return false;
  return isPowerOf(group, 3) || isPowerOf(group, 5) || isPowerOf(group, 7);
}

export function descPerBlock(g: Geometry): number {
  return g.blockSize / g.descSize;
}

/** Number of GDT blocks (`desc_blocks`). */
export function descBlockCount(g: Geometry): number {
  return Math.ceil(g.groupCount / descPerBlock(g));
}

function hasMetaBg(g: Geometry): boolean {
  return (g.s_feature_incompat & INCOMPAT.META_BG) !== 0;
}

/**
 * The block holding group `group`'s superblock copy, had it one: the group's
 * first block — except group 0 of a 1 KiB filesystem whose first data block
 * is 0 (bigalloc), where block 0 is the boot block and the superblock is block 1.
 */
function superBlockOfGroup(g: Geometry, group: number): number {
  const b = groupFirstBlock(g, group);
  return b === 0 && g.blockSize === 1024 ? 1 : b;
}

/** Physical block of the primary copy of descriptor block `i` (the kernel's descriptor_loc). */
export function descriptorBlockLocation(g: Geometry, i: number): number {
  if (!hasMetaBg(g) || i < g.s_first_meta_bg) return superBlockOfGroup(g, 0) + 1 + i;
  const group = descPerBlock(g) * i;
  return superBlockOfGroup(g, group) + (groupHasSuper(g, group) ? 1 : 0);
}

export interface GroupFixedMetadata {
  /** Superblock copy block, or -1. */
  superBlock: number;
  /** First block and count of the classic GDT (+ reserved GDT) area, if any. */
  oldDescStart: number;
  oldDescCount: number;
  /** meta_bg descriptor block in this group, or -1. */
  newDescBlock: number;
}

/** ext2fs_super_and_bgd_loc2: the superblock/GDT blocks inside group `group`. */
export function groupFixedMetadata(g: Geometry, group: number): GroupFixedMetadata {
  const groupBlock = superBlockOfGroup(g, group);
  const metaBg = hasMetaBg(g);
  const oldDescBlocks = metaBg ? g.s_first_meta_bg : descBlockCount(g) + g.s_reserved_gdt_blocks;
  const hasSuper = groupHasSuper(g, group);
  const out: GroupFixedMetadata = { superBlock: -1, oldDescStart: -1, oldDescCount: 0, newDescBlock: -1 };
  if (hasSuper) out.superBlock = groupBlock;
  const per = descPerBlock(g);
  const mg = Math.floor(group / per);
  if (!metaBg || mg < g.s_first_meta_bg) {
    if (hasSuper && oldDescBlocks > 0) {
      out.oldDescStart = groupBlock + 1;
      out.oldDescCount = Math.min(oldDescBlocks, g.blocksCount - out.oldDescStart);
    }
  } else {
    const r = group % per;
    if (r === 0 || r === 1 || r === per - 1) out.newDescBlock = groupBlock + (hasSuper ? 1 : 0);
  }
  return out;
}

export function inodeTableBlocks(g: Geometry): number {
  return Math.ceil((g.s_inodes_per_group * g.s_inode_size) / g.blockSize);
}

export function flexGroupSize(g: Geometry): number {
  return g.s_feature_incompat & INCOMPAT.FLEX_BG ? 2 ** g.s_log_groups_per_flex : 1;
}

/** The backup superblock locations (blocks), as mkfs/dumpe2fs list them. */
export function backupGroups(g: Geometry): number[] {
  const out: number[] = [];
  for (let group = 1; group < g.groupCount; group++) if (groupHasSuper(g, group)) out.push(group);
  return out;
}
