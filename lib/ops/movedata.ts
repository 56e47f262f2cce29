/**
 * movedata — the proposal's sys_movedata (semantics.md §1): the blocks that
 * carry `space`'s [from, from+len) replace `data`'s, `data`'s bytes are
 * copied into them, a hole in `space` makes a hole in `data`, a block of
 * `space` over a hole (or unwritten block) of `data` reads as zeros,
 * `data`'s old blocks are released and `space` gets a hole over the range.
 *
 * Each step copies D→S in place (S belongs to `space`, whose bytes are
 * undefined by contract), flushes, then swaps both mappings and frees D in
 * one journaled transaction. A crash before the commit leaves both maps as
 * they were; after it, the new maps replay. Steps are sized to stay well
 * under a quarter of the journal; every intermediate state is consistent and
 * leaves `data`'s content intact. The copy and the swap happen under the
 * filesystem's writer lock, so a concurrent pwrite can never be lost (the
 * race the proposal worried about).
 *
 * A call that fails changes nothing: every step's transaction first checks
 * the whole call (both inodes, the range against data's size), so a bad call
 * fails in its first step, before anything is written; the copy is written
 * by the commit itself once the journal has accepted the step's size (an
 * E2BIG step, halved and retried, leaves no copied bytes behind). Without a
 * journal, space's inode and tree (which give up S) reach the disk before
 * data's (which take S): see releaseFirst in ext4/commit.ts.
 *
 * exchangeData is the proposal's no-copy variant: the caller has copied the
 * bytes itself and passes the freshness token it took when it read `data`;
 * the swap commits only if `data` is unchanged (else ESTALE, nothing changes).
 */
import { Ext4Error } from '../errors.js';
import type { Filesystem, FileMap } from '../ext4/filesystem.js';
import type { Transaction } from '../ext4/transaction.js';
import { produceOrderedData, releaseFirst } from '../ext4/commit.js';
import { insert, mappedIn, punch } from '../ext4/extent-map.js';
import { assertMutableRegularFile, changeCounter, remapInode, touch, txFileMap, zeroOrdered } from '../ext4/remap.js';
import { writtenWithZeros } from '../ext4/blockmap-edit.js';
import { findExtent, type Extent } from '../ext4/extents.js';
import { isExtentMapped, type Inode } from '../ext4/inode.js';
import { resolveTarget, type FileRef } from './target.js';
import { internals } from '../ext4/internals.js';
import { startCopy } from './copy-runs.js';

export interface MoveDataOptions {
  /** Byte offset (block-aligned). */
  from: number;
  /** Byte length (block-aligned). */
  len: number;
  /**
   * Most extents of either file handled per transaction. Default: what the
   * journal's per-transaction limit surely holds (firstStepExtents: at least
   * 64), doubled (up to 8192) after each step that logged less than an
   * eighth of that limit, so a fragmented file moves in one or a few large
   * transactions, and never one the journal refuses (E2BIG halves it again).
   */
  stepExtents?: number;
  /**
   * Most bytes copied per transaction (default 256 MiB: the copy streams through a few 1 MiB
   * buffers (copy-runs.ts), so a step costs no memory, and each step costs a drain of the copy
   * pipeline and two flushes; 64 MiB steps made bench/ops' 256 MiB move ~15 % slower).
   */
  stepBytes?: number;
}

/** What a caller of exchangeData captured when it read `data` (XFS commit-range style). */
export interface FreshnessToken {
  ino: number;
  generation: number;
  changeCounter: number;
  ctimeSec: number;
  ctimeNsec: number;
  mtimeSec: number;
  mtimeNsec: number;
  size: number;
}

export function freshnessOf(inode: Inode): FreshnessToken {
  return {
    ino: inode.ino,
    generation: inode.generation,
    changeCounter: changeCounter(inode),
    ctimeSec: inode.ctime.sec,
    ctimeNsec: inode.ctime.nsec,
    mtimeSec: inode.mtime.sec,
    mtimeNsec: inode.mtime.nsec,
    size: inode.size,
  };
}

