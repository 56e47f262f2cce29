/**
 * The read side a listing needs (inodes, file maps, directory entries, path lookup, symlink
 * targets) straight on a DiskSource, for `ls`'s fast script: the same reads and checks as a
 * read-only Filesystem (Volume, InodeStore, FileReader, DirReader) for the common shapes, so its
 * bundle carries no block cache, journal or write engine.
 *
 * It covers only what it can answer exactly as a Filesystem would; for anything else — inline
 * directories, a lookup in an htree, casefolded or encrypted directory, a symlink to follow on
 * the way, a symlink whose target is not in one written extent — it throws FullOpenNeeded and the
 * caller redoes the whole command on a Filesystem (which also reports every error: a caller that
 * sees any error here answers nothing and lets the Filesystem path decide).
 */
import { Ext4Error } from '../errors.js';
import type { DiskSource } from './disk-source.js';
import { checkBlockRun, type Superblock } from './superblock.js';
import { descPerBlock, descriptorBlockLocation } from './geometry.js';
import { checkGroupDesc, parseGroupDesc, type GroupDesc } from './group-desc.js';
import { inodeSeed } from './checksum.js';
import { INODE_FLAGS, type Inode } from './inode.js';
import { readInodeBatch } from './inode-store.js';
import { isFastSymlink, readFileMap, type FileMap } from './file-map.js';
import { readEntryTable, splitPath, type DirEntry } from './dir-reader.js';

/** A case DiskReader leaves to a Filesystem (not an error of the image). */
export class FullOpenNeeded extends Error {
  constructor(what: string) {
    super(`needs a full open: ${what}`);
    this.name = 'FullOpenNeeded';
  }
}

const MAX_NAME = 255;

export class DiskReader {
  readonly sb: Superblock;
  readonly blockSize: number;
  readonly fsSeed: number;
  readonly verify: boolean;
  private readonly groups = new Map<number, GroupDesc>();
  private readonly descBlocks = new Map<number, Uint8Array>();

  constructor(private readonly src: DiskSource) {
    this.sb = src.sb;
    this.blockSize = src.blockSize;
    this.fsSeed = src.fsSeed;
    this.verify = src.verify;
  }

  /** Block n (Volume.readBlock's check; not cached). */
  async readBlock(n: number): Promise<Uint8Array> {
    if (!Number.isInteger(n) || n < 0 || n >= this.sb.blocksCount)
      throw new Ext4Error('EFSCORRUPTED', `block ${n} is outside the filesystem (${this.sb.blocksCount} blocks)`, { structure: 'block pointer', location: { kind: 'block', block: n } });
    const b = new Uint8Array(this.blockSize);
    await this.src.readDataBlocksInto(n, 1, b);
    return b;
  }

  async readDataBlocks(n: number, count: number): Promise<Uint8Array> {
    checkBlockRun(this.sb, n, count);
    const b = new Uint8Array(count * this.blockSize);
    await this.src.readDataBlocksInto(n, count, b);
    return b;
  }

  readDataBlocksInto(n: number, count: number, target: Uint8Array): Promise<void> {
    return this.src.readDataBlocksInto(n, count, target);
  }

  /** Group g's descriptor, checked as Volume.group checks it. */
  async group(g: number): Promise<GroupDesc> {
    if (!Number.isInteger(g) || g < 0 || g >= this.sb.groupCount) throw new Ext4Error('EINVAL', `group ${g} does not exist`);
    const hit = this.groups.get(g);
    if (hit) return hit;
    const per = descPerBlock(this.sb);
    const bi = Math.floor(g / per);
    let block = this.descBlocks.get(bi);
    if (block === undefined) this.descBlocks.set(bi, (block = await this.readBlock(descriptorBlockLocation(this.sb, bi))));
    const gd = parseGroupDesc(this.sb, g, block, (g % per) * this.sb.descSize);
    checkGroupDesc(this.sb, gd, this.fsSeed, this.verify);
    this.groups.set(g, gd);
    return gd;
  }

