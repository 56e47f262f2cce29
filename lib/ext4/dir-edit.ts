/**
 * Adding and removing directory entries inside a transaction, by the
 * kernel's rules (fs/ext4/namei.c):
 *
 * - linear directories: a new entry goes into the first block with room —
 *   the slack after a live entry's minimal rec_len (which is split off) or
 *   an unused entry (ext4_find_dest_de / ext4_insert_dentry); else a block
 *   is appended (ext4_append). A one-block directory that is full on a
 *   dir_index filesystem becomes indexed instead (make_indexed_dir);
 * - htree directories: the leaf is found by hash (dx_probe); a full leaf
 *   is split in hash order, by size (do_split), and the new block inserted
 *   after the probed slot (dx_insert_block), with the collision bit when the
 *   split falls inside a run of equal hashes; a full index node is split,
 *   a full root pushes its slots down into a new node (one more level, up
 *   to 2 index levels, 3 with large_dir — ext4_dx_add_entry);
 * - removal merges the entry into the previous one's rec_len, or marks it
 *   unused when it is first in its block (ext4_generic_delete_entry);
 *   htree leaves are never merged (neither does the kernel).
 *
 * Checksums (dirent tails, dx tails) are refreshed for every block an edit
 * touched before it returns. The directory inode is written (size, map,
 * INDEX flag) by every call that changes it. Inline-data directories are
 * edited in the inode (inline-data-dir.ts) and moved to a block when they
 * outgrow it, as ext4_try_add_inline_entry / ext4_convert_inline_dir do.
 * Casefolded directories (EXT4_CASEFOLD_FL) compare names folded and hash
 * the folded names (casefold.ts), as ext4_match and ext4fs_dirhash do —
 * inline ones too, and one that outgrows its inode stays casefolded in its
 * block; encrypted directories are refused (EOPNOTSUPP).
 */
import { Ext4Error, type Location } from '../errors.js';
import type { Transaction } from './transaction.js';
import type { FileMap } from './file-map.js';
import { COMPAT, INCOMPAT, S_FLAGS } from './superblock.js';
import { INODE_FLAGS, hasInlineData, isExtentMapped, type Inode } from './inode.js';
import { findExtent, type Extent } from './extents.js';
import {
  DirEntryLayout, DIRENT_HEADER_SIZE, DIR_TAIL_SIZE, EXT4_NAME_LEN, FileType, dirRecLen, encodeRecLen, makeDirBlock,
  readDirBlock, setDirBlockChecksum, type DirEntry, type NewDirEntry,
} from './directory.js';
import {
  DxCountLimitLayout, DxEntryLayout, DxRootInfoLayout, DX_ENTRY_SIZE, DX_NODE_COUNT_OFFSET,
  DX_ROOT_INFO_OFFSET, classifyDirBlock, dxIndexImage, dxSlots, dxSlotIndex, htreeLookup, maxIndirectLevels, parseDxNode, parseDxRoot,
  setDxChecksum, type DxIndexBlock,
} from './htree.js';
import { dirHash } from './dirhash.js';
import { hashSeedWords } from './hash-seed.js';
import { bytesEqual } from './bytes.js';
import { ciHashName, ciLookupName, type CiName } from './casefold.js';
import { allocateBlocks } from './alloc.js';
import { blockMapExclude, remapInode, setSize, txFileMap } from './remap.js';
import { groupFirstBlock, groupOfInode } from './geometry.js';
import { convertInlineDir, inlineAdd, inlineDotDot, inlineEntries, inlineFind, inlineRemove, inlineSet } from './inline-data-dir.js';

/** A live entry found by name: where it is and what it names. */
export interface FoundEntry {
  ino: number;
  fileType: number;
  /** Logical directory block and byte offset of the entry. */
  block: number;
  offset: number;
}

const DOT = new Uint8Array([0x2e]);
const DOTDOT = new Uint8Array([0x2e, 0x2e]);
const isDots = (n: Uint8Array) => bytesEqual(n, DOT) || bytesEqual(n, DOTDOT);

/** dirent file_type for an inode mode's type (FileType in directory.ts). */
export function direntType(type: Inode['type']): number {
  switch (type) {
    case 'file': return FileType.REG_FILE;
    case 'dir': return FileType.DIR;
    case 'chardev': return FileType.CHRDEV;
    case 'blockdev': return FileType.BLKDEV;
    case 'fifo': return FileType.FIFO;
    case 'socket': return FileType.SOCK;
    case 'symlink': return FileType.SYMLINK;
    default: return FileType.UNKNOWN;
  }
}

/**
 * Directory blocks this transaction has verified (checksum, entry shapes) or written itself: a
 * leaf is checked once per transaction, as the kernel checks a buffer once (buffer_verified),
 * not at every lookup and insert of a bulk import.
 */
const verified = new WeakMap<Transaction, Set<number>>();

function verifiedBlocks(tx: Transaction): Set<number> {
  let s = verified.get(tx);
  if (!s) verified.set(tx, (s = new Set()));
  return s;
}

/**
 * Directory maps read in this transaction, for maps held wholly in the inode (no tree or
 * indirect blocks): while i_block, the flags and the size are unchanged, so is the map. Saves
 * walking the map again at every lookup and insert. Read-only to users.
 */
