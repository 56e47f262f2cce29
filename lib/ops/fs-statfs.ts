/**
 * statfs(2) of an ext2/3/4 filesystem as Linux's ext4_statfs reports it, in node:fs's StatFs shape:
 *
 * - blocks: the block count less the overhead (ext4_calculate_overhead: the blocks before
 *   s_first_data_block, per group its superblock copy, descriptor blocks, two bitmaps and inode
 *   table — count_overhead, reserved GDT blocks not included — and the internal journal's blocks),
 *   or less s_overhead_clusters when mke2fs recorded it;
 * - bfree: the groups' free clusters in blocks; bavail: bfree less the reserved blocks
 *   (s_r_blocks_count) and, with extents, the kernel's own reserve (ext4_calculate_resv_clusters:
 *   2 % of the clusters, at most 4,096), never below 0;
 * - files / ffree: the inode count and the groups' free inodes; type EXT4_SUPER_MAGIC (0xEF53).
 */
import type { Filesystem } from '../ext4/filesystem.js';
import { INCOMPAT } from '../ext4/superblock.js';
import { groupSuperAndDescriptors } from '../ext4/fixed-metadata.js';
import { inodeTableBlocks } from '../ext4/geometry.js';

export const EXT4_SUPER_MAGIC = 0xef53;

/** node:fs's StatFs (numbers, or bigints for `{bigint: true}`). */
export class StatFs<T extends number | bigint = number> {
  constructor(
    readonly type: T,
    readonly bsize: T,
    readonly blocks: T,
    readonly bfree: T,
    readonly bavail: T,
    readonly files: T,
    readonly ffree: T,
  ) {}
}

export interface StatFsCounts {
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
}

/** ext4_calculate_overhead, in blocks. */
async function overheadBlocks(fs: Filesystem): Promise<number> {
  const sb = fs.sb;
  const ratio = 2 ** (sb.s_log_cluster_size - sb.s_log_block_size);
  if (sb.s_overhead_clusters) return sb.s_overhead_clusters * ratio;
  let n = sb.s_first_data_block;
  const itb = inodeTableBlocks(sb);
  for (let g = 0; g < sb.groupCount; g++) {
    for (const e of groupSuperAndDescriptors(sb, g)) if (e.kind !== 'reserved_gdt') n += e.length;
    n += itb + 2;
  }
  if (sb.s_journal_inum) n += Math.floor((await fs.readInode(sb.s_journal_inum)).size / fs.blockSize);
  return n;
}

/** The figures statfs(2) gives for `fs`, read under the filesystem's exclusive lock. */
export async function statfsCounts(fs: Filesystem): Promise<StatFsCounts> {
  return fs.exclusive(async () => {
    const sb = fs.sb;
    const ratio = 2 ** (sb.s_log_cluster_size - sb.s_log_block_size);
    await fs.loadGroups();
    let freeClusters = 0, freeInodes = 0;
    for (let g = 0; g < sb.groupCount; g++) {
      const d = await fs.group(g);
      freeClusters += d.freeBlocks;
      freeInodes += d.freeInodes;
    }
    const bfree = freeClusters * ratio;
    const resv = sb.s_feature_incompat & INCOMPAT.EXTENTS ? Math.min(Math.floor(sb.blocksCount / ratio / 50), 4096) * ratio : 0;
    const reserved = sb.rBlocksCount + resv;
    return {
      bsize: fs.blockSize,
      blocks: sb.blocksCount - (await overheadBlocks(fs)),
      bfree,
      bavail: bfree < reserved ? 0 : bfree - reserved,
      files: sb.s_inodes_count,
      ffree: freeInodes,
    };
  });
}

export function toStatFs(c: StatFsCounts, bigint: true): StatFs<bigint>;
export function toStatFs(c: StatFsCounts, bigint?: false): StatFs<number>;
export function toStatFs(c: StatFsCounts, bigint?: boolean): StatFs<number> | StatFs<bigint>;
export function toStatFs(c: StatFsCounts, bigint = false): StatFs<number> | StatFs<bigint> {
  if (bigint) return new StatFs<bigint>(BigInt(EXT4_SUPER_MAGIC), BigInt(c.bsize), BigInt(c.blocks), BigInt(c.bfree), BigInt(c.bavail), BigInt(c.files), BigInt(c.ffree));
  return new StatFs<number>(EXT4_SUPER_MAGIC, c.bsize, c.blocks, c.bfree, c.bavail, c.files, c.ffree);
}
