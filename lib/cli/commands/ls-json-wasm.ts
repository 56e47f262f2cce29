/**
 * `ls --json`'s plain rows written by one WebAssembly call per batch: the same bytes LsJson's JS
 * writes (JSON.stringify(rows, null, 2)'s), for the rows that need nothing but their ASCII name
 * and eight 32-bit numbers. A fresh process writes 10,000 rows before V8 optimises the JS that
 * writes them (every piece, digit and escape a call through inline caches), while wasm runs as
 * machine code from instantiation (V8's Liftoff). Everything else — a non-ASCII directory, a
 * symlink's target, a device number, a size past 2^32, a time outside int32 — LsJson writes.
 *
 * Module: its memory is imported, shared with lib/ext4/dir-list-wasm.ts (which lists whole plain
 * directories into records this module writes, and keeps crc32c's tables below
 * DIR_LIST_RESERVED); from there it holds the constant pieces, the escape table, hex digits and
 * the type pieces' table (written by create()); function 2
 * `rows(n, recs, addrs, lens, prefix, prefixLen, out, first) → end` writes n rows at `out`: row k's
 * record is recs[8k..8k+8) = {entry, ino, mode, size, nlink, uid, gid, mtime} (i32; all unsigned
 * but mtime), its name is lens[entry] bytes at addrs[entry]; `first`: row 0 opens the array.
 */
import {
  ADD, AND, BLOCK, BR, BR_IF, CALL, ELSE, END, EQ, GE_U, GET, I32, IF, LOAD, LOAD16_U, LOAD8_U, LOOP, LT_S, LT_U, MUL, NE, SET, SHL, SHR_U, STORE, STORE16, SUB, TEE, VOID,
  funcCode, i32c, section, sleb64, uleb, wasmModule, wasmName,
} from '../../codec/wasm-asm.js';
import type { EntryTable } from '../../ext4/dir-reader.js';
import { DIR_LIST_RESERVED, DIR_LIST_REC_WORDS, DirListWasm } from '../../ext4/dir-list-wasm.js';

// Opcodes wasm-asm.ts does not name (core spec §5.4).
const DIV_U = 0x6e, STORE8 = 0x3a, I64_CONST = 0x42, I64_STORE = 0x37;
/** memory.copy (bulk memory): (dst, src, n) → (). */
const MEMCOPY = [0xfc, 0x0a, 0x00, 0x00];

const FIELD = (name: string) => `,\n    "${name}": `;
const TEXT = {
  row: ',\n  {\n    "path": "',
  name: `"${FIELD('name')}"`,
  ino: `"${FIELD('ino')}`,
  size: FIELD('size'),
  nlink: FIELD('nlink'),
  uid: FIELD('uid'),
  gid: FIELD('gid'),
  mtime: FIELD('mtime'),
  rowEnd: '\n  }',
};
/** i_mode >> 12 → the type's name (what sits between ino and mode: `"type": "file", "mode": `). */
const TYPES: Record<number, string> = { 8: 'file', 4: 'dir', 10: 'symlink', 2: 'chardev', 6: 'blockdev', 1: 'fifo', 12: 'socket' };
/** The same by index (what a row's summary must say for the module to write it). */
export const TYPE_OF_MODE: readonly (string | undefined)[] = Array.from({ length: 16 }, (_, m) => TYPES[m]);

// The constant area from DIR_LIST_RESERVED: the type pieces (the others are written by stores of their bytes), then the tables.
const CONST_AT = DIR_LIST_RESERVED;
const pieceAt: Record<string, { at: number; len: number }> = {};
let top = CONST_AT;
const constBytes: number[] = [];
function place(key: string, text: string): void {
  pieceAt[key] = { at: top, len: text.length };
  for (const c of text) constBytes.push(c.charCodeAt(0));
  top += text.length;
}
for (const [m, t] of Object.entries(TYPES)) place(`type${m}`, `${FIELD('type')}"${t}"${FIELD('mode')}`);
/** 0x5d bytes: the letter of a one-letter escape, 0 for \u00xx (only bytes below 0x20, '"' and '\' are looked up). */
const ESC_TABLE = (top + 7) & ~7;
const HEX_TABLE = ESC_TABLE + 0x60;
/** 16 × {at, len} of the type pieces, by i_mode >> 12 (len 0: never sent). */
const TYPE_TABLE = HEX_TABLE + 16;
/** "00" … "99": two digits per store. */
const DIGITS_TABLE = TYPE_TABLE + 16 * 8;
/** Where the per-call area starts. */
const DYN = (DIGITS_TABLE + 200 + 63) & ~63;

