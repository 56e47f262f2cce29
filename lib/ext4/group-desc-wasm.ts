/**
 * group-table.ts' descriptor decode for the common case, as a hand-assembled WebAssembly module:
 * descriptors whose block numbers fit 32 bits, checked (metadata_csum checksum, the bounds
 * checkGroupDesc applies) and split into columns in one call. A fresh `free` over 1 TiB decodes
 * 8,192 descriptors once, mostly interpreted in JS (with a 64-byte checksum each) and then
 * compiled by TurboFan in the background; Liftoff compiles this at instantiation.
 *
 * It answers only what it is sure of: it stops at the first descriptor that is not plainly valid
 * (a high half of a block number set, a bound or the checksum failing) and returns its index, and
 * group-table.ts decodes from there in JS, which takes a 64-bit value or throws checkGroupDesc's
 * own error.
 *
 * Memory: the crc32c slicing-by-8 tables at 0 (crc32c-wasm.ts' function), a scratch word, the
 * descriptor bytes at IN (copied in), the columns at OUT: block bitmap, inode bitmap, inode table,
 * free clusters, flags, block bitmap checksum (count u32 each).
 * decode(count, size, seed, g0, lo, top, itMax, maxFree, maxFreeInodes, verify, wide) → index.
 */
import { crc32cTables } from '../codec/crc.js';
import { CRC32C_FUNC } from '../codec/crc32c-wasm.js';
import { ADD, AND, BLOCK, BR, BR_IF, CALL, END, EQZ, GE_U, GET, GT_U, I32, IF, LOAD, LOAD16_U, LOOP, LT_U, MUL, NE, OR, RETURN, SET, SHL, STORE, STORE16, VOID, funcCode, i32c, section, uleb, wasmModule, wasmName } from '../codec/wasm-asm.js';
import { GroupDesc64Layout } from './group-desc.js';

const SCRATCH = 8192;
const IN = 8256;
/** Most descriptor bytes per call (group-table.ts reads up to this much at a time). */
export const DESC_WASM_BYTES = 256 * 1024;
/** Most descriptors per call (32-byte descriptors). */
const MAX_COUNT = DESC_WASM_BYTES / 32;
const OUT = IN + DESC_WASM_BYTES;
/** The output columns, in order. */
export const COL_BLOCK_BITMAP = 0, COL_INODE_BITMAP = 1, COL_INODE_TABLE = 2, COL_FREE = 3, COL_FLAGS = 4, COL_BB_CSUM = 5;
const COLUMNS = 6;
const MEMORY_BYTES = OUT + COLUMNS * MAX_COUNT * 4;

const off = (f: Parameters<typeof GroupDesc64Layout.offsetOf>[0]) => GroupDesc64Layout.offsetOf(f);

// Parameters, then locals.
const CNT = 0, SIZE = 1, SEED = 2, G0 = 3, LO = 4, TOP = 5, ITMAX = 6, MAXF = 7, MAXFI = 8, VERIFY = 9, WIDE = 10;
const J = 11, D = 12, BB = 13, IB = 14, IT = 15, FB = 16, FI = 17, BBC = 18, S = 19, C = 20;
const LOCALS = 10;

const ld32 = (f: Parameters<typeof off>[0]) => [GET, D, LOAD, 2, ...uleb(off(f))];
const ld16 = (f: Parameters<typeof off>[0]) => [GET, D, LOAD16_U, 1, ...uleb(off(f))];
/** lo16 | hi16 << 16 with a 64-byte descriptor, else lo16. */
const pair16 = (lo: Parameters<typeof off>[0], hi: Parameters<typeof off>[0]) => [...ld16(lo), GET, WIDE, IF, I32, ...ld16(hi), ...i32c(16), SHL, ELSE_, ...i32c(0), END, OR];
const ELSE_ = 0x05;
/** Return j (not plainly valid) when the value on the stack is non-zero. */
const failIf = () => [IF, VOID, GET, J, RETURN, END];
/** lo ≤ v < top and v ≠ 0 for local v (unsigned). */
const inFs = (v: number, max: number[], cmp: number) => [GET, v, GET, LO, LT_U, GET, v, ...max, cmp, OR, GET, v, EQZ, OR, ...failIf()];
/** Column k, entry j := local v. */
const col = (k: number, v: number) => [...i32c(OUT + k * MAX_COUNT * 4), GET, J, ...i32c(2), SHL, ADD, GET, v, STORE, 2, 0];

