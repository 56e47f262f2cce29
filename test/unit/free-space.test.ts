/**
 * The allocator's pure cores against a naive per-block bitmap (fixed seeds,
 * no child processes): the free-extent index (FreeRuns) through random takes
 * and gives, forEachFreeRun, scanFreeWith fed by bitmaps vs by the index,
 * and the first-fit search (findFreeIn: plain, contiguous, exact, wrapping,
 * fixed metadata cut out).
 */
import { describe, expect, it } from 'vitest';
import { FreeRuns, findFreeIn, scanFreeWith, type FreeRun } from '../../lib/ext4/free-space.js';
import { forEachFreeRun } from '../../lib/ext4/bitmap.js';
import type { Superblock } from '../../lib/ext4/superblock.js';
import type { GroupDesc } from '../../lib/ext4/group-desc.js';
import { mulberry32 } from '../../lib/io/prng.js';

const randInt = (rnd: () => number, n: number) => Math.floor(rnd() * n);

/** A bitmap (bytes, a multiple of 4) with clustered used/free stretches, and its naive per-bit model. */
function randomBitmap(rnd: () => number, nbits: number): { bm: Uint8Array; used: boolean[] } {
  const bm = new Uint8Array(Math.ceil(nbits / 32) * 4);
  const used: boolean[] = [];
  let state = rnd() < 0.5;
  const pFlip = [0.02, 0.2, 0.6][randInt(rnd, 3)]!;
  for (let i = 0; i < nbits; i++) {
    if (rnd() < pFlip) state = !state;
    used.push(state);
    if (state) bm[i >> 3]! |= 1 << (i & 7);
  }
  // bits past nbits are set, as in a real bitmap's padding
  for (let i = nbits; i < bm.length * 8; i++) bm[i >> 3]! |= 1 << (i & 7);
  return { bm, used };
}

/** Maximal free runs of the model in [from, to). */
function naiveRuns(used: readonly boolean[], from: number, to: number): FreeRun[] {
  const out: FreeRun[] = [];
  for (let i = from; i < to; i++) {
    if (used[i]) continue;
    const last = out[out.length - 1];
    if (last && last.start + last.length === i) last.length++;
    else out.push({ start: i, length: 1 });
  }
  return out;
}

function collect(fn: (cb: (s: number, l: number) => void) => void): FreeRun[] {
  const out: FreeRun[] = [];
  fn((start, length) => { out.push({ start, length }); });
  return out;
}

describe('FreeRuns (the free-extent index) vs a naive bitmap', () => {
  it('random takes, gives and clipped queries keep it equal to the bitmap', () => {
    for (let seed = 1; seed <= 32; seed++) {
      const rnd = mulberry32(seed);
      const nbits = 1 + randInt(rnd, seed % 8 === 0 ? 32768 : 3000);
      const { bm, used } = randomBitmap(rnd, nbits);
      const runs = FreeRuns.fromBitmap(bm, nbits);
      expect(collect((cb) => forEachFreeRun(bm, 0, nbits, cb)), `seed ${seed}: forEachFreeRun`).toEqual(naiveRuns(used, 0, nbits));
      for (let step = 0; step < 300; step++) {
        const start = randInt(rnd, nbits), length = 1 + randInt(rnd, Math.min(nbits - start, rnd() < 0.8 ? 8 : 400));
        const slice = used.slice(start, start + length);
        if (rnd() < 0.5) {
          const ok = slice.every((u) => !u);
          expect(runs.take(start, length), `seed ${seed} step ${step}: take ${start}+${length}`).toBe(ok);
          if (ok) for (let i = start; i < start + length; i++) used[i] = true;
        } else {
          const ok = slice.every((u) => u);
          expect(runs.give(start, length), `seed ${seed} step ${step}: give ${start}+${length}`).toBe(ok);
          if (ok) for (let i = start; i < start + length; i++) used[i] = false;
        }
        if (step % 10 === 0 || step === 299) {
          expect(collect((cb) => runs.forEach(0, nbits, cb)), `seed ${seed} step ${step}: runs`).toEqual(naiveRuns(used, 0, nbits));
          expect(runs.count).toBe(used.filter((u) => !u).length);
        }
        const a = randInt(rnd, nbits + 1), b = a + randInt(rnd, nbits + 1 - a);
        expect(collect((cb) => runs.forEach(a, b, cb)), `seed ${seed} step ${step}: runs in [${a}, ${b})`).toEqual(naiveRuns(used, a, b));
      }
    }
  });

  it('forEachFreeRun clips to [from, to) like the model', () => {
    const rnd = mulberry32(77);
    for (let k = 0; k < 200; k++) {
      const nbits = 1 + randInt(rnd, 700);
      const { bm, used } = randomBitmap(rnd, nbits);
      const a = randInt(rnd, nbits + 1), b = a + randInt(rnd, nbits + 1 - a);
      expect(collect((cb) => forEachFreeRun(bm, a, b, cb))).toEqual(naiveRuns(used, a, b));
    }
  });
});

