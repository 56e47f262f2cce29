/**
 * bench/fresh.ts — the fresh-process timing every bench uses: medians over the counted rounds (the
 * first, page-cache round dropped), node's start-up subtracted from node processes only, each
 * counted round's output checked, a failing process failing the bench.
 */
import { describe, expect, it } from 'vitest';
import { freshRounds, median, NODE_START } from '../../bench/fresh.js';

describe('bench/fresh', () => {
  it('medians of odd and even counts', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  it('subtracts node start-up from node processes only, drops the warm-up round, checks output', () => {
    const seen: string[] = [];
    let before = 0;
    const r = freshRounds(
      [
        NODE_START,
        // a node process that takes clearly longer than node -e 0
        { name: 'slow node', cmd: process.execPath, args: ['-e', 'const t = Date.now(); while (Date.now() - t < 500); process.stdout.write("ok")'], node: true, stdout: 'capture', check: (o) => void seen.push(o.toString()), before: () => void before++ },
        { name: 'sleep', cmd: 'sleep', args: ['0.2'] },
      ],
      2,
    );
    expect(r.all['slow node']).toHaveLength(2);
    expect(before).toBe(3); // every round, the warm-up included
    expect(seen).toEqual(['ok', 'ok']); // counted rounds only
    expect(r.nodeStart).toBe(r.wall['node -e 0']);
    expect(r.work('slow node')).toBeCloseTo(r.wall['slow node']! - r.nodeStart, 6);
    expect(r.work('slow node')).toBeGreaterThanOrEqual(250) // loose: node's start-up varies with the load;
    expect(r.work('sleep')).toBe(r.wall.sleep); // not a node process: nothing subtracted
    expect(r.work('sleep')).toBeGreaterThanOrEqual(200);
    expect(() => r.work('nope')).toThrow(/no job/);
  });

  it('a process that fails fails the bench', () => {
    expect(() => freshRounds([{ name: 'false', cmd: 'false', args: [] }], 1)).toThrow(/false.*exited 1/);
    expect(freshRounds([{ name: 'false', cmd: 'false', args: [], okStatus: [1] }], 1).all.false).toHaveLength(1);
  });
});
