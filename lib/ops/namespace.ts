/**
 * Namespace operations on an open filesystem: create a regular file, a
 * symlink (fast or slow), a fifo, socket or device node, mkdir, unlink,
 * rmdir, link, rename (within and across directories, noReplace, exchange),
 * and rm -r (removeTree). Each exists in two forms: `op(fs, …)` runs one
 * journaled transaction; `opTx(tx, …)` runs inside a caller's
 * `fs.transact`, so many operations can share one commit (path lookups see
 * the transaction's own earlier changes: lookupTx).
 *
 * An unlink or rmdir of something large (or of an inode held open:
 * holdInode) removes the entry and puts the inode on the orphan list in one
 * transaction; its blocks are freed in journal-sized steps after it (or at
 * the last release) — a crash leaves the orphan for the next open, Linux or
 * e2fsck to finish.
 *
 * Counts as the kernel keeps them (fs/ext4/namei.c, ialloc.c): the new
 * inode and its group's free-inode / used-dirs counts (alloc.ts), the
 * superblock's free counts; i_links_count of the target, of a new
 * directory (2) and of its parent (+1 for its '..', with dir_nlink: an
 * indexed parent past 65,000 links stays at 1, as ext4_inc_count does);
 * ctime of the inode whose links change, mtime and ctime of each changed
 * directory. Times come from `opts.now` or the filesystem clock (fs.now).
 * New inodes go where __ext4_new_inode puts them (alloc.ts inodeGoalGroup:
 * Orlov for directories), their blocks near blockGoal.
 *
 * Paths are absolute inside the image (a leading '/' optional); the parent
 * is resolved following symlinks, the last component never followed.
 * Errors: ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, ENAMETOOLONG, EMLINK,
 * ENOSPC, EINVAL, EBUSY (removing the root), ELOOP.
 */
import { Ext4Error } from '../errors.js';
import { le32 } from '../codec/layout.js';
import type { Filesystem } from '../ext4/filesystem.js';
import type { FsWriter, Transaction } from '../ext4/transaction.js';
import { COMPAT, INCOMPAT, RO_COMPAT } from '../ext4/superblock.js';
import {
  INODE_FLAGS, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK, encodeTime, extraCovers, hasInlineData, type Inode, type Timestamp,
} from '../ext4/inode.js';
import { allocateBlocks, allocateInode, allocateInodeNow, fileGoalGroupNow, inodeGoalBlock, inodeGoalGroup, noteInodeGroup } from '../ext4/alloc.js';
import { addOrphan, removeOrphan } from '../ext4/orphan.js';
import { InPlaceRemoval, deleteInode, initNewInode, initNewInodeNow, releaseInode, type NewInodeFields } from '../ext4/inode-lifecycle.js';
import { blockMapExclude, remapInode, setSize, txFileMap } from '../ext4/remap.js';
import { findExtent } from '../ext4/extents.js';
import { groupOfBlock } from '../ext4/geometry.js';
import { dirHash } from '../ext4/dirhash.js';
import { hashSeedWords } from '../ext4/hash-seed.js';
import { internals } from '../ext4/internals.js';
import {
  addDirEntry, direntType, dotDotOf, findDirEntry, isDirEmpty, listDirEntries, newDirBlock, removeDirEntry, setDirEntry,
} from '../ext4/dir-edit.js';
import { canInline, initInlineDir, readInlineData } from '../ext4/inline-data.js';
import { expandExtraIsize } from '../ext4/xattr-edit.js';
import { bytesEqual, decodeName } from '../ext4/bytes.js';

/**
 * Options objects of the per-create calls, made once (a literal is a new object at every call:
 * a bulk import makes thousands of creates). Read only by their callees.
 */
const LATE: { readonly late: true } = Object.freeze({ late: true });
const MTIME: { readonly mtime: true } = Object.freeze({ mtime: true });

/** The set-group-ID bit of a mode. */
const S_ISGID = 0o2000;
/** The kernel's EXT4_LINK_MAX. */
export const LINK_MAX = 65000;
/** Blocks an inode may own and still be freed inside the transaction that unlinks it. */
const INLINE_DELETE_BLOCKS = 2048;
const ROOT_INO = 2;
/** The kernel's MAXSYMLINKS. */
const MAX_SYMLINK_HOPS = 40;

export interface CreateOptions {
  /** Permission bits (default 0o644 for files, 0o755 for directories). */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Timestamp for the new inode and the parent (default: the filesystem clock). */
  now?: Timestamp;
  /**
   * The caller knows the name is not in the directory (a bulk import into a directory it made,
   * keeping the names it added): the lookup before the insert is skipped.
   */
  knownNew?: boolean;
  /**
   * With knownNew: where the new name may go instead of into the directory now (a bulk import
   * holding the names of a directory it made, written whole before the commit: DirBatch).
   * `take` false: the name is inserted as usual.
   */
  entrySink?: { take(dir: number, name: Uint8Array, ino: number, fileType: number): boolean };
}

export interface CreateFileOptions extends CreateOptions {
  /** Fail with EEXIST when the name exists (O_EXCL). Otherwise an existing regular file is returned as is. */
  exclusive?: boolean;
}

export interface RenameOptions {
  now?: Timestamp;
  /** RENAME_NOREPLACE: EEXIST when `to` exists. */
  noReplace?: boolean;
  /** RENAME_EXCHANGE: swap the two names (both must exist; directories swap their '..'). */
  exchange?: boolean;
}

type PathArg = string | Uint8Array;

/**
 * A name inside a directory known by its inode number: what bulk callers (importTree) pass
 * instead of a path, so that a create does not walk the path from the root again. The
 * directory must still be in use (ENOENT otherwise) and be the one meant: a freed inode number
 * may be reused by a later mkdir.
 */
export interface InDir {
  dir: number;
  name: PathArg;
}

/** Where a new name goes: an absolute path, or a name in a directory given by inode. */
export type NewName = PathArg | InDir;

// ---------------------------------------------------------------------------------------------- paths

const enc = new TextEncoder();
const toBytes = (p: PathArg) => (typeof p === 'string' ? stringBytes(p) : p);

/** UTF-8 of `s`: a short ASCII name (most of a bulk import's) by a loop, TextEncoder otherwise (its call costs more than the loop). */
function stringBytes(s: string): Uint8Array {
  const n = s.length;
  if (n > 64) return enc.encode(s);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return enc.encode(s);
    out[i] = c;
  }
  return out;
}

/** Split a path into its parent path and last component (trailing slashes dropped). */
function splitLast(path: PathArg): { parent: Uint8Array; name: Uint8Array } {
  let p = toBytes(path);
  let end = p.length;
  while (end > 0 && p[end - 1] === 0x2f) end--;
  p = p.subarray(0, end);
  const slash = p.lastIndexOf(0x2f);
  const name = p.subarray(slash + 1);
  const parent = slash <= 0 ? new Uint8Array([0x2f]) : p.subarray(0, slash);
  if (name.length === 0) throw new Ext4Error('EBUSY', 'the root directory cannot be created, removed or renamed');
  if (name.length > 255) throw new Ext4Error('ENAMETOOLONG', `${decodeName(name.subarray(0, 64))}…: name longer than 255 bytes`);
  return { parent, name };
}

const isDot = (n: Uint8Array) => n.length === 1 && n[0] === 0x2e;
const isDotDot = (n: Uint8Array) => n.length === 2 && n[0] === 0x2e && n[1] === 0x2e;

