/**
 * Crash points of the lifecycle calls on block-mapped files (ext3, with a
 * journal): truncate down across indirect blocks, truncate up,
 * pwrite into a hole and past EOF (new indirect blocks), punching whole
 * blocks. Each call is recorded alone (open, call, close), multi-block writes
 * torn at block boundaries; at every crash point (each write prefix plus
 * seeded sets of lost unflushed writes) ext4kit's next write open must read
 * exactly the old bytes or exactly the new ones. A sample of the journaled
 * points is also replayed by `e2fsck -E journal_only`, and both replays must
 * be e2fsck -fn clean. (Without a journal a map change spanning several
 * blocks — the inode and indirect blocks — is not atomic: commit.ts promises
 * only that a crash needs e2fsck there, so ext2 is not held to old-or-new.)
 */
import { describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { Filesystem, memoryDeviceFromFile } from '../../lib/node.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { RecordingDevice, crashPoints, materialise } from '../../lib/io/recording-device.js';
import { Prng } from '../../lib/io/prng.js';
import { openFile } from '../../lib/ops/file.js';
import { e2fsckJournalOnly, expectE2fsckClean, mkfs, type FsKind } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import { HAVE_E2FSPROGS, pattern, sameBytes, scratchPath } from '../ops/helpers.js';

const K = 1024;

interface Case {
  name: string;
  path: string;
  old: Uint8Array;
  next: Uint8Array;
  call(f: Filesystem): Promise<unknown>;
}

function resized(old: Uint8Array, size: number, data?: Uint8Array, at = 0): Uint8Array {
  const out = new Uint8Array(size);
  out.set(old.subarray(0, Math.min(size, old.length)));
  if (data) out.set(data, at);
  return out;
}

const FILES: [string, Uint8Array][] = [
  ['down', pattern(300 * K + 700, 1)], // 1 KiB blocks: direct, single and double indirect
  ['up', pattern(5 * K + 300, 2)],
  ['hole', pattern(40 * K, 3)],
  ['append', pattern(20 * K + 5, 4)],
  ['punch', pattern(280 * K, 5)],
];

function cases(): Case[] {
  const f = new Map(FILES.map(([p, d]) => [`/${p}`, d]));
  const g = (p: string) => f.get(p)!;
  const w = pattern(3 * K + 17, 21), x = pattern(2 * K, 22);
  const holed = resized(g('/hole'), 40 * K);
  holed.fill(0, 8 * K, 30 * K);
  const punched = g('/punch').slice();
  punched.fill(0, 10 * K, 270 * K);
  return [
    { name: 'truncate down across indirect blocks', path: '/down', old: g('/down'), next: g('/down').slice(0, 11 * K + 123), call: async (fs) => (await openFile(fs, '/down')).truncate(11 * K + 123) },
    { name: 'truncate up', path: '/up', old: g('/up'), next: resized(g('/up'), 400 * K + 1), call: async (fs) => (await openFile(fs, '/up')).truncate(400 * K + 1) },
    { name: 'pwrite into a hole', path: '/hole', old: holed, next: resized(holed, 40 * K, w, 9 * K + 5), call: async (fs) => (await openFile(fs, '/hole')).pwrite(w, 9 * K + 5) },
    { name: 'pwrite past EOF (new indirect blocks)', path: '/append', old: g('/append'), next: resized(g('/append'), 290 * K + 3 + x.length, x, 290 * K + 3), call: async (fs) => (await openFile(fs, '/append')).pwrite(x, 290 * K + 3) },
    { name: 'punch whole blocks', path: '/punch', old: g('/punch'), next: punched, call: async (fs) => (await openFile(fs, '/punch')).punchHole(10 * K, 260 * K) },
  ];
}

async function buildBase(kind: FsKind): Promise<Uint8Array> {
  const src = tmpDir(`lifecycle-crash-${kind}`);
  for (const [p, d] of FILES) nodefs.writeFileSync(path.join(src, p), d);
  const img = scratchPath(`lifecycle-crash-${kind}.img`);
  mkfs(kind, img, 8 * 1024 * 1024, ['-b', String(K)], src);
  nodefs.rmSync(src, { recursive: true, force: true });
  const mem = await memoryDeviceFromFile(img);
  nodefs.rmSync(img, { force: true });
  // The hole of /hole: punched before recording (mkfs -d writes the file dense).
  const f = await Filesystem.open(mem, { write: true });
  try {
    await (await openFile(f, '/hole')).punchHole(8 * K, 22 * K);
  } finally {
    await f.close();
  }
  return mem.data.slice();
}

async function readPath(mem: MemoryDevice, p: string): Promise<Uint8Array> {
  const f = await Filesystem.open(mem);
  try {
    const ino = await f.resolve(p);
    return await f.read(ino, 0, ino.size);
  } finally {
    await f.close();
  }
}

async function runCase(base: Uint8Array, c: Case, seed: number, e2fsckSample: number): Promise<{ bad: string[]; states: Record<string, number> }> {
  const bad: string[] = [];
  const rec = new RecordingDevice(new MemoryDevice(base.slice()), { granularity: K });
  const f = await Filesystem.open(rec, { write: true });
  try {
    await c.call(f);
  } finally {
    await f.close();
  }
  const points = crashPoints(rec.log, { random: new Prng(seed), subsetsPerEpoch: 2 });
  const every = e2fsckSample ? Math.max(1, Math.floor(points.length / e2fsckSample)) : 0;
  const states: Record<string, number> = { old: 0, new: 0, neither: 0 };
  for (const [i, cp] of points.entries()) {
    const where = `${c.name}: crash after ${cp.writes} writes, lost [${[...(cp.lose ?? [])].join(',')}]`;
    const img = materialise(base, rec.log, cp);
    const copy = every && i % every === 0 ? img.slice() : null;
    const mem = new MemoryDevice(img);
    let got: Uint8Array;
    try {
      await (await Filesystem.open(mem, { write: true })).close();
      got = await readPath(mem, c.path);
    } catch (e) {
      bad.push(`${where}: ${String(e)}`);
      continue;
    }
    const v = sameBytes(got, c.old) ? 'old' : sameBytes(got, c.next) ? 'new' : 'neither';
    states[v]!++;
    if (v === 'neither') bad.push(`${where}: size ${got.length} (old ${c.old.length}, new ${c.next.length})`);
    if (copy) {
      const mine = scratchPath('lc-ext4kit.img'), theirs = scratchPath('lc-e2fsck.img');
      nodefs.writeFileSync(mine, mem.data);
      nodefs.writeFileSync(theirs, copy);
      const j = e2fsckJournalOnly(theirs);
      expect(j.exitCode, `${where}: e2fsck -E journal_only: ${j.output}`).toBeLessThan(4);
      expectE2fsckClean(mine, `${where} (ext4kit replay)`);
      expectE2fsckClean(theirs, `${where} (e2fsck replay)`);
      nodefs.rmSync(mine, { force: true });
      nodefs.rmSync(theirs, { force: true });
    }
  }
  if (!states.old) bad.push(`${c.name}: no crash point keeps the old state`);
  if (!states.new) bad.push(`${c.name}: no crash point has the new state`);
  return { bad, states };
}

describe.skipIf(!HAVE_E2FSPROGS)('crash points of truncate, pwrite and punch on block-mapped files', () => {
  for (const [kind, seed, sample] of [['ext3', 51, 1]] as const) {
    it(`${kind}: the old bytes or the new at every crash point`, async () => {
      const base = await buildBase(kind);
      const bad: string[] = [];
      for (const [k, c] of cases().entries()) bad.push(...(await runCase(base, c, seed + k, sample)).bad);
      expect(bad, `crash points that are neither state:\n${bad.slice(0, 12).join('\n')}`).toEqual([]);
    }, 300_000);
  }
});
