/**
 * The end of an inode's blocks and of the inode itself, one way for every
 * caller (file handles, orphan cleanup, temporary files), extent-mapped or
 * block-mapped:
 *
 * - punchBlocks / truncateBlocks: free the data blocks of a logical range
 *   and give the inode its new map through remapInode (tree nodes or
 *   indirect blocks freed once empty, i_blocks recomputed);
 * - truncateInode: the size change of a truncate (kernel ext4_setattr →
 *   ext4_truncate): blocks from ceil(size / block size) on freed, the stale
 *   tail of the EOF block zeroed — as ordered data when the bytes are dead
 *   already, after the commit when they are live until the new size commits;
 * - deleteInode: what e2fsck release_orphan_inode and the kernel's
 *   ext4_evict_inode do to an inode with links_count 0: every data and tree
 *   (or indirect) block freed, the xattr block's refcount dropped (freed at
 *   0), the EA inodes of its values dereferenced (ea-inode.ts), the inode
 *   freed in its bitmap (and the group's directory count) and i_dtime set;
 *   its other fields are left alone, as e2fsck does;
 * - InPlaceRemoval: the same end (or one link fewer) for bulk removals,
 *   edited in place in the inode-table block;
 * - releaseInode: delete or truncate-to-i_size an inode in as many
 *   transactions as the journal needs, the caller's `unlist` (taking it off
 *   an orphan list) running in the last one.
 */
import { Ext4Error, type Location } from '../errors.js';
import type { FsWriter as Filesystem } from './transaction.js';
import type { FileMap } from './file-map.js';
import { internals } from './internals.js';
import type { Transaction } from './transaction.js';
import {
  INODE_FLAGS, InodeBaseLayout, InodeExtraLayout, encodeTime, extraCovers, fileTypeOfMode, hasInlineData, inodeChecksum, isExtentMapped, verifyInodeSlot, type Inode, type Timestamp,
} from './inode.js';
import { INCOMPAT, type Superblock } from './superblock.js';
import { randomU32 } from './random.js';
import { blockMapMaxBlocks } from './blockmap-edit.js';
import { EXT_INIT_MAX_LEN, EXTENT_MAGIC, ExtentHeaderLayout, ExtentLeafLayout, MAX_EXTENT_DEPTH, entryOffset, readHeader, walkExtentTree, writeHeader, type Extent } from './extents.js';
import { NDIR_BLOCKS, walkBlockMap } from './blockmap.js';
import { le32 } from '../codec/layout.js';
import { inodeSeed } from './checksum.js';
import { mappedIn, punch } from './extent-map.js';
import { treeBlocksNeeded } from './extent-tree.js';
import { freeInode, freeInodes } from './alloc.js';
import { remapInode, setSize, txFileMap } from './remap.js';
import { groupOfBlock } from './geometry.js';
import { XATTR_MAGIC, XattrBlockHeaderLayout, XattrIbodyHeaderLayout, inodeXattrStart, parseInodeXattrs, parseXattrBlock, xattrBlockChecksum } from './xattr.js';
import { writeAfterCommit } from './commit.js';
import { dropEaInodeRefs } from './ea-inode.js';

/** The largest logical block count a map can address (ext4 logical blocks are u32). */
const LOGICAL_LIMIT = 2 ** 32;

/** Collects freed runs, merging adjacent blocks, then hands them to tx.free. */
class FreeRuns {
  private runs: { start: number; length: number }[] = [];
  /** Blocks added so far. */
  count = 0;
  add(start: number, length: number): void {
    if (length <= 0) return;
    this.count += length;
    const last = this.runs[this.runs.length - 1];
    if (last && last.start + last.length === start) last.length += length;
    else this.runs.push({ start, length });
  }
  apply(tx: Transaction): void {
    for (const r of this.runs) tx.free(r.start, r.length);
    this.runs = [];
  }
}

const hasBlocks = (map: FileMap) => map.kind === 'extents' || map.kind === 'blockmap';

export interface NewInodeFields {
  /** i_mode: type and permission bits. */
  mode: number;
  uid?: number;
  gid?: number;
  /** Flags besides EXTENTS (inherited from the parent, say). */
  flags?: number;
  /** atime, ctime, mtime and crtime. */
  time: Timestamp;
}

