/**
 * The defragmenter, built only on the proposal's three calls:
 *   getFreeBlocks → find where a file can go,
 *   allocate      → reserve that space in a temporary inode that sits on the
 *                   orphan list (a crash leaves nothing visible; Linux and
 *                   e2fsck release it, and so does our next write open),
 *   movedata      → splice the reserved blocks into the file, copying its
 *                   bytes, one journaled step at a time.
 * A file is only moved when its new layout has fewer fragments (as e4defrag).
 *
 * Whole-filesystem mode plans globally: files in directory order (locality),
 * each placed best-fit into the free run that fits it most tightly (which
 * keeps large runs intact), then a compaction pass moves files from the end
 * of the used space into holes nearer the start so that free space
 * coalesces. Every move is atomic and leaves a consistent filesystem; a
 * rerun simply plans again from the current state (resumable).
 */
import { Ext4Error, isExt4Error } from '../errors.js';
import type { Filesystem } from '../ext4/filesystem.js';
import { INODE_FLAGS, type Inode } from '../ext4/inode.js';
import type { Extent } from '../ext4/extents.js';
import { fragmentCount } from '../ext4/extent-map.js';
import { decodeName } from '../ext4/bytes.js';
import { createTempFile, releaseTempFile } from '../ext4/temp-file.js';
import { getFreeBlocks } from './free.js';
import { allocateRanges, ALLOC_CONTIGUOUS, ALLOC_FIXED_LEN, ALLOC_FIXED_START } from './allocate.js';
import { movedata } from './movedata.js';
import { auditSpace } from './fsmap.js';
import { checkAllocatable } from '../ext4/alloc.js';

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
}

export interface DefragSummary {
  files: number;
  /** Distinct files moved. */
  filesMoved: number;
  /** Moves made (a file may move twice: made contiguous, then compacted). */
  moves: number;
  filesSkipped: number;
  extentsBefore: number;
  extentsAfter: number;
  freeExtentsBefore: number;
  freeExtentsAfter: number;
  largestFreeBefore: number;
  largestFreeAfter: number;
  bytesMoved: number;
  seconds: number;
  stoppedBy: 'done' | 'maxSeconds' | 'maxBytes';
  plan: PlannedMove[];
  errors: { path: string; code: string; message: string }[];
}

interface FileInfo {
  path: string;
  ino: number;
  inode: Inode;
  /** Mapped extents within [0, roundup(size)). */
  extents: Extent[];
  blocks: number;
  fragments: number;
}

interface FreeRun {
  start: number;
  length: number;
}

/** Walk the tree in directory order (depth-first), yielding movable regular files. */
async function collectFiles(fs: Filesystem, roots: string[]): Promise<FileInfo[]> {
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
  if (!(inode.flags & INODE_FLAGS.EXTENTS) || inode.flags & bad || inode.ino < fs.sb.s_first_ino || inode.size === 0) return null;
  const map = await fs.fileMap(inode);
  const limit = Math.ceil(inode.size / fs.blockSize);
  const extents: Extent[] = [];
  for (const e of map.extents) {
    if (e.logical >= limit) break;
    extents.push({ ...e, length: Math.min(e.length, limit - e.logical) });
  }
  const blocks = extents.reduce((a, e) => a + e.length, 0);
  if (blocks === 0) return null;
  return { path, ino: inode.ino, inode, extents, blocks, fragments: fragmentCount(extents) };
}

/** Logically contiguous segments of a file's mapping (each moved with one movedata call). */
function segments(extents: readonly Extent[]): { logical: number; length: number }[] {
  const segs: { logical: number; length: number }[] = [];
  for (const e of extents) {
    const last = segs[segs.length - 1];
    if (last && last.logical + last.length === e.logical) last.length += e.length;
    else segs.push({ logical: e.logical, length: e.length });
  }
  return segs;
}

async function freeRuns(fs: Filesystem): Promise<FreeRun[]> {
  const bs = fs.blockSize;
  return (await getFreeBlocks(fs)).map((r) => ({ start: r.start / bs, length: r.len / bs }));
}

function takeRun(runs: FreeRun[], start: number, length: number): void {
  const i = runs.findIndex((r) => r.start <= start && start + length <= r.start + r.length);
  if (i < 0) return;
  const r = runs[i]!;
  const parts: FreeRun[] = [];
  if (start > r.start) parts.push({ start: r.start, length: start - r.start });
  if (r.start + r.length > start + length) parts.push({ start: start + length, length: r.start + r.length - start - length });
  runs.splice(i, 1, ...parts);
}

