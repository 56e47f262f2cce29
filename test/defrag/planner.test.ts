/**
 * The global planner (lib/ops/defrag-plan.ts) on full images fragmented by the kernel
 * (test/helpers/frag-images.ts: interleaved appends, a third deleted, more appends): defrag reaches
 * the targets (file extents within 10 % of ideal, at most 50 free extents, the largest free
 * extent at least half of the free space), the real run matches the plan's prediction, every file
 * reads the same through the kernel, and e2fsck is clean. Plus the planner's own rules on a model.
 */
import { describe, it, expect } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { defrag } from '../../lib/ops/defrag.js';
import { planDefrag, FreeIndex } from '../../lib/ops/defrag-plan.js';
import type { Extent } from '../../lib/ext4/extents.js';
import { fragImage, fragImageSkipReason, measureFragImage, meetsTargets } from '../helpers/frag-images.js';
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
    // Compacted toward the start: the free space ends the area, in one run.
    expect(plan.predicted.freeExtents).toBe(1);
    expect(idx.runs[0]).toEqual({ start: 21, length: 7 });
  });
});

describe.skipIf(!!why)('defrag on kernel-fragmented full images', () => {
  for (const fill of [0.7, 0.9]) {
    it(`${fill * 100} % full, 32 MiB: reaches the targets, matches its prediction, keeps every byte`, async () => {
      const im = fragImage({ sizeMiB: 32, fill, seed: 3 })!;
      expect(meetsTargets(im).ok, 'the image starts fragmented').toBe(false);
      const fs = await Filesystem.open(im.image, { write: true });
      const s = await defrag(fs);
      await fs.close();
      expect(s.errors).toEqual([]);
      expect({ extents: s.extentsAfter, freeExtents: s.freeExtentsAfter, largestFree: s.largestFreeAfter }).toEqual(s.predicted);
      expectE2fsckClean(im.image, 'after defrag');
      const after = measureFragImage(im.image, { hash: true });
      for (const f of after.perFile) expect(f.sha256, f.path).toBe(im.expectedSha256[f.path]);
      expect(after.perFile.length).toBe(Object.keys(im.expectedSha256).length);
      const t = meetsTargets(after);
      console.log(`fill ${fill}: extents ${im.extents} -> ${after.extents} (ideal ${after.idealExtents}), free extents ${im.freeExtents} -> ${after.freeExtents}, largest free ${im.largestFreeBlocks} -> ${after.largestFreeBlocks} of ${after.freeBlocks}, moved ${s.bytesMoved} bytes in ${s.moves} moves, ${s.seconds} s`);
      expect(t.why).toEqual([]);
    }, 180_000);
  }

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