const maps = new WeakMap<Transaction, Map<number, { iblock: Uint8Array; flags: number; size: number; map: FileMap }>>();

function cachedMap(tx: Transaction, dir: Inode): FileMap | null {
  const c = maps.get(tx)?.get(dir.ino);
  return c && c.size === dir.size && c.flags === dir.flags && bytesEqual(c.iblock, dir.base.i_block) ? c.map : null;
}

function rememberMap(tx: Transaction, dir: Inode, map: FileMap): FileMap {
  let m = maps.get(tx);
  if (!m) maps.set(tx, (m = new Map()));
  if (map.metadataBlocks.length === 0) m.set(dir.ino, { iblock: dir.base.i_block.slice(), flags: dir.flags, size: dir.size, map });
  else m.delete(dir.ino);
  return map;
}

/**
 * The leaf parsed last in a transaction, with a copy of its bytes: creating a name looks it up
 * (findDirEntry) and then inserts it (addDirEntry), both in the same leaf; while the block's bytes
 * are unchanged its parse is too, so the second one is skipped. Entries are read-only to users.
 */
const lastLeaves = new WeakMap<Transaction, { phys: number; seed: number | null; image: Uint8Array; entries: readonly DirEntry[] }>();

/** One refresh function per checksum seed (a directory's), not a closure per insert. */
const leafSummers = new Map<number, (b: Uint8Array) => void>();

function leafChecksummer(seed: number): (b: Uint8Array) => void {
  let f = leafSummers.get(seed);
  if (!f) {
    if (leafSummers.size > 1024) leafSummers.clear();
    leafSummers.set(seed, (f = (b) => setDirBlockChecksum(b, seed)));
  }
  return f;
}

/**
 * After an insert into leaf `phys` (bytes `w`, parsed as `entries` before it): the last-leaf cache
 * moves on to the new bytes without a parse — slot `s` keeps its minimal rec_len (when live) and
 * the new entry follows it at `off` — so the next create in the same leaf skips readDirBlock.
 */
function noteInsert(tx: Transaction, phys: number, entries: readonly DirEntry[], w: Uint8Array, s: DirEntry, sRec: number, add: DirEntry): void {
  const last = lastLeaves.get(tx);
  if (!last || last.phys !== phys || last.entries !== entries || last.image.length !== w.length) return;
  const i = entries.indexOf(s);
  const next = entries.slice();
  if (s.inode !== 0) next.splice(i, 1, { ...s, recLen: sRec }, add);
  else next[i] = add;
  last.image.set(w);
  last.entries = next;
}

/** a equals b (same length), a word at a time when both are 4-byte aligned. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (((a.byteOffset | b.byteOffset | a.length) & 3) !== 0) return bytesEqual(a, b);
  const wa = new Uint32Array(a.buffer, a.byteOffset, a.length >>> 2), wb = new Uint32Array(b.buffer, b.byteOffset, b.length >>> 2);
  for (let i = 0; i < wa.length; i++) if (wa[i] !== wb[i]) return false;
  return true;
}

/** One directory being edited in one transaction: its map and the blocks touched so far. */
class DirEdit {
  readonly bs: number;
  readonly csumSeed: number | null;
  readonly hasFiletype: boolean;
  /** EXT4_CASEFOLD_FL: names match and hash folded. */
  readonly casefolded: boolean;
  map!: FileMap;
  /** Logical blocks changed, with their kind (their checksums are refreshed at the end). */
  readonly dirty = new Map<number, 'leaf' | 'dx'>();
  inodeChanged = false;

  constructor(readonly tx: Transaction, readonly dir: Inode) {
    const fs = tx.fs;
    this.bs = fs.blockSize;
    this.csumSeed = fs.inodeCsumSeed(dir);
    this.hasFiletype = (fs.sb.s_feature_incompat & INCOMPAT.FILETYPE) !== 0;
    this.casefolded = (dir.flags & INODE_FLAGS.CASEFOLD) !== 0;
  }

  static async open(tx: Transaction, dir: Inode): Promise<DirEdit> {
    const where = { structure: `directory ${dir.ino}`, location: { kind: 'inode', ino: dir.ino } satisfies Location };
    if (dir.type !== 'dir') throw new Ext4Error('ENOTDIR', `inode ${dir.ino} is not a directory`, where);
    if (hasInlineData(dir)) throw new Ext4Error('EOPNOTSUPP', `directory ${dir.ino} keeps its entries inline (inline_data): not supported yet`, where);
    refuseSpecial(tx, dir);
    if (dir.size % tx.fs.blockSize !== 0 || dir.size === 0) throw new Ext4Error('EFSCORRUPTED', `directory size ${dir.size} is not a positive multiple of the block size`, where);
    const e = new DirEdit(tx, dir);
    e.map = cachedMap(tx, dir) ?? rememberMap(tx, dir, await txFileMap(tx, dir));
    return e;
  }

  get nblocks(): number {
    return this.dir.size / this.bs;
  }

  get indexed(): boolean {
    return (this.dir.flags & INODE_FLAGS.INDEX) !== 0 && (this.tx.fs.sb.s_feature_compat & COMPAT.DIR_INDEX) !== 0;
  }

