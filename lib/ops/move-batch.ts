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
 * The moves run in waves (lib/ops/move-schedule.ts), not in list order: a
 * move waits only for the earlier moves it depends on — those freeing blocks
 * it takes (freed blocks are reusable once their freeing transaction
 * committed), an earlier move of the same file, a move whose blocks it
 * touches at all — so a plan that is a chain in list order still packs its
 * independent moves together: one transaction per chunk of a wave, not one
 * per move. A file's moves keep their order.
 *
 * A move whose file changed since it was planned (`expect`), whose target is
 * not free, or that is invalid fails alone (its result carries the error);
 * the others go on and meet their own checks as they would in list order (a
 * move planned on a failed one's result fails ESTALE or ENOSPC by itself; on
 * a rerun, where the failed one had been done already, it succeeds).
 */
import { Ext4Error, isExt4Error } from '../errors.js';
import type { Filesystem } from '../ext4/filesystem.js';
import type { Transaction } from '../ext4/transaction.js';
import { findFree, markAllocated } from '../ext4/alloc.js';
import { produceOrderedData } from '../ext4/commit.js';
import { insert, mappedIn, maxLen, normalise, punch } from '../ext4/extent-map.js';
import { assertMutableRegularFile, blockMapExclude, remapInode, touch, txFileMap } from '../ext4/remap.js';
import type { Extent } from '../ext4/extents.js';
import { isExtentMapped, type Inode } from '../ext4/inode.js';
import type { FileMap } from '../ext4/file-map.js';
import { groupOfBlock } from '../ext4/geometry.js';
import { internals } from '../ext4/internals.js';
import { COPY_CHUNK, copyChunks, startCopy, type Copy } from './copy-runs.js';
import { ROOT_CAPACITY } from '../ext4/extent-tree.js';
import { scheduleMoves, type BlockRun, type MoveFootprint, type Schedule } from './move-schedule.js';

/** A run of physical blocks. */
export interface BlockRange {
  startBlock: number;
  lengthBlocks: number;
}

export interface FileMove {
  /**
   * The file's inode: a regular file, extent-mapped or block-mapped (ext2/ext3: the pointers in
   * its indirect blocks are rewritten in place; the indirect blocks themselves stay).
   */
  ino: number;
  /**
   * Where its mapped blocks go, in logical order: the runs' total must equal
   * the blocks mapped in the range. Holes stay holes, unwritten blocks stay
   * unwritten. Every block must be free when the move runs (blocks an
   * earlier move of the same call frees are fine: it runs after that one).
   */
  target: readonly BlockRange[];
  /** First logical block moved (default 0). */
  logicalBlock?: number;
  /** Logical blocks moved (default: to ceil(size / blockSize)). */
  lengthBlocks?: number;
  /**
   * The file's extents in the range as the planner saw them: if the map
   * differs now, the move fails with ESTALE and nothing of it is done.
   */
  expect?: readonly Extent[];
  /**
   * When the move makes a file without an extent tree outgrow its inode:
   * the block its new leaf is expected at — the allocator's first free block
   * from the file's first new block, as of the moves before it (the
   * defragmenter's plan predicts it). The moves touching the blocks that
   * search reads keep their order around this one, and the move fails with
   * ESTALE (nothing of it done) if the leaf lands elsewhere.
   */
  treeBlock?: number;
}

/** A FileMove in the units the code below works in (runs as {start, length}, like layOut's). */
interface Move {
  ino: number;
  target: readonly { start: number; length: number }[];
  logical?: number;
  length?: number;
  expect?: readonly Extent[];
  treeBlock?: number;
}

function toMove(m: FileMove): Move {
  return { ino: m.ino, target: m.target.map((r) => ({ start: r.startBlock, length: r.lengthBlocks })), logical: m.logicalBlock, length: m.lengthBlocks, expect: m.expect, treeBlock: m.treeBlock };
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
  /** After each committed transaction: the results of its moves (in the order they ran). */
  onCommit?(done: readonly MoveResult[]): void;
  /** Asked before each transaction: true stops (the moves not made yet are returned unmoved, without an error). */
  stop?(): boolean;
  /**
   * The file as the caller read it in this open (the defragmenter's plan input): the scheduler
   * starts from it instead of reading the inode and its map again. Only the schedule's tightness
   * rests on it — every move is checked against the transaction's view when it runs.
   */
  known?(ino: number): KnownFile | undefined;
  /**
   * How long (ms) the call's transactions may follow one another before other callers queued
   * meanwhile get their turn (default 100; at most 16 transactions in any case).
   */
  holdMs?: number;
  /**
   * Each move's dependency wave as scheduleMoves gives these moves' footprints (the defragmenter's
   * plan schedules its steps as it makes them: Plan.waves), so the call need not read the files and
   * schedule them again (50–85 ms of a cold 90 % defrag). Only the grouping into transactions rests
   * on it, as with `known`: every move is checked in its transaction, and a move that takes blocks
   * its transaction frees starts the next one.
   */
  waves?: readonly number[];
}

