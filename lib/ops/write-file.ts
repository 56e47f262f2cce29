/**
 * Whole-content writes: writeFile replaces a file's bytes whole or not at
 * all, appendFile adds at the end, writeFileTx sets a file's content inside a
 * caller's transaction.
 *
 * How writeFile replaces (the content never goes over the old blocks):
 *  - new blocks near the file's goal (one extent when a free run allows,
 *    else first-fit from the goal), the data written into them and flushed
 *    before the commit (ordered data), then ONE transaction maps them in,
 *    sets the size, mtime and ctime and frees the old blocks;
 *  - a content whose map change would not fit one journal transaction, or a
 *    stream longer than STREAM_BUFFER, is first built in an orphaned
 *    temporary inode (temp-file.ts) in as many transactions as it needs; then
 *    one transaction swaps the two maps and sizes; the temporary inode, now
 *    holding the old blocks, is released (in journal-sized steps, an orphan
 *    until the last).
 *
 * What a crash can leave, per call:
 *  - writeFile on an existing file: the old content or the new one, whole
 *    (size, bytes and times together); at most an orphaned temporary inode,
 *    which ext4kit's next write open, Linux at mount and e2fsck free;
 *  - writeFile creating the file: no file or the whole new one. A content
 *    that fits one transaction is named, mapped and sized in it (namespace.ts
 *    createFileTx); a larger one is built in an orphaned temporary inode
 *    first, invisible, and ONE transaction creates the name and its inode,
 *    moves the temporary inode's map and size into it and sets its times;
 *  - appendFile: each appended chunk (a Uint8Array is one chunk; a stream in
 *    pieces of at most STREAM_BUFFER bytes) is all-or-nothing; a crash in a
 *    stream keeps a prefix of whole chunks; a file it creates appears with its
 *    first chunk (an empty append creates an empty file);
 *  - writeFileTx: whatever the caller's transaction does (all or nothing).
 * Block-mapped files (ext2/ext3) go the same way (indirect blocks through
 * remapInode, blocks below 2^32). On an inline_data filesystem a content
 * that fits the inode stays in it (an inline file, or a new empty one, as the
 * kernel keeps it); one that does not is converted to blocks in the same
 * transaction (ext4_destroy_inline_data, inline-data.ts). Encrypted, verity,
 * immutable and append-only files are refused (EOPNOTSUPP / EPERM).
 */
import { Ext4Error } from '../errors.js';
import type { Filesystem } from '../ext4/filesystem.js';
import type { Transaction } from '../ext4/transaction.js';
import { internals } from '../ext4/internals.js';
import { hasInlineData, isExtentMapped, type Inode, type Timestamp } from '../ext4/inode.js';
import { MIN_INLINE_SIZE, canInline, destroyInlineData, maxInlineValueSize, readInlineData, writeInlineData } from '../ext4/inline-data.js';
import { allocateBlocks } from '../ext4/alloc.js';
import type { Run } from '../ext4/extent-map.js';
import type { Extent } from '../ext4/extents.js';
import type { FileMap } from '../ext4/file-map.js';
import { assertMutableRegularFile, blockMapExclude, remapInode, setSize, txFileMap } from '../ext4/remap.js';
import { maxFileSize } from '../ext4/inode-lifecycle.js';
import { groupOfBlock, groupOfInode } from '../ext4/geometry.js';
import { createTempFile, releaseTempFile } from '../ext4/temp-file.js';
import { blockGoal, createFile, createFileTx, type CreateFileOptions } from './namespace.js';
import { pwriteTx } from './file.js';
import { markChanged, toTimestamp } from './attrs.js';

export interface WriteFileOptions {
  /** Permission bits of a file created by the call (default 0o644). */
  mode?: number;
  uid?: number;
  gid?: number;
  /** mtime/ctime to set (default: the filesystem clock). */
  now?: Timestamp;
  /** 'w' (default): create or replace; 'wx': EEXIST if it exists; 'a': append. */
  flag?: 'w' | 'wx' | 'a';
  /** Bytes of a stream held in memory before it goes through a temporary inode; an append's chunk (default STREAM_BUFFER). */
  bufferBytes?: number;
}

export type WriteFileData = Uint8Array | AsyncIterable<Uint8Array>;

