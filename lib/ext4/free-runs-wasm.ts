/**
 * The bulk free-space scan's hot loops (lib/ops/free.ts) as one hand-assembled WebAssembly module:
 * a batch of block bitmaps (one bit per block) read straight into the module's memory is checked
 * against the descriptors' checksums and turned into free runs appended to a run table in the
 * same memory. A fresh `free` over a 1 TiB disk scans 24 MB of bitmaps once: JS runs most of
 * that interpreted or as baseline code and compiles it (and throws it away) several times, while
 * V8 compiles wasm with Liftoff at instantiation, so the loop is machine code from the first word.
 *
 * JS keeps the decisions: which groups, which bytes are read and where, which checksums are
 * verified, the ranges [lo, hi) each group is clipped to; it reads back each group's free count
 * and the stop reason. The module reads only where a group's record points, whole bitmaps inside
 * its memory (out-of-bounds traps; the JS side checks the addresses anyway).
 *
 * Memory (little-endian, so only used on a little-endian host: the table is read through
 * host-order typed arrays):
 *   [0, 16 KiB)   crc32c slicing-by-16 tables T0..T15 (crc.ts's)
 *   CTRL          n (runs in the table), cap, starts address, lens address, stop status
 *   RECS          REC_MAX group records of REC_WORDS i32: bitmap address, lo, hi, first block,
 *                 stored checksum, flags, free (out)
 *   then the batch's bitmaps, one scratch block, the table's starts then lens (cap words each),
 *   and `reserve` spare bytes after them (a caller encoding the table, ascii-records-wasm.ts).
 *
 * Functions: 0 crc(c, ptr, nbytes) → c (slicing-by-16 over words: 16 bytes all set or all clear,
 * most of a bitmap, take 4 lookups — crc.ts crc32cWords' shortcut); 1 scan(recs, nrec, csumBytes,
 * fsSeed, full, nbits) → the record it stopped at (nrec: all done; CTRL status 1: checksum
 * mismatch, 2: the table needs room first).
 */
import { crc32cTables } from '../codec/crc.js';
import {
  ADD, AND, BLOCK, BR, BR_IF, CALL, ELSE, END, EQZ, GE_U, GET, GT_U, I32, IF, LOAD, LOAD8_U, LOOP, LT_U, NE, OR, RETURN, SET, SHL, SHR_U, STORE, SUB, TEE, VOID, XOR,
  funcCode, i32c, section, uleb, wasmModule, wasmName,
} from '../codec/wasm-asm.js';

// Opcodes wasm-asm.ts does not name (core spec §5.4).
const CTZ = 0x68, I64_LOAD = 0x29, I64_CONST = 0x42, I64_NE = 0x52, I64_EQZ = 0x50, SELECT = 0x1b;

/** Byte addresses of the fixed parts. */
const CTRL = 16384;
const CTRL_N = CTRL, CTRL_CAP = CTRL + 4, CTRL_SA = CTRL + 8, CTRL_LA = CTRL + 12, CTRL_STATUS = CTRL + 16;
const RECS = CTRL + 64;
/** Records per scan call, and i32 words per record. */
export const REC_MAX = 1024;
const REC_WORDS = 8;
const R_ADDR = 0, R_LO = 1, R_HI = 2, R_FIRST = 3, R_STORED = 4, R_FLAGS = 5, R_FREE = 6;
/** Record flags: verify the bitmap's checksum; the group is all free (no bitmap: one run [lo, hi)). */
export const VERIFY_FLAG = 1, ALL_FREE_FLAG = 2;
/** Why scan stopped before the last record. */
export const STOP_CSUM = 1, STOP_ROOM = 2;
const BATCH = RECS + REC_MAX * REC_WORDS * 4;

const ld = (off = 0) => [LOAD, 2, ...uleb(off)];
const st = (off = 0) => [STORE, 2, ...uleb(off)];

