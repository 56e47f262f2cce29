/**
 * The ext4 superblock: 1024 bytes at byte 1024 of the device (ext4-format.md §2).
 * Declared once; parse/serialise/checksum derive from the declaration.
 */
import { defineStruct, type Decoded } from '../codec/layout.js';
import { crc32c, fsSeed } from './checksum.js';
import { Ext4Error, type Location } from '../errors.js';

export const SUPERBLOCK_OFFSET = 1024;
export const SUPERBLOCK_SIZE = 1024;
export const EXT4_SUPER_MAGIC = 0xef53;

const ROWS = [
  ['s_inodes_count', 0x000, 'u32'],
  ['s_blocks_count_lo', 0x004, 'u32'],
  ['s_r_blocks_count_lo', 0x008, 'u32'],
  ['s_free_blocks_count_lo', 0x00c, 'u32'],
  ['s_free_inodes_count', 0x010, 'u32'],
  ['s_first_data_block', 0x014, 'u32'],
  ['s_log_block_size', 0x018, 'u32'],
  ['s_log_cluster_size', 0x01c, 'u32'],
  ['s_blocks_per_group', 0x020, 'u32'],
  ['s_clusters_per_group', 0x024, 'u32'],
  ['s_inodes_per_group', 0x028, 'u32'],
  ['s_mtime', 0x02c, 'u32'],
  ['s_wtime', 0x030, 'u32'],
  ['s_mnt_count', 0x034, 'u16'],
  ['s_max_mnt_count', 0x036, 'u16'],
  ['s_magic', 0x038, 'u16'],
  ['s_state', 0x03a, 'u16'],
  ['s_errors', 0x03c, 'u16'],
  ['s_minor_rev_level', 0x03e, 'u16'],
  ['s_lastcheck', 0x040, 'u32'],
  ['s_checkinterval', 0x044, 'u32'],
  ['s_creator_os', 0x048, 'u32'],
  ['s_rev_level', 0x04c, 'u32'],
  ['s_def_resuid', 0x050, 'u16'],
  ['s_def_resgid', 0x052, 'u16'],
  ['s_first_ino', 0x054, 'u32'],
  ['s_inode_size', 0x058, 'u16'],
  ['s_block_group_nr', 0x05a, 'u16'],
  ['s_feature_compat', 0x05c, 'u32'],
  ['s_feature_incompat', 0x060, 'u32'],
  ['s_feature_ro_compat', 0x064, 'u32'],
  ['s_uuid', 0x068, 'bytes', 16],
  ['s_volume_name', 0x078, 'bytes', 16],
  ['s_last_mounted', 0x088, 'bytes', 64],
  ['s_algorithm_usage_bitmap', 0x0c8, 'u32'],
  ['s_prealloc_blocks', 0x0cc, 'u8'],
  ['s_prealloc_dir_blocks', 0x0cd, 'u8'],
  ['s_reserved_gdt_blocks', 0x0ce, 'u16'],
  ['s_journal_uuid', 0x0d0, 'bytes', 16],
  ['s_journal_inum', 0x0e0, 'u32'],
  ['s_journal_dev', 0x0e4, 'u32'],
  ['s_last_orphan', 0x0e8, 'u32'],
  ['s_hash_seed', 0x0ec, 'bytes', 16],
  ['s_def_hash_version', 0x0fc, 'u8'],
  ['s_jnl_backup_type', 0x0fd, 'u8'],
  ['s_desc_size', 0x0fe, 'u16'],
  ['s_default_mount_opts', 0x100, 'u32'],
  ['s_first_meta_bg', 0x104, 'u32'],
  ['s_mkfs_time', 0x108, 'u32'],
  ['s_jnl_blocks', 0x10c, 'bytes', 68],
  ['s_blocks_count_hi', 0x150, 'u32'],
  ['s_r_blocks_count_hi', 0x154, 'u32'],
  ['s_free_blocks_hi', 0x158, 'u32'],
  ['s_min_extra_isize', 0x15c, 'u16'],
  ['s_want_extra_isize', 0x15e, 'u16'],
  ['s_flags', 0x160, 'u32'],
  ['s_raid_stride', 0x164, 'u16'],
  ['s_mmp_update_interval', 0x166, 'u16'],
  ['s_mmp_block', 0x168, 'u64'],
  ['s_raid_stripe_width', 0x170, 'u32'],
  ['s_log_groups_per_flex', 0x174, 'u8'],
  ['s_checksum_type', 0x175, 'u8'],
  ['s_encryption_level', 0x176, 'u8'],
  ['s_kbytes_written', 0x178, 'u64'],
  ['s_snapshot_inum', 0x180, 'u32'],
  ['s_error_count', 0x194, 'u32'],
  // The error record the kernel's ext4_update_super / save_error_info keeps (error-state.ts).
  ['s_first_error_time', 0x198, 'u32'],
  ['s_first_error_ino', 0x19c, 'u32'],
  ['s_first_error_block', 0x1a0, 'u64'],
  ['s_first_error_func', 0x1a8, 'bytes', 32],
  ['s_first_error_line', 0x1c8, 'u32'],
  ['s_last_error_time', 0x1cc, 'u32'],
  ['s_last_error_ino', 0x1d0, 'u32'],
  ['s_last_error_line', 0x1d4, 'u32'],
  ['s_last_error_block', 0x1d8, 'u64'],
  ['s_last_error_func', 0x1e0, 'bytes', 32],
  ['s_mount_opts', 0x200, 'bytes', 64],
  ['s_usr_quota_inum', 0x240, 'u32'],
  ['s_grp_quota_inum', 0x244, 'u32'],
  ['s_overhead_clusters', 0x248, 'u32'],
  ['s_backup_bgs0', 0x24c, 'u32'],
  ['s_backup_bgs1', 0x250, 'u32'],
  ['s_lpf_ino', 0x268, 'u32'],
  ['s_prj_quota_inum', 0x26c, 'u32'],
  ['s_checksum_seed', 0x270, 'u32'],
  ['s_wtime_hi', 0x274, 'u8'],
  ['s_mtime_hi', 0x275, 'u8'],
  ['s_mkfs_time_hi', 0x276, 'u8'],
  ['s_lastcheck_hi', 0x277, 'u8'],
  ['s_first_error_time_hi', 0x278, 'u8'],
  ['s_last_error_time_hi', 0x279, 'u8'],
  ['s_first_error_errcode', 0x27a, 'u8'],
  ['s_last_error_errcode', 0x27b, 'u8'],
  ['s_encoding', 0x27c, 'u16'],
  ['s_encoding_flags', 0x27e, 'u16'],
  ['s_orphan_file_inum', 0x280, 'u32'],
  ['s_checksum', 0x3fc, 'u32'],
] as const;

