/**
 * The WebAssembly module of dir-list-wasm.ts, from its opcodes (wasm-asm.ts): what it does, its
 * parameter words and memory are described there. Not loaded at run time: a fresh process would
 * spend ~16 M instructions assembling it (callgrind), so dir-list-wasm.ts compiles its bytes from
 * dir-list-wasm-bytes.ts, which test/cli/ls-dir-wasm.test.ts checks against dirListWasmBytes()
 * (after a change here, write them again: `npx tsx scripts/dir-list-wasm-bytes.ts`).
 */
import { CRC32C_FUNC } from '../codec/crc32c-wasm.js';
import {
  ADD, AND, BLOCK, BR, BR_IF, CALL, ELSE, END, EQ, EQZ, GE_U, GET, GT_U, I32, IF, LOAD, LOAD16_U, LOAD8_U, LOOP, LT_S, LT_U, MUL, NE, OR, RETURN, SET, SHL,
  STORE, SUB, TEE, VOID, funcCode, i32c, section, sleb64, uleb, wasmModule, wasmName,
} from '../codec/wasm-asm.js';
import { DIRENT_HEADER_SIZE, DIR_TAIL_SIZE, DirEntryLayout, DirEntryTailLayout, FileType, FT_DIR_CSUM } from './directory.js';
import { DX_ENTRY_SIZE, DX_NODE_COUNT_OFFSET, DX_ROOT_COUNT_OFFSET, DX_ROOT_INFO_OFFSET, DxCountLimitLayout, DxRootInfoLayout } from './htree.js';
import { S_IFDIR, S_IFIFO, S_IFMT, S_IFREG, S_IFSOCK } from './inode.js';
import { SUMMARY_DONE, SUMMARY_GID, SUMMARY_LINKS, SUMMARY_MODE, SUMMARY_MTIME, SUMMARY_SIZE, SUMMARY_UID } from './inode-summary-wasm.js';

import {
  F_CSUM, F_FT_DIR_BAILS, F_INDEXED, F_RECURSIVE, PARAM, P_ADDR, P_BLK, P_BS, P_COUNT, P_FLAGS, P_GAP, P_GROUP_COUNT, P_GROUPS, P_INO, P_INODES, P_IPG, P_ISZ, P_KEYS,
  P_KEYS2, P_LEN, P_MAP, P_MAP_CAP, P_MAX_RUN, P_NAMES, P_ORDER, P_RECS, P_RUNS, P_SCRATCH, P_SCRATCH_CAP, P_SEED, P_SINO, P_SLOT, P_SUM, P_TABLE_BLOCKS, P_TMP,
} from './dir-list-wasm.js';

// Opcodes wasm-asm.ts does not name (core spec §5.4).
const DIV_U = 0x6e, REM_U = 0x70, GT_S = 0x4a, GE_S = 0x4e, LE_S = 0x4c, LE_U = 0x4d, SELECT = 0x1b;
const I64 = 0x7e, I64_LOAD = 0x29, I64_STORE = 0x37, I64_CONST = 0x42, I64_NE = 0x52, I64_SUB = 0x7d, I64_AND = 0x83, I64_OR = 0x84, I64_SHL = 0x86, I64_SHR_U = 0x88, I64_ROTL = 0x89;
const I64_EXTEND_I32_U = 0xad, I32_WRAP_I64 = 0xa7;
/** memory.fill and memory.copy (bulk memory): (dst, value | src, n) → (). */
const MEMFILL = [0xfc, 0x0b, 0x00];
const MEMCOPY = [0xfc, 0x0a, 0x00, 0x00];

/**
 * Code as written below: nested arrays of opcodes, flattened once (natively) when the module is
 * made — spreads at every level copied each byte once per level in a fresh process's interpreter.
 */
type Code = number | readonly Code[];
const flat = (c: readonly Code[]) => c.flat(Infinity as 1) as number[];

const param = (w: number) => [i32c(0), LOAD, 2, uleb(PARAM + 4 * w)];
const setParam = (w: number, value: Code[]) => [i32c(0), value, STORE, 2, uleb(PARAM + 4 * w)];
const ld32 = (off = 0) => [LOAD, 2, uleb(off)];
const ld16 = (off = 0) => [LOAD16_U, 1, uleb(off)];
const ld8 = (off = 0) => [LOAD8_U, 0, uleb(off)];
const st32 = (off = 0) => [STORE, 2, uleb(off)];
/** Word `index` (code leaving it on the stack) of the i32 array whose address is parameter word `w`. */
const elemAddr = (w: number, index: Code[]) => [param(w), index, i32c(2), SHL, ADD];
const elem = (w: number, index: Code[]) => [elemAddr(w, index), ld32()];
const inc = (l: number) => [GET, l, i32c(1), ADD, SET, l];

