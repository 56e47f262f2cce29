/**
 * Plan.waves: the collector hands the executor each step's dependency wave so that a fresh defrag
 * does not read the files again and schedule the same moves twice (moveFiles' `waves` option). They
 * must be the waves moveFiles would work out itself: scheduleMoves over the steps' footprints, with
 * a step that grows a tree the model does not place marked `allocates` (the executor's footprint
 * of it: the allocator picks the leaf, so it runs no earlier than every step before it).
 */
import { describe, expect, it } from 'vitest';
import { scheduleMoves } from '../../lib/ops/move-schedule.js';
import { planDefrag, planFootprints } from '../../lib/ops/defrag-plan.js';
import { fragmentedModel } from './plan-model.js';

/** Synthetic models (seed, blocks, fill) and ideal extent sizes; the small ones make evicted files outgrow their inodes. */
const INPUTS: [number, number, number, number][] = [];
for (const fill of [0.5, 0.7, 0.9]) for (const seed of [1, 2]) INPUTS.push([seed, 16384, fill, 8192]);
for (const [seed, fill] of [[1, 0.9], [3, 0.9], [6, 0.9], [1, 0.95], [3, 0.95]] as const) for (const ie of [1024, 64]) INPUTS.push([seed, 16384, fill, ie]);

describe('Plan.waves', () => {
  it('are the batch schedule of the plan\'s footprints, on complete plans and on plans stopped at an unplaced tree', () => {
    let stopped = 0, lifted = 0, compared = 0;
    for (const [seed, blocks, fill, ie] of INPUTS) {
      // leafExtents 0: no leaf is predicted, so a file that outgrows its inode stops the plan
      for (const leafExtents of [339, 0]) {
        const m = fragmentedModel(seed, blocks, fill);
        const where = `fill ${fill} seed ${seed} ideal ${ie} leaf ${leafExtents}`;
        const plan = planDefrag(m.files, m.free, m.bounds, { idealExtentBlocks: ie, wholeFs: true, leafExtents, stopAtTreeGrowth: true });
        if (!plan.steps.length) continue;
        expect(plan.waves, where).toBeDefined();
        const fps = planFootprints(m.files, plan.steps, m.bounds);
        if (!plan.complete) {
          fps[fps.length - 1]!.allocates = true;
          stopped++;
          if (scheduleMoves(fps).wave.at(-1) !== scheduleMoves(planFootprints(m.files, plan.steps, m.bounds)).wave.at(-1)) lifted++;
        }
        expect(plan.waves, where).toEqual(scheduleMoves(fps).wave);
        compared++;
      }
    }
    // the inputs reach both cases, and the last step's lift changes a wave somewhere
    expect(compared).toBeGreaterThan(20);
    expect(stopped).toBeGreaterThan(3);
    expect(lifted).toBeGreaterThan(0);
  });

  it('are absent where a step before the last grew an unplaced tree (the dry run plans on)', () => {
    let absent = 0;
    for (const [seed, blocks, fill, ie] of INPUTS) {
      const m = fragmentedModel(seed, blocks, fill);
      const opts = { idealExtentBlocks: ie, wholeFs: true, leafExtents: 0 };
      if (planDefrag(m.files, m.free, m.bounds, { ...opts, stopAtTreeGrowth: true }).complete) continue;
      const plan = planDefrag(m.files, m.free, m.bounds, { ...opts, stopAtTreeGrowth: false });
      expect(plan.waves, `seed ${seed} fill ${fill} ideal ${ie}`).toBeUndefined();
      absent++;
    }
    expect(absent).toBeGreaterThan(3);
  });
});
