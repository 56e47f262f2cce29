/**
 * Text made of many records of two integers between constant pieces, encoded straight into bytes:
 * what `free --json` prints for a whole disk (hundreds of thousands of {start, len} records).
 * A 32-bit word per store (the constant pieces, four digits at a time) through a DataView at any
 * byte offset: in a fresh process most of such a loop runs before V8 has optimised it, where
 * every store is a call, so fewer and wider stores is what makes it fast. No on-disk bytes here;
 * it lives beside layout.ts as the one other place that writes bytes by offset.
 */

/** The constant text of a record list: `first a0 mid b0 next a1 mid b1 … last` (ASCII). */
export interface RecordPieces {
  first: Uint8Array;
  mid: Uint8Array;
  next: Uint8Array;
  last: Uint8Array;
}

/** Digits of the longest safe integer. */
const MAX_DIGITS = 16;

/** QUAD[x]: the four ASCII digits of 0 ≤ x < 10^4 (leading zeros) as a little-endian word, the first digit in the low byte. Built on first use. */
let QUAD: Int32Array | undefined;

function quadTable(): Int32Array {
  const q = new Int32Array(10000);
  for (let x = 0; x < 10000; x++) q[x] = (0x30 + ((x / 1000) | 0)) | ((0x30 + (((x / 100) | 0) % 10)) << 8) | ((0x30 + (((x / 10) | 0) % 10)) << 16) | ((0x30 + (x % 10)) << 24);
  return (QUAD = q);
}

/** A piece as little-endian 32-bit words, padded with spaces to whole words (what follows overwrites the padding). */
function wordsOf(b: Uint8Array): Int32Array {
  const w = new Int32Array((b.length + 3) >>> 2);
  for (let i = 0; i < w.length * 4; i++) w[i >>> 2]! |= (b[i] ?? 0x20) << (8 * (i & 3));
  return w;
}

/**
 * The n records (a[i] × unit, b[i] × unit), i < n ≥ 1, between the pieces; a and b hold safe
 * integers once scaled. Returns the bytes (a view of a buffer sized for the widest numbers).
 */
export function encodeRecords(pieces: RecordPieces, n: number, a: Float64Array, b: Float64Array, unit: number): Uint8Array {
  const { first, mid, next, last } = pieces;
  const q = QUAD ?? quadTable();
  const mw = wordsOf(mid), nw = wordsOf(next);
  // Room for the widest numbers, and a word of scratch past the end.
  const out = new Uint8Array(first.length + last.length + n * (next.length + mid.length + 2 * MAX_DIGITS) + 4);
  const dv = new DataView(out.buffer);
  out.set(first, 0);
  let p = writeDecimal(dv, q, first.length, a[0]! * unit);
  // Each constant piece as its words (the padding past it is scratch the next digits overwrite).
  const mLen = mid.length, nLen = next.length;
  for (let i = 0; ; ) {
    for (let k = 0; k < mw.length; k++) dv.setInt32(p + 4 * k, mw[k]!, true);
    p = writeDecimal(dv, q, p + mLen, b[i]! * unit);
    if (++i === n) break;
    for (let k = 0; k < nw.length; k++) dv.setInt32(p + 4 * k, nw[k]!, true);
    p = writeDecimal(dv, q, p + nLen, a[i]! * unit);
  }
  out.set(last, p);
  return out.subarray(0, p + last.length);
}

/** The decimal digits of a safe integer v ≥ 0 at byte p; returns their end (up to 3 bytes past it are scratch). Eight low digits at a time as int32. */
function writeDecimal(dv: DataView, q: Int32Array, p: number, v: number): number {
  if (v < 1e8) return writeSmall(dv, q, p, v | 0);
  const hi = Math.floor(v / 1e8);
  const lo = (v - hi * 1e8) | 0;
  p = hi < 1e8 ? writeSmall(dv, q, p, hi) : writeDecimal(dv, q, p, hi);
  const a = (lo / 10000) | 0;
  dv.setInt32(p, q[a]!, true);
  dv.setInt32(p + 4, q[lo - a * 10000]!, true);
  return p + 8;
}

/** writeDecimal for 0 ≤ x < 10^8 (an int32). */
function writeSmall(dv: DataView, q: Int32Array, p: number, x: number): number {
  if (x < 10000) return writeUpTo4(dv, q, p, x);
  const a = (x / 10000) | 0;
  p = writeUpTo4(dv, q, p, a);
  dv.setInt32(p, q[x - a * 10000]!, true);
  return p + 4;
}

/** 0 ≤ x < 10^4 without leading zeros: its word shifted down by the zeros, stored whole. */
function writeUpTo4(dv: DataView, q: Int32Array, p: number, x: number): number {
  const k = x < 100 ? (x < 10 ? 1 : 2) : x < 1000 ? 3 : 4;
  dv.setInt32(p, q[x]! >>> ((4 - k) << 3), true);
  return p + k;
}