/**
 * Initialise a freshly allocated (zeroed) inode slot as ext4's __ext4_new_inode does: owner,
 * times (crtime too, with the extra nanosecond/epoch bits where i_extra_isize reaches), a random
 * generation, i_extra_isize as the superblock wants, and an empty extent root for files,
 * directories and symlinks on an extent filesystem (devices keep their numbers in i_block; ext2/3
 * get 15 zero pointers). Links stay 0: the caller links it or puts it on the orphan list.
 */
export async function initNewInode(tx: Transaction, ino: number, f: NewInodeFields): Promise<Inode> {
  return fillNewInode(tx, tx.readNewInodeNow(ino) ?? (await tx.readNewInode(ino)), f);
}

/** initNewInode without an await when the slot is at hand (Transaction.readNewInodeNow), else null (nothing done). */
export function initNewInodeNow(tx: Transaction, ino: number, f: NewInodeFields): Inode | null {
  const inode = tx.readNewInodeNow(ino);
  return inode && fillNewInode(tx, inode, f);
}

function fillNewInode(tx: Transaction, inode: Inode, f: NewInodeFields): Inode {
  const sb = tx.fs.sb;
  const ino = inode.ino;
  const t = encodeTime(f.time);
  const b = inode.base;
  const uid = f.uid ?? 0, gid = f.gid ?? 0;
  b.i_mode = f.mode;
  b.i_uid = uid & 0xffff;
  b.i_uid_high = (uid >>> 16) & 0xffff;
  b.i_gid = gid & 0xffff;
  b.i_gid_high = (gid >>> 16) & 0xffff;
  b.i_links_count = 0;
  b.i_atime = b.i_ctime = b.i_mtime = t.base;
  b.i_dtime = 0;
  const type = fileTypeOfMode(f.mode);
  const mapped = (sb.s_feature_incompat & INCOMPAT.EXTENTS) !== 0 && (type === 'dir' || type === 'file' || type === 'symlink');
  b.i_flags = (f.flags ?? 0) | (mapped ? INODE_FLAGS.EXTENTS : 0);
  b.i_generation = randomU32(tx.fs, () => `i_generation of inode ${ino}`); // (the purpose only matters for a reproducible draw)
  // (the slot's own i_block copy, cleared: readNewInode's objects share nothing, and one 60-byte array per create less)
  b.i_block.fill(0);
  if (mapped) writeHeader(b.i_block, { entries: 0, max: 4, depth: 0 });
  if (sb.s_inode_size > 128) {
    const extra = Math.min(Math.max(sb.s_want_extra_isize, sb.s_min_extra_isize, 32), sb.s_inode_size - 128) & ~3;
    inode.extraIsize = extra;
    inode.extra.i_extra_isize = extra;
    inode.extra.i_ctime_extra = inode.extra.i_mtime_extra = inode.extra.i_atime_extra = t.extra;
    inode.extra.i_crtime = t.base;
    inode.extra.i_crtime_extra = t.extra;
  }
  inode.mode = f.mode;
  inode.type = type;
  inode.uid = uid;
  inode.gid = gid;
  inode.flags = b.i_flags;
  inode.generation = b.i_generation;
  inode.atime = inode.ctime = inode.mtime = f.time;
  return inode;
}

/**
 * The largest size a regular file may have (kernel s_maxbytes /
 * s_bitmap_maxbytes; e2fsck pass 1 flags a larger i_size): 2^32 − 1
 * logical blocks with extents, what 12 direct + single, double and triple
 * indirect blocks address for a block map.
 */
export function maxFileSize(inode: Inode, blockSize: number): number {
  return (isExtentMapped(inode) ? LOGICAL_LIMIT - 1 : blockMapMaxBlocks(blockSize)) * blockSize;
}

// ---------------------------------------------------------------------------------------------- data blocks

/**
 * Free the data blocks mapped in logical [lb, lb + count) and give the inode
 * the rest of its map (remapInode: writes the inode, frees emptied tree or
 * indirect blocks, recomputes i_blocks). Returns the map's extents after the
 * edit. `map` is the inode's map as of `tx` (txFileMap) when the caller has it.
 */
