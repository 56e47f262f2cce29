/**
 * Directories: entries in on-disk order (linear blocks, htree leaves, inline data), name lookup
 * (htree hash lookup when indexed, casefold-aware), and path resolution with symlinks.
 */
import { Buffer } from 'buffer'; // Node's built-in under Node, the npm package in a browser bundle
import { Ext4Error, type Location } from '../errors.js';
import { INCOMPAT, COMPAT, S_FLAGS } from './superblock.js';
import { inodeSeed } from './checksum.js';
import { INODE_FLAGS, hasInlineData, type FileType, type Inode } from './inode.js';
import { findExtent } from './extents.js';
import { parseInodeXattrs } from './xattr.js';
import { parseDirBlock, parseInlineDir, scanDirBlock, DirEntryLayout, DIRENT_HEADER_SIZE, type DirBlockOptions, type DirEntry as RawDirEntry } from './directory.js';
import { htreeLookup, classifyDirBlock } from './htree.js';
import { hashSeedWords } from './hash-seed.js';
import { ciLookupName } from './casefold.js';
import { bytesEqual, concatBytes, decodeName } from './bytes.js';
import type { FileReader } from './file-reader.js';
import type { FsContext } from './fs-context.js';
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

/** Largest read of directory blocks readEntryTable makes (the CLI reads up to 256 KiB synchronously). */
const ENTRY_TABLE_READ = 256 * 1024;

/** A directory's live entries as parallel arrays, in on-disk order (readEntryTable). */
export interface EntryTable {
  readonly length: number;
  readonly ino: ArrayLike<number>;
  /** dirent file_type (0 if the fs lacks the filetype feature). */
  readonly fileType: ArrayLike<number>;
  /** The names decoded as UTF-8 (decodeName: invalid bytes become U+FFFD), made at the first call. */
  names(): readonly string[];
  /** Every name is ASCII, so comparing the strings (UTF-16 units) is comparing the bytes. */
  readonly ascii: boolean;
  /** The stored bytes of name i (a view into the directory's blocks: read-only). */
  nameBytes(i: number): Uint8Array;
  /**
   * The same without a view per call: name i is chunks[chunk[i]][nameStart[i], nameStart[i] +
   * nameLen[i]) (read-only; a directory's entries share a few chunks, in order).
   */
  readonly chunks: readonly Uint8Array[];
  readonly chunk: ArrayLike<number>;
  readonly nameStart: ArrayLike<number>;
  readonly nameLen: ArrayLike<number>;
}

/**
 * Builds an EntryTable in typed arrays (no JS array growing by a push per field and entry, no
 * string per name until names() asks: a listing written as bytes never needs them). Names stay
 * in the buffers the blocks were read into (chunks).
 */
class EntryTableBuilder {
  private n = 0;
  private ino: Uint32Array;
  private fileType: Uint8Array;
  private chunkOf: Int32Array;
  private start: Int32Array;
  private len: Uint8Array;
  private readonly chunks: Uint8Array[] = [];
  private cur = -1;
  private ascii = true;

  /** `expect`: about how many entries will come (the arrays double past it). */
  constructor(private readonly dots: boolean, expect: number) {
    const cap = Math.max(16, expect);
    this.ino = new Uint32Array(cap);
    this.fileType = new Uint8Array(cap);
    this.chunkOf = new Int32Array(cap);
    this.start = new Int32Array(cap);
    this.len = new Uint8Array(cap);
  }

  /** The buffer later add() offsets are in. */
  useChunk(buf: Uint8Array): void {
    this.cur = this.chunks.push(buf) - 1;
  }

  /** An entry whose name is buf[start, start + len) of the current chunk. */
  add(ino: number, fileType: number, buf: Uint8Array, start: number, len: number): void {
    if (len <= 2 && !this.dots && isDotOrDotDot(buf, start, len)) return;
    if (this.ascii && !isAscii(buf, start, len)) this.ascii = false;
    const n = this.n;
    if (n === this.ino.length) this.grow();
    this.ino[n] = ino;
    this.fileType[n] = fileType;
    this.chunkOf[n] = this.cur;
    this.start[n] = start;
    this.len[n] = len;
    this.n = n + 1;
  }

