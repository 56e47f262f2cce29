/**
 * Block group descriptors (ext4-format.md §5): 32-byte form, or s_desc_size
 * bytes with 64bit. Parsing, serialising and both checksum flavours
 * (metadata_csum crc32c, gdt_csum crc16) derive from the one declaration.
 */
import { defineStruct, le32 as words, type Decoded } from '../codec/layout.js';
import { crc16, crc32c, crc32cLe32, crc32cZeros } from './checksum.js';
import type { Superblock } from './superblock.js';
import { Ext4Error, type Location } from '../errors.js';

const ROWS = [
  ['bg_block_bitmap_lo', 0x00, 'u32'],
  ['bg_inode_bitmap_lo', 0x04, 'u32'],
  ['bg_inode_table_lo', 0x08, 'u32'],
  ['bg_free_blocks_count_lo', 0x0c, 'u16'],
  ['bg_free_inodes_count_lo', 0x0e, 'u16'],
  ['bg_used_dirs_count_lo', 0x10, 'u16'],
  ['bg_flags', 0x12, 'u16'],
  ['bg_exclude_bitmap_lo', 0x14, 'u32'],
  ['bg_block_bitmap_csum_lo', 0x18, 'u16'],
  ['bg_inode_bitmap_csum_lo', 0x1a, 'u16'],
  ['bg_itable_unused_lo', 0x1c, 'u16'],
  ['bg_checksum', 0x1e, 'u16'],
] as const;
const ROWS64 = [
  ['bg_block_bitmap_hi', 0x20, 'u32'],
  ['bg_inode_bitmap_hi', 0x24, 'u32'],
  ['bg_inode_table_hi', 0x28, 'u32'],
  ['bg_free_blocks_count_hi', 0x2c, 'u16'],
  ['bg_free_inodes_count_hi', 0x2e, 'u16'],
  ['bg_used_dirs_count_hi', 0x30, 'u16'],
  ['bg_itable_unused_hi', 0x32, 'u16'],
  ['bg_exclude_bitmap_hi', 0x34, 'u32'],
  ['bg_block_bitmap_csum_hi', 0x38, 'u16'],
  ['bg_inode_bitmap_csum_hi', 0x3a, 'u16'],
] as const;

export const GroupDesc32Layout = defineStruct('group descriptor', 32, ROWS);
export const GroupDesc64Layout = defineStruct('group descriptor (64-bit)', 64, [...ROWS, ...ROWS64] as const);

export const BG_FLAGS = { INODE_UNINIT: 0x1, BLOCK_UNINIT: 0x2, INODE_ZEROED: 0x4 } as const;

/** A group descriptor with its 64-bit values combined. */
export interface GroupDesc {
  group: number;
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  /** bg_free_blocks_count: free clusters (= blocks without bigalloc). */
  freeBlocks: number;
  freeInodes: number;
  usedDirs: number;
  flags: number;
  itableUnused: number;
  blockBitmapCsum: number;
  inodeBitmapCsum: number;
  checksum: number;
  /** The raw s_desc_size bytes as read (opaque tail preserved on rewrite). */
  raw: Uint8Array;
}

type D64 = Decoded<typeof ROWS> & Partial<Decoded<typeof ROWS64>>;

/**
 * The descriptor at `offset` in `bytes` (a descriptor block). `raw` is a copy made byte by byte:
 * at most 64 bytes stay on the JS heap, where slice/subarray of a block would allocate twice per
 * descriptor (a 1 TiB fs has 8,192 of them, all decoded by a free-space scan).
 */