function components(p: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i <= p.length; i++) {
    if (i === p.length || p[i] === 0x2f) {
      if (i > start) out.push(p.subarray(start, i));
      start = i + 1;
    }
  }
  return out;
}

/** A symlink's target as of `tx` (fast: in i_block; inline_data; else its first block). */
async function readlinkTx(tx: Transaction, inode: Inode): Promise<Uint8Array> {
  const fs = tx.fs;
  if (inode.size === 0 || inode.size > fs.blockSize) throw new Ext4Error('EFSCORRUPTED', `symlink size ${inode.size} is invalid`, { structure: `inode ${inode.ino}`, location: { kind: 'inode', ino: inode.ino } });
  if (inode.flags & INODE_FLAGS.ENCRYPT) throw new Ext4Error('EOPNOTSUPP', `symlink ${inode.ino} is encrypted`);
  if (hasInlineData(inode)) return (await readInlineData(tx, inode)).subarray(0, inode.size);
  if (fs.isFastSymlink(inode)) return inode.base.i_block.slice(0, inode.size);
  const map = await txFileMap(tx, inode);
  const { extent } = findExtent(map.extents, 0);
  if (!extent || extent.unwritten) throw new Ext4Error('EFSCORRUPTED', `symlink ${inode.ino} has no block 0`, { structure: `inode ${inode.ino}`, location: { kind: 'inode', ino: inode.ino } });
  return (await tx.readBlock(extent.physical)).slice(0, inode.size);
}

/**
 * Resolve `path` to its inode as of `tx` (the transaction's own changes
 * included), following symlinks in every component and, unless
 * `followLast: false`, in the last one; '.' and '..' as the kernel walks
 * them; at most 40 symlinks (ELOOP).
 */
export async function lookupTx(tx: Transaction, path: PathArg, opts: { followLast?: boolean } = {}): Promise<Inode> {
  let hops = 0;
  const walk = async (start: Inode, p: Uint8Array, followLast: boolean): Promise<Inode> => {
    let cur = p[0] === 0x2f ? await tx.readInode(ROOT_INO) : start;
    const parts = components(p);
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (cur.type !== 'dir') throw new Ext4Error('ENOTDIR', `${decodeName(part)}: a path component is not a directory`);
      if (isDot(part)) continue;
      let ino: number;
      if (isDotDot(part)) ino = await dotDotOf(tx, cur);
      else {
        if (part.length > 255) throw new Ext4Error('ENAMETOOLONG', `${decodeName(part.subarray(0, 64))}…: name longer than 255 bytes`);
        const hit = await findDirEntry(tx, cur, part);
        if (!hit) throw new Ext4Error('ENOENT', `${decodeName(p)}: no such file or directory`);
        ino = hit.ino;
      }
      const next = await tx.readInode(ino);
      if (next.mode === 0 || next.type === null)
        throw new Ext4Error('EFSCORRUPTED', `directory entry ${decodeName(part)} points at inode ${ino}, which is not in use`, { structure: `directory ${cur.ino}`, location: { kind: 'inode', ino: cur.ino } });
      if (next.type === 'symlink' && (i < parts.length - 1 || followLast)) {
        if (++hops > MAX_SYMLINK_HOPS) throw new Ext4Error('ELOOP', `${decodeName(p)}: too many levels of symbolic links`);
        cur = await walk(cur, await readlinkTx(tx, next), true);
      } else cur = next;
    }
    return cur;
  };
  const p = toBytes(path);
  return walk(await tx.readInode(ROOT_INO), p, opts.followLast !== false);
}

/** The parent directory of `path` as of `tx` (symlinks in the parent path followed). */
async function parentOf(tx: Transaction, path: NewName): Promise<{ dir: Inode; name: Uint8Array }> {
  if (typeof path === 'object' && !(path instanceof Uint8Array)) return inDir(tx, path);
  const { parent, name } = splitLast(path);
  const dir = await lookupTx(tx, parent, { followLast: true });
  if (dir.type !== 'dir') throw new Ext4Error('ENOTDIR', `${decodeName(parent)}: not a directory`);
  return { dir, name };
}

/** An InDir checked: the name one component, the directory a directory in use. */
async function inDir(tx: Transaction, at: InDir): Promise<{ dir: Inode; name: Uint8Array }> {
  const name = inDirName(tx, at);
  return { dir: inUseDir(at, tx.writtenInode(at.dir) ?? (await tx.readInode(at.dir))), name };
}

/**
 * parentOf without an await: an InDir whose directory this transaction wrote last (a bulk import
 * stamps one parent per create: no parse, no async call), checked as inDir checks it; else null.
 */
function parentNow(tx: Transaction, path: NewName): { dir: Inode; name: Uint8Array } | null {
  if (typeof path !== 'object' || path instanceof Uint8Array) return null;
  const name = inDirName(tx, path);
  const dir = tx.writtenInode(path.dir);
  return dir === undefined ? null : { dir: inUseDir(path, dir), name };
}

/** An InDir's name checked (one component) and its directory's number in range: the name's bytes. */
function inDirName(tx: Transaction, at: InDir): Uint8Array {
  const name = toBytes(at.name);
  if (name.length === 0) throw new Ext4Error('ENOENT', 'empty name');
  if (name.includes(0x2f)) throw new Ext4Error('EINVAL', `${decodeName(name)}: a name cannot contain "/"`);
  if (name.length > 255) throw new Ext4Error('ENAMETOOLONG', `${decodeName(name.subarray(0, 64))}…: name longer than 255 bytes`);
  if (!Number.isInteger(at.dir) || at.dir < 1 || at.dir > tx.fs.sb.s_inodes_count) throw new Ext4Error('EINVAL', `inode number ${at.dir} out of range`);
  return name;
}

/** An InDir's directory (the object this transaction last wrote for it, or read) checked: a directory in use. */
function inUseDir(at: InDir, dir: Inode): Inode {
  if (dir.mode === 0 || dir.linksCount === 0) throw new Ext4Error('ENOENT', `directory inode ${at.dir} is not in use`);
  if (dir.type !== 'dir') throw new Ext4Error('ENOTDIR', `inode ${at.dir} is not a directory`);
  return dir;
}

// ---------------------------------------------------------------------------------------------- inodes

function nowOf(fs: FsWriter, opts: { now?: Timestamp }): Timestamp {
  return opts.now ?? fs.now();
}

/** Set ctime (and mtime) of an inode, nanoseconds and epoch bits where i_extra_isize has room. */
/**
 * An existing inode this change dirties: grown to the filesystem's i_extra_isize first (the
 * kernel's ext4_mark_inode_dirty → ext4_try_to_expand_extra_isize, so the new time's extra bits
 * are stored), then stamped.
 */
function dirty(tx: Transaction, inode: Inode, t: Timestamp, opts: { mtime?: boolean; atime?: boolean } = {}): void {
  expandExtraIsize(tx, inode);
  stamp(inode, t, opts);
}

