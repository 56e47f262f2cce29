/**
 * node:fs's Stats, BigIntStats and Dirent for the Volume (fs-volume.ts), filled from an inode:
 * the same fields Node's stat gives (dev, ino, mode, nlink, uid, gid, rdev, size, blksize, blocks,
 * the four times as *Ms numbers and Dates; *Ns bigints for `{bigint: true}`) and the is*() tests.
 * birthtime is the inode's i_crtime (statx's btime); 0 where the inode has no room for it, as
 * Node shows a missing btime.
 */
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK, type FileType, type Inode, type Timestamp } from '../ext4/inode.js';
import { decodeRdev } from './inspect.js';

abstract class ModeTests {
  /** The S_IFMT bits of the mode. */
  protected abstract fmtBits(): number;
  #fmt(): number {
    return this.fmtBits() & S_IFMT;
  }
  isFile(): boolean { return this.#fmt() === S_IFREG; }
  isDirectory(): boolean { return this.#fmt() === S_IFDIR; }
  isSymbolicLink(): boolean { return this.#fmt() === S_IFLNK; }
  isBlockDevice(): boolean { return this.#fmt() === S_IFBLK; }
  isCharacterDevice(): boolean { return this.#fmt() === S_IFCHR; }
  isFIFO(): boolean { return this.#fmt() === S_IFIFO; }
  isSocket(): boolean { return this.#fmt() === S_IFSOCK; }
}

/** glibc's makedev: st_rdev as Linux's stat reports it. */
function rdevOf(inode: Inode): number {
  if (inode.type !== 'chardev' && inode.type !== 'blockdev') return 0;
  const { major, minor } = decodeRdev(inode);
  return (minor & 0xff) + (major & 0xfff) * 0x100 + Math.floor(minor / 0x100) * 0x100000 + Math.floor(major / 0x1000) * 2 ** 32;
}

const ms = (t: Timestamp) => t.sec * 1000 + t.nsec / 1e6;
const ns = (t: Timestamp) => BigInt(t.sec) * 1_000_000_000n + BigInt(t.nsec);
const ZERO: Timestamp = { sec: 0, nsec: 0 };

export interface StatSource {
  inode: Inode;
  blockSize: number;
  dev?: number;
}

export class Stats extends ModeTests {
  dev: number; ino: number; mode: number; nlink: number; uid: number; gid: number; rdev: number;
  size: number; blksize: number; blocks: number;
  atimeMs: number; mtimeMs: number; ctimeMs: number; birthtimeMs: number;
  atime: Date; mtime: Date; ctime: Date; birthtime: Date;

  protected fmtBits(): number {
    return this.mode;
  }

  constructor({ inode: i, blockSize, dev = 0 }: StatSource) {
    super();
    this.dev = dev;
    this.ino = i.ino;
    this.mode = i.mode;
    this.nlink = i.linksCount;
    this.uid = i.uid;
    this.gid = i.gid;
    this.rdev = rdevOf(i);
    this.size = i.size;
    this.blksize = blockSize;
    this.blocks = i.blocks512;
    this.atimeMs = ms(i.atime);
    this.mtimeMs = ms(i.mtime);
    this.ctimeMs = ms(i.ctime);
    this.birthtimeMs = ms(i.crtime ?? ZERO);
    this.atime = new Date(this.atimeMs);
    this.mtime = new Date(this.mtimeMs);
    this.ctime = new Date(this.ctimeMs);
    this.birthtime = new Date(this.birthtimeMs);
  }
}

export class BigIntStats extends ModeTests {
  dev: bigint; ino: bigint; mode: bigint; nlink: bigint; uid: bigint; gid: bigint; rdev: bigint;
  size: bigint; blksize: bigint; blocks: bigint;
  atimeMs: bigint; mtimeMs: bigint; ctimeMs: bigint; birthtimeMs: bigint;
  atimeNs: bigint; mtimeNs: bigint; ctimeNs: bigint; birthtimeNs: bigint;
  atime: Date; mtime: Date; ctime: Date; birthtime: Date;

  protected fmtBits(): number {
    return Number(this.mode);
  }

  constructor(src: StatSource) {
    super();
    const s = new Stats(src);
    const i = src.inode;
    this.dev = BigInt(s.dev);
    this.ino = BigInt(s.ino);
    this.mode = BigInt(s.mode);
    this.nlink = BigInt(s.nlink);
    this.uid = BigInt(s.uid);
    this.gid = BigInt(s.gid);
    this.rdev = BigInt(s.rdev);
    this.size = BigInt(s.size);
    this.blksize = BigInt(s.blksize);
    this.blocks = BigInt(s.blocks);
    this.atimeNs = ns(i.atime);
    this.mtimeNs = ns(i.mtime);
    this.ctimeNs = ns(i.ctime);
    this.birthtimeNs = ns(i.crtime ?? ZERO);
    this.atimeMs = this.atimeNs / 1_000_000n;
    this.mtimeMs = this.mtimeNs / 1_000_000n;
    this.ctimeMs = this.ctimeNs / 1_000_000n;
    this.birthtimeMs = this.birthtimeNs / 1_000_000n;
    this.atime = s.atime;
    this.mtime = s.mtime;
    this.ctime = s.ctime;
    this.birthtime = s.birthtime;
  }
}

const TYPE_BITS: Record<FileType, number> = {
  file: S_IFREG, dir: S_IFDIR, symlink: S_IFLNK, chardev: S_IFCHR, blockdev: S_IFBLK, fifo: S_IFIFO, socket: S_IFSOCK,
};

/** node:fs's Dirent: name, parentPath (and its older alias path), the type tests. */
export class Dirent extends ModeTests {
  readonly name: string;
  readonly parentPath: string;
  readonly path: string;
  readonly #type: number;

  protected fmtBits(): number {
    return this.#type;
  }

  constructor(name: string, parentPath: string, type: FileType) {
    super();
    this.name = name;
    this.parentPath = parentPath;
    this.path = parentPath;
    this.#type = TYPE_BITS[type];
  }
}
