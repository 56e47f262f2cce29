/**
 * The defragmenter's final layouts (lib/ops/defrag-plan.ts plans the moves toward one): where
 * every file that moves ends, as one run each, over the space the moving files and the free space
 * hold (ideal files stay). Pure: runs of block numbers.
 */
import { EXT_INIT_MAX_LEN, type Extent } from '../ext4/extents.js';
import { mappedBlocks, mergeAdjacent, physicalRuns } from '../ext4/extent-map.js';

export interface Run {
  start: number;
  length: number;
}

/** Extents the inode holds itself (i_block); one more needs a tree block (ext4_ext_grow_indepth). */
export const ROOT_EXTENTS = 4;
/** The target: at most this many free extents after a whole-filesystem run. */
export const TARGET_FREE_EXTENTS = 50;

/**
 * The largest free extent a whole-filesystem layout must leave: half of the free space (the
 * issue's target), or `cap` where that is less — the longest run between blocks that never move
 * (backup superblocks and descriptors cut a 1 GiB filesystem's space into runs of two groups less
 * a backup's blocks, 255.5 MiB, below half of its free space at 50 % full): there every layout is
 * held to the most any layout can free, not given up for the greedy planner, which need not
 * reach it.
 */
export function largestFreeTarget(freeBlocks: number, cap: number): number {
  return Math.min(Math.ceil(freeBlocks / 2), cap);
}

/**
 * The longest run of blocks that moves could ever free: free space, the movable files' data and
 * the tree blocks of those a contiguous extent list fits in the inode (their trees collapse)
 * merged; anything else never moves.
 */
export function largestFreeCap(files: readonly Extent[][], trees: readonly number[][], free: readonly Run[]): number {
  const space: Run[] = free.map((r) => ({ ...r }));
  for (let i = 0; i < files.length; i++) space.push(...spaceWhenMoved(files[i]!, trees[i]!));
  let largest = 0;
  for (const r of mergeRuns(space)) largest = Math.max(largest, r.length);
  return largest;
}

/**
 * A file's blocks that become space when it moves: its data, and its tree blocks when a contiguous
 * extent list fits in the inode (the tree collapses: Model.move frees them). `size`: its mapped
 * blocks, when the caller has them.
 */
function spaceWhenMoved(extents: readonly Extent[], tree: readonly number[], size = mappedBlocks(extents)): Run[] {
  const out = physicalRuns(extents);
  if (size <= ROOT_EXTENTS * EXT_INIT_MAX_LEN) for (const b of tree) if (b >= 0) out.push({ start: b, length: 1 });
  return out;
}

/** Subtract sorted, disjoint `cut` runs from sorted, disjoint `runs`. */
export function subtractRuns(runs: readonly Run[], cut: readonly Run[]): Run[] {
  const out: Run[] = [];
  let j = 0;
  // (indexed: the planner calls this cold, where for-of pays an iterator call per run)
  for (let i = 0; i < runs.length; i++) {
    const r = runs[i]!;
    let s = r.start;
    const e = r.start + r.length;
    while (j < cut.length && cut[j]!.start + cut[j]!.length <= s) j++;
    for (let k = j; k < cut.length && cut[k]!.start < e; k++) {
      const c = cut[k]!;
      if (c.start > s) out.push({ start: s, length: c.start - s });
      s = Math.max(s, c.start + c.length);
    }
    if (s < e) out.push({ start: s, length: e - s });
  }
  return out;
}

/** Sort and merge touching runs. */
export function mergeRuns(runs: Run[]): Run[] {
  runs.sort((a, b) => a.start - b.start);
  const out: Run[] = [];
  for (let i = 0; i < runs.length; i++) {
    const r = runs[i]!;
    const last = out[out.length - 1];
    if (last && last.start + last.length >= r.start) last.length = Math.max(last.length, r.start + r.length - last.start);
    else if (r.length > 0) out.push({ ...r });
  }
  return out;
}

/**
 * The final layout: files that are ideal already stay (anchors); every other file gets one run,
 * first fit in address order over the space the moving files and the free space hold, files taken
 * in the order of their last block (a file's place then starts at or below where it ends now, so
 * it is mostly emptied by the files before it). The files pack toward the start; the free space
 * left over is what the first fit could not fill, plus the end. When that leaves too many or too
 * small free extents, the highest anchors move too (the fewest that meet the targets).
 */
