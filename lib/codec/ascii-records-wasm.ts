/**
 * ascii-records.ts' RecordEncoder as a hand-assembled WebAssembly module, for records whose two
 * number columns already lie in a WebAssembly memory (a wasm free-space scan's run table,
 * lib/ext4/free-runs-wasm.ts): the text is made in that memory, a chunk at a time, and written
 * out from there. In a fresh process the JS encoder runs mostly interpreted or as baseline code
 * (a 1 TiB `free --json` is 13 MB of digits); Liftoff compiles this at instantiation.
 *
 * The same bytes as RecordEncoder (test/unit/ascii-records-wasm.test.ts): the constant pieces
 * are baked into the code as 32-bit stores (one module per RecordPieces), the digits written four
 * at a time from a table of 10,000 little-endian words (ascii-records.ts' QUAD, built here), a
 * value as its leading digits then, past 10^8, eight more. Values are column × unit below 2^53.
 *
 * The module imports its memory ("m", "m"); function 0 quad(q) builds the digit table at q;
 * function 1 num(p, v: i64, q) → end; function 2 fill(state, out, cap, n, a, b, unit, q) → bytes:
 * the next whole records (state: the next record's index, n + 1 once done) into [out, out + cap),
 * as RecordEncoder.fill; up to 3 bytes past what it reports, and past cap, are scratch.
 */
import { ADD, AND, BLOCK, BR, BR_IF, CALL, ELSE, END, EQZ, GE_U, GET, GT_U, I32, IF, LOAD, LOOP, LT_U, MUL, OR, RETURN, SET, SHL, SHR_U, STORE, SUB, TEE, VOID, funcCode, i32c, section, sleb, uleb, wasmModule, wasmName } from './wasm-asm.js';
import type { RecordPieces } from './ascii-records.js';

// Opcodes wasm-asm.ts does not name (core spec §5.4).
const I64 = 0x7e, I64_CONST = 0x42, I64_LT_U = 0x54, I64_DIV_U = 0x80, I64_MUL = 0x7e, I64_EXTEND_U = 0xad, WRAP = 0xa7, DIV_U = 0x6e;

/** Bytes of the digit table, and the slack an output chunk needs past its capacity. */
export const QUAD_BYTES = 40000;
export const CHUNK_SLACK = 16;
/** Digits of the longest safe integer. */
const MAX_DIGITS = 16;

const ld = (off = 0) => [LOAD, 2, ...uleb(off)];
const st = (off = 0) => [STORE, 2, ...uleb(off)];

// ---- quad(q): word x = its four digits, the first in the low byte ----
const QQ = 0, QX = 1, QW = 2;
const quadBody = [
  BLOCK, VOID, LOOP, VOID,
  ...[GET, QX, ...i32c(10000), GE_U, BR_IF, 1],
  // 0x30303030 + x/1000 + (x/100 % 10 << 8) + (x/10 % 10 << 16) + (x % 10 << 24)
  ...[...i32c(0x30303030), GET, QX, ...i32c(1000), DIV_U, ADD, SET, QW],
  ...[GET, QW, GET, QX, ...i32c(100), DIV_U, ...mod10(), ...i32c(8), SHL, ADD, SET, QW],
  ...[GET, QW, GET, QX, ...i32c(10), DIV_U, ...mod10(), ...i32c(16), SHL, ADD, SET, QW],
  ...[GET, QW, GET, QX, ...mod10(), ...i32c(24), SHL, ADD, SET, QW],
  ...[GET, QQ, GET, QX, ...i32c(2), SHL, ADD, GET, QW, ...st()],
  ...[GET, QX, ...i32c(1), ADD, SET, QX],
  BR, 0, END, END,
  END,
];
/** x % 10 of the value on the stack (x - x / 10 * 10, through local QW's neighbour: a tee into a scratch local). */
function mod10(): number[] {
  return [TEE, 3, GET, 3, ...i32c(10), DIV_U, ...i32c(10), MUL, SUB];
}

