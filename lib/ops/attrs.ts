/**
 * Inode attributes as chmod(2), chown(2), utimensat(2) and the xattr calls
 * (getxattr, listxattr, setxattr, removexattr) change them through the
 * kernel's VFS and ext4 (fs/attr.c notify_change/setattr_copy, fs/ext4/inode.c
 * ext4_setattr, fs/ext4/xattr.c): one journaled transaction each, or a `…Tx`
 * form inside the caller's batch.
 *
 * - every change sets ctime (from `opts.now` or the filesystem clock) and
 *   bumps i_version; utimes sets atime and mtime as given;
 * - times keep nanoseconds and the epoch bits (years 1901–2446) where
 *   i_extra_isize covers the *_extra field; 128-byte inodes keep seconds
 *   only, clamped to the signed 32-bit range (EXT4_NON_EXTRA_TIMESTAMP_MAX);
 * - chown clears setuid on anything but a directory and setgid when
 *   group-executable (ATTR_KILL_SUID / setattr_should_drop_sgid), and drops
 *   security.capability (ATTR_KILL_PRIV → cap_inode_killpriv), as for root;
 * - xattrs follow lib/ext4/xattr-edit.ts (in-inode first, then the block);
 *   user.* is for regular files and directories only (xattr_permission: EPERM);
 * - system.posix_acl_access / _default take and give the xattr form (version
 *   2, what setfacl/getfacl use) and are stored in ext4's form (posix-acl.ts);
 *   an access ACL sets the permission bits and is not stored when the bits
 *   say it all (posix_acl_update_mode); chmod rewrites it (posix_acl_chmod);
 *   a default ACL only on a directory (EACCES).
 *
 * Paths are absolute in the image; the last component is followed unless
 * `noFollow` (lchown, lutimes, lgetxattr…). chmod with noFollow on a symlink
 * fails with EOPNOTSUPP as Linux's fchmodat(AT_SYMLINK_NOFOLLOW) does.
 */
import { Ext4Error } from '../errors.js';
import type { Filesystem } from '../ext4/filesystem.js';
import type { Transaction } from '../ext4/transaction.js';
import { S_IFMT, extraCovers, type Inode, type Timestamp } from '../ext4/inode.js';
import { editXattr, expandExtraIsize, txXattrs, xattrName } from '../ext4/xattr-edit.js';
import { readEaValue } from '../ext4/ea-inode.js';
import { lookupTx } from './namespace.js';
import { aclChmod, aclFromDisk, aclFromXattr, aclModeBits, aclToDisk, aclToXattr } from '../ext4/posix-acl.js';

export interface AttrOptions {
  /** Act on a symlink itself rather than its target (lchown, lutimes). */
  noFollow?: boolean;
  /** ctime to set (default: the filesystem clock). */
  now?: Timestamp;
}

/** A time argument: a Timestamp, a Date, or seconds since the epoch (fractions allowed), as Node's utimes takes. */
export type TimeArg = Timestamp | Date | number;

export interface SetXattrOptions {
  /** 'create': EEXIST if it exists (XATTR_CREATE); 'replace': ENODATA if it does not (XATTR_REPLACE). */
  flag?: 'create' | 'replace';
}

const ACL_ACCESS = 'system.posix_acl_access', ACL_DEFAULT = 'system.posix_acl_default';
const isAcl = (name: string) => name === ACL_ACCESS || name === ACL_DEFAULT;
/** A stored value as getxattr returns it: ACLs in the xattr form. */
const outward = (name: string, v: Uint8Array, ino: number) => (isAcl(name) ? aclToXattr(aclFromDisk(v, ino, name)) : v);

const S_ISUID = 0o4000, S_ISGID = 0o2000, S_IXGRP = 0o010;
/** EXT4_EXTRA_TIMESTAMP_MAX / MIN and EXT4_NON_EXTRA_TIMESTAMP_MAX (fs/ext4/ext4.h). */
const TIME_MIN = -(2 ** 31);
const TIME_MAX_EXTRA = 2 ** 34 - 1 - 2 ** 31;
const TIME_MAX_NON_EXTRA = 2 ** 31 - 1;

function checkWritable(fs: Filesystem): void {
  if (fs.readOnly) throw new Ext4Error('EROFS', 'the filesystem is open read-only');
}

