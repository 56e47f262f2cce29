/**
 * Hash-tree directory index (ext4-format.md §8.3, §11): dx root and dx node
 * blocks, their checksum tail, and a hash lookup that descends the index the
 * way the kernel's dx_probe / ext4_htree_next_block do.
 *
 * Block kinds are told apart as e2fsprogs does (csum.c): a block is a leaf if
 * a rec_len walk from offset 0 lands exactly on blockSize − 12 where a
 * well-formed dirent tail sits; otherwise it is an index block if its first
 * entry spans the block with name_len 0 (node, count at 8) or is the
 * 12-byte '.' followed by a '..' spanning the rest with a dx_root_info whose
 * reserved_zero is 0 and info_length 8 (root, count at 0x20). The last 12
 * bytes are never pattern-matched on their own.
 */
import { defineStruct } from '../codec/layout.js';
import { crc32c, ZERO4 } from './checksum.js';
import { Ext4Error, type Location } from '../errors.js';
import { dirHash, DX_HASH_LEGACY, DX_HASH_HALF_MD4, DX_HASH_TEA, DX_HASH_SIPHASH } from './dirhash.js';
import { DirEntryLayout, decodeRecLen, encodeRecLen, findDirTail, readDirBlock, EXT4_NAME_LEN, type DirEntry } from './directory.js';
import type { CiName } from './casefold.js';

/** dx_root_info, at offset 0x18 of block 0 (after the '.' and '..' entries). */
export const DxRootInfoLayout = defineStruct('dx_root_info', 8, [
  ['reserved_zero', 0, 'u32'],
  ['hash_version', 4, 'u8'],
  ['info_length', 5, 'u8'],
  ['indirect_levels', 6, 'u8'],
  ['unused_flags', 7, 'u8'],
] as const);

/** dx_countlimit: overlays the hash of slot 0. */
export const DxCountLimitLayout = defineStruct('dx_countlimit', 4, [
  ['limit', 0, 'u16'],
  ['count', 2, 'u16'],
] as const);

/** dx_entry: one index slot. */
export const DxEntryLayout = defineStruct('dx_entry', 8, [
  ['hash', 0, 'u32'],
  ['block', 4, 'u32'],
] as const);

/** dx_tail: after the `limit` slots, METADATA_CSUM only. */
export const DxTailLayout = defineStruct('dx_tail', 8, [
  ['dt_reserved', 0, 'u32'],
  ['dt_checksum', 4, 'u32'],
] as const);

export const DX_ROOT_INFO_OFFSET = 0x18;
export const DX_ROOT_COUNT_OFFSET = 0x20;
export const DX_NODE_COUNT_OFFSET = 0x08;
export const DX_BLOCK_MASK = 0x0fffffff;
export const DX_ENTRY_SIZE = 8;
export const DX_TAIL_SIZE = 8;

/** Slots in a dx root block (counting slot 0). */
export function dxRootLimit(blockSize: number, metadataCsum: boolean): number {
  return Math.floor((blockSize - DX_ROOT_COUNT_OFFSET - (metadataCsum ? DX_TAIL_SIZE : 0)) / DX_ENTRY_SIZE);
}

/** Slots in a dx interior node (counting slot 0). */
export function dxNodeLimit(blockSize: number, metadataCsum: boolean): number {
  return Math.floor((blockSize - DX_NODE_COUNT_OFFSET - (metadataCsum ? DX_TAIL_SIZE : 0)) / DX_ENTRY_SIZE);
}

/** Deepest indirect_levels value accepted: 1 normally (2 index levels), 2 with LARGEDIR. */
export function maxIndirectLevels(largeDir: boolean): number {
  return largeDir ? 2 : 1;
}

/**
 * Where the dx_countlimit of an index block is (0x20 root, 8 node), or -1 if
 * the block does not have the shape of one (e2fsprogs __get_dx_countlimit,
 * including its "limit/count fit the block" sanity bound). Never throws.
 */
