/**
 * Directories: entries in on-disk order (linear blocks, htree leaves, inline data), name lookup
 * (htree hash lookup when indexed, casefold-aware), and path resolution with symlinks.
 */
import { Ext4Error, type Location } from '../errors.js';
import { INCOMPAT, COMPAT, S_FLAGS } from './superblock.js';
import { inodeSeed } from './checksum.js';
import { INODE_FLAGS, hasInlineData, type FileType, type Inode } from './inode.js';
import { findExtent } from './extents.js';
import { parseInodeXattrs } from './xattr.js';
import { parseDirBlock, parseInlineDir, DirEntryLayout, type DirEntry as RawDirEntry } from './directory.js';
import { htreeLookup, classifyDirBlock } from './htree.js';
import { hashSeedWords } from './hash-seed.js';
import { ciLookupName } from './casefold.js';
import { bytesEqual, concatBytes, decodeName } from './bytes.js';
import type { FileReader } from './file-reader.js';
import type { InodeStore } from './inode-store.js';
import type { Volume } from './volume.js';

/** A directory entry as stored: the name's bytes, the inode, the dirent file type. */
export interface DirEntry {
  name: Uint8Array;
  ino: number;
  /** dirent file_type (0 if the fs lacks the filetype feature). */
  fileType: number;
}

/** A directory entry for users: the name decoded as UTF-8 (as node:fs does; invalid bytes become U+FFFD), the bytes as stored, the type. */
export interface Dirent {
  name: string;
  nameBytes: Uint8Array;
  ino: number;
  type: FileType;
}

/** dirent file_type codes (directory.ts FileType) as inode types. */
const DIRENT_TYPES: Record<number, FileType> = { 1: 'file', 2: 'dir', 3: 'chardev', 4: 'blockdev', 5: 'fifo', 6: 'socket', 7: 'symlink' };

const MAX_SYMLINK_HOPS = 40; // the kernel's MAXSYMLINKS

export class DirReader {
  constructor(private readonly vol: Volume, private readonly inodes: InodeStore, private readonly files: FileReader) {}

  private dirOpts(dir: Inode, where: Location) {
    return {
      blockSize: this.vol.blockSize,
      hasFiletype: (this.vol.sb.s_feature_incompat & INCOMPAT.FILETYPE) !== 0,
      csum: this.vol.sb.hasMetadataCsum ? { seed: inodeSeed(this.vol.fsSeed, dir.ino, dir.generation) } : null,
      verify: this.vol.verify,
      where,
    };
  }

  /** Every live entry of a directory, including "." and "..". */
  async readdir(dir: Inode): Promise<DirEntry[]> {
    const out: DirEntry[] = [];
    await this.scanDir(dir, (e) => {
      out.push({ name: e.name.slice(), ino: e.ino, fileType: e.fileType });
      return false;
    });
    return out;
  }

  /**
   * The live entries of a directory (including "." and ".."), for users: a dirent without a file
   * type (no filetype feature, or an unknown code) gets the type of its inode, as readdir(3)
   * callers do with lstat. Entries are read when iteration starts.
   */
  async *entries(dir: Inode): AsyncGenerator<Dirent> {
    for (const e of await this.readdir(dir)) {
      const type = DIRENT_TYPES[e.fileType] ?? (await this.inodes.readInode(e.ino)).type;
      if (!type) throw new Ext4Error('EFSCORRUPTED', `directory entry ${decodeName(e.name)} points at inode ${e.ino}, which is not in use`, { structure: `directory ${dir.ino}` });
      yield { name: decodeName(e.name), nameBytes: e.name, ino: e.ino, type };
    }
  }