function giveBack(runs: FreeRun[], extents: readonly Extent[]): void {
  for (const e of extents) runs.push({ start: e.physical, length: e.length });
  runs.sort((a, b) => a.start - b.start);
  for (let i = 1; i < runs.length; ) {
    const a = runs[i - 1]!, b = runs[i]!;
    if (a.start + a.length >= b.start) {
      a.length = Math.max(a.length, b.start + b.length - a.start);
      runs.splice(i, 1);
    } else i++;
  }
}

/** Best fit: the smallest free run that holds `blocks`, excluding the file's own blocks' neighbourhood is unnecessary (they are in use). */
function bestFit(runs: readonly FreeRun[], blocks: number, below?: number): FreeRun | null {
  let best: FreeRun | null = null;
  for (const r of runs) {
    if (r.length < blocks) continue;
    if (below !== undefined && r.start >= below) continue;
    if (!best || r.length < best.length || (r.length === best.length && r.start < best.start)) best = r;
  }
  return best;
}

interface Window {
  start: number;
  evictions: { file: FileInfo; to: FreeRun }[];
}

/**
 * Find a window of `f.blocks` blocks made only of free space and of other
 * (movable) files that can each be moved, whole and contiguous, into free
 * runs outside the window; prefer the window that moves the fewest bytes.
 * Anything else in use (metadata, directories, f itself, fragmented or
 * unmovable files) makes a window invalid.
 */
