/**
 * FileDevice: a BlockDevice over a raw file descriptor — an image file or a
 * block device (/dev/sdX, /dev/loopN, a partition).
 *
 * - Positional reads/writes through a FileHandle, looping until the whole
 *   range is transferred. A read that hits end-of-file throws EIO naming the
 *   range (a truncated image is never zero-filled).
 * - Writes past the end are refused (ENOSPC): the device has a fixed size,
 *   like a block device, so an image file is never silently extended.
 * - flush() is fdatasync().
 * - readUncached() on a block device goes through a second, O_DIRECT
 *   descriptor (opened on first use), so another host's writes are seen,
 *   not our page cache (the MMP block; e2fsprogs' ext2fs_mmp_read does the
 *   same). Image files are read plainly: the page cache is coherent on one host.
 * - Size: fstat().size for a regular file; for a block device sysfs
 *   (/sys/dev/block/MAJ:MIN/size × 512, from the fd's rdev) since Node has no
 *   BLKGETSIZE64 ioctl, with a probing fallback (binary search for the last
 *   readable byte) if sysfs is not available.
 * - Exclusivity (default on when opened for writing): a block device is
 *   opened with O_EXCL, which Linux refuses with EBUSY if the device is
 *   mounted or otherwise claimed; an image file is refused with EBUSY if it
 *   backs a loop device that is mounted or held (see in-use.ts; merely
 *   attached loop devices are allowed).
 */
import { constants as fsc, promises as fsp, readSync, writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Ext4Error } from '../errors.js';
import type { BlockDevice } from './device.js';
import { DEFAULT_ROOTS, blockDeviceSizeFromSysfs, imageInUse, type SystemRoots } from './in-use.js';
import { byteRange, checkRange, fromSystemError } from './util.js';
import { MemoryDevice, type MemoryDeviceOptions } from './memory-device.js';

export { fromSystemError } from './util.js';

export interface FileDeviceOptions {
  /** Open read-write. Default false (read-only: write() throws EROFS). */
  write?: boolean;
  /**
   * Refuse a device that is in use: O_EXCL for block devices, the loop/mount
   * check for image files. Default: same as `write`. Pass false to skip the
   * checks (you then answer for any corruption of a mounted filesystem).
   */
  exclusive?: boolean;
  /** sysfs/procfs roots, for tests. Default `/sys` and `/proc`. */
  roots?: SystemRoots;
  /**
   * Serve reads of at most this many bytes with a synchronous pread on the calling thread
   * (default 0: every read goes through libuv's thread pool). A one-shot process (the CLI)
   * that reads hundreds of scattered bitmap and descriptor blocks pays more for the thread
   * pool round trip and its promise than for the 4 KiB read from the page cache; a server
   * keeping its event loop free leaves this at 0.
   */
  syncReadMax?: number;
  /**
   * Write at most this many bytes with a synchronous pwrite on the calling thread (default 0:
   * every write goes through libuv's thread pool). For a caller that awaits each write before
   * its next step anyway (defrag's copy, one 1 MiB chunk at a time): the pool's round trip then
   * only adds latency to a page-cache copy. Flushes stay asynchronous.
   */
  syncWriteMax?: number;
  /**
   * When the in-use check of an image file (`exclusive`) runs: 'before' (default) open fails
   * with EBUSY before returning; 'background' returns the device at once and checks while the
   * caller reads (a one-shot command reads its superblock and group descriptors meanwhile).
   * Every write and flush then waits for the check, so a busy image is never written, and
   * `ready()` resolves once it passed or rejects with the EBUSY: await it before doing any work.
   */
  inUseCheck?: 'before' | 'background';
}

/** Largest transfer per read/write syscall (Node limits a single call to < 2 GiB). */
const MAX_CHUNK = 1 << 30;

export class FileDevice implements BlockDevice {
  readonly size: number;
  readonly readOnly: boolean;
  readonly name: string;
  /** True when the path is a block device (false: regular image file). */
  readonly isBlockDevice: boolean;
  private handle: FileHandle | undefined;
  /** The O_DIRECT reader for readUncached (block devices): opened on first use, null when unavailable. */
  private direct: Promise<DirectReader | null> | undefined;
  private readonly syncReadMax: number;
  private readonly syncWriteMax: number;
  /** The in-use check still running (FileDeviceOptions.inUseCheck 'background'), null once passed. */
  private inUse: Promise<void> | null = null;

