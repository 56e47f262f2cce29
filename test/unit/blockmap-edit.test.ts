/**
 * Block-map edits (lib/ext4/blockmap-edit.ts) against a naive per-block
 * model, in memory (no child processes, fixed seeds).
 *
 * The model is an array "logical block → physical block (0: hole)". After
 * every edit, walking the map (walkBlockMap, the reader) gives exactly the
 * model's blocks; the map owns exactly the indirect blocks the edits
 * allocated and did not free, which is exactly as many as the layout needs
 * (no empty indirect block is left behind); and the edit wrote only indirect
 * blocks on the paths to the logical blocks whose pointer changed.
 *
 * Small fake block sizes (64 bytes: 16 pointers per block, 4,380 logical
 * blocks in all) reach the double and triple indirect trees with a few
 * hundred blocks, so every level is created, emptied and freed many times.
 */
import { describe, expect, it } from 'vitest';
import {
  BLOCKMAP_MAX_PHYSICAL,
  blockMapMaxBlocks,
  changedRuns,
  editBlockMap,
  pathOf,
  pointersPerBlock,
  writtenWithZeros,
} from '../../lib/ext4/blockmap-edit.js';
import { walkBlockMap, NDIR_BLOCKS } from '../../lib/ext4/blockmap.js';
import { isExt4Error } from '../../lib/errors.js';
import type { Extent } from '../../lib/ext4/extents.js';
import { mulberry32 } from '../../lib/io/prng.js';
import { mergedExtents as merged } from '../helpers/extents.js';

const META_FIRST = 10_000_000;

/** The extents of a per-block model (maximal runs). */
function extentsOf(model: readonly number[]): Extent[] {
  const out: Extent[] = [];
  model.forEach((p, lb) => {
    if (!p) return;
    const last = out[out.length - 1];
    if (last && last.logical + last.length === lb && last.physical + last.length === p) last.length++;
    else out.push({ logical: lb, physical: p, length: 1, unwritten: false });
  });
  return out;
}


/** Indirect blocks the layout needs for `model`: one per distinct path prefix (naive). */
function indirectNeeded(model: readonly number[], per: number): number {
  const nodes = new Set<string>();
  for (const e of extentsOf(model)) {
    for (let lb = Math.max(e.logical, NDIR_BLOCKS); lb < e.logical + e.length; ) {
      const path = naivePath(lb, per);
      for (let d = 0; d < path.level; d++) nodes.add(`${path.slot}:${path.index.slice(0, d).join(',')}`);
      lb += per - path.index[path.level - 1]!; // the rest of this level-1 span shares the path
    }
  }
  return nodes.size;
}

/** pathOf written the slow way: count through every level's capacity. */
function naivePath(lb: number, per: number): { slot: number; level: number; index: number[] } {
  if (lb < NDIR_BLOCKS) return { slot: lb, level: 0, index: [] };
  let rel = lb - NDIR_BLOCKS;
  let level = 1;
  while (rel >= per ** level) {
    rel -= per ** level;
    level++;
  }
  const index: number[] = [];
  for (let l = 0; l < level; l++) {
    index.unshift(rel % per);
    rel = Math.floor(rel / per);
  }
  return { slot: NDIR_BLOCKS + level - 1, level, index };
}

class MemMap {
  readonly blocks = new Map<number, Uint8Array>();
  iblock: Uint8Array = new Uint8Array(60);
  owned = new Set<number>();
  next = META_FIRST;
  lastWrites: number[] = [];
  allocatedTotal = 0;
  freedTotal = 0;
  constructor(readonly blockSize: number) {}

  ctx() {
    return {
      ino: 12,
      blockSize: this.blockSize,
      firstDataBlock: 1,
      blocksCount: 2 ** 32,
      readBlock: async (n: number) => {
        const b = this.blocks.get(n);
        if (!b) throw new Error(`read of unknown block ${n}`);
        return b;
      },
      allocate: async (count: number) => Array.from({ length: count }, () => this.next++),
    };
  }

  async walk(): Promise<{ extents: Extent[]; indirect: number[] }> {
    const info = await walkBlockMap(this.iblock, this.ctx());
    return { extents: info.extents, indirect: info.indirectBlocks };
  }

