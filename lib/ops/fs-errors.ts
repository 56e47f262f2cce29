/**
 * Errors of the node:fs-shaped Volume (fs-volume.ts) as Node reports them: the Ext4Error's code, and
 * what libuv adds — `errno` (negative, Linux's numbers, as Node on Linux gives), `syscall` (the
 * system call Node names: 'open', 'mkdir', 'scandir', …), `path` (and `dest` for rename, link,
 * symlink, copyfile) and a message shaped `CODE: description, syscall 'path' -> 'dest'` with libuv's
 * descriptions (uv_strerror), so code written against node:fs catches and prints them unchanged.
 */
import { Ext4Error, type ErrorCode } from '../errors.js';

/** libuv's errno and description per code (Linux numbering; the corruption codes as the kernel returns them). */
const ERRNO: Record<ErrorCode | 'EBADF', [number, string]> = {
  EPERM: [-1, 'operation not permitted'],
  ENOENT: [-2, 'no such file or directory'],
  EIO: [-5, 'i/o error'],
  E2BIG: [-7, 'argument list too long'],
  EBADF: [-9, 'bad file descriptor'],
  ENOMEM: [-12, 'not enough memory'],
  EACCES: [-13, 'permission denied'],
  EBUSY: [-16, 'resource busy or locked'],
  EEXIST: [-17, 'file already exists'],
  EXDEV: [-18, 'cross-device link not permitted'],
  ENOTDIR: [-20, 'not a directory'],
  EISDIR: [-21, 'illegal operation on a directory'],
  EINVAL: [-22, 'invalid argument'],
  EFBIG: [-27, 'file too large'],
  ENOSPC: [-28, 'no space left on device'],
  EROFS: [-30, 'read-only file system'],
  EMLINK: [-31, 'too many links'],
  ERANGE: [-34, 'result too large'],
  ENAMETOOLONG: [-36, 'name too long'],
  ENOTEMPTY: [-39, 'directory not empty'],
  ELOOP: [-40, 'too many symbolic links encountered'],
  ENODATA: [-61, 'no data available'],
  EFSBADCRC: [-74, 'bad message'], // the kernel's EBADMSG
  EOPNOTSUPP: [-95, 'operation not supported on socket'], // libuv's words for ENOTSUP (= EOPNOTSUPP on Linux)
  ESTALE: [-116, 'stale file handle'],
  EFSCORRUPTED: [-117, 'structure needs cleaning'], // the kernel's EUCLEAN
};

export type VolumeErrorCode = ErrorCode | 'EBADF';

/** An Ext4Error carrying Node's errno, syscall, path and dest. `cause` is the library's own error. */
export class VolumeError extends Ext4Error {
  readonly errno: number;
  readonly syscall: string;
  readonly path?: string;
  readonly dest?: string;

  constructor(code: VolumeErrorCode, syscall: string, path?: PathArg, dest?: PathArg, cause?: unknown) {
    const [errno, text] = ERRNO[code];
    const p = path === undefined ? undefined : pathText(path);
    const d = dest === undefined ? undefined : pathText(dest);
    // Ext4Error has no EBADF: the code field is overwritten below (a handle error never reaches the core).
    super(code === 'EBADF' ? 'EINVAL' : code, `${code}: ${text}, ${syscall}${p === undefined ? '' : ` '${p}'`}${d === undefined ? '' : ` -> '${d}'`}`, cause === undefined ? {} : { cause });
    if (code === 'EBADF') (this as { code: string }).code = 'EBADF';
    this.name = 'Error';
    this.errno = errno;
    this.syscall = syscall;
    if (p !== undefined) this.path = p;
    if (d !== undefined) this.dest = d;
  }
}

export type PathArg = string | Uint8Array;

export function pathText(p: PathArg): string {
  return typeof p === 'string' ? p : new TextDecoder().decode(p);
}

/** Node's errno for a code (undefined for a code libuv does not know). */
export function errnoOf(code: string): number | undefined {
  return (ERRNO as Record<string, [number, string]>)[code]?.[0];
}

/**
 * Run `fn`; an Ext4Error it throws comes out as a VolumeError naming `syscall`, `path`, `dest`
 * (a VolumeError thrown inside passes through: it already names its call).
 */
export async function asSyscall<T>(syscall: string, path: PathArg | undefined, dest: PathArg | undefined, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toVolumeError(e, syscall, path, dest);
  }
}

export function toVolumeError(e: unknown, syscall: string, path?: PathArg, dest?: PathArg): unknown {
  if (e instanceof VolumeError || !(e instanceof Ext4Error)) return e;
  return new VolumeError(e.code, syscall, path, dest, e);
}
