/**
 * moveFiles prepares each next transaction under the flushes of the one before (lib/jbd2/journal.ts
 * deferNext) and writes what it can of the next copy there too (orderedEarly: targets the commit in
 * flight did not free), while it holds the writer queue (move-batch.ts WriterHold). On a device
 * whose flushes take a few milliseconds — so that the next transaction really runs under them —
 * a plan of two waves: a_k to a far free run, then b_k into a_k's old block (must wait for the
 * first commit to be durable) and a_k again further on (may go early). At every crash point
 * (every prefix of the recorded writes plus seeded sets of lost un-flushed writes), after
 * ext4kit's replay: every file reads exactly its bytes and is mapped old, between or new; b_k is
 * never on a_k's old block while a_k still maps it; e2fsck -fn clean on a sample (also replayed
 * by e2fsck). A transaction another caller queues meanwhile never runs while a commit is in flight.
 */
import { describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { SlowFlushDevice } from '../helpers/slow-flush-device.js';
import { RecordingDevice, crashPoints, materialise } from '../../lib/io/recording-device.js';
import { Prng } from '../../lib/io/prng.js';
import { getFreeBlocks } from '../../lib/ops/free.js';
import { moveFiles, splitCopies, type FileMove } from '../../lib/ops/move-batch.js';
import type { Extent } from '../../lib/ext4/extents.js';
import { internals } from '../../lib/ext4/internals.js';
import { HAVE_E2FSPROGS, makeImage, mergeExtents, pattern, sameBytes } from '../ops/helpers.js';
import { checkReplays } from '../crash/file-call-case.js';

const K = 1024;
const N = 6;

function sameMap(a: readonly Extent[], b: readonly Extent[]): boolean {
  return a.length === b.length && a.every((e, i) => e.logical === b[i]!.logical && e.physical === b[i]!.physical && e.length === b[i]!.length && !!e.unwritten === !!b[i]!.unwritten);
}

const one = (physical: number): Extent[] => [{ logical: 0, physical, length: 1, unwritten: false }];

describe('splitCopies', () => {
  it('a copy chunk with a target on a freed run goes late, the others early, pieces whole', () => {
    // chunks of 8 blocks: 10..17, 18..25, 26..29 (copy 1); 50..54 (copy 2); 100..102 (copy 3)
    const copies = [{ from: 1000, to: 10, length: 20 }, { from: 2000, to: 50, length: 5 }, { from: 3000, to: 100, length: 3 }];
    const freed = [{ start: 20, length: 2 }, { start: 54, length: 10 }, { start: 0, length: 2 }, { start: 30, length: 4 }];
    const { early, late } = splitCopies(copies, freed, 8);
    expect(late).toEqual([{ from: 1008, to: 18, length: 8 }, { from: 2000, to: 50, length: 5 }]);
    expect(early).toEqual([{ from: 1000, to: 10, length: 8 }, { from: 1016, to: 26, length: 4 }, { from: 3000, to: 100, length: 3 }]);
    expect(splitCopies(copies, [], 8)).toEqual({ early: copies, late: [] });
  });
});

describe.skipIf(!HAVE_E2FSPROGS)('moveFiles under deferred commits on a device with slow flushes', () => {
  it('crash points: old, between or new per file, b_k never before a_k left; others never run under a commit in flight', async () => {
    const src: Record<string, Uint8Array> = {};
    for (let k = 0; k < N; k++) (src[`a${k}`] = pattern(K - 3 * k, 700 + k), (src[`b${k}`] = pattern(K - 5 * k, 800 + k)));
    const img = makeImage('deferred-commit', src, { blockSize: K, sizeMiB: 8 });
    const base = new Uint8Array(nodefs.readFileSync(img));
    nodefs.rmSync(img, { force: true });
    const paths = Object.keys(src).map((p) => `/${p}`);
    const planFs = await Filesystem.open(new MemoryDevice(base, { readOnly: true }));
    const moves: FileMove[] = [];
    let lateAt = -1, earlyAt = -1;
    /** Each file's maps in order: as made, then after each of its moves. */
    const stages = new Map<string, Extent[][]>();
    try {
      const runs = await getFreeBlocks(planFs);
      const big = runs.reduce((a, r) => (r.len > a.len ? r : a));
      const far = big.start / K + Math.floor(big.len / K / 2);
      const further = far + 4 * N;
      earlyAt = further * K;
      base.fill(0x5a, far * K, (further + N) * K); // free blocks may hold anything
      const second: FileMove[] = [];
      for (let k = 0; k < N; k++) {
        const a = mergeExtents((await planFs.fileMap(await planFs.resolve(`/a${k}`))).extents);
        const b = mergeExtents((await planFs.fileMap(await planFs.resolve(`/b${k}`))).extents);
        expect(a.length === 1 && a[0]!.length === 1 && b.length === 1 && b[0]!.length === 1).toBe(true);
        const aIno = (await planFs.resolve(`/a${k}`)).ino;
        if (k === 0) lateAt = a[0]!.physical * K;
        stages.set(`/a${k}`, [a, one(far + k), one(further + k)]).set(`/b${k}`, [b, one(a[0]!.physical)]);
        moves.push({ ino: aIno, target: [{ startBlock: far + k, lengthBlocks: 1 }], expect: a });
        // wave 2: b_k onto a_k's old block (freed by the first commit: written once it is durable) …
        second.push({ ino: (await planFs.resolve(`/b${k}`)).ino, target: [{ startBlock: a[0]!.physical, lengthBlocks: 1 }], expect: b });
        // … and a_k on again, to blocks nobody freed (written under the first commit's flushes)
        second.push({ ino: aIno, target: [{ startBlock: further + k, lengthBlocks: 1 }], expect: one(far + k) });
      }
      moves.push(...second);
    } finally {
      await planFs.close();
    }

    const rec = new RecordingDevice(new SlowFlushDevice(base.slice(), 3), { granularity: K });
    const f = await Filesystem.open(rec, { write: true });
    let commits = 0, sawInFlight = 0;
    const othersSaw: boolean[] = [];
    try {
      internals(f).commitHooks = { onStep: (s) => void (s === 'commit' && commits++) };
      const journal = internals(f).journal!;
      // Another caller's transactions, queued while a commit is in flight: they must wait for it.
      let polling = true;
      const others: Promise<unknown>[] = [];
      const poll = (): void => {
        if (!polling) return;
        if (journal.committing) {
          sawInFlight++;
          if (others.length < 3) others.push(f.transact(async () => void othersSaw.push(journal.committing)));
        }
        setImmediate(poll);
      };
      poll();
      // (no time limit on the hold: a loaded machine must not turn the second transaction into a barrier)
      const results = await moveFiles(f, moves, { holdMs: 60_000 });
      polling = false;
      await Promise.all(others);
      expect(results.every((r) => r.moved)).toBe(true);
      expect(journal.committing).toBe(false); // durable when moveFiles returns
      for (const p of paths) expect(mergeExtents((await f.fileMap(await f.resolve(p))).extents), p).toEqual(stages.get(p)!.at(-1));
    } finally {
      await f.close();
    }
    expect(commits).toBe(2);
    // (the test means something only if the second transaction ran under the first one's flushes)
    expect(sawInFlight).toBeGreaterThan(0);
    expect(othersSaw.length).toBeGreaterThan(0);
    expect(othersSaw.every((c) => !c), 'another caller ran while a commit was in flight').toBe(true);
    // a_k's second copy went out under the first commit's flushes, b_k's only after them: a flush
    // (the first commit's last) between the first of each
    const firstWrite = (pos: number) => rec.log.findIndex((r) => r.kind === 'write' && r.position === pos);
    const e = firstWrite(earlyAt), l = firstWrite(lateAt);
    expect(e >= 0 && l > e).toBe(true);
    expect(rec.log.slice(e, l).some((r) => r.kind === 'flush'), 'the early copy was not written under the commit in flight').toBe(true);

    const points = crashPoints(rec.log, { random: new Prng(17), subsetsPerEpoch: 2 });
    expect(points.length).toBeGreaterThan(10);
    const fsckEvery = Math.max(1, Math.floor(points.length / 4));
    const states = new Set<string>();
    const bad: string[] = [];
    for (const [i, cp] of points.entries()) {
      const where = `crash after ${cp.writes} writes, lost [${[...(cp.lose ?? [])].join(',')}]`;
      const crashed = materialise(base, rec.log, cp);
      const theirs = i % fsckEvery === 0 ? crashed.slice() : null;
      const mem = new MemoryDevice(crashed);
      await (await Filesystem.open(mem, { write: true })).close(); // ext4kit's replay
      const g = await Filesystem.open(mem);
      try {
        const stageOf = new Map<string, number>();
        for (const p of paths) {
          const ino = await g.resolve(p);
          if (!sameBytes(await g.read(ino, 0, ino.size), src[p.slice(1)]!)) bad.push(`${where}: ${p} does not read its bytes`);
          const now = mergeExtents((await g.fileMap(ino)).extents);
          const stage = stages.get(p)!.findIndex((m) => sameMap(m, now));
          if (stage < 0) bad.push(`${where}: ${p} is mapped as none of its stages`);
          stageOf.set(p, stage);
        }
        for (let k = 0; k < N; k++) if (stageOf.get(`/b${k}`) === 1 && stageOf.get(`/a${k}`) === 0) bad.push(`${where}: /b${k} moved onto a block /a${k} still maps`);
        states.add(paths.map((p) => stageOf.get(p)).join(''));
      } finally {
        await g.close();
      }
      if (theirs) bad.push(...checkReplays(where, mem.data, theirs, paths, (p, dump) => (sameBytes(dump, src[p.slice(1)]!) ? null : 'other bytes')));
      expect(bad).toEqual([]);
    }
    // before, between and after the two transactions
    const a0 = '0'.repeat(2 * N);
    expect([...states].sort()).toEqual([a0, '10'.repeat(N), '21'.repeat(N)]);
  }, 240_000);
});