/** A file's state for the scheduler: its whole map (past EOF too), tree blocks, size. */
export interface KnownFile {
  extents: readonly Extent[];
  treeBlocks: readonly number[];
  size: number;
  blockMapped: boolean;
}

/** A move's plan, once checked against the transaction's view. */
interface Checked {
  inode: Inode;
  map: FileMap;
  newExtents: Extent[];
  freed: Extent[];
  copies: Copy[];
  /** Targets taken for this file in this transaction (its earlier moves' too). */
  runs: { start: number; length: number }[];
  /** Where the new tree leaf must land (the move's treeBlock). */
  treeBlock?: number;
}

/** Failure of one move inside a transaction (the transaction is retried without it). */
class MoveFailed extends Error {
  /** index: the move; position: where it runs in the schedule (-1: found after the checks). */
  constructor(readonly index: number, override readonly cause: Ext4Error, readonly position: number) {
    super(cause.message);
  }
}

/** Per-move errors that concern that file only; anything else (corruption, I/O) ends the batch. */
const PER_FILE = new Set(['ESTALE', 'ENOSPC', 'EINVAL', 'ENOENT', 'EPERM', 'EOPNOTSUPP', 'EEXIST', 'EFBIG']);

function overlaps(a: { start: number; length: number }, b: { start: number; length: number }): boolean {
  return a.start < b.start + b.length && b.start < a.start + a.length;
}

/**
 * Pure checks and the new map: the file's extents in the range laid onto the target runs in order.
 * One pass over the extents, in logical order (the planner calls this for every step it models —
 * an eviction moves a file piece by piece — and moveFiles again for every move's footprint: the
 * punch-then-insert form, which sorted and copied the whole list twice per call, was most of a
 * 90 %-full plan's CPU).
 */
export function layOut(extents: readonly Extent[], lb: number, n: number, target: readonly { start: number; length: number }[]): { newExtents: Extent[]; freed: Extent[]; copies: Copy[] } {
  const end = lb + n;
  // one scan: the blocks the range maps, and whether the list is in normal form (strictly in
  // logical order, no overlap, none over-long, no neighbours normalise would merge) — then the
  // parts outside the range are kept as they are, not copied and normalised again. A list
  // layOut made itself is known normal: only the range is looked at.
  let need = 0, sortedIn = true, normal = true;
  if (normalLists.has(extents)) need = blocksIn(extents, lb, end);
  else for (let i = 0; i < extents.length; i++) {
    const e = extents[i]!;
    if (e.length > maxLen(e.unwritten)) normal = false;
    if (i > 0) {
      const a = extents[i - 1]!;
      if (a.logical >= e.logical) sortedIn = false;
      else if (a.logical + a.length > e.logical || mergeable(a, e)) normal = false;
    }
    const s = Math.max(lb, e.logical), t = Math.min(end, e.logical + e.length);
    if (s < t) need += t - s;
  }
  let have = 0;
  for (const r of target) have += r.length;
  if (need !== have) throw new Ext4Error('EINVAL', `target holds ${have} blocks, the range maps ${need}`);
  const sorted = [...target].sort((a, b) => a.start - b.start);
  for (let i = 0; i < sorted.length; i++) {
    const r = sorted[i]!;
    if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.length) || r.length <= 0 || r.start < 0) throw new Ext4Error('EINVAL', `bad target run ${r.start}+${r.length}`);
    if (i > 0 && overlaps(sorted[i - 1]!, r)) throw new Ext4Error('EINVAL', `target runs overlap at block ${r.start}`);
  }
  const ownOverlap = (r: { start: number; length: number }) => new Ext4Error('EINVAL', `target run ${r.start}+${r.length} overlaps the file's own blocks`);
  if (sorted.length * extents.length <= 4096) {
    // few targets (a step of the planner): a direct check, nothing sorted (indexed: in a fresh
    // process this runs interpreted, where for-of allocates an iterator result per element)
    for (let i = 0; i < sorted.length; i++) {
      const r = sorted[i]!;
      for (let k = 0; k < extents.length; k++) {
        const e = extents[k]!;
        if (e.physical < r.start + r.length && r.start < e.physical + e.length) throw ownOverlap(r);
      }
    }
  } else {
    // the file's own blocks, sorted, swept against the sorted targets (a scan of every extent per
    // target was quadratic for an eviction into hundreds of runs)
    const own = extents.map((e) => ({ start: e.physical, length: e.length })).sort((a, b) => a.start - b.start);
    for (let i = 0, j = 0; i < sorted.length; i++) {
      const r = sorted[i]!;
      while (j < own.length && own[j]!.start + own[j]!.length <= r.start) j++;
      for (let k = j; k < own.length && own[k]!.start < r.start + r.length; k++) if (overlaps(own[k]!, r)) throw ownOverlap(r);
    }
  }
  const copies: Copy[] = [];
  const freed: Extent[] = [];
  const out: Extent[] = [];
  let ti = 0, toff = 0;
  /** The mapped part p of the range onto the next target blocks, in logical order. */
  const place = (p: Extent): void => {
    let done = 0;
    while (done < p.length) {
      const t = target[ti]!;
      const k = Math.min(p.length - done, t.length - toff);
      out.push({ logical: p.logical + done, physical: t.start + toff, length: k, unwritten: p.unwritten });
      if (!p.unwritten) copies.push({ from: p.physical + done, to: t.start + toff, length: k });
      done += k;
      toff += k;
      if (toff === t.length) (ti++, (toff = 0));
    }
  };
  if (!sortedIn) {
    // (not in logical order: the general form)
    for (const p of mappedIn(extents, lb, n)) place(p);
    const added = out.splice(0);
    const { list, removed } = punch(extents, lb, n);
    return { newExtents: insert(list, added), freed: removed, copies };
  }
  if (normal) return layOutNormal(extents, lb, end, target, copies, freed);
  for (const e of extents) {
    const eEnd = e.logical + e.length;
    if (eEnd <= lb || e.logical >= end) {
      out.push({ ...e });
      continue;
    }
    if (e.logical < lb) out.push({ ...e, length: lb - e.logical });
    const s = Math.max(lb, e.logical), t = Math.min(end, eEnd);
    const part = { logical: s, physical: e.physical + (s - e.logical), length: t - s, unwritten: e.unwritten };
    freed.push(part);
    place(part);
    if (eEnd > end) out.push({ logical: end, physical: e.physical + (end - e.logical), length: eEnd - end, unwritten: e.unwritten });
  }
  return { newExtents: normalise(out), freed, copies };
}

