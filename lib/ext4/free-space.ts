/**
 * Free-space scanning over block bitmaps: maximal free runs in a block range,
 * merged across group boundaries. Shared by the allocator (a transaction's
 * view) and by getFreeBlocks, fsmap and the reports (the committed view).
 * With bigalloc a bitmap bit is a cluster: runs are whole clusters (then
 * clipped to the range asked for).
 */
import type { Superblock } from './superblock.js';
import type { GroupDesc } from './group-desc.js';
import { forEachFreeRun } from './bitmap.js';
import { blocksInGroup, clusterRatio, clustersInGroup, groupFirstBlock, groupOfBlock } from './geometry.js';

/**
 * The free runs of one block bitmap (bit numbers, ascending, maximal), kept
 * in step with the bits as they are taken and given back: what the
 * allocator searches instead of re-reading the bitmap's words on every call
 * (mballoc keeps buddy bitmaps for the same reason). Splicing the arrays is
 * O(runs) per change, a memmove of at most a group's worth.
 */
export class FreeRuns {
  private constructor(private readonly starts: number[], private readonly lens: number[], private free: number) {}

  /** The free runs of bits [0, nbits) of `bm`. */
  static fromBitmap(bm: Uint8Array, nbits: number): FreeRuns {
    const starts: number[] = [], lens: number[] = [];
    let free = 0;
    forEachFreeRun(bm, 0, nbits, (s, l) => {
      starts.push(s);
      lens.push(l);
      free += l;
    });
    return new FreeRuns(starts, lens, free);
  }

  /** Free bits in all. */
  get count(): number {
    return this.free;
  }

  /** Number of runs. */
  get runCount(): number {
    return this.starts.length;
  }

  /** Index of the last run starting at or before `bit`, or -1. */
  private before(bit: number): number {
    let lo = 0, hi = this.starts.length - 1, at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.starts[mid]! <= bit) {
        at = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return at;
  }

  /** The runs overlapping [from, to), clipped to it, ascending (as forEachFreeRun on the bitmap). */
  forEach(from: number, to: number, fn: (start: number, length: number) => void): void {
    let i = Math.max(0, this.before(from));
    for (; i < this.starts.length && this.starts[i]! < to; i++) {
      const s = Math.max(from, this.starts[i]!), e = Math.min(to, this.starts[i]! + this.lens[i]!);
      if (e > s) fn(s, e - s);
    }
  }

  /** Mark [start, start+length) used; false (and no change) unless all of it is free. */
  take(start: number, length: number): boolean {
    const i = this.before(start);
    if (i < 0 || length <= 0) return length <= 0;
    const s = this.starts[i]!, e = s + this.lens[i]!;
    if (start + length > e) return false;
    const head = start - s, tail = e - (start + length);
    if (head && tail) {
      this.lens[i] = head;
      this.starts.splice(i + 1, 0, start + length);
      this.lens.splice(i + 1, 0, tail);
    } else if (head) this.lens[i] = head;
    else if (tail) {
      this.starts[i] = start + length;
      this.lens[i] = tail;
    } else {
      this.starts.splice(i, 1);
      this.lens.splice(i, 1);
    }
    this.free -= length;
    return true;
  }

  /** Mark [start, start+length) free; false (and no change) unless all of it is in use. */
  give(start: number, length: number): boolean {
    if (length <= 0) return true;
    const i = this.before(start);
    const end = start + length;
    const prevEnd = i >= 0 ? this.starts[i]! + this.lens[i]! : -1;
    if (prevEnd > start) return false;
    const j = i + 1;
    if (j < this.starts.length && this.starts[j]! < end) return false;
    const joinPrev = i >= 0 && prevEnd === start, joinNext = j < this.starts.length && this.starts[j] === end;
    if (joinPrev && joinNext) {
      this.lens[i] = this.lens[i]! + length + this.lens[j]!;
      this.starts.splice(j, 1);
      this.lens.splice(j, 1);
    } else if (joinPrev) this.lens[i] = this.lens[i]! + length;
    else if (joinNext) {
      this.starts[j] = start;
      this.lens[j] = this.lens[j]! + length;
    } else {
      this.starts.splice(j, 0, start);
      this.lens.splice(j, 0, length);
    }
    this.free += length;
    return true;
  }
}

/** Where a free-space scan gets group descriptors and block bitmaps from. */
export interface FreeScanSource {
  group(g: number): Promise<GroupDesc>;
  bitmap(g: number): Promise<Uint8Array>;
  /** The group's free runs, when the source keeps them (then `bitmap` is not called). */
  runs?(g: number): Promise<FreeRuns>;
  /** Called before group g is scanned (e.g. to prefetch a batch of bitmaps). */
  beforeGroup?(g: number, endGroup: number): Promise<void>;
}

/**
 * Free runs (blocks) in [from, to), merged across group boundaries,
 * ascending; fn returns false to stop. A group whose descriptor says it is
 * full is skipped and one that is entirely free is reported without its
 * bitmap; BLOCK_UNINIT bitmaps come computed from the source.
 */
