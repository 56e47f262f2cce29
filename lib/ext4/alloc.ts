/**
 * Block and inode allocation over the bitmaps (ext4-format.md §2.1, §5):
 * goal-directed first-fit, contiguous runs (across group boundaries), runs
 * at an exact block; lazy initialisation of BLOCK_UNINIT / INODE_UNINIT
 * groups; exact group and superblock counts; bitmap and descriptor checksums.
 * All changes go into a Transaction.
 */
import { Ext4Error } from '../errors.js';
import type { Filesystem } from './filesystem.js';
import type { Transaction } from './transaction.js';
import { BG_FLAGS, uninitFlagsHonoured, type GroupDesc } from './group-desc.js';
import {
  blockBitmapChecksum, clearBit, computeUninitBlockBitmap, computeUninitInodeBitmap,
  inodeBitmapChecksum, setBit, testBit,
} from './bitmap.js';
import { blocksInGroup, flexGroupSize, groupFirstBlock, groupOfBlock } from './geometry.js';
import type { Run } from './extent-map.js';
import { scanFreeWith } from './free-space.js';
export { scanFreeWith, type FreeScanSource } from './free-space.js';


/** Block bitmap of group g as of the transaction (initialising a BLOCK_UNINIT one in it). */
export async function txBlockBitmap(tx: Transaction, g: number, forWrite: boolean): Promise<Uint8Array> {
  const gd = await tx.group(g);
  const sb = tx.fs.sb;
  if (uninitFlagsHonoured(sb) && gd.flags & BG_FLAGS.BLOCK_UNINIT) {
    const bm = computeUninitBlockBitmap(sb, gd);
    if (!forWrite) return bm;
    // Lazy init: write the computed bitmap and clear the flag (kernel ext4_read_block_bitmap_nowait).
    gd.flags &= ~BG_FLAGS.BLOCK_UNINIT;
    const blk = await tx.block(gd.blockBitmap);
    blk.set(bm);
    return blk;
  }
  const inTx = tx.blocks.get(gd.blockBitmap);
  if (inTx) return inTx;
  // Read through fs.blockBitmap so the on-disk checksum is verified before
  // the transaction modifies the bitmap and re-checksums it (a corrupt
  // bitmap must fail the operation with EFSBADCRC, not be blessed).
  const disk = await tx.fs.blockBitmap(g);
  if (forWrite) return tx.block(gd.blockBitmap);
  return disk;
}

function refreshBlockBitmapCsum(tx: Transaction, gd: GroupDesc, bm: Uint8Array): void {
  if (tx.fs.sb.hasMetadataCsum) gd.blockBitmapCsum = blockBitmapChecksum(bm, tx.fs.fsSeed, tx.fs.sb.s_clusters_per_group);
}

export interface FindOptions {
  /** Block to start searching at (wraps around). */
  goal: number;
  /** Wanted length. */
  length: number;
  /** Only a single run counts; return the first run ≥ length, else the longest. */
  contiguous?: boolean;
  /** The (first) run must start exactly at `goal`. */
  exact?: boolean;
  /** Blocks that must not be handed out (e.g. freed by not yet durable transactions). */
  exclude?: (start: number, length: number) => boolean;
}

/** Free runs as of the transaction (its own allocations and lazily initialised groups included). */
async function scanFree(tx: Transaction, fs: Filesystem, from: number, to: number, fn: (start: number, length: number) => boolean | void): Promise<void> {
  await scanFreeWith(fs.sb, { group: (g) => tx.group(g), bitmap: (g) => txBlockBitmap(tx, g, false) }, from, to, fn);
}

/**
 * Find free space per FindOptions. Returns runs (not yet allocated). Without
 * `contiguous`, collects runs first-fit from the goal (wrapping) until
 * `length` is reached or space runs out.
 */
