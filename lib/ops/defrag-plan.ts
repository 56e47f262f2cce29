/**
 * The defragmenter's planner: pure, over an in-memory model of the space —
 * each movable file's extents (the reverse map, restricted to what may move)
 * and a sorted free-extent index; every other block is unmovable (metadata,
 * directories, extent-tree blocks, files we must not touch).
 *
 * It plans a global order of moves and predicts the result. Whole-filesystem
 * runs first choose the final layout — ideal files stay; each other file gets
 * one place: either packed first fit from the start in the order of their last
 * block (finalLayout), or placed so that its largest piece stays where it is
 * (anchoredLayouts: non-overlapping places chosen for the most blocks kept, the
 * larger half of the free space kept whole at the top, the rest best fit) —
 * and move toward it like a compacting collector (planCollector). A block
 * already where the layout puts it never moves; a file's other blocks go
 * straight into its place as soon as their blocks there are free; when no
 * place is ready, the one nearest to free is emptied: each piece in it goes
 * straight to its own file's place where that is free, the rest into scratch
 * space (it moves again on its own turn) — the scratch run reusable soonest,
 * then best fit: one free from the start, or freed by the earliest committed
 * wave, rather than what the last fill freed, so that emptying a place need
 * not wait for the fill before it (63 → 38 waves on the 256 MiB 90 % image,
 * 80 → 60 on the 1 GiB one). Each layout that meets the targets
 * is planned and the cheapest plan kept: blocks copied plus its dependency
 * waves (a commit each) at 6 MiB apiece, priced as the plan grows (a plan
 * stops once what it copied, its waves and the blocks still out of place
 * reach the best plan's cost). On the kernel-fragmented 256 MiB
 * and 1 GiB images at 90 % that copies 1.04-1.07x the fragmented data (the
 * packed layout alone: 1.38-1.41x; the greedy planner below: 2.1-2.9x).
 * When that finds no plan, and for named files, the greedy planner:
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
 * Each step moves some logical ranges of one file to free physical blocks,
 * never onto the file's own blocks (moveFiles refuses that): the executor
 * (move-batch.ts) reserves exactly those targets, so the real run's result is
 * the prediction.
 */
import { Ext4Error } from '../errors.js';
import type { Extent } from '../ext4/extents.js';
import { fragmentCount, mappedBlocks, mappedIn, physicalRuns } from '../ext4/extent-map.js';
import { anchoredLayouts, finalLayout, largestFreeCap, largestFreeTarget, mergeRuns, ROOT_EXTENTS, subtractRuns, TARGET_FREE_EXTENTS, type Run } from './defrag-layout.js';
import { layOut } from './move-batch.js';
import { scheduleMoves, WaveScheduler, type BlockRun, type MoveFootprint } from './move-schedule.js';

export type { Run } from './defrag-layout.js';

export interface PlanFile {
  ino: number;
  path: string;
  /** Mapped extents within the file's size, sorted by logical block. */
  extents: Extent[];
  /** Its extent-tree blocks (none when the tree fits in the inode), or its indirect blocks. */
  treeBlocks: number[];
  /**
   * Block-mapped (ext2/ext3): its indirect blocks stay where they are whatever moves (a block map
   * is positional), so they neither collapse nor grow.
   */
  blockMapped?: boolean;
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
  /**
   * Where the file's new extent-tree leaf goes when this step makes a tree-less file outgrow the
   * inode: the allocator's pick, predicted (see Model.growTree); the executor checks it.
   */
  treeBlock?: number;
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
   * False when planning stopped after a step whose file outgrows the inode's four extent slots
   * by more than one leaf holds (leafExtents): the model does not predict where such a tree goes,
   * so the caller executes the steps and plans again from the disk (the dry run plans on).
   */
  complete: boolean;
  /**
   * Whether a run following the plan is expected to make exactly its steps and end as predicted:
   * false when a step makes a tree-less file outgrow one extent-tree leaf (the model does not
   * predict where such a tree goes: the real run stops after that step and plans the rest again
   * from the disk; a dry run plans on past it), or gives a file with a tree more extents than its
   * leaves hold (Model.treeOutgrown). Either way the real run's later moves and result can differ
   * from this plan's. True: no step is known to need a block the model does not place (an edit
   * that splits one full leaf of a tree with room elsewhere is not foreseen).
   */
  exact: boolean;
  /**
   * Each step's dependency wave, as scheduleMoves gives the steps' footprints (move-schedule.ts;
   * a step that grows a tree the model does not place runs no earlier than every step before it)
   * — what moveFiles would work out again from the disk (MoveFilesOptions.waves). Absent when the
   * plan was not scheduled as it grew (the greedy planner) or holds such a step before its last.
   */
  waves?: number[];
  /**
   * Whole-filesystem plans where no run can hold half of the free space (blocks that never move
   * cut it shorter): the longest run moves could free, which the layouts aim for instead.
   */
  largestFreePossible?: number;
}

export interface PlanOptions {
  /** Blocks per ideal extent (128 MiB): a file of n blocks is ideal with ceil(n / this) extents. */
  idealExtentBlocks: number;
  compact?: boolean;
  /** Only these file indices are defragmented (others may still be evicted / compacted when wholeFs). */
  only?: ReadonlySet<number>;
  /** Whether windows may be made and other files moved (whole-filesystem mode). */
  wholeFs: boolean;
  /** Stop at the first step that allocates an extent-tree block it cannot predict (see Plan.complete). */
  stopAtTreeGrowth?: boolean;
  /**
   * Most extents a tree of one leaf is built with (the block's entries less one: remap's rebuild
   * then makes a single leaf); 0 predicts no tree block. A tree-less file that grows to more than
   * four extents and at most this many gets its leaf predicted (Model.growTree).
   */
  leafExtents?: number;
}