const ld32 = (off = 0) => [LOAD, 2, ...uleb(off)];
const ld8 = (off = 0) => [LOAD8_U, 0, ...uleb(off)];
const st8 = (off = 0) => [STORE8, 0, ...uleb(off)];
const ld16 = (off = 0) => [LOAD16_U, 0, ...uleb(off)];
const st16 = (off = 0) => [STORE16, 0, ...uleb(off)];

// f0 uint(v, dst) → end: v as unsigned decimal. Its length from comparisons, then two digits per
// division from the end (a fresh process writes 10,000 rows × 7 numbers in code V8 has not yet
// optimised: a division per digit and a second per digit to count them cost a third of a row).
const U_V = 0, U_D = 1, U_N = 2, U_P = 3, U_Q = 4;
const UINT = [
  ...i32c(1),
  ...[1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9].flatMap((x) => [GET, U_V, ...i32c(x), GE_U, ADD]),
  SET, U_N,
  ...[GET, U_D, GET, U_N, ADD, SET, U_P],
  BLOCK, VOID, LOOP, VOID,
  ...[GET, U_V, ...i32c(100), LT_U, BR_IF, 1],
  ...[GET, U_V, ...i32c(100), DIV_U, SET, U_Q],
  ...[GET, U_P, ...i32c(2), SUB, TEE, U_P, GET, U_V, GET, U_Q, ...i32c(100), MUL, SUB, ...i32c(1), SHL, ...ld16(DIGITS_TABLE), ...st16()],
  ...[GET, U_Q, SET, U_V],
  BR, 0, END, END,
  ...[GET, U_V, ...i32c(10), GE_U, IF, VOID],
  ...[GET, U_P, ...i32c(2), SUB, GET, U_V, ...i32c(1), SHL, ...ld16(DIGITS_TABLE), ...st16()],
  ELSE,
  ...[GET, U_P, ...i32c(1), SUB, GET, U_V, ...i32c(0x30), ADD, ...st8()],
  END,
  GET, U_D, GET, U_N, ADD,
  END,
];

// f1 esc(src, n, dst) → end: bytes as JSON.stringify escapes ASCII.
const E_S = 0, E_N = 1, E_D = 2, E_E = 3, E_C = 4, E_H = 5;
const ESC = [
  GET, E_S, GET, E_N, ADD, SET, E_E,
  BLOCK, VOID, LOOP, VOID,
  ...[GET, E_S, GET, E_E, GE_U, BR_IF, 1],
  ...[GET, E_S, ...ld8(), TEE, E_C, ...i32c(0x20), GE_U, GET, E_C, ...i32c(0x22), NE, AND, GET, E_C, ...i32c(0x5c), NE, AND],
  IF, VOID,
  ...[GET, E_D, GET, E_C, ...st8(), GET, E_D, ...i32c(1), ADD, SET, E_D],
  ELSE,
  ...[GET, E_D, ...i32c(0x5c), ...st8()],
  ...[GET, E_C, ...ld8(ESC_TABLE), TEE, E_H],
  IF, VOID,
  ...[GET, E_D, GET, E_H, ...st8(1), GET, E_D, ...i32c(2), ADD, SET, E_D],
  ELSE,
  ...[GET, E_D, ...i32c(0x75), ...st8(1), GET, E_D, ...i32c(0x30), ...st8(2), GET, E_D, ...i32c(0x30), ...st8(3)],
  ...[GET, E_D, GET, E_C, ...i32c(4), SHR_U, ...ld8(HEX_TABLE), ...st8(4)],
  ...[GET, E_D, GET, E_C, ...i32c(15), AND, ...ld8(HEX_TABLE), ...st8(5)],
  ...[GET, E_D, ...i32c(6), ADD, SET, E_D],
  END,
  END,
  ...[GET, E_S, ...i32c(1), ADD, SET, E_S],
  BR, 0, END, END,
  GET, E_D,
  END,
];

// f2 rows(n, recs, addrs, lens, prefix, prefixLen, out, first) → end.
const N = 0, R = 1, A = 2, L = 3, PF = 4, PL = 5, D = 6, FIRST = 7;
const K = 8, RP = 9, NA = 10, NL = 11, S = 12, B = 13, T = 14, NAT = 15, NEND = 16;
/**
 * A constant piece at D as stores of its bytes (8, 4, 2, 1 at a time), D past it: a memory.copy
 * per piece was a call out of the module, eleven per row.
 */