export const SuperblockLayout = defineStruct('superblock', SUPERBLOCK_SIZE, ROWS);
export type SuperblockFields = Decoded<typeof ROWS>;

// Feature bits used by the format code (names and policy live in features.ts).
export const COMPAT = {
  DIR_PREALLOC: 0x1, IMAGIC_INODES: 0x2, HAS_JOURNAL: 0x4, EXT_ATTR: 0x8, RESIZE_INODE: 0x10,
  DIR_INDEX: 0x20, LAZY_BG: 0x40, EXCLUDE_BITMAP: 0x100, SPARSE_SUPER2: 0x200, FAST_COMMIT: 0x400,
  STABLE_INODES: 0x800, ORPHAN_FILE: 0x1000,
} as const;
export const INCOMPAT = {
  COMPRESSION: 0x1, FILETYPE: 0x2, RECOVER: 0x4, JOURNAL_DEV: 0x8, META_BG: 0x10, EXTENTS: 0x40,
  '64BIT': 0x80, MMP: 0x100, FLEX_BG: 0x200, EA_INODE: 0x400, DIRDATA: 0x1000, CSUM_SEED: 0x2000,
  LARGEDIR: 0x4000, INLINE_DATA: 0x8000, ENCRYPT: 0x10000, CASEFOLD: 0x20000,
} as const;
export const RO_COMPAT = {
  SPARSE_SUPER: 0x1, LARGE_FILE: 0x2, BTREE_DIR: 0x4, HUGE_FILE: 0x8, GDT_CSUM: 0x10, DIR_NLINK: 0x20,
  EXTRA_ISIZE: 0x40, HAS_SNAPSHOT: 0x80, QUOTA: 0x100, BIGALLOC: 0x200, METADATA_CSUM: 0x400,
  REPLICA: 0x800, READONLY: 0x1000, PROJECT: 0x2000, SHARED_BLOCKS: 0x4000, VERITY: 0x8000,
  ORPHAN_PRESENT: 0x10000,
} as const;

export const STATE = { VALID_FS: 0x1, ERROR_FS: 0x2, ORPHAN_FS: 0x4 } as const;
export const S_FLAGS = { SIGNED_HASH: 0x1, UNSIGNED_HASH: 0x2, TEST_FS: 0x4 } as const;

