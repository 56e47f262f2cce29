/**
 * Crash harness: a workload of journaled operations recorded by a
 * RecordingDevice, an in-memory model of every checked file after each
 * committed transaction, and a fast way to build the image of any crash
 * point (an overlay over an incrementally advanced "durable" image, cross-
 * checked against `materialise` on a sample).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { Ext4Error } from '../../lib/errors.js';
import type { BlockDevice } from '../../lib/io/device.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { RecordingDevice, crashPoints, materialise, type CrashPoint, type LogRecord } from '../../lib/io/recording-device.js';
import { Prng } from '../../lib/io/prng.js';
import { INCOMPAT, SUPERBLOCK_OFFSET } from '../../lib/ext4/superblock.js';
import { testBit } from '../../lib/ext4/bitmap.js';
import { blocksInGroup, groupFirstBlock } from '../../lib/ext4/geometry.js';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { allocate } from '../../lib/ops/allocate.js';
import { movedata } from '../../lib/ops/movedata.js';
import { openFile } from '../../lib/ops/file.js';
import { getFreeBlocks } from '../../lib/ops/free.js';
import { parseJournalSuperblock } from '../../lib/jbd2/format.js';
import { debugfsFull, mkfs, type FsKind } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { internals } from '../../lib/ext4/internals.js';

// ------------------------------------------------------------------ overlay device

const PAGE = 4096;

/**
 * A copy-on-write device over `base` (never modified): writes land in private
 * 4 KiB pages. Cheap to create per crash point, unlike a full image copy.
 */
export class OverlayDevice implements BlockDevice {
  readonly readOnly = false;
  readonly name = 'overlay';
  private readonly pages = new Map<number, Uint8Array>();
  constructor(private readonly base: Uint8Array) {}

  get size(): number {
    return this.base.length;
  }

  private range(op: string, position: number, length: number): void {
    if (!Number.isSafeInteger(position) || position < 0 || position + length > this.base.length)
      throw new Ext4Error('EIO', `${op} outside the ${this.base.length}-byte overlay: ${position}+${length}`);
  }

  async read(position: number, length: number): Promise<Uint8Array> {
    this.range('read', position, length);
    const out = new Uint8Array(length);
    for (let off = position; off < position + length; ) {
      const p = Math.floor(off / PAGE);
      const inPage = off - p * PAGE;
      const n = Math.min(PAGE - inPage, position + length - off);
      const page = this.pages.get(p);
      out.set(page ? page.subarray(inPage, inPage + n) : this.base.subarray(off, off + n), off - position);
      off += n;
    }
    return out;
  }

  /**
   * Whether the bytes at `position` equal `ref`, compared where they lie (written pages one by
   * one, the base between them in one run): no copy of a range that is checked at every crash point.
   */
  matches(position: number, ref: Uint8Array): boolean {
    this.range('read', position, ref.length);
    const end = position + ref.length;
    let baseFrom = position;
    for (let off = position; off < end; ) {
      const p = Math.floor(off / PAGE);
      const next = Math.min((p + 1) * PAGE, end);
      const page = this.pages.get(p);
      if (page) {
        if (baseFrom < off && !sameBytes(this.base.subarray(baseFrom, off), ref.subarray(baseFrom - position, off - position))) return false;
        if (!sameBytes(page.subarray(off - p * PAGE, next - p * PAGE), ref.subarray(off - position, next - position))) return false;
        baseFrom = next;
      }
      off = next;
    }
    return baseFrom >= end || sameBytes(this.base.subarray(baseFrom, end), ref.subarray(baseFrom - position));
  }

  writeSync(position: number, data: Uint8Array): void {
    this.range('write', position, data.length);
    for (let off = position; off < position + data.length; ) {
      const p = Math.floor(off / PAGE);
      const inPage = off - p * PAGE;
      const n = Math.min(PAGE - inPage, position + data.length - off);
      let page = this.pages.get(p);
      if (!page) {
        page = this.base.slice(p * PAGE, Math.min(this.base.length, (p + 1) * PAGE));
        this.pages.set(p, page);
      }
      page.set(data.subarray(off - position, off - position + n), inPage);
      off += n;
    }
  }

