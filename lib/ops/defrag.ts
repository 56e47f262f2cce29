/**
 * The defragmenter, built on the proposal's calls: getFreeBlocks (the free-extent index) and
 * moves that reserve exact target blocks and copy into them (moveFiles, lib/ops/move-batch.ts:
 * each move atomic; the plan's moves run in dependency waves (lib/ops/move-schedule.ts), many per
 * transaction, so a plan that is a chain in list order costs a commit per wave, not per move).
 *
 * Whole-filesystem mode plans globally on an in-memory model (lib/ops/defrag-plan.ts): every
 * fragmented file made contiguous — into a free run when one fits, else into a window it
 * evacuates (pieces of other files go into holes elsewhere) — then files compacted toward the
 * start so free space coalesces at the end. The plan predicts extents, free extents and the
 * largest free extent; the real run executes it step by step and ends where it predicted. A move
 * that fails (the file changed, the space was taken) ends the round and the rest is planned again
 * from the disk; every move leaves a consistent filesystem, and a rerun plans from the current
 * state (resumable).
 */
import { Ext4Error } from '../errors.js';
import type { Filesystem } from '../ext4/filesystem.js';
import { INODE_FLAGS, type Inode } from '../ext4/inode.js';
import { nodeCapacity, type Extent } from '../ext4/extents.js';
import { fragmentCount } from '../ext4/extent-map.js';
import { decodeName } from '../ext4/bytes.js';
import { getFreeBlocks } from './free.js';
import { moveFiles, type FileMove } from './move-batch.js';
import { planDefrag } from './defrag-plan.js';
import { auditSpace } from './fsmap.js';
import { checkAllocatable } from '../ext4/alloc.js';
import { blockMapExclude } from '../ext4/remap.js';

export interface DefragOptions {
  /** Only these paths (files, or directories walked recursively); default the whole filesystem. */
  paths?: string[];
  /** Print the plan, change nothing. */
  dryRun?: boolean;
  /** Stop starting new moves after this many seconds. */
  maxSeconds?: number;
  /** Stop starting new moves once this many bytes were moved. */
  maxBytes?: number;
  /** Run the free-space compaction pass (whole-fs mode only; default true). */
  compact?: boolean;
  onProgress?(p: DefragProgress): void;
}

export interface DefragProgress {
  phase: 'defrag' | 'compact';
  done: number;
  total: number;
  path: string;
  bytesMoved: number;
}

export interface PlannedMove {
  path: string;
  ino: number;
  blocks: number;
  fragmentsBefore: number;
  /** Target runs (blocks) the file would be moved into. */
  target: { start: number; length: number }[];
  fragmentsAfter: number;
  phase: 'defrag' | 'evict' | 'compact';
  /** Where the file's new extent-tree leaf goes, when the move makes it outgrow the inode. */
  treeBlock?: number;
}

export interface DefragSummary {
  files: number;
  /** Distinct files moved. */
  filesMoved: number;
  /** Moves made (a file may move twice: made contiguous, then compacted). */
  moves: number;
  /** Transactions committed (each costs two flushes: many moves share one, by dependency). */
  transactions: number;
  filesSkipped: number;
  extentsBefore: number;
  extentsAfter: number;
  freeExtentsBefore: number;
  freeExtentsAfter: number;
  largestFreeBefore: number;
  largestFreeAfter: number;
  /**
   * Whole-filesystem runs where no run of the filesystem can hold half of its free space (blocks
   * that never move — backup superblocks and descriptors, bitmaps, inode tables, directories — cut
   * it shorter): the longest run there is, which the plan aims for instead. Absent otherwise.
   */
  largestFreePossible?: number;
  bytesMoved: number;
  seconds: number;
  stoppedBy: 'done' | 'maxSeconds' | 'maxBytes';
  plan: PlannedMove[];
  /** What the plan predicts (the last round's plan when moves had to be replanned). */
  predicted: { extents: number; freeExtents: number; largestFree: number };
  /**
   * Whether `predicted` is expected to be exact: a real run with nothing else writing makes this
   * plan's moves and ends as predicted. False (Plan.exact) when a planned move needs an extent-tree
   * block the plan does not place — a file outgrowing one leaf, or a tree its extents outgrow: the
   * real run plans again from the disk after such a move (or where its block took a later move's
   * target), for the same targets, so its later moves and result can differ. A real run reports
   * its last round's plan's.
   */
  predictionExact: boolean;
  /** Moves the last round could not make (earlier rounds' failures were planned again). */
  errors: { path: string; code: string; message: string }[];
}

