/**
 * Inodes (ext4-format.md §6): the 128-byte base plus i_extra_isize bytes of
 * extension; whatever follows is in-inode xattr space. Parsed from (and
 * serialised back over) the raw s_inode_size slot so unknown bytes survive.
 */
import { defineStruct, type Decoded } from '../codec/layout.js';
import { crc32cZeroed, inodeSeed } from './checksum.js';
import { RO_COMPAT, type Superblock } from './superblock.js';
import { Ext4Error, type Location } from '../errors.js';
import { isZeroRange } from './bytes.js';

const BASE_ROWS = [
  ['i_mode', 0x00, 'u16'],
  ['i_uid', 0x02, 'u16'],
  ['i_size_lo', 0x04, 'u32'],
  ['i_atime', 0x08, 'u32'],
  ['i_ctime', 0x0c, 'u32'],
  ['i_mtime', 0x10, 'u32'],
  ['i_dtime', 0x14, 'u32'],
  ['i_gid', 0x18, 'u16'],
  ['i_links_count', 0x1a, 'u16'],
  ['i_blocks_lo', 0x1c, 'u32'],
  ['i_flags', 0x20, 'u32'],
  ['i_version_lo', 0x24, 'u32'],
  ['i_block', 0x28, 'bytes', 60],
  ['i_generation', 0x64, 'u32'],
  ['i_file_acl_lo', 0x68, 'u32'],
  ['i_size_high', 0x6c, 'u32'],
  ['i_faddr', 0x70, 'u32'],
  ['i_blocks_hi', 0x74, 'u16'],
  ['i_file_acl_high', 0x76, 'u16'],
  ['i_uid_high', 0x78, 'u16'],
  ['i_gid_high', 0x7a, 'u16'],
  ['i_checksum_lo', 0x7c, 'u16'],
  ['i_reserved', 0x7e, 'u16'],
] as const;
/** Extension fields, each present only if i_extra_isize covers it. */
const EXTRA_ROWS = [
  ['i_extra_isize', 0x80, 'u16'],
  ['i_checksum_hi', 0x82, 'u16'],
  ['i_ctime_extra', 0x84, 'u32'],
  ['i_mtime_extra', 0x88, 'u32'],
  ['i_atime_extra', 0x8c, 'u32'],
  ['i_crtime', 0x90, 'u32'],
  ['i_crtime_extra', 0x94, 'u32'],
  ['i_version_hi', 0x98, 'u32'],
  ['i_projid', 0x9c, 'u32'],
] as const;

export const InodeBaseLayout = defineStruct('inode', 128, BASE_ROWS);
export const InodeExtraLayout = defineStruct('inode extra', 0xa0, EXTRA_ROWS);
/** fscrypt_symlink_data: an encrypted symlink's target is its ciphertext length then the ciphertext. */
export const FscryptSymlinkLayout = defineStruct('fscrypt_symlink_data', 2, [['len', 0, 'u16']] as const);
type Base = Decoded<typeof BASE_ROWS>;
type Extra = Decoded<typeof EXTRA_ROWS>;

export const S_IFMT = 0xf000;
export const S_IFREG = 0x8000, S_IFDIR = 0x4000, S_IFLNK = 0xa000, S_IFCHR = 0x2000, S_IFBLK = 0x6000, S_IFIFO = 0x1000, S_IFSOCK = 0xc000;

export const INODE_FLAGS = {
  SECRM: 0x1, UNRM: 0x2, COMPR: 0x4, SYNC: 0x8, IMMUTABLE: 0x10, APPEND: 0x20, NODUMP: 0x40, NOATIME: 0x80,
  ENCRYPT: 0x800, INDEX: 0x1000, IMAGIC: 0x2000, JOURNAL_DATA: 0x4000, NOTAIL: 0x8000, DIRSYNC: 0x10000,
  TOPDIR: 0x20000, HUGE_FILE: 0x40000, EXTENTS: 0x80000, VERITY: 0x100000, EA_INODE: 0x200000,
  INLINE_DATA: 0x10000000, PROJINHERIT: 0x20000000, CASEFOLD: 0x40000000,
} as const;

export type FileType = 'file' | 'dir' | 'symlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket';

