/**
 * The global planner (lib/ops/defrag-plan.ts) on full images fragmented by the kernel
 * (test/helpers/frag-images.ts: interleaved appends, a third deleted, more appends): defrag reaches
 * the targets (file extents within 10 % of ideal, at most 50 free extents, the largest free
 * extent at least half of the free space), the real run matches the plan's prediction, every file
 * reads the same through the kernel, and e2fsck is clean. Plus the planner's own rules on a model.
 */
import { describe, it, expect } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { defrag, type DefragSummary } from '../../lib/ops/defrag.js';
import { planDefrag, FreeIndex } from '../../lib/ops/defrag-plan.js';
import type { Extent } from '../../lib/ext4/extents.js';
import { fragmentedBlocks, fragmentedModel, replay, runRounds } from './plan-model.js';
import { fragImage, fragImageSkipReason, largestPossibleFreeBlocks, measureFragImage, meetsTargets, type FragImage, type FragStats } from '../helpers/frag-images.js';
import { expectE2fsckClean, oracleGate, sha256File } from '../helpers/tools.js';
import { cliInProcess as cli } from '../cli/helpers.js';

const why = oracleGate(fragImageSkipReason());
if (why) console.log(`defrag planner kernel tests skipped: ${why}`);

const ext = (logical: number, physical: number, length: number): Extent => ({ logical, physical, length, unwritten: false });

