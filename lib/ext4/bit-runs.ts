/**
 * Bit runs of a bitmap handled a byte or a 32-bit word at a time: find the
 * first bit of a value in a range, set or clear a range, count set bits.
 * The allocator's checks and flips run over whole groups (a movedata commit
 * frees 65,536 bits; validating a bitmap walks thousands of fixed blocks and
 * counts 32,768 bits) in a fresh process, where a call per bit runs as cold,
 * interpreted code: here only a run's edges go bit by bit.
 *
 * Results are those of the bit-by-bit loops over testBit/setBit/clearBit
 * (lib/ext4/bitmap.ts), bits past the end of `bm` reading as clear and
 * ignored when written. A word all set or all clear reads the same in either
 * byte order, and partial words are handled as bytes, so no endianness
 * question arises; words are viewed only where their address is aligned.
 */

/** The lowest set bit of a non-zero byte or word. */
export function ctz(x: number): number {
  return 31 - Math.clz32(x & -x);
}

function bitAt(bm: Uint8Array, i: number): boolean {
  return ((bm[i >>> 3] ?? 0) & (1 << (i & 7))) !== 0;
}

/**
 * The first bit in [from, to) that is `value` (set: true), or -1 when there is none.
 * Bits past the end of `bm` are clear.
 */
export function findBit(bm: Uint8Array, from: number, to: number, value: boolean): number {
  const limit = bm.length << 3;
  const end = to < limit ? to : limit;
  let i = from;
  // Leading bits up to a byte boundary.
  while (i < end && (i & 7) !== 0) {
    if (bitAt(bm, i) === value) return i;
    i++;
  }
  const skip = value ? 0 : 0xff; // a byte with no bit of the value
  let byte = i >>> 3;
  const last = end >>> 3; // bytes [byte, last) lie whole in the range
  while (byte < last && ((bm.byteOffset + byte) & 3) !== 0) {
    if (bm[byte] !== skip) return (byte << 3) + ctz(value ? bm[byte]! : ~bm[byte]! & 0xff);
    byte++;
  }
  if (last - byte >= 8) {
    const words = new Int32Array(bm.buffer, bm.byteOffset + byte, (last - byte) >>> 2);
    const wskip = value ? 0 : -1;
    let w = 0;
    while (w < words.length && words[w] === wskip) w++;
    byte += w << 2; // (a differing word is found again below, a byte at a time)
  }
  while (byte < last) {
    if (bm[byte] !== skip) return (byte << 3) + ctz(value ? bm[byte]! : ~bm[byte]! & 0xff);
    byte++;
  }
  for (i = i > last << 3 ? i : last << 3; i < end; i++) if (bitAt(bm, i) === value) return i;
  if (!value && to > limit && from < to) return from > limit ? from : limit;
  return -1;
}

/** Set (value true) or clear bits [from, to); whole bytes filled at once. */
export function fillBits(bm: Uint8Array, from: number, to: number, value: boolean): void {
  const limit = bm.length << 3;
  const end = to < limit ? to : limit;
  let i = from;
  while (i < end && (i & 7) !== 0) {
    if (value) bm[i >>> 3]! |= 1 << (i & 7);
    else bm[i >>> 3]! &= ~(1 << (i & 7));
    i++;
  }
  const whole = end & ~7;
  if (i < whole) {
    bm.fill(value ? 0xff : 0, i >>> 3, whole >>> 3);
    i = whole;
  }
  for (; i < end; i++) {
    if (value) bm[i >>> 3]! |= 1 << (i & 7);
    else bm[i >>> 3]! &= ~(1 << (i & 7));
  }
}

/** Set bits of a 32-bit value. */
function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/** Clear bits in [0, n) (a group's free count): whole words by popcount. Bits past the end of `bm` are clear. */
export function countClear(bm: Uint8Array, n: number): number {
  const limit = bm.length << 3;
  const end = n < limit ? n : limit;
  const last = end >>> 3;
  let used = 0, byte = 0;
  while (byte < last && ((bm.byteOffset + byte) & 3) !== 0) used += popcount(bm[byte++]!);
  if (last - byte >= 4) {
    const words = new Int32Array(bm.buffer, bm.byteOffset + byte, (last - byte) >>> 2);
    for (let w = 0; w < words.length; w++) {
      const x = words[w]!;
      if (x !== 0) used += x === -1 ? 32 : popcount(x);
    }
    byte += words.length << 2;
  }
  while (byte < last) used += popcount(bm[byte++]!);
  for (let i = last << 3; i < end; i++) if (bitAt(bm, i)) used++;
  return n - used;
}