export interface FileInfo {
  path: string;
  ino: number;
  inode: Inode;
  /** Mapped extents within [0, roundup(size)). */
  extents: Extent[];
  blocks: number;
  fragments: number;
  /** Extent-tree blocks (indirect blocks of a block-mapped file). */
  treeBlocks: number[];
  blockMapped: boolean;
  /** The whole map as read (past EOF too): what moveFiles' scheduler starts from. */
  map: readonly Extent[];
}

interface FreeRun {
  start: number;
  length: number;
}

/** Walk the tree in directory order (depth-first), yielding movable regular files (bench/defrag-plan plans from the same input). */
export async function collectFiles(fs: Filesystem, roots: string[]): Promise<FileInfo[]> {
  const out: FileInfo[] = [];
  const seenDirs = new Set<number>();
  const seenFiles = new Set<number>();
  const visit = async (inode: Inode, path: string): Promise<void> => {
    if (inode.type === 'dir') {
      if (seenDirs.has(inode.ino)) return;
      seenDirs.add(inode.ino);
      const ents = await fs.readdirRaw(inode);
      for (const e of ents) {
        const name = decodeName(e.name);
        if (name === '.' || name === '..') continue;
        await visit(await fs.readInode(e.ino), path === '/' ? `/${name}` : `${path}/${name}`);
      }
      return;
    }
    if (inode.type !== 'file' || seenFiles.has(inode.ino)) return;
    seenFiles.add(inode.ino);
    const info = await fileInfo(fs, inode, path);
    if (info) out.push(info);
  };
  for (const r of roots) await visit(await fs.resolve(r, { followLast: false }), r);
  return out;
}

async function fileInfo(fs: Filesystem, inode: Inode, path: string): Promise<FileInfo | null> {
  const bad = INODE_FLAGS.IMMUTABLE | INODE_FLAGS.APPEND | INODE_FLAGS.ENCRYPT | INODE_FLAGS.VERITY | INODE_FLAGS.INLINE_DATA | INODE_FLAGS.JOURNAL_DATA;
  if (inode.flags & bad || inode.ino < fs.sb.s_first_ino || inode.size === 0) return null;
  // A block-mapped file (ext2/ext3) moves too: remapInode rewrites its pointers in place. Not on
  // a filesystem with blocks past its 32-bit pointers (the planner does not keep it below them).
  const blockMapped = !(inode.flags & INODE_FLAGS.EXTENTS);
  if (blockMapped && blockMapExclude(fs.sb)) return null;
  const map = await fs.fileMap(inode);
  const limit = Math.ceil(inode.size / fs.blockSize);
  const extents: Extent[] = [];
  for (const e of map.extents) {
    if (e.logical >= limit) break;
    extents.push({ ...e, length: Math.min(e.length, limit - e.logical) });
  }
  const blocks = extents.reduce((a, e) => a + e.length, 0);
  if (blocks === 0) return null;
  return { path, ino: inode.ino, inode, extents, blocks, fragments: fragmentCount(extents), treeBlocks: map.metadataBlocks, blockMapped, map: map.extents };
}

/** The free space as runs of blocks (the planner's input). */
export async function freeRuns(fs: Filesystem): Promise<FreeRun[]> {
  const bs = fs.blockSize;
  return (await getFreeBlocks(fs)).map((r) => ({ start: r.start / bs, length: r.len / bs }));
}

/**
 * Refuse to move anything on a filesystem whose space bookkeeping is wrong: a block that a file
 * owns while its bitmap bit is clear would be handed out again (the allocator can check fixed
 * metadata and the kernel's bitmap rules, but only a full scan finds a file's own cleared bits),
 * and a block claimed twice would be released by whichever move runs first. e2fsck's pass 1/5 view.
 */