export async function scanFreeWith(sb: Superblock, src: FreeScanSource, from: number, to: number, fn: (start: number, length: number) => boolean | void): Promise<void> {
  from = Math.max(from, sb.s_first_data_block);
  to = Math.min(to, sb.blocksCount);
  if (from >= to) return;
  let runStart = -1, runLen = 0;
  let stop = false;
  const flush = () => {
    if (runLen > 0 && !stop && fn(runStart, runLen) === false) stop = true;
    runLen = 0;
    runStart = -1;
  };
  const add = (abs: number, l: number) => {
    if (stop) return;
    if (runLen > 0 && runStart + runLen === abs) runLen += l;
    else {
      flush();
      runStart = abs;
      runLen = l;
    }
  };
  const ratio = clusterRatio(sb);
  const gEnd = Math.min(sb.groupCount, groupOfBlock(sb, to - 1) + 1);
  for (let g = groupOfBlock(sb, from); g < gEnd && !stop; g++) {
    await src.beforeGroup?.(g, gEnd);
    const first = groupFirstBlock(sb, g);
    const gd = await src.group(g);
    const n = blocksInGroup(sb, g);
    const lo = Math.max(0, from - first), hi = Math.min(n, to - first);
    // The descriptor's free count is in clusters (bg_free_blocks_count), like the bitmap's bits.
    if (gd.freeBlocks === 0) {
      flush();
      continue;
    }
    if (gd.freeBlocks >= clustersInGroup(sb, g)) add(first + lo, hi - lo);
    else {
      // Bits [lo/ratio, ceil(hi/ratio)) cover blocks [lo, hi); each free run of clusters, clipped back to them.
      const cLo = Math.floor(lo / ratio), cHi = Math.ceil(hi / ratio);
      const clip = (s: number, l: number) => {
        const b0 = Math.max(lo, s * ratio), b1 = Math.min(hi, (s + l) * ratio);
        if (b1 > b0) add(first + b0, b1 - b0);
      };
      if (src.runs) (await src.runs(g)).forEach(cLo, cHi, clip);
      else forEachFreeRun(await src.bitmap(g), cLo, cHi, clip);
    }
    // A run continues into the next group only if it reaches this group's end.
    if (runLen > 0 && runStart + runLen !== first + hi) flush();
  }
  flush();
}


export interface FreeRun {
  start: number;
  length: number;
}

/** What findFreeIn is asked for (the allocator's FindOptions without the exclusions). */
export interface FindRequest {
  /** Block to start searching at (wraps around). */
  goal: number;
  /** Wanted length. */
  length: number;
  /** Only a single run counts; return the first run ≥ length, else the longest. */
  contiguous?: boolean;
  /** The (first) run must start exactly at `goal`. */
  exact?: boolean;
}

/** Free runs in [from, to) ascending, merged across groups; fn returns false to stop. */
export type FreeScan = (from: number, to: number, fn: (start: number, length: number) => boolean | void) => Promise<void>;

/** The pieces of [start, start+length) for which `excluded(b, 1)` is false. */
export function splitAround(start: number, length: number, excluded: (b: number, l: number) => boolean): FreeRun[] {
  const out: FreeRun[] = [];
  let cs = -1;
  for (let b = start; b < start + length; b++) {
    if (excluded(b, 1)) {
      if (cs >= 0) out.push({ start: cs, length: b - cs });
      cs = -1;
    } else if (cs < 0) cs = b;
  }
  if (cs >= 0) out.push({ start: cs, length: start + length - cs });
  return out;
}

/**
 * The allocator's search, goal-directed first-fit over a free-run scan
 * (wrapping to the filesystem's first data block): `usable` cuts each free
 * run into the pieces that may be handed out. Runs are returned, not taken.
 * - exact: the first run must start at the goal (and the rest continues
 *   from its end, as a plain search);
 * - contiguous: the first usable piece ≥ length (cut to length), else the
 *   longest seen;
 * - otherwise pieces in scan order until `length` is collected.
 */
export async function findFreeIn(scan: FreeScan, bounds: { first: number; end: number }, usable: (start: number, length: number) => FreeRun[], opts: FindRequest): Promise<FreeRun[]> {
  const goal = Math.min(Math.max(opts.goal, bounds.first), bounds.end - 1);
  const want = opts.length;
  if (want <= 0) return [];
  if (opts.exact) {
    let got: FreeRun | null = null;
    await scan(goal, Math.min(bounds.end, goal + want), (s, l) => {
      if (s === goal) got = usable(s, l)[0] ?? null;
      return false;
    });
    const first = got as FreeRun | null;
    if (!first || first.start !== goal) return [];
    if (opts.contiguous || first.length >= want) return [{ start: goal, length: Math.min(want, first.length) }];
    const taken = (b: number, l: number) => b < goal + first.length && b + l > goal;
    const rest = await findFreeIn(scan, bounds, (s, l) => usable(s, l).flatMap((p) => splitAround(p.start, p.length, taken)), { goal: goal + first.length, length: want - first.length });
    return [first, ...rest];
  }
  if (opts.contiguous) {
    let best: FreeRun | null = null;
    let found: FreeRun | null = null;
    const visit = (s: number, l: number) => {
      for (const r of usable(s, l)) {
        if (r.length >= want) {
          found = { start: r.start, length: want };
          return false;
        }
        if (!best || r.length > best.length) best = r;
      }
      return true;
    };
    await scan(goal, bounds.end, visit);
    if (!found && goal > bounds.first) await scan(bounds.first, goal + want, visit);
    const f = found as FreeRun | null;
    if (f) return [f];
    const b = best as FreeRun | null;
    return b ? [b] : [];
  }
  const runs: FreeRun[] = [];
  let need = want;
  const visit = (s: number, l: number) => {
    for (const r of usable(s, l)) {
      if (need <= 0) return false;
      const take = Math.min(need, r.length);
      runs.push({ start: r.start, length: take });
      need -= take;
    }
    return need > 0;
  };
  await scan(goal, bounds.end, visit);
  if (need > 0 && goal > bounds.first) await scan(bounds.first, goal, visit);
  return runs;
}
