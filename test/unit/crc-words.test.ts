/**
 * crc32cWords (whole words, slicing-by-16) against crc32c over the same bytes, for every length
 * remainder, offsets and seeds; and against the crc-32 package's crc32c on a 4 KiB bitmap.
 */
import { describe, expect, it } from 'vitest';
import CRC32C from 'crc-32/crc32c.js';
import { crc32c, crc32cWords } from '../../lib/codec/crc.js';
import { bitmapWords } from '../../lib/ext4/bitmap.js';
import { mulberry32 } from '../../lib/io/prng.js';

const rnd = mulberry32(7);
const bytes = Uint8Array.from({ length: 4096 + 64 }, () => Math.floor(rnd() * 256));
const words = bitmapWords(bytes);

describe('crc32cWords', () => {
  it('equals crc32c over the same bytes for lengths 0..80 at word offsets 0..5, several seeds', () => {
    for (const seed of [0, 1, 0xffffffff, 0x12345678])
      for (let w0 = 0; w0 < 6; w0++)
        for (let n = 0; n <= 80; n++) expect(crc32cWords(seed, words, w0, n), `seed ${seed} w0 ${w0} n ${n}`).toBe(crc32c(seed, bytes, w0 * 4, w0 * 4 + n));
  });

  it('16-byte blocks all set or all clear (the 4-lookup step) next to mixed ones, as a bitmap has them', () => {
    // Blocks of 0xff, 0x00 or random bytes in a random order, and a block of 0xff but one bit.
    const n = 4096 + 48;
    const b = new Uint8Array(n);
    for (let k = 0; k < n; k += 16) {
      const kind = Math.floor(rnd() * 4);
      for (let j = k; j < k + 16; j++) b[j] = kind === 0 ? 0xff : kind === 1 ? 0 : kind === 2 ? Math.floor(rnd() * 256) : j === k + 9 ? 0xfb : 0xff;
    }
    const w = bitmapWords(b);
    for (const seed of [0, 0xffffffff, 0x9abcdef0])
      for (const [w0, len] of [[0, 4096], [4, 4096], [1, 4100], [3, 33], [0, 16]] as const) {
        expect(crc32cWords(seed, w, w0, len), `seed ${seed} w0 ${w0} len ${len}`).toBe(crc32c(seed, b, w0 * 4, w0 * 4 + len));
        if (seed === 0xffffffff) expect(~crc32cWords(seed, w, w0, len) >>> 0).toBe(CRC32C.buf(b.subarray(w0 * 4, w0 * 4 + len)) >>> 0);
      }
  });

  it('a whole 4 KiB bitmap matches the crc-32 package (inverted convention)', () => {
    const ref = CRC32C.buf(bytes.subarray(16, 16 + 4096)) >>> 0;
    expect(~crc32cWords(0xffffffff, words, 4, 4096) >>> 0).toBe(ref);
    expect(crc32cWords(0xffffffff, words, 4, 4096)).toBe(crc32c(0xffffffff, bytes, 16, 16 + 4096));
  });
});