// ---- num(p, v, q) → p ----
const NP = 0, NV = 1, NQ = 2, NX = 3, NH = 4, NT = 5, NF = 6;
/** The digit word of the value at local l (< 10^4), at the table. */
const quadOf = (value: number[]) => [GET, NQ, ...value, ...i32c(2), SHL, ADD, ...ld()];
/** 0 ≤ local l < 10^4 without leading zeros: its word shifted down by the zeros, stored whole. */
const upTo4 = (l: number) => [
  GET, NP, ...quadOf([GET, l]),
  ...[GET, l, ...i32c(10), LT_U, GET, l, ...i32c(100), LT_U, ADD, GET, l, ...i32c(1000), LT_U, ADD, TEE, NT, ...i32c(3), SHL, SHR_U, ...st()],
  ...[GET, NP, ...i32c(4), GET, NT, SUB, ADD, SET, NP],
];
const numBody = [
  // v ≥ 10^8: x = v / 10^8 (below 10^8 for any safe integer), h = the eight low digits.
  ...[GET, NV, I64_CONST, ...sleb(1e8), I64_LT_U, IF, VOID, GET, NV, WRAP, SET, NX, ELSE],
  ...[GET, NV, I64_CONST, ...sleb(1e8), I64_DIV_U, WRAP, SET, NX, GET, NV, WRAP, GET, NX, ...i32c(1e8), MUL, SUB, SET, NH, ...i32c(1), SET, NF],
  END,
  ...[GET, NX, ...i32c(10000), GE_U, IF, VOID],
  ...[GET, NX, ...i32c(10000), DIV_U, SET, NT, ...upTo4(NT)],
  ...[GET, NP, ...quadOf([GET, NX, GET, NX, ...i32c(10000), DIV_U, ...i32c(10000), MUL, SUB]), ...st(), GET, NP, ...i32c(4), ADD, SET, NP],
  ELSE, ...upTo4(NX), END,
  ...[GET, NF, IF, VOID],
  ...[GET, NH, ...i32c(10000), DIV_U, SET, NT],
  ...[GET, NP, ...quadOf([GET, NT]), ...st(0), GET, NP, ...quadOf([GET, NH, GET, NT, ...i32c(10000), MUL, SUB]), ...st(4)],
  ...[GET, NP, ...i32c(8), ADD, SET, NP],
  END,
  GET, NP,
  END,
];

// ---- fill(state, out, cap, n, a, b, unit, q) → bytes ----
const FS = 0, FO = 1, FC = 2, FN = 3, FA = 4, FB = 5, FU = 6, FQ = 7, FI = 8, FP = 9, FL = 10;

/** A piece's bytes as 32-bit stores at local FP (padded with spaces: what follows overwrites them), then FP past it. */
function storePiece(b: Uint8Array): number[] {
  const out: number[] = [];
  for (let k = 0; k * 4 < b.length; k++) {
    let w = 0;
    for (let j = 0; j < 4; j++) w |= (b[4 * k + j] ?? 0x20) << (8 * j);
    out.push(GET, FP, ...i32c(w), ...st(4 * k));
  }
  return [...out, GET, FP, ...i32c(b.length), ADD, SET, FP];
}
/** Column `col`'s value i × unit, as i64, then num. */
const number = (col: number) => [GET, FP, GET, col, GET, FI, ...i32c(2), SHL, ADD, ...ld(), I64_EXTEND_U, GET, FU, I64_EXTEND_U, I64_MUL, GET, FQ, CALL, 1, SET, FP];

/** The greatest bytes a record takes (the piece before it, two numbers, the piece between them). */
export const maxRecordBytes = (p: RecordPieces) => Math.max(p.first.length, p.next.length) + p.mid.length + 2 * MAX_DIGITS;

function fillBody(p: RecordPieces): number[] {
  return [
    ...[GET, FS, ...ld(), TEE, FI, GET, FN, GT_U, IF, VOID, ...i32c(0), RETURN, END],
    ...[GET, FO, SET, FP, GET, FO, GET, FC, ADD, ...i32c(maxRecordBytes(p) + 4), SUB, SET, FL],
    BLOCK, VOID, LOOP, VOID,
    ...[GET, FI, GET, FN, GE_U, GET, FP, GET, FL, GT_U, OR, BR_IF, 1],
    ...[GET, FI, EQZ, IF, VOID, ...storePiece(p.first), ELSE, ...storePiece(p.next), END],
    ...number(FA),
    ...storePiece(p.mid),
    ...number(FB),
    ...[GET, FI, ...i32c(1), ADD, SET, FI],
    BR, 0, END, END,
    ...[GET, FI, GET, FN, 0x46 /* i32.eq */, GET, FP, ...i32c(p.last.length), ADD, GET, FO, GET, FC, ADD, 0x4d /* i32.le_u */, AND, IF, VOID],
    ...storePiece(p.last),
    ...[GET, FI, ...i32c(1), ADD, SET, FI],
    END,
    ...[GET, FS, GET, FI, ...st()],
    ...[GET, FP, GET, FO, SUB],
    END,
  ];
}

