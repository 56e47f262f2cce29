/**
 * An fs-like file API over an open Filesystem: handles with pread, pwrite
 * and truncate, safe to use from many concurrent async callers while the
 * proposal's calls run (every call is serialised with the writers, so a
 * read never sees a half-moved file and no write is lost).
 *
 * pwrite follows the kernel's ordered mode: bytes for newly allocated or
 * unwritten blocks are written and flushed before the transaction that maps
 * them commits; overwrites of written blocks go in place.
 */
import { Ext4Error } from '../errors.js';
import type { Filesystem } from '../ext4/filesystem.js';
import type { Transaction } from '../ext4/transaction.js';
import type { Inode } from '../ext4/inode.js';
import { allocateBlocks } from '../ext4/alloc.js';
import { insert, mappedIn, markWritten, punch } from '../ext4/extent-map.js';
import { assertMutableRegularFile, remapInode, setSize, touch, txFileMap } from '../ext4/remap.js';
import type { Extent } from '../ext4/extents.js';
import { resolveTarget, type FileRef } from './target.js';

export interface FileStat {
  ino: number;
  size: number;
  mode: number;
  blocks: number;
  mtime: { sec: number; nsec: number };
  ctime: { sec: number; nsec: number };
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

  /** Write `data` at `position`, allocating as needed; extends the size. Returns bytes written. */
  async pwrite(data: Uint8Array, position: number): Promise<number> {
    if (!Number.isSafeInteger(position) || position < 0) throw new Ext4Error('EINVAL', `bad position ${position}`);
    if (data.length === 0) return 0;
    return this.fs.transact(async (tx) => {
      await pwriteTx(tx, this.ino, data, position);
      return data.length;
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
  assertMutableRegularFile(inode, tx.fs.sb);
  return inode;
}

async function pwriteTx(tx: Transaction, ino: number, data: Uint8Array, position: number): Promise<void> {
  const fs = tx.fs;
  const bs = fs.blockSize;
  const inode = await loadForWrite(tx, ino);
  const map = await txFileMap(tx, inode);
  const end = position + data.length;
  const lb0 = Math.floor(position / bs), lb1 = Math.ceil(end / bs);
  if (lb1 > 2 ** 32 - 1) throw new Ext4Error('EFBIG', 'write past the maximum file size');
  let list: Extent[] = map.extents;
  // The bytes of block lb after this write (read-modify-write for partial written blocks).
  const blockImage = async (lb: number, old: Extent | null): Promise<Uint8Array> => {
    const img = new Uint8Array(bs);
    const fileOff = lb * bs;
    const s = Math.max(position, fileOff), t = Math.min(end, fileOff + bs);
    const partial = s > fileOff || t < fileOff + bs;
    if (partial && old && !old.unwritten) img.set(await fs.readDataBlocks(old.physical + (lb - old.logical), 1));
    img.set(data.subarray(s - position, t - position), s - fileOff);
    return img;
  };
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
    // Unwritten: durable before the conversion commits. Written: a plain
    // overwrite in place, also queued (not written now) so that an operation
    // that fails later (ENOSPC, corruption) writes nothing at all.
    tx.writeData(m.physical, img);
    if (m.unwritten) list = markWritten(list, lb, run);
    lb += run;
  }
  for (const h of holes) {
    const prev = list.filter((e) => e.logical < h.lb).pop();
    const goal = prev ? prev.physical + (h.lb - prev.logical) : 0;
    const runs = await allocateBlocks(tx, { goal, length: h.length });
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
  const fs = tx.fs;
  const bs = fs.blockSize;
  const inode = await loadForWrite(tx, ino);
  const map = await txFileMap(tx, inode);
  const keep = Math.ceil(size / bs);
  let list = map.extents;
  if (size < inode.size || list.some((e) => e.logical + e.length > keep)) {
    const { list: rest, removed } = punch(list, keep, 2 ** 32 - keep);
    for (const r of removed) tx.free(r.physical, r.length);
    list = rest;
    // Zero the tail of the last partial block so a later extension reads zeros (kernel: ext4_block_truncate_page).
    if (size % bs) {
      const [last] = mappedIn(list, keep - 1, 1);
      if (last && !last.unwritten) {
        const blk = await fs.readDataBlocks(last.physical, 1);
        blk.fill(0, size % bs);
        tx.writeData(last.physical, blk); // written with the transaction's ordered data, only if it commits
      }
    }
  }
  await remapInode(tx, inode, map, list);
  setSize(tx, inode, size);
  touch(tx, inode, { mtime: true });
  await tx.writeInode(inode);
}
