/**
 * Crash simulation.
 *
 * `RecordingDevice` wraps a BlockDevice and logs, in issue order, every write
 * (position and a private copy of the data) and every flush. From a base
 * image and that log, `materialise` builds the image a crash would have left,
 * and `crashPoints` enumerates the crash states worth checking.
 *
 * Crash model. A crash point `{writes: k, lose}` means: the machine died
 * right after the k-th write record was issued (write records are numbered
 * 0.. in log order; k = 0 is "before any write"), before any later log entry
 * — including a flush logged right after write k-1, which therefore did not
 * complete. Writes issued before the last flush that precedes write k-1 are
 * durable; the writes after it (the current "epoch", up to write k-1) may
 * each independently have reached the disk or not: `lose` names those that
 * did not. ("Flush completed, nothing after it" is the crash point at the
 * next write with nothing lost, so every state is reachable.)
 *
 * Writes are atomic units in this model. To model torn multi-block writes,
 * give RecordingDevice a `granularity` (e.g. 4096 or 512): each write is
 * logged as several aligned records of at most that size, each of which may
 * be lost independently.
 */
import { Ext4Error } from '../errors.js';
import type { BlockDevice } from './device.js';

export type LogRecord = { kind: 'write'; position: number; data: Uint8Array } | { kind: 'flush' };

export interface RecordingDeviceOptions {
  /**
   * Split each write into records of at most this many bytes, aligned to it,
   * so that a crash can tear a write. Default: one record per write.
   */
  granularity?: number;
}

export class RecordingDevice implements BlockDevice {
  readonly inner: BlockDevice;
  /** Every write and flush, in issue order. Data arrays are private copies. */
  readonly log: LogRecord[] = [];
  private readonly granularity: number | undefined;
  /** Writes issued and not yet completed; a flush waits for them. */
  private readonly inflight = new Set<Promise<void>>();

  constructor(inner: BlockDevice, options: RecordingDeviceOptions = {}) {
    if (options.granularity !== undefined && (!Number.isSafeInteger(options.granularity) || options.granularity <= 0)) {
      throw new Ext4Error('EINVAL', `invalid write granularity ${options.granularity}`, { structure: inner.name });
    }
    this.inner = inner;
    this.granularity = options.granularity;
  }