/** A stream is buffered up to this many bytes before it goes through a temporary inode (also an append's chunk). */
export const STREAM_BUFFER = 16 * 1024 * 1024;

/** The stream buffer in whole blocks (temp-file chunks must end on a block boundary). */
function bufferOf(fs: Filesystem, opts: { bufferBytes?: number }): number {
  const b = opts.bufferBytes ?? STREAM_BUFFER;
  if (!Number.isSafeInteger(b) || b <= 0) throw new Ext4Error('EINVAL', `bufferBytes ${b}`);
  return Math.max(fs.blockSize, b - (b % fs.blockSize));
}

function checkWritable(fs: Filesystem): void {
  if (fs.readOnly) throw new Ext4Error('EROFS', 'the filesystem is open read-only');
}

/**
 * Where the new content goes: namespace.ts blockGoal for the file as if it
 * had no blocks yet (the kernel truncates on O_TRUNC before it allocates:
 * ext4_inode_to_goal_block), or past `map`'s last block when continuing one.
 */
async function goalOf(tx: Transaction, inode: Inode, map: FileMap): Promise<number> {
  const last = map.extents[map.extents.length - 1];
  if (last) return last.physical + last.length;
  return blockGoal(tx, { ...inode, blocks512: 0 });
}

/** n blocks from `goal`: one run when a free run allows (the first ≥ n from the goal), else first-fit. */
async function allocateNear(tx: Transaction, goal: number, n: number, blockMapped: boolean): Promise<Run[]> {
  const exclude = blockMapped ? blockMapExclude(tx.fs.sb) : undefined;
  const [first] = await allocateBlocks(tx, { goal, length: n, contiguous: true, partial: true, exclude });
  if (first!.length >= n) return [first!];
  return [first!, ...(await allocateBlocks(tx, { goal: first!.start + first!.length, length: n - first!.length, exclude }))];
}

/** Queue `data` (logical block `lb` on) for `runs` as ordered data; the last block zero-padded. */
function queueData(tx: Transaction, runs: readonly Run[], data: Uint8Array, lb: number): Extent[] {
  const bs = tx.fs.blockSize;
  const out: Extent[] = [];
  let at = 0;
  for (const r of runs) {
    const bytes = r.length * bs;
    const part = data.subarray(at, at + bytes);
    // Whole blocks straight from the caller's bytes; only a partial last block is copied.
    const whole = part.length - (part.length % bs);
    if (whole) tx.writeData(r.start, part.subarray(0, whole));
    if (whole < bytes) {
      const tail = new Uint8Array(bs);
      tail.set(part.subarray(whole));
      tx.writeData(r.start + whole / bs, tail);
    }
    out.push({ logical: lb + at / bs, physical: r.start, length: r.length, unwritten: false });
    at += bytes;
  }
  return out;
}

async function loadRegular(tx: Transaction, ino: number): Promise<Inode> {
  const inode = await tx.readInode(ino);
  if (inode.type === 'dir') throw new Ext4Error('EISDIR', `inode ${ino} is a directory`);
  assertMutableRegularFile(inode, tx.fs.sb, 'file', { blockMapped: true });
  return inode;
}

/** The bytes of an inline-data file (i_block, then system.data), cut at i_size. */
async function inlineContent(tx: Transaction, inode: Inode): Promise<Uint8Array> {
  return (await readInlineData(tx, inode)).slice(0, inode.size);
}

/**
 * Content that fits the inode stays inline on an inline_data filesystem, as
 * the kernel keeps it (ext4_try_to_write_inline_data): for a file that is
 * inline already, or new and empty (EXT4_STATE_MAY_INLINE_DATA). True when done.
 */
async function writeInline(tx: Transaction, inode: Inode, data: Uint8Array): Promise<boolean> {
  if (!canInline(tx.fs, inode)) return false;
  if (!hasInlineData(inode) && (inode.size !== 0 || (await txFileMap(tx, inode)).extents.length !== 0)) return false;
  if (data.length > MIN_INLINE_SIZE + maxInlineValueSize(tx.fs, inode)) return false;
  await writeInlineData(tx, inode, data);
  return true;
}

