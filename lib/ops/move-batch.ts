/**
 * moveFiles — move many files' blocks to given places, as few journaled
 * transactions as the journal allows: the batch form of the defragmenter's
 * "allocate into a donor + movedata" (the donor only carries a reservation
 * from one transaction to the next; inside one transaction the reservation
 * is the bitmap itself, so no donor is needed).
 *
 * One transaction takes files in order while its estimated log stays under
 * the journal's limit (a quarter of the log, the kernel's rule): for each
 * file the target runs are allocated exactly, the file's map is rewritten to
 * them, its old blocks are freed (at finalise: never reused inside the same
 * transaction), and its bytes are copied old → new as ordered data, written
 * by the commit once the journal accepted the transaction and flushed with
 * the log, before the commit block. A crash before the commit block leaves
 * every file of the batch on its old blocks (the copies went to blocks that
 * were free); after it, every file reads its new blocks, which hold the
 * copy. So each file reads old or new at every point, and a rerun simply
 * plans again. One flush pair per transaction, not per file.
 *
 * Without a journal commit.ts's in-place order applies (new blocks claimed
 * in the bitmaps, then the inodes, then the frees): a crash can only leak
 * the new blocks, which e2fsck reclaims.
 *
 * A move whose file changed since it was planned (`expect`), whose target is
 * not free, or that is invalid fails alone (its result carries the error);
 * the others go on. A target that reuses blocks freed earlier in the batch
 * starts a new transaction (freed blocks are reusable once their freeing
 * transaction committed), and so does a second move of the same file.
 */
import { Ext4Error, isExt4Error } from '../errors.js';
import type { Filesystem } from '../ext4/filesystem.js';
import type { Transaction } from '../ext4/transaction.js';
import { findFree, markAllocated } from '../ext4/alloc.js';
import { produceOrderedData } from '../ext4/commit.js';
import { insert, mappedIn, punch } from '../ext4/extent-map.js';
import { assertMutableRegularFile, remapInode, touch, txFileMap } from '../ext4/remap.js';
import type { Extent } from '../ext4/extents.js';
import type { Inode } from '../ext4/inode.js';
import type { FileMap } from '../ext4/file-map.js';
import { groupOfBlock } from '../ext4/geometry.js';
import { internals } from '../ext4/internals.js';
import { copyRuns, type Copy } from './copy-runs.js';

export interface FileMove {
  /** The file's inode (a regular, extent-mapped file). */
  ino: number;
  /**
   * Where its mapped blocks go, in logical order (blocks): the runs' total
   * must equal the blocks mapped in the range. Holes stay holes, unwritten
   * blocks stay unwritten. Every block must be free now.
   */
  target: readonly { start: number; length: number }[];
  /** Logical range moved, in blocks (default: [0, ceil(size / blockSize))). */
  logical?: number;
  length?: number;
  /**
   * The file's extents in the range as the planner saw them: if the map
   * differs now, the move fails with ESTALE and nothing of it is done.
   */
  expect?: readonly Extent[];
}

export interface MoveResult {
  ino: number;
  moved: boolean;
  /** Bytes copied (written blocks only). */
  bytes: number;
  /** Why the move was not made (ESTALE, ENOSPC: target not free, EINVAL, ENOENT, EPERM, EOPNOTSUPP, E2BIG). */
  error?: Ext4Error;
}

export interface MoveFilesOptions {
  /** Most files per transaction (default 4096). */
  maxFiles?: number;
  /** Most bytes copied per transaction (default 256 MiB: what a crash can make redo). */
  maxBytes?: number;
  /** After each committed transaction: the results so far for its moves. */
  onCommit?(done: readonly MoveResult[]): void;
}

/** A move's plan, once checked against the transaction's view. */
interface Checked {
  inode: Inode;
  map: FileMap;
  newExtents: Extent[];
  freed: Extent[];
  copies: Copy[];
  runs: { start: number; length: number }[];
}

/** Failure of one move inside a transaction (the transaction is retried without it). */
class MoveFailed extends Error {
  constructor(readonly index: number, override readonly cause: Ext4Error) {
    super(cause.message);
  }
}

/** Per-move errors that concern that file only; anything else (corruption, I/O) ends the batch. */
const PER_FILE = new Set(['ESTALE', 'ENOSPC', 'EINVAL', 'ENOENT', 'EPERM', 'EOPNOTSUPP', 'EEXIST', 'EFBIG']);

function overlaps(a: { start: number; length: number }, b: { start: number; length: number }): boolean {
  return a.start < b.start + b.length && b.start < a.start + a.length;
}