const put = (key: string) => {
  const bytes = Array.from(TEXT[key as keyof typeof TEXT], (c) => c.charCodeAt(0));
  const le = (k: number, n: number) => bytes.slice(k, k + n).reduceRight((v, b) => (v << 8n) | BigInt(b), 0n);
  const code: number[] = [];
  let k = 0;
  for (; bytes.length - k >= 8; k += 8) code.push(GET, D, I64_CONST, ...sleb64(BigInt.asIntN(64, le(k, 8))), I64_STORE, 0, ...uleb(k));
  if (bytes.length - k >= 4) code.push(GET, D, ...i32c(Number(BigInt.asIntN(32, le(k, 4)))), STORE, 0, ...uleb(k)), (k += 4);
  if (bytes.length - k >= 2) code.push(GET, D, ...i32c(Number(le(k, 2))), ...st16(k)), (k += 2);
  if (bytes.length - k >= 1) code.push(GET, D, ...i32c(bytes[k]!), ...st8(k));
  return [...code, GET, D, ...i32c(bytes.length), ADD, SET, D];
};
/** Record word w of the current row. */
const rec = (w: number) => [GET, RP, ...ld32(4 * w)];
const uintField = (w: number) => [...rec(w), GET, D, CALL, 0, SET, D];
const ROWS = [
  BLOCK, VOID, LOOP, VOID,
  ...[GET, K, GET, N, GE_U, BR_IF, 1],
  ...[GET, R, GET, K, ...i32c(5), SHL, ADD, SET, RP],
  ...[GET, A, ...rec(0), ...i32c(2), SHL, ADD, ...ld32(), SET, NA],
  ...[GET, L, ...rec(0), ...i32c(2), SHL, ADD, ...ld32(), SET, NL],
  ...put('row'),
  // The array's opening bracket instead of the comma.
  ...[GET, FIRST, GET, K, ...i32c(0), EQ, AND, IF, VOID, GET, D, ...i32c(TEXT.row.length), SUB, ...i32c(0x5b), ...st8(), END],
  ...[GET, D, GET, PF, GET, PL, ...MEMCOPY, GET, D, GET, PL, ADD, SET, D],
  ...[GET, D, ...i32c(0x2f), ...st8(), GET, D, ...i32c(1), ADD, TEE, NAT, SET, D],
  ...[GET, NA, GET, NL, GET, D, CALL, 1, TEE, NEND, SET, D],
  // The name field: the escaped name after its last '/' (only a corrupt name holds one; escaping
  // makes none), copied from the path.
  ...[GET, NAT, TEE, B, SET, S],
  BLOCK, VOID, LOOP, VOID,
  ...[GET, S, GET, NEND, GE_U, BR_IF, 1],
  ...[GET, S, ...ld8(), ...i32c(0x2f), EQ, IF, VOID, GET, S, ...i32c(1), ADD, SET, B, END],
  ...[GET, S, ...i32c(1), ADD, SET, S],
  BR, 0, END, END,
  ...put('name'),
  ...[GET, D, GET, B, GET, NEND, GET, B, SUB, TEE, T, ...MEMCOPY, GET, D, GET, T, ADD, SET, D],
  ...put('ino'),
  ...uintField(1),
  // "type" and the start of "mode", by i_mode >> 12.
  ...[...rec(2), ...i32c(12), SHR_U, ...i32c(15), AND, ...i32c(3), SHL, ...i32c(TYPE_TABLE), ADD, SET, T],
  ...[GET, D, GET, T, ...ld32(), GET, T, ...ld32(4), ...MEMCOPY, GET, D, GET, T, ...ld32(4), ADD, SET, D],
  ...[...rec(2), ...i32c(0o7777), AND, GET, D, CALL, 0, SET, D],
  ...put('size'), ...uintField(3),
  ...put('nlink'), ...uintField(4),
  ...put('uid'), ...uintField(5),
  ...put('gid'), ...uintField(6),
  ...put('mtime'),
  ...[...rec(7), SET, T],
  ...[GET, T, ...i32c(0), LT_S, IF, VOID, GET, D, ...i32c(0x2d), ...st8(), GET, D, ...i32c(1), ADD, SET, D, ...i32c(0), GET, T, SUB, SET, T, END],
  ...[GET, T, GET, D, CALL, 0, SET, D],
  ...put('rowEnd'),
  ...[GET, K, ...i32c(1), ADD, SET, K],
  BR, 0, END, END,
  GET, D,
  END,
];