/**
 * Set the whole content of regular file `ino` inside `tx`: new blocks written
 * as ordered data, mapped in place of the old ones (freed by this
 * transaction, so never reused inside it), size, mtime and ctime set. For
 * contents whose map fits one transaction (writeFile checks; a batch's small files).
 */
export async function writeFileTx(tx: Transaction, ino: number, data: Uint8Array, opts: { now?: Timestamp } = {}): Promise<void> {
  const fs = tx.fs, bs = fs.blockSize;
  const inode = await tx.readInode(ino);
  if (inode.type === 'file' && (await writeInline(tx, inode, data))) {
    markChanged(inode, opts.now ? toTimestamp(opts.now) : fs.now(), { mtime: true });
    await tx.writeInode(inode);
    return;
  }
  if (inode.type === 'file') await destroyInlineData(tx, inode);
  assertMutableRegularFile(inode, fs.sb, 'file', { blockMapped: true });
  if (data.length > maxFileSize(inode, bs)) throw new Ext4Error('EFBIG', `${data.length} bytes is past the maximum file size`);
  const old = await txFileMap(tx, inode);
  const n = Math.ceil(data.length / bs);
  const runs = n ? await allocateNear(tx, await goalOf(tx, inode, EMPTY_MAP), n, !isExtentMapped(inode)) : [];
  const extents = queueData(tx, runs, data, 0);
  await remapInode(tx, inode, old, extents);
  for (const e of old.extents) tx.free(e.physical, e.length);
  setSize(tx, inode, data.length);
  markChanged(inode, opts.now ? toTimestamp(opts.now) : fs.now(), { mtime: true });
  await tx.writeInode(inode);
}

const EMPTY_MAP: FileMap = { extents: [], metadataBlocks: [], depth: 0, kind: 'extents' };

/** Journal room for one transaction (Infinity without a journal), with a margin for the inode, descriptors, superblock. */
function txBudget(fs: Filesystem): number {
  const j = internals(fs).journal;
  return j ? j.maxTransactionBlocks() - 64 : Infinity;
}