  where(lb: number): Location {
    return { kind: 'directory-block', dir: this.dir.ino, block: lb };
  }

  phys(lb: number): number {
    const { extent } = findExtent(this.map.extents, lb);
    if (!extent || extent.unwritten || lb >= this.nblocks)
      throw new Ext4Error('EFSCORRUPTED', `directory block ${lb} is not mapped`, { structure: `directory ${this.dir.ino}`, location: this.where(lb) });
    return extent.physical + (lb - extent.logical);
  }

  read(lb: number): Promise<Uint8Array> {
    // Our own image as it is (its leaf checksum may be deferred, see finish): not through readBlock, which would refresh it.
    const phys = this.phys(lb);
    const own = this.tx.ownBlock(phys);
    return own ? Promise.resolve(own) : this.tx.readBlock(phys);
  }

  async write(lb: number, kind: 'leaf' | 'dx'): Promise<Uint8Array> {
    const phys = this.phys(lb);
    const b = await this.tx.block(phys);
    this.dirty.set(lb, kind);
    verifiedBlocks(this.tx).add(phys);
    return b;
  }

  parseLeaf(lb: number, blk: Uint8Array): readonly DirEntry[] {
    const fs = this.tx.fs;
    const seen = verifiedBlocks(this.tx);
    const phys = this.phys(lb);
    const last = lastLeaves.get(this.tx);
    if (last && last.phys === phys && last.seed === this.csumSeed && last.image.length === blk.length && sameBytes(last.image, blk)) return last.entries;
    const entries = readDirBlock(blk, {
      blockSize: this.bs, hasFiletype: this.hasFiletype, csum: this.csumSeed === null ? null : { seed: this.csumSeed },
      verify: fs.verify && !this.dirty.has(lb) && !seen.has(phys), where: this.where(lb), inodesCount: fs.sb.s_inodes_count,
    }).entries;
    seen.add(phys);
    if (last && last.image.length === blk.length) {
      last.image.set(blk);
      last.phys = phys;
      last.seed = this.csumSeed;
      last.entries = entries;
    } else lastLeaves.set(this.tx, { phys, seed: this.csumSeed, image: blk.slice(), entries });
    return entries;
  }

  /** End of the entry area of a leaf (before the checksum tail). */
  get leafEnd(): number {
    return this.csumSeed === null ? this.bs : this.bs - DIR_TAIL_SIZE;
  }

  /** Append a block to the directory (ext4_append): allocated near its last block, mapped, size grown. */
  async append(image: Uint8Array): Promise<number> {
    const tx = this.tx, fs = tx.fs;
    const lb = this.nblocks;
    const last = this.map.extents[this.map.extents.length - 1];
    const goal = last ? last.physical + last.length : groupFirstBlock(fs.sb, groupOfInode(fs.sb, this.dir.ino));
    const exclude = isExtentMapped(this.dir) ? undefined : blockMapExclude(fs.sb);
    const [run] = await allocateBlocks(tx, { goal, length: 1, ...(exclude ? { exclude } : {}) });
    const add: Extent = { logical: lb, physical: run!.start, length: 1, unwritten: false };
    await remapInode(tx, this.dir, this.map, [...this.map.extents, add]);
    setSize(tx, this.dir, this.dir.size + this.bs);
    this.inodeChanged = true;
    this.map = rememberMap(tx, this.dir, await txFileMap(tx, this.dir));
    tx.setBlock(run!.start, image);
    verifiedBlocks(tx).add(run!.start);
    return lb;
  }

  /**
   * Refresh the checksums of every touched block and write the inode if it changed. A leaf's
   * (a crc of the whole block) is deferred to the transaction (Transaction.deferBlockChecksum):
   * a bulk import inserts hundreds of names into one leaf, which is then checksummed once, before
   * anyone else reads it and at the latest at finalise. Index blocks' are cheap and done now.
   */
  async finish(): Promise<void> {
    const seed = this.csumSeed;
    if (seed !== null) {
      for (const [lb, kind] of this.dirty) {
        const phys = this.phys(lb);
        const b = await this.tx.block(phys);
        if (kind === 'leaf') this.tx.deferBlockChecksum(phys, leafChecksummer(seed));
        else setDxChecksum(b, seed, this.bs);
      }
    }
    if (this.inodeChanged) await this.tx.writeInode(this.dir);
  }

  hashOf(name: Uint8Array, version: number): { hash: number; minor: number } {
    const sb = this.tx.fs.sb;
    return dirHash(this.casefolded ? ciHashName(name) : name, version, hashSeedWords(sb.s_hash_seed), !(sb.s_flags & S_FLAGS.UNSIGNED_HASH));
  }

  /** How `name` matches entries here: folded in a casefolded directory (EINVAL for a name that is not UTF-8 under strict encoding), else null: byte for byte. */
  ciName(name: Uint8Array): CiName | null {
    return this.casefolded ? ciLookupName(name, this.tx.fs.sb) : null;
  }

  emptyLeaf(entries: readonly NewDirEntry[] = []): Uint8Array {
    return makeDirBlock(entries, { blockSize: this.bs, hasFiletype: this.hasFiletype, csum: this.csumSeed === null ? null : { seed: this.csumSeed } });
  }
}

