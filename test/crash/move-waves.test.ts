/**
 * Crash points of moveFiles running a plan that is a chain in list order
 * (a0, b0, a1, b1, …: a_k leaves for a free run, b_k takes a_k's old block),
 * which it runs as two waves — all a_k, then all b_k — in a few
 * transactions. At every crash point (every prefix of the recorded writes,
 * plus seeded sets of lost un-flushed writes), after ext4kit's replay: every
 * file reads exactly its bytes and is mapped old or new; b_k is never on its
 * new block unless a_k left it (its data would sit where a_k still reads);
 * e2fsck -fn clean (a sample also replayed by e2fsck); running the same
 * moves again finishes the plan.
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
const N = 8;

function sameMap(a: readonly Extent[], b: readonly Extent[]): boolean {
  return a.length === b.length && a.every((e, i) => e.logical === b[i]!.logical && e.physical === b[i]!.physical && e.length === b[i]!.length && !!e.unwritten === !!b[i]!.unwritten);
}

async function maps(f: Filesystem, paths: readonly string[]): Promise<Extent[][]> {
  const out: Extent[][] = [];
  for (const p of paths) out.push(mergeExtents((await f.fileMap(await f.resolve(p))).extents));
  return out;
}

describe.skipIf(!HAVE_E2FSPROGS)('crash points of moveFiles running a chained plan by waves', () => {
  it('each file reads its bytes, old or new; b_k never lands before a_k left; e2fsck clean; a rerun finishes', async () => {
    const src: Record<string, Uint8Array> = {};
    for (let k = 0; k < N; k++) (src[`a${k}`] = pattern(K - 3 * k, 500 + k), (src[`b${k}`] = pattern(K - 5 * k, 600 + k)));
    const img = makeImage('crash-waves', src, { blockSize: K, sizeMiB: 8 });
    const base = new Uint8Array(nodefs.readFileSync(img));
    nodefs.rmSync(img, { force: true });
    const paths = Object.keys(src).map((p) => `/${p}`);
    const planFs = await Filesystem.open(new MemoryDevice(base, { readOnly: true }));
    const moves: FileMove[] = [];
    const oldMaps = new Map<string, Extent[]>(), newMaps = new Map<string, Extent[]>();
    try {
      const runs = await getFreeBlocks(planFs);
      const big = runs.reduce((a, r) => (r.len > a.len ? r : a));
      const far = big.start / K + Math.floor(big.len / K / 2);
      base.fill(0x5a, far * K, (far + N) * K); // free blocks may hold anything
      for (let k = 0; k < N; k++) {
        const a = mergeExtents((await planFs.fileMap(await planFs.resolve(`/a${k}`))).extents);
        const b = mergeExtents((await planFs.fileMap(await planFs.resolve(`/b${k}`))).extents);
        expect(a.length === 1 && a[0]!.length === 1 && b.length === 1 && b[0]!.length === 1).toBe(true);
        oldMaps.set(`/a${k}`, a).set(`/b${k}`, b);
        newMaps.set(`/a${k}`, [{ logical: 0, physical: far + k, length: 1, unwritten: false }]);
        newMaps.set(`/b${k}`, [{ logical: 0, physical: a[0]!.physical, length: 1, unwritten: false }]);
        moves.push({ ino: (await planFs.resolve(`/a${k}`)).ino, target: [{ startBlock: far + k, lengthBlocks: 1 }], expect: a });
        moves.push({ ino: (await planFs.resolve(`/b${k}`)).ino, target: [{ startBlock: a[0]!.physical, lengthBlocks: 1 }], expect: b });
      }
    } finally {
      await planFs.close();
    }

    const rec = new RecordingDevice(new MemoryDevice(base.slice()), { granularity: K });
    const f = await Filesystem.open(rec, { write: true });
    let commits = 0;
    try {
      internals(f).commitHooks = { onStep: (s) => void (s === 'commit' && commits++) };
      const results = await moveFiles(f, moves);
      expect(results.every((r) => r.moved)).toBe(true);
      expect(await maps(f, paths)).toEqual(paths.map((p) => newMaps.get(p)));
    } finally {
      await f.close();
    }
    expect(commits).toBe(2); // in list order: N + 1

    const points = crashPoints(rec.log, { random: new Prng(91), subsetsPerEpoch: 2 });
    expect(points.length).toBeGreaterThan(10);
    const fsckEvery = Math.max(1, Math.floor(points.length / 5));
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
        const now = await maps(g, paths);
        let movedA = 0, movedB = 0;
        for (const [j, p] of paths.entries()) {
          const ino = await g.resolve(p);
          if (!sameBytes(await g.read(ino, 0, ino.size), src[p.slice(1)]!)) bad.push(`${where}: ${p} does not read its bytes`);
          const isNew = sameMap(now[j]!, newMaps.get(p)!);
          if (!isNew && !sameMap(now[j]!, oldMaps.get(p)!)) bad.push(`${where}: ${p} is mapped neither old nor new`);
          if (isNew && p.startsWith('/a')) movedA++;
          if (isNew && p.startsWith('/b')) {
            movedB++;
            if (!sameMap(now[paths.indexOf(`/a${p.slice(2)}`)]!, newMaps.get(`/a${p.slice(2)}`)!)) bad.push(`${where}: ${p} moved onto a block its a-file still maps`);
          }
        }
        states.add(`${movedA}/${movedB}`);
      } finally {
        await g.close();
      }
      expect(bad).toEqual([]);
      if (theirs) {
        bad.push(...checkReplays(where, mem.data, theirs, paths, (p, dump) => (sameBytes(dump, src[p.slice(1)]!) ? null : 'other bytes')));
        // running again continues: what is left moves (the done ones are refused as stale)
        const rerun = new MemoryDevice(mem.data.slice());
        const again = await Filesystem.open(rerun, { write: true });
        try {
          await moveFiles(again, moves);
          expect(await maps(again, paths), `${where}: rerun`).toEqual(paths.map((p) => newMaps.get(p)));
        } finally {
          await again.close();
        }
        const mine = scratchPath('waves-rerun.img');
        nodefs.writeFileSync(mine, rerun.data);
        expectClean(mine, `${where} (after the rerun)`);
        nodefs.rmSync(mine, { force: true });
      }
    }
    expect(bad).toEqual([]);
    // before, between and after the two transactions
    expect([...states].sort()).toEqual(['0/0', `${N}/0`, `${N}/${N}`]);
  }, 240_000);
});