export function dxCountOffset(block: Uint8Array, blockSize = block.length): number {
  if (blockSize < 1024 || block.length < blockSize) return -1;
  // A dx node is one empty entry spanning the block; a dx root is "." (12 bytes) then ".." spanning the rest.
  const first = DirEntryLayout.decode(block, 0);
  const rec0 = decodeRecLen(first.rec_len, blockSize);
  let off: number;
  if (rec0 === blockSize && first.name_len === 0) off = DX_NODE_COUNT_OFFSET;
  else if (rec0 === 12) {
    if (decodeRecLen(DirEntryLayout.get(block, 'rec_len', 12), blockSize) !== blockSize - 12) return -1;
    const info = DxRootInfoLayout.decode(block, DX_ROOT_INFO_OFFSET);
    if (info.reserved_zero !== 0 || info.info_length !== DxRootInfoLayout.size) return -1;
    off = DX_ROOT_COUNT_OFFSET;
  } else return -1;
  const cl = DxCountLimitLayout.decode(block, off);
  const maxSane = Math.floor((blockSize - off) / DX_ENTRY_SIZE);
  if (cl.limit > maxSane || cl.count > maxSane) return -1;
  return off;
}

export type DirBlockKind = 'leaf' | 'dx-root' | 'dx-node' | 'unknown';

/**
 * Classify a directory block of a METADATA_CSUM filesystem in e2fsprogs'
 * order (dirent tail first, then index shape). Without checksum tails an
 * empty leaf and a dx node look alike; callers then know the kind from the
 * block's position in the tree.
 */
export function classifyDirBlock(block: Uint8Array, blockSize = block.length): DirBlockKind {
  if (findDirTail(block, blockSize) >= 0) return 'leaf';
  const off = dxCountOffset(block, blockSize);
  if (off === DX_ROOT_COUNT_OFFSET) return 'dx-root';
  if (off === DX_NODE_COUNT_OFFSET) return 'dx-node';
  return 'unknown';
}

/**
 * dx tail checksum: crc32c(seed, block[0 .. countOffset + 8*count)), then the
 * 4 dt_reserved bytes, then 4 zero bytes in place of dt_checksum.
 */
export function dxChecksum(block: Uint8Array, countOffset: number, count: number, limit: number, seed: number): number {
  const tailOff = countOffset + limit * DX_ENTRY_SIZE;
  let c = crc32c(seed, block, 0, countOffset + count * DX_ENTRY_SIZE);
  c = crc32c(c, block, tailOff, tailOff + 4);
  return crc32c(c, ZERO4);
}


/** Raw dx_entry records (hash → logical block) for dxIndexImage. */
export function dxSlots(entries: readonly { hash: number; block: number }[]): Uint8Array {
  const b = new Uint8Array(entries.length * DX_ENTRY_SIZE);
  for (let i = 0; i < entries.length; i++) DxEntryLayout.encode(entries[i]!, b, i * DX_ENTRY_SIZE);
  return b;
}

/**
 * A new dx index block holding `slots` (raw dx_entry records; slot 0's hash is overlaid by
 * count/limit): a node — the fake dirent spanning the block (inode 0, name_len 0) that makes it an
 * empty leaf to old readers — or, given `root`, the root: block 0's '.' and '..' (the first 24
 * bytes of `root.head`, '..' spanning the block) and the root info. With metadata_csum the dx
 * tail stays zero until setDxChecksum.
 */