// f1 scan(blocksAt, nblocks, maxEntries) → n | -1.
const S_AT = 0, S_NB = 1, S_MAX = 2, S_B = 3, S_BLK = 4, S_OFF = 5, S_INO = 6, S_REC = 7, S_NL = 8, S_N = 9, S_BS = 10, S_TOP = 11, S_TAIL = 12, S_T = 13, S_NAME = 14, S_FLAGS = 15, S_TOTAL = 16;
const S_X = 17, S_R = 18, S_SKIP = 19;
/** The entry's field `o` (ld32/ld16/ld8 by its size). */
const entry = (f: (o: number) => Code[], o: number): Code[] => [GET, S_BLK, GET, S_OFF, ADD, f(o)];
const D = (f: Parameters<typeof DirEntryLayout.offsetOf>[0]) => DirEntryLayout.offsetOf(f);
const T = (f: Parameters<typeof DirEntryTailLayout.offsetOf>[0]) => DirEntryTailLayout.offsetOf(f);
/** A field of the block's bytes at byte `o` past local `l`. */
const at = (l: number, f: (o: number) => Code[], o: number): Code[] => [GET, S_BLK, GET, l, ADD, f(o)];
/** The checksum tail's shape at local `l`'s offset (directory.ts isTailAt), as 0 or 1. */
const tailAt = (l: number): Code[] => [
  [at(l, ld32, T('det_reserved_zero1')), EQZ, at(l, ld16, T('det_rec_len')), i32c(DIR_TAIL_SIZE), EQ, AND],
  [at(l, ld8, T('det_reserved_zero2')), EQZ, AND, at(l, ld8, T('det_reserved_ft')), i32c(FT_DIR_CSUM), EQ, AND],
];
const R = (f: Parameters<typeof DxRootInfoLayout.offsetOf>[0]) => DX_ROOT_INFO_OFFSET + DxRootInfoLayout.offsetOf(f);
const CL = (f: Parameters<typeof DxCountLimitLayout.offsetOf>[0]) => DxCountLimitLayout.offsetOf(f);
/**
 * An indexed directory's block: S_SKIP = 1 when it is a dx root or node, which readEntryTable
 * passes over unread (htree.ts classifyDirBlock, e2fsprogs' order: a leaf when a rec_len walk
 * from 0 lands on a checksum tail — findDirTail —, else an index block by dxCountOffset's shape:
 * one empty entry spanning the block (node), or '.' of 12 bytes, '..' spanning the rest and a
 * dx_root_info with reserved_zero 0 and info_length 8 (root); limit and count each at most the
 * slots the block has room for). Anything else, leaf or 'unknown', is scanned as a linear block.
 * Block sizes here are below 64 KiB, so a rec_len is its raw value (decodeRecLen).
 */
