/**
 * The move scheduler (lib/ops/move-schedule.ts), on a block model (no I/O):
 * random valid sequential plans (each move takes blocks free at its turn,
 * often ones an earlier move freed), run wave by wave — each wave's frees
 * applied only when the wave ends (a freed block is reusable once its
 * transaction committed), its moves in a shuffled order and split at random
 * into transactions — end in exactly the sequential plan's state; no wave
 * takes blocks it frees itself; the wave count never exceeds the sequential
 * transaction count.
 */
import { describe, expect, it } from 'vitest';
import { Prng } from '../../lib/io/prng.js';
import { scheduleMoves, sequentialTransactions, type BlockRun, type MoveFootprint } from '../../lib/ops/move-schedule.js';

interface ModelMove extends MoveFootprint {
  /** Logical blocks [lb, lb + n) of the file go to the target, in order. */
  lb: number;
  n: number;
  /** The file's blocks in that range when the plan was made (the staleness check). */
  expect: number[];
}

interface Model {
  owner: Int32Array;
  maps: number[][];
}

function runsOf(blocks: readonly number[]): BlockRun[] {
  const out: BlockRun[] = [];
  for (const b of [...blocks].sort((x, y) => x - y)) {
    const last = out[out.length - 1];
    if (last && last.start + last.length === b) last.length++;
    else out.push({ start: b, length: 1 });
  }
  return out;
}

function expand(runs: readonly BlockRun[]): number[] {
  const out: number[] = [];
  for (const r of runs) for (let k = 0; k < r.length; k++) out.push(r.start + k);
  return out;
}

function cloneModel(m: Model): Model {
  return { owner: m.owner.slice(), maps: m.maps.map((x) => x.slice()) };
}

/** A random filesystem of `blocks` blocks and `files` files, and a valid sequential plan of `count` moves on it. */
function randomPlan(rnd: Prng, blocks: number, files: number, count: number, reuse: number): { start: Model; moves: ModelMove[] } {
  const owner = new Int32Array(blocks).fill(-1);
  const maps: number[][] = Array.from({ length: files }, () => []);
  for (let b = 0; b < blocks; b++) if (rnd.chance(0.6)) {
    const f = rnd.int(files);
    owner[b] = f;
    maps[f]!.push(b);
  }
  for (const m of maps) for (let k = m.length - 1; k > 0; k--) { const j = rnd.int(k + 1); [m[k], m[j]] = [m[j]!, m[k]!]; }
  const start: Model = { owner: owner.slice(), maps: maps.map((x) => x.slice()) };
  const moves: ModelMove[] = [];
  let lastFreed: number[] = [];
  for (let t = 0; t < count * 4 && moves.length < count; t++) {
    const file = rnd.int(files);
    const map = maps[file]!;
    if (!map.length) continue;
    const lb = rnd.int(map.length);
    const n = 1 + rnd.int(Math.min(6, map.length - lb));
    const free: number[] = [];
    for (let b = 0; b < blocks; b++) if (owner[b] === -1) free.push(b);
    if (free.length < n) continue;
    // often into what the previous move freed (the chain a compaction makes), else anywhere free
    const pool = rnd.chance(reuse) ? lastFreed.filter((b) => owner[b] === -1) : [];
    const target: number[] = [];
    const taken = new Set<number>();
    while (target.length < n) {
      const b = pool.length && rnd.chance(0.8) ? pool.splice(rnd.int(pool.length), 1)[0]! : free[rnd.int(free.length)]!;
      if (!taken.has(b) && owner[b] === -1) (taken.add(b), target.push(b));
    }
    const old = map.slice(lb, lb + n);
    moves.push({ file, lb, n, expect: old, frees: runsOf(old), target: target.map((b) => ({ start: b, length: 1 })) });
    for (const b of old) owner[b] = -1;
    for (const b of target) owner[b] = file;
    map.splice(lb, n, ...target);
    lastFreed = old;
  }
  return { start, moves };
}

/** Run moves one after the other (frees at once). */
function sequential(start: Model, moves: readonly ModelMove[]): Model {
  const s = cloneModel(start);
  for (const m of moves) apply(s, m, null);
  return s;
}