export function dxIndexImage(blockSize: number, metadataCsum: boolean, slots: Uint8Array, root?: { head: Uint8Array; hashVersion: number; levels: number }): Uint8Array {
  const b = new Uint8Array(blockSize);
  const countOffset = root ? DX_ROOT_COUNT_OFFSET : DX_NODE_COUNT_OFFSET;
  const limit = root ? dxRootLimit(blockSize, metadataCsum) : dxNodeLimit(blockSize, metadataCsum);
  if (slots.length > limit * DX_ENTRY_SIZE || slots.length % DX_ENTRY_SIZE !== 0)
    throw new Ext4Error('EINVAL', `${slots.length / DX_ENTRY_SIZE} dx entries for a block that holds ${limit}`);
  if (root) {
    b.set(root.head.subarray(0, 24));
    DirEntryLayout.set(b, 'rec_len', encodeRecLen(blockSize - 12, blockSize), 12);
    DxRootInfoLayout.encode({ reserved_zero: 0, hash_version: root.hashVersion, info_length: DxRootInfoLayout.size, indirect_levels: root.levels, unused_flags: 0 }, b, DX_ROOT_INFO_OFFSET);
  } else DirEntryLayout.encode({ inode: 0, rec_len: encodeRecLen(blockSize, blockSize), name_len: 0, file_type: 0 }, b, 0);
  b.set(slots, countOffset);
  DxCountLimitLayout.encode({ limit, count: slots.length / DX_ENTRY_SIZE }, b, countOffset);
  return b;
}
/** Recompute and store the dx tail checksum of a root or node block. */
export function setDxChecksum(block: Uint8Array, seed: number, blockSize = block.length): void {
  const off = dxCountOffset(block, blockSize);
  if (off < 0) throw new Ext4Error('EINVAL', 'block is not a dx root or node');
  const { limit, count } = DxCountLimitLayout.decode(block, off);
  const tailOff = off + limit * DX_ENTRY_SIZE;
  if (tailOff + DX_TAIL_SIZE > blockSize || count > limit) throw new Ext4Error('EINVAL', `no room for a dx tail (limit ${limit}, count ${count})`);
  const dt = DxTailLayout.decode(block, tailOff);
  DxTailLayout.encode({ dt_reserved: dt.dt_reserved, dt_checksum: dxChecksum(block, off, count, limit, seed) }, block, tailOff);
}

export interface DxSlot {
  /** Lower bound of the slot's hash range (0 for slot 0); bit 0 = collision continuation. */
  hash: number;
  /** Logical block in the directory, masked with 0x0FFFFFFF. */
  block: number;
}

export interface DxIndexBlock {
  kind: 'root' | 'node';
  countOffset: number;
  limit: number;
  count: number;
  slots: DxSlot[];
  /** Stored dx tail, when METADATA_CSUM. */
  tail: { reserved: number; checksum: number } | null;
}

export interface DxRoot extends DxIndexBlock {
  kind: 'root';
  hashVersion: number;
  indirectLevels: number;
  unusedFlags: number;
  /** The '.' and '..' entries. */
  dot: DirEntry;
  dotdot: DirEntry;
}

export interface DxParseOptions {
  blockSize: number;
  /** METADATA_CSUM: seed = inodeSeed(fsSeed, dirIno, i_generation); null without the feature. */
  csum: { seed: number } | null;
  /** Verify the dx tail checksum (default true). */
  verify?: boolean;
  /** LARGEDIR feature (allows indirect_levels 2). */
  largeDir?: boolean;
  /** Names the block in errors, e.g. "directory 12 block 0 (physical 4711)". */
  where: Location;
}

function corrupt(structure: string, where: Location, message: string): Ext4Error {
  return new Ext4Error('EFSCORRUPTED', message, { structure, location: where });
}

