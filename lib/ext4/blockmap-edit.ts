/**
 * Editing a block map (ext2/ext3, ext4 inodes without EXTENTS_FL): i_block
 * holds 12 direct pointers and the roots of the single, double and triple
 * indirect trees (blockmap.ts reads them). A block map is positional — the
 * pointer for logical block L always sits at the same place — so an edit
 * touches only the indirect blocks on the paths to the logical blocks whose
 * mapping changes: the ones that hold a changed pointer and, for a new
 * indirect block, its parent. Indirect blocks that become empty are freed
 * (the kernel's ext4_free_branches; e2fsck counts them in i_blocks, so an
 * empty one left behind would be a leak only e2fsck reclaims).
 *
 * The layout math is pure (pathOf, changedRuns, blockMapMaxBlocks); the
 * edit itself reads indirect blocks through the caller's view and returns
 * the new images instead of writing them.
 */
import { Ext4Error, type Location } from '../errors.js';
import { le32 } from '../codec/layout.js';
import type { Extent } from './extents.js';
import { NDIR_BLOCKS } from './blockmap.js';

/** Pointers per indirect block (le32 each). */
export function pointersPerBlock(blockSize: number): number {
  return blockSize / 4;
}

/**
 * Logical blocks a block map can address: 12 direct + per + per² + per³,
 * and never past 2^32 - 1 (logical block numbers are 32-bit, ext4_lblk_t).
 */
export function blockMapMaxBlocks(blockSize: number): number {
  const per = pointersPerBlock(blockSize);
  return Math.min(NDIR_BLOCKS + per + per ** 2 + per ** 3, 2 ** 32 - 1);
}

/** Physical block numbers in a block map are le32: 0 means a hole, so 1 .. 2^32-1. */
export const BLOCKMAP_MAX_PHYSICAL = 2 ** 32 - 1;

/**
 * Where the pointer for logical block `lb` lives: `slot` in i_block (0-14)
 * and, below an indirect root (slot 12/13/14 = level 1/2/3), the index in
 * each indirect block from the top down (`index.length === level`).
 */
export function pathOf(lb: number, per: number): { slot: number; level: number; index: number[] } {
  if (lb < NDIR_BLOCKS) return { slot: lb, level: 0, index: [] };
  let rel = lb - NDIR_BLOCKS;
  for (let level = 1; level <= 3; level++) {
    const span = per ** level;
    if (rel < span) {
      const index: number[] = [];
      for (let l = level - 1; l >= 0; l--) {
        const s = per ** l;
        index.push(Math.floor(rel / s));
        rel %= s;
      }
      return { slot: NDIR_BLOCKS + level - 1, level, index };
    }
    rel -= span;
  }
  throw new Ext4Error('EFBIG', `logical block ${lb} is past the largest block-mapped file`);
}

/** A run of logical blocks whose pointer becomes `physical + i` (0: becomes a hole). */
export interface PointerRun {
  logical: number;
  length: number;
  physical: number;
}

/**
 * The runs where `next` maps differently from `old` (both sorted, non-overlapping,
 * written). Blocks mapped the same way in both are left out: they need no write.
 */
export function changedRuns(old: readonly Extent[], next: readonly Extent[]): PointerRun[] {
  const cuts = new Set<number>();
  for (const list of [old, next]) for (const e of list) {
    cuts.add(e.logical);
    cuts.add(e.logical + e.length);
  }
  const points = [...cuts].sort((a, b) => a - b);
  const out: PointerRun[] = [];
  let i = 0, j = 0;
  for (let k = 0; k + 1 < points.length; k++) {
    const a = points[k]!, b = points[k + 1]!;
    while (i < old.length && old[i]!.logical + old[i]!.length <= a) i++;
    while (j < next.length && next[j]!.logical + next[j]!.length <= a) j++;
    const o = old[i] && old[i]!.logical <= a ? old[i]! : null;
    const n = next[j] && next[j]!.logical <= a ? next[j]! : null;
    const op = o ? o.physical + (a - o.logical) : 0;
    const np = n ? n.physical + (a - n.logical) : 0;
    if (op === np) continue;
    const last = out[out.length - 1];
    if (last && last.logical + last.length === a && (np === 0 ? last.physical === 0 : last.physical !== 0 && last.physical + last.length === np)) last.length += b - a;
    else out.push({ logical: a, length: b - a, physical: np });
  }
  return out;
}

/**
 * A block map has no unwritten extents: the unwritten parts of `list` become
 * written, and the blocks that must be zeroed for that are returned.
 */
export function writtenWithZeros(list: readonly Extent[]): { list: Extent[]; zero: { start: number; length: number }[] } {
  const zero: { start: number; length: number }[] = [];
  const out = list.map((e) => {
    if (!e.unwritten) return e;
    zero.push({ start: e.physical, length: e.length });
    return { ...e, unwritten: false };
  });
  return { list: out, zero };
}

export interface BlockMapEditContext {
  ino: number;
  blockSize: number;
  firstDataBlock: number;
  blocksCount: number;
  /** The current image of a block (the transaction's view); not modified. */
  readBlock(n: number): Promise<Uint8Array>;
  /** Allocate `count` blocks near `goal` (each < 2^32); returns them in order. */
  allocate(count: number, goal: number): Promise<number[]>;
}

export interface BlockMapEditResult {
  /** The new i_block (60 bytes). */
  iblock: Uint8Array;
  /** Indirect blocks to write (changed or new), with their full new image. */
  writes: Map<number, Uint8Array>;
  /** Indirect blocks allocated by this edit. */
  allocated: number[];
  /** Indirect blocks emptied and no longer referenced: free them. */
  freed: number[];
}