function stamp(inode: Inode, t: Timestamp, opts: { mtime?: boolean; atime?: boolean } = {}): void {
  const e = encodeTime(t);
  inode.base.i_ctime = e.base;
  inode.ctime = t;
  if (extraCovers(inode.extraIsize, 'i_ctime_extra')) inode.extra.i_ctime_extra = e.extra;
  if (opts.mtime) {
    inode.base.i_mtime = e.base;
    inode.mtime = t;
    if (extraCovers(inode.extraIsize, 'i_mtime_extra')) inode.extra.i_mtime_extra = e.extra;
  }
  if (opts.atime) {
    inode.base.i_atime = e.base;
    inode.atime = t;
    if (extraCovers(inode.extraIsize, 'i_atime_extra')) inode.extra.i_atime_extra = e.extra;
  }
}

function setLinks(inode: Inode, n: number): void {
  inode.base.i_links_count = n;
  inode.linksCount = n;
}

/**
 * A directory gains a subdirectory: ext4_inc_count — an indexed directory
 * going past LINK_MAX, or already at 1 ("many", dir_nlink), reads 1. (Without
 * dir_nlink, dirLinkMax refuses before LINK_MAX is reached.)
 */
export function incDirLinks(dir: Inode): void {
  let n = dir.linksCount + 1;
  if (dir.flags & INODE_FLAGS.INDEX && (n > LINK_MAX || n === 2)) n = 1;
  setLinks(dir, n);
}

/** ext4_dec_count for a parent losing a subdirectory: a directory at 1 ("many") or 2 stays. */
export function decDirLinks(dir: Inode): void {
  if (dir.linksCount > 2) setLinks(dir, dir.linksCount - 1);
}

const dirNlink = (fs: FsWriter) => (fs.sb.s_feature_ro_compat & RO_COMPAT.DIR_NLINK) !== 0;

/** EXT4_DIR_LINK_MAX: a parent that cannot take one more subdirectory. */
function dirLinkMax(fs: FsWriter, dir: Inode): boolean {
  return (!(dir.flags & INODE_FLAGS.INDEX) || !dirNlink(fs)) && dir.linksCount >= LINK_MAX;
}

/**
 * Flags a new inode takes from its parent (EXT4_FL_INHERITED, those our writer supports, through
 * ext4_mask_flags): a directory all of them, casefold included; a regular file all but the
 * directory-only DIRSYNC and CASEFOLD; anything else only NODUMP and NOATIME.
 */
function inheritedFlags(parent: Inode, mode: number): number {
  const f = parent.flags & (INODE_FLAGS.SYNC | INODE_FLAGS.NODUMP | INODE_FLAGS.NOATIME | INODE_FLAGS.DIRSYNC | INODE_FLAGS.CASEFOLD);
  const type = mode & 0xf000;
  if (type === S_IFDIR) return f;
  if (type === S_IFREG) return f & ~(INODE_FLAGS.DIRSYNC | INODE_FLAGS.CASEFOLD);
  return f & (INODE_FLAGS.NODUMP | INODE_FLAGS.NOATIME);
}

/**
 * Allocate and initialise a new inode (links 0: the caller sets them), as ext4's __ext4_new_inode.
 * A file's, without an await when its goal group, bitmap and slot are in the transaction already
 * (fileGoalGroupNow, allocateInodeNow: a bulk create's usual case; same choices as the awaited path).
 */
function newInode(tx: Transaction, parent: Inode, name: Uint8Array, mode: number, opts: CreateOptions, t: Timestamp): Inode | Promise<Inode> {
  const isDir = (mode & 0xf000) === S_IFDIR;
  // (a file's goal without an await when the transaction holds its parent's flex group)
  const quick = isDir ? -1 : fileGoalGroupNow(tx, parent.ino);
  if (quick < 0) return newInodeSlow(tx, parent, name, mode, opts, t, isDir);
  noteInodeGroup(tx, parent.ino, quick);
  const ino = allocateInodeNow(tx, { goalGroup: quick });
  return (ino >= 0 && initNewInodeNow(tx, ino, newInodeFields(parent, mode, false, opts, t))) || newInodeIn(tx, parent, mode, opts, t, quick, false, ino);
}

async function newInodeSlow(tx: Transaction, parent: Inode, name: Uint8Array, mode: number, opts: CreateOptions, t: Timestamp, isDir: boolean): Promise<Inode> {
  const sb = tx.fs.sb;
  // Orlov starts a top-level directory's search at half_md4(name) with the fs seed (signed, as find_group_orlov sets it).
  const nameHash = isDir ? dirHash(name, 1, hashSeedWords(sb.s_hash_seed), true).hash : undefined;
  const goalGroup = await inodeGoalGroup(tx, { parent: { ino: parent.ino, flags: parent.flags }, dir: isDir, ...(nameHash !== undefined ? { nameHash } : {}) });
  // __ext4_new_inode's got_group: the parent remembers the group chosen (i_last_alloc_group).
  noteInodeGroup(tx, parent.ino, goalGroup);
  return newInodeIn(tx, parent, mode, opts, t, goalGroup, isDir, -1);
}

/** newInode's allocation in `goalGroup` (noted already) and initialisation; `ino` ≥ 0: allocated already. */
async function newInodeIn(tx: Transaction, parent: Inode, mode: number, opts: CreateOptions, t: Timestamp, goalGroup: number, isDir: boolean, ino: number): Promise<Inode> {
  if (ino < 0) ino = await allocateInode(tx, { goalGroup, dir: isDir });
  return initNewInode(tx, ino, newInodeFields(parent, mode, isDir, opts, t));
}

/**
 * A new inode's fields. inode_init_owner: in a set-group-ID directory a new inode takes the
 * directory's group (unless the caller names one) and a new directory keeps the bit.
 */
function newInodeFields(parent: Inode, mode: number, isDir: boolean, opts: CreateOptions, t: Timestamp): NewInodeFields {
  const sgid = (parent.mode & S_ISGID) !== 0;
  const gid = opts.gid ?? (sgid ? parent.gid : undefined);
  return { mode: sgid && isDir ? mode | S_ISGID : mode, uid: opts.uid, gid, flags: inheritedFlags(parent, mode), time: t };
}

/**
 * The goal block for a file's data at `logical` (default: past its last
 * block): ext4_ext_find_goal — next to the mapped block nearest before it —
 * else ext4_inode_to_goal_block (the inode's (flex) group, a regular file one
 * group in).
 */
export async function blockGoal(tx: Transaction, inode: Inode, logical?: number): Promise<number> {
  if (!hasInlineData(inode) && inode.blocks512 > 0) {
    const map = await txFileMap(tx, inode);
    let best: { physical: number; logical: number; length: number } | null = null;
    for (const e of map.extents) if (logical === undefined || e.logical <= logical) best = e;
    if (best) {
      const at = logical === undefined ? best.logical + best.length : logical;
      const g = best.physical + (at - best.logical);
      if (g < tx.fs.sb.blocksCount) return g;
    }
  }
  return inodeGoalBlock(tx.fs.sb, inode.ino, inode.type === 'file');
}

/** blockGoal without an await for an inode that maps no block yet (a new file's first data: the goal needs no map); else null. */
export function firstBlockGoal(tx: Transaction, inode: Inode): number | null {
  return hasInlineData(inode) || inode.blocks512 === 0 ? inodeGoalBlock(tx.fs.sb, inode.ino, inode.type === 'file') : null;
}

function checkWritable(fs: FsWriter): void {
  if (fs.readOnly) throw new Ext4Error('EROFS', 'the filesystem is open read-only');
}

// ---------------------------------------------------------------------------------------------- open inodes, orphans