/** Parsed superblock plus derived geometry. `raw` keeps the exact 1024 bytes (unknown fields survive a rewrite). */
export interface Superblock extends SuperblockFields {
  raw: Uint8Array;
  blockSize: number;
  blocksCount: number;
  rBlocksCount: number;
  freeBlocksCount: number;
  groupCount: number;
  descSize: number;
  is64: boolean;
  hasMetadataCsum: boolean;
  hasGdtCsum: boolean;
}

const SB_WHERE = { structure: 'superblock', location: { kind: 'byte', offset: SUPERBLOCK_OFFSET } satisfies Location };

function bad(message: string): Ext4Error {
  return new Ext4Error('EFSCORRUPTED', message, SB_WHERE);
}

export function superblockChecksum(raw: Uint8Array): number {
  return crc32c(0xffffffff, raw, 0, SuperblockLayout.offsetOf('s_checksum'));
}

/**
 * Parse and sanity-check a superblock. Geometry is validated against the
 * device size so that later code can trust group/block arithmetic.
 */
export function parseSuperblock(raw: Uint8Array, opts: { deviceSize?: number; verifyChecksum?: boolean } = {}): Superblock {
  if (raw.length < SUPERBLOCK_SIZE) throw new Ext4Error('EINVAL', 'image too small to hold a superblock', SB_WHERE);
  const bytes = raw.slice(0, SUPERBLOCK_SIZE);
  const f = SuperblockLayout.decode(bytes);
  if (f.s_magic !== EXT4_SUPER_MAGIC) throw new Ext4Error('EINVAL', `bad magic 0x${f.s_magic.toString(16)}: not an ext2/3/4 filesystem`, SB_WHERE);
  if (f.s_rev_level > 1) throw bad(`unknown revision level ${f.s_rev_level}`);
  if (f.s_log_block_size > 6) throw bad(`block size 2^(10+${f.s_log_block_size}) is invalid`);
  const blockSize = 1024 << f.s_log_block_size;
  const is64 = (f.s_feature_incompat & INCOMPAT['64BIT']) !== 0;
  // A zero high half adds nothing: lo stays a small integer. (A product with 2^32 is a heap double
  // even when 0; blocksCount as a double reaches every last-group computation, and the first
  // allocation there changed the field representation of run, extent and inode objects
  // mid-import: ~15 optimised functions thrown away and compiled again.)
  const wide = (lo: number, hi: number) => (is64 && hi !== 0 ? lo + hi * 2 ** 32 : lo);
  const blocksCount = wide(f.s_blocks_count_lo, f.s_blocks_count_hi);
  const rBlocksCount = wide(f.s_r_blocks_count_lo, f.s_r_blocks_count_hi);
  const freeBlocksCount = wide(f.s_free_blocks_count_lo, f.s_free_blocks_hi);
  if (blocksCount === 0 || blocksCount > 2 ** 48) throw bad(`blocks count ${blocksCount} is invalid`);
  if (f.s_first_data_block !== (blockSize === 1024 ? 1 : 0) && !(blockSize === 1024 && f.s_first_data_block === 0))
    throw bad(`first data block ${f.s_first_data_block} is invalid for ${blockSize}-byte blocks`);
  // ext4_handle_clustersize / ext2fs_open2: the bitmap holds one bit per cluster (a block
  // without bigalloc), so clusters per group is bounded by the bitmap block, and a group is
  // exactly clusters per group × blocks per cluster.
  const bigalloc = (f.s_feature_ro_compat & RO_COMPAT.BIGALLOC) !== 0;
  if (bigalloc && (f.s_log_cluster_size < f.s_log_block_size || f.s_log_cluster_size > 20))
    throw bad(`cluster size 2^(10+${f.s_log_cluster_size}) is invalid for ${blockSize}-byte blocks`);
  if (!bigalloc && f.s_log_cluster_size !== f.s_log_block_size)
    throw bad(`cluster size 2^(10+${f.s_log_cluster_size}) differs from the block size without bigalloc`);
  const clusterRatio = 2 ** (f.s_log_cluster_size - f.s_log_block_size);
  if (f.s_clusters_per_group < 8 || f.s_clusters_per_group > 8 * blockSize || f.s_clusters_per_group % 8 !== 0)
    throw bad(`clusters per group ${f.s_clusters_per_group} is invalid`);
  if (f.s_blocks_per_group !== f.s_clusters_per_group * clusterRatio)
    throw bad(`blocks per group ${f.s_blocks_per_group} is invalid: not ${f.s_clusters_per_group} clusters per group × ${clusterRatio} blocks per cluster`);
  if (f.s_inodes_per_group === 0 || f.s_inodes_per_group > 8 * blockSize || f.s_inodes_per_group % 8 !== 0)
    throw bad(`inodes per group ${f.s_inodes_per_group} is invalid`);
  const inodeSize = f.s_rev_level === 0 ? 128 : f.s_inode_size;
  if (inodeSize < 128 || inodeSize > blockSize || (inodeSize & (inodeSize - 1)) !== 0) throw bad(`inode size ${inodeSize} is invalid`);
  if (blocksCount <= f.s_first_data_block) throw bad('blocks count does not exceed the first data block');
  const groupCount = Math.ceil((blocksCount - f.s_first_data_block) / f.s_blocks_per_group);
  if (f.s_inodes_count !== groupCount * f.s_inodes_per_group && f.s_inodes_count !== 0)
    // e2fsck insists on this; the kernel too (ext4_fill_super "inodes count not valid")
    throw bad(`inodes count ${f.s_inodes_count} != ${groupCount} groups × ${f.s_inodes_per_group}`);
  let descSize = 32;
  if (is64) {
    descSize = f.s_desc_size;
    if (descSize < 32 || descSize > 1024 || (descSize & (descSize - 1)) !== 0 || descSize > blockSize) throw bad(`descriptor size ${descSize} is invalid`);
  }
  const hasMetadataCsum = (f.s_feature_ro_compat & RO_COMPAT.METADATA_CSUM) !== 0;
  const hasGdtCsum = !hasMetadataCsum && (f.s_feature_ro_compat & RO_COMPAT.GDT_CSUM) !== 0;
  if (hasMetadataCsum && opts.verifyChecksum !== false) {
    if (f.s_checksum_type !== 1) throw bad(`unknown checksum type ${f.s_checksum_type}`);
    const want = superblockChecksum(bytes);
    if (want !== f.s_checksum)
      throw new Ext4Error('EFSBADCRC', `superblock checksum 0x${f.s_checksum.toString(16)} != computed 0x${want.toString(16)}`, SB_WHERE);
  }
  if (opts.deviceSize !== undefined && blocksCount * blockSize > opts.deviceSize)
    throw new Ext4Error('EFSCORRUPTED', `filesystem claims ${blocksCount} blocks of ${blockSize} bytes but the device has only ${opts.deviceSize} bytes (truncated image?)`, SB_WHERE);
  return {
    ...f,
    s_inode_size: inodeSize,
    s_first_ino: f.s_rev_level === 0 ? 11 : f.s_first_ino,
    raw: bytes,
    blockSize,
    blocksCount,
    rBlocksCount,
    freeBlocksCount,
    groupCount,
    descSize,
    is64,
    hasMetadataCsum,
    hasGdtCsum,
  };
}