// ---- function 0: crc(c, ptr, nbytes) ----
const C = 0, PTR = 1, NB = 2, CEND = 3, W = 4, B = 5, D = 6, E = 7, A = 8;
/** Table k's entry for byte `byte` (0..3) of local l. */
const tk = (l: number, byte: number, k: number) => [GET, l, ...(byte ? [...i32c(8 * byte), SHR_U] : []), ...(byte < 3 ? [...i32c(255), AND] : []), ...i32c(2), SHL, ...ld(k * 1024)];
/** The four lookups of a word at table base k (bytes 0..3 into T(k+3)..Tk). */
const word4 = (l: number, k: number) => [...tk(l, 0, k + 3), ...tk(l, 1, k + 2), XOR, ...tk(l, 2, k + 1), XOR, ...tk(l, 3, k), XOR];
const crcBody = (ones: number) => [
  ...[GET, PTR, GET, NB, ...i32c(-16), AND, ADD, SET, CEND],
  BLOCK, VOID, LOOP, VOID,
  ...[GET, PTR, GET, CEND, GE_U, BR_IF, 1],
  ...[GET, PTR, ...ld(0), SET, W, GET, PTR, ...ld(4), SET, B, GET, PTR, ...ld(8), SET, D, GET, PTR, ...ld(12), SET, E],
  ...[GET, C, GET, W, XOR, SET, A],
  ...word4(A, 12), SET, C,
  // The other 12 bytes: a constant when all 16 are set (`ones`) or clear (0), else their 12 lookups.
  ...[GET, W, GET, B, AND, GET, D, AND, GET, E, AND, ...i32c(-1), NE, IF, VOID],
  ...[GET, W, GET, B, OR, GET, D, OR, GET, E, OR, IF, VOID],
  ...[GET, C, ...word4(B, 8), XOR, ...word4(D, 4), XOR, ...word4(E, 0), XOR, SET, C],
  END,
  ELSE, ...[GET, C, ...i32c(ones), XOR, SET, C], END,
  ...[GET, PTR, ...i32c(16), ADD, SET, PTR],
  BR, 0, END, END,
  // The last nbytes % 16, a byte at a time.
  ...[GET, PTR, GET, NB, ...i32c(15), AND, ADD, SET, CEND],
  BLOCK, VOID, LOOP, VOID,
  ...[GET, PTR, GET, CEND, GE_U, BR_IF, 1],
  ...[GET, C, GET, PTR, LOAD8_U, 0, 0, XOR, ...i32c(255), AND, ...i32c(2), SHL, ...ld(0), GET, C, ...i32c(8), SHR_U, XOR, SET, C],
  ...[GET, PTR, ...i32c(1), ADD, SET, PTR],
  BR, 0, END, END,
  GET, C,
  END,
];

// ---- function 1: scan(recs, nrec, csumBytes, fsSeed, full, nbits) ----
const RS = 0, NREC = 1, CSB = 2, SEED = 3, FULL = 4, NBITS = 5;
const R = 6, P = 7, ADDR = 8, I = 9, TO = 10, FIRST = 11, FREE = 12, WI = 13, WEND = 14, X = 15, ST = 16, EN = 17, N = 18, SA = 19, LA = 20, T = 21, FL = 22, M1 = 23, M2 = 24;
const SCAN_LOCALS = 19;

/** Word `w` (a local, a word index) of the current bitmap. */
const bmWord = (w: number) => [GET, ADDR, GET, w, ...i32c(2), SHL, ADD, ...ld(0)];
/** Stop at record R with `status`, saving n. */
const stop = (status: number) => [...i32c(CTRL_STATUS), ...i32c(status), ...st(), ...i32c(CTRL_N), GET, N, ...st(), GET, R, RETURN];
/** Append the run [start, start + len) (the values the code leaves in locals ST and T), merged with the last when they touch. */
const push = (s: number, l: number) => [
  // T = address of the last run's length; merge when n > 0 and starts[n-1] + lens[n-1] = start.
  ...[GET, N, IF, VOID],
  ...[GET, LA, GET, N, ...i32c(1), SUB, ...i32c(2), SHL, ADD, SET, X],
  ...[GET, SA, GET, N, ...i32c(1), SUB, ...i32c(2), SHL, ADD, ...ld(0), GET, X, ...ld(0), ADD, GET, s, NE, IF, VOID],
  ...[...i32c(0), SET, X],
  END,
  ELSE, ...i32c(0), SET, X, END,
  ...[GET, X, IF, VOID, GET, X, GET, X, ...ld(0), GET, l, ADD, ...st()],
  ELSE,
  ...[GET, SA, GET, N, ...i32c(2), SHL, ADD, GET, s, ...st()],
  ...[GET, LA, GET, N, ...i32c(2), SHL, ADD, GET, l, ...st()],
  ...[GET, N, ...i32c(1), ADD, SET, N],
  END,
];
/** Words of the bitmap equal to `all` (0 or -1) passed over from WI while WI < WEND: two at a time, then one (X: the first other word, as ~word for -1). */
const skipWords = (all: number) => [
  BLOCK, VOID, LOOP, VOID,
  ...[GET, WI, ...i32c(2), ADD, GET, WEND, GT_U, BR_IF, 1],
  ...[GET, ADDR, GET, WI, ...i32c(2), SHL, ADD, I64_LOAD, 2, 0, ...(all === 0 ? [I64_EQZ, EQZ] : [I64_CONST, 0x7f, I64_NE]), BR_IF, 1],
  ...[GET, WI, ...i32c(2), ADD, SET, WI],
  BR, 0, END, END,
  BLOCK, VOID, LOOP, VOID,
  ...[GET, WI, GET, WEND, GE_U, BR_IF, 1],
  ...bmWord(WI), ...(all === 0 ? [] : [...i32c(-1), XOR]), TEE, X, BR_IF, 1,
  ...[GET, WI, ...i32c(1), ADD, SET, WI],
  BR, 0, END, END,
];
/** The unsigned minimum of the two values on the stack (in locals of its own). */
const minU = () => [SET, M2, SET, M1, GET, M1, GET, M2, GET, M1, GET, M2, LT_U, SELECT];

