/**
 * The planner prices a plan's dependency waves while it plans (lib/ops/move-schedule.ts
 * WaveScheduler, used by defrag-plan.ts to stop a layout's plan once it cannot beat the best one):
 * the wave count known after each move must be the batch scheduler's count for that prefix, and
 * never fall — the stop rests on both.
 */
import { describe, expect, it } from 'vitest';
import { Prng } from '../../lib/io/prng.js';
import { scheduleMoves, WaveScheduler, type BlockRun, type MoveFootprint } from '../../lib/ops/move-schedule.js';

function randomRuns(rng: Prng, n: number, end: number): BlockRun[] {
  const out: BlockRun[] = [];
  for (let k = 0; k < n; k++) out.push({ start: rng.int(end - 8), length: 1 + rng.int(8) });
  return out;
}

describe('WaveScheduler (waves priced as the plan grows)', () => {
  it('after each move, its wave count is the batch schedule of that prefix, and it only grows', () => {
    for (let seed = 1; seed <= 6; seed++) {
      const rng = new Prng(seed);
      const moves: MoveFootprint[] = [];
      for (let j = 0; j < 120; j++) {
        const m: MoveFootprint = { file: rng.int(12), frees: randomRuns(rng, 1 + rng.int(3), 400), target: randomRuns(rng, 1 + rng.int(2), 400) };
        if (rng.int(10) === 0) m.allocates = true;
        if (rng.int(12) === 0) m.span = randomRuns(rng, 1, 400);
        moves.push(m);
      }
      const s = new WaveScheduler();
      let prev = 0;
      moves.forEach((m, j) => {
        const w = s.add(m);
        const batch = scheduleMoves(moves.slice(0, j + 1));
        expect(w).toBe(batch.wave[j]);
        expect(s.waveCount).toBe(batch.waves.length);
        expect(s.waveCount).toBeGreaterThanOrEqual(prev);
        prev = s.waveCount;
      });
      expect(s.schedule()).toEqual(scheduleMoves(moves));
      // several waves on these random footprints: the check means something
      expect(s.waveCount).toBeGreaterThan(3);
    }
  });
});
