/**
 * moveFiles (lib/ops/move-batch.ts): many files' blocks moved to given places
 * in as few journaled transactions as the journal allows, each file's bytes
 * unchanged (debugfs and the kernel read them), holes and layouts as asked,
 * e2fsck clean; per-file failures (stale plan, target not free) leave the
 * others moving; a target on blocks freed earlier in the same call starts a
 * new transaction.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { internals } from '../../lib/ext4/internals.js';
import { getFreeBlocks } from '../../lib/ops/free.js';
import { moveFiles, layOut, type FileMove } from '../../lib/ops/move-batch.js';
import type { Extent } from '../../lib/ext4/extents.js';
import { cleanupImages, extentsOf, HAVE_E2FSPROGS, makeImage, mergeExtents, pattern, verify, type SourceFiles } from './helpers.js';

const BS = 4096;

afterEach(() => cleanupImages());

/** 40 small files (1–3 blocks), one with a hole in the middle (mkfs -d leaves zero blocks unmapped). */
function sources(): SourceFiles {
  const files: SourceFiles = {};
  for (let i = 0; i < 40; i++) files[`d/f${i}`] = pattern(((i % 3) + 1) * BS - (i % 5) * 100, 10 + i);
  const holey = pattern(5 * BS, 99);
  holey.fill(0, 2 * BS, 3 * BS);
  files['holey'] = holey;
  return files;
}

async function commitsDuring<T>(f: Filesystem, fn: () => Promise<T>): Promise<{ value: T; commits: number }> {
  let commits = 0;
  internals(f).commitHooks = { onStep: (s) => void (s === 'commit' && commits++) };
  try {
    return { value: await fn(), commits };
  } finally {
    internals(f).commitHooks = {};
  }
}

/** Lay every file, in order, into the highest free run, packed (the last blocks of the fs). */
async function packedPlan(f: Filesystem, paths: string[], split = false): Promise<{ moves: FileMove[]; expected: Map<string, Extent[]> }> {
  const runs = await getFreeBlocks(f);
  const big = runs.reduce((a, r) => (r.len > a.len ? r : a));
  let p = big.start / BS + Math.floor(big.len / BS / 2);
  const moves: FileMove[] = [];
  const expected = new Map<string, Extent[]>();
  for (const path of paths) {
    const ino = await f.resolve(path);
    const ext = await extentsOf(f, path);
    const n = ext.reduce((a, e) => a + e.length, 0);
    // split: a two-block-or-more file goes into two runs with a one-block gap (a chosen layout, not only "contiguous")
    const target = split && n >= 2 ? [{ start: p, length: 1 }, { start: p + 2, length: n - 1 }] : [{ start: p, length: n }];
    p += n + (split && n >= 2 ? 1 : 0);
    moves.push({ ino: ino.ino, target, expect: ext });
    expected.set(path, layOut(ext, 0, Math.ceil(ino.size / BS), target).newExtents);
  }
  return { moves, expected };
}