export async function punchBlocks(tx: Transaction, inode: Inode, lb: number, count: number, map?: FileMap): Promise<Extent[]> {
  const m = map ?? (await txFileMap(tx, inode));
  if (!hasBlocks(m)) return m.extents;
  const from = Math.min(lb, LOGICAL_LIMIT);
  const len = Math.min(count, LOGICAL_LIMIT - from);
  const { list, removed } = punch(m.extents, from, len);
  if (removed.length === 0) return m.extents;
  const frees = new FreeRuns();
  for (const e of removed) frees.add(e.physical, e.length);
  frees.apply(tx);
  await remapInode(tx, inode, m, list);
  return list;
}

/** Free every block from logical block `keep` on (truncate's block half). Returns the extents kept. */
export function truncateBlocks(tx: Transaction, inode: Inode, keep: number, map?: FileMap): Promise<Extent[]> {
  const k = Math.min(keep, LOGICAL_LIMIT); // a hostile i_size past the last logical block keeps everything
  return punchBlocks(tx, inode, k, LOGICAL_LIMIT - k, map);
}

/**
 * Zero the bytes from `size` to the end of its block, when that block is
 * mapped, written and not already zero there. `when`: 'ordered' writes
 * them before the commit (the bytes are past EOF on disk already, or become
 * file content with this transaction); 'after-commit' once the transaction
 * is durable (they are live bytes until the new size commits: the kernel
 * too journals the size before ext4_block_truncate_page zeroes the tail).
 */
export async function zeroTail(tx: Transaction, extents: readonly Extent[], size: number, when: 'ordered' | 'after-commit'): Promise<void> {
  const bs = tx.fs.blockSize;
  if (size % bs === 0) return;
  const lb = Math.floor(size / bs);
  const [m] = mappedIn(extents, lb, 1);
  if (!m || m.unwritten) return;
  const phys = m.physical + (lb - m.logical);
  const blk = await tx.fs.readDataBlocks(phys, 1);
  if (blk.subarray(size % bs).every((x) => x === 0)) return;
  blk.fill(0, size % bs);
  if (when === 'ordered') tx.writeData(phys, blk);
  else writeAfterCommit(tx, phys, blk);
}

/**
 * Set the inode's size to `size` the way a truncate does, inside `tx`
 * (does not touch timestamps or write the inode: the caller does):
 *  - growing from an unaligned size: the old EOF block's stale tail is
 *    zeroed as ordered data (it becomes file content with this commit);
 *  - blocks from ceil(size / block size) on are freed (also preallocated
 *    ones past EOF when the size does not change);
 *  - the new EOF block's tail is zeroed after the commit when shrinking,
 *    as ordered data when the size stays (an interrupted truncate).
 * Only regular files get their tails zeroed (directories have none).
 */
export async function truncateInode(tx: Transaction, inode: Inode, size: number): Promise<void> {
  const bs = tx.fs.blockSize;
  const map = await txFileMap(tx, inode);
  const file = inode.type === 'file' && hasBlocks(map);
  const oldSize = inode.size;
  if (file && size > oldSize) await zeroTail(tx, map.extents, oldSize, 'ordered');
  const kept = await truncateBlocks(tx, inode, Math.ceil(size / bs), map);
  if (file && size <= oldSize) await zeroTail(tx, kept, size, size < oldSize ? 'after-commit' : 'ordered');
  if (size !== oldSize) setSize(tx, inode, size);
}

/**
 * Punch a hole in bytes [position, position + length) of a regular file
 * inside `tx`, keeping its size (fallocate PUNCH_HOLE | KEEP_SIZE, kernel
 * ext4_punch_hole): nothing at or past EOF is touched (the range is clipped
 * to the EOF block), the partial blocks at either edge get zeros written in
 * the range (ordered data: a crash leaves each such byte old or zero), the
 * whole blocks between are freed. Does not touch timestamps or write the
 * inode beyond the map change: the caller does.
 */
