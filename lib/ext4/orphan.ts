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
 *   - each orphan is released by inode-lifecycle.ts releaseInode: deleted
 *     when links_count is 0, else truncated to i_size (i_dtime cleared);
 *   - each orphan in its own transaction (or several, when its frees would
 *     not fit one), the last of which also advances s_last_orphan or clears
 *     its orphan-file slot, so a crash during cleanup leaves a consistent list;
 *   - ORPHAN_PRESENT is cleared once the orphan file is empty.
 *
 * addOrphan / removeOrphan put an inode on (or take it off) the orphan file
 * when the fs has one and it has room, else the list, inside a caller's
 * transaction (temp-file.ts makes its temporary files orphans this way).
 *
 * EA inodes (ea_inode) on the list are released like any orphan, as e2fsck's
 * release_orphan_inodes does: the kernel puts one there when its refcount
 * drops to 0 and frees it at eviction, so a crash in between leaves it listed.
 * Linux 6.18 itself refuses it at mount (ext4_orphan_get → iget without
 * EXT4_IGET_EA_INODE: "unexpected EA_INODE flag", the fs marked with errors
 * and the inode leaked; on the old list the rest of the list is dropped too,
 * s_last_orphan zeroed); test/namespace/orphan-ea.test.ts shows both.
 * Orphans owning values in EA inodes drop their references on deletion
 * (inode-lifecycle.ts → ea-inode.ts), freeing EA inodes left at 0.
 */
import { Ext4Error, type Location } from '../errors.js';
import type { FsWriter as Filesystem } from './transaction.js';
import type { Transaction } from './transaction.js';
import { defineStruct, le32 } from '../codec/layout.js';
import { crc32c, le64 } from './checksum.js';
import { COMPAT, RO_COMPAT, SUPERBLOCK_OFFSET } from './superblock.js';
import { INODE_FLAGS, type Inode } from './inode.js';
import { groupOfInode } from './geometry.js';
import { testBit } from './bitmap.js';
import { releaseInode } from './inode-lifecycle.js';
import { eaInodeRefs } from './ea-inode.js';

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
    if (ino < 1 || ino > fs.sb.s_inodes_count) throw new Ext4Error('EFSCORRUPTED', `s_orphan_file_inum ${ino} is out of range`, { structure: 'superblock', location: { kind: 'field', field: 's_orphan_file_inum' } });
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
  const data = await (tx ?? fs).readBlock(phys);
  const where = { structure: `orphan file (inode ${of.ino})`, location: { kind: 'logical-block', block: i, physical: phys } satisfies Location };
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
  le32.set(w, slot, value >>> 0);
  if (of.seed !== null) {
    const tailOff = tx.fs.blockSize - OrphanBlockTailLayout.size;
    const tail = OrphanBlockTailLayout.decode(w, tailOff);
    tail.ob_checksum = orphanBlockChecksum(w, phys, of.seed);
    OrphanBlockTailLayout.encode(tail, w, tailOff);
  }
}

/** Every non-zero slot of the orphan file, in block/slot order. */
async function orphanFileEntries(fs: Filesystem, tx: Transaction | null, of: OrphanFile): Promise<{ ino: number; index: number; slot: number }[]> {
  const per = inodesPerOrphanBlock(fs.blockSize);
  const out: { ino: number; index: number; slot: number }[] = [];
  for (let i = 0; i < of.blocks.length; i++) {
    const data = await orphanBlock(fs, tx, of, i);
    for (let j = 0; j < per; j++) {
      const ino = le32.get(data, j);
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
async function checkOrphanInode(fs: Filesystem, ino: number, where: { structure: string; location: Location }): Promise<Inode> {
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
  // An EA inode is put on the list when its last reference goes (ext4_xattr_inode_update_ref:
  // refcount 0, links 0) and leaves it with its first new one, in the same handle: on the list
  // it holds no reference. One that still counts references is named by some xattr entry, and
  // freeing it would leave that entry dangling.
  if (inode.flags & INODE_FLAGS.EA_INODE && eaInodeRefs(inode) !== 0)
    throw new Ext4Error('EFSCORRUPTED', `orphan inode ${ino} is an EA inode that still has ${eaInodeRefs(inode)} reference(s): run e2fsck -fy`, where);
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
  let where: { structure: string; location: Location } = { structure: 'superblock', location: { kind: 'field', field: 's_last_orphan' } };
  while (ino !== 0) {
    if (seen.has(ino)) throw new Ext4Error('EFSCORRUPTED', `orphan list has a cycle at inode ${ino}`, where);
    if (list.length >= sb.s_inodes_count) throw new Ext4Error('EFSCORRUPTED', 'orphan list is longer than the inode count', where);
    const inode = await checkOrphanInode(fs, ino, where);
    seen.add(ino);
    list.push(ino);
    where = { structure: `inode ${ino}`, location: { kind: 'field', field: 'i_dtime', note: 'next orphan' } satisfies Location };
    ino = inode.dtime;
  }
  const file: OrphanFileEntry[] = [];
  const of = await orphanFile(fs);
  if (of) {
    for (const e of await orphanFileEntries(fs, null, of)) {
      const w = { structure: `orphan file (inode ${of.ino})`, location: { kind: 'part', of: { kind: 'logical-block', block: e.index }, part: 'slot', index: e.slot } satisfies Location };
      if (seen.has(e.ino)) throw new Ext4Error('EFSCORRUPTED', `inode ${e.ino} is on the orphan list twice`, w);
      await checkOrphanInode(fs, e.ino, w);
      seen.add(e.ino);
      file.push(e);
    }
  }
  return { list, file };
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
    throw new Ext4Error('EFSCORRUPTED', 'orphan_present is set but the filesystem has no orphan file: run e2fsck -fy', { structure: 'superblock', location: { kind: 'field', field: 's_feature_ro_compat' } });
  if (sb.s_last_orphan === 0 && !hasFile) return report;
  const { list, file } = await listOrphans(fs);
  const record = (ino: number, what: 'deleted' | 'truncated') => (what === 'deleted' ? report.deleted : report.truncated).push(ino);

  for (const ino of list) {
    const what = await releaseInode(fs, ino, async (tx, inode) => {
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
    const what = await releaseInode(fs, e.ino, async (tx) => {
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
    if (ino < sb.s_first_ino || ino > sb.s_inodes_count) throw new Ext4Error('EFSCORRUPTED', `orphan list points at inode ${ino}`, { structure: prev ? `inode ${prev}` : 'superblock', location: prev ? { kind: 'field', field: 'i_dtime' } : { kind: 'field', field: 's_last_orphan' } });
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