  /** An entry whose name bytes are not in a directory block (copied into a chunk of its own). */
  addCopy(ino: number, fileType: number, nameBytes: Uint8Array): void {
    const b = nameBytes.slice();
    const cur = this.cur;
    this.useChunk(b);
    this.add(ino, fileType, b, 0, b.length);
    this.cur = cur; // later entries are in the chunk they were in
  }

  private grow(): void {
    const cap = 2 * this.ino.length;
    const more = <T extends Uint32Array | Uint8Array | Int32Array>(a: T, b: T): T => (b.set(a), b);
    this.ino = more(this.ino, new Uint32Array(cap));
    this.fileType = more(this.fileType, new Uint8Array(cap));
    this.chunkOf = more(this.chunkOf, new Int32Array(cap));
    this.start = more(this.start, new Int32Array(cap));
    this.len = more(this.len, new Uint8Array(cap));
  }

  done(): EntryTable {
    const n = this.n;
    const { chunks, ascii } = this;
    const ino = this.ino.subarray(0, n), fileType = this.fileType.subarray(0, n), chunk = this.chunkOf.subarray(0, n), start = this.start.subarray(0, n), len = this.len.subarray(0, n);
    let names: string[] | undefined;
    const nameBytes = (i: number) => chunks[chunk[i]!]!.subarray(start[i]!, start[i]! + len[i]!);
    return {
      length: n,
      ino,
      fileType,
      ascii,
      chunks,
      chunk,
      nameStart: start,
      nameLen: len,
      nameBytes,
      names: () => (names ??= makeNames(n, ascii, chunks, chunk, start, len, nameBytes)),
    };
  }
}

/**
 * The names as strings. ASCII ones are cut out of one string per chunk (its bytes as Latin-1
 * characters, identical to UTF-8 for ASCII) instead of one UTF-8 decoder call per name; others go
 * through decodeName.
 */
function makeNames(n: number, ascii: boolean, chunks: readonly Uint8Array[], chunk: Int32Array, start: Int32Array, len: Uint8Array, nameBytes: (i: number) => Uint8Array): string[] {
  const out = new Array<string>(n);
  let text = '', at = -1;
  for (let i = 0; i < n; i++) {
    const c = chunk[i]!, s = start[i]!, l = len[i]!;
    const b = chunks[c]!;
    if (ascii || isAscii(b, s, l)) {
      if (c !== at) {
        text = latin1(b);
        at = c;
      }
      out[i] = text.slice(s, s + l);
    } else out[i] = decodeName(nameBytes(i));
  }
  return out;
}

function isAscii(b: Uint8Array, start: number, len: number): boolean {
  for (let i = start; i < start + len; i++) if (b[i]! >= 0x80) return false;
  return true;
}

function isDotOrDotDot(b: Uint8Array, start: number, len: number): boolean {
  return (len === 1 && b[start] === 0x2e) || (len === 2 && b[start] === 0x2e && b[start + 1] === 0x2e);
}

/**
 * The bytes as one character each (only the ASCII ones are used). Buffer's latin1 (native, one
 * call per chunk); TextDecoder('latin1') (WHATWG windows-1252, through ICU) cost 60 µs per 1 KiB
 * block in a fresh process, String.fromCharCode.apply over a typed array walks it element by
 * element. Its length is checked, so a platform whose decoder does not map byte for byte falls back.
 */
function latin1(b: Uint8Array): string {
  const s = Buffer.from(b.buffer, b.byteOffset, b.length).toString('latin1');
  if (s.length === b.length) return s;
  const PIECE = 8192;
  let t = '';
  for (let i = 0; i < b.length; i += PIECE) t += String.fromCharCode.apply(null, b.subarray(i, i + PIECE) as unknown as number[]);
  return t;
}

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

/** What readEntryTable needs (Filesystem provides it). */
export type EntryTableSource = Pick<FsContext, 'sb' | 'blockSize' | 'fsSeed' | 'verify' | 'fileMap' | 'readDataBlocks'> & {
  /** Block n as the filesystem currently sees it (checked against the filesystem's size). */
  readBlock(n: number): Promise<Uint8Array>;
  /** Every live entry (inline directories). */
  readdirRaw(dir: Inode): Promise<DirEntry[]>;
};

