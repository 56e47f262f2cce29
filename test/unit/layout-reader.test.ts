import { describe, expect, it } from 'vitest';
import { defineStruct } from '../../lib/codec/layout.js';
import { InodeBaseLayout, InodeExtraLayout, inodeChecksum } from '../../lib/ext4/inode.js';
import { crc32c, inodeSeed } from '../../lib/ext4/checksum.js';

// Struct.reader: a field reader resolved once; the same value and the same RangeError as get().
describe('Struct.reader', () => {
  const S = defineStruct('reader test', 24, [
    ['a', 0, 'u8'],
    ['b', 2, 'u16'],
    ['c', 4, 'u32'],
    ['d', 8, 'u64'],
    ['e', 16, 'u16be'],
    ['f', 20, 'u32be'],
  ] as const);
  const bytes = new Uint8Array(64);
  let x = 12345;
  for (let i = 0; i < bytes.length; i++) bytes[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  bytes[15] = 0; // keep d below 2^53

  it('reads what get() reads, at every offset', () => {
    for (const field of ['a', 'b', 'c', 'd', 'e', 'f'] as const) {
      const read = S.reader(field);
      for (let off = 0; off + 24 <= bytes.length; off += 4) {
        if (field === 'd' && bytes[off + 15] !== 0) continue; // u64 above 2^53 is not a number
        expect(read(bytes, off)).toBe(S.get(bytes, field, off));
      }
    }
  });

  it('throws the RangeError get() throws past the buffer, and refuses unknown fields', () => {
    const read = S.reader('f');
    expect(() => read(bytes, 41)).toThrow(RangeError);
    expect(() => S.get(bytes, 'f', 41)).toThrow(RangeError);
    expect(() => read(bytes, -1)).toThrow(RangeError);
    expect(read(bytes, 40)).toBe(S.get(bytes, 'f', 40));
    expect(() => S.reader('nope' as never)).toThrow(/no field nope/);
  });
});

// inodeChecksum hashes the slot in place, the checksum halves as zeros (ext4_inode_csum).
describe('inode checksum over the slot in place', () => {
  it('equals crc32c over a copy with both checksum halves zeroed', () => {
    for (const extraIsize of [0, 4, 32]) {
      const raw = new Uint8Array(256);
      for (let i = 0; i < raw.length; i++) raw[i] = (i * 37 + 11) & 0xff;
      InodeExtraLayout.set(raw, 'i_extra_isize', extraIsize);
      const c = inodeChecksum(raw, 77, 0x1234, 0xdeadbeef, 256);
      const copy = raw.slice();
      InodeBaseLayout.set(copy, 'i_checksum_lo', 0);
      const hasHi = extraIsize >= 4;
      if (hasHi) InodeExtraLayout.set(copy, 'i_checksum_hi', 0);
      const want = crc32c(inodeSeed(0xdeadbeef, 77, 0x1234), copy);
      expect(c.lo).toBe(want & 0xffff);
      expect(c.hi).toBe(hasHi ? want >>> 16 : null);
    }
  });
});