/** The module's bytes. */
export function lsRowsWasmBytes(): Uint8Array<ArrayBuffer> {
  return wasmModule([
    // type 0: uint (i32, i32) → i32; type 1: esc (3 × i32) → i32; type 2: rows (8 × i32) → i32
    ...section(1, [3, 0x60, 2, I32, I32, 1, I32, 0x60, 3, I32, I32, I32, 1, I32, 0x60, 8, ...new Array<number>(8).fill(I32), 1, I32]),
    ...section(2, [1, ...wasmName('env'), ...wasmName('mem'), 0x02, 0x00, 1]), // memory imported: at least one page
    ...section(3, [3, 0, 1, 2]),
    ...section(7, [1, ...wasmName('rows'), 0x00, 2]),
    ...section(10, [3, ...funcCode(3, UINT), ...funcCode(3, ESC), ...funcCode(9, ROWS)]),
  ]);
}

/** The module, compiled once per process (null: no WebAssembly). */
let compiled: WebAssembly.Module | null | undefined;

type RowsFn = (n: number, recs: number, addrs: number, lens: number, prefix: number, prefixLen: number, out: number, first: number) => number;

/** Words per row record (the records dir-list-wasm.ts makes are the same). */
export const REC_WORDS = DIR_LIST_REC_WORDS;
/** Bytes a row may take besides its prefix and name (pieces, eight numbers). */
const ROW_FIXED = 320;

/** A directory's rows written by the module: begin() with its names, add() rows, flush() to take the bytes. */
export class WasmRows {
  private mem: WebAssembly.Memory;
  private u8: Uint8Array;
  private i32: Int32Array;
  private recsAt = 0;
  private addrsAt = 0;
  private lensAt = 0;
  private prefixAt = 0;
  private prefixLen = 0;
  private outAt = 0;
  /** Rows per batch (the output area holds that many rows of the longest name). */
  private batch = 0;
  /** Rows waiting in the record area. */
  n = 0;
  private lister: DirListWasm | null | undefined;

  private constructor(private readonly rows: RowsFn, mem: WebAssembly.Memory) {
    this.mem = mem;
    this.u8 = new Uint8Array(mem.buffer);
    this.i32 = new Int32Array(mem.buffer);
  }

  /** Whole plain directories listed into this memory (null: not available), made at the first ask. */
  get dirs(): DirListWasm | null {
    if (this.lister === undefined) this.lister = DirListWasm.create(this.mem, DYN);
    return this.lister;
  }

  /** The views again when the memory grew (its old buffer is detached). */
  private views(): void {
    if (this.u8.buffer === this.mem.buffer) return;
    this.u8 = new Uint8Array(this.mem.buffer);
    this.i32 = new Int32Array(this.mem.buffer);
  }

  /**
   * A writer with its own instance (listings in one process may interleave: each has its own
   * memory), or null where WebAssembly (with bulk memory) is missing or forbidden.
   */
  static create(): WasmRows | null {
    try {
      if (compiled === undefined) compiled = typeof WebAssembly === 'object' && new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? new WebAssembly.Module(lsRowsWasmBytes()) : null;
      if (compiled === null) return null;
      const mem = new WebAssembly.Memory({ initial: Math.ceil(DYN / 65536) });
      const inst = new WebAssembly.Instance(compiled, { env: { mem } });
      const u8 = new Uint8Array(mem.buffer);
      u8.set(constBytes, CONST_AT);
      for (const [c, letter] of [[0x22, 0x22], [0x5c, 0x5c], [0x08, 0x62], [0x09, 0x74], [0x0a, 0x6e], [0x0c, 0x66], [0x0d, 0x72]] as const) u8[ESC_TABLE + c] = letter;
      for (let h = 0; h < 16; h++) u8[HEX_TABLE + h] = '0123456789abcdef'.charCodeAt(h);
      for (let d = 0; d < 100; d++) (u8[DIGITS_TABLE + 2 * d] = 0x30 + Math.floor(d / 10)), (u8[DIGITS_TABLE + 2 * d + 1] = 0x30 + (d % 10));
      // (host order is little-endian, checked above, as wasm memory is)
      const words = new Int32Array(mem.buffer);
      for (const m of Object.keys(TYPES)) {
        const p = pieceAt[`type${m}`]!;
        words[(TYPE_TABLE >> 2) + 2 * Number(m)] = p.at;
        words[(TYPE_TABLE >> 2) + 2 * Number(m) + 1] = p.len;
      }
      return new WasmRows(inst.exports.rows as RowsFn, mem);
    } catch {
      compiled = null;
      return null;
    }
  }

