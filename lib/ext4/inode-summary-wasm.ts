/**
 * inodeSummary (inode.ts) for a whole batch of inode slots in one WebAssembly call: the checks a
 * read makes (i_extra_isize fits, the metadata_csum checksum) and the listing fields. A fresh
 * process lists 10,000 inodes before V8 optimises the JS that reads them — each field read there
 * is a call and a few byte loads through inline caches, ~12,000 instructions per inode with its
 * checksum —, while wasm runs as machine code from instantiation (V8's Liftoff).
 *
 * It only answers what is certain: an inode is marked done when every check passed and every
 * field is a plain 32-bit value (i_size_high 0, no epoch bits in i_mtime_extra). Anything else —
 * a checksum that does not match (an all-zero slot is exempt, and the error names the stored
 * value), an impossible i_extra_isize, a large size, a time past 2038, a run that failed to read —
 * is left to inodeSummary itself, which makes the same decision and throws the same error.
 *
 * Module: function 0 is crc32c-wasm.ts's crc (the tables at 0 of this module's memory), function
 * 1 `sum(n, runs, slots, inos, bases, out, fsSeed, inodeSize, verify)`:
 *   for i < n: out[i] = {done, mode, uid, gid, size, links, mtime, 0} (8 × i32), done = 0 when
 *   answered (1: ask inodeSummary); the slot is at bases[runs[i]] + slots[i] (runs[i] < 0 or a
 *   base < 0: a failed read). The checksum is computed with its two halves zeroed in place and
 *   restored afterwards (a hard-linked inode's slot may come twice).
 */
import { crc32cPortable, crc32cTables } from '../codec/crc.js';
import { inodeSeed } from './checksum.js';
import { CRC32C_FUNC } from '../codec/crc32c-wasm.js';
import {
  ADD, AND, BLOCK, BR, BR_IF, CALL, END, GE_U, GET, GT_U, I32, IF, LOAD, LOAD16_U, LOOP, LT_S, NE, OR, SET, SHL, STORE, STORE16, SUB, TEE, VOID,
  funcCode, i32c, section, uleb, wasmModule, wasmName,
} from '../codec/wasm-asm.js';
import { fileTypeOfMode, InodeBaseLayout, InodeExtraLayout, type InodeSummary } from './inode.js';

/** Where the crc tables end (T0..T7, 1 KiB each) and the scratch word for a seed's inputs is. */
const SCRATCH_WORD = 8192;
/** Where the per-call arrays start. */
const ARRAYS = 8200;
/** i32 words per inode in `out`. */
export const SUMMARY_WORDS = 8;
/** Offsets of `out`'s words. */
export const SUMMARY_DONE = 0, SUMMARY_MODE = 1, SUMMARY_UID = 2, SUMMARY_GID = 3, SUMMARY_SIZE = 4, SUMMARY_LINKS = 5, SUMMARY_MTIME = 6;

const B = (f: Parameters<typeof InodeBaseLayout.offsetOf>[0]) => InodeBaseLayout.offsetOf(f);
const X = (f: Parameters<typeof InodeExtraLayout.offsetOf>[0]) => InodeExtraLayout.offsetOf(f);
/** i_extra_isize from which a field is in the inode (inode.ts extraCovers). */
const needs = (f: Parameters<typeof InodeExtraLayout.offsetOf>[0]) => X(f) + InodeExtraLayout.sizeOf(f) - InodeBaseLayout.size;

// Parameters 0..8, then locals.
const N = 0, RUNS = 1, SLOTS = 2, INOS = 3, BASES = 4, OUT = 5, SEED = 6, ISIZE = 7, VERIFY = 8;
const I = 9, ADDR = 10, EXTRA = 11, C = 12, O = 13, LO = 14, HI = 15, T = 16;
const LOCALS = 8;