  async edit(old: readonly Extent[], next: readonly Extent[]): Promise<void> {
    const r = await editBlockMap(this.iblock, old, next, this.ctx());
    this.allocatedTotal += r.allocated.length;
    this.freedTotal += r.freed.length;
    for (const b of r.allocated) {
      expect(this.owned.has(b)).toBe(false);
      this.owned.add(b);
    }
    for (const b of r.freed) {
      expect(this.owned.has(b), `freed ${b} is owned`).toBe(true);
      this.owned.delete(b);
      this.blocks.delete(b);
    }
    for (const [b, data] of r.writes) {
      expect(this.owned.has(b), `wrote ${b}, an owned indirect block`).toBe(true);
      expect(data.length).toBe(this.blockSize);
      this.blocks.set(b, data);
    }
    this.iblock = r.iblock;
    this.lastWrites = [...r.writes.keys()];
  }
}

/** A random model edit: map a run to fresh physical blocks, or punch a run. */
function randomEdit(rnd: () => number, model: number[], maxLb: number, nextData: { p: number }, maxLen = 300): void {
  const len = 1 + Math.floor(rnd() ** 3 * maxLen);
  const start = Math.floor(rnd() * Math.max(1, maxLb - len));
  const mode = rnd();
  for (let i = 0; i < len && start + i < maxLb; i++) {
    if (mode < 0.45) model[start + i] = 0;
    else if (mode < 0.9) model[start + i] = nextData.p++;
    else if (rnd() < 0.5) model[start + i] = nextData.p++; // scattered single blocks
  }
  nextData.p += Math.floor(rnd() * 5); // sometimes not contiguous with the next run
}

describe('block-map layout math', () => {
  it('pathOf matches a naive walk through the levels, for every block size shape', () => {
    for (const bs of [64, 1024, 4096]) {
      const per = pointersPerBlock(bs);
      const max = blockMapMaxBlocks(bs);
      const rnd = mulberry32(bs);
      const probes = [0, 11, 12, 13, 12 + per - 1, 12 + per, 12 + per + per * per - 1, 12 + per + per * per, max - 1];
      for (let i = 0; i < 2000; i++) probes.push(Math.floor(rnd() * max));
      for (const lb of probes) expect(pathOf(lb, per), `bs ${bs} lb ${lb}`).toEqual(naivePath(lb, per));
    }
  });

  it('the largest file: 12 + p + p² + p³ blocks, capped at 2^32 - 1 (logical blocks are 32-bit)', () => {
    expect(blockMapMaxBlocks(1024)).toBe(12 + 256 + 256 ** 2 + 256 ** 3);
    expect(blockMapMaxBlocks(4096)).toBe(12 + 1024 + 1024 ** 2 + 1024 ** 3);
    expect(blockMapMaxBlocks(65536)).toBe(2 ** 32 - 1);
    expect(() => pathOf(blockMapMaxBlocks(1024), 256)).toThrow(/past the largest/);
  });

  it('changedRuns is exactly the blocks whose pointer differs (naive per-block diff)', () => {
    const rnd = mulberry32(7);
    for (let round = 0; round < 300; round++) {
      const a: number[] = [], b: number[] = [];
      const d = { p: 1000 };
      for (let k = 0; k < 4; k++) randomEdit(rnd, a, 400, d);
      b.push(...a);
      for (let k = 0; k < 3; k++) randomEdit(rnd, b, 400, d);
      const runs = changedRuns(extentsOf(a), extentsOf(b));
      const got: number[] = [];
      const changed = new Set<number>();
      for (const r of runs) for (let i = 0; i < r.length; i++) {
        changed.add(r.logical + i);
        got[r.logical + i] = r.physical === 0 ? 0 : r.physical + i;
      }
      const wrong: number[] = [];
      for (let lb = 0; lb < 400; lb++) {
        const differs = (a[lb] ?? 0) !== (b[lb] ?? 0);
        if (changed.has(lb) !== differs || (differs && got[lb] !== (b[lb] ?? 0))) wrong.push(lb);
      }
      expect(wrong, `round ${round}`).toEqual([]);
    }
  });

  it('writtenWithZeros turns unwritten extents written and lists the blocks to zero', () => {
    const r = writtenWithZeros([
      { logical: 0, physical: 100, length: 2, unwritten: false },
      { logical: 2, physical: 300, length: 3, unwritten: true },
    ]);
    expect(r.list.every((e) => !e.unwritten)).toBe(true);
    expect(r.zero).toEqual([{ start: 300, length: 3 }]);
  });
});

