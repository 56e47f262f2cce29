import { describe, it, expect } from 'vitest';
import { crc32c, crc16 } from '../../lib/ext4/checksum.js';
import { defineStruct } from '../../lib/codec/layout.js';

describe('crc32c (kernel convention, no final inversion)', () => {
  it('crc32c(~0, "123456789") = 0x1CF96D7C', () => {
    expect(crc32c(0xffffffff, new TextEncoder().encode('123456789'))).toBe(0x1cf96d7c);
  });
  it('chains: crc(crc(seed, a), b) = crc(seed, a‖b)', () => {
    const a = new Uint8Array([1, 2, 3]), b = new Uint8Array([4, 5, 6, 7]);
    expect(crc32c(crc32c(7, a), b)).toBe(crc32c(7, new Uint8Array([1, 2, 3, 4, 5, 6, 7])));
  });
  it('crc16/ARC of "123456789" with init 0 is 0xBB3D', () => {
    expect(crc16(0, new TextEncoder().encode('123456789'))).toBe(0xbb3d);
  });
});

describe('defineStruct', () => {
  const S = defineStruct('t', 16, [
    ['a', 0, 'u16'],
    ['b', 4, 'u32be'],
    ['c', 8, 'bytes', 4],
    ['d', 12, 'u32'],
  ] as const);
  it('round-trips and preserves padding', () => {
    const buf = new Uint8Array(16).fill(0xaa);
    S.encode({ a: 0x1234, b: 0xc03b3998, c: new Uint8Array([1, 2, 3, 4]), d: 7 }, buf);
    expect(buf[2]).toBe(0xaa);
    expect([...buf.subarray(4, 8)]).toEqual([0xc0, 0x3b, 0x39, 0x98]);
    const v = S.decode(buf);
    expect(v.a).toBe(0x1234);
    expect(v.b).toBe(0xc03b3998);
    expect([...v.c]).toEqual([1, 2, 3, 4]);
    expect(S.offsetOf('d')).toBe(12);
  });
  it('rejects overlapping fields (on first use: the fields are laid out lazily)', () => {
    const bad = defineStruct('bad', 8, [['x', 0, 'u32'], ['y', 2, 'u16']] as const);
    expect(() => bad.offsetOf('x')).toThrow(/overlaps/);
    expect(() => bad.decode(new Uint8Array(8))).toThrow(/overlaps/);
  });
});
