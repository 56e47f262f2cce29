/**
 * Synthetic models for the defrag planner (lib/ops/defrag-plan.ts): a space fragmented the way
 * test/helpers/frag-images.ts fragments a kernel image — several writers appending small chunks in
 * turn through a next-fit allocator, a third of the files deleted, more appends into the holes —
 * and a replay that checks a plan against the rules the executor (moveFiles) enforces.
 */
import { expect } from 'vitest';
import { FreeIndex, planDefrag, type Plan, type PlanFile, type PlanOptions, type Run } from '../../lib/ops/defrag-plan.js';
import { layOut } from '../../lib/ops/move-batch.js';
import { fragmentCount, mappedBlocks, mergeAdjacent } from '../../lib/ext4/extent-map.js';
import type { Extent } from '../../lib/ext4/extents.js';
import { mulberry32 } from '../../lib/io/prng.js';

export interface Model {
  files: PlanFile[];
  free: Run[];
  bounds: { first: number; end: number };
}

/**
 * `blocks` blocks, the first `reserved` unmovable (plus a few unmovable islands, like directory
 * blocks), filled to `fill` by `writers` interleaved appenders; files with more than four extents
 * get a tree block, as the kernel gives them. `barrierEvery`: two unmovable blocks at each multiple
 * of it, as backup superblocks and descriptors cut a filesystem's space every other group or so.
 */
