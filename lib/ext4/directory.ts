/**
 * Directory entry blocks (ext4-format.md §8.1, §8.2, §11): the
 * `ext4_dir_entry_2` record, the metadata_csum tail, parsing with the
 * kernel's/e2fsck's rec_len rules, building blocks for writers, and inline
 * directories (entries in i_block after the parent inode, continued in the
 * system.data xattr).
 *
 * Pure functions over bytes: nothing here knows about the Filesystem object.
 * Every parser takes hostile bytes; every loop advances by at least 8 bytes,
 * and every failure is an Ext4Error naming the structure and where it is.
 */
import { defineStruct } from '../codec/layout.js';
import { crc32c } from './checksum.js';
import { Ext4Error, type Location } from '../errors.js';

/** ext4_dir_entry_2 header; the name (name_len bytes, no NUL) follows at offset 8. */
export const DirEntryLayout = defineStruct('ext4_dir_entry_2', 8, [
  ['inode', 0, 'u32'],
  ['rec_len', 4, 'u16'],
  ['name_len', 6, 'u8'],
  ['file_type', 7, 'u8'],
] as const);

/** ext4_dir_entry_tail: the fake entry in the last 12 bytes of a leaf block under METADATA_CSUM. */
export const DirEntryTailLayout = defineStruct('ext4_dir_entry_tail', 12, [
  ['det_reserved_zero1', 0, 'u32'],
  ['det_rec_len', 4, 'u16'],
  ['det_reserved_zero2', 6, 'u8'],
  ['det_reserved_ft', 7, 'u8'],
  ['det_checksum', 8, 'u32'],
] as const);

/** The entry header's fields, each reader resolved once (walkEntries). */
const ENTRY = {
  inode: DirEntryLayout.reader('inode'),
  recLen: DirEntryLayout.reader('rec_len'),
  nameLen: DirEntryLayout.reader('name_len'),
  fileType: DirEntryLayout.reader('file_type'),
};

export const DIRENT_HEADER_SIZE = 8;
export const DIR_TAIL_SIZE = 12;
export const FT_DIR_CSUM = 0xde;
export const EXT4_NAME_LEN = 255;
/** Bytes of i_block an inline directory begins with: the parent's inode number. */
export const INLINE_DOTDOT_SIZE = 4;
/** The start of an inline directory: the parent's inode number, in place of "." and "..". */
export const InlineDotDotLayout = defineStruct('inline dir parent', INLINE_DOTDOT_SIZE, [['parent', 0, 'u32']] as const);
/** Size of i_block. */
export const INLINE_IBLOCK_SIZE = 60;

export const FileType = {
  UNKNOWN: 0,
  REG_FILE: 1,
  DIR: 2,
  CHRDEV: 3,
  BLKDEV: 4,
  FIFO: 5,
  SOCK: 6,
  SYMLINK: 7,
} as const;

export interface DirEntry {
  inode: number;
  /** Decoded record length (64 KiB encoding already undone). */
  recLen: number;
  nameLen: number;
  /** file_type (0 when the filesystem lacks the FILETYPE feature). */
  fileType: number;
  name: Uint8Array;
  /** Byte offset of the entry in its block (or inline area). */
  offset: number;
}

export interface DirTail {
  offset: number;
  /** Stored det_checksum. */
  checksum: number;
}

export interface DirBlockOptions {
  blockSize: number;
  hasFiletype: boolean;
  /** METADATA_CSUM: seed = inodeSeed(fsSeed, dirIno, i_generation). null when the feature is off. */
  csum: { seed: number } | null;
  /** Names the block in errors, e.g. "directory 12 block 3 (physical 4711)". */
  where: Location;
  /** Verify the tail checksum (default true). With false, a missing tail is also accepted. */
  verify?: boolean;
  /** s_inodes_count: entries naming a larger inode are corruption. */
  inodesCount?: number;
}

export interface ParsedDirBlock {
  /** Every entry, including unused (inode 0) ones; the checksum tail is not an entry. */
  entries: DirEntry[];
  tail: DirTail | null;
}