/** A small multi-group geometry (no bigalloc) with random bitmaps; descriptors carry the free counts. */
function randomFs(rnd: () => number) {
  const perGroup = 32 * (1 + randInt(rnd, 8));
  const groups = 1 + randInt(rnd, 12);
  const firstData = randInt(rnd, 2);
  const lastGroupBlocks = 1 + randInt(rnd, perGroup);
  const blocksCount = firstData + (groups - 1) * perGroup + lastGroupBlocks;
  const sb = {
    s_first_data_block: firstData, s_blocks_per_group: perGroup, blocksCount, groupCount: groups,
    s_feature_ro_compat: 0, s_log_block_size: 2, s_log_cluster_size: 2,
  } as unknown as Superblock;
  const used: boolean[] = new Array(blocksCount).fill(true);
  const bitmaps: Uint8Array[] = [];
  const gds: GroupDesc[] = [];
  for (let g = 0; g < groups; g++) {
    const n = g === groups - 1 ? lastGroupBlocks : perGroup;
    const mode = rnd();
    // some groups full, some entirely free, most mixed
    const r = mode < 0.15 ? { bm: new Uint8Array(perGroup / 8).fill(0xff), used: new Array<boolean>(n).fill(true) } : mode < 0.3 ? { bm: new Uint8Array(perGroup / 8), used: new Array<boolean>(n).fill(false) } : randomBitmap(rnd, n);
    const bm = new Uint8Array(perGroup / 8);
    bm.set(r.bm.subarray(0, bm.length));
    for (let i = n; i < perGroup; i++) bm[i >> 3]! |= 1 << (i & 7);
    bitmaps.push(bm);
    const free = r.used.slice(0, n).filter((u) => !u).length;
    gds.push({ freeBlocks: free } as GroupDesc);
    for (let i = 0; i < n; i++) used[firstData + g * perGroup + i] = r.used[i]!;
  }
  return { sb, used, bitmaps, gds, blocksCount, firstData };
}

describe('scanFreeWith: bitmaps or the index, the same runs', () => {
  it('random geometries and ranges, with early stops', async () => {
    for (let seed = 1; seed <= 150; seed++) {
      const rnd = mulberry32(1000 + seed);
      const f = randomFs(rnd);
      const idx = f.bitmaps.map((bm, g) => FreeRuns.fromBitmap(bm, f.sb.s_blocks_per_group));
      const fromBitmaps = { group: async (g: number) => f.gds[g]!, bitmap: async (g: number) => f.bitmaps[g]! };
      const fromIndex = { group: async (g: number) => f.gds[g]!, bitmap: async (): Promise<Uint8Array> => { throw new Error('the index source reads no bitmap'); }, runs: async (g: number) => idx[g]! };
      for (let q = 0; q < 10; q++) {
        const a = randInt(rnd, f.blocksCount + 2), b = a + randInt(rnd, f.blocksCount + 2 - a);
        const stopAfter = rnd() < 0.3 ? 1 + randInt(rnd, 4) : Infinity;
        const run = async (src: typeof fromBitmaps) => {
          const out: FreeRun[] = [];
          await scanFreeWith(f.sb, src, a, b, (start, length) => out.push({ start, length }) < stopAfter);
          return out;
        };
        const want = naiveRuns(f.used, Math.max(a, f.firstData), Math.min(b, f.blocksCount)).slice(0, stopAfter);
        expect(await run(fromBitmaps), `seed ${seed}: bitmaps [${a}, ${b})`).toEqual(want);
        expect(await run(fromIndex), `seed ${seed}: index [${a}, ${b})`).toEqual(want);
      }
    }
  });
});

