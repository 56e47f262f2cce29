/**
 * Crash points of moveFiles (lib/ops/move-batch.ts) moving a batch of 24
 * small files (several per transaction): at every crash point (every prefix
 * of the recorded writes, plus seeded sets of lost un-flushed writes), after
 * ext4kit's replay each file reads exactly its bytes and is mapped either
 * where it was or where it was sent (never a mix: one transaction moves it
 * whole), and the moves that survived are a prefix of the batch. The target
 * blocks hold garbage beforehand, so a map committed before its copy was
 * durable would show. A sample is also replayed by e2fsck, and both replays
 * are e2fsck -fn clean; running moveFiles again on a crash image finishes
 * the batch.
 */
import { describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { RecordingDevice, crashPoints, materialise } from '../../lib/io/recording-device.js';
import { Prng } from '../../lib/io/prng.js';
import { getFreeBlocks } from '../../lib/ops/free.js';
import { moveFiles, type FileMove } from '../../lib/ops/move-batch.js';
import type { Extent } from '../../lib/ext4/extents.js';
import { internals } from '../../lib/ext4/internals.js';
import { expectClean, HAVE_E2FSPROGS, makeImage, mergeExtents, pattern, sameBytes, scratchPath } from '../ops/helpers.js';
import { checkReplays } from './file-call-case.js';

const K = 1024;
const N = 24;

type Files = Map<string, Uint8Array>;

async function readFiles(f: Filesystem, paths: readonly string[]): Promise<Files> {
  const out: Files = new Map();
  for (const p of paths) {
    const ino = await f.resolve(p);
    out.set(p, await f.read(ino, 0, ino.size));
  }
  return out;
}

async function maps(f: Filesystem, paths: readonly string[]): Promise<Extent[][]> {
  const out: Extent[][] = [];
  for (const p of paths) out.push(mergeExtents((await f.fileMap(await f.resolve(p))).extents));
  return out;
}

function sameMap(a: readonly Extent[], b: readonly Extent[]): boolean {
  return a.length === b.length && a.every((e, i) => e.logical === b[i]!.logical && e.physical === b[i]!.physical && e.length === b[i]!.length && !!e.unwritten === !!b[i]!.unwritten);
}

describe.skipIf(!HAVE_E2FSPROGS)('crash points of moveFiles (a batch of small files)', () => {
  it('each file reads its bytes, mapped old or new; surviving moves are a prefix; e2fsck clean; a rerun finishes', async () => {
    const src: Record<string, Uint8Array> = {};
    for (let i = 0; i < N; i++) src[`f${i}`] = pattern((1 + (i % 2)) * K - 37 * (i % 4), 200 + i);
    const img = makeImage('crash-mb', src, { blockSize: K, sizeMiB: 8 });
    const base = new Uint8Array(nodefs.readFileSync(img));
    nodefs.rmSync(img, { force: true });
    const paths = Object.keys(src).map((p) => `/${p}`);

    // The plan: every file, in order, packed into the upper half of the largest free run, whose
    // blocks get garbage first (free blocks may hold anything).
    const planFs = await Filesystem.open(new MemoryDevice(base, { readOnly: true }));
    const moves: FileMove[] = [];
    let oldMaps: Extent[][];
    try {
      oldMaps = await maps(planFs, paths);
      const runs = await getFreeBlocks(planFs);
      const big = runs.reduce((a, r) => (r.len > a.len ? r : a));
      let p = big.start / K + Math.floor(big.len / K / 2);
      base.fill(0x5a, p * K, (p + 3 * N) * K);
      for (const [i, path] of paths.entries()) {
        const n = oldMaps[i]!.reduce((a, e) => a + e.length, 0);
        moves.push({ ino: (await planFs.resolve(path)).ino, target: [{ startBlock: p, lengthBlocks: n }], expect: oldMaps[i]! });
        p += n;
      }
    } finally {
      await planFs.close();
    }
    const newMaps = moves.map((m) => [{ logical: 0, physical: m.target[0]!.startBlock, length: m.target[0]!.lengthBlocks, unwritten: false }] as Extent[]);

    // Record the batch: 10 files per transaction (3 transactions), then close (checkpoint).
    const rec = new RecordingDevice(new MemoryDevice(base.slice()), { granularity: K });
    const f = await Filesystem.open(rec, { write: true });
    let commits = 0;
    try {
      internals(f).commitHooks = { onStep: (s) => void (s === 'commit' && commits++) };
      const results = await moveFiles(f, moves, { maxFiles: 10 });
      expect(results.every((r) => r.moved)).toBe(true);
      expect(await maps(f, paths)).toEqual(newMaps);
    } finally {
      await f.close();
    }
    expect(commits).toBe(3);

    const points = crashPoints(rec.log, { random: new Prng(77), subsetsPerEpoch: 3 });
    expect(points.length).toBeGreaterThan(20);
    const fsckEvery = Math.max(1, Math.floor(points.length / 6));
    const survivors = new Set<number>();
    const bad: string[] = [];
    for (const [k, cp] of points.entries()) {
      const where = `crash after ${cp.writes} writes, lost [${[...(cp.lose ?? [])].join(',')}]`;
      const crashed = materialise(base, rec.log, cp);
      const theirs = k % fsckEvery === 0 ? crashed.slice() : null;
      const mem = new MemoryDevice(crashed);
      await (await Filesystem.open(mem, { write: true })).close(); // ext4kit's replay
      const g = await Filesystem.open(mem);
      let moved = 0;
      try {
        const got = await readFiles(g, paths);
        const now = await maps(g, paths);
        let prefix = true;
        for (const [i, p] of paths.entries()) {
          if (!sameBytes(got.get(p)!, src[p.slice(1)]!)) bad.push(`${where}: ${p} does not read its bytes`);
          const isOld = sameMap(now[i]!, oldMaps[i]!), isNew = sameMap(now[i]!, newMaps[i]!);
          if (!isOld && !isNew) bad.push(`${where}: ${p} is mapped neither old nor new: ${JSON.stringify(now[i])}`);
          if (isNew) {
            if (!prefix) bad.push(`${where}: ${p} moved after an unmoved file`);
            moved++;
          } else prefix = false;
        }
      } finally {
        await g.close();
      }
      survivors.add(moved);
      expect(bad).toEqual([]);
      if (theirs) {
        bad.push(...checkReplays(where, mem.data, theirs, paths, (p, dump) => (sameBytes(dump, src[p.slice(1)]!) ? null : 'other bytes')));
        // Running again continues: the rest of the batch moves (the done ones are refused as stale).
        const rerun = new MemoryDevice(mem.data.slice());
        const again = await Filesystem.open(rerun, { write: true });
        try {
          const r = await moveFiles(again, moves);
          expect(r.filter((x) => x.moved).length + moved, `${where}: rerun (${moved} survived; ${JSON.stringify(r.filter((x) => !x.moved).map((x) => x.error?.message))})`).toBe(N);
          expect(await maps(again, paths)).toEqual(newMaps);
        } finally {
          await again.close();
        }
        const mine = scratchPath('mb-rerun.img');
        nodefs.writeFileSync(mine, rerun.data);
        expectClean(mine, `${where} (after the rerun)`);
        nodefs.rmSync(mine, { force: true });
      }
    }
    expect(bad).toEqual([]);
    // the crash points cover before, between and after the transactions
    expect([...survivors].sort((a, b) => a - b)).toEqual([0, 10, 20, 24]);
  }, 240_000);
});