/** Whether entry `e` holds `name`: folded (`ci`) in a casefolded directory, else byte for byte. */
function sameName(e: DirEntry, name: Uint8Array, ci: CiName | null): boolean {
  return ci ? ci.matches(e.name) : e.nameLen === name.length && bytesEqual(e.name, name);
}

/** A name a directory entry can hold (ENOENT empty, ENAMETOOLONG, EINVAL for '/' or NUL). */
export function checkName(name: Uint8Array): void {
  if (name.length === 0) throw new Ext4Error('ENOENT', 'empty name');
  if (name.length > EXT4_NAME_LEN) throw new Ext4Error('ENAMETOOLONG', `name of ${name.length} bytes (at most ${EXT4_NAME_LEN})`);
  if (name.includes(0x2f) || name.includes(0)) throw new Ext4Error('EINVAL', 'a name cannot contain "/" or NUL');
}

/**
 * Put the entry into leaf `lb` (its parsed `entries`; `dst` gives the writable block) if it has room (ext4_find_dest_de +
 * ext4_insert_dentry): an unused entry big enough, or a live one whose
 * rec_len exceeds its minimum by enough, split. EEXIST if the name is in the
 * block (folded, `ci`, in a casefolded directory). Returns whether it was inserted.
 */
function insertIntoLeaf(d: DirEdit, lb: number, entries: readonly DirEntry[], name: Uint8Array, ci: CiName | null, ino: number, ft: number, dst: () => Promise<Uint8Array>): Promise<boolean> | boolean {
  const need = dirRecLen(name.length);
  let slot: DirEntry | null = null;
  for (const e of entries) {
    if (e.inode !== 0 && sameName(e, name, ci))
      throw new Ext4Error('EEXIST', 'an entry with this name exists', { structure: `directory ${d.dir.ino}`, location: d.where(lb) });
    const used = e.inode ? dirRecLen(e.nameLen) : 0;
    if (!slot && e.recLen - used >= need) slot = e;
  }
  if (!slot) return false;
  const s = slot;
  return dst().then((w) => {
    let off = s.offset, rec = s.recLen;
    if (s.inode !== 0) {
      const used = dirRecLen(s.nameLen);
      DirEntryLayout.set(w, 'rec_len', encodeRecLen(used, d.bs), s.offset);
      off += used;
      rec -= used;
    }
    writeEntry(d, w, off, rec, name, ino, ft);
    noteInsert(d.tx, d.phys(lb), entries, w, s, off - s.offset, { inode: ino, recLen: rec, nameLen: name.length, fileType: d.hasFiletype ? ft : 0, name: name.slice(), offset: off });
    return true;
  });
}

function writeEntry(d: DirEdit, w: Uint8Array, off: number, rec: number, name: Uint8Array, ino: number, ft: number): void {
  DirEntryLayout.encode({ inode: ino, rec_len: encodeRecLen(rec, d.bs), name_len: name.length, file_type: d.hasFiletype ? ft : 0 }, w, off);
  w.set(name, off + DIRENT_HEADER_SIZE);
  w.fill(0, off + DIRENT_HEADER_SIZE + name.length, off + rec);
}

interface Live {
  name: Uint8Array;
  ino: number;
  ft: number;
  hash: number;
  minor: number;
}

/**
 * Split a full leaf's live entries (sorted by hash) the way do_split does:
 * from the top, move entries to the new block while less than half a
 * block's worth has been moved; if that took everything but the first,
 * split by count. Returns the split index, the new block's lowest hash and
 * whether the split falls inside a run of equal hashes (the slot then gets
 * bit 0, the collision continuation).
 */
function splitPoint(sorted: readonly Live[], bs: number): { split: number; hash2: number; continued: boolean } {
  const count = sorted.length;
  let size = 0, move = 0, i = count - 1;
  for (; i >= 0; i--) {
    const s = dirRecLen(sorted[i]!.name.length);
    if (size + s / 2 > bs / 2) break;
    size += s;
    move++;
  }
  const split = i > 0 ? count - move : Math.floor(count / 2);
  const hash2 = sorted[split]!.hash;
  return { split, hash2, continued: hash2 === sorted[split - 1]!.hash };
}

const asNew = (l: Live): NewDirEntry => ({ inode: l.ino, name: l.name, fileType: l.ft });

/**
 * Sort live entries by hash and build the two halves of a split; the new
 * entry goes into the half its hash belongs to.
 */
function splitLeaves(d: DirEdit, live: Live[], add: Live): { low: Uint8Array; high: Uint8Array; hash: number } {
  live.sort((a, b) => a.hash - b.hash);
  const { split, hash2, continued } = splitPoint(live, d.bs);
  const low = live.slice(0, split), high = live.slice(split);
  (add.hash >= hash2 ? high : low).push(add);
  const mk = (l: Live[]) => {
    try {
      return d.emptyLeaf(l.map(asNew));
    } catch (e) {
      throw new Ext4Error('EFSCORRUPTED', `leaf split left a half that does not fit a block (${(e as Error).message})`, { structure: `directory ${d.dir.ino}` });
    }
  };
  return { low: mk(low), high: mk(high), hash: (hash2 | (continued ? 1 : 0)) >>> 0 };
}