/** The allocator's search, block by block: what findFreeIn must return. */
function naiveFind(free: (b: number) => boolean, first: number, end: number, opts: { goal: number; length: number; contiguous?: boolean; exact?: boolean }): FreeRun[] {
  const goal = Math.min(Math.max(opts.goal, first), end - 1);
  const want = opts.length;
  if (want <= 0) return [];
  const runsIn = (a: number, b: number): FreeRun[] => {
    const out: FreeRun[] = [];
    for (let x = a; x < b; x++) {
      if (!free(x)) continue;
      const last = out[out.length - 1];
      if (last && last.start + last.length === x) last.length++;
      else out.push({ start: x, length: 1 });
    }
    return out;
  };
  if (opts.exact) {
    if (!free(goal)) return [];
    let l = 0;
    while (goal + l < Math.min(end, goal + want) && free(goal + l)) l++;
    if (opts.contiguous || l >= want) return [{ start: goal, length: Math.min(l, want) }];
    const rest = naiveFind((b) => free(b) && !(b >= goal && b < goal + l), first, end, { goal: goal + l, length: want - l });
    return [{ start: goal, length: l }, ...rest];
  }
  if (opts.contiguous) {
    let best: FreeRun | null = null;
    for (const r of [...runsIn(goal, end), ...(goal > first ? runsIn(first, Math.min(end, goal + want)) : [])]) {
      if (r.length >= want) return [{ start: r.start, length: want }];
      if (!best || r.length > best.length) best = r;
    }
    return best ? [best] : [];
  }
  const out: FreeRun[] = [];
  let need = want;
  for (const r of [...runsIn(goal, end), ...(goal > first ? runsIn(first, goal) : [])]) {
    if (need <= 0) break;
    const take = Math.min(need, r.length);
    out.push({ start: r.start, length: take });
    need -= take;
  }
  return out;
}

describe('findFreeIn (first fit from the goal) vs a block-by-block search', () => {
  it('plain, contiguous and exact requests on random free maps with fixed metadata cut out', async () => {
    for (let seed = 1; seed <= 120; seed++) {
      const rnd = mulberry32(5000 + seed);
      const f = randomFs(rnd);
      const idx = f.bitmaps.map((bm) => FreeRuns.fromBitmap(bm, f.sb.s_blocks_per_group));
      // "fixed metadata": blocks the allocator must never hand out, whatever the bitmap says
      const fixed = new Set<number>();
      for (let k = 0; k < randInt(rnd, 30); k++) fixed.add(randInt(rnd, f.blocksCount));
      const usable = (s: number, l: number): FreeRun[] => {
        const out: FreeRun[] = [];
        for (let b = s; b < s + l; b++) {
          if (fixed.has(b)) continue;
          const last = out[out.length - 1];
          if (last && last.start + last.length === b) last.length++;
          else out.push({ start: b, length: 1 });
        }
        return out;
      };
      const src = { group: async (g: number) => f.gds[g]!, bitmap: async (g: number) => f.bitmaps[g]!, runs: async (g: number) => idx[g]! };
      const scan = (from: number, to: number, fn: (s: number, l: number) => boolean | void) => scanFreeWith(f.sb, src, from, to, fn);
      const free = (b: number) => b >= f.firstData && b < f.blocksCount && !f.used[b] && !fixed.has(b);
      for (let q = 0; q < 12; q++) {
        const kind = randInt(rnd, 4);
        const opts = {
          goal: randInt(rnd, f.blocksCount + 3), length: 1 + randInt(rnd, rnd() < 0.5 ? 8 : f.blocksCount),
          contiguous: kind === 1 || kind === 3, exact: kind >= 2,
        };
        const got = await findFreeIn(scan, { first: f.firstData, end: f.blocksCount }, usable, opts);
        expect(got, `seed ${seed}: ${JSON.stringify(opts)}`).toEqual(naiveFind(free, f.firstData, f.blocksCount, opts));
        for (const r of got) for (let b = r.start; b < r.start + r.length; b++) expect(free(b), `seed ${seed}: block ${b} is free and usable`).toBe(true);
      }
    }
  });
});