export async function findFree(tx: Transaction, opts: FindOptions): Promise<Run[]> {
  const fs = tx.fs;
  const sb = fs.sb;
  const goal = Math.min(Math.max(opts.goal, sb.s_first_data_block), sb.blocksCount - 1);
  const want = opts.length;
  if (want <= 0) return [];
  const exclude = opts.exclude;
  const usable = (s: number, l: number): Run[] => {
    if (!exclude) return [{ start: s, length: l }];
    // split a run around excluded blocks (rare: only with pending frees)
    const out: Run[] = [];
    let cs = -1;
    for (let b = s; b < s + l; b++) {
      if (exclude(b, 1)) {
        if (cs >= 0) out.push({ start: cs, length: b - cs });
        cs = -1;
      } else if (cs < 0) cs = b;
    }
    if (cs >= 0) out.push({ start: cs, length: s + l - cs });
    return out;
  };
  if (opts.exact) {
    let got: Run | null = null;
    await scanFree(tx, fs, goal, Math.min(sb.blocksCount, goal + want), (s, l) => {
      if (s === goal) got = usable(s, l)[0] ?? null;
      return false;
    });
    const first = got as Run | null;
    if (!first || first.start !== goal) return [];
    if (opts.contiguous || first.length >= want) return [{ start: goal, length: Math.min(want, first.length) }];
    const rest = await findFree(tx, { goal: goal + first.length, length: want - first.length, exclude: (b, l) => (b < goal + first.length && b + l > goal) || !!exclude?.(b, l) });
    return [first, ...rest];
  }
  if (opts.contiguous) {
    let best: Run | null = null;
    let found: Run | null = null;
    const visit = (s: number, l: number) => {
      for (const r of usable(s, l)) {
        if (r.length >= want) {
          found = { start: r.start, length: want };
          return false;
        }
        if (!best || r.length > best.length) best = r;
      }
      return true;
    };
    await scanFree(tx, fs, goal, sb.blocksCount, visit);
    if (!found && goal > sb.s_first_data_block) await scanFree(tx, fs, sb.s_first_data_block, goal + want, visit);
    const f = found as Run | null;
    if (f) return [f];
    const b = best as Run | null;
    return b ? [b] : [];
  }
  const runs: Run[] = [];
  let need = want;
  const visit = (s: number, l: number) => {
    for (const r of usable(s, l)) {
      if (need <= 0) return false;
      // skip blocks already collected (second pass after wrap)
      const take = Math.min(need, r.length);
      runs.push({ start: r.start, length: take });
      need -= take;
    }
    return need > 0;
  };
  await scanFree(tx, fs, goal, sb.blocksCount, visit);
  if (need > 0 && goal > sb.s_first_data_block) await scanFree(tx, fs, sb.s_first_data_block, goal, visit);
  return runs;
}

/**
 * Flip the bitmap bits of runs (allocate: set, else clear), group by group,
 * keeping the group counts, bitmap checksums and the superblock delta exact.
 * A bit already in the target state is corruption: nothing is ever allocated
 * or freed twice.
 */
async function markRuns(tx: Transaction, runs: readonly Run[], allocate: boolean): Promise<void> {
  const sb = tx.fs.sb;
  for (const r of runs) {
    let b = r.start;
    const end = r.start + r.length;
    if (r.start < sb.s_first_data_block || end > sb.blocksCount)
      throw new Ext4Error(allocate ? 'EINVAL' : 'EFSCORRUPTED', `${allocate ? 'allocating' : 'freeing'} run ${r.start}+${r.length} outside the filesystem`);
    while (b < end) {
      const g = groupOfBlock(sb, b);
      const first = groupFirstBlock(sb, g);
      const stop = Math.min(end, first + blocksInGroup(sb, g));
      const gd = await tx.group(g);
      const bm = await txBlockBitmap(tx, g, true);
      for (let x = b; x < stop; x++) {
        const i = x - first;
        if (testBit(bm, i) === allocate)
          throw new Ext4Error('EFSCORRUPTED', `block ${x} ${allocate ? 'is already in use' : 'freed twice'}`, { structure: 'block bitmap', location: `group ${g}` });
        if (allocate) setBit(bm, i);
        else clearBit(bm, i);
      }
      const n = stop - b;
      if (allocate && gd.freeBlocks < n) throw new Ext4Error('EFSCORRUPTED', `group ${g} free count ${gd.freeBlocks} below allocation`, { structure: 'group descriptor', location: `group ${g}` });
      gd.freeBlocks += allocate ? -n : n;
      tx.freeBlocksDelta += allocate ? -n : n;
      refreshBlockBitmapCsum(tx, gd, bm);
      b = stop;
    }
  }
}

/** Mark runs allocated. */
export async function markAllocated(tx: Transaction, runs: readonly Run[]): Promise<void> {
  await markRuns(tx, runs, true);
}

/** Clear the bits of runs (called at finalise for pending frees). */
export async function markFree(tx: Transaction, runs: readonly Run[]): Promise<void> {
  await markRuns(tx, runs, false);
}

/** Apply the transaction's pending frees (Transaction.finalise hook). */
export async function applyPendingFrees(tx: Transaction): Promise<void> {
  await markFree(tx, tx.pendingFree);
}