function readIndex(block: Uint8Array, countOffset: number, expectedLimit: number, structure: string, opts: DxParseOptions): Omit<DxIndexBlock, 'kind'> {
  const bs = opts.blockSize;
  const { limit, count } = DxCountLimitLayout.decode(block, countOffset);
  const tailOff = countOffset + limit * DX_ENTRY_SIZE;
  let tail: DxIndexBlock['tail'] = null;
  if (opts.csum) {
    if (tailOff + DX_TAIL_SIZE > bs) throw corrupt(structure, opts.where, `limit ${limit} leaves no room for the dx tail`);
    if (count > limit) throw corrupt(structure, opts.where, `count ${count} exceeds limit ${limit}`);
    const t = DxTailLayout.decode(block, tailOff);
    tail = { reserved: t.dt_reserved, checksum: t.dt_checksum };
    if (opts.verify !== false) {
      const computed = dxChecksum(block, countOffset, count, limit, opts.csum.seed);
      if (computed !== t.dt_checksum) {
        throw new Ext4Error('EFSBADCRC', `dx checksum mismatch (stored 0x${t.dt_checksum.toString(16)}, computed 0x${computed.toString(16)})`, {
          structure,
          location: opts.where,
        });
      }
    }
  }
  if (limit !== expectedLimit) throw corrupt(structure, opts.where, `limit ${limit}, expected ${expectedLimit}`);
  if (count === 0 || count > limit) throw corrupt(structure, opts.where, `count ${count} is not within 1..${limit}`);
  const slots: DxSlot[] = [];
  for (let i = 0; i < count; i++) {
    const e = DxEntryLayout.decode(block, countOffset + i * DX_ENTRY_SIZE);
    slots.push({ hash: i === 0 ? 0 : e.hash, block: e.block & DX_BLOCK_MASK });
  }
  for (let i = 2; i < count; i++) {
    if (slots[i]!.hash < slots[i - 1]!.hash) {
      throw corrupt(structure, opts.where, `slot ${i} hash 0x${slots[i]!.hash.toString(16)} is below slot ${i - 1} hash 0x${slots[i - 1]!.hash.toString(16)}`);
    }
  }
  return { countOffset, limit, count, slots, tail };
}

function entryAt(block: Uint8Array, off: number, bs: number): DirEntry {
  const h = DirEntryLayout.decode(block, off);
  const recLen = decodeRecLen(h.rec_len, bs);
  const nameLen = Math.min(h.name_len, 4);
  return { inode: h.inode, recLen, nameLen: h.name_len, fileType: h.file_type, name: block.slice(off + 8, off + 8 + nameLen), offset: off };
}

/**
 * The slot of an index block whose range holds `hash`: the last slot whose hash is ≤ it (slot 0
 * covers everything below slot 1's hash), by binary search as dx_probe does.
 */
export function dxSlotIndex(index: DxIndexBlock, hash: number): number {
  let p = 1, q = index.count - 1;
  while (p <= q) {
    const m = (p + q) >>> 1;
    if (index.slots[m]!.hash > hash) q = m - 1;
    else p = m + 1;
  }
  return p - 1;
}

/** Parse and validate block 0 of an indexed directory. */
export function parseDxRoot(block: Uint8Array, opts: DxParseOptions): DxRoot {
  const bs = opts.blockSize;
  const S = 'dx root';
  if (block.length !== bs || bs < 1024) throw new Ext4Error('EINVAL', `dx root buffer is ${block.length} bytes, block size ${bs}`, { structure: S, location: opts.where });
  if (dxCountOffset(block, bs) !== DX_ROOT_COUNT_OFFSET) {
    throw corrupt(S, opts.where, "block 0 is not a dx root ('.' 12 bytes, '..' to the end, dx_root_info reserved_zero 0 and info_length 8)");
  }
  const dot = entryAt(block, 0, bs);
  const dotdot = entryAt(block, 12, bs);
  if (dot.nameLen !== 1 || dot.name[0] !== 0x2e) throw corrupt(S, { kind: 'part', of: opts.where, part: 'offset', index: 0 }, "first entry is not '.'");
  if (dotdot.nameLen !== 2 || dotdot.name[0] !== 0x2e || dotdot.name[1] !== 0x2e) throw corrupt(S, { kind: 'part', of: opts.where, part: 'offset', index: 12 }, "second entry is not '..'");
  const info = DxRootInfoLayout.decode(block, DX_ROOT_INFO_OFFSET);
  const idx = readIndex(block, DX_ROOT_COUNT_OFFSET, dxRootLimit(bs, !!opts.csum), S, opts);
  const hv = info.hash_version;
  if (hv === DX_HASH_SIPHASH) throw new Ext4Error('EOPNOTSUPP', 'siphash-indexed (casefolded+encrypted) directory', { structure: S, location: opts.where });
  if (hv !== DX_HASH_LEGACY && hv !== DX_HASH_HALF_MD4 && hv !== DX_HASH_TEA) throw corrupt(S, opts.where, `unknown hash_version ${hv}`);
  if (info.unused_flags & 1) throw corrupt(S, opts.where, `unimplemented hash flags 0x${info.unused_flags.toString(16)}`);
  const maxLevels = maxIndirectLevels(!!opts.largeDir);
  if (info.indirect_levels > maxLevels) {
    throw corrupt(S, opts.where, `indirect_levels ${info.indirect_levels} exceeds ${maxLevels}${opts.largeDir ? '' : ' (without LARGEDIR)'}`);
  }
  return { kind: 'root', ...idx, hashVersion: hv, indirectLevels: info.indirect_levels, unusedFlags: info.unused_flags, dot, dotdot };
}

