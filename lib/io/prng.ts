/**
 * Small seeded pseudo-random generators for reproducible tests (crash-point
 * sampling, fuzzing). Not cryptographic.
 *
 * - `mulberry32(seed)`, `xorshift32(seed)`: one-word generators returning floats in [0, 1).
 * - `Prng`: xoshiro128** seeded through splitmix32 (from a number or a
 *   string), with integer/float/choice/shuffle helpers and `fork()` for
 *   independent sub-streams.
 */
import { Ext4Error } from '../errors.js';

/** mulberry32: returns a function producing floats in [0, 1), deterministic in `seed`. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** xorshift32 (13, 17, 5): floats in [0, 1), deterministic in `seed` (0 counts as 1). The benches' trees are built from it. */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

/** FNV-1a's offset basis: `hashString(s)` is `hashString(s, FNV_OFFSET)`. */
export const FNV_OFFSET = 0x811c9dc5;

/**
 * FNV-1a over the UTF-16 code units of a string: turns a string seed into 32 bits. Continued
 * from `h`, it hashes a seed given in pieces: `hashString(b, hashString(a))` is `hashString(a + b)`,
 * and `new Prng(that)` seeds as `new Prng(a + b)` does.
 */
export function hashString(s: string, h = FNV_OFFSET): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function splitmix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

/** xoshiro128** generator. Same seed → same sequence, on every platform. */
export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number | string = 0) {
    const init = typeof seed === 'string' ? hashString(seed) : Number.isFinite(seed) ? (Math.trunc(seed) ^ Math.trunc(seed / 4294967296)) >>> 0 : 0;
    const sm = splitmix32(init);
    this.s0 = sm();
    this.s1 = sm();
    this.s2 = sm();
    this.s3 = sm();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // all-zero state is a fixed point
  }

  /** A generator with an explicit xoshiro128** state (for test vectors); not all zero. */
  static fromState(s0: number, s1: number, s2: number, s3: number): Prng {
    const p = new Prng(0);
    p.s0 = s0 >>> 0;
    p.s1 = s1 >>> 0;
    p.s2 = s2 >>> 0;
    p.s3 = s3 >>> 0;
    if ((p.s0 | p.s1 | p.s2 | p.s3) === 0) throw new Ext4Error('EINVAL', 'xoshiro128** state must not be all zero');
    return p;
  }

  /** Next 32-bit unsigned integer. */
  uint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Float in [0, 1) (32 bits of randomness). Usable as a `() => number` via `prng.next`. */
  readonly next = (): number => this.uint32() / 4294967296;

  /** Integer in [0, n), unbiased (rejection sampling). n must be in 1..2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 4294967296) throw new Ext4Error('EINVAL', `Prng.int: bad bound ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.uint32();
      if (x < limit) return x % n;
    }
  }

  /** Integer in [lo, hi] inclusive. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** A uniformly chosen element. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Ext4Error('EINVAL', 'Prng.pick: empty list');
    return items[this.int(items.length)] as T;
  }

  /** Fisher–Yates shuffle, in place; returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i] as T;
      items[i] = items[j] as T;
      items[j] = tmp;
    }
    return items;
  }

  /** An independent generator seeded from this one's stream. */
  fork(): Prng {
    return new Prng(this.uint32());
  }
}
