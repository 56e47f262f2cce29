/**
 * node:fs/promises' FileHandle for the Volume (fs-volume.ts): open(2)'s flags as Node spells them
 * ('r', 'r+', 'w', 'wx', 'w+', 'a', 'ax', 'a+', … or O_* numbers), a file position that read and
 * write without a position advance, O_APPEND writes at the end whatever the position (as Linux's
 * pwrite does), read/write/stat/truncate/readFile/writeFile/appendFile/chmod/chown/utimes/close and
 * `await using`. A handle holds its inode (namespace.ts holdInode) so an unlinked file stays
 * readable until the last handle closes, as on Linux.
 */
import { Buffer } from 'buffer';
import { Ext4Error } from '../errors.js';
import type { Filesystem } from '../ext4/filesystem.js';
import type { Inode } from '../ext4/inode.js';
import { FileHandle as CoreHandle, pwriteTx } from './file.js';
import { chmodTx, chownTx, toTimestamp, utimesTx } from './attrs.js';
import { asSyscall, VolumeError } from './fs-errors.js';
import { BigIntStats, Stats } from './fs-stats.js';

export const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0o100, O_EXCL = 0o200, O_TRUNC = 0o1000, O_APPEND = 0o2000, O_SYNC = 0o4010000;
const O_ACCMODE = 3;

/** Node's flag strings (lib/internal/fs/utils.js stringToFlags). */
const FLAGS: Record<string, number> = {
  r: O_RDONLY, rs: O_RDONLY | O_SYNC, sr: O_RDONLY | O_SYNC,
  'r+': O_RDWR, 'rs+': O_RDWR | O_SYNC, 'sr+': O_RDWR | O_SYNC,
  w: O_TRUNC | O_CREAT | O_WRONLY, wx: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL, xw: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL,
  'w+': O_TRUNC | O_CREAT | O_RDWR, 'wx+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL, 'xw+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL,
  a: O_APPEND | O_CREAT | O_WRONLY, ax: O_APPEND | O_CREAT | O_WRONLY | O_EXCL, xa: O_APPEND | O_CREAT | O_WRONLY | O_EXCL,
  as: O_APPEND | O_CREAT | O_WRONLY | O_SYNC, sa: O_APPEND | O_CREAT | O_WRONLY | O_SYNC,
  'a+': O_APPEND | O_CREAT | O_RDWR, 'ax+': O_APPEND | O_CREAT | O_RDWR | O_EXCL, 'xa+': O_APPEND | O_CREAT | O_RDWR | O_EXCL,
  'as+': O_APPEND | O_CREAT | O_RDWR | O_SYNC, 'sa+': O_APPEND | O_CREAT | O_RDWR | O_SYNC,
};

export type OpenFlags = string | number;

/** Flags as open(2) bits; Node's ERR_INVALID_ARG_VALUE becomes EINVAL. */
export function parseFlags(flags: OpenFlags | undefined): number {
  if (flags === undefined || flags === null) return O_RDONLY;
  if (typeof flags === 'number') return flags;
  const f = FLAGS[flags];
  if (f === undefined) throw new Ext4Error('EINVAL', `invalid flags '${flags}'`);
  return f;
}

export const canRead = (flags: number) => (flags & O_ACCMODE) !== O_WRONLY;
export const canWrite = (flags: number) => (flags & O_ACCMODE) !== O_RDONLY;

export type BufferEncodingName = 'utf8' | 'utf-8' | 'ascii' | 'latin1' | 'binary' | 'base64' | 'base64url' | 'hex' | 'ucs2' | 'ucs-2' | 'utf16le' | 'utf-16le';
export type Encoding = BufferEncodingName | 'buffer' | null | undefined;

/** Bytes of a write's data: a string in `encoding` (utf8 by default), or bytes as they are. */
export function bytesOf(data: string | Uint8Array, encoding?: Encoding): Uint8Array {
  if (typeof data !== 'string') return data;
  return Buffer.from(data, encoding && encoding !== 'buffer' ? encoding : 'utf8');
}

/** What a read returns: a Buffer, or a string in `encoding`. */
export function decoded(bytes: Uint8Array, encoding?: Encoding): Buffer | string {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return encoding && encoding !== 'buffer' ? b.toString(encoding) : b;
}

export interface HandleParts {
  fs: Filesystem;
  ino: number;
  flags: number;
  fd: number;
  /** Drops the handle's hold on the inode (unlink while open). */
  release?: () => Promise<void>;
}

export interface ReadResult<T extends Uint8Array> {
  bytesRead: number;
  buffer: T;
}

