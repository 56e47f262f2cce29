/**
 * Inline data (INCOMPAT_INLINE_DATA, fs/ext4/inline.c): a small file's or
 * directory's content kept in the inode — the 60 bytes of i_block, then the
 * value of the in-inode xattr "system.data" (index 7, name "data"). The
 * inode has the INLINE_DATA flag and no EXTENTS flag; i_blocks is 0.
 *
 * This module holds the content side: whether an inode can be inline, the
 * content read and written as the kernel lays it out (ext4_create_inline_data,
 * ext4_write_inline_data), a new inline directory (ext4_init_inline_dir),
 * dropping the inline form before a file gets blocks
 * (ext4_destroy_inline_data), and truncate of an inline file (ext4_setattr).
 * Directory entries in it: inline-data-dir.ts.
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
import { blockMapExclude, remapInode, setSize, txFileMap } from './remap.js';
import { allocateBlocks, inodeGoalBlock } from './alloc.js';

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

/** EPERM / EOPNOTSUPP for a write to an inline file that no write may change (remap.ts assertMutableRegularFile's rules). */
function assertWritableInline(inode: Inode): void {
  const where = { structure: `inode ${inode.ino}`, location: { kind: 'inode', ino: inode.ino } as const };
  if (inode.flags & (INODE_FLAGS.IMMUTABLE | INODE_FLAGS.APPEND)) throw new Ext4Error('EPERM', `inode ${inode.ino} is immutable or append-only`, where);
  // What the extent path refuses too (remap.ts assertMutableRegularFile).
  if (inode.flags & (INODE_FLAGS.ENCRYPT | INODE_FLAGS.VERITY | INODE_FLAGS.JOURNAL_DATA))
    throw new Ext4Error('EOPNOTSUPP', `inode ${inode.ino} is encrypted, verity or data-journaled`, where);
}

/**
 * ext4_convert_inline_data: the file leaves its inode for block 0, whose image is `blk` (the
 * content, zeros after it), written as ordered data. Sets the size; does not write the inode.
 */
async function moveToBlock(tx: Transaction, inode: Inode, blk: Uint8Array, size: number): Promise<void> {
  const fs = tx.fs;
  await destroyInlineData(tx, inode);
  const exclude = inode.flags & INODE_FLAGS.EXTENTS ? undefined : blockMapExclude(fs.sb);
  const [run] = await allocateBlocks(tx, { goal: inodeGoalBlock(fs.sb, inode.ino, true), length: 1, ...(exclude ? { exclude } : {}) });
  tx.writeData(run!.start, blk);
  await remapInode(tx, inode, await txFileMap(tx, inode), [{ logical: 0, physical: run!.start, length: 1, unwritten: false }]);
  setSize(tx, inode, size);
}

/**
 * truncate(2) of an inline file, as ext4_setattr does it. Shrinking (or the same size) keeps it
 * inline, cut to `size` (ext4_inline_data_truncate: system.data shortened, not dropped). Growing
 * within the inline area it has (60 bytes of i_block plus system.data's length) keeps it inline
 * too, with the size raised. Growing past it moves the content to block 0 first
 * (ext4_convert_inline_data), the rest of the new size a hole. Sets the size; does not write the
 * inode. The caller checks the size against the file size limit.
 */
export async function truncateInlineFile(tx: Transaction, inode: Inode, size: number): Promise<void> {
  assertWritableInline(inode);
  const area = await readInlineData(tx, inode);
  if (size <= inode.size) return writeInlineData(tx, inode, area.slice(0, size));
  if (size <= area.length) {
    // Bytes past i_size in the area are zeros (the cut above keeps them so); made sure of, as they become file bytes.
    if (area.subarray(inode.size, size).some((b) => b !== 0)) await writeInlineData(tx, inode, area.fill(0, inode.size, size));
    setSize(tx, inode, size);
    return;
  }
  const blk = new Uint8Array(tx.fs.blockSize);
  blk.set(area.subarray(0, inode.size));
  await moveToBlock(tx, inode, blk, size);
}

/**
 * pwrite(2) to an inline file, as ext4_write_begin does it (ext4_try_to_write_inline_data): when
 * the write ends within the most the inode can hold inline (get_max_inline_xattr_value_size), the
 * file stays inline with system.data grown as needed; else its content moves to block 0 first
 * (ext4_convert_inline_data_to_extent) together with the part of the write that falls in that
 * block. Returns null when the write is done, else what is left of it (past block 0) for the
 * caller's ordinary write path: the size is then a whole block, so that path has no stale tail
 * to zero in a block it cannot read yet. Does not write the inode.
 */
export async function pwriteInlineFile(tx: Transaction, inode: Inode, data: Uint8Array, position: number): Promise<{ data: Uint8Array; position: number } | null> {
  assertWritableInline(inode);
  const fs = tx.fs, bs = fs.blockSize;
  const old = (await readInlineData(tx, inode)).subarray(0, inode.size);
  const end = position + data.length;
  if (end <= MIN_INLINE_SIZE + maxInlineValueSize(fs, inode)) {
    const next = new Uint8Array(Math.max(inode.size, end));
    next.set(old);
    next.set(data, position);
    await writeInlineData(tx, inode, next);
    return null;
  }
  const blk = new Uint8Array(bs);
  blk.set(old);
  if (position < bs) blk.set(data.subarray(0, bs - position), position);
  if (end <= bs) {
    await moveToBlock(tx, inode, blk, Math.max(inode.size, end));
    return null;
  }
  await moveToBlock(tx, inode, blk, bs);
  return position >= bs ? { data, position } : { data: data.subarray(bs - position), position: bs };
}
