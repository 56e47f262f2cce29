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
 *   0), the inode freed in its bitmap (and the group's directory count) and
 *   i_dtime set; its other fields are left alone, as e2fsck does;
 * - releaseInode: delete or truncate-to-i_size an inode in as many
 *   transactions as the journal needs, the caller's `unlist` (taking it off
 *   an orphan list) running in the last one.
 *
 * Not handled (EOPNOTSUPP): xattr values kept in EA inodes (their refcounts
 * would need updating; e2fsck -fy handles them).
 */
import { Ext4Error } from '../errors.js';
import type { FsWriter as Filesystem } from './transaction.js';
import type { FileMap } from './file-map.js';
import { internals } from './internals.js';
import type { Transaction } from './transaction.js';
import { INODE_FLAGS, encodeTime, fileTypeOfMode, hasInlineData, isExtentMapped, type Inode, type Timestamp } from './inode.js';
import { INCOMPAT } from './superblock.js';
import { writeHeader } from './extents.js';
import { randomU32 } from './random.js';
import { blockMapMaxBlocks } from './blockmap-edit.js';
import type { Extent } from './extents.js';
import { mappedIn, punch } from './extent-map.js';
import { treeBlocksNeeded } from './extent-tree.js';
import { freeInode } from './alloc.js';
import { remapInode, setSize, txFileMap } from './remap.js';
import { groupOfBlock } from './geometry.js';
import { parseInodeXattrs, parseXattrBlock, xattrBlockChecksum, XattrBlockHeaderLayout } from './xattr.js';
import { writeAfterCommit } from './commit.js';

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
  const sb = tx.fs.sb;
  const inode = await tx.readInode(ino);
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
  b.i_generation = randomU32(tx.fs, `i_generation of inode ${ino}`);
  const root = new Uint8Array(60);
  if (mapped) writeHeader(root, { entries: 0, max: 4, depth: 0 });
  b.i_block = root;
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

/** Refuse inodes whose xattr values live in EA inodes (their refcounts would need updating). */
function refuseEaInodeValues(inode: Inode, entries: { valueInode: number; name: string }[]): void {
  const x = entries.find((e) => e.valueInode !== 0);
  if (x) throw new Ext4Error('EOPNOTSUPP', `inode ${inode.ino} keeps xattr ${x.name} in EA inode ${x.valueInode}: run e2fsck -fy`, { structure: `inode ${inode.ino}` });
}

/** Drop the inode's reference to its xattr block: freed at refcount 0, else rewritten with refcount − 1. */
async function releaseXattrBlock(tx: Transaction, inode: Inode, frees: FreeRuns): Promise<void> {
  const fs = tx.fs;
  refuseEaInodeValues(inode, parseInodeXattrs(inode.raw, inode.extraIsize, inode.ino));
  const blk = inode.fileAcl;
  if (!blk) return;
  if (blk < fs.sb.s_first_data_block || blk >= fs.sb.blocksCount)
    throw new Ext4Error('EFSCORRUPTED', `xattr block ${blk} is outside the filesystem`, { structure: `inode ${inode.ino}`, location: { kind: 'field', field: 'i_file_acl' } });
  const csum = fs.sb.hasMetadataCsum;
  const data = await tx.readBlock(blk);
  refuseEaInodeValues(inode, parseXattrBlock(data, blk, { fsSeed: csum ? fs.fsSeed : null, verify: fs.verify }));
  const h = XattrBlockHeaderLayout.decode(data);
  if (h.h_refcount <= 1) frees.add(blk, 1);
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
