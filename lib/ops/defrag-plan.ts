/**
 * The defragmenter's planner: pure, over an in-memory model of the space —
 * each movable file's extents (the reverse map, restricted to what may move)
 * and a sorted free-extent index; every other block is unmovable (metadata,
 * directories, extent-tree blocks, files we must not touch).
 *
 * It plans a global order of moves and predicts the result:
 *  1. defrag: fragmented files, smallest first, best fit into a free run;
 *     when none fits, a window is made: the cheapest stretch of S blocks
 *     holding no unmovable block is evacuated (pieces of any file, fragmented
 *     ones too: they are rewritten whole on their own turn) into holes
 *     elsewhere (best fit, smallest first, split over holes if need be), then
 *     the file goes there whole. Evacuation only needs the free space that
 *     exists outside the window (the window's own free blocks stay reserved).
 *  2. compact: contiguous files move down (exact fills from the top, then a
 *     first-fit slide in address order; a file next to the gap below it slides
 *     down in gap-sized chunks), so free space coalesces at the end.
 * Each step moves some logical ranges of one file to free physical blocks:
 * the executor does it with allocate (into a donor) + movedata, so the real
 * run's result is the prediction.
 */
import { Ext4Error } from '../errors.js';
import type { Extent } from '../ext4/extents.js';
import { fragmentCount, mappedBlocks, physicalRuns } from '../ext4/extent-map.js';
import { layOut } from './move-batch.js';

export interface Run {
  start: number;
  length: number;
}

export interface PlanFile {
  ino: number;
  path: string;
  /** Mapped extents within the file's size, sorted by logical block. */
  extents: Extent[];
  /** Its extent-tree blocks (none when the tree fits in the inode). */
  treeBlocks: number[];
}

/**
 * One move: the blocks mapped in logical [logical, logical+length) of a file go to `target`
 * (physical runs, in logical order) — exactly a FileMove of moveFiles (move-batch.ts).
 */
export interface PlanStep {
  /** Index into the files given to planDefrag. */
  file: number;
  phase: 'defrag' | 'evict' | 'compact';
  logical: number;
  length: number;
  target: Run[];
  /** The file's extents when the step runs (the executor's staleness check). */
  expect: Extent[];
  fragmentsBefore: number;
  fragmentsAfter: number;
}

export interface PlanPrediction {
  extents: number;
  freeExtents: number;
  largestFree: number;
  freeBlocks: number;
}

export interface Plan {
  steps: PlanStep[];
  /** Files that could not be made ideal. */
  skipped: number[];
  /** Each file's extents after the plan. */
  after: Extent[][];
  before: PlanPrediction;
  predicted: PlanPrediction;
  /**
   * False when planning stopped after a step whose file outgrows the inode's four extent slots:
   * the new tree block goes where the allocator puts it, which the model cannot know, so the
   * caller executes the steps and plans again from the disk (the dry run plans on, ignoring it).
   */
  complete: boolean;
}

export interface PlanOptions {
  /** Blocks per ideal extent (128 MiB): a file of n blocks is ideal with ceil(n / this) extents. */
  idealExtentBlocks: number;
  compact?: boolean;
  /** Only these file indices are defragmented (others may still be evicted / compacted when wholeFs). */
  only?: ReadonlySet<number>;
  /** Whether windows may be made and other files moved (whole-filesystem mode). */
  wholeFs: boolean;
  /** Stop at the first step that allocates an extent-tree block (see Plan.complete). */
  stopAtTreeGrowth?: boolean;
}

/** Extents the inode holds itself (i_block); one more needs a tree block (ext4_ext_grow_indepth). */
const ROOT_EXTENTS = 4;

class TreeGrowth extends Error {}