/**
 * The live entries of a directory in on-disk order (DirReader.scanDir's order and checks), as
 * parallel arrays: the directory's blocks are read in a few large reads (each extent in runs of at
 * most ENTRY_TABLE_READ bytes) rather than one cached read per block, and no object is made per
 * entry (a listing of 10,000 names makes 10,000 strings). "." and ".." are left out unless `dots`.
 */
export async function readEntryTable(src: EntryTableSource, dir: Inode, opts: { dots?: boolean } = {}): Promise<EntryTable> {
  if (dir.type !== 'dir') throw new Ext4Error('ENOTDIR', `inode ${dir.ino} is not a directory`);
  if (dir.flags & INODE_FLAGS.ENCRYPT) throw new Ext4Error('EOPNOTSUPP', `directory ${dir.ino} is encrypted`);
  const map = await src.fileMap(dir);
  if (map.kind === 'inline') {
    const t = new EntryTableBuilder(opts.dots === true, 16);
    for (const e of await src.readdirRaw(dir)) t.addCopy(e.ino, e.fileType, e.name);
    return t.done();
  }
  const sb = src.sb;
  const bs = src.blockSize;
  if (dir.size % bs !== 0) throw new Ext4Error('EFSCORRUPTED', `directory size ${dir.size} is not a multiple of the block size`, { structure: `inode ${dir.ino}` });
  const nblocks = dir.size / bs;
  const indexed = (dir.flags & INODE_FLAGS.INDEX) !== 0;
  // About a 24-byte entry per 24 bytes of block (8-byte header, names of ~13 bytes, padding).
  const t = new EntryTableBuilder(opts.dots === true, Math.min(1 << 20, Math.ceil((nblocks * bs) / 24)));
  const blockOpts: DirBlockOptions = {
    blockSize: bs,
    hasFiletype: (sb.s_feature_incompat & INCOMPAT.FILETYPE) !== 0,
    csum: sb.hasMetadataCsum ? { seed: inodeSeed(src.fsSeed, dir.ino, dir.generation) } : null,
    verify: src.verify,
    where: { kind: 'inode', ino: dir.ino },
    inodesCount: sb.s_inodes_count,
  };
  const perRead = Math.max(1, Math.floor(ENTRY_TABLE_READ / bs));
  let data: Uint8Array = new Uint8Array(0);
  /** Where the block being scanned starts in `data`. */
  let at = 0;
  const visit = (off: number, inode: number, _recLen: number, nameLen: number, fileType: number) => {
    if (inode !== 0) t.add(inode, fileType, data, at + off + DIRENT_HEADER_SIZE, nameLen);
  };
  for (const e of map.extents) {
    if (e.logical >= nblocks) break;
    if (e.unwritten) continue;
    const n = Math.min(e.length, nblocks - e.logical);
    // An extent reaching past the filesystem is read block by block: readBlock names the first bad block.
    const inside = e.physical >= 0 && e.physical + n <= sb.blocksCount;
    for (let r = 0; r < n; r += inside ? perRead : 1) {
      const count = inside ? Math.min(perRead, n - r) : 1;
      data = inside ? await src.readDataBlocks(e.physical + r, count) : await src.readBlock(e.physical + r);
      t.useChunk(data);
      for (let i = 0; i < count; i++) {
        at = i * bs;
        const blk = data.subarray(at, at + bs);
        if (indexed) {
          const kind = classifyDirBlock(blk, bs);
          if (kind === 'dx-node') continue;
          if (kind === 'dx-root') {
            for (const d of dxRootDots(blk)) t.addCopy(d.ino, d.fileType, d.name);
            continue;
          }
        }
        blockOpts.where = { kind: 'directory-block', dir: dir.ino, block: e.logical + r + i, physical: e.physical + r + i };
        scanDirBlock(blk, blockOpts, visit);
      }
    }
  }
  return t.done();
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

/** A path's components, without empty ones and '.' (DirReader.resolve; DiskReader.resolve). */
export function splitPath(p: Uint8Array): Uint8Array[] {
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
