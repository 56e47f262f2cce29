/**
 * An fs-like file API over an open Filesystem: handles with pread, pwrite
 * and truncate, safe to use from many concurrent async callers while the
 * proposal's calls run (every call is serialised with the writers, so a
 * read never sees a half-moved file and no write is lost).
 *
 * pwrite follows the kernel's ordered mode: bytes for newly allocated or
 * unwritten blocks are written and flushed before the transaction that maps
 * them commits; overwrites of written blocks go in place.
 *
 * What a crash can leave (test/crash/truncate.test.ts, pwrite-overwrite.test.ts):
 *  - size changes (truncate up or down, pwrite past EOF) and writes into
 *    holes, unwritten blocks or past EOF are all-or-nothing: the old size,
 *    map and bytes, or the new ones;
 *  - an overwrite of blocks that already hold data goes in place, as the
 *    kernel's data=ordered overwrite: until the commit each such block holds
 *    its old or its new bytes (a block the device writes in pieces, each
 *    piece); after it, all new.
 *  - punchHole frees whole blocks all-or-nothing; the partial blocks at its
 *    edges are zeroed in place before the commit (each such byte old or zero).
 * Bytes past EOF in the last block are kept zero on disk, as the kernel
 * expects when it grows a file: truncate down zeroes them only once the new
 * size is committed (before, they are live bytes), and growing a file zeroes
 * whatever stale bytes are there, in the same transaction as the new size.
 *
 * Block-mapped files (ext2/ext3) take the same calls: maps change through
 * remapInode (indirect blocks), sizes and frees through inode-lifecycle.ts
 * like extent files. A block map has no unwritten blocks, so a write into a
 * hole allocates and writes whole blocks (zeros around the data).
 */
import { Ext4Error } from '../errors.js';
import type { Filesystem } from '../ext4/filesystem.js';
import type { Transaction } from '../ext4/transaction.js';
import { hasInlineData, isExtentMapped, type Inode } from '../ext4/inode.js';
import { pwriteInlineFile, truncateInlineFile } from '../ext4/inline-data.js';
import { allocateBlocks } from '../ext4/alloc.js';
import { insert, mappedIn, markWritten, punch } from '../ext4/extent-map.js';
import { assertMutableRegularFile, blockMapExclude, remapInode, setSize, touch, txFileMap } from '../ext4/remap.js';
import type { Extent } from '../ext4/extents.js';
import { maxFileSize, punchRange, truncateInode, zeroTail } from '../ext4/inode-lifecycle.js';
import { resolveTarget, type FileRef } from './target.js';

export interface FileStat {
  ino: number;
  size: number;
  mode: number;
  blocks: number;
  mtime: { sec: number; nsec: number };
  ctime: { sec: number; nsec: number };
}

export interface PwriteOptions {
  /** All-or-nothing at a crash also over existing data (copy-on-write into new blocks). Default false. */
  atomic?: boolean;
}

export class FileHandle {
  readonly fs: Filesystem;
  readonly ino: number;

  constructor(fs: Filesystem, ino: number) {
    this.fs = fs;
    this.ino = ino;
  }

  async stat(): Promise<FileStat> {
    return this.fs.exclusive(async () => {
      const i = await this.fs.readInode(this.ino);
      return { ino: i.ino, size: i.size, mode: i.mode, blocks: i.blocks512, mtime: i.mtime, ctime: i.ctime };
    });
  }

  /** Read up to `length` bytes at `position` (short at EOF). */
  async pread(position: number, length: number): Promise<Uint8Array> {
    return this.fs.exclusive(async () => this.fs.read(await this.fs.readInode(this.ino), position, length));
  }

  /**
   * Write `data` at `position`, allocating as needed; extends the size. Returns bytes written.
   * `atomic`: blocks that already hold data are not overwritten in place but replaced by new
   * blocks in the same transaction (copy-on-write), so a crash leaves all old or all new bytes;
   * it costs free space for the range and moves those blocks (the write must fit one transaction).
   */
  async pwrite(data: Uint8Array, position: number, opts: PwriteOptions = {}): Promise<number> {
    if (!Number.isSafeInteger(position) || position < 0) throw new Ext4Error('EINVAL', `bad position ${position}`);
    if (data.length === 0) return 0;
    return this.fs.transact(async (tx) => {
      await pwriteTx(tx, this.ino, data, position, opts.atomic === true);
      return data.length;
    });
  }

