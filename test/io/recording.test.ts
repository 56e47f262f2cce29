import { describe, it, expect } from 'vitest';
import { RecordingDevice, crashPoints, losableWrites, materialise, type LogRecord } from '../../lib/io/recording-device.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import type { BlockDevice } from '../../lib/io/device.js';
import { Prng } from '../../lib/io/prng.js';
import { isExt4Error } from '../../lib/errors.js';
import { rejectionCode, sameBytes } from './helpers.js';

const w = (position: number, ...bytes: number[]): LogRecord => ({ kind: 'write', position, data: new Uint8Array(bytes) });
const F: LogRecord = { kind: 'flush' };

/** w0 w1 F w2 w3 F w4 — each write sets one byte at its index to index+1. */
const LOG: LogRecord[] = [w(0, 1), w(1, 2), F, w(2, 3), w(3, 4), F, w(4, 5)];
const BASE = new Uint8Array(8);

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return isExt4Error(e) ? e.code : 'not an Ext4Error';
  }
  return 'no error';
}

describe('RecordingDevice', () => {
  it('logs writes (private copies) and flushes in order, and passes them through', async () => {
    const mem = MemoryDevice.create(64);
    const rec = new RecordingDevice(mem);
    expect(rec.size).toBe(64);
    expect(rec.name).toBe('memory');
    const buf = new Uint8Array([1, 2, 3]);
    await rec.write(10, buf);
    buf[0] = 99; // mutating the caller's buffer does not change the log
    await rec.flush();
    await rec.write(0, new Uint8Array([7]));
    expect(rec.log).toEqual([
      { kind: 'write', position: 10, data: new Uint8Array([1, 2, 3]) },
      { kind: 'flush' },
      { kind: 'write', position: 0, data: new Uint8Array([7]) },
    ]);
    expect(rec.writeCount).toBe(2);
    expect([...(await rec.read(10, 3))]).toEqual([1, 2, 3]); // reads pass through to the inner device
    rec.clearLog();
    expect(rec.log).toEqual([]);
  });

  it('does not log writes the inner device refuses up front', async () => {
    const rec = new RecordingDevice(new MemoryDevice(new Uint8Array(16), { readOnly: true }));
    expect(await rejectionCode(rec.write(0, new Uint8Array(1)))).toBe('EROFS');
    const rec2 = new RecordingDevice(MemoryDevice.create(16));
    expect(await rejectionCode(rec2.write(10, new Uint8Array(10)))).toBe('ENOSPC');
    expect(rec.log.length + rec2.log.length).toBe(0);
  });

  it('granularity splits writes into aligned, separately losable records', async () => {
    const rec = new RecordingDevice(MemoryDevice.create(64), { granularity: 8 });
    await rec.write(5, new Uint8Array(20).fill(1)); // 5..24 → [5,8) [8,16) [16,24) [24,25)
    await rec.write(32, new Uint8Array(8).fill(2)); // exactly one aligned unit
    expect(rec.log.map((r) => (r.kind === 'write' ? [r.position, r.data.length] : 'F'))).toEqual([
      [5, 3],
      [8, 8],
      [16, 8],
      [24, 1],
      [32, 8],
    ]);
    const torn = materialise(new Uint8Array(64), rec.log, { writes: 5, lose: new Set([1]) });
    expect([...torn.subarray(5, 25)]).toEqual([1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(() => new RecordingDevice(MemoryDevice.create(8), { granularity: 0 })).toThrow();
  });

  it('flush waits for writes issued before it', async () => {
    const order: string[] = [];
    let release!: () => void;
    const slow: BlockDevice = {
      size: 16,
      readOnly: false,
      name: 'slow',
      read: async () => new Uint8Array(0),
      write: () =>
        new Promise<void>((r) => {
          release = () => {
            order.push('write done');
            r();
          };
        }),
      flush: async () => {
        order.push('inner flush');
      },
      close: async () => undefined,
    };
    const rec = new RecordingDevice(slow);
    const wp = rec.write(0, new Uint8Array(1));
    const fp = rec.flush();
    await new Promise((r) => setTimeout(r, 10));
    expect(order).toEqual([]);
    release();
    await Promise.all([wp, fp]);
    expect(order).toEqual(['write done', 'inner flush']);
    expect(rec.log.map((r) => r.kind)).toEqual(['write', 'flush']);
  });

  it('materialise of the whole log equals the device after the run', async () => {
    const rng = new Prng('replay');
    const base = new Uint8Array(4096);
    for (let i = 0; i < base.length; i++) base[i] = rng.int(256);
    const mem = new MemoryDevice(base.slice());
    const rec = new RecordingDevice(mem);
    for (let i = 0; i < 200; i++) {
      if (rng.chance(0.1)) await rec.flush();
      const pos = rng.int(4000);
      const data = new Uint8Array(1 + rng.int(96));
      for (let j = 0; j < data.length; j++) data[j] = rng.int(256);
      await rec.write(pos, data);
    }
    expect(sameBytes(materialise(base, rec.log, { writes: rec.writeCount }), mem.data)).toBe(true);
    expect(sameBytes(materialise(base, rec.log, { writes: 0 }), base)).toBe(true);
  });
});

describe('materialise', () => {
  it('applies the first k writes in log order to a copy of the base', () => {
    expect([...materialise(BASE, LOG, { writes: 0 })]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect([...materialise(BASE, LOG, { writes: 3 })]).toEqual([1, 2, 3, 0, 0, 0, 0, 0]);
    expect([...materialise(BASE, LOG, { writes: 5 })]).toEqual([1, 2, 3, 4, 5, 0, 0, 0]);
    expect([...BASE]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]); // base untouched
    // Later writes to the same place win.
    expect([...materialise(new Uint8Array(2), [w(0, 1, 1), w(1, 2)], { writes: 2 })]).toEqual([1, 2]);
    expect([...materialise(new Uint8Array(2), [w(0, 1, 1), w(1, 2)], { writes: 2, lose: new Set([1]) })]).toEqual([1, 1]);
  });

  it('only writes after the last flush preceding the crash may be lost', () => {
    // Crash right after w1 (the flush after it had not completed): w0 and w1 may both be lost.
    expect(losableWrites(LOG, 2)).toEqual([0, 1]);
    expect([...materialise(BASE, LOG, { writes: 2, lose: new Set([0]) })]).toEqual([0, 2, 0, 0, 0, 0, 0, 0]);
    // After w2: the first flush completed, so w0/w1 are durable.
    expect(losableWrites(LOG, 3)).toEqual([2]);
    expect(losableWrites(LOG, 4)).toEqual([2, 3]);
    expect(losableWrites(LOG, 5)).toEqual([4]);
    expect(losableWrites(LOG, 0)).toEqual([]);
    expect([...materialise(BASE, LOG, { writes: 4, lose: new Set([2]) })]).toEqual([1, 2, 0, 4, 0, 0, 0, 0]);
    expect(codeOf(() => materialise(BASE, LOG, { writes: 3, lose: new Set([1]) }))).toBe('EINVAL');
    expect(codeOf(() => materialise(BASE, LOG, { writes: 5, lose: new Set([3]) }))).toBe('EINVAL');
    // Not yet issued, bad indices, bad prefix lengths.
    expect(codeOf(() => materialise(BASE, LOG, { writes: 3, lose: new Set([3]) }))).toBe('EINVAL');
    expect(codeOf(() => materialise(BASE, LOG, { writes: 0, lose: new Set([0]) }))).toBe('EINVAL');
    expect(codeOf(() => materialise(BASE, LOG, { writes: 6 }))).toBe('EINVAL');
    expect(codeOf(() => materialise(BASE, LOG, { writes: -1 }))).toBe('EINVAL');
    expect(codeOf(() => materialise(BASE, LOG, { writes: 2, lose: new Set([0.5]) }))).toBe('EINVAL');
    // A write outside the base image.
    expect(codeOf(() => materialise(new Uint8Array(2), [w(5, 1)], { writes: 1 }))).toBe('EINVAL');
  });

  it('the error message says why a write cannot be lost', () => {
    try {
      materialise(BASE, LOG, { writes: 4, lose: new Set([0]) });
      expect.unreachable();
    } catch (e) {
      expect((e as Error).message).toMatch(/flushed before the crash.*2\.\.3/);
    }
  });
});

describe('crashPoints', () => {
  it('enumerates every prefix, plus only valid lost subsets', () => {
    const points = crashPoints(LOG, { random: new Prng(1), subsetsPerEpoch: 4 });
    const prefixes = points.filter((p) => (p.lose?.size ?? 0) === 0).map((p) => p.writes);
    expect(prefixes).toEqual([0, 1, 2, 3, 4, 5]);
    for (const p of points) {
      expect(() => materialise(BASE, LOG, p)).not.toThrow();
      for (const i of p.lose ?? []) expect(losableWrites(LOG, p.writes)).toContain(i);
    }
    // Small epochs are enumerated completely: after w1, {0},{1},{0,1}.
    const at2 = points.filter((p) => p.writes === 2 && p.lose!.size > 0).map((p) => [...p.lose!].sort());
    expect(at2).toEqual([[0], [1], [0, 1]]);
    const at3 = points.filter((p) => p.writes === 3 && p.lose!.size > 0).map((p) => [...p.lose!]);
    expect(at3).toEqual([[2]]);
  });

  it('large epochs: "lose all" plus distinct random subsets, deterministic per seed', () => {
    const log: LogRecord[] = [w(0, 1), F];
    for (let i = 1; i <= 12; i++) log.push(w(i, i));
    const run = (seed: number) =>
      crashPoints(log, { random: new Prng(seed), subsetsPerEpoch: 6 }).map((p) => `${p.writes}:${[...(p.lose ?? [])].join(',')}`);
    const a = run(5);
    expect(run(5)).toEqual(a);
    expect(run(6)).not.toEqual(a);
    const at13 = a.filter((s) => s.startsWith('13:') && s !== '13:');
    expect(at13.length).toBe(6);
    expect(new Set(at13).size).toBe(6);
    expect(at13[0]).toBe('13:1,2,3,4,5,6,7,8,9,10,11,12');
    for (const s of at13) expect(s.includes(':0,') || s.endsWith(':0')).toBe(false); // w0 was flushed
    // A plain () => number works as the random source too.
    const f = new Prng(5);
    expect(crashPoints(log, { random: () => f.next(), subsetsPerEpoch: 6 }).map((p) => `${p.writes}:${[...(p.lose ?? [])].join(',')}`)).toEqual(a);
  });

  it('subsetsPerEpoch 0 gives prefixes only; an empty log gives one point', () => {
    expect(crashPoints(LOG, { random: new Prng(1), subsetsPerEpoch: 0 }).length).toBe(6);
    expect(crashPoints([], { random: new Prng(1) })).toEqual([{ writes: 0, lose: new Set() }]);
    expect(crashPoints([F, F], { random: new Prng(1) })).toEqual([{ writes: 0, lose: new Set() }]);
  });
});
