/**
 * A new directory's whole listing written at once, instead of name by name:
 * what a bulk import does with the directories it makes (DirBatch collects
 * their names during a transaction; `buildDirectory` writes them before it
 * commits).
 *
 * The layout is the one the kernel's inserts or `e2fsck -D` give:
 * - everything fits in block 0 after '.' and '..': one linear block, byte for
 *   byte what inserting the names one after the other gives;
 * - else, without dir_index: linear blocks, each filled in turn;
 * - else an htree (e2fsck's rehash, e2fsck/rehash.c copy_dir_entries and
 *   calculate_tree): the names sorted by (hash, minor hash), leaves filled
 *   until less than 20 % of a block is left (e2fsck's default
 *   indexed_dir_slack_percentage: room for later inserts), a leaf starting
 *   inside a run of equal hashes gets the collision bit in its index slot; the
 *   root indexes the leaves, or index nodes (one level, two with large_dir)
 *   when they do not fit it. e2fsck pass 2 checks every rule of this shape.
 *
 * The directory must be new in this transaction: one block holding '.' and
 * '..' only (else, or for an inline or casefolded one, the names are added one
 * by one through addDirEntry, as before). The names must be distinct and not
 * in the directory: the caller's contract, as CreateOptions.knownNew's (the
 * htree path still refuses two equal names, which sort next to each other).
 */
import { Ext4Error } from '../errors.js';
import type { Transaction } from './transaction.js';
import { COMPAT, INCOMPAT, S_FLAGS } from './superblock.js';
import { INODE_FLAGS, hasInlineData, isExtentMapped, type Inode } from './inode.js';
import type { Extent } from './extents.js';
import { DIR_TAIL_SIZE, dirRecLen, makeDirBlock, readDirBlock, type DirEntry, type NewDirEntry } from './directory.js';
import { dxIndexImage, dxNodeLimit, dxRootLimit, dxSlots, maxIndirectLevels, setDxChecksum } from './htree.js';
import { dirHash } from './dirhash.js';
import { hashSeedWords } from './hash-seed.js';
import { bytesEqual } from './bytes.js';
import { allocateBlocks } from './alloc.js';
import { blockMapExclude, remapInode, setSize, txFileMap } from './remap.js';
import { addDirEntry, checkName } from './dir-edit.js';

/** One name of a listing (fileType: the dirent file_type, direntType). */
export type BuildEntry = NewDirEntry;

/** e2fsck's default indexed_dir_slack_percentage: a leaf is closed once less than this share of it is left. */
const LEAF_SLACK_PERCENT = 20;

/** A leaf's image and its index slot's hash. */
interface Leaf {
  image: Uint8Array;
  /** Index slot hash: the first name's hash (| 1 when it continues a run of equal hashes). */
  hash: number;
}

/**
 * Write `entries` into directory `dir` (new in `tx`: '.' and '..' only), the
 * whole listing at once (see the module comment); `dir` is updated in place
 * (size, map, INDEX flag) and written.
 */