/** One move on the model; `pendingFree` collects its frees when given a wave to defer them to. */
function apply(s: Model, m: ModelMove, pendingFree: number[] | null): void {
  const map = s.maps[m.file]!;
  expect(map.slice(m.lb, m.lb + m.n), 'the file is as the plan saw it').toEqual(m.expect);
  const target = expand(m.target);
  for (const b of target) expect(s.owner[b], `target block ${b} is free`).toBe(-1);
  for (const b of m.expect) expect(s.owner[b]).toBe(m.file);
  for (const b of target) s.owner[b] = m.file;
  if (pendingFree) pendingFree.push(...m.expect);
  else for (const b of m.expect) s.owner[b] = -1;
  map.splice(m.lb, m.n, ...target);
}

function byWaves(start: Model, moves: readonly ModelMove[], rnd: Prng): { end: Model; waves: number } {
  const { waves } = scheduleMoves(moves);
  const s = cloneModel(start);
  for (const w of waves) {
    // any order that keeps each file's moves in plan order
    const order = w.slice();
    for (let k = order.length - 1; k > 0; k--) { const j = rnd.int(k + 1); [order[k], order[j]] = [order[j]!, order[k]!]; }
    const byFile = new Map<number, number[]>();
    for (const i of w) byFile.set(moves[i]!.file, [...(byFile.get(moves[i]!.file) ?? []), i]);
    for (let k = 0; k < order.length; k++) order[k] = byFile.get(moves[order[k]!]!.file)!.shift()!;
    // transactions: random cuts; a transaction's frees become free when it commits, and no
    // move of the wave may take a block freed anywhere in the wave
    const waveFrees = new Set(order.flatMap((i) => moves[i]!.expect));
    for (const i of order) for (const b of expand(moves[i]!.target)) expect(waveFrees.has(b), `wave takes block ${b} it frees`).toBe(false);
    let pending: number[] = [];
    for (const i of order) {
      apply(s, moves[i]!, pending);
      if (rnd.chance(0.3)) (pending.forEach((b) => (s.owner[b] = -1)), (pending = []));
    }
    for (const b of pending) s.owner[b] = -1;
  }
  return { end: s, waves: waves.length };
}

