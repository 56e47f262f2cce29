/**
 * Namespace operations on an open filesystem: create a regular file, a
 * symlink (fast or slow), a fifo, socket or device node, mkdir, unlink,
 * rmdir, link, rename (within and across directories). Each is one journaled transaction (an unlink
 * or rmdir of something large: the entry removed and the inode put on the
 * orphan list in one, its blocks freed in journal-sized steps after — a crash
 * leaves the orphan for the next open, Linux or e2fsck to finish).
 *
 * Counts as the kernel keeps them (fs/ext4/namei.c, ialloc.c): the new
 * inode and its group's free-inode / used-dirs counts (alloc.ts), the
 * superblock's free counts; i_links_count of the target, of a new
 * directory (2) and of its parent (+1 for its '..', with dir_nlink: an
 * indexed parent past 65,000 links stays at 1, as ext4_inc_count does);
 * ctime of the inode whose links change, mtime and ctime of each changed
 * directory. Times come from `opts.now` or the filesystem clock (fs.now).
 *
 * Paths are absolute inside the image (a leading '/' optional); the parent
 * is resolved following symlinks, the last component never followed.
 * Errors: ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, ENAMETOOLONG, EMLINK,
 * ENOSPC, EINVAL, EBUSY (removing the root).
 */
import { Ext4Error } from '../errors.js';
import { le32 } from '../codec/layout.js';
import type { Filesystem } from '../ext4/filesystem.js';
import type { Transaction } from '../ext4/transaction.js';
import { COMPAT, INCOMPAT, RO_COMPAT } from '../ext4/superblock.js';
import {
  INODE_FLAGS, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK, encodeTime, extraCovers, type Inode, type Timestamp,
} from '../ext4/inode.js';
import { allocateBlocks, allocateInode } from '../ext4/alloc.js';
import { addOrphan, removeOrphan } from '../ext4/orphan.js';
import { deleteInode, initNewInode, releaseInode } from '../ext4/inode-lifecycle.js';
import { blockMapExclude, remapInode, setSize, txFileMap } from '../ext4/remap.js';
import { groupFirstBlock, groupOfInode } from '../ext4/geometry.js';
import { addDirEntry, direntType, findDirEntry, isDirEmpty, newDirBlock, removeDirEntry, setDirEntry } from '../ext4/dir-edit.js';
import { bytesEqual, decodeName } from '../ext4/bytes.js';

/** The kernel's EXT4_LINK_MAX. */
export const LINK_MAX = 65000;
/** Blocks an inode may own and still be freed inside the transaction that unlinks it. */
const INLINE_DELETE_BLOCKS = 2048;
const ROOT_INO = 2;

export interface CreateOptions {
  /** Permission bits (default 0o644 for files, 0o755 for directories). */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Timestamp for the new inode and the parent (default: the filesystem clock). */
  now?: Timestamp;
}

export interface CreateFileOptions extends CreateOptions {
  /** Fail with EEXIST when the name exists (O_EXCL). Otherwise an existing regular file is returned as is. */
  exclusive?: boolean;
}

// ---------------------------------------------------------------------------------------------- paths

const enc = new TextEncoder();

/** Split a path into its parent path and last component (trailing slashes dropped). */
function splitLast(path: string | Uint8Array): { parent: Uint8Array; name: Uint8Array } {
  let p = typeof path === 'string' ? enc.encode(path) : path;
  let end = p.length;
  while (end > 0 && p[end - 1] === 0x2f) end--;
  p = p.subarray(0, end);
  const slash = p.lastIndexOf(0x2f);
  const name = p.subarray(slash + 1);
  const parent = slash < 0 ? new Uint8Array([0x2f]) : slash === 0 ? new Uint8Array([0x2f]) : p.subarray(0, slash);
  if (name.length === 0) throw new Ext4Error('EBUSY', 'the root directory cannot be created, removed or renamed');
  if (name.length > 255) throw new Ext4Error('ENAMETOOLONG', `${decodeName(name.subarray(0, 64))}…: name longer than 255 bytes`);
  return { parent, name };
}

const isDot = (n: Uint8Array) => n.length === 1 && n[0] === 0x2e;
const isDotDot = (n: Uint8Array) => n.length === 2 && n[0] === 0x2e && n[1] === 0x2e;