/** Open-inode registry per filesystem: inode → number of holders. */
const holds = new WeakMap<object, Map<number, number>>();

function isHeld(fs: object, ino: number): boolean {
  return (holds.get(fs)?.get(ino) ?? 0) > 0;
}

/**
 * Hold inode `ino` open (a file handle): while held, unlinking its last name
 * keeps the inode (links 0, on the orphan list) instead of freeing it, as
 * the kernel keeps an open file. The returned `release` drops the hold; the
 * last release of an inode with no links frees it (its blocks in
 * journal-sized steps, off the orphan list in the last one). If the process
 * stops first, the next write open frees it (processOrphans), as Linux and
 * e2fsck do.
 */
export function holdInode(fs: Filesystem, ino: number): () => Promise<void> {
  let m = holds.get(fs);
  if (!m) holds.set(fs, (m = new Map()));
  m.set(ino, (m.get(ino) ?? 0) + 1);
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    const n = (m.get(ino) ?? 1) - 1;
    if (n > 0) {
      m.set(ino, n);
      return;
    }
    m.delete(ino);
    if (fs.readOnly) return;
    const inode = await fs.readInode(ino);
    // Links 0 while held: the unlink put it on the orphan list and left it to us.
    if (inode.linksCount === 0 && inode.mode !== 0) await finishOrphan(fs, ino);
  };
}

/** Orphans a transaction left for after its commit (large or held inodes that lost their last link). */
const deferred = new WeakMap<Transaction, number[]>();

/**
 * An inode that lost its last link: freed now if small and not held open,
 * else written with links 0 and put on the orphan list (freed after the
 * commit by finishRemovals, at the last release, or at the next open).
 */
async function dropInode(tx: Transaction, inode: Inode, bulk = false): Promise<void> {
  setLinks(inode, 0);
  const held = isHeld(tx.fs, inode.ino);
  const blocks = inode.blocks512 / (tx.fs.blockSize / 512);
  if (!held && (blocks <= INLINE_DELETE_BLOCKS || (bulk && (await cheapToFree(tx, inode))))) return deleteInode(tx, inode);
  await tx.writeInode(inode);
  await addOrphan(tx, inode.ino);
  if (!held) {
    let list = deferred.get(tx);
    if (!list) deferred.set(tx, (list = []));
    list.push(inode.ino);
  }
}

/** Groups a large inode's free may touch, at most, to be freed inside removeTree's step (bitmaps and descriptors). */
const BULK_DELETE_GROUPS = 8;

/**
 * Whether freeing `inode` costs a step only a few blocks: its data and tree (or indirect) blocks
 * over at most BULK_DELETE_GROUPS groups, whose bitmaps and descriptors are all the step logs for
 * them (freed blocks are not logged) — as the kernel frees a file inside the unlink's transaction.
 */
async function cheapToFree(tx: Transaction, inode: Inode): Promise<boolean> {
  if (hasInlineData(inode) || inode.fileAcl) return false;
  const map = await txFileMap(tx, inode);
  const groups = new Set<number>();
  const add = (first: number, last: number) => {
    for (let g = groupOfBlock(tx.fs.sb, first), end = groupOfBlock(tx.fs.sb, last); g <= end; g++) groups.add(g);
    return groups.size <= BULK_DELETE_GROUPS;
  };
  for (const e of map.extents) if (!add(e.physical, e.physical + e.length - 1)) return false;
  for (const b of map.metadataBlocks) if (!add(b, b)) return false;
  return true;
}

async function finishOrphan(fs: Filesystem, ino: number): Promise<void> {
  await releaseInode(fs, ino, (tx) => removeOrphan(tx, ino));
}

/**
 * Free what the …Tx removals in `tx` left on the orphan list (large inodes
 * whose last link went): call after the `fs.transact` that ran them has
 * returned. Skipping it is safe — the next write open frees them.
 */
export async function finishRemovals(fs: Filesystem, tx: Transaction): Promise<void> {
  const list = deferred.get(tx);
  deferred.delete(tx);
  for (const ino of list ?? []) if (!isHeld(fs, ino)) await finishOrphan(fs, ino);
}

/** Run `fn` as one transaction, then free what it left on the orphan list. */
async function runOp<T>(fs: Filesystem, fn: (tx: Transaction) => Promise<T>): Promise<T> {
  checkWritable(fs);
  let txUsed: Transaction | null = null;
  const out = await fs.transact((tx) => {
    txUsed = tx;
    return fn(tx);
  });
  if (txUsed) await finishRemovals(fs, txUsed);
  return out;
}

// ---------------------------------------------------------------------------------------------- creating

/**
 * Create a regular file (open(O_CREAT)) inside `tx`: returns its inode
 * number. With `exclusive`, EEXIST when the name exists; otherwise an
 * existing regular file's inode is returned unchanged (EISDIR for a directory).
 */
export async function createFileTx(tx: Transaction, path: NewName, opts: CreateFileOptions = {}): Promise<number> {
  return (await createFileInodeTx(tx, path, opts)).ino;
}

/**
 * createFileTx giving the file's Inode as written (a bulk writer goes on with it instead of
 * parsing it again; valid until something else in `tx` writes that inode).
 */
export async function createFileInodeTx(tx: Transaction, path: NewName, opts: CreateFileOptions = {}): Promise<Inode> {
  const fs = tx.fs;
  const { dir, name } = parentNow(tx, path) ?? (await parentOf(tx, path));
  if (isDot(name) || isDotDot(name)) throw new Ext4Error(opts.exclusive ? 'EEXIST' : 'EISDIR', `${decodeName(name)}: is a directory`);
  const old = opts.knownNew ? null : await findDirEntry(tx, dir, name);
  if (old) {
    if (opts.exclusive) throw new Ext4Error('EEXIST', `${decodeName(name)}: file exists`);
    const inode = await tx.readInode(old.ino);
    if (inode.type === 'dir') throw new Ext4Error('EISDIR', `${decodeName(name)}: is a directory`);
    return inode;
  }
  const t = nowOf(fs, opts);
  // (awaited only when it is a promise: newInode, writeInodeNow)
  const made = newInode(tx, dir, name, S_IFREG | ((opts.mode ?? 0o644) & 0o7777), opts, t);
  const inode = made instanceof Promise ? await made : made;
  setLinks(inode, 1);
  // Late writes (Transaction.writeInode): the caller usually writes the new inode again (its map),
  // and the parent is stamped again by the next create in it.
  if (!tx.writeInodeNow(inode, LATE)) await tx.writeInode(inode, LATE);
  const adding = addEntry(tx, dir, name, inode.ino, direntType('file'), opts);
  if (adding) await adding;
  dirty(tx, dir, t, MTIME);
  if (!tx.writeInodeNow(dir, LATE)) await tx.writeInode(dir, LATE);
  return inode;
}

/** A new name into its directory: held by the caller's sink (knownNew names only), else inserted. */
function addEntry(tx: Transaction, dir: Inode, name: Uint8Array, ino: number, ft: number, opts: CreateOptions): Promise<void> | void {
  if (opts.knownNew && opts.entrySink?.take(dir.ino, name, ino, ft)) return;
  return addDirEntry(tx, dir, name, ino, ft);
}

/** createFileTx in its own transaction. */
export function createFile(fs: Filesystem, path: PathArg, opts: CreateFileOptions = {}): Promise<number> {
  return runOp(fs, (tx) => createFileTx(tx, path, opts));
}

