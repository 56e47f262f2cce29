/**
 * The CRCs ext4 and jbd2 checksums are built from (e2fsprogs lib/ext2fs/crc32c.c, crc16.c).
 * crc32c here is the kernel's: Castagnoli (reflected 0x82F63B78), seeded by the caller,
 * **no final inversion** (so crc32c(~0, "123456789") = 0x1CF96D7C, inverted: 0xE3069283).
 * Table-driven, eight bytes per step ("slicing-by-8"); the tables are built on first use, and a
 * [start, end) range is hashed in place (no subarray per call: descriptors, inodes and
 * directory blocks hash two or three ranges of a buffer each). Whole bitmaps (a 1 TiB `free`
 * checks 23 MB of them) go 16 bytes per step from 32-bit words: crc32cWords.
 * Ranges of WASM_MIN bytes or more go through crc32c-wasm.ts (the same tables as machine code from
 * the first call: a fresh process's 10,000 inode checksums would otherwise run as cold JS), copied
 * into its memory; where WebAssembly is missing or fails its check, the JS loop does everything.
 */
import { instantiateCrc32cWasm, WASM_SCRATCH, WASM_SCRATCH_BYTES, type Crc32cWasm } from './crc32c-wasm.js';

let tables: Int32Array | undefined;
/** The last 12 bytes' part of a slicing-by-16 step over 16 bytes of 0xff: T11[0xff] ^ … ^ T0[0xff]. */
let onesTail = 0;