/** A TimeArg as a Timestamp (EINVAL for NaN, infinities, invalid dates). */
export function toTimestamp(t: TimeArg): Timestamp {
  if (t instanceof Date) {
    // Whole milliseconds: exact, unlike going through fractional seconds.
    const ms = t.getTime();
    if (!Number.isFinite(ms)) throw new Ext4Error('EINVAL', 'invalid Date');
    const sec = Math.floor(ms / 1000);
    return { sec, nsec: (ms - sec * 1000) * 1e6 };
  }
  if (typeof t === 'number') {
    if (!Number.isFinite(t)) throw new Ext4Error('EINVAL', `time ${t} is not a number of seconds`);
    const sec = Math.floor(t);
    const nsec = Math.min(999_999_999, Math.round((t - sec) * 1e9));
    return { sec, nsec };
  }
  if (!Number.isSafeInteger(t.sec) || !Number.isInteger(t.nsec) || t.nsec < 0 || t.nsec >= 1e9) throw new Ext4Error('EINVAL', `time {sec: ${t.sec}, nsec: ${t.nsec}} is not valid`);
  return { sec: t.sec, nsec: t.nsec };
}

type TimeField = 'atime' | 'mtime' | 'ctime';

/**
 * Store one time as ext4_encode_extra_time / EXT4_INODE_SET_XTIME: seconds
 * clamped to what the inode can hold, the *_extra word (nanoseconds << 2 |
 * epoch bits) where i_extra_isize reaches it.
 */
function setTime(inode: Inode, field: TimeField, t: Timestamp): void {
  const extra = extraCovers(inode.extraIsize, EXTRA_FIELD[field]);
  const sec = Math.min(Math.max(t.sec, TIME_MIN), extra ? TIME_MAX_EXTRA : TIME_MAX_NON_EXTRA);
  const nsec = extra ? t.nsec : 0;
  const base = sec >>> 0;
  const word = ((nsec << 2) | (((sec - (base | 0)) / 2 ** 32) & 3)) >>> 0;
  // Named stores, not inode.base[`i_${field}`]: a key built per call is a new string to hash and
  // a megamorphic keyed store each time (three per imported file; seen in a fresh import's profile).
  if (field === 'atime') {
    inode.base.i_atime = base;
    if (extra) inode.extra.i_atime_extra = word;
    inode.atime = { sec, nsec };
  } else if (field === 'mtime') {
    inode.base.i_mtime = base;
    if (extra) inode.extra.i_mtime_extra = word;
    inode.mtime = { sec, nsec };
  } else {
    inode.base.i_ctime = base;
    if (extra) inode.extra.i_ctime_extra = word;
    inode.ctime = { sec, nsec };
  }
}

/** Each time's *_extra field (constant strings: extraCovers' lookup hashes them once). */
const EXTRA_FIELD = { atime: 'i_atime_extra', mtime: 'i_mtime_extra', ctime: 'i_ctime_extra' } as const;

/**
 * ctime (and with `mtime`, mtime) = now, and i_version + 1 unless `version`
 * is false (inode_set_ctime_current, inode_inc_iversion). Changes `inode` only.
 */
export function markChanged(inode: Inode, now: Timestamp, opts: { mtime?: boolean; version?: boolean } = {}): void {
  setTime(inode, 'ctime', now);
  if (opts.mtime) setTime(inode, 'mtime', now);
  if (opts.version === false) return;
  const hi = inode.extraIsize >= 28;
  const v = inode.base.i_version_lo + (hi ? inode.extra.i_version_hi * 2 ** 32 : 0) + 1;
  inode.base.i_version_lo = v % 2 ** 32;
  if (hi) inode.extra.i_version_hi = Math.floor(v / 2 ** 32) % 2 ** 32;
}

async function inUse(tx: Transaction, ino: number): Promise<Inode> {
  const inode = await tx.readInode(ino);
  if (inode.mode === 0) throw new Ext4Error('ENOENT', `inode ${ino} is not in use`, { structure: `inode ${ino}`, location: { kind: 'inode', ino } });
  return inode;
}

/**
 * An inode about to be changed: in use, and its i_extra_isize grown to what the kernel wants when
 * there is room, as the kernel does each time it dirties an inode (xattr-edit.ts expandExtraIsize).
 */
async function forChange(tx: Transaction, ino: number): Promise<Inode> {
  const inode = await inUse(tx, ino);
  expandExtraIsize(tx, inode);
  return inode;
}

const nowOf = (tx: Transaction, opts: { now?: Timestamp }) => (opts.now ? toTimestamp(opts.now) : tx.fs.now());

/** One transaction acting on the inode at `path` (the last component followed unless noFollow). */
async function onPath<T>(fs: Filesystem, path: string | Uint8Array, opts: AttrOptions, fn: (tx: Transaction, ino: number) => Promise<T>): Promise<T> {
  checkWritable(fs);
  return fs.transact(async (tx) => fn(tx, (await lookupTx(tx, path, { followLast: !opts.noFollow })).ino));
}

// ---------------------------------------------------------------------------------------------- chmod, chown, utimes