  /**
   * Visit the live entries of a directory in on-disk order (for an htree: "." and ".." from the
   * root, then the leaves in logical order); stops as soon as `visit` returns true. The entry
   * passed to `visit` is only valid during the call (its name may be shared with a cache).
   */
  async scanDir(dir: Inode, visit: (e: DirEntry) => boolean): Promise<void> {
    if (dir.type !== 'dir') throw new Ext4Error('ENOTDIR', `inode ${dir.ino} is not a directory`);
    if (dir.flags & INODE_FLAGS.ENCRYPT) throw new Ext4Error('EOPNOTSUPP', `directory ${dir.ino} is encrypted`);
    const map = await this.files.fileMap(dir);
    if (map.kind === 'inline') {
      const xa = parseInodeXattrs(dir.raw, dir.extraIsize, dir.ino).find((x) => x.name === 'system.data');
      for (const e of parseInlineDir(dir.base.i_block, xa?.value ?? null, { kind: 'inline-data', dir: dir.ino }, { hasFiletype: this.dirOpts(dir, { kind: 'inode', ino: dir.ino }).hasFiletype, inodesCount: this.vol.sb.s_inodes_count, dirIno: dir.ino }))
        if (e.inode !== 0 && visit({ name: e.name, ino: e.inode, fileType: e.fileType })) return;
      return;
    }
    if (dir.size % this.vol.blockSize !== 0) throw new Ext4Error('EFSCORRUPTED', `directory size ${dir.size} is not a multiple of the block size`, { structure: `inode ${dir.ino}` });
    const nblocks = dir.size / this.vol.blockSize;
    const indexed = (dir.flags & INODE_FLAGS.INDEX) !== 0;
    for (const e of map.extents) {
      if (e.logical >= nblocks) break;
      if (e.unwritten) continue;
      const n = Math.min(e.length, nblocks - e.logical);
      for (let i = 0; i < n; i++) {
        const phys = e.physical + i;
        const blk = await this.vol.readBlock(phys);
        const where: Location = { kind: 'directory-block', dir: dir.ino, block: e.logical + i, physical: phys };
        if (indexed) {
          const kind = classifyDirBlock(blk, this.vol.blockSize);
          if (kind === 'dx-node') continue;
          if (kind === 'dx-root') {
            for (const d of dxRootDots(blk)) if (visit(d)) return;
            continue;
          }
        }
        for (const d of this.parseDirBlockCached(dir, blk, where)) if (d.inode !== 0 && visit({ name: d.name, ino: d.inode, fileType: d.fileType })) return;
      }
    }
  }

  /**
   * Parsed (validated, checksum-verified) entries of a cached directory block, memoised per block
   * buffer and directory: linear lookups rescan the same blocks for every name (a 10,000-entry
   * linear directory would otherwise be re-parsed 10,000 times to resolve each of its names).
   * Cached blocks are never mutated (writers copy them and put() new arrays), so a block buffer
   * that was parsed once for this directory parses the same again.
   */
  private parseDirBlockCached(dir: Inode, blk: Uint8Array, where: Location): readonly RawDirEntry[] {
    const key = `${dir.ino}:${dir.generation}`;
    const hit = this.parsedDirBlocks.get(blk);
    if (hit && hit.key === key) return hit.entries;
    const entries = parseDirBlock(blk, { ...this.dirOpts(dir, where), inodesCount: this.vol.sb.s_inodes_count });
    this.parsedDirBlocks.set(blk, { key, entries });
    return entries;
  }
  private readonly parsedDirBlocks = new WeakMap<Uint8Array, { key: string; entries: readonly RawDirEntry[] }>();

  /** Look a name up in a directory: htree hash lookup when indexed, else a linear scan. */
  async lookup(dir: Inode, name: Uint8Array): Promise<DirEntry | null> {
    if (dir.type !== 'dir') throw new Ext4Error('ENOTDIR', `inode ${dir.ino} is not a directory`);
    if (name.length === 0 || name.length > 255) throw new Ext4Error(name.length ? 'ENAMETOOLONG' : 'ENOENT', 'bad name length');
    // Casefolded directory: names match the kernel's way (lib/ext4/casefold.ts), the htree is hashed
    // by the folded name. Kernel rules: the flag without the feature is corruption (__ext4_iget); an
    // encrypted one is read without its key, so names compare as stored bytes and its siphash index
    // cannot be used (scanned linearly instead).
    const casefolded = (dir.flags & INODE_FLAGS.CASEFOLD) !== 0;
    if (casefolded && !(this.vol.sb.s_feature_incompat & INCOMPAT.CASEFOLD)) {
      throw new Ext4Error('EFSCORRUPTED', 'casefold flag without casefold feature', { structure: `inode ${dir.ino}`, location: { kind: 'field', field: 'i_flags' } });
    }
    const encrypted = (dir.flags & INODE_FLAGS.ENCRYPT) !== 0;
    const ci = casefolded && !encrypted ? ciLookupName(name, this.vol.sb) : null;
    const indexed = dir.flags & INODE_FLAGS.INDEX && this.vol.sb.s_feature_compat & COMPAT.DIR_INDEX && !(casefolded && encrypted) && !hasInlineData(dir);
    if (indexed && name.length <= 2 && name.every((c) => c === 0x2e)) {
      const map = await this.files.fileMap(dir);
      const first = map.extents[0];
      if (!first || first.logical !== 0) throw new Ext4Error('EFSCORRUPTED', 'htree directory has no block 0', { structure: `directory ${dir.ino}` });
      const blk = await this.vol.readBlock(first.physical);
      if (classifyDirBlock(blk, this.vol.blockSize) === 'dx-root') return dxRootDots(blk)[name.length - 1] ?? null;
    }
    if (indexed) {
      const map = await this.files.fileMap(dir);
      const nblocks = dir.size / this.vol.blockSize;
      const readLogical = async (lb: number) => {
        const { extent } = findExtent(map.extents, lb);
        if (!extent || extent.unwritten || lb >= nblocks) throw new Ext4Error('EFSCORRUPTED', `htree points at unmapped block ${lb}`, { structure: `directory ${dir.ino}` });
        return this.vol.readBlock(extent.physical + lb - extent.logical);
      };
      const hit = await htreeLookup(name, {
        readBlock: readLogical,
        blockSize: this.vol.blockSize,
        blockCount: nblocks,
        hashSeed: hashSeedWords(this.vol.sb.s_hash_seed),
        signed: !(this.vol.sb.s_flags & S_FLAGS.UNSIGNED_HASH),
        hasFiletype: (this.vol.sb.s_feature_incompat & INCOMPAT.FILETYPE) !== 0,
        largeDir: (this.vol.sb.s_feature_incompat & INCOMPAT.LARGEDIR) !== 0,
        csumSeed: this.vol.sb.hasMetadataCsum ? inodeSeed(this.vol.fsSeed, dir.ino, dir.generation) : null,
        dirIno: dir.ino,
        verify: this.vol.verify,
        inodesCount: this.vol.sb.s_inodes_count,
        parseLeaf: (lb, blk) => this.parseDirBlockCached(dir, blk, { kind: 'directory-block', dir: dir.ino, block: lb }),
        ...(ci ? { casefold: ci } : {}),
      });
      // A casefolded match reports the name as stored, not as asked for.
      return hit ? { name: ci ? hit.name.slice() : name, ino: hit.inode, fileType: hit.fileType } : null;
    }
    let hit: DirEntry | null = null;
    await this.scanDir(dir, (e) => {
      if (!(ci ? ci.matches(e.name) : bytesEqual(e.name, name))) return false;
      hit = { name: e.name.slice(), ino: e.ino, fileType: e.fileType };
      return true;
    });
    return hit;
  }

