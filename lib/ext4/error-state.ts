/**
 * The filesystem's error state, as the kernel keeps it (errors=remount-ro):
 * the first corruption a write call finds is remembered, and every later
 * write on that open is refused with EROFS naming it. Optionally it is also
 * recorded on disk like the kernel's save_error_info / ext4_update_super:
 * s_state |= ERROR_FS, s_error_count + 1, s_first_error_* (only when no
 * first error is recorded yet) and s_last_error_* — e2fsck then forces a
 * check ("contains a file system with errors") and clears them.
 */
import { describeLocation, Ext4Error, type ErrorCode, type Location } from '../errors.js';
import { STATE, type Superblock } from './superblock.js';
import type { Timestamp } from './clock.js';

/** What the first error of an open was. */
export interface FsErrorInfo {
  code: ErrorCode;
  message: string;
  structure?: string;
  location?: Location;
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
  const where = `${e.structure ?? ''} ${describeLocation(e.location) ?? ''}`;
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

/** Record `info` in the in-memory superblock (serialise it to write): the first error once, the last always. */
export function saveErrorInfo(sb: Superblock, info: FsErrorInfo): void {
  const lo = info.time.sec % 2 ** 32;
  const hi = Math.floor(info.time.sec / 2 ** 32) & 0xff;
  const code = ERRCODE[info.code] ?? 1; // EXT4_ERR_UNKNOWN
  sb.s_state |= STATE.ERROR_FS;
  if (!sb.s_first_error_time && !sb.s_first_error_time_hi) {
    Object.assign(sb, {
      s_first_error_time: lo, s_first_error_time_hi: hi, s_first_error_func: funcField(info), s_first_error_line: 0,
      s_first_error_ino: info.ino, s_first_error_block: info.block, s_first_error_errcode: code,
    });
  }
  Object.assign(sb, {
    s_last_error_time: lo, s_last_error_time_hi: hi, s_last_error_func: funcField(info), s_last_error_line: 0,
    s_last_error_ino: info.ino, s_last_error_block: info.block, s_last_error_errcode: code,
  });
  sb.s_error_count = (sb.s_error_count + 1) >>> 0;
}
