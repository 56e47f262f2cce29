/**
 * A node:fs-shaped view of an ext2/3/4 image, so code written against node:fs/promises ports by
 * changing one import:
 *
 *   await using vol = await Volume.open(device, { write: true });
 *   await vol.promises.mkdir('/a/b', { recursive: true });
 *   await vol.promises.writeFile('/a/b/c.txt', 'hello');
 *   for (const d of await vol.promises.readdir('/a', { withFileTypes: true })) d.isDirectory();
 *
 * `vol.promises` has node:fs/promises' calls with Node's argument forms, results (Buffer or a string
 * per `encoding`, Stats/BigIntStats, Dirent) and errors: the code, a negative errno, the syscall Node
 * names ('open', 'scandir', 'copyfile', …), path and dest, and the message shaped as Node's
 * (fs-errors.ts). Which error a call gives follows Linux (open(2), rename(2), …) where the library's
 * own checks would answer differently (a trailing slash on a non-directory, open through a dangling
 * symlink, rm of a directory without `recursive`). Paths are absolute in the image (a relative one
 * is taken from '/'); created files and directories get `mode & ~umask` (umask 0o022 unless the
 * options say). The work is done by namespace.ts, attrs.ts, write-file.ts and file.ts; file handles
 * are in fs-handle.ts. `readStream` is the platform-free stream; `ext4kit/node` adds Node streams.
 */
import { Ext4Error } from '../errors.js';
import type { BlockDevice } from '../io/device.js';
import { Filesystem, type OpenOptions } from '../ext4/filesystem.js';
import type { Inode } from '../ext4/inode.js';
import * as ns from './namespace.js';
import { chmod as chmodPath, chown as chownPath, utimes as utimesPath, type TimeArg } from './attrs.js';
import { appendFile as appendData, writeFile as writeData } from './write-file.js';
import { asSyscall, pathText, VolumeError, type PathArg } from './fs-errors.js';
import { BigIntStats, Dirent, Stats } from './fs-stats.js';
import {
  O_APPEND, O_CREAT, O_EXCL, O_TRUNC, O_RDWR, bytesOf, canWrite, decoded, parseFlags, VolumeFileHandle, type Encoding, type OpenFlags,
} from './fs-handle.js';
import type { Buffer } from 'buffer';
import { Dir } from './fs-dir.js';
import { statfsCounts, toStatFs, type StatFs } from './fs-statfs.js';
import { randomBelow } from '../ext4/random.js';

/** The characters glibc's mkdtemp puts in place of XXXXXX. */
const TEMP_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

export { VolumeError, type PathArg } from './fs-errors.js';
export { Stats, BigIntStats, Dirent } from './fs-stats.js';
export { VolumeFileHandle, type OpenFlags, type Encoding } from './fs-handle.js';
export { Dir } from './fs-dir.js';
export { StatFs } from './fs-statfs.js';

export interface VolumeOptions extends OpenOptions {
  /** Bits cleared from the mode of what the Volume creates, as the process umask does (default 0o022). */
  umask?: number;
}

export const constants = Object.freeze({ F_OK: 0, R_OK: 4, W_OK: 2, X_OK: 1, COPYFILE_EXCL: 1, COPYFILE_FICLONE: 2, COPYFILE_FICLONE_FORCE: 4 });

type EncodingOpt = { encoding?: Encoding } | Encoding;
const encodingOf = (o: EncodingOpt | { encoding?: Encoding; flag?: OpenFlags } | undefined): Encoding =>
  typeof o === 'object' && o !== null ? o.encoding : (o as Encoding);

export type WriteData = string | Uint8Array | AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>;

const MAX_SYMLINK_HOPS = 40;
/** Reads of a source up to this size go through memory in one read (copyFile); larger ones stream. */
const COPY_IN_MEMORY = 16 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------- paths

/** The image path for a user's path: bytes or a string, from '/' when relative. */
function imagePath(p: PathArg): string | Uint8Array {
  if (typeof p === 'string') return p.startsWith('/') ? p : `/${p}`;
  return p[0] === 0x2f ? p : Uint8Array.of(0x2f, ...p);
}

