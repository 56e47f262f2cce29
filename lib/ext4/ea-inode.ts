/**
 * EA inodes (the ea_inode feature): an xattr value too large for the inode
 * body or the xattr block lives as the data of a regular inode flagged
 * EXT4_EA_INODE_FL, named by the entry's e_value_inum. The kernel's
 * fs/ext4/xattr.c (and e2fsprogs' ext2fs_get_ea_inode_hash/_ref) keep in it:
 *
 * - the value's hash, crc32c(fs checksum seed, value), in i_atime
 *   (ext4_xattr_inode_set_hash); the entry's e_hash is the entry hash of the
 *   name over that one 32-bit word instead of the value;
 * - its reference count (one per inode body or xattr block naming it) split
 *   as i_ctime (high 32 bits) and i_version's low word (ext4_xattr_inode_set_ref);
 *   i_links_count stays 1 while referenced, and e2fsck pass 4 compares the
 *   count with the references it found.
 *
 * At refcount 0 the kernel puts the EA inode on the orphan list and evicts
 * it; here it is freed at once (blocks, bitmap, i_dtime) in the same
 * transaction — the state after the eviction. This module does not create
 * EA inodes (xattr-edit.ts does), so inode-lifecycle.ts can use it.
 *
 * Sharing: the kernel finds an EA inode already holding a value through its
 * mbcache (value hash → inode numbers of the EA inodes it created or read
 * since mount) and takes one more reference instead of making another. The
 * same here, per open filesystem: EA inodes created or read through a
 * transaction are remembered by hash, and a candidate is used only after its
 * flag, size, stored hash and bytes are checked against the value (so a
 * stale entry, e.g. of a transaction that failed, is never trusted).
 */
import { Ext4Error } from '../errors.js';
import type { Transaction } from './transaction.js';
import { INODE_FLAGS, encodeTime, type Inode } from './inode.js';
import { crc32c } from '../codec/crc.js';
import { le32 } from './checksum.js';
import { xattrEntryHash } from './xattr-hash.js';
import { freeInode } from './alloc.js';
import { txFileMap } from './remap.js';

const round4 = (n: number) => (n + 3) & ~3;

/**
 * EXT4_XATTR_MIN_LARGE_EA_SIZE: a value whose padded size is past this goes
 * to an EA inode at once (block size − a 3-byte-name entry − the block
 * header − the end word).
 */
export function minLargeEaSize(blockSize: number): number {
  return blockSize - round4(16 + 3) - 32 - 4;
}

/** EXT4_XATTR_BLOCK_RESERVE: with ea_inode, inline values leave this much of the block to names. */
export function eaBlockReserve(blockSize: number): number {
  return Math.min(blockSize / 8, 1024);
}

/** ext4_xattr_inode_hash: crc32c of the value seeded with the filesystem's checksum seed. */
export function eaValueHash(fsSeed: number, value: Uint8Array): number {
  return crc32c(fsSeed, value) >>> 0;
}

/** The e_hash of an entry whose value is in an EA inode: the name, then the value hash as one word. */
export function eaEntryHash(suffix: Uint8Array, valueHash: number): number {
  return xattrEntryHash(suffix, le32(valueHash), 4);
}

/**
 * Blocks the owner's i_blocks counts for its values in EA inodes (e2fsck pass 1's ea quota: each
 * value's size in whole clusters; the kernel charges them to the owner, ext4_xattr_inode_alloc_quota).
 */
export function eaInodeCharge(sb: { s_log_cluster_size: number; s_log_block_size: number }, blockSize: number, entries: readonly { valueInode: number; valueSize: number }[]): number {
  const ratio = 2 ** (sb.s_log_cluster_size - sb.s_log_block_size), cluster = blockSize * ratio;
  let n = 0;
  for (const e of entries) if (e.valueInode) n += Math.ceil(e.valueSize / cluster) * ratio;
  return n;
}

/** ext4_xattr_inode_get_ref: i_ctime (high word) and i_version's low word. */
export function eaInodeRefs(inode: Inode): number {
  return inode.base.i_ctime * 2 ** 32 + inode.base.i_version_lo;
}

/** ext4_xattr_inode_set_ref (ctime's nanoseconds 0, i_version_hi 0). */
export function setEaInodeRefs(inode: Inode, refs: number): void {
  const hi = Math.floor(refs / 2 ** 32) >>> 0;
  inode.base.i_ctime = hi;
  inode.extra.i_ctime_extra = encodeTime({ sec: hi, nsec: 0 }).extra;
  inode.ctime = { sec: hi, nsec: 0 };
  inode.base.i_version_lo = refs >>> 0;
  inode.extra.i_version_hi = 0;
}

/** ext4_xattr_inode_set_hash: the value hash as i_atime (nanoseconds 0). */
export function setEaInodeHash(inode: Inode, hash: number): void {
  const t = encodeTime({ sec: hash >>> 0, nsec: 0 });
  inode.base.i_atime = t.base;
  inode.extra.i_atime_extra = t.extra;
  inode.atime = { sec: hash >>> 0, nsec: 0 };
}

