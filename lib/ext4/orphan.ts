/**
 * Orphan inodes: inodes that are unlinked but still open (links_count 0) or
 * being truncated when the system stopped. Two on-disk forms:
 *
 * - the old list (ext4-format.md §2): s_last_orphan is the head, each
 *   orphan's i_dtime holds the next inode number, 0 ends the list;
 * - the orphan file (COMPAT_ORPHAN_FILE, ext4-format.md §10): inode
 *   s_orphan_file_inum whose blocks are arrays of (block_size − 8) / 4 u32
 *   inode numbers (0 = free slot) followed by the tail {ob_magic 0x0B10CA04,
 *   ob_checksum}; RO_COMPAT_ORPHAN_PRESENT says it may hold entries.
 *
 * processOrphans() is what Linux does at mount (ext4_orphan_cleanup) and
 * e2fsck in preen (release_orphan_inodes), run by Filesystem on every write
 * open after journal replay:
 *   - the whole list and the orphan file are validated first (bounded walk: a
 *     cycle, an out-of-range, reserved, free or duplicate inode, a bad
 *     orphan-file block is EFSCORRUPTED and nothing is written);
 *   - links_count == 0: every data and tree (or indirect) block is freed, the
 *     xattr block's refcount dropped (freed at 0), the inode freed in the
 *     bitmap (and the group's directory count for a directory) and i_dtime
 *     set to now; its other fields are left alone, exactly as e2fsck does;
 *   - links_count > 0: blocks from ceil(i_size / block_size) on are freed
 *     (tree rebuilt, i_blocks recomputed; indirect blocks freed once empty),
 *     the bytes past EOF in the last block are zeroed (as the kernel's
 *     ext4_truncate), i_dtime is cleared;
 *   - each orphan in its own transaction, which also advances s_last_orphan
 *     or clears its orphan-file slot, so a crash during cleanup leaves a
 *     consistent list; a file whose frees would not fit one transaction is
 *     shrunk in several, staying an orphan until the last;
 *   - ORPHAN_PRESENT is cleared once the orphan file is empty.
 *
 * addOrphan / removeOrphan put an inode on (or take it off) the orphan file
 * when the fs has one and it has room, else the list, inside a caller's
 * transaction; createTempFile / releaseTempFile make and destroy a temporary
 * regular file (links_count 0, on the orphan list) so that a crash leaves
 * nothing visible: Linux at mount, e2fsck -fy and our next write open all
 * release it.
 *
 * Not handled (EOPNOTSUPP, e2fsck -fy handles them): orphans whose xattr
 * values live in EA inodes, EA inodes on the orphan list.
 */
import { Ext4Error } from '../errors.js';
import type { Filesystem, FileMap } from './filesystem.js';
import type { Transaction } from './transaction.js';
import { defineStruct } from '../codec/layout.js';
import { crc32c, le64 } from './checksum.js';
import { COMPAT, INCOMPAT, RO_COMPAT, SUPERBLOCK_OFFSET } from './superblock.js';
import { INODE_FLAGS, S_IFREG, encodeTime, hasInlineData, isExtentMapped, type Inode } from './inode.js';
import { walkBlockMap, NDIR_BLOCKS } from './blockmap.js';
import { writeHeader, type Extent } from './extents.js';
import { mappedIn } from './extent-map.js';
import { treeBlocksNeeded } from './extent-tree.js';
import { allocateInode, freeInode } from './alloc.js';
import { remapInode, setIBlocks, txFileMap } from './remap.js';
import { groupOfBlock, groupOfInode } from './geometry.js';
import { testBit } from './bitmap.js';
import { parseInodeXattrs, parseXattrBlock, xattrBlockChecksum, XattrBlockHeaderLayout } from './xattr.js';
import { randomU32 } from './random.js';

export const ORPHAN_BLOCK_MAGIC = 0x0b10ca04;
/** The 8-byte tail of every orphan-file block. */
export const OrphanBlockTailLayout = defineStruct('orphan block tail', 8, [
  ['ob_magic', 0, 'u32'],
  ['ob_checksum', 4, 'u32'],
] as const);

export function inodesPerOrphanBlock(blockSize: number): number {
  return (blockSize - OrphanBlockTailLayout.size) / 4;
}

/**
 * crc32c(ino_seed(orphan file), le64(physical block) ‖ slots) — ino_seed is
 * crc32c(fs_seed, le32(ino) ‖ le32(i_generation)), as the kernel's
 * of_csum_seed and e2fsprogs' ext2fs_do_orphan_file_block_csum.
 */
export function orphanBlockChecksum(block: Uint8Array, physical: number, orphanInodeSeed: number): number {
  const c = crc32c(orphanInodeSeed, le64(physical));
  return crc32c(c, block, 0, inodesPerOrphanBlock(block.length) * 4);
}

// ---------------------------------------------------------------------------------------------- the orphan file

interface OrphanFile {
  ino: number;
  /** inodeSeed of the orphan file inode, or null without metadata_csum. */
  seed: number | null;
  /** Physical block of each logical block. */
  blocks: number[];
}