/** Metadata blocks a whole replace touches, over-estimated: bitmaps of new and old groups, map blocks old and new. */
function replaceCost(fs: Filesystem, old: FileMap, bytes: number): number {
  const bs = fs.blockSize, bpg = fs.sb.s_blocks_per_group;
  const n = Math.ceil(bytes / bs);
  const oldGroups = new Set<number>();
  for (const e of old.extents) for (let g = groupOfBlock(fs.sb, e.physical); g <= groupOfBlock(fs.sb, e.physical + e.length - 1); g++) oldGroups.add(g);
  const newGroups = Math.ceil(n / bpg) + 2;
  // New map: an extent per contiguous run (at worst a run per group) or an indirect block per bs/4 blocks.
  const newMap = Math.ceil(n / (bs / 4)) + newGroups;
  return 2 * (oldGroups.size + newGroups) + old.metadataBlocks.length + newMap + 8;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Chunks of a Uint8Array or a stream, each at most `max` bytes (stream chunks are gathered up to it). */
async function* chunksOf(data: WriteFileData, max: number): AsyncGenerator<Uint8Array> {
  if (data instanceof Uint8Array) {
    for (let at = 0; at < data.length; at += max) yield data.subarray(at, at + max);
    return;
  }
  let parts: Uint8Array[] = [], held = 0;
  const flush = () => {
    const out = new Uint8Array(held);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    parts = [];
    held = 0;
    return out;
  };
  for await (const chunk of data) {
    if (!(chunk instanceof Uint8Array)) throw new Ext4Error('EINVAL', 'writeFile: a stream must yield Uint8Array chunks');
    let c = chunk;
    while (held + c.length >= max) {
      const take = max - held;
      parts.push(c.subarray(0, take));
      held += take;
      yield flush();
      c = c.subarray(take);
    }
    if (c.length) {
      parts.push(c.slice());
      held += c.length;
    }
  }
  if (held) yield flush();
}

/**
 * Build the content in an orphaned temporary inode (a transaction per
 * chunk), then in one transaction swap its map and size with the file's —
 * `target` names it inside that transaction: an existing inode, or the file
 * created there (createFileTx), so that a new name never shows an unfilled
 * file. The temporary inode leaves with the old blocks. Returns the file's inode.
 */
async function replaceViaTemp(fs: Filesystem, target: { ino: number } | { create: string | Uint8Array; opts: WriteFileOptions }, chunks: AsyncIterable<Uint8Array>, now: Timestamp | undefined): Promise<number> {
  const known = 'ino' in target ? await fs.readInode(target.ino) : null;
  // A new file's inode goes to its directory's group or near it (find_group_other), so the temporary one starts there.
  const tmp = await createTempFile(fs, { goalGroup: groupOfInode(fs.sb, known ? known.ino : await parentDirIno(fs, 'create' in target ? target.create : '/')) });
  let swapped = false;
  try {
    let size = 0;
    const bs = fs.blockSize;
    for await (const chunk of chunks) {
      if (size % bs) throw new Ext4Error('EINVAL', 'internal: temp-file chunks must be whole blocks but the last');
      await fs.transact(async (tx) => {
        const t = await tx.readInode(tmp);
        const map = await txFileMap(tx, t);
        const goal = await goalOf(tx, map.extents.length || !known ? t : known, map.extents.length ? map : EMPTY_MAP);
        const runs = await allocateNear(tx, goal, Math.ceil(chunk.length / bs), (known !== null && !isExtentMapped(known)) || !isExtentMapped(t));
        const added = queueData(tx, runs, chunk, size / bs);
        await remapInode(tx, t, map, [...map.extents, ...added]);
        setSize(tx, t, size + chunk.length);
        await tx.writeInode(t);
      });
      size += chunk.length;
    }
    const ino = await fs.transact(async (tx) => {
      const xi = 'ino' in target ? target.ino : await createFileTx(tx, target.create, createOpts(target.opts));
      const x = await tx.readInode(xi);
      if (x.type === 'file') await destroyInlineData(tx, x);
      assertMutableRegularFile(x, fs.sb, 'file', { blockMapped: true });
      const t = await tx.readInode(tmp);
      if (size > maxFileSize(x, bs)) throw new Ext4Error('EFBIG', `${size} bytes is past the maximum file size`);
      const xm = await txFileMap(tx, x), tm = await txFileMap(tx, t);
      const oldSize = x.size;
      await remapInode(tx, x, xm, tm.extents);
      await remapInode(tx, t, tm, xm.extents);
      setSize(tx, x, size);
      setSize(tx, t, oldSize);
      markChanged(x, now ? toTimestamp(now) : fs.now(), { mtime: true });
      await tx.writeInode(x);
      await tx.writeInode(t);
      return xi;
    });
    swapped = true;
    return ino;
  } finally {
    // Before the swap it holds the partial new content, after it the old: either way it goes.
    await releaseTempFile(fs, tmp).catch((e) => {
      if (swapped) throw e;
    });
  }
}

/**
 * The inode of the directory `path`'s last component goes in (as namespace.ts splits a path: a
 * bare name is in '/'); ENOENT/ENOTDIR before any content is written.
 */
async function parentDirIno(fs: Filesystem, path: string | Uint8Array): Promise<number> {
  const p = typeof path === 'string' ? new TextEncoder().encode(path) : path;
  let end = p.length;
  while (end > 0 && p[end - 1] === 0x2f) end--;
  const slash = p.subarray(0, end).lastIndexOf(0x2f);
  const parent = slash <= 0 ? new Uint8Array([0x2f]) : p.subarray(0, slash);
  const dir = await fs.resolve(parent, { followLast: true });
  if (dir.type !== 'dir') throw new Ext4Error('ENOTDIR', `${new TextDecoder().decode(parent)}: not a directory`);
  return dir.ino;
}

/** The file's inode if `path` names one (EEXIST with 'wx', EISDIR for a directory), else null. */
async function existing(fs: Filesystem, path: string | Uint8Array, opts: WriteFileOptions): Promise<number | null> {
  let ino: number;
  try {
    ino = (await fs.resolve(path, { followLast: true })).ino;
  } catch (e) {
    if (e instanceof Ext4Error && e.code === 'ENOENT') return null;
    throw e;
  }
  const what = typeof path === 'string' ? path : new TextDecoder().decode(path);
  if (opts.flag === 'wx') throw new Ext4Error('EEXIST', `${what}: file exists`);
  if ((await fs.readInode(ino)).type === 'dir') throw new Ext4Error('EISDIR', `${what}: is a directory`);
  return ino;
}

const createOpts = (opts: WriteFileOptions): CreateFileOptions => ({ exclusive: true, mode: opts.mode, uid: opts.uid, gid: opts.gid, now: opts.now });

/**
 * Replace the whole content of `path` (created if missing, mode/uid/gid
 * then used) with `data`; atomic as the header says. Returns the inode number.
 */
export async function writeFile(fs: Filesystem, path: string | Uint8Array, data: WriteFileData, opts: WriteFileOptions = {}): Promise<number> {
  checkWritable(fs);
  if (opts.flag === 'a') return appendFile(fs, path, data, opts);
  const ino = await existing(fs, path, opts);
  let bytes: Uint8Array | null = data instanceof Uint8Array ? data : null;
  let rest: AsyncIterator<Uint8Array> | null = null;
  if (!bytes) {
    // Buffer a stream up to bufferBytes: most fit, and then go the one-transaction way.
    const it = chunksOf(data, bufferOf(fs, opts))[Symbol.asyncIterator]();
    const first = await it.next();
    const second = first.done ? first : await it.next();
    if (second.done) bytes = first.done ? new Uint8Array(0) : first.value;
    else {
      const head = [first.value, second.value];
      rest = (async function* () {
        yield* head;
        for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
      })();
    }
  }
  if (bytes) {
    const b = bytes;
    const fits = await fs.exclusive(async () => {
      const map = ino === null ? EMPTY_MAP : await fs.fileMap(await fs.readInode(ino));
      return replaceCost(fs, map, b.length) <= txBudget(fs);
    });
    if (fits) {
      if (ino !== null) {
        await fs.transact((tx) => writeFileTx(tx, ino, b, opts));
        return ino;
      }
      // A new file: its name, inode and content in one transaction.
      return fs.transact(async (tx) => {
        const created = await createFileTx(tx, path, createOpts(opts));
        await writeFileTx(tx, created, b, opts);
        return created;
      });
    }
    rest = chunksOf(b, bufferOf(fs, opts))[Symbol.asyncIterator]();
  }
  const it = rest!;
  return replaceViaTemp(fs, ino !== null ? { ino } : { create: path, opts }, { [Symbol.asyncIterator]: () => it }, opts.now);
}

/**
 * Append `data` at the end of `path`: each chunk one transaction (pwrite at
 * EOF; an empty file takes the writeFile path so its blocks go to its goal).
 * A missing file is created in the first chunk's transaction, so it never
 * appears empty (an empty `data` creates it empty). Returns the inode number.
 */
export async function appendFile(fs: Filesystem, path: string | Uint8Array, data: WriteFileData, opts: Omit<WriteFileOptions, 'flag'> = {}): Promise<number> {
  checkWritable(fs);
  let ino = await existing(fs, path, { ...opts, flag: 'w' });
  for await (const chunk of chunksOf(data, bufferOf(fs, opts))) {
    if (chunk.length === 0) continue;
    if (ino === null) {
      ino = await fs.transact(async (tx) => {
        const created = await createFileTx(tx, path, createOpts(opts));
        await writeFileTx(tx, created, chunk, opts);
        return created;
      });
      continue;
    }
    const target = ino;
    await fs.transact(async (tx) => {
      const inode = await tx.readInode(target);
      // An inline file is tiny: its content and the chunk go to blocks together.
      if (inode.type === 'file' && hasInlineData(inode)) await writeFileTx(tx, target, concat(await inlineContent(tx, inode), chunk), opts);
      else if (inode.size === 0 && (await txFileMap(tx, await loadRegular(tx, target))).extents.length === 0) await writeFileTx(tx, target, chunk, opts);
      else {
        await pwriteTx(tx, target, chunk, inode.size, false);
        if (opts.now) {
          const i = await tx.readInode(target);
          markChanged(i, toTimestamp(opts.now), { mtime: true, version: false });
          await tx.writeInode(i);
        }
      }
    });
  }
  return ino ?? createFile(fs, path, createOpts(opts));
}