// ---------------------------------------------------------------------------------------------- index blocks

interface Frame {
  lb: number;
  countOffset: number;
  /** Slot the probe went through. */
  at: number;
}

function dxCount(b: Uint8Array, off: number): { limit: number; count: number } {
  return DxCountLimitLayout.decode(b, off);
}

/**
 * Insert slot (hash → block) after frames[level].at (dx_insert_block),
 * splitting full index blocks upwards and pushing a full root down a level.
 */
async function insertSlot(d: DirEdit, frames: Frame[], level: number, hash: number, block: number): Promise<void> {
  const f = frames[level]!;
  const w = await d.write(f.lb, 'dx');
  const { limit, count } = dxCount(w, f.countOffset);
  if (count < limit) {
    const at = f.countOffset + (f.at + 1) * DX_ENTRY_SIZE;
    w.copyWithin(at + DX_ENTRY_SIZE, at, f.countOffset + count * DX_ENTRY_SIZE);
    DxEntryLayout.encode({ hash, block }, w, at);
    DxCountLimitLayout.encode({ limit, count: count + 1 }, w, f.countOffset);
    return;
  }
  if (level > 0) {
    // Split the node in half by count; the upper half's first hash goes to the parent.
    const c1 = count >>> 1;
    const upper = w.slice(f.countOffset + c1 * DX_ENTRY_SIZE, f.countOffset + count * DX_ENTRY_SIZE);
    const hash2 = DxEntryLayout.get(upper, 'hash', 0);
    const nb = await d.append(dxIndexImage(d.bs, d.csumSeed !== null, upper));
    d.dirty.set(nb, 'dx');
    w.fill(0, f.countOffset + c1 * DX_ENTRY_SIZE, f.countOffset + count * DX_ENTRY_SIZE);
    DxCountLimitLayout.encode({ limit, count: c1 }, w, f.countOffset);
    const depth = frames.length;
    await insertSlot(d, frames, level - 1, hash2, nb);
    // (a root that grew a level pushed every frame below it down by one)
    const lvl = level + frames.length - depth;
    if (f.at >= c1) frames[lvl] = { lb: nb, countOffset: DX_NODE_COUNT_OFFSET, at: f.at - c1 };
    return insertSlot(d, frames, lvl, hash, block);
  }
  // The root is full: its slots move to a new node, the root keeps one slot pointing there.
  const levels = DxRootInfoLayout.get(w, 'indirect_levels', DX_ROOT_INFO_OFFSET);
  const largeDir = (d.tx.fs.sb.s_feature_incompat & INCOMPAT.LARGEDIR) !== 0;
  if (levels >= maxIndirectLevels(largeDir))
    throw new Ext4Error('ENOSPC', `directory ${d.dir.ino} index is full (${levels + 1} levels${largeDir ? '' : '; large_dir allows one more'})`, { structure: `directory ${d.dir.ino}`, location: d.where(0) });
  const slots = w.slice(f.countOffset, f.countOffset + count * DX_ENTRY_SIZE);
  const nb = await d.append(dxIndexImage(d.bs, d.csumSeed !== null, slots));
  d.dirty.set(nb, 'dx');
  w.fill(0, f.countOffset + DX_ENTRY_SIZE, f.countOffset + count * DX_ENTRY_SIZE);
  DxCountLimitLayout.encode({ limit, count: 1 }, w, f.countOffset);
  DxEntryLayout.set(w, 'block', nb, f.countOffset);
  DxRootInfoLayout.set(w, 'indirect_levels', levels + 1, DX_ROOT_INFO_OFFSET);
  frames.splice(1, 0, { lb: nb, countOffset: DX_NODE_COUNT_OFFSET, at: f.at });
  frames[0] = { ...f, at: 0 };
  return insertSlot(d, frames, 1, hash, block);
}

// ---------------------------------------------------------------------------------------------- adding

/**
 * Turn a full one-block directory into an indexed one (make_indexed_dir):
 * block 0 becomes the dx root ('.' 12 bytes, '..' spanning the rest,
 * dx_root_info with the superblock's default hash version), its entries and
 * the new one go, split in hash order, into two new leaves.
 */
async function makeIndexed(d: DirEdit, blk0: Uint8Array, entries: readonly DirEntry[], add: { name: Uint8Array; ino: number; ft: number }): Promise<void> {
  const [dot, dotdot] = entries;
  if (!dot || !dotdot || dot.offset !== 0 || dot.recLen !== 12 || !bytesEqual(dot.name, DOT) || dotdot.offset !== 12 || !bytesEqual(dotdot.name, DOTDOT))
    throw new Ext4Error('EFSCORRUPTED', "block 0 does not begin with '.' (12 bytes) and '..'", { structure: `directory ${d.dir.ino}`, location: d.where(0) });
  const sb = d.tx.fs.sb;
  const version = sb.s_def_hash_version;
  const live: Live[] = entries.slice(2).filter((e) => e.inode !== 0).map((e) => ({ name: e.name, ino: e.inode, ft: e.fileType, ...d.hashOf(e.name, version) }));
  const { low, high, hash } = splitLeaves(d, live, { ...add, ...d.hashOf(add.name, version) });
  const l1 = await d.append(low);
  const l2 = await d.append(high);
  d.dirty.set(l1, 'leaf');
  d.dirty.set(l2, 'leaf');
  const root = dxIndexImage(d.bs, d.csumSeed !== null, dxSlots([{ hash: 0, block: l1 }, { hash, block: l2 }]), { head: blk0, hashVersion: version, levels: 0 });
  d.tx.setBlock(d.phys(0), root);
  d.dirty.set(0, 'dx');
  d.dir.flags |= INODE_FLAGS.INDEX;
  d.dir.base.i_flags = d.dir.flags;
  d.inodeChanged = true;
}