const CLASSIFY = [
  [i32c(0), SET, S_SKIP],
  [GET, S_FLAGS, i32c(F_INDEXED), AND, IF, VOID],
  // findDirTail: S_X the walk's end, -1 at a rec_len below 8 or not a multiple of 4.
  [i32c(0), SET, S_X],
  BLOCK, VOID, LOOP, VOID,
  [GET, S_X, GET, S_TOP, GE_U, BR_IF, 1],
  [at(S_X, ld16, D('rec_len')), TEE, S_R, i32c(DIRENT_HEADER_SIZE), LT_U, GET, S_R, i32c(3), AND, OR, IF, VOID, i32c(-1), SET, S_X, BR, 2, END],
  [GET, S_X, GET, S_R, ADD, SET, S_X],
  BR, 0, END, END,
  [GET, S_X, GET, S_TOP, EQ, IF, I32, tailAt(S_X), ELSE, i32c(0), END, EQZ, IF, VOID],
  // dxCountOffset: S_X the count/limit's offset, 0 when not an index block.
  [i32c(0), SET, S_X, GET, S_BLK, ld16(D('rec_len')), SET, S_R],
  [GET, S_R, GET, S_BS, EQ, GET, S_BLK, ld8(D('name_len')), EQZ, AND, IF, VOID, i32c(DX_NODE_COUNT_OFFSET), SET, S_X, ELSE],
  [GET, S_R, i32c(12), EQ, IF, VOID],
  [GET, S_BLK, ld16(12 + D('rec_len')), GET, S_BS, i32c(12), SUB, EQ, GET, S_BLK, ld32(R('reserved_zero')), EQZ, AND],
  [GET, S_BLK, ld8(R('info_length')), i32c(DxRootInfoLayout.size), EQ, AND, IF, VOID, i32c(DX_ROOT_COUNT_OFFSET), SET, S_X, END],
  END, END,
  [GET, S_X, IF, VOID],
  [GET, S_BS, GET, S_X, SUB, i32c(DX_ENTRY_SIZE), DIV_U, SET, S_R],
  [at(S_X, ld16, CL('limit')), GET, S_R, LE_U, at(S_X, ld16, CL('count')), GET, S_R, LE_U, AND, SET, S_SKIP],
  END,
  END, // not a leaf
  END, // indexed
];
const SCAN = [
  [param(P_BS), SET, S_BS, GET, S_BS, i32c(DIR_TAIL_SIZE), SUB, SET, S_TOP, param(P_FLAGS), SET, S_FLAGS],
  BLOCK, VOID, // $fail (depth counted from inside)
  BLOCK, VOID, LOOP, VOID, // $done, $blocks
  [GET, S_B, GET, S_NB, GE_U, BR_IF, 1],
  [GET, S_AT, GET, S_B, GET, S_BS, MUL, ADD, SET, S_BLK, i32c(0), SET, S_OFF, i32c(0), SET, S_TAIL],
  CLASSIFY,
  [GET, S_SKIP, IF, VOID, inc(S_B), BR, 1, END], // an index block: the next one
  BLOCK, VOID, LOOP, VOID, // $endwalk, $walk
  [GET, S_OFF, GET, S_BS, GE_U, BR_IF, 1],
  // The checksum tail where one may be: the walk stops there (walkEntries' tailAt).
  [GET, S_OFF, GET, S_TOP, EQ, IF, VOID],
  [entry(ld32, T('det_reserved_zero1')), EQZ, entry(ld16, T('det_rec_len')), i32c(DIR_TAIL_SIZE), EQ, AND],
  [entry(ld8, T('det_reserved_zero2')), EQZ, AND, entry(ld8, T('det_reserved_ft')), i32c(FT_DIR_CSUM), EQ, AND],
  [IF, VOID, i32c(1), SET, S_TAIL, BR, 3, END], // to $endwalk
  END,
  // depth here: walk loop 0, endwalk 1, blocks loop 2, done 3, fail 4
  [GET, S_OFF, i32c(DIRENT_HEADER_SIZE), ADD, GET, S_BS, GT_U, BR_IF, 4],
  [entry(ld32, D('inode')), SET, S_INO, entry(ld16, D('rec_len')), SET, S_REC, entry(ld8, D('name_len')), SET, S_NL],
  [GET, S_REC, i32c(DIRENT_HEADER_SIZE), LT_U, BR_IF, 4],
  [GET, S_REC, i32c(3), AND, BR_IF, 4],
  [GET, S_NL, i32c(DIRENT_HEADER_SIZE), ADD, GET, S_REC, GT_U, BR_IF, 4],
  [GET, S_OFF, GET, S_REC, ADD, GET, S_BS, GT_U, BR_IF, 4],
  [GET, S_INO, IF, VOID], // depth +1
  [GET, S_NL, EQZ, BR_IF, 5],
  [GET, S_INO, param(P_INODES), GT_U, BR_IF, 5],
  [GET, S_BLK, GET, S_OFF, ADD, i32c(DIRENT_HEADER_SIZE), ADD, SET, S_NAME],
  // "." and "..": left out (readEntryTable without dots).
  [GET, S_NL, i32c(1), EQ, GET, S_NAME, ld8(), i32c(0x2e), EQ, AND],
  [GET, S_NL, i32c(2), EQ, GET, S_NAME, ld16(), i32c(0x2e2e), EQ, AND, OR, EQZ],
  IF, VOID, // depth +2
  // A subdirectory by its entry's file type, when the listing would descend: left early.
  [GET, S_FLAGS, i32c(F_FT_DIR_BAILS), AND, IF, VOID, entry(ld8, D('file_type')), i32c(FileType.DIR), EQ, BR_IF, 7, END],
  // ASCII names only (the row writer's escapes).
  [i32c(0), SET, S_T],
  BLOCK, VOID, LOOP, VOID, // depth +4
  [GET, S_T, GET, S_NL, GE_U, BR_IF, 1],
  [GET, S_NAME, GET, S_T, ADD, ld8(), i32c(0x80), GE_U, BR_IF, 8],
  inc(S_T),
  BR, 0, END, END,
  [GET, S_N, GET, S_MAX, GE_U, BR_IF, 6],
  [elemAddr(P_INO, [GET, S_N]), GET, S_INO, st32()],
  [elemAddr(P_ADDR, [GET, S_N]), GET, S_NAME, st32()],
  [elemAddr(P_LEN, [GET, S_N]), GET, S_NL, st32()],
  inc(S_N),
  [GET, S_TOTAL, GET, S_NL, ADD, SET, S_TOTAL],
  END, // not a dot
  END, // live entry
  [GET, S_OFF, GET, S_REC, ADD, SET, S_OFF],
  BR, 0, END, END, // walk
  // The checksum tail (metadata_csum and verifying): there, and matching.
  [GET, S_FLAGS, i32c(F_CSUM), AND, IF, VOID],
  [GET, S_TAIL, EQZ, BR_IF, 3],
  [param(P_SEED), GET, S_BLK, GET, S_TOP, CALL, 0, GET, S_BLK, GET, S_TOP, ADD, ld32(T('det_checksum')), NE, BR_IF, 3],
  END,
  inc(S_B),
  BR, 0, END, END, // blocks, done
  setParam(P_NAMES, [GET, S_TOTAL]),
  GET, S_N, RETURN,
  END, // fail
  i32c(-1),
  END,
];