  private constructor(handle: FileHandle, name: string, size: number, readOnly: boolean, isBlockDevice: boolean, syncReadMax = 0, syncWriteMax = 0) {
    this.handle = handle;
    this.syncReadMax = syncReadMax;
    this.syncWriteMax = syncWriteMax;
    this.name = name;
    this.size = size;
    this.readOnly = readOnly;
    this.isBlockDevice = isBlockDevice;
  }

  /**
   * Open an image file or block device. Throws ENOENT if it does not exist,
   * EISDIR for a directory, EINVAL for other non-regular, non-block files,
   * EBUSY if `exclusive` and the device is mounted / the image backs a
   * mounted loop device, EPERM without permission.
   */
  static async open(path: string, options: FileDeviceOptions = {}): Promise<FileDevice> {
    const write = options.write ?? false;
    const exclusive = options.exclusive ?? write;
    const roots = options.roots ?? DEFAULT_ROOTS;

    let pre;
    try {
      pre = await fsp.stat(path);
    } catch (e) {
      throw fromSystemError(e, `cannot open ${path}`, path);
    }
    if (pre.isDirectory()) throw new Ext4Error('EISDIR', `${path} is a directory, not an image or block device`, { structure: path });
    if (!pre.isFile() && !pre.isBlockDevice()) {
      throw new Ext4Error('EINVAL', `${path} is neither a regular file nor a block device`, { structure: path });
    }

    let flags = write ? fsc.O_RDWR : fsc.O_RDONLY;
    // O_EXCL without O_CREAT on a block device: Linux claims the device
    // exclusively and fails with EBUSY if it is mounted or claimed.
    if (exclusive && pre.isBlockDevice()) flags |= fsc.O_EXCL;

    let handle: FileHandle;
    try {
      handle = await fsp.open(path, flags);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EBUSY') {
        throw new Ext4Error('EBUSY', `${path} is mounted or in use (exclusive open refused by the kernel)`, { structure: path, cause: e });
      }
      throw fromSystemError(e, `cannot open ${path}${write ? ' for writing' : ''}`, path);
    }

