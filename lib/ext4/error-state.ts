/**
 * The filesystem's error state, as the kernel keeps it (errors=remount-ro):
 * the first corruption a write call finds is remembered, and every later
 * write on that open is refused with EROFS naming it. Optionally it is also
 * recorded on disk like the kernel's save_error_info / ext4_update_super:
 * s_state |= ERROR_FS, s_error_count + 1, s_first_error_* (only when no
 * first error is recorded yet) and s_last_error_* — e2fsck then forces a
 * check ("contains a file system with errors") and clears them.
 */
import { Ext4Error, type ErrorCode } from '../errors.js';
import { defineStruct } from './layout.js';
import { STATE, type Superblock } from './superblock.js';
import type { Timestamp } from './clock.js';

/** What the first error of an open was. */
export interface FsErrorInfo {
  code: ErrorCode;
  message: string;
  structure?: string;
  location?: string;
  /** When it was found (the fs clock). */
  time: Timestamp;
  /** Inode and block it names (0 when it names none), for s_*_error_ino / _block. */
  ino: number;
  block: number;
}

/** Codes that mean the on-disk structures are inconsistent (the kernel's ext4_error cases). */
export function isCorruption(e: unknown): e is Ext4Error {
  return e instanceof Ext4Error && (e.code === 'EFSCORRUPTED' || e.code === 'EFSBADCRC');
}

export function errorInfoOf(e: Ext4Error, time: Timestamp): FsErrorInfo {
  const where = `${e.structure ?? ''} ${e.location ?? ''}`;
  const ino = /\binode (\d+)/.exec(where);
  const block = /\bblock (\d+)/.exec(where);
  return {
    code: e.code,
    message: e.message,
    structure: e.structure,
    location: e.location,
    time,
    ino: ino ? Number(ino[1]) >>> 0 : 0,
    block: block ? Number(block[1]) : 0,
  };
}

/** The refusal of a write after an error (EROFS, naming the first error). */
export function readOnlyAfterError(info: FsErrorInfo): Ext4Error {
  return new Ext4Error('EROFS', `the filesystem is read-only after an error found earlier on this open (${info.code}: ${info.message}); run e2fsck`, {
    structure: info.structure,
    location: info.location,
  });
}

/**
 * The superblock's error-record fields that the main superblock layout leaves
 * undeclared (ext4_super_block 0x19c..0x1ff and 0x278..0x27b; s_error_count,
 * s_first_error_time and s_last_error_time are declared there).
 */
export const SuperblockErrorLayout = defineStruct('superblock error record', 1024, [
  ['s_first_error_ino', 0x19c, 'u32'],
  ['s_first_error_block', 0x1a0, 'u64'],
  ['s_first_error_func', 0x1a8, 'bytes', 32],
  ['s_first_error_line', 0x1c8, 'u32'],
  ['s_last_error_ino', 0x1d0, 'u32'],
  ['s_last_error_line', 0x1d4, 'u32'],
  ['s_last_error_block', 0x1d8, 'u64'],
  ['s_last_error_func', 0x1e0, 'bytes', 32],
  ['s_first_error_time_hi', 0x278, 'u8'],
  ['s_last_error_time_hi', 0x279, 'u8'],
  ['s_first_error_errcode', 0x27a, 'u8'],
  ['s_last_error_errcode', 0x27b, 'u8'],
] as const);

/** EXT4_ERR_* (ext4.h): the architecture-independent codes of s_*_error_errcode. */
const ERRCODE: Partial<Record<ErrorCode, number>> = {
  EIO: 2, ENOMEM: 3, EFSBADCRC: 4, EFSCORRUPTED: 5, ENOSPC: 6, EROFS: 8, EFBIG: 9, EEXIST: 10, EBUSY: 13,
};

/** The 32-byte "function" field: the kernel writes its C function; we write the structure. */
function funcField(info: FsErrorInfo): Uint8Array {
  const out = new Uint8Array(32);
  out.set(new TextEncoder().encode(info.structure || 'ext4kit').subarray(0, 32));
  return out;
}

/** Record `info` in the in-memory superblock (serialise it to write). */
export function saveErrorInfo(sb: Superblock, info: FsErrorInfo): void {
  const raw = sb.raw.slice();
  const rec = SuperblockErrorLayout.decode(raw);
  const lo = info.time.sec % 2 ** 32;
  const hi = Math.floor(info.time.sec / 2 ** 32) & 0xff;
  const code = ERRCODE[info.code] ?? 1; // EXT4_ERR_UNKNOWN
  sb.s_state |= STATE.ERROR_FS;
  if (!sb.s_first_error_time && !rec.s_first_error_time_hi) {
    sb.s_first_error_time = lo;
    rec.s_first_error_time_hi = hi;
    rec.s_first_error_func = funcField(info);
    rec.s_first_error_line = 0;
    rec.s_first_error_ino = info.ino;
    rec.s_first_error_block = info.block;
    rec.s_first_error_errcode = code;
  }
  sb.s_last_error_time = lo;
  rec.s_last_error_time_hi = hi;
  rec.s_last_error_func = funcField(info);
  rec.s_last_error_line = 0;
  rec.s_last_error_ino = info.ino;
  rec.s_last_error_block = info.block;
  rec.s_last_error_errcode = code;
  sb.s_error_count = (sb.s_error_count + 1) >>> 0;
  SuperblockErrorLayout.encode(rec, raw);
  sb.raw = raw;
}