export function finalLayout(files: readonly Extent[][], trees: readonly number[][], free: readonly Run[], ideal: (i: number) => boolean, cap = Infinity): Map<number, Run> | null {
  const last = files.map(lastBlock);
  const blocks = files.map(mappedBlocks);
  const spaceOf = (i: number): Run[] => spaceWhenMoved(files[i]!, trees[i]!, blocks[i]!);
  const anchors = files.map((_, i) => i).filter(ideal).sort((a, b) => last[b]! - last[a]!);
  const byLast = files.map((_, i) => i).sort((a, b) => last[a]! - last[b]!);
  // the space every attempt starts from: the free runs and the files that are not ideal
  const base: Run[] = free.map((r) => ({ ...r }));
  files.forEach((_, i) => { if (!ideal(i)) base.push(...spaceOf(i)); });
  // (sorted once: each attempt's mergeRuns then sorts what is nearly in order already)
  base.sort((a, b) => a.start - b.start);
  const tried = new Map<number, Map<number, Run> | null>();
  const attempt = (k: number): Map<number, Run> | null => {
    if (tried.has(k)) return tried.get(k)!;
    const moving = new Set(anchors.slice(0, k));
    const space = base.map((r) => ({ ...r }));
    for (const i of moving) space.push(...spaceOf(i));
    const left = mergeRuns(space);
    files.forEach((_, i) => { if (!ideal(i)) moving.add(i); });
    // Where no run can hold half of the free space, the longest there is (the highest such run)
    // is kept free outright: packing toward the start frees the top, which may be shorter.
    let freeAfter = 0;
    for (const r of left) freeAfter += r.length;
    for (const i of moving) freeAfter -= blocks[i]!;
    const need = largestFreeTarget(freeAfter, cap);
    let reserve: Run | null = null;
    if (need < Math.ceil(freeAfter / 2)) {
      let at = left.length - 1;
      while (at >= 0 && left[at]!.length < need) at--;
      if (at < 0) {
        tried.set(k, null);
        return null;
      }
      const r = left[at]!;
      r.length -= need;
      reserve = { start: r.start + r.length, length: need };
    }
    // first fit through a max-tree over the runs' lengths (a scan per file made this quadratic)
    const fit = new FirstFit(left.map((r) => r.length));
    const out = new Map<number, Run>();
    let result: Map<number, Run> | null = out;
    for (const i of byLast) {
      if (!moving.has(i)) continue;
      const n = blocks[i]!;
      const k2 = fit.first(n);
      if (k2 < 0) { result = null; break; }
      const r = left[k2]!;
      out.set(i, { start: r.start, length: n });
      r.start += n;
      r.length -= n;
      fit.set(k2, r.length);
    }
    if (result) {
      let count = 0, total = 0, largest = 0;
      for (const r of reserve ? mergeRuns([...left, reserve]) : left) if (r.length) (count++, (total += r.length), (largest = Math.max(largest, r.length)));
      if (count > TARGET_FREE_EXTENTS || largest < largestFreeTarget(total, cap)) result = null;
    }
    tried.set(k, result);
    return result;
  };
  if (!attempt(anchors.length)) return null;
  let lo = 0, hi = anchors.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (attempt(mid)) hi = mid;
    else lo = mid + 1;
  }
  return attempt(lo);
}

/**
 * A final layout that keeps data where it is: each file that moves may keep its largest piece in
 * place (its place then starts that piece's rank of blocks below it). Those places are chosen like
 * weighted intervals — none overlapping, each inside the space the moving files and the free space
 * hold — for the most blocks kept, less `gapCost` for each place that leaves a gap below it (what
 * the other files do not fill there stays a free extent). The other files go first fit in the order
 * of their last block, as in finalLayout; null when the result misses the free-space targets.
 * One layout per gap cost asked for: what does not depend on it (the space, the reserve, each
 * file's candidate place, the fitting order) is worked out once (the planner tries several).
 */