/** Take a freshness token for a file (under the writer lock, so it is a consistent sample). */
export async function startExchange(fs: Filesystem, data: FileRef): Promise<FreshnessToken> {
  return fs.exclusive(async () => freshnessOf(await fs.readInode(await resolveTarget(fs, data))));
}

function validate(fs: Filesystem, from: number, len: number): void {
  const bs = fs.blockSize;
  if (!Number.isSafeInteger(from) || from < 0 || from % bs !== 0) throw new Ext4Error('EINVAL', `from ${from} is not a multiple of the block size ${bs}`);
  if (!Number.isSafeInteger(len) || len < 0 || len % bs !== 0) throw new Ext4Error('EINVAL', `len ${len} is not a multiple of the block size ${bs}`);
  if ((from + len) / bs > 2 ** 32 - 1) throw new Ext4Error('EFBIG', 'range exceeds the maximum extent-mapped file size');
}

/**
 * Plan the steps: cut [lb, lb+n) so that each step touches at most
 * `maxExt` extents of either file and copies at most `maxBlocks` blocks.
 * Binary search to the first extent at `lb`, then at most maxExt+1 looked
 * at: a step costs O(log n + maxExt), not a pass over the whole list.
 */
export function nextStepEnd(dataList: readonly Extent[], spaceList: readonly Extent[], lb: number, end: number, maxExt: number, maxBlocks: number): number {
  let stop = Math.min(end, lb + maxBlocks);
  for (const list of [dataList, spaceList]) {
    let i = findExtent(list, lb).index;
    for (let k = 0; i < list.length && list[i]!.logical < stop; i++, k++) {
      if (k === maxExt) {
        stop = Math.min(stop, list[i]!.logical);
        break;
      }
    }
  }
  return Math.max(stop, lb + 1);
}

interface StepPlan {
  newData: Extent[];
  newSpace: Extent[];
  copies: { from: number; to: number; length: number }[];
  freed: Extent[];
}

/** The pure core of one step (the per-block rules of semantics.md §1). */
export function planMove(dataList: readonly Extent[], spaceList: readonly Extent[], lb: number, n: number, copy: boolean): StepPlan {
  const dataParts = mappedIn(dataList, lb, n);
  const spaceParts = mappedIn(spaceList, lb, n);
  const { list: dataRest, removed } = punch(dataList, lb, n);
  const { list: newSpace } = punch(spaceList, lb, n);
  const added: Extent[] = [];
  const copies: StepPlan['copies'] = [];
  for (const s of spaceParts) {
    // Split the space extent against data's written parts.
    let cur = s.logical;
    const end = s.logical + s.length;
    for (const d of dataParts) {
      if (d.logical + d.length <= cur || d.logical >= end) continue;
      const a = Math.max(cur, d.logical), b = Math.min(end, d.logical + d.length);
      if (a > cur) added.push({ logical: cur, physical: s.physical + (cur - s.logical), length: a - cur, unwritten: true });
      const phys = s.physical + (a - s.logical);
      if (d.unwritten) added.push({ logical: a, physical: phys, length: b - a, unwritten: true });
      else {
        // copying variant: data's bytes go into S (written); no-copy: the caller put them there
        added.push({ logical: a, physical: phys, length: b - a, unwritten: copy ? false : s.unwritten });
        if (copy) copies.push({ from: d.physical + (a - d.logical), to: phys, length: b - a });
      }
      cur = b;
    }
    if (cur < end) added.push({ logical: cur, physical: s.physical + (cur - s.logical), length: end - cur, unwritten: true });
  }
  return { newData: insert(dataRest, added), newSpace, copies, freed: removed };
}