export function parseGroupDesc(sb: Superblock, group: number, bytes: Uint8Array, offset = 0): GroupDesc {
  const size = sb.descSize;
  if (offset < 0 || offset + size > bytes.length) throw new Ext4Error('EFSCORRUPTED', `group ${group}: descriptor at ${offset} outside its ${bytes.length}-byte block`, { structure: 'group descriptor', location: { kind: 'group', group } });
  const raw = new Uint8Array(size);
  for (let i = 0; i < size; i++) raw[i] = bytes[offset + i]!;
  const wide = sb.is64 && sb.descSize >= 64;
  const d: D64 = wide ? GroupDesc64Layout.decode(raw) : GroupDesc32Layout.decode(raw);
  const hi = (v: number | undefined) => (wide ? (v ?? 0) : 0);
  return {
    group,
    blockBitmap: d.bg_block_bitmap_lo + hi(d.bg_block_bitmap_hi) * 2 ** 32,
    inodeBitmap: d.bg_inode_bitmap_lo + hi(d.bg_inode_bitmap_hi) * 2 ** 32,
    inodeTable: d.bg_inode_table_lo + hi(d.bg_inode_table_hi) * 2 ** 32,
    freeBlocks: d.bg_free_blocks_count_lo + hi(d.bg_free_blocks_count_hi) * 65536,
    freeInodes: d.bg_free_inodes_count_lo + hi(d.bg_free_inodes_count_hi) * 65536,
    usedDirs: d.bg_used_dirs_count_lo + hi(d.bg_used_dirs_count_hi) * 65536,
    flags: d.bg_flags,
    itableUnused: d.bg_itable_unused_lo + hi(d.bg_itable_unused_hi) * 65536,
    blockBitmapCsum: d.bg_block_bitmap_csum_lo + (sb.descSize >= 0x3a ? hi(d.bg_block_bitmap_csum_hi) * 65536 : 0),
    inodeBitmapCsum: d.bg_inode_bitmap_csum_lo + (sb.descSize >= 0x3c ? hi(d.bg_inode_bitmap_csum_hi) * 65536 : 0),
    checksum: d.bg_checksum,
    raw,
  };
}

/** Serialise a descriptor (values folded into lo/hi halves) and refresh its checksum. */
export function serializeGroupDesc(sb: Superblock, gd: GroupDesc, fsSeed: number): Uint8Array {
  const out = gd.raw.slice();
  const wide = sb.is64 && sb.descSize >= 64;
  const lo32 = (v: number) => v % 2 ** 32;
  const hi32 = (v: number) => Math.floor(v / 2 ** 32);
  const base = {
    bg_block_bitmap_lo: lo32(gd.blockBitmap),
    bg_inode_bitmap_lo: lo32(gd.inodeBitmap),
    bg_inode_table_lo: lo32(gd.inodeTable),
    bg_free_blocks_count_lo: gd.freeBlocks & 0xffff,
    bg_free_inodes_count_lo: gd.freeInodes & 0xffff,
    bg_used_dirs_count_lo: gd.usedDirs & 0xffff,
    bg_flags: gd.flags,
    bg_exclude_bitmap_lo: GroupDesc32Layout.decode(out).bg_exclude_bitmap_lo,
    bg_block_bitmap_csum_lo: gd.blockBitmapCsum & 0xffff,
    bg_inode_bitmap_csum_lo: gd.inodeBitmapCsum & 0xffff,
    bg_itable_unused_lo: gd.itableUnused & 0xffff,
    bg_checksum: 0,
  };
  if (wide) {
    const prev = GroupDesc64Layout.decode(out);
    GroupDesc64Layout.encode({
      ...base,
      bg_block_bitmap_hi: hi32(gd.blockBitmap),
      bg_inode_bitmap_hi: hi32(gd.inodeBitmap),
      bg_inode_table_hi: hi32(gd.inodeTable),
      bg_free_blocks_count_hi: Math.floor(gd.freeBlocks / 65536),
      bg_free_inodes_count_hi: Math.floor(gd.freeInodes / 65536),
      bg_used_dirs_count_hi: Math.floor(gd.usedDirs / 65536),
      bg_itable_unused_hi: Math.floor(gd.itableUnused / 65536),
      bg_exclude_bitmap_hi: prev.bg_exclude_bitmap_hi,
      bg_block_bitmap_csum_hi: Math.floor(gd.blockBitmapCsum / 65536) & 0xffff,
      bg_inode_bitmap_csum_hi: Math.floor(gd.inodeBitmapCsum / 65536) & 0xffff,
    }, out);
  } else {
    if (gd.freeBlocks > 0xffff || gd.freeInodes > 0xffff) throw new Ext4Error('EINVAL', `group ${gd.group} counts overflow a 32-byte descriptor`);
    GroupDesc32Layout.encode(base, out);
  }
  const c = groupDescChecksum(sb, gd.group, out, fsSeed);
  if (c !== null) GroupDesc32Layout.set(out, 'bg_checksum', c);
  gd.checksum = c ?? 0;
  gd.raw = out;
  return out;
}

