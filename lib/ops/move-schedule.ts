/**
 * The order moves run in: a plan is a sequence of moves (each frees its
 * file's old blocks and takes target blocks), and running it one transaction
 * per dependency boundary, in plan order, makes a chain of transactions
 * whenever each move reuses what the one before freed. This scheduler keeps
 * only the orders that matter and groups the rest into waves:
 *
 * move j runs in a later wave than an earlier move i when any block either
 * one frees or takes is one the other frees or takes (j's target on blocks i
 * frees is the real case: a block freed in a transaction is reusable only
 * once it committed, else a crash before the commit leaves i's file reading
 * j's data; the other overlaps cannot occur in a valid plan and are kept to
 * stay on the safe side). Moves of the same file on disjoint blocks (pieces
 * of one file evicted one after the other) may share a wave, in plan order:
 * the executor applies them in order, each from the map the one before
 * leaves. A move that may allocate blocks nobody planned (an extent-tree
 * block: the allocator picks it) runs no earlier than every move before it,
 * so it cannot take their targets first. A move whose tree block was
 * predicted (the allocator's first free block from a goal) declares the
 * blocks that search reads (`span`): the moves touching them keep their plan
 * order around it, in other waves, as do its file's other moves, so the
 * search meets the state the prediction saw.
 *
 * Moves of one wave touch disjoint blocks, so any order of them that keeps
 * each file's moves in plan order — and any split of a wave into
 * transactions — ends in the state the sequential plan ends in; the wave
 * count is the longest chain of block dependencies, never more than the
 * transactions the sequential order needs.
 * Pure: no I/O; blocks are numbers.
 */

export interface BlockRun {
  start: number;
  length: number;
}

export interface MoveFootprint {
  /** Which file it moves (any id: equal ids keep their order). */
  file: number;
  /** Blocks the move may free (its source runs, tree blocks): a superset is fine. */
  frees: readonly BlockRun[];
  /** Blocks it takes. */
  target: readonly BlockRun[];
  /** It may allocate blocks outside its target (an extent-tree block). */
  allocates?: boolean;
  /**
   * Blocks whose state its own allocation depends on (from the allocator's goal to the block it
   * is predicted to take): ordered like blocks it frees or takes, and its file's moves before and
   * after it run in other waves (a file's moves of one transaction are remapped as one).
   */
  span?: readonly BlockRun[];
}

/** Why move j waits for move i. */
export type DependencyKind = 'file' | 'frees' | 'blocks' | 'allocates';

export interface Schedule {
  /** Wave of each move (0-based), by the move's index. */
  wave: number[];
  /** Move indices per wave, each in plan order (keep it for a file's moves). */
  waves: number[][];
  /** Direct predecessors of each move (enough that their closure holds every dependency). */
  after: { move: number; kind: DependencyKind }[][];
}

interface Segment {
  start: number;
  end: number;
  /** The last move (in plan order) that freed or took these blocks. */
  move: number;
}

/** Blocks → the last move that touched them: sorted, disjoint segments. */
class LastTouch {
  private segs: Segment[] = [];
  /** First segment ending after b. */
  private at(b: number): number {
    let lo = 0, hi = this.segs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.segs[mid]!.end <= b) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  /** Moves that last touched any block of [start, end). */
  touching(start: number, end: number, out: Set<number>): void {
    for (let k = this.at(start); k < this.segs.length && this.segs[k]!.start < end; k++) out.add(this.segs[k]!.move);
  }
  /** The highest of `value(move)` over the moves that last touched any block of [start, end) (-1: none). */
  maxOver(start: number, end: number, value: readonly number[]): number {
    let w = -1;
    for (let k = this.at(start); k < this.segs.length && this.segs[k]!.start < end; k++) w = Math.max(w, value[this.segs[k]!.move]!);
    return w;
  }
  /** [start, end) was last touched by `move`. */
  assign(start: number, end: number, move: number): void {
    const k = this.at(start);
    let e = k;
    const repl: Segment[] = [];
    while (e < this.segs.length && this.segs[e]!.start < end) e++;
    const first = this.segs[k], last = this.segs[e - 1];
    if (first && first.start < start && e > k) repl.push({ start: first.start, end: start, move: first.move });
    repl.push({ start, end, move });
    if (last && last.end > end && e > k) repl.push({ start: end, end: last.end, move: last.move });
    this.segs.splice(k, e - k, ...repl);
  }
}

/**
 * The blocks of a move's runs as few sorted runs (overlapping and adjacent ones merged): the same
 * blocks touched and assigned, in fewer LastTouch calls — a move's frees list each old run twice
 * (the planner's expectation and the map as read), and in a fresh process these loops run cold
 * (scheduleMoves of the 90 % plan's 396 moves: ~40 ms cold, ~2 ms warm).
 */