  /**
   * Deallocate bytes [position, position + length) keeping the size (fallocate
   * PUNCH_HOLE | KEEP_SIZE): they read as zeros afterwards; whole blocks in
   * the range are freed, partial ones zeroed in place. Nothing past EOF changes.
   */
  async punchHole(position: number, length: number): Promise<void> {
    if (!Number.isSafeInteger(position) || position < 0) throw new Ext4Error('EINVAL', `bad position ${position}`);
    if (!Number.isSafeInteger(length) || length < 0) throw new Ext4Error('EINVAL', `bad length ${length}`);
    if (length === 0) return;
    await this.fs.transact(async (tx) => {
      const inode = await loadForWrite(tx, this.ino);
      await punchRange(tx, inode, position, length);
      touch(tx, inode, { mtime: true });
      await tx.writeInode(inode);
    });
  }

  /** Set the size: shrinking releases blocks past the new end and zeroes the tail of the last block. */
  async truncate(size: number): Promise<void> {
    if (!Number.isSafeInteger(size) || size < 0) throw new Ext4Error('EINVAL', `bad size ${size}`);
    await this.fs.transact(async (tx) => truncateTx(tx, this.ino, size));
  }
}

export async function openFile(fs: Filesystem, ref: FileRef): Promise<FileHandle> {
  const ino = await resolveTarget(fs, ref);
  const inode = await fs.readInode(ino);
  if (inode.type !== 'file') throw new Ext4Error(inode.type === 'dir' ? 'EISDIR' : 'EINVAL', `inode ${ino} is not a regular file`);
  return new FileHandle(fs, ino);
}

async function loadForWrite(tx: Transaction, ino: number): Promise<Inode> {
  const inode = await tx.readInode(ino);
  // Block-mapped (ext2/ext3) files too: every map change goes through remapInode.
  assertMutableRegularFile(inode, tx.fs.sb, 'file', { blockMapped: true });
  return inode;
}