export interface WriteResult<T> {
  bytesWritten: number;
  buffer: T;
}

export class VolumeFileHandle {
  readonly fd: number;
  readonly #fs: Filesystem;
  readonly #ino: number;
  readonly #flags: number;
  readonly #file: CoreHandle;
  #position = 0;
  #closed = false;
  #release?: () => Promise<void>;

  constructor(parts: HandleParts) {
    this.fd = parts.fd;
    this.#fs = parts.fs;
    this.#ino = parts.ino;
    this.#flags = parts.flags;
    this.#file = new CoreHandle(parts.fs, parts.ino);
    this.#release = parts.release;
  }

  get ino(): number {
    return this.#ino;
  }

  #live(syscall: string): void {
    if (this.#closed) throw new VolumeError('EBADF', syscall);
  }

  async #inode(): Promise<Inode> {
    return this.#fs.exclusive(() => this.#fs.readInode(this.#ino));
  }

  /** read(buffer, offset, length, position) or read({buffer, offset, length, position}); position null/-1: the file position. */
  async read<T extends Uint8Array = Buffer>(
    bufferOrOpts?: T | { buffer?: T; offset?: number; length?: number; position?: number | bigint | null },
    offset?: number,
    length?: number,
    position?: number | bigint | null,
  ): Promise<ReadResult<T>> {
    this.#live('read');
    let buffer: T;
    if (bufferOrOpts instanceof Uint8Array) buffer = bufferOrOpts;
    else {
      const o = bufferOrOpts ?? {};
      buffer = o.buffer ?? (Buffer.alloc(16384) as unknown as T);
      offset = o.offset;
      length = o.length;
      position = o.position;
    }
    const off = offset ?? 0;
    const len = length ?? buffer.byteLength - off;
    if (off < 0 || len < 0 || off + len > buffer.byteLength) throw new VolumeError('EINVAL', 'read');
    if (!canRead(this.#flags)) throw new VolumeError('EBADF', 'read');
    const inode = await this.#inode();
    if (inode.type === 'dir') throw new VolumeError('EISDIR', 'read');
    const usePos = position === null || position === undefined || position === -1 || position === -1n;
    const at = usePos ? this.#position : Number(position);
    const bytes = len === 0 ? new Uint8Array(0) : await asSyscall('read', undefined, undefined, () => this.#file.pread(at, len));
    buffer.set(bytes, off);
    if (usePos) this.#position += bytes.length;
    return { bytesRead: bytes.length, buffer };
  }

  /**
   * write(buffer, offset?, length?, position?) or write(string, position?, encoding?). Without a
   * position: at the file position, which advances; O_APPEND: at the end.
   */
  async write<T extends Uint8Array | string>(data: T, a?: number | null, b?: number | Encoding, c?: number | null): Promise<WriteResult<T>> {
    this.#live('write');
    let bytes: Uint8Array;
    let position: number | null | undefined;
    if (typeof data === 'string') {
      bytes = bytesOf(data, b as Encoding);
      position = a;
    } else {
      const off = a ?? 0;
      const len = typeof b === 'number' ? b : data.byteLength - off;
      if (off < 0 || len < 0 || off + len > data.byteLength) throw new VolumeError('EINVAL', 'write');
      bytes = data.subarray(off, off + len);
      position = c;
    }
    if (!canWrite(this.#flags)) throw new VolumeError('EBADF', 'write');
    const usePos = position === null || position === undefined || position === -1;
    const n = await asSyscall('write', undefined, undefined, () =>
      this.#fs.transact(async (tx) => {
        const at = this.#flags & O_APPEND ? (await tx.readInode(this.#ino)).size : usePos ? this.#position : (position as number);
        if (bytes.length > 0) await pwriteTx(tx, this.#ino, bytes, at, false);
        if (usePos || this.#flags & O_APPEND) this.#position = at + bytes.length;
        return bytes.length;
      }),
    );
    return { bytesWritten: n, buffer: data };
  }

  /** readv: fill `buffers` in order from `position` (null: the file position, which advances), one read. */
  async readv<T extends readonly Uint8Array[]>(buffers: T, position?: number | null): Promise<{ bytesRead: number; buffers: T }> {
    this.#live('read');
    const total = buffers.reduce((n, b) => n + b.byteLength, 0);
    const whole = new Uint8Array(total);
    const { bytesRead } = await this.read(whole, 0, total, position ?? null);
    let at = 0;
    for (const b of buffers) {
      if (at >= bytesRead) break;
      const n = Math.min(b.byteLength, bytesRead - at);
      b.set(whole.subarray(at, at + n));
      at += n;
    }
    return { bytesRead, buffers };
  }

  /** writev: `buffers` one after another from `position` (null: the file position), in one transaction. */
  async writev<T extends readonly Uint8Array[]>(buffers: T, position?: number | null): Promise<{ bytesWritten: number; buffers: T }> {
    this.#live('write');
    const total = buffers.reduce((n, b) => n + b.byteLength, 0);
    const whole = new Uint8Array(total);
    let at = 0;
    for (const b of buffers) {
      whole.set(b, at);
      at += b.byteLength;
    }
    const { bytesWritten } = await this.write(whole, 0, total, position ?? null);
    return { bytesWritten, buffers };
  }

  stat(opts: { bigint: true }): Promise<BigIntStats>;
  stat(opts?: { bigint?: false }): Promise<Stats>;
  stat(opts?: { bigint?: boolean }): Promise<Stats | BigIntStats>;
  async stat(opts: { bigint?: boolean } = {}): Promise<Stats | BigIntStats> {
    this.#live('fstat');
    const src = { inode: await this.#inode(), blockSize: this.#fs.blockSize };
    return opts.bigint ? new BigIntStats(src) : new Stats(src);
  }

  async truncate(len = 0): Promise<void> {
    this.#live('ftruncate');
    if (!canWrite(this.#flags)) throw new VolumeError('EINVAL', 'ftruncate');
    await asSyscall('ftruncate', undefined, undefined, () => this.#file.truncate(len));
  }

  /** The rest of the file from the file position (Node reads from the current position too). */
  async readFile(opts: { encoding?: Encoding } | Encoding = {}): Promise<Buffer | string> {
    this.#live('read');
    const encoding = typeof opts === 'object' && opts !== null ? opts.encoding : opts;
    if (!canRead(this.#flags)) throw new VolumeError('EBADF', 'read');
    const inode = await this.#inode();
    if (inode.type === 'dir') throw new VolumeError('EISDIR', 'read');
    const from = this.#position;
    const bytes = await asSyscall('read', undefined, undefined, () => this.#file.pread(from, Math.max(0, inode.size - from)));
    this.#position += bytes.length;
    return decoded(bytes, encoding);
  }

  /** Node's filehandle.writeFile: written from the current position (0 after open), not truncating first. */
  async writeFile(data: string | Uint8Array, opts: { encoding?: Encoding } | Encoding = {}): Promise<void> {
    const encoding = typeof opts === 'object' && opts !== null ? opts.encoding : opts;
    await this.write(bytesOf(data, encoding));
  }

  async appendFile(data: string | Uint8Array, opts: { encoding?: Encoding } | Encoding = {}): Promise<void> {
    return this.writeFile(data, opts);
  }

  async chmod(mode: number): Promise<void> {
    this.#live('fchmod');
    await asSyscall('fchmod', undefined, undefined, () => this.#fs.transact((tx) => chmodTx(tx, this.#ino, mode)));
  }

  async chown(uid: number, gid: number): Promise<void> {
    this.#live('fchown');
    await asSyscall('fchown', undefined, undefined, () => this.#fs.transact((tx) => chownTx(tx, this.#ino, uid, gid)));
  }

  async utimes(atime: Date | number | string, mtime: Date | number | string): Promise<void> {
    this.#live('futime');
    const t = (x: Date | number | string) => toTimestamp(typeof x === 'string' ? Number(x) : x);
    await asSyscall('futime', undefined, undefined, () => this.#fs.transact((tx) => utimesTx(tx, this.#ino, t(atime), t(mtime))));
  }

  /** Writes are durable once their transaction commits (the journal), so these only check the handle. */
  async sync(): Promise<void> {
    this.#live('fsync');
  }

  async datasync(): Promise<void> {
    this.#live('fdatasync');
  }

  /** The file's bytes from `start` to `end` (inclusive, as createReadStream counts) in chunks. */
  async *chunks(opts: { start?: number; end?: number; highWaterMark?: number } = {}): AsyncGenerator<Uint8Array> {
    const chunk = opts.highWaterMark ?? 64 * 1024;
    let at = opts.start ?? this.#position;
    for (;;) {
      this.#live('read');
      const size = (await this.#inode()).size;
      const stop = Math.min(size, opts.end === undefined ? Infinity : opts.end + 1);
      if (at >= stop) return;
      const bytes = await this.#file.pread(at, Math.min(chunk, stop - at));
      if (bytes.length === 0) return;
      at += bytes.length;
      yield bytes;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const release = this.#release;
    this.#release = undefined;
    if (release) await release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