/**
 * The checks of the whole call, made again at the start of every step's
 * transaction (so the first step fails before anything is written, and a
 * later one still sees a concurrent change): both inodes, the freshness
 * token, and the range's end (`end`, in blocks) against data's size.
 */
function checkCall(fs: Filesystem, data: Inode, space: Inode, end: number, token: FreshnessToken | null): void {
  assertMutableRegularFile(data, fs.sb, 'data', { blockMapped: true });
  assertMutableRegularFile(space, fs.sb, 'space', { blockMapped: true });
  if (token) {
    const now = freshnessOf(data);
    if (now.ino !== token.ino || now.generation !== token.generation || now.changeCounter !== token.changeCounter || now.ctimeSec !== token.ctimeSec ||
      now.ctimeNsec !== token.ctimeNsec || now.mtimeSec !== token.mtimeSec || now.mtimeNsec !== token.mtimeNsec || now.size !== token.size)
      throw new Ext4Error('ESTALE', `data file inode ${data.ino} changed since the freshness token was taken`);
  }
  const bs = fs.blockSize;
  if (end * bs > Math.ceil(data.size / bs) * bs) throw new Ext4Error('EINVAL', `range ends past the end of the data file (size ${data.size})`, { structure: `inode ${data.ino}` });
}

async function stepTx(fs: Filesystem, tx: Transaction, data: Inode, space: Inode, dmap: FileMap, smap: FileMap, lb: number, n: number, copy: boolean): Promise<void> {
  const plan = planMove(dmap.extents, smap.extents, lb, n, copy);
  // A block map cannot say "reads as zeros": S's blocks over data's holes are zeroed instead.
  const zeroed = isExtentMapped(data) ? null : writtenWithZeros(plan.newData);
  if (zeroed) plan.newData = zeroed.list;
  // The copy D→S begins reading D now, before the remaps read bitmaps and tree blocks: in a fresh
  // process those reads are cold, and the copy's first reads would wait behind them. Reading
  // changes nothing: a step that fails from here on (ENOSPC, E2BIG) has only read.
  const started = plan.copies.length ? startCopy(fs, plan.copies) : null;

  // 1. the new maps and the release of D, in the transaction (nothing reaches the device yet:
  // an ENOSPC from extent-tree growth here leaves every byte as it was).
  await remapInode(tx, space, smap, plan.newSpace);
  await remapInode(tx, data, dmap, plan.newData);
  for (const f of plan.freed) tx.free(f.physical, f.length);
  touch(tx, data);
  touch(tx, space);
  await tx.writeInode(data);
  await tx.writeInode(space);
  // Without a journal, space gives S up on disk before data takes it.
  releaseFirst(tx, space.ino, (await txFileMap(tx, space)).metadataBlocks);
  // 2. copy D→S in place, written by the commit as ordered data once the journal has accepted
  // the step (S still belongs to space on disk until the commit block; the commit flushes
  // the copy before it). A step refused with E2BIG has copied nothing. D is read meanwhile
  // (startCopy above), while the commit finalises the metadata and begins the session.
  if (started) produceOrderedData(tx, () => started.run());
  if (zeroed) zeroOrdered(tx, zeroed.zero);
}

const MAX_STEP_EXTENTS = 8192;

/**
 * The first step's extent count, from the journal's per-transaction limit
 * (`txLimit` blocks): an extent moved logs at most about two blocks (the
 * bitmap of the group it is freed from and that group's descriptor block,
 * when every extent lies in another group) plus its share of the two trees'
 * leaves, so a quarter of the limit per extent, less a margin for the
 * inodes, the tree roots' paths and new tree blocks, stays under it. Each
 * step costs a pipeline drain and two flushes: a 256 MiB move of 257 extents
 * made in steps of 64, 128 and 65 extents spent ~0.4 s of its 2.1 s between
 * steps (bench/ops, loaded machine). At least 64 (the old fixed start), at
 * most MAX_STEP_EXTENTS.
 */
