/**
 * Extended attributes (ext4-format.md §9): the in-inode area after
 * i_extra_isize and the external block at i_file_acl. Values stored in an
 * EA inode (ea_inode feature) are returned as a reference for the caller to read.
 */
import { defineStruct } from '../codec/layout.js';
import { crc32c, crc32cSkipping, le64 } from './checksum.js';
import { Ext4Error, type Location } from '../errors.js';
import { InodeBaseLayout } from './inode.js';

export const XATTR_MAGIC = 0xea020000;

export const XattrBlockHeaderLayout = defineStruct('xattr block header', 32, [
  ['h_magic', 0, 'u32'],
  ['h_refcount', 4, 'u32'],
  ['h_blocks', 8, 'u32'],
  ['h_hash', 12, 'u32'],
  ['h_checksum', 16, 'u32'],
] as const);
export const XattrEntryLayout = defineStruct('xattr entry', 16, [
  ['e_name_len', 0, 'u8'],
  ['e_name_index', 1, 'u8'],
  ['e_value_offs', 2, 'u16'],
  ['e_value_inum', 4, 'u32'],
  ['e_value_size', 8, 'u32'],
  ['e_hash', 12, 'u32'],
] as const);

/** ext4_xattr_ibody_header: the in-inode area starts with the magic. */
export const XattrIbodyHeaderLayout = defineStruct('xattr ibody header', 4, [['h_magic', 0, 'u32']] as const);
/** IS_LAST_ENTRY: a list ends where an entry's first 32-bit word is zero. */
export const XattrListEndLayout = defineStruct('xattr list end', 4, [['word', 0, 'u32']] as const);

/** Whether the entry list ends at `off` (the kernel's IS_LAST_ENTRY). */
export function isLastXattrEntry(buf: Uint8Array, off: number): boolean {
  return XattrListEndLayout.decode(buf, off).word === 0;
}

/** Where the in-inode xattr area of a slot starts: after the 128-byte base and i_extra_isize. */
export function inodeXattrStart(extraIsize: number): number {
  return InodeBaseLayout.size + extraIsize;
}

const PREFIXES: Record<number, string> = {
  1: 'user.',
  2: 'system.posix_acl_access',
  3: 'system.posix_acl_default',
  4: 'trusted.',
  6: 'security.',
  7: 'system.',
  8: 'system.richacl',
};

export interface XattrEntry {
  /** Full name with its namespace prefix, e.g. "user.comment". */
  name: string;
  index: number;
  /** Raw name bytes after the prefix. */
  suffix: Uint8Array;
  /** The value, or null when it lives in an EA inode (then `valueInode` is set). */
  value: Uint8Array | null;
  valueInode: number;
  valueSize: number;
  /** The stored e_hash (kept as is when an editor rewrites an area without touching the entry). */
  hash: number;
}

const decoder = new TextDecoder('utf-8', { fatal: false });

/** EXT4_XATTR_SIZE_MAX: the largest value the kernel accepts (in an EA inode; smaller anywhere else). */
export const XATTR_SIZE_MAX = 1 << 24;

function parseEntries(buf: Uint8Array, entriesStart: number, valueBase: number, valueEnd: number, structure: string, location: Location): XattrEntry[] {
  const out: XattrEntry[] = [];
  let off = entriesStart;
  // Each entry is ≥ 16 bytes, so the loop is bounded by the area size.
  while (off + 4 <= buf.length) {
    if (isLastXattrEntry(buf, off)) break;
    if (off + 16 > buf.length) throw new Ext4Error('EFSCORRUPTED', `entry at ${off} runs past the area`, { structure, location });
    const e = XattrEntryLayout.decode(buf, off);
    const nameEnd = off + 16 + e.e_name_len;
    if (nameEnd > buf.length) throw new Ext4Error('EFSCORRUPTED', `entry name at ${off} runs past the area`, { structure, location });
    const suffix = buf.slice(off + 16, nameEnd);
    let value: Uint8Array | null = null;
    // The kernel's check_xattrs: no value is larger than EXT4_XATTR_SIZE_MAX (16 MiB), which also
    // bounds what reading an EA inode's value allocates.
    if (e.e_value_size > XATTR_SIZE_MAX)
      throw new Ext4Error('EFSCORRUPTED', `value of entry at ${off} is ${e.e_value_size} bytes, over the ${XATTR_SIZE_MAX}-byte limit`, { structure, location });
    if (e.e_value_inum === 0) {
      const vs = valueBase + e.e_value_offs;
      if (e.e_value_size > 0 && (vs < entriesStart || vs + e.e_value_size > valueEnd))
        throw new Ext4Error('EFSCORRUPTED', `value of entry at ${off} (offset ${e.e_value_offs}, size ${e.e_value_size}) lies outside the area`, { structure, location });
      value = buf.slice(vs, vs + e.e_value_size);
    }
    const prefix = PREFIXES[e.e_name_index] ?? `unknown${e.e_name_index}.`;
    out.push({ name: prefix + decoder.decode(suffix), index: e.e_name_index, suffix, value, valueInode: e.e_value_inum, valueSize: e.e_value_size, hash: e.e_hash });
    off = (nameEnd + 3) & ~3;
  }
  return out;
}

/** In-inode xattrs: the area from 128 + i_extra_isize to the end of the inode slot. */
export function parseInodeXattrs(raw: Uint8Array, extraIsize: number, ino: number): XattrEntry[] {
  const start = inodeXattrStart(extraIsize);
  if (start + XattrIbodyHeaderLayout.size > raw.length) return [];
  if (XattrIbodyHeaderLayout.decode(raw, start).h_magic !== XATTR_MAGIC) return [];
  const area = raw.subarray(start + XattrIbodyHeaderLayout.size);
  return parseEntries(area, 0, 0, area.length, `inode ${ino} in-inode xattrs`, { kind: 'byte', offset: start });
}

export function xattrBlockChecksum(block: Uint8Array, blockNr: number, fsSeed: number): number {
  const seed = crc32c(fsSeed, le64(blockNr));
  return crc32cSkipping(seed, block, XattrBlockHeaderLayout.offsetOf('h_checksum'));
}

export function parseXattrBlock(block: Uint8Array, blockNr: number, opts: { fsSeed: number | null; verify: boolean }): XattrEntry[] {
  const structure = 'xattr block', location: Location = { kind: 'block', block: blockNr };
  const h = XattrBlockHeaderLayout.decode(block);
  if (h.h_magic !== XATTR_MAGIC) throw new Ext4Error('EFSCORRUPTED', 'bad xattr block magic', { structure, location });
  if (h.h_blocks !== 1) throw new Ext4Error('EFSCORRUPTED', `h_blocks ${h.h_blocks} != 1`, { structure, location });
  if (opts.verify && opts.fsSeed !== null) {
    const want = xattrBlockChecksum(block, blockNr, opts.fsSeed);
    if (want !== h.h_checksum) throw new Ext4Error('EFSBADCRC', `checksum 0x${h.h_checksum.toString(16)} != computed 0x${want.toString(16)}`, { structure, location });
  }
  return parseEntries(block, 32, 0, block.length, structure, location);
}