describe('move schedule (block model)', () => {
  it('waves end where the sequential plan ends, never reuse their own frees, and are no more than its transactions', () => {
    let sawFewer = false;
    for (let seed = 1; seed <= 60; seed++) {
      const rnd = new Prng(seed);
      const { start, moves } = randomPlan(rnd, 64 + rnd.int(400), 2 + rnd.int(40), 10 + rnd.int(150), [0, 0.5, 0.95][seed % 3]!);
      const want = sequential(start, moves);
      const got = byWaves(start, moves, rnd);
      expect(Array.from(got.end.owner), `seed ${seed}`).toEqual(Array.from(want.owner));
      expect(got.end.maps, `seed ${seed}`).toEqual(want.maps);
      const seq = sequentialTransactions(moves);
      expect(got.waves, `seed ${seed}`).toBeLessThanOrEqual(seq);
      if (got.waves < seq) sawFewer = true;
    }
    expect(sawFewer).toBe(true);
  });

  it('independent moves are one wave; a chain stays a chain; the same file keeps its order (a later wave only when it moves what it placed)', () => {
    const indep: MoveFootprint[] = Array.from({ length: 50 }, (_, k) => ({ file: k, frees: [{ start: k, length: 1 }], target: [{ start: 1000 + k, length: 1 }] }));
    expect(scheduleMoves(indep).waves).toEqual([indep.map((_, k) => k)]);
    // a slide: each file moves into the blocks the one before it freed
    const chain: MoveFootprint[] = Array.from({ length: 20 }, (_, k) => ({ file: k, frees: [{ start: 10 * (k + 1), length: 10 }], target: [{ start: 10 * k, length: 10 }] }));
    expect(scheduleMoves(chain).waves.length).toBe(20);
    expect(sequentialTransactions(chain)).toBe(20);
    // interleaved: two independent chains share waves
    const two = chain.flatMap((m, k) => [m, { file: 100 + k, frees: [{ start: 5000 + 10 * (k + 1), length: 10 }], target: [{ start: 5000 + 10 * k, length: 10 }] }]);
    const s = scheduleMoves(two);
    expect(s.waves.length).toBe(20);
    expect(sequentialTransactions(two)).toBe(20);
    expect(s.waves.every((w) => w.length === 2)).toBe(true);
    // one file moved twice, the second time the blocks the first placed: two waves, in order
    const twice: MoveFootprint[] = [{ file: 7, frees: [{ start: 1, length: 1 }], target: [{ start: 50, length: 1 }] }, { file: 8, frees: [{ start: 2, length: 1 }], target: [{ start: 60, length: 1 }] }, { file: 7, frees: [{ start: 50, length: 1 }], target: [{ start: 70, length: 1 }] }];
    const t = scheduleMoves(twice);
    expect(t.waves).toEqual([[0, 1], [2]]);
    expect(t.after[2]).toEqual([{ move: 0, kind: 'file' }]);
    // two pieces of one file to disjoint places: one wave, in plan order, the second after the first
    const pieces: MoveFootprint[] = [{ file: 7, frees: [{ start: 1, length: 1 }], target: [{ start: 50, length: 1 }] }, { file: 7, frees: [{ start: 3, length: 1 }], target: [{ start: 70, length: 1 }] }];
    const u = scheduleMoves(pieces);
    expect(u.waves).toEqual([[0, 1]]);
    expect(u.after[1]).toEqual([{ move: 0, kind: 'file' }]);
  });

  it('a chain reordered: a plan whose dependent moves come last needs two waves, not one per move', () => {
    // moves 0..9 free a block each; moves 10..19 each take one of those: sequentially the first
    // reuse ends the transaction and then every further one does (same-file repeats aside)
    const moves: MoveFootprint[] = [];
    for (let k = 0; k < 10; k++) moves.push({ file: k, frees: [{ start: k, length: 1 }], target: [{ start: 100 + k, length: 1 }] });
    for (let k = 0; k < 10; k++) moves.push({ file: 20 + k, frees: [{ start: 200 + k, length: 1 }], target: [{ start: 9 - k, length: 1 }] });
    const s = scheduleMoves(moves);
    expect(s.waves.length).toBe(2);
    expect(s.after[10]).toEqual([{ move: 9, kind: 'frees' }]);
  });

  it('a move that may allocate an extent-tree block runs no earlier than every move before it', () => {
    const moves: MoveFootprint[] = [
      { file: 1, frees: [{ start: 1, length: 1 }], target: [{ start: 100, length: 1 }] },
      { file: 2, frees: [{ start: 100, length: 0 }, { start: 2, length: 1 }], target: [{ start: 1, length: 1 }] },
      { file: 3, frees: [{ start: 3, length: 1 }], target: [{ start: 300, length: 1 }], allocates: true },
      { file: 4, frees: [{ start: 4, length: 1 }], target: [{ start: 400, length: 1 }] },
    ];
    const s = scheduleMoves(moves);
    expect(s.wave).toEqual([0, 1, 1, 0]);
    // and within its wave it comes after them (plan order)
    expect(s.waves[1]).toEqual([1, 2]);
  });

  it('a move with a predicted tree leaf: moves touching its search span keep their order in other waves, its file\'s other moves too', () => {
    // move 2 grows file 3's tree: the allocator searches 50..60 (goal 50, predicted leaf 60)
    const moves: MoveFootprint[] = [
      { file: 1, frees: [{ start: 55, length: 1 }], target: [{ start: 100, length: 1 }] }, // frees a block in the span: before
      { file: 3, frees: [{ start: 3, length: 1 }], target: [{ start: 300, length: 1 }] }, // same file, disjoint blocks
      { file: 3, frees: [{ start: 4, length: 1 }], target: [{ start: 50, length: 1 }], span: [{ start: 50, length: 11 }] },
      { file: 4, frees: [{ start: 5, length: 1 }], target: [{ start: 58, length: 1 }] }, // takes a block in the span: after
      { file: 3, frees: [{ start: 6, length: 1 }], target: [{ start: 600, length: 1 }] }, // same file, after
      { file: 5, frees: [{ start: 7, length: 1 }], target: [{ start: 700, length: 1 }] }, // unrelated: first wave
    ];
    expect(scheduleMoves(moves).wave).toEqual([0, 0, 1, 2, 2, 0]);
  });
});