async function addLinear(d: DirEdit, name: Uint8Array, ci: CiName | null, ino: number, ft: number): Promise<void> {
  const dirIndex = (d.tx.fs.sb.s_feature_compat & COMPAT.DIR_INDEX) !== 0;
  const n = d.nblocks;
  for (let lb = 0; lb < n; lb++) {
    const blk = await d.read(lb);
    const entries = d.parseLeaf(lb, blk);
    if (await insertIntoLeaf(d, lb, entries, name, ci, ino, ft, () => d.write(lb, 'leaf'))) return;
    if (n === 1 && dirIndex) return makeIndexed(d, blk, entries, { name, ino, ft });
  }
  const lb = await d.append(d.emptyLeaf([{ inode: ino, name, fileType: ft }]));
  d.dirty.set(lb, 'leaf');
}

/** dx_probe: the index path to the leaf for `hash` (each frame: the last slot whose hash ≤ it). */
async function probe(d: DirEdit, hash: number): Promise<{ frames: Frame[]; leaf: number }> {
  const fs = d.tx.fs;
  const csum = d.csumSeed === null ? null : { seed: d.csumSeed };
  const largeDir = (fs.sb.s_feature_incompat & INCOMPAT.LARGEDIR) !== 0;
  const opts = (lb: number) => ({ blockSize: d.bs, csum, verify: fs.verify && !d.dirty.has(lb), largeDir, where: d.where(lb) });
  const root = parseDxRoot(await d.read(0), opts(0));
  const frames: Frame[] = [];
  let index: DxIndexBlock = root, lb = 0;
  for (let level = 0; ; level++) {
    const at = dxSlotIndex(index, hash);
    frames.push({ lb, countOffset: index.countOffset, at });
    const next = index.slots[at]!.block;
    if (next === 0 || next >= d.nblocks) throw new Ext4Error('EFSCORRUPTED', `index slot points at block ${next}, outside 1..${d.nblocks - 1}`, { structure: 'dx node', location: d.where(lb) });
    if (level === root.indirectLevels) return { frames, leaf: next };
    lb = next;
    index = parseDxNode(await d.read(lb), opts(lb));
  }
}

async function addIndexed(d: DirEdit, name: Uint8Array, ci: CiName | null, ino: number, ft: number): Promise<void> {
  const version = DxRootInfoLayout.get(await d.read(0), 'hash_version', DX_ROOT_INFO_OFFSET);
  const h = d.hashOf(name, version);
  const { frames, leaf } = await probe(d, h.hash);
  const blk = await d.read(leaf);
  const entries = d.parseLeaf(leaf, blk);
  if (await insertIntoLeaf(d, leaf, entries, name, ci, ino, ft, () => d.write(leaf, 'leaf'))) return;
  const live: Live[] = entries.filter((e) => e.inode !== 0).map((e) => ({ name: e.name, ino: e.inode, ft: e.fileType, ...d.hashOf(e.name, version) }));
  const { low, high, hash } = splitLeaves(d, live, { name, ino, ft, ...h });
  (await d.write(leaf, 'leaf')).set(low);
  const nb = await d.append(high);
  d.dirty.set(nb, 'leaf');
  await insertSlot(d, frames, frames.length - 1, hash, nb);
}

/**
 * Add entry `name` → `ino` (dirent type `fileType`) to directory `dir`
 * inside `tx`. EEXIST when the block it would go into already has the name
 * (callers look the name up first, as the VFS does). `dir` is updated in
 * place (size, map, INDEX flag) and written when it changes.
 */
export async function addDirEntry(tx: Transaction, dir: Inode, name: Uint8Array, ino: number, fileType: number): Promise<void> {
  checkName(name);
  if (isDots(name)) throw new Ext4Error('EEXIST', `"${name.length === 1 ? '.' : '..'}" always exists`);
  if (hasInlineData(dir)) {
    // (the name is checked folded before the directory is converted: EINVAL leaves it inline)
    if (await inlineAdd(tx, dir, name, inlineCi(tx, dir, name), ino, fileType)) return;
    await convertInlineDir(tx, dir);
  }
  const d = await DirEdit.open(tx, dir);
  const ci = d.ciName(name);
  if (d.indexed) await addIndexed(d, name, ci, ino, fileType);
  else await addLinear(d, name, ci, ino, fileType);
  await d.finish();
}

// ---------------------------------------------------------------------------------------------- finding, removing