  /**
   * A new directory: its escaped path (without the row's '/') and its entries (ASCII names).
   * False when it does not fit (rows go to JS).
   */
  begin(prefix: Uint8Array, t: EntryTable): boolean {
    const count = t.length, chunks = t.chunks, start = t.nameStart, len = t.nameLen;
    // The chunks copied once each (a directory's entries share a few, in order).
    let namesBytes = 0;
    for (const c of chunks) namesBytes += c.length;
    const rowMax = ROW_FIXED + prefix.length + 12 * 255;
    this.batch = Math.max(16, Math.min(1024, Math.floor((4 << 20) / rowMax)));
    const addrsAt = (DYN + prefix.length + 7) & ~7;
    const lensAt = addrsAt + 4 * count;
    const recsAt = lensAt + 4 * count;
    const namesAt = recsAt + 4 * REC_WORDS * this.batch;
    const outAt = (namesAt + namesBytes + 7) & ~7;
    const end = outAt + this.batch * rowMax;
    if (end > 1 << 30) return false;
    const have = this.mem.buffer.byteLength;
    if (end > have) this.mem.grow(Math.ceil((end - have) / 65536));
    this.views();
    const u8 = this.u8, i32 = this.i32;
    u8.set(prefix, DYN);
    const bases = new Int32Array(chunks.length);
    let p = namesAt;
    for (let c = 0; c < chunks.length; c++) {
      u8.set(chunks[c]!, p);
      bases[c] = p;
      p += chunks[c]!.length;
    }
    const chunk = t.chunk;
    for (let i = 0; i < count; i++) i32[(addrsAt >> 2) + i] = bases[chunk[i]!]! + start[i]!;
    for (let i = 0; i < count; i++) i32[(lensAt >> 2) + i] = len[i]!;
    this.recsAt = recsAt;
    this.addrsAt = addrsAt;
    this.lensAt = lensAt;
    this.prefixAt = DYN;
    this.prefixLen = prefix.length;
    this.outAt = outAt;
    this.n = 0;
    return true;
  }

  /** Queue a row: entry i, its inode's fields (size and the ids below 2^32, mtime an int32). True when the batch is full (flush). */
  add(i: number, ino: number, mode: number, size: number, nlink: number, uid: number, gid: number, mtime: number): boolean {
    const i32 = this.i32, w = (this.recsAt >> 2) + this.n * REC_WORDS;
    i32[w] = i;
    i32[w + 1] = ino;
    i32[w + 2] = mode;
    i32[w + 3] = size;
    i32[w + 4] = nlink;
    i32[w + 5] = uid;
    i32[w + 6] = gid;
    i32[w + 7] = mtime;
    return ++this.n === this.batch;
  }

  /**
   * Bytes rowsAt needs beyond its records for `n` rows with `namesBytes` bytes of names at most,
   * under a directory path of `prefixLen` escaped bytes.
   */
  static rowsAtBytes(n: number, namesBytes: number, prefixLen: number): number {
    return ((prefixLen + 7) & ~7) + n * (ROW_FIXED + prefixLen) + 12 * namesBytes;
  }

  /** `bytes` into the memory at `at` (a directory's path for rowsAt). */
  put(bytes: Uint8Array, at: number): void {
    this.views();
    this.u8.set(bytes, at);
  }

  /**
   * Rows whose records and names are in the memory already (dir-list-wasm.ts), the directory's
   * escaped path at prefixAt; returns where they end at outAt.
   */
  rowsAt(n: number, recsAt: number, addrsAt: number, lensAt: number, prefixAt: number, prefixLen: number, outAt: number, first: boolean): number {
    return this.rows(n, recsAt, addrsAt, lensAt, prefixAt, prefixLen, outAt, first ? 1 : 0);
  }

  /** Bytes [from, to) of the memory, as they are until it is used (or grown) again. */
  view(from: number, to: number): Uint8Array {
    this.views();
    return this.u8.subarray(from, to);
  }

  /** Write the queued rows (the first opening the array when `first`); the bytes are valid until the next call. */
  flush(first: boolean): Uint8Array {
    this.views();
    const end = this.rows(this.n, this.recsAt, this.addrsAt, this.lensAt, this.prefixAt, this.prefixLen, this.outAt, first ? 1 : 0);
    this.n = 0;
    return this.u8.subarray(this.outAt, end);
  }
}