/** Pure checks and the new map: the file's extents in the range laid onto the target runs in order. */
export function layOut(extents: readonly Extent[], lb: number, n: number, target: readonly { start: number; length: number }[]): { newExtents: Extent[]; freed: Extent[]; copies: Copy[] } {
  const parts = mappedIn(extents, lb, n);
  const need = parts.reduce((a, e) => a + e.length, 0);
  const have = target.reduce((a, r) => a + r.length, 0);
  if (need !== have) throw new Ext4Error('EINVAL', `target holds ${have} blocks, the range maps ${need}`);
  const sorted = [...target].sort((a, b) => a.start - b.start);
  for (let i = 0; i < sorted.length; i++) {
    const r = sorted[i]!;
    if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.length) || r.length <= 0 || r.start < 0) throw new Ext4Error('EINVAL', `bad target run ${r.start}+${r.length}`);
    if (i > 0 && overlaps(sorted[i - 1]!, r)) throw new Ext4Error('EINVAL', `target runs overlap at block ${r.start}`);
    for (const e of extents) if (overlaps({ start: e.physical, length: e.length }, r)) throw new Ext4Error('EINVAL', `target run ${r.start}+${r.length} overlaps the file's own blocks`);
  }
  const added: Extent[] = [];
  const copies: Copy[] = [];
  let ti = 0, toff = 0;
  for (const p of parts) {
    let done = 0;
    while (done < p.length) {
      const t = target[ti]!;
      const k = Math.min(p.length - done, t.length - toff);
      added.push({ logical: p.logical + done, physical: t.start + toff, length: k, unwritten: p.unwritten });
      if (!p.unwritten) copies.push({ from: p.physical + done, to: t.start + toff, length: k });
      done += k;
      toff += k;
      if (toff === t.length) (ti++, (toff = 0));
    }
  }
  const { list, removed } = punch(extents, lb, n);
  return { newExtents: insert(list, added), freed: removed, copies };
}

