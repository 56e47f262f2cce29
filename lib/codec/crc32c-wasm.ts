/**
 * crc32c (kernel convention, as crc.ts) as a hand-written WebAssembly module of a few hundred
 * bytes. V8 compiles wasm with its baseline compiler (Liftoff) at instantiation, so the loop runs
 * as machine code from the first call; the same loop in JS runs interpreted or as baseline code
 * for thousands of calls in a fresh process (10,000 inode checksums of an `ls -R` are over before
 * TurboFan's version arrives). Platform-free (browsers have WebAssembly too); where it is missing
 * or forbidden (a CSP without 'wasm-unsafe-eval'), or disagrees with the JS loop on a test vector
 * (a big-endian host: the tables are copied in host order), crc.ts keeps its JS loop.
 *
 * Memory (one 64 KiB page): the slicing-by-8 tables T0..T7 at 0 (1 KiB each, T0 the byte
 * table, the layout crc.ts builds), then scratch for the bytes to hash (wasm reads only its own
 * memory: callers copy their range in, which is one native memcpy).
 *
 * The one function, crc(seed, ptr, len) → crc, in the text format:
 *   end8 = ptr + (len & -8); end = ptr + len
 *   while ptr < end8: c ^= load32(ptr); hi = load32(ptr + 4)
 *     c = T7[c & 255] ^ T6[c >>> 8 & 255] ^ T5[c >>> 16 & 255] ^ T4[c >>> 24]
 *       ^ T3[hi & 255] ^ T2[hi >>> 8 & 255] ^ T1[hi >>> 16 & 255] ^ T0[hi >>> 24]; ptr += 8
 *   while ptr < end: c = T0[(c ^ load8(ptr)) & 255] ^ c >>> 8; ptr += 1
 */

import { ADD, AND, BLOCK, BR, BR_IF, END, GE_U, GET, I32, LOAD, LOAD8_U, LOOP, SET, SHL, SHR_U, VOID, XOR, funcCode, i32c, section, uleb, wasmModule, wasmName } from './wasm-asm.js';

/** Where the scratch begins and how many bytes it holds. */
export const WASM_SCRATCH = 8192;
export const WASM_SCRATCH_BYTES = 65536 - WASM_SCRATCH;

/** The instance's crc and a byte view of its memory (tables at 0, scratch at WASM_SCRATCH). */
export interface Crc32cWasm {
  crc(seed: number, ptr: number, len: number): number;
  readonly mem: Uint8Array;
}

/** i32.load of table `k`'s entry for the index on the stack (index × 4 + k KiB). */
const tableLoad = (k: number) => [...i32c(2), SHL, LOAD, 2, ...uleb(k * 1024)];
/** Table `k` at byte `byte` (0..3) of local `l`. */
const lookup = (l: number, byte: number, k: number) => [GET, l, ...(byte ? [...i32c(8 * byte), SHR_U] : []), ...(byte < 3 ? [...i32c(255), AND] : []), ...tableLoad(k)];

/**
 * The crc function's code (locals: 0 seed/c, 1 ptr, 2 len — the parameters —, 3 end8, 4 end,
 * 5 hi), with the tables at 0 of its module's memory: exported so that a module that hashes as
 * part of its own loop (lib/ext4/inode-summary-wasm.ts) carries the same function.
 */
export const CRC32C_FUNC = () => funcCode(3, BODY);
const BODY = [
  ...[GET, 1, GET, 2, ...i32c(-8), AND, ADD, SET, 3],
  ...[GET, 1, GET, 2, ADD, SET, 4],
  BLOCK, VOID, LOOP, VOID,
  ...[GET, 1, GET, 3, GE_U, BR_IF, 1],
  ...[GET, 0, GET, 1, LOAD, 2, 0, XOR, SET, 0],
  ...[GET, 1, LOAD, 2, 4, SET, 5],
  ...lookup(0, 0, 7), ...lookup(0, 1, 6), XOR, ...lookup(0, 2, 5), XOR, ...lookup(0, 3, 4), XOR,
  ...lookup(5, 0, 3), XOR, ...lookup(5, 1, 2), XOR, ...lookup(5, 2, 1), XOR, ...lookup(5, 3, 0), XOR,
  SET, 0,
  ...[GET, 1, ...i32c(8), ADD, SET, 1],
  BR, 0, END, END,
  BLOCK, VOID, LOOP, VOID,
  ...[GET, 1, GET, 4, GE_U, BR_IF, 1],
  ...[GET, 0, GET, 1, LOAD8_U, 0, 0, XOR, ...i32c(255), AND, ...tableLoad(0)],
  ...[GET, 0, ...i32c(8), SHR_U, XOR, SET, 0],
  ...[GET, 1, ...i32c(1), ADD, SET, 1],
  BR, 0, END, END,
  GET, 0,
  END,
];

/** The module's bytes. */
export function crc32cWasmBytes(): Uint8Array<ArrayBuffer> {
  return wasmModule([
    ...section(1, [1, 0x60, 3, I32, I32, I32, 1, I32]), // type 0: (i32, i32, i32) → i32
    ...section(3, [1, 0]), // function 0 has type 0
    ...section(5, [1, 0x01, 1, 1]), // one memory: exactly one page
    ...section(7, [2, ...wasmName('crc'), 0x00, 0, ...wasmName('mem'), 0x02, 0]),
    ...section(10, [1, ...CRC32C_FUNC()]),
  ]);
}

/**
 * A new instance with `tables` (crc.ts's: T0..T7 as the first 2,048 entries) copied in, or null
 * where WebAssembly is unavailable or refused. The caller checks it against its JS loop.
 */
export function instantiateCrc32cWasm(tables: Int32Array): Crc32cWasm | null {
  try {
    if (typeof WebAssembly !== 'object') return null;
    const inst = new WebAssembly.Instance(new WebAssembly.Module(crc32cWasmBytes()), {});
    const memory = inst.exports.mem as WebAssembly.Memory;
    new Int32Array(memory.buffer, 0, 2048).set(tables.subarray(0, 2048));
    return { crc: inst.exports.crc as Crc32cWasm['crc'], mem: new Uint8Array(memory.buffer) };
  } catch {
    return null;
  }
}