// f3 cmp(a, b) → the byte comparison of names a and b (then the shorter first).
const C_A = 0, C_B = 1, C_PA = 2, C_PB = 3, C_LA = 4, C_LB = 5, C_M = 6, C_T = 7, C_X = 8, C_Y = 9;
const CMP = [
  [elem(P_ADDR, [GET, C_A]), SET, C_PA, elem(P_ADDR, [GET, C_B]), SET, C_PB],
  [elem(P_LEN, [GET, C_A]), SET, C_LA, elem(P_LEN, [GET, C_B]), SET, C_LB],
  [GET, C_LA, GET, C_LB, GET, C_LA, GET, C_LB, LT_U, SELECT, SET, C_M],
  BLOCK, VOID, LOOP, VOID,
  [GET, C_T, GET, C_M, GE_U, BR_IF, 1],
  [GET, C_PA, GET, C_T, ADD, ld8(), TEE, C_X, GET, C_PB, GET, C_T, ADD, ld8(), TEE, C_Y, NE, IF, VOID, GET, C_X, GET, C_Y, SUB, RETURN, END],
  inc(C_T),
  BR, 0, END, END,
  GET, C_LA, GET, C_LB, SUB,
  END,
];

// f2 sort(n) → address of the sorted indexes: an LSD radix sort (stable) on each name's first 8
// bytes as a big-endian key (zero-padded: a shorter name sorts first, as bytes compare), a byte
// per pass and no pass where every key has the same byte; then each run of equal keys by a stable
// merge sort on the whole names (f6). A merge sort of every entry ran 14 passes of comparisons
// through the index array — most of what the module cost for 10,000 names (callgrind).
const O_N = 0, O_I = 1, O_B = 2, O_C = 3, O_P = 4, O_T = 5, O_SUM = 6, O_SK = 7, O_DK = 8, O_SI = 9, O_DI = 10, O_SH = 11, O_J = 12, O_X = 13, O_KEY = 14;
/** The address of key i of the key array at local `l`. */
const keyAt = (l: number, index: Code[]) => [GET, l, index, i32c(3), SHL, ADD];
/** Word i of the i32 array at local `l`'s address. */
const wordAt = (l: number, index: Code[]) => [GET, l, index, i32c(2), SHL, ADD];
/** The byte of key i this pass sorts by. */
const keyByte = (index: Code[]) => [keyAt(O_SK, index), I64_LOAD, 3, 0, GET, O_SH, I64_EXTEND_I32_U, I64_SHR_U, I32_WRAP_I64, i32c(255), AND];
/** The count of byte value c (code) in the current pass's table (one of 256 words per key byte). */
const count = (c: Code[]) => [param(P_COUNT), GET, O_B, i32c(10), SHL, ADD, c, i32c(2), SHL, ADD];
/** i64 stack value → its bytes reversed (the little-endian load of a name → its big-endian key). */
const BSWAP64 = (l: number) => [
  [GET, l, I64_CONST, 8, I64_SHR_U, I64_CONST, sleb64(0x00ff00ff00ff00ffn), I64_AND, GET, l, I64_CONST, sleb64(0x00ff00ff00ff00ffn), I64_AND, I64_CONST, 8, I64_SHL, I64_OR, SET, l],
  [GET, l, I64_CONST, 16, I64_SHR_U, I64_CONST, sleb64(0x0000ffff0000ffffn), I64_AND, GET, l, I64_CONST, sleb64(0x0000ffff0000ffffn), I64_AND, I64_CONST, 16, I64_SHL, I64_OR, SET, l],
  [GET, l, I64_CONST, 32, I64_ROTL, SET, l],
];
const SORT = [
  [param(P_KEYS), SET, O_SK, param(P_KEYS2), SET, O_DK, param(P_ORDER), SET, O_SI, param(P_TMP), SET, O_DI],
  // Keys: the name's first 8 bytes (one load; a name is followed by more of its block), the bytes
  // past its length cleared, big-endian; the identity order; and every pass's byte counts at once.
  [param(P_COUNT), i32c(0), i32c(8 * 1024), MEMFILL],
  BLOCK, VOID, LOOP, VOID,
  [GET, O_I, GET, O_N, GE_U, BR_IF, 1],
  [elem(P_ADDR, [GET, O_I]), I64_LOAD, 0, 0, SET, O_KEY],
  [elem(P_LEN, [GET, O_I]), TEE, O_X, i32c(8), LT_U, IF, VOID],
  [GET, O_KEY, I64_CONST, 1, GET, O_X, i32c(3), SHL, I64_EXTEND_I32_U, I64_SHL, I64_CONST, 1, I64_SUB, I64_AND, SET, O_KEY],
  END,
  BSWAP64(O_KEY),
  [keyAt(O_SK, [GET, O_I]), GET, O_KEY, I64_STORE, 3, 0],
  [wordAt(O_SI, [GET, O_I]), GET, O_I, st32()],
  [0, 1, 2, 3, 4, 5, 6, 7].flatMap((b): Code[] => [
    [param(P_COUNT), GET, O_KEY, I64_CONST, 8 * b, I64_SHR_U, I32_WRAP_I64, i32c(255), AND, i32c(2), SHL, ADD, TEE, O_P],
    [GET, O_P, ld32(1024 * b), i32c(1), ADD, st32(1024 * b)],
  ]),
  inc(O_I),
  BR, 0, END, END,
  // A pass per key byte, the least significant first.
  BLOCK, VOID, LOOP, VOID,
  [GET, O_B, i32c(8), GE_U, BR_IF, 1],
  [GET, O_B, i32c(3), SHL, SET, O_SH],
  // (n ≥ 1 here: a pass whose byte is the same in every key moves nothing.)
  [GET, O_N, IF, VOID, count(keyByte(i32c(0))), ld32(), GET, O_N, NE, IF, VOID],
  [i32c(0), SET, O_SUM, i32c(0), SET, O_C],
  BLOCK, VOID, LOOP, VOID,
  [GET, O_C, i32c(256), GE_U, BR_IF, 1],
  [count([GET, O_C]), TEE, O_P, ld32(), SET, O_T, GET, O_P, GET, O_SUM, st32(), GET, O_SUM, GET, O_T, ADD, SET, O_SUM],
  inc(O_C),
  BR, 0, END, END,
  [i32c(0), SET, O_I],
  BLOCK, VOID, LOOP, VOID,
  [GET, O_I, GET, O_N, GE_U, BR_IF, 1],
  [count(keyByte([GET, O_I])), TEE, O_C, ld32(), SET, O_P, GET, O_C, GET, O_P, i32c(1), ADD, st32()],
  [keyAt(O_DK, [GET, O_P]), keyAt(O_SK, [GET, O_I]), I64_LOAD, 3, 0, I64_STORE, 3, 0],
  [wordAt(O_DI, [GET, O_P]), wordAt(O_SI, [GET, O_I]), ld32(), st32()],
  inc(O_I),
  BR, 0, END, END,
  [GET, O_SK, SET, O_T, GET, O_DK, SET, O_SK, GET, O_T, SET, O_DK],
  [GET, O_SI, SET, O_T, GET, O_DI, SET, O_SI, GET, O_T, SET, O_DI],
  END, END,
  inc(O_B),
  BR, 0, END, END,
  // Runs of equal keys: by their whole names.
  [i32c(0), SET, O_I],
  BLOCK, VOID, LOOP, VOID,
  [GET, O_I, GET, O_N, GE_U, BR_IF, 1],
  [GET, O_I, i32c(1), ADD, SET, O_J],
  BLOCK, VOID, LOOP, VOID,
  [GET, O_J, GET, O_N, GE_U, BR_IF, 1],
  [keyAt(O_SK, [GET, O_J]), I64_LOAD, 3, 0, keyAt(O_SK, [GET, O_I]), I64_LOAD, 3, 0, I64_NE, BR_IF, 1],
  inc(O_J),
  BR, 0, END, END,
  [GET, O_J, GET, O_I, SUB, i32c(2), GE_U, IF, VOID, GET, O_I, GET, O_J, GET, O_SI, GET, O_DI, CALL, 6, END],
  [GET, O_J, SET, O_I],
  BR, 0, END, END,
  GET, O_SI,
  END,
];