async function find(d: DirEdit, name: Uint8Array): Promise<FoundEntry | null> {
  const fs = d.tx.fs;
  const ci = d.ciName(name);
  if (d.indexed) {
    const hit = await htreeLookup(name, {
      readBlock: (lb) => d.read(lb),
      blockSize: d.bs,
      hashSeed: hashSeedWords(fs.sb.s_hash_seed),
      signed: !(fs.sb.s_flags & S_FLAGS.UNSIGNED_HASH),
      hasFiletype: d.hasFiletype,
      largeDir: (fs.sb.s_feature_incompat & INCOMPAT.LARGEDIR) !== 0,
      csumSeed: d.csumSeed,
      dirIno: d.dir.ino,
      verify: fs.verify,
      blockCount: d.nblocks,
      inodesCount: fs.sb.s_inodes_count,
      parseLeaf: (lb, blk) => d.parseLeaf(lb, blk),
      ...(ci ? { casefold: ci } : {}),
    });
    return hit ? { ino: hit.inode, fileType: hit.fileType, block: hit.block, offset: hit.offset } : null;
  }
  for (let lb = 0; lb < d.nblocks; lb++) {
    for (const e of d.parseLeaf(lb, await d.read(lb))) {
      if (e.inode !== 0 && sameName(e, name, ci)) return { ino: e.inode, fileType: e.fileType, block: lb, offset: e.offset };
    }
  }
  return null;
}

/** Look `name` up in `dir` as of `tx` (htree hash lookup when indexed). */
export async function findDirEntry(tx: Transaction, dir: Inode, name: Uint8Array): Promise<FoundEntry | null> {
  checkName(name);
  if (hasInlineData(dir) && dir.type === 'dir') {
    const hit = inlineFind(tx, dir, name, inlineCi(tx, dir, name));
    return hit ? { ino: hit.ino, fileType: hit.fileType, block: -1, offset: -1 } : null;
  }
  return find(await DirEdit.open(tx, dir), name);
}

/**
 * Remove entry `name` from `dir` inside `tx` (ext4_delete_entry): merged
 * into the previous entry of its block, or marked unused when first in the
 * block. Returns what it named; ENOENT when there is no such entry. '.' and
 * '..' cannot be removed (EINVAL). The target inode is the caller's business.
 */
export async function removeDirEntry(tx: Transaction, dir: Inode, name: Uint8Array): Promise<FoundEntry> {
  checkName(name);
  if (isDots(name)) throw new Ext4Error('EINVAL', 'cannot remove "." or ".."');
  if (hasInlineData(dir) && dir.type === 'dir') {
    const hit = await inlineRemove(tx, dir, name, inlineCi(tx, dir, name));
    if (!hit) throw new Ext4Error('ENOENT', 'no such entry', { structure: `directory ${dir.ino}` });
    return { ino: hit.ino, fileType: hit.fileType, block: -1, offset: -1 };
  }
  const d = await DirEdit.open(tx, dir);
  const hit = await find(d, name);
  if (!hit) throw new Ext4Error('ENOENT', 'no such entry', { structure: `directory ${dir.ino}` });
  const entries = d.parseLeaf(hit.block, await d.read(hit.block));
  const i = entries.findIndex((e) => e.offset === hit.offset);
  const w = await d.write(hit.block, 'leaf');
  const e = entries[i]!;
  if (i > 0) {
    const prev = entries[i - 1]!;
    DirEntryLayout.set(w, 'rec_len', encodeRecLen(prev.recLen + e.recLen, d.bs), prev.offset);
    w.fill(0, e.offset, e.offset + DIRENT_HEADER_SIZE + e.nameLen);
  } else DirEntryLayout.set(w, 'inode', 0, e.offset);
  await d.finish();
  return hit;
}

/**
 * Point an existing entry at another inode (rename over a target; '..' of a
 * moved directory): ext4_setent. ENOENT when there is no such entry.
 */
export async function setDirEntry(tx: Transaction, dir: Inode, name: Uint8Array, ino: number, fileType: number): Promise<void> {
  if (hasInlineData(dir) && dir.type === 'dir') {
    const dots = bytesEqual(name, DOTDOT);
    if (!dots) checkName(name);
    if (!(await inlineSet(tx, dir, name, dots ? null : inlineCi(tx, dir, name), ino, fileType))) throw new Ext4Error('ENOENT', 'no such entry', { structure: `directory ${dir.ino}` });
    return;
  }
  const d = await DirEdit.open(tx, dir);
  if (bytesEqual(name, DOTDOT)) {
    // '..' is the second entry of block 0, at offset 12, in a linear block and a dx root alike.
    const w = await d.write(0, d.indexed ? 'dx' : 'leaf');
    if (!bytesEqual(w.subarray(12 + DIRENT_HEADER_SIZE, 12 + DIRENT_HEADER_SIZE + 2), DOTDOT) || DirEntryLayout.get(w, 'name_len', 12) !== 2)
      throw new Ext4Error('EFSCORRUPTED', "'..' is not the second entry of block 0", { structure: `directory ${dir.ino}`, location: d.where(0) });
    DirEntryLayout.set(w, 'inode', ino, 12);
    if (d.hasFiletype) DirEntryLayout.set(w, 'file_type', fileType, 12);
    await d.finish();
    return;
  }
  checkName(name);
  const hit = await find(d, name);
  if (!hit) throw new Ext4Error('ENOENT', 'no such entry', { structure: `directory ${dir.ino}` });
  const w = await d.write(hit.block, 'leaf');
  DirEntryLayout.set(w, 'inode', ino, hit.offset);
  if (d.hasFiletype) DirEntryLayout.set(w, 'file_type', fileType, hit.offset);
  await d.finish();
}

