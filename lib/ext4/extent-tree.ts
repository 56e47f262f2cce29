/**
 * Writing extent trees (ext4-format.md §7.2). A file's new extent list is
 * laid out as a minimal tree — leaves and index nodes packed full except the
 * last of each level, depth as small as possible, so e2fsck never proposes to
 * make it "narrower" or "shorter" — reusing the inode's existing tree blocks
 * in order, allocating or freeing the difference. Only nodes whose bytes
 * change are returned for writing (an append touches one leaf and its
 * ancestors). Indexes carry the first key of their child; nodes get full
 * capacity eh_max and a checksum tail.
 */
import { Ext4Error } from '../errors.js';
import {
  extentBlockChecksum, nodeCapacity, writeHeader, writeTailChecksum, writeIndexEntry, writeLeafEntry, MAX_EXTENT_DEPTH, type Extent,
} from './extents.js';
import { bytesEqual } from './bytes.js';

export const ROOT_CAPACITY = 4;

/** Number of nodes per level, leaves first; [] when everything fits in the inode. */
export function treeShape(extentCount: number, blockSize: number): number[] {
  const cap = nodeCapacity(blockSize);
  const levels: number[] = [];
  let n = extentCount;
  while (n > ROOT_CAPACITY) {
    n = Math.ceil(n / cap);
    levels.push(n);
  }
  if (levels.length >= MAX_EXTENT_DEPTH) throw new Ext4Error('EFBIG', `extent tree would need depth ${levels.length}`);
  return levels;
}

/** Tree blocks a list of `extentCount` extents needs. */
export function treeBlocksNeeded(extentCount: number, blockSize: number): number {
  return treeShape(extentCount, blockSize).reduce((a, b) => a + b, 0);
}

export interface TreeWriteOptions {
  blockSize: number;
  /** inodeSeed for node checksums, or null without metadata_csum. */
  csumSeed: number | null;
  /** Current tree blocks of the inode (any order). */
  oldTreeBlocks: readonly number[];
  /** Allocate `count` blocks for new nodes (goal: near `goal`). */
  allocate(count: number, goal: number): Promise<number[]>;
  /** Current contents of a tree block (for change detection). */
  readBlock(n: number): Promise<Uint8Array>;
  /** Goal for new tree blocks (e.g. the first data block of the file). */
  goal: number;
}

export interface TreeWriteResult {
  /** The new 60-byte i_block. */
  iblock: Uint8Array;
  /** Tree blocks to write (changed ones only). */
  writes: Map<number, Uint8Array>;
  /** Tree blocks no longer used (to free). */
  freed: number[];
  /** Newly allocated tree blocks. */
  allocated: number[];
  /** All tree blocks of the new tree. */
  treeBlocks: number[];
  depth: number;
}

/**
 * Lay out `extents` (normalised: sorted, no overlaps, lengths within limits)
 * as a tree and produce the blocks to write.
 */
export async function writeExtentTree(extents: readonly Extent[], opts: TreeWriteOptions): Promise<TreeWriteResult> {
  const bs = opts.blockSize;
  const cap = nodeCapacity(bs);
  const shape = treeShape(extents.length, bs);
  const needed = shape.reduce((a, b) => a + b, 0);
  const old = [...opts.oldTreeBlocks].sort((a, b) => a - b);
  const reuse = old.slice(0, needed);
  const freed = old.slice(needed);
  const allocated = needed > reuse.length ? await opts.allocate(needed - reuse.length, opts.goal) : [];
  if (allocated.length !== needed - reuse.length) throw new Ext4Error('ENOSPC', 'no space for extent tree blocks');
  const pool = [...reuse, ...allocated].sort((a, b) => a - b);
  const fresh = new Set(allocated);
  let next = 0;
  const writes = new Map<number, Uint8Array>();
  const treeBlocks: number[] = [];

  const finishNode = (node: Uint8Array) => {
    if (opts.csumSeed !== null) writeTailChecksum(node, cap, extentBlockChecksum(node, cap, opts.csumSeed));
  };

  // Each level: entries (first key, and for leaves the extent itself; for indexes the child block).
  let keys: number[] = extents.map((e) => e.logical);
  let children: number[] = [];
  for (let depth = 0; depth < shape.length; depth++) {
    const count = shape[depth]!;
    const nextKeys: number[] = [];
    const nextChildren: number[] = [];
    for (let n = 0; n < count; n++) {
      const from = n * cap;
      const to = Math.min(keys.length, from + cap);
      const node = new Uint8Array(bs);
      writeHeader(node, { entries: to - from, max: cap, depth });
      for (let i = from; i < to; i++) {
        if (depth === 0) writeLeafEntry(node, i - from, extents[i]!);
        else writeIndexEntry(node, i - from, keys[i]!, children[i]!);
      }
      finishNode(node);
      const blk = pool[next++]!;
      treeBlocks.push(blk);
      if (fresh.has(blk) || !bytesEqual(await opts.readBlock(blk), node)) writes.set(blk, node);
      nextKeys.push(keys[from]!);
      nextChildren.push(blk);
    }
    keys = nextKeys;
    children = nextChildren;
  }
  const iblock = new Uint8Array(60);
  const depth = shape.length;
  writeHeader(iblock, { entries: keys.length, max: ROOT_CAPACITY, depth });
  for (let i = 0; i < keys.length; i++) {
    if (depth === 0) writeLeafEntry(iblock, i, extents[i]!);
    else writeIndexEntry(iblock, i, keys[i]!, children[i]!);
  }
  return { iblock, writes, freed, allocated, treeBlocks, depth };
}

/**
 * One level of a tree as e2fsck's pass 1 sums it (e2fsck/extents.c,
 * e2fsck_check_rebuild_extents / pass1.c scan_extent_node): entries over
 * every node of the level, and their eh_max — less one for each non-root
 * node that is not full (the "implementation wart" allowance for the free
 * slot an appending split leaves behind).
 */
export interface LevelStat {
  entries: number;
  max: number;
}

/** A node's contribution to its level's LevelStat.max. */
export function effectiveMax(entries: number, max: number, isRoot: boolean): number {
  return !isRoot && entries < max ? max - 1 : max;
}

/**
 * e2fsck_should_rebuild_extents, levels root first: the tree "could be
 * narrower" (PR_1E_CAN_NARROW_EXTENT_TREE) when a level's unused slots
 * exceed one block's worth of entries, and "could be shorter"
 * (PR_1E_CAN_COLLAPSE_EXTENT_TREE) when a level's entries would fit in the
 * slots of a level above it. Returns the first such level, or null.
 */
export function shapeProblem(levels: readonly LevelStat[], blockSize: number): { kind: 'narrow' | 'collapse'; level: number } | null {
  const perBlock = nodeCapacity(blockSize);
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i]!;
    if (l.max - l.entries > perBlock) return { kind: 'narrow', level: i };
    for (let j = 0; j < i; j++) if (l.entries < levels[j]!.max) return { kind: 'collapse', level: i };
  }
  return null;
}
