import { describe, expect, it } from 'vitest';
import { countClear, fillBits, findBit } from '../../lib/ext4/bit-runs.js';
import { RO_COMPAT } from '../../lib/ext4/superblock.js';
import { firstUnmarkedFixed, FixedIndex, type FixedExtent } from '../../lib/ext4/fixed-metadata.js';

// Bit-by-bit references (bits past the end read as clear, writes there ignored).
const bit = (bm: Uint8Array, i: number) => ((bm[i >>> 3] ?? 0) >> (i & 7)) & 1;
function refFind(bm: Uint8Array, from: number, to: number, value: boolean): number {
  for (let i = from; i < to; i++) if (bit(bm, i) === +value) return i;
  return -1;
}
function refFill(bm: Uint8Array, from: number, to: number, value: boolean): void {
  for (let i = from; i < to && i >>> 3 < bm.length; i++) {
    if (value) bm[i >>> 3]! |= 1 << (i & 7);
    else bm[i >>> 3]! &= ~(1 << (i & 7));
  }
}
function refCount(bm: Uint8Array, n: number): number {
  let free = 0;
  for (let i = 0; i < n; i++) if (!bit(bm, i)) free++;
  return free;
}

/** xorshift32, fixed seed. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s % n;
  };
}

/** A bitmap of `bytes` bytes at byte offset `off` of its buffer: mostly long runs of one value (as in a real group), some noise. */
function bitmap(r: (n: number) => number, bytes: number, off: number): Uint8Array {
  const bm = new Uint8Array(new ArrayBuffer(bytes + off + 3), off, bytes);
  let i = 0;
  while (i < bytes * 8) {
    const len = 1 + r(r(4) === 0 ? 300 : 40), v = r(2) === 1;
    refFill(bm, i, i + len, v);
    i += len;
  }
  return bm;
}

describe('bit-runs: word-wise against bit by bit', () => {
  const r = rng(0x5eed);
  const cases: { bm: Uint8Array; from: number; to: number }[] = [];
  for (let k = 0; k < 400; k++) {
    const bytes = [1, 3, 4, 7, 8, 9, 33, 64, 130, 512][r(10)]!;
    const bm = bitmap(r, bytes, r(4));
    const n = bytes * 8;
    const edges = [0, 1, 7, 8, 31, 32, 33, 63, 64, n - 33, n - 32, n - 9, n - 8, n - 1, n, n + 5].filter((x) => x >= 0);
    const pick = () => (r(3) === 0 ? edges[r(edges.length)]! : r(n + 2));
    let from = pick(), to = pick();
    if (from > to) [from, to] = [to, from];
    if (r(5) === 0) to = from + 1; // 1-bit runs
    cases.push({ bm, from, to });
  }
  // Whole bitmaps of one value with a single odd bit at each edge position.
  for (const bytes of [4, 12, 4096]) for (const pos of [0, 1, 31, 32, 33, bytes * 8 - 1]) for (const v of [0, 0xff]) {
    const bm = new Uint8Array(bytes).fill(v);
    refFill(bm, pos, pos + 1, v === 0);
    cases.push({ bm, from: 0, to: bytes * 8 }, { bm, from: pos, to: bytes * 8 }, { bm, from: pos + 1, to: bytes * 8 });
  }

  it('findBit finds the first set / clear bit of a range', () => {
    for (const { bm, from, to } of cases)
      for (const v of [true, false]) expect(findBit(bm, from, to, v), `${bm.length}@${bm.byteOffset} [${from},${to}) ${v}`).toBe(refFind(bm, from, to, v));
  });

  it('fillBits sets and clears exactly the range', () => {
    for (const { bm, from, to } of cases)
      for (const v of [true, false]) {
        const a = bm.slice(), b = bm.slice();
        fillBits(a, from, to, v);
        refFill(b, from, to, v);
        expect(a, `${bm.length} [${from},${to}) ${v}`).toEqual(b);
      }
  });

  it('countClear counts the clear bits of [0, n)', () => {
    for (const { bm, to } of cases) {
      expect(countClear(bm, to)).toBe(refCount(bm, to));
      expect(countClear(bm, bm.length * 8)).toBe(refCount(bm, bm.length * 8));
    }
  });

  it('firstUnmarkedFixed names the first fixed block whose cluster bit is clear', () => {
    // One group of 8192 blocks, clusters of 1, 2 or 16 blocks; the fixed runs' bits set except one.
    for (const ratio of [1, 2, 16]) {
      const perGroup = 8192, clusters = perGroup / ratio;
      const geo = { s_first_data_block: 0, s_blocks_per_group: perGroup, s_clusters_per_group: clusters, s_log_cluster_size: Math.log2(ratio) + 2, s_log_block_size: 2, s_feature_ro_compat: ratio > 1 ? RO_COMPAT.BIGALLOC : 0, blocksCount: perGroup * 2, groupCount: 2 } as never;
      for (let k = 0; k < 40; k++) {
        const extents: FixedExtent[] = [];
        for (let s = r(50); s < perGroup; s += 1 + r(900)) {
          const length = 1 + r(r(2) ? 3 : 600);
          extents.push({ start: s, length: Math.min(length, perGroup - s), kind: 'inode_table', group: 0 });
          s += length;
        }
        const bm = new Uint8Array(clusters / 8);
        for (const e of extents) refFill(bm, Math.floor(e.start / ratio), Math.floor((e.start + e.length - 1) / ratio) + 1, true);
        const index = new FixedIndex(extents);
        expect(firstUnmarkedFixed(geo, index, 0, bm)).toBeNull();
        const e = extents[r(extents.length)]!, b = e.start + r(e.length);
        refFill(bm, Math.floor(b / ratio), Math.floor(b / ratio) + 1, false);
        // Bit by bit: the first block, in extent order, whose cluster is clear.
        let want: { extent: FixedExtent; block: number } | null = null;
        for (const x of index.extents) {
          for (let y = x.start; y < x.start + x.length && !want; y++) if (!bit(bm, Math.floor(y / ratio))) want = { extent: x, block: y };
          if (want) break;
        }
        expect(want).not.toBeNull();
        expect(firstUnmarkedFixed(geo, index, 0, bm)).toEqual(want);
      }
    }
  });
});