/**
 * The plan's moves as the executor's scheduler sees them (move-schedule.ts; move-batch.ts derives
 * the same from the disk): the blocks each step frees — its range's old blocks, the tree blocks of
 * a tree that collapses — and takes, with the allocator's span for a predicted leaf.
 */
export function planFootprints(files: readonly PlanFile[], steps: readonly PlanStep[], bounds: { first: number; end: number }): MoveFootprint[] {
  const trees = files.map((f) => f.treeBlocks.slice());
  return steps.map((s) => {
    const { newExtents, freed } = layOut(s.expect, s.logical, s.length, s.target);
    const collapse = !files[s.file]!.blockMapped && newExtents.length <= ROOT_EXTENTS ? trees[s.file]! : [];
    const fp = footprint(s.file, freed, s.target, collapse, s.treeBlock === undefined ? undefined : { goal: newExtents[0]!.physical, leaf: s.treeBlock }, bounds);
    if (collapse.length) trees[s.file] = [];
    if (s.treeBlock !== undefined) trees[s.file] = [s.treeBlock];
    return fp;
  });
}

/** One step's footprint: its old blocks, the tree blocks a collapse frees, its target, a predicted leaf's search span. */
function footprint(file: number, freed: readonly Extent[], target: readonly Run[], collapsed: readonly number[], leaf: { goal: number; leaf: number } | undefined, bounds: { first: number; end: number }): MoveFootprint {
  const frees: BlockRun[] = freed.map((e) => ({ start: e.physical, length: e.length }));
  for (const b of collapsed) if (b >= 0) frees.push({ start: b, length: 1 });
  if (!leaf) return { file, frees, target };
  const { goal, leaf: b } = leaf;
  const span = goal <= b ? [{ start: goal, length: b - goal + 1 }] : [{ start: goal, length: bounds.end - goal }, { start: bounds.first, length: b - bounds.first + 1 }];
  return { file, frees, target, span };
}

/** Dependency waves of a plan: each is at least one commit of the executor. */
export function planWaves(files: readonly PlanFile[], steps: readonly PlanStep[], bounds: { first: number; end: number }): number {
  return steps.length ? scheduleMoves(planFootprints(files, steps, bounds)).waves.length : 0;
}

/**
 * What anchoredLayouts charges for a place leaving a gap below it, in blocks kept: each is tried
 * (more gaps keep more data in place but leave more free extents).
 */
const GAP_COSTS = [0, 32, 96, 256, 1024];
/**
 * Anchored layouts planned in full, those keeping the most blocks first (a collector run each;
 * on the bench images the first was the cheapest); the packed layout is planned too.
 */
const PLANNED_LAYOUTS = 1;

class TreeGrowth extends Error {}