export function fragmentedModel(seed: number, blocks: number, fill: number, writers = 4, reserved = 64, barrierEvery = 0): Model {
  const rnd = mulberry32(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const owner = new Int32Array(blocks).fill(-1); // -1 free, -2 unmovable, else file index
  for (let b = 0; b < reserved; b++) owner[b] = -2;
  for (let b = barrierEvery; barrierEvery > 0 && b + 1 < blocks; b += barrierEvery) owner[b] = owner[b + 1] = -2;
  for (let k = 0; k < 4; k++) owner[int(reserved, blocks - 1)] = -2;
  const files: { extents: Extent[]; size: number; target: number; alive: boolean }[] = [];
  let cursor = reserved;
  let used = blocks - owner.filter((o) => o === -1).length;
  /** Next-fit: the first free blocks from the cursor, possibly in several pieces. */
  const alloc = (n: number, who: number): Run[] => {
    const out: Run[] = [];
    for (let scanned = 0; n > 0 && scanned < blocks; scanned++) {
      if (cursor >= blocks) cursor = reserved;
      if (owner[cursor] === -1) {
        owner[cursor] = who;
        const last = out[out.length - 1];
        if (last && last.start + last.length === cursor) last.length++;
        else out.push({ start: cursor, length: 1 });
        n--;
        used++;
      }
      cursor++;
    }
    return out;
  };
  const active: number[] = [];
  const append = (limit: number): void => {
    while (used < limit) {
      while (active.length < writers) {
        files.push({ extents: [], size: 0, target: int(4, 300), alive: true });
        active.push(files.length - 1);
      }
      const w = int(0, active.length - 1);
      const i = active[w]!;
      const f = files[i]!;
      const got = alloc(Math.min(int(1, 24), f.target - f.size, limit - used), i);
      if (!got.length) return;
      for (const r of got) {
        f.extents.push({ logical: f.size, physical: r.start, length: r.length, unwritten: false });
        f.size += r.length;
      }
      if (f.size >= f.target) active.splice(w, 1);
    }
  };
  append(Math.floor(blocks * fill * 0.8));
  for (let i = 0; i < files.length; i++) {
    if (active.includes(i) || rnd() >= 1 / 3) continue;
    files[i]!.alive = false;
    for (const e of files[i]!.extents) for (let b = e.physical; b < e.physical + e.length; b++) (owner[b] = -1), used--;
  }
  cursor = reserved;
  append(Math.floor(blocks * fill));
  const out: PlanFile[] = [];
  files.forEach((f, i) => {
    if (!f.alive || !f.size) return;
    const extents = mergeAdjacent(f.extents);
    const treeBlocks = extents.length > 4 ? alloc(1, i).map((r) => r.start) : [];
    out.push({ ino: 12 + i, path: `/f${i}`, extents, treeBlocks });
  });
  const free: Run[] = [];
  for (let b = 0; b < blocks; b++) {
    if (owner[b] !== -1) continue;
    const last = free[free.length - 1];
    if (last && last.start + last.length === b) last.length++;
    else free.push({ start: b, length: 1 });
  }
  return { files: out, free, bounds: { first: 0, end: blocks } };
}

/**
 * The block remapInode's allocator gives a new tree leaf: the first free block at or after the
 * goal (the file's first extent's block), wrapping — computed here on the free index alone.
 */
function allocatorPick(idx: FreeIndex, goal: number): number {
  const r = idx.runs.find((x) => x.start + x.length > goal);
  return r ? Math.max(goal, r.start) : idx.runs[0]!.start;
}

/**
 * Replay a plan on a fresh copy of the model's free space, as the executor runs it: every target
 * is free when its step runs and is none of the file's own blocks (moveFiles refuses that), each
 * step starts from the map the previous steps left (its `expect`), the blocks it gives up and the
 * tree blocks a collapsing tree frees go back. A file outgrowing the inode gets its leaf where
 * the allocator puts it (its first free block from the file's first block, the step's own old
 * blocks still held): a step's predicted `treeBlock` must be that block. Returns the blocks copied,
 * the free index and each file's map and tree blocks at the end, and the leaves the plan did not
 * predict. `final`: the plan is the whole run, its prediction is checked.
 */
export function replay(m: Model, plan: Plan, final = true): { moved: number; free: FreeIndex; maps: Extent[][]; trees: number[][]; unpredicted: number } {
  const idx = new FreeIndex(m.free);
  const maps = m.files.map((f) => f.extents);
  const trees = m.files.map((f) => f.treeBlocks.slice());
  let moved = 0, unpredicted = 0;
  for (const s of plan.steps) {
    expect(s.expect, `step on file ${s.file} starts from its current map`).toEqual(maps[s.file]);
    const { newExtents, freed } = layOut(s.expect, s.logical, s.length, s.target);
    for (const t of s.target) {
      expect(idx.isFree(t.start, t.length), `target ${t.start}+${t.length} of file ${s.file} is free`).toBe(true);
      idx.take(t.start, t.length);
      moved += t.length;
    }
    if (newExtents.length > 4 && !trees[s.file]!.length) {
      const leaf = allocatorPick(idx, newExtents[0]!.physical);
      if (s.treeBlock === undefined) unpredicted++;
      else expect(s.treeBlock, `file ${s.file}'s new leaf`).toBe(leaf);
      idx.take(leaf, 1);
      trees[s.file] = [leaf];
    } else expect(s.treeBlock, `step on file ${s.file} grows no tree`).toBeUndefined();
    for (const f of freed) idx.give(f.physical, f.length);
    maps[s.file] = newExtents;
    if (newExtents.length <= 4 && trees[s.file]!.length) {
      for (const b of trees[s.file]!) if (b >= 0) idx.give(b, 1);
      trees[s.file] = [];
    }
  }
  expect(maps).toEqual(plan.after);
  if (final) {
    expect({ freeExtents: idx.count, largestFree: idx.largest, freeBlocks: idx.total }).toEqual({ freeExtents: plan.predicted.freeExtents, largestFree: plan.predicted.largestFree, freeBlocks: plan.predicted.freeBlocks });
    expect(plan.predicted.extents).toBe(maps.reduce((a, x) => a + fragmentCount(x), 0));
  }
  return { moved, free: idx, maps, trees, unpredicted };
}

/**
 * A real run on the model, as defrag() drives it: plan (stopping where a tree grows unpredicted),
 * execute (replay: unpredicted leaves land where the allocator puts them), plan again from the
 * result, until a plan is complete. Returns the rounds, the blocks copied in all, and the last
 * round's plan and end state.
 */
export function runRounds(m: Model, opts: PlanOptions, maxRounds = 200): { rounds: number; moved: number; steps: number; last: Plan; end: Model } {
  let cur = m, moved = 0, steps = 0;
  for (let round = 1; ; round++) {
    const plan = planDefrag(cur.files, cur.free, cur.bounds, { ...opts, stopAtTreeGrowth: true });
    const r = replay(cur, plan, plan.complete);
    moved += r.moved;
    steps += plan.steps.length;
    const end: Model = { files: cur.files.map((f, i) => ({ ...f, extents: r.maps[i]!, treeBlocks: r.trees[i]! })), free: r.free.runs, bounds: cur.bounds };
    if (plan.complete || round >= maxRounds) return { rounds: round, moved, steps, last: plan, end };
    cur = end;
  }
}

/** Blocks of the files that are not ideal (more than one extent for files under 128 MiB). */
export function fragmentedBlocks(m: Model): number {
  return m.files.filter((f) => fragmentCount(f.extents) > 1).reduce((a, f) => a + mappedBlocks(f.extents), 0);
}
