/**
 * Namespace operations under crash (shared by test/crash/namespace-*.test.ts): record a few
 * operations on one open (RecordingDevice, writes torn at `granularity`), take the namespace a
 * user would see after each — directory listings (names and types) and the bytes of chosen
 * paths, or their absence — then enumerate the crash points (every write prefix plus seeded sets
 * of lost unflushed writes, evenly thinned to `maxPoints`) and check each:
 *  1. ext4kit's replay (write open + close) reads exactly the namespace after some whole number
 *     of operations (nothing half done, nothing lost);
 *  2. a deterministic sample (every state change plus evenly spread points) is replayed by
 *     `e2fsck -E journal_only`: both replays `e2fsck -fn` clean, and e2fsck's replay reads the
 *     same namespace as ext4kit's;
 *  3. a sample of state changes (the last point before and the first point after) is
 *     loop-mounted unreplayed: the kernel replays it, lists the same names and reads the same
 *     bytes; after the umount the kernel's image is e2fsck clean too.
 */
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import type { Timestamp } from '../../lib/ext4/inode.js';
import { internals } from '../../lib/ext4/internals.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { Prng } from '../../lib/io/prng.js';
import { RecordingDevice, crashPoints, materialise, type CrashPoint, type LogRecord } from '../../lib/io/recording-device.js';
import { e2fsckJournalOnly, e2fsckClean, oracleGate, withLoopMount } from '../helpers/tools.js';
import { CAN_MOUNT, LOOP_SKIP, scratchPath } from '../ops/helpers.js';
import { CrashPointImages, type OverlayDevice } from './harness.js';

/** What is compared: directories listed (names and types, not recursive) and paths whose bytes count. */
export interface NsView {
  dirs: string[];
  contents: string[];
}

export interface NsOp {
  name: string;
  run(f: Filesystem): Promise<unknown>;
}

export interface NsCrashCase {
  name: string;
  base: Uint8Array;
  ops: NsOp[];
  view: NsView;
  now?: Timestamp;
  /** Writes torn at this many bytes (the block size, or less). */
  granularity: number;
  seed: number;
  subsetsPerEpoch: number;
  /** At most this many crash points, evenly spread over all of them (the last always kept). */
  maxPoints: number;
  /** Only the crash points inside these operations (by index; their first write to one past their last), plus the first and the last point. */
  focusOps?: number[];
  /** Crash points also replayed by e2fsck (the state changes first, then evenly spread). */
  e2fsckSample: number;
  /** State changes whose two sides the kernel replays (loop mount). */
  linuxSample: number;
}

export interface NsCrashResult {
  /** Crash points enumerated and checked. */
  all: number;
  checked: number;
  /** Crash points per state reached (index: operations done). */
  perState: number[];
  fscked: number;
  linux: number;
  /** Transactions each operation committed. */
  commitsPerOp: number[];
  /** Wall time of the recording, the ext4kit pass over the points, and the e2fsck/Linux samples. */
  ms: { record: number; points: number; samples: number };
  bad: string[];
}

const TYPE_OF_DIRENT: [keyof nodefs.Dirent, string][] = [
  ['isFile', 'file'], ['isDirectory', 'dir'], ['isSymbolicLink', 'symlink'], ['isFIFO', 'fifo'],
  ['isCharacterDevice', 'chardev'], ['isBlockDevice', 'blockdev'], ['isSocket', 'socket'],
];

const TYPE_OF_STATS = TYPE_OF_DIRENT as unknown as [keyof nodefs.Stats, string][];

const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

/**
 * A namespace as text: per directory its sorted `name type` lines (null: absent or not a
 * directory), per content path its size and hash, or its type when not a regular file (null: absent).
 */
function render(dirs: Map<string, string[] | null>, contents: Map<string, Uint8Array | string | null>): { key: string; summary: string } {
  const parts: string[] = [], summary: string[] = [];
  for (const [d, names] of dirs) {
    parts.push(`${d}: ${names ? names.sort().join('\n') : 'absent'}`);
    summary.push(`${d}: ${names ? `${names.length} names` : 'absent'}`);
  }
  for (const [p, bytes] of contents) {
    const what = bytes === null ? 'absent' : typeof bytes === 'string' ? bytes : `${bytes.length} bytes`;
    parts.push(`${p} = ${bytes instanceof Uint8Array ? `${bytes.length} ${sha(bytes)}` : what}`);
    summary.push(`${p}: ${what}`);
  }
  return { key: sha(parts.join('\n\n')), summary: summary.join('; ') };
}

const isNoEnt = (e: unknown) => ['ENOENT', 'ENOTDIR'].includes((e as { code?: string }).code ?? '');

