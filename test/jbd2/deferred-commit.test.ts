/**
 * Deferred commits (lib/jbd2/journal.ts deferNext / orderedEarly / settle) on a memory device whose
 * flushes take a timer tick, so that the host really runs on while a commit's tail is in flight:
 * the device sees exactly the writes and flushes, in the same order, as without deferral (every
 * crash point is one the plain order has: live-journal.test.ts recovers those); early ordered data
 * runs under the tail and the log after it; a tail's failure fails everything after it.
 */
import { describe, it, expect } from 'vitest';
import { SlowFlushDevice } from '../helpers/slow-flush-device.js';
import { RecordingDevice, type LogRecord } from '../../lib/io/recording-device.js';
import { Prng } from '../../lib/io/prng.js';
import { journalOnDevice } from '../../lib/jbd2/device.js';
import { Journal, type CommitStep } from '../../lib/jbd2/journal.js';
import { JINCOMPAT, parseJournalSuperblock } from '../../lib/jbd2/format.js';
import { isExt4Error } from '../../lib/errors.js';
import { makeJsbBlock } from '../journal/memjournal.js';

const BS = 1024;
const HOME = 64;
const MAXLEN = 256; // small: the log wraps (checkpoints inside commits) several times

function setup() {
  const image = new Uint8Array((HOME + MAXLEN) * BS);
  const jsb = makeJsbBlock({ bs: BS, maxlen: MAXLEN, incompat: JINCOMPAT.CSUM_V3 | JINCOMPAT['64BIT'], sequence: 77, start: 0 });
  image.set(jsb, HOME * BS);
  const slow = new SlowFlushDevice(image);
  const dev = new RecordingDevice(slow);
  const io = journalOnDevice(dev, { blockSize: BS, physical: (n) => HOME + n, blockCount: MAXLEN });
  const journal = new Journal(io, { writeBlock: (b, d) => dev.write(b * BS, d) }, parseJournalSuperblock(jsb));
  return { slow, dev, journal };
}

/** The same random transactions, deferred or not; the device's log and the hook steps. */
async function run(deferred: boolean, opts: { early?: boolean } = {}): Promise<{ log: LogRecord[]; steps: CommitStep[]; sawInFlight: number; returnedInFlight: number }> {
  const { dev, journal } = setup();
  const p = new Prng('deferred journal');
  const steps: CommitStep[] = [];
  let sawInFlight = 0, returnedInFlight = 0;
  const hooks = { onStep: (s: CommitStep) => void steps.push(s) };
  let lastFreed: number[] = [];
  for (let t = 0; t < 40; t++) {
    const blocks = new Map<number, Uint8Array>();
    for (let i = 1 + p.int(12); i > 0; i--) blocks.set(p.int(HOME / 2), new Uint8Array(BS).fill(p.int(256)));
    const freed = p.chance(0.3) ? [{ start: HOME / 2 + p.int(8), length: 1 + p.int(4) }] : [];
    // ordered data in the upper half: early ones avoid what the last commit freed
    const data = Array.from({ length: p.int(4) }, () => ({ block: HOME / 2 + p.int(HOME / 2), fill: p.int(256) }));
    const late = data.filter((d) => lastFreed.includes(d.block));
    const early = data.filter((d) => !lastFreed.includes(d.block));
    if (t % 7 === 6) journal.maxPendingBytes = 8 * BS; // now and then a commit that must checkpoint after it (not deferred)
    else journal.maxPendingBytes = 64 * 1024 * 1024;
    journal.deferNext = deferred;
    journal.orderedEarly = deferred && !!opts.early;
    await journal.commit(
      {
        blocks,
        freed,
        ordered: async () => {
          if (journal.committing) sawInFlight++;
          for (const d of early) await dev.write(d.block * BS, new Uint8Array(BS).fill(d.fill));
          if (late.length) await journal.settle(); // (else the journal settles before its log)
          for (const d of late) await dev.write(d.block * BS, new Uint8Array(BS).fill(d.fill));
          return data.length * BS;
        },
        now: { sec: 1_700_000_000 + t, nsec: 0 },
      },
      hooks,
    );
    if (journal.committing) returnedInFlight++;
    lastFreed = freed.flatMap((f) => Array.from({ length: f.length }, (_, i) => f.start + i));
  }
  await journal.checkpoint(hooks);
  expect(journal.committing).toBe(false);
  return { log: dev.log, steps, sawInFlight, returnedInFlight };
}

/** Whether every journal write after a commit block waits for a flush after it (the tail done before the next log). */
function logAfterTail(log: readonly LogRecord[]): boolean {
  let open = false;
  for (const r of log) {
    if (r.kind === 'flush') open = false;
    else if (r.position >= HOME * BS) {
      if (open) return false;
      const v = new DataView(r.data.buffer, r.data.byteOffset);
      if (v.getUint32(0) === 0xc03b3998 && v.getUint32(4) === 2) open = true; // a commit block
    }
  }
  return true;
}

const key = (log: readonly LogRecord[]) => log.map((r) => (r.kind === 'flush' ? 'F' : `W${r.position}:${r.data.length}:${r.data.reduce((a, x) => (a * 31 + x) >>> 0, 7)}`));

describe('deferred commits', () => {
  it('write and flush exactly what plain commits do, in the same order; the hooks see the same steps', async () => {
    const plain = await run(false);
    const deferred = await run(true);
    expect(deferred.sawInFlight).toBe(0); // (ordered data waits for the tail unless orderedEarly)
    expect(plain.returnedInFlight).toBe(0);
    expect(deferred.returnedInFlight).toBeGreaterThan(25); // (all but those that checkpoint after them)
    expect(key(deferred.log)).toEqual(key(plain.log));
    expect(deferred.steps).toEqual(plain.steps);
    expect(plain.steps.filter((s) => s === 'commit').length).toBe(40);
    expect(plain.steps.filter((s) => s === 'checkpoint').length).toBeGreaterThan(2);
  });

  it('orderedEarly: the next ordered data runs under the tail, its log after it', async () => {
    const plain = await run(false, { early: true });
    const early = await run(true, { early: true });
    expect(early.sawInFlight).toBeGreaterThan(10);
    expect(logAfterTail(plain.log)).toBe(true);
    expect(logAfterTail(early.log)).toBe(true);
    // every commit block write is followed by a flush before any log write of the next
    // transaction, and the writes are the same (only early ordered data moved up)
    const sorted = (log: readonly LogRecord[]) => key(log).filter((k) => k !== 'F').sort();
    expect(sorted(early.log)).toEqual(sorted(plain.log));
    expect(early.steps).toEqual(plain.steps);
  });

  it('a tail that fails fails the next commit, the checkpoint and settle with its error', async () => {
    const { slow, journal } = setup();
    const commit = (t: number) =>
      journal.commit({ blocks: new Map([[t, new Uint8Array(BS).fill(t)]]), now: { sec: 1_700_000_000 + t, nsec: 0 } });
    journal.deferNext = true;
    await commit(1);
    await journal.settle();
    slow.failAt = slow.flushes + 2; // the commit block's flush of the next one
    journal.deferNext = true;
    await commit(2); // returns before its tail fails
    await expect(journal.settle()).rejects.toSatisfy((e: unknown) => isExt4Error(e, 'EIO'));
    await expect(commit(3)).rejects.toSatisfy((e: unknown) => isExt4Error(e, 'EIO'));
    await expect(journal.checkpoint()).rejects.toSatisfy((e: unknown) => isExt4Error(e, 'EIO'));
  });
});