export async function punchRange(tx: Transaction, inode: Inode, position: number, length: number): Promise<void> {
  const bs = tx.fs.blockSize;
  const end = Math.min(position + length, Math.ceil(inode.size / bs) * bs);
  if (position >= inode.size || end <= position) return;
  const map = await txFileMap(tx, inode);
  if (!hasBlocks(map)) return;
  const first = Math.ceil(position / bs), stop = Math.floor(end / bs);
  // The partial edge blocks (one block when the range lies inside it).
  const edges = new Set<number>();
  if (position % bs) edges.add(Math.floor(position / bs));
  if (end % bs) edges.add(Math.floor(end / bs));
  for (const lb of edges) {
    const [m] = mappedIn(map.extents, lb, 1);
    if (!m || m.unwritten) continue;
    const phys = m.physical + (lb - m.logical);
    const blk = await tx.fs.readDataBlocks(phys, 1);
    const from = Math.max(position, lb * bs) - lb * bs, to = Math.min(end, (lb + 1) * bs) - lb * bs;
    if (blk.subarray(from, to).every((x) => x === 0)) continue;
    blk.fill(0, from, to);
    tx.writeData(phys, blk);
  }
  if (stop > first) await punchBlocks(tx, inode, first, stop - first, map);
}

// ---------------------------------------------------------------------------------------------- deleting

/** Drop the inode's reference to its xattr block: freed at refcount 0, else rewritten with refcount − 1. */
async function releaseXattrBlock(tx: Transaction, inode: Inode, frees: FreeRuns): Promise<void> {
  const fs = tx.fs;
  await dropEaInodeRefs(tx, inode.ino, parseInodeXattrs(inode.raw, inode.extraIsize, inode.ino));
  const blk = inode.fileAcl;
  if (!blk) return;
  if (blk < fs.sb.s_first_data_block || blk >= fs.sb.blocksCount)
    throw new Ext4Error('EFSCORRUPTED', `xattr block ${blk} is outside the filesystem`, { structure: `inode ${inode.ino}`, location: { kind: 'field', field: 'i_file_acl' } });
  const csum = fs.sb.hasMetadataCsum;
  const data = await tx.readBlock(blk);
  const entries = parseXattrBlock(data, blk, { fsSeed: csum ? fs.fsSeed : null, verify: fs.verify });
  const h = XattrBlockHeaderLayout.decode(data);
  // The entries of a block still shared keep their EA-inode references (ext4_xattr_release_block).
  if (h.h_refcount <= 1) {
    await dropEaInodeRefs(tx, inode.ino, entries);
    frees.add(blk, 1);
  }
  else {
    const w = await tx.block(blk);
    h.h_refcount -= 1;
    if (csum) {
      XattrBlockHeaderLayout.encode(h, w);
      h.h_checksum = xattrBlockChecksum(w, blk, fs.fsSeed);
    }
    XattrBlockHeaderLayout.encode(h, w);
  }
  inode.base.i_file_acl_lo = 0;
  inode.base.i_file_acl_high = 0;
  inode.fileAcl = 0;
}

/**
 * Delete an unlinked inode inside `tx`: free every data and tree (or
 * indirect) block, drop the xattr block, free the inode in its bitmap (and
 * the group's directory count) and set i_dtime to now. Writes the inode.
 */
export async function deleteInode(tx: Transaction, inode: Inode): Promise<void> {
  const frees = new FreeRuns();
  await releaseXattrBlock(tx, inode, frees);
  const map = await txFileMap(tx, inode);
  for (const e of map.extents) frees.add(e.physical, e.length);
  for (const b of map.metadataBlocks) frees.add(b, 1);
  frees.apply(tx);
  await freeInode(tx, inode.ino, inode.type === 'dir');
  inode.base.i_dtime = tx.fs.now().sec >>> 0;
  inode.dtime = inode.base.i_dtime;
  await tx.writeInode(inode);
}

// ---------------------------------------------------------------------------------------------- bulk removals, in place

const B = InodeBaseLayout, X = InodeExtraLayout, L = ExtentLeafLayout, H = ExtentHeaderLayout;
const I_BLOCK = B.offsetOf('i_block');
const I_BLOCK_LEN = 60;
/** i_block as an error location (the in-inode map). */
const I_BLOCK_FIELD: Location = { kind: 'field', field: 'i_block' };

/**
 * Links dropped in bulk (removeTree): each non-directory's inode edited where its slot lies in
 * the transaction's copy of its inode-table block. The slot's checks (verifyInodeSlot) run and
 * only the fields a removal needs are read in place, the fields it changes written in place and
 * the checksum refreshed: no Inode object decoded or encoded, no await once the slot's block is
 * in the transaction (in a 20,000-file rm -r those were most of the work). The inodes deleted are
 * released from their bitmaps together by `finish` (one checksum per group), which the caller
 * runs before its transaction ends.
 */