  get size(): number {
    return this.inner.size;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  get name(): string {
    return this.inner.name;
  }

  /** Number of write records in the log. */
  get writeCount(): number {
    let n = 0;
    for (const r of this.log) if (r.kind === 'write') n++;
    return n;
  }

  /** Empty the log (e.g. after setting up the base image). */
  clearLog(): void {
    this.log.length = 0;
  }

  read(position: number, length: number): Promise<Uint8Array> {
    return this.inner.read(position, length);
  }

  readUncached(position: number, length: number): Promise<Uint8Array> {
    return this.inner.readUncached ? this.inner.readUncached(position, length) : this.inner.read(position, length);
  }

  /** Logged at issue time (before the inner write completes), so the log is in issue order. */
  write(position: number, data: Uint8Array): Promise<void> {
    // Writes the inner device is bound to refuse (read-only, bad range) are
    // not logged; a write that fails later stays logged (its bytes may be
    // partly on the medium).
    if (
      this.inner.readOnly ||
      !Number.isSafeInteger(position) ||
      position < 0 ||
      position + data.length > this.inner.size
    ) {
      return this.inner.write(position, data);
    }
    const g = this.granularity;
    if (g === undefined || data.length <= g - (position % g)) {
      this.log.push({ kind: 'write', position, data: data.slice() });
    } else {
      let off = 0;
      while (off < data.length) {
        const pos = position + off;
        const len = Math.min(data.length - off, g - (pos % g));
        this.log.push({ kind: 'write', position: pos, data: data.slice(off, off + len) });
        off += len;
      }
    }
    const p = this.inner.write(position, data);
    const tracked = p.then(
      () => undefined,
      () => undefined,
    );
    this.inflight.add(tracked);
    void tracked.then(() => this.inflight.delete(tracked));
    return p;
  }

  /**
   * Logged at issue time. Waits for every write issued before it, then
   * flushes the inner device, so the barrier really covers those writes.
   */
  async flush(): Promise<void> {
    this.log.push({ kind: 'flush' });
    await Promise.all([...this.inflight]);
    await this.inner.flush();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

export interface CrashPoint {
  /** Number of write records issued before the crash. */
  writes: number;
  /** Indices (among write records) of un-flushed writes that did not reach the disk. */
  lose?: Set<number>;
}

interface WriteIndex {
  /** Write records in order. */
  writes: Array<{ position: number; data: Uint8Array }>;
  /** epochStart[i]: index of the first write that is not durable if the crash follows write i. */
  epochStart: number[];
}

function indexLog(log: readonly LogRecord[]): WriteIndex {
  const writes: WriteIndex['writes'] = [];
  const epochStart: number[] = [];
  let firstUnflushed = 0;
  for (const r of log) {
    if (r.kind === 'flush') firstUnflushed = writes.length;
    else {
      epochStart.push(firstUnflushed);
      writes.push(r);
    }
  }
  return { writes, epochStart };
}

/**
 * Indices of the writes that may be lost at a crash after `writes` write
 * records: those issued after the last flush preceding write `writes-1`.
 */
export function losableWrites(log: readonly LogRecord[], writes: number): number[] {
  const ix = indexLog(log);
  checkWrites(writes, ix.writes.length);
  if (writes === 0) return [];
  const out: number[] = [];
  for (let i = ix.epochStart[writes - 1]!; i < writes; i++) out.push(i);
  return out;
}

function checkWrites(writes: number, total: number): void {
  if (!Number.isSafeInteger(writes) || writes < 0 || writes > total) {
    throw new Ext4Error('EINVAL', `crash point after ${writes} writes, but the log has ${total} writes`);
  }
}

/**
 * The image a crash at `crashPoint` would leave: a copy of `base` with the
 * first `crashPoint.writes` write records applied in order, except the ones
 * in `lose`. Throws EINVAL if `lose` names a write that is durable at that
 * point (issued before the last preceding flush), not yet issued, or if a
 * write falls outside the image.
 */
export function materialise(base: Uint8Array, log: readonly LogRecord[], crashPoint: CrashPoint): Uint8Array {
  const ix = indexLog(log);
  const k = crashPoint.writes;
  checkWrites(k, ix.writes.length);
  const lose = crashPoint.lose ?? new Set<number>();
  const firstLosable = k === 0 ? 0 : ix.epochStart[k - 1]!;
  for (const i of lose) {
    if (!Number.isSafeInteger(i) || i < firstLosable || i >= k) {
      throw new Ext4Error(
        'EINVAL',
        k === 0 || i >= k || i < 0 || !Number.isSafeInteger(i)
          ? `cannot lose write ${i}: only writes 0..${k - 1} were issued before the crash`
          : `cannot lose write ${i}: it was flushed before the crash (only writes ${firstLosable}..${k - 1} may be lost)`,
      );
    }
  }
  const out = base.slice();
  for (let i = 0; i < k; i++) {
    if (lose.has(i)) continue;
    const w = ix.writes[i]!;
    if (w.position < 0 || w.position + w.data.length > out.length) {
      throw new Ext4Error('EINVAL', `write ${i} (bytes ${w.position}..${w.position + w.data.length - 1}) is outside the ${out.length}-byte base image`);
    }
    out.set(w.data, w.position);
  }
  return out;
}

/** A source of floats in [0, 1): a function, or an object with next() such as Prng. */
export type RandomSource = (() => number) | { next(): number };

export interface CrashPointOptions {
  /** Seeded randomness (e.g. `new Prng(seed)`), so the enumeration is reproducible. */
  random: RandomSource;
  /**
   * Per prefix, how many distinct non-empty sets of un-flushed writes to
   * lose. When the prefix has at most this many such sets they are all
   * enumerated; otherwise "lose all of them" plus random distinct sets.
   * Default 4; 0 gives prefixes only.
   */
  subsetsPerEpoch?: number;
}

/**
 * Crash points to test: every prefix (0..n writes, nothing lost) and, for
 * each prefix, up to `subsetsPerEpoch` subsets of its un-flushed writes being
 * lost. Deterministic for a given log and random source state.
 */
export function crashPoints(log: readonly LogRecord[], options: CrashPointOptions): CrashPoint[] {
  const rand = typeof options.random === 'function' ? options.random : options.random.next.bind(options.random);
  const perEpoch = options.subsetsPerEpoch ?? 4;
  if (!Number.isSafeInteger(perEpoch) || perEpoch < 0) throw new Ext4Error('EINVAL', `invalid subsetsPerEpoch ${perEpoch}`);
  const ix = indexLog(log);
  const out: CrashPoint[] = [];
  for (let k = 0; k <= ix.writes.length; k++) {
    out.push({ writes: k, lose: new Set() });
    if (k === 0 || perEpoch === 0) continue;
    const first = ix.epochStart[k - 1]!;
    const m = k - first; // un-flushed writes
    if (m < 31 && 2 ** m - 1 <= perEpoch) {
      for (let mask = 1; mask < 2 ** m; mask++) {
        const lose = new Set<number>();
        for (let j = 0; j < m; j++) if (mask & (1 << j)) lose.add(first + j);
        out.push({ writes: k, lose });
      }
      continue;
    }
    const seen = new Set<string>();
    const all = new Set<number>();
    for (let i = first; i < k; i++) all.add(i);
    seen.add([...all].join(','));
    out.push({ writes: k, lose: all });
    // Random distinct non-empty proper subsets; bounded attempts (there are
    // at least perEpoch+1 subsets here, so duplicates are rare).
    for (let attempt = 0; seen.size < perEpoch && attempt < perEpoch * 20; attempt++) {
      const lose = new Set<number>();
      for (let i = first; i < k; i++) if (rand() < 0.5) lose.add(i);
      if (lose.size === 0) continue;
      const key = [...lose].join(',');
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ writes: k, lose });
    }
  }
  return out;
}
