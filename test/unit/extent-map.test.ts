/**
 * The pure cores of a file's map against a naive per-block model (fixed
 * seeds, no child processes):
 * - extent-map.ts: insert, punch, normalise, markWritten, mappedIn — the
 *   same blocks as the model, in normal form (sorted, maximal merges within
 *   the on-disk length limits);
 * - movedata's planMove: the per-block rules of semantics.md §1;
 * - nextStepEnd: the step cut (at most maxExt extents of either file);
 * - local tree edits (extent-edit.ts) against the whole-tree writer
 *   (extent-tree.ts, the oracle): both trees read back the same list and
 *   satisfy e2fsck's shape rule.
 */
import { describe, expect, it } from 'vitest';
import { insert, mappedIn, markWritten, maxLen, normalise, punch } from '../../lib/ext4/extent-map.js';
import { EXT_INIT_MAX_LEN, readHeader, walkExtentTree, writeHeader, type Extent } from '../../lib/ext4/extents.js';
import { planMove, nextStepEnd } from '../../lib/ops/movedata.js';
import { editExtentTree } from '../../lib/ext4/extent-edit.js';
import { effectiveMax, shapeProblem, writeExtentTree, type LevelStat } from '../../lib/ext4/extent-tree.js';
import { mulberry32 } from '../../lib/io/prng.js';

type Cell = { physical: number; unwritten: boolean };
type Model = Map<number, Cell>;
const randInt = (rnd: () => number, n: number) => Math.floor(rnd() * n);

function toModel(list: readonly Extent[]): Model {
  const m: Model = new Map();
  for (const e of list) for (let i = 0; i < e.length; i++) {
    if (m.has(e.logical + i)) throw new Error(`model: block ${e.logical + i} twice`);
    m.set(e.logical + i, { physical: e.physical + i, unwritten: e.unwritten });
  }
  return m;
}

function sameModel(a: Model, b: Model): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (!w || w.physical !== v.physical || w.unwritten !== v.unwritten) return false;
  }
  return true;
}

/** Sorted, non-overlapping, no two neighbours that could merge, lengths within limits. */
function normalForm(list: readonly Extent[]): string | null {
  for (let i = 0; i < list.length; i++) {
    const e = list[i]!;
    if (e.length <= 0 || e.length > maxLen(e.unwritten)) return `extent ${i} has length ${e.length}`;
    const p = list[i - 1];
    if (!p) continue;
    if (p.logical + p.length > e.logical) return `extents ${i - 1} and ${i} overlap or are unsorted`;
    if (p.unwritten === e.unwritten && p.logical + p.length === e.logical && p.physical + p.length === e.physical && p.length + e.length <= maxLen(e.unwritten))
      return `extents ${i - 1} and ${i} should have merged`;
  }
  return null;
}

/** A random normalised list: runs of blocks, some physically continuing the previous, some long. */
function randomList(rnd: () => number, n: number, long = true): Extent[] {
  const out: Extent[] = [];
  let lb = randInt(rnd, 5), pb = 1000 + randInt(rnd, 1000);
  for (let i = 0; i < n; i++) {
    const len = long && rnd() < 0.05 ? EXT_INIT_MAX_LEN - randInt(rnd, 3) : 1 + randInt(rnd, 6);
    const unwritten = rnd() < 0.3;
    out.push({ logical: lb, physical: pb, length: Math.min(len, maxLen(unwritten)), unwritten });
    lb += out[out.length - 1]!.length + (rnd() < 0.5 ? 0 : 1 + randInt(rnd, 4));
    pb += out[out.length - 1]!.length + (rnd() < 0.5 ? 0 : 1 + randInt(rnd, 100000));
  }
  return normalise(out);
}

const span = (list: readonly Extent[]) => (list.length ? list[list.length - 1]!.logical + list[list.length - 1]!.length : 0);