const hasTrailingSlash = (p: string | Uint8Array) => {
  const t = typeof p === 'string' ? p : pathText(p);
  return t.length > 1 && t.endsWith('/');
};

function components(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

function joinPath(parts: readonly string[]): string {
  return `/${parts.join('/')}`;
}

/** `target` of a symlink in directory `dirParts`, as a list of components (not yet resolved). */
function spliceTarget(dirParts: readonly string[], target: string): string[] {
  return target.startsWith('/') ? components(target) : [...dirParts, ...components(target)];
}

// ---------------------------------------------------------------------------------------------- Volume

export class Volume {
  readonly fs: Filesystem;
  readonly promises: VolumePromises;
  readonly constants = constants;
  readonly #ownsFs: boolean;

  constructor(fs: Filesystem, opts: { umask?: number; ownsFs?: boolean } = {}) {
    this.fs = fs;
    this.#ownsFs = opts.ownsFs ?? false;
    this.promises = new VolumePromises(fs, opts.umask ?? 0o022);
  }

  /** Open a filesystem on `device` as a Volume; closing the Volume closes it. */
  static async open(device: BlockDevice, opts: VolumeOptions = {}): Promise<Volume> {
    const { umask, ...open } = opts;
    return new Volume(await Filesystem.open(device, open), { umask, ownsFs: true });
  }

  /** The bytes of `path` from `start` to `end` (inclusive, as createReadStream counts) in chunks of `highWaterMark`. */
  async *readStream(path: PathArg, opts: { start?: number; end?: number; highWaterMark?: number; flags?: OpenFlags } = {}): AsyncGenerator<Uint8Array> {
    const h = await this.promises.open(path, opts.flags ?? 'r');
    try {
      yield* h.chunks({ start: opts.start ?? 0, end: opts.end, highWaterMark: opts.highWaterMark });
    } finally {
      await h.close();
    }
  }

  /** Close the filesystem (if the Volume opened it): everything written is committed and checkpointed. */
  async close(): Promise<void> {
    if (this.#ownsFs) await this.fs.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** node:fs/promises over one filesystem. */
export class VolumePromises {
  readonly constants = constants;
  readonly #fs: Filesystem;
  readonly #umask: number;
  #nextFd = 3;

  constructor(fs: Filesystem, umask: number) {
    this.#fs = fs;
    this.#umask = umask;
  }

  // ------------------------------------------------------------------ lookups

  /** The inode at `path` (the last component followed or not); a trailing slash demands a directory (ENOTDIR). */
  async #lookup(path: PathArg, follow: boolean): Promise<Inode> {
    const p = imagePath(path);
    const slash = hasTrailingSlash(p);
    const inode = await this.#fs.exclusive(() => this.#fs.resolve(p, { followLast: follow || slash }));
    if (slash && inode.type !== 'dir') throw new Ext4Error('ENOTDIR', `${pathText(path)}: not a directory`);
    return inode;
  }

  async #exists(path: PathArg, follow: boolean): Promise<Inode | null> {
    try {
      return await this.#lookup(path, follow);
    } catch (e) {
      if (e instanceof Ext4Error && e.code === 'ENOENT') return null;
      throw e;
    }
  }

  /**
   * Where open(O_CREAT) creates `path`: the path itself, or — when it is a dangling symlink — the
   * path its target names (open(2) creates the target, following up to 40 links).
   */
  async #creationPath(path: PathArg): Promise<string | Uint8Array> {
    let p = imagePath(path);
    for (let hops = 0; hops <= MAX_SYMLINK_HOPS; hops++) {
      const inode = await this.#exists(p, false);
      if (!inode || inode.type !== 'symlink') return p;
      const target = pathText(await this.#fs.exclusive(() => this.#fs.readlink(inode)));
      const dir = components(pathText(p)).slice(0, -1);
      p = joinPath(spliceTarget(dir, target));
    }
    throw new Ext4Error('ELOOP', `${pathText(path)}: too many levels of symbolic links`);
  }

  #mode(mode: number | string | undefined, dflt: number): number {
    const m = mode === undefined ? dflt : typeof mode === 'string' ? parseInt(mode, 8) : mode;
    return m & 0o7777 & ~this.#umask;
  }

  // ------------------------------------------------------------------ open and whole files

  /** open(2) with Node's flags; `mode` (default 0o666, less the umask) for a file it creates. */
  async open(path: PathArg, flags: OpenFlags = 'r', mode?: number | string): Promise<VolumeFileHandle> {
    const fl = await asSyscall('open', path, undefined, async () => parseFlags(flags));
    const ino = await asSyscall('open', path, undefined, () => this.#openIno(path, fl, mode));
    const release = ns.holdInode(this.#fs, ino);
    return new VolumeFileHandle({ fs: this.#fs, ino, flags: fl, fd: this.#nextFd++, release });
  }

  async #openIno(path: PathArg, fl: number, mode: number | string | undefined): Promise<number> {
    const creating = (fl & O_CREAT) !== 0;
    const excl = creating && (fl & O_EXCL) !== 0;
    // O_CREAT|O_EXCL never follows the last component: an existing symlink is EEXIST.
    const found = await this.#exists(path, !excl);
    if (found) {
      if (excl) throw new Ext4Error('EEXIST', `${pathText(path)}: file exists`);
      if (found.type === 'dir' && (canWrite(fl) || fl & O_TRUNC)) throw new Ext4Error('EISDIR', `${pathText(path)}: is a directory`);
      if (fl & O_TRUNC && canWrite(fl) && found.type === 'file' && found.size > 0) {
        const h = new VolumeFileHandle({ fs: this.#fs, ino: found.ino, flags: O_RDWR, fd: -1 });
        await h.truncate(0);
      }
      return found.ino;
    }
    if (!creating) throw new Ext4Error('ENOENT', `${pathText(path)}: no such file or directory`);
    if (hasTrailingSlash(imagePath(path))) throw new Ext4Error('EISDIR', `${pathText(path)}: a file name cannot end with '/'`);
    const at = excl ? imagePath(path) : await this.#creationPath(path);
    return ns.createFile(this.#fs, at, { exclusive: true, mode: this.#mode(mode, 0o666) });
  }

  async readFile(path: PathArg | VolumeFileHandle, opts?: { encoding?: Encoding; flag?: OpenFlags } | Encoding): Promise<Buffer | string> {
    const encoding = encodingOf(opts);
    if (path instanceof VolumeFileHandle) return path.readFile({ encoding });
    const flag = typeof opts === 'object' && opts !== null ? opts.flag : undefined;
    if (flag !== undefined && flag !== 'r') {
      await using h = await this.open(path, flag);
      return h.readFile({ encoding });
    }
    const inode = await asSyscall('open', path, undefined, () => this.#lookup(path, true));
    if (inode.type === 'dir') throw new VolumeError('EISDIR', 'read');
    const bytes = await asSyscall('read', undefined, undefined, () => this.#fs.exclusive(async () => this.#fs.read(await this.#fs.readInode(inode.ino), 0, Number.MAX_SAFE_INTEGER)));
    return decoded(bytes, encoding);
  }

  /**
   * Replace the content of `path` (created with `mode` less the umask). 'w'/'wx' replace atomically
   * (write-file.ts: a crash leaves the old or the new content); 'a' appends; other flags go through a handle.
   */
  async writeFile(path: PathArg | VolumeFileHandle, data: WriteData, opts?: { encoding?: Encoding; mode?: number | string; flag?: OpenFlags } | Encoding): Promise<void> {
    const encoding = encodingOf(opts);
    const o = typeof opts === 'object' && opts !== null ? opts : {};
    if (path instanceof VolumeFileHandle) return path.writeFile(await collect(data, encoding));
    const flag = o.flag ?? 'w';
    const fl = await asSyscall('open', path, undefined, async () => parseFlags(flag));
    const simple = flag === 'w' || flag === 'wx' || flag === 'xw' || flag === 'a';
    if (!simple) {
      await using h = await this.open(path, flag, o.mode);
      await h.writeFile(await collect(data, encoding));
      return;
    }
    // The open part: what open(2) would refuse, refused with syscall 'open'.
    const target = await asSyscall('open', path, undefined, async () => {
      const excl = (fl & O_EXCL) !== 0;
      const found = await this.#exists(path, !excl);
      if (found && excl) throw new Ext4Error('EEXIST', `${pathText(path)}: file exists`);
      if (found?.type === 'dir') throw new Ext4Error('EISDIR', `${pathText(path)}: is a directory`);
      if (found) return imagePath(path);
      if (hasTrailingSlash(imagePath(path))) throw new Ext4Error('EISDIR', `${pathText(path)}: a file name cannot end with '/'`);
      const at = excl ? imagePath(path) : await this.#creationPath(path);
      await this.#parentDir(at);
      return at;
    });
    const bytes = isBytesLike(data) ? bytesOf(data, encoding) : chunksOf(data, encoding);
    const mode = this.#mode(o.mode, 0o666);
    await asSyscall('open', path, undefined, async () => {
      const owner = { mode };
      if (fl & O_APPEND) await appendData(this.#fs, target, bytes, owner);
      else await writeData(this.#fs, target, bytes, { ...owner, flag: 'w' });
    });
  }

  /** The directory a new name would go in (ENOENT / ENOTDIR as open(2) reports them). */
  async #parentDir(p: string | Uint8Array): Promise<Inode> {
    const t = pathText(p).replace(/\/+$/, '');
    const parent = t.slice(0, Math.max(1, t.lastIndexOf('/')));
    const dir = await this.#lookup(parent, true);
    if (dir.type !== 'dir') throw new Ext4Error('ENOTDIR', `${parent}: not a directory`);
    return dir;
  }

  async appendFile(path: PathArg | VolumeFileHandle, data: WriteData, opts?: { encoding?: Encoding; mode?: number | string; flag?: OpenFlags } | Encoding): Promise<void> {
    const o = typeof opts === 'object' && opts !== null ? opts : { encoding: opts };
    if (path instanceof VolumeFileHandle) return path.appendFile(await collect(data, o.encoding));
    return this.writeFile(path, data, { ...o, flag: o.flag ?? 'a' });
  }

  async truncate(path: PathArg, len = 0): Promise<void> {
    await using h = await this.open(path, 'r+');
    await h.truncate(len);
  }

  async copyFile(src: PathArg, dest: PathArg, mode = 0): Promise<void> {
    await asSyscall('copyfile', src, dest, async () => {
      // libuv's order (uv__fs_copyfile): open the source, open/create the destination, then copy.
      const from = await this.#lookup(src, true);
      const excl = (mode & constants.COPYFILE_EXCL) !== 0;
      const to = await this.#exists(dest, !excl);
      if (to && excl) throw new Ext4Error('EEXIST', `${pathText(dest)}: file exists`);
      if (to?.type === 'dir') throw new Ext4Error('EISDIR', `${pathText(dest)}: is a directory`);
      if (to && to.ino === from.ino) return;
      const at = to ? imagePath(dest) : await this.#creationPath(dest);
      if (!to) await this.#parentDir(at);
      if (from.type === 'dir') {
        // libuv opens (creates) the destination with the source's mode, the copy then fails
        // (EISDIR), and it unlinks the destination path — a dangling symlink's new target stays.
        // An existing destination (a symlink's target too) was truncated and given the source's mode first.
        if (!to) await ns.createFile(this.#fs, at, { exclusive: true, mode: from.mode & 0o7777 });
        else {
          await new VolumeFileHandle({ fs: this.#fs, ino: to.ino, flags: O_RDWR, fd: -1 }).truncate(0);
          await chmodPath(this.#fs, at, from.mode & 0o7777);
        }
        await ns.unlink(this.#fs, imagePath(dest));
        throw new Ext4Error('EISDIR', `${pathText(src)}: is a directory`);
      }
      const data =
        from.size <= COPY_IN_MEMORY
          ? await this.#fs.exclusive(async () => this.#fs.read(await this.#fs.readInode(from.ino), 0, Number.MAX_SAFE_INTEGER))
          : new VolumeFileHandle({ fs: this.#fs, ino: from.ino, flags: 0, fd: -1 }).chunks({ start: 0 });
      // libuv creates the copy with the source's mode (then fchmods an existing one to it).
      await writeData(this.#fs, at, data, { mode: from.mode & 0o7777 });
      if (to) await chmodPath(this.#fs, at, from.mode & 0o7777);
    });
  }

  // ------------------------------------------------------------------ directories

  async mkdir(path: PathArg, opts?: { recursive?: boolean; mode?: number | string } | number | string): Promise<string | undefined> {
    const o = typeof opts === 'object' && opts !== null ? opts : { mode: opts };
    // mkdir(2) keeps only the permission and sticky bits of the mode asked for.
    const mode = this.#mode(o.mode, 0o777) & 0o1777;
    if (!o.recursive) {
      await asSyscall('mkdir', path, undefined, async () => {
        await ns.mkdir(this.#fs, imagePath(path), { mode });
      });
      return undefined;
    }
    return asSyscall('mkdir', path, undefined, async () => {
      const parts = components(pathText(imagePath(path)));
      let first: string | undefined;
      for (let i = 1; i <= parts.length; i++) {
        const prefix = joinPath(parts.slice(0, i));
        const found = await this.#exists(prefix, true);
        if (found) {
          if (found.type === 'dir') continue;
          throw new Ext4Error(i === parts.length ? 'EEXIST' : 'ENOTDIR', `${prefix}: not a directory`);
        }
        // A dangling symlink: mkdir says EEXIST and Node's mkdirp stats it: ENOENT for the last
        // component, ENOTDIR naming the symlink for one in the middle.
        if (await this.#exists(prefix, false)) {
          if (i === parts.length) throw new Ext4Error('ENOENT', `${prefix}: dangling symbolic link`);
          throw new VolumeError('ENOTDIR', 'mkdir', prefix);
        }
        await ns.mkdir(this.#fs, prefix, { mode });
        first ??= prefix;
      }
      return first;
    });
  }

  async readdir(path: PathArg, opts?: { withFileTypes?: boolean; encoding?: Encoding; recursive?: boolean } | Encoding): Promise<(string | Buffer)[] | Dirent[]> {
    const o = typeof opts === 'object' && opts !== null ? opts : { encoding: opts };
    return asSyscall('scandir', path, undefined, () => this.#list(path, o));
  }

  /** The entries of a directory (and below it with `recursive`), as readdir returns them. */
  async #list(path: PathArg, o: { withFileTypes?: boolean; encoding?: Encoding; recursive?: boolean }): Promise<(string | Buffer)[] | Dirent[]> {
    const base = pathText(path);
    const out: (string | Buffer | Dirent)[] = [];
    const walk = async (dirPath: string, rel: string): Promise<void> => {
      const dir = await this.#lookup(dirPath, true);
      if (dir.type !== 'dir') throw new Ext4Error('ENOTDIR', `${dirPath}: not a directory`);
      const entries = await this.#fs.exclusive(async () => {
        const list = [];
        for await (const e of this.#fs.readdir(dir)) if (e.name !== '.' && e.name !== '..') list.push(e);
        return list;
      });
      for (const e of entries) {
        const name = rel ? `${rel}/${e.name}` : e.name;
        if (o.withFileTypes) out.push(new Dirent(e.name, rel ? `${base.replace(/\/$/, '')}/${rel}` : base, e.type));
        else if (o.encoding === 'buffer') out.push(decoded(rel ? Uint8Array.from([...bytesOf(`${rel}/`), ...e.nameBytes]) : e.nameBytes, 'buffer'));
        else out.push(name);
        if (o.recursive && e.type === 'dir') await walk(`${dirPath.replace(/\/$/, '')}/${e.name}`, name);
      }
    };
    await walk(pathText(imagePath(path)), '');
    return out as (string | Buffer)[] | Dirent[];
  }

  /** opendir: a Dir over the directory's entries (fs-dir.ts; listed when opened). */
  async opendir(path: PathArg, opts: { encoding?: Encoding; bufferSize?: number; recursive?: boolean } = {}): Promise<Dir> {
    return asSyscall('opendir', path, undefined, async () => {
      if (opts.bufferSize !== undefined && (!Number.isInteger(opts.bufferSize) || opts.bufferSize < 1))
        throw Object.assign(new RangeError(`The value of "options.bufferSize" is out of range. It must be >= 1 && <= 4294967295. Received ${opts.bufferSize}`), { code: 'ERR_OUT_OF_RANGE' });
      const entries = (await this.#list(path, { withFileTypes: true, recursive: opts.recursive })) as Dirent[];
      return new Dir(pathText(path), entries);
    });
  }

  /**
   * mkdtemp: a new directory (mode 0700 less the umask) named `prefix` and six characters of
   * [A-Za-z0-9], as glibc's mkdtemp draws them — here from the filesystem's random source
   * (random.ts: reproducible when the open's clock is fixed), retried when the name exists.
   */
  async mkdtemp(prefix: PathArg, opts?: { encoding?: Encoding } | Encoding): Promise<string | Buffer> {
    const enc = typeof opts === 'object' && opts !== null ? opts.encoding : opts;
    const template = `${pathText(prefix)}XXXXXX`;
    for (let attempt = 0; attempt < 100; attempt++) {
      let name = pathText(prefix);
      for (let i = 0; i < 6; i++) name += TEMP_CHARS[randomBelow(this.#fs, TEMP_CHARS.length, `mkdtemp ${template} ${attempt}.${i}`)];
      // An error names the path tried, as glibc fills the template in place.
      const made = await asSyscall('mkdtemp', name, undefined, async () => {
        try {
          await ns.mkdir(this.#fs, imagePath(name), { mode: this.#mode(0o700, 0o700) });
          return true;
        } catch (e) {
          if (e instanceof Ext4Error && e.code === 'EEXIST') return false;
          throw e;
        }
      });
      if (made) return enc === 'buffer' ? decoded(bytesOf(name), 'buffer') : name;
    }
    throw new VolumeError('EEXIST', 'mkdtemp', template);
  }

  /** statfs(2) of the filesystem holding `path` (fs-statfs.ts: the figures ext4_statfs gives). */
  statfs(path: PathArg, opts: { bigint: true }): Promise<StatFs<bigint>>;
  statfs(path: PathArg, opts?: { bigint?: false }): Promise<StatFs<number>>;
  async statfs(path: PathArg, opts: { bigint?: boolean } = {}): Promise<StatFs<number> | StatFs<bigint>> {
    return asSyscall('statfs', path, undefined, async () => {
      await this.#lookup(path, true);
      return toStatFs(await statfsCounts(this.#fs), opts.bigint === true);
    });
  }

  async rmdir(path: PathArg): Promise<void> {
    await asSyscall('rmdir', path, undefined, async () => {
      const p = imagePath(path);
      // rmdir(2) on a symlink is ENOTDIR even when it points at a directory.
      const inode = await this.#lookup(p, hasTrailingSlash(p));
      if (inode.type !== 'dir') throw new Ext4Error('ENOTDIR', `${pathText(path)}: not a directory`);
      await ns.rmdir(this.#fs, p);
    });
  }

  /** rm: lstat first (ENOENT ignored with `force`); a directory needs `recursive` (Node's ERR_FS_EISDIR). */
  async rm(path: PathArg, opts: { recursive?: boolean; force?: boolean } = {}): Promise<void> {
    let inode: Inode | null;
    try {
      inode = await asSyscall('lstat', path, undefined, () => this.#lookup(path, false));
    } catch (e) {
      if (opts.force && e instanceof Ext4Error && e.code === 'ENOENT') return;
      throw e;
    }
    if (inode.type === 'dir') {
      if (!opts.recursive) throw rmIsDir(path);
      await asSyscall('rm', path, undefined, () => ns.removeTree(this.#fs, imagePath(path)));
      return;
    }
    await asSyscall('unlink', path, undefined, () => ns.unlink(this.#fs, imagePath(path)));
  }

  // ------------------------------------------------------------------ names

  async unlink(path: PathArg): Promise<void> {
    await asSyscall('unlink', path, undefined, async () => {
      const p = imagePath(path);
      if (hasTrailingSlash(p)) {
        const inode = await this.#lookup(p, true);
        throw new Ext4Error(inode.type === 'dir' ? 'EISDIR' : 'ENOTDIR', `${pathText(path)}: cannot unlink`);
      }
      await ns.unlink(this.#fs, p);
    });
  }

  async rename(oldPath: PathArg, newPath: PathArg): Promise<void> {
    await asSyscall('rename', oldPath, newPath, async () => {
      // renameat2's order: both parents, then the old name, then the new one.
      await this.#parentDir(imagePath(oldPath));
      await this.#parentDir(imagePath(newPath));
      const from = await this.#lookup(oldPath, false);
      const to = await this.#exists(newPath, false);
      // rename(2) with a trailing slash: both must be directories.
      if ((hasTrailingSlash(imagePath(oldPath)) || hasTrailingSlash(imagePath(newPath))) && from.type !== 'dir') throw new Ext4Error('ENOTDIR', 'not a directory');
      if (to && to.ino === from.ino) return; // two names of one inode: rename(2) does nothing
      await ns.rename(this.#fs, imagePath(oldPath), imagePath(newPath));
    });
  }

  async link(existingPath: PathArg, newPath: PathArg): Promise<void> {
    await asSyscall('link', existingPath, newPath, async () => {
      await this.#lookup(existingPath, false);
      await ns.link(this.#fs, imagePath(existingPath), imagePath(newPath));
    });
  }

  /** symlink(target, path): `type` ('file', 'dir', 'junction') only matters on Windows. */
  async symlink(target: PathArg, path: PathArg, _type?: string | null): Promise<void> {
    await asSyscall('symlink', target, path, async () => {
      await ns.symlink(this.#fs, target, imagePath(path), { mode: 0o777 });
    });
  }

  async readlink(path: PathArg, opts?: EncodingOpt): Promise<string | Buffer> {
    return asSyscall('readlink', path, undefined, async () => {
      const inode = await this.#lookup(path, false);
      if (inode.type !== 'symlink') throw new Ext4Error('EINVAL', `${pathText(path)}: not a symbolic link`);
      const bytes = await this.#fs.exclusive(() => this.#fs.readlink(inode));
      return decoded(bytes, encodingOf(opts) ?? 'utf8');
    });
  }

  /** The canonical path: every symlink followed, '.' and '..' resolved. */
  async realpath(path: PathArg, opts?: EncodingOpt): Promise<string | Buffer> {
    return asSyscall('realpath', path, undefined, async () => {
      let todo = components(pathText(imagePath(path)));
      const done: string[] = [];
      let hops = 0;
      while (todo.length > 0) {
        const [name, ...rest] = todo as [string, ...string[]];
        todo = rest;
        if (name === '..') {
          done.pop();
          continue;
        }
        const p = joinPath([...done, name]);
        const inode = await this.#lookup(p, false);
        if (inode.type === 'symlink') {
          if (++hops > MAX_SYMLINK_HOPS) throw new Ext4Error('ELOOP', `${pathText(path)}: too many levels of symbolic links`);
          const target = pathText(await this.#fs.exclusive(() => this.#fs.readlink(inode)));
          if (target.startsWith('/')) done.length = 0;
          todo = [...components(target), ...todo];
          continue;
        }
        if (todo.length > 0 && inode.type !== 'dir') throw new Ext4Error('ENOTDIR', `${p}: not a directory`);
        done.push(name);
      }
      return decoded(bytesOf(joinPath(done)), encodingOf(opts) ?? 'utf8');
    });
  }

  // ------------------------------------------------------------------ attributes

  stat(path: PathArg, opts: { bigint: true }): Promise<BigIntStats>;
  stat(path: PathArg, opts?: { bigint?: false }): Promise<Stats>;
  stat(path: PathArg, opts?: { bigint?: boolean }): Promise<Stats | BigIntStats>;
  async stat(path: PathArg, opts: { bigint?: boolean } = {}): Promise<Stats | BigIntStats> {
    const inode = await asSyscall('stat', path, undefined, () => this.#lookup(path, true));
    return this.#stats(inode, opts);
  }

  lstat(path: PathArg, opts: { bigint: true }): Promise<BigIntStats>;
  lstat(path: PathArg, opts?: { bigint?: false }): Promise<Stats>;
  lstat(path: PathArg, opts?: { bigint?: boolean }): Promise<Stats | BigIntStats>;
  async lstat(path: PathArg, opts: { bigint?: boolean } = {}): Promise<Stats | BigIntStats> {
    const inode = await asSyscall('lstat', path, undefined, () => this.#lookup(path, false));
    return this.#stats(inode, opts);
  }

  #stats(inode: Inode, opts: { bigint?: boolean }): Stats | BigIntStats {
    const src = { inode, blockSize: this.#fs.blockSize };
    return opts.bigint ? new BigIntStats(src) : new Stats(src);
  }

  /** access(2) as root sees it: existence; W_OK needs a writable open; X_OK some execute bit on a non-directory. */
  async access(path: PathArg, mode: number = constants.F_OK): Promise<void> {
    await asSyscall('access', path, undefined, async () => {
      const inode = await this.#lookup(path, true);
      if (mode & constants.W_OK && this.#fs.readOnly) throw new Ext4Error('EROFS', 'read-only');
      if (mode & constants.X_OK && inode.type !== 'dir' && (inode.mode & 0o111) === 0) throw new Ext4Error('EACCES', `${pathText(path)}: not executable`);
    });
  }

  async chmod(path: PathArg, mode: number | string): Promise<void> {
    const m = typeof mode === 'string' ? parseInt(mode, 8) : mode;
    await asSyscall('chmod', path, undefined, async () => {
      await this.#lookup(path, true);
      await chmodPath(this.#fs, imagePath(path), m & 0o7777);
    });
  }

  async chown(path: PathArg, uid: number, gid: number): Promise<void> {
    await asSyscall('chown', path, undefined, async () => {
      await this.#lookup(path, true);
      await chownPath(this.#fs, imagePath(path), uid, gid);
    });
  }

  async lchown(path: PathArg, uid: number, gid: number): Promise<void> {
    await asSyscall('lchown', path, undefined, async () => {
      await this.#lookup(path, false);
      await chownPath(this.#fs, imagePath(path), uid, gid, { noFollow: true });
    });
  }

  async utimes(path: PathArg, atime: Date | number | string, mtime: Date | number | string): Promise<void> {
    await asSyscall('utime', path, undefined, async () => {
      await this.#lookup(path, true);
      await utimesPath(this.#fs, imagePath(path), timeArg(atime), timeArg(mtime));
    });
  }

  async lutimes(path: PathArg, atime: Date | number | string, mtime: Date | number | string): Promise<void> {
    await asSyscall('lutime', path, undefined, async () => {
      await this.#lookup(path, false);
      await utimesPath(this.#fs, imagePath(path), timeArg(atime), timeArg(mtime), { noFollow: true });
    });
  }
}

function timeArg(t: Date | number | string): TimeArg {
  return typeof t === 'string' ? Number(t) : t;
}

/** Node's rm of a directory without `recursive`: a SystemError with code ERR_FS_EISDIR. */
function rmIsDir(path: PathArg): VolumeError {
  const e = new VolumeError('EISDIR', 'rm', path);
  Object.assign(e, { code: 'ERR_FS_EISDIR', errno: 21, message: `Path is a directory: rm returned EISDIR (is a directory) ${pathText(path)}`, name: 'SystemError' });
  return e;
}

function isBytesLike(d: WriteData): d is string | Uint8Array {
  return typeof d === 'string' || d instanceof Uint8Array;
}

async function* chunksOf(data: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>, encoding: Encoding): AsyncGenerator<Uint8Array> {
  for await (const c of data) yield bytesOf(c, encoding);
}

async function collect(data: WriteData, encoding: Encoding): Promise<Uint8Array> {
  if (isBytesLike(data)) return bytesOf(data, encoding);
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of chunksOf(data, encoding)) {
    parts.push(c);
    n += c.length;
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