/** Whether two layouts put the same files in the same runs. */
function sameLayout(a: ReadonlyMap<number, Run>, b: ReadonlyMap<number, Run>): boolean {
  if (a.size !== b.size) return false;
  for (const [file, r] of a) {
    const o = b.get(file);
    if (!o || o.start !== r.start || o.length !== r.length) return false;
  }
  return true;
}

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
  /** The runs meeting [start, end), in order. */
  overlapping(start: number, end: number): Run[] {
    const out: Run[] = [];
    for (let i = this.at(start); i < this.runs.length && this.runs[i]!.start < end; i++) out.push(this.runs[i]!);
    return out;
  }
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
    // (no array of parts spread into splice: a cold step took several allocations per run taken)
    const below = start > r.start, above = r.start + r.length > start + length;
    const hi = above ? { start: start + length, length: r.start + r.length - start - length } : null;
    if (below) {
      this.runs[i] = { start: r.start, length: start - r.start };
      if (hi) this.runs.splice(i + 1, 0, hi);
    } else if (hi) this.runs[i] = hi;
    else this.runs.splice(i, 1);
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
    const runs = this.runs;
    for (let i = 0; i < runs.length; i++) {
      const r = runs[i]!;
      if (r.start + r.length > below) break;
      if (r.length < n) continue;
      if (!best || r.length < best.length) best = r;
      if (r.length === n) break;
    }
    return best;
  }
  /** Lowest run holding n blocks and ending by `below`. */
  firstFit(n: number, below = Infinity): Run | null {
    const runs = this.runs;
    for (let i = 0; i < runs.length; i++) {
      const r = runs[i]!;
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
  for (let i = 0; i < extents.length; i++) {
    const e = extents[i]!;
    const s = Math.max(e.physical, start), t = Math.min(e.physical + e.length, start + length);
    if (s < t) out.push({ logical: e.logical + (s - e.physical), length: t - s, from: s });
  }
  return out.sort((a, b) => a.from - b.from);
}

/** The planner's state: each file's extents and tree blocks, the free index, the steps so far. */
class Model {
  readonly files: Extent[][];
  /**
   * fragmentCount of each file's map, kept as moves replace it (each step reports the count before
   * and after: counted once per map, not twice — a cold pass over the file's extents each time).
   */
  readonly frags: number[];
  readonly trees: number[][];
  /** Files whose map is a block map (their indirect blocks never move). */
  readonly blockMapped: boolean[];
  readonly free: FreeIndex;
  readonly steps: PlanStep[] = [];
  /** Called for every range given back to the free index (the collector tracks its targets with it). */
  onRelease: ((start: number, length: number) => void) | null = null;
  /** Called for every range a step takes from the free index. */
  onTake: ((start: number, length: number) => void) | null = null;
  /** A window whose free blocks are held out of the index while it is emptied (planGreedy). */
  held: Run | null = null;
  /** Tree leaves placed so far (a copy of the free runs taken before one is stale). */
  leavesPlaced = 0;
  /** A step grew a tree the model does not place (Plan.complete is false where the run stops there). */
  unpredictedTree = false;
  /**
   * A step gave a file that has a tree more extents than its blocks hold as full leaves (each taken
   * as a leaf of leafExtents + 1 entries: the trees defrag meets are one level deep until over 1,360
   * extents): the edit must add a block, which the model does not place. The real run goes on (the
   * block may land where a later step moves to: that step fails ENOSPC and the rest is planned
   * again); the plan is not exact.
   */
  treeOutgrown = false;
  /** Plan.exact: no step needs a tree block the model does not place. */
  get exact(): boolean {
    return !this.unpredictedTree && !this.treeOutgrown;
  }
  /** When set, each step's footprint goes to `waves` as it is made (the plan's cost, priced as it grows). */
  bounds: { first: number; end: number } | null = null;
  readonly waves = new WaveScheduler();
  /** Blocks the steps so far copy. */
  copied = 0;
  constructor(filesIn: readonly PlanFile[], freeIn: readonly Run[], private readonly stopAtTreeGrowth: boolean, private readonly leafExtents = 0) {
    this.free = new FreeIndex(freeIn);
    this.files = filesIn.map((f) => f.extents.map((e) => ({ ...e })));
    this.frags = this.files.map(fragmentCount);
    this.trees = filesIn.map((f) => f.treeBlocks.slice());
    this.blockMapped = filesIn.map((f) => !!f.blockMapped);
  }
  private release(start: number, length: number): void {
    if (length <= 0) return;
    this.free.give(start, length);
    this.onRelease?.(start, length);
  }
  measure(): PlanPrediction {
    let extents = 0;
    for (const n of this.frags) extents += n;
    return { extents, freeExtents: this.free.count, largestFree: this.free.largest, freeBlocks: this.free.total };
  }
  /** Record and apply a step; old blocks go back to the free index except those inside `reserved`. */
  move(i: number, phase: PlanStep['phase'], logical: number, length: number, target: Run[], reserved?: Run): void {
    const expect = this.files[i]!;
    const { newExtents, freed } = layOut(expect, logical, length, target);
    // (indexed loops: every step runs them, cold)
    for (let k = 0; k < target.length; k++) {
      const r = target[k]!;
      this.free.take(r.start, r.length);
      this.onTake?.(r.start, r.length);
    }
    // The leaf is placed while the step's own old blocks are still held (the executor frees them
    // at the end of the transaction: the allocator never hands them out in it).
    const tree = this.trees[i]!;
    const treeBlock = !this.blockMapped[i] && newExtents.length > ROOT_EXTENTS && !tree.length && newExtents.length <= this.leafExtents ? this.growTree(newExtents[0]!.physical) : undefined;
    for (let k = 0; k < freed.length; k++) {
      const f = freed[k]!;
      const s = f.physical, e = f.physical + f.length;
      if (!reserved) { this.release(s, f.length); continue; }
      const ws = reserved.start, we = reserved.start + reserved.length;
      if (s < ws) this.release(s, Math.min(e, ws) - s);
      if (e > we) this.release(Math.max(s, we), e - Math.max(s, we));
    }
    const fragmentsBefore = this.frags[i]!, fragmentsAfter = fragmentCount(newExtents);
    this.files[i] = newExtents;
    this.frags[i] = fragmentsAfter;
    const step: PlanStep = { file: i, phase, logical, length, target, expect, fragmentsBefore, fragmentsAfter };
    if (treeBlock !== undefined) step.treeBlock = treeBlock;
    this.steps.push(step);
    for (let k = 0; k < target.length; k++) this.copied += target[k]!.length;
    if (this.bounds) this.waves.add(footprint(i, freed, target, !this.blockMapped[i] && newExtents.length <= ROOT_EXTENTS ? tree : [], treeBlock === undefined ? undefined : { goal: newExtents[0]!.physical, leaf: treeBlock }, this.bounds));
    // The tree collapses into the inode when the extents fit there again (remap → rebuild), freeing
    // its blocks; growing out of the inode allocates a leaf (predicted above when one leaf holds
    // the extents; a larger tree somewhere we do not predict).
    if (this.blockMapped[i]) {
      // indirect blocks stay
    } else if (newExtents.length <= ROOT_EXTENTS && tree.length) {
      this.trees[i] = [];
      for (const b of tree) if (b >= 0) this.release(b, 1);
    } else if (treeBlock !== undefined) {
      this.trees[i] = [treeBlock];
    } else if (newExtents.length > ROOT_EXTENTS && !tree.length) {
      this.trees[i] = [-1];
      this.unpredictedTree = true;
      if (this.stopAtTreeGrowth) throw new TreeGrowth();
    } else if (tree.length && newExtents.length > tree.length * (this.leafExtents + 1)) {
      this.treeOutgrown = true;
    }
  }
  /**
   * The block remapInode gives a new one-leaf tree: the allocator's first free block at or after
   * the goal (the file's first extent's block), wrapping to the start — as of the step, which the
   * executor makes exact by running the moves that touch [goal, leaf] in plan order around it
   * (FileMove.treeBlock; move-schedule.ts `span`). Taken from the free index here.
   */
  private growTree(goal: number): number | undefined {
    const runs = this.free.runs;
    let lo = 0, hi = runs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (runs[mid]!.start + runs[mid]!.length <= goal) lo = mid + 1;
      else hi = mid;
    }
    const r = runs[lo] ?? runs[0];
    if (!r) return undefined;
    const b = runs[lo] ? Math.max(goal, r.start) : r.start;
    // A window being emptied (the greedy planner) holds free blocks the model keeps out of the
    // index but the disk has free: the allocator may pick one of those first.
    const h = this.held;
    if (h && (b >= goal ? h.start <= b && h.start + h.length > goal : h.start <= b || h.start + h.length > goal)) return undefined;
    this.free.take(b, 1);
    this.onTake?.(b, 1);
    this.leavesPlaced++;
    return b;
  }
  /** The whole file to one run at `start`. */
  moveWhole(i: number, phase: PlanStep['phase'], start: number, reserved?: Run): void {
    this.moveTo(i, phase, [{ start, length: mappedBlocks(this.files[i]!) }], reserved);
  }
  /** The whole file to these runs (in logical order). */
  moveTo(i: number, phase: PlanStep['phase'], target: Run[], reserved?: Run): void {
    const x = this.files[i]!;
    const lb = x[0]!.logical, end = x[x.length - 1]!.logical + x[x.length - 1]!.length;
    this.move(i, phase, lb, end - lb, target, reserved);
  }
}