/** The parent directory of `path` as of `tx` (symlinks in the parent path followed). */
async function parentOf(fs: Filesystem, tx: Transaction, path: string | Uint8Array): Promise<{ dir: Inode; name: Uint8Array }> {
  const { parent, name } = splitLast(path);
  const p = await fs.resolve(parent, { followLast: true });
  if (p.type !== 'dir') throw new Ext4Error('ENOTDIR', `${decodeName(parent)}: not a directory`);
  return { dir: await tx.readInode(p.ino), name };
}

// ---------------------------------------------------------------------------------------------- inodes

function nowOf(fs: Filesystem, opts: { now?: Timestamp }): Timestamp {
  return opts.now ?? fs.now();
}

/** Set ctime (and mtime) of an inode, nanoseconds and epoch bits where i_extra_isize has room. */
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
function incDirLinks(dir: Inode): void {
  let n = dir.linksCount + 1;
  if (dir.flags & INODE_FLAGS.INDEX && (n > LINK_MAX || n === 2)) n = 1;
  setLinks(dir, n);
}

/** ext4_dec_count for a parent losing a subdirectory: a directory at 1 ("many") or 2 stays. */
function decDirLinks(dir: Inode): void {
  if (dir.linksCount > 2) setLinks(dir, dir.linksCount - 1);
}

const dirNlink = (fs: Filesystem) => (fs.sb.s_feature_ro_compat & RO_COMPAT.DIR_NLINK) !== 0;

/** EXT4_DIR_LINK_MAX: a parent that cannot take one more subdirectory. */
function dirLinkMax(fs: Filesystem, dir: Inode): boolean {
  return (!(dir.flags & INODE_FLAGS.INDEX) || !dirNlink(fs)) && dir.linksCount >= LINK_MAX;
}

/**
 * Group for a new inode: a file's parent group (find_group_other); a new
 * directory under the root goes to the group with the most free inodes
 * among those with at least the average free blocks (a simple Orlov spread),
 * deeper ones to their parent's group.
 */
async function goalGroup(fs: Filesystem, parent: Inode, isDir: boolean): Promise<number> {
  const pg = groupOfInode(fs.sb, parent.ino);
  if (!isDir || parent.ino !== ROOT_INO) return pg;
  const n = fs.sb.groupCount;
  const avgBlocks = fs.sb.freeBlocksCount / n;
  let best = pg, bestFree = -1;
  for (let g = 0; g < n; g++) {
    const gd = await fs.group(g);
    if (gd.freeBlocks >= avgBlocks && gd.freeInodes > bestFree) {
      best = g;
      bestFree = gd.freeInodes;
    }
  }
  return best;
}

/** Flags a new inode takes from its parent (ext4_mask_flags; those our writer supports). */
function inheritedFlags(parent: Inode, isDir: boolean): number {
  const f = parent.flags & (INODE_FLAGS.SYNC | INODE_FLAGS.NODUMP | INODE_FLAGS.NOATIME | INODE_FLAGS.DIRSYNC);
  return isDir ? f : f & ~INODE_FLAGS.DIRSYNC;
}

/** Allocate and initialise a new inode (links 0: the caller sets them), as ext4's __ext4_new_inode. */
async function newInode(fs: Filesystem, tx: Transaction, parent: Inode, mode: number, opts: CreateOptions, t: Timestamp): Promise<Inode> {
  const isDir = (mode & 0xf000) === S_IFDIR;
  const ino = await allocateInode(tx, { goalGroup: await goalGroup(fs, parent, isDir), dir: isDir });
  return initNewInode(tx, ino, { mode, uid: opts.uid, gid: opts.gid, flags: inheritedFlags(parent, isDir), time: t });
}

function checkOpenable(fs: Filesystem): void {
  if (fs.readOnly) throw new Ext4Error('EROFS', 'the filesystem is open read-only');
}

/** Free an inode that lost its last link: now if small, else via the orphan list after the commit. */
async function dropInode(tx: Transaction, inode: Inode): Promise<number | null> {
  setLinks(inode, 0);
  const blocks = inode.blocks512 / (tx.fs.blockSize / 512);
  if (blocks <= INLINE_DELETE_BLOCKS) {
    await deleteInode(tx, inode);
    return null;
  }
  await tx.writeInode(inode);
  await addOrphan(tx, inode.ino);
  return inode.ino;
}