  /**
   * Resolve an absolute path (relative to the root) to an inode, following
   * symlinks in every component and (if followLast) in the last one; at most
   * 40 symlinks (ELOOP), like the kernel.
   */
  async resolve(path: string | Uint8Array, opts: { followLast?: boolean } = {}): Promise<Inode> {
    const enc = typeof path === 'string' ? new TextEncoder().encode(path) : path;
    let hops = 0;
    const walk = async (start: Inode, p: Uint8Array, followLast: boolean): Promise<Inode> => {
      let cur = p[0] === 0x2f ? await this.inodes.readInode(2) : start;
      const parts = splitPath(p);
      for (let i = 0; i < parts.length; i++) {
        const part = parts[i]!;
        if (cur.type !== 'dir') throw new Ext4Error('ENOTDIR', `${decodeName(part)}: a path component is not a directory`);
        const ent = await this.lookup(cur, part);
        if (!ent) throw new Ext4Error('ENOENT', `${decodeName(p)}: no such file or directory`);
        const next = await this.inodes.readInode(ent.ino);
        if (next.mode === 0 || next.type === null) throw new Ext4Error('EFSCORRUPTED', `directory entry ${decodeName(part)} points at inode ${ent.ino}, which is not in use`, { structure: `directory ${cur.ino}` });
        const isLast = i === parts.length - 1;
        if (next.type === 'symlink' && (!isLast || followLast)) {
          if (++hops > MAX_SYMLINK_HOPS) throw new Ext4Error('ELOOP', `${decodeName(p)}: too many levels of symbolic links`);
          const target = await this.files.readlink(next);
          cur = await walk(cur, target, true);
        } else cur = next;
      }
      return cur;
    };
    return walk(await this.inodes.readInode(2), enc[0] === 0x2f ? enc : concatBytes(new Uint8Array([0x2f]), enc), opts.followLast !== false);
  }
}

/** "." and ".." of a dx root block (they sit at fixed offsets 0 and 12). */
function dxRootDots(blk: Uint8Array): DirEntry[] {
  const dot = DirEntryLayout.decode(blk, 0);
  const dotdot = DirEntryLayout.decode(blk, 12);
  return [
    { name: new Uint8Array([0x2e]), ino: dot.inode, fileType: 2 },
    { name: new Uint8Array([0x2e, 0x2e]), ino: dotdot.inode, fileType: 2 },
  ];
}

function splitPath(p: Uint8Array): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let s = 0;
  for (let i = 0; i <= p.length; i++) {
    if (i === p.length || p[i] === 0x2f) {
      if (i > s) {
        const part = p.subarray(s, i);
        if (!(part.length === 1 && part[0] === 0x2e)) parts.push(part);
      }
      s = i + 1;
    }
  }
  return parts;
}
