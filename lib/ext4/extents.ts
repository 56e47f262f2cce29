/**
 * Extent trees (ext4-format.md §7): header, leaf and index entries, node
 * checksums, and a validating walk that yields every leaf extent in logical
 * order together with the tree blocks the inode owns.
 */
import { defineStruct } from '../codec/layout.js';
import { crc32c } from './checksum.js';
import { Ext4Error, type Location } from '../errors.js';

export const EXTENT_MAGIC = 0xf30a;
/** ext4_extent_header, ext4_extent, ext4_extent_idx: all 12 bytes. */
export const ExtentHeaderLayout = defineStruct('extent header', 12, [
  ['eh_magic', 0, 'u16'],
  ['eh_entries', 2, 'u16'],
  ['eh_max', 4, 'u16'],
  ['eh_depth', 6, 'u16'],
  ['eh_generation', 8, 'u32'],
] as const);
export const ExtentLeafLayout = defineStruct('extent', 12, [
  ['ee_block', 0, 'u32'],
  ['ee_len', 4, 'u16'],
  ['ee_start_hi', 6, 'u16'],
  ['ee_start_lo', 8, 'u32'],
] as const);
export const ExtentIndexLayout = defineStruct('extent index', 12, [
  ['ei_block', 0, 'u32'],
  ['ei_leaf_lo', 4, 'u32'],
  ['ei_leaf_hi', 8, 'u16'],
  ['ei_unused', 10, 'u16'],
] as const);

/** ext4_extent_tail: the node checksum after the last possible entry (eh_max). */
export const ExtentTailLayout = defineStruct('extent tail', 4, [['et_checksum', 0, 'u32']] as const);

export const ENTRY_SIZE = 12;
/** Entries start right after the header; entry i of a node is at entryOffset(i). */
const HEADER_SIZE = ExtentHeaderLayout.size;
export function entryOffset(i: number): number {
  return HEADER_SIZE + i * ENTRY_SIZE;
}
export const EXT_INIT_MAX_LEN = 32768;
export const EXT_UNWRITTEN_MAX_LEN = 32767;
/** The kernel refuses deeper trees (EXT4_MAX_EXTENT_DEPTH). */
export const MAX_EXTENT_DEPTH = 5;

export interface Extent {
  /** First logical block. */
  logical: number;
  /** First physical block. */
  physical: number;
  /** Number of blocks. */
  length: number;
  unwritten: boolean;
}

export interface ExtentNodeHeader {
  entries: number;
  max: number;
  depth: number;
}

export function nodeCapacity(blockSize: number): number {
  return Math.floor((blockSize - HEADER_SIZE) / ENTRY_SIZE);
}

export function extentBlockChecksum(block: Uint8Array, max: number, inodeSeed: number): number {
  return crc32c(inodeSeed, block, 0, entryOffset(max));
}

/** i_block as an error location (the in-inode extent root). */
const I_BLOCK: Location = { kind: 'field', field: 'i_block' };

export function readHeader(node: Uint8Array, where: () => Location, structure: string): ExtentNodeHeader {
  const h = ExtentHeaderLayout.decode(node, 0);
  if (h.eh_magic !== EXTENT_MAGIC) throw new Ext4Error('EFSCORRUPTED', 'bad extent header magic', { structure, location: where() });
  const entries = h.eh_entries, max = h.eh_max, depth = h.eh_depth;
  if (entryOffset(max) > node.length) throw new Ext4Error('EFSCORRUPTED', `eh_max ${max} does not fit the node`, { structure, location: where() });
  if (entries > max) throw new Ext4Error('EFSCORRUPTED', `eh_entries ${entries} > eh_max ${max}`, { structure, location: where() });
  if (depth > MAX_EXTENT_DEPTH) throw new Ext4Error('EFSCORRUPTED', `depth ${depth} exceeds ${MAX_EXTENT_DEPTH}`, { structure, location: where() });
  return { entries, max, depth };
}

/** Entry i of a leaf. */
export function readLeafEntry(node: Uint8Array, i: number): Extent {
  const e = ExtentLeafLayout.decode(node, entryOffset(i));
  const unwritten = e.ee_len > EXT_INIT_MAX_LEN;
  return {
    logical: e.ee_block,
    length: unwritten ? e.ee_len - EXT_INIT_MAX_LEN : e.ee_len,
    physical: e.ee_start_hi * 2 ** 32 + e.ee_start_lo,
    unwritten,
  };
}