describe.skipIf(!HAVE_E2FSPROGS)('moveFiles: a batch of small files', () => {
  it('moves 41 files in one transaction; bytes, holes and layouts as asked; e2fsck, debugfs and the kernel agree', async () => {
    const src = sources();
    const img = makeImage('mb-one', src, { sizeMiB: 16 });
    const paths = Object.keys(src).map((p) => `/${p}`);
    const f = await Filesystem.open(img, { write: true });
    let expected: Map<string, Extent[]>;
    try {
      const plan = await packedPlan(f, paths, true);
      expected = plan.expected;
      const { value: results, commits } = await commitsDuring(f, () => moveFiles(f, plan.moves));
      expect(results.filter((r) => !r.moved)).toEqual([]);
      // all in one transaction (the per-file path made two per file)
      expect(commits).toBe(1);
      const written = [...expected.values()].flat().filter((e) => !e.unwritten).reduce((a, e) => a + e.length, 0);
      expect(results.reduce((a, r) => a + r.bytes, 0)).toBe(written * BS);
      for (const p of paths) expect(mergeExtents(await extentsOf(f, p)), p).toEqual(mergeExtents(expected.get(p)!));
    } finally {
      await f.close();
    }
    // the hole stayed a hole
    expect(expected.get('/holey')!.some((e) => e.logical === 2)).toBe(false);
    await verify(img, Object.fromEntries(paths.map((p) => [p, { content: src[p.slice(1)]!, extents: expected.get(p)! }])), 'moveFiles of 41 files');
  });

  it('splits into transactions of maxFiles; a stale plan and a taken target fail alone; a target on freed blocks waits for the next transaction', async () => {
    const src = sources();
    const img = makeImage('mb-split', src, { sizeMiB: 16 });
    const paths = Object.keys(src).map((p) => `/${p}`);
    const f = await Filesystem.open(img, { write: true });
    const want = new Map<string, Extent[]>();
    try {
      const plan = await packedPlan(f, paths);
      for (const [p, e] of plan.expected) want.set(p, e);
      // stale: the planner saw another map for f3
      const stale = plan.moves[3]!;
      stale.expect = [{ logical: 0, physical: stale.expect![0]!.physical + 1, length: 1, unwritten: false }];
      want.set('/d/f3', await extentsOf(f, '/d/f3'));
      // taken: f5's target is f6's current first block
      const f6 = await extentsOf(f, '/d/f6');
      plan.moves[5]!.target = [{ start: f6[0]!.physical, length: plan.moves[5]!.target[0]!.length }];
      plan.moves[5]!.expect = undefined;
      want.set('/d/f5', await extentsOf(f, '/d/f5'));
      // chain: the last move goes onto f0's old blocks, freed by the first move of this call
      const f0 = await extentsOf(f, '/d/f0');
      const last = plan.moves.pop()!;
      const holey = await f.resolve('/holey');
      const lastExt = await extentsOf(f, '/holey');
      const lastBlocks = lastExt.reduce((a, e) => a + e.length, 0);
      const runs = await getFreeBlocks(f);
      // f0 is one block: put holey's first block there, the rest into a low free run
      const low = runs.find((r) => r.len / BS >= lastBlocks)!;
      last.target = [{ start: f0[0]!.physical, length: 1 }, { start: low.start / BS, length: lastBlocks - 1 }];
      plan.moves.push(last);
      want.set('/holey', layOut(lastExt, 0, Math.ceil(holey.size / BS), last.target).newExtents);
      const { value: results, commits } = await commitsDuring(f, () => moveFiles(f, plan.moves, { maxFiles: 8 }));
      expect(results[3]!.error?.code).toBe('ESTALE');
      expect(results[5]!.error?.code).toBe('ENOSPC');
      expect(results.filter((r) => !r.moved).map((r) => r.ino)).toEqual([plan.moves[3]!.ino, plan.moves[5]!.ino]);
      // 39 moves, 8 per transaction: 5 transactions; the chained last one needs its own only if it
      // would share one with f0's move (it does not: f0 moves in the first)
      expect(commits).toBe(5);
      for (const p of paths) expect(mergeExtents(await extentsOf(f, p)), p).toEqual(mergeExtents(want.get(p)!));
    } finally {
      await f.close();
    }
    await verify(img, Object.fromEntries(paths.map((p) => [p, { content: src[p.slice(1)]!, extents: want.get(p)! }])), 'moveFiles in batches');
  });

  it('a target on blocks freed in the same batch starts a new transaction', async () => {
    const src: SourceFiles = { a: pattern(2 * BS, 1), b: pattern(2 * BS, 2) };
    const img = makeImage('mb-chain', src, { sizeMiB: 16 });
    const f = await Filesystem.open(img, { write: true });
    let want: Map<string, Extent[]>;
    try {
      const a = await extentsOf(f, '/a'), b = await extentsOf(f, '/b');
      const runs = await getFreeBlocks(f);
      const far = runs[runs.length - 1]!.start / BS + 100;
      const moves: FileMove[] = [
        { ino: (await f.resolve('/a')).ino, target: [{ start: far, length: 2 }], expect: a },
        { ino: (await f.resolve('/b')).ino, target: [{ start: a[0]!.physical, length: 2 }], expect: b },
      ];
      want = new Map([
        ['/a', [{ logical: 0, physical: far, length: 2, unwritten: false }]],
        ['/b', [{ logical: 0, physical: a[0]!.physical, length: 2, unwritten: false }]],
      ]);
      const { value: results, commits } = await commitsDuring(f, () => moveFiles(f, moves));
      expect(results.map((r) => r.moved)).toEqual([true, true]);
      expect(commits).toBe(2);
      for (const [p, e] of want) expect(mergeExtents(await extentsOf(f, p))).toEqual(e);
    } finally {
      await f.close();
    }
    await verify(img, { '/a': { content: src.a!, extents: want.get('/a')! }, '/b': { content: src.b!, extents: want.get('/b')! } }, 'chained moves');
  });

  it('the same file moved twice in one call: the second move starts a new transaction and builds on the first', async () => {
    const src: SourceFiles = { a: pattern(3 * BS, 5) };
    const img = makeImage('mb-twice', src, { sizeMiB: 16 });
    const f = await Filesystem.open(img, { write: true });
    let want: Extent[];
    try {
      const ino = (await f.resolve('/a')).ino;
      const runs = await getFreeBlocks(f);
      const at = runs[runs.length - 1]!.start / BS;
      const moves: FileMove[] = [
        { ino, target: [{ start: at + 10, length: 3 }] },
        { ino, target: [{ start: at + 20, length: 3 }] },
      ];
      want = [{ logical: 0, physical: at + 20, length: 3, unwritten: false }];
      const { value: results, commits } = await commitsDuring(f, () => moveFiles(f, moves));
      expect(results.map((r) => r.moved)).toEqual([true, true]);
      expect(commits).toBe(2);
      expect(mergeExtents(await extentsOf(f, '/a'))).toEqual(want);
    } finally {
      await f.close();
    }
    await verify(img, { '/a': { content: src.a!, extents: want } }, 'a file moved twice');
  });

  it('layOut refuses a target of the wrong size, overlapping itself or the file', () => {
    const ext: Extent[] = [{ logical: 0, physical: 100, length: 3, unwritten: false }];
    expect(() => layOut(ext, 0, 3, [{ start: 200, length: 2 }])).toThrow(/holds 2 blocks/);
    expect(() => layOut(ext, 0, 3, [{ start: 200, length: 2 }, { start: 201, length: 1 }])).toThrow(/overlap/);
    expect(() => layOut(ext, 0, 3, [{ start: 101, length: 3 }])).toThrow(/own blocks/);
    expect(layOut(ext, 0, 3, [{ start: 200, length: 1 }, { start: 300, length: 2 }]).copies).toEqual([
      { from: 100, to: 200, length: 1 },
      { from: 101, to: 300, length: 2 },
    ]);
  });
});