function coalesce(list: BlockRun[]): BlockRun[] {
  const runs = list.filter((r) => r.length > 0).sort((a, b) => a.start - b.start);
  const out: BlockRun[] = [];
  // (indexed loops here and below: every planned step runs them, interpreted in a fresh process,
  // where for-of allocates an iterator result per element)
  for (let i = 0; i < runs.length; i++) {
    const r = runs[i]!;
    const last = out[out.length - 1];
    if (last && r.start <= last.start + last.length) {
      if (r.start + r.length > last.start + last.length) out[out.length - 1] = { start: last.start, length: r.start + r.length - last.start };
    } else out.push(r);
  }
  return out;
}

function overlapsAny(a: readonly BlockRun[], b: readonly BlockRun[]): boolean {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    for (let k = 0; k < b.length; k++) {
      const y = b[k]!;
      if (x.start < y.start + y.length && y.start < x.start + x.length) return true;
    }
  }
  return false;
}

/**
 * The scheduler, one move at a time in plan order: each move's wave is known as it is added
 * (the planner prices a plan's waves while it plans, and stops a plan that cannot win).
 */
export class WaveScheduler {
  readonly wave: number[] = [];
  readonly after: { move: number; kind: DependencyKind }[][] = [];
  private readonly moves: MoveFootprint[] = [];
  private readonly touch = new LastTouch();
  private readonly lastOfFile = new Map<number, number>();
  /** Files whose last move so far had a span: their next move goes to a later wave. */
  private readonly spanned = new Set<number>();
  private maxWave = -1;
  /** Waves so far. */
  get waveCount(): number { return this.maxWave + 1; }
  /**
   * The first wave a move taking [start, start+length) can run in as far as those blocks go: after
   * every move that freed or took any of them (a block freed in a wave is reusable once that
   * wave committed). 0 for blocks no move touched (free from the start).
   */
  readyWave(start: number, length: number): number {
    return this.touch.maxOver(start, start + length, this.wave) + 1;
  }
  /** The first wave a next move of `file` can run in as far as the file's own order goes. */
  fileWave(file: number): number {
    const prev = this.lastOfFile.get(file);
    return prev === undefined ? 0 : this.wave[prev]! + (this.spanned.has(file) ? 1 : 0);
  }
  /** Add the next move; its wave. */
  add(m: MoveFootprint): number {
    const j = this.moves.length;
    const { moves, touch, wave, lastOfFile, spanned } = this;
    moves.push(m);
    const runs = coalesce(m.span ? m.frees.concat(m.target, m.span) : m.frees.concat(m.target));
    const near = new Set<number>();
    for (let k = 0; k < runs.length; k++) touch.touching(runs[k]!.start, runs[k]!.start + runs[k]!.length, near);
    const deps = new Map<number, DependencyKind>();
    let w = 0;
    // sharing blocks: a later wave (forEach: no iterator result per element, interpreted)
    near.forEach((i) => {
      deps.set(i, overlapsAny(m.target, moves[i]!.frees) ? 'frees' : 'blocks');
      w = Math.max(w, wave[i]! + 1);
    });
    // the same file on other blocks: the same wave will do, after it (the executor applies a
    // file's moves of one transaction in order, each from the map the one before leaves)
    const prev = lastOfFile.get(m.file);
    if (prev !== undefined) {
      deps.set(prev, 'file');
      w = Math.max(w, wave[prev]! + (m.span || spanned.has(m.file) ? 1 : 0));
    }
    const lastMove = j - 1;
    if (m.allocates && lastMove >= 0) {
      // no earlier than every earlier move: their targets are reserved before its tree block is placed
      if (!deps.has(lastMove)) deps.set(lastMove, 'allocates');
      w = Math.max(w, this.maxWave);
    }
    wave.push(w);
    const after: { move: number; kind: DependencyKind }[] = [];
    deps.forEach((kind, move) => void after.push({ move, kind }));
    this.after.push(after);
    for (let k = 0; k < runs.length; k++) touch.assign(runs[k]!.start, runs[k]!.start + runs[k]!.length, j);
    lastOfFile.set(m.file, j);
    if (m.span) spanned.add(m.file);
    else spanned.delete(m.file);
    this.maxWave = Math.max(this.maxWave, w);
    return w;
  }
  schedule(): Schedule {
    const waves: number[][] = Array.from({ length: this.maxWave + 1 }, () => []);
    for (let j = 0; j < this.wave.length; j++) waves[this.wave[j]!]!.push(j);
    return { wave: this.wave, waves, after: this.after };
  }
}

/** Waves of moves, as early as their dependencies allow (see the module comment). */
export function scheduleMoves(moves: readonly MoveFootprint[]): Schedule {
  const s = new WaveScheduler();
  for (const m of moves) s.add(m);
  return s.schedule();
}

/**
 * Transactions the plain sequential order needs: a new one wherever a move
 * takes blocks freed earlier in the current one, or moves a file again (what
 * moveFiles did before waves; the bound the waves are checked against).
 */
export function sequentialTransactions(moves: readonly MoveFootprint[]): number {
  let count = 0;
  let frees: BlockRun[] = [];
  let files = new Set<number>();
  for (const m of moves) {
    if (count === 0 || files.has(m.file) || overlapsAny(m.target, frees)) {
      count++;
      frees = [];
      files = new Set();
    }
    frees.push(...m.frees);
    files.add(m.file);
  }
  return count;
}
