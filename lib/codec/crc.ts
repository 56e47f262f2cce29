/**
 * The CRCs ext4 and jbd2 checksums are built from (e2fsprogs lib/ext2fs/crc32c.c, crc16.c).
 * crc32c here is the kernel's: Castagnoli, seeded by the
 * caller, **no final inversion** (so crc32c(~0, "123456789") = 0x1CF96D7C).
 * crc-32/crc32c computes the standard CRC (init ~seed, final ~), hence the
 * inversions around it.
 */
import CRC32C from 'crc-32/crc32c.js';

/** Kernel-style crc32c(seed, data): no pre/post inversion of its own. */
export function crc32c(seed: number, data: Uint8Array, start = 0, end = data.length): number {
  const slice = start === 0 && end === data.length ? data : data.subarray(start, end);
  return ~CRC32C.buf(slice, ~seed) >>> 0;
}

const ZERO4 = new Uint8Array(4);

export function le32(n: number): Uint8Array {
  // Byte by byte: a DataView would force the (tiny, on-heap) array to get a backing store of its
  // own, which made inodeSeed() the most expensive part of reading an inode.
  const b = new Uint8Array(4);
  b[0] = n & 0xff;
  b[1] = (n >>> 8) & 0xff;
  b[2] = (n >>> 16) & 0xff;
  b[3] = (n >>> 24) & 0xff;
  return b;
}

export function le64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, n >>> 0, true);
  dv.setUint32(4, Math.floor(n / 0x100000000), true);
  return b;
}

export function be32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, false);
  return b;
}

/** crc32c over data with the 4 bytes at `skip` treated as zero. */
export function crc32cSkipping(seed: number, data: Uint8Array, skip: number, skipLen = 4): number {
  let c = crc32c(seed, data, 0, skip);
  c = crc32c(c, ZERO4.subarray(0, skipLen));
  return crc32c(c, data, skip + skipLen, data.length);
}

// CRC-16/ARC (reflected 0xA001), used by the gdt_csum (uninit_bg) descriptor checksum.
const CRC16_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    t[i] = c;
  }
  return t;
})();

export function crc16(seed: number, data: Uint8Array, start = 0, end = data.length): number {
  let c = seed & 0xffff;
  for (let i = start; i < end; i++) c = (c >>> 8) ^ CRC16_TABLE[(c ^ data[i]!) & 0xff]!;
  return c;
}

export { ZERO4 };