export async function buildDirectory(tx: Transaction, dir: Inode, entries: readonly BuildEntry[]): Promise<void> {
  if (entries.length === 0) return;
  for (const e of entries) checkName(e.name);
  const fs = tx.fs, bs = fs.blockSize, sb = fs.sb;
  const fresh = !hasInlineData(dir) && !(dir.flags & (INODE_FLAGS.ENCRYPT | INODE_FLAGS.CASEFOLD | INODE_FLAGS.INDEX)) && dir.size === bs ? await freshBlock(tx, dir) : null;
  if (!fresh) {
    for (const e of entries) await addDirEntry(tx, dir, e.name, e.inode, e.fileType);
    return;
  }
  const csumSeed = fs.inodeCsumSeed(dir);
  const leafOpts = { blockSize: bs, hasFiletype: (sb.s_feature_incompat & INCOMPAT.FILETYPE) !== 0, csum: csumSeed === null ? null : { seed: csumSeed } };
  const end = csumSeed === null ? bs : bs - DIR_TAIL_SIZE;
  // '.' and '..' at their 12 bytes, as the block holds them
  const head: NewDirEntry[] = fresh.dots.map((d) => ({ inode: d.inode, name: d.name, fileType: d.fileType, recLen: 12 }));
  let total = 0;
  for (const e of entries) total += dirRecLen(e.name.length);
  if (total <= end - 24) {
    // Linear, one block: the last name spans the rest.
    tx.setBlock(fresh.phys, makeDirBlock([...head, ...entries], leafOpts));
    return;
  }
  if (!(sb.s_feature_compat & COMPAT.DIR_INDEX)) {
    // Linear blocks, each filled in turn ('.' and '..' first in block 0).
    const blocks: Uint8Array[] = [];
    let leaf: NewDirEntry[] = [...head], used = 24;
    for (const e of entries) {
      const rec = dirRecLen(e.name.length);
      if (used + rec > end) {
        blocks.push(makeDirBlock(leaf, leafOpts));
        (leaf = []), (used = 0);
      }
      leaf.push(e);
      used += rec;
    }
    blocks.push(makeDirBlock(leaf, leafOpts));
    tx.setBlock(fresh.phys, blocks[0]!);
    await appendBlocks(tx, dir, fresh.extent, blocks.slice(1));
    return;
  }
  const version = sb.s_def_hash_version;
  const seed = hashSeedWords(sb.s_hash_seed);
  const signed = !(sb.s_flags & S_FLAGS.UNSIGNED_HASH);
  const hashed = entries.map((e) => {
    const h = dirHash(e.name, version, seed, signed);
    return { e, hash: h.hash >>> 0, minor: h.minor >>> 0 };
  });
  hashed.sort((a, b) => a.hash - b.hash || a.minor - b.minor);
  const slack = Math.max(Math.floor((end * LEAF_SLACK_PERCENT) / 100), dirRecLen(1));
  const leaves: Leaf[] = [];
  let hash = 0, prevHash = -1, leaf: NewDirEntry[] = [], used = 0;
  for (let i = 0; i < hashed.length; i++) {
    const h = hashed[i]!, rec = dirRecLen(h.e.name.length);
    if (i > 0 && h.hash === prevHash && h.minor === hashed[i - 1]!.minor && bytesEqual(h.e.name, hashed[i - 1]!.e.name))
      throw new Ext4Error('EEXIST', 'two entries with the same name', { structure: `directory ${dir.ino}`, location: { kind: 'inode', ino: dir.ino } });
    if (used > 0 && (used + rec > end || end - used < slack)) {
      leaves.push({ image: makeDirBlock(leaf, leafOpts), hash });
      (leaf = []), (used = 0);
    }
    if (used === 0) hash = leaves.length === 0 ? 0 : (h.hash | (h.hash === prevHash ? 1 : 0)) >>> 0;
    leaf.push(h.e);
    used += rec;
    prevHash = h.hash;
  }
  leaves.push({ image: makeDirBlock(leaf, leafOpts), hash });
  // Index levels above the leaves (logical blocks: the leaves 1..n, then the index nodes).
  const rootLimit = dxRootLimit(bs, csumSeed !== null), nodeLimit = dxNodeLimit(bs, csumSeed !== null);
  const blocks: Uint8Array[] = leaves.map((l) => l.image);
  let level: { hash: number; block: number }[] = leaves.map((l, i) => ({ hash: l.hash, block: i + 1 }));
  let levels = 0;
  while (level.length > rootLimit) {
    if (++levels > maxIndirectLevels((sb.s_feature_incompat & INCOMPAT.LARGEDIR) !== 0))
      throw new Ext4Error('ENOSPC', `directory ${dir.ino}: ${entries.length} names need more index levels than the filesystem allows`, { structure: `directory ${dir.ino}` });
    const up: { hash: number; block: number }[] = [];
    for (let i = 0; i < level.length; i += nodeLimit) {
      const slots = level.slice(i, i + nodeLimit);
      const node = dxIndexImage(bs, csumSeed !== null, dxSlots(slots));
      if (csumSeed !== null) setDxChecksum(node, csumSeed, bs);
      blocks.push(node);
      up.push({ hash: slots[0]!.hash, block: blocks.length });
    }
    level = up;
  }
  const root = dxIndexImage(bs, csumSeed !== null, dxSlots(level), { head: fresh.image, hashVersion: version, levels });
  if (csumSeed !== null) setDxChecksum(root, csumSeed, bs);
  tx.setBlock(fresh.phys, root);
  dir.flags |= INODE_FLAGS.INDEX;
  dir.base.i_flags = dir.flags;
  await appendBlocks(tx, dir, fresh.extent, blocks);
}

