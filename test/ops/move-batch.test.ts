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
import { Filesystem as CoreFilesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { RecordingDevice } from '../../lib/io/recording-device.js';
import * as nodefs from 'node:fs';
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

/** FileMove targets as layOut's runs. */
const asRuns = (t: FileMove['target']) => t.map((r) => ({ start: r.startBlock, length: r.lengthBlocks }));

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
    moves.push({ ino: ino.ino, target: target.map((r) => ({ startBlock: r.start, lengthBlocks: r.length })), expect: ext });
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
      plan.moves[5]!.target = [{ startBlock: f6[0]!.physical, lengthBlocks: plan.moves[5]!.target[0]!.lengthBlocks }];
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
      last.target = [{ startBlock: f0[0]!.physical, lengthBlocks: 1 }, { startBlock: low.start / BS, lengthBlocks: lastBlocks - 1 }];
      plan.moves.push(last);
      want.set('/holey', layOut(lastExt, 0, Math.ceil(holey.size / BS), asRuns(last.target)).newExtents);
      const { value: results, commits } = await commitsDuring(f, () => moveFiles(f, plan.moves, { maxFiles: 8 }));
      expect(results[3]!.error?.code).toBe('ESTALE');
      expect(results[5]!.error?.code).toBe('ENOSPC');
      expect(results.filter((r) => !r.moved).map((r) => r.ino)).toEqual([plan.moves[3]!.ino, plan.moves[5]!.ino]);
      // 39 moves, 8 per transaction: the first wave (37 that move) in 5 transactions, then a
      // second wave of two: the last move goes onto f0's freed block, and f6 keeps its place
      // after f5, whose (failing) target is on f6's block (moves sharing any block keep their
      // order, so each ends as it would in list order)
      expect(commits).toBe(6);
      for (const p of paths) expect(mergeExtents(await extentsOf(f, p)), p).toEqual(mergeExtents(want.get(p)!));
    } finally {
      await f.close();
    }
    await verify(img, Object.fromEntries(paths.map((p) => [p, { content: src[p.slice(1)]!, extents: want.get(p)! }])), 'moveFiles in batches');
  });

  /** /a to a run past the last free start, /b into /a's old blocks: two waves, each with `expect`. */
  async function chainMoves(f: Filesystem): Promise<{ a: Extent[]; b: Extent[]; far: number; moves: FileMove[] }> {
    const a = await extentsOf(f, '/a'), b = await extentsOf(f, '/b');
    const runs = await getFreeBlocks(f);
    const far = runs[runs.length - 1]!.start / BS + 100;
    const moves: FileMove[] = [
      { ino: (await f.resolve('/a')).ino, target: [{ startBlock: far, lengthBlocks: 2 }], expect: a },
      { ino: (await f.resolve('/b')).ino, target: [{ startBlock: a[0]!.physical, lengthBlocks: 2 }], expect: b },
    ];
    return { a, b, far, moves };
  }

  it('a target on blocks freed in the same batch starts a new transaction', async () => {
    const src: SourceFiles = { a: pattern(2 * BS, 1), b: pattern(2 * BS, 2) };
    const img = makeImage('mb-chain', src, { sizeMiB: 16 });
    const f = await Filesystem.open(img, { write: true });
    let want: Map<string, Extent[]>;
    try {
      const { a, far, moves } = await chainMoves(f);
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

  /**
   * The moves of a chain a0, b0, a1, b1, … of one-block files: a_k to a free block past the last
   * free run's start, b_k into a_k's old block; each file's map afterwards goes into `want`.
   */
  async function abChain(f: CoreFilesystem, n: number, want: Map<string, Extent[]>): Promise<FileMove[]> {
    const runs = await getFreeBlocks(f);
    const far = runs[runs.length - 1]!.start / BS + 64;
    const moves: FileMove[] = [];
    for (let k = 0; k < n; k++) {
      const a = await extentsOf(f, `/a${k}`), b = await extentsOf(f, `/b${k}`);
      expect(a.length === 1 && a[0]!.length === 1 && b[0]!.length === 1).toBe(true);
      moves.push({ ino: (await f.resolve(`/a${k}`)).ino, target: [{ startBlock: far + k, lengthBlocks: 1 }], expect: a });
      moves.push({ ino: (await f.resolve(`/b${k}`)).ino, target: [{ startBlock: a[0]!.physical, lengthBlocks: 1 }], expect: b });
      want.set(`/a${k}`, [{ logical: 0, physical: far + k, length: 1, unwritten: false }]);
      want.set(`/b${k}`, [{ logical: 0, physical: a[0]!.physical, length: 1, unwritten: false }]);
    }
    return moves;
  }

  it('a plan that is a chain in list order (each file into the block the one before freed) runs in two transactions, a few flushes, not one per move', async () => {
    // a0, b0, a1, b1, …: a_k leaves for a free run, b_k takes a_k's old block. In list order every
    // b_k must wait for a_k's commit (a freed block is reusable only then): 21 transactions and
    // two flushes each. By dependency: all a_k, then all b_k.
    const N = 20;
    const src: SourceFiles = {};
    for (let k = 0; k < N; k++) (src[`a${k}`] = pattern(BS - 7 * k, 300 + k), (src[`b${k}`] = pattern(BS - 11 * k, 400 + k)));
    const img = makeImage('mb-waves', src, { sizeMiB: 16 });
    const mem = new MemoryDevice(new Uint8Array(nodefs.readFileSync(img)));
    const rec = new RecordingDevice(mem);
    const f = await CoreFilesystem.open(rec, { write: true });
    const want = new Map<string, Extent[]>();
    let flushes = 0;
    try {
      const moves = await abChain(f, N, want);
      const before = rec.log.filter((r) => r.kind === 'flush').length;
      const { value: results, commits } = await commitsDuring(f, () => moveFiles(f, moves));
      flushes = rec.log.filter((r) => r.kind === 'flush').length - before;
      expect(results.filter((r) => !r.moved)).toEqual([]);
      expect(commits).toBe(2);
      for (const [p, e] of want) expect(mergeExtents(await extentsOf(f, p)), p).toEqual(e);
    } finally {
      await f.close();
    }
    // two transactions: a log flush and a commit flush each (and the write session's once)
    expect(flushes).toBeLessThanOrEqual(6);
    nodefs.writeFileSync(img, mem.data);
    await verify(img, Object.fromEntries([...want].map(([p, e]) => [p, { content: src[p.slice(1)]!, extents: e }])), 'a chain of moves by waves');
  });

  it('waves given by the caller (a plan\'s own schedule) group the transactions; wrong ones cost transactions, never bytes', async () => {
    // a0, b0, a1, b1, … as above. Given their true waves (a_k 0, b_k 1): two transactions, the
    // files not read again for a schedule. Given every move in wave 0 (false: b_k takes a_k's old
    // block), each b_k finds its target freed in its own transaction and starts the next one: the
    // same files, more commits — correctness rests on the checks in the transaction, not on waves.
    const N = 12;
    const src: SourceFiles = {};
    for (let k = 0; k < N; k++) (src[`a${k}`] = pattern(BS - 5 * k, 500 + k), (src[`b${k}`] = pattern(BS - 13 * k, 600 + k)));
    for (const [label, waveOf, most] of [['true waves', (j: number) => j % 2, 2], ['all in wave 0', () => 0, N + 1]] as const) {
      const img = makeImage(`mb-given-${most}`, src, { sizeMiB: 16 });
      const f = await Filesystem.open(img, { write: true });
      const want = new Map<string, Extent[]>();
      try {
        const moves = await abChain(f, N, want);
        const waves = moves.map((_, j) => waveOf(j));
        const { value: results, commits } = await commitsDuring(f, () => moveFiles(f, moves, { waves }));
        expect(results.filter((r) => !r.moved), label).toEqual([]);
        if (most === 2) expect(commits, label).toBe(2);
        else expect(commits, label).toBeGreaterThan(2);
        expect(commits, label).toBeLessThanOrEqual(most);
        for (const [p, e] of want) expect(mergeExtents(await extentsOf(f, p)), `${label} ${p}`).toEqual(e);
        // a wave that is not a wave number is refused before anything runs
        await expect(moveFiles(f, moves.slice(0, 1), { waves: [-1] })).rejects.toMatchObject({ code: 'EINVAL' });
      } finally {
        await f.close();
      }
      await verify(img, Object.fromEntries([...want].map(([p, e]) => [p, { content: src[p.slice(1)]!, extents: e }])), label);
    }
  });

  it('stop() is asked before each transaction: the moves not made are returned unmoved, without an error', async () => {
    const src: SourceFiles = { a: pattern(2 * BS, 11), b: pattern(2 * BS, 12) };
    const img = makeImage('mb-stop', src, { sizeMiB: 16 });
    const f = await Filesystem.open(img, { write: true });
    let want: Map<string, Extent[]>;
    try {
      // two waves (b goes where a was): stopped after the first transaction
      const { b, far, moves } = await chainMoves(f);
      let asked = 0, committed = 0;
      const results = await moveFiles(f, moves, { stop: () => asked++ > 0, onCommit: () => void committed++ });
      expect(results).toEqual([{ ino: moves[0]!.ino, moved: true, bytes: 2 * BS }, { ino: moves[1]!.ino, moved: false, bytes: 0 }]);
      expect(committed).toBe(1);
      want = new Map([['/a', [{ logical: 0, physical: far, length: 2, unwritten: false }]], ['/b', b]]);
    } finally {
      await f.close();
    }
    await verify(img, { '/a': { content: src.a!, extents: want.get('/a')! }, '/b': { content: src.b!, extents: want.get('/b')! } }, 'stopped moves');
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
        { ino, target: [{ startBlock: at + 10, lengthBlocks: 3 }] },
        { ino, target: [{ startBlock: at + 20, lengthBlocks: 3 }] },
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

  it('pieces of one file to disjoint places: one transaction, applied in order; a failed piece fails alone', async () => {
    const src: SourceFiles = { a: pattern(6 * BS - 5, 8), b: pattern(4 * BS, 9) };
    const img = makeImage('mb-pieces', src, { sizeMiB: 16 });
    const f = await Filesystem.open(img, { write: true });
    let wantA: Extent[], wantB: Extent[];
    try {
      const a = await extentsOf(f, '/a'), b = await extentsOf(f, '/b');
      const ia = (await f.resolve('/a')).ino, ib = (await f.resolve('/b')).ino;
      const runs = await getFreeBlocks(f);
      const at = runs[runs.length - 1]!.start / BS;
      const a0 = a[0]!.physical, b0 = b[0]!.physical;
      // a: [0,2) → at+10, [4,6) → at+20, [2,4) → at+30 (each piece planned from the map the one
      // before leaves); b: [0,2) with a stale plan, then [2,4) planned on it
      const aAfter1: Extent[] = [{ logical: 0, physical: at + 10, length: 2, unwritten: false }, { logical: 2, physical: a0 + 2, length: 4, unwritten: false }];
      const aAfter2: Extent[] = [aAfter1[0]!, { logical: 2, physical: a0 + 2, length: 2, unwritten: false }, { logical: 4, physical: at + 20, length: 2, unwritten: false }];
      const moves: FileMove[] = [
        { ino: ia, logicalBlock: 0, lengthBlocks: 2, target: [{ startBlock: at + 10, lengthBlocks: 2 }], expect: a },
        { ino: ib, logicalBlock: 0, lengthBlocks: 2, target: [{ startBlock: at + 40, lengthBlocks: 2 }], expect: [{ logical: 0, physical: b0 + 100, length: 4, unwritten: false }] },
        { ino: ia, logicalBlock: 4, lengthBlocks: 2, target: [{ startBlock: at + 20, lengthBlocks: 2 }], expect: aAfter1 },
        { ino: ib, logicalBlock: 2, lengthBlocks: 2, target: [{ startBlock: at + 50, lengthBlocks: 2 }], expect: [{ logical: 0, physical: at + 40, length: 2, unwritten: false }, { logical: 2, physical: b0 + 2, length: 2, unwritten: false }] },
        { ino: ia, logicalBlock: 2, lengthBlocks: 2, target: [{ startBlock: at + 30, lengthBlocks: 2 }], expect: aAfter2 },
      ];
      wantA = [{ logical: 0, physical: at + 10, length: 2, unwritten: false }, { logical: 2, physical: at + 30, length: 2, unwritten: false }, { logical: 4, physical: at + 20, length: 2, unwritten: false }];
      // b's second piece checks only its own range, which the failed first piece left as it was:
      // it moves, as it would in list order
      wantB = [{ logical: 0, physical: b0, length: 2, unwritten: false }, { logical: 2, physical: at + 50, length: 2, unwritten: false }];
      const { value: results, commits } = await commitsDuring(f, () => moveFiles(f, moves));
      expect(results.map((r) => r.moved)).toEqual([true, false, true, true, true]);
      expect(results[1]!.error?.code).toBe('ESTALE');
      expect(results.reduce((x, r) => x + r.bytes, 0)).toBe(8 * BS);
      expect(commits).toBe(1);
      expect(mergeExtents(await extentsOf(f, '/a'))).toEqual(wantA);
      expect(mergeExtents(await extentsOf(f, '/b'))).toEqual(mergeExtents(wantB));
    } finally {
      await f.close();
    }
    await verify(img, { '/a': { content: src.a!, extents: wantA }, '/b': { content: src.b!, extents: wantB } }, 'pieces of a file in one transaction');
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