/** chmod(2): the permission bits (07777) of `path` change, its type stays; ctime = now. */
export async function chmod(fs: Filesystem, path: string | Uint8Array, mode: number, opts: AttrOptions = {}): Promise<void> {
  await onPath(fs, path, opts, async (tx, ino) => {
    if (opts.noFollow && (await tx.readInode(ino)).type === 'symlink') throw new Ext4Error('EOPNOTSUPP', 'the mode of a symlink cannot be changed (lchmod)');
    await chmodTx(tx, ino, mode, opts);
  });
}

export async function chmodTx(tx: Transaction, ino: number, mode: number, opts: { now?: Timestamp } = {}): Promise<void> {
  if (!Number.isInteger(mode) || mode < 0) throw new Ext4Error('EINVAL', `bad mode ${mode}`);
  const inode = await forChange(tx, ino);
  const m = (inode.mode & S_IFMT) | (mode & 0o7777);
  inode.mode = inode.base.i_mode = m;
  const acl = (await txXattrs(tx, inode)).find((e) => e.name === ACL_ACCESS);
  if (acl?.value) await editXattr(tx, inode, ACL_ACCESS, aclToDisk(aclChmod(aclFromDisk(acl.value, ino, ACL_ACCESS), m)));
  markChanged(inode, nowOf(tx, opts));
  await tx.writeInode(inode);
}

/** chown(2) (lchown with noFollow): uid / gid −1 leave that id unchanged. */
export async function chown(fs: Filesystem, path: string | Uint8Array, uid: number, gid: number, opts: AttrOptions = {}): Promise<void> {
  await onPath(fs, path, opts, (tx, ino) => chownTx(tx, ino, uid, gid, opts));
}

function checkId(id: number, what: string): void {
  if (!Number.isInteger(id) || id < -1 || id > 0xfffffffe) throw new Ext4Error('EINVAL', `bad ${what} ${id}`);
}

export async function chownTx(tx: Transaction, ino: number, uid: number, gid: number, opts: { now?: Timestamp } = {}): Promise<void> {
  checkId(uid, 'uid');
  checkId(gid, 'gid');
  const inode = await forChange(tx, ino);
  const b = inode.base;
  if (uid !== -1) {
    b.i_uid = uid & 0xffff;
    b.i_uid_high = uid >>> 16;
    inode.uid = uid;
  }
  if (gid !== -1) {
    b.i_gid = gid & 0xffff;
    b.i_gid_high = gid >>> 16;
    inode.gid = gid;
  }
  if (inode.type !== 'dir') {
    let m = inode.mode & ~S_ISUID;
    if ((m & (S_ISGID | S_IXGRP)) === (S_ISGID | S_IXGRP)) m &= ~S_ISGID;
    inode.mode = b.i_mode = m;
    // ATTR_KILL_PRIV: file capabilities do not survive a change of owner.
    if ((await txXattrs(tx, inode)).some((e) => e.name === 'security.capability')) await editXattr(tx, inode, 'security.capability', null);
  }
  markChanged(inode, nowOf(tx, opts));
  await tx.writeInode(inode);
}

/** utimes / utimensat(2) (lutimes with noFollow): atime and mtime as given, ctime = now. */
export async function utimes(fs: Filesystem, path: string | Uint8Array, atime: TimeArg, mtime: TimeArg, opts: AttrOptions = {}): Promise<void> {
  await onPath(fs, path, opts, (tx, ino) => utimesTx(tx, ino, atime, mtime, opts));
}

export async function utimesTx(tx: Transaction, ino: number, atime: TimeArg, mtime: TimeArg, opts: { now?: Timestamp } = {}): Promise<void> {
  const inode = await inUse(tx, ino);
  setTimes(tx, inode, atime, mtime, opts);
  await tx.writeInode(inode);
}

/**
 * utimesTx on an inode the caller holds and writes itself (a bulk importer folds it into the write
 * it makes anyway): i_extra_isize grown as for any change, atime and mtime set, ctime = now.
 */
export function setTimes(tx: Transaction, inode: Inode, atime: TimeArg, mtime: TimeArg, opts: { now?: Timestamp } = {}): void {
  expandExtraIsize(tx, inode);
  setTime(inode, 'atime', toTimestamp(atime));
  setTime(inode, 'mtime', toTimestamp(mtime));
  markChanged(inode, nowOf(tx, opts));
}

// ---------------------------------------------------------------------------------------------- xattrs

/** getxattr(2): the value of `name` (ENODATA when absent). */
export async function getXattr(fs: Filesystem, path: string | Uint8Array, name: string, opts: { noFollow?: boolean } = {}): Promise<Uint8Array> {
  const n = xattrName(name);
  return fs.exclusive(async () => {
    const inode = await fs.resolve(path, { followLast: !opts.noFollow });
    const e = (await fs.xattrs(inode)).find((x) => x.index === n.index && x.name === name);
    if (!e || !e.value) throw new Ext4Error('ENODATA', `no xattr ${name} on ${typeof path === 'string' ? path : 'inode ' + inode.ino}`);
    return outward(name, e.value, inode.ino);
  });
}

