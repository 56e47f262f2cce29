/**
 * A whole tree as a stream of entries: what `importTree` consumes and
 * `exportTree` produces, whatever holds the tree on the other side (a host
 * directory, a tar archive, another image). Platform-free: the readers and
 * writers of host directories and tar archives live in lib/cli.
 *
 * Order: a directory comes before anything inside it (pre-order); a
 * 'hardlink' entry comes after the entry it links to.
 */
import type { FileType, Timestamp } from '../ext4/inode.js';

export type TreeEntryType = FileType | 'hardlink';

export interface TreeXattr {
  /** Full name with its namespace, e.g. "user.comment", "security.selinux". */
  name: string;
  value: Uint8Array;
}

/** Bytes [offset, offset + length) of a file that hold data. */
export interface DataRun {
  offset: number;
  length: number;
}

/**
 * A regular file with holes: its data runs (in order, not overlapping, inside
 * the file's size; everything else reads as zeros) and the runs' bytes,
 * concatenated, read on demand.
 */
export interface SparseFile {
  runs: readonly DataRun[];
  data(): AsyncIterable<Uint8Array>;
}

export interface TreeEntry {
  /** Path relative to the tree's root, '/'-separated, no leading '/'; '' is the root itself. */
  path: string;
  type: TreeEntryType;
  /** Permission bits (st_mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  atime?: Timestamp;
  mtime?: Timestamp;
  xattrs?: readonly TreeXattr[];
  /** Regular file: its length in bytes. */
  size?: number;
  /**
   * Regular file: its bytes in order (`size` of them). Consumed before the next entry is asked
   * for; a chunk once yielded is not reused by the producer (the importer keeps it until its commit)
   * until importTree's `released` callback says so. A producer that already looked at the bytes
   * may say which of them are zeros (setZeroUnits): importTree then makes holes without reading them.
   */
  data?: Uint8Array | AsyncIterable<Uint8Array>;
  /**
   * Regular file with holes (a sparse tar member, an image's file): where its data is, and just
   * those bytes. A consumer reads either `sparse.data()` or `data` (the whole file, zeros in the
   * holes), not both; importTree reads `sparse` and never sees the holes' zeros.
   */
  sparse?: SparseFile;
  /** Symlink: its target. Hard link: the tree path of the earlier entry it is another name of. */
  target?: string | Uint8Array;
  /** Character and block devices. */
  rdev?: { major: number; minor: number };
}

/** Counts of what a tree import or export handled. */
export interface TreeSummary {
  entries: number;
  files: number;
  dirs: number;
  symlinks: number;
  /** fifos, sockets, character and block devices */
  special: number;
  hardlinks: number;
  xattrs: number;
  /** File bytes (holes included). */
  bytes: number;
  /** Committed transactions (import only). */
  transactions: number;
}

export function emptySummary(): TreeSummary {
  return { entries: 0, files: 0, dirs: 0, symlinks: 0, special: 0, hardlinks: 0, xattrs: 0, bytes: 0, transactions: 0 };
}

/** Count one entry into a summary. */
export function countEntry(s: TreeSummary, e: TreeEntry): void {
  s.entries++;
  s.xattrs += e.xattrs?.length ?? 0;
  switch (e.type) {
    case 'file': s.files++; s.bytes += e.size ?? 0; break;
    case 'dir': s.dirs++; break;
    case 'symlink': s.symlinks++; break;
    case 'hardlink': s.hardlinks++; break;
    default: s.special++;
  }
}

/**
 * Which fixed-size units of a buffer are all zeros, as the producer of its `data` chunks knows
 * them (the host reader's worker scans what it just read, so the importer's hole test does not
 * pay the first touch of those pages). zero[k] !== 0 iff bytes [k × unit, (k + 1) × unit) of the
 * buffer are all zeros. Valid for every chunk of the buffer handed out and not yet released; such
 * a chunk starts at a unit boundary, and the bytes after its end up to the next unit boundary are
 * zeros (what zero[k] of its last unit then says holds for its own bytes too).
 */
export interface ZeroUnits {
  readonly unit: number;
  readonly zero: Uint8Array;
}

/** Producers' zero-unit maps by buffer (optional: a chunk of a buffer with none is scanned). */
const zeroUnitMaps = new WeakMap<ArrayBufferLike, ZeroUnits>();

/** Say (as a `data` producer) which units of `buffer` are zeros, from now on (see ZeroUnits). */
export function setZeroUnits(buffer: ArrayBufferLike, z: ZeroUnits): void {
  zeroUnitMaps.set(buffer, z);
}

/** The zero-unit map of a chunk's buffer, if its producer gave one. */
export function zeroUnitsOf(buffer: ArrayBufferLike): ZeroUnits | undefined {
  return zeroUnitMaps.get(buffer);
}