const orphanFiles = new WeakMap<Filesystem, OrphanFile | null>();

/** The orphan file's geometry (validated: regular, block-multiple size, no holes), or null without ORPHAN_FILE. */
async function orphanFile(fs: Filesystem): Promise<OrphanFile | null> {
  if (orphanFiles.has(fs)) return orphanFiles.get(fs)!;
  let of: OrphanFile | null = null;
  if (fs.sb.s_feature_compat & COMPAT.ORPHAN_FILE) {
    const ino = fs.sb.s_orphan_file_inum;
    const structure = `orphan file (inode ${ino})`;
    if (ino < 1 || ino > fs.sb.s_inodes_count) throw new Ext4Error('EFSCORRUPTED', `s_orphan_file_inum ${ino} is out of range`, { structure: 'superblock', location: 's_orphan_file_inum' });
    const inode = await fs.readInode(ino);
    if (inode.type !== 'file') throw new Ext4Error('EFSCORRUPTED', 'the orphan file is not a regular file', { structure });
    if (inode.size % fs.blockSize !== 0) throw new Ext4Error('EFSCORRUPTED', `orphan file size ${inode.size} is not a multiple of the block size`, { structure });
    const n = inode.size / fs.blockSize;
    const map = await fs.fileMap(inode);
    if (map.kind !== 'extents' && map.kind !== 'blockmap') throw new Ext4Error('EFSCORRUPTED', 'the orphan file has no block map', { structure });
    const blocks: number[] = [];
    for (const e of map.extents) {
      if (blocks.length >= n) break;
      if (e.logical !== blocks.length || e.unwritten) throw new Ext4Error('EFSCORRUPTED', `orphan file has a hole or unwritten block at logical block ${blocks.length}`, { structure });
      for (let i = 0; i < e.length && blocks.length < n; i++) blocks.push(e.physical + i);
    }
    if (blocks.length < n) throw new Ext4Error('EFSCORRUPTED', `orphan file has a hole at logical block ${blocks.length}`, { structure });
    of = { ino, seed: fs.inodeCsumSeed(inode), blocks };
  }
  orphanFiles.set(fs, of);
  return of;
}

/** Orphan-file block `i` as of the transaction (or the fs), magic and checksum verified. */
async function orphanBlock(fs: Filesystem, tx: Transaction | null, of: OrphanFile, i: number): Promise<Uint8Array> {
  const phys = of.blocks[i]!;
  const data = tx?.blocks.get(phys) ?? (await fs.readBlock(phys));
  const where = { structure: `orphan file (inode ${of.ino})`, location: `logical block ${i} (block ${phys})` };
  const tailOff = fs.blockSize - OrphanBlockTailLayout.size;
  const tail = OrphanBlockTailLayout.decode(data, tailOff);
  if (tail.ob_magic !== ORPHAN_BLOCK_MAGIC) throw new Ext4Error('EFSCORRUPTED', `bad orphan block magic 0x${tail.ob_magic.toString(16)}`, where);
  if (fs.verify && of.seed !== null) {
    const want = orphanBlockChecksum(data, phys, of.seed);
    if (want !== tail.ob_checksum) throw new Ext4Error('EFSBADCRC', `orphan block checksum 0x${tail.ob_checksum.toString(16)} != computed 0x${want.toString(16)}`, where);
  }
  return data;
}

/** Set slot `slot` of orphan-file block `i` to `value` inside the transaction (checksum refreshed). */
async function setOrphanSlot(tx: Transaction, of: OrphanFile, i: number, slot: number, value: number): Promise<void> {
  await orphanBlock(tx.fs, tx, of, i); // validate before modifying
  const phys = of.blocks[i]!;
  const w = await tx.block(phys);
  const dv = new DataView(w.buffer, w.byteOffset, w.byteLength);
  dv.setUint32(slot * 4, value >>> 0, true);
  if (of.seed !== null) dv.setUint32(tx.fs.blockSize - 4, orphanBlockChecksum(w, phys, of.seed), true);
}

