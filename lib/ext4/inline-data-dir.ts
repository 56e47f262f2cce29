/**
 * Entries of an inline directory (fs/ext4/inline.c): '..' is the first 4
 * bytes of i_block, entries tile i_block[4..60) and, once it has grown, the
 * system.data value — each area a rec_len chain of its own, edited like a
 * block (ext4_add_dirent_to_inline / ext4_delete_inline_entry). When the
 * i_block area is full the value grows to all the room the inode body has
 * (ext4_update_inline_dir); when that is full too the directory moves to a
 * block (ext4_convert_inline_dir) and the caller adds the entry there.
 * In a casefolded directory names match folded (`ci`, casefold.ts), as
 * ext4_find_dest_de and ext4_search_dir do through ext4_match; the area has no
 * hashes, so nothing else differs.
 */
import { Ext4Error } from '../errors.js';
import type { Transaction } from './transaction.js';
import { INCOMPAT } from './superblock.js';
import type { Inode } from './inode.js';
import {
  DirEntryLayout, DIRENT_HEADER_SIZE, DIR_TAIL_SIZE, FileType, INLINE_DOTDOT_SIZE, InlineDotDotLayout, dirRecLen, encodeRecLen,
  decodeRecLen, initDirTail, parseInlineDir, setDirBlockChecksum, type InlineDirEntry,
} from './directory.js';
import { MIN_INLINE_SIZE, destroyInlineData, inlineValue, maxInlineValueSize, setInlineValue } from './inline-data.js';
import { allocateBlocks, inodeGoalBlock } from './alloc.js';
import { blockMapExclude, remapInode, setSize, txFileMap } from './remap.js';
import { bytesEqual } from './bytes.js';
import type { CiName } from './casefold.js';
import { isExtentMapped } from './inode.js';

/** A live entry of an inline directory. */
export interface InlineEntry {
  name: Uint8Array;
  ino: number;
  fileType: number;
}

interface Areas {
  iblock: Uint8Array;
  value: Uint8Array;
  entries: InlineDirEntry[];
}

function areas(tx: Transaction, dir: Inode): Areas {
  const fs = tx.fs;
  const iblock = dir.base.i_block.slice(0, MIN_INLINE_SIZE);
  const value = inlineValue(fs, dir).slice();
  if (dir.size !== MIN_INLINE_SIZE + value.length)
    throw new Ext4Error('EFSCORRUPTED', `inline directory size ${dir.size} is not 60 + system.data (${value.length})`, { structure: `directory ${dir.ino}`, location: { kind: 'inode', ino: dir.ino } });
  const entries = parseInlineDir(iblock, value, { kind: 'inode', ino: dir.ino }, {
    hasFiletype: (fs.sb.s_feature_incompat & INCOMPAT.FILETYPE) !== 0, inodesCount: fs.sb.s_inodes_count,
  });
  return { iblock, value, entries };
}

const live = (e: InlineDirEntry) => e.inode !== 0 && e.area !== 'synthetic';

/** Whether live entry `e` holds `name`: folded (`ci`) in a casefolded directory, else byte for byte. */
const holds = (e: InlineDirEntry, name: Uint8Array, ci: CiName | null) => live(e) && (ci ? ci.matches(e.name) : bytesEqual(e.name, name));

/** Store changed areas back into the inode (and write it). */
async function store(tx: Transaction, dir: Inode, a: Areas, valueChanged: boolean): Promise<void> {
  dir.base.i_block = a.iblock;
  if (valueChanged) await setInlineValue(tx, dir, a.value);
  await tx.writeInode(dir);
}

/** The parent ('..') of an inline directory. */
export function inlineDotDot(dir: Inode): number {
  return InlineDotDotLayout.decode(dir.base.i_block).parent;
}

/** Live entries, '..' (and '.') left out. */
export function inlineEntries(tx: Transaction, dir: Inode): InlineEntry[] {
  return areas(tx, dir).entries.filter(live).map((e) => ({ name: e.name, ino: e.inode, fileType: e.fileType }));
}