export class InPlaceRemoval {
  /** Inodes deleted, to release from their bitmaps in `finish`. */
  readonly released: number[] = [];
  /** Their groups: an inode bitmap and a descriptor each, for the caller's journal budget. */
  readonly releasedGroups = new Set<number>();
  readonly #verify: { fsSeed: number; verifyChecksum: boolean };
  /** ctime as stored (the removal's time) and i_dtime (the clock's, as deleteInode's). */
  readonly #ctime: { base: number; extra: number };
  readonly #dtime: number;

  /**
   * @param t the removal's time (ctime of every inode it changes)
   * @param maxGroups the most block groups a file's blocks may span to be freed in this transaction
   * @param held whether an inode is held open (holdInode): it must go on the orphan list, not be freed
   */
  constructor(readonly tx: Transaction, readonly t: Timestamp, readonly maxGroups: number, readonly held: (ino: number) => boolean) {
    this.#verify = { fsSeed: tx.fs.fsSeed, verifyChecksum: tx.fs.verify };
    this.#ctime = encodeTime(t);
    this.#dtime = tx.fs.now().sec >>> 0;
  }

  /**
   * Drop one link of the non-directory `ino`. With links left: links − 1 and ctime, as
   * ext4_unlink. At the last link: ctime, links 0 and i_dtime, its data and tree (or indirect)
   * blocks freed with this transaction and the inode released by `finish` — deleteInode's end
   * (ext4_evict_inode → ext4_free_inode), in the unlink's transaction as the kernel's.
   *
   * Returns null, changing nothing, for what the general path (parseInode, deleteInode or the
   * orphan list) must take: a directory, a held inode, inline data, an xattr block or an EA-inode
   * value, blocks over more than `maxGroups` groups, a reserved inode; also a zero links count
   * (the general path's corruption error). The slot's inode-table block joins the transaction
   * either way (the caller writes that inode whatever path it takes).
   */
  async drop(ino: number): Promise<Dropped | null> {
    if (ino < this.tx.fs.sb.s_first_ino) return null; // a reserved inode named in a directory: the general path's business
    const { block, offset: off } = this.tx.knownInodeLocation(ino) ?? (await this.tx.inodeLocation(ino));
    const w = this.tx.ownBlock(block) ?? (await this.tx.block(block));
    const now = this.#dropAt(ino, w, off, null);
    // (with the walked runs given, #dropAt always decides)
    return now !== undefined ? now : (this.#dropAt(ino, w, off, await this.#walk(ino, w, off)) ?? null);
  }

  /**
   * drop() without an await, when it needs none: undefined when it does (the group's table or
   * the slot's block not met yet in this transaction, or a map to walk) — then call drop().
   */
  dropNow(ino: number): Dropped | null | undefined {
    if (ino < this.tx.fs.sb.s_first_ino) return null;
    const at = this.tx.knownInodeLocation(ino);
    const w = at && this.tx.ownBlock(at.block);
    return w ? this.#dropAt(ino, w, at.offset, null) : undefined;
  }

  /** drop() on the slot at w[off…] (this transaction's copy); `walked`: the map's runs when it had to be walked, undefined while it has not. */
  #dropAt(ino: number, w: Uint8Array, off: number, walked: number[] | null): Dropped | null | undefined {
    const sb = this.tx.fs.sb;
    const size = sb.s_inode_size;
    const extraIsize = verifyInodeSlot(sb, ino, w, off, this.#verify);
    const type = fileTypeOfMode(B.get(w, 'i_mode', off));
    const links = B.get(w, 'i_links_count', off);
    if (type === null || type === 'dir' || links === 0) return null;
    if (links > 1) {
      B.set(w, 'i_links_count', links - 1, off);
      this.#stamp(w, off, extraIsize, ino);
      return 'unlinked';
    }
    const flags = B.get(w, 'i_flags', off);
    if (this.held(ino) || flags & (INODE_FLAGS.INLINE_DATA | INODE_FLAGS.EA_INODE)) return null;
    if (B.get(w, 'i_file_acl_lo', off) !== 0 || (sb.is64 && B.get(w, 'i_file_acl_high', off) !== 0)) return null;
    // In-inode xattrs: only an EA-inode value needs more than the slot going (deleteInode's rule).
    const xattrs = off + inodeXattrStart(extraIsize);
    if (xattrs + XattrIbodyHeaderLayout.size <= off + size && XattrIbodyHeaderLayout.get(w, 'h_magic', xattrs) === XATTR_MAGIC) {
      if (parseInodeXattrs(w.subarray(off, off + size), extraIsize, ino).some((x) => x.valueInode !== 0)) return null;
    }
    // The map as readFileMap reads it (devices and fast symlinks keep no blocks in i_block), as
    // flat [start, length, …] runs: the shapes nearly every file has (an extent root with no tree,
    // direct pointers only) read in place, anything else walked (#walk) by drop().
    let runs: number[] = [];
    if (owned(type, w, off)) {
      if (walked) runs = walked;
      else if (!((flags & INODE_FLAGS.EXTENTS) !== 0 ? rootLeafRuns(sb, ino, w, off + I_BLOCK, runs) : directRuns(sb, ino, w, off + I_BLOCK, runs))) return undefined;
      if (!withinGroups(sb, runs, this.maxGroups)) return null;
    }
    B.set(w, 'i_links_count', 0, off);
    B.set(w, 'i_dtime', this.#dtime, off);
    this.#stamp(w, off, extraIsize, ino);
    for (let i = 0; i < runs.length; i += 2) this.tx.free(runs[i]!, runs[i + 1]!);
    this.released.push(ino);
    this.releasedGroups.add(Math.floor((ino - 1) / sb.s_inodes_per_group));
    return 'deleted';
  }

  /**
   * The runs of a map with tree (or indirect) blocks, walked as readFileMap does: data, then the
   * tree blocks. Those are read uncached, one block each, as the transaction sees them: they are
   * freed here, and the cache's read-ahead would bring in the data blocks around each of them
   * (ext2/ext3 keep an indirect block before every 256 or 1,024 data blocks: an rm -r of block-mapped
   * files read and cached 33 blocks per indirect block).
   */
  async #walk(ino: number, w: Uint8Array, off: number): Promise<number[]> {
    const tx = this.tx, fs = tx.fs, sb = fs.sb;
    const iblock = w.slice(off + I_BLOCK, off + I_BLOCK + I_BLOCK_LEN);
    const readBlock = (n: number) => {
      const own = tx.ownBlock(n);
      return own ? Promise.resolve(own) : fs.readDataBlocks(n, 1);
    };
    const walk = { ino, blockSize: fs.blockSize, firstDataBlock: sb.s_first_data_block, blocksCount: sb.blocksCount, readBlock };
    const runs: number[] = [];
    if (B.get(w, 'i_flags', off) & INODE_FLAGS.EXTENTS) {
      const info = await walkExtentTree(iblock, { ...walk, csumSeed: sb.hasMetadataCsum ? inodeSeed(fs.fsSeed, ino, B.get(w, 'i_generation', off)) : null, verify: fs.verify });
      for (const e of info.extents) runs.push(e.physical, e.length);
      for (const b of info.treeBlocks) runs.push(b.block, 1);
    } else {
      const info = await walkBlockMap(iblock, walk);
      for (const e of info.extents) runs.push(e.physical, e.length);
      for (const b of info.indirectBlocks) runs.push(b, 1);
    }
    return runs;
  }

  /** Release the deleted inodes from their bitmaps (inside the transaction, before it ends). */
  async finish(): Promise<void> {
    await freeInodes(this.tx, this.released.splice(0), false);
    this.releasedGroups.clear();
  }

  /** ctime (with nanoseconds and epoch bits where i_extra_isize covers them), then the checksum. */
  #stamp(w: Uint8Array, off: number, extraIsize: number, ino: number): void {
    const sb = this.tx.fs.sb;
    const e = this.#ctime;
    B.set(w, 'i_ctime', e.base, off);
    if (extraCovers(extraIsize, 'i_ctime_extra')) X.set(w, 'i_ctime_extra', e.extra, off);
    if (!sb.hasMetadataCsum) return;
    const slot = w.subarray(off, off + sb.s_inode_size);
    const c = inodeChecksum(slot, ino, B.get(slot, 'i_generation'), this.tx.fs.fsSeed, sb.s_inode_size);
    B.set(slot, 'i_checksum_lo', c.lo);
    if (c.hi !== null) X.set(slot, 'i_checksum_hi', c.hi);
  }
}