export function readIndexEntry(node: Uint8Array, i: number): { logical: number; leaf: number } {
  const x = ExtentIndexLayout.decode(node, entryOffset(i));
  return { logical: x.ei_block, leaf: x.ei_leaf_hi * 2 ** 32 + x.ei_leaf_lo };
}

/** et_checksum, the ext4_extent_tail right after eh_max entries. */
export function readTailChecksum(node: Uint8Array, max: number): number {
  return ExtentTailLayout.decode(node, entryOffset(max)).et_checksum;
}

export function writeTailChecksum(node: Uint8Array, max: number, checksum: number): void {
  ExtentTailLayout.encode({ et_checksum: checksum }, node, entryOffset(max));
}

export function writeHeader(node: Uint8Array, h: ExtentNodeHeader): void {
  ExtentHeaderLayout.encode({ eh_magic: EXTENT_MAGIC, eh_entries: h.entries, eh_max: h.max, eh_depth: h.depth, eh_generation: 0 }, node, 0);
}

export function writeLeafEntry(node: Uint8Array, i: number, e: Extent): void {
  if (e.length <= 0 || e.length > (e.unwritten ? EXT_UNWRITTEN_MAX_LEN : EXT_INIT_MAX_LEN)) throw new Ext4Error('EINVAL', `extent length ${e.length} out of range`);
  ExtentLeafLayout.encode({
    ee_block: e.logical,
    ee_len: e.unwritten ? e.length + EXT_INIT_MAX_LEN : e.length,
    ee_start_hi: Math.floor(e.physical / 2 ** 32),
    ee_start_lo: e.physical % 2 ** 32,
  }, node, entryOffset(i));
}

export function writeIndexEntry(node: Uint8Array, i: number, logical: number, leaf: number): void {
  ExtentIndexLayout.encode({ ei_block: logical, ei_leaf_lo: leaf % 2 ** 32, ei_leaf_hi: Math.floor(leaf / 2 ** 32), ei_unused: 0 }, node, entryOffset(i));
}

export interface ExtentWalkContext {
  ino: number;
  blockSize: number;
  firstDataBlock: number;
  blocksCount: number;
  readBlock(n: number): Promise<Uint8Array>;
  /** Seed for node checksums (inodeSeed), or null when the fs has no metadata_csum. */
  csumSeed: number | null;
  verify: boolean;
}

export interface ExtentTreeInfo {
  extents: Extent[];
  /** Every non-root tree block, with its depth (leaf = 0). */
  treeBlocks: { block: number; depth: number; entries: number }[];
  depth: number;
}

/**
 * Walk the whole tree rooted in i_block. Validates everything e2fsck does
 * that matters for reading correctly: magic, counts, depth consistency
 * (which also rules out cycles), ordering, index keys, physical ranges and
 * node checksums. Bounded: every node is visited once, depth ≤ 5.
 */
