/**
 * One file call under crash: record it alone (open, the call, close) on a copy of a base image,
 * enumerate the crash points (every write prefix plus seeded sets of lost unflushed writes),
 * replay each with ext4kit (open for writing + close) and read the file: it must be exactly its
 * old bytes or exactly its new ones. A deterministic sample is also replayed by
 * `e2fsck -E journal_only`; both replays must be e2fsck -fn clean and debugfs must read old or new
 * from e2fsck's replay. Shared by the truncate, pwrite and punch crash tests.
 */
import { expect } from 'vitest';
import * as nodefs from 'node:fs';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { RecordingDevice, crashPoints, materialise, type LogRecord } from '../../lib/io/recording-device.js';
import { Prng } from '../../lib/io/prng.js';
import { e2fsckJournalOnly, expectE2fsckClean } from '../helpers/tools.js';
import { debugfsFiles, sameBytes, scratchPath } from '../ops/helpers.js';

export interface FileCallCase {
  name: string;
  path: string;
  old: Uint8Array;
  /** The file after the call. */
  next: Uint8Array;
  call(f: Filesystem): Promise<unknown>;
}

export interface FileCallCaseOptions {
  /** Write granularity of the recording (multi-block writes torn at these boundaries). */
  granularity: number;
  seed: number;
  subsetsPerEpoch: number;
  /** How many crash points are also replayed by e2fsck (0: none). */
  e2fsckSample: number;
  /** Extra checks on the image after the call (problems returned as strings). */
  afterCall?(image: MemoryDevice, c: FileCallCase): Promise<string[]>;
}

export interface FileCallCaseResult {
  points: number;
  bad: string[];
  states: Record<'old' | 'new' | 'neither', number>;
  fscked: number;
}

/** `old` resized to `size` (zero-filled past its end), with `data` written at `at`. */
export function resizedBytes(old: Uint8Array, size: number, data?: Uint8Array, at = 0): Uint8Array {
  const out = new Uint8Array(size);
  out.set(old.subarray(0, Math.min(size, old.length)));
  if (data) out.set(data, at);
  return out;
}

function verdict(got: Uint8Array, c: FileCallCase): 'old' | 'new' | 'neither' {
  return sameBytes(got, c.old) ? 'old' : sameBytes(got, c.next) ? 'new' : 'neither';
}

/** Why `got` is neither state: its size, or the first byte that differs from the state of its size. */
function describeBad(got: Uint8Array, c: FileCallCase): string {
  const ref = got.length === c.old.length ? c.old : got.length === c.next.length ? c.next : null;
  if (!ref) return `size ${got.length} (old ${c.old.length}, new ${c.next.length})`;
  let i = 0;
  while (i < got.length && got[i] === ref[i]) i++;
  return `size ${got.length} = ${ref === c.old ? 'old' : 'new'} size, but byte ${i} is ${got[i]} instead of ${ref[i]}`;
}

async function readPath(dev: MemoryDevice, p: string): Promise<Uint8Array> {
  const f = await Filesystem.open(dev);
  try {
    const ino = await f.resolve(p);
    return await f.read(ino, 0, ino.size);
  } finally {
    await f.close();
  }
}

async function recordCall(base: Uint8Array, c: FileCallCase, opts: FileCallCaseOptions, bad: string[]): Promise<LogRecord[]> {
  const mem = new MemoryDevice(base.slice());
  const rec = new RecordingDevice(mem, { granularity: opts.granularity });
  const f = await Filesystem.open(rec, { write: true });
  try {
    await c.call(f);
  } finally {
    await f.close();
  }
  const live = await readPath(mem, c.path);
  if (!sameBytes(live, c.next)) bad.push(`${c.name}: the filesystem after the call: ${describeBad(live, c)}`);
  if (opts.afterCall) bad.push(...(await opts.afterCall(mem, c)));
  return rec.log;
}

export async function runFileCallCase(base: Uint8Array, c: FileCallCase, opts: FileCallCaseOptions): Promise<FileCallCaseResult> {
  const bad: string[] = [];
  const log = await recordCall(base, c, opts, bad);
  const points = crashPoints(log, { random: new Prng(opts.seed), subsetsPerEpoch: opts.subsetsPerEpoch });
  const every = opts.e2fsckSample ? Math.max(1, Math.floor(points.length / opts.e2fsckSample)) : 0;
  const states = { old: 0, new: 0, neither: 0 };
  let fscked = 0;
  for (const [i, cp] of points.entries()) {
    const where = `${c.name}: crash after ${cp.writes} writes, lost [${[...(cp.lose ?? [])].join(',')}]`;
    const img = materialise(base, log, cp);
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
    const v = verdict(got, c);
    states[v]++;
    if (v === 'neither') bad.push(`${where}: ${describeBad(got, c)}`);
    if (copy) {
      fscked++;
      bad.push(...checkReplays(where, mem.data, copy, [c.path], (_, dump) => (verdict(dump, c) === 'neither' ? describeBad(dump, c) : null)));
    }
  }
  if (!states.old) bad.push(`${c.name}: no crash point keeps the old state`);
  if (!states.new) bad.push(`${c.name}: no crash point has the new state`);
  return { points: points.length, bad, states, fscked };
}

/**
 * A crash point replayed both ways: `crashImage` by `e2fsck -E journal_only`, next to
 * `ext4kitImage` (the same point after ext4kit's own replay). Both must be e2fsck -fn clean, and
 * debugfs must read each path from e2fsck's replay as `judge` accepts (null) — problems returned.
 */
export function checkReplays(where: string, ext4kitImage: Uint8Array, crashImage: Uint8Array, paths: string[], judge: (path: string, dump: Uint8Array) => string | null): string[] {
  const bad: string[] = [];
  const mine = scratchPath('replay-ext4kit.img'), theirs = scratchPath('replay-e2fsck.img');
  nodefs.writeFileSync(mine, ext4kitImage);
  nodefs.writeFileSync(theirs, crashImage);
  try {
    const j = e2fsckJournalOnly(theirs);
    expect(j.exitCode, `${where}: e2fsck -E journal_only: ${j.output}`).toBeLessThan(4);
    expectE2fsckClean(mine, `${where} (ext4kit replay)`);
    expectE2fsckClean(theirs, `${where} (e2fsck replay)`);
    const dumped = debugfsFiles(theirs, paths);
    for (const p of paths) {
      const why = judge(p, new Uint8Array(dumped.get(p)!.dump));
      if (why !== null) bad.push(`${where} (e2fsck replay, debugfs) ${p}: ${why}`);
    }
  } finally {
    nodefs.rmSync(mine, { force: true });
    nodefs.rmSync(theirs, { force: true });
  }
  return bad;
}