/** Parse and validate an interior dx node. */
export function parseDxNode(block: Uint8Array, opts: DxParseOptions): DxIndexBlock {
  const bs = opts.blockSize;
  const S = 'dx node';
  if (block.length !== bs || bs < 1024) throw new Ext4Error('EINVAL', `dx node buffer is ${block.length} bytes, block size ${bs}`, { structure: S, location: opts.where });
  const h = DirEntryLayout.decode(block, 0);
  if (decodeRecLen(h.rec_len, bs) !== bs || h.name_len !== 0) {
    throw corrupt(S, opts.where, `not a dx node (fake entry rec_len ${decodeRecLen(h.rec_len, bs)}, name_len ${h.name_len})`);
  }
  return { kind: 'node', ...readIndex(block, DX_NODE_COUNT_OFFSET, dxNodeLimit(bs, !!opts.csum), S, opts) };
}

export interface HtreeContext {
  /** Read logical block `logical` of the directory (blockSize bytes). */
  readBlock(logical: number): Promise<Uint8Array>;
  blockSize: number;
  /** s_hash_seed (4 words); all-zero/null means the default seed. */
  hashSeed: Uint32Array | readonly number[] | null;
  /** Signed-char hashing (s_flags has no UNSIGNED_HASH bit). */
  signed: boolean;
  hasFiletype: boolean;
  largeDir: boolean;
  /** inodeSeed(fsSeed, dirIno, generation) under METADATA_CSUM, else null. */
  csumSeed: number | null;
  dirIno: number;
  /** Verify checksums (default true). */
  verify?: boolean;
  /** Blocks in the directory (i_size / blockSize); index block pointers must be below it. */
  blockCount: number;
  /** s_inodes_count, to reject entries naming impossible inodes. */
  inodesCount?: number;
  /** Describes a logical block for error messages, e.g. "block 3 (physical 4711)". */
  physicalBlock?(logical: number): number;
  /**
   * Parse and verify a leaf block (every entry, unused ones included), e.g. memoised by a caller
   * whose blocks are immutable; default: readDirBlock with this context's options.
   */
  parseLeaf?(logical: number, block: Uint8Array): readonly DirEntry[];
  /**
   * Casefolded directory (lib/ext4/casefold.ts ciLookupName): the hash is taken
   * of `hashName` (the folded name) and entries match by `matches`; default:
   * the name's own bytes, compared byte for byte.
   */
  casefold?: CiName;
}

