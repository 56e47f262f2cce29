/**
 * `info`: the superblock summary as plain JSON (what `ext4kit info` and `dumpe2fs -h` print,
 * abridged). Computed from the superblock alone, so a command can print it without building a
 * Filesystem (ext4/superblock-probe.ts); inspect.ts's `info(fs)` is the same for an open fs.
 */
import { decodeName } from '../ext4/bytes.js';
import { featureNames } from '../ext4/features.js';
import { clusterRatio } from '../ext4/geometry.js';
import { RO_COMPAT, STATE, type Superblock } from '../ext4/superblock.js';

export interface FsInfo {
  blockSize: number;
  blocksCount: number;
  /** Free blocks as recorded in the superblock (what dumpe2fs -h prints). */
  freeBlocks: number;
  /** Blocks reserved for root (s_r_blocks_count). */
  reservedBlocks: number;
  /** First data block (1 for 1 KiB blocks, else 0). */
  firstBlock: number;
  blocksPerGroup: number;
  /** bigalloc only (dumpe2fs's "Cluster size"): bytes per cluster, the allocation unit. */
  clusterSize?: number;
  /** bigalloc only (dumpe2fs's "Clusters per group"): bits of each block bitmap. */
  clustersPerGroup?: number;
  inodesPerGroup: number;
  /** Number of block groups. */
  groups: number;
  inodeSize: number;
  inodesCount: number;
  /** Free inodes as recorded in the superblock. */
  freeInodes: number;
  /** Feature names as dumpe2fs prints them, in its order (compat, incompat, ro_compat; by bit). */
  features: string[];
  /** Filesystem UUID, lowercase 8-4-4-4-12 (all zeros if none is set). */
  uuid: string;
  /** Volume label (s_volume_name up to its first NUL), '' if none. */
  label: string;
  /** dumpe2fs's "Filesystem state": 'clean' | 'not clean', followed by ' with errors' if ERROR_FS is set. */
  state: string;
}

export function formatUuid(b: Uint8Array): string {
  const h = Array.from(b.subarray(0, 16), (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** e2p print_fs_state: " clean" / " not clean", then " with errors". */
export function fsStateName(state: number): string {
  return (state & STATE.VALID_FS ? 'clean' : 'not clean') + (state & STATE.ERROR_FS ? ' with errors' : '');
}

export function fsInfo(sb: Readonly<Superblock>): FsInfo {
  const nul = sb.s_volume_name.indexOf(0);
  return {
    blockSize: sb.blockSize,
    blocksCount: sb.blocksCount,
    freeBlocks: sb.freeBlocksCount,
    reservedBlocks: sb.rBlocksCount,
    firstBlock: sb.s_first_data_block,
    blocksPerGroup: sb.s_blocks_per_group,
    ...(sb.s_feature_ro_compat & RO_COMPAT.BIGALLOC ? { clusterSize: sb.blockSize * clusterRatio(sb), clustersPerGroup: sb.s_clusters_per_group } : {}),
    inodesPerGroup: sb.s_inodes_per_group,
    groups: sb.groupCount,
    inodeSize: sb.s_inode_size,
    inodesCount: sb.s_inodes_count,
    freeInodes: sb.s_free_inodes_count,
    features: featureNames(sb),
    uuid: formatUuid(sb.s_uuid),
    label: decodeName(sb.s_volume_name.subarray(0, nul < 0 ? sb.s_volume_name.length : nul)),
    state: fsStateName(sb.s_state),
  };
}