const scanBody = [
  ...[...i32c(CTRL_N), ...ld(), SET, N, ...i32c(CTRL_SA), ...ld(), SET, SA, ...i32c(CTRL_LA), ...ld(), SET, LA],
  BLOCK, VOID, LOOP, VOID,
  ...[GET, R, GET, NREC, GE_U, BR_IF, 1],
  ...[GET, RS, GET, R, ...i32c(5), SHL, ADD, SET, P],
  ...[GET, P, ...ld(R_ADDR * 4), SET, ADDR, GET, P, ...ld(R_LO * 4), SET, I, GET, P, ...ld(R_HI * 4), SET, TO],
  ...[GET, P, ...ld(R_FIRST * 4), SET, FIRST, GET, P, ...ld(R_FLAGS * 4), SET, FL],
  // Room for the most runs [lo, hi) can hold (every other bit free) and one more.
  ...[...i32c(CTRL_CAP), ...ld(), GET, N, SUB, GET, TO, GET, I, SUB, ...i32c(1), SHR_U, ...i32c(2), ADD, LT_U, IF, VOID, ...stop(STOP_ROOM), END],
  ...i32c(0), SET, FREE,
  ...[GET, FL, ...i32c(ALL_FREE_FLAG), AND, IF, VOID],
  ...[GET, FIRST, GET, I, ADD, SET, ST, GET, TO, GET, I, SUB, SET, EN, ...push(ST, EN), GET, EN, SET, FREE],
  ELSE,
  // The checksum (the descriptor's 32 bits, or its low 16 without the 64-bit descriptor's high half).
  ...[GET, FL, ...i32c(VERIFY_FLAG), AND, IF, VOID],
  ...[GET, SEED, GET, ADDR, GET, CSB, CALL, 0, GET, P, ...ld(R_STORED * 4), XOR, ...i32c(-1), ...i32c(0xffff), GET, FULL, SELECT, AND, IF, VOID, ...stop(STOP_CSUM), END],
  END,
  // Bits [lo, min(hi, nbits)), as ops/free.ts appendFreeRunsAt: words all used or all free passed over whole.
  ...[GET, TO, GET, NBITS, ...minU(), SET, TO],
  ...[GET, TO, ...i32c(31), ADD, ...i32c(5), SHR_U, SET, WEND],
  BLOCK, VOID, LOOP, VOID,
  ...[GET, I, GET, TO, GE_U, BR_IF, 1],
  ...[GET, I, ...i32c(5), SHR_U, SET, WI],
  ...[...bmWord(WI), ...i32c(-1), XOR, ...i32c(-1), GET, I, SHL, AND, TEE, X, EQZ, IF, VOID],
  ...[GET, WI, ...i32c(1), ADD, SET, WI, ...skipWords(-1), GET, X, EQZ, BR_IF, 2],
  END,
  ...[GET, WI, ...i32c(5), SHL, GET, X, CTZ, ADD, TEE, ST, GET, TO, GE_U, BR_IF, 1],
  ...[...bmWord(WI), ...i32c(-1), GET, ST, SHL, AND, TEE, X, EQZ, IF, VOID],
  ...[GET, WI, ...i32c(1), ADD, SET, WI, ...skipWords(0)],
  END,
  ...[GET, WI, ...i32c(5), SHL, GET, X, CTZ, ADD, GET, TO, ...minU(), GET, TO, GET, X, SELECT, SET, EN],
  ...[GET, EN, GET, ST, SUB, SET, T, GET, FREE, GET, T, ADD, SET, FREE],
  ...[GET, FIRST, GET, ST, ADD, SET, ST],
  ...push(ST, T),
  ...[GET, EN, SET, I],
  BR, 0, END, END,
  END,
  ...[GET, P, GET, FREE, ...st(R_FREE * 4)],
  ...[GET, R, ...i32c(1), ADD, SET, R],
  BR, 0, END, END,
  ...[...i32c(CTRL_STATUS), ...i32c(0), ...st(), ...i32c(CTRL_N), GET, N, ...st(), GET, R],
  END,
];

