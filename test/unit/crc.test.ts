/**
 * lib/codec/crc.ts against two independent references: a bit-at-a-time CRC-32C (the polynomial
 * itself) and the crc-32 package's crc32c (the implementation ext4kit used before its own), on
 * random bytes, seeds and [start, end) ranges of every length up to 70 and a 4 KiB block.
 */
import { describe, expect, it } from 'vitest';
import CRC32C from 'crc-32/crc32c.js';
import { crc32c, crc32cLe32, crc32cSkipping, crc32cZeros } from '../../lib/codec/crc.js';
import { mulberry32 } from '../../lib/io/prng.js';

/** Kernel-convention crc32c, one bit at a time. */
function bitwise(seed: number, data: Uint8Array): number {
  let c = seed >>> 0;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return c >>> 0;
}

describe('crc32c', () => {
  const rand = mulberry32(0xc5c);
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
  const seed = () => Math.floor(rand() * 2 ** 32);

  it('equals the bitwise CRC and the crc-32 package on every length and offset', () => {
    for (let len = 0; len <= 70; len++) {
      for (const at of [0, 1, 3, 7]) {
        const buf = bytes(at + len + 5);
        const s = seed();
        const want = bitwise(s, buf.subarray(at, at + len));
        expect(crc32c(s, buf, at, at + len), `len ${len} at ${at}`).toBe(want);
        expect(~CRC32C.buf(buf.subarray(at, at + len), ~s) >>> 0).toBe(want);
      }
    }
    const block = bytes(4096);
    const s = seed();
    expect(crc32c(s, block)).toBe(bitwise(s, block));
  });

  it('zero runs, little-endian words and a skipped field equal hashing the bytes', () => {
    for (let i = 0; i < 50; i++) {
      const s = seed(), n = Math.floor(rand() * 2 ** 32), z = i % 9;
      expect(crc32cZeros(s, z)).toBe(bitwise(s, new Uint8Array(z)));
      expect(crc32cLe32(s, n)).toBe(bitwise(s, new Uint8Array([n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24])));
      const b = bytes(64), skip = i % 60, copy = b.slice();
      copy.fill(0, skip, skip + 4);
      expect(crc32cSkipping(s, b, skip)).toBe(bitwise(s, copy));
    }
  });

  it('an end past the buffer stops at its end', () => {
    const b = bytes(10);
    expect(crc32c(1, b, 2, 99)).toBe(bitwise(1, b.subarray(2)));
  });
});
