/**
 * The superblock as users see it (`fs.superblock`): a frozen snapshot in plain units, instead of
 * the raw `s_*` fields the format layer works with.
 */
import { STATE, type Superblock } from './superblock.js';
import { featureNames } from './features.js';
import { decodeName } from './bytes.js';

export interface SuperblockSummary {
  readonly blockSizeBytes: number;
  readonly blocksCount: number;
  readonly freeBlocks: number;
  readonly reservedBlocks: number;
  readonly inodesCount: number;
  readonly freeInodes: number;
  readonly inodeSizeBytes: number;
  readonly groupCount: number;
  readonly blocksPerGroup: number;
  readonly inodesPerGroup: number;
  readonly firstDataBlock: number;
  /** Feature names as mke2fs/dumpe2fs spell them (has_journal, extent, metadata_csum, …). */
  readonly features: readonly string[];
  /** Lower-case hex with dashes, as blkid prints it. */
  readonly uuid: string;
  /** The volume label (s_volume_name up to its first NUL). */
  readonly label: string;
  /** clean: VALID_FS set and ERROR_FS clear; errors: ERROR_FS set; else not-clean. */
  readonly state: 'clean' | 'not-clean' | 'errors';
  /** The journal needs recovery (needs_recovery is set). */
  readonly needsRecovery: boolean;
}

function uuidString(b: Uint8Array): string {
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function cString(b: Uint8Array): string {
  const end = b.indexOf(0);
  return decodeName(end < 0 ? b : b.subarray(0, end));
}

export function summariseSuperblock(sb: Superblock): SuperblockSummary {
  const names = featureNames(sb);
  return Object.freeze({
    blockSizeBytes: sb.blockSize,
    blocksCount: sb.blocksCount,
    freeBlocks: sb.freeBlocksCount,
    reservedBlocks: sb.rBlocksCount,
    inodesCount: sb.s_inodes_count,
    freeInodes: sb.s_free_inodes_count,
    inodeSizeBytes: sb.s_inode_size,
    groupCount: sb.groupCount,
    blocksPerGroup: sb.s_blocks_per_group,
    inodesPerGroup: sb.s_inodes_per_group,
    firstDataBlock: sb.s_first_data_block,
    features: Object.freeze(names),
    uuid: uuidString(sb.s_uuid),
    label: cString(sb.s_volume_name),
    state: sb.s_state & STATE.ERROR_FS ? 'errors' : sb.s_state & STATE.VALID_FS ? 'clean' : 'not-clean',
    needsRecovery: names.includes('needs_recovery'),
  });
}