export function findWindowPlan(runs: readonly FreeRun[], movable: readonly { id: number; start: number; length: number }[], used: readonly FreeRun[], need: number, limit: number):
  { start: number; moves: { id: number; to: FreeRun }[] } | null {
  // Candidate starts: beginnings of free runs and of movable files.
  const starts = [...runs.map((r) => r.start), ...movable.map((m) => m.start)].sort((a, b) => a - b);
  let best: { start: number; cost: number; ids: number[] } | null = null;
  const lowerBound = <T extends { start: number; length: number }>(arr: readonly T[], x: number): number => {
    // first index whose interval ends after x
    let lo = 0, hi = arr.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (arr[mid]!.start + arr[mid]!.length <= x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  for (const w of starts) {
    const end = w + need;
    if (end > limit) continue; // the window must lie inside the filesystem
    let cost = 0;
    const ids: number[] = [];
    let ok = true;
    // Every used block inside the window must belong to a movable file.
    for (let ui = lowerBound(used, w); ui < used.length && used[ui]!.start < end && ok; ui++) {
      const u = used[ui]!;
      let cur = Math.max(u.start, w);
      const stop = Math.min(u.start + u.length, end);
      while (cur < stop) {
        const mi = lowerBound(movable, cur);
        const m = movable[mi];
        if (!m || m.start > cur) { ok = false; break; }
        if (!ids.includes(m.id)) { ids.push(m.id); cost += m.length; }
        cur = m.start + m.length;
      }
      if (best && cost >= best.cost) ok = false;
    }
    if (!ok || (best && cost >= best.cost)) continue;
    best = { start: w, cost, ids };
    if (cost === 0) break;
  }
  if (!best) return null;
  // Place evicted files best-fit into runs outside the window (largest first).
  const w0 = best.start, w1 = best.start + need;
  const avail: FreeRun[] = [];
  for (const r of runs) {
    if (r.start < w0) avail.push({ start: r.start, length: Math.min(r.length, w0 - r.start) });
    if (r.start + r.length > w1) { const s = Math.max(r.start, w1); avail.push({ start: s, length: r.start + r.length - s }); }
  }
  const moves: { id: number; to: FreeRun }[] = [];
  const order = best.ids.map((id) => movable.find((m) => m.id === id)!).sort((a, b) => b.length - a.length);
  for (const m of order) {
    const t = bestFit(avail, m.length);
    if (!t) return null;
    moves.push({ id: m.id, to: { start: t.start, length: m.length } });
    t.start += m.length;
    t.length -= m.length;
  }
  return { start: w0, moves };
}

function findWindow(fs: Filesystem, runs: readonly FreeRun[], files: readonly FileInfo[], f: FileInfo): Window | null {
  // used = complement of free runs within the data area
  const used: FreeRun[] = [];
  let pos = fs.sb.s_first_data_block;
  for (const r of runs) {
    if (r.start > pos) used.push({ start: pos, length: r.start - pos });
    pos = r.start + r.length;
  }
  if (pos < fs.sb.blocksCount) used.push({ start: pos, length: fs.sb.blocksCount - pos });
  const movable = files
    .map((x, id) => ({ x, id }))
    .filter(({ x }) => x.ino !== f.ino && x.extents.length > 0 && fragmentCount(x.extents) === 1 && x.extents[x.extents.length - 1]!.physical + x.extents[x.extents.length - 1]!.length - x.extents[0]!.physical === x.blocks)
    .map(({ x, id }) => ({ id, start: x.extents[0]!.physical, length: x.blocks }))
    .sort((a, b) => a.start - b.start);
  const plan = findWindowPlan(runs, movable, used, f.blocks, fs.sb.blocksCount);
  if (!plan) return null;
  return { start: plan.start, evictions: plan.moves.map((m) => ({ file: files[m.id]!, to: m.to })) };
}

/**
 * The donor: one temporary inode on the orphan list, reused for every move
 * (after a movedata its range is a hole again). Created on first use,
 * released at the end; a crash leaves it to orphan processing.
 */
class Donor {
  private ino: number | null = null;
  constructor(private readonly fs: Filesystem) {}

  async get(goalBlock: number): Promise<number> {
    if (this.ino === null) this.ino = await createTempFile(this.fs, { goalGroup: Math.floor((goalBlock - this.fs.sb.s_first_data_block) / this.fs.sb.s_blocks_per_group) });
    return this.ino;
  }

  /** Drop it (after a failed move it may still own blocks). */
  async release(): Promise<void> {
    if (this.ino === null) return;
    const ino = this.ino;
    this.ino = null;
    await releaseTempFile(this.fs, ino);
  }
}

/** Move one file into `start` (a free run of at least f.blocks): allocate into the donor, then movedata. */
async function moveFile(fs: Filesystem, donor: Donor, f: FileInfo, start: number): Promise<number> {
  const bs = fs.blockSize;
  const tmp = await donor.get(start);
  try {
    // Reserve the whole target for the donor in one transaction, mirroring the file's logical
    // layout (so holes stay holes), then splice it in with movedata over the mapped range.
    let p = start;
    const segs = segments(f.extents);
    const requests = segs.map((s) => {
      const r = { offset: s.logical * bs, len: s.length * bs, goal: p * bs, flags: ALLOC_FIXED_START | ALLOC_FIXED_LEN | ALLOC_CONTIGUOUS };
      p += s.length;
      return r;
    });
    await allocateRanges(fs, tmp, requests);
    const first = segs[0]!, last = segs[segs.length - 1]!;
    await movedata(fs, f.ino, tmp, { from: first.logical * bs, len: (last.logical + last.length - first.logical) * bs });
  } catch (e) {
    await donor.release();
    throw e;
  }
  return f.blocks * bs;
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

export async function defrag(fs: Filesystem, opts: DefragOptions = {}): Promise<DefragSummary> {
  const t0 = Date.now();
  const wholeFs = !opts.paths || opts.paths.length === 0;
  if (!opts.dryRun && fs.readOnly) throw new Ext4Error('EROFS', 'the filesystem is open read-only');
  if (!opts.dryRun) {
    // Every corruption the allocator would meet mid-run is found before the first write
    // (a bad bitmap found later would leave the donor orphan behind a refused cleanup).
    await assertSpaceConsistent(fs);
    await checkAllocatable(fs);
  }
  const files = await collectFiles(fs, wholeFs ? ['/'] : opts.paths!);
  const runs = await freeRuns(fs);
  const summary: DefragSummary = {
    files: files.length,
    filesMoved: 0,
    moves: 0,
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
    errors: [],
  };
  const movedInos = new Set<number>();
  const donor = new Donor(fs);
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
  const refresh = async (f: FileInfo): Promise<FileInfo | null> => fileInfo(fs, await fs.readInode(f.ino), f.path);

  const execute = async (f: FileInfo, target: FreeRun, phase: PlannedMove['phase']): Promise<boolean> => {
    summary.plan.push({ path: f.path, ino: f.ino, blocks: f.blocks, fragmentsBefore: f.fragments, target: [{ start: target.start, length: f.blocks }], fragmentsAfter: 1, phase });
    takeRun(runs, target.start, f.blocks);
    if (opts.dryRun) {
      giveBack(runs, f.extents);
      return true;
    }
    try {
      summary.bytesMoved += await moveFile(fs, donor, f, target.start);
      giveBack(runs, f.extents);
      summary.moves++;
      movedInos.add(f.ino);
      summary.filesMoved = movedInos.size;
      return true;
    } catch (e) {
      if (!isExt4Error(e)) throw e;
      // Space taken by a concurrent writer, or the file changed: re-read the free space and go on.
      summary.errors.push({ path: f.path, code: e.code, message: e.message });
      runs.splice(0, runs.length, ...(await freeRuns(fs)));
      return false;
    }
  };

  try {
    // Phase 1: make fragmented files contiguous (locality order, best fit).
    const work = files.filter((f) => f.fragments > 1);
    let done = 0;
    for (const f0 of work) {
      if (!budgetLeft()) break;
      opts.onProgress?.({ phase: 'defrag', done: done++, total: work.length, path: f0.path, bytesMoved: summary.bytesMoved });
      const f = opts.dryRun ? f0 : await refresh(f0);
      if (!f || f.fragments <= 1) continue;
      let target = bestFit(runs, f.blocks);
      if (!target && wholeFs) {
        // No free run is large enough today: clear a window by moving the files in it elsewhere.
        const others = opts.dryRun ? files : (await Promise.all(files.map(async (x) => (x.ino === f.ino ? f : await refresh(x))))).filter((x): x is FileInfo => x !== null);
        const w = findWindow(fs, runs, others, f);
        if (w) {
          let ok = true;
          for (const { file, to } of w.evictions) {
            if (!budgetLeft() || !(await execute(file, to, 'evict'))) { ok = false; break; }
          }
          if (ok) target = { start: w.start, length: f.blocks };
        }
      }
      if (!target) {
        summary.filesSkipped++;
        continue;
      }
      await execute(f, target, 'defrag');
    }

    // Phase 2 (whole fs): compaction — move files from the end of the used space into lower holes.
    if (wholeFs && opts.compact !== false && summary.stoppedBy === 'done') {
      const current = opts.dryRun ? files : (await Promise.all(files.map(refresh))).filter((x): x is FileInfo => x !== null);
      const single = current.filter((f) => fragmentCount(f.extents) === 1).sort((a, b) => b.extents[0]!.physical - a.extents[0]!.physical);
      let n = 0;
      for (const f of single) {
        if (!budgetLeft()) break;
        if (runs.length <= 1) break;
        const at = f.extents[0]!.physical;
        // Only move a file down into a hole that lies before it, and only if that does not add a free fragment:
        // the hole must be filled exactly, or the file's old place must touch free space.
        const target = bestFit(runs, f.blocks, at);
        if (!target) continue;
        const touchesFree = runs.some((r) => r.start + r.length === at || r.start === at + f.blocks);
        if (target.length !== f.blocks && !touchesFree) continue;
        opts.onProgress?.({ phase: 'compact', done: n++, total: single.length, path: f.path, bytesMoved: summary.bytesMoved });
        const fresh = opts.dryRun ? f : await refresh(f);
        if (!fresh || fragmentCount(fresh.extents) !== 1 || fresh.extents[0]!.physical !== at) continue;
        await execute(fresh, target, 'compact');
      }
      // Slide: in address order, each file moves down into the lowest free run that holds it,
      // so the files pack towards the start of each region between immovable metadata and the
      // free space coalesces behind them.
      const now = (opts.dryRun ? single : (await Promise.all(single.map(refresh))).filter((x): x is FileInfo => x !== null))
        .filter((f) => fragmentCount(f.extents) === 1)
        .sort((a, b) => a.extents[0]!.physical - b.extents[0]!.physical);
      for (const f of now) {
        if (!budgetLeft() || runs.length <= 1) break;
        const at = f.extents[0]!.physical;
        const lowest = runs.find((r) => r.start < at && r.length >= f.blocks);
        if (!lowest) continue;
        opts.onProgress?.({ phase: 'compact', done: n++, total: single.length + now.length, path: f.path, bytesMoved: summary.bytesMoved });
        await execute(f, { start: lowest.start, length: f.blocks }, 'compact');
      }
    }
  } finally {
    await donor.release();
  }
  const after = opts.dryRun ? null : await collectFiles(fs, wholeFs ? ['/'] : opts.paths!);
  summary.extentsAfter = after ? after.reduce((a, f) => a + f.fragments, 0) : summary.extentsBefore - summary.plan.filter((p) => p.phase === 'defrag').reduce((a, p) => a + p.fragmentsBefore - 1, 0);
  const finalRuns = opts.dryRun ? runs : await freeRuns(fs);
  summary.freeExtentsAfter = finalRuns.length;
  summary.largestFreeAfter = finalRuns.reduce((a, r) => Math.max(a, r.length), 0);
  summary.seconds = (Date.now() - t0) / 1000;
  return summary;
}