// f6 sortRange(lo, hi, a, tmp): a[lo, hi) (entry indexes) by their names, stable: bottom-up merge
// passes between a and tmp, the result copied back into a.
const M_LO = 0, M_HI = 1, M_A = 2, M_TMP = 3, M_W = 4, M_S = 5, M_MID = 6, M_E = 7, M_I = 8, M_J = 9, M_K = 10, M_SRC = 11, M_DST = 12, M_T = 13;
const srcAt = (l: number) => [GET, M_SRC, GET, l, i32c(2), SHL, ADD, ld32()];
const SORT_RANGE = [
  [GET, M_A, SET, M_SRC, GET, M_TMP, SET, M_DST, i32c(1), SET, M_W],
  BLOCK, VOID, LOOP, VOID,
  [GET, M_W, GET, M_HI, GET, M_LO, SUB, GE_U, BR_IF, 1],
  [GET, M_LO, SET, M_S],
  BLOCK, VOID, LOOP, VOID,
  [GET, M_S, GET, M_HI, GE_U, BR_IF, 1],
  [GET, M_S, GET, M_W, ADD, TEE, M_MID, GET, M_HI, GET, M_MID, GET, M_HI, LT_U, SELECT, SET, M_MID],
  [GET, M_MID, GET, M_W, ADD, TEE, M_E, GET, M_HI, GET, M_E, GET, M_HI, LT_U, SELECT, SET, M_E],
  [GET, M_S, SET, M_I, GET, M_MID, SET, M_J, GET, M_S, SET, M_K],
  BLOCK, VOID, LOOP, VOID,
  [GET, M_K, GET, M_E, GE_U, BR_IF, 1],
  // The left run's head unless that run is done or the right one's head sorts strictly first.
  [GET, M_I, GET, M_MID, LT_U, IF, I32],
  [GET, M_J, GET, M_E, GE_U, IF, I32, i32c(1), ELSE, srcAt(M_I), srcAt(M_J), CALL, 3, i32c(0), LE_S, END],
  [ELSE, i32c(0), END, SET, M_T],
  [GET, M_DST, GET, M_K, i32c(2), SHL, ADD],
  [GET, M_T, IF, I32, srcAt(M_I), inc(M_I), ELSE, srcAt(M_J), inc(M_J), END],
  st32(),
  inc(M_K),
  BR, 0, END, END,
  [GET, M_S, GET, M_W, i32c(1), SHL, ADD, SET, M_S],
  BR, 0, END, END,
  [GET, M_SRC, SET, M_T, GET, M_DST, SET, M_SRC, GET, M_T, SET, M_DST, GET, M_W, i32c(1), SHL, SET, M_W],
  BR, 0, END, END,
  [GET, M_SRC, GET, M_A, NE, IF, VOID],
  [GET, M_A, GET, M_LO, i32c(2), SHL, ADD, GET, M_SRC, GET, M_LO, i32c(2), SHL, ADD, GET, M_HI, GET, M_LO, SUB, i32c(2), SHL, MEMCOPY],
  END,
  END,
];