/**
 * Serialise the superblock fields back over its raw bytes (unknown fields preserved),
 * folding the derived totals into their lo/hi fields and refreshing the checksum.
 */
export function serializeSuperblock(sb: Superblock): Uint8Array {
  const out = sb.raw.slice();
  const f: SuperblockFields = { ...sb };
  f.s_free_blocks_count_lo = sb.freeBlocksCount % 2 ** 32;
  if (sb.is64) f.s_free_blocks_hi = Math.floor(sb.freeBlocksCount / 2 ** 32);
  SuperblockLayout.encode(f, out);
  if (sb.hasMetadataCsum) {
    const c = superblockChecksum(out);
    SuperblockLayout.set(out, 's_checksum', c);
    sb.s_checksum = c;
  }
  sb.raw = out;
  return out;
}

/** Seconds with the _hi byte (bits 32..39). */
export function sbTime(lo: number, hi: number): number {
  return lo + hi * 2 ** 32;
}

export function setSbWtime(sb: Superblock, seconds: number): void {
  sb.s_wtime = seconds % 2 ** 32;
  sb.s_wtime_hi = Math.floor(seconds / 2 ** 32) & 0xff;
}


/** The seed of the filesystem's metadata checksums: s_checksum_seed with csum_seed, else crc32c of the UUID. */
export function superblockFsSeed(sb: Superblock): number {
  return fsSeed(sb.s_uuid, sb.s_feature_incompat & INCOMPAT.CSUM_SEED ? sb.s_checksum_seed : undefined);
}

/** Blocks [n, n+count) lie inside the filesystem (a pointer that leaves it is corruption). */
export function checkBlockRun(sb: Superblock, n: number, count: number): void {
  if (n < 0 || n + count > sb.blocksCount)
    throw new Ext4Error('EFSCORRUPTED', `blocks ${n}+${count} are outside the filesystem`, { structure: 'block pointer', location: { kind: 'block', block: n, count } });
}