/**
 * Extent lists in normal form that layOut returned: the next layOut of the same file's list (the
 * planner evicts a file piece by piece and prices every candidate; the executor's footprints
 * replay the plan) skips the scan of the whole list, which a fresh process runs interpreted
 * (bench/defrag 90 %: layOut was ~40 ms of its CPU, cold). Nobody writes into these lists:
 * extents are values, and the planner and the executor only replace a file's list.
 */
const normalLists = new WeakSet<readonly Extent[]>();

/** The index of the first extent of a normal-form list (sorted, disjoint) that ends after lb. */
function firstEndingAfter(extents: readonly Extent[], lb: number): number {
  let lo = 0, hi = extents.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const e = extents[mid]!;
    if (e.logical + e.length <= lb) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Blocks a normal-form list maps in [lb, end) (binary search for the first extent ending after lb). */
function blocksIn(extents: readonly Extent[], lb: number, end: number): number {
  let need = 0;
  for (let i = firstEndingAfter(extents, lb); i < extents.length && extents[i]!.logical < end; i++) {
    const e = extents[i]!;
    need += Math.min(end, e.logical + e.length) - Math.max(lb, e.logical);
  }
  return need;
}

/**
 * mappedIn (extent-map.ts) — the parts of a list within [lb, lb+n) — found by binary search in a
 * list layOut made (normal form), else by mappedIn's scan from the start (the planner's `expect` of
 * a file evicted piece by piece is such a list: each check scanned it from the start).
 */
export function mappedRange(list: readonly Extent[], lb: number, n: number): Extent[] {
  if (!normalLists.has(list)) return mappedIn(list, lb, n);
  const end = lb + n;
  const out: Extent[] = [];
  for (let i = firstEndingAfter(list, lb); i < list.length && list[i]!.logical < end; i++) {
    const e = list[i]!;
    const s = Math.max(lb, e.logical), t = Math.min(end, e.logical + e.length);
    if (s < t) out.push({ logical: s, physical: e.physical + (s - e.logical), length: t - s, unwritten: e.unwritten });
  }
  return out;
}

/** Whether normalise (extent-map.ts) would merge b into a: adjacent on both sides, same state, within the length limit. */
function mergeable(a: Extent, b: Extent): boolean {
  return a.unwritten === b.unwritten && a.logical + a.length === b.logical && a.physical + a.length === b.physical && a.length + b.length <= maxLen(b.unwritten);
}

/** Append x to a normal-form list, merged into its last extent as normalise would (a new object: the list may share the input's). */
function pushMerged(out: Extent[], x: Extent): void {
  const last = out[out.length - 1];
  if (last && mergeable(last, x)) out[out.length - 1] = { ...last, length: last.length + x.length };
  else out.push(x);
}

/**
 * layOut of a list in normal form (checked by the caller): the extents before and after the range
 * are taken as they are (the same objects; extents are values), only the range is rebuilt, and
 * only its seams can merge — the result equals normalise() of the whole rebuilt list, at the cost
 * of the range (a fragmented file evicted piece by piece rebuilt its whole map per piece, twice).
 */
function layOutNormal(extents: readonly Extent[], lb: number, end: number, target: readonly { start: number; length: number }[], copies: Copy[], freed: Extent[]): { newExtents: Extent[]; freed: Extent[]; copies: Copy[] } {
  const lo = firstEndingAfter(extents, lb);
  const out = extents.slice(0, lo);
  let ti = 0, toff = 0;
  let i = lo;
  for (; i < extents.length && extents[i]!.logical < end; i++) {
    const e = extents[i]!;
    const eEnd = e.logical + e.length;
    if (e.logical < lb) pushMerged(out, { logical: e.logical, physical: e.physical, length: lb - e.logical, unwritten: e.unwritten });
    const s = Math.max(lb, e.logical), t = Math.min(end, eEnd);
    freed.push({ logical: s, physical: e.physical + (s - e.logical), length: t - s, unwritten: e.unwritten });
    for (let done = 0; done < t - s; ) {
      const r = target[ti]!;
      const k = Math.min(t - s - done, r.length - toff);
      pushMerged(out, { logical: s + done, physical: r.start + toff, length: k, unwritten: e.unwritten });
      if (!e.unwritten) copies.push({ from: e.physical + (s - e.logical) + done, to: r.start + toff, length: k });
      done += k;
      toff += k;
      if (toff === r.length) (ti++, (toff = 0));
    }
    if (eEnd > end) pushMerged(out, { logical: end, physical: e.physical + (end - e.logical), length: eEnd - end, unwritten: e.unwritten });
  }
  // the seam with the rest (which, in normal form, cannot merge further)
  if (i < extents.length) pushMerged(out, extents[i++]!);
  // (the rest as it is, copied natively: a loop of pushes runs interpreted in a fresh process)
  const newExtents = i < extents.length ? out.concat(extents.slice(i)) : out;
  normalLists.add(newExtents);
  return { newExtents, freed, copies };
}

function sameExtents(a: readonly Extent[], b: readonly Extent[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((e, i) => e.logical === b[i]!.logical && e.physical === b[i]!.physical && e.length === b[i]!.length && !!e.unwritten === !!b[i]!.unwritten);
}

/**
 * Check one move against the transaction's view and reserve its target (nothing is marked if it
 * fails). `prior`: this file's earlier move in the same transaction — this one starts from the
 * map that one leaves, and the file is remapped once, from its committed map to the last result.
 */
async function checkAndReserve(tx: Transaction, m: Move, prior?: Checked): Promise<Checked> {
  const fs = tx.fs;
  const inode = prior?.inode ?? (await tx.readInode(m.ino));
  if (!prior) assertMutableRegularFile(inode, fs.sb, 'file', { blockMapped: true });
  // a block map's pointers are 32-bit (remap.ts blockMapExclude)
  const exclude = isExtentMapped(inode) ? undefined : blockMapExclude(fs.sb);
  for (const r of m.target) if (exclude?.(r.start, r.length)) throw new Ext4Error('EINVAL', `target ${r.start}+${r.length} is past what a block map can point to`, { structure: `inode ${m.ino}`, location: { kind: 'inode', ino: m.ino } });
  const map = prior?.map ?? (await txFileMap(tx, inode));
  const current = prior?.newExtents ?? map.extents;
  const lb = m.logical ?? 0;
  const n = m.length ?? Math.ceil(inode.size / fs.blockSize) - lb;
  if (!Number.isSafeInteger(lb) || !Number.isSafeInteger(n) || lb < 0 || n < 0) throw new Ext4Error('EINVAL', `bad range ${lb}+${n}`);
  if (m.expect && !sameExtents(mappedRange(current, lb, n), mappedRange(m.expect, lb, n)))
    throw new Ext4Error('ESTALE', `inode ${m.ino}'s map changed since the move was planned`, { structure: `inode ${m.ino}`, location: { kind: 'inode', ino: m.ino } });
  const plan = layOut(current, lb, n, m.target);
  // Blocks placed by the earlier move are not copied yet and were free at the last commit: moving
  // them again waits for the next transaction.
  if (prior && plan.freed.some((f) => prior.runs.some((r) => overlaps({ start: f.physical, length: f.length }, r))))
    throw new Ext4Error('EBUSY', `inode ${m.ino}: moves blocks its earlier move placed in this transaction`);
  // Every target run must be free as of this transaction, and not freed by it (a freed block is
  // reusable only once the freeing transaction is durable): checked before any bit is set.
  for (const r of m.target) {
    if (tx.pendingFree.some((p) => overlaps(p, r))) throw new Ext4Error('EBUSY', `target ${r.start}+${r.length} was freed in this transaction`);
    const got = await findFree(tx, { goal: r.start, length: r.length, exact: true, contiguous: true });
    if (got.length !== 1 || got[0]!.start !== r.start || got[0]!.length < r.length) throw new Ext4Error('ENOSPC', `target ${r.start}+${r.length} is not free`, { location: { kind: 'block', block: r.start } });
  }
  await markAllocated(tx, m.target);
  return { inode, map, ...plan, runs: [...(prior?.runs ?? []), ...m.target], treeBlock: m.treeBlock };
}

/**
 * Log blocks a transaction will need at most, beyond its blocks so far: bitmaps and descriptors
 * its frees touch (`groups`: the groups of the frees queued so far, kept by the caller — a scan of
 * every pending free per move made a large transaction quadratic), superblock, journal overhead.
 */
function estimate(tx: Transaction, bs: number, groups: ReadonlySet<number>): number {
  // (descriptor blocks are folded in at finalise: one per touched group at most)
  const blocks = tx.blocks.size + tx.groups.size + 2 * groups.size + 2;
  // descriptor blocks (tags of 16 bytes at most) and the commit block
  return blocks + Math.ceil(blocks / Math.floor(bs / 16 - 2)) + 1;
}

/** Blocks one more file may add (inode-table block, 2 bitmaps, 2 descriptor blocks, its tree path). */
const PER_FILE_SLACK = 8;

/**
 * What each move frees and takes, for the scheduler: read from the file's
 * map now and carried through the file's earlier moves of this call (a
 * superset where unsure: every block the file maps in the range, all its
 * tree blocks, what the planner expected). A move whose footprint is wrong
 * here (the file changed meanwhile) fails its own checks in its transaction.
 */
async function footprints(fs: Filesystem, moves: readonly Move[], known?: (ino: number) => KnownFile | undefined): Promise<MoveFootprint[]> {
  const bs = fs.blockSize;
  const first = fs.sb.s_first_data_block, end = fs.sb.blocksCount;
  const sim = new Map<number, { extents: readonly Extent[]; tree: number[]; size: number; blockMapped: boolean } | null>();
  const out: MoveFootprint[] = [];
  for (const m of moves) {
    let f = sim.get(m.ino);
    const k = f === undefined ? known?.(m.ino) : undefined;
    if (k) sim.set(m.ino, (f = { extents: k.extents, tree: [...k.treeBlocks], size: k.size, blockMapped: k.blockMapped }));
    else if (f === undefined) {
      try {
        const inode = await fs.readInode(m.ino);
        const map = await fs.fileMap(inode);
        f = { extents: map.extents, tree: [...map.metadataBlocks], size: inode.size, blockMapped: !isExtentMapped(inode) };
      } catch (e) {
        if (!isExt4Error(e) || !PER_FILE.has(e.code)) throw e;
        f = null; // fails its own check
      }
      sim.set(m.ino, f);
    }
    const target = m.target.map((r) => ({ start: r.start, length: r.length }));
    if (!f) {
      out.push({ file: m.ino, frees: [], target });
      continue;
    }
    const lb = m.logical ?? 0;
    const n = m.length ?? Math.ceil(f.size / bs) - lb;
    const frees: BlockRun[] = [];
    const range = Number.isSafeInteger(lb) && Number.isSafeInteger(n) && n >= 0;
    for (const e of range ? mappedRange(m.expect ?? [], lb, n) : (m.expect ?? [])) frees.push({ start: e.physical, length: e.length });
    let allocates = false;
    let span: BlockRun[] | undefined;
    let laid: ReturnType<typeof layOut> | null = null;
    try {
      laid = layOut(f.extents, lb, n, m.target);
    } catch {
      // refused by its own check (layOut again): changes nothing; frees all it might
    }
    // the blocks the range maps now (layOut's freed: the same parts, without a second pass over the map)
    for (const e of laid && range ? laid.freed : range ? mappedRange(f.extents, lb, n) : f.extents) frees.push({ start: e.physical, length: e.length });
    if (laid) {
      const next = laid.newExtents;
      let tree = f.tree;
      if (f.blockMapped) {
        // a block map is positional: the same logical blocks keep the same indirect blocks
      } else if (next.length <= ROOT_CAPACITY) {
        // the extents fit the inode again: the tree collapses, its blocks are freed
        for (const b of tree) if (b >= 0) frees.push({ start: b, length: 1 });
        tree = [];
      } else if (!tree.length && m.treeBlock !== undefined && Number.isSafeInteger(m.treeBlock) && m.treeBlock >= first && m.treeBlock < end) {
        // a predicted leaf: remapInode's goal is the first new block; the allocator searches from
        // there (wrapping) to the leaf
        const goal = Math.min(Math.max(next[0]!.physical, first), end - 1), b = m.treeBlock;
        span = goal <= b ? [{ start: goal, length: b - goal + 1 }] : [{ start: goal, length: end - goal }, { start: first, length: b - first + 1 }];
        tree = [b];
      } else if (!tree.length) {
        // more extents than the inode holds: a tree block where the allocator puts it (a file
        // with a tree already is taken to fit its leaves, as the planner does; a leaf split onto
        // a later move's target makes that move fail ENOSPC, and it is planned again)
        allocates = true;
        tree = [-1];
      }
      sim.set(m.ino, { extents: next, tree, size: f.size, blockMapped: f.blockMapped });
    }
    out.push({ file: m.ino, frees, target, allocates, span });
  }
  return out;
}

/**
 * A transaction's copies split by the blocks the commit in flight frees, a copy chunk at a time
 * (the chunks the copy writes anyway: copy-runs.ts copyChunks, `chunkBlocks` each): a chunk with a
 * target on those blocks is `late` (written once that commit is durable — before, a crash would
 * leave its files reading this data), the others `early` (free before and after it). Whole chunks,
 * so the split adds no write: cut at the freed runs themselves, bench/defrag at 90 % made 1,445
 * writes and 3,067 reads of 787 and 2,410 (strace -c).
 */
export function splitCopies(copies: readonly Copy[], freed: readonly { start: number; length: number }[], chunkBlocks: number): { early: Copy[]; late: Copy[] } {
  const early: Copy[] = [], late: Copy[] = [];
  if (!freed.length) return { early: [...copies], late };
  const cuts = [...freed].sort((a, b) => a.start - b.start);
  /** Whether [start, end) meets a freed run (binary search for the first one ending after start). */
  const meets = (start: number, end: number): boolean => {
    let lo = 0, hi = cuts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cuts[mid]!.start + cuts[mid]!.length <= start) lo = mid + 1;
      else hi = mid;
    }
    return lo < cuts.length && cuts[lo]!.start < end;
  };
  for (const c of copyChunks(copies, chunkBlocks)) (meets(c.to, c.to + c.n) ? late : early).push(...c.pieces);
  return { early, late };
}