/**
 * A new non-directory inode named `path` (links 1), `init` filling in its
 * content inside the same transaction. EEXIST when the name exists.
 */
async function createNodeTx(tx: Transaction, path: NewName, mode: number, opts: CreateOptions, init: (inode: Inode) => Promise<void> | void): Promise<number> {
  const { dir, name } = await parentOf(tx, path);
  if (isDot(name) || isDotDot(name) || (!opts.knownNew && (await findDirEntry(tx, dir, name)))) throw new Ext4Error('EEXIST', `${decodeName(name)}: file exists`);
  const t = nowOf(tx.fs, opts);
  const inode = await newInode(tx, dir, name, mode, opts, t);
  setLinks(inode, 1);
  await init(inode);
  await tx.writeInode(inode, LATE);
  await addEntry(tx, dir, name, inode.ino, direntType(inode.type), opts);
  dirty(tx, dir, t, MTIME);
  await tx.writeInode(dir, LATE);
  return inode.ino;
}

/** Target bytes a fast symlink can hold (i_block less the NUL ext4_symlink counts). */
const FAST_SYMLINK_MAX = 60;

/**
 * symlink(2) inside `tx`: `path` → `target`. Up to 59 bytes the target sits
 * in i_block (a fast symlink, without the extents flag: ext4_symlink);
 * longer ones get a block holding the target and a NUL, journaled with the
 * inode. ENAMETOOLONG when target + NUL exceed a block. Returns the inode number.
 */
export async function symlinkTx(tx: Transaction, target: PathArg, path: NewName, opts: CreateOptions = {}): Promise<number> {
  const fs = tx.fs;
  const bytes = toBytes(target);
  if (bytes.length === 0) throw new Ext4Error('ENOENT', 'empty symlink target');
  if (bytes.length + 1 > fs.blockSize) throw new Ext4Error('ENAMETOOLONG', `symlink target of ${bytes.length} bytes (at most ${fs.blockSize - 1})`);
  return createNodeTx(tx, path, S_IFLNK | ((opts.mode ?? 0o777) & 0o7777), opts, async (inode) => {
    if (bytes.length < FAST_SYMLINK_MAX) {
      inode.flags &= ~INODE_FLAGS.EXTENTS;
      inode.base.i_flags = inode.flags;
      const iblock = new Uint8Array(60);
      iblock.set(bytes);
      inode.base.i_block = iblock;
    } else {
      const exclude = inode.flags & INODE_FLAGS.EXTENTS ? undefined : blockMapExclude(fs.sb);
      const [run] = await allocateBlocks(tx, { goal: await blockGoal(tx, inode), length: 1, ...(exclude ? { exclude } : {}) });
      const blk = new Uint8Array(fs.blockSize);
      blk.set(bytes);
      tx.setBlock(run!.start, blk);
      await remapInode(tx, inode, await txFileMap(tx, inode), [{ logical: 0, physical: run!.start, length: 1, unwritten: false }]);
    }
    setSize(tx, inode, bytes.length);
  });
}

/** symlinkTx in its own transaction. */
export function symlink(fs: Filesystem, target: PathArg, path: PathArg, opts: CreateOptions = {}): Promise<number> {
  return runOp(fs, (tx) => symlinkTx(tx, target, path, opts));
}

export type SpecialType = 'fifo' | 'socket' | 'chardev' | 'blockdev';

export interface MknodOptions extends CreateOptions {
  /** Device number of a chardev / blockdev. */
  rdev?: { major: number; minor: number };
}

const SPECIAL_MODE: Record<SpecialType, number> = { fifo: S_IFIFO, socket: S_IFSOCK, chardev: S_IFCHR, blockdev: S_IFBLK };

/**
 * mknod(2) inside `tx`: a fifo, socket or device node. A device number goes
 * into i_block as ext4_do_update_inode stores it: old_encode_dev (major and
 * minor below 256) in i_block[0], else new_encode_dev in i_block[1].
 */
export async function mknodTx(tx: Transaction, path: NewName, type: SpecialType, opts: MknodOptions = {}): Promise<number> {
  const { major, minor } = opts.rdev ?? { major: 0, minor: 0 };
  if (!Number.isInteger(major) || !Number.isInteger(minor) || major < 0 || minor < 0 || major >= 4096 || minor >= 1 << 20)
    throw new Ext4Error('EINVAL', `device number ${major}:${minor} out of range (major < 4096, minor < 2^20)`);
  if (!(type in SPECIAL_MODE)) throw new Ext4Error('EINVAL', `${String(type)}: not a special file type`);
  return createNodeTx(tx, path, SPECIAL_MODE[type] | ((opts.mode ?? 0o644) & 0o7777), opts, (inode) => {
    const iblock = new Uint8Array(60);
    if (type === 'chardev' || type === 'blockdev') {
      if (major < 256 && minor < 256) le32.set(iblock, 0, (major << 8) | minor);
      else le32.set(iblock, 1, ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0);
    }
    inode.base.i_block = iblock;
  });
}

/** mknodTx in its own transaction. */
export function mknod(fs: Filesystem, path: PathArg, type: SpecialType, opts: MknodOptions = {}): Promise<number> {
  return runOp(fs, (tx) => mknodTx(tx, path, type, opts));
}

/**
 * mkdir(2) inside `tx`: a new directory with '.' and '..' — inline in the
 * inode on an inline_data filesystem (ext4_init_inline_dir), else in one
 * block near its goal (ext4_init_new_dir). Returns its inode number.
 */
export async function mkdirTx(tx: Transaction, path: NewName, opts: CreateOptions = {}): Promise<number> {
  const fs = tx.fs;
  const { dir, name } = await parentOf(tx, path);
  if (isDot(name) || isDotDot(name) || (!opts.knownNew && (await findDirEntry(tx, dir, name)))) throw new Ext4Error('EEXIST', `${decodeName(name)}: file exists`);
  if (dirLinkMax(fs, dir)) throw new Ext4Error('EMLINK', `directory ${dir.ino} has ${dir.linksCount} links (at most ${LINK_MAX} without dir_nlink on an indexed directory)`);
  const t = nowOf(fs, opts);
  const inode = await newInode(tx, dir, name, S_IFDIR | ((opts.mode ?? 0o755) & 0o7777), opts, t);
  const sb = fs.sb;
  setLinks(inode, 2);
  if (canInline(fs, inode)) await initInlineDir(tx, inode, dir.ino);
  else {
    const exclude = inode.flags & INODE_FLAGS.EXTENTS ? undefined : blockMapExclude(sb);
    const [run] = await allocateBlocks(tx, { goal: await blockGoal(tx, inode), length: 1, ...(exclude ? { exclude } : {}) });
    tx.setBlock(run!.start, newDirBlock({
      blockSize: fs.blockSize,
      hasFiletype: (sb.s_feature_incompat & INCOMPAT.FILETYPE) !== 0,
      csumSeed: fs.inodeCsumSeed(inode),
      self: inode.ino,
      parent: dir.ino,
    }));
    await remapInode(tx, inode, await txFileMap(tx, inode), [{ logical: 0, physical: run!.start, length: 1, unwritten: false }]);
    setSize(tx, inode, fs.blockSize);
  }
  await tx.writeInode(inode, LATE);
  await addEntry(tx, dir, name, inode.ino, direntType('dir'), opts);
  incDirLinks(dir);
  dirty(tx, dir, t, MTIME);
  await tx.writeInode(dir, LATE);
  return inode.ino;
}