export interface HtreeHit extends DirEntry {
  /** Logical directory block holding the entry. */
  block: number;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

interface Frame {
  index: DxIndexBlock;
  at: number;
}

/**
 * Look `name` up in an indexed directory by hash: read the root, descend
 * indirect_levels + 1 index levels picking the last slot whose hash ≤ the
 * name's hash, scan that leaf, and continue into following leaves while the
 * next slot's hash (bit 0 aside) equals the name's hash. '.' and '..' are
 * answered from the root block. Returns the entry or null.
 */
export async function htreeLookup(name: Uint8Array, ctx: HtreeContext): Promise<HtreeHit | null> {
  if (name.length === 0) return null;
  if (name.length > EXT4_NAME_LEN) throw new Ext4Error('ENAMETOOLONG', `name of ${name.length} bytes`);
  const bs = ctx.blockSize;
  const csum = ctx.csumSeed === null ? null : { seed: ctx.csumSeed };
  const verify = ctx.verify !== false;
  const where = (logical: number): Location => ({ kind: 'directory-block', dir: ctx.dirIno, block: logical, ...(ctx.physicalBlock ? { physical: ctx.physicalBlock(logical) } : {}) });
  const read = async (logical: number): Promise<Uint8Array> => {
    const b = await ctx.readBlock(logical);
    if (!(b instanceof Uint8Array) || b.length !== bs) {
      throw new Ext4Error('EIO', `readBlock returned ${b?.length ?? 'no'} bytes, expected ${bs}`, { structure: 'directory block', location: where(logical) });
    }
    return b;
  };
  const child = (slot: DxSlot, from: number, level: string): number => {
    if (slot.block === 0 || slot.block >= ctx.blockCount) {
      throw corrupt(level, where(from), `index slot points at block ${slot.block}, outside 1..${ctx.blockCount - 1}`);
    }
    return slot.block;
  };
  const opts = (logical: number): DxParseOptions => ({ blockSize: bs, csum, verify, largeDir: ctx.largeDir, where: where(logical) });

  const root = parseDxRoot(await read(0), opts(0));
  if (name.length <= 2 && name[0] === 0x2e && (name.length === 1 || name[1] === 0x2e)) {
    const e = name.length === 1 ? root.dot : root.dotdot;
    return { ...e, fileType: ctx.hasFiletype ? e.fileType : 0, block: 0 };
  }
  const { hash } = dirHash(ctx.casefold ? ctx.casefold.hashName : name, root.hashVersion, ctx.hashSeed, ctx.signed);
  const matches = ctx.casefold ? (n: Uint8Array) => ctx.casefold!.matches(n) : (n: Uint8Array) => bytesEqual(n, name);

  // Descend: one frame per index level, frames[0] = root.
  const frames: Frame[] = [];
  const blockOf: number[] = [0];
  let index: DxIndexBlock = root;
  for (let level = 0; ; level++) {
    const at = dxSlotIndex(index, hash);
    frames.push({ index, at });
    if (level === root.indirectLevels) break;
    const nb = child(index.slots[at]!, blockOf[level]!, level === 0 ? 'dx root' : 'dx node');
    blockOf.push(nb);
    index = parseDxNode(await read(nb), opts(nb));
  }

  // Scan leaves. The slot cursor only moves forward, so this ends; a valid
  // tree cannot send one lookup through more leaves than the directory has.
  for (let visited = 1; ; visited++) {
    if (visited > ctx.blockCount) throw corrupt('dx root', where(0), `hash-collision run for 0x${hash.toString(16)} spans more leaves than the directory has blocks`);
    const last = frames[frames.length - 1]!;
    const leafNo = child(last.index.slots[last.at]!, blockOf[frames.length - 1]!, frames.length === 1 ? 'dx root' : 'dx node');
    const leaf = await read(leafNo);
    const entries = ctx.parseLeaf
      ? ctx.parseLeaf(leafNo, leaf)
      : readDirBlock(leaf, { blockSize: bs, hasFiletype: ctx.hasFiletype, csum, verify, where: where(leafNo), inodesCount: ctx.inodesCount }).entries;
    for (const e of entries) {
      if (e.inode !== 0 && matches(e.name)) return { ...e, block: leafNo };
    }
    // Advance to the next slot, climbing up while a level is exhausted.
    let lvl = frames.length - 1;
    while (++frames[lvl]!.at >= frames[lvl]!.index.count) {
      if (lvl === 0) return null;
      lvl--;
    }
    const nextHash = frames[lvl]!.index.slots[frames[lvl]!.at]!.hash;
    if (((nextHash & ~1) >>> 0) !== hash) return null;
    // Re-read the interior nodes below the level that advanced.
    for (let l = lvl + 1; l < frames.length; l++) {
      const up = frames[l - 1]!;
      const nb = child(up.index.slots[up.at]!, blockOf[l - 1]!, l - 1 === 0 ? 'dx root' : 'dx node');
      blockOf[l] = nb;
      frames[l] = { index: parseDxNode(await read(nb), opts(nb)), at: 0 };
    }
  }
}