interface Node {
  /** 0 until a new node is given a block. */
  block: number;
  data: Uint8Array;
  level: number;
  parent: Node | null;
  /** Slot in the parent (or in i_block when parent is null). */
  slot: number;
  dirty: boolean;
  fresh: boolean;
  /** First data block mapped under it (allocation goal for a fresh node). */
  goal: number;
}

/**
 * Rewrite the pointers of `old` (the inode's current map, written extents)
 * into those of `next`: returns the new i_block and the indirect block images;
 * the caller writes them, frees `freed` and counts i_blocks. Refuses unwritten
 * extents (EINVAL: a block map cannot say "allocated but reads as zeros"),
 * logical blocks past blockMapMaxBlocks and physical blocks ≥ 2^32 (EFBIG).
 */
export async function editBlockMap(iblock: Uint8Array, old: readonly Extent[], next: readonly Extent[], ctx: BlockMapEditContext): Promise<BlockMapEditResult> {
  const structure = `inode ${ctx.ino} block map`;
  const per = pointersPerBlock(ctx.blockSize);
  const maxBlocks = blockMapMaxBlocks(ctx.blockSize);
  for (const e of next) {
    if (e.unwritten) throw new Ext4Error('EINVAL', `inode ${ctx.ino} is block-mapped: it cannot hold unwritten extents`, { structure });
    if (e.logical + e.length > maxBlocks) throw new Ext4Error('EFBIG', `logical block ${e.logical + e.length - 1} is past the largest block-mapped file (${maxBlocks} blocks)`, { structure });
    if (e.physical < 1 || e.physical + e.length - 1 > BLOCKMAP_MAX_PHYSICAL) throw new Ext4Error('EFBIG', `block ${e.physical + e.length - 1} does not fit a 32-bit block pointer`, { structure });
  }
  const root = iblock.slice(0, 60);
  const nodes = new Map<string, Node>();
  const fresh: Node[] = [];

  const check = (p: number, where: Location) => {
    if (p < ctx.firstDataBlock || p >= ctx.blocksCount) throw new Ext4Error('EFSCORRUPTED', `block pointer ${p} outside the filesystem`, { structure, location: where });
  };
  const pointerIn = (parent: Node | null, slot: number) => le32.get(parent ? parent.data : root, slot);

  /** The node at `key` below (parent, slot); created empty when `create`, else null for a hole. */
  async function child(key: string, parent: Node | null, slot: number, level: number, create: boolean, goal: number): Promise<Node | null> {
    const have = nodes.get(key);
    if (have) return have;
    const p = pointerIn(parent, slot);
    let node: Node;
    if (p !== 0) {
      check(p, parent ? { kind: 'part', of: { kind: 'block', block: parent.block, level: parent.level }, part: 'slot', index: slot } : { kind: 'field', field: 'i_block', index: slot });
      const data = (await ctx.readBlock(p)).slice();
      node = { block: p, data, level, parent, slot, dirty: false, fresh: false, goal };
    } else if (create) {
      const data = new Uint8Array(ctx.blockSize);
      node = { block: 0, data, level, parent, slot, dirty: true, fresh: true, goal };
      fresh.push(node);
    } else return null;
    nodes.set(key, node);
    return node;
  }

  for (const run of changedRuns(old, next)) {
    for (let i = 0; i < run.length; i++) {
      const lb = run.logical + i;
      const ptr = run.physical === 0 ? 0 : run.physical + i;
      const path = pathOf(lb, per);
      if (path.level === 0) {
        le32.set(root, path.slot, ptr);
        continue;
      }
      let node: Node | null = null;
      let key = `${path.slot}`;
      let slot = path.slot;
      for (let d = 0; d < path.level; d++) {
        node = await child(key, node, slot, path.level - d, ptr !== 0, ptr);
        if (!node) break; // clearing a pointer under a hole: already clear
        slot = path.index[d]!;
        key += `,${slot}`;
      }
      if (!node) continue;
      le32.set(node.data, slot, ptr);
      node.dirty = true;
    }
  }

  // New indirect blocks near the data they map (ext2/ext4_find_goal: next to the data).
  // A fresh node only exists to hold a non-zero pointer, so none of them ends up empty.
  const allocated: number[] = [];
  if (fresh.length) {
    const blocks = await ctx.allocate(fresh.length, fresh[0]!.goal);
    if (blocks.length !== fresh.length) throw new Ext4Error('ENOSPC', `no room for ${fresh.length} indirect block(s)`, { structure });
    fresh.forEach((n, k) => {
      const b = blocks[k]!;
      if (b > BLOCKMAP_MAX_PHYSICAL) throw new Ext4Error('EFBIG', `block ${b} does not fit a 32-bit block pointer`, { structure });
      n.block = b;
      allocated.push(b);
    });
    for (const n of fresh) setPointer(n.parent, n.slot, n.block);
  }

  function setPointer(parent: Node | null, slot: number, value: number): void {
    if (parent) {
      le32.set(parent.data, slot, value);
      parent.dirty = true;
    } else le32.set(root, slot, value);
  }

  // Emptied indirect blocks, bottom-up (a parent may empty once its children are gone).
  const freed: number[] = [];
  const all = [...nodes.values()].sort((a, b) => a.level - b.level);
  for (const n of all) {
    if (!n.dirty || n.fresh) continue;
    if (!isZero(n.data)) continue;
    freed.push(n.block);
    n.dirty = false;
    n.block = -1;
    setPointer(n.parent, n.slot, 0);
  }

  const writes = new Map<number, Uint8Array>();
  for (const n of all) if (n.dirty && n.block > 0) writes.set(n.block, n.data);
  return { iblock: root, writes, allocated, freed };
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