/** The namespace as ext4kit reads it. */
export async function viewOf(f: Filesystem, v: NsView): Promise<{ key: string; summary: string }> {
  const dirs = new Map<string, string[] | null>(), contents = new Map<string, Uint8Array | string | null>();
  for (const d of v.dirs) {
    const names: string[] = [];
    try {
      for await (const e of f.readdir(d)) if (e.name !== '.' && e.name !== '..') names.push(`${e.name} ${e.type}`);
      dirs.set(d, names);
    } catch (e) {
      if (!isNoEnt(e)) throw e;
      dirs.set(d, null);
    }
  }
  for (const p of v.contents) {
    try {
      const ino = await f.resolve(p, { followLast: false });
      contents.set(p, ino.type === 'file' ? await f.read(ino, 0, ino.size) : ino.type!);
    } catch (e) {
      if (!isNoEnt(e)) throw e;
      contents.set(p, null);
    }
  }
  return render(dirs, contents);
}

/** The same namespace as the kernel shows it under mount point `mp`. */
export function hostViewOf(mp: string, v: NsView): { key: string; summary: string } {
  const dirs = new Map<string, string[] | null>(), contents = new Map<string, Uint8Array | string | null>();
  for (const d of v.dirs) {
    try {
      dirs.set(d, nodefs.readdirSync(path.join(mp, d), { withFileTypes: true }).map((e) => `${e.name} ${TYPE_OF_DIRENT.find(([m]) => (e[m] as () => boolean).call(e))?.[1] ?? '?'}`));
    } catch (e) {
      if (!isNoEnt(e)) throw e;
      dirs.set(d, null);
    }
  }
  for (const p of v.contents) {
    try {
      const st = nodefs.lstatSync(path.join(mp, p));
      contents.set(p, st.isFile() ? new Uint8Array(nodefs.readFileSync(path.join(mp, p))) : TYPE_OF_STATS.find(([m]) => (st[m] as () => boolean).call(st))?.[1] ?? '?');
    } catch (e) {
      if (!isNoEnt(e)) throw e;
      contents.set(p, null);
    }
  }
  return render(dirs, contents);
}

interface Recorded {
  log: LogRecord[];
  /** Per operation: the write count before it and after it. */
  spans: [number, number][];
  states: { key: string; summary: string }[];
  commitsPerOp: number[];
}

async function recordOps(c: NsCrashCase): Promise<Recorded> {
  const rec = new RecordingDevice(new MemoryDevice(c.base.slice()), { granularity: c.granularity });
  const f = await Filesystem.open(rec, { write: true, ...(c.now ? { now: c.now } : {}) });
  const states = [] as Recorded['states'], commitsPerOp: number[] = [], spans: [number, number][] = [];
  let commits = 0;
  try {
    internals(f).commitHooks = { onStep: (s) => void (s === 'commit' && commits++) };
    states.push(await viewOf(f, c.view));
    for (const op of c.ops) {
      const before = commits, w0 = rec.writeCount;
      await op.run(f);
      commitsPerOp.push(commits - before);
      spans.push([w0, rec.writeCount]);
      states.push(await viewOf(f, c.view));
    }
  } finally {
    await f.close();
  }
  return { log: rec.log, spans, states, commitsPerOp };
}

/** The crash points to check: all of them thinned evenly to maxPoints, in write order. */
function choosePoints(log: readonly LogRecord[], spans: readonly [number, number][], c: NsCrashCase): { all: number; points: CrashPoint[] } {
  let all = crashPoints(log, { random: new Prng(c.seed), subsetsPerEpoch: c.subsetsPerEpoch });
  if (c.focusOps) {
    const last = all[all.length - 1]!, inside = (w: number) => c.focusOps!.some((k) => w > spans[k]![0] && w <= spans[k]![1]);
    all = [all[0]!, ...all.filter((p, i) => i > 0 && p !== last && inside(p.writes)), last];
  }
  const step = all.length / Math.min(all.length, c.maxPoints);
  const pick = new Set<number>([all.length - 1]);
  for (let x = 0; x < all.length && pick.size < c.maxPoints; x += step) pick.add(Math.floor(x));
  const points = [...pick].sort((a, b) => a - b).map((i) => all[i]!);
  points.sort((a, b) => a.writes - b.writes);
  return { all: all.length, points };
}

const pointName = (cp: CrashPoint) => `crash after ${cp.writes} writes, lost [${[...(cp.lose ?? [])].join(',')}]`;

/** ext4kit's replay of a crash image on `dev`, then the namespace it reads. */
async function replayView(dev: MemoryDevice | OverlayDevice, c: NsCrashCase): Promise<{ key: string; summary: string }> {
  await (await Filesystem.open(dev, { write: true, ...(c.now ? { now: c.now } : {}) })).close();
  const ro = await Filesystem.open(dev, { journalRecovery: 'refuse' });
  try {
    return await viewOf(ro, c.view);
  } finally {
    await ro.close();
  }
}

/** e2fsck -fn of bytes written to a scratch file; problems as strings. */
function fsckProblems(where: string, bytes: Uint8Array | null, file: string): string[] {
  if (bytes) nodefs.writeFileSync(file, bytes);
  const r = e2fsckClean(file);
  return r.ok ? [] : [`${where}: e2fsck -fn not clean: ${r.problems.slice(0, 5).join(' | ') || r.output.slice(-400)}`];
}