/** The module's bytes; `ones`: the crc step's constant for 12 bytes of 0xff (T11[255] ^ … ^ T0[255]). */
export function freeRunsWasmBytes(ones: number): Uint8Array<ArrayBuffer> {
  return wasmModule([
    // type 0: crc (i32 × 3) → i32; type 1: scan (i32 × 6) → i32
    ...section(1, [2, 0x60, 3, I32, I32, I32, 1, I32, 0x60, 6, I32, I32, I32, I32, I32, I32, 1, I32]),
    ...section(3, [2, 0, 1]),
    ...section(5, [1, 0x00, 1]),
    ...section(7, [3, ...wasmName('crc'), 0x00, 0, ...wasmName('scan'), 0x00, 1, ...wasmName('mem'), 0x02, 0]),
    ...section(10, [2, ...funcCode(6, crcBody(ones)), ...funcCode(SCAN_LOCALS, scanBody)]),
  ]);
}

let compiled: WebAssembly.Module | null | undefined;
let onesTail = 0;

function module(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  try {
    // The table is read through host-order typed arrays; wasm memory is little-endian.
    if (typeof WebAssembly !== 'object' || new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) return (compiled = null);
    const t = crc32cTables();
    onesTail = 0;
    for (let k = 0; k < 12; k++) onesTail ^= t[k * 256 + 0xff]!;
    return (compiled = new WebAssembly.Module(freeRunsWasmBytes(onesTail)));
  } catch {
    return (compiled = null);
  }
}

/**
 * One scan's instance: its memory holds the batch being scanned and the run table so far. Views
 * (batch, records, the table's columns) are made afresh after anything that may grow the memory.
 */
export class FreeRunsWasm {
  private readonly crcFn: (c: number, ptr: number, n: number) => number;
  private readonly scanFn: (recs: number, nrec: number, csumBytes: number, seed: number, full: number, nbits: number) => number;
  /** Bytes of the batch area (bitmaps) and where the scratch block, the starts and the lens are. */
  readonly batchBytes: number;
  readonly scratchAt: number;
  private startsAt: number;
  private cap: number;
  /** Records as i32 words (a view; remade after a grow). */
  recs: Int32Array;

  private constructor(private readonly memory: WebAssembly.Memory, exports: WebAssembly.Exports, batchBytes: number, blockSize: number, capacity: number, private readonly reserve: number) {
    this.crcFn = exports.crc as FreeRunsWasm['crcFn'];
    this.scanFn = exports.scan as FreeRunsWasm['scanFn'];
    this.batchBytes = batchBytes;
    this.scratchAt = BATCH + batchBytes;
    this.startsAt = this.scratchAt + blockSize;
    this.cap = capacity;
    this.ensure(this.startsAt + 8 * capacity + reserve);
    new Int32Array(memory.buffer, 0, 4096).set(crc32cTables().subarray(0, 4096));
    const w = new Int32Array(memory.buffer, CTRL, 4);
    w[0] = 0;
    w[1] = capacity;
    w[2] = this.startsAt;
    w[3] = this.startsAt + 4 * capacity;
    this.recs = new Int32Array(memory.buffer, RECS, REC_MAX * REC_WORDS);
  }

  /**
   * A new instance for a scan of blocks of `blockSize` bytes, bitmaps read `batchBytes` at a time,
   * a table of `capacity` runs to start with, `reserve` spare bytes kept after the table; null
   * where WebAssembly is unavailable, the host is big-endian, or the module fails its self-check.
   */
  static open(batchBytes: number, blockSize: number, capacity: number, reserve = 0): FreeRunsWasm | null {
    const m = module();
    if (m === null) return null;
    try {
      const inst = new WebAssembly.Instance(m, {});
      const k = new FreeRunsWasm(inst.exports.mem as WebAssembly.Memory, inst.exports, batchBytes, blockSize, Math.max(16, capacity), reserve);
      return k.selfCheck() ? k : ((compiled = null), null);
    } catch {
      return null;
    }
  }