/** Smallest rec_len that holds a name of this length. */
export function dirRecLen(nameLen: number): number {
  return (DIRENT_HEADER_SIZE + nameLen + 3) & ~3;
}

/** Decode an on-disk rec_len (ext4-format.md §8.1, the 64 KiB rule). */
export function decodeRecLen(raw: number, blockSize: number): number {
  if (blockSize < 65536) return raw;
  if (raw === 65535 || raw === 0) return blockSize;
  return (raw & 65532) | ((raw & 3) << 16);
}

/** Encode a rec_len for disk. */
export function encodeRecLen(len: number, blockSize: number): number {
  if (len < 0 || len > blockSize || len % 4 !== 0 || blockSize > 1 << 18) {
    throw new Ext4Error('EINVAL', `rec_len ${len} cannot be encoded for ${blockSize}-byte blocks`);
  }
  if (len < 65536) return len;
  if (len === blockSize) return blockSize === 65536 ? 65535 : 0;
  return (len & 65532) | ((len >>> 16) & 3);
}

function corrupt(message: string, where: Location, offset: number): Ext4Error {
  return new Ext4Error('EFSCORRUPTED', message, { structure: 'directory entry', location: { kind: 'part', of: where, part: 'offset', index: offset } });
}

/** Whether the 12 bytes at `off` are a well-formed checksum tail (ignoring the checksum value). */
function isTailAt(block: Uint8Array, off: number): boolean {
  if (off < 0 || off + DIR_TAIL_SIZE > block.length) return false;
  const t = DirEntryTailLayout.decode(block, off);
  return t.det_reserved_zero1 === 0 && t.det_rec_len === DIR_TAIL_SIZE && t.det_reserved_zero2 === 0 && t.det_reserved_ft === FT_DIR_CSUM;
}

interface WalkOptions {
  /** Block size used for the 64 KiB rec_len rule. */
  recLenBlockSize: number;
  hasFiletype: boolean;
  where: Location;
  inodesCount?: number;
  /** Offset at which a checksum tail is recognised (-1: never). */
  tailAt: number;
  /** Added to reported offsets (inline areas). */
  offsetBase?: number;
}

/**
 * What a walk hands to its visitor for each entry (unused ones included): the entry's offset in
 * the buffer, its fields, and where its name's bytes are (buf[offset + 8, offset + 8 + nameLen)).
 */
export type DirEntryVisitor = (offset: number, inode: number, recLen: number, nameLen: number, fileType: number) => void;

/**
 * Walk the entries tiling buf[start, end), validating each one, handing each to `visit` (no object
 * per entry: a listing of a large directory calls this for every block). Returns the offset where
 * the walk stopped: end, or `tailAt` when a checksum tail was found there.
 */
function walkEntries(buf: Uint8Array, start: number, end: number, o: WalkOptions, visit: DirEntryVisitor): number {
  const base = o.offsetBase ?? 0;
  let off = start;
  // Each iteration advances by rec_len >= 8, so at most (end-start)/8 iterations.
  while (off < end) {
    if (off === o.tailAt && isTailAt(buf, off)) return off;
    if (off + DIRENT_HEADER_SIZE > end) {
      throw corrupt(`${end - off} bytes left at the end, too few for a directory entry`, o.where, base + off);
    }
    // Field readers, not a decode: no object per entry (a listing walks every entry of every block).
    const inode = ENTRY.inode(buf, off);
    const recLen = decodeRecLen(ENTRY.recLen(buf, off), o.recLenBlockSize);
    const nameLen = ENTRY.nameLen(buf, off);
    if (recLen < DIRENT_HEADER_SIZE) throw corrupt(`rec_len ${recLen} is smaller than 8`, o.where, base + off);
    if (recLen % 4 !== 0) throw corrupt(`rec_len ${recLen} is not a multiple of 4`, o.where, base + off);
    if (nameLen + DIRENT_HEADER_SIZE > recLen) throw corrupt(`name_len ${nameLen} does not fit rec_len ${recLen}`, o.where, base + off);
    if (off + recLen > end) throw corrupt(`rec_len ${recLen} runs past the end of the block (${end - off} bytes left)`, o.where, base + off);
    if (inode !== 0 && nameLen === 0) throw corrupt(`entry for inode ${inode} has an empty name`, o.where, base + off);
    if (o.inodesCount !== undefined && inode > o.inodesCount) {
      throw corrupt(`inode ${inode} is beyond s_inodes_count ${o.inodesCount}`, o.where, base + off);
    }
    visit(off, inode, recLen, nameLen, o.hasFiletype ? ENTRY.fileType(buf, off) : 0);
    off += recLen;
  }
  return -1;
}