/** T0..T15 (256 entries each): T0 is the byte table, Tk[n] = T0[T(k-1)[n] & 0xff] ^ T(k-1)[n] >>> 8. */
function crcTables(): Int32Array {
  const t = new Int32Array(16 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]!;
    for (let k = 1; k < 16; k++) {
      c = t[c & 0xff]! ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  for (let k = 0; k < 12; k++) onesTail ^= t[k * 256 + 0xff]!;
  return (tables = t);
}

/** The slicing tables (T0..T15, 256 entries each; read-only): what a wasm module that hashes copies into its memory. */
export function crc32cTables(): Int32Array {
  return tables ?? crcTables();
}

/** Kernel-style crc32c(seed, data[start..end)): no pre/post inversion of its own. */
export function crc32c(seed: number, data: Uint8Array, start = 0, end = data.length): number {
  if (end > data.length) end = data.length;
  if (end - start >= WASM_MIN && start >= 0) {
    const w = wasm === undefined ? loadWasm() : wasm;
    if (w !== null) return viaWasm(w, seed, data, start, end, 0, 0, 0, 0);
  }
  return crc32cPortable(seed, data, start, end);
}

/**
 * crc32c(seed, data[start..end)) with the bytes at [start + zeroAt, + zeroLen) and
 * [start + zeroAt2, + zeroLen2) hashed as zeros: a structure whose checksum fields count as zero
 * (ext4_inode_csum's two halves), in one pass instead of five ranges. The ranges lie inside
 * [start, end), the first before the second.
 */
export function crc32cZeroed(seed: number, data: Uint8Array, start: number, end: number, zeroAt: number, zeroLen: number, zeroAt2 = 0, zeroLen2 = 0): number {
  if (end > data.length) end = data.length;
  const n = end - start;
  if (n >= WASM_MIN && n <= WASM_SCRATCH_BYTES && start >= 0 && zeroAt + zeroLen <= n && zeroAt2 + zeroLen2 <= n) {
    const w = wasm === undefined ? loadWasm() : wasm;
    if (w !== null) return viaWasm(w, seed, data, start, end, zeroAt, zeroLen, zeroAt2, zeroLen2);
  }
  let c = crc32cPortable(seed, data, start, start + zeroAt);
  c = crc32cZeros(c, zeroLen);
  if (zeroLen2 === 0) return crc32cPortable(c, data, start + zeroAt + zeroLen, end);
  c = crc32cPortable(c, data, start + zeroAt + zeroLen, start + zeroAt2);
  c = crc32cZeros(c, zeroLen2);
  return crc32cPortable(c, data, start + zeroAt2 + zeroLen2, end);
}

/** Ranges shorter than this stay in JS (a copy and a call into wasm cost about what 64 bytes of the JS loop do). */
const WASM_MIN = 64;
/** The wasm instance once loaded, null where it is unavailable or failed its check. */
let wasm: Crc32cWasm | null | undefined;

function loadWasm(): Crc32cWasm | null {
  const w = instantiateCrc32cWasm(tables ?? crcTables());
  // Checked against the JS loop on every length up to 80 and two offsets (every residue mod 8 at
  // both ends): a host that lays the tables out differently (big-endian) keeps the JS loop.
  if (w !== null) {
    const probe = new Uint8Array(96);
    for (let i = 0; i < probe.length; i++) probe[i] = (i * 167 + 13) & 0xff;
    for (let n = 0; n <= 80 && w !== null; n++)
      for (const at of [0, 3]) {
        w.mem.set(probe.subarray(at, at + n), WASM_SCRATCH);
        if (w.crc(0x1234567 * n, WASM_SCRATCH, n) >>> 0 !== crc32cPortable(0x1234567 * n, probe, at, at + n)) return (wasm = null);
      }
  }
  return (wasm = w);
}

/** Whether crc32c runs through WebAssembly here (tests: a broken module must not pass silently as the JS fallback). */
export function crc32cUsesWasm(): boolean {
  return (wasm === undefined ? loadWasm() : wasm) !== null;
}

/** data[start, end) through the wasm scratch, a scratch-full at a time (zero ranges only when it fits in one). */
function viaWasm(w: Crc32cWasm, seed: number, data: Uint8Array, start: number, end: number, zeroAt: number, zeroLen: number, zeroAt2: number, zeroLen2: number): number {
  const mem = w.mem;
  let c = seed | 0;
  for (let at = start; at < end; ) {
    const n = Math.min(end - at, WASM_SCRATCH_BYTES);
    // A plain Uint8Array view: a Buffer's subarray would go through its species constructor.
    mem.set(new Uint8Array(data.buffer, data.byteOffset + at, n), WASM_SCRATCH);
    for (let k = 0; k < zeroLen; k++) mem[WASM_SCRATCH + zeroAt + k] = 0;
    for (let k = 0; k < zeroLen2; k++) mem[WASM_SCRATCH + zeroAt2 + k] = 0;
    c = w.crc(c, WASM_SCRATCH, n);
    at += n;
  }
  return c >>> 0;
}

/** crc32c in JS alone (the loop crc32c uses below WASM_MIN bytes and where wasm is unavailable). */
export function crc32cPortable(seed: number, data: Uint8Array, start = 0, end = data.length): number {
  const t = tables ?? crcTables();
  let c = seed | 0;
  let i = start;
  if (end > data.length) end = data.length;
  for (const stop = end - 7; i < stop; i += 8) {
    c ^= data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    c =
      t[1792 + (c & 0xff)]! ^ t[1536 + ((c >>> 8) & 0xff)]! ^ t[1280 + ((c >>> 16) & 0xff)]! ^ t[1024 + (c >>> 24)]! ^
      t[768 + data[i + 4]!]! ^ t[512 + data[i + 5]!]! ^ t[256 + data[i + 6]!]! ^ t[data[i + 7]!]!;
  }
  for (; i < end; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}

/**
 * crc32c(seed, the first `nbytes` bytes held by words[w0…]), each word holding 4 bytes in
 * little-endian order (bitmapWords' view). "Slicing-by-16" from whole words: one dependent step
 * per 16 bytes and no per-byte loads (a 1 TiB `free` checks 24 MB of bitmaps). 16 bytes all set
 * or all clear — most of a bitmap — take 4 lookups instead of 16: the tables are linear, so the
 * last 12 bytes add a constant (0 for zeros, onesTail for ones) whatever the state.
 */
export function crc32cWords(seed: number, words: Int32Array, w0: number, nbytes: number): number {
  const t = tables ?? crcTables();
  const ones = onesTail;
  let c = seed | 0;
  let i = w0;
  for (const end = w0 + (nbytes >>> 4) * 4; i < end; i += 4) {
    const w = words[i]!, b = words[i + 1]!, d = words[i + 2]!, e = words[i + 3]!;
    const a = c ^ w;
    if ((w & b & d & e) === -1 || (w | b | d | e) === 0) {
      c = t[3840 + (a & 0xff)]! ^ t[3584 + ((a >>> 8) & 0xff)]! ^ t[3328 + ((a >>> 16) & 0xff)]! ^ t[3072 + (a >>> 24)]! ^ (w & ones);
      continue;
    }
    c =
      t[3840 + (a & 0xff)]! ^ t[3584 + ((a >>> 8) & 0xff)]! ^ t[3328 + ((a >>> 16) & 0xff)]! ^ t[3072 + (a >>> 24)]! ^
      t[2816 + (b & 0xff)]! ^ t[2560 + ((b >>> 8) & 0xff)]! ^ t[2304 + ((b >>> 16) & 0xff)]! ^ t[2048 + (b >>> 24)]! ^
      t[1792 + (d & 0xff)]! ^ t[1536 + ((d >>> 8) & 0xff)]! ^ t[1280 + ((d >>> 16) & 0xff)]! ^ t[1024 + (d >>> 24)]! ^
      t[768 + (e & 0xff)]! ^ t[512 + ((e >>> 8) & 0xff)]! ^ t[256 + ((e >>> 16) & 0xff)]! ^ t[e >>> 24]!;
  }
  // The last < 16 bytes, a byte at a time out of their words.
  for (let k = 0, rest = nbytes & 15; k < rest; k++) c = t[(c ^ (words[i + (k >>> 2)]! >>> ((k & 3) << 3))) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}

/** crc32c over `n` zero bytes (a checksum field hashed as zero), without a buffer. */
export function crc32cZeros(seed: number, n: number): number {
  const t = tables ?? crcTables();
  let c = seed | 0;
  for (let i = 0; i < n; i++) c = t[c & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}

/** crc32c over the 4 little-endian bytes of `n` (a group or inode number in a seed), without a buffer. */
export function crc32cLe32(seed: number, n: number): number {
  const t = tables ?? crcTables();
  let c = seed | 0;
  for (let k = 0; k < 32; k += 8) c = t[(c ^ (n >>> k)) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
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
  return crc32cZeroed(seed, data, 0, data.length, skip, skipLen);
}

// CRC-16/ARC (reflected 0xA001), used by the gdt_csum (uninit_bg) descriptor checksum; table built on first use.
let crc16Table: Uint16Array | undefined;

function crc16Tables(): Uint16Array {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    t[i] = c;
  }
  return (crc16Table = t);
}

export function crc16(seed: number, data: Uint8Array, start = 0, end = data.length): number {
  const t = crc16Table ?? crc16Tables();
  let c = seed & 0xffff;
  for (let i = start; i < end; i++) c = (c >>> 8) ^ t[(c ^ data[i]!) & 0xff]!;
  return c;
}

export { ZERO4 };
