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
/** Bytes of records the first fill() stops after (see fill). */
const FIRST_FILL = 512;

/** QUAD[x]: the four ASCII digits of 0 ≤ x < 10^4 (leading zeros) as a little-endian word, the first digit in the low byte. Built on first use. */
let QUAD: Int32Array | undefined;

function quadTable(): Int32Array {
  const q = new Int32Array(10000);
  // Digit by digit, by additions of small integers only (every word is below 2^30): a fresh process
  // runs this interpreted, where each division made a heap number (400 KB of garbage per process).
  let x = 0;
  for (let a = 0; a < 10; a++)
    for (let b = 0; b < 10; b++)
      for (let c = 0; c < 10; c++) {
        const abc = 0x30303030 + a + (b << 8) + (c << 16);
        for (let d = 0; d < 10; d++) q[x++] = abc + (d << 24);
      }
  return (QUAD = q);
}

/** A piece as little-endian 32-bit words, padded with spaces to whole words (what follows overwrites the padding). */
function wordsOf(b: Uint8Array): Int32Array {
  const w = new Int32Array((b.length + 3) >>> 2);
  for (let i = 0; i < w.length * 4; i++) w[i >>> 2]! |= (b[i] ?? 0x20) << (8 * (i & 3));
  return w;
}

/** A column of the records' numbers. */
export type NumberColumn = Float64Array | Uint32Array;

/**
 * The records (a[i] × unit, b[i] × unit), i < n (n ≥ 1), between the pieces, encoded a buffer
 * at a time: each fill() writes the next whole records from the buffer's start, so one buffer
 * can be written out and filled again (a fresh process pays for every new page it touches — on
 * some VMs more than for encoding the bytes that go into it). a and b hold safe integers once
 * scaled.
 */
export class RecordEncoder {
  /** The next record to encode; n + 1 once the last piece is out too. */
  private i = 0;
  private readonly mw: Int32Array;
  private readonly nw: Int32Array;
  /** The most one record takes: the piece before it, two numbers, the piece between them. */
  private readonly maxRecord: number;
  /** The smallest buffer fill() accepts: a record, a word of scratch past it, the last piece. */
  readonly minBuffer: number;

  constructor(
    private readonly pieces: RecordPieces,
    private readonly n: number,
    private readonly a: NumberColumn,
    private readonly b: NumberColumn,
    private readonly unit: number,
  ) {
    this.mw = wordsOf(pieces.mid);
    this.nw = wordsOf(pieces.next);
    this.maxRecord = Math.max(pieces.first.length, pieces.next.length) + pieces.mid.length + 2 * MAX_DIGITS;
    this.minBuffer = this.maxRecord + 4 + pieces.last.length;
  }

  /** Whether every byte was encoded (fill would return 0): a caller stops without one more call. */
  get done(): boolean {
    return this.i > this.n;
  }

  /** Bytes for all of it at once: an upper bound. */
  get totalBound(): number {
    return this.n * this.maxRecord + 4 + this.pieces.last.length;
  }

  /** The DataView of the last buffer filled (one per buffer, not per fill). */
  private view: DataView | undefined;