describe('extent-map operations vs a per-block model', () => {
  it('insert, punch, markWritten, mappedIn and normalise', () => {
    for (let seed = 1; seed <= 150; seed++) {
      const rnd = mulberry32(seed);
      const list = randomList(rnd, 1 + randInt(rnd, 12));
      const model = toModel(list);
      expect(normalForm(list)).toBeNull();
      const s = span(list);
      const lb = randInt(rnd, s + 3), len = 1 + randInt(rnd, Math.max(1, s / 2));

      // punch: the range's blocks leave the map and are returned
      const p = punch(list, lb, len);
      const pm = new Map(model), removed: Model = new Map();
      for (let b = lb; b < lb + len; b++) if (pm.has(b)) { removed.set(b, pm.get(b)!); pm.delete(b); }
      expect(sameModel(toModel(p.list), pm), `seed ${seed}: punch ${lb}+${len}`).toBe(true);
      expect(sameModel(toModel(p.removed), removed), `seed ${seed}: punched blocks`).toBe(true);
      expect(normalForm(normalise(p.list))).toBeNull();

      // mappedIn: the range's blocks, clipped
      const inRange: Model = new Map([...model].filter(([b]) => b >= lb && b < lb + len));
      expect(sameModel(toModel(mappedIn(list, lb, len)), inRange), `seed ${seed}: mappedIn`).toBe(true);

      // markWritten: unwritten blocks of the range become written
      const mw = markWritten(list, lb, len);
      const mwm: Model = new Map([...model].map(([b, c]) => [b, b >= lb && b < lb + len ? { ...c, unwritten: false } : c]));
      expect(sameModel(toModel(mw), mwm), `seed ${seed}: markWritten`).toBe(true);
      expect(normalForm(mw), `seed ${seed}: markWritten normal form`).toBeNull();

      // insert into the punched hole: a few extents, some physically continuing their neighbours
      const add: Extent[] = [];
      for (let b = lb; b < lb + len;) {
        const l = Math.min(lb + len - b, 1 + randInt(rnd, 5));
        const before = p.list.filter((e) => e.logical + e.length === b)[0];
        const physical = before && rnd() < 0.5 ? before.physical + before.length : 5_000_000 + randInt(rnd, 1e6) * 8;
        add.push({ logical: b, physical, length: l, unwritten: before && rnd() < 0.5 ? before.unwritten : rnd() < 0.5 });
        b += l + randInt(rnd, 2);
      }
      const ins = insert(p.list, add);
      const im = new Map(pm);
      for (const [b, c] of toModel(add)) im.set(b, c);
      expect(sameModel(toModel(ins), im), `seed ${seed}: insert`).toBe(true);
      expect(normalForm(ins), `seed ${seed}: insert normal form`).toBeNull();

      // inserting over a mapped block is refused
      if (list.length) expect(() => insert(list, [{ logical: list[0]!.logical, physical: 9, length: 1, unwritten: false }])).toThrow(/already mapped/);
      // normalise of a split-up list merges it back and refuses overlaps
      const pieces = list.flatMap((e) => (e.length > 1 ? [{ ...e, length: 1 }, { ...e, logical: e.logical + 1, physical: e.physical + 1, length: e.length - 1 }] : [e]));
      const merged = normalise(pieces);
      expect(sameModel(toModel(merged), model) && normalForm(merged) === null && merged.length <= list.length, `seed ${seed}: normalise merges back`).toBe(true);
      if (list.length > 1 && list[1]!.logical > list[0]!.logical + 1)
        expect(() => normalise([list[0]!, { ...list[1]!, logical: list[0]!.logical }, ...list.slice(2)].sort((a, b) => a.logical - b.logical))).toThrow();
    }
  });
});

/** movedata's per-block rules (semantics.md §1), block by block. */
function naiveMove(data: Model, space: Model, lb: number, n: number, copy: boolean) {
  const newData: Model = new Map([...data].filter(([b]) => b < lb || b >= lb + n));
  const newSpace: Model = new Map([...space].filter(([b]) => b < lb || b >= lb + n));
  const copies = new Map<number, [number, number]>();
  const freed: Model = new Map([...data].filter(([b]) => b >= lb && b < lb + n));
  for (let b = lb; b < lb + n; b++) {
    const s = space.get(b);
    if (!s) continue; // a hole in space makes a hole in data
    const d = data.get(b);
    if (d && !d.unwritten) {
      newData.set(b, { physical: s.physical, unwritten: copy ? false : s.unwritten });
      if (copy) copies.set(b, [d.physical, s.physical]);
    } else newData.set(b, { physical: s.physical, unwritten: true }); // reads as zeros
  }
  return { newData, newSpace, copies, freed };
}

describe('planMove vs the per-block rules', () => {
  it('random data and space maps, ranges and both variants', () => {
    for (let seed = 1; seed <= 400; seed++) {
      const rnd = mulberry32(7000 + seed);
      const data = randomList(rnd, 1 + randInt(rnd, 10), false);
      // space: physically apart from data
      const space = randomList(rnd, 1 + randInt(rnd, 10), false).map((e) => ({ ...e, physical: e.physical + 50_000_000 }));
      const s = Math.max(span(data), span(space));
      const lb = randInt(rnd, s), n = 1 + randInt(rnd, s - lb + 2);
      const copy = rnd() < 0.7;
      const plan = planMove(data, space, lb, n, copy);
      const want = naiveMove(toModel(data), toModel(space), lb, n, copy);
      expect(sameModel(toModel(plan.newData), want.newData), `seed ${seed}: new data map`).toBe(true);
      expect(normalForm(plan.newData)).toBeNull();
      expect(sameModel(toModel(plan.newSpace), want.newSpace), `seed ${seed}: new space map`).toBe(true);
      expect(sameModel(toModel(plan.freed), want.freed), `seed ${seed}: freed`).toBe(true);
      const logicalOf = new Map([...want.newData].map(([b, v]) => [v.physical, b]));
      const copies = new Map<number, [number, number]>();
      for (const c of plan.copies) for (let i = 0; i < c.length; i++) copies.set(logicalOf.get(c.to + i) ?? -1, [c.from + i, c.to + i]);
      expect(copies, `seed ${seed}: copies`).toEqual(want.copies);
    }
  });

  it('nextStepEnd cuts after maxExt extents of either file, maxBlocks blocks, or the range end', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rnd = mulberry32(9000 + seed);
      const data = randomList(rnd, randInt(rnd, 40), false), space = randomList(rnd, randInt(rnd, 40), false);
      const s = Math.max(span(data), span(space), 1);
      const lb = randInt(rnd, s), end = lb + 1 + randInt(rnd, s);
      const maxExt = 1 + randInt(rnd, 8), maxBlocks = 1 + randInt(rnd, 200);
      // naive: grow the step block by block while each file has at most maxExt extents in it
      let stop = lb + 1;
      const count = (list: readonly Extent[], to: number) => mappedIn(list, lb, to - lb).length;
      while (stop < end && stop - lb < maxBlocks && count(data, stop + 1) <= maxExt && count(space, stop + 1) <= maxExt) stop++;
      expect(nextStepEnd(data, space, lb, end, maxExt, maxBlocks), `seed ${seed}`).toBe(stop);
    }
  });
});