async function assertSpaceConsistent(fs: Filesystem): Promise<void> {
  const a = await auditSpace(fs);
  const first = a.ownedButFree[0] ?? a.multiplyOwned[0];
  if (first || a.unreadable.length) {
    const what = a.ownedButFree.length
      ? `block ${a.ownedButFree[0]!.start} is owned by ${a.ownedButFree[0]!.owner} but free in its bitmap`
      : a.multiplyOwned.length
        ? `block ${a.multiplyOwned[0]!.start} is claimed by ${a.multiplyOwned[0]!.owners.join(' and ')}`
        : `inode ${a.unreadable[0]!.ino} cannot be read (${a.unreadable[0]!.error.message})`;
    throw new Ext4Error('EFSCORRUPTED', `${what}: run e2fsck before defragmenting`, {
      structure: 'block bitmap',
      location: first ? { kind: 'block', block: first.start } : { kind: 'inode', ino: a.unreadable[0]!.ino },
    });
  }
}

/** 128 MiB: a larger file is ideal at one extent per 128 MiB (what e4defrag and filefrag accept). */
const IDEAL_EXTENT_BYTES = 128 * 1024 * 1024;
/**
 * Steps handed to moveFiles per call: it orders them by dependency into waves and packs each
 * wave into transactions (a quarter of the journal each), so the more it sees the fewer
 * transactions; the time budget is checked before each transaction.
 */
const STEPS_PER_CALL = 16384;
/** Plan/execute rounds at most (a round ends at a failed move or an unpredictable tree block). */
const MAX_ROUNDS = 200;

