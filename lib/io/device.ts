/**
 * The storage ext4kit works on. Everything above lib/io talks to a
 * BlockDevice: positional byte-range reads and writes, a flush barrier
 * (fdatasync semantics: every write issued before it is durable after it),
 * a size and a read-only flag. Implementations: FileDevice (image files and
 * block devices), MemoryDevice, RecordingDevice (crash tests).
 */
export interface BlockDevice {
  /** Size in bytes. */
  readonly size: number;
  /** True when writes are refused (EROFS). */
  readonly readOnly: boolean;
  /** Human-readable name (path), used in error messages and the MMP block. */
  readonly name: string;
  /**
   * Read `length` bytes at `position`. Throws EIO (naming the range) if the
   * device is shorter than position+length: a truncated image is an error,
   * never silently zero-filled.
   */
  read(position: number, length: number): Promise<Uint8Array>;
  /**
   * Optional: read `target.length` bytes at `position` into `target` (same
   * errors as read). Lets bulk copies reuse one buffer: allocating a fresh
   * multi-MiB array per read costs about as much as the I/O itself.
   */
  readInto?(position: number, target: Uint8Array): Promise<void>;
  /**
   * Optional: read like `read`, but from the medium itself, past every cache on this host
   * (O_DIRECT on a block device), so that another host's writes to shared storage are seen.
   * Used for the MMP block (e2fsprogs' ext2fs_mmp_read does the same). Devices without one
   * are read with `read`, which is right when nothing caches below them.
   */
  readUncached?(position: number, length: number): Promise<Uint8Array>;
  /**
   * Write all of `data` at `position`. Throws EROFS on a read-only device,
   * ENOSPC for a range past the end (a device never grows), EINVAL for a
   * negative or non-integer position.
   */
  write(position: number, data: Uint8Array): Promise<void>;
  /** Barrier: all completed writes are on stable storage when this resolves. */
  flush(): Promise<void>;
  close(): Promise<void>;
}
