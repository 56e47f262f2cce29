/**
 * Typed errors. Every failure ext4kit reports carries an errno-like `code`
 * and, where it comes from on-disk data, the structure and its location so
 * that a user (or a repair script) can find the bad bytes.
 */
export type ErrorCode =
  | 'EFSCORRUPTED' // on-disk structure is inconsistent (kernel: EUCLEAN)
  | 'EFSBADCRC' // metadata checksum mismatch (kernel: EBADMSG)
  | 'EINVAL'
  | 'ENOSPC'
  | 'EBUSY'
  | 'EROFS'
  | 'ESTALE'
  | 'ENOENT'
  | 'ENOTDIR'
  | 'EISDIR'
  | 'ELOOP'
  | 'EEXIST'
  | 'EOPNOTSUPP'
  | 'EFBIG'
  | 'EPERM'
  | 'EIO'
  | 'ENAMETOOLONG'
  | 'ENOMEM'
  | 'E2BIG';

export interface ErrorDetail {
  /** The on-disk structure, e.g. "superblock", "extent block", "inode 12". */
  structure?: string;
  /** Where it is, e.g. "block 1234", "byte 1024", "group 3". */
  location?: string;
  cause?: unknown;
}

export class Ext4Error extends Error {
  readonly code: ErrorCode;
  readonly structure?: string;
  readonly location?: string;

  constructor(code: ErrorCode, message: string, detail: ErrorDetail = {}) {
    const where = [detail.structure, detail.location].filter(Boolean).join(' at ');
    super(where ? `${message} (${where})` : message, detail.cause !== undefined ? { cause: detail.cause } : undefined);
    this.name = 'Ext4Error';
    this.code = code;
    this.structure = detail.structure;
    this.location = detail.location;
  }
}

/** Shorthand for a corruption error naming the structure and where it is. */
export function corrupted(structure: string, location: string, message: string): Ext4Error {
  return new Ext4Error('EFSCORRUPTED', message, { structure, location });
}

export function isExt4Error(e: unknown, code?: ErrorCode): e is Ext4Error {
  return e instanceof Ext4Error && (code === undefined || e.code === code);
}