async function finishOrphan(fs: Filesystem, ino: number | null): Promise<void> {
  if (ino !== null) await releaseInode(fs, ino, (tx) => removeOrphan(tx, ino));
}

// ---------------------------------------------------------------------------------------------- operations

/**
 * Create a regular file (open(O_CREAT)): returns its inode number. With
 * `exclusive`, EEXIST when the name exists; otherwise an existing regular
 * file's inode is returned unchanged (EISDIR for a directory).
 */
export async function createFile(fs: Filesystem, path: string | Uint8Array, opts: CreateFileOptions = {}): Promise<number> {
  checkOpenable(fs);
  return fs.transact(async (tx) => {
    const { dir, name } = await parentOf(fs, tx, path);
    if (isDot(name) || isDotDot(name)) throw new Ext4Error(opts.exclusive ? 'EEXIST' : 'EISDIR', `${decodeName(name)}: is a directory`);
    const old = await findDirEntry(tx, dir, name);
    if (old) {
      if (opts.exclusive) throw new Ext4Error('EEXIST', `${decodeName(name)}: file exists`);
      const inode = await tx.readInode(old.ino);
      if (inode.type === 'dir') throw new Ext4Error('EISDIR', `${decodeName(name)}: is a directory`);
      return old.ino;
    }
    const t = nowOf(fs, opts);
    const inode = await newInode(fs, tx, dir, S_IFREG | ((opts.mode ?? 0o644) & 0o7777), opts, t);
    setLinks(inode, 1);
    await tx.writeInode(inode);
    await addDirEntry(tx, dir, name, inode.ino, direntType('file'));
    stamp(dir, t, { mtime: true });
    await tx.writeInode(dir);
    return inode.ino;
  });
}

/**
 * A new non-directory inode named `path` (links 1), `init` filling in its
 * content inside the same transaction. EEXIST when the name exists.
 */
async function createNode(fs: Filesystem, path: string | Uint8Array, mode: number, opts: CreateOptions, init: (tx: Transaction, inode: Inode) => Promise<void>): Promise<number> {
  checkOpenable(fs);
  return fs.transact(async (tx) => {
    const { dir, name } = await parentOf(fs, tx, path);
    if (isDot(name) || isDotDot(name) || (await findDirEntry(tx, dir, name))) throw new Ext4Error('EEXIST', `${decodeName(name)}: file exists`);
    const t = nowOf(fs, opts);
    const inode = await newInode(fs, tx, dir, mode, opts, t);
    setLinks(inode, 1);
    await init(tx, inode);
    await tx.writeInode(inode);
    await addDirEntry(tx, dir, name, inode.ino, direntType(inode.type));
    stamp(dir, t, { mtime: true });
    await tx.writeInode(dir);
    return inode.ino;
  });
}

/**
 * symlink(2): `path` → `target`. Up to 59 bytes the target sits in i_block
 * (a fast symlink, without the extents flag: ext4_symlink); longer ones get
 * a block holding the target and a NUL, journaled with the inode. ENAMETOOLONG
 * when target + NUL exceed a block. Returns the inode number.
 */
export async function symlink(fs: Filesystem, target: string | Uint8Array, path: string | Uint8Array, opts: CreateOptions = {}): Promise<number> {
  const bytes = typeof target === 'string' ? enc.encode(target) : target;
  if (bytes.length === 0) throw new Ext4Error('ENOENT', 'empty symlink target');
  if (bytes.length + 1 > fs.blockSize) throw new Ext4Error('ENAMETOOLONG', `symlink target of ${bytes.length} bytes (at most ${fs.blockSize - 1})`);
  return createNode(fs, path, S_IFLNK | ((opts.mode ?? 0o777) & 0o7777), opts, async (tx, inode) => {
    if (bytes.length < FAST_SYMLINK_MAX) {
      inode.flags &= ~INODE_FLAGS.EXTENTS;
      inode.base.i_flags = inode.flags;
      const iblock = new Uint8Array(60);
      iblock.set(bytes);
      inode.base.i_block = iblock;
    } else {
      const sb = fs.sb;
      const exclude = inode.flags & INODE_FLAGS.EXTENTS ? undefined : blockMapExclude(sb);
      const [run] = await allocateBlocks(tx, { goal: groupFirstBlock(sb, groupOfInode(sb, inode.ino)), length: 1, ...(exclude ? { exclude } : {}) });
      const blk = new Uint8Array(fs.blockSize);
      blk.set(bytes);
      tx.setBlock(run!.start, blk);
      await remapInode(tx, inode, await txFileMap(tx, inode), [{ logical: 0, physical: run!.start, length: 1, unwritten: false }]);
    }
    setSize(tx, inode, bytes.length);
  });
}