/**
 * Transactions moveFiles queues back to back at a time, and the longest it keeps them coming (ms):
 * within a batch each commit may return before its flushes are done (the journal's deferNext) and
 * the next transaction is prepared under them; the last of a batch runs with no commit in flight,
 * and other callers queued meanwhile get their turn after it.
 */
const HOLD_BATCH = 16;
const HOLD_MS = 100;

/** A transaction queued now whose work is given later. */
interface Slot {
  give(fn: (tx: Transaction) => Promise<unknown>): void;
  done: Promise<unknown>;
}

/** A schedule from waves given per move (MoveFilesOptions.waves): each wave's moves in call order. */
function givenSchedule(wave: readonly number[]): Pick<Schedule, 'wave' | 'waves'> {
  const waves: number[][] = [];
  for (let j = 0; j < wave.length; j++) {
    const w = wave[j]!;
    if (!Number.isSafeInteger(w) || w < 0) throw new Ext4Error('EINVAL', `move ${j}: wave ${w} is not a wave number`);
    while (waves.length <= w) waves.push([]);
    waves[w]!.push(j);
  }
  return { wave: wave as number[], waves };
}

/**
 * moveFiles' transactions, queued HOLD_BATCH at a time in one synchronous step, so that nothing
 * another caller queues can run between two of them. A commit may return before it is durable
 * (lib/jbd2/journal.ts deferNext) only when one of these follows it: its frees are already
 * published, and another caller writing a block they released before the commit block is durable
 * (an import's early data writes, for one) would, after a crash, overwrite a file that still owns
 * it. The last transaction of a batch — and `release` — first await the journal's tail.
 */