/** walkEntries collecting DirEntry objects (names copied out of the buffer). */
function walk(buf: Uint8Array, start: number, end: number, o: WalkOptions): { entries: DirEntry[]; tailOffset: number } {
  const entries: DirEntry[] = [];
  const base = o.offsetBase ?? 0;
  const tailOffset = walkEntries(buf, start, end, o, (off, inode, recLen, nameLen, fileType) => {
    entries.push({ inode, recLen, nameLen, fileType, name: buf.slice(off + DIRENT_HEADER_SIZE, off + DIRENT_HEADER_SIZE + nameLen), offset: base + off });
  });
  return { entries, tailOffset };
}

/** crc32c of a leaf block as stored in its tail: seed, bytes [0, blockSize − 12). */
export function dirBlockChecksum(block: Uint8Array, seed: number): number {
  return crc32c(seed, block, 0, block.length - DIR_TAIL_SIZE);
}

/**
 * Find the checksum tail the way e2fsprogs does: walk rec_lens from offset 0;
 * the block has a tail only if the walk lands exactly on blockSize − 12 and a
 * well-formed tail is there. Never throws; returns the tail offset or -1.
 */
export function findDirTail(block: Uint8Array, blockSize = block.length): number {
  if (blockSize < DIR_TAIL_SIZE || block.length < blockSize) return -1;
  const top = blockSize - DIR_TAIL_SIZE;
  let off = 0;
  while (off < top) {
    if (off + DIRENT_HEADER_SIZE > blockSize) return -1;
    const recLen = decodeRecLen(DirEntryLayout.get(block, 'rec_len', off), blockSize);
    if (recLen < 8 || recLen % 4 !== 0) return -1;
    off += recLen;
  }
  return off === top && isTailAt(block, top) ? top : -1;
}

/**
 * Validate a linear directory block or htree leaf: every entry (unused ones included, each handed
 * to `visit` in order, names left in the block) and, with `csum`, the checksum tail (checked after
 * the entries, so a block both malformed and mis-summed reports the malformed entry). Returns the
 * tail's offset, or -1 without one.
 */
export function scanDirBlock(block: Uint8Array, opts: DirBlockOptions, visit: DirEntryVisitor): number {
  const bs = opts.blockSize;
  if (block.length !== bs) {
    throw new Ext4Error('EINVAL', `directory block buffer is ${block.length} bytes, block size is ${bs}`, { structure: 'directory block', location: opts.where });
  }
  if (bs < 1024 || bs % 4 !== 0) throw new Ext4Error('EINVAL', `bad block size ${bs}`);
  const top = bs - DIR_TAIL_SIZE;
  const tailOffset = walkEntries(block, 0, bs, { recLenBlockSize: bs, hasFiletype: opts.hasFiletype, where: opts.where, inodesCount: opts.inodesCount, tailAt: top }, visit);
  if (opts.csum && opts.verify !== false) {
    if (tailOffset !== top) {
      throw new Ext4Error('EFSBADCRC', 'no checksum tail (entries do not stop at block size − 12)', { structure: 'directory block', location: opts.where });
    }
    const stored = DirEntryTailLayout.get(block, 'det_checksum', top);
    const computed = dirBlockChecksum(block, opts.csum.seed);
    if (computed !== stored) {
      throw new Ext4Error('EFSBADCRC', `directory block checksum mismatch (stored 0x${stored.toString(16)}, computed 0x${computed.toString(16)})`, {
        structure: 'directory block',
        location: opts.where,
      });
    }
  }
  return tailOffset === top ? top : -1;
}