// f4 locate(k0, k1) → runs | -1 | -2 - g.
const L_K0 = 0, L_K1 = 1, L_K = 2, L_INO = 3, L_G = 4, L_T = 5, L_BLK = 6, L_MIN = 7, L_MAX = 8, L_B = 9, L_FIRST = 10, L_LAST = 11, L_RUNS = 12, L_POS = 13, L_Q = 14, L_IDX = 15, L_NEED = 16;
/** The inode number of sorted entry k. */
const inoOf = (k: Code[]) => elem(P_INO, elem(P_ORDER, k));
/** map[b - min]'s address. */
const mapAt = (b: Code[]) => [param(P_MAP), b, GET, L_MIN, SUB, i32c(2), SHL, ADD];
const LOCATE = [
  [i32c(0x7fffffff), SET, L_MIN, i32c(-1), SET, L_MAX],
  BLOCK, VOID, // $fail
  // Each inode's table block (readInodeBatch: group, then the block in its table).
  [GET, L_K0, SET, L_K],
  BLOCK, VOID, LOOP, VOID,
  [GET, L_K, GET, L_K1, GE_U, BR_IF, 1],
  [inoOf([GET, L_K]), TEE, L_INO, i32c(1), SUB, TEE, L_IDX, param(P_IPG), DIV_U, TEE, L_G, param(P_GROUP_COUNT), GE_U, BR_IF, 2],
  [elem(P_GROUPS, [GET, L_G]), TEE, L_T, i32c(-1), EQ, IF, VOID, i32c(-2), GET, L_G, SUB, RETURN, END],
  [GET, L_T, i32c(0), LT_S, BR_IF, 2],
  [GET, L_IDX, param(P_IPG), REM_U, param(P_ISZ), MUL, param(P_BS), DIV_U, TEE, L_B, param(P_TABLE_BLOCKS), GE_U, BR_IF, 2],
  [GET, L_T, GET, L_B, ADD, SET, L_BLK],
  [elemAddr(P_BLK, [GET, L_K, GET, L_K0, SUB]), GET, L_BLK, st32()],
  [GET, L_BLK, GET, L_MIN, LT_S, IF, VOID, GET, L_BLK, SET, L_MIN, END],
  [GET, L_BLK, GET, L_MAX, GT_S, IF, VOID, GET, L_BLK, SET, L_MAX, END],
  inc(L_K),
  BR, 0, END, END,
  [GET, L_K0, GET, L_K1, GE_U, BR_IF, 0],
  // The blocks wanted, marked in a map of [min, max].
  [GET, L_MAX, GET, L_MIN, SUB, i32c(1), ADD, param(P_MAP_CAP), GT_U, BR_IF, 0],
  [param(P_MAP), i32c(0), GET, L_MAX, GET, L_MIN, SUB, i32c(1), ADD, i32c(2), SHL, MEMFILL],
  [GET, L_K0, SET, L_K],
  BLOCK, VOID, LOOP, VOID,
  [GET, L_K, GET, L_K1, GE_U, BR_IF, 1],
  [mapAt(elem(P_BLK, [GET, L_K, GET, L_K0, SUB])), i32c(1), st32()],
  inc(L_K),
  BR, 0, END, END,
  // Runs: a wanted block joins the open run when at most P_GAP past its last block and less than
  // P_MAX_RUN past its first (readInodeBatch's rule); max + 1 closes the last one. Each closed run's
  // blocks get their address in the scratch, one run after the other.
  [i32c(-1), SET, L_FIRST, GET, L_MIN, SET, L_B],
  BLOCK, VOID, LOOP, VOID,
  [GET, L_B, GET, L_MAX, GT_S, IF, I32, i32c(1), ELSE, mapAt([GET, L_B]), ld32(), END, SET, L_NEED],
  [GET, L_NEED, IF, VOID], // depth: if 0, loop 1, block 2, fail 3
  [GET, L_FIRST, i32c(0), GE_S, GET, L_B, GET, L_MAX, LE_S, AND],
  [GET, L_B, GET, L_LAST, SUB, param(P_GAP), LE_U, AND, GET, L_B, GET, L_FIRST, SUB, param(P_MAX_RUN), LT_U, AND],
  [IF, VOID, GET, L_B, SET, L_LAST, ELSE],
  [GET, L_FIRST, i32c(0), GE_S, IF, VOID],
  [elemAddr(P_RUNS, [GET, L_RUNS, i32c(1), SHL]), GET, L_FIRST, st32()],
  [elemAddr(P_RUNS, [GET, L_RUNS, i32c(1), SHL]), GET, L_LAST, GET, L_FIRST, SUB, i32c(1), ADD, st32(4)],
  inc(L_RUNS),
  [GET, L_FIRST, SET, L_Q],
  BLOCK, VOID, LOOP, VOID, // depth: loop 0, block 1, if 2, if/else 3, if 4, loop 5, block 6, fail 7
  [GET, L_Q, GET, L_LAST, GT_S, BR_IF, 1],
  [GET, L_POS, param(P_BS), ADD, param(P_SCRATCH_CAP), GT_U, BR_IF, 7],
  [mapAt([GET, L_Q]), param(P_SCRATCH), GET, L_POS, ADD, st32()],
  [GET, L_POS, param(P_BS), ADD, SET, L_POS],
  inc(L_Q),
  BR, 0, END, END,
  END,
  [GET, L_B, SET, L_FIRST, GET, L_B, SET, L_LAST],
  END, // if/else
  END, // need
  [GET, L_B, GET, L_MAX, GT_S, BR_IF, 1],
  inc(L_B),
  BR, 0, END, END,
  // Each inode's offset in the scratch, and its number.
  [GET, L_K0, SET, L_K],
  BLOCK, VOID, LOOP, VOID,
  [GET, L_K, GET, L_K1, GE_U, BR_IF, 1],
  [inoOf([GET, L_K]), SET, L_INO],
  [elemAddr(P_SLOT, [GET, L_K, GET, L_K0, SUB])],
  [mapAt(elem(P_BLK, [GET, L_K, GET, L_K0, SUB])), ld32(), param(P_SCRATCH), SUB],
  [GET, L_INO, i32c(1), SUB, param(P_IPG), REM_U, param(P_ISZ), MUL, param(P_BS), REM_U, ADD, st32()],
  [elemAddr(P_SINO, [GET, L_K, GET, L_K0, SUB]), GET, L_INO, st32()],
  inc(L_K),
  BR, 0, END, END,
  GET, L_RUNS, RETURN,
  END, // fail
  i32c(-1),
  END,
];