/** What InPlaceRemoval.drop did: one link fewer, or the inode deleted. */
export type Dropped = 'unlinked' | 'deleted';

/** Whether the inode's type keeps blocks in i_block's map (readFileMap: devices and fast symlinks do not; a fast symlink has no blocks). */
function owned(type: string, w: Uint8Array, off: number): boolean {
  return type === 'file' || (type === 'symlink' && (B.get(w, 'i_blocks_lo', off) !== 0 || B.get(w, 'i_blocks_hi', off) !== 0));
}

/**
 * The runs of an extent root with no tree below it (depth 0), read in place from i_block at
 * buf[at…], adjacent extents merged, after walkExtentTree's checks of a depth-0 root (readHeader's,
 * root eh_max, zero length, order, inside the filesystem; the same errors). False, `runs`
 * untouched, for a deeper tree: the caller walks it.
 */
function rootLeafRuns(sb: Superblock, ino: number, buf: Uint8Array, at: number, runs: number[]): boolean {
  const entries = H.get(buf, 'eh_entries', at), max = H.get(buf, 'eh_max', at), depth = H.get(buf, 'eh_depth', at);
  if (H.get(buf, 'eh_magic', at) !== EXTENT_MAGIC || entries > max || max > 4 || depth > MAX_EXTENT_DEPTH) {
    readHeader(buf.subarray(at, at + I_BLOCK_LEN), () => I_BLOCK_FIELD, `inode ${ino} extent tree`); // throws its error
    throw extentError(ino, `root eh_max ${max} > 4`);
  }
  if (depth !== 0) return false;
  let prevEnd = 0;
  const first = runs.length;
  for (let i = 0; i < entries; i++) {
    const e = at + entryOffset(i);
    const logical = L.get(buf, 'ee_block', e), len = L.get(buf, 'ee_len', e);
    const length = len > EXT_INIT_MAX_LEN ? len - EXT_INIT_MAX_LEN : len;
    // (hi 0, the common case, keeps the number a small integer: no boxed doubles downstream)
    const hi = L.get(buf, 'ee_start_hi', e), lo = L.get(buf, 'ee_start_lo', e);
    const physical = hi === 0 ? lo : hi * 2 ** 32 + lo;
    if (length === 0) throw extentError(ino, 'zero-length extent', i);
    if (logical < prevEnd) throw extentError(ino, `extent at logical ${logical} overlaps or is out of order`, i);
    if (logical + length > 2 ** 32) throw extentError(ino, `extent ${logical}+${length} exceeds its index range (< ${2 ** 32})`, i);
    if (physical < sb.s_first_data_block || physical === 0 || physical + length > sb.blocksCount) throw extentError(ino, `extent ${physical}+${length} lies outside the filesystem`, i);
    prevEnd = logical + length;
    addRun(runs, first, physical, length);
  }
  return true;
}

