/**
 * lib/ext4/free-runs-wasm.ts against the JS scan it stands in for (free-space.ts
 * appendFreeRunsAt, crc.ts crc32cWords): random bitmaps of every texture (all used, all free,
 * long runs, single bits, mixed words), random [lo, hi) clips and block bases, runs merged
 * across records and across calls, a table that must grow mid-batch, and checksums right (32-
 * and 16-bit) and wrong. Fixed seeds.
 */
import { describe, expect, it } from 'vitest';
import { crc32cWords } from '../../lib/codec/crc.js';
import { ALL_FREE_FLAG, FreeRunsWasm, VERIFY_FLAG } from '../../lib/ext4/free-runs-wasm.js';
import { RunTable, appendFreeRunsAt } from '../../lib/ext4/free-space.js';
import { mulberry32 } from '../../lib/io/prng.js';

const rand = mulberry32(0xf4ee);
const int = (n: number) => Math.floor(rand() * n);

/** A bitmap of `bytes` bytes: runs of set and clear bits of random lengths, by texture. */
function bitmap(bytes: number): Uint8Array {
  const b = new Uint8Array(bytes);
  const texture = int(6);
  if (texture === 0) return b.fill(0xff);
  if (texture === 1) return b;
  if (texture === 2) {
    for (let i = 0; i < bytes; i++) b[i] = int(256);
    return b;
  }
  const maxRun = [0, 0, 0, 4, 200, 5000][texture]!;
  let set = rand() < 0.5;
  for (let bit = 0; bit < bytes * 8; ) {
    const len = 1 + int(maxRun);
    if (set) for (let k = bit; k < Math.min(bit + len, bytes * 8); k++) b[k >>> 3] = b[k >>> 3]! | (1 << (k & 7));
    bit += len;
    set = !set;
  }
  return b;
}

describe('free-runs-wasm', () => {
  it('finds the runs, free counts and checksum verdicts the JS scan finds', () => {
    for (let round = 0; round < 60; round++) {
      const bs = [1024, 2048, 4096][int(3)]!;
      const nbits = bs * 8;
      const perBatch = 1 + int(12);
      // A small first table, so that it must grow mid-scan.
      const k = FreeRunsWasm.open(perBatch * bs, bs, 1 + int(40), int(2) * 4096)!;
      expect(k).not.toBeNull();
      const js = new RunTable(1, true);
      let first = 1 + int(1000);
      const seed = int(2 ** 31), full = rand() < 0.5;
      for (let call = 0; call < 3; call++) {
        const batch = k.batch();
        const nrec = 1 + int(perBatch);
        const expectFree: number[] = [];
        let bad = -1;
        // One checksum length per call, as a filesystem has (not always a multiple of 16: the byte tail).
        const csumBytes = bs - 4 * int(3);
        for (let r = 0; r < nrec; r++) {
          const off = r * bs;
          batch.set(bitmap(bs), off);
          const words = new Int32Array(batch.buffer, batch.byteOffset + off, bs / 4);
          const c = crc32cWords(seed, words, 0, csumBytes);
          const wrong = rand() < 0.05;
          const stored = wrong ? (c ^ (full ? 1 << int(32) : 1 << int(16))) >>> 0 : full ? c : (c & 0xffff) | (int(0x10000) << 16);
          const verify = rand() < 0.7;
          const allFree = rand() < 0.1;
          // Whole groups mostly; sometimes clipped, sometimes past nbits (clipped to it).
          const lo = rand() < 0.7 ? 0 : int(nbits), hi = rand() < 0.7 ? nbits : lo + int(nbits + 64 - lo);
          k.setRecord(r, off, lo, hi, first, stored, (verify ? VERIFY_FLAG : 0) | (allFree ? ALL_FREE_FLAG : 0));
          if (bad < 0) {
            if (verify && !allFree && wrong) bad = r;
            else if (allFree) {
              js.push(first + lo, hi - lo);
              expectFree.push(hi - lo);
            } else expectFree.push(lo < hi ? appendFreeRunsAt(words, 0, bs / 4, lo, hi, first, js) : 0);
          }
          first += rand() < 0.8 ? nbits : nbits + 1 + int(100);
        }
        const got = k.scan(nrec, csumBytes, seed, full, nbits);
        expect(got).toBe(bad);
        const upTo = bad < 0 ? nrec : bad;
        for (let r = 0; r < upTo; r++) expect(k.freeOf(r), `round ${round} call ${call} record ${r}`).toBe(expectFree[r]);
        if (bad >= 0) break;
      }
      const t = k.table();
      expect(t.start.length).toBe(js.n);
      // The first run that differs, if any.
      let i = 0;
      while (i < js.n && t.start[i] === js.start[i] && t.len[i] === js.len[i]) i++;
      expect(i < js.n ? [i, t.start[i], t.len[i]] : null, `round ${round}`).toEqual(i < js.n ? [i, js.start[i], js.len[i]] : null);
    }
  });
});