/** A file's ideal extent count: one per started `idealExtentBlocks` (128 MiB), at least one. */
export const idealCount = (x: readonly Extent[], idealExtentBlocks: number): number => Math.max(1, Math.ceil(mappedBlocks(x) / idealExtentBlocks));

class NoPlan extends Error {}

/**
 * Plan toward the final layout like a compacting collector: a file moves once its place is free
 * (waves of independent moves: each wave only frees blocks, so everything ready moves together);
 * when no file is ready, the place that is nearest to free is emptied: what sits there (pieces of
 * files still to move, the file's own pieces) goes into scratch space (free blocks outside every
 * place still to fill: reusable soonest, then best fit; smallest first, split if need be), and those files move on their
 * own turn. Throws NoPlan when the scratch space runs out or a place cannot be emptied.
 */
function planCollector(m: Model, layout: Map<number, Run>, bounds: { first: number; end: number }, minPart: number, cap?: { perWave: number; cost: number }): void {
  const files = m.files;
  // Each file's mapped blocks: a move changes where they are, never how many (summed once here:
  // the owners' sort summed them per comparison, a sixth of a cold 90 % plan's samples).
  const size = files.map(mappedBlocks);
  // pending places, sorted by address, and how many of each one's blocks are still taken
  // (a contiguous file whose place is where it is already has nothing to do)
  let places = [...layout.entries()]
    .filter(([file, run]) => { const at = physicalRuns(files[file]!); return !(at.length === 1 && at[0]!.start === run.start); })
    .map(([file, run]) => ({ file, run, taken: 0, settled: 0 }))
    .sort((a, b) => a.run.start - b.run.start);
  for (const q of places) q.taken = q.run.length - m.free.overlapping(q.run.start, q.run.start + q.run.length).reduce((a, r) => a + Math.min(r.start + r.length, q.run.start + q.run.length) - Math.max(r.start, q.run.start), 0);
  const overlap = (p: (typeof places)[number], start: number, length: number): number => Math.min(start + length, p.run.start + p.run.length) - Math.max(start, p.run.start);
  /** Add `sign` × the blocks of [start, start+length) in each place to its taken count (no array per call: every step calls it). */
  const adjustTaken = (start: number, length: number, sign: number): void => {
    let lo = 0, hi = places.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const r = places[mid]!.run;
      if (r.start + r.length <= start) lo = mid + 1;
      else hi = mid;
    }
    for (let k = lo; k < places.length && places[k]!.run.start < start + length; k++) places[k]!.taken += sign * overlap(places[k]!, start, length);
  };
  m.onRelease = (start, length) => adjustTaken(start, length, -1);
  m.onTake = (start, length) => adjustTaken(start, length, 1);
  /**
   * Runs for n blocks evicted from `victim`'s place: scratch space, free blocks outside every place
   * still to fill (best fit, else the largest runs); when that is short, free blocks in the places
   * filled last (they are emptied again on their turn). Null when there is not enough (or more
   * than maxRuns would be needed). The pools are taken once per place emptied (blocks freed
   * meanwhile wait for the next one) and shrink as they are handed out.
   */
  /**
   * `later` is worked out at its first use from what it is made of when the pools are taken (most
   * pools never use it: three run subtractions per place emptied, cold), then the runs directParts
   * took since (`cuts`), in order: the runs it would have held.
   */
  let pools: { scratch: Run[]; later: Run[] | null; leaves: number; free: readonly Run[]; places: readonly Run[]; victim: Run; cuts: Run[] } | null = null;
  const laterOf = (q: NonNullable<typeof pools>): Run[] => {
    if (!q.later) {
      // (the free blocks in the places, less the victim's, highest first: two linear walks, no sort)
      const later = subtractRuns(subtractRuns(q.free, subtractRuns([{ start: 0, length: bounds.end }], q.places)), [q.victim]);
      // (the cuts are disjoint — each was free when taken — so one subtraction of all of them
      // leaves the runs the one-by-one subtractions left)
      q.later = (q.cuts.length ? subtractRuns(later, q.cuts.sort((a, b) => a.start - b.start)) : later).reverse();
    }
    return q.later;
  };
  const findScratch = (n: number, victim: Run, maxRuns = Infinity, floor = 0): Run[] | null => {
    // (a tree leaf placed since may sit in a pooled run: take them afresh)
    if (pools && pools.leaves !== m.leavesPlaced) pools = null;
    if (!pools) {
      // (the free index's runs are replaced, never changed: a copy of the list keeps them)
      const runs = places.map((p) => p.run);
      pools = { leaves: m.leavesPlaced, scratch: subtractRuns(m.free.runs, runs), later: null, free: m.free.runs.slice(), places: runs, victim, cuts: [] };
    }
    const q = pools, scratch = q.scratch;
    /** The first k blocks of each picked run, gone from the pools. */
    const hand = (picks: { r: Run; k: number }[]): Run[] => {
      // (emptied runs stay in the pools, skipped: filtering both pools per hand-out was the
      // collector's largest line in a CPU profile of the 256 MiB 90 % plan)
      const out = picks.map(({ r, k }) => ({ start: r.start, length: k }));
      for (let i = 0; i < picks.length; i++) (picks[i]!.r.start += picks[i]!.k), (picks[i]!.r.length -= picks[i]!.k);
      return out;
    };
    // The run that is reusable soonest (its blocks free from the start, or freed in the earliest
    // wave: an eviction into blocks a fill just freed waits for that fill's commit, and the place
    // emptied waits for it), then the best fit.
    const fitIn = (pool: readonly Run[]): Run | null => {
      let fit: Run | null = null, fitWave = Infinity;
      // (indexed loops on the collector's hot paths: cold, for-of pays an iterator call per element)
      for (let k = 0; k < pool.length; k++) {
        const r = pool[k]!;
        if (r.length < n) continue;
        const w = Math.max(floor, m.waves.readyWave(r.start, n));
        if (w < fitWave || (w === fitWave && r.length < fit!.length)) (fit = r), (fitWave = w);
      }
      return fit;
    };
    const fit = fitIn(scratch);
    if (fit) return hand([{ r: fit, k: n }]);
    const have = scratch.reduce((a, r) => a + r.length, 0);
    if (have < n) {
      const lf = fitIn(laterOf(q));
      if (lf) return hand([{ r: lf, k: n }]);
    }
    const picks: { r: Run; k: number }[] = [];
    let need = n;
    // (each run's wave worked out once, not twice per comparison of the sort)
    const bySoon = scratch.map((r) => ({ r, w: Math.max(floor, m.waves.readyWave(r.start, r.length)) })).sort((a, b) => a.w - b.w || b.r.length - a.r.length);
    const later = laterOf(q);
    for (let i = 0; i < bySoon.length + later.length; i++) {
      const r = i < bySoon.length ? bySoon[i]!.r : later[i - bySoon.length]!;
      if (!need || picks.length >= maxRuns) break;
      if (!r.length) continue;
      const k = Math.min(need, r.length);
      picks.push({ r, k });
      need -= k;
    }
    return need ? null : hand(picks);
  };
  /** The first wave a move of file g's logical [logical, logical+length) can run in, whatever its target. */
  const floorOf = (g: number, logical: number, length: number): number => {
    let w = m.waves.fileWave(g);
    const parts = mappedIn(files[g]!, logical, length);
    for (let i = 0; i < parts.length; i++) w = Math.max(w, m.waves.readyWave(parts[i]!.physical, parts[i]!.length));
    return w;
  };
  const floorWhole = (g: number): number => {
    const x = files[g]!;
    return floorOf(g, x[0]!.logical, x[x.length - 1]!.logical + x[x.length - 1]!.length - x[0]!.logical);
  };
  /** Whether n blocks fit the four largest free runs outside `place` (what findScratch will need, roughly). */
  const fitsIn4 = (n: number, place: Run): boolean =>
    subtractRuns(m.free.runs, [place]).map((r) => r.length).sort((a, b) => b - a).slice(0, ROOT_EXTENTS).reduce((a, b) => a + b, 0) >= n;
  // Where each mapped block of a moving file ends: its place's start plus its rank among the
  // file's mapped blocks (holes take no space). A block already there stays: a place is ready when
  // everything in it but its own file's well-placed blocks is free, and only the rest moves in.
  // (per-file state in arrays indexed by file, not Maps: read tens of thousands of times, cold)
  const placeOf: (Run | undefined)[] = [];
  for (const p of places) placeOf[p.file] = p.run;
  const ranks: ({ logical: number; rank: number }[] | undefined)[] = [];
  const rankOf = (g: number, logical: number): number => {
    let segs = ranks[g];
    if (!segs) {
      segs = [];
      let rank = 0;
      for (const e of [...files[g]!].sort((a, b) => a.logical - b.logical)) (segs.push({ logical: e.logical, rank }), (rank += e.length));
      ranks[g] = segs;
    }
    let lo = 0, hi = segs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (segs[mid]!.logical <= logical) lo = mid;
      else hi = mid - 1;
    }
    return segs[lo]!.rank + (logical - segs[lo]!.logical);
  };
  /** Whether extent e of file g sits where the final layout puts it (an extent is all or nothing: it holds no hole). */
  const placed = (g: number, e: Extent): boolean => {
    const at = placeOf[g];
    return !!at && e.physical === at.start + rankOf(g, e.logical);
  };
  const settledOf: (Extent[] | undefined)[] = [], settledBlocks: number[] = [];
  /** Blocks of file g already where the layout puts them (cached per map: a move replaces the array). */
  const settled = (g: number): number => {
    const x = files[g]!;
    if (settledOf[g] === x) return settledBlocks[g]!;
    let blocks = 0;
    // (placed() inlined: a file without a place has nothing placed)
    const at = placeOf[g];
    if (at) {
      for (let k = 0; k < x.length; k++) {
        const e = x[k]!;
        if (e.physical === at.start + rankOf(g, e.logical)) blocks += e.length;
      }
    }
    settledOf[g] = x;
    settledBlocks[g] = blocks;
    return blocks;
  };
  /** The file's moves into its place: each run of misplaced extents (between placed ones) in one move. */
  const fill = (g: number, phase: PlanStep['phase']): void => {
    const at = placeOf[g]!;
    const groups: { logical: number; end: number; blocks: number }[] = [];
    let cur: (typeof groups)[number] | null = null;
    const x = files[g]!;
    for (let k = 0; k < x.length; k++) {
      const e = x[k]!;
      if (placed(g, e)) { cur = null; continue; }
      if (!cur) groups.push((cur = { logical: e.logical, end: 0, blocks: 0 }));
      cur.end = e.logical + e.length;
      cur.blocks += e.length;
    }
    for (let i = 0; i < groups.length; i++) {
      const q = groups[i]!;
      m.move(g, phase, q.logical, q.end - q.logical, [{ start: at.start + rankOf(g, q.logical), length: q.blocks }]);
    }
  };
  /** The file's misplaced blocks whose final blocks are free move there (in as many moves as it takes). */
  const fillAround = (g: number): void => {
    const at = placeOf[g]!;
    const segs = ranks[g]!;
    /** The logical block of mapped block `rank`. */
    const logicalOf = (rank: number): number => {
      let lo = 0, hi = segs.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >>> 1;
        if (segs[mid]!.rank <= rank) lo = mid;
        else hi = mid - 1;
      }
      return segs[lo]!.logical + (rank - segs[lo]!.rank);
    };
    const wanted: Run[] = [];
    const x = files[g]!;
    for (let i = 0; i < x.length; i++) if (!placed(g, x[i]!)) wanted.push({ start: at.start + rankOf(g, x[i]!.logical), length: x[i]!.length });
    const open = mergeRuns(wanted);
    const runs = m.free.runs.filter((r) => r.start < at.start + at.length && r.start + r.length > at.start);
    for (const t of subtractRuns(open, subtractRuns(open, runs))) {
      const lo = logicalOf(t.start - at.start), hi = logicalOf(t.start + t.length - 1 - at.start) + 1;
      m.move(g, 'defrag', lo, hi - lo, [{ start: t.start, length: t.length }]);
    }
    pools = null;
  };
  /**
   * A piece leaving a place goes straight to where its own file ends where that is free (the parts
   * of at least minPart blocks): those blocks never move again. The rest is returned (for scratch).
   * A tree-less file is kept within the inode's extent slots: an unpredicted tree block could
   * land in a place.
   */
  const directParts = (g: number, q: { logical: number; length: number }): { logical: number; length: number; blocks: number }[] => {
    const at = placeOf[g];
    if (!at) return [{ ...q, blocks: q.length }];
    const to = at.start + rankOf(g, q.logical), end = to + q.length;
    const parts = m.free.overlapping(to, end).map((r) => ({ start: Math.max(r.start, to), length: Math.min(r.start + r.length, end) - Math.max(r.start, to) }));
    const rest: { logical: number; length: number; blocks: number }[] = [];
    let cur = q.logical;
    for (let i = 0; i < parts.length; i++) {
      const r = parts[i]!;
      const lo = q.logical + (r.start - to);
      if (r.length < minPart) continue; // (a move per few blocks costs more than their copy)
      if (!m.blockMapped[g] && !m.trees[g]!.length && layOut(files[g]!, lo, r.length, [r]).newExtents.length > ROOT_EXTENTS) continue;
      m.move(g, 'defrag', lo, r.length, [r]);
      // (its target is in a place, never scratch; it may be in the places' free blocks pooled)
      if (pools?.later) pools.later = subtractRuns([...pools.later].reverse(), [r]).reverse();
      else pools?.cuts.push(r);
      if (lo > cur) rest.push({ logical: cur, length: lo - cur, blocks: lo - cur });
      cur = lo + r.length;
    }
    if (cur < q.logical + q.length) rest.push({ logical: cur, length: q.logical + q.length - cur, blocks: q.logical + q.length - cur });
    return rest;
  };
  const spanOf: (Extent[] | undefined)[] = [], spanLo: number[] = [], spanHi: number[] = [];
  for (let guard = 0; places.length; guard++) {
    if (guard > 4 * layout.size + 16) throw new NoPlan('guard');
    // (each place's settled blocks once per round: nothing moves before the fills below)
    let bound = 0, nReady = 0;
    for (let k = 0; k < places.length; k++) {
      const p = places[k]!;
      const s = (p.settled = settled(p.file));
      bound += p.run.length - s;
      if (p.taken === s) nReady++;
    }
    // A plan that cannot be cheaper than one already made stops: what it copied, its waves so
    // far (both only grow), and every block not yet in its place (each is copied at least once).
    if (cap && m.copied + cap.perWave * m.waves.waveCount + bound >= cap.cost) throw new NoPlan('cost');
    if (nReady) {
      const ready = places.filter((p) => p.taken === p.settled);
      places = places.filter((p) => p.taken !== p.settled);
      // each move only frees blocks: the rest of the wave stays ready
      for (const p of ready) fill(p.file, m.frags[p.file]! > 1 ? 'defrag' : 'compact');
      continue;
    }
    pools = null;
    // The place nearest to free (the smallest share still taken) whose tree blocks can be freed:
    // a tree block goes only with its whole file (the tree collapses), which must fit the free
    // space outside the place in at most four runs.
    const treeAt: { block: number; owner: number }[] = [];
    m.trees.forEach((t, g) => { for (let i = 0; i < t.length; i++) if (t[i]! >= 0) treeAt.push({ block: t[i]!, owner: g }); });
    treeAt.sort((a, b) => a.block - b.block);
    /** Owners of the tree blocks in a run (binary search over the sorted blocks). */
    const treesIn = (r: Run): number[] => {
      let lo = 0, hi = treeAt.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (treeAt[mid]!.block < r.start) lo = mid + 1;
        else hi = mid;
      }
      const out = new Set<number>();
      for (let k = lo; k < treeAt.length && treeAt[k]!.block < r.start + r.length; k++) out.add(treeAt[k]!.owner);
      return [...out];
    };
    let p: (typeof places)[number] | null = null, treeOwners: number[] = [], best = Infinity;
    for (let k = 0; k < places.length; k++) {
      const c = places[k]!;
      const taken = c.taken - c.settled;
      const gain = c.run.length - c.settled;
      if (taken / gain >= best) continue;
      const owners = treesIn(c.run);
      const cost = (taken + owners.reduce((a, g) => a + size[g]!, 0)) / gain;
      if (cost >= best || owners.some((g) => !fitsIn4(size[g]!, c.run))) continue;
      (p = c), (treeOwners = owners), (best = cost);
    }
    if (!p) throw new NoPlan('tree');
    const { start, length } = p.run;
    for (const g of treeOwners) {
      const to = findScratch(size[g]!, p.run, ROOT_EXTENTS, floorWhole(g));
      if (!to) throw new NoPlan('tree');
      m.moveTo(g, 'evict', to);
    }
    const owners: number[] = [];
    for (let g = 0; g < files.length; g++) {
      const x = files[g]!;
      // (a file's physical span, kept per map, rules most files out without a pass over their
      // extents: that pass per place emptied was the collector's busiest line, cold)
      if (spanOf[g] !== x) {
        let lo = Infinity, hi = -Infinity;
        for (let k = 0; k < x.length; k++) {
          const e = x[k]!;
          if (e.physical < lo) lo = e.physical;
          if (e.physical + e.length > hi) hi = e.physical + e.length;
        }
        (spanOf[g] = x), (spanLo[g] = lo), (spanHi[g] = hi);
      }
      if (spanHi[g]! <= start || spanLo[g]! >= start + length) continue;
      for (let k = 0; k < x.length; k++) {
        const e = x[k]!;
        if (e.physical < start + length && start < e.physical + e.length) { owners.push(g); break; }
      }
    }
    owners.sort((a, b) => size[a]! - size[b]!);
    for (const g of owners) {
      // (the place's own file keeps what is placed already)
      const pieces = rangesOnPhysical(files[g]!, start, length).filter((q) => g !== p.file || !placed(g, { logical: q.logical, physical: q.from, length: q.length, unwritten: false }));
      if (!pieces.length) continue;
      // Logically consecutive pieces (a writer's appends with others' between them) go out as one
      // move: fewer steps, and the file less fragmented meanwhile.
      const groups: { logical: number; length: number; blocks: number }[] = [];
      for (const q of pieces.sort((a, b) => a.logical - b.logical)) {
        const last = groups[groups.length - 1];
        if (last && last.logical + last.length === q.logical) (last.length += q.length), (last.blocks += q.length);
        else groups.push({ logical: q.logical, length: q.length, blocks: q.length });
      }
      const rest = groups.flatMap((q) => directParts(g, q));
      if (!rest.length) continue;
      // pieces out one by one would push a tree-less file past the inode's extent slots (an
      // unpredictable tree block): such a file goes out whole, in at most four runs
      if (!m.trees[g]!.length && files[g]!.length + rest.length > ROOT_EXTENTS) {
        const to = findScratch(size[g]!, p.run, ROOT_EXTENTS, floorWhole(g));
        if (to) { m.moveTo(g, 'evict', to); continue; }
      }
      for (const q of rest.sort((a, b) => a.length - b.length)) {
        // (a tree-less file takes one run where one holds it: split over several it could outgrow
        // the inode, and its new leaf would go after its first block, maybe in its own place)
        const floor = floorOf(g, q.logical, q.length);
        const to = (!m.trees[g]!.length && findScratch(q.length, p.run, 1, floor)) || findScratch(q.length, p.run, Infinity, floor);
        if (!to) throw new NoPlan('scratch');
        m.move(g, 'evict', q.logical, q.length, to);
      }
    }
    // A leaf placed meanwhile (the place's file outgrowing its inode as its pieces went out) may
    // sit in the place: the file fills what is free around it; with its extents back in the inode
    // its tree collapses, and the leaf's block is free for the rest.
    if (p.taken !== settled(p.file) && m.trees[p.file]!.some((b) => b >= start && b < start + length)) fillAround(p.file);
    if (p.taken !== settled(p.file)) throw new NoPlan(`taken ${p.taken}`);
  }
  m.onRelease = m.onTake = null;
}