/** FileHandle.pwrite's body inside a caller's transaction (write-file.ts appends with it). */
export async function pwriteTx(tx: Transaction, ino: number, data: Uint8Array, position: number, atomic: boolean): Promise<void> {
  const fs = tx.fs;
  const bs = fs.blockSize;
  const held = await tx.readInode(ino);
  if (held.type === 'file' && hasInlineData(held)) {
    // An inline file (inline_data) takes the write in its inode, or moves to a block first (ext4_write_begin).
    const rest = await pwriteInlineFile(tx, held, data, position);
    if (!rest) touch(tx, held, { mtime: true });
    await tx.writeInode(held);
    if (!rest) return;
    ({ data, position } = rest);
  }
  const inode = await loadForWrite(tx, ino);
  const map = await txFileMap(tx, inode);
  const end = position + data.length;
  const lb0 = Math.floor(position / bs), lb1 = Math.ceil(end / bs);
  if (end > maxFileSize(inode, bs)) throw new Ext4Error('EFBIG', 'write past the maximum file size');
  let list: Extent[] = map.extents;
  // A block map holds 32-bit block numbers only.
  const exclude = isExtentMapped(inode) ? undefined : blockMapExclude(fs.sb);
  const oldSize = inode.size;
  // The bytes of block lb after this write (read-modify-write for partial written blocks;
  // bytes past the old EOF are stale, never data: they read as zeros from now on).
  const blockImage = async (lb: number, old: Extent | null): Promise<Uint8Array> => {
    const img = new Uint8Array(bs);
    const fileOff = lb * bs;
    const s = Math.max(position, fileOff), t = Math.min(end, fileOff + bs);
    const partial = s > fileOff || t < fileOff + bs;
    if (partial && old && !old.unwritten && fileOff < oldSize) {
      img.set(await fs.readDataBlocks(old.physical + (lb - old.logical), 1));
      if (oldSize < fileOff + bs) img.fill(0, oldSize - fileOff);
    }
    img.set(data.subarray(s - position, t - position), s - fileOff);
    return img;
  };
  // Growing the file past an old EOF block this write does not touch: zero that block's stale tail.
  if (end > oldSize && oldSize % bs && Math.floor(oldSize / bs) < lb0) await zeroTail(tx, list, oldSize, 'ordered');
  const holes: { lb: number; length: number }[] = [];
  for (let lb = lb0; lb < lb1; ) {
    const [m] = mappedIn(list, lb, 1);
    if (!m) {
      let n = 1;
      while (lb + n < lb1 && mappedIn(list, lb + n, 1).length === 0) n++;
      holes.push({ lb, length: n });
      lb += n;
      continue;
    }
    const run = Math.min(lb1 - lb, mappedIn(list, lb, lb1 - lb)[0]!.length);
    // Build the run's image block by block only at its partial edges.
    const img = new Uint8Array(run * bs);
    for (let i = 0; i < run; i++) {
      const b = lb + i;
      const fileOff = b * bs;
      if (fileOff >= position && fileOff + bs <= end) img.set(data.subarray(fileOff - position, fileOff - position + bs), i * bs);
      else img.set(await blockImage(b, m), i * bs);
    }
    const phys = m.physical + (lb - m.logical);
    if (atomic && !m.unwritten) {
      // Copy-on-write: the new bytes go to new blocks (ordered data), the map swaps to them and
      // the old blocks are freed in this transaction — old bytes or new at any crash point.
      const runs = await allocateBlocks(tx, { goal: phys, length: run, exclude });
      let at = lb;
      const added: Extent[] = [];
      for (const r of runs) {
        tx.writeData(r.start, img.subarray((at - lb) * bs, (at - lb + r.length) * bs));
        added.push({ logical: at, physical: r.start, length: r.length, unwritten: false });
        at += r.length;
      }
      list = insert(punch(list, lb, run).list, added);
      tx.free(phys, run);
    } else {
      // Unwritten: durable before the conversion commits. Written: a plain
      // overwrite in place, also queued (not written now) so that an operation
      // that fails later (ENOSPC, corruption) writes nothing at all.
      tx.writeData(phys, img);
      if (m.unwritten) list = markWritten(list, lb, run);
    }
    lb += run;
  }
  for (const h of holes) {
    const prev = list.filter((e) => e.logical < h.lb).pop();
    const goal = prev ? prev.physical + (h.lb - prev.logical) : 0;
    const runs = await allocateBlocks(tx, { goal, length: h.length, exclude });
    let lb = h.lb;
    const added: Extent[] = [];
    for (const r of runs) {
      const img = new Uint8Array(r.length * bs);
      for (let i = 0; i < r.length; i++) img.set(await blockImage(lb + i, null), i * bs);
      tx.writeData(r.start, img);
      added.push({ logical: lb, physical: r.start, length: r.length, unwritten: false });
      lb += r.length;
    }
    list = insert(list, added);
  }
  await remapInode(tx, inode, map, list);
  if (end > inode.size) setSize(tx, inode, end);
  touch(tx, inode, { mtime: true });
  await tx.writeInode(inode);
}

async function truncateTx(tx: Transaction, ino: number, size: number): Promise<void> {
  const held = await tx.readInode(ino);
  // An inline file (inline_data) is cut in its inode, or moved to a block when it grows (ext4_setattr);
  // either sets the size (the limit is checked on the extent form; a throw drops the transaction).
  const inline = held.type === 'file' && hasInlineData(held);
  const inode = inline ? held : await loadForWrite(tx, ino);
  if (inline) await truncateInlineFile(tx, inode, size);
  if (size > maxFileSize(inode, tx.fs.blockSize)) throw new Ext4Error('EFBIG', `size ${size} is past the maximum file size`);
  if (!inline) await truncateInode(tx, inode, size);
  touch(tx, inode, { mtime: true });
  await tx.writeInode(inode);
}