// f5 prep(k0, k1) → 0 | -1.
const R_K0 = 0, R_K1 = 1, R_K = 2, R_W = 3, R_R = 4, R_MODE = 5, R_TY = 6, R_E = 7;
const sum = (w: number) => [GET, R_W, ld32(4 * w)];
const rec = (w: number, value: Code[]) => [GET, R_R, value, st32(4 * w)];
const PREP = [
  BLOCK, VOID, // $fail
  [GET, R_K0, SET, R_K],
  BLOCK, VOID, LOOP, VOID,
  [GET, R_K, GET, R_K1, GE_U, BR_IF, 1],
  [param(P_SUM), GET, R_K, GET, R_K0, SUB, i32c(5), SHL, ADD, SET, R_W],
  [param(P_RECS), GET, R_K, GET, R_K0, SUB, i32c(5), SHL, ADD, SET, R_R],
  // Answered by the summary kernel, and a type the row writer writes alone: file, fifo, socket,
  // or a directory when the listing does not descend (an unused inode has type 0).
  [sum(SUMMARY_DONE), BR_IF, 2],
  [sum(SUMMARY_MODE), TEE, R_MODE, i32c(S_IFMT), AND, TEE, R_TY, i32c(S_IFREG), EQ],
  [GET, R_TY, i32c(S_IFIFO), EQ, OR, GET, R_TY, i32c(S_IFSOCK), EQ, OR],
  [GET, R_TY, i32c(S_IFDIR), EQ, param(P_FLAGS), i32c(F_RECURSIVE), AND, EQZ, AND, OR, EQZ, BR_IF, 2],
  [elem(P_ORDER, [GET, R_K]), SET, R_E],
  rec(0, [GET, R_E]),
  rec(1, elem(P_INO, [GET, R_E])),
  rec(2, [GET, R_MODE]),
  rec(3, sum(SUMMARY_SIZE)),
  rec(4, sum(SUMMARY_LINKS)),
  rec(5, sum(SUMMARY_UID)),
  rec(6, sum(SUMMARY_GID)),
  rec(7, sum(SUMMARY_MTIME)),
  inc(R_K),
  BR, 0, END, END,
  i32c(0), RETURN,
  END,
  i32c(-1),
  END,
];