export async function defrag(fs: Filesystem, opts: DefragOptions = {}): Promise<DefragSummary> {
  const t0 = Date.now();
  const wholeFs = !opts.paths || opts.paths.length === 0;
  if (!opts.dryRun && fs.readOnly) throw new Ext4Error('EROFS', 'the filesystem is open read-only');
  if (!opts.dryRun) {
    // Every corruption the allocator would meet mid-run is found before the first write.
    await assertSpaceConsistent(fs);
    await checkAllocatable(fs);
  }
  const roots = wholeFs ? ['/'] : opts.paths!;
  const bounds = { first: fs.sb.s_first_data_block, end: fs.sb.blocksCount };
  const idealExtentBlocks = Math.max(1, Math.floor(IDEAL_EXTENT_BYTES / fs.blockSize));
  // a new tree of one leaf is predictable (remap's rebuild makes one leaf up to the block's entries less one)
  const leafExtents = nodeCapacity(fs.blockSize) - 1;
  let files = await collectFiles(fs, roots);
  let runs = await freeRuns(fs);
  const summary: DefragSummary = {
    files: files.length,
    filesMoved: 0,
    moves: 0,
    transactions: 0,
    filesSkipped: 0,
    extentsBefore: files.reduce((a, f) => a + f.fragments, 0),
    extentsAfter: 0,
    freeExtentsBefore: runs.length,
    freeExtentsAfter: 0,
    largestFreeBefore: runs.reduce((a, r) => Math.max(a, r.length), 0),
    largestFreeAfter: 0,
    bytesMoved: 0,
    seconds: 0,
    stoppedBy: 'done',
    plan: [],
    predicted: { extents: 0, freeExtents: 0, largestFree: 0 },
    predictionExact: true,
    errors: [],
  };
  const movedInos = new Set<number>();
  const budgetLeft = (): boolean => {
    if (opts.maxSeconds !== undefined && (Date.now() - t0) / 1000 >= opts.maxSeconds) {
      summary.stoppedBy = 'maxSeconds';
      return false;
    }
    if (opts.maxBytes !== undefined && summary.bytesMoved >= opts.maxBytes) {
      summary.stoppedBy = 'maxBytes';
      return false;
    }
    return true;
  };

  // Plan on the model, execute; a move that fails (the file changed, a concurrent writer took the
  // space) ends the round and the rest is planned again from the disk as it is now.
  // A plan also stops where a file outgrows its inode's extent slots by more than a leaf (the
  // model predicts only one-leaf trees): those steps run, then the rest is planned from the disk.
  for (let round = 0, errorRounds = 0; round < MAX_ROUNDS; round++) {
    const plan = planDefrag(files.map((f) => ({ ino: f.ino, path: f.path, extents: f.extents, treeBlocks: f.treeBlocks, blockMapped: f.blockMapped })), runs, bounds, { idealExtentBlocks, compact: opts.compact, wholeFs, stopAtTreeGrowth: !opts.dryRun, leafExtents });
    {
      summary.predicted = { extents: plan.predicted.extents, freeExtents: plan.predicted.freeExtents, largestFree: plan.predicted.largestFree };
      summary.predictionExact = plan.exact;
      if (plan.largestFreePossible !== undefined) summary.largestFreePossible = plan.largestFreePossible;
      summary.filesSkipped = plan.skipped.length;
    }
    const planned = plan.steps.map((st): PlannedMove => {
      const f = files[st.file]!;
      return { path: f.path, ino: f.ino, blocks: st.target.reduce((a, r) => a + r.length, 0), fragmentsBefore: st.fragmentsBefore, target: st.target, fragmentsAfter: st.fragmentsAfter, phase: st.phase, ...(st.treeBlock === undefined ? {} : { treeBlock: st.treeBlock }) };
    });
    summary.plan.push(...planned);
    if (opts.dryRun) break;
    // A failed move ends the round and the rest is planned again from the disk: what is reported
    // is what the last round could not do, not a move a later round made after all.
    summary.errors = [];
    let failed = false;
    const byIno = new Map(files.map((f) => [f.ino, f]));
    for (let i = 0, n = 0; i < plan.steps.length && !failed; i += n) {
      if (!budgetLeft()) break;
      // Under a byte budget, hand over only the steps that budget still allows (the last one may
      // cross it, as a single move always could). moveFiles keeps a file's steps in order.
      n = 0;
      let bytes = 0;
      while (i + n < plan.steps.length && n < STEPS_PER_CALL && (opts.maxBytes === undefined || summary.bytesMoved + bytes < opts.maxBytes)) {
        bytes += plan.steps[i + n]!.target.reduce((a, r) => a + r.length, 0) * fs.blockSize;
        n++;
      }
      const batch = plan.steps.slice(i, i + n);
      const progress = (done: number, step: number, bytesMoved: number): void =>
        opts.onProgress?.({ phase: batch[step]!.phase === 'compact' ? 'compact' : 'defrag', done, total: plan.steps.length, path: files[batch[step]!.file]!.path, bytesMoved });
      progress(i, 0, summary.bytesMoved);
      const moves: FileMove[] = batch.map((st) => ({ ino: files[st.file]!.ino, logicalBlock: st.logical, lengthBlocks: st.length, target: st.target.map((r) => ({ startBlock: r.start, lengthBlocks: r.length })), expect: st.expect, treeBlock: st.treeBlock }));
      let committed = 0, committedBytes = 0;
      const results = await moveFiles(fs, moves, {
        // as read for this round's plan (moves of earlier calls in this round changed their files: read again)
        known: i === 0 ? (ino) => {
          const f = byIno.get(ino);
          return f && { extents: f.map, treeBlocks: f.treeBlocks, size: f.inode.size, blockMapped: f.blockMapped };
        } : undefined,
        // the plan's own schedule of these steps (a prefix of its steps: the scheduler is online,
        // so a prefix's waves are the whole plan's); a later call schedules from the disk
        waves: i === 0 ? plan.waves?.slice(0, n) : undefined,
        onCommit: (done) => {
          summary.transactions++;
          committed += done.length;
          committedBytes += done.reduce((a, r) => a + r.bytes, 0);
          progress(i + committed, Math.min(committed, n - 1), summary.bytesMoved + committedBytes);
        },
        stop: opts.maxSeconds === undefined ? undefined : () => !budgetLeft(),
      });
      results.forEach((r, k) => {
        if (r.moved) {
          summary.moves++;
          summary.bytesMoved += r.bytes;
          movedInos.add(r.ino);
        } else if (r.error && !failed) {
          failed = true;
          summary.errors.push({ path: files[batch[k]!.file]!.path, code: r.error.code, message: r.error.message });
        }
      });
    }
    summary.filesMoved = movedInos.size;
    if (summary.stoppedBy !== 'done' || (!failed && plan.complete) || (failed && ++errorRounds >= 3)) break;
    files = await collectFiles(fs, roots);
    runs = await freeRuns(fs);
  }
  if (opts.dryRun) {
    summary.extentsAfter = summary.predicted.extents;
    summary.freeExtentsAfter = summary.predicted.freeExtents;
    summary.largestFreeAfter = summary.predicted.largestFree;
  } else {
    const after = await collectFiles(fs, roots);
    summary.extentsAfter = after.reduce((a, f) => a + f.fragments, 0);
    const finalRuns = await freeRuns(fs);
    summary.freeExtentsAfter = finalRuns.length;
    summary.largestFreeAfter = finalRuns.reduce((a, r) => Math.max(a, r.length), 0);
  }
  summary.seconds = (Date.now() - t0) / 1000;
  return summary;
}