function extentError(ino: number, message: string, entry?: number): Ext4Error {
  return new Ext4Error('EFSCORRUPTED', message, { structure: `inode ${ino} extent tree`, location: entry === undefined ? I_BLOCK_FIELD : { kind: 'part', of: I_BLOCK_FIELD, part: 'entry', index: entry } });
}

/** The runs of a block map with direct pointers only, read in place after walkBlockMap's checks; false when it has indirect blocks. */
function directRuns(sb: Superblock, ino: number, buf: Uint8Array, at: number, runs: number[]): boolean {
  const iblock = buf.subarray(at, at + I_BLOCK_LEN);
  for (let level = 1; level <= 3; level++) if (le32.get(iblock, NDIR_BLOCKS + level - 1) !== 0) return false;
  const first = runs.length;
  for (let i = 0; i < NDIR_BLOCKS; i++) {
    const p = le32.get(iblock, i);
    if (p === 0) continue;
    if (p < sb.s_first_data_block || p >= sb.blocksCount)
      throw new Ext4Error('EFSCORRUPTED', `block pointer ${p} outside the filesystem`, { structure: `inode ${ino} block map`, location: { kind: 'field', field: 'i_block', index: i } });
    addRun(runs, first, p, 1);
  }
  return true;
}

/** Append a run to runs[first…], merged into the last one when adjacent. */
function addRun(runs: number[], first: number, start: number, length: number): void {
  const n = runs.length;
  if (n > first && runs[n - 2]! + runs[n - 1]! === start) runs[n - 1] = runs[n - 1]! + length;
  else runs.push(start, length);
}