/** A code entry with i32 locals, then i64 ones. */
const funcCode64 = (i32Locals: number, i64Locals: number, body: number[]) => {
  const code = [2, ...uleb(i32Locals), I32, ...uleb(i64Locals), I64, ...body];
  return [...uleb(code.length), ...code];
};

/** The module's bytes. */
export function dirListWasmBytes(): Uint8Array<ArrayBuffer> {
  const t = (params: number, results: number) => [0x60, params, ...new Array<number>(params).fill(I32), results, ...(results ? [I32] : [])];
  return wasmModule([
    // types: 0 (3 × i32) → i32; 1 (1 × i32) → i32; 2 (2 × i32) → i32; 3 (4 × i32) → ()
    ...section(1, [4, ...t(3, 1), ...t(1, 1), ...t(2, 1), ...t(4, 0)]),
    ...section(2, [1, ...wasmName('env'), ...wasmName('mem'), 0x02, 0x00, 1]), // memory imported: at least one page
    ...section(3, [7, 0, 0, 1, 2, 2, 2, 3]),
    ...section(7, [6, ...wasmName('crc'), 0, 0, ...wasmName('scan'), 0, 1, ...wasmName('sort'), 0, 2, ...wasmName('cmp'), 0, 3, ...wasmName('locate'), 0, 4, ...wasmName('prep'), 0, 5]),
    ...section(10, [7, ...CRC32C_FUNC(), ...funcCode(17, flat(SCAN)), ...funcCode64(13, 1, flat(SORT)), ...funcCode(8, flat(CMP)), ...funcCode(15, flat(LOCATE)), ...funcCode(6, flat(PREP)), ...funcCode(10, flat(SORT_RANGE))]),
  ]);
}