/** Block 0 of `dir` when it holds '.' (12 bytes) and '..' spanning the rest, and nothing else; else null. */
async function freshBlock(tx: Transaction, dir: Inode): Promise<{ phys: number; image: Uint8Array; extent: Extent; dots: DirEntry[] } | null> {
  const fs = tx.fs;
  const map = await txFileMap(tx, dir);
  const ext = map.extents[0];
  if (map.extents.length !== 1 || !ext || ext.logical !== 0 || ext.length !== 1 || ext.unwritten) return null;
  const image = await tx.readBlock(ext.physical);
  const csumSeed = fs.inodeCsumSeed(dir);
  const { entries } = readDirBlock(image, {
    blockSize: fs.blockSize, hasFiletype: (fs.sb.s_feature_incompat & INCOMPAT.FILETYPE) !== 0, csum: csumSeed === null ? null : { seed: csumSeed },
    verify: fs.verify, where: { kind: 'directory-block', dir: dir.ino, block: 0 }, inodesCount: fs.sb.s_inodes_count,
  });
  const [dot, dotdot] = entries;
  const dots = entries.length === 2 && dot && dotdot && dot.offset === 0 && dot.recLen === 12 && dot.nameLen === 1 && dot.name[0] === 0x2e
    && dotdot.offset === 12 && dotdot.nameLen === 2 && dotdot.name[0] === 0x2e && dotdot.name[1] === 0x2e;
  return dots ? { phys: ext.physical, image, extent: ext, dots: [dot, dotdot] } : null;
}

/** Map `blocks` as logical blocks 1.. of `dir` (allocated right after block 0 when free), size grown, inode written. */
async function appendBlocks(tx: Transaction, dir: Inode, first: Extent, blocks: readonly Uint8Array[]): Promise<void> {
  const fs = tx.fs;
  const exclude = isExtentMapped(dir) ? undefined : blockMapExclude(fs.sb);
  const runs = await allocateBlocks(tx, { goal: first.physical + 1, length: blocks.length, partial: true, ...(exclude ? { exclude } : {}) });
  const extents: Extent[] = [first];
  let lb = 1;
  for (const r of runs) {
    extents.push({ logical: lb, physical: r.start, length: r.length, unwritten: false });
    for (let k = 0; k < r.length; k++) tx.setBlock(r.start + k, blocks[lb - 1 + k]!);
    lb += r.length;
  }
  if (lb - 1 !== blocks.length) throw new Ext4Error('ENOSPC', `cannot allocate ${blocks.length} directory blocks`);
  await remapInode(tx, dir, await txFileMap(tx, dir), extents);
  setSize(tx, dir, (blocks.length + 1) * fs.blockSize);
  await tx.writeInode(dir);
}

/** Names one directory holds back at most (memory; and a directory taking more goes the insert way, INDEX and dir_nlink as the kernel reaches them). */
const HELD_MAX = 50_000;

/**
 * The names a bulk writer puts into directories it made in the current transaction, held until
 * `flush` writes each such directory once (buildDirectory) — at the latest before the transaction
 * commits. Whatever reads one of these directories before (a lookup, an insert by another path)
 * must flush it first: its held names are not in its blocks yet.
 */
export class DirBatch {
  readonly #held = new Map<number, BuildEntry[]>();
  #bytes = 0;

  /** Hold the names given for directory `ino` (new in this transaction, nothing added to it yet). */
  open(ino: number): void {
    this.#held.set(ino, []);
  }

  /** Hold `name` → `ino` for directory `dir` when it is held: true; false when the caller must add it (addDirEntry). */
  take(dir: number, name: Uint8Array, ino: number, ft: number): boolean {
    const list = this.#held.get(dir);
    if (!list || list.length >= HELD_MAX) return false;
    list.push({ inode: ino, name, fileType: ft });
    this.#bytes += dirRecLen(name.length);
    return true;
  }

  /**
   * The inode a held name of directory `dir` points to: undefined when `dir` is not held (its names
   * are in its blocks), null when it is held without that name. Bytes compared exactly (a directory
   * that casefolds needs findDirEntry after a flush).
   */
  find(dir: number, name: Uint8Array): number | null | undefined {
    const list = this.#held.get(dir);
    if (!list) return undefined;
    for (const e of list) if (bytesEqual(e.name, name)) return e.inode;
    return null;
  }

  /** Blocks the held names will take beyond their directories' first (a transaction's budget): leaves at most 80 % full, index blocks. */
  extraBlocks(blockSize: number): number {
    return this.#bytes === 0 ? 0 : Math.ceil((this.#bytes * 1.3) / blockSize);
  }

  /** Write directory `dir`'s held names (it is no longer held: later names are inserted). */
  async flush(tx: Transaction, dir: number): Promise<void> {
    const list = this.#held.get(dir);
    if (!list) return;
    this.#held.delete(dir);
    for (const e of list) this.#bytes -= dirRecLen(e.name.length);
    if (list.length) await buildDirectory(tx, tx.writtenInode(dir) ?? (await tx.readInode(dir)), list);
  }

  /** Every held directory written (before the transaction commits, or before a path lookup). */
  async flushAll(tx: Transaction): Promise<void> {
    for (const dir of [...this.#held.keys()]) await this.flush(tx, dir);
  }

  /** Forget everything held (the transaction failed). */
  clear(): void {
    this.#held.clear();
    this.#bytes = 0;
  }
}
