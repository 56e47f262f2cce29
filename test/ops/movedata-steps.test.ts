/**
 * movedata's step sizing (issue 10 item 3): every step costs a drain of the copy pipeline and two
 * flushes, so a move the journal can take in one transaction is made in one. The first step's
 * extent count comes from the journal's per-transaction limit (firstStepExtents), not a fixed 64:
 * a 300-extent file with a 32 MiB journal moves in ONE transaction (it took three: 64, 128, 108
 * extents); a small journal still starts at 64 and doubles, and a step the journal refuses is
 * halved (movedata-validate.test.ts: E2BIG with not one byte copied).
 * Checked against debugfs's reading of the moved file and e2fsck.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { firstStepExtents, movedata } from '../../lib/ops/movedata.js';
import { allocate, ALLOC_CONTIGUOUS } from '../../lib/ops/allocate.js';
import { internals } from '../../lib/ext4/internals.js';
import { cleanupImages, expectClean, HAVE_E2FSPROGS, makeImage, pattern, sameBytes } from './helpers.js';
import { debugfsDump } from '../helpers/tools.js';

const B = 4096;

/** `n` blocks, every other one written (mkfs -d leaves the zero blocks as holes: n/2 one-block extents). */
function combed(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n * B);
  const p = pattern(n * B, seed);
  for (let b = 0; b < n; b += 2) out.set(p.subarray(b * B, (b + 1) * B), b * B);
  return out;
}

afterEach(() => cleanupImages());

describe('firstStepExtents', () => {
  it('grows with the journal limit, between 64 and 8192', () => {
    expect(firstStepExtents(256)).toBe(64); // 1 MiB journal of 4 KiB blocks: the old fixed start
    expect(firstStepExtents(2048)).toBe(496); // 32 MiB journal
    expect(firstStepExtents(4096)).toBe(1008); // 64 MiB journal (mkfs's default for 1-4 GiB)
    expect(firstStepExtents(1 << 20)).toBe(8192);
    expect(firstStepExtents(Infinity)).toBe(8192); // no journal
  });
});

describe.skipIf(!HAVE_E2FSPROGS)('movedata steps', () => {
  it('300 extents with a 32 MiB journal: one transaction, bytes as debugfs reads them', async () => {
    const N = 600;
    const data = combed(N, 3);
    const img = makeImage('mds-one', { data, space: new Uint8Array(0) }, { sizeMiB: 96, mkfsOpts: ['-J', 'size=32'] });
    const f = await Filesystem.open(img, { write: true });
    let txs = 0;
    try {
      expect((await f.fileMap(await f.resolve('/data'))).extents.length).toBe(N / 2);
      expect(firstStepExtents(internals(f).journal!.maxTransactionBlocks())).toBeGreaterThanOrEqual(N / 2); // 2047 blocks: 495
      expect(await allocate(f, '/space', { offset: 0, len: N * B, flags: ALLOC_CONTIGUOUS })).toBe(N * B);
      const t0 = f.writeStats.transactions;
      await movedata(f, '/data', '/space', { from: 0, len: N * B });
      txs = f.writeStats.transactions - t0;
      expect((await f.fileMap(await f.resolve('/data'))).extents.filter((e) => !e.unwritten).length).toBeLessThanOrEqual(N / 2);
    } finally {
      await f.close();
    }
    expect(txs, 'transactions of the move').toBe(1);
    expectClean(img, 'one-step movedata');
    expect(sameBytes(new Uint8Array(debugfsDump(img, '/data')), data)).toBe(true);
  });

  it('the same file with a 4 MiB journal: several steps (64, then doubled), same bytes', async () => {
    const N = 600;
    const data = combed(N, 4);
    const img = makeImage('mds-small', { data, space: new Uint8Array(0) }, { sizeMiB: 96, mkfsOpts: ['-J', 'size=4'] });
    const f = await Filesystem.open(img, { write: true });
    let txs = 0;
    try {
      expect(firstStepExtents(internals(f).journal!.maxTransactionBlocks())).toBe(64); // 255 blocks
      expect(await allocate(f, '/space', { offset: 0, len: N * B, flags: ALLOC_CONTIGUOUS })).toBe(N * B);
      const t0 = f.writeStats.transactions;
      await movedata(f, '/data', '/space', { from: 0, len: N * B });
      txs = f.writeStats.transactions - t0;
    } finally {
      await f.close();
    }
    // 300 extents in steps of 64, 128, then the rest
    expect(txs, 'transactions of the move').toBe(3);
    expectClean(img, 'stepped movedata');
    expect(sameBytes(new Uint8Array(debugfsDump(img, '/data')), data)).toBe(true);
  });
});