describe('defrag planner on a model', () => {
  it('makes a window when no free run fits: evicts pieces elsewhere, never needs more space than is free', () => {
    // 0..9 unmovable; then A and B (4 blocks each) interleaved block by block, C (2), D (1), and
    // free holes of 2, 2 and 3 blocks between: no free run holds 4 blocks, 7 are free in all.
    const files = [
      { ino: 12, path: '/a', extents: [ext(0, 10, 1), ext(1, 12, 1), ext(2, 14, 1), ext(3, 16, 1)], treeBlocks: [] },
      { ino: 13, path: '/b', extents: [ext(0, 11, 1), ext(1, 13, 1), ext(2, 15, 1), ext(3, 17, 1)], treeBlocks: [] },
      { ino: 14, path: '/c', extents: [ext(0, 20, 2)], treeBlocks: [] },
      { ino: 15, path: '/d', extents: [ext(0, 24, 1)], treeBlocks: [] },
    ];
    const free = [{ start: 18, length: 2 }, { start: 22, length: 2 }, { start: 25, length: 3 }];
    const plan = planDefrag(files, free, { first: 0, end: 28 }, { idealExtentBlocks: 32768, wholeFs: true });
    expect(plan.skipped).toEqual([]);
    expect(plan.after.map((x) => x.length)).toEqual([1, 1, 1, 1]);
    expect(plan.steps.some((s) => s.phase === 'evict')).toBe(true);
    // Replaying the steps on a fresh free index: every target is free when its step runs, and the
    // blocks each step gives up are what its file had mapped in the range.
    const idx = new FreeIndex(free);
    for (const s of plan.steps) {
      for (const t of s.target) {
        expect(idx.isFree(t.start, t.length), `step ${JSON.stringify(s)}`).toBe(true);
        idx.take(t.start, t.length);
      }
      for (const e of s.expect) {
        const a = Math.max(e.logical, s.logical), b = Math.min(e.logical + e.length, s.logical + s.length);
        if (a < b) idx.give(e.physical + (a - e.logical), b - a);
      }
    }
    expect(idx.count).toBe(plan.predicted.freeExtents);
    expect(plan.predicted.freeBlocks).toBe(7);
    // Compacted toward the start: the free space ends the area, the largest run holds most of it.
    expect(plan.predicted.freeExtents).toBeLessThanOrEqual(2);
    expect(idx.runs[idx.runs.length - 1]).toEqual({ start: 22, length: 6 });
  });

  // Interleaved writers, a third deleted, more appends (plan-model.ts): the plan meets the targets
  // and rewrites each fragmented file about once (the greedy planner, which compacts after making
  // files contiguous, copied 1.5-3.1x), and the executor's rules hold at every step.
  for (const fill of [0.5, 0.7, 0.9]) {
    it(`${fill * 100} % full synthetic models: targets met, each byte moved about once`, () => {
      for (const seed of [1, 2, 3]) for (const blocks of [4096, 16384]) {
        const m = fragmentedModel(seed, blocks, fill);
        const plan = planDefrag(m.files, m.free, m.bounds, { idealExtentBlocks: 32768, wholeFs: true, leafExtents: 339 });
        const where = `seed ${seed}, ${blocks} blocks`;
        expect(plan.complete, where).toBe(true);
        expect(plan.skipped, where).toEqual([]);
        const { moved } = replay(m, plan);
        expect(plan.predicted.extents, where).toBe(m.files.length);
        expect(plan.predicted.freeExtents, where).toBeLessThanOrEqual(50);
        expect(2 * plan.predicted.largestFree, where).toBeGreaterThanOrEqual(plan.predicted.freeBlocks);
        expect(moved, where).toBeLessThanOrEqual(1.8 * fragmentedBlocks(m));
        // Nothing left to do: planning again from the result moves nothing.
        const again = planDefrag(m.files.map((f, i) => ({ ...f, extents: plan.after[i]!, treeBlocks: [] })), replay(m, plan).free.runs, m.bounds, { idealExtentBlocks: 32768, wholeFs: true });
        expect(again.steps, where).toEqual([]);
      }
    });
  }

  // Where blocks that never move cut every run shorter than half of the free space (a 1 GiB
  // filesystem at 50 %: backups every two groups), the targets ask for the longest run there is.
  // The layouts were held to the half and all failed: the greedy fallback then left the largest
  // free extent shorter than the filesystem had it (1 GiB 50 %: 251.5 -> 229.8 MiB) and copied
  // twice the data (961 MB; 403 MB for the collector held to this cap).
  it('free space cut by unmovable blocks: the largest free extent is the longest run there is', () => {
    let capped = 0;
    for (const seed of [1, 2, 3]) for (const [blocks, every] of [[4096, 1024], [16384, 2048]] as const) for (const fill of [0.35, 0.5]) {
      const m = fragmentedModel(seed, blocks, fill, 4, 64, every);
      const where = `seed ${seed}, ${blocks} blocks, barriers every ${every}, ${fill}`;
      // the longest run of blocks that are free or movable data (tree blocks included)
      const movable = new Uint8Array(blocks);
      for (const r of m.free) movable.fill(1, r.start, r.start + r.length);
      for (const f of m.files) {
        for (const e of f.extents) movable.fill(1, e.physical, e.physical + e.length);
        for (const b of f.treeBlocks) movable[b] = 1;
      }
      let longest = 0;
      for (let b = 0, run = 0; b < blocks; b++) longest = Math.max(longest, (run = movable[b] ? run + 1 : 0));
      const plan = planDefrag(m.files, m.free, m.bounds, { idealExtentBlocks: 32768, wholeFs: true, leafExtents: 339 });
      expect(plan.complete, where).toBe(true);
      expect(plan.skipped, where).toEqual([]);
      const { moved } = replay(m, plan);
      expect(plan.predicted.extents, where).toBe(m.files.length);
      expect(plan.predicted.freeExtents, where).toBeLessThanOrEqual(50);
      expect(plan.predicted.largestFree, where).toBeGreaterThanOrEqual(Math.min(longest, Math.ceil(plan.predicted.freeBlocks / 2)));
      expect(moved, where).toBeLessThanOrEqual(1.8 * fragmentedBlocks(m));
      if (longest < Math.ceil(plan.predicted.freeBlocks / 2)) capped++;
    }
    expect(capped, 'models where no run holds half of the free space').toBeGreaterThanOrEqual(6);
  });

  // A step that pushes a tree-less file past the inode's four extents makes remapInode allocate a
  // leaf. Unpredicted, the real run stopped there, executed, and planned afresh from the disk: on
  // the 4 GiB 90 % image 115 rounds copied 4.7x what the dry run planned. The model now places the
  // leaf where the allocator will (replay checks the block), so one plan runs to the end.
  it('a file outgrowing its inode: the leaf is predicted, the real run is the dry run (one round)', () => {
    let leaves = 0;
    // models (writers, fill, seed, blocks) whose plans grow trees
    for (const [writers, fill, seed, blocks] of [[4, 0.9, 5, 4096], [8, 0.9, 1, 4096], [8, 0.95, 2, 16384], [8, 0.95, 5, 16384]] as const) {
      const m = fragmentedModel(seed, blocks, fill, writers);
      const where = `${writers} writers, ${fill}, seed ${seed}, ${blocks} blocks`;
      const opts = { idealExtentBlocks: 32768, wholeFs: true, leafExtents: 339 };
      const dry = planDefrag(m.files, m.free, m.bounds, opts);
      const run = runRounds(m, opts);
      expect(run.rounds, where).toBe(1);
      expect(run.steps, where).toBe(dry.steps.length);
      expect(run.moved, where).toBe(replay(m, dry).moved);
      expect(run.last.predicted, where).toEqual(dry.predicted);
      expect(run.last.skipped, where).toEqual([]);
      leaves += dry.steps.filter((s) => s.treeBlock !== undefined).length;
    }
    expect(leaves, 'the models grow trees').toBeGreaterThan(0);
  });

  // Plan.exact (a dry run's predictionExact): a dry plan says whether the real run is expected to
  // follow it. It is false where a step makes a tree-less file outgrow one leaf (leafExtents 0: any
  // tree growth), which is where the real run stops and plans again (more than one round), and
  // where a file's extents outgrow the leaves of the tree it has (the real run goes on, but the
  // edit allocates a block the model does not place: replay here does not model that).
  it('Plan.exact: true where the real run is the dry run (one round, its prediction), false where it plans again or a tree outgrows its leaves', () => {
    let exact = 0, replanned = 0, outgrown = 0;
    for (const [seed, fill, ie] of [[1, 0.9, 1024], [3, 0.9, 64], [6, 0.9, 1024], [1, 0.95, 64], [3, 0.95, 1024], [2, 0.7, 8192]] as const) {
      for (const leafExtents of [339, 0]) {
        const m = fragmentedModel(seed, 16384, fill);
        const where = `fill ${fill} seed ${seed} ideal ${ie} leaf ${leafExtents}`;
        const opts = { idealExtentBlocks: ie, wholeFs: true, leafExtents };
        const dry = planDefrag(m.files, m.free, m.bounds, opts);
        if (!dry.steps.length) continue;
        const run = runRounds(m, opts);
        if (dry.exact) {
          expect(run.rounds, where).toBe(1);
          expect(run.steps, where).toBe(dry.steps.length);
          expect(run.last.predicted, where).toEqual(dry.predicted);
          exact++;
        } else if (run.rounds > 1) replanned++;
        else outgrown++;
        // a plan stopped at an unplaced leaf is never exact; one that did not stop is the dry plan
        const stopped = planDefrag(m.files, m.free, m.bounds, { ...opts, stopAtTreeGrowth: true });
        expect(stopped.exact, where).toBe(stopped.complete && dry.exact);
        if (run.rounds > 1) expect(dry.exact, where).toBe(false);
      }
    }
    expect(exact, 'exact plans').toBeGreaterThan(0);
    expect(replanned, 'plans the real run must redo').toBeGreaterThan(0);
    expect(outgrown, 'plans whose trees outgrow their leaves').toBeGreaterThan(0);
  });

  it('contiguous files stay where the free space allows it', () => {
    // 0..9 unmovable; X contiguous at 10..13; Y fragmented (14, 16, 18); Z contiguous far up (40..43).
    const files = [
      { ino: 12, path: '/x', extents: [ext(0, 10, 4)], treeBlocks: [] },
      { ino: 13, path: '/y', extents: [ext(0, 14, 1), ext(1, 16, 1), ext(2, 18, 1)], treeBlocks: [] },
      { ino: 14, path: '/z', extents: [ext(0, 40, 4)], treeBlocks: [] },
    ];
    const free = [{ start: 15, length: 1 }, { start: 17, length: 1 }, { start: 19, length: 21 }, { start: 44, length: 20 }];
    const m = { files, free, bounds: { first: 0, end: 64 } };
    const plan = planDefrag(files, free, m.bounds, { idealExtentBlocks: 32768, wholeFs: true });
    replay(m, plan);
    expect(plan.steps.some((s) => s.file === 0), 'x stays').toBe(false);
    // Y's place (14..16, packed after X) holds its own pieces: out, then in (moveFiles refuses a
    // target on the file's own blocks).
    expect(plan.steps.filter((s) => s.file === 1).reduce((a, s) => a + s.length, 0), 'y moves at most twice').toBeLessThanOrEqual(6);
    expect(plan.after[1]).toEqual([ext(0, 14, 3)]);
    // Z splits the free space in runs of 23 and 20 blocks: the larger holds half of the 43, so Z stays.
    expect(plan.steps.some((s) => s.file === 2), 'z stays').toBe(false);
    expect(plan.predicted).toMatchObject({ extents: 3, freeExtents: 2, largestFree: 23 });
  });
});