export function firstStepExtents(txLimit: number): number {
  if (!Number.isFinite(txLimit)) return MAX_STEP_EXTENTS;
  return Math.min(MAX_STEP_EXTENTS, Math.max(64, Math.floor((txLimit - 64) / 4)));
}

/** Most metadata blocks one transaction may log (the journal's quarter), or Infinity without a journal. */
function journalTransactionLimit(fs: Filesystem): number {
  const j = internals(fs).journal;
  return j ? j.maxTransactionBlocks() : Infinity;
}

async function run(fs: Filesystem, dataRef: FileRef, spaceRef: FileRef, opts: MoveDataOptions, copy: boolean, token: FreshnessToken | null): Promise<void> {
  validate(fs, opts.from, opts.len);
  if (fs.readOnly) throw new Ext4Error('EROFS', 'the filesystem is open read-only');
  if (opts.len === 0) return;
  const bs = fs.blockSize;
  const dataIno = await resolveTarget(fs, dataRef);
  const spaceIno = await resolveTarget(fs, spaceRef);
  if (dataIno === spaceIno) throw new Ext4Error('EINVAL', 'data and space are the same file');
  const end = (opts.from + opts.len) / bs;
  let lb = opts.from / bs;
  const txLimit = journalTransactionLimit(fs);
  let maxExt = opts.stepExtents ?? firstStepExtents(txLimit);
  // Local extent edits make a step's log grow with the extents it moves, not with the trees'
  // sizes: what one step logged says whether twice as many extents still fit in the journal's
  // per-transaction limit (a quarter of the log) with room to spare.
  let grow = opts.stepExtents === undefined && !token;
  const maxBlocks = Math.max(1, Math.floor((opts.stepBytes ?? 256 * 1024 * 1024) / bs));
  if (token && end - lb > maxBlocks) throw new Ext4Error('EINVAL', 'exchangeData is atomic: its range must fit one step');
  while (lb < end) {
    let logged = 0;
    try {
      const stop = await fs.transact(async (tx) => {
        const d = await tx.readInode(dataIno), s = await tx.readInode(spaceIno);
        checkCall(fs, d, s, end, token);
        // Each tree is walked once per step: the maps that size the step are the ones edited.
        const dmap = await txFileMap(tx, d), smap = await txFileMap(tx, s);
        const st = token ? end : nextStepEnd(dmap.extents, smap.extents, lb, end, maxExt, maxBlocks);
        await stepTx(fs, tx, d, s, dmap, smap, lb, st - lb, copy);
        logged = tx.blocks.size;
        return st;
      });
      lb = stop;
      if (grow && maxExt < MAX_STEP_EXTENTS && logged * 8 <= txLimit) maxExt = Math.min(MAX_STEP_EXTENTS, maxExt * 2);
    } catch (e) {
      // The journal refused the transaction as too large: halve the step and retry.
      if (e instanceof Ext4Error && e.code === 'E2BIG' && maxExt > 1 && !token) {
        maxExt = Math.max(1, maxExt >> 1);
        grow = false; // (the estimate was wrong for these trees: no more doubling)
        continue;
      }
      throw e;
    }
  }
}

/** movedata(data, space, {from, len}): resolves when the range is moved, or throws an Ext4Error. */
export async function movedata(fs: Filesystem, data: FileRef, space: FileRef, opts: MoveDataOptions): Promise<void> {
  return run(fs, data, space, opts, true, null);
}

/**
 * The no-copy variant: `space` already holds the bytes `data` should have
 * (the caller copied them after taking `token` with startExchange); swap the
 * mappings atomically if `data` is unchanged since, else ESTALE.
 */
export async function exchangeData(fs: Filesystem, data: FileRef, space: FileRef, opts: MoveDataOptions & { token: FreshnessToken }): Promise<void> {
  return run(fs, data, space, opts, false, opts.token);
}