const ld32 = (off: number) => [LOAD, 2, ...uleb(off)];
const ld16 = (off: number) => [LOAD16_U, 1, ...uleb(off)];
/** Local `l` (a byte address) + field `off`, 32 or 16 bits. */
const field32 = (l: number, off: number) => [GET, l, ...ld32(off)];
const field16 = (l: number, off: number) => [GET, l, ...ld16(off)];
/** Store the value `value` leaves on the stack in out word `w` of the current inode. */
const out = (w: number, value: number[]) => [GET, O, ...value, STORE, 2, ...uleb(w * 4)];
/** array[i] of the i32 array at local `ptr`. */
const at = (ptr: number, index: number[]) => [GET, ptr, ...index, ...i32c(2), SHL, ADD, ...ld32(0)];

const SKIP = 0; // the block depth of "skip this inode" from the straight-line code in it
const BODY = [
  BLOCK, VOID, LOOP, VOID,
  ...[GET, I, GET, N, GE_U, BR_IF, 1],
  ...[GET, OUT, GET, I, ...i32c(5), SHL, ADD, SET, O],
  ...out(SUMMARY_DONE, i32c(1)),
  BLOCK, VOID,
  // The slot's address, or skip (a failed read).
  ...[...at(RUNS, [GET, I]), TEE, T, ...i32c(0), LT_S, BR_IF, SKIP],
  ...[...at(BASES, [GET, T]), TEE, T, ...i32c(0), LT_S, BR_IF, SKIP],
  ...[GET, T, ...at(SLOTS, [GET, I]), ADD, SET, ADDR],
  // i_extra_isize (0 in a 128-byte inode), which must fit the slot and be a multiple of 4.
  ...i32c(0), SET, EXTRA,
  ...[GET, ISIZE, ...i32c(InodeBaseLayout.size), GT_U, IF, VOID, ...field16(ADDR, X('i_extra_isize')), SET, EXTRA, END],
  ...[GET, EXTRA, GET, ISIZE, ...i32c(InodeBaseLayout.size), SUB, GT_U, BR_IF, SKIP],
  ...[GET, EXTRA, ...i32c(3), AND, BR_IF, SKIP],
  // The checksum: seed = crc(crc(fsSeed, le32 ino), le32 generation), then the slot with both halves as zeros.
  GET, VERIFY, IF, VOID,
  ...[...i32c(SCRATCH_WORD), ...at(INOS, [GET, I]), STORE, 2, 0],
  ...[GET, SEED, ...i32c(SCRATCH_WORD), ...i32c(4), CALL, 0, SET, C],
  ...[...i32c(SCRATCH_WORD), ...field32(ADDR, B('i_generation')), STORE, 2, 0],
  ...[GET, C, ...i32c(SCRATCH_WORD), ...i32c(4), CALL, 0, SET, C],
  ...[...field16(ADDR, B('i_checksum_lo')), SET, LO, GET, ADDR, ...i32c(0), STORE16, 1, ...uleb(B('i_checksum_lo'))],
  ...i32c(0), SET, HI,
  ...[GET, EXTRA, ...i32c(needs('i_checksum_hi')), GE_U, IF, VOID],
  ...[...field16(ADDR, X('i_checksum_hi')), SET, HI, GET, ADDR, ...i32c(0), STORE16, 1, ...uleb(X('i_checksum_hi'))],
  END,
  ...[GET, C, GET, ADDR, GET, ISIZE, CALL, 0, SET, C],
  ...[GET, ADDR, GET, LO, STORE16, 1, ...uleb(B('i_checksum_lo'))],
  // Without the high half only the low 16 bits are compared (HI stays 0 and is not restored).
  ...[GET, EXTRA, ...i32c(needs('i_checksum_hi')), GE_U, IF, VOID, GET, ADDR, GET, HI, STORE16, 1, ...uleb(X('i_checksum_hi')), END],
  ...[GET, EXTRA, ...i32c(needs('i_checksum_hi')), GE_U, IF, VOID],
  ...[GET, C, GET, HI, ...i32c(16), SHL, GET, LO, OR, NE, BR_IF, SKIP + 2],
  END,
  ...[GET, C, ...i32c(0xffff), AND, GET, LO, NE, BR_IF, SKIP + 1],
  END,
  // Values inodeSummary would make doubles of, or refuse: left to it.
  ...[...field32(ADDR, B('i_size_high')), BR_IF, SKIP],
  ...[GET, EXTRA, ...i32c(needs('i_mtime_extra')), GE_U, IF, VOID, ...field32(ADDR, X('i_mtime_extra')), ...i32c(3), AND, BR_IF, SKIP + 1, END],
  ...out(SUMMARY_MODE, field16(ADDR, B('i_mode'))),
  ...out(SUMMARY_UID, [...field16(ADDR, B('i_uid')), ...field16(ADDR, B('i_uid_high')), ...i32c(16), SHL, OR]),
  ...out(SUMMARY_GID, [...field16(ADDR, B('i_gid')), ...field16(ADDR, B('i_gid_high')), ...i32c(16), SHL, OR]),
  ...out(SUMMARY_SIZE, field32(ADDR, B('i_size_lo'))),
  ...out(SUMMARY_LINKS, field16(ADDR, B('i_links_count'))),
  ...out(SUMMARY_MTIME, field32(ADDR, B('i_mtime'))),
  ...out(SUMMARY_DONE, i32c(0)),
  END,
  ...[GET, I, ...i32c(1), ADD, SET, I],
  BR, 0, END, END,
  END,
];

