/**
 * JSON text written straight into one growing byte buffer, for outputs made of many small records
 * (`ls --json`'s rows): constant ASCII pieces stored as 32-bit words, integers four digits per
 * store (ascii-records.ts putDecimal), strings escaped exactly as JSON.stringify escapes them. In a
 * fresh process much of such a loop runs before V8 optimises it, where every store is a call:
 * fewer, wider stores are what make it fast. No on-disk bytes here; it lives beside layout.ts and
 * ascii-records.ts as the places that write bytes by offset.
 */
import { putDecimal } from './ascii-records.js';

/** A constant ASCII piece as little-endian words (padded with spaces: what follows overwrites them) and its length. */
export interface Piece {
  readonly words: Int32Array;
  readonly len: number;
}

export function piece(text: string): Piece {
  const words = new Int32Array((text.length + 3) >>> 2);
  for (let i = 0; i < words.length * 4; i++) words[i >>> 2]! |= (i < text.length ? text.charCodeAt(i) : 0x20) << (8 * (i & 3));
  return { words, len: text.length };
}

const encoder = new TextEncoder();

/** A string as JSON.stringify writes it, UTF-8, without its quotes. */
export function escapedUtf8(s: string): Uint8Array {
  const q = JSON.stringify(s);
  return encoder.encode(q.slice(1, q.length - 1));
}

/**
 * The buffer: `p` is where the next byte goes. Writers take and return a position (callers keep it
 * in a local between stores) and need room reserved first: each may scribble up to 3 bytes past
 * what it writes (whole words), which the next write overwrites.
 */
export class JsonBytes {
  buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  p = 0;

  /** Room for n more bytes (and word scratch) at p. */
  reserve(n: number): void {
    if (this.p + n + 4 <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(2 * this.buf.length, this.p + n + 4));
    bigger.set(this.buf.subarray(0, this.p));
    this.buf = bigger;
    this.dv = new DataView(bigger.buffer);
  }

  /** A constant piece at p, word by word; returns its end. */
  put(x: Piece, p: number): number {
    const dv = this.dv, w = x.words;
    for (let k = 0; k < w.length; k++) dv.setInt32(p + 4 * k, w[k]!, true);
    return p + x.len;
  }

  /** A safe integer (negative too) at p; returns its end. */
  int(v: number, p: number): number {
    if (v >= 0) return putDecimal(this.dv, p, v);
    this.buf[p] = 0x2d; // '-'
    return putDecimal(this.dv, p + 1, -v);
  }

  /** Bytes as they are at p; returns their end. */
  bytes(b: Uint8Array, p: number): number {
    this.buf.set(b, p);
    return p + b.length;
  }

  /** src[start, start + len), all ASCII, at p, escaped as JSON.stringify escapes it (up to 6 bytes per byte); returns the end. */
  escapedAscii(src: Uint8Array, start: number, len: number, p: number): number {
    const buf = this.buf;
    for (let k = start, end = start + len; k < end; k++) {
      const c = src[k]!;
      if (c >= 0x20 && c !== 0x22 && c !== 0x5c) buf[p++] = c;
      else {
        buf[p++] = 0x5c; // '\'
        const short = SHORT_ESCAPES[c];
        if (short !== undefined) buf[p++] = short;
        else {
          // \u00xx, lowercase hex
          buf[p++] = 0x75;
          buf[p++] = 0x30;
          buf[p++] = 0x30;
          buf[p++] = HEX.charCodeAt(c >>> 4);
          buf[p++] = HEX.charCodeAt(c & 15);
        }
      }
    }
    return p;
  }

  /** What was written. */
  text(): Uint8Array {
    return this.buf.subarray(0, this.p);
  }
}

const HEX = '0123456789abcdef';
/** The one-letter escapes JSON.stringify uses. */
const SHORT_ESCAPES: Record<number, number> = { 0x22: 0x22, 0x5c: 0x5c, 0x08: 0x62, 0x09: 0x74, 0x0a: 0x6e, 0x0c: 0x66, 0x0d: 0x72 };