export function anchoredLayouts(files: readonly Extent[][], trees: readonly number[][], free: readonly Run[], ideal: (i: number) => boolean, gapCosts: readonly number[], cap = Infinity): ({ layout: Map<number, Run>; kept: number } | null)[] {
  const last = files.map(lastBlock);
  const blocks = files.map(mappedBlocks);
  const base: Run[] = free.map((r) => ({ ...r }));
  files.forEach((_, i) => {
    if (!ideal(i)) base.push(...spaceWhenMoved(files[i]!, trees[i]!, blocks[i]!));
  });
  const whole = mergeRuns(base);
  // The final free space's larger half (or the cap) is kept whole at the top of the highest run
  // that holds it: nothing is placed there (the targets: the largest free extent).
  let freeAfter = whole.reduce((a, r) => a + r.length, 0);
  files.forEach((_, i) => { if (!ideal(i)) freeAfter -= blocks[i]!; });
  const reserveLength = largestFreeTarget(freeAfter, cap);
  const top = [...whole].reverse().find((r) => r.length >= reserveLength);
  if (!top) return gapCosts.map(() => null);
  const reserve: Run = { start: top.start + top.length - reserveLength, length: reserveLength };
  const space = subtractRuns(whole, [reserve]);
  /** Index of the space run holding [s, s+n), or -1. */
  const runOf = (s: number, n: number): number => {
    let lo = 0, hi = space.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (space[mid]!.start <= s) lo = mid;
      else hi = mid - 1;
    }
    const r = space[lo];
    return r && r.start <= s && s + n <= r.start + r.length ? lo : -1;
  };
  const cands: { file: number; start: number; end: number; kept: number; gap: boolean }[] = [];
  files.forEach((x, i) => {
    if (ideal(i)) return;
    const sorted = [...x].sort((a, b) => a.logical - b.logical);
    let rank = 0, best: { start: number; kept: number } | null = null;
    for (const e of mergeAdjacent(sorted)) {
      if (!best || e.length > best.kept) best = { start: e.physical - rank, kept: e.length };
      rank += e.length;
    }
    const k = best ? runOf(best.start, blocks[i]!) : -1;
    if (k >= 0) cands.push({ file: i, start: best!.start, end: best!.start + blocks[i]!, kept: best!.kept, gap: best!.start !== space[k]!.start });
  });
  cands.sort((a, b) => a.end - b.end || a.start - b.start);
  const order = files.map((_, i) => i).filter((i) => !ideal(i)).sort((a, b) => blocks[b]! - blocks[a]! || last[a]! - last[b]!);
  return gapCosts.map((gapCost) => anchoredFor(cands, order, blocks, space, reserve, gapCost, cap));
}