/** The module's bytes. */
export function inodeSummaryWasmBytes(): Uint8Array<ArrayBuffer> {
  return wasmModule([
    // type 0: crc (i32, i32, i32) → i32; type 1: sum (9 × i32) → ()
    ...section(1, [2, 0x60, 3, I32, I32, I32, 1, I32, 0x60, 9, ...new Array<number>(9).fill(I32), 0]),
    ...section(3, [2, 0, 1]),
    ...section(5, [1, 0x00, 1]), // one memory, at least one page, growable
    ...section(7, [2, ...wasmName('sum'), 0x00, 1, ...wasmName('mem'), 0x02, 0]),
    ...section(10, [2, ...CRC32C_FUNC(), ...funcCode(LOCALS, BODY)]),
  ]);
}

interface Instance {
  sum(n: number, runs: number, slots: number, inos: number, bases: number, out: number, fsSeed: number, inodeSize: number, verify: number): void;
  memory: WebAssembly.Memory;
}

let instance: Instance | null | undefined;

function load(): Instance | null {
  try {
    // The output is read through host-order typed arrays; wasm memory is little-endian.
    if (typeof WebAssembly !== 'object' || new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) return (instance = null);
    const inst = new WebAssembly.Instance(new WebAssembly.Module(inodeSummaryWasmBytes()), {});
    const memory = inst.exports.mem as WebAssembly.Memory;
    new Int32Array(memory.buffer, 0, 2048).set(crc32cTables().subarray(0, 2048));
    const k: Instance = { sum: inst.exports.sum as Instance['sum'], memory };
    // The crc inside, checked against the JS loop (crc.ts checks its own module the same way):
    // one generation-less inode whose seed and slot are hashed by both.
    return (instance = selfCheck(k) ? k : null);
  } catch {
    return (instance = null);
  }
}

/** A 256-byte slot with a checksum made by the JS loop must come out answered, with its fields. */
function selfCheck(k: Instance): boolean {
  const isz = 256, ino = 7, seed0 = 0x1234567;
  const slot = new Uint8Array(isz);
  for (let i = 0; i < isz; i++) slot[i] = (i * 167 + 13) & 0xff;
  InodeExtraLayout.set(slot, 'i_extra_isize', 32);
  InodeBaseLayout.set(slot, 'i_size_high', 0);
  InodeExtraLayout.set(slot, 'i_mtime_extra', 0);
  InodeBaseLayout.set(slot, 'i_checksum_lo', 0);
  InodeExtraLayout.set(slot, 'i_checksum_hi', 0);
  const c = crc32cPortable(inodeSeed(seed0, ino, InodeBaseLayout.get(slot, 'i_generation')), slot);
  InodeBaseLayout.set(slot, 'i_checksum_lo', c & 0xffff);
  InodeExtraLayout.set(slot, 'i_checksum_hi', c >>> 16);
  const res = summarizeInto(k, [slot], Int32Array.of(0), Float64Array.of(0), [ino], seed0, isz, true);
  return res !== null && res[SUMMARY_DONE] === 0 && res[SUMMARY_MODE] === InodeBaseLayout.get(slot, 'i_mode') && res[SUMMARY_MTIME] === (InodeBaseLayout.get(slot, 'i_mtime') | 0);
}