/** Target bytes a fast symlink can hold (i_block less the NUL ext4_symlink counts). */
const FAST_SYMLINK_MAX = 60;

export type SpecialType = 'fifo' | 'socket' | 'chardev' | 'blockdev';

export interface MknodOptions extends CreateOptions {
  /** Device number of a chardev / blockdev. */
  rdev?: { major: number; minor: number };
}

const SPECIAL_MODE: Record<SpecialType, number> = { fifo: S_IFIFO, socket: S_IFSOCK, chardev: S_IFCHR, blockdev: S_IFBLK };

/**
 * mknod(2): a fifo, socket or device node. A device number goes into
 * i_block as ext4_do_update_inode stores it: old_encode_dev (major and minor
 * below 256) in i_block[0], else new_encode_dev in i_block[1].
 */
export async function mknod(fs: Filesystem, path: string | Uint8Array, type: SpecialType, opts: MknodOptions = {}): Promise<number> {
  const { major, minor } = opts.rdev ?? { major: 0, minor: 0 };
  if (!Number.isInteger(major) || !Number.isInteger(minor) || major < 0 || minor < 0 || major >= 4096 || minor >= 1 << 20)
    throw new Ext4Error('EINVAL', `device number ${major}:${minor} out of range (major < 4096, minor < 2^20)`);
  return createNode(fs, path, SPECIAL_MODE[type] | ((opts.mode ?? 0o644) & 0o7777), opts, async (_tx, inode) => {
    const iblock = new Uint8Array(60);
    if (type === 'chardev' || type === 'blockdev') {
      if (major < 256 && minor < 256) le32.set(iblock, 0, (major << 8) | minor);
      else le32.set(iblock, 1, ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0);
    }
    inode.base.i_block = iblock;
  });
}

/** mkdir(2): a new directory with '.' and '..' in one block. Returns its inode number. */
export async function mkdir(fs: Filesystem, path: string | Uint8Array, opts: CreateOptions = {}): Promise<number> {
  checkOpenable(fs);
  return fs.transact(async (tx) => {
    const { dir, name } = await parentOf(fs, tx, path);
    if (isDot(name) || isDotDot(name) || (await findDirEntry(tx, dir, name))) throw new Ext4Error('EEXIST', `${decodeName(name)}: file exists`);
    if (dirLinkMax(fs, dir)) throw new Ext4Error('EMLINK', `directory ${dir.ino} has ${dir.linksCount} links (at most ${LINK_MAX} without dir_nlink on an indexed directory)`);
    const t = nowOf(fs, opts);
    const inode = await newInode(fs, tx, dir, S_IFDIR | ((opts.mode ?? 0o755) & 0o7777), opts, t);
    const sb = fs.sb;
    const exclude = inode.flags & INODE_FLAGS.EXTENTS ? undefined : blockMapExclude(sb);
    const [run] = await allocateBlocks(tx, { goal: groupFirstBlock(sb, groupOfInode(sb, inode.ino)), length: 1, ...(exclude ? { exclude } : {}) });
    tx.setBlock(run!.start, newDirBlock({
      blockSize: fs.blockSize,
      hasFiletype: (sb.s_feature_incompat & INCOMPAT.FILETYPE) !== 0,
      csumSeed: fs.inodeCsumSeed(inode),
      self: inode.ino,
      parent: dir.ino,
    }));
    setLinks(inode, 2);
    await remapInode(tx, inode, await txFileMap(tx, inode), [{ logical: 0, physical: run!.start, length: 1, unwritten: false }]);
    setSize(tx, inode, fs.blockSize);
    await tx.writeInode(inode);
    await addDirEntry(tx, dir, name, inode.ino, direntType('dir'));
    incDirLinks(dir);
    stamp(dir, t, { mtime: true });
    await tx.writeInode(dir);
    return inode.ino;
  });
}