/** Every non-zero slot of the orphan file, in block/slot order. */
async function orphanFileEntries(fs: Filesystem, tx: Transaction | null, of: OrphanFile): Promise<{ ino: number; index: number; slot: number }[]> {
  const per = inodesPerOrphanBlock(fs.blockSize);
  const out: { ino: number; index: number; slot: number }[] = [];
  for (let i = 0; i < of.blocks.length; i++) {
    const data = await orphanBlock(fs, tx, of, i);
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (let j = 0; j < per; j++) {
      const ino = dv.getUint32(j * 4, true);
      if (ino !== 0) out.push({ ino, index: i, slot: j });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- listing and validation

export interface OrphanFileEntry {
  ino: number;
  /** Logical block of the orphan file. */
  index: number;
  slot: number;
}

export interface OrphanListing {
  /** The old list, head first (s_last_orphan, then each i_dtime). */
  list: number[];
  /** Non-empty orphan-file slots. */
  file: OrphanFileEntry[];
}

/** Is `ino` an inode that may legitimately be an orphan? Throws EFSCORRUPTED naming where it was found. */
async function checkOrphanInode(fs: Filesystem, ino: number, where: { structure: string; location: string }): Promise<Inode> {
  const sb = fs.sb;
  if (!Number.isInteger(ino) || ino < sb.s_first_ino || ino > sb.s_inodes_count)
    throw new Ext4Error('EFSCORRUPTED', `orphan inode ${ino} is out of range (first ${sb.s_first_ino}, count ${sb.s_inodes_count})`, where);
  if (ino === sb.s_journal_inum || (sb.s_feature_compat & COMPAT.ORPHAN_FILE && ino === sb.s_orphan_file_inum))
    throw new Ext4Error('EFSCORRUPTED', `orphan inode ${ino} is a special inode`, where);
  const g = groupOfInode(sb, ino);
  const bm = await fs.inodeBitmap(g);
  if (!testBit(bm, (ino - 1) % sb.s_inodes_per_group)) throw new Ext4Error('EFSCORRUPTED', `orphan inode ${ino} is not in use in the inode bitmap`, where);
  const inode = await fs.readInode(ino);
  if (inode.mode === 0 || inode.type === null) throw new Ext4Error('EFSCORRUPTED', `orphan inode ${ino} has an invalid mode 0${inode.mode.toString(8)}`, where);
  if (inode.flags & INODE_FLAGS.EA_INODE) throw new Ext4Error('EOPNOTSUPP', `orphan inode ${ino} is an xattr (EA) inode: run e2fsck -fy`, where);
  return inode;
}

/**
 * Both orphan lists, validated without writing anything: list length bounded
 * by s_inodes_count, no cycle, no duplicate, every entry an in-use,
 * non-reserved inode with a valid mode, every orphan-file block with a good
 * magic and checksum.
 */
export async function listOrphans(fs: Filesystem): Promise<OrphanListing> {
  const sb = fs.sb;
  const seen = new Set<number>();
  const list: number[] = [];
  let ino = sb.s_last_orphan;
  let where = { structure: 'superblock', location: 's_last_orphan' };
  while (ino !== 0) {
    if (seen.has(ino)) throw new Ext4Error('EFSCORRUPTED', `orphan list has a cycle at inode ${ino}`, where);
    if (list.length >= sb.s_inodes_count) throw new Ext4Error('EFSCORRUPTED', 'orphan list is longer than the inode count', where);
    const inode = await checkOrphanInode(fs, ino, where);
    seen.add(ino);
    list.push(ino);
    where = { structure: `inode ${ino}`, location: 'i_dtime (next orphan)' };
    ino = inode.dtime;
  }
  const file: OrphanFileEntry[] = [];
  const of = await orphanFile(fs);
  if (of) {
    for (const e of await orphanFileEntries(fs, null, of)) {
      const w = { structure: `orphan file (inode ${of.ino})`, location: `logical block ${e.index} slot ${e.slot}` };
      if (seen.has(e.ino)) throw new Ext4Error('EFSCORRUPTED', `inode ${e.ino} is on the orphan list twice`, w);
      await checkOrphanInode(fs, e.ino, w);
      seen.add(e.ino);
      file.push(e);
    }
  }
  return { list, file };
}

// ---------------------------------------------------------------------------------------------- freeing an inode's blocks

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

/** The inode's block map as of the transaction; kind 'none' for inodes without blocks. */
async function txMap(tx: Transaction, inode: Inode): Promise<FileMap> {
  const fs = tx.fs;
  const none: FileMap = { extents: [], metadataBlocks: [], depth: -1, kind: 'none' };
  if (hasInlineData(inode)) return { ...none, kind: 'inline' };
  const t = inode.type;
  if (t === 'chardev' || t === 'blockdev' || t === 'fifo' || t === 'socket') return none;
  if (t === 'symlink' && fs.isFastSymlink(inode)) return none;
  if (isExtentMapped(inode)) return txFileMap(tx, inode);
  const info = await walkBlockMap(inode.base.i_block, {
    ino: inode.ino,
    blockSize: fs.blockSize,
    firstDataBlock: fs.sb.s_first_data_block,
    blocksCount: fs.sb.blocksCount,
    readBlock: async (n) => tx.blocks.get(n) ?? (await fs.readBlock(n)),
  });
  return { extents: info.extents, metadataBlocks: info.indirectBlocks, depth: -1, kind: 'blockmap' };
}

/** Refuse inodes whose xattr values live in EA inodes (their refcounts would need updating). */
function refuseEaInodeValues(inode: Inode, entries: { valueInode: number; name: string }[]): void {
  const x = entries.find((e) => e.valueInode !== 0);
  if (x) throw new Ext4Error('EOPNOTSUPP', `orphan inode ${inode.ino} keeps xattr ${x.name} in EA inode ${x.valueInode}: run e2fsck -fy`, { structure: `inode ${inode.ino}` });
}

/** Drop the inode's reference to its xattr block: free it at refcount 0, else rewrite it with refcount − 1. */
async function releaseXattrBlock(tx: Transaction, inode: Inode, frees: FreeRuns): Promise<void> {
  const fs = tx.fs;
  refuseEaInodeValues(inode, parseInodeXattrs(inode.raw, inode.extraIsize, inode.ino));
  const blk = inode.fileAcl;
  if (!blk) return;
  if (blk < fs.sb.s_first_data_block || blk >= fs.sb.blocksCount)
    throw new Ext4Error('EFSCORRUPTED', `xattr block ${blk} is outside the filesystem`, { structure: `inode ${inode.ino}`, location: 'i_file_acl' });
  const csum = fs.sb.hasMetadataCsum;
  const data = tx.blocks.get(blk) ?? (await fs.readBlock(blk));
  refuseEaInodeValues(inode, parseXattrBlock(data, blk, { fsSeed: csum ? fs.fsSeed : null, verify: fs.verify }));
  const h = XattrBlockHeaderLayout.decode(data);
  if (h.h_refcount <= 1) frees.add(blk, 1);
  else {
    const w = await tx.block(blk);
    h.h_refcount -= 1;
    XattrBlockHeaderLayout.encode(h, w);
    if (csum) new DataView(w.buffer, w.byteOffset).setUint32(XattrBlockHeaderLayout.offsetOf('h_checksum'), xattrBlockChecksum(w, blk, fs.fsSeed), true);
  }
  inode.base.i_file_acl_lo = 0;
  inode.base.i_file_acl_high = 0;
  inode.fileAcl = 0;
}

/**
 * Delete an unlinked inode inside `tx` (e2fsck release_orphan_inode with
 * links_count 0): free every data and tree block, drop the xattr block,
 * free the inode in its bitmap and set i_dtime. Writes the inode.
 */
async function deleteInode(tx: Transaction, inode: Inode): Promise<void> {
  const frees = new FreeRuns();
  await releaseXattrBlock(tx, inode, frees);
  const map = await txMap(tx, inode);
  for (const e of map.extents) frees.add(e.physical, e.length);
  for (const b of map.metadataBlocks) frees.add(b, 1);
  frees.apply(tx);
  await freeInode(tx, inode.ino, inode.type === 'dir');
  inode.base.i_dtime = tx.fs.now().sec >>> 0;
  inode.dtime = inode.base.i_dtime;
  await tx.writeInode(inode);
}

/** Keep logical blocks [0, keep) of a block-mapped inode; indirect blocks are freed once empty. */
async function truncateBlockMap(tx: Transaction, inode: Inode, keep: number): Promise<boolean> {
  const fs = tx.fs;
  const sb = fs.sb;
  const per = fs.blockSize / 4;
  const structure = `inode ${inode.ino} block map`;
  const frees = new FreeRuns();
  const seen = new Set<number>();
  const read = async (b: number) => tx.blocks.get(b) ?? (await fs.readBlock(b));
  const check = (p: number, loc: string) => {
    if (p < sb.s_first_data_block || p >= sb.blocksCount) throw new Ext4Error('EFSCORRUPTED', `block pointer ${p} outside the filesystem`, { structure, location: loc });
  };
  const visit = (b: number, loc: string) => {
    check(b, loc);
    if (seen.has(b)) throw new Ext4Error('EFSCORRUPTED', `indirect block ${b} referenced twice`, { structure, location: loc });
    seen.add(b);
  };
  // Free indirect block b (of `level`) with everything below it.
  const freeTree = async (b: number, level: number, loc: string): Promise<void> => {
    visit(b, loc);
    const data = await read(b);
    const d = new DataView(data.buffer, data.byteOffset, fs.blockSize);
    for (let i = 0; i < per; i++) {
      const p = d.getUint32(i * 4, true);
      if (!p) continue;
      if (level === 1) {
        check(p, `block ${b} slot ${i}`);
        frees.add(p, 1);
      } else await freeTree(p, level - 1, `block ${b} slot ${i}`);
    }
    frees.add(b, 1);
  };
  // Truncate below indirect block b; false when it ends up empty (then b itself is freed).
  const trunc = async (b: number, level: number, base: number, loc: string): Promise<boolean> => {
    if (base >= keep) {
      await freeTree(b, level, loc);
      return false;
    }
    visit(b, loc);
    const data = await read(b);
    const d = new DataView(data.buffer, data.byteOffset, fs.blockSize);
    const span = per ** (level - 1);
    const zero: number[] = [];
    let kept = false;
    for (let i = 0; i < per; i++) {
      const p = d.getUint32(i * 4, true);
      if (!p) continue;
      const lb = base + i * span;
      const ploc = `block ${b} slot ${i}`;
      if (level === 1) {
        if (lb >= keep) {
          check(p, ploc);
          frees.add(p, 1);
          zero.push(i);
        } else kept = true;
      } else if (await trunc(p, level - 1, lb, ploc)) kept = true;
      else zero.push(i);
    }
    if (!kept) {
      frees.add(b, 1);
      return false;
    }
    if (zero.length) {
      const w = await tx.block(b);
      const wd = new DataView(w.buffer, w.byteOffset, fs.blockSize);
      for (const i of zero) wd.setUint32(i * 4, 0, true);
    }
    return true;
  };

  const iblock = inode.base.i_block.slice();
  const root = new DataView(iblock.buffer, iblock.byteOffset, 60);
  let changed = false;
  for (let i = 0; i < NDIR_BLOCKS; i++) {
    const p = root.getUint32(i * 4, true);
    if (p && i >= keep) {
      check(p, `i_block[${i}]`);
      frees.add(p, 1);
      root.setUint32(i * 4, 0, true);
      changed = true;
    }
  }
  let base = NDIR_BLOCKS;
  for (let level = 1; level <= 3; level++) {
    const slot = NDIR_BLOCKS + level - 1;
    const p = root.getUint32(slot * 4, true);
    if (p && base + per ** level > keep) {
      if (!(await trunc(p, level, base, `i_block[${slot}]`))) {
        root.setUint32(slot * 4, 0, true);
        changed = true;
      }
    }
    base += per ** level;
  }
  if (frees.count === 0 && !changed) return false;
  frees.apply(tx);
  inode.base.i_block = iblock;
  const info = await walkBlockMap(iblock, {
    ino: inode.ino,
    blockSize: fs.blockSize,
    firstDataBlock: sb.s_first_data_block,
    blocksCount: sb.blocksCount,
    readBlock: read,
  });
  const data = info.extents.reduce((a, e) => a + e.length, 0);
  setIBlocks(tx, inode, data + info.indirectBlocks.length + (inode.fileAcl ? 1 : 0));
  return true;
}

/**
 * Free the inode's blocks at and after logical block `keep` inside `tx`
 * (tree rebuilt, i_blocks recomputed). Does not write the inode for
 * block-mapped files (the caller writes it); extent files are written by remapInode.
 */
async function shrinkBlocks(tx: Transaction, inode: Inode, keepBlocks: number): Promise<void> {
  const keep = Math.min(keepBlocks, 2 ** 32); // a hostile i_size past the largest logical block keeps everything
  const map = await txMap(tx, inode);
  if (map.kind === 'extents') {
    const freed = mappedIn(map.extents, keep, 2 ** 32 - keep);
    if (freed.length === 0) return;
    const frees = new FreeRuns();
    for (const e of freed) frees.add(e.physical, e.length);
    frees.apply(tx);
    await remapInode(tx, inode, map, mappedIn(map.extents, 0, keep));
  } else if (map.kind === 'blockmap') {
    await truncateBlockMap(tx, inode, keep);
  }
}

/** Zero the bytes past EOF in the file's last block (kernel ext4_truncate → ext4_block_truncate_page). */
async function zeroTail(tx: Transaction, inode: Inode): Promise<void> {
  const fs = tx.fs;
  const bs = fs.blockSize;
  if (inode.type !== 'file' || inode.size % bs === 0) return;
  const map = await txMap(tx, inode);
  if (map.kind !== 'extents' && map.kind !== 'blockmap') return;
  const lb = Math.floor(inode.size / bs);
  const e = mappedIn(map.extents, lb, 1)[0];
  if (!e || e.unwritten) return;
  const data = await fs.readDataBlocks(e.physical, 1);
  const from = inode.size % bs;
  if (data.subarray(from).every((b) => b === 0)) return;
  data.fill(0, from);
  tx.writeData(e.physical, data);
}

/** Truncate a linked orphan to i_size and clear its i_dtime (e2fsck release_orphan_inode with links_count > 0). Writes the inode. */
async function truncateOrphan(tx: Transaction, inode: Inode): Promise<void> {
  const keep = Math.ceil(inode.size / tx.fs.blockSize);
  await shrinkBlocks(tx, inode, keep);
  await zeroTail(tx, inode);
  const fresh = await tx.readInode(inode.ino);
  // remapInode wrote the extent case; the block-map case changed `inode` in memory only.
  const target = isExtentMapped(inode) ? fresh : inode;
  target.base.i_dtime = 0;
  target.dtime = 0;
  await tx.writeInode(target);
}

/** Journal room for one transaction's freeing, in blocks (Infinity without a journal). */
function transactionBudget(fs: Filesystem): number {
  const j = fs.journal;
  if (!j) return Infinity;
  return Math.floor(j.logCapacity() / 4) - 64;
}

/**
 * Logical cut points (descending, all > keep) at which an extent-mapped
 * inode must be shrunk in separate transactions so that each one's bitmap
 * and descriptor updates fit the journal.
 */
function planCuts(fs: Filesystem, extents: readonly Extent[], keep: number): number[] {
  const budget = transactionBudget(fs) - treeBlocksNeeded(extents.length, fs.blockSize);
  if (!Number.isFinite(budget)) return [];
  const groupsPerStep = Math.max(4, Math.floor(budget / 2));
  if (keep >= 2 ** 32) return [];
  const freed = mappedIn(extents, keep, 2 ** 32 - keep);
  const cuts: number[] = [];
  let groups = new Set<number>();
  for (let i = freed.length - 1; i >= 0; i--) {
    const e = freed[i]!;
    const mine: number[] = [];
    for (let g = groupOfBlock(fs.sb, e.physical); g <= groupOfBlock(fs.sb, e.physical + e.length - 1); g++) if (!groups.has(g)) mine.push(g);
    if (groups.size > 0 && groups.size + mine.length > groupsPerStep) {
      cuts.push(e.logical + e.length);
      groups = new Set<number>();
    }
    for (let g = groupOfBlock(fs.sb, e.physical); g <= groupOfBlock(fs.sb, e.physical + e.length - 1); g++) groups.add(g);
  }
  return cuts.filter((c) => c > keep);
}

/**
 * Delete (links 0) or truncate (links > 0) orphan `ino`, in as many
 * transactions as its frees need; `unlist` runs in the last one to take the
 * inode off its orphan list. Returns what was done.
 */
async function cleanupOrphan(fs: Filesystem, ino: number, unlist: (tx: Transaction, inode: Inode) => Promise<void>): Promise<'deleted' | 'truncated'> {
  const first = await fs.readInode(ino);
  const deleting = first.linksCount === 0;
  const keep = deleting ? 0 : Math.ceil(first.size / fs.blockSize);
  if (isExtentMapped(first) && !hasInlineData(first)) {
    const map = await fs.fileMap(first);
    for (const cut of planCuts(fs, map.extents, keep)) {
      await fs.transact(async (tx) => {
        const inode = await tx.readInode(ino);
        await shrinkBlocks(tx, inode, cut);
      });
    }
  }
  await fs.transact(async (tx) => {
    let inode = await tx.readInode(ino);
    await unlist(tx, inode);
    inode = await tx.readInode(ino);
    if (deleting) await deleteInode(tx, inode);
    else await truncateOrphan(tx, inode);
  });
  return deleting ? 'deleted' : 'truncated';
}

export interface OrphanReport {
  deleted: number[];
  truncated: number[];
}

/**
 * Set the superblock's free block and inode totals to the sums of the group
 * descriptors, as the kernel does at every mount (ext4_fill_super:
 * ext4_count_free_clusters / ext4_count_free_inodes). The kernel lets the
 * superblock totals go stale while mounted (it keeps them in per-cpu
 * counters), so an image that crashed — and whose journal was just
 * replayed — usually carries old totals, which e2fsck reports ("Free blocks
 * count wrong"). Like the kernel's counters, the correction is made in
 * memory only: it reaches the disk with the superblock image of the first
 * transaction that commits (every commit logs the superblock), so an open
 * whose calls all fail writes nothing. Returns whether it changed them.
 */
export async function recountFreeTotals(fs: Filesystem): Promise<boolean> {
  if (fs.readOnly) return false;
  let blocks = 0, inodes = 0;
  for (let g = 0; g < fs.sb.groupCount; g++) {
    const gd = await fs.group(g);
    blocks += gd.freeBlocks;
    inodes += gd.freeInodes;
  }
  if (blocks > fs.sb.blocksCount || inodes > fs.sb.s_inodes_count)
    throw new Ext4Error('EFSCORRUPTED', `group descriptors count ${blocks} free blocks / ${inodes} free inodes, more than the filesystem has`, { structure: 'group descriptors' });
  const db = blocks - fs.sb.freeBlocksCount, di = inodes - fs.sb.s_free_inodes_count;
  if (db === 0 && di === 0) return false;
  fs.sb.freeBlocksCount = blocks;
  fs.sb.s_free_inodes_count = inodes;
  return true;
}

/**
 * What Linux does at a read-write mount after journal recovery, in its
 * order: recount the superblock free totals (recountFreeTotals, in memory),
 * then release every orphan (see the module comment). Called by Filesystem
 * on write opens after journal replay; writes nothing when there are no
 * orphans.
 */
export async function processOrphans(fs: Filesystem): Promise<OrphanReport> {
  const report: OrphanReport = { deleted: [], truncated: [] };
  if (fs.readOnly) return report;
  await recountFreeTotals(fs);
  const sb = fs.sb;
  const present = (sb.s_feature_ro_compat & RO_COMPAT.ORPHAN_PRESENT) !== 0;
  const hasFile = (sb.s_feature_compat & COMPAT.ORPHAN_FILE) !== 0;
  if (present && !hasFile)
    throw new Ext4Error('EFSCORRUPTED', 'orphan_present is set but the filesystem has no orphan file: run e2fsck -fy', { structure: 'superblock', location: 's_feature_ro_compat' });
  if (sb.s_last_orphan === 0 && !hasFile) return report;
  const { list, file } = await listOrphans(fs);
  const record = (ino: number, what: 'deleted' | 'truncated') => (what === 'deleted' ? report.deleted : report.truncated).push(ino);

  for (const ino of list) {
    const what = await cleanupOrphan(fs, ino, async (tx, inode) => {
      // We process from the head: the next orphan becomes the head.
      await superblockFirst(tx);
      const next = inode.dtime;
      tx.sbEdits.push((s) => {
        s.s_last_orphan = next;
      });
      listHeads.set(tx, next);
    });
    record(ino, what);
  }
  const of = await orphanFile(fs);
  for (const e of file) {
    const what = await cleanupOrphan(fs, e.ino, async (tx) => {
      await setOrphanSlot(tx, of!, e.index, e.slot, 0);
    });
    record(e.ino, what);
  }
  if (fs.sb.s_feature_ro_compat & RO_COMPAT.ORPHAN_PRESENT && of && (await orphanFileEntries(fs, null, of)).length === 0) {
    await fs.transact(async (tx) => {
      tx.sbEdits.push((s) => {
        s.s_feature_ro_compat &= ~RO_COMPAT.ORPHAN_PRESENT;
      });
    });
  }
  const n = report.deleted.length, t = report.truncated.length;
  if (n || t) fs.warnings.push(`orphan cleanup: ${n} orphan inode${n === 1 ? '' : 's'} deleted, ${t} truncate${t === 1 ? '' : 's'} cleaned up`);
  return report;
}

// ---------------------------------------------------------------------------------------------- adding and removing orphans

/** s_last_orphan as changed by the transaction so far (sbEdits are applied only at finalise). */
const listHeads = new WeakMap<Transaction, number>();

function listHead(tx: Transaction): number {
  return listHeads.get(tx) ?? tx.fs.sb.s_last_orphan;
}

/**
 * Make the superblock block the first metadata block the transaction writes
 * (block maps keep first-touch order). Without a journal, blocks are written
 * in that order, so a crash can then leave an orphan that is off the list
 * but still allocated (a leak e2fsck reclaims), never a list entry pointing
 * at an inode already freed (which would stop the next orphan cleanup).
 */
async function superblockFirst(tx: Transaction): Promise<void> {
  await tx.block(Math.floor(SUPERBLOCK_OFFSET / tx.fs.blockSize));
}

function setListHead(tx: Transaction, ino: number): void {
  listHeads.set(tx, ino);
  tx.sbEdits.push((s) => {
    s.s_last_orphan = ino;
  });
}

/** Walk the list as of the transaction (bounded, cycle-checked); returns [prev, ino] pairs. */
async function walkList(tx: Transaction, visit: (ino: number, prev: number, inode: Inode) => boolean): Promise<void> {
  const sb = tx.fs.sb;
  const seen = new Set<number>();
  let prev = 0;
  let ino = listHead(tx);
  while (ino !== 0) {
    if (seen.has(ino)) throw new Ext4Error('EFSCORRUPTED', `orphan list has a cycle at inode ${ino}`, { structure: 'orphan list' });
    if (ino < sb.s_first_ino || ino > sb.s_inodes_count) throw new Ext4Error('EFSCORRUPTED', `orphan list points at inode ${ino}`, { structure: prev ? `inode ${prev}` : 'superblock', location: prev ? 'i_dtime' : 's_last_orphan' });
    seen.add(ino);
    const inode = await tx.readInode(ino);
    if (!visit(ino, prev, inode)) return;
    prev = ino;
    ino = inode.dtime;
  }
}

/**
 * Put inode `ino` on the orphan list inside `tx`: a free slot of the orphan
 * file (setting ORPHAN_PRESENT) when the fs has one with room, else the head
 * of the s_last_orphan list (i_dtime = old head). EEXIST if it is already an orphan.
 */
export async function addOrphan(tx: Transaction, ino: number): Promise<void> {
  const fs = tx.fs;
  if (!Number.isInteger(ino) || ino < fs.sb.s_first_ino || ino > fs.sb.s_inodes_count) throw new Ext4Error('EINVAL', `inode ${ino} cannot be an orphan`);
  let inList = false;
  await walkList(tx, (i) => {
    inList = i === ino;
    return !inList;
  });
  const of = await orphanFile(fs);
  const entries = of ? await orphanFileEntries(fs, tx, of) : [];
  if (inList || entries.some((e) => e.ino === ino)) throw new Ext4Error('EEXIST', `inode ${ino} is already on the orphan list`);
  if (of) {
    const per = inodesPerOrphanBlock(fs.blockSize);
    const used = new Set(entries.map((e) => e.index * per + e.slot));
    for (let k = 0; k < of.blocks.length * per; k++) {
      if (used.has(k)) continue;
      await setOrphanSlot(tx, of, Math.floor(k / per), k % per, ino);
      tx.sbEdits.push((s) => {
        s.s_feature_ro_compat |= RO_COMPAT.ORPHAN_PRESENT;
      });
      return;
    }
    // Full: fall back to the list, as the kernel does.
  }
  const inode = await tx.readInode(ino);
  inode.base.i_dtime = listHead(tx);
  inode.dtime = inode.base.i_dtime;
  await tx.writeInode(inode);
  setListHead(tx, ino);
}

/**
 * Take inode `ino` off the orphan list inside `tx` (orphan-file slot cleared,
 * ORPHAN_PRESENT cleared when the file becomes empty; or unlinked from the
 * s_last_orphan list, its i_dtime reset to 0). EINVAL if it is not an orphan.
 */
export async function removeOrphan(tx: Transaction, ino: number): Promise<void> {
  const fs = tx.fs;
  const of = await orphanFile(fs);
  if (of) {
    const entries = await orphanFileEntries(fs, tx, of);
    const hit = entries.find((e) => e.ino === ino);
    if (hit) {
      await setOrphanSlot(tx, of, hit.index, hit.slot, 0);
      if (entries.length === 1) {
        tx.sbEdits.push((s) => {
          s.s_feature_ro_compat &= ~RO_COMPAT.ORPHAN_PRESENT;
        });
      }
      return;
    }
  }
  let found: { prev: number; next: number } | null = null;
  await walkList(tx, (i, prev, inode) => {
    if (i !== ino) return true;
    found = { prev, next: inode.dtime };
    return false;
  });
  const f = found as { prev: number; next: number } | null;
  if (!f) throw new Ext4Error('EINVAL', `inode ${ino} is not on the orphan list`);
  if (f.prev === 0) {
    await superblockFirst(tx);
    setListHead(tx, f.next);
  } else {
    const p = await tx.readInode(f.prev);
    p.base.i_dtime = f.next;
    p.dtime = f.next;
    await tx.writeInode(p);
  }
  const inode = await tx.readInode(ino);
  inode.base.i_dtime = 0;
  inode.dtime = 0;
  await tx.writeInode(inode);
}

// ---------------------------------------------------------------------------------------------- temporary files

export interface TempFileOptions {
  /** Group to allocate the inode in (first free from there, wrapping). */
  goalGroup?: number;
  /** Permission bits (default 0o600). */
  mode?: number;
}

/**
 * Create a temporary regular file in one transaction: a new extent-mapped
 * inode with links_count 0 and no blocks, on the orphan list. It is visible
 * nowhere; release it with releaseTempFile. After a crash, Linux (at mount),
 * e2fsck -fy and ext4kit's next write open delete it.
 */
export async function createTempFile(fs: Filesystem, opts: TempFileOptions = {}): Promise<number> {
  if (!(fs.sb.s_feature_incompat & INCOMPAT.EXTENTS)) throw new Ext4Error('EOPNOTSUPP', 'temporary files need the extent feature');
  return fs.transact(async (tx) => {
    const sb = fs.sb;
    const ino = await allocateInode(tx, { goalGroup: opts.goalGroup ?? 0 });
    const inode = await tx.readInode(ino); // the slot was zeroed by allocateInode
    const t = encodeTime(fs.now());
    const b = inode.base;
    b.i_mode = S_IFREG | ((opts.mode ?? 0o600) & 0o7777);
    b.i_links_count = 0;
    b.i_atime = b.i_ctime = b.i_mtime = t.base;
    b.i_dtime = 0;
    b.i_flags = INODE_FLAGS.EXTENTS;
    b.i_generation = randomU32(fs, `i_generation of inode ${ino}`);
    const root = new Uint8Array(60);
    writeHeader(root, { entries: 0, max: 4, depth: 0 });
    b.i_block = root;
    if (sb.s_inode_size > 128) {
      const extra = Math.min(Math.max(sb.s_want_extra_isize, sb.s_min_extra_isize, 32), sb.s_inode_size - 128) & ~3;
      inode.extraIsize = extra;
      inode.extra.i_extra_isize = extra;
      inode.extra.i_ctime_extra = inode.extra.i_mtime_extra = inode.extra.i_atime_extra = t.extra;
      inode.extra.i_crtime = t.base;
      inode.extra.i_crtime_extra = t.extra;
    }
    inode.flags = b.i_flags;
    inode.generation = b.i_generation;
    await tx.writeInode(inode);
    await addOrphan(tx, ino);
    return ino;
  });
}

/**
 * Delete a temporary file made by createTempFile (it may own blocks by now):
 * taken off the orphan list, its blocks and inode freed — in several
 * transactions if the journal needs it, the inode staying an orphan until
 * the last. EINVAL if the inode has links or is not an orphan.
 */
export async function releaseTempFile(fs: Filesystem, ino: number): Promise<void> {
  const inode = await fs.readInode(ino);
  if (inode.mode === 0) throw new Ext4Error('ENOENT', `inode ${ino} is not in use`);
  if (inode.linksCount !== 0) throw new Ext4Error('EINVAL', `inode ${ino} has ${inode.linksCount} links: not a temporary file`);
  await cleanupOrphan(fs, ino, (tx) => removeOrphan(tx, ino));
}