/**
 * Run the kernel over a batch: inode i (number inos[i]) is at runBytes[runs[i]][slots[i]] (runs[i]
 * < 0 or a null run: it failed to read). Returns n × SUMMARY_WORDS words (a copy: the module's
 * memory is reused by the next batch), or null where WebAssembly is unavailable or the batch
 * does not fit.
 */
export function summarizeInodes(runBytes: readonly (Uint8Array | null)[], runs: Int32Array, slots: Float64Array, inos: readonly number[], fsSeed: number, inodeSize: number, verify: boolean): Int32Array | null {
  const k = instance === undefined ? load() : instance;
  return k === null ? null : summarizeInto(k, runBytes, runs, slots, inos, fsSeed, inodeSize, verify);
}

/** The most memory a batch may use (runs, arrays): past it, inodeSummary does the work. */
const MAX_BYTES = 64 << 20;

function summarizeInto(k: Instance, runBytes: readonly (Uint8Array | null)[], runs: Int32Array, slots: Float64Array, inos: readonly number[], fsSeed: number, inodeSize: number, verify: boolean): Int32Array | null {
  const n = runs.length;
  const nr = runBytes.length;
  // Every slot inside its own run (the module reads what memory holds, not a run's bounds): a
  // batch that breaks this goes to inodeSummary, whose reads are checked.
  for (let i = 0; i < n; i++) {
    const r = runs[i]!, run = r >= 0 ? runBytes[r] : null;
    if (r >= nr || (run && !(slots[i]! >= 0 && slots[i]! + inodeSize <= run.length))) return null;
  }
  const runsAt = ARRAYS, slotsAt = runsAt + 4 * n, inosAt = slotsAt + 4 * n, basesAt = inosAt + 4 * n, outAt = basesAt + 4 * nr;
  let end = outAt + 4 * SUMMARY_WORDS * n;
  for (const r of runBytes) if (r !== null) end += (r.length + 7) & ~7;
  if (end > MAX_BYTES) return null;
  const have = k.memory.buffer.byteLength;
  if (end > have) k.memory.grow(Math.ceil((end - have) / 65536));
  const buf = k.memory.buffer;
  const words = new Int32Array(buf);
  const bytes = new Uint8Array(buf);
  words.set(runs, runsAt >> 2);
  words.set(slots, slotsAt >> 2); // (byte offsets within a run: exact as int32)
  words.set(inos, inosAt >> 2);
  let p = outAt + 4 * SUMMARY_WORDS * n;
  for (let r = 0; r < nr; r++) {
    const run = runBytes[r]!;
    if (run === null) words[(basesAt >> 2) + r] = -1;
    else {
      bytes.set(run, p);
      words[(basesAt >> 2) + r] = p;
      p += (run.length + 7) & ~7;
    }
  }
  k.sum(n, runsAt, slotsAt, inosAt, basesAt, outAt, fsSeed | 0, inodeSize, verify ? 1 : 0);
  return words.slice(outAt >> 2, (outAt >> 2) + SUMMARY_WORDS * n);
}

/**
 * Inode i's summary from summarizeInodes' words (into `into` when given), or null when the
 * kernel left it (or there are no words, or no inode i): then inodeSummary decides.
 */
export function answeredSummary(words: Int32Array | null, i: number, into?: InodeSummary): InodeSummary | null {
  const w = i * SUMMARY_WORDS;
  if (words === null || words[w + SUMMARY_DONE] !== 0) return null;
  const s = into ?? { mode: 0, type: null, uid: 0, gid: 0, size: 0, linksCount: 0, mtime: 0 };
  const mode = words[w + SUMMARY_MODE]!;
  s.mode = mode;
  s.type = fileTypeOfMode(mode);
  s.uid = words[w + SUMMARY_UID]! >>> 0;
  s.gid = words[w + SUMMARY_GID]! >>> 0;
  s.size = words[w + SUMMARY_SIZE]! >>> 0;
  s.linksCount = words[w + SUMMARY_LINKS]!;
  s.mtime = words[w + SUMMARY_MTIME]!;
  return s;
}