export async function walkExtentTree(iblock: Uint8Array, ctx: ExtentWalkContext): Promise<ExtentTreeInfo> {
  const structure = `inode ${ctx.ino} extent tree`;
  const root = readHeader(iblock, () => I_BLOCK, structure);
  if (root.max > 4) throw new Ext4Error('EFSCORRUPTED', `root eh_max ${root.max} > 4`, { structure, location: I_BLOCK });
  const extents: Extent[] = [];
  const treeBlocks: ExtentTreeInfo['treeBlocks'] = [];
  const seen = new Set<number>();
  const cap = nodeCapacity(ctx.blockSize);

  const inFs = (p: number, n: number) => p >= ctx.firstDataBlock && p !== 0 && p + n <= ctx.blocksCount;

  async function visit(node: Uint8Array, h: ExtentNodeHeader, lo: number, hi: number, where: Location): Promise<void> {
    let prevEnd = lo;
    if (h.depth === 0) {
      // Built only for an error (a string per extent costs more than the walk); one closure per
      // node, not per entry (a closure over the loop's `i` allocates a context and a function per entry).
      const loc = (i: number): Location => ({ kind: 'part', of: where, part: 'entry', index: i });
      for (let i = 0; i < h.entries; i++) {
        const e = readLeafEntry(node, i);
        if (e.length === 0) throw new Ext4Error('EFSCORRUPTED', 'zero-length extent', { structure, location: loc(i) });
        if (e.logical < prevEnd) throw new Ext4Error('EFSCORRUPTED', `extent at logical ${e.logical} overlaps or is out of order`, { structure, location: loc(i) });
        if (e.logical + e.length > hi) throw new Ext4Error('EFSCORRUPTED', `extent ${e.logical}+${e.length} exceeds its index range (< ${hi})`, { structure, location: loc(i) });
        if (!inFs(e.physical, e.length)) throw new Ext4Error('EFSCORRUPTED', `extent ${e.physical}+${e.length} lies outside the filesystem`, { structure, location: loc(i) });
        prevEnd = e.logical + e.length;
        extents.push(e);
      }
      return;
    }
    for (let i = 0; i < h.entries; i++) {
      const idx = readIndexEntry(node, i);
      const loc: Location = { kind: 'part', of: where, part: 'index', index: i };
      if (idx.logical < prevEnd || (i === 0 && idx.logical < lo)) throw new Ext4Error('EFSCORRUPTED', `index key ${idx.logical} out of order`, { structure, location: loc });
      const next = i + 1 < h.entries ? readIndexEntry(node, i + 1).logical : hi;
      if (next <= idx.logical) throw new Ext4Error('EFSCORRUPTED', `index keys not ascending at ${idx.logical}`, { structure, location: loc });
      if (!inFs(idx.leaf, 1)) throw new Ext4Error('EFSCORRUPTED', `index points at block ${idx.leaf} outside the filesystem`, { structure, location: loc });
      if (seen.has(idx.leaf)) throw new Ext4Error('EFSCORRUPTED', `tree block ${idx.leaf} is referenced twice (cycle)`, { structure, location: loc });
      seen.add(idx.leaf);
      const child = await ctx.readBlock(idx.leaf);
      const cwhere: Location = { kind: 'block', block: idx.leaf };
      const ch = readHeader(child, () => cwhere, structure);
      if (ch.depth !== h.depth - 1) throw new Ext4Error('EFSCORRUPTED', `node depth ${ch.depth}, expected ${h.depth - 1}`, { structure, location: cwhere });
      if (ch.max > cap) throw new Ext4Error('EFSCORRUPTED', `eh_max ${ch.max} > capacity ${cap}`, { structure, location: cwhere });
      if (ctx.verify && ctx.csumSeed !== null) {
        const want = extentBlockChecksum(child, ch.max, ctx.csumSeed);
        const got = readTailChecksum(child, ch.max);
        if (want !== got) throw new Ext4Error('EFSBADCRC', `extent block checksum 0x${got.toString(16)} != computed 0x${want.toString(16)}`, { structure, location: cwhere });
      }
      if (ch.entries === 0) throw new Ext4Error('EFSCORRUPTED', 'empty non-root extent node', { structure, location: cwhere });
      const first = ch.depth === 0 ? readLeafEntry(child, 0).logical : readIndexEntry(child, 0).logical;
      if (first !== idx.logical) throw new Ext4Error('EFSCORRUPTED', `index key ${idx.logical} != first key ${first} of the child`, { structure, location: cwhere });
      treeBlocks.push({ block: idx.leaf, depth: ch.depth, entries: ch.entries });
      await visit(child, ch, idx.logical, next, cwhere);
      prevEnd = next;
    }
  }

  await visit(iblock, root, 0, 2 ** 32, I_BLOCK);
  return { extents, treeBlocks, depth: root.depth };
}

/** Binary search: the extent containing logical block `lb`, or the index where it would go. */
export function findExtent(extents: readonly Extent[], lb: number): { index: number; extent: Extent | null } {
  let lo = 0, hi = extents.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const e = extents[mid]!;
    if (e.logical + e.length <= lb) lo = mid + 1;
    else if (e.logical > lb) hi = mid;
    else return { index: mid, extent: e };
  }
  return { index: lo, extent: null };
}