/** An extent tree in memory: blocks and a trivial allocator. */
function memTree(blockSize: number) {
  const blocks = new Map<number, Uint8Array>();
  let next = 100;
  const allocate = async (count: number) => Array.from({ length: count }, () => next++);
  const readBlock = async (n: number) => blocks.get(n)!;
  const apply = (r: { writes: Map<number, Uint8Array>; freed: number[] }) => {
    for (const b of r.freed) blocks.delete(b);
    for (const [b, d] of r.writes) blocks.set(b, d);
  };
  const readBack = async (iblock: Uint8Array) => {
    const info = await walkExtentTree(iblock, { ino: 12, blockSize, firstDataBlock: 1, blocksCount: 2 ** 40, csumSeed: 7, verify: true, readBlock });
    const root = readHeader(iblock, () => ({ kind: 'field', field: 'i_block' }), 'root');
    const levels: LevelStat[] = [{ entries: root.entries, max: root.max }];
    for (let d = info.depth - 1; d >= 0; d--) {
      let entries = 0, max = 0;
      for (const t of info.treeBlocks.filter((x) => x.depth === d)) {
        const h = readHeader(blocks.get(t.block)!, () => ({ kind: 'field', field: 'node' }), 'node');
        entries += h.entries;
        max += effectiveMax(h.entries, h.max, false);
      }
      levels.push({ entries, max });
    }
    return { extents: info.extents, shape: shapeProblem(levels, blockSize), owned: info.treeBlocks.length === blocks.size };
  };
  return { blocks, allocate, readBlock, apply, readBack };
}

describe('local edits vs the whole-tree writer', () => {
  it('random edit sequences: both trees read back the same list, in e2fsck shape', async () => {
    for (let seed = 1; seed <= 6; seed++) {
      const rnd = mulberry32(300 + seed);
      const bs = seed % 2 ? 128 : 256;
      const local = memTree(bs), whole = memTree(bs);
      let list = randomList(rnd, 300 + randInt(rnd, 300), false).map((e, i) => ({ ...e, physical: 10_000_000 + i * 40_000 }));
      let li: Uint8Array = new Uint8Array(60), wi: Uint8Array = new Uint8Array(60);
      writeHeader(li, { entries: 0, max: 4, depth: 0 });
      writeHeader(wi, { entries: 0, max: 4, depth: 0 });
      for (let step = 0; step < 40; step++) {
        const s = span(list), lb = randInt(rnd, s + 1), len = 1 + randInt(rnd, 40);
        const r = punch(list, lb, len).list;
        const add: Extent[] = [];
        if (rnd() < 0.7) for (let b = lb; b < lb + len; b += 1 + randInt(rnd, 3)) add.push({ logical: b, physical: 20_000_000 + randInt(rnd, 1e6) * 4, length: 1, unwritten: rnd() < 0.5 });
        list = insert(r, add);
        const le = await editExtentTree(li, list, { ino: 12, blockSize: bs, csumSeed: 7, goal: 100, allocate: local.allocate, readBlock: local.readBlock });
        local.apply(le);
        li = le.iblock;
        const we = await writeExtentTree(list, { blockSize: bs, csumSeed: 7, oldTreeBlocks: [...whole.blocks.keys()], goal: 100, allocate: whole.allocate, readBlock: whole.readBlock });
        whole.apply(we);
        wi = we.iblock;
        const a = await local.readBack(li), b = await whole.readBack(wi);
        expect(a.extents, `seed ${seed} step ${step}: local edit reads back the list`).toEqual(list);
        expect(b.extents, `seed ${seed} step ${step}: whole-tree writer reads back the list`).toEqual(list);
        expect(a.shape, `seed ${seed} step ${step}: local edit shape`).toBeNull();
        expect(a.owned && b.owned, `seed ${seed} step ${step}: each tree owns exactly its blocks`).toBe(true);
      }
    }
  }, 60_000);
});