class WriterHold {
  #slots: Slot[] = [];
  #since = 0;
  constructor(private readonly fs: Filesystem, private readonly settle: () => Promise<void>, private readonly holdMs = HOLD_MS) {}

  #slot(): Slot {
    let give!: (fn: (tx: Transaction) => Promise<unknown>) => void;
    const got = new Promise<(tx: Transaction) => Promise<unknown>>((r) => (give = r));
    const done = this.fs.transact(async (tx) => (await got)(tx));
    done.catch(() => undefined); // observed by transact (or nobody: a released slot)
    return { give, done };
  }

  /** The slots after the running one run nothing (others' transactions come after them); the first of them waits for the tail. */
  #yield(): Promise<unknown> | undefined {
    const rest = this.#slots.splice(0);
    rest.forEach((s, i) => s.give(i === 0 ? () => this.settle() : async () => undefined));
    return rest[0]?.done;
  }

  /**
   * Run fn as a transaction in the next reserved slot (a new batch queued first when none is
   * left). `followed`: one of ours comes right after it, so its commit may return before it is
   * durable; when not, fn starts with no commit in flight.
   */
  transact<T>(fn: (tx: Transaction, followed: boolean) => Promise<T>): Promise<T> {
    if (!this.#slots.length) {
      for (let i = 0; i < HOLD_BATCH; i++) this.#slots.push(this.#slot());
      this.#since = Date.now();
    }
    const slot = this.#slots.shift()!;
    slot.give(async (tx) => {
      if (this.#slots.length && Date.now() - this.#since >= this.holdMs) void this.#yield();
      const followed = this.#slots.length > 0;
      if (!followed) await this.settle();
      return fn(tx, followed);
    });
    return slot.done as Promise<T>;
  }

  /** The end: what is left of the batch runs nothing; resolves once the last commit is durable. */
  async release(): Promise<void> {
    await this.#yield();
    await this.settle(); // (also when that slot did not run: a closed or broken session)
  }
}

