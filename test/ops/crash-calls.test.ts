/**
 * Crash points of each call (lib/io/recording-device.ts on a MemoryDevice,
 * as test/crash does for a mixed workload): one `allocate` that builds a
 * 40-extent tree in fragmented free space, and one multi-step `movedata`
 * (8 transactions) from a fragmented space file. The whole session is
 * recorded (open, the call, close with its checkpoint). At every crash point
 * (every write prefix, plus seeded subsets of the un-flushed writes lost) the
 * image is replayed by ext4kit (open for writing + close) and checked:
 *  - the data file reads exactly as before the call (movedata), the target
 *    of allocate is exactly its before- or after-state — the after-state iff
 *    the transaction's commit block survived; every other file unchanged;
 *  - for movedata, the steps whose commit block survived are applied and the
 *    others not: data maps the moved prefix to space's old blocks and the rest
 *    to its own, space is a hole over the moved prefix, its not-yet-moved
 *    blocks hold their old bytes (or, for the step in flight, data's bytes);
 *  - auditSpace: no block leaked, owned twice, or owned while free.
 * On a deterministic sample a copy is instead replayed by
 * `e2fsck -fp -E journal_only`; both replays must then pass e2fsck -fn with
 * nothing printed, and debugfs must read the files as above.
 */
import { describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { memoryDeviceFromFile } from '../../lib/io/file-device.js';
import { RecordingDevice, crashPoints, materialise, type CrashPoint } from '../../lib/io/recording-device.js';
import { Prng } from '../../lib/io/prng.js';
import type { Extent } from '../../lib/ext4/extents.js';
import { allocate, ALLOC_FIXED_START } from '../../lib/ops/allocate.js';
import { movedata } from '../../lib/ops/movedata.js';
import { auditSpace } from '../../lib/ops/fsmap.js';
import { getFreeBlocks } from '../../lib/ops/free.js';
import { e2fsckJournalOnly } from '../helpers/tools.js';
import { debugfsFiles, expectClean, HAVE_E2FSPROGS, makeImage, pattern, sameBytes, scratchPath } from './helpers.js';
import { internals } from '../../lib/ext4/internals.js';

const K = 1024; // 1 KiB blocks: many blocks per byte of image
const DATA_BLOCKS = 48;

interface FileState {
  content: Uint8Array;
  extents: Extent[];
}
type State = Map<string, FileState>;
const FILES = ['/data', '/space', '/target', '/other'];

async function stateOf(f: Filesystem): Promise<State> {
  const s: State = new Map();
  for (const p of FILES) {
    const ino = await f.resolve(p);
    s.set(p, { content: await f.read(ino, 0, ino.size), extents: (await f.fileMap(ino)).extents });
  }
  return s;
}

function blockMap(list: readonly Extent[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const e of list) for (let i = 0; i < e.length; i++) m.set(e.logical + i, e.physical + i);
  return m;
}

/**
 * The base image: /data (48 written blocks), /other, /target (3000 bytes), and
 * /space holding 48 single blocks scattered through a comb of free space
 * (so it has a depth-1 extent tree); more comb holes stay free for allocate.
 */
async function buildBase(): Promise<Uint8Array> {
  const img = makeImage('crashcalls', {
    data: pattern(DATA_BLOCKS * K, 1),
    other: pattern(20 * K, 2),
    target: pattern(3000, 3),
    space: new Uint8Array(0),
    comb: new Uint8Array(0),
  }, { blockSize: K, sizeMiB: 8 });
  const mem = await memoryDeviceFromFile(img);
  nodefs.rmSync(img, { force: true });
  const f = await Filesystem.open(mem, { write: true });
  try {
    const run = (await getFreeBlocks(f)).find((e) => e.len >= 400 * K)!;
    const r0 = run.start / K + 8;
    for (let i = 0; i < 200; i++) await allocate(f, '/comb', { offset: i * K, len: K, goal: (r0 + 2 * i) * K, flags: ALLOC_FIXED_START });
    // /space: 48 one-block runs in the comb's holes, then written (so movedata copies into written blocks)
    expect(await allocate(f, '/space', { offset: 0, len: DATA_BLOCKS * K, goal: (r0 + 1) * K })).toBe(DATA_BLOCKS * K);
    const { openFile } = await import('../../lib/ops/file.js');
    await (await openFile(f, '/space')).pwrite(pattern(DATA_BLOCKS * K, 4), 0);
    expect((await f.fileMap(await f.resolve('/space'))).depth).toBe(1);
  } finally {
    await f.close();
  }
  return mem.data.slice();
}

interface Recording {
  base: Uint8Array;
  log: RecordingDevice['log'];
  /** Write index of each transaction's commit block, in order. */
  commits: number[];
  before: State;
  /** State after each committed transaction of the call. */
  after: State[];
  /** movedata: blocks of the range moved after each transaction. */
  boundaries: number[];
  writes: number;
}

async function record(base: Uint8Array, call: (f: Filesystem) => Promise<unknown>, boundary?: (f: Filesystem) => Promise<number>): Promise<Recording> {
  const mem = new MemoryDevice(base.slice());
  const rec = new RecordingDevice(mem);
  const commits: number[] = [];
  const after: State[] = [];
  const boundaries: number[] = [0];
  const f = await Filesystem.open(rec, { write: true });
  let before: State;
  try {
    before = await stateOf(f);
    internals(f).commitHooks = { onStep: (s) => void (s === 'commit' && commits.push(rec.writeCount - 1)) };
    const transact = f.transact.bind(f);
    f.transact = async <T,>(fn: Parameters<Filesystem['transact']>[0]) => {
      const r = (await transact(fn)) as T;
      after.push(await stateOf(f));
      if (boundary) boundaries.push(await boundary(f));
      return r;
    };
    await call(f);
  } finally {
    await f.close();
  }
  expect(commits.length, 'one commit per transaction of the call').toBe(after.length);
  return { base, log: rec.log, commits, before: before!, after, boundaries, writes: rec.writeCount };
}

/** Transactions whose commit block is on the disk at this crash point (a prefix). */
function committedAt(r: Recording, cp: CrashPoint): number {
  let n = 0;
  for (const c of r.commits) {
    if (c < cp.writes && !cp.lose?.has(c)) n++;
    else break;
  }
  // a later commit cannot survive without the earlier ones (each commit follows a flush)
  for (const c of r.commits.slice(n)) expect(c < cp.writes && !cp.lose?.has(c)).toBe(false);
  return n;
}

/** Spread deterministic sample of indexes. */
function sampleIdx(n: number, k: number): Set<number> {
  const s = new Set<number>();
  for (let i = 0; i < Math.min(n, k); i++) s.add(Math.floor(((i + 0.5) * n) / Math.min(n, k)));
  return s;
}

type Checker = (s: State, committed: number, where: string) => void;

function sameState(a: FileState, b: FileState): boolean {
  const key = (l: Extent[]) => JSON.stringify(l.map((e) => [e.logical, e.physical, e.length, e.unwritten]));
  return sameBytes(a.content, b.content) && key(a.extents) === key(b.extents);
}

/** Replay every crash point with ext4kit, a sample also with e2fsck, and check. */
async function replayAll(r: Recording, label: string, check: Checker, opts: { seed: number; subsets: number; e2fsckSample: number }): Promise<{ points: number; e2fsck: number }> {
  const points = crashPoints(r.log, { random: new Prng(opts.seed), subsetsPerEpoch: opts.subsets });
  const sample = sampleIdx(points.length, opts.e2fsckSample);
  let fscked = 0;
  for (const [i, cp] of points.entries()) {
    const where = `${label}: crash after ${cp.writes}/${r.writes} writes, lost [${[...(cp.lose ?? [])].join(',')}]`;
    const img = materialise(r.base, r.log, cp);
    const committed = committedAt(r, cp);
    const copy = sample.has(i) ? img.slice() : null;
    // ext4kit replay: open for writing (replays the journal) and close
    const mem = new MemoryDevice(img);
    await (await Filesystem.open(mem, { write: true })).close();
    const f = await Filesystem.open(mem);
    try {
      check(await stateOf(f), committed, where);
      const audit = await auditSpace(f);
      expect(audit, `${where}: space audit`).toEqual({ leaked: [], multiplyOwned: [], ownedButFree: [], unreadable: [] });
    } finally {
      await f.close();
    }
    if (copy) {
      fscked++;
      const mine = scratchPath('crash-ext4kit.img');
      const theirs = scratchPath('crash-e2fsck.img');
      nodefs.writeFileSync(mine, mem.data);
      nodefs.writeFileSync(theirs, copy);
      const j = e2fsckJournalOnly(theirs);
      expect(j.exitCode, `${where}: e2fsck -E journal_only: ${j.output}`).toBeLessThan(4);
      expectClean(mine, `${where} (ext4kit replay)`);
      expectClean(theirs, `${where} (e2fsck replay)`);
      const o = debugfsFiles(theirs, FILES);
      const s: State = new Map(FILES.map((p) => [p, { content: new Uint8Array(o.get(p)!.dump), extents: o.get(p)!.extents }]));
      check(s, committed, `${where} (e2fsck replay, read by debugfs)`);
      nodefs.rmSync(mine, { force: true });
      nodefs.rmSync(theirs, { force: true });
    }
  }
  return { points: points.length, e2fsck: fscked };
}


describe.skipIf(!HAVE_E2FSPROGS)('crash points of each call', () => {
  let base: Uint8Array;

  it('allocate (one transaction, 40 extents in fragmented free space): all or nothing at every crash point', async () => {
    base ??= await buildBase();
    const r = await record(base, (f) => allocate(f, '/target', { offset: 10 * K, len: 40 * K, goal: 0 }).then((n) => expect(n).toBe(40 * K)));
    expect(r.commits.length).toBe(1);
    const after = r.after[0]!;
    expect(after.get('/target')!.extents.length).toBeGreaterThan(4);
    const { points, e2fsck } = await replayAll(
      r,
      'allocate',
      (s, committed, where) => {
        const want = committed ? after : r.before;
        for (const p of FILES) expect(sameState(s.get(p)!, want.get(p)!), `${where}: ${p} is the ${committed ? 'after' : 'before'} state`).toBe(true);
      },
      { seed: 1, subsets: 2, e2fsckSample: 12 },
    );
    expect(points).toBeGreaterThan(20);
    expect(e2fsck, 'crash points also replayed by e2fsck').toBeGreaterThan(0);
  });

  it('multi-step movedata (8 transactions): data intact, exactly the committed steps applied, at every crash point', async () => {
    base ??= await buildBase();
    const from = 0, len = DATA_BLOCKS * K;
    const holesPrefix = async (f: Filesystem) => {
      const m = blockMap((await f.fileMap(await f.resolve('/space'))).extents);
      let k = 0;
      while (k < DATA_BLOCKS && !m.has(k)) k++;
      return k;
    };
    const r = await record(base, (f) => movedata(f, '/data', '/space', { from, len, stepExtents: 6 }), holesPrefix);
    expect(r.commits.length).toBe(8);
    expect(r.boundaries).toEqual([0, 6, 12, 18, 24, 30, 36, 42, 48]);
    const data0 = r.before.get('/data')!, space0 = r.before.get('/space')!;
    const d0 = blockMap(data0.extents), s0 = blockMap(space0.extents);
    const { points, e2fsck } = await replayAll(
      r,
      'movedata',
      (s, k, where) => {
        const moved = r.boundaries[k]!, inFlight = r.boundaries[Math.min(k + 1, r.commits.length)]!;
        const data = s.get('/data')!, space = s.get('/space')!;
        expect(sameBytes(data.content, data0.content), `${where}: /data reads as before the call`).toBe(true);
        const dm = blockMap(data.extents), sm = blockMap(space.extents);
        for (let b = 0; b < DATA_BLOCKS; b++) {
          expect(dm.get(b), `${where}: /data block ${b} (${k} steps committed)`).toBe(b < moved ? s0.get(b) : d0.get(b));
          expect(sm.get(b), `${where}: /space block ${b}`).toBe(b < moved ? undefined : s0.get(b));
          const got = space.content.subarray(b * K, (b + 1) * K);
          const old = space0.content.subarray(b * K, (b + 1) * K), dat = data0.content.subarray(b * K, (b + 1) * K);
          if (b < moved) expect(got.every((x) => x === 0), `${where}: /space block ${b} is a hole`).toBe(true);
          else if (b < inFlight) expect(sameBytes(got, old) || sameBytes(got, dat), `${where}: /space block ${b} (step in flight): old bytes or data's`).toBe(true);
          else expect(sameBytes(got, old), `${where}: /space block ${b} untouched`).toBe(true);
        }
        expect(space.content.length).toBe(space0.content.length);
        for (const p of ['/target', '/other']) expect(sameState(s.get(p)!, r.before.get(p)!), `${where}: ${p} unchanged`).toBe(true);
      },
      { seed: 2, subsets: 1, e2fsckSample: 14 },
    );
    expect(points).toBeGreaterThan(50);
    expect(e2fsck, 'crash points also replayed by e2fsck').toBeGreaterThan(0);
  });
});