/** mkdirTx in its own transaction. */
export function mkdir(fs: Filesystem, path: PathArg, opts: CreateOptions = {}): Promise<number> {
  return runOp(fs, (tx) => mkdirTx(tx, path, opts));
}

// ---------------------------------------------------------------------------------------------- removing

/** Remove the entry `name` → `target` (a non-directory) from `dir`: the target loses a link. */
async function unlinkEntry(tx: Transaction, dir: Inode, name: Uint8Array, target: Inode, t: Timestamp, bulk = false): Promise<void> {
  if (target.linksCount === 0) throw new Ext4Error('EFSCORRUPTED', `inode ${target.ino} has an entry but no links`, { structure: `inode ${target.ino}`, location: { kind: 'inode', ino: target.ino } });
  await removeDirEntry(tx, dir, name);
  dirty(tx, dir, t, MTIME);
  await tx.writeInode(dir);
  await dropLink(tx, target, t, bulk);
}

/** A non-directory loses one name: links − 1, or dropped with its last. */
async function dropLink(tx: Transaction, target: Inode, t: Timestamp, bulk: boolean): Promise<void> {
  if (target.linksCount === 0) throw new Ext4Error('EFSCORRUPTED', `inode ${target.ino} has an entry but no links`, { structure: `inode ${target.ino}`, location: { kind: 'inode', ino: target.ino } });
  dirty(tx, target, t);
  if (target.linksCount > 1) {
    setLinks(target, target.linksCount - 1);
    await tx.writeInode(target);
  } else await dropInode(tx, target, bulk);
}

/** Remove the entry `name` → `target` (an empty directory) from `dir`. */
async function rmdirEntry(tx: Transaction, dir: Inode, name: Uint8Array, target: Inode, t: Timestamp): Promise<void> {
  await removeDirEntry(tx, dir, name);
  decDirLinks(dir);
  dirty(tx, dir, t, MTIME);
  await tx.writeInode(dir);
  stamp(target, t);
  await dropInode(tx, target);
}

/** unlink(2) inside `tx`: remove a name of a non-directory; the inode is freed with its last link. */
export async function unlinkTx(tx: Transaction, path: PathArg, opts: { now?: Timestamp } = {}): Promise<void> {
  const { dir, name } = await parentOf(tx, path);
  if (isDot(name) || isDotDot(name)) throw new Ext4Error('EISDIR', `${decodeName(name)}: is a directory`);
  const hit = await findDirEntry(tx, dir, name);
  if (!hit) throw new Ext4Error('ENOENT', `${decodeName(name)}: no such file or directory`);
  const target = await tx.readInode(hit.ino);
  if (target.type === 'dir') throw new Ext4Error('EISDIR', `${decodeName(name)}: is a directory (use rmdir)`);
  await unlinkEntry(tx, dir, name, target, nowOf(tx.fs, opts));
}

/** unlinkTx in its own transaction (a large inode's blocks freed in steps after it). */
export function unlink(fs: Filesystem, path: PathArg, opts: { now?: Timestamp } = {}): Promise<void> {
  return runOp(fs, (tx) => unlinkTx(tx, path, opts));
}

/** rmdir(2) inside `tx`: remove an empty directory. */
export async function rmdirTx(tx: Transaction, path: PathArg, opts: { now?: Timestamp } = {}): Promise<void> {
  const { dir, name } = await parentOf(tx, path);
  if (isDot(name)) throw new Ext4Error('EINVAL', '"." cannot be removed');
  if (isDotDot(name)) throw new Ext4Error('ENOTEMPTY', '".." cannot be removed');
  const hit = await findDirEntry(tx, dir, name);
  if (!hit) throw new Ext4Error('ENOENT', `${decodeName(name)}: no such file or directory`);
  if (hit.ino === ROOT_INO) throw new Ext4Error('EBUSY', 'the root directory cannot be removed');
  const target = await tx.readInode(hit.ino);
  if (target.type !== 'dir') throw new Ext4Error('ENOTDIR', `${decodeName(name)}: not a directory`);
  if (!(await isDirEmpty(tx, target))) throw new Ext4Error('ENOTEMPTY', `${decodeName(name)}: directory not empty`);
  await rmdirEntry(tx, dir, name, target, nowOf(tx.fs, opts));
}

/** rmdirTx in its own transaction. */
export function rmdir(fs: Filesystem, path: PathArg, opts: { now?: Timestamp } = {}): Promise<void> {
  return runOp(fs, (tx) => rmdirTx(tx, path, opts));
}

/** link(2) inside `tx`: a new name for an existing non-directory (the last component of `existing` not followed). */
export async function linkTx(tx: Transaction, existing: PathArg, newPath: NewName, opts: { now?: Timestamp } = {}): Promise<void> {
  // linkat's order: the old path, the new parent, the new name, then vfs_link's checks.
  await linkInodeTx(tx, await lookupTx(tx, existing, { followLast: false }), newPath, opts);
}

/**
 * linkTx with the existing name already resolved to its inode (a bulk import that knows where it
 * put the target): `knownNew` and `entrySink` as a create's (CreateOptions), so the new name can be
 * held with its directory's others instead of inserted.
 */
export async function linkInodeTx(tx: Transaction, target: Inode, newPath: NewName, opts: Pick<CreateOptions, 'now' | 'knownNew' | 'entrySink'> = {}): Promise<void> {
  const { dir, name } = await parentOf(tx, newPath);
  if (isDot(name) || isDotDot(name) || (!opts.knownNew && (await findDirEntry(tx, dir, name)))) throw new Ext4Error('EEXIST', `${decodeName(name)}: file exists`);
  if (target.type === 'dir') throw new Ext4Error('EPERM', 'hard links to directories are not allowed');
  if (target.linksCount >= LINK_MAX) throw new Ext4Error('EMLINK', `inode ${target.ino} has ${target.linksCount} links`);
  if (target.linksCount === 0) throw new Ext4Error('ENOENT', `inode ${target.ino} has no links left`);
  const t = nowOf(tx.fs, opts);
  await addEntry(tx, dir, name, target.ino, direntType(target.type), opts);
  dirty(tx, dir, t, MTIME);
  await tx.writeInode(dir);
  const fresh = await tx.readInode(target.ino);
  setLinks(fresh, fresh.linksCount + 1);
  dirty(tx, fresh, t);
  await tx.writeInode(fresh);
}

/** linkTx in its own transaction. */
export function link(fs: Filesystem, existing: PathArg, newPath: PathArg, opts: { now?: Timestamp } = {}): Promise<void> {
  return runOp(fs, (tx) => linkTx(tx, existing, newPath, opts));
}

// ---------------------------------------------------------------------------------------------- rename

const DOTDOT = new Uint8Array([0x2e, 0x2e]);

/** Directory `dir` and every directory above it up to the root (walking '..' as of `tx`). */
async function ancestors(tx: Transaction, dir: number): Promise<Set<number>> {
  const out = new Set<number>([dir]);
  for (let cur = dir; cur !== ROOT_INO; ) {
    const up = await dotDotOf(tx, await tx.readInode(cur));
    if (out.has(up) && up !== ROOT_INO) throw new Ext4Error('EFSCORRUPTED', `'..' entries loop above directory ${dir}`, { structure: `directory ${cur}`, location: { kind: 'inode', ino: cur } });
    out.add(up);
    cur = up;
  }
  return out;
}