/** Find and allocate; throws ENOSPC (nothing changed) unless `partial` allows fewer blocks. */
export async function allocateBlocks(tx: Transaction, opts: FindOptions & { partial?: boolean }): Promise<Run[]> {
  const pending = tx.pendingFree;
  const exclude = pending.length
    ? (s: number, l: number) => pending.some((p) => s < p.start + p.length && p.start < s + l) || !!opts.exclude?.(s, l)
    : opts.exclude;
  const runs = await findFree(tx, { ...opts, exclude });
  const got = runs.reduce((a, r) => a + r.length, 0);
  if (got === 0 || (!opts.partial && got < opts.length)) throw new Ext4Error('ENOSPC', `cannot allocate ${opts.length} block(s)${opts.contiguous ? ' contiguously' : ''}${opts.exact ? ` at block ${opts.goal}` : ''}`);
  await markAllocated(tx, runs);
  return runs;
}

/** Free counts summed over a flex group (the kernel keeps these in memory only). */
export async function flexGroupFree(fs: Filesystem, flex: number): Promise<{ blocks: number; inodes: number }> {
  const n = flexGroupSize(fs.sb);
  let blocks = 0, inodes = 0;
  for (let g = flex * n; g < Math.min(fs.sb.groupCount, (flex + 1) * n); g++) {
    const gd = await fs.group(g);
    blocks += gd.freeBlocks;
    inodes += gd.freeInodes;
  }
  return { blocks, inodes };
}

/** Writable inode bitmap of an initialised group as of the transaction (on-disk checksum verified first). */
async function txInodeBitmap(tx: Transaction, g: number): Promise<Uint8Array> {
  const gd = await tx.group(g);
  if (!tx.blocks.has(gd.inodeBitmap)) await tx.fs.inodeBitmap(g);
  return tx.block(gd.inodeBitmap);
}

/**
 * Allocate an inode (first free from the goal group, wrapping), initialising
 * INODE_UNINIT groups, maintaining free/dir counts, itable_unused, checksums.
 * The slot is zeroed when the table is not known to be zeroed.
 */
export async function allocateInode(tx: Transaction, opts: { goalGroup?: number; dir?: boolean } = {}): Promise<number> {
  const fs = tx.fs;
  const sb = fs.sb;
  const ipg = sb.s_inodes_per_group;
  const start = Math.min(Math.max(opts.goalGroup ?? 0, 0), sb.groupCount - 1);
  for (let k = 0; k < sb.groupCount; k++) {
    const g = (start + k) % sb.groupCount;
    const gd = await tx.group(g);
    if (gd.freeInodes === 0) continue;
    let bm: Uint8Array;
    const honoured = uninitFlagsHonoured(sb);
    if (honoured && gd.flags & BG_FLAGS.INODE_UNINIT) {
      bm = await tx.block(gd.inodeBitmap);
      bm.set(computeUninitInodeBitmap(sb));
      gd.flags &= ~BG_FLAGS.INODE_UNINIT;
    } else bm = await txInodeBitmap(tx, g);
    for (let i = 0; i < ipg; i++) {
      const ino = g * ipg + i + 1;
      if (ino < sb.s_first_ino) continue;
      if (testBit(bm, i)) continue;
      setBit(bm, i);
      gd.freeInodes -= 1;
      tx.freeInodesDelta -= 1;
      if (opts.dir) gd.usedDirs += 1;
      if (honoured && i >= ipg - gd.itableUnused) gd.itableUnused = ipg - i - 1;
      if (sb.hasMetadataCsum) gd.inodeBitmapCsum = inodeBitmapChecksum(bm, fs.fsSeed, ipg);
      // Zero the slot: the table may hold garbage if not ITABLE_ZEROED, and a reused slot holds the old inode.
      const { block, offset } = await fs.inodeLocation(ino);
      (await tx.block(block)).fill(0, offset, offset + sb.s_inode_size);
      return ino;
    }
  }
  throw new Ext4Error('ENOSPC', 'no free inodes');
}

/** Release an inode: bitmap bit, counts, checksum (the caller clears the inode itself). */
export async function freeInode(tx: Transaction, ino: number, wasDir: boolean): Promise<void> {
  const fs = tx.fs;
  const sb = fs.sb;
  const g = Math.floor((ino - 1) / sb.s_inodes_per_group);
  const i = (ino - 1) % sb.s_inodes_per_group;
  const gd = await tx.group(g);
  const bm = await txInodeBitmap(tx, g);
  if (!testBit(bm, i)) throw new Ext4Error('EFSCORRUPTED', `inode ${ino} freed twice`, { structure: 'inode bitmap', location: `group ${g}` });
  clearBit(bm, i);
  gd.freeInodes += 1;
  tx.freeInodesDelta += 1;
  if (wasDir) gd.usedDirs -= 1;
  if (sb.hasMetadataCsum) gd.inodeBitmapCsum = inodeBitmapChecksum(bm, fs.fsSeed, sb.s_inodes_per_group);
}