const CSUM_OFF = GroupDesc32Layout.offsetOf('bg_checksum');
/** Scratch for the group number gdt_csum hashes (single-threaded, never held across a call). */
const GROUP_WORD = new Uint8Array(4);

/**
 * The checksum the descriptor at `offset` in `raw` should carry, or null when the fs has none.
 * The offset lets a bulk decode (group-table.ts) hash descriptors where they lie in the GDT block.
 */
export function groupDescChecksum(sb: Superblock, group: number, raw: Uint8Array, fsSeed: number, offset = 0): number | null {
  const size = sb.descSize;
  if (sb.hasMetadataCsum) {
    // crc32c(fsSeed, le32 group, the descriptor with bg_checksum as zeros): nothing allocated.
    let c = crc32cLe32(fsSeed, group);
    c = crc32c(c, raw, offset, offset + CSUM_OFF);
    c = crc32cZeros(c, 2);
    c = crc32c(c, raw, offset + CSUM_OFF + 2, offset + size);
    return c & 0xffff;
  }
  if (sb.hasGdtCsum) {
    let c = crc16(0xffff, sb.s_uuid);
    words.set(GROUP_WORD, 0, group);
    c = crc16(c, GROUP_WORD);
    c = crc16(c, raw, offset, offset + CSUM_OFF);
    // ext2fs_group_desc_csum: the tail past the checksum is covered only for 64-byte descriptors
    if (size > CSUM_OFF + 2 && sb.is64) c = crc16(c, raw, offset + CSUM_OFF + 2, offset + size);
    return c;
  }
  return null;
}

/** Validate a descriptor against the geometry; throws EFSCORRUPTED/EFSBADCRC naming the group. */
export function checkGroupDesc(sb: Superblock, gd: GroupDesc, fsSeed: number, verifyChecksum: boolean): void {
  // Runs for every descriptor a scan decodes (8,192 on 1 TiB): nothing is allocated unless it throws.
  if (verifyChecksum) {
    const want = groupDescChecksum(sb, gd.group, gd.raw, fsSeed);
    if (want !== null && want !== gd.checksum) throw badDesc(gd, 'EFSBADCRC', `checksum 0x${gd.checksum.toString(16)} != computed 0x${want.toString(16)}`);
  }
  const itb = Math.ceil((sb.s_inodes_per_group * sb.s_inode_size) / sb.blockSize);
  if (!inFs(sb, gd.blockBitmap, 1)) throw badDesc(gd, 'EFSCORRUPTED', `block bitmap ${gd.blockBitmap} outside the filesystem`);
  if (!inFs(sb, gd.inodeBitmap, 1)) throw badDesc(gd, 'EFSCORRUPTED', `inode bitmap ${gd.inodeBitmap} outside the filesystem`);
  if (!inFs(sb, gd.inodeTable, itb)) throw badDesc(gd, 'EFSCORRUPTED', `inode table ${gd.inodeTable}+${itb} outside the filesystem`);
  // bg_free_blocks_count counts clusters (blocks without bigalloc).
  if (gd.freeBlocks > sb.s_clusters_per_group) throw badDesc(gd, 'EFSCORRUPTED', `free clusters ${gd.freeBlocks} > clusters per group`);
  if (gd.freeInodes > sb.s_inodes_per_group) throw badDesc(gd, 'EFSCORRUPTED', `free inodes ${gd.freeInodes} > inodes per group`);
}

function inFs(sb: Superblock, b: number, n: number): boolean {
  return b >= sb.s_first_data_block && b + n <= sb.blocksCount && b !== 0;
}

function badDesc(gd: GroupDesc, code: 'EFSCORRUPTED' | 'EFSBADCRC', message: string): Ext4Error {
  return new Ext4Error(code, message, { structure: 'group descriptor', location: { kind: 'group', group: gd.group } satisfies Location });
}

/** Whether the UNINIT flags mean anything on this fs (only with gdt_csum / metadata_csum). */
export function uninitFlagsHonoured(sb: Superblock): boolean {
  return sb.hasMetadataCsum || sb.hasGdtCsum;
}