/**
 * rename(2) / renameat2 inside `tx`. An existing `to` is replaced: a
 * non-directory by a non-directory, an empty directory by a directory
 * (EISDIR, ENOTDIR, ENOTEMPTY as rename(2)); its inode loses the link. With
 * `noReplace`, EEXIST instead. With `exchange` both names must exist (ENOENT)
 * and swap (ext4_cross_rename: a directory that changes parent gets its '..'
 * rewritten, the parents' link counts follow). A directory moved to another
 * parent gets its '..' rewritten and the parents' link counts moved (EMLINK
 * when the new parent is full); moving a directory under itself is EINVAL.
 */
export async function renameTx(tx: Transaction, from: PathArg, to: PathArg, opts: RenameOptions = {}): Promise<void> {
  const fs = tx.fs;
  if (opts.exchange && opts.noReplace) throw new Ext4Error('EINVAL', 'exchange and noReplace cannot be combined');
  const a = await parentOf(tx, from);
  const b = await parentOf(tx, to);
  const same = a.dir.ino === b.dir.ino;
  const oldDir = a.dir;
  const newDir = same ? a.dir : b.dir;
  for (const n of [a.name, b.name]) if (isDot(n) || isDotDot(n)) throw new Ext4Error('EBUSY', '"." and ".." cannot be renamed');
  const src = await findDirEntry(tx, oldDir, a.name);
  if (!src) throw new Ext4Error('ENOENT', `${decodeName(a.name)}: no such file or directory`);
  const dst = await findDirEntry(tx, newDir, b.name);
  if (opts.exchange && !dst) throw new Ext4Error('ENOENT', `${decodeName(b.name)}: no such file or directory`);
  if (dst && opts.noReplace) throw new Ext4Error('EEXIST', `${decodeName(b.name)}: file exists`);
  if (same && bytesEqual(a.name, b.name)) return;
  const moving = await tx.readInode(src.ino);
  const movingDir = moving.type === 'dir';
  if (!same) {
    // do_renameat2's trap: the source may not be an ancestor of the new parent (EINVAL), the
    // target not one of the old parent (ENOTEMPTY; EINVAL when exchanging) — before the types.
    if (movingDir && (await ancestors(tx, newDir.ino)).has(moving.ino)) throw new Ext4Error('EINVAL', 'cannot move a directory under itself');
    if (dst && (await ancestors(tx, oldDir.ino)).has(dst.ino))
      throw new Ext4Error(opts.exchange ? 'EINVAL' : 'ENOTEMPTY', `${decodeName(b.name)}: ${opts.exchange ? 'cannot move a directory under itself' : 'directory not empty (an ancestor of the source)'}`);
  }
  if (dst && dst.ino === src.ino) return; // two links to one inode: rename(2) does nothing
  const t = nowOf(fs, opts);
  if (opts.exchange) return exchangeEntries(tx, { dir: oldDir, name: a.name, inode: moving }, { dir: newDir, name: b.name, inode: await tx.readInode(dst!.ino) }, same, t);
  let victimDir = false;
  if (dst) {
    const victim = await tx.readInode(dst.ino);
    victimDir = victim.type === 'dir';
    if (movingDir && !victimDir) throw new Ext4Error('ENOTDIR', `${decodeName(b.name)}: not a directory`);
    if (!movingDir && victimDir) throw new Ext4Error('EISDIR', `${decodeName(b.name)}: is a directory`);
    if (victimDir && !(await isDirEmpty(tx, victim))) throw new Ext4Error('ENOTEMPTY', `${decodeName(b.name)}: directory not empty`);
    await setDirEntry(tx, newDir, b.name, moving.ino, direntType(moving.type));
    await removeDirEntry(tx, oldDir, a.name);
    dirty(tx, victim, t);
    if (victimDir || victim.linksCount <= 1) await dropInode(tx, victim);
    else {
      setLinks(victim, victim.linksCount - 1);
      await tx.writeInode(victim);
    }
  } else {
    if (movingDir && !same && dirLinkMax(fs, newDir)) throw new Ext4Error('EMLINK', `directory ${newDir.ino} has ${newDir.linksCount} links`);
    await addDirEntry(tx, newDir, b.name, moving.ino, direntType(moving.type));
    await removeDirEntry(tx, oldDir, a.name);
  }
  // Subdirectory counts (links = 2 + subdirectories): the old parent loses one when a directory
  // leaves it or a directory victim goes; the new parent gains one unless it lost the victim.
  if (movingDir && !same) {
    await setDirEntry(tx, await tx.readInode(moving.ino), DOTDOT, newDir.ino, direntType('dir'));
    decDirLinks(oldDir);
    if (!victimDir) incDirLinks(newDir);
  } else if (victimDir) decDirLinks(newDir);
  dirty(tx, oldDir, t, MTIME);
  await tx.writeInode(oldDir);
  if (!same) {
    dirty(tx, newDir, t, MTIME);
    await tx.writeInode(newDir);
  }
  const m = await tx.readInode(moving.ino);
  dirty(tx, m, t);
  await tx.writeInode(m);
}

interface Side {
  dir: Inode;
  name: Uint8Array;
  inode: Inode;
}

/** RENAME_EXCHANGE (ext4_cross_rename): each name points at the other inode. */
async function exchangeEntries(tx: Transaction, a: Side, b: Side, same: boolean, t: Timestamp): Promise<void> {
  const fs = tx.fs;
  const aDir = a.inode.type === 'dir', bDir = b.inode.type === 'dir';
  // vfs_rename's EMLINK: a directory arriving in a parent that gets no directory back.
  if (!same && aDir && !bDir && dirLinkMax(fs, b.dir)) throw new Ext4Error('EMLINK', `directory ${b.dir.ino} has ${b.dir.linksCount} links`);
  if (!same && bDir && !aDir && dirLinkMax(fs, a.dir)) throw new Ext4Error('EMLINK', `directory ${a.dir.ino} has ${a.dir.linksCount} links`);
  await setDirEntry(tx, a.dir, a.name, b.inode.ino, direntType(b.inode.type));
  const bParent = same ? a.dir : b.dir;
  await setDirEntry(tx, bParent, b.name, a.inode.ino, direntType(a.inode.type));
  if (!same) {
    if (aDir) await setDirEntry(tx, await tx.readInode(a.inode.ino), DOTDOT, b.dir.ino, direntType('dir'));
    if (bDir) await setDirEntry(tx, await tx.readInode(b.inode.ino), DOTDOT, a.dir.ino, direntType('dir'));
    // ext4_update_dir_count: a parent that traded a directory for a non-directory loses a link, the other gains one.
    if (aDir && !bDir) {
      decDirLinks(a.dir);
      incDirLinks(b.dir);
    } else if (bDir && !aDir) {
      incDirLinks(a.dir);
      decDirLinks(b.dir);
    }
  }
  dirty(tx, a.dir, t, MTIME);
  await tx.writeInode(a.dir);
  if (!same) {
    dirty(tx, b.dir, t, MTIME);
    await tx.writeInode(b.dir);
  }
  for (const ino of [a.inode.ino, b.inode.ino]) {
    const m = await tx.readInode(ino);
    dirty(tx, m, t);
    await tx.writeInode(m);
  }
}