export function inlineFind(tx: Transaction, dir: Inode, name: Uint8Array, ci: CiName | null): InlineEntry | null {
  const e = areas(tx, dir).entries.find((x) => holds(x, name, ci));
  return e ? { name: e.name, ino: e.inode, fileType: e.fileType } : null;
}

/** ext4_find_dest_de + ext4_insert_dentry over one area; returns whether it went in. */
function insertInto(buf: Uint8Array, entries: readonly InlineDirEntry[], name: Uint8Array, ino: number, ft: number, hasFiletype: boolean): boolean {
  const need = dirRecLen(name.length);
  for (const e of entries) {
    const used = e.inode ? dirRecLen(e.nameLen) : 0;
    if (e.recLen - used < need) continue;
    let off = e.offset, rec = e.recLen;
    if (e.inode !== 0) {
      DirEntryLayout.set(buf, 'rec_len', used, e.offset);
      off += used;
      rec -= used;
    }
    DirEntryLayout.encode({ inode: ino, rec_len: rec, name_len: name.length, file_type: hasFiletype ? ft : 0 }, buf, off);
    buf.set(name, off + DIRENT_HEADER_SIZE);
    buf.fill(0, off + DIRENT_HEADER_SIZE + name.length, off + rec);
    return true;
  }
  return false;
}

/**
 * ext4_try_add_inline_entry: add the entry in i_block, else in system.data
 * (grown first to all the inode body's room if it is still empty). Returns
 * false when neither has room: the caller converts the directory.
 */
export async function inlineAdd(tx: Transaction, dir: Inode, name: Uint8Array, ci: CiName | null, ino: number, ft: number): Promise<boolean> {
  const a = areas(tx, dir);
  if (a.entries.some((e) => holds(e, name, ci))) throw new Ext4Error('EEXIST', 'an entry with this name exists', { structure: `directory ${dir.ino}` });
  const hasFiletype = (tx.fs.sb.s_feature_incompat & INCOMPAT.FILETYPE) !== 0;
  if (insertInto(a.iblock, a.entries.filter((e) => e.area === 'iblock'), name, ino, ft, hasFiletype)) {
    await store(tx, dir, a, false);
    return true;
  }
  let xattrEntries = a.entries.filter((e) => e.area === 'xattr');
  if (a.value.length === 0) {
    // ext4_update_inline_dir: worth it only if more than a one-character entry's room is gained.
    const grown = maxInlineValueSize(tx.fs, dir);
    if (grown <= dirRecLen(1)) return false;
    a.value = new Uint8Array(grown);
    DirEntryLayout.encode({ inode: 0, rec_len: grown, name_len: 0, file_type: 0 }, a.value, 0);
    xattrEntries = [{ inode: 0, recLen: grown, nameLen: 0, fileType: 0, name: new Uint8Array(0), offset: 0, area: 'xattr' }];
    if (!insertInto(a.value, xattrEntries, name, ino, ft, hasFiletype)) return false;
    setSize(tx, dir, MIN_INLINE_SIZE + grown);
    await store(tx, dir, a, true);
    return true;
  }
  if (!insertInto(a.value, xattrEntries, name, ino, ft, hasFiletype)) return false;
  await store(tx, dir, a, true);
  return true;
}

/** ext4_delete_inline_entry: merged into the previous entry of its area, or unused when first. */
export async function inlineRemove(tx: Transaction, dir: Inode, name: Uint8Array, ci: CiName | null): Promise<InlineEntry | null> {
  const a = areas(tx, dir);
  for (const area of ['iblock', 'xattr'] as const) {
    const list = a.entries.filter((e) => e.area === area);
    const i = list.findIndex((e) => holds(e, name, ci));
    if (i < 0) continue;
    const buf = area === 'iblock' ? a.iblock : a.value;
    const e = list[i]!;
    if (i > 0) {
      const prev = list[i - 1]!;
      DirEntryLayout.set(buf, 'rec_len', prev.recLen + e.recLen, prev.offset);
      buf.fill(0, e.offset, e.offset + DIRENT_HEADER_SIZE + e.nameLen);
    } else DirEntryLayout.set(buf, 'inode', 0, e.offset);
    await store(tx, dir, a, area === 'xattr');
    return { name: e.name, ino: e.inode, fileType: e.fileType };
  }
  return null;
}