/** Whether the runs touch at most `limit` block groups. */
function withinGroups(sb: Superblock, runs: readonly number[], limit: number): boolean {
  const groups: number[] = [];
  for (let i = 0; i < runs.length; i += 2) {
    for (let g = groupOfBlock(sb, runs[i]!), end = groupOfBlock(sb, runs[i]! + runs[i + 1]! - 1); g <= end; g++) {
      if (groups.includes(g)) continue;
      if (groups.length === limit) return false;
      groups.push(g);
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------- in several transactions

/** Journal room for one transaction's freeing, in blocks (Infinity without a journal). */
function transactionBudget(fs: Filesystem): number {
  const j = internals(fs).journal;
  if (!j) return Infinity;
  return j.maxTransactionBlocks() - 64;
}

/**
 * Logical cut points (descending, all > keep) at which an inode must be
 * shrunk in separate transactions so that each one's bitmap and descriptor
 * updates fit the journal.
 */
function planCuts(fs: Filesystem, map: FileMap, keep: number): number[] {
  const mapBlocks = map.kind === 'extents' ? treeBlocksNeeded(map.extents.length, fs.blockSize) : map.metadataBlocks.length;
  const budget = transactionBudget(fs) - mapBlocks;
  if (!Number.isFinite(budget)) return [];
  const groupsPerStep = Math.max(4, Math.floor(budget / 2));
  if (keep >= LOGICAL_LIMIT) return [];
  const freed = mappedIn(map.extents, keep, LOGICAL_LIMIT - keep);
  const cuts: number[] = [];
  let groups = new Set<number>();
  for (let i = freed.length - 1; i >= 0; i--) {
    const e = freed[i]!;
    const first = groupOfBlock(fs.sb, e.physical), last = groupOfBlock(fs.sb, e.physical + e.length - 1);
    let mine = 0;
    for (let g = first; g <= last; g++) if (!groups.has(g)) mine++;
    if (groups.size > 0 && groups.size + mine > groupsPerStep) {
      cuts.push(e.logical + e.length);
      groups = new Set<number>();
    }
    for (let g = first; g <= last; g++) groups.add(g);
  }
  return cuts.filter((c) => c > keep);
}

/**
 * Delete (links_count 0) or truncate to i_size (links_count > 0, i_dtime
 * cleared) inode `ino` — e2fsck release_orphan_inode — in as many
 * transactions as its frees need, the inode keeping its blocks past the
 * cut until each commits; `unlist` runs in the last one (taking the inode
 * off its orphan list). Returns what was done.
 */
export async function releaseInode(fs: Filesystem, ino: number, unlist: (tx: Transaction, inode: Inode) => Promise<void>): Promise<'deleted' | 'truncated'> {
  const first = await fs.readInode(ino);
  const deleting = first.linksCount === 0;
  const keep = deleting ? 0 : Math.ceil(first.size / fs.blockSize);
  if (!hasInlineData(first)) {
    const map = await fs.fileMap(first);
    if (hasBlocks(map)) {
      for (const cut of planCuts(fs, map, keep)) {
        await fs.transact(async (tx) => {
          await truncateBlocks(tx, await tx.readInode(ino), cut);
        });
      }
    }
  }
  await fs.transact(async (tx) => {
    let inode = await tx.readInode(ino);
    await unlist(tx, inode);
    inode = await tx.readInode(ino);
    if (deleting) return deleteInode(tx, inode);
    await truncateInode(tx, inode, inode.size);
    inode.base.i_dtime = 0;
    inode.dtime = 0;
    await tx.writeInode(inode);
  });
  return deleting ? 'deleted' : 'truncated';
}