/** renameTx in its own transaction: a crash leaves the old namespace or the new one. */
export function rename(fs: Filesystem, from: PathArg, to: PathArg, opts: RenameOptions = {}): Promise<void> {
  return runOp(fs, (tx) => renameTx(tx, from, to, opts));
}

// ---------------------------------------------------------------------------------------------- rm -r

export interface RemoveTreeProgress {
  /** Names removed so far (entries of every kind, the top one included). */
  removed: number;
  /** Transactions committed so far. */
  steps: number;
}

export interface RemoveTreeOptions {
  now?: Timestamp;
  onProgress?: (p: RemoveTreeProgress) => void;
  /** Entries per transaction at most (default from the journal's size; tests make it small). */
  stepEntries?: number;
}

/**
 * Blocks one step may touch: half the journal's per-commit limit, less room for one more
 * entry's worst case (as importTree batches); 4096 without a journal.
 */
function stepBlockBudget(fs: Filesystem): number {
  const j = internals(fs).journal;
  return j ? Math.max(16, Math.floor(j.maxTransactionBlocks() / 2) - 64) : 4096;
}

/**
 * rm -r: remove `path` and, for a directory, everything under it, depth
 * first, in transactions that each fit the journal. Each step removes whole
 * entries with their inodes (a file's inode freed with its last link in the
 * same transaction; a large one put on the orphan list there and freed in
 * steps after it), and a directory in the step that removes the last of its entries — so a crash at any
 * point leaves a consistent filesystem where every visible name is whole,
 * and at most orphans that the next open (or e2fsck, or Linux) frees.
 * Returns the number of names removed. The root cannot be removed (EBUSY).
 */
export async function removeTree(fs: Filesystem, path: PathArg, opts: RemoveTreeOptions = {}): Promise<number> {
  checkWritable(fs);
  const top = splitLast(path);
  const progress: RemoveTreeProgress = { removed: 0, steps: 0 };
  const budget = stepBlockBudget(fs);
  const maxEntries = opts.stepEntries ?? Infinity;
  for (;;) {
    let done = false;
    let txUsed: Transaction | null = null;
    await fs.transact(async (tx) => {
      txUsed = tx;
      done = await removeStep(tx, top, { budget, maxEntries, now: nowOf(fs, opts) }, progress);
    });
    if (txUsed) await finishRemovals(fs, txUsed);
    progress.steps++;
    opts.onProgress?.({ ...progress });
    if (done) return progress.removed;
  }
}

/**
 * One step of removeTree: walk down from the top to a directory, removing
 * entries (post-order) until the step's budget is used. Returns true once
 * the top name itself is gone.
 */
async function removeStep(tx: Transaction, top: { parent: Uint8Array; name: Uint8Array }, lim: { budget: number; maxEntries: number; now: Timestamp }, progress: RemoveTreeProgress): Promise<boolean> {
  const parent = await lookupTx(tx, top.parent, { followLast: true });
  if (parent.type !== 'dir') throw new Ext4Error('ENOTDIR', `${decodeName(top.parent)}: not a directory`);
  if (isDot(top.name) || isDotDot(top.name)) throw new Ext4Error('EINVAL', '"." and ".." cannot be removed');
  const hit = await findDirEntry(tx, parent, top.name);
  if (!hit) {
    if (progress.removed === 0) throw new Ext4Error('ENOENT', `${decodeName(top.name)}: no such file or directory`);
    return true;
  }
  if (hit.ino === ROOT_INO) throw new Ext4Error('EBUSY', 'the root directory cannot be removed');
  let count = 0;
  // Non-directories go in place (no Inode objects); the inodes deleted so are released from their
  // bitmaps at the end of the step, their groups' bitmaps and descriptors counted meanwhile.
  const inPlace = new InPlaceRemoval(tx, lim.now, BULK_DELETE_GROUPS, (ino) => isHeld(tx.fs, ino));
  // Frees touch their bitmaps and descriptors only at finalise: two blocks per group they touch
  // (counted as they come; many frees share a group).
  const freeGroups = new Set<number>();
  let freesSeen = 0;
  const full = () => {
    const sb = tx.fs.sb;
    for (; freesSeen < tx.pendingFree.length; freesSeen++) {
      const f = tx.pendingFree[freesSeen]!;
      for (let g = groupOfBlock(sb, f.start), last = groupOfBlock(sb, f.start + f.length - 1); g <= last; g++) freeGroups.add(g);
    }
    return count >= lim.maxEntries || tx.blocks.size + tx.groups.size + 2 * (freeGroups.size + inPlace.releasedGroups.size) >= lim.budget;
  };
  /**
   * Empty `dir` (post-order) as far as the budget goes; true when every entry's inode went — then
   * the caller removes `dir` in this same step, without its entries ever being edited out (its
   * blocks are freed with it: one transaction, so no state in between is ever on disk). When the
   * budget ends first, the names whose inodes went are removed from `dir` (one inode write) and
   * false is returned.
   */
  const empty = async (dir: Inode, depth: number): Promise<boolean> => {
    if (depth > 4096) throw new Ext4Error('EFSCORRUPTED', `directories nested more than 4096 deep under ${decodeName(top.name)}`);
    const gone: { name: Uint8Array }[] = [];
    let goneDirs = 0;
    let complete = true;
    // In inode order: the inode-table blocks are met once each, in disk order (the cache's
    // read-ahead), and logged in that order.
    for (const e of (await listDirEntries(tx, dir)).sort((a, b) => a.ino - b.ino)) {
      if (full()) {
        complete = false;
        break;
      }
      let dropped = inPlace.dropNow(e.ino);
      if (dropped === undefined) dropped = await inPlace.drop(e.ino);
      if (dropped) {
        gone.push(e);
        count++;
        progress.removed++;
        continue;
      }
      const child = await tx.readInode(e.ino);
      if (child.type === 'dir') {
        if (!(await empty(child, depth + 1))) {
          complete = false;
          break;
        }
        const c = await tx.readInode(e.ino);
        stamp(c, lim.now);
        await dropInode(tx, c);
      } else await dropLink(tx, child, lim.now, true);
      gone.push(e);
      if (child.type === 'dir') goneDirs++;
      count++;
      progress.removed++;
    }
    if (complete) return true;
    if (gone.length) {
      const d = await tx.readInode(dir.ino);
      for (const g of gone) await removeDirEntry(tx, d, g.name);
      for (let i = 0; i < goneDirs; i++) decDirLinks(d);
      dirty(tx, d, lim.now, MTIME);
      await tx.writeInode(d);
    }
    return false;
  };
  const target = await tx.readInode(hit.ino);
  if (target.type !== 'dir') {
    await unlinkEntry(tx, parent, top.name, target, lim.now, true);
    progress.removed++;
    return true;
  }
  const emptied = await empty(target, 0);
  await inPlace.finish();
  if (!emptied) return false;
  await rmdirEntry(tx, await tx.readInode(parent.ino), top.name, await tx.readInode(hit.ino), lim.now);
  progress.removed++;
  return true;
}

/** Whether the filesystem hashes directories (dir_index): new multi-block directories become htrees. */
export function indexesDirectories(fs: Filesystem): boolean {
  return (fs.sb.s_feature_compat & COMPAT.DIR_INDEX) !== 0;
}
