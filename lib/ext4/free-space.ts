/**
 * Free-space scanning over block bitmaps: maximal free runs in a block range,
 * merged across group boundaries. Shared by the allocator (a transaction's
 * view: scanFreeWith over its bitmaps or FreeRuns index) and by getFreeBlocks,
 * fsmap and the reports (the committed view: lib/ops/free.ts reads bitmaps in
 * bulk and appends their runs to a RunTable with appendFreeRunsAt). With
 * bigalloc a bitmap bit is a cluster: runs are whole clusters (then clipped
 * to the range asked for).
 */
import type { Superblock } from './superblock.js';
import type { GroupDesc } from './group-desc.js';
import { bitmapWords, forEachFreeRun } from './bitmap.js';
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

/** A column of block numbers or counts: 32-bit when every block number of the filesystem fits. */
export type BlockColumn = Float64Array | Uint32Array;

/**
 * Free runs (blocks) found in ascending order, each merged into the last
 * when they touch: two growable typed arrays, no object per run (a whole
 * disk can have hundreds of thousands). Runs [0, n) are start[i], len[i].
 * `narrow` (block numbers below 2^32, up to 16 TiB of 4 KiB blocks) keeps them
 * as 32-bit words: half the memory, and a fresh process pays for every page.
 */
export class RunTable {
  start: BlockColumn;
  len: BlockColumn;
  n = 0;

  constructor(capacity = 4096, readonly narrow = false) {
    this.start = narrow ? new Uint32Array(Math.max(1, capacity)) : new Float64Array(Math.max(1, capacity));
    this.len = narrow ? new Uint32Array(Math.max(1, capacity)) : new Float64Array(Math.max(1, capacity));
  }

  /** Add a run after the last one (merged with it when it starts where the last ends). */
  push(start: number, length: number): void {
    const n = this.n;
    if (n > 0 && this.start[n - 1]! + this.len[n - 1]! === start) this.len[n - 1] = this.len[n - 1]! + length;
    else {
      if (n === this.start.length) this.grow();
      this.start[n] = start;
      this.len[n] = length;
      this.n = n + 1;
    }
  }

  grow(): void {
    const size = this.start.length * 2;
    const s = this.narrow ? new Uint32Array(size) : new Float64Array(size), l = this.narrow ? new Uint32Array(size) : new Float64Array(size);
    s.set(this.start);
    l.set(this.len);
    this.start = s;
    this.len = l;
  }

  /** Forget runs [0, k): the rest move to the front. */
  drop(k: number): void {
    this.start.copyWithin(0, k, this.n);
    this.len.copyWithin(0, k, this.n);
    this.n -= k;
  }
}

/**
 * The free runs of bits [from, to) of a block bitmap with one bit per block,
 * as blocks `base + bit`, appended to `out` (merged with its last run when
 * they touch). Returns the number of free bits seen.
 */
export function appendFreeRuns(bm: Uint8Array, from: number, to: number, base: number, out: RunTable): number {
  const words = bitmapWords(bm);
  return appendFreeRunsAt(words, 0, words.length, from, to, base, out);
}

/**
 * appendFreeRuns over the bitmap held in words [w0, w0 + nw) of `words` (a batch of bitmaps read
 * together, viewed once). The bulk scanner's hot loop: words all set or all clear are passed
 * over whole, run ends found with Math.clz32, runs written straight into the table's arrays.
 */
export function appendFreeRunsAt(words: Int32Array, w0: number, nw: number, from: number, to: number, base: number, out: RunTable): number {
  to = Math.min(to, nw * 32);
  // Words that hold bits below `to`.
  const wEnd = w0 + ((to + 31) >>> 5);
  let starts = out.start, lens = out.len, n = out.n;
  let free = 0;
  let i = from;
  while (i < to) {
    let w = w0 + (i >>> 5);
    let x = ~words[w]! & (-1 << (i & 31));
    if (x === 0) {
      // Words all used: four at a time (one test per 16 bytes), then one at a time.
      w++;
      while (w + 4 <= wEnd && (words[w]! & words[w + 1]! & words[w + 2]! & words[w + 3]!) === -1) w += 4;
      while (w < wEnd && (x = ~words[w]!) === 0) w++;
      if (x === 0) break;
    }
    const st = ((w - w0) << 5) + 31 - Math.clz32(x & -x);
    if (st >= to) break;
    x = words[w]! & (-1 << (st & 31));
    if (x === 0) {
      // Words all free, likewise.
      w++;
      while (w + 4 <= wEnd && (words[w]! | words[w + 1]! | words[w + 2]! | words[w + 3]!) === 0) w += 4;
      while (w < wEnd && (x = words[w]!) === 0) w++;
    }
    const e = x === 0 ? to : Math.min(to, ((w - w0) << 5) + 31 - Math.clz32(x & -x));
    const s = base + st, l = e - st;
    free += l;
    if (n > 0 && starts[n - 1]! + lens[n - 1]! === s) lens[n - 1] = lens[n - 1]! + l;
    else {
      if (n === starts.length) {
        out.n = n;
        out.grow();
        starts = out.start;
        lens = out.len;
      }
      starts[n] = s;
      lens[n] = l;
      n++;
    }
    i = e;
  }
  out.n = n;
  return free;
}