describe('editBlockMap against a per-block model', () => {
  for (const [bs, seed, rounds] of [
    [64, 1, 300],
    [64, 2, 300],
    [128, 3, 150],
    [1024, 4, 30],
  ] as const) {
    it(`${bs}-byte blocks, seed ${seed}: ${rounds} random edits read back exactly; indirect blocks exact and local`, async () => {
      const per = pointersPerBlock(bs);
      const maxLb = Math.min(blockMapMaxBlocks(bs), bs === 1024 ? 12 + per + per * per + 3 * per * per : Infinity);
      const rnd = mulberry32(seed);
      const m = new MemMap(bs);
      let model: number[] = [];
      const data = { p: 1000 };
      for (let round = 0; round < rounds; round++) {
        const next = model.slice();
        // near the end sometimes: the triple-indirect tree
        const region = rnd() < 0.3 ? maxLb : Math.min(maxLb, 12 + per + per * per + 50);
        randomEdit(rnd, next, region, data, per * 20);
        const oldList = extentsOf(model), nextList = extentsOf(next);
        await m.edit(oldList, nextList);
        const { extents, indirect } = await m.walk();
        expect(JSON.stringify(merged(extents)), `round ${round}`).toBe(JSON.stringify(nextList));
        expect(indirect.slice().sort((a, b) => a - b).join(), `round ${round}: the map owns what the edits allocated`).toBe([...m.owned].sort((a, b) => a - b).join());
        expect(indirect.length, `round ${round}: no empty indirect block left`).toBe(indirectNeeded(next, per));
        // Local: every block written lies on a path to a changed logical block.
        const onPaths = new Set<string>();
        for (const r of changedRuns(oldList, nextList))
          for (let i = 0; i < r.length; i++) {
            const p = pathOf(r.logical + i, per);
            for (let d = 0; d < p.level; d++) onPaths.add(`${p.slot}:${p.index.slice(0, d).join(',')}`);
          }
        expect(m.lastWrites.length, `round ${round}: writes ≤ indirect blocks on changed paths`).toBeLessThanOrEqual(onPaths.size);
        model = next;
      }
      expect(m.allocatedTotal, 'indirect blocks were created').toBeGreaterThan(0);
      expect(m.freedTotal, 'indirect blocks were emptied and freed').toBeGreaterThan(0);
    });
  }

  it('one changed pointer under a full triple-indirect tree writes only the indirect block holding it; an unchanged map writes nothing', async () => {
    const bs = 64, per = 16;
    const m = new MemMap(bs);
    const start = 12 + per + per * per;
    const full: Extent[] = [{ logical: 0, physical: 5000, length: start + 2 * per * per, unwritten: false }];
    await m.edit([], full);
    const moved: Extent[] = [
      { logical: 0, physical: 5000, length: start + 300, unwritten: false },
      { logical: start + 300, physical: 90_000, length: 1, unwritten: false },
      { logical: start + 301, physical: 5000 + start + 301, length: 2 * per * per - 301, unwritten: false },
    ];
    await m.edit(full, moved);
    expect(m.lastWrites.length).toBe(1); // the level-1 block holding the pointer: its parents' pointers did not change
    await m.edit(moved, moved);
    expect(m.lastWrites.length).toBe(0);
  });

  it('refuses unwritten extents (EINVAL), logical blocks past the largest file and physical blocks ≥ 2^32 (EFBIG)', async () => {
    const m = new MemMap(1024);
    const code = async (list: Extent[]) => {
      try {
        await editBlockMap(m.iblock, [], list, m.ctx());
        return 'ok';
      } catch (e) {
        return isExt4Error(e) ? e.code : String(e);
      }
    };
    expect(await code([{ logical: 0, physical: 100, length: 1, unwritten: true }])).toBe('EINVAL');
    expect(await code([{ logical: blockMapMaxBlocks(1024) - 1, physical: 100, length: 2, unwritten: false }])).toBe('EFBIG');
    expect(await code([{ logical: blockMapMaxBlocks(1024) - 1, physical: 100, length: 1, unwritten: false }])).toBe('ok');
    expect(await code([{ logical: 0, physical: BLOCKMAP_MAX_PHYSICAL, length: 2, unwritten: false }])).toBe('EFBIG');
    expect(await code([{ logical: 0, physical: BLOCKMAP_MAX_PHYSICAL, length: 1, unwritten: false }])).toBe('ok');
  });
});