export function fileTypeOfMode(mode: number): FileType | null {
  switch (mode & S_IFMT) {
    case S_IFREG: return 'file';
    case S_IFDIR: return 'dir';
    case S_IFLNK: return 'symlink';
    case S_IFCHR: return 'chardev';
    case S_IFBLK: return 'blockdev';
    case S_IFIFO: return 'fifo';
    case S_IFSOCK: return 'socket';
    default: return null;
  }
}

export interface Timestamp {
  /** Seconds since the epoch (may be negative or beyond 2038). */
  sec: number;
  nsec: number;
}

export interface Inode {
  ino: number;
  base: Base;
  /** Extension fields (zero where i_extra_isize does not cover them). */
  extra: Extra;
  extraIsize: number;
  mode: number;
  type: FileType | null;
  uid: number;
  gid: number;
  size: number;
  linksCount: number;
  flags: number;
  generation: number;
  /** Bytes owned, from i_blocks (sectors or fs blocks per HUGE_FILE). */
  blocks512: number;
  fileAcl: number;
  atime: Timestamp;
  ctime: Timestamp;
  mtime: Timestamp;
  crtime: Timestamp | null;
  dtime: number;
  /**
   * The whole on-disk slot (s_inode_size bytes), including in-inode xattr space. Never written in
   * place: a change replaces it with an edited copy (serializeInode, xattr-edit), so new inodes
   * may share one all-zero image (transaction.ts zeroSlotInode).
   */
  raw: Uint8Array;
}

/** Decode a (base, extra) pair as in ext4-format.md §6.3. */
export function decodeTime(base: number, extra: number | undefined): Timestamp {
  if (extra === undefined) return { sec: base | 0, nsec: 0 };
  return { sec: timeSeconds(base, extra), nsec: extra >>> 2 };
}

/** The seconds of a (base, extra) pair: signed 32-bit base plus the extra's two epoch bits × 2^32. */
export function timeSeconds(base: number, extra: number): number {
  // Without epoch bits the small-integer form: a product with 2^32 is a heap double even when it
  // is 0 (an allocation per value, and JSON.stringify prints doubles by the slow path).
  const epoch = extra & 3;
  return epoch === 0 ? base | 0 : (base | 0) + epoch * 2 ** 32;
}

export function encodeTime(t: Timestamp): { base: number; extra: number } {
  const base = t.sec >>> 0;
  const signedBase = base | 0;
  const epoch = ((t.sec - signedBase) / 2 ** 32) & 3;
  return { base, extra: ((t.nsec << 2) | epoch) >>> 0 };
}

/** The extension starts right after the 128-byte base; the declared fields end at InodeExtraLayout.size. */
const EXTRA_START = InodeBaseLayout.size;
const EXTRA_END = InodeExtraLayout.size;

/** Whether i_extra_isize covers extension field `field` (the kernel's EXT4_FITS_IN_INODE). */
export function extraCovers(extraIsize: number, field: keyof Extra & string): boolean {
  let need = extraNeeds.get(field);
  if (need === undefined) extraNeeds.set(field, (need = InodeExtraLayout.offsetOf(field) + InodeExtraLayout.sizeOf(field) - EXTRA_START));
  return extraIsize >= need;
}
/** The i_extra_isize each extra field needs, looked up once (every time stamp asks). */
const extraNeeds = new Map<string, number>();

const CSUM_LO = InodeBaseLayout.offsetOf('i_checksum_lo');
const CSUM_HI = InodeExtraLayout.offsetOf('i_checksum_hi');

export function inodeChecksum(raw: Uint8Array, ino: number, generation: number, fsSeedValue: number, inodeSize: number): { lo: number; hi: number | null } {
  const hasHi = inodeSize > 128 && extraCovers(InodeExtraLayout.get(raw, 'i_extra_isize'), 'i_checksum_hi');
  const c = inodeChecksumAt(raw, 0, ino, generation, fsSeedValue, inodeSize, hasHi);
  return { lo: c & 0xffff, hi: hasHi ? c >>> 16 : null };
}

/**
 * The 32-bit inode checksum of the slot at bytes[off, off + inodeSize), with the checksum halves
 * hashed as zeros (ext4_inode_csum), in one crc32cZeroed pass (the caller's bytes are not touched).
 */