export async function getXattrTx(tx: Transaction, ino: number, name: string): Promise<Uint8Array> {
  xattrName(name);
  const inode = await inUse(tx, ino);
  const e = (await txXattrs(tx, inode)).find((x) => x.name === name);
  if (!e) throw new Ext4Error('ENODATA', `no xattr ${name} on inode ${ino}`);
  const value = e.value ?? (await readEaValue(tx, e.valueInode, ino, e.valueSize));
  return outward(name, value, ino);
}

/** Indexes ext4 has xattr handlers for: the others (system.data of inline data) are not listed, as ext4_listxattr skips them. */
const LISTED = new Set([1, 2, 3, 4, 6]);
const listed = (entries: readonly { index: number; name: string }[]) => entries.filter((e) => LISTED.has(e.index)).map((e) => e.name);

/** listxattr(2): every name, in-inode ones first, then the block's (the kernel's order). */
export async function listXattrs(fs: Filesystem, path: string | Uint8Array, opts: { noFollow?: boolean } = {}): Promise<string[]> {
  return fs.exclusive(async () => {
    const inode = await fs.resolve(path, { followLast: !opts.noFollow });
    return listed(await fs.xattrs(inode));
  });
}

export async function listXattrsTx(tx: Transaction, ino: number): Promise<string[]> {
  return listed(await txXattrs(tx, await inUse(tx, ino)));
}

/** setxattr(2): create or replace `name` (flag: XATTR_CREATE / XATTR_REPLACE). */
export async function setXattr(fs: Filesystem, path: string | Uint8Array, name: string, value: Uint8Array, opts: SetXattrOptions & AttrOptions = {}): Promise<void> {
  xattrName(name);
  await onPath(fs, path, opts, (tx, ino) => setXattrTx(tx, ino, name, value, opts));
}

/** xattr_permission: user.* attributes only on regular files and directories. */
function checkUserNamespace(inode: Inode, name: string): void {
  if (name.startsWith('user.') && inode.type !== 'file' && inode.type !== 'dir')
    throw new Ext4Error('EPERM', `user.* xattrs are for regular files and directories (inode ${inode.ino} is a ${inode.type})`);
}

export async function setXattrTx(tx: Transaction, ino: number, name: string, value: Uint8Array, opts: SetXattrOptions & { now?: Timestamp } = {}): Promise<void> {
  const inode = await inUse(tx, ino); // not grown: the kernel sets xattrs under EXT4_STATE_NO_EXPAND
  checkUserNamespace(inode, name);
  if (isAcl(name)) return setAclTx(tx, inode, name, value, opts);
  if (!(await editXattr(tx, inode, name, value, { flag: opts.flag }))) return;
  markChanged(inode, nowOf(tx, opts));
  await tx.writeInode(inode);
}

/** removexattr(2): ENODATA when absent. */
export async function removeXattr(fs: Filesystem, path: string | Uint8Array, name: string, opts: AttrOptions = {}): Promise<void> {
  xattrName(name);
  await onPath(fs, path, opts, (tx, ino) => removeXattrTx(tx, ino, name, opts));
}

export async function removeXattrTx(tx: Transaction, ino: number, name: string, opts: { now?: Timestamp } = {}): Promise<void> {
  const inode = await inUse(tx, ino); // not grown: the kernel removes xattrs under EXT4_STATE_NO_EXPAND
  checkUserNamespace(inode, name);
  await editXattr(tx, inode, name, null);
  markChanged(inode, nowOf(tx, opts));
  await tx.writeInode(inode);
}

/** ext4_set_acl through the VFS (set_posix_acl → posix_acl_update_mode for the access ACL). */
async function setAclTx(tx: Transaction, inode: Inode, name: string, value: Uint8Array, opts: { now?: Timestamp }): Promise<void> {
  const modeBefore = inode.mode;
  const acl = aclFromXattr(value);
  let stored: Uint8Array | null = aclToDisk(acl);
  if (name === ACL_DEFAULT) {
    if (inode.type !== 'dir') throw new Ext4Error('EACCES', `a default ACL is for directories (inode ${inode.ino} is a ${inode.type})`);
  } else {
    const { mode, equivalent } = aclModeBits(acl);
    inode.mode = inode.base.i_mode = (inode.mode & ~0o777) | mode;
    if (equivalent) stored = null;
  }
  const present = (await txXattrs(tx, inode)).some((e) => e.name === name);
  if (stored) await editXattr(tx, inode, name, stored);
  else if (present) await editXattr(tx, inode, name, null);
  if (inode.mode !== modeBefore) expandExtraIsize(tx, inode); // ext4_set_acl dirties it only for a new mode
  markChanged(inode, nowOf(tx, opts));
  await tx.writeInode(inode);
}