export async function runNsCrashCase(c: NsCrashCase): Promise<NsCrashResult> {
  const bad: string[] = [];
  const t0 = Date.now();
  const { log, spans, states, commitsPerOp } = await recordOps(c);
  const t1 = Date.now();
  const keys = states.map((s) => s.key);
  const { all, points } = choosePoints(log, spans, c);
  const images = new CrashPointImages(c.base, log);

  // 1. Every chosen point through ext4kit: an overlay over an incrementally advanced durable image.
  const reached: number[] = []; // state index per point (-1: none)
  const perState = new Array<number>(states.length).fill(0);
  for (const cp of points) {
    const dev = images.device(cp);
    let at = -1;
    try {
      const v = await replayView(dev, c);
      at = keys.indexOf(v.key);
      if (at < 0) bad.push(`${c.name}: ${pointName(cp)}: ext4kit's replay reads a namespace no operation left (${v.summary})`);
    } catch (e) {
      bad.push(`${c.name}: ${pointName(cp)}: ext4kit's replay failed: ${String(e)}`);
    }
    reached.push(at);
    if (at >= 0) perState[at]!++;
  }

  const t2 = Date.now();
  // 2 and 3. Samples: the two sides of state changes first, then evenly spread points.
  const changes: number[] = [];
  for (let i = 1; i < points.length; i++) if (reached[i]! >= 0 && reached[i - 1]! >= 0 && reached[i] !== reached[i - 1]) changes.push(i);
  const linuxAt = new Set<number>();
  const nl = Math.min(changes.length, c.linuxSample);
  for (let j = 0; j < nl; j++) {
    const i = changes[Math.floor((j * changes.length) / nl)]!;
    linuxAt.add(i - 1).add(i);
  }
  const fsckAt = new Set<number>(linuxAt);
  for (const i of changes) if (fsckAt.size < c.e2fsckSample) fsckAt.add(i);
  for (let x = 0, step = points.length / Math.max(1, c.e2fsckSample); fsckAt.size < Math.min(points.length, c.e2fsckSample); x += step) fsckAt.add(Math.floor(x) % points.length);
  let fscked = 0, linux = 0;
  if (linuxAt.size && !CAN_MOUNT) oracleGate(LOOP_SKIP);
  for (const i of [...fsckAt].sort((a, b) => a - b)) {
    const cp = points[i]!, where = `${c.name}: ${pointName(cp)}`, want = reached[i]!;
    if (want < 0) continue;
    const crash = materialise(c.base, log, cp);
    // ext4kit's replay, checked by e2fsck
    const ours = new MemoryDevice(crash.slice());
    await replayView(ours, c);
    const file = scratchPath('ns-crash-point.img');
    try {
      bad.push(...fsckProblems(`${where} (ext4kit's replay)`, ours.data, file));
      // e2fsck's replay: clean, and the same namespace
      nodefs.writeFileSync(file, crash);
      const j = e2fsckJournalOnly(file);
      if (j.exitCode >= 4) bad.push(`${where}: e2fsck -E journal_only failed: ${j.output}`);
      bad.push(...fsckProblems(`${where} (e2fsck's replay)`, null, file));
      const theirs = await Filesystem.open(new MemoryDevice(new Uint8Array(nodefs.readFileSync(file)), { readOnly: true }), { journalRecovery: 'refuse' });
      try {
        const v = await viewOf(theirs, c.view);
        if (v.key !== keys[want]) bad.push(`${where}: e2fsck's replay reads ${v.summary}, ext4kit's ${states[want]!.summary}`);
      } finally {
        await theirs.close();
      }
      fscked++;
      if (linuxAt.has(i) && CAN_MOUNT) {
        nodefs.writeFileSync(file, crash);
        await withLoopMount(file, (mp) => {
          const v = hostViewOf(mp, c.view);
          if (v.key !== keys[want]) bad.push(`${where}: Linux reads ${v.summary}, ext4kit ${states[want]!.summary} (state ${want})`);
        });
        bad.push(...fsckProblems(`${where} (the kernel's replay)`, null, file));
        linux++;
      }
    } finally {
      nodefs.rmSync(file, { force: true });
    }
  }
  // The image after every write (the operations done, the journal checkpointed at close) is clean.
  {
    const file = scratchPath('ns-crash-final.img');
    bad.push(...fsckProblems(`${c.name}: after all ${images.writes.length} writes`, materialise(c.base, log, { writes: images.writes.length }), file));
    nodefs.rmSync(file, { force: true });
  }
  if (!perState[0]) bad.push(`${c.name}: no crash point keeps the namespace before the operations`);
  if (!perState[states.length - 1]) bad.push(`${c.name}: no crash point has the namespace after the operations`);
  return { all, checked: points.length, perState, fscked, linux, commitsPerOp, ms: { record: t1 - t0, points: t2 - t1, samples: Date.now() - t2 }, bad };
}