/**
 * Parse a linear directory block or htree leaf. Validates every entry
 * (including unused ones) and, with `csum`, the checksum tail.
 */
export function readDirBlock(block: Uint8Array, opts: DirBlockOptions): ParsedDirBlock {
  const entries: DirEntry[] = [];
  const top = scanDirBlock(block, opts, (off, inode, recLen, nameLen, fileType) => {
    entries.push({ inode, recLen, nameLen, fileType, name: block.slice(off + DIRENT_HEADER_SIZE, off + DIRENT_HEADER_SIZE + nameLen), offset: off });
  });
  const tail = top >= 0 ? { offset: top, checksum: DirEntryTailLayout.get(block, 'det_checksum', top) } : null;
  return { entries, tail };
}

/** Every entry of a linear directory block or htree leaf (unused ones included, validated); see readDirBlock. */
export function parseDirBlock(block: Uint8Array, opts: DirBlockOptions): DirEntry[] {
  return readDirBlock(block, opts).entries;
}

/** The in-use entries (inode ≠ 0) of a parsed block or inline area. */
export function* liveEntries<E extends DirEntry>(entries: Iterable<E>): Generator<E> {
  for (const e of entries) if (e.inode !== 0) yield e;
}

/** Parse a block and yield its in-use entries. */
export function* iterateDirBlock(block: Uint8Array, opts: DirBlockOptions): Generator<DirEntry> {
  yield* liveEntries(parseDirBlock(block, opts));
}

/** Recompute and store the tail checksum of a leaf block. */
export function setDirBlockChecksum(block: Uint8Array, seed: number): void {
  const top = findDirTail(block);
  if (top < 0) throw new Ext4Error('EINVAL', 'directory block has no checksum tail to set');
  DirEntryTailLayout.encode(
    { det_reserved_zero1: 0, det_rec_len: DIR_TAIL_SIZE, det_reserved_zero2: 0, det_reserved_ft: FT_DIR_CSUM, det_checksum: dirBlockChecksum(block, seed) },
    block,
    top,
  );
}

/** Write an empty checksum tail (checksum 0) into the last 12 bytes. */
export function initDirTail(block: Uint8Array): void {
  DirEntryTailLayout.encode(
    { det_reserved_zero1: 0, det_rec_len: DIR_TAIL_SIZE, det_reserved_zero2: 0, det_reserved_ft: FT_DIR_CSUM, det_checksum: 0 },
    block,
    block.length - DIR_TAIL_SIZE,
  );
}

export interface NewDirEntry {
  inode: number;
  name: Uint8Array;
  fileType: number;
  /** Record length to use; default the minimum. The last entry always stretches to the end. */
  recLen?: number;
}

export interface MakeDirBlockOptions {
  blockSize: number;
  hasFiletype: boolean;
  /** With a seed the block gets a tail and its checksum; null for no METADATA_CSUM. */
  csum: { seed: number } | null;
}

/**
 * Build a directory block from entries, packed in order from offset 0, the
 * last one stretched to the end (to blockSize − 12 with a checksum tail).
 * An empty list gives an empty block (one unused entry spanning it).
 * Throws ENOSPC when the entries do not fit.
 */