  /** Inode `ino` (readInodeBatch throws what InodeStore.readInode throws). */
  async readInode(ino: number): Promise<Inode> {
    return (await readInodeBatch(this, [ino])).get(0);
  }

  fileMap(inode: Inode): Promise<FileMap> {
    const seed = this.sb.hasMetadataCsum ? inodeSeed(this.fsSeed, inode.ino, inode.generation) : null;
    return readFileMap({ blockSize: this.blockSize, verify: this.verify, sb: this.sb, inodeCsumSeed: () => seed }, inode, this);
  }

  /** Inline directories are the Filesystem's. */
  async readdirRaw(dir: Inode): Promise<DirEntry[]> {
    throw new FullOpenNeeded(`inline directory ${dir.ino}`);
  }

  /** FileReader.readlink's checks; a slow symlink's target only when one written extent holds it. */
  async readlink(inode: Inode): Promise<Uint8Array> {
    if (inode.type !== 'symlink') throw new Ext4Error('EINVAL', `inode ${inode.ino} is not a symlink`);
    if (inode.size > 4096 || inode.size === 0) throw new Ext4Error('EFSCORRUPTED', `symlink size ${inode.size} is invalid`, { structure: `inode ${inode.ino}` });
    if (inode.flags & INODE_FLAGS.ENCRYPT) throw new Ext4Error('EOPNOTSUPP', `symlink ${inode.ino} is encrypted`);
    if (isFastSymlink(inode, this.blockSize)) return inode.base.i_block.slice(0, inode.size);
    const map = await this.fileMap(inode);
    const blocks = Math.ceil(inode.size / this.blockSize);
    const e = map.kind === 'inline' ? undefined : map.extents[0];
    if (e === undefined || e.logical !== 0 || e.unwritten || e.length < blocks) throw new FullOpenNeeded(`symlink ${inode.ino}'s target`);
    return (await this.readDataBlocks(e.physical, blocks)).slice(0, inode.size);
  }

  /**
   * DirReader.resolve for paths through plain linear directories with no symlink to follow
   * (anything else: FullOpenNeeded).
   */
  async resolve(path: string | Uint8Array, opts: { followLast?: boolean } = {}): Promise<Inode> {
    const p = typeof path === 'string' ? new TextEncoder().encode(path) : path;
    const followLast = opts.followLast !== false;
    let cur = await this.readInode(2);
    const parts = splitPath(p);
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (cur.type !== 'dir') throw new Ext4Error('ENOTDIR', 'a path component is not a directory');
      const ino = await this.lookup(cur, part);
      if (ino === null) throw new Ext4Error('ENOENT', 'no such file or directory');
      const next = await this.readInode(ino);
      if (next.mode === 0 || next.type === null) throw new Ext4Error('EFSCORRUPTED', `directory entry points at inode ${ino}, which is not in use`);
      if (next.type === 'symlink' && (i < parts.length - 1 || followLast)) throw new FullOpenNeeded('a symlink to follow');
      cur = next;
    }
    return cur;
  }

  /** DirReader.lookup's linear scan (first match in on-disk order), for a directory it would scan linearly and bytewise. */
  private async lookup(dir: Inode, name: Uint8Array): Promise<number | null> {
    if (name.length > MAX_NAME) throw new Ext4Error('ENAMETOOLONG', 'bad name length');
    if (dir.flags & (INODE_FLAGS.INDEX | INODE_FLAGS.CASEFOLD | INODE_FLAGS.ENCRYPT)) throw new FullOpenNeeded(`lookup in directory ${dir.ino}`);
    const t = await readEntryTable(this, dir, { dots: true });
    for (let i = 0; i < t.length; i++) {
      const len = t.nameLen[i]!;
      if (len !== name.length) continue;
      const buf = t.chunks[t.chunk[i]!]!, s = t.nameStart[i]!;
      let k = 0;
      while (k < len && buf[s + k] === name[k]) k++;
      if (k === len) return t.ino[i]!;
    }
    return null;
  }
}
