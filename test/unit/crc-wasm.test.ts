/**
 * lib/codec/crc32c-wasm.ts behind crc.ts's crc32c and crc32cZeroed: the wasm loop against the JS
 * loop (crc32cPortable) and the crc-32 package on random lengths (past one scratch-full too),
 * offsets, seeds and kinds of buffer (a pooled Buffer, a view at an odd offset, shared memory);
 * zeroed ranges against hashing a copy with those bytes cleared. Under Node the wasm path must be
 * the one taken: a module that fails its check would otherwise pass here as the JS fallback.
 */
import { describe, expect, it } from 'vitest';
import CRC32C from 'crc-32/crc32c.js';
import { crc32c, crc32cPortable, crc32cUsesWasm, crc32cZeroed } from '../../lib/codec/crc.js';
import { crc32cWasmBytes, WASM_SCRATCH_BYTES } from '../../lib/codec/crc32c-wasm.js';
import { mulberry32 } from '../../lib/io/prng.js';

describe('crc32c through WebAssembly', () => {
  const rand = mulberry32(0x3a5c);
  const int = (n: number) => Math.floor(rand() * n);
  const fill = (b: Uint8Array) => {
    for (let i = 0; i < b.length; i++) b[i] = int(256);
    return b;
  };
  const seed = () => int(2 ** 32);

  it('is the path taken under Node, from a valid module', () => {
    expect(WebAssembly.validate(crc32cWasmBytes())).toBe(true);
    expect(crc32cUsesWasm()).toBe(true);
  });

  it('equals the JS loop and the crc-32 package on random ranges of every kind of buffer', () => {
    const kinds: [string, (n: number) => Uint8Array][] = [
      ['Uint8Array', (n) => new Uint8Array(n)],
      ['pooled Buffer', (n) => Buffer.allocUnsafe(n)],
      ['view at an odd offset', (n) => new Uint8Array(new ArrayBuffer(n + 13), 13, n)],
      ['shared memory', (n) => new Uint8Array(new SharedArrayBuffer(n))],
    ];
    for (const [kind, make] of kinds)
      for (let i = 0; i < 150; i++) {
        const n = i < 100 ? int(600) : int(3 * WASM_SCRATCH_BYTES);
        const buf = fill(make(n + 40));
        const start = int(40), end = start + n, s = seed();
        const want = crc32cPortable(s, buf, start, end);
        expect(crc32c(s, buf, start, end), `${kind} [${start}, ${end})`).toBe(want);
        if (i % 10 === 0) expect(~CRC32C.buf(buf.subarray(start, end), ~s) >>> 0).toBe(want);
      }
  });

  it('streams: a range hashed in two calls equals it hashed in one', () => {
    for (let i = 0; i < 50; i++) {
      const buf = fill(new Uint8Array(5000));
      const cut = int(5000), s = seed();
      expect(crc32c(crc32c(s, buf, 0, cut), buf, cut)).toBe(crc32cPortable(s, buf));
    }
  });

  it('crc32cZeroed equals hashing a copy with the ranges cleared (inode-sized and small)', () => {
    for (let i = 0; i < 300; i++) {
      const len = i % 3 === 0 ? int(64) + 1 : [128, 256, 512, 1024][int(4)]!;
      const buf = fill(new Uint8Array(len + 20));
      const start = int(20), s = seed();
      const zeroAt = int(len), zeroLen = int(Math.min(4, len - zeroAt) + 1);
      const after = zeroAt + zeroLen;
      const two = after < len && i % 2 === 0;
      const zeroAt2 = two ? after + int(len - after) : 0;
      const zeroLen2 = two ? int(Math.min(4, len - zeroAt2) + 1) : 0;
      const copy = buf.slice(start, start + len);
      copy.fill(0, zeroAt, zeroAt + zeroLen);
      copy.fill(0, zeroAt2, zeroAt2 + zeroLen2);
      const orig = buf.slice();
      expect(crc32cZeroed(s, buf, start, start + len, zeroAt, zeroLen, zeroAt2, zeroLen2), `len ${len} zero ${zeroAt}+${zeroLen}, ${zeroAt2}+${zeroLen2}`).toBe(crc32cPortable(s, copy));
      expect(buf).toEqual(orig); // the caller's bytes are left as they were
    }
  });
});