function inodeChecksumAt(bytes: Uint8Array, off: number, ino: number, generation: number, fsSeedValue: number, inodeSize: number, hasHi: boolean): number {
  const seed = inodeSeed(fsSeedValue, ino, generation);
  return hasHi ? crc32cZeroed(seed, bytes, off, off + inodeSize, CSUM_LO, 2, CSUM_HI, 2) : crc32cZeroed(seed, bytes, off, off + inodeSize, CSUM_LO, 2);
}

export interface ParseInodeOptions {
  fsSeed: number;
  verifyChecksum: boolean;
}

function inodeWhere(sb: Superblock, ino: number): { structure: string; location: Location } {
  return { structure: `inode ${ino}`, location: { kind: 'group', group: Math.floor((ino - 1) / sb.s_inodes_per_group) } };
}

/**
 * The checks every read of an inode makes, on the slot at bytes[off, off + s_inode_size) in place:
 * i_extra_isize fits the slot (EFSCORRUPTED), the checksum matches under metadata_csum
 * (EFSBADCRC; an all-zero slot, a never-used inode, has none). Returns i_extra_isize (0 for
 * 128-byte inodes).
 */
export function verifyInodeSlot(sb: Superblock, ino: number, bytes: Uint8Array, off: number, opts: ParseInodeOptions): number {
  const extraIsize = sb.s_inode_size > 128 ? InodeExtraLayout.get(bytes, 'i_extra_isize', off) : 0;
  return checkSlot(sb, ino, bytes, off, opts, extraIsize, InodeBaseLayout.get(bytes, 'i_generation', off), InodeBaseLayout.get(bytes, 'i_checksum_lo', off));
}

/** verifyInodeSlot on fields the caller decoded (i_checksum_hi is read only if i_extra_isize covers it). */
function checkSlot(sb: Superblock, ino: number, bytes: Uint8Array, off: number, opts: ParseInodeOptions, extraIsize: number, generation: number, checksumLo: number): number {
  if (extraIsize > sb.s_inode_size - 128 || extraIsize % 4 !== 0)
    throw new Ext4Error('EFSCORRUPTED', `i_extra_isize ${extraIsize} does not fit a ${sb.s_inode_size}-byte inode`, inodeWhere(sb, ino));
  if (opts.verifyChecksum && sb.hasMetadataCsum) {
    const hasHi = extraIsize >= CSUM_HI_NEEDS;
    const c = inodeChecksumAt(bytes, off, ino, generation, opts.fsSeed, sb.s_inode_size, hasHi);
    const hi = hasHi ? SUMMARY.checksumHi(bytes, off) : 0;
    const ok = (c & 0xffff) === checksumLo && (!hasHi || c >>> 16 === hi);
    if (!ok && !isZeroRange(bytes, off, off + sb.s_inode_size))
      throw new Ext4Error('EFSBADCRC', `inode checksum mismatch (stored 0x${(hi * 65536 + checksumLo).toString(16)})`, inodeWhere(sb, ino));
  }
  return extraIsize;
}

/** i_size, refusing what no file can be (beyond 2^53). */
function inodeSize(sb: Superblock, ino: number, lo: number, high: number): number {
  if (high === 0) return lo; // the common case, kept a small integer (see timeSeconds)
  const size = lo + high * 2 ** 32;
  if (!Number.isSafeInteger(size)) throw new Ext4Error('EFSCORRUPTED', `i_size ${size} is impossible`, inodeWhere(sb, ino));
  return size;
}

/** What a directory listing shows of an inode (ls -l's columns). */
export interface InodeSummary {
  mode: number;
  type: FileType | null;
  uid: number;
  gid: number;
  size: number;
  linksCount: number;
  /** i_mtime seconds with the extra epoch bits when i_extra_isize covers them (decodeTime). */
  mtime: number;
}

/**
 * The listing fields of the inode in the slot at bytes[off, …), read in place after the same
 * checks parseInode makes (verifyInodeSlot, i_size): a listing of 10,000 files parses no
 * Inode objects and copies no slots. Same values as parseInode's fields.
 */