/**
 * The greedy planner (when the collector finds no plan, and for named files): fragmented files
 * smallest first into a free run or a window they evacuate, then compaction (see the top).
 */
function planGreedy(filesIn: readonly PlanFile[], freeIn: readonly Run[], bounds: { first: number; end: number }, opts: PlanOptions): Plan {
  const m = new Model(filesIn, freeIn, !!opts.stopAtTreeGrowth, opts.leafExtents);
  const { free, files, steps } = m;
  const ideal = (i: number): boolean => m.frags[i]! <= idealCount(files[i]!, opts.idealExtentBlocks);
  const contiguous = (i: number): boolean => physicalRuns(files[i]!).length === 1;
  const measure = (): PlanPrediction => m.measure();
  const before = measure();

  const move = m.move.bind(m);
  const moveWhole = m.moveWhole.bind(m);

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
    m.held = window;
    const owners = [...w.owners.entries()].sort((a, b) => a[1].reduce((s, r) => s + r.length, 0) - b[1].reduce((s, r) => s + r.length, 0));
    for (const [o, pieces] of owners) {
      const whole = mappedBlocks(files[o]!);
      const fitWhole = o !== i && contiguous(o) ? free.bestFit(whole) : null;
      if (fitWhole) { moveWhole(o, 'evict', fitWhole.start, window); continue; }
      for (const p of pieces.sort((a, b) => a.length - b.length)) evictPiece(o, p.start, p.length, window);
      if (o !== i && wanted(o) && !ideal(o) && (visits.get(o) ?? 0) < 3) queue.push(o);
    }
    free.give(window.start, n);
    m.held = null;
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
  return { steps, skipped: [...skipped], after: files, before, predicted: measure(), complete, exact: m.exact };
}