/** Point an entry (or '..') at another inode (ext4_setent on an inline directory). */
export async function inlineSet(tx: Transaction, dir: Inode, name: Uint8Array, ci: CiName | null, ino: number, ft: number): Promise<boolean> {
  const a = areas(tx, dir);
  if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) {
    InlineDotDotLayout.encode({ parent: ino }, a.iblock, 0);
    await store(tx, dir, a, false);
    return true;
  }
  const hasFiletype = (tx.fs.sb.s_feature_incompat & INCOMPAT.FILETYPE) !== 0;
  const e = a.entries.find((x) => holds(x, name, ci));
  if (!e) return false;
  const buf = e.area === 'iblock' ? a.iblock : a.value;
  DirEntryLayout.set(buf, 'inode', ino, e.offset);
  if (hasFiletype) DirEntryLayout.set(buf, 'file_type', ft, e.offset);
  await store(tx, dir, a, e.area === 'xattr');
  return true;
}

/**
 * ext4_convert_inline_dir: move an inline directory to one block — '.'
 * and '..' (12 bytes each), then both areas' entries as they are, the last
 * one stretched to the end of the block (before the checksum tail). The
 * inode loses the inline form and maps the block (allocated at the
 * inode's goal). `dir` is updated in place and written.
 */
export async function convertInlineDir(tx: Transaction, dir: Inode): Promise<void> {
  const fs = tx.fs, bs = fs.blockSize;
  const a = areas(tx, dir);
  const parent = inlineDotDot(dir);
  const csum = fs.inodeCsumSeed(dir);
  const hasFiletype = (fs.sb.s_feature_incompat & INCOMPAT.FILETYPE) !== 0;
  const blk = new Uint8Array(bs);
  DirEntryLayout.encode({ inode: dir.ino, rec_len: 12, name_len: 1, file_type: hasFiletype ? FileType.DIR : 0 }, blk, 0);
  blk[8] = 0x2e;
  DirEntryLayout.encode({ inode: parent, rec_len: 12, name_len: 2, file_type: hasFiletype ? FileType.DIR : 0 }, blk, 12);
  blk[20] = 0x2e;
  blk[21] = 0x2e;
  const body = new Uint8Array(MIN_INLINE_SIZE - INLINE_DOTDOT_SIZE + a.value.length);
  body.set(a.iblock.subarray(INLINE_DOTDOT_SIZE));
  body.set(a.value, MIN_INLINE_SIZE - INLINE_DOTDOT_SIZE);
  blk.set(body, 24);
  // ext4_update_final_de: the chain's last entry takes the rest of the block. (The chain's rec_lens
  // were validated by parseInlineDir in areas(), so this walk is bounded and stays in the body.)
  const end = csum === null ? bs : bs - DIR_TAIL_SIZE;
  let off = 24, last = 24;
  while (off < 24 + body.length) {
    last = off;
    off += decodeRecLen(DirEntryLayout.get(blk, 'rec_len', off), bs);
  }
  DirEntryLayout.set(blk, 'rec_len', encodeRecLen(end - last, bs), last);
  if (csum !== null) {
    initDirTail(blk);
    setDirBlockChecksum(blk, csum);
  }
  await destroyInlineData(tx, dir);
  const exclude = isExtentMapped(dir) ? undefined : blockMapExclude(fs.sb);
  const [run] = await allocateBlocks(tx, { goal: inodeGoalBlock(fs.sb, dir.ino, false), length: 1, ...(exclude ? { exclude } : {}) });
  tx.setBlock(run!.start, blk);
  await remapInode(tx, dir, await txFileMap(tx, dir), [{ logical: 0, physical: run!.start, length: 1, unwritten: false }]);
  setSize(tx, dir, bs);
  await tx.writeInode(dir);
}