export function inodeSummary(sb: Superblock, ino: number, bytes: Uint8Array, off: number, opts: ParseInodeOptions, into?: InodeSummary): InodeSummary {
  // Field readers resolved once (SUMMARY), not decodes nor by-name gets: a decode builds an object
  // of every field and copies i_block; a get looks its field up by name on every call.
  const R = SUMMARY;
  const rawExtraIsize = sb.s_inode_size <= 128 ? 0 : R.extraIsize(bytes, off);
  const extraIsize = checkSlot(sb, ino, bytes, off, opts, rawExtraIsize, R.generation(bytes, off), R.checksumLo(bytes, off));
  const size = inodeSize(sb, ino, R.sizeLo(bytes, off), R.sizeHigh(bytes, off));
  const mtime = R.mtime(bytes, off);
  const mode = R.mode(bytes, off);
  const s = into ?? { mode: 0, type: null, uid: 0, gid: 0, size: 0, linksCount: 0, mtime: 0 };
  s.mode = mode;
  s.type = fileTypeOfMode(mode);
  s.uid = R.uid(bytes, off) + R.uidHigh(bytes, off) * 65536;
  s.gid = R.gid(bytes, off) + R.gidHigh(bytes, off) * 65536;
  s.size = size;
  s.linksCount = R.linksCount(bytes, off);
  s.mtime = extraIsize >= MTIME_EXTRA_NEEDS ? timeSeconds(mtime, R.mtimeExtra(bytes, off)) : mtime | 0;
  return s;
}

/** The fields inodeSummary reads, each reader resolved once from the declared layouts. */
const SUMMARY = {
  extraIsize: InodeExtraLayout.reader('i_extra_isize'),
  checksumHi: InodeExtraLayout.reader('i_checksum_hi'),
  generation: InodeBaseLayout.reader('i_generation'),
  checksumLo: InodeBaseLayout.reader('i_checksum_lo'),
  sizeLo: InodeBaseLayout.reader('i_size_lo'),
  sizeHigh: InodeBaseLayout.reader('i_size_high'),
  mtime: InodeBaseLayout.reader('i_mtime'),
  mode: InodeBaseLayout.reader('i_mode'),
  uid: InodeBaseLayout.reader('i_uid'),
  uidHigh: InodeBaseLayout.reader('i_uid_high'),
  gid: InodeBaseLayout.reader('i_gid'),
  gidHigh: InodeBaseLayout.reader('i_gid_high'),
  linksCount: InodeBaseLayout.reader('i_links_count'),
  mtimeExtra: InodeExtraLayout.reader('i_mtime_extra'),
};
/** The i_extra_isize from which i_checksum_hi / i_mtime_extra are in the inode (extraCovers). */
const CSUM_HI_NEEDS = InodeExtraLayout.offsetOf('i_checksum_hi') + InodeExtraLayout.sizeOf('i_checksum_hi') - EXTRA_START;
const MTIME_EXTRA_NEEDS = InodeExtraLayout.offsetOf('i_mtime_extra') + InodeExtraLayout.sizeOf('i_mtime_extra') - EXTRA_START;

/**
 * Parse inode `ino` from its raw slot. Throws EFSBADCRC on checksum mismatch
 * (metadata_csum) and EFSCORRUPTED on impossible fields, naming the inode.
 */