/** unlink(2): remove a name of a non-directory; the inode is freed with its last link. */
export async function unlink(fs: Filesystem, path: string | Uint8Array, opts: { now?: Timestamp } = {}): Promise<void> {
  checkOpenable(fs);
  const orphan = await fs.transact(async (tx) => {
    const { dir, name } = await parentOf(fs, tx, path);
    if (isDot(name) || isDotDot(name)) throw new Ext4Error('EISDIR', `${decodeName(name)}: is a directory`);
    const hit = await findDirEntry(tx, dir, name);
    if (!hit) throw new Ext4Error('ENOENT', `${decodeName(name)}: no such file or directory`);
    const target = await tx.readInode(hit.ino);
    if (target.type === 'dir') throw new Ext4Error('EISDIR', `${decodeName(name)}: is a directory (use rmdir)`);
    if (target.linksCount === 0) throw new Ext4Error('EFSCORRUPTED', `inode ${hit.ino} has an entry but no links`, { structure: `inode ${hit.ino}` });
    const t = nowOf(fs, opts);
    await removeDirEntry(tx, dir, name);
    stamp(dir, t, { mtime: true });
    await tx.writeInode(dir);
    stamp(target, t);
    if (target.linksCount > 1) {
      setLinks(target, target.linksCount - 1);
      await tx.writeInode(target);
      return null;
    }
    return dropInode(tx, target);
  });
  await finishOrphan(fs, orphan);
}

/** rmdir(2): remove an empty directory. */
export async function rmdir(fs: Filesystem, path: string | Uint8Array, opts: { now?: Timestamp } = {}): Promise<void> {
  checkOpenable(fs);
  const orphan = await fs.transact(async (tx) => {
    const { dir, name } = await parentOf(fs, tx, path);
    if (isDot(name)) throw new Ext4Error('EINVAL', '"." cannot be removed');
    if (isDotDot(name)) throw new Ext4Error('ENOTEMPTY', '".." cannot be removed');
    const hit = await findDirEntry(tx, dir, name);
    if (!hit) throw new Ext4Error('ENOENT', `${decodeName(name)}: no such file or directory`);
    if (hit.ino === ROOT_INO) throw new Ext4Error('EBUSY', 'the root directory cannot be removed');
    const target = await tx.readInode(hit.ino);
    if (target.type !== 'dir') throw new Ext4Error('ENOTDIR', `${decodeName(name)}: not a directory`);
    if (!(await isDirEmpty(tx, target))) throw new Ext4Error('ENOTEMPTY', `${decodeName(name)}: directory not empty`);
    const t = nowOf(fs, opts);
    await removeDirEntry(tx, dir, name);
    decDirLinks(dir);
    stamp(dir, t, { mtime: true });
    await tx.writeInode(dir);
    stamp(target, t);
    // The kernel empties it (i_size 0) before eviction frees its blocks.
    return dropInode(tx, target);
  });
  await finishOrphan(fs, orphan);
}

/** link(2): a new name for an existing non-directory (the last component of `existing` not followed). */
export async function link(fs: Filesystem, existing: string | Uint8Array, newPath: string | Uint8Array, opts: { now?: Timestamp } = {}): Promise<void> {
  checkOpenable(fs);
  await fs.transact(async (tx) => {
    // linkat's order: the old path, the new parent, the new name, then vfs_link's checks.
    const src = await fs.resolve(existing, { followLast: false });
    const target = await tx.readInode(src.ino);
    const { dir, name } = await parentOf(fs, tx, newPath);
    if (isDot(name) || isDotDot(name) || (await findDirEntry(tx, dir, name))) throw new Ext4Error('EEXIST', `${decodeName(name)}: file exists`);
    if (target.type === 'dir') throw new Ext4Error('EPERM', 'hard links to directories are not allowed');
    if (target.linksCount >= LINK_MAX) throw new Ext4Error('EMLINK', `inode ${target.ino} has ${target.linksCount} links`);
    const t = nowOf(fs, opts);
    await addDirEntry(tx, dir, name, target.ino, direntType(target.type));
    stamp(dir, t, { mtime: true });
    await tx.writeInode(dir);
    setLinks(target, target.linksCount + 1);
    stamp(target, t);
    await tx.writeInode(target);
  });
}

/**
 * rename(2). An existing `to` is replaced: a non-directory by a
 * non-directory, an empty directory by a directory (EISDIR, ENOTDIR,
 * ENOTEMPTY as rename(2)); its inode loses the link. With `noReplace`,
 * EEXIST instead. A directory moved to another parent gets its '..'
 * rewritten and the parents' link counts moved (EMLINK when the new parent
 * is full); moving a directory under itself is EINVAL. One transaction: a
 * crash leaves the old namespace or the new one.
 */