  async write(position: number, data: Uint8Array): Promise<void> {
    this.writeSync(position, data);
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}

  /** The whole image (a fresh copy). */
  image(): Uint8Array {
    const out = this.base.slice();
    for (const [p, page] of this.pages) out.set(page, p * PAGE);
    return out;
  }
}

/** Write records and, per write, the index of the first write not yet durable if the crash follows it. */
export function indexWrites(log: readonly LogRecord[]): { writes: { position: number; data: Uint8Array }[]; epochStart: number[] } {
  const writes: { position: number; data: Uint8Array }[] = [];
  const epochStart: number[] = [];
  let first = 0;
  for (const r of log) {
    if (r.kind === 'flush') first = writes.length;
    else {
      epochStart.push(first);
      writes.push(r);
    }
  }
  return { writes, epochStart };
}

/**
 * The device each crash point leaves, for points visited in order of their write count: a durable
 * image advanced to the point's epoch (every write before its last flush, each applied once)
 * under an overlay of the epoch's writes the point keeps.
 */
export class CrashPointImages {
  readonly writes: { position: number; data: Uint8Array }[];
  readonly #epochStart: number[];
  readonly #durable: Uint8Array;
  #applied = 0;

  constructor(base: Uint8Array, log: readonly LogRecord[]) {
    ({ writes: this.writes, epochStart: this.#epochStart } = indexWrites(log));
    this.#durable = base.slice();
  }

  device(cp: CrashPoint): OverlayDevice {
    const first = cp.writes === 0 ? 0 : this.#epochStart[cp.writes - 1]!;
    if (first < this.#applied) throw new Error(`crash points out of order: a point at ${cp.writes} writes after one past ${this.#applied}`);
    while (this.#applied < first) {
      const w = this.writes[this.#applied++]!;
      this.#durable.set(w.data, w.position);
    }
    const dev = new OverlayDevice(this.#durable);
    for (let j = first; j < cp.writes; j++) if (!cp.lose?.has(j)) dev.writeSync(this.writes[j]!.position, this.writes[j]!.data);
    return dev;
  }
}

// ------------------------------------------------------------------ images

export interface BaseImage {
  label: string;
  bytes: Uint8Array;
  /** Single free blocks left by deleting every other 1-block file (fragmented free space). */
  holes: number[];
  /** Original contents of the files the workload checks. */
  files: Map<string, Uint8Array>;
}

/** A deterministic byte pattern. */
export function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/**
 * An image (1 KiB blocks by default) whose free space is fragmented: mkfs -d
 * writes 900 one-block files, debugfs removes every other one, leaving ~450
 * single free blocks (so one `allocate` call yields many extents). /f and /space start
 * empty; /g holds 24000 bytes.
 */
export function buildBaseImage(label: string, sizeBytes: number, mkfsOpts: string[], blockSize = 1024, kind: FsKind = 'ext4'): BaseImage {
  const src = tmpDir(`src-${label}`);
  fs.mkdirSync(path.join(src, 'c'));
  for (let i = 0; i < 900; i++) fs.writeFileSync(path.join(src, 'c', String(i).padStart(3, '0')), pattern(blockSize, 1000 + i));
  const g = pattern(24000, 7);
  fs.writeFileSync(path.join(src, 'g'), g);
  fs.writeFileSync(path.join(src, 'f'), new Uint8Array(0));
  fs.writeFileSync(path.join(src, 'space'), new Uint8Array(0));
  const img = tmpPath(`${label}.img`);
  mkfs(kind, img, sizeBytes, ['-b', String(blockSize), ...mkfsOpts], src);
  const cmds: string[] = [];
  for (let i = 0; i < 900; i += 2) cmds.push(`rm /c/${String(i).padStart(3, '0')}`);
  debugfsFull(img, cmds, { write: true });
  const bytes = new Uint8Array(fs.readFileSync(img));
  fs.rmSync(img, { force: true });
  fs.rmSync(src, { recursive: true, force: true });
  return { label, bytes, holes: [], files: new Map([['/f', new Uint8Array(0)], ['/g', g]]) };
}

/** Single-block free runs (the comb) found with getFreeBlocks. */
export async function findHoles(dev: BlockDevice): Promise<number[]> {
  const f = await Filesystem.open(dev, {});
  try {
    const bs = f.blockSize;
    return (await getFreeBlocks(f)).filter((r) => r.len === bs).map((r) => r.start / bs);
  } finally {
    await f.close();
  }
}

// ------------------------------------------------------------------ workload

export interface Model {
  files: Map<string, Uint8Array>;
}

function setBytes(m: Model, p: string, data: Uint8Array, position: number): void {
  const old = m.files.get(p)!;
  const size = Math.max(old.length, position + data.length);
  const next = new Uint8Array(size);
  next.set(old);
  next.set(data, position);
  m.files.set(p, next);
}
function resize(m: Model, p: string, size: number): void {
  const old = m.files.get(p)!;
  const next = new Uint8Array(size);
  next.set(old.subarray(0, Math.min(size, old.length)));
  m.files.set(p, next);
}
function zeroRange(m: Model, p: string, from: number, len: number): void {
  const cur = m.files.get(p)!.slice();
  cur.fill(0, from, Math.min(cur.length, from + len));
  m.files.set(p, cur);
}

export interface Step {
  name: string;
  run(f: Filesystem): Promise<unknown>;
  /** Model after the step. */
  apply(m: Model): void;
  /**
   * The step may take several transactions, and the checked files read the
   * same after each of them (e.g. a stepped movedata onto allocated space).
   */
  multi?: true;
}

/**
 * The workload: grow /f to a depth-2 extent tree with non-contiguous
 * allocations, convert unwritten ranges by pwrite (inside blocks and across
 * extents), write into holes past EOF, punch ranges with movedata from a
 * hole-y /space, remap a range onto /space's contiguous blocks, shrink with
 * truncate, move /g's data (content must never change), move /f's first 150
 * blocks in steps of 8 extents (several transactions; /f's content is the
 * same after each), free everything (truncate to 0). Every other step is
 * exactly one transaction.
 */
export function workload(bs: number, holes: readonly number[]): Step[] {
  const goal = holes[0]! * bs;
  const B = (n: number) => n * bs;
  const gBlocks = Math.ceil(24000 / bs);
  const w1 = pattern(B(3), 11), w2 = pattern(500, 12), w3 = pattern(B(2) + 17, 13), w4 = pattern(B(40), 14);
  return [
    { name: 'allocate /f [0,130) in the comb (depth 1)', run: (f) => allocate(f, '/f', { offset: 0, len: B(130), goal }), apply: (m) => resize(m, '/f', B(130)) },
    { name: 'allocate /f [130,260)', run: (f) => allocate(f, '/f', { offset: B(130), len: B(130), goal }), apply: (m) => resize(m, '/f', B(260)) },
    { name: 'allocate /f [260,380) (depth 2)', run: (f) => allocate(f, '/f', { offset: B(260), len: B(120), goal }), apply: (m) => resize(m, '/f', B(380)) },
    { name: 'pwrite /f blocks 10..12 (convert 3 unwritten extents)', run: async (f) => (await openFile(f, '/f')).pwrite(w1, B(10)), apply: (m) => setBytes(m, '/f', w1, B(10)) },
    { name: 'pwrite 500 bytes inside block 100 (convert, zero edges)', run: async (f) => (await openFile(f, '/f')).pwrite(w2, B(100) + 100), apply: (m) => setBytes(m, '/f', w2, B(100) + 100) },
    { name: 'pwrite past EOF into a hole', run: async (f) => (await openFile(f, '/f')).pwrite(w3, B(385)), apply: (m) => setBytes(m, '/f', w3, B(385)) },
    { name: 'movedata /f [50,70) from hole-y /space (punch)', run: (f) => movedata(f, '/f', '/space', { from: B(50), len: B(20) }), apply: (m) => zeroRange(m, '/f', B(50), B(20)) },
    { name: 'allocate /space [200,240) contiguous', run: (f) => allocate(f, '/space', { offset: B(200), len: B(40), flags: 4 }), apply: () => undefined },
    { name: 'pwrite /f [200,240) (convert 40 extents)', run: async (f) => (await openFile(f, '/f')).pwrite(w4, B(200)), apply: (m) => setBytes(m, '/f', w4, B(200)) },
    { name: 'movedata /f [200,240) onto /space blocks (copy, merge to 1 extent)', run: (f) => movedata(f, '/f', '/space', { from: B(200), len: B(40) }), apply: () => undefined },
    { name: 'truncate /f to 150 blocks (depth 2 -> 1)', run: async (f) => (await openFile(f, '/f')).truncate(B(150)), apply: (m) => resize(m, '/f', B(150)) },
    { name: 'allocate /space over /g\'s range, contiguous', run: (f) => allocate(f, '/space', { offset: 0, len: B(gBlocks), flags: 4 }), apply: () => undefined },
    { name: 'movedata /g onto /space (content unchanged)', run: (f) => movedata(f, '/g', '/space', { from: 0, len: B(gBlocks) }), apply: () => undefined },
    { name: 'allocate /space [0,150) contiguous', run: (f) => allocate(f, '/space', { offset: 0, len: B(150), flags: 4 }), apply: () => undefined },
    {
      name: 'movedata /f [0,150) onto /space, 8 extents per step (several transactions, /f unchanged after each)',
      run: (f) => movedata(f, '/f', '/space', { from: 0, len: B(150), stepExtents: 8 }),
      apply: () => undefined,
      multi: true,
    },
    { name: 'truncate /f to 0 (depth 0, free everything)', run: async (f) => (await openFile(f, '/f')).truncate(0), apply: (m) => resize(m, '/f', 0) },
    { name: 'truncate /space to 0', run: async (f) => (await openFile(f, '/space')).truncate(0), apply: () => undefined },
  ];
}

export interface Recording {
  base: Uint8Array;
  log: LogRecord[];
  /** Write index of each transaction's commit block, in order. */
  commits: number[];
  /**
   * Per transaction: the write count right after its commit and the metadata
   * committed but not yet written home at that moment (JournalState.pending):
   * the reference state after c transactions is the device image at that
   * point with those blocks applied — what a checkpoint would write.
   */
  committed: { writes: number; pending: Map<number, Uint8Array> }[];
  /** Model after 0..T transactions (states[0] = before any). */
  states: Map<string, Uint8Array>[];
  /** Per step: name, transactions, extent-tree depth of /f after it. */
  steps: { name: string; transactions: number; depthF: number; extentsF: number }[];
  /** On-disk journal s_start right after each commit (0 = the commit was checkpointed at once). */
  startAfterCommit: number[];
  /** Checkpoints (log emptied) during the session, close included. */
  checkpoints: number;
  /** Write count at each checkpoint's 'checkpoint' step (home writes flushed, log not yet emptied). */
  checkpointWrites: number[];
  /** Revoke records written. */
  revokes: number;
  holes: number[];
}

export interface RecordOptions {
  /** Filesystem checkpoint policy (default: the library default, lazy). */
  checkpoint?: 'lazy' | 'each';
  /** Force checkpoints when this many committed blocks are pending (exercises new log cycles). */
  maxPendingBlocks?: number;
  /** Steps to run instead of the default workload. */
  steps?: (bs: number, holes: number[]) => Step[];
}

/** Run the workload on a RecordingDevice over a copy of the base image (open and close included). */
export async function record(base: BaseImage, opts: RecordOptions = {}): Promise<Recording> {
  const mem = new MemoryDevice(base.bytes.slice());
  const holes = await findHoles(mem);
  const rec = new RecordingDevice(mem);
  const commits: number[] = [];
  const committed: Recording['committed'] = [];
  const model: Model = { files: new Map(base.files) };
  const states = [new Map(model.files)];
  const steps: Recording['steps'] = [];
  const startAfterCommit: number[] = [];
  let checkpoints = 0;
  const checkpointWrites: number[] = [];
  const f = await Filesystem.open(rec, { write: true, ...(opts.checkpoint ? { checkpoint: opts.checkpoint } : {}) });
  let revokes = 0;
  try {
    if (opts.maxPendingBlocks !== undefined) internals(f).journal!.maxPendingBytes = opts.maxPendingBlocks * f.blockSize;
    internals(f).commitHooks = {
      onStep: async (s) => {
        if (s === 'commit') {
          commits.push(rec.writeCount - 1);
          committed.push({ writes: rec.writeCount, pending: new Map([...internals(f).journal!.pending].map(([b, d]) => [b, d.slice()])) });
          startAfterCommit.push(parseJournalSuperblock(await internals(f).journal!.readBlock(0)).s_start); // as on disk
        }
        if (s === 'checkpoint') checkpointWrites.push(rec.writeCount);
        if (s === 'done') checkpoints++;
      },
    };
    const list = (opts.steps ?? workload)(f.blockSize, holes);
    for (const st of list) {
      const before = commits.length;
      await st.run(f);
      st.apply(model);
      const n = commits.length - before;
      if (n !== 1 && !(st.multi && n > 1)) throw new Error(`step "${st.name}" made ${n} transactions (expected ${st.multi ? 'several' : 1})`);
      for (let t = 0; t < n; t++) states.push(new Map(model.files));
      // The live filesystem agrees with the model after every step.
      for (const [p, want] of model.files) {
        const got = await readWhole(f, p);
        if (!sameBytes(got, want)) throw new Error(`after "${st.name}": ${p} differs from the model`);
      }
      const map = await f.fileMap(await f.resolve('/f'));
      steps.push({ name: st.name, transactions: n, depthF: map.depth, extentsF: map.extents.length });
    }
    revokes = f.writeStats.revokes;
  } finally {
    await f.close();
  }
  return { base: base.bytes, log: rec.log, commits, committed, states, steps, startAfterCommit, checkpoints, checkpointWrites, revokes, holes };
}

export async function readWhole(f: Filesystem, p: string): Promise<Uint8Array> {
  const ino = await f.resolve(p);
  return f.read(ino, 0, ino.size);
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

// ------------------------------------------------------------------ crash-point evaluation

/** Journal block 0 of an image (via the journal inode's first extent) and the journal's extents. */
export async function journalSuperblockOf(f: Filesystem) {
  const map = await f.fileMap(await f.readInode(f.sb.s_journal_inum));
  const first = map.extents[0]!;
  return { jsb: parseJournalSuperblock(await f.readBlock(first.physical)), extents: map.extents };
}

/**
 * Blocks to compare with a reference state: allocated there, outside the
 * journal, the superblock block and the data extents of `dataFiles` (checked
 * through the model instead: unwritten blocks may hold bytes written before a
 * commit that did not survive — they read as zeros — and /space's bytes are
 * undefined by contract).
 */
async function comparableRanges(ref: Uint8Array, dataFiles: readonly string[]): Promise<[number, number][]> {
  const f = await Filesystem.open(new MemoryDevice(ref.slice(), { readOnly: true }), { journalRecovery: 'ignore' });
  try {
    const excluded = new Uint8Array(f.sb.blocksCount);
    const { extents } = await journalSuperblockOf(f);
    for (const p of dataFiles) extents.push(...(await f.fileMap(await f.resolve(p))).extents);
    for (const e of extents) excluded.fill(1, e.physical, e.physical + e.length);
    excluded.fill(1, 0, Math.floor(SUPERBLOCK_OFFSET / f.blockSize) + 1);
    const out: [number, number][] = [];
    for (let g = 0; g < f.sb.groupCount; g++) {
      const bm = await f.blockBitmap(g);
      const first = groupFirstBlock(f.sb, g);
      const n = blocksInGroup(f.sb, g);
      for (let i = 0; i < n; i++) {
        const b = first + i;
        if (excluded[b] || !testBit(bm, i)) continue;
        const last = out[out.length - 1];
        if (last && last[1] === b) last[1] = b + 1;
        else out.push([b, b + 1]);
      }
    }
    return out;
  } finally {
    await f.close();
  }
}

/** Superblock fields a replay must get right (RECOVER masked: the reference is mid-session). */
export function sbCounts(img: Uint8Array) {
  const dv = new DataView(img.buffer, img.byteOffset + SUPERBLOCK_OFFSET);
  return {
    freeBlocks: dv.getUint32(0x0c, true) + dv.getUint32(0x158, true) * 2 ** 32,
    freeInodes: dv.getUint32(0x10, true),
    state: dv.getUint16(0x3a, true),
    incompat: dv.getUint32(0x60, true) & ~INCOMPAT.RECOVER,
  };
}

export interface SampleCase {
  where: string;
  /** The crash image before any replay. */
  crashImage: Uint8Array;
  /** The image after ext4kit replayed it. */
  ours: Uint8Array;
  /** What ext4kit read from its replay. */
  oursFiles: Map<string, Uint8Array>;
  /** The model (state after the surviving transactions). */
  expected: Map<string, Uint8Array>;
}

export interface EvaluateOptions {
  label: string;
  seed: number;
  subsetsPerEpoch: number;
  /** How many points also go to onSample (half at commit boundaries, half random). */
  sampleSize: number;
  checkDataFiles: readonly string[];
  onSample(s: SampleCase): void | Promise<void>;
  /** Cross-check the overlay against `materialise` on every n-th sampled point (default 3). */
  materialiseEvery?: number;
  /** Only evaluate crash points after this many writes for which this returns true (default: all). */
  only?: (writes: number) => boolean;
}

export interface EvaluateStats {
  points: number;
  checked: number;
  fsckChecked: number;
  /** Crash points per number of surviving transactions. */
  perState: number[];
  materialiseChecks: number;
  /** Reference states built. */
  refBuilds: number;
  tKit: number;
  tFsck: number;
}

/**
 * Every crash point of the recording: build the image (overlay), let ext4kit
 * replay it (open for writing + close), then check it against the model and
 * the reference state; sampled points also go to `onSample` (e2fsck). Throws
 * an Error naming the crash point on the first mismatch.
 */
export async function evaluateCrashPoints(rec: Recording, o: EvaluateOptions): Promise<EvaluateStats> {
  const T = rec.commits.length;
  const images = new CrashPointImages(rec.base, rec.log);
  const points = crashPoints(rec.log, { random: new Prng(o.seed), subsetsPerEpoch: o.subsetsPerEpoch }).filter((p) => !o.only || o.only(p.writes));
  type Ref = { img: Uint8Array; bs: number; ranges: [number, number][]; counts: ReturnType<typeof sbCounts> };
  const refs = new Map<number, Ref>();
  let refBuilds = 0;
  // The image after n writes (materialise with nothing lost), advanced write by write: references
  // are asked for in nearly increasing order, so each write is applied about once, not once per state.
  let advanced = rec.base.slice(), advancedTo = 0, advanceChecked = false;
  const imageAfter = (n: number): Uint8Array => {
    if (n < advancedTo) (advanced = rec.base.slice()), (advancedTo = 0);
    for (; advancedTo < n; advancedTo++) advanced.set(images.writes[advancedTo]!.data, images.writes[advancedTo]!.position);
    return advanced.slice();
  };
  const refFor = async (c: number): Promise<Ref> => {
    let r = refs.get(c);
    if (r) return r;
    for (const k of [...refs.keys()]) if (k < c - 1) refs.delete(k);
    refBuilds++;
    // State after c transactions: the image right after its commit, committed metadata applied.
    let img: Uint8Array;
    if (c === 0) img = rec.base.slice();
    else {
      const k = rec.committed[c - 1]!;
      img = imageAfter(k.writes);
      if (!advanceChecked && (advanceChecked = true) && !sameBytes(img, materialise(rec.base, rec.log, { writes: k.writes }))) throw new Error(`${o.label}: the advanced image after ${k.writes} writes differs from materialise()`);
      for (const [b, data] of k.pending) img.set(data, b * data.length);
    }
    r = { img, bs: 1024 << new DataView(img.buffer, img.byteOffset + SUPERBLOCK_OFFSET).getUint32(0x18, true), ranges: await comparableRanges(img, o.checkDataFiles), counts: sbCounts(img) };
    refs.set(c, r);
    return r;
  };

  const rng = new Prng(o.seed * 7919);
  const sample = new Set<number>();
  const boundary: number[] = [];
  const commitSet = new Set(rec.commits);
  for (let i = 0; i < points.length; i++) {
    const p = points[i]!;
    const lost = p.lose ?? new Set<number>();
    // the commit block just issued (lost or not), or the first point after its flush
    if ((commitSet.has(p.writes - 1) && (lost.size === 0 || lost.has(p.writes - 1))) || (commitSet.has(p.writes - 2) && lost.size === 0)) boundary.push(i);
  }
  const nb = Math.min(boundary.length, Math.ceil(o.sampleSize / 2));
  for (let j = 0; j < nb; j++) sample.add(boundary[Math.floor((j * boundary.length) / nb)]!);
  while (sample.size < Math.min(points.length, o.sampleSize)) sample.add(rng.int(points.length));

  const st: EvaluateStats = { points: points.length, checked: 0, fsckChecked: 0, perState: new Array(T + 1).fill(0), materialiseChecks: 0, refBuilds: 0, tKit: 0, tFsck: 0 };
  let sampled = 0;
  for (let i = 0; i < points.length; i++) {
    const cp: CrashPoint = points[i]!;
    const lose = cp.lose ?? new Set<number>();
    const dev = images.device(cp);
    // Surviving commits: they must form a prefix of the transactions.
    let c = 0;
    while (c < T && rec.commits[c]! < cp.writes && !lose.has(rec.commits[c]!)) c++;
    for (let t = c; t < T; t++) if (rec.commits[t]! < cp.writes && !lose.has(rec.commits[t]!)) throw new Error(`crash point ${i}: commit ${t} survived but commit ${c} did not`);
    st.perState[c]!++;
    const where = `${o.label}: crash point ${i} (after ${cp.writes}/${images.writes.length} writes, lost [${[...lose].join(',')}]), ${c}/${T} transactions committed`;
    const crashImage = sample.has(i) ? dev.image() : null;
    if (crashImage && sampled++ % (o.materialiseEvery ?? 3) === 0) {
      if (!sameBytes(crashImage, materialise(rec.base, rec.log, cp))) throw new Error(`${where}: overlay image differs from materialise()`);
      st.materialiseChecks++;
    }

    const ta = Date.now();
    try {
      const w = await Filesystem.open(dev, { write: true });
      await w.close();
    } catch (e) {
      throw new Error(`${where}: ext4kit open-for-writing (replay) + close failed: ${(e as Error).message}`);
    }
    const oursFiles = new Map<string, Uint8Array>();
    const ro = await Filesystem.open(dev, { journalRecovery: 'refuse' });
    try {
      if (ro.sb.s_feature_incompat & INCOMPAT.RECOVER) throw new Error(`${where}: needs_recovery still set after close`);
      const { jsb } = await journalSuperblockOf(ro);
      if (jsb.s_start !== 0) throw new Error(`${where}: journal not empty after close (s_start ${jsb.s_start})`);
      for (const [p, want] of rec.states[c]!) {
        const got = await readWhole(ro, p);
        oursFiles.set(p, got);
        if (!sameBytes(got, want)) throw new Error(`${where}: ext4kit reads ${p} (${got.length} bytes) unlike the model (${want.length} bytes)`);
      }
    } finally {
      await ro.close();
    }
    const ref = await refFor(c);
    const bs = ref.bs;
    for (const [s0, e0] of ref.ranges) {
      const b = ref.img.subarray(s0 * bs, e0 * bs);
      if (!dev.matches(s0 * bs, b)) {
        const a = await dev.read(s0 * bs, (e0 - s0) * bs);
        let bad = s0;
        while (bad < e0 && sameBytes(a.subarray((bad - s0) * bs, (bad - s0 + 1) * bs), b.subarray((bad - s0) * bs, (bad - s0 + 1) * bs))) bad++;
        throw new Error(`${where}: block ${bad} differs from the state after ${c} transactions`);
      }
    }
    const counts = sbCounts(await dev.read(0, SUPERBLOCK_OFFSET * 2));
    if (JSON.stringify(counts) !== JSON.stringify(ref.counts)) throw new Error(`${where}: superblock ${JSON.stringify(counts)} != ${JSON.stringify(ref.counts)}`);
    st.checked++;
    st.tKit += Date.now() - ta;

    if (crashImage) {
      const tb = Date.now();
      await o.onSample({ where, crashImage, ours: dev.image(), oursFiles, expected: rec.states[c]! });
      st.fsckChecked++;
      st.tFsck += Date.now() - tb;
    }
  }
  st.refBuilds = refBuilds;
  if (!o.only) for (let c = 0; c <= T; c++) if (!st.perState[c]) throw new Error(`${o.label}: no crash point left exactly ${c} transactions`);
  return st;
}