export function parseInode(sb: Superblock, ino: number, slot: Uint8Array, opts: ParseInodeOptions): Inode {
  const raw = slot.slice(0, sb.s_inode_size);
  const base = InodeBaseLayout.decode(raw);
  const rawExtraIsize = sb.s_inode_size > 128 ? InodeExtraLayout.get(raw, 'i_extra_isize') : 0;
  const extraIsize = checkSlot(sb, ino, raw, 0, opts, rawExtraIsize, base.i_generation, base.i_checksum_lo);
  const extra: Extra = { i_extra_isize: 0, i_checksum_hi: 0, i_ctime_extra: 0, i_mtime_extra: 0, i_atime_extra: 0, i_crtime: 0, i_crtime_extra: 0, i_version_hi: 0, i_projid: 0 };
  if (sb.s_inode_size > 128) {
    if (EXTRA_START + extraIsize >= EXTRA_END) Object.assign(extra, InodeExtraLayout.decode(raw));
    else if (extraIsize > 0) {
      // Fields past i_extra_isize read as zero.
      const full = new Uint8Array(EXTRA_END);
      full.set(raw.subarray(0, EXTRA_START + extraIsize));
      Object.assign(extra, InodeExtraLayout.decode(full));
    } // (none covered, a new inode's zeroed slot among them: every extra field reads as zero, as `extra` starts)
    extra.i_extra_isize = extraIsize;
  }
  const hugeFs = (sb.s_feature_ro_compat & RO_COMPAT.HUGE_FILE) !== 0;
  const blocksRaw = base.i_blocks_lo + (hugeFs ? base.i_blocks_hi * 2 ** 32 : 0);
  const blocks512 = hugeFs && base.i_flags & INODE_FLAGS.HUGE_FILE ? blocksRaw * (sb.blockSize / 512) : blocksRaw;
  const size = inodeSize(sb, ino, base.i_size_lo, base.i_size_high);
  const has = (field: keyof Extra & string) => extraCovers(extraIsize, field);
  return {
    ino,
    base,
    extra,
    extraIsize,
    mode: base.i_mode,
    type: fileTypeOfMode(base.i_mode),
    uid: base.i_uid + base.i_uid_high * 65536,
    gid: base.i_gid + base.i_gid_high * 65536,
    size,
    linksCount: base.i_links_count,
    flags: base.i_flags,
    generation: base.i_generation,
    blocks512,
    fileAcl: base.i_file_acl_lo + (sb.is64 ? base.i_file_acl_high * 2 ** 32 : 0),
    atime: decodeTime(base.i_atime, has('i_atime_extra') ? extra.i_atime_extra : undefined),
    ctime: decodeTime(base.i_ctime, has('i_ctime_extra') ? extra.i_ctime_extra : undefined),
    mtime: decodeTime(base.i_mtime, has('i_mtime_extra') ? extra.i_mtime_extra : undefined),
    crtime: has('i_crtime') ? decodeTime(extra.i_crtime, has('i_crtime_extra') ? extra.i_crtime_extra : undefined) : null,
    dtime: base.i_dtime,
    raw,
  };
}

/**
 * Serialise an inode back into its raw slot: the decoded `base`/`extra`
 * fields are written over `raw` (in-inode xattrs and unknown bytes kept), then
 * the checksum is refreshed. Callers change `inode.base`/`inode.extra` fields.
 */
export function serializeInode(sb: Superblock, inode: Inode, fsSeedValue: number): Uint8Array {
  const raw = inode.raw.slice();
  InodeBaseLayout.encode(inode.base, raw);
  if (sb.s_inode_size > 128 && inode.extraIsize > 0 && EXTRA_START + inode.extraIsize >= EXTRA_END && raw.length >= EXTRA_END) {
    // i_extra_isize covers every extra field (the usual 32): encoded in place, no scratch copy.
    InodeExtraLayout.encode(inode.extra, raw);
  } else if (sb.s_inode_size > 128 && inode.extraIsize > 0) {
    // Only the fields i_extra_isize covers are written; bytes past it belong to in-inode xattrs.
    const full = new Uint8Array(EXTRA_END);
    full.set(raw.subarray(0, EXTRA_END));
    InodeExtraLayout.encode(inode.extra, full);
    raw.set(full.subarray(EXTRA_START, EXTRA_START + Math.min(inode.extraIsize, EXTRA_END - EXTRA_START)), EXTRA_START);
  }
  if (sb.hasMetadataCsum) {
    const c = inodeChecksum(raw, inode.ino, inode.base.i_generation, fsSeedValue, sb.s_inode_size);
    InodeBaseLayout.set(raw, 'i_checksum_lo', c.lo);
    inode.base.i_checksum_lo = c.lo;
    if (c.hi !== null) {
      InodeExtraLayout.set(raw, 'i_checksum_hi', c.hi);
      inode.extra.i_checksum_hi = c.hi;
    }
  }
  inode.raw = raw;
  return raw;
}

export function isExtentMapped(inode: Inode): boolean {
  return (inode.flags & INODE_FLAGS.EXTENTS) !== 0;
}

export function hasInlineData(inode: Inode): boolean {
  return (inode.flags & INODE_FLAGS.INLINE_DATA) !== 0;
}