    try {
      const st = await handle.stat({ bigint: true });
      const isBlock = st.isBlockDevice();
      if (!isBlock && !st.isFile()) {
        throw new Ext4Error('EINVAL', `${path} is neither a regular file nor a block device`, { structure: path });
      }
      if (isBlock !== pre.isBlockDevice()) {
        throw new Ext4Error('EBUSY', `${path} changed type while being opened`, { structure: path });
      }
      const checkInUse = async (): Promise<void> => {
        const report = await imageInUse({ dev: st.dev, ino: st.ino, path }, roots);
        if (report.inUse) {
          throw new Ext4Error('EBUSY', `${path} is in use: it ${report.reason}; unmount it first`, { structure: path });
        }
      };
      const background = !isBlock && exclusive && options.inUseCheck === 'background';
      if (!isBlock && exclusive && !background) await checkInUse();
      let size: number;
      if (isBlock) {
        size = (await blockDeviceSizeFromSysfs(st.rdev, roots)) ?? (await probeSize(handle, path));
      } else {
        if (st.size > BigInt(Number.MAX_SAFE_INTEGER)) throw new Ext4Error('EFBIG', `${path} is too large`, { structure: path });
        size = Number(st.size);
      }
      const dev = new FileDevice(handle, path, size, !write, isBlock, Math.max(0, options.syncReadMax ?? 0), Math.max(0, options.syncWriteMax ?? 0));
      if (background) {
        const check = checkInUse().then(() => void (dev.inUse = null));
        check.catch(() => undefined); // (reported by ready() and by every write)
        dev.inUse = check;
      }
      return dev;
    } catch (e) {
      await handle.close().catch(() => undefined);
      throw fromSystemError(e, `cannot open ${path}`, path);
    }
  }

  /** Resolves once the background in-use check passed (at once without one); rejects with its EBUSY. */
  ready(): Promise<void> {
    return this.inUse ?? Promise.resolve();
  }

  private fh(op: string): FileHandle {
    if (!this.handle) throw new Ext4Error('EINVAL', `${op} on closed device`, { structure: this.name });
    return this.handle;
  }

  async read(position: number, length: number): Promise<Uint8Array> {
    checkRange(this.name, 'read', position, length);
    const buf = new Uint8Array(length);
    await this.readInto(position, buf);
    return buf;
  }

  async readInto(position: number, buf: Uint8Array): Promise<void> {
    const length = buf.length;
    checkRange(this.name, 'read', position, length);
    const fh = this.fh('read');
    const sync = length <= this.syncReadMax;
    let done = 0;
    while (done < length) {
      const want = Math.min(length - done, MAX_CHUNK);
      let n: number;
      try {
        if (sync) n = readSync(fh.fd, buf, done, want, position + done);
        else ({ bytesRead: n } = await fh.read(buf, done, want, position + done));
      } catch (e) {
        throw fromSystemError(e, 'read failed', this.name, byteRange(position, length));
      }
      if (n === 0) {
        throw new Ext4Error('EIO', `short read: device ends at byte ${position + done} (size ${this.size})`, {
          structure: this.name,
          location: byteRange(position, length),
        });
      }
      done += n;
    }
  }

  /**
   * Read past the page cache: O_DIRECT on a block device (falling back to a plain read where
   * O_DIRECT is refused), a plain read on an image file.
   */
  async readUncached(position: number, length: number): Promise<Uint8Array> {
    checkRange(this.name, 'read', position, length);
    this.fh('read');
    if (this.isBlockDevice) {
      this.direct ??= openDirectReader(this.name);
      const direct = await this.direct;
      if (direct) {
        try {
          return await direct.read(position, length);
        } catch (e) {
          if (!(e instanceof Ext4Error && e.code === 'EOPNOTSUPP')) throw e;
          this.direct = Promise.resolve(null);
          await direct.close().catch(() => undefined);
        }
      }
    }
    return this.read(position, length);
  }

  async write(position: number, data: Uint8Array): Promise<void> {
    if (this.readOnly) throw new Ext4Error('EROFS', 'device is opened read-only', { structure: this.name, location: byteRange(position, data.length) });
    checkRange(this.name, 'write', position, data.length);
    if (position + data.length > this.size) {
      throw new Ext4Error('ENOSPC', `write past the end of the device (size ${this.size})`, {
        structure: this.name,
        location: byteRange(position, data.length),
      });
    }
    if (this.inUse) await this.inUse;
    const fh = this.fh('write');
    const sync = data.length <= this.syncWriteMax;
    let done = 0;
    while (done < data.length) {
      const want = Math.min(data.length - done, MAX_CHUNK);
      let n: number;
      try {
        if (sync) n = writeSync(fh.fd, data, done, want, position + done);
        else ({ bytesWritten: n } = await fh.write(data, done, want, position + done));
      } catch (e) {
        throw fromSystemError(e, 'write failed', this.name, byteRange(position, data.length));
      }
      if (n === 0) {
        throw new Ext4Error('EIO', `write made no progress at byte ${position + done}`, { structure: this.name, location: byteRange(position, data.length) });
      }
      done += n;
    }
  }

  /** fdatasync(). A no-op on a read-only device. */
  async flush(): Promise<void> {
    const fh = this.fh('flush');
    if (this.readOnly) return;
    if (this.inUse) await this.inUse;
    try {
      await fh.datasync();
    } catch (e) {
      throw fromSystemError(e, 'flush (fdatasync) failed', this.name);
    }
  }

  /** Close the fd. Idempotent; later reads/writes throw EINVAL. */
  async close(): Promise<void> {
    const fh = this.handle;
    this.handle = undefined;
    const direct = this.direct;
    this.direct = undefined;
    if (direct) await (await direct)?.close().catch(() => undefined);
    if (fh) {
      try {
        await fh.close();
      } catch (e) {
        throw fromSystemError(e, 'close failed', this.name);
      }
    }
  }
}

/**
 * Fallback size of a block device when sysfs is unavailable: the smallest
 * position at which a 1-byte read returns nothing (exponential then binary
 * search, ~2·log2(size) tiny reads).
 */
