/**
 * Inline data (INCOMPAT_INLINE_DATA, fs/ext4/inline.c): a small file's or
 * directory's content kept in the inode — the 60 bytes of i_block, then the
 * value of the in-inode xattr "system.data" (index 7, name "data"). The
 * inode has the INLINE_DATA flag and no EXTENTS flag; i_blocks is 0.
 *
 * This module holds the content side: whether an inode can be inline, the
 * content read and written as the kernel lays it out (ext4_create_inline_data,
 * ext4_write_inline_data), a new inline directory (ext4_init_inline_dir),
 * and dropping the inline form before a file gets blocks
 * (ext4_destroy_inline_data). Directory entries in it: inline-data-dir.ts.
 */
import { Ext4Error } from '../errors.js';
import type { FsContext } from './fs-context.js';
import type { Transaction } from './transaction.js';
import { INCOMPAT } from './superblock.js';
import { INODE_FLAGS, hasInlineData, type Inode } from './inode.js';
import { inodeXattrStart, parseInodeXattrs, XattrEntryLayout, XattrIbodyHeaderLayout, XattrListEndLayout, type XattrEntry } from './xattr.js';
import { editXattr, type XattrName } from './xattr-edit.js';
import { writeHeader } from './extents.js';
import { DirEntryLayout, INLINE_DOTDOT_SIZE, INLINE_IBLOCK_SIZE, InlineDotDotLayout } from './directory.js';
import { setSize } from './remap.js';

/** The xattr that continues inline content past i_block: system.data (EXT4_XATTR_INDEX_SYSTEM = 7). */
export const SYSTEM_DATA: XattrName = { index: 7, suffix: new Uint8Array([0x64, 0x61, 0x74, 0x61]) };
/** EXT4_MIN_INLINE_DATA_SIZE: the i_block part. */
export const MIN_INLINE_SIZE = INLINE_IBLOCK_SIZE;

const round4 = (n: number) => (n + 3) & ~3;
const isSystemData = (e: XattrEntry) => e.index === 7 && e.suffix.length === 4 && e.suffix.every((c, i) => c === SYSTEM_DATA.suffix[i]);

/** Bytes of the in-inode xattr area after its header (0 without one). */
function ibodyCapacity(fs: FsContext, inode: Inode): number {
  if (fs.sb.s_inode_size <= 128 || inode.extraIsize < 4) return 0;
  return Math.max(0, fs.sb.s_inode_size - inodeXattrStart(inode.extraIsize) - XattrIbodyHeaderLayout.size);
}

/** The in-inode xattrs of `inode` (as changed in memory). */
function ibodyXattrs(fs: FsContext, inode: Inode): XattrEntry[] {
  return ibodyCapacity(fs, inode) ? parseInodeXattrs(inode.raw, inode.extraIsize, inode.ino) : [];
}

/**
 * get_max_inline_xattr_value_size: the largest system.data value the inode
 * body can hold next to its other in-inode xattrs (4-byte multiple).
 */
export function maxInlineValueSize(fs: FsContext, inode: Inode): number {
  const cap = ibodyCapacity(fs, inode);
  if (!cap) return -1;
  let used = XattrListEndLayout.size + round4(XattrEntryLayout.size + SYSTEM_DATA.suffix.length);
  for (const e of ibodyXattrs(fs, inode)) if (!isSystemData(e)) used += round4(XattrEntryLayout.size + e.suffix.length) + (e.valueInode ? 0 : round4(e.valueSize));
  return Math.max(-1, (cap - used) & ~3);
}

/** Whether a new inode can keep its content inline (the feature, and room for system.data in its body). */
export function canInline(fs: FsContext, inode: Inode): boolean {
  return (fs.sb.s_feature_incompat & INCOMPAT.INLINE_DATA) !== 0 && maxInlineValueSize(fs, inode) >= 0;
}

/** The system.data value of an inline inode (empty when absent). */
export function inlineValue(fs: FsContext, inode: Inode): Uint8Array {
  const e = ibodyXattrs(fs, inode).find(isSystemData);
  if (!e) return new Uint8Array(0);
  if (!e.value) throw new Ext4Error('EFSCORRUPTED', `inode ${inode.ino}: system.data lives in an EA inode`, { structure: `inode ${inode.ino}`, location: { kind: 'inode', ino: inode.ino } });
  return e.value;
}