/** Defragment a kernel-made image: no errors, the prediction met, e2fsck clean, every file's bytes as written (read through the kernel). */
async function defragChecked(im: FragImage): Promise<{ s: DefragSummary; after: FragStats }> {
  const fs = await Filesystem.open(im.image, { write: true });
  const s = await defrag(fs);
  await fs.close();
  expect(s.errors).toEqual([]);
  expect({ extents: s.extentsAfter, freeExtents: s.freeExtentsAfter, largestFree: s.largestFreeAfter }).toEqual(s.predicted);
  expectE2fsckClean(im.image, 'after defrag');
  const after = measureFragImage(im.image, { hash: true });
  for (const f of after.perFile) expect(f.sha256, f.path).toBe(im.expectedSha256[f.path]);
  expect(after.perFile.length).toBe(Object.keys(im.expectedSha256).length);
  return { s, after };
}

/** Bytes of the image's fragmented files: what rewriting each once copies. */
const fragmentedBytes = (im: FragImage): number => im.perFile.filter((f) => f.extents > 1).reduce((a, f) => a + Math.ceil(f.size / im.blockSize) * im.blockSize, 0);

describe.skipIf(!!why)('defrag on kernel-fragmented full images', () => {
  for (const fill of [0.7, 0.9]) {
    it(`${fill * 100} % full, 32 MiB: reaches the targets, matches its prediction, keeps every byte`, async () => {
      const im = fragImage({ sizeMiB: 32, fill, seed: 3 })!;
      expect(meetsTargets(im).ok, 'the image starts fragmented').toBe(false);
      const { s, after } = await defragChecked(im);
      expect(s.largestFreePossible, 'a run can hold half of the free space').toBeUndefined();
      const t = meetsTargets(after);
      console.log(`fill ${fill}: extents ${im.extents} -> ${after.extents} (ideal ${after.idealExtents}), free extents ${im.freeExtents} -> ${after.freeExtents}, largest free ${im.largestFreeBlocks} -> ${after.largestFreeBlocks} of ${after.freeBlocks}, moved ${s.bytesMoved} bytes in ${s.moves} moves, ${s.seconds} s`);
      expect(t.why).toEqual([]);
      // Each fragmented file rewritten about once (the greedy planner copied 2.4-2.9x on these).
      expect(s.bytesMoved).toBeLessThanOrEqual(1.8 * fragmentedBytes(im));
    }, 180_000);
  }

  // 4 MiB groups: backups in groups 1, 3, 5 and 7 cut the space into runs of at most two groups,
  // shorter than half of the free space at 50 % (a 1 GiB filesystem's case, at 32 MiB).
  it('32 MiB 50 % in 4 MiB groups: no run holds half of the free space; defrag frees the longest run there is', async () => {
    // The kernel's allocations follow the writers' timing, so a seed's image differs from machine
    // to machine: on some the longest possible run is free from the start, and defrag would have
    // nothing to show. The first seed (in a fixed order) whose image starts short of it is used.
    let im: FragImage | null = null, possible = 0;
    const tried: string[] = [];
    for (const seed of [3, 4, 5, 6, 7, 8]) {
      const candidate = fragImage({ sizeMiB: 32, fill: 0.5, seed, blocksPerGroup: 1024 })!;
      const p = largestPossibleFreeBlocks(candidate.image, measureFragImage(candidate.image, { maps: true }).perFile);
      expect(p, 'two groups less a backup superblock and its descriptors at most').toBeLessThanOrEqual(2 * 1024 - 2);
      expect(p, 'no run can hold half of the free space').toBeLessThan(candidate.freeBlocks / 2);
      tried.push(`seed ${seed}: largest free ${candidate.largestFreeBlocks} of a possible ${p}`);
      if (candidate.largestFreeBlocks < p) {
        (im = candidate), (possible = p);
        break;
      }
    }
    console.log(`4 MiB groups: ${tried.join('; ')}`);
    expect(im, `an image that starts short of the longest possible run (${tried.join('; ')})`).not.toBeNull();
    if (!im) return;
    expect(im.largestFreeBlocks, 'the image starts short of it').toBeLessThan(possible);
    // the CLI says what it aims for (a dry run writes nothing)
    const dry = await cli(['defrag', '--dry-run', im.image]);
    expect(dry.status, dry.stderr).toBe(0);
    expect(dry.stdout.toString()).toContain(`(at most ${possible} possible: blocks that never move cut the rest)`);
    const { s, after } = await defragChecked(im);
    expect(s.largestFreePossible).toBe(possible);
    expect(meetsTargets(after, possible)).toEqual({ ok: true, why: [], capped: true });
    expect(after.largestFreeBlocks).toBe(possible);
    expect(s.bytesMoved).toBeLessThanOrEqual(1.8 * fragmentedBytes(im));
  }, 180_000);

  it('32 MiB 90 %, seed 1 (files outgrow their inodes): the real run makes the dry run\'s moves in one round', async () => {
    const im = fragImage({ sizeMiB: 32, fill: 0.9, seed: 1 })!;
    const fs = await Filesystem.open(im.image, { write: true });
    const dry = await defrag(fs, { dryRun: true });
    expect(dry.plan.filter((p) => p.treeBlock !== undefined).length, 'the plan grows trees').toBeGreaterThan(0);
    expect(dry.predictionExact, 'every leaf predicted: the dry run says the real run follows it').toBe(true);
    const s = await defrag(fs);
    await fs.close();
    expect(s.errors).toEqual([]);
    // one round: exactly the planned moves (a replan would append a second round's), copying what was planned
    expect(s.plan).toEqual(dry.plan);
    expect(s.moves).toBe(dry.plan.length);
    expect(s.bytesMoved).toBe(dry.plan.reduce((a, p) => a + p.blocks, 0) * im.blockSize);
    expect({ extents: s.extentsAfter, freeExtents: s.freeExtentsAfter, largestFree: s.largestFreeAfter }).toEqual(dry.predicted);
    expectE2fsckClean(im.image, 'after defrag');
    const after = measureFragImage(im.image, { hash: true, maps: true });
    for (const f of after.perFile) expect(f.sha256, f.path).toBe(im.expectedSha256[f.path]);
    expect(after.perFile.length).toBe(Object.keys(im.expectedSha256).length);
    expect(meetsTargets(after).why).toEqual([]);
  }, 180_000);

  it('the CLI: --dry-run prints the plan and its predicted result, changes nothing; the real run ends there', async () => {
    const im = fragImage({ sizeMiB: 32, fill: 0.7, seed: 3 })!;
    const sha = sha256File(im.image);
    const dry = await cli(['defrag', '--dry-run', im.image]);
    expect(dry.status, dry.stderr).toBe(0);
    expect(sha256File(im.image)).toBe(sha);
    const out = dry.stdout.toString();
    expect(out).toMatch(/^(defrag|evict|compact) +\/\S+: \d+ -> \d+ extent\(s\)/m);
    const m = /^predicted result: (\d+) extent\(s\), (\d+) free extent\(s\), largest free extent (\d+) blocks$/m.exec(out);
    expect(m, out).not.toBeNull();
    const real = await cli(['defrag', '--json', im.image]);
    expect(real.status, real.stderr).toBe(0);
    const s = JSON.parse(real.stdout.toString());
    expect(s.errors).toEqual([]);
    expect({ extents: s.extentsAfter, freeExtents: s.freeExtentsAfter, largestFree: s.largestFreeAfter }).toEqual(s.predicted);
    expect(meetsTargets(measureFragImage(im.image)).why).toEqual([]);
    expectE2fsckClean(im.image, 'after the CLI defrag');
  }, 180_000);
});