  private ensure(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (bytes > have) this.memory.grow(Math.ceil((bytes - have) / 65536));
  }

  /** The crc of 32 bytes (some all set, some mixed) against the JS tables' byte loop: a wrong table or opcode shows here. */
  private selfCheck(): boolean {
    const b = new Uint8Array(this.memory.buffer, this.scratchAt, 37);
    for (let i = 0; i < 37; i++) b[i] = i < 16 ? 0xff : (i * 167 + 13) & 0xff;
    const t = crc32cTables();
    let c = 0x1234567;
    for (let i = 0; i < 37; i++) c = t[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
    return this.crcFn(0x1234567, this.scratchAt, 37) >>> 0 === c >>> 0;
  }

  /** The batch area, where a batch's bitmaps are read (byte offsets from its start). */
  batch(): Uint8Array {
    return new Uint8Array(this.memory.buffer, BATCH, this.batchBytes);
  }

  /** The scratch block (a computed BLOCK_UNINIT bitmap), as an offset from the batch area's start. */
  get scratchOffset(): number {
    return this.scratchAt - BATCH;
  }

  /** The scratch block's bytes. */
  scratch(blockSize: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, this.scratchAt, blockSize);
  }

  /** Record k: the bitmap at batch offset `off` (ignored for ALL_FREE_FLAG), bits [lo, hi) as blocks first + bit. */
  setRecord(k: number, off: number, lo: number, hi: number, first: number, stored: number, flags: number): void {
    const r = this.recs, w = k * REC_WORDS;
    r[w + R_ADDR] = BATCH + off;
    r[w + R_LO] = lo;
    r[w + R_HI] = hi;
    r[w + R_FIRST] = first;
    r[w + R_STORED] = stored;
    r[w + R_FLAGS] = flags;
  }

  /** Free bits record k saw (once scanned). */
  freeOf(k: number): number {
    return this.recs[k * REC_WORDS + R_FREE]!;
  }

  /**
   * Scan records [0, nrec): returns the index of the record whose checksum failed, or -1 once all
   * are scanned (the table is grown as needed: a record needs room for every run it may add).
   */
  scan(nrec: number, csumBytes: number, fsSeed: number, fullCsum: boolean, nbits: number): number {
    for (let r = 0; ; ) {
      r = this.scanFn(RECS + r * REC_WORDS * 4, nrec - r, csumBytes, fsSeed | 0, fullCsum ? 1 : 0, nbits) + r;
      if (r >= nrec) return -1;
      const status = new Int32Array(this.memory.buffer, CTRL_STATUS, 1)[0];
      if (status === STOP_CSUM) return r;
      // STOP_ROOM: twice the table, at least what the record needs, the lens moved up past the new starts.
      const w = r * REC_WORDS;
      const need = ((this.recs[w + R_HI]! - this.recs[w + R_LO]!) >>> 1) + 2;
      const n = this.count;
      const cap = Math.max(2 * this.cap, n + need);
      this.ensure(this.startsAt + 8 * cap + this.reserve);
      const words = new Uint32Array(this.memory.buffer);
      const oldLens = (this.startsAt >>> 2) + this.cap, newLens = (this.startsAt >>> 2) + cap;
      words.copyWithin(newLens, oldLens, oldLens + n);
      this.cap = cap;
      words[(CTRL_CAP >>> 2)] = cap;
      words[(CTRL_LA >>> 2)] = this.startsAt + 4 * cap;
      this.recs = new Int32Array(this.memory.buffer, RECS, REC_MAX * REC_WORDS);
    }
  }

  /** Runs in the table. */
  get count(): number {
    return new Int32Array(this.memory.buffer, CTRL_N, 1)[0]!;
  }

  /** The table's columns (views of the memory: valid while it does not grow) and the spare bytes after them. */
  table(): { start: Uint32Array; len: Uint32Array; memory: WebAssembly.Memory; spareAt: number } {
    const buf = this.memory.buffer;
    return {
      start: new Uint32Array(buf, this.startsAt, this.count),
      len: new Uint32Array(buf, this.startsAt + 4 * this.cap, this.count),
      memory: this.memory,
      spareAt: this.startsAt + 8 * this.cap,
    };
  }
}