/** The whole inline content (i_block, then system.data), as stored. */
export async function readInlineData(tx: Transaction, inode: Inode): Promise<Uint8Array> {
  const v = inlineValue(tx.fs, inode);
  const all = new Uint8Array(MIN_INLINE_SIZE + v.length);
  all.set(inode.base.i_block.subarray(0, MIN_INLINE_SIZE));
  all.set(v, MIN_INLINE_SIZE);
  return all;
}

/** Set the system.data value (kept in the inode body: the caller checked it fits). */
export async function setInlineValue(tx: Transaction, inode: Inode, value: Uint8Array): Promise<void> {
  if (value.length > maxInlineValueSize(tx.fs, inode))
    throw new Ext4Error('ENOSPC', `inline data of ${MIN_INLINE_SIZE + value.length} bytes does not fit inode ${inode.ino}`);
  await editXattr(tx, inode, SYSTEM_DATA, value);
}

function markInline(inode: Inode): void {
  inode.flags = (inode.flags & ~INODE_FLAGS.EXTENTS) | INODE_FLAGS.INLINE_DATA;
  inode.base.i_flags = inode.flags;
}

/**
 * ext4_init_inline_dir: a new directory kept in its inode — '..' as the
 * first 4 bytes of i_block, an empty entry over the other 56, an empty
 * system.data, i_size 60. ('.' is implied.) Does not write the inode.
 */
export async function initInlineDir(tx: Transaction, inode: Inode, parent: number): Promise<void> {
  const iblock = new Uint8Array(MIN_INLINE_SIZE);
  InlineDotDotLayout.encode({ parent }, iblock, 0);
  DirEntryLayout.encode({ inode: 0, rec_len: MIN_INLINE_SIZE - INLINE_DOTDOT_SIZE, name_len: 0, file_type: 0 }, iblock, INLINE_DOTDOT_SIZE);
  inode.base.i_block = iblock;
  markInline(inode);
  await editXattr(tx, inode, SYSTEM_DATA, new Uint8Array(0));
  setSize(tx, inode, MIN_INLINE_SIZE);
}

/**
 * Store `data` as an inline file's whole content (ext4_write_inline_data):
 * i_block first, the rest in system.data; sets the flag and i_size. ENOSPC
 * when it does not fit (the caller then writes blocks). Does not write the inode.
 */
export async function writeInlineData(tx: Transaction, inode: Inode, data: Uint8Array): Promise<void> {
  if (!canInline(tx.fs, inode) || data.length > MIN_INLINE_SIZE + maxInlineValueSize(tx.fs, inode))
    throw new Ext4Error('ENOSPC', `${data.length} bytes do not fit inline in inode ${inode.ino}`);
  const iblock = new Uint8Array(MIN_INLINE_SIZE);
  iblock.set(data.subarray(0, MIN_INLINE_SIZE));
  inode.base.i_block = iblock;
  markInline(inode);
  await editXattr(tx, inode, SYSTEM_DATA, data.length > MIN_INLINE_SIZE ? data.subarray(MIN_INLINE_SIZE) : new Uint8Array(0));
  setSize(tx, inode, data.length);
}

/**
 * ext4_destroy_inline_data: drop system.data, zero i_block, clear the flag;
 * on an extent filesystem the inode gets the EXTENTS flag and an empty
 * extent root (ext4_ext_tree_init). The content is the caller's (read it
 * first). Does not write the inode.
 */
export async function destroyInlineData(tx: Transaction, inode: Inode): Promise<void> {
  if (!hasInlineData(inode)) return;
  if (ibodyXattrs(tx.fs, inode).some(isSystemData)) await editXattr(tx, inode, SYSTEM_DATA, null);
  const iblock = new Uint8Array(MIN_INLINE_SIZE);
  inode.flags &= ~INODE_FLAGS.INLINE_DATA;
  if (tx.fs.sb.s_feature_incompat & INCOMPAT.EXTENTS) {
    inode.flags |= INODE_FLAGS.EXTENTS;
    writeHeader(iblock, { entries: 0, max: 4, depth: 0 });
  }
  inode.base.i_flags = inode.flags;
  inode.base.i_block = iblock;
}