async function probeSize(fh: FileHandle, name: string): Promise<number> {
  const one = new Uint8Array(1);
  const readable = async (pos: number): Promise<boolean> => {
    try {
      return (await fh.read(one, 0, 1, pos)).bytesRead === 1;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EINVAL') return false;
      throw fromSystemError(e, 'cannot determine the device size', name);
    }
  };
  if (!(await readable(0))) return 0;
  let lo = 0; // readable
  let hi = 1; // candidate unreadable
  while (await readable(hi)) {
    lo = hi;
    if (hi >= Number.MAX_SAFE_INTEGER / 2) throw new Ext4Error('EFBIG', 'device too large', { structure: name });
    hi *= 2;
  }
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (await readable(mid)) lo = mid;
    else hi = mid;
  }
  return hi;
}

interface DirectReader {
  read(position: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** O_DIRECT wants the file offset, the length and the buffer's address aligned to the logical block size. */
const DIRECT_ALIGN = 4096;

/**
 * An O_DIRECT reader of `path`, or null when O_DIRECT is unavailable. Node cannot allocate
 * aligned memory, so the first read probes for a buffer offset the kernel accepts (misaligned
 * buffers fail with EINVAL at once) and keeps it; a read no offset satisfies throws EOPNOTSUPP.
 */
async function openDirectReader(path: string): Promise<DirectReader | null> {
  const odirect = (fsc as unknown as Record<string, number | undefined>).O_DIRECT;
  if (!odirect) return null;
  let fh: FileHandle;
  try {
    fh = await fsp.open(path, fsc.O_RDONLY | odirect);
  } catch {
    return null;
  }
  let buf = new Uint8Array(0);
  let off = -1;
  const refused = () => new Ext4Error('EOPNOTSUPP', `O_DIRECT read of ${path} not possible`, { structure: path });
  // One read at a time: they share `buf`.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = queue.then(fn, fn);
    queue = p.catch(() => undefined);
    return p;
  };
  return {
    read: (position: number, length: number) =>
      serial(async (): Promise<Uint8Array> => {
        const start = Math.floor(position / DIRECT_ALIGN) * DIRECT_ALIGN;
        const span = Math.ceil((position + length) / DIRECT_ALIGN) * DIRECT_ALIGN - start;
        if (span > MAX_CHUNK) throw refused();
        if (buf.length < span + DIRECT_ALIGN) {
          buf = new Uint8Array(span + DIRECT_ALIGN);
          off = -1;
        }
        let got = -1;
        if (off < 0) {
          for (let o = 0; o < DIRECT_ALIGN && off < 0; o += 16) {
            try {
              got = (await fh.read(buf, o, span, start)).bytesRead;
              off = o;
            } catch (e) {
              if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw fromSystemError(e, 'O_DIRECT read failed', path, byteRange(position, length));
            }
          }
          if (off < 0) throw refused();
        } else {
          try {
            got = (await fh.read(buf, off, span, start)).bytesRead;
          } catch (e) {
            throw fromSystemError(e, 'O_DIRECT read failed', path, byteRange(position, length));
          }
        }
        if (got < position + length - start)
          throw new Ext4Error('EIO', `short O_DIRECT read: device ends at byte ${start + got}`, { structure: path, location: byteRange(position, length) });
        // A copy: the next read overwrites `buf`.
        return buf.slice(off + position - start, off + position - start + length);
      }),
    close: () => serial(() => fh.close()),
  };
}

/**
 * Load a whole image file (or block device) into a MemoryDevice. The file is read once and
 * closed; the memory device does not write back. Name defaults to the path.
 */
export async function memoryDeviceFromFile(path: string, options: MemoryDeviceOptions = {}): Promise<MemoryDevice> {
  const dev = await FileDevice.open(path, { write: false });
  try {
    let data: Uint8Array;
    try {
      data = new Uint8Array(dev.size);
    } catch (e) {
      throw new Ext4Error('ENOMEM', `${path} (${dev.size} bytes) is too large to load into memory`, { structure: path, cause: e });
    }
    if (dev.size > 0) await dev.readInto(0, data);
    return new MemoryDevice(data, { readOnly: options.readOnly, name: options.name ?? path });
  } finally {
    await dev.close();
  }
}
