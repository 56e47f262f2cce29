/**
 * allocate — the proposal's sys_allocate (semantics.md §2): give a file new
 * space at [offset, offset+len) that is currently a hole, searching per
 * mode flags; new blocks are unwritten (read as zeros, no zeroing I/O);
 * the size grows past EOF; one journaled transaction; returns bytes allocated.
 *
 * A block-mapped file (ext2/ext3) cannot say "unwritten": the kernel's
 * fallocate refuses it (EOPNOTSUPP) and glibc's posix_fallocate then writes
 * zeros. We do what that user gets: real blocks, found by the same mode
 * flags, zeroed as ordered data (on disk before the map that exposes them).
 */
import { Ext4Error } from '../errors.js';
import type { Filesystem } from '../ext4/filesystem.js';
import type { FsContext } from '../ext4/fs-context.js';
import type { Transaction } from '../ext4/transaction.js';
import { allocateBlocks } from '../ext4/alloc.js';
import { insert, mappedIn, type Run } from '../ext4/extent-map.js';
import { assertMutableRegularFile, blockMapExclude, remapInode, setSize, touch, txFileMap, zeroOrdered } from '../ext4/remap.js';
import { blockMapMaxBlocks } from '../ext4/blockmap-edit.js';
import { isExtentMapped, type Inode } from '../ext4/inode.js';
import type { Extent } from '../ext4/extents.js';
import { groupFirstBlock } from '../ext4/geometry.js';
import { resolveTarget, type FileRef } from './target.js';

/** Mode flags (library values; the proposal names them, semantics.md §2). */
export const ALLOC_FIXED_START = 1;
export const ALLOC_FIXED_LEN = 2;
export const ALLOC_CONTIGUOUS = 4;
const KNOWN = ALLOC_FIXED_START | ALLOC_FIXED_LEN | ALLOC_CONTIGUOUS;

export interface AllocateOptions {
  /** File offset in bytes (block-aligned). */
  offset: number;
  /** Length in bytes (block-aligned, > 0). */
  len: number;
  /** Byte address on the device to start at (FIXED_START) or to start searching from. */
  goal?: number;
  /** Bitwise OR of ALLOC_FIXED_START, ALLOC_FIXED_LEN, ALLOC_CONTIGUOUS. */
  flags?: number;
}

export async function allocate(fs: Filesystem, file: FileRef, opts: AllocateOptions): Promise<number> {
  if ((opts.flags ?? 0) & ALLOC_FIXED_LEN) return fs.transact((tx) => allocateInTx(tx, file, opts));
  // "Up to len": the data blocks found may leave no block for the extent-tree blocks the new
  // extents need (they come from the same pool). A transaction that fails that way wrote
  // nothing; ask again for fewer blocks (1, 2, 4, ... fewer) until the tree fits.
  let len = opts.len;
  for (let shrink = 1; ; shrink *= 2) {
    const info = { got: 0 };
    try {
      return await fs.transact((tx) => allocateInTx(tx, file, { ...opts, len }, info));
    } catch (e) {
      if (!(e instanceof Ext4Error && e.code === 'ENOSPC') || info.got <= shrink) throw e;
      len = (info.got - shrink) * fs.blockSize;
    }
  }
}

/**
 * Several allocations into one file as ONE transaction (all or nothing):
 * what the defragmenter uses to reserve a donor's whole layout at once.
 * Every request's data blocks are found and marked first, and the extent tree
 * is written once at the end: a tree block allocated between two requests
 * could otherwise land on the exact start a later request asks for (ENOSPC on
 * an empty disk, issue 8 item 7). Returns the bytes allocated per request.
 */
export async function allocateRanges(fs: Filesystem, file: FileRef, requests: readonly AllocateOptions[]): Promise<number[]> {
  return fs.transact(async (tx) => {
    const ino = await resolveTarget(fs, file);
    const inode = await tx.readInode(ino);
    assertMutableRegularFile(inode, fs.sb, 'file', { blockMapped: true });
    const map = await txFileMap(tx, inode);
    const checked = requests.map((r) => checkRequest(fs, r));
    for (const r of checked) checkBlockMapRange(fs, inode, r);
    let extents: Extent[] = map.extents.slice();
    const out: number[] = [];
    let end = inode.size;
    for (const r of checked) {
      const added = await reserveRange(tx, inode, extents, r);
      extents = insert(extents, added);
      const bytes = added.reduce((a, e) => a + e.length, 0) * fs.blockSize;
      out.push(bytes);
      end = Math.max(end, r.offset + bytes);
    }
    await remapInode(tx, inode, map, extents);
    if (end > inode.size) setSize(tx, inode, end);
    touch(tx, inode, { mtime: true });
    await tx.writeInode(inode);
    return out;
  });
}

interface CheckedRequest extends AllocateOptions {
  flags: number;
  /** First logical block and block count. */
  lb: number;
  n: number;
}