/** The module's bytes for `pieces`. */
export function recordsWasmBytes(pieces: RecordPieces): Uint8Array<ArrayBuffer> {
  return wasmModule([
    // type 0: quad (i32) → (); type 1: num (i32, i64, i32) → i32; type 2: fill (i32 × 8) → i32
    ...section(1, [3, 0x60, 1, I32, 0, 0x60, 3, I32, I64, I32, 1, I32, 0x60, 8, ...new Array<number>(8).fill(I32), 1, I32]),
    ...section(2, [1, ...wasmName('m'), ...wasmName('m'), 0x02, 0x00, 1]), // memory import, at least 1 page
    ...section(3, [3, 0, 1, 2]),
    ...section(7, [2, ...wasmName('quad'), 0x00, 0, ...wasmName('fill'), 0x00, 2]),
    ...section(10, [3, ...funcCode(3, quadBody), ...funcCode(4, numBody), ...funcCode(3, fillBody(pieces))]),
  ]);
}

/** The module's two entry points, over one memory. */
interface RecordsWasm {
  quad(q: number): void;
  fill(state: number, out: number, cap: number, n: number, a: number, b: number, unit: number, q: number): number;
}

/**
 * The records (a[i] × unit, b[i] × unit), i < n (n ≥ 1; below 2^53), a and b Uint32Array views
 * of `memory`, encoded a chunk (≤ `chunk` bytes) at a time into the bytes from `spareAt`
 * (QUAD_BYTES + 8 + chunk + CHUNK_SLACK of them, which nobody else uses): every chunk is a view of
 * the same bytes, overwritten by the next (write each before asking for the next). Null where
 * WebAssembly is unavailable, the host is big-endian, or the memory does not have the room.
 */
export function wasmRecordChunks(pieces: RecordPieces, memory: WebAssembly.Memory, spareAt: number, n: number, a: Uint32Array, b: Uint32Array, unit: number, chunk: number): Iterable<Uint8Array> | null {
  if (spareAt + QUAD_BYTES + 8 + chunk + CHUNK_SLACK > memory.buffer.byteLength || a.buffer !== memory.buffer || b.buffer !== memory.buffer) return null;
  if (chunk < maxRecordBytes(pieces) + 4 + pieces.last.length) return null;
  const m = recordsModule(pieces);
  if (m === null) return null;
  let k: RecordsWasm;
  try {
    k = new WebAssembly.Instance(m, { m: { m: memory } }).exports as unknown as RecordsWasm;
  } catch {
    return null;
  }
  return chunks(k, memory, spareAt, n, a.byteOffset, b.byteOffset, unit, chunk);
}

function* chunks(k: RecordsWasm, memory: WebAssembly.Memory, spareAt: number, n: number, a: number, b: number, unit: number, chunk: number): Generator<Uint8Array> {
  const q = spareAt, state = spareAt + QUAD_BYTES, out = state + 8;
  new Int32Array(memory.buffer, state, 1)[0] = 0;
  k.quad(q);
  // Stops once done, without a last call (as free-output.ts' JS loop).
  do yield new Uint8Array(memory.buffer, out, k.fill(state, out, chunk, n, a, b, unit, q));
  while (new Int32Array(memory.buffer, state, 1)[0]! <= n);
}

const modules = new WeakMap<RecordPieces, WebAssembly.Module | null>();

function recordsModule(pieces: RecordPieces): WebAssembly.Module | null {
  let m = modules.get(pieces);
  if (m === undefined) {
    try {
      m = typeof WebAssembly === 'object' && new Uint8Array(Uint16Array.of(1).buffer)[0] === 1 ? new WebAssembly.Module(recordsWasmBytes(pieces)) : null;
    } catch {
      m = null;
    }
    modules.set(pieces, m);
  }
  return m;
}