/**
 * Move files' blocks to their targets (see the module comment). Returns one
 * result per move, in the order given. Throws only for what is not one
 * file's business (corruption, I/O, a read-only filesystem).
 */
export async function moveFiles(fs: Filesystem, fileMoves: readonly FileMove[], opts: MoveFilesOptions = {}): Promise<MoveResult[]> {
  if (fs.readOnly) throw new Ext4Error('EROFS', 'the filesystem is open read-only');
  const moves = fileMoves.map(toMove);
  const bs = fs.blockSize;
  const results: MoveResult[] = moves.map((m) => ({ ino: m.ino, moved: false, bytes: 0 }));
  const journal = internals(fs).journal;
  let limit = journal ? journal.maxTransactionBlocks() : Infinity;
  let maxFiles = opts.maxFiles ?? 4096;
  const maxBytes = opts.maxBytes ?? 256 * 1024 * 1024;
  const schedule = opts.waves && opts.waves.length === moves.length ? givenSchedule(opts.waves) : scheduleMoves(await footprints(fs, moves, opts.known));
  const order = schedule.waves.flat();
  const failed = new Set<number>();
  // positions a transaction must end before (a move found to take blocks its transaction frees)
  const cuts = new Set<number>();
  const hold = journal ? new WriterHold(fs, () => journal.settle(), opts.holdMs) : null;
  const transact = <T>(fn: (tx: Transaction, followed: boolean) => Promise<T>): Promise<T> => (hold ? hold.transact(fn) : fs.transact((tx) => fn(tx, false)));
  /** The frees of this call's last commit while its tail may still be in flight (deferred), else null. */
  let inFlight: readonly { start: number; length: number }[] | null = null;
  let finished = false;
  try {
    let p = 0;
    while (p < order.length) {
      const first = order[p]!;
      if (failed.has(first)) {
        p++;
        continue;
      }
      if (opts.stop?.()) break;
      const wave = schedule.wave[first]!;
      let end = p;
      const ran: number[] = [];
      let frees: readonly { start: number; length: number }[] | null = null;
      try {
        end = await transact(async (tx, followed) => {
          // (followed: one of ours comes next, so this commit may return before its flushes; when
          // not, no commit is in flight now — see WriterHold)
          if (journal) journal.deferNext = journal.orderedEarly = false;
          if (!followed) inFlight = null;
          const copies: Copy[] = [];
          const taken: { index: number; c: Checked }[] = [];
          /** Each file's latest move in this transaction (its map is written once, at the end). */
          const last = new Map<number, { index: number; c: Checked }>();
          const firstOf = new Map<number, number>();
          const freeGroups = new Set<number>();
          let copyBlocks = 0;
          let q = p;
          // 1. check and reserve every target first: a tree block allocated for one file must not
          //    land on a later file's target
          for (; q < order.length && taken.length < maxFiles; q++) {
            const j = order[q]!;
            if (schedule.wave[j] !== wave) break; // the next wave needs this one committed
            if (failed.has(j)) continue;
            if (q > p && cuts.has(q)) break;
            const m = moves[j]!;
            if (taken.length && (estimate(tx, bs, freeGroups) + PER_FILE_SLACK + (m.expect?.length ?? 0) > limit || copyBlocks * bs >= maxBytes)) break;
            // (a wave takes no block it frees; kept as a guard)
            if (taken.length && m.target.some((r) => tx.pendingFree.some((x) => overlaps(x, r)))) break;
            let c: Checked;
            try {
              c = await checkAndReserve(tx, m, last.get(m.ino)?.c);
            } catch (e) {
              if (isExt4Error(e) && (PER_FILE.has(e.code) || e.code === 'EBUSY')) throw new MoveFailed(j, e, q);
              throw e;
            }
            // the frees are queued now so that the estimate and later targets see them
            for (const f of c.freed) {
              tx.free(f.physical, f.length);
              freeGroups.add(groupOfBlock(fs.sb, f.physical)).add(groupOfBlock(fs.sb, f.physical + f.length - 1));
            }
            taken.push({ index: j, c });
            if (!last.has(m.ino)) firstOf.set(m.ino, j);
            last.set(m.ino, { index: j, c });
            copies.push(...c.copies);
            copyBlocks += c.copies.reduce((a, x) => a + x.length, 0);
          }
          // the copy's reads begin now, while the maps are rewritten and the commit is prepared
          // (nothing is written until the commit runs it: a transaction that fails has only read).
          // Under the last commit's tail (journal deferNext) the copy writes at once what lands
          // outside that commit's frees, the rest once it is durable (orderedEarly): registered
          // before anything else of the transaction (remap's producers) can queue ordered data.
          const split = inFlight && journal ? splitCopies(copies, inFlight, Math.max(1, Math.floor(COPY_CHUNK / bs))) : null;
          const copy = (split ? split.early : copies).length ? startCopy(fs, split ? split.early : copies) : null;
          if (split) {
            const j = journal!;
            produceOrderedData(tx, async () => {
              let bytes = copy ? await copy.run() : 0;
              const rest = split.late.length ? startCopy(fs, split.late) : null;
              await j.settle();
              if (rest) bytes += await rest.run();
              return bytes;
            });
          }
          // 2. the new maps, one rewrite per file (a failure is its first move's here)
          for (const [ino, { c }] of last) {
            const index = firstOf.get(ino)!;
            try {
              await remapInode(tx, c.inode, c.map, c.newExtents);
              if (c.treeBlock !== undefined && !(await txFileMap(tx, c.inode)).metadataBlocks.includes(c.treeBlock))
                throw new Ext4Error('ESTALE', `inode ${ino}: its extent-tree leaf did not land on block ${c.treeBlock} as planned`, { structure: `inode ${ino}`, location: { kind: 'inode', ino } });
              touch(tx, c.inode);
              await tx.writeInode(c.inode);
            } catch (e) {
              if (isExt4Error(e) && PER_FILE.has(e.code)) throw new MoveFailed(index, e, -1);
              throw e;
            }
          }
          // 3. the copy, written by the commit as ordered data once the journal accepted the size
          if (copy && !split) produceOrderedData(tx, () => copy.run());
          for (const { index, c } of taken) {
            results[index] = { ino: moves[index]!.ino, moved: true, bytes: c.copies.reduce((a, x) => a + x.length, 0) * bs };
            ran.push(index);
          }
          if (journal) {
            // (a transaction without a move commits nothing: the tail in flight, if any, stays the last one's)
            journal.deferNext = followed && taken.length > 0;
            // (data the transaction queued itself would be written before the producer above)
            journal.orderedEarly = !!split && tx.data.length === 0;
            frees = !taken.length ? inFlight : journal.deferNext ? tx.pendingFree.map((r) => ({ start: r.start, length: r.length })) : null;
          }
          return q;
        });
        inFlight = frees;
        opts.onCommit?.(ran.map((j) => results[j]!));
        p = end;
      } catch (e) {
        // results[] of a transaction that did not commit must not say "moved"
        for (const j of ran) results[j] = { ino: moves[j]!.ino, moved: false, bytes: 0 };
        if (e instanceof MoveFailed) {
          if (e.cause.code === 'EBUSY' && e.position > p) {
            // its target is freed by an earlier move of this transaction (the footprint missed it):
            // it starts the next one
            cuts.add(e.position);
            continue;
          }
          failed.add(e.index);
          results[e.index] = { ino: moves[e.index]!.ino, moved: false, bytes: 0, error: e.cause };
          continue;
        }
        if (isExt4Error(e) && e.code === 'E2BIG') {
          // the estimate was short for these trees: fewer files per transaction
          if (maxFiles > 1) {
            maxFiles = Math.max(1, Math.min(maxFiles, end - p || maxFiles) >> 1);
            limit = Math.floor(limit * 0.75);
            continue;
          }
          failed.add(first);
          results[first] = { ino: moves[first]!.ino, moved: false, bytes: 0, error: e };
          continue;
        }
        throw e;
      }
    }
    finished = true;
  } finally {
    // (a transaction that failed after setting it never committed)
    if (journal) journal.deferNext = journal.orderedEarly = false;
    const released = hold?.release();
    // an error already on its way out is the one reported
    if (finished) await released;
    else await released?.catch(() => undefined);
  }
  return results;
}