export function makeDirBlock(entries: readonly NewDirEntry[], opts: MakeDirBlockOptions): Uint8Array {
  const bs = opts.blockSize;
  if (bs < 1024 || bs % 4 !== 0) throw new Ext4Error('EINVAL', `bad block size ${bs}`);
  const block = new Uint8Array(bs);
  const end = opts.csum ? bs - DIR_TAIL_SIZE : bs;
  const list: NewDirEntry[] = entries.length ? [...entries] : [{ inode: 0, name: new Uint8Array(0), fileType: 0 }];
  let off = 0;
  for (let i = 0; i < list.length; i++) {
    const e = list[i]!;
    if (e.name.length > EXT4_NAME_LEN) throw new Ext4Error('ENAMETOOLONG', `name of ${e.name.length} bytes`);
    if (e.inode !== 0 && e.name.length === 0) throw new Ext4Error('EINVAL', 'an in-use entry needs a name');
    if (!Number.isInteger(e.inode) || e.inode < 0 || e.inode > 0xffffffff) throw new Ext4Error('EINVAL', `bad inode number ${e.inode}`);
    const min = dirRecLen(e.name.length);
    let recLen = e.recLen ?? min;
    if (recLen < min || recLen % 4 !== 0) throw new Ext4Error('EINVAL', `rec_len ${recLen} cannot hold a ${e.name.length}-byte name`);
    if (i === list.length - 1) recLen = end - off;
    if (off + recLen > end || recLen < min) throw new Ext4Error('ENOSPC', `directory entries do not fit a ${bs}-byte block`);
    DirEntryLayout.encode(
      { inode: e.inode, rec_len: encodeRecLen(recLen, bs), name_len: e.name.length, file_type: opts.hasFiletype ? e.fileType & 0xff : 0 },
      block,
      off,
    );
    block.set(e.name, off + DIRENT_HEADER_SIZE);
    off += recLen;
  }
  if (opts.csum) {
    initDirTail(block);
    setDirBlockChecksum(block, opts.csum.seed);
  }
  return block;
}

export interface InlineDirEntry extends DirEntry {
  /** Where the entry lives: i_block, the system.data xattr value, or synthesized ('.' / '..'). */
  area: 'iblock' | 'xattr' | 'synthetic';
}

export interface InlineDirOptions {
  hasFiletype?: boolean;
  inodesCount?: number;
  /** When given, a '.' entry naming this inode is synthesized too. */
  dirIno?: number;
}

const DOT = new Uint8Array([0x2e]);
const DOTDOT = new Uint8Array([0x2e, 0x2e]);

/**
 * Entries of an inline-data directory: i_block holds the parent inode (4
 * bytes) and then entries tiling bytes 4..60; the system.data xattr value,
 * when present, holds more entries tiling it completely. The parent field
 * is returned as a synthesized '..' entry (offset 0, recLen 4). Offsets are
 * relative to i_block or to the xattr value, per `area`.
 */
export function parseInlineDir(iblock60: Uint8Array, xattrData: Uint8Array | null, where: Location, opts: InlineDirOptions = {}): InlineDirEntry[] {
  const area = (a: 'i_block' | 'system.data'): Location => (where.kind === 'inline-data' ? { ...where, area: a } : where);
  const hasFiletype = opts.hasFiletype ?? true;
  if (iblock60.length < INLINE_IBLOCK_SIZE) {
    throw new Ext4Error('EFSCORRUPTED', `i_block area is ${iblock60.length} bytes, expected ${INLINE_IBLOCK_SIZE}`, { structure: 'inline directory', location: where });
  }
  const parent = InlineDotDotLayout.decode(iblock60).parent;
  if (parent === 0 || (opts.inodesCount !== undefined && parent > opts.inodesCount)) {
    throw new Ext4Error('EFSCORRUPTED', `parent inode ${parent} is invalid`, { structure: 'inline directory', location: { kind: 'part', of: area('i_block'), part: 'offset', index: 0 } });
  }
  const out: InlineDirEntry[] = [];
  if (opts.dirIno !== undefined) {
    out.push({ inode: opts.dirIno, recLen: 0, nameLen: 1, fileType: hasFiletype ? FileType.DIR : 0, name: DOT.slice(), offset: 0, area: 'synthetic' });
  }
  out.push({ inode: parent, recLen: INLINE_DOTDOT_SIZE, nameLen: 2, fileType: hasFiletype ? FileType.DIR : 0, name: DOTDOT.slice(), offset: 0, area: 'synthetic' });
  const common = { recLenBlockSize: 4096, hasFiletype, inodesCount: opts.inodesCount, tailAt: -1 };
  const inI = walk(iblock60, INLINE_DOTDOT_SIZE, INLINE_IBLOCK_SIZE, { ...common, where: area('i_block') });
  for (const e of inI.entries) out.push({ ...e, area: 'iblock' });
  if (xattrData && xattrData.length > 0) {
    const inX = walk(xattrData, 0, xattrData.length, { ...common, where: area('system.data') });
    for (const e of inX.entries) out.push({ ...e, area: 'xattr' });
  }
  return out;
}