function sameExtents(a: readonly Extent[], b: readonly Extent[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((e, i) => e.logical === b[i]!.logical && e.physical === b[i]!.physical && e.length === b[i]!.length && !!e.unwritten === !!b[i]!.unwritten);
}

/** Check one move against the transaction's view and reserve its target (nothing is marked if it fails). */
async function checkAndReserve(tx: Transaction, m: FileMove): Promise<Checked> {
  const fs = tx.fs;
  const inode = await tx.readInode(m.ino);
  assertMutableRegularFile(inode, fs.sb, 'file');
  const map = await txFileMap(tx, inode);
  const lb = m.logical ?? 0;
  const n = m.length ?? Math.ceil(inode.size / fs.blockSize) - lb;
  if (!Number.isSafeInteger(lb) || !Number.isSafeInteger(n) || lb < 0 || n < 0) throw new Ext4Error('EINVAL', `bad range ${lb}+${n}`);
  if (m.expect && !sameExtents(mappedIn(map.extents, lb, n), mappedIn(m.expect, lb, n)))
    throw new Ext4Error('ESTALE', `inode ${m.ino}'s map changed since the move was planned`, { structure: `inode ${m.ino}`, location: { kind: 'inode', ino: m.ino } });
  const plan = layOut(map.extents, lb, n, m.target);
  // Every target run must be free as of this transaction, and not freed by it (a freed block is
  // reusable only once the freeing transaction is durable): checked before any bit is set.
  for (const r of m.target) {
    if (tx.pendingFree.some((p) => overlaps(p, r))) throw new Ext4Error('EBUSY', `target ${r.start}+${r.length} was freed in this transaction`);
    const got = await findFree(tx, { goal: r.start, length: r.length, exact: true, contiguous: true });
    if (got.length !== 1 || got[0]!.start !== r.start || got[0]!.length < r.length) throw new Ext4Error('ENOSPC', `target ${r.start}+${r.length} is not free`, { location: { kind: 'block', block: r.start } });
  }
  await markAllocated(tx, m.target);
  return { inode, map, ...plan, runs: [...m.target] };
}

/** Log blocks a transaction will need at most, beyond its blocks so far: bitmaps and descriptors its frees touch, superblock, journal overhead. */
function estimate(tx: Transaction, bs: number): number {
  const groups = new Set<number>();
  for (const f of tx.pendingFree) groups.add(groupOfBlock(tx.fs.sb, f.start)), groups.add(groupOfBlock(tx.fs.sb, f.start + f.length - 1));
  // (descriptor blocks are folded in at finalise: one per touched group at most)
  const blocks = tx.blocks.size + tx.groups.size + 2 * groups.size + 2;
  // descriptor blocks (tags of 16 bytes at most) and the commit block
  return blocks + Math.ceil(blocks / Math.floor(bs / 16 - 2)) + 1;
}

/** Blocks one more file may add (inode-table block, 2 bitmaps, 2 descriptor blocks, its tree path). */
const PER_FILE_SLACK = 8;

/**
 * Move files' blocks to their targets (see the module comment). Returns one
 * result per move, in order. Throws only for what is not one file's
 * business (corruption, I/O, a read-only filesystem).
 */
export async function moveFiles(fs: Filesystem, moves: readonly FileMove[], opts: MoveFilesOptions = {}): Promise<MoveResult[]> {
  if (fs.readOnly) throw new Ext4Error('EROFS', 'the filesystem is open read-only');
  const bs = fs.blockSize;
  const results: MoveResult[] = moves.map((m) => ({ ino: m.ino, moved: false, bytes: 0 }));
  const journal = internals(fs).journal;
  let limit = journal ? journal.maxTransactionBlocks() : Infinity;
  let maxFiles = opts.maxFiles ?? 4096;
  const maxBytes = opts.maxBytes ?? 256 * 1024 * 1024;
  const failed = new Set<number>();
  let i = 0;
  while (i < moves.length) {
    if (failed.has(i)) {
      i++;
      continue;
    }
    let end = i;
    try {
      end = await fs.transact(async (tx) => {
        const copies: Copy[] = [];
        const taken: { index: number; c: Checked }[] = [];
        const inos = new Set<number>();
        let copyBlocks = 0;
        let j = i;
        // 1. check and reserve every target first: a tree block allocated for one file must not
        //    land on a later file's target
        for (; j < moves.length && taken.length < maxFiles; j++) {
          if (failed.has(j)) continue;
          const m = moves[j]!;
          if (taken.length && (estimate(tx, bs) + PER_FILE_SLACK + (m.expect?.length ?? 0) > limit || copyBlocks * bs >= maxBytes)) break;
          if (taken.length && m.target.some((r) => tx.pendingFree.some((p) => overlaps(p, r)))) break; // reuses this batch's frees: next transaction
          // A file moved twice: its second move is checked and remapped from the map its first
          // one writes, so it goes in the next transaction (else the second remap, built from the
          // old map, would undo the first while its old blocks are freed).
          if (inos.has(m.ino)) break;
          let c: Checked;
          try {
            c = await checkAndReserve(tx, m);
          } catch (e) {
            if (isExt4Error(e) && (PER_FILE.has(e.code) || e.code === 'EBUSY')) throw new MoveFailed(j, e);
            throw e;
          }
          // the frees are queued now so that the estimate and later targets see them
          for (const f of c.freed) tx.free(f.physical, f.length);
          taken.push({ index: j, c });
          inos.add(m.ino);
          copies.push(...c.copies);
          copyBlocks += c.copies.reduce((a, x) => a + x.length, 0);
        }
        // 2. the new maps
        for (const { index, c } of taken) {
          try {
            await remapInode(tx, c.inode, c.map, c.newExtents);
            touch(tx, c.inode);
            await tx.writeInode(c.inode);
          } catch (e) {
            if (isExt4Error(e) && PER_FILE.has(e.code)) throw new MoveFailed(index, e);
            throw e;
          }
        }
        // 3. the copy, written by the commit as ordered data once the journal accepted the size
        if (copies.length) produceOrderedData(tx, () => copyRuns(fs, copies));
        for (const { index, c } of taken) {
          results[index] = { ino: moves[index]!.ino, moved: true, bytes: c.copies.reduce((a, x) => a + x.length, 0) * bs };
        }
        return j;
      });
      opts.onCommit?.(results.slice(i, end));
      i = end;
    } catch (e) {
      // results[] of a transaction that did not commit must not say "moved"
      for (let k = i; k < moves.length; k++) if (!failed.has(k)) results[k] = { ino: moves[k]!.ino, moved: false, bytes: 0 };
      if (e instanceof MoveFailed) {
        if (e.cause.code === 'EBUSY' && e.index !== i) continue; // (cannot happen: the batch breaks first)
        failed.add(e.index);
        results[e.index] = { ino: moves[e.index]!.ino, moved: false, bytes: 0, error: e.cause };
        continue;
      }
      if (isExt4Error(e) && e.code === 'E2BIG') {
        // the estimate was short for these trees: fewer files per transaction
        if (maxFiles > 1) {
          maxFiles = Math.max(1, Math.min(maxFiles, end - i || maxFiles) >> 1);
          limit = Math.floor(limit * 0.75);
          continue;
        }
        failed.add(i);
        results[i] = { ino: moves[i]!.ino, moved: false, bytes: 0, error: e };
        continue;
      }
      throw e;
    }
  }
  return results;
}