  /** Encode the next whole records into `out` (≥ minBuffer bytes) from byte 0: returns how many bytes, 0 once all was encoded. */
  fill(out: Uint8Array): number {
    let dv = this.view;
    if (dv === undefined || dv.buffer !== out.buffer || dv.byteOffset !== out.byteOffset || dv.byteLength !== out.byteLength) dv = this.view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    const { n, a, b, unit, mw, nw } = this;
    const { first, mid, next, last } = this.pieces;
    let i = this.i;
    if (i > n) return 0;
    if (out.length < this.minBuffer) throw new RangeError(`a buffer of ${out.length} bytes cannot hold a record (${this.minBuffer})`);
    const q = QUAD ?? quadTable();
    const mLen = mid.length, nLen = next.length;
    // A record may start while the widest one and the scratch word past it still fit. The first
    // call stops after a few records: V8 optimises the loop mid-call, and optimised code that
    // reaches what never ran (the code after the loop, no type feedback) falls back to the
    // interpreter for the rest of the call — three times per 13 MB before.
    const limit = out.length - this.maxRecord - 4 - (i === 0 ? Math.max(0, out.length - FIRST_FILL) : 0);
    let p = 0;
    // Each constant piece as its words (the padding past it is scratch the next digits overwrite).
    for (; i < n && p <= limit; i++) {
      if (i === 0) {
        out.set(first, 0);
        p = first.length;
      } else {
        for (let k = 0; k < nw.length; k++) dv.setInt32(p + 4 * k, nw[k]!, true);
        p += nLen;
      }
      // The two numbers (the mid piece before the second), their digits written here as
      // writeDecimal writes them, not through it: a fresh process runs this loop interpreted
      // at first, where three nested calls per number were most of its cost, and V8 then
      // compiled each of them on its own as well as inlined here (three more TurboFan jobs).
      for (let f = 0; f < 2; f++) {
        if (f === 1) {
          for (let k = 0; k < mw.length; k++) dv.setInt32(p + 4 * k, mw[k]!, true);
          p += mLen;
        }
        const v = (f === 0 ? a[i]! : b[i]!) * unit;
        if (v >= 1e16) {
          p = writeDecimal(dv, q, p, v);
          continue;
        }
        // Up to 8 leading digits (the first 1 to 4 of them, then 4), then 8 low ones past 10^8.
        let lead = v, low = -1;
        if (v >= 1e8) {
          lead = Math.floor(v / 1e8);
          low = (v - lead * 1e8) | 0;
        }
        let x = lead | 0, next4 = -1;
        if (x >= 10000) {
          const h = (x / 10000) | 0;
          next4 = x - h * 10000;
          x = h;
        }
        const k = x < 100 ? (x < 10 ? 1 : 2) : x < 1000 ? 3 : 4;
        dv.setInt32(p, q[x]! >>> ((4 - k) << 3), true);
        p += k;
        if (next4 >= 0) {
          dv.setInt32(p, q[next4]!, true);
          p += 4;
        }
        if (low >= 0) {
          const h = (low / 10000) | 0;
          dv.setInt32(p, q[h]!, true);
          dv.setInt32(p + 4, q[low - h * 10000]!, true);
          p += 8;
        }
      }
    }
    if (i === n && p + last.length <= out.length) {
      out.set(last, p);
      p += last.length;
      i++;
    }
    this.i = i;
    return p;
  }
}

/** All n ≥ 1 records at once (RecordEncoder into one buffer sized for the widest numbers, each fill after the last): a view of it. */
export function encodeRecords(pieces: RecordPieces, n: number, a: NumberColumn, b: NumberColumn, unit: number): Uint8Array {
  const enc = new RecordEncoder(pieces, n, a, b, unit);
  const out = new Uint8Array(enc.totalBound + enc.minBuffer);
  let p = 0;
  for (let k = enc.fill(out); k > 0; k = enc.fill(out.subarray(p))) p += k;
  return out.subarray(0, p);
}

/**
 * The decimal digits of a safe integer v ≥ 0 at byte p; returns their end (up to 3 bytes past it are scratch). Eight low digits at a time as int32.
 * RecordEncoder.fill writes values below 10^16 the same way inline (a fresh `free` over 244,508
 * runs: 0.29 s of CPU against 0.315 s through this function): a change here goes there too.
 */
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

/**
 * The decimal digits of a safe integer v ≥ 0 at byte p of dv (writeDecimal: four digits per
 * store); returns their end. Up to 3 bytes past it are overwritten (scratch for what follows).
 */
export function putDecimal(dv: DataView, p: number, v: number): number {
  return writeDecimal(dv, QUAD ?? quadTable(), p, v);
}
