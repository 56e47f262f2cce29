import { describe, it, expect } from 'vitest';
import { Prng, mulberry32 } from '../../lib/io/prng.js';
import { isExt4Error } from '../../lib/errors.js';

describe('xoshiro128**', () => {
  it('matches the reference implementation (state 1,2,3,4)', () => {
    // Values from the reference C code (prng.di.unimi.it/xoshiro128starstar.c).
    const p = Prng.fromState(1, 2, 3, 4);
    expect([p.uint32(), p.uint32(), p.uint32(), p.uint32(), p.uint32()]).toEqual([11520, 0, 5927040, 70819200, 2031721883]);
  });

  it('is deterministic per seed, numeric or string', () => {
    const seq = (p: Prng) => Array.from({ length: 50 }, () => p.uint32());
    expect(seq(new Prng(42))).toEqual(seq(new Prng(42)));
    expect(seq(new Prng('crash-test'))).toEqual(seq(new Prng('crash-test')));
    expect(seq(new Prng(42))).not.toEqual(seq(new Prng(43)));
    expect(seq(new Prng('a'))).not.toEqual(seq(new Prng('b')));
  });

  it('pins the seeded streams (changing them changes every recorded crash-test case)', () => {
    const p = new Prng(1);
    expect([p.uint32(), p.uint32(), p.uint32()]).toEqual([2442144158, 3238099751, 3819917871]);
    const q = new Prng('ext4kit');
    expect([q.uint32(), q.uint32()]).toEqual([2721869538, 2303015630]);
  });

  it('next() is in [0,1), int(n) in [0,n) and roughly uniform', () => {
    const p = new Prng(7);
    const counts = new Array<number>(10).fill(0);
    for (let i = 0; i < 20000; i++) {
      const f = p.next();
      expect(f >= 0 && f < 1).toBe(true);
      const k = p.int(10);
      counts[k] = (counts[k] ?? 0) + 1;
    }
    for (const c of counts) {
      expect(c).toBeGreaterThan(1700);
      expect(c).toBeLessThan(2300);
    }
    expect(p.range(5, 5)).toBe(5);
  });

  it('next is usable detached, as a () => number', () => {
    const p = new Prng(3);
    const f = p.next;
    const q = new Prng(3);
    expect([f(), f()]).toEqual([q.next(), q.next()]);
  });

  it('shuffle is a permutation, fork is reproducible', () => {
    const arr = Array.from({ length: 20 }, (_, i) => i);
    const s = new Prng(9).shuffle([...arr]);
    expect([...s].sort((a, b) => a - b)).toEqual(arr);
    expect(new Prng(9).shuffle([...arr])).toEqual(s);
    expect(new Prng(5).fork().uint32()).toBe(new Prng(5).fork().uint32());
  });

  it('rejects bad bounds with Ext4Error EINVAL', () => {
    const p = new Prng(1);
    const codeOf = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return isExt4Error(e) ? e.code : 'not an Ext4Error';
      }
      return 'no error';
    };
    expect(codeOf(() => p.int(0))).toBe('EINVAL');
    expect(codeOf(() => p.pick([]))).toBe('EINVAL');
    expect(codeOf(() => Prng.fromState(0, 0, 0, 0))).toBe('EINVAL');
  });
});

describe('mulberry32', () => {
  it('matches the reference implementation (seed 42)', () => {
    const r = mulberry32(42);
    const got = Array.from({ length: 5 }, () => Math.round(r() * 4294967296));
    expect(got).toEqual([2581720956, 1925393290, 3661312704, 2876485805, 750819978]);
  });
  it('is deterministic', () => {
    const a = mulberry32(1), b = mulberry32(1);
    for (let i = 0; i < 100; i++) expect(a()).toBe(b());
  });
});