/**
 * The collector's waves per step, handed to the executor so that a fresh run does not schedule the
 * same moves twice. The model's scheduler saw each footprint as the executor's does, but without
 * `allocates`: the one step that grew a tree the model does not place (the last, where planning
 * stopped) is put where the executor puts it, no earlier than the latest wave before it.
 */
function stepWaves(m: Model, lastGrows: boolean): number[] {
  const w = m.waves.wave.slice();
  const n = w.length;
  if (lastGrows && n > 1) {
    let latest = 0;
    for (let j = 0; j < n - 1; j++) latest = Math.max(latest, w[j]!);
    w[n - 1] = Math.max(w[n - 1]!, latest);
  }
  return w;
}

/**
 * Plan the moves. Whole-filesystem mode computes the final layout first and plans toward it
 * (planCollector: each fragmented file written once, straight into its place when it can be);
 * when that finds no plan meeting the targets, or for named files, the greedy planner.
 */
export function planDefrag(filesIn: readonly PlanFile[], freeIn: readonly Run[], bounds: { first: number; end: number }, opts: PlanOptions): Plan {
  // The layout counts the tree blocks of files made contiguous as space (their trees collapse);
  // when that finds no plan (a place holds the tree block of a file too large to set aside), once
  // more with the tree blocks left where they are (they end as free blocks of their own).
  // Layouts that keep data in place (anchoredLayouts) and the packed one (finalLayout) are planned;
  // the plan that costs least to run is kept: blocks copied, and its dependency waves.
  const before = (): PlanPrediction => {
    const free = new FreeIndex(freeIn);
    return { extents: filesIn.reduce((a, f) => a + fragmentCount(f.extents), 0), freeExtents: free.count, largestFree: free.largest, freeBlocks: free.total };
  };
  /** 256 KiB: a piece smaller goes to scratch with its neighbours rather than in a move of its own. */
  const minPart = Math.max(1, Math.floor(opts.idealExtentBlocks / 512));
  // The longest run moves could free (tree blocks of files made contiguous count as space; a block
  // map's indirect blocks never do); reported where it is less than half of the free space.
  const possible = opts.wholeFs ? largestFreeCap(filesIn.map((f) => f.extents), filesIn.map((f) => (f.blockMapped ? [] : f.treeBlocks)), freeIn) : Infinity;
  const capped = possible < Math.ceil(freeIn.reduce((a, r) => a + r.length, 0) / 2);
  const tag = (p: Plan): Plan => (capped ? { ...p, largestFreePossible: possible } : p);
  for (const treesAsSpace of opts.wholeFs && opts.compact !== false && !opts.only ? [true, false] : []) {
    const files = filesIn.map((f) => f.extents);
    // (the layouts ask this per file many times over: once per file here)
    const idealFiles = files.map((x) => fragmentCount(x) <= idealCount(x, opts.idealExtentBlocks));
    const ideal = (i: number): boolean => idealFiles[i]!;
    // (a block map's indirect blocks never become space: they stay)
    const trees = filesIn.map((f) => (treesAsSpace && !f.blockMapped ? f.treeBlocks : []));
    const freeCap = treesAsSpace ? possible : largestFreeCap(files, trees, freeIn);
    const anchored: { layout: Map<number, Run>; kept: number }[] = [];
    // (the second pass, a fallback, tries the packed layout only; gap costs that give the same
    // layout are planned once — compared entry by entry, not as JSON keys made cold per layout)
    for (const a of treesAsSpace ? anchoredLayouts(files, trees, freeIn, ideal, GAP_COSTS, freeCap) : []) {
      if (a && !anchored.some((b) => sameLayout(a.layout, b.layout))) anchored.push(a);
    }
    // the layouts keeping the most in place first (planning each costs a collector run: the first
    // PLANNED_LAYOUTS that meet the targets are compared), the packed layout last
    const layouts = anchored.sort((a, b) => b.kept - a.kept).map((a) => a.layout);
    const first = finalLayout(files, trees, new FreeIndex(freeIn).runs, ideal, freeCap);
    if (first) layouts.push(first);
    let best: { m: Model; layout: Map<number, Run>; cost: number } | null = null, planned = 0;
    // blocks copied, and each dependency wave (a commit: two cache flushes) as 6 MiB of copying:
    // the s14 bench's warm runs (256 MiB at 50/70/90 %: 9/18/63 commits, 100/164/215 MB) fit
    // ~5.9 ms a commit and ~0.9 ms a MB (2 MiB a wave chose 19 commits over 11 for 17 MiB less)
    const perWave = Math.ceil((opts.idealExtentBlocks * 3) / 64);
    for (const layout of layouts) {
      if (planned >= PLANNED_LAYOUTS && layout !== first) continue;
      const m = new Model(filesIn, freeIn, false, opts.leafExtents);
      m.bounds = bounds;
      try {
        planCollector(m, layout, bounds, minPart, best ? { perWave, cost: best.cost } : undefined);
      } catch (e) {
        if (!(e instanceof NoPlan)) throw e;
        continue;
      }
      const predicted = m.measure();
      if (m.files.some((x, i) => m.frags[i]! > idealCount(x, opts.idealExtentBlocks)) || predicted.freeExtents > TARGET_FREE_EXTENTS || predicted.largestFree < largestFreeTarget(predicted.freeBlocks, freeCap)) continue;
      planned++;
      const cost = m.copied + perWave * m.waves.waveCount;
      if (!best || cost < best.cost) best = { m, layout, cost };
    }
    if (!best) continue;
    let m = best.m;
    if (opts.stopAtTreeGrowth && m.unpredictedTree) {
      // the real run stops where a tree grows unpredicted: plan the chosen layout again up to there
      m = new Model(filesIn, freeIn, true, opts.leafExtents);
      // (its scratch choices read the waves: tracked, it makes the chosen plan's choices)
      m.bounds = bounds;
      try {
        planCollector(m, best.layout, bounds, minPart);
      } catch (e) {
        if (e instanceof TreeGrowth) return tag({ steps: m.steps, skipped: [], after: m.files, before: before(), predicted: m.measure(), complete: false, exact: m.exact, waves: stepWaves(m, true) });
        throw e;
      }
    }
    return tag({ steps: m.steps, skipped: [], after: m.files, before: before(), predicted: m.measure(), complete: true, exact: m.exact, ...(m.unpredictedTree ? {} : { waves: stepWaves(m, false) }) });
  }
  return tag(planGreedy(filesIn, freeIn, bounds, opts));
}
