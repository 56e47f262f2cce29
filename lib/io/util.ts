/** Small helpers shared by the devices in lib/io. Internal. */
import { Ext4Error, type ErrorCode, type Location } from '../errors.js';

/** A byte range as an error location ("bytes 4096..8191" in words). */
export function byteRange(position: number, length: number): Location {
  return { kind: 'byte', offset: position, length };
}

/** Throw EINVAL unless position/length are non-negative safe integers with a safe end. */
export function checkRange(name: string, op: string, position: number, length: number): void {
  if (!Number.isSafeInteger(position) || position < 0 || !Number.isSafeInteger(length) || length < 0 || !Number.isSafeInteger(position + length)) {
    throw new Ext4Error('EINVAL', `${op}: invalid range position=${position} length=${length}`, { structure: name });
  }
}

const ERRNO_MAP: Record<string, ErrorCode> = {
  ENOENT: 'ENOENT',
  ENOTDIR: 'ENOTDIR',
  EISDIR: 'EISDIR',
  EACCES: 'EPERM',
  EPERM: 'EPERM',
  EROFS: 'EROFS',
  EBUSY: 'EBUSY',
  ENOSPC: 'ENOSPC',
  ELOOP: 'ELOOP',
  ENAMETOOLONG: 'ENAMETOOLONG',
  EFBIG: 'EFBIG',
  ENOMEM: 'ENOMEM',
  EINVAL: 'EINVAL',
};

/** Map a Node system error to an Ext4Error (unknown errnos become EIO). */
export function fromSystemError(e: unknown, message: string, structure: string, location?: Location): Ext4Error {
  if (e instanceof Ext4Error) return e;
  const errno = (e as NodeJS.ErrnoException | undefined)?.code;
  const code: ErrorCode = (errno !== undefined && ERRNO_MAP[errno]) || 'EIO';
  const why = errno ?? (e instanceof Error ? e.message : String(e));
  return new Ext4Error(code, `${message}: ${why}`, { structure, location, cause: e });
}