export async function rename(fs: Filesystem, from: string | Uint8Array, to: string | Uint8Array, opts: { now?: Timestamp; noReplace?: boolean } = {}): Promise<void> {
  checkOpenable(fs);
  const orphan = await fs.transact(async (tx) => {
    const a = await parentOf(fs, tx, from);
    const b = await parentOf(fs, tx, to);
    const same = a.dir.ino === b.dir.ino;
    const oldDir = a.dir;
    const newDir = same ? a.dir : b.dir;
    for (const n of [a.name, b.name]) if (isDot(n) || isDotDot(n)) throw new Ext4Error('EBUSY', '"." and ".." cannot be renamed');
    const src = await findDirEntry(tx, oldDir, a.name);
    if (!src) throw new Ext4Error('ENOENT', `${decodeName(a.name)}: no such file or directory`);
    if (same && bytesEqual(a.name, b.name)) return null;
    const moving = await tx.readInode(src.ino);
    const movingDir = moving.type === 'dir';
    const dst = await findDirEntry(tx, newDir, b.name);
    if (dst && opts.noReplace) throw new Ext4Error('EEXIST', `${decodeName(b.name)}: file exists`);
    if (!same) {
      // do_renameat2's trap: the source may not be an ancestor of the new parent (EINVAL), the
      // target not one of the old parent (ENOTEMPTY) — checked before the types.
      if (movingDir && (await ancestors(fs, newDir.ino)).has(moving.ino)) throw new Ext4Error('EINVAL', 'cannot move a directory under itself');
      if (dst && (await ancestors(fs, oldDir.ino)).has(dst.ino)) throw new Ext4Error('ENOTEMPTY', `${decodeName(b.name)}: directory not empty (an ancestor of the source)`);
    }
    const t = nowOf(fs, opts);
    let orphanIno: number | null = null;
    let victimDir = false;
    if (dst) {
      if (dst.ino === src.ino) return null; // two links to one inode: rename(2) does nothing
      const victim = await tx.readInode(dst.ino);
      victimDir = victim.type === 'dir';
      if (movingDir && !victimDir) throw new Ext4Error('ENOTDIR', `${decodeName(b.name)}: not a directory`);
      if (!movingDir && victimDir) throw new Ext4Error('EISDIR', `${decodeName(b.name)}: is a directory`);
      if (victimDir && !(await isDirEmpty(tx, victim))) throw new Ext4Error('ENOTEMPTY', `${decodeName(b.name)}: directory not empty`);
      await setDirEntry(tx, newDir, b.name, moving.ino, direntType(moving.type));
      await removeDirEntry(tx, oldDir, a.name);
      stamp(victim, t);
      if (victimDir || victim.linksCount <= 1) orphanIno = await dropInode(tx, victim);
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
    stamp(oldDir, t, { mtime: true });
    await tx.writeInode(oldDir);
    if (!same) {
      stamp(newDir, t, { mtime: true });
      await tx.writeInode(newDir);
    }
    const m = await tx.readInode(moving.ino);
    stamp(m, t);
    await tx.writeInode(m);
    return orphanIno;
  });
  await finishOrphan(fs, orphan);
}

const DOTDOT = new Uint8Array([0x2e, 0x2e]);

/** Directory `dir` and every directory above it up to the root (walking '..'). */
async function ancestors(fs: Filesystem, dir: number): Promise<Set<number>> {
  const out = new Set<number>([dir]);
  for (let cur = dir; cur !== ROOT_INO; ) {
    const up = await fs.lookup(await fs.readInode(cur), DOTDOT);
    if (!up) throw new Ext4Error('EFSCORRUPTED', `directory ${cur} has no '..'`, { structure: `directory ${cur}` });
    if (out.has(up.ino) && up.ino !== ROOT_INO) throw new Ext4Error('EFSCORRUPTED', `'..' entries loop above directory ${dir}`, { structure: `directory ${cur}` });
    out.add(up.ino);
    cur = up.ino;
  }
  return out;
}

/** Whether the filesystem hashes directories (dir_index): new multi-block directories become htrees. */
export function indexesDirectories(fs: Filesystem): boolean {
  return (fs.sb.s_feature_compat & COMPAT.DIR_INDEX) !== 0;
}
