/**
 * Crash points of size changes (issue 8 item 11): truncate down to an
 * unaligned size, truncate up, pwrite past EOF (in a later block, and inside
 * the old EOF block). Each call is recorded alone (open, the call, close)
 * with multi-block writes torn at block boundaries; at every crash point (every write
 * prefix plus seeded sets of lost unflushed writes) the image is replayed by
 * ext4kit (open for writing + close) and the file must read exactly its old
 * size and bytes, or exactly its new size and bytes:
 *  - truncate down must not zero live bytes before the new size commits
 *    (the old size with zeroed bytes is neither state);
 *  - growing a file must zero the stale bytes past the old EOF in its last
 *    block (planted here: a crash, another tool or an mmap write can leave
 *    them) in the same transaction, so nothing old reappears.
 * A deterministic sample is also replayed by `e2fsck -E journal_only`; both
 * replays must be e2fsck -fn clean and debugfs must read old or new.
 * The same calls without a journal: the content rule at every crash point.
 */
import { describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { memoryDeviceFromFile } from '../../lib/io/file-device.js';
import { RecordingDevice, crashPoints, materialise } from '../../lib/io/recording-device.js';
import { Prng } from '../../lib/io/prng.js';
import { openFile } from '../../lib/ops/file.js';
import { e2fsckJournalOnly } from '../helpers/tools.js';
import { debugfsFiles, expectClean, HAVE_E2FSPROGS, makeImage, pattern, sameBytes, scratchPath } from '../ops/helpers.js';

const K = 1024;

/** Bytes planted past EOF in a file's last block (stale data that must never become visible). */
const STALE = 0xa5;

interface Case {
  name: string;
  path: string;
  old: Uint8Array;
  /** The file after the call. */
  next: Uint8Array;
  call(f: Filesystem): Promise<unknown>;
}

function grown(old: Uint8Array, size: number, data?: Uint8Array, at = 0): Uint8Array {
  const out = new Uint8Array(size);
  out.set(old);
  if (data) out.set(data, at);
  return out;
}

function cases(files: Map<string, Uint8Array>): Case[] {
  const f = (p: string) => files.get(p)!;
  const w1 = pattern(3000, 21), w2 = pattern(200, 22);
  return [
    { name: 'truncate down to an unaligned size', path: '/down', old: f('/down'), next: f('/down').slice(0, 7 * K + 123), call: async (fs) => (await openFile(fs, '/down')).truncate(7 * K + 123) },
    { name: 'truncate down inside the last block', path: '/down2', old: f('/down2'), next: f('/down2').slice(0, 12 * K + 10), call: async (fs) => (await openFile(fs, '/down2')).truncate(12 * K + 10) },
    { name: 'truncate up', path: '/up', old: f('/up'), next: grown(f('/up'), 9 * K + 10), call: async (fs) => (await openFile(fs, '/up')).truncate(9 * K + 10) },
    { name: 'pwrite past EOF into a later block', path: '/append', old: f('/append'), next: grown(f('/append'), 8 * K + 50 + w1.length, w1, 8 * K + 50), call: async (fs) => (await openFile(fs, '/append')).pwrite(w1, 8 * K + 50) },
    { name: 'pwrite past EOF inside the old EOF block', path: '/within', old: f('/within'), next: grown(f('/within'), 5 * K + 600 + w2.length, w2, 5 * K + 600), call: async (fs) => (await openFile(fs, '/within')).pwrite(w2, 5 * K + 600) },
  ];
}

/** mkfs -d image with the files, then stale bytes planted past EOF in the last block of each. */
async function buildBase(journal: boolean): Promise<{ base: Uint8Array; files: Map<string, Uint8Array> }> {
  const files = new Map<string, Uint8Array>([
    ['/down', pattern(20 * K + 700, 1)],
    ['/down2', pattern(12 * K + 900, 2)],
    ['/up', pattern(5 * K + 300, 3)],
    ['/append', pattern(5 * K + 300, 4)],
    ['/within', pattern(5 * K + 300, 5)],
  ]);
  const img = makeImage(`trunc-${journal ? 'j' : 'nj'}`, Object.fromEntries([...files].map(([p, d]) => [p.slice(1), d])), { blockSize: K, sizeMiB: 8, mkfsOpts: journal ? [] : ['-O', '^has_journal'] });
  const mem = await memoryDeviceFromFile(img);
  nodefs.rmSync(img, { force: true });
  const f = await Filesystem.open(mem);
  const plants: { pos: number; bytes: Uint8Array }[] = [];
  try {
    for (const [p, d] of files) {
      if (p.startsWith('/down')) continue; // truncate down: the bytes past the new size are live ones
      const map = (await f.fileMap(await f.resolve(p))).extents;
      const lb = Math.floor(d.length / K);
      const e = map.find((x) => x.logical <= lb && lb < x.logical + x.length)!;
      const off = d.length % K;
      plants.push({ pos: (e.physical + lb - e.logical) * K + off, bytes: new Uint8Array(K - off).fill(STALE) });
    }
  } finally {
    await f.close();
  }
  for (const p of plants) mem.data.set(p.bytes, p.pos);
  return { base: mem.data.slice(), files };
}

async function recordCall(base: Uint8Array, c: Case, bad: string[]): Promise<RecordingDevice['log']> {
  const mem = new MemoryDevice(base.slice());
  const rec = new RecordingDevice(mem, { granularity: K });
  const f = await Filesystem.open(rec, { write: true });
  try {
    await c.call(f);
    const got = await f.read(await f.resolve(c.path), 0, c.next.length + K);
    if (!sameBytes(got, c.next)) bad.push(`${c.name}: the live filesystem after the call: ${describeBad(got, c)}`);
  } finally {
    await f.close();
  }
  // After the call the bytes past EOF in the last block are zero on disk (what the kernel expects
  // when it grows the file: it does not zero them itself).
  const g = await Filesystem.open(new MemoryDevice(mem.data, { readOnly: true }));
  try {
    const map = (await g.fileMap(await g.resolve(c.path))).extents;
    const lb = Math.floor(c.next.length / K);
    const e = map.find((x) => x.logical <= lb && lb < x.logical + x.length);
    if (c.next.length % K && e) {
      const raw = await g.readDataBlocks(e.physical + lb - e.logical, 1);
      if (!raw.subarray(c.next.length % K).every((x) => x === 0)) bad.push(`${c.name}: bytes past the new EOF are not zero on disk after the call`);
    }
  } finally {
    await g.close();
  }
  return rec.log;
}

function verdict(got: Uint8Array, c: Case): 'old' | 'new' | 'neither' {
  return sameBytes(got, c.old) ? 'old' : sameBytes(got, c.next) ? 'new' : 'neither';
}

function describeBad(got: Uint8Array, c: Case): string {
  const ref = got.length === c.old.length ? c.old : got.length === c.next.length ? c.next : null;
  if (!ref) return `size ${got.length} (old ${c.old.length}, new ${c.next.length})`;
  let i = 0;
  while (i < got.length && got[i] === ref[i]) i++;
  return `size ${got.length} = ${ref === c.old ? 'old' : 'new'} size, but byte ${i} is ${got[i]} instead of ${ref[i]}`;
}

async function runCase(base: Uint8Array, c: Case, opts: { seed: number; e2fsckSample: number }): Promise<{ points: number; bad: string[]; states: Record<string, number>; fscked: number }> {
  const bad: string[] = [];
  const log = await recordCall(base, c, bad);
  const points = crashPoints(log, { random: new Prng(opts.seed), subsetsPerEpoch: 3 });
  const sampleEvery = opts.e2fsckSample ? Math.max(1, Math.floor(points.length / opts.e2fsckSample)) : 0;
  const states: Record<string, number> = { old: 0, new: 0, neither: 0 };
  let fscked = 0;
  for (const [i, cp] of points.entries()) {
    const where = `${c.name}: crash after ${cp.writes} writes, lost [${[...(cp.lose ?? [])].join(',')}]`;
    const img = materialise(base, log, cp);
    const copy = sampleEvery && i % sampleEvery === 0 ? img.slice() : null;
    const mem = new MemoryDevice(img);
    await (await Filesystem.open(mem, { write: true })).close();
    const f = await Filesystem.open(mem);
    let got: Uint8Array;
    try {
      const ino = await f.resolve(c.path);
      got = await f.read(ino, 0, ino.size);
    } finally {
      await f.close();
    }
    const v = verdict(got, c);
    states[v]!++;
    if (v === 'neither') bad.push(`${where}: ${describeBad(got, c)}`);
    if (copy) {
      fscked++;
      const mine = scratchPath('trunc-ext4kit.img'), theirs = scratchPath('trunc-e2fsck.img');
      nodefs.writeFileSync(mine, mem.data);
      nodefs.writeFileSync(theirs, copy);
      const j = e2fsckJournalOnly(theirs);
      expect(j.exitCode, `${where}: e2fsck -E journal_only: ${j.output}`).toBeLessThan(4);
      expectClean(mine, `${where} (ext4kit replay)`);
      expectClean(theirs, `${where} (e2fsck replay)`);
      const o = debugfsFiles(theirs, [c.path]).get(c.path)!;
      const dv = verdict(new Uint8Array(o.dump), c);
      if (dv === 'neither') bad.push(`${where} (e2fsck replay, debugfs): ${describeBad(new Uint8Array(o.dump), c)}`);
      nodefs.rmSync(mine, { force: true });
      nodefs.rmSync(theirs, { force: true });
    }
  }
  return { points: points.length, bad, states, fscked };
}

describe.skipIf(!HAVE_E2FSPROGS)('crash points of size changes: the old size and bytes, or the new', () => {
  it('journaled (metadata_csum): every crash point, a sample also replayed by e2fsck', async () => {
    const { base, files } = await buildBase(true);
    const report: string[] = [];
    const allBad: string[] = [];
    for (const [k, c] of cases(files).entries()) {
      const r = await runCase(base, c, { seed: 11 + k, e2fsckSample: 3 });
      report.push(`${c.name}: ${r.points} points (old ${r.states.old}, new ${r.states.new}, neither ${r.states.neither}), ${r.fscked} also by e2fsck`);
      allBad.push(...r.bad);
      if (!r.states.old) allBad.push(`${c.name}: no crash point keeps the old state`);
      if (!r.states.new) allBad.push(`${c.name}: no crash point has the new state`);
    }
    expect(allBad, `crash points that are neither state:\n${allBad.slice(0, 12).join('\n')}`).toEqual([]);
  }, 300_000);

  it('no journal: every crash point reads the old or the new state', async () => {
    const { base, files } = await buildBase(false);
    const report: string[] = [];
    const allBad: string[] = [];
    for (const [k, c] of cases(files).entries()) {
      const r = await runCase(base, c, { seed: 31 + k, e2fsckSample: 0 });
      report.push(`${c.name}: ${r.points} points (old ${r.states.old}, new ${r.states.new}, neither ${r.states.neither})`);
      allBad.push(...r.bad);
    }
    expect(allBad, `crash points that are neither state:\n${allBad.slice(0, 12).join('\n')}`).toEqual([]);
  }, 300_000);
});