/** The free-extent index: sorted, non-adjacent runs. */
export class FreeIndex {
  runs: Run[];
  constructor(runs: readonly Run[]) {
    this.runs = runs.filter((r) => r.length > 0).map((r) => ({ ...r })).sort((a, b) => a.start - b.start);
  }
  /** Index of the first run ending after b. */
  private at(b: number): number {
    let lo = 0, hi = this.runs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const r = this.runs[mid]!;
      if (r.start + r.length <= b) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  get count(): number { return this.runs.length; }
  get total(): number { return this.runs.reduce((a, r) => a + r.length, 0); }
  get largest(): number { return this.runs.reduce((a, r) => Math.max(a, r.length), 0); }
  isFree(start: number, length: number): boolean {
    const r = this.runs[this.at(start)];
    return !!r && r.start <= start && start + length <= r.start + r.length;
  }
  take(start: number, length: number): void {
    const i = this.at(start);
    const r = this.runs[i];
    if (!r || r.start > start || start + length > r.start + r.length) throw new Ext4Error('EFSCORRUPTED', `defrag plan: blocks ${start}+${length} are not free in the model`, { structure: 'free-extent index', location: { kind: 'block', block: start, count: length } });
    const parts: Run[] = [];
    if (start > r.start) parts.push({ start: r.start, length: start - r.start });
    if (r.start + r.length > start + length) parts.push({ start: start + length, length: r.start + r.length - start - length });
    this.runs.splice(i, 1, ...parts);
  }
  give(start: number, length: number): void {
    if (length <= 0) return;
    const i = this.at(start - 1 < 0 ? 0 : start - 1);
    // runs[i] is the first run ending at or after start (possibly touching it)
    let j = i;
    let s = start, e = start + length;
    while (j < this.runs.length && this.runs[j]!.start <= e) {
      const r = this.runs[j]!;
      if (r.start + r.length < s) { j++; continue; }
      if (r.start < e && r.start + r.length > s) throw new Ext4Error('EFSCORRUPTED', `defrag plan: blocks ${start}+${length} are free already (a file and the free space both claim them)`, { structure: 'free-extent index', location: { kind: 'block', block: start, count: length } });
      s = Math.min(s, r.start);
      e = Math.max(e, r.start + r.length);
      j++;
    }
    let k = i;
    while (k < j && this.runs[k]!.start + this.runs[k]!.length < start) k++;
    this.runs.splice(k, j - k, { start: s, length: e - s });
  }
  /** Smallest run holding n blocks (lowest on ties), optionally only runs ending by `below`. */
  bestFit(n: number, below = Infinity): Run | null {
    let best: Run | null = null;
    for (const r of this.runs) {
      if (r.start + r.length > below) break;
      if (r.length < n) continue;
      if (!best || r.length < best.length) best = r;
      if (r.length === n) break;
    }
    return best;
  }
  /** Lowest run holding n blocks and ending by `below`. */
  firstFit(n: number, below = Infinity): Run | null {
    for (const r of this.runs) {
      if (r.start + r.length > below) break;
      if (r.length >= n) return r;
    }
    return null;
  }
}

/** How many free extents the model would have after moving `length` blocks from `from` to `to` (the model is left as it was). */
function freeExtentsAfterMove(free: FreeIndex, from: number, to: number, length: number): number {
  free.take(to, length);
  free.give(from, length);
  const n = free.count;
  free.take(from, length);
  free.give(to, length);
  return n;
}

/** The logical ranges that sit on physical blocks [start, start+length) of a file. */
function rangesOnPhysical(extents: readonly Extent[], start: number, length: number): { logical: number; length: number; from: number }[] {
  const out: { logical: number; length: number; from: number }[] = [];
  for (const e of extents) {
    const s = Math.max(e.physical, start), t = Math.min(e.physical + e.length, start + length);
    if (s < t) out.push({ logical: e.logical + (s - e.physical), length: t - s, from: s });
  }
  return out.sort((a, b) => a.from - b.from);
}

export function planDefrag(filesIn: readonly PlanFile[], freeIn: readonly Run[], bounds: { first: number; end: number }, opts: PlanOptions): Plan {
  const free = new FreeIndex(freeIn);
  const files = filesIn.map((f) => f.extents.map((e) => ({ ...e })));
  const trees = filesIn.map((f) => f.treeBlocks.slice());
  const steps: PlanStep[] = [];
  const ideal = (i: number): boolean => fragmentCount(files[i]!) <= Math.max(1, Math.ceil(mappedBlocks(files[i]!) / opts.idealExtentBlocks));
  const contiguous = (i: number): boolean => physicalRuns(files[i]!).length === 1;
  const measure = (): PlanPrediction => ({
    extents: files.reduce((a, x) => a + fragmentCount(x), 0),
    freeExtents: free.count,
    largestFree: free.largest,
    freeBlocks: free.total,
  });
  const before = measure();

  /** Record and apply a step; old blocks go back to the free index except those inside `reserved`. */
  const move = (i: number, phase: PlanStep['phase'], logical: number, length: number, target: Run[], reserved?: Run): void => {
    const expect = files[i]!;
    const { newExtents, freed } = layOut(expect, logical, length, target);
    for (const r of target) free.take(r.start, r.length);
    for (const f of freed) {
      const s = f.physical, e = f.physical + f.length;
      if (!reserved) { free.give(s, f.length); continue; }
      const ws = reserved.start, we = reserved.start + reserved.length;
      if (s < ws) free.give(s, Math.min(e, ws) - s);
      if (e > we) free.give(Math.max(s, we), e - Math.max(s, we));
    }
    files[i] = newExtents;
    steps.push({ file: i, phase, logical, length, target, expect, fragmentsBefore: fragmentCount(expect), fragmentsAfter: fragmentCount(newExtents) });
    // The tree collapses into the inode when the extents fit there again (remap → rebuild), freeing
    // its blocks; growing out of the inode allocates one somewhere we cannot predict.
    if (newExtents.length <= ROOT_EXTENTS && trees[i]!.length) {
      for (const b of trees[i]!) if (b >= 0) free.give(b, 1);
      trees[i] = [];
    } else if (newExtents.length > ROOT_EXTENTS && !trees[i]!.length) {
      trees[i] = [-1];
      if (opts.stopAtTreeGrowth) throw new TreeGrowth();
    }
  };
  /** The whole file to one run at `start`. */
  const moveWhole = (i: number, phase: PlanStep['phase'], start: number, reserved?: Run): void => {
    const x = files[i]!;
    const lb = x[0]!.logical, end = x[x.length - 1]!.logical + x[x.length - 1]!.length;
    move(i, phase, lb, end - lb, [{ start, length: mappedBlocks(x) }], reserved);
  };

  /** Move physical blocks [start, start+length) of file i into free space (best fit, else split over the largest runs). */
  const evictPiece = (i: number, start: number, length: number, reserved: Run): void => {
    for (const p of rangesOnPhysical(files[i]!, start, length)) {
      const target: Run[] = [];
      let off = 0;
      while (off < p.length) {
        const need = p.length - off;
        const t = free.bestFit(need) ?? free.runs.reduce<Run | null>((a, r) => (!a || r.length > a.length ? r : a), null);
        if (!t) throw new Ext4Error('ENOSPC', `defrag plan: no free space left to evacuate blocks ${p.from}+${p.length}`, { structure: 'free-extent index', location: { kind: 'block', block: p.from, count: p.length } });
        const n = Math.min(need, t.length);
        const at = t.start;
        free.take(at, n);
        target.push({ start: at, length: n });
        off += n;
      }
      for (const q of target) free.give(q.start, q.length);
      move(i, 'evict', p.logical, p.length, target, reserved);
    }
  };

  /** The cheapest stretch of n blocks with no unmovable block whose movable content fits outside it. */
  const findWindow = (self: number, n: number): { start: number; owners: Map<number, Run[]> } | null => {
    type Seg = Run & { owner: number }; // owner -1 = free
    const segs: Seg[] = free.runs.map((r) => ({ ...r, owner: -1 }));
    files.forEach((x, i) => { for (const r of physicalRuns(x)) segs.push({ ...r, owner: i }); });
    segs.sort((a, b) => a.start - b.start);
    const total = free.total;
    const whole = files.map((_, i) => contiguous(i));
    let best: { start: number; cost: number } | null = null;
    for (let i = 0; i < segs.length; i++) {
      const c = segs[i]!.start;
      const end = c + n;
      if (end > bounds.end) break;
      let pos = c, cost = 0, used = 0, freeIn = 0, ok = true;
      for (let j = i; pos < end; j++) {
        const s = segs[j];
        if (!s || s.start > pos) { ok = false; break; }
        const take = Math.min(s.start + s.length, end) - pos;
        if (s.owner < 0) freeIn += take;
        else {
          used += take;
          // Pieces of files that must move anyway cost less than breaking a contiguous file.
          cost += s.owner === self || !whole[s.owner] ? take : 2 * take;
        }
        pos += take;
        if (best && cost >= best.cost) { ok = false; break; }
      }
      if (!ok || used > total - freeIn) continue;
      best = { start: c, cost };
      if (cost === 0) break;
    }
    if (!best) return null;
    const owners = new Map<number, Run[]>();
    for (const s of segs) {
      if (s.owner < 0) continue;
      const a = Math.max(s.start, best.start), b = Math.min(s.start + s.length, best.start + n);
      if (a < b) {
        const l = owners.get(s.owner) ?? [];
        l.push({ start: a, length: b - a });
        owners.set(s.owner, l);
      }
    }
    return { start: best.start, owners };
  };

  const skipped = new Set<number>();
  let complete = true;
  try {
  const visits = new Map<number, number>();
  const wanted = (i: number): boolean => !opts.only || opts.only.has(i);
  const queue = files.map((_, i) => i).filter((i) => wanted(i) && !ideal(i)).sort((a, b) => mappedBlocks(files[a]!) - mappedBlocks(files[b]!));
  for (let q = 0; q < queue.length; q++) {
    const i = queue[q]!;
    if (ideal(i)) continue;
    visits.set(i, (visits.get(i) ?? 0) + 1);
    const n = mappedBlocks(files[i]!);
    const fit = free.bestFit(n);
    if (fit) {
      moveWhole(i, 'defrag', fit.start);
      skipped.delete(i);
      continue;
    }
    const w = opts.wholeFs ? findWindow(i, n) : null;
    if (!w) { skipped.add(i); continue; }
    const window: Run = { start: w.start, length: n };
    // Reserve the window's free blocks, then empty it: smallest owners first.
    for (const r of free.runs.slice()) {
      const a = Math.max(r.start, window.start), b = Math.min(r.start + r.length, window.start + n);
      if (a < b) free.take(a, b - a);
    }
    const owners = [...w.owners.entries()].sort((a, b) => a[1].reduce((s, r) => s + r.length, 0) - b[1].reduce((s, r) => s + r.length, 0));
    for (const [o, pieces] of owners) {
      const whole = mappedBlocks(files[o]!);
      const fitWhole = o !== i && contiguous(o) ? free.bestFit(whole) : null;
      if (fitWhole) { moveWhole(o, 'evict', fitWhole.start, window); continue; }
      for (const p of pieces.sort((a, b) => a.length - b.length)) evictPiece(o, p.start, p.length, window);
      if (o !== i && wanted(o) && !ideal(o) && (visits.get(o) ?? 0) < 3) queue.push(o);
    }
    free.give(window.start, n);
    moveWhole(i, 'defrag', window.start);
    skipped.delete(i);
  }
  for (let i = 0; i < files.length; i++) if (wanted(i) && !ideal(i)) skipped.add(i);

  if (opts.wholeFs && opts.compact !== false) {
    for (let pass = 0; pass < 4; pass++) {
      let moved = 0;
      // Fills from the top: only moves that remove a free extent (an exact fill, or leaving a
      // place next to free space).
      const top = files.map((_, i) => i).filter(contiguous).sort((a, b) => physicalRuns(files[b]!)[0]!.start - physicalRuns(files[a]!)[0]!.start);
      for (const i of top) {
        const at = physicalRuns(files[i]!)[0]!;
        const hole = free.bestFit(at.length, at.start);
        if (!hole) continue;
        if (freeExtentsAfterMove(free, at.start, hole.start, at.length) >= free.count) continue;
        moveWhole(i, 'compact', hole.start);
        moved++;
      }
      // Slide in address order: the lowest run that holds the file, or the gap just below it in chunks.
      const asc = files.map((_, i) => i).filter(contiguous).sort((a, b) => physicalRuns(files[a]!)[0]!.start - physicalRuns(files[b]!)[0]!.start);
      for (const i of asc) {
        const at = physicalRuns(files[i]!)[0]!;
        const low = free.firstFit(at.length, at.start);
        if (low) {
          if (freeExtentsAfterMove(free, at.start, low.start, at.length) <= free.count) { moveWhole(i, 'compact', low.start); moved++; continue; }
        }
        const gap = free.runs.find((r) => r.start + r.length === at.start);
        if (!gap || Math.ceil(at.length / gap.length) > 8) continue;
        const g = gap.length, t = gap.start;
        for (let k = 0; k * g < at.length; k++) {
          const len = Math.min(g, at.length - k * g);
          for (const p of rangesOnPhysical(files[i]!, at.start + k * g, len)) move(i, 'compact', p.logical, p.length, [{ start: t + (p.from - at.start), length: p.length }]);
        }
        moved++;
      }
      if (!moved) break;
    }
  }
  } catch (e) {
    if (!(e instanceof TreeGrowth)) throw e;
    complete = false;
  }
  return { steps, skipped: [...skipped], after: files, before, predicted: measure(), complete };
}