/** The EA inode an entry of `owner` names, checked as ext4_xattr_inode_iget / e2fsck check_large_ea_inode do. */
export async function readEaInode(tx: Transaction, ino: number, owner: number): Promise<Inode> {
  const sb = tx.fs.sb;
  const where = { structure: `inode ${owner} xattrs`, location: { kind: 'inode' as const, ino } };
  if (ino === owner || ino < sb.s_first_ino || ino > sb.s_inodes_count)
    throw new Ext4Error('EFSCORRUPTED', `xattr value inode ${ino} of inode ${owner} is out of range`, where);
  const inode = await tx.readInode(ino);
  if (!(inode.flags & INODE_FLAGS.EA_INODE) || inode.type !== 'file' || inode.linksCount === 0)
    throw new Ext4Error('EFSCORRUPTED', `inode ${ino} named by an xattr of inode ${owner} is not an EA inode in use`, where);
  return inode;
}

/** The value kept in EA inode `ino` (valueSize bytes: its i_size), read through the transaction. */
export async function readEaValue(tx: Transaction, ino: number, owner: number, valueSize: number): Promise<Uint8Array> {
  const inode = await readEaInode(tx, ino, owner);
  const where = { structure: `inode ${ino}`, location: { kind: 'inode' as const, ino } };
  if (inode.size !== valueSize) throw new Ext4Error('EFSCORRUPTED', `EA inode ${ino} holds ${inode.size} bytes, the entry says ${valueSize}`, where);
  const bs = tx.fs.blockSize, out = new Uint8Array(valueSize);
  const map = await txFileMap(tx, inode);
  for (const e of map.extents) {
    for (let i = 0; i < e.length; i++) {
      const at = (e.logical + i) * bs;
      if (at >= valueSize) break;
      if (e.unwritten) continue;
      const blk = await tx.readBlock(e.physical + i);
      out.set(blk.subarray(0, Math.min(bs, valueSize - at)), at);
    }
  }
  // ext4_xattr_inode_read: an EA inode has no holes.
  const mapped = map.extents.reduce((n, e) => n + e.length, 0);
  if (mapped * bs < valueSize) throw new Ext4Error('EFSCORRUPTED', `EA inode ${ino} has holes`, where);
  noteEaInode(tx.fs, inode.base.i_atime >>> 0, ino);
  return out;
}

/**
 * Change EA inode `ino`'s reference count by `delta` (ext4_xattr_inode_update_ref); at 0 it is
 * freed: its blocks, its bitmap bit, links 0 and i_dtime set. Writes the EA inode.
 */
export async function changeEaInodeRefs(tx: Transaction, ino: number, owner: number, delta: number): Promise<void> {
  const inode = await readEaInode(tx, ino, owner);
  const refs = eaInodeRefs(inode) + delta;
  if (refs < 0) throw new Ext4Error('EFSCORRUPTED', `EA inode ${ino} would have ${refs} references`, { structure: `inode ${ino}`, location: { kind: 'inode', ino } });
  setEaInodeRefs(inode, refs);
  if (refs === 0) {
    const map = await txFileMap(tx, inode);
    for (const e of map.extents) tx.free(e.physical, e.length);
    for (const b of map.metadataBlocks) tx.free(b, 1);
    await freeInode(tx, ino, false);
    inode.base.i_links_count = 0;
    inode.linksCount = 0;
    inode.base.i_dtime = tx.fs.now().sec >>> 0;
    inode.dtime = inode.base.i_dtime;
    forgetEaInode(tx.fs, ino);
  }
  await tx.writeInode(inode);
}

const eaCache = new WeakMap<object, Map<number, Set<number>>>();

/** Remember EA inode `ino` as holding a value of hash `hash` (ext4's EA_INODE_CACHE). */
export function noteEaInode(fs: object, hash: number, ino: number): void {
  let m = eaCache.get(fs);
  if (!m) eaCache.set(fs, (m = new Map()));
  let set = m.get(hash);
  if (!set) m.set(hash, (set = new Set()));
  set.add(ino);
}

function forgetEaInode(fs: object, ino: number): void {
  for (const set of eaCache.get(fs)?.values() ?? []) set.delete(ino);
}

/**
 * An EA inode in use holding exactly `value` (hash `hash`) among those remembered for this
 * filesystem, or 0 (ext4_xattr_inode_cache_find: the bytes are compared, not only the hash).
 */
export async function findEaInode(tx: Transaction, value: Uint8Array, hash: number, owner: number): Promise<number> {
  for (const ino of [...(eaCache.get(tx.fs)?.get(hash) ?? [])]) {
    if (ino === owner) continue;
    const inode = await tx.readInode(ino);
    const usable = inode.flags & INODE_FLAGS.EA_INODE && inode.type === 'file' && inode.linksCount > 0 && inode.size === value.length && inode.base.i_atime >>> 0 === hash && eaInodeRefs(inode) > 0;
    if (!usable) {
      forgetEaInode(tx.fs, ino);
      continue;
    }
    const held = await readEaValue(tx, ino, owner, value.length);
    let same = true;
    for (let i = 0; i < value.length && same; i++) same = held[i] === value[i];
    if (same) return ino;
  }
  return 0;
}

/** One reference fewer on the EA inode of each entry that has one (ext4_xattr_inode_dec_ref_all). */
export async function dropEaInodeRefs(tx: Transaction, owner: number, entries: readonly { valueInode: number }[]): Promise<void> {
  for (const e of entries) if (e.valueInode) await changeEaInodeRefs(tx, e.valueInode, owner, -1);
}