/** Argument checks that need no I/O (EINVAL / EFBIG before anything is read or written). */
function checkRequest(fs: FsContext, opts: AllocateOptions): CheckedRequest {
  const bs = fs.blockSize;
  const flags = opts.flags ?? 0;
  if (flags & ~KNOWN) throw new Ext4Error('EINVAL', `unknown allocate flags 0x${(flags & ~KNOWN).toString(16)}`);
  const { offset, len } = opts;
  if (!Number.isSafeInteger(offset) || offset < 0 || offset % bs !== 0) throw new Ext4Error('EINVAL', `offset ${offset} is not a multiple of the block size ${bs}`);
  if (!Number.isSafeInteger(len) || len <= 0 || len % bs !== 0) throw new Ext4Error('EINVAL', `len ${len} is not a positive multiple of the block size ${bs}`);
  if (flags & ALLOC_FIXED_START && (opts.goal === undefined || opts.goal % bs !== 0 || opts.goal < 0)) throw new Ext4Error('EINVAL', `FIXED_START needs a block-aligned goal`);
  const lb = offset / bs;
  const n = len / bs;
  if (lb + n > 2 ** 32 - 1) throw new Ext4Error('EFBIG', 'range exceeds the maximum extent-mapped file size');
  return { ...opts, flags, lb, n };
}

/**
 * Find and mark the data blocks of one request whose range must be a hole in `extents`;
 * returns the new extents (unwritten; for a block-mapped file written, their zeroing
 * queued as ordered data). The caller writes the tree.
 */
async function reserveRange(tx: Transaction, inode: Inode, extents: readonly Extent[], r: CheckedRequest, info?: { got: number }): Promise<Extent[]> {
  const fs = tx.fs;
  const ino = inode.ino;
  const blockMapped = !isExtentMapped(inode);
  const { lb, n, flags } = r;
  if (mappedIn(extents, lb, n).length) throw new Ext4Error('EEXIST', `the range ${r.offset}+${r.len} already contains allocated blocks`);
  const fixedStart = (flags & ALLOC_FIXED_START) !== 0;
  const goalBlock = r.goal !== undefined ? Math.floor(r.goal / fs.blockSize) : defaultGoal(fs, extents, lb, ino);
  if (fixedStart && (goalBlock < fs.sb.s_first_data_block || goalBlock >= fs.sb.blocksCount)) throw new Ext4Error('EINVAL', `goal ${r.goal} is outside the filesystem`);
  const runs: Run[] = await allocateBlocks(tx, {
    goal: goalBlock,
    length: n,
    contiguous: (flags & ALLOC_CONTIGUOUS) !== 0,
    exact: fixedStart,
    partial: !(flags & ALLOC_FIXED_LEN),
    ...(blockMapped ? { exclude: blockMapExclude(fs.sb) } : {}),
  });
  if (info) info.got = runs.reduce((a, x) => a + x.length, 0);
  const added: Extent[] = [];
  let l = lb;
  for (const x of runs) {
    added.push({ logical: l, physical: x.start, length: x.length, unwritten: !blockMapped });
    l += x.length;
  }
  if (blockMapped) zeroOrdered(tx, runs);
  return added;
}

async function allocateInTx(tx: Transaction, file: FileRef, opts: AllocateOptions, info?: { got: number }): Promise<number> {
  const fs = tx.fs;
  const r = checkRequest(fs, opts);
  const ino = await resolveTarget(fs, file);
  const inode = await tx.readInode(ino);
  assertMutableRegularFile(inode, fs.sb, 'file', { blockMapped: true });
  checkBlockMapRange(fs, inode, r);
  const map = await txFileMap(tx, inode);
  const added = await reserveRange(tx, inode, map.extents, r, info);
  await remapInode(tx, inode, map, insert(map.extents, added));
  const bytes = added.reduce((a, e) => a + e.length, 0) * fs.blockSize;
  if (r.offset + bytes > inode.size) setSize(tx, inode, r.offset + bytes);
  touch(tx, inode, { mtime: true });
  await tx.writeInode(inode);
  return bytes;
}

/** Goal when none is given: right after the file's mapping before `lb`, else its inode's group. */
function defaultGoal(fs: FsContext, extents: readonly Extent[], lb: number, ino: number): number {
  let prev: Extent | undefined;
  for (const e of extents) {
    if (e.logical >= lb) break;
    prev = e;
  }
  if (prev) return prev.physical + (lb - prev.logical);
  return groupFirstBlock(fs.sb, Math.floor((ino - 1) / fs.sb.s_inodes_per_group));
}

/** A block map addresses fewer logical blocks than an extent tree (EFBIG before anything is allocated). */
function checkBlockMapRange(fs: FsContext, inode: Inode, r: CheckedRequest): void {
  if (isExtentMapped(inode)) return;
  const max = blockMapMaxBlocks(fs.blockSize);
  if (r.lb + r.n > max) throw new Ext4Error('EFBIG', `range exceeds the maximum block-mapped file size (${max} blocks)`, { structure: `inode ${inode.ino}` });
}
