/**
 * defrag's text report (summaryText): a dry run whose plan the real run may not follow (a move
 * grows an extent tree the plan does not place: DefragSummary.predictionExact false) says so
 * under its predicted result; an exact plan and a real run print no such line.
 */
import { describe, expect, it } from 'vitest';
import { summaryText } from '../../lib/cli/commands/defrag-run.js';
import type { DefragSummary } from '../../lib/ops/defrag.js';

function summary(predictionExact: boolean): DefragSummary {
  return {
    files: 3, filesMoved: 0, moves: 0, transactions: 0, filesSkipped: 0,
    extentsBefore: 9, extentsAfter: 3, freeExtentsBefore: 5, freeExtentsAfter: 1,
    largestFreeBefore: 10, largestFreeAfter: 40, bytesMoved: 0, seconds: 0.01, stoppedBy: 'done',
    plan: [{ path: '/a', ino: 12, blocks: 8, fragmentsBefore: 5, target: [{ start: 100, length: 8 }], fragmentsAfter: 1, phase: 'defrag' }],
    predicted: { extents: 3, freeExtents: 1, largestFree: 40 }, predictionExact, errors: [],
  };
}

describe('defrag summaryText', () => {
  it('a dry run marks a provisional prediction, and only then', () => {
    const provisional = /^\(provisional: a planned move needs an extent-tree block/m;
    const dry = summaryText(summary(false), true);
    expect(dry).toMatch(/^defrag  \/a: 5 -> 1 extent\(s\), 8 block\(s\) to 100\+8$/m);
    expect(dry).toMatch(/^predicted result: 3 extent\(s\), 1 free extent\(s\), largest free extent 40 blocks\n\(provisional: /m);
    expect(summaryText(summary(true), true)).not.toMatch(provisional);
    expect(summaryText(summary(true), true)).toMatch(/^predicted result: /m);
    // a real run prints neither its plan nor a prediction
    expect(summaryText(summary(false), false)).not.toMatch(/provisional|predicted result|^defrag /m);
  });
});