/** Whether `dir` holds nothing but '.' and '..' (index blocks are skipped). */
export async function isDirEmpty(tx: Transaction, dir: Inode): Promise<boolean> {
  if (hasInlineData(dir) && dir.type === 'dir') return inlineEntries(tx, dir).length === 0;
  const d = await DirEdit.open(tx, dir);
  for (let lb = 0; lb < d.nblocks; lb++) {
    const blk = await d.read(lb);
    if (d.indexed) {
      if (lb === 0) continue;
      const kind = classifyDirBlock(blk, d.bs);
      if (kind === 'dx-node') continue;
    }
    for (const e of d.parseLeaf(lb, blk)) if (e.inode !== 0 && !isDots(e.name)) return false;
  }
  return true;
}

/** The inode '..' names, as of `tx` (block 0 at offset 12 — a linear block and a dx root alike — or the inline header). */
export async function dotDotOf(tx: Transaction, dir: Inode): Promise<number> {
  if (dir.type !== 'dir') throw new Ext4Error('ENOTDIR', `inode ${dir.ino} is not a directory`);
  if (hasInlineData(dir)) return inlineDotDot(dir);
  const d = await DirEdit.open(tx, dir);
  const b = await d.read(0);
  if (DirEntryLayout.get(b, 'name_len', 12) !== 2 || !bytesEqual(b.subarray(12 + DIRENT_HEADER_SIZE, 12 + DIRENT_HEADER_SIZE + 2), DOTDOT))
    throw new Ext4Error('EFSCORRUPTED', "'..' is not the second entry of block 0", { structure: `directory ${dir.ino}`, location: d.where(0) });
  return DirEntryLayout.get(b, 'inode', 12);
}

/** A live entry as listDirEntries gives it. */
export interface ListedEntry {
  name: Uint8Array;
  ino: number;
  fileType: number;
}

/** Every live entry of `dir` as of `tx`, '.' and '..' left out (index blocks skipped). */
export async function listDirEntries(tx: Transaction, dir: Inode): Promise<ListedEntry[]> {
  if (hasInlineData(dir) && dir.type === 'dir') return inlineEntries(tx, dir);
  const d = await DirEdit.open(tx, dir);
  const out: ListedEntry[] = [];
  for (let lb = 0; lb < d.nblocks; lb++) {
    const blk = await d.read(lb);
    if (d.indexed && (lb === 0 || classifyDirBlock(blk, d.bs) === 'dx-node')) continue;
    for (const e of d.parseLeaf(lb, blk)) if (e.inode !== 0 && !isDots(e.name)) out.push({ name: e.name.slice(), ino: e.inode, fileType: e.fileType });
  }
  return out;
}

/**
 * What no directory edit takes: an encrypted directory (EOPNOTSUPP: we hold no keys), or +F on a
 * filesystem without the casefold feature (EFSCORRUPTED, as __ext4_iget refuses it).
 */
function refuseSpecial(tx: Transaction, dir: Inode): void {
  if (dir.flags & INODE_FLAGS.ENCRYPT)
    throw new Ext4Error('EOPNOTSUPP', `directory ${dir.ino} is encrypted: not supported yet`, { structure: `directory ${dir.ino}`, location: { kind: 'inode', ino: dir.ino } });
  if (dir.flags & INODE_FLAGS.CASEFOLD && !(tx.fs.sb.s_feature_incompat & INCOMPAT.CASEFOLD))
    throw new Ext4Error('EFSCORRUPTED', `directory ${dir.ino} has the casefold flag without the casefold feature`, { structure: `inode ${dir.ino}`, location: { kind: 'field', field: 'i_flags' } });
}

/** How `name` matches in inline directory `dir` (DirEdit.ciName's rule): folded when casefolded, EINVAL when strict encoding refuses it. */
function inlineCi(tx: Transaction, dir: Inode, name: Uint8Array): CiName | null {
  refuseSpecial(tx, dir);
  return dir.flags & INODE_FLAGS.CASEFOLD ? ciLookupName(name, tx.fs.sb) : null;
}

/** The first block of a new directory: '.' (12 bytes) and '..' spanning the rest (ext4_init_dot_dotdot). */
export function newDirBlock(opts: { blockSize: number; hasFiletype: boolean; csumSeed: number | null; self: number; parent: number }): Uint8Array {
  return makeDirBlock(
    [
      { inode: opts.self, name: DOT, fileType: FileType.DIR, recLen: 12 },
      { inode: opts.parent, name: DOTDOT, fileType: FileType.DIR },
    ],
    { blockSize: opts.blockSize, hasFiletype: opts.hasFiletype, csum: opts.csumSeed === null ? null : { seed: opts.csumSeed } },
  );
}