/**
 * Two made-up bitmaps that, scanned by appendFreeRunsAt into a one-run table, take every path of
 * its loop: a partial word, words all free and all used (four at a time and one at a time),
 * several runs in one word, a run continuing the table's last run, one reaching the end, the
 * table growing, and a tail all used.
 */
const PRIME_WORDS = [Int32Array.of(0x0000ffff, 0, 0, 0, 0, 0, 0xfffffff0, -1, -1, -1, -1, -1, 0x0f0f0f0f, 0), Int32Array.of(0x0ff0ffff, -1, -1, -1, -1, -1)];

/**
 * Run appendFreeRunsAt over PRIME_WORDS, so that V8 has type feedback for all of it before
 * it optimises it: a disk whose first groups are full (the 1 TiB test image's) has the loop
 * compiled after thousands of used words and no free run, and each path first taken later
 * (a run, a merge, words all free) then throws the compiled code away and compiles it again —
 * two more TurboFan compiles in a fresh `free`. `narrow`: the kind of table the scan fills
 * (the same typed arrays, so the feedback is what the scan sees).
 */
export function primeAppendFreeRuns(narrow: boolean): void {
  // Several rounds: V8 allocates a function's feedback vector only after it has run a while
  // (--lazy-feedback-allocation), and what ran before that left no feedback.
  for (let round = 0; round < PRIME_ROUNDS; round++)
    for (const words of PRIME_WORDS) {
      const t = new RunTable(1, narrow);
      t.push(1000, 16);
      appendFreeRunsAt(words, 0, words.length, 0, words.length * 32, 1000, t);
    }
}
const PRIME_ROUNDS = 8;

/**
 * Free runs (blocks) reported group by group in ascending order, merged into
 * maximal runs across group boundaries before `fn` sees them; fn returns
 * false to stop (then `stopped` is true and later runs are dropped).
 */
export class FreeRunMerger {
  private runStart = -1;
  private runLen = 0;
  stopped = false;
  constructor(private readonly fn: (start: number, length: number) => boolean | void) {}

  add(start: number, length: number): void {
    if (this.stopped) return;
    if (this.runLen > 0 && this.runStart + this.runLen === start) this.runLen += length;
    else {
      this.flush();
      this.runStart = start;
      this.runLen = length;
    }
  }

  /** Hand the pending run to fn. */
  flush(): void {
    if (this.runLen > 0 && !this.stopped && this.fn(this.runStart, this.runLen) === false) this.stopped = true;
    this.runLen = 0;
    this.runStart = -1;
  }

  /** A group's scanned range ended at block `end`: a run continues into the next group only if it reaches it. */
  endGroup(end: number): void {
    if (this.runLen > 0 && this.runStart + this.runLen !== end) this.flush();
  }
}

/**
 * What a scan needs of group g's bitmap, from its descriptor alone:
 * 'full' (bg_free_blocks_count 0: nothing to report), 'free' (every
 * cluster free: the whole group is one run) or 'bitmap'. The count is in
 * clusters, like the bitmap's bits.
 */
export function groupFreeKind(sb: Superblock, g: number, gd: GroupDesc): 'full' | 'free' | 'bitmap' {
  if (gd.freeBlocks === 0) return 'full';
  return gd.freeBlocks >= clustersInGroup(sb, g) ? 'free' : 'bitmap';
}

/**
 * The free runs of group g's blocks [first+lo, first+hi) into `out`, from its
 * bitmap (bits are clusters: each free run of clusters is clipped back to
 * blocks). Returns the free clusters seen in bits [lo/ratio, ceil(hi/ratio)).
 */
export function groupBitmapRuns(sb: Superblock, g: number, bits: Uint8Array | FreeRuns, lo: number, hi: number, out: FreeRunMerger): number {
  const first = groupFirstBlock(sb, g);
  const ratio = clusterRatio(sb);
  const cLo = Math.floor(lo / ratio), cHi = Math.ceil(hi / ratio);
  let free = 0;
  const visit =
    ratio === 1
      ? (s: number, l: number) => {
          free += l;
          out.add(first + s, l);
        }
      : (s: number, l: number) => {
          free += l;
          const b0 = Math.max(lo, s * ratio), b1 = Math.min(hi, (s + l) * ratio);
          if (b1 > b0) out.add(first + b0, b1 - b0);
        };
  if (bits instanceof FreeRuns) bits.forEach(cLo, cHi, visit);
  else forEachFreeRun(bits, cLo, cHi, visit);
  return free;
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
  const out = new FreeRunMerger(fn);
  const gEnd = Math.min(sb.groupCount, groupOfBlock(sb, to - 1) + 1);
  for (let g = groupOfBlock(sb, from); g < gEnd && !out.stopped; g++) {
    await src.beforeGroup?.(g, gEnd);
    const first = groupFirstBlock(sb, g);
    const gd = await src.group(g);
    const n = blocksInGroup(sb, g);
    const lo = Math.max(0, from - first), hi = Math.min(n, to - first);
    const kind = groupFreeKind(sb, g, gd);
    if (kind === 'full') {
      out.flush();
      continue;
    }
    if (kind === 'free') out.add(first + lo, hi - lo);
    else groupBitmapRuns(sb, g, src.runs ? await src.runs(g) : await src.bitmap(g), lo, hi, out);
    out.endGroup(first + hi);
  }
  out.flush();
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