/** One gap cost's layout over the prepared candidates (anchoredLayouts). */
function anchoredFor(cands: readonly { file: number; start: number; end: number; kept: number; gap: boolean }[], order: readonly number[], blocks: readonly number[], space: readonly Run[], reserve: Run, gapCost: number, cap: number): { layout: Map<number, Run>; kept: number } | null {
  // dp[j]: the best total whose highest place is cands[j]; prefix maxima by end for "any before"
  const dp: number[] = [], from: number[] = [], pm: number[] = [], pmAt: number[] = [];
  const byEnd = new Map<number, number>(); // end → index of the best dp ending there
  for (let j = 0; j < cands.length; j++) {
    const c = cands[j]!;
    let lo = 0, hi = j;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cands[mid]!.end <= c.start) lo = mid + 1;
      else hi = mid;
    }
    const before = lo > 0 && pm[lo - 1]! > 0 ? pm[lo - 1]! : 0;
    let v = c.kept + before - (c.gap ? gapCost : 0), f = before > 0 ? pmAt[lo - 1]! : -1;
    const adj = byEnd.get(c.start);
    if (adj !== undefined && c.kept + dp[adj]! > v) (v = c.kept + dp[adj]!), (f = adj);
    dp.push(v);
    from.push(f);
    const prev = j > 0 ? pm[j - 1]! : -Infinity;
    pm.push(Math.max(prev, v));
    pmAt.push(v >= prev ? j : pmAt[j - 1]!);
    const e = byEnd.get(c.end);
    if (e === undefined || dp[e]! < v) byEnd.set(c.end, j);
  }
  const anchored: { file: number; run: Run; kept: number }[] = [];
  if (cands.length && pm[cands.length - 1]! > 0) {
    for (let j = pmAt[cands.length - 1]!; j >= 0; j = from[j]!) {
      const c = cands[j]!;
      anchored.push({ file: c.file, run: { start: c.start, length: c.end - c.start }, kept: c.kept });
    }
  }
  anchored.sort((a, b) => a.run.start - b.run.start);
  // The other files best fit, largest first (a large file needs a run the small ones would cut).
  // A file that fits nowhere frees the anchored place whose removal makes the cheapest run for it.
  let layout = new Map<number, Run>(), left: Run[] = [], kept = 0;
  for (let tries = 0; ; tries++) {
    if (tries > anchored.length) return null;
    layout = new Map(anchored.map((a) => [a.file, a.run]));
    kept = anchored.reduce((s, a) => s + a.kept, 0);
    left = subtractRuns(space, anchored.map((a) => a.run));
    const fit = new BestFit(left);
    let stuck = -1;
    for (const i of order) {
      if (layout.has(i)) continue;
      const r = fit.take(blocks[i]!);
      if (!r) { stuck = blocks[i]!; break; }
      layout.set(i, { start: r.start, length: blocks[i]! });
    }
    if (stuck < 0) break;
    // the run an anchored place makes with the space touching it once freed (before any packing)
    const bare = subtractRuns(space, anchored.map((a) => a.run));
    // (bare runs never touch one another: at most one ends where a place starts, one starts where it ends)
    const endingAt = new Map<number, number>(), startingAt = new Map<number, number>();
    for (const r of bare) (endingAt.set(r.start + r.length, r.length), startingAt.set(r.start, r.length));
    let drop = -1;
    anchored.forEach((a, k) => {
      let n = a.run.length + (endingAt.get(a.run.start) ?? 0) + (startingAt.get(a.run.start + a.run.length) ?? 0);
      const prev = anchored[k - 1], next = anchored[k + 1];
      if (prev && prev.run.start + prev.run.length === a.run.start) n += prev.run.length;
      if (next && a.run.start + a.run.length === next.run.start) n += next.run.length;
      if (n >= stuck && (drop < 0 || a.kept < anchored[drop]!.kept)) drop = k;
    });
    if (drop < 0) drop = anchored.reduce((b, a, k) => (a.run.length > anchored[b]!.run.length ? k : b), 0);
    anchored.splice(drop, 1);
  }
  left.push(reserve);
  const after = mergeRuns(left.filter((r) => r.length > 0));
  let count = 0, total = 0, largest = 0;
  for (const r of after) if (r.length) (count++, (total += r.length), (largest = Math.max(largest, r.length)));
  if (count > TARGET_FREE_EXTENTS || largest < largestFreeTarget(total, cap)) return null;
  return { layout, kept };
}

/** Best fit over runs: the smallest run holding n blocks (the lowest of equals), its first n blocks taken. */
class BestFit {
  /** The runs by length, then address. */
  private readonly byLength: Run[];
  constructor(runs: Run[]) {
    this.byLength = runs.filter((r) => r.length > 0).sort((a, b) => a.length - b.length || a.start - b.start);
  }
  private at(length: number, start: number): number {
    let lo = 0, hi = this.byLength.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const r = this.byLength[mid]!;
      if (r.length < length || (r.length === length && r.start < start)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  /** The run the blocks came from, its start and length already moved past them; null when none holds n. */
  take(n: number): { start: number } | null {
    const k = this.at(n, -Infinity);
    const r = this.byLength[k];
    if (!r) return null;
    const start = r.start;
    this.byLength.splice(k, 1);
    r.start += n;
    r.length -= n;
    if (r.length > 0) this.byLength.splice(this.at(r.length, r.start), 0, r);
    return { start };
  }
}

/** Leftmost slot holding at least n, over values that only change one at a time (a max segment tree). */
class FirstFit {
  private readonly size: number;
  private readonly max: Float64Array;
  constructor(values: readonly number[]) {
    let size = 1;
    while (size < values.length) size *= 2;
    this.size = size;
    this.max = new Float64Array(2 * size);
    values.forEach((v, i) => { this.max[size + i] = v; });
    for (let i = size - 1; i >= 1; i--) this.max[i] = Math.max(this.max[2 * i]!, this.max[2 * i + 1]!);
  }
  first(n: number): number {
    if (this.max[1]! < n) return -1;
    let i = 1;
    while (i < this.size) i = this.max[2 * i]! >= n ? 2 * i : 2 * i + 1;
    return i - this.size;
  }
  set(slot: number, v: number): void {
    let i = this.size + slot;
    this.max[i] = v;
    for (i >>= 1; i >= 1; i >>= 1) this.max[i] = Math.max(this.max[2 * i]!, this.max[2 * i + 1]!);
  }
}

const lastBlock = (x: readonly Extent[]): number => x.reduce((a, e) => Math.max(a, e.physical + e.length), 0);