const BODY = [
  BLOCK, VOID, LOOP, VOID,
  ...[GET, J, GET, CNT, GE_U, BR_IF, 1],
  ...[...i32c(IN), GET, J, GET, SIZE, MUL, ADD, SET, D],
  ...[...ld32('bg_block_bitmap_lo'), SET, BB, ...ld32('bg_inode_bitmap_lo'), SET, IB, ...ld32('bg_inode_table_lo'), SET, IT],
  ...[GET, WIDE, IF, VOID, ...ld32('bg_block_bitmap_hi'), ...ld32('bg_inode_bitmap_hi'), OR, ...ld32('bg_inode_table_hi'), OR, ...failIf(), END],
  ...pair16('bg_free_blocks_count_lo', 'bg_free_blocks_count_hi'), SET, FB,
  ...pair16('bg_free_inodes_count_lo', 'bg_free_inodes_count_hi'), SET, FI,
  ...pair16('bg_block_bitmap_csum_lo', 'bg_block_bitmap_csum_hi'), SET, BBC,
  // checkGroupDesc's bounds (the inode table's end as it ≤ top − its blocks).
  ...inFs(BB, [GET, TOP], GE_U), ...inFs(IB, [GET, TOP], GE_U), ...inFs(IT, [GET, ITMAX], GT_U),
  ...[GET, FB, GET, MAXF, GT_U, GET, FI, GET, MAXFI, GT_U, OR, ...failIf()],
  // metadata_csum: crc32c(crc32c(seed, le32 group), the descriptor with bg_checksum zeroed) & 0xffff.
  GET, VERIFY, IF, VOID,
  ...[...ld16('bg_checksum'), SET, S, GET, D, ...i32c(0), STORE16, 1, ...uleb(off('bg_checksum'))],
  ...[...i32c(SCRATCH), GET, G0, GET, J, ADD, STORE, 2, 0],
  ...[GET, SEED, ...i32c(SCRATCH), ...i32c(4), CALL, 0, GET, D, GET, SIZE, CALL, 0, SET, C],
  ...[GET, D, GET, S, STORE16, 1, ...uleb(off('bg_checksum'))],
  ...[GET, C, ...i32c(0xffff), AND, GET, S, NE, ...failIf()],
  END,
  ...col(COL_BLOCK_BITMAP, BB), ...col(COL_INODE_BITMAP, IB), ...col(COL_INODE_TABLE, IT), ...col(COL_FREE, FB), ...col(COL_BB_CSUM, BBC),
  ...[...ld16('bg_flags'), SET, S, ...col(COL_FLAGS, S)],
  ...[GET, J, ...i32c(1), ADD, SET, J],
  BR, 0, END, END,
  GET, CNT,
  END,
];

/** The module's bytes. */
export function groupDescWasmBytes(): Uint8Array<ArrayBuffer> {
  return wasmModule([
    // type 0: crc (i32 × 3) → i32; type 1: decode (i32 × 11) → i32
    ...section(1, [2, 0x60, 3, I32, I32, I32, 1, I32, 0x60, 11, ...new Array<number>(11).fill(I32), 1, I32]),
    ...section(3, [2, 0, 1]),
    ...section(5, [1, 0x00, ...uleb(Math.ceil(MEMORY_BYTES / 65536))]),
    ...section(7, [2, ...wasmName('decode'), 0x00, 1, ...wasmName('mem'), 0x02, 0]),
    ...section(10, [2, ...CRC32C_FUNC(), ...funcCode(LOCALS, BODY)]),
  ]);
}

/** What group-table.ts passes: the filesystem's bounds, as checkGroupDesc applies them. */
export interface DescBounds {
  /** s_first_data_block, blocks count (< 2^32), blocks count − inode table blocks (≥ 0). */
  lo: number;
  top: number;
  itMax: number;
  maxFree: number;
  maxFreeInodes: number;
}

interface Decoder {
  decode(count: number, size: number, seed: number, g0: number, lo: number, top: number, itMax: number, maxFree: number, maxFreeInodes: number, verify: number, wide: number): number;
  memory: WebAssembly.Memory;
}

let decoder: Decoder | null | undefined;

function load(): Decoder | null {
  try {
    if (typeof WebAssembly !== 'object' || new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) return (decoder = null);
    const inst = new WebAssembly.Instance(new WebAssembly.Module(groupDescWasmBytes()), {});
    const memory = inst.exports.mem as WebAssembly.Memory;
    new Int32Array(memory.buffer, 0, 2048).set(crc32cTables().subarray(0, 2048));
    return (decoder = { decode: inst.exports.decode as Decoder['decode'], memory });
  } catch {
    return (decoder = null);
  }
}

/**
 * Descriptors (of `size` bytes, the first of group g0) in `bytes` (up to DESC_WASM_BYTES), checked
 * and decoded: returns how many from the first were plainly valid, k, and the columns' first k
 * entries (views, valid until the next call); null where WebAssembly is unavailable.
 */
export function decodeGroupDescs(bytes: Uint8Array, size: number, g0: number, fsSeed: number, b: DescBounds, verify: boolean, wide: boolean): { count: number; column(k: number): Uint32Array } | null {
  const d = decoder === undefined ? load() : decoder;
  if (d === null || bytes.length > DESC_WASM_BYTES) return null;
  const count = Math.floor(bytes.length / size);
  const buf = d.memory.buffer;
  new Uint8Array(buf, IN, bytes.length).set(bytes);
  const k = d.decode(count, size, fsSeed | 0, g0, b.lo, b.top, b.itMax, b.maxFree, b.maxFreeInodes, verify ? 1 : 0, wide ? 1 : 0);
  return { count: k, column: (c) => new Uint32Array(buf, OUT + c * MAX_COUNT * 4, k) };
}
