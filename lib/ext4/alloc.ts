/**
 * Block and inode allocation over the bitmaps (ext4-format.md §2.1, §5):
 * goal-directed first-fit, contiguous runs (across group boundaries), runs
 * at an exact block; lazy initialisation of BLOCK_UNINIT / INODE_UNINIT
 * groups; exact group and superblock counts; bitmap and descriptor checksums.
 * All changes go into a Transaction.
 *
 * Never trusts what it can check (issue 8): the descriptors' table pointers
 * are checked once per session (ext2fs_check_desc); each block bitmap is
 * validated before use (ext4_valid_block_bitmap: the fixed metadata in the
 * group must be marked in use); fixed metadata and the journal are never
 * handed out or freed whatever a bitmap says (the kernel's block_validity
 * system zone); an inode whose on-disk slot is still in use is never handed
 * out. Each of these is EFSCORRUPTED before anything is written.
 */
import { Ext4Error, type Location } from '../errors.js';
import type { FsContext as Filesystem } from './fs-context.js';
import { internals } from './internals.js';
import type { Transaction } from './transaction.js';
import { BG_FLAGS, uninitFlagsHonoured, type GroupDesc } from './group-desc.js';
import {
  blockBitmapChecksum, clearBit, computeUninitBlockBitmap, computeUninitInodeBitmap, countFree, inodeBitmapChecksum, setBit, testBit,
} from './bitmap.js';
import { fillBits, findBit } from './bit-runs.js';
import { blocksInGroup, clustersInGroup, flexGroupSize, groupFirstBlock, groupOfBlock } from './geometry.js';
import { checkGroupTables, describeFixed, firstUnmarkedFixed, fixedMetadataExtents, FixedIndex, type FixedExtent, type GroupTables } from './fixed-metadata.js';
import { INODE_FLAGS, InodeBaseLayout } from './inode.js';
import type { Run } from './extent-map.js';
import { FreeRuns, findFreeIn, scanFreeWith, splitAround } from './free-space.js';
export { scanFreeWith, type FreeScanSource } from './free-space.js';


/**
 * What the allocator knows it must never hand out, per open Filesystem: the
 * fixed metadata of every group plus the journal's blocks, and the groups
 * whose block bitmap has been validated against it. Table pointers never
 * change while a filesystem is open, and our own transactions never flip a
 * guarded bit, so both stay true for the session.
 */
export interface AllocGuard {
  index: FixedIndex;
  /** Groups whose block bitmap was validated. */
  validated: Set<number>;
  /** Groups whose inode bitmap was validated. */
  inodesValidated: Set<number>;
}
const guards = new WeakMap<Filesystem, AllocGuard>();

/** The session's guard, built on first use (EFSCORRUPTED if a descriptor points into fixed metadata). */
export async function allocGuard(fs: Filesystem): Promise<AllocGuard> {
  const known = guards.get(fs);
  if (known) return known;
  const sb = fs.sb;
  await fs.loadGroups();
  const tables: GroupTables[] = [];
  for (let g = 0; g < sb.groupCount; g++) tables.push(await fs.group(g));
  checkGroupTables(sb, tables);
  const extents: FixedExtent[] = fixedMetadataExtents(sb, tables);
  for (const e of internals(fs).journal?.map ?? []) {
    const start = Math.max(e.physical, sb.s_first_data_block), end = Math.min(e.physical + e.length, sb.blocksCount);
    if (end > start) extents.push({ start, length: end - start, kind: 'journal', group: groupOfBlock(sb, start) });
  }
  const guard: AllocGuard = { index: new FixedIndex(extents), validated: new Set(), inodesValidated: new Set() };
  guards.set(fs, guard);
  return guard;
}

/**
 * Validate a block bitmap before trusting it (once per group per session,
 * before the session changes it); EFSCORRUPTED naming the group and the
 * bitmap block, rather than allocate from it:
 * - ext4_valid_block_bitmap: the fixed metadata lying in the group (and the
 *   journal) must be marked in use;
 * - mballoc's ext4_mb_generate_buddy ("clusters in bitmap, … in gd; block
 *   bitmap corrupt"): the bitmap's free count must equal the descriptor's —
 *   which catches cleared bits of files' data too, unless the count was
 *   damaged to match (only a full scan, auditSpace, sees that).
 * The kernel then skips the group and sets the error state; we refuse the
 * whole operation and write nothing.
 */
async function validateBlockBitmap(fs: Filesystem, gd: GroupDesc, bm: Uint8Array): Promise<Uint8Array> {
  const guard = guards.get(fs) ?? (await allocGuard(fs));
  const g = gd.group;
  if (guard.validated.has(g)) return bm;
  const sb = fs.sb;
  const where = { structure: 'block bitmap', location: { kind: 'group', group: g, block: gd.blockBitmap } satisfies Location };
  const bad = firstUnmarkedFixed(sb, guard.index, g, bm);
  if (bad) throw new Ext4Error('EFSCORRUPTED', `block bitmap marks block ${bad.block} free, but it is ${describeFixed(bad.extent)}: run e2fsck`, where);
  const free = countFree(bm, clustersInGroup(sb, g));
  if (free !== gd.freeBlocks) throw new Ext4Error('EFSCORRUPTED', `block bitmap has ${free} free blocks, the group descriptor says ${gd.freeBlocks}: run e2fsck`, where);
  guard.validated.add(g);
  return bm;
}

/**
 * As for block bitmaps (e2fsck pass 5's counts): an inode bitmap whose free
 * count differs from the descriptor's is not to be allocated from. Once per
 * group per session, before the session changes it.
 */
async function validateInodeBitmap(fs: Filesystem, gd: GroupDesc, bm: Uint8Array): Promise<void> {
  const guard = guards.get(fs) ?? (await allocGuard(fs));
  if (guard.inodesValidated.has(gd.group)) return;
  const free = countFree(bm, fs.sb.s_inodes_per_group);
  if (free !== gd.freeInodes)
    throw new Ext4Error('EFSCORRUPTED', `inode bitmap has ${free} free inodes, the group descriptor says ${gd.freeInodes}: run e2fsck`, { structure: 'inode bitmap', location: { kind: 'group', group: gd.group, block: gd.inodeBitmap } });
  guard.inodesValidated.add(gd.group);
}

/**
 * Everything the allocators would check, for every group, before a caller's
 * first write: the descriptors' table pointers, each block bitmap (fixed
 * metadata marked, free count matching the descriptor) and each inode bitmap's
 * free count. For callers that commit several transactions (the defragmenter)
 * and must not find a corrupt bitmap half-way. Reads every bitmap (committed
 * state); EFSCORRUPTED / EFSBADCRC on the first problem; writes nothing.
 */
export async function checkAllocatable(fs: Filesystem): Promise<void> {
  const sb = fs.sb;
  await allocGuard(fs);
  const honoured = uninitFlagsHonoured(sb);
  for (let g = 0; g < sb.groupCount; g++) {
    const gd = await fs.group(g);
    await validateBlockBitmap(fs, gd, await fs.blockBitmap(g));
    if (!(honoured && gd.flags & BG_FLAGS.INODE_UNINIT)) await validateInodeBitmap(fs, gd, await fs.inodeBitmap(g));
  }
}

/** Block bitmap of group g as of the transaction (initialising a BLOCK_UNINIT one in it), validated. */
export async function txBlockBitmap(tx: Transaction, g: number, forWrite: boolean): Promise<Uint8Array> {
  const gd = tx.groups.get(g) ?? (await tx.group(g));
  const sb = tx.fs.sb;
  if (uninitFlagsHonoured(sb) && gd.flags & BG_FLAGS.BLOCK_UNINIT) {
    const bm = await validateBlockBitmap(tx.fs, gd, computeUninitBlockBitmap(sb, gd));
    if (!forWrite) return bm;
    // Lazy init: write the computed bitmap and clear the flag (kernel ext4_read_block_bitmap_nowait).
    gd.flags &= ~BG_FLAGS.BLOCK_UNINIT;
    const blk = await tx.block(gd.blockBitmap);
    blk.set(bm);
    freeIndex.delete(blk);
    return blk;
  }
  const inTx = tx.blocks.get(gd.blockBitmap);
  if (inTx) return validateBlockBitmap(tx.fs, gd, inTx);
  // Read through fs.blockBitmap so the on-disk checksum is verified before
  // the transaction modifies the bitmap and re-checksums it (a corrupt
  // bitmap must fail the operation with EFSBADCRC, not be blessed).
  const disk = await validateBlockBitmap(tx.fs, gd, await tx.fs.blockBitmap(g));
  if (forWrite) return tx.block(gd.blockBitmap);
  return disk;
}

/**
 * The descriptor's block bitmap checksum, refreshed at finalise (Transaction.deferDescriptorChecksum):
 * a bulk import allocates in the same bitmap for every file, and one crc of it per transaction does.
 */
function refreshBlockBitmapCsum(tx: Transaction, gd: GroupDesc): void {
  if (!tx.fs.sb.hasMetadataCsum || tx.hasDeferredDescriptorChecksum(gd.blockBitmap)) return;
  const fs = tx.fs;
  tx.deferDescriptorChecksum(gd.blockBitmap, (bm) => { gd.blockBitmapCsum = blockBitmapChecksum(bm, fs.fsSeed, fs.sb.s_clusters_per_group); });
}

/** As refreshBlockBitmapCsum, for an inode bitmap. */
function refreshInodeBitmapCsum(tx: Transaction, gd: GroupDesc): void {
  if (!tx.fs.sb.hasMetadataCsum || tx.hasDeferredDescriptorChecksum(gd.inodeBitmap)) return;
  const fs = tx.fs;
  tx.deferDescriptorChecksum(gd.inodeBitmap, (bm) => { gd.inodeBitmapCsum = inodeBitmapChecksum(bm, fs.fsSeed, fs.sb.s_inodes_per_group); });
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

/**
 * The free-extent index of the write session: the free runs of each block
 * bitmap, keyed by the bitmap's bytes object. The committed bitmaps are the
 * block cache's objects; a transaction changes its own copy (tx.block), whose
 * index markRuns keeps in step with every bit it flips — so the index of a
 * transaction that fails, or whose commit fails, is dropped with its copy,
 * and a committed one's becomes the cache's. Built lazily per group from a
 * verified, validated bitmap (txBlockBitmap), so a defragmenter's calls
 * search runs instead of re-reading (and re-checksumming) every bitmap on
 * the way to free space. Results are exactly those of the bitmap scan.
 */
const freeIndex = new WeakMap<Uint8Array, FreeRuns>();
/** BLOCK_UNINIT groups' runs (computed from the geometry, never changed: the first allocation initialises the group). */
const uninitIndex = new WeakMap<Filesystem, Map<number, FreeRuns>>();

/** The free runs of group g as of the transaction. */
async function groupRuns(tx: Transaction, g: number): Promise<FreeRuns> {
  const fs = tx.fs, sb = fs.sb;
  const gd = await tx.group(g);
  const bits = clustersInGroup(sb, g);
  if (uninitFlagsHonoured(sb) && gd.flags & BG_FLAGS.BLOCK_UNINIT) {
    let m = uninitIndex.get(fs);
    if (!m) uninitIndex.set(fs, (m = new Map()));
    let runs = m.get(g);
    if (!runs) m.set(g, (runs = FreeRuns.fromBitmap(await txBlockBitmap(tx, g, false), bits)));
    return runs;
  }
  const current = await tx.readBlock(gd.blockBitmap);
  const known = freeIndex.get(current);
  // (an index is only ever built from a verified, validated bitmap; the count check guards
  // against a bitmap changed behind markRuns' back)
  if (known && known.count === gd.freeBlocks) return known;
  const bm = await txBlockBitmap(tx, g, false);
  const runs = FreeRuns.fromBitmap(bm, bits);
  freeIndex.set(bm, runs);
  return runs;
}

/** The index kept for a bitmap's bytes, if any (tests check it against the bitmap). */
export function indexedFreeRuns(bm: Uint8Array): FreeRuns | undefined {
  return freeIndex.get(bm);
}

/** The index of a transaction's writable bitmap copy, before markRuns flips its bits. */
function writableRuns(bm: Uint8Array, bits: number): FreeRuns {
  let runs = freeIndex.get(bm);
  if (!runs) freeIndex.set(bm, (runs = FreeRuns.fromBitmap(bm, bits)));
  return runs;
}

/** Free runs as of the transaction (its own allocations and lazily initialised groups included). */
async function scanFree(tx: Transaction, fs: Filesystem, from: number, to: number, fn: (start: number, length: number) => boolean | void): Promise<void> {
  const guard = guards.get(fs) ?? (await allocGuard(fs));
  const group = async (g: number) => {
    const gd = await tx.group(g);
    // The scan trusts a descriptor that says "all free" without reading the bitmap: a group
    // holding fixed metadata or journal blocks can never be, so such a count is corrupt.
    if (!guard.validated.has(g)) {
      const first = groupFirstBlock(fs.sb, g), n = blocksInGroup(fs.sb, g);
      const guarded = n - guard.index.subtract(first, n).reduce((a, r) => a + r.length, 0);
      if (guarded > 0 && gd.freeBlocks >= clustersInGroup(fs.sb, g))
        throw new Ext4Error('EFSCORRUPTED', `the group descriptor says all ${gd.freeBlocks} blocks are free, but ${guarded} of them are fixed metadata or journal: run e2fsck`, { structure: 'group descriptor', location: { kind: 'group', group: g } });
    }
    return gd;
  };
  await scanFreeWith(fs.sb, { group, bitmap: (g) => txBlockBitmap(tx, g, false), runs: (g) => groupRuns(tx, g) }, from, to, fn);
}

/**
 * Find free space per FindOptions. Returns runs (not yet allocated). Without
 * `contiguous`, collects runs first-fit from the goal (wrapping) until
 * `length` is reached or space runs out.
 */
export async function findFree(tx: Transaction, opts: FindOptions): Promise<Run[]> {
  const fs = tx.fs;
  const sb = fs.sb;
  const exclude = opts.exclude;
  const { index } = guards.get(fs) ?? (await allocGuard(fs));
  // Fixed metadata and the journal are never free, whatever the bitmap (or a descriptor's free
  // count) says; excluded blocks (rare: only with pending frees) are cut out of a run.
  const usable = (s: number, l: number): Run[] => {
    const pieces = index.subtract(s, l);
    return exclude ? pieces.flatMap((p) => splitAround(p.start, p.length, exclude)) : pieces;
  };
  return findFreeIn((from, to, fn) => scanFree(tx, fs, from, to, fn), { first: sb.s_first_data_block, end: sb.blocksCount }, usable, opts);
}

/**
 * Flip the bitmap bits of runs (allocate: set, else clear), group by group,
 * keeping the group counts, bitmap checksums and the superblock delta exact.
 * A bit already in the target state is corruption: nothing is ever allocated
 * or freed twice.
 */
async function markRuns(tx: Transaction, runs: readonly Run[], allocate: boolean): Promise<void> {
  const sb = tx.fs.sb;
  const { index } = guards.get(tx.fs) ?? (await allocGuard(tx.fs));
  // Bitmap checksums once per group touched, after all the runs (a finalise frees thousands of
  // runs in a few groups: one crc of the bitmap each, not one per run).
  const touched = new Map<number, { gd: GroupDesc; bm: Uint8Array }>();
  // (indexed and forEach: interpreted in a fresh process, for-of allocates an iterator result per element)
  for (let i = 0; i < runs.length; i++) {
    const r = runs[i]!;
    let b = r.start;
    const end = r.start + r.length;
    if (r.start < sb.s_first_data_block || end > sb.blocksCount)
      throw new Ext4Error(allocate ? 'EINVAL' : 'EFSCORRUPTED', `${allocate ? 'allocating' : 'freeing'} run ${r.start}+${r.length} outside the filesystem`);
    // The kernel's block_validity check (ext4_inode_block_valid) on both paths: a file claiming
    // fixed metadata is corrupt, and freeing it would let the next allocation overwrite it.
    const hit = index.within(r.start, r.length)[0];
    if (hit)
      throw new Ext4Error('EFSCORRUPTED', `${allocate ? 'allocating' : 'freeing'} run ${r.start}+${r.length} would ${allocate ? 'hand out' : 'release'} ${describeFixed(hit)}`, { structure: 'block bitmap', location: { kind: 'block', block: Math.max(r.start, hit.start) } });
    while (b < end) {
      const g = groupOfBlock(sb, b);
      const first = groupFirstBlock(sb, g);
      const stop = Math.min(end, first + blocksInGroup(sb, g));
      const gd = tx.groups.get(g) ?? (await tx.group(g));
      const bm = await txBlockBitmap(tx, g, true);
      markInGroup(tx, g, gd, bm, first, b, stop, allocate);
      touched.set(g, { gd, bm });
      b = stop;
    }
  }
  touched.forEach((t) => refreshBlockBitmapCsum(tx, t.gd));
}

/**
 * markRuns' step: blocks [b, stop) of group g (first block `first`) flipped in its writable
 * bitmap `bm`, the group's count and the superblock delta kept (the caller refreshes the
 * checksum once per group).
 */
function markInGroup(tx: Transaction, g: number, gd: GroupDesc, bm: Uint8Array, first: number, b: number, stop: number, allocate: boolean): void {
  const runs = writableRuns(bm, clustersInGroup(tx.fs.sb, g));
  // Bit indices as int32 (block numbers may arrive as boxed doubles: x++ on one allocates).
  const i0 = (b - first) | 0, i1 = (stop - first) | 0;
  // (word-wise: a finalise frees whole groups' worth of bits, in a fresh process's cold code)
  const twice = findBit(bm, i0, i1, allocate);
  if (twice >= 0)
    throw new Ext4Error('EFSCORRUPTED', `block ${first + twice} ${allocate ? 'is already in use' : 'freed twice'}`, { structure: 'block bitmap', location: { kind: 'group', group: g } });
  fillBits(bm, i0, i1, allocate);
  const n = stop - b;
  // (cannot fail: every bit was checked above; if it did, the index is rebuilt from the bitmap)
  if (!(allocate ? runs.take(b - first, n) : runs.give(b - first, n))) freeIndex.delete(bm);
  if (allocate && gd.freeBlocks < n) throw new Ext4Error('EFSCORRUPTED', `group ${g} free count ${gd.freeBlocks} below allocation`, { structure: 'group descriptor', location: { kind: 'group', group: g } });
  gd.freeBlocks += allocate ? -n : n;
  tx.freeBlocksDelta += allocate ? -n : n;
}

/** Mark runs allocated. */
export async function markAllocated(tx: Transaction, runs: readonly Run[]): Promise<void> {
  await markRuns(tx, runs, true);
}

/** Clear the bits of runs (called at finalise for pending frees). */
export async function markFree(tx: Transaction, runs: readonly Run[]): Promise<void> {
  await markRuns(tx, runs, false);
}

/**
 * Apply the transaction's pending frees (Transaction.finalise hook), sorted and adjacent runs
 * merged first: a bulk removal frees thousands of files laid end to end, which are then a few
 * runs to mark instead of one per file — and `tx.pendingFree` is left holding those runs (the
 * same blocks), so what reads it after (the freed images dropped, the journal's revokes) walks
 * a few runs too. Runs that overlap are a block freed twice (corruption).
 */
export async function applyPendingFrees(tx: Transaction): Promise<void> {
  const sorted = tx.pendingFree.map((r) => ({ start: r.start, length: r.length })).sort((a, b) => a.start - b.start);
  const runs: Run[] = [];
  // (indexed: interpreted in a fresh process, for-of allocates an iterator result per element)
  for (let i = 0; i < sorted.length; i++) {
    const r = sorted[i]!;
    const last = runs[runs.length - 1];
    if (last && r.start < last.start + last.length)
      throw new Ext4Error('EFSCORRUPTED', `block ${r.start} freed twice`, { structure: 'block bitmap', location: { kind: 'group', group: groupOfBlock(tx.fs.sb, r.start) } });
    if (last && last.start + last.length === r.start) last.length += r.length;
    else runs.push(r);
  }
  await markFree(tx, runs);
  tx.pendingFree.length = 0;
  for (let i = 0; i < runs.length; i++) tx.pendingFree.push(runs[i]!);
}

/**
 * A bulk writer's usual request answered without the scan: first fit from the goal, as findFree
 * gives it, when it is one run inside a group this transaction already allocated from (its
 * bitmap copy has its index) — groups on the way that are full are passed by their descriptor
 * (the scan skips them the same way). No fixed metadata in the run (a validated bitmap marks it
 * anyway). Allocated by markAllocated, as findFree's answer is. Null: anything else (a group not
 * yet touched, a run too short, wrapping), for findFree to answer.
 */
async function allocateAtGoal(tx: Transaction, opts: FindOptions): Promise<Run | null> {
  const guard = atGoalGuard(tx, opts);
  if (!guard) return null;
  const sb = tx.fs.sb;
  for (let g = groupOfBlock(sb, opts.goal); g < sb.groupCount; g++) {
    // (the transaction's copy when it has one; else the committed descriptor, read only: no copy taken)
    const got = goalRunIn(tx, guard, g, tx.groups.get(g) ?? (await tx.fs.group(g)), opts.goal, opts.length);
    if (got !== NEXT_GROUP) return got;
  }
  return null;
}

/**
 * allocateAtGoal's answer without an await, when every group it looks at is one the transaction
 * holds (a bulk writer's usual case): the run, allocated; null: no quick answer; undefined: a
 * group on the way is not in the transaction (ask allocateBlocks). A fresh import's per-file
 * allocateBlocks → allocateAtGoal → markAllocated → markRuns → txBlockBitmap → validateBlockBitmap
 * were six async calls and their promises for one run in a bitmap already at hand.
 */
export function allocateAtGoalNow(tx: Transaction, opts: FindOptions): Run | null | undefined {
  const guard = atGoalGuard(tx, opts);
  if (!guard) return null;
  const sb = tx.fs.sb;
  for (let g = groupOfBlock(sb, opts.goal); g < sb.groupCount; g++) {
    const gd = tx.groups.get(g);
    if (gd === undefined) return undefined;
    const got = goalRunIn(tx, guard, g, gd, opts.goal, opts.length);
    if (got !== NEXT_GROUP) return got;
  }
  return null;
}

/** The session's guard when allocateAtGoal may answer `opts` at all, else null. */
function atGoalGuard(tx: Transaction, opts: FindOptions): AllocGuard | null {
  if (opts.exact || opts.contiguous || opts.exclude || tx.pendingFree.length !== 0) return null;
  const sb = tx.fs.sb;
  const goal = opts.goal;
  const guard = guards.get(tx.fs);
  if (!guard || !Number.isSafeInteger(goal) || !(opts.length > 0) || goal < sb.s_first_data_block || goal >= sb.blocksCount) return null;
  return guard;
}

/** goalRunIn: group g has nothing at or past the goal, the search goes on in the next group. */
const NEXT_GROUP = false;

/**
 * allocateAtGoal in group g (descriptor gd): the first free run at or past `goal`, allocated when it
 * is `n` blocks long; NEXT_GROUP when the group has no free block there; null: no quick answer.
 */
function goalRunIn(tx: Transaction, guard: AllocGuard, g: number, gd: GroupDesc, goal: number, n: number): Run | null | typeof NEXT_GROUP {
  if (gd.freeBlocks === 0) return NEXT_GROUP;
  const sb = tx.fs.sb;
  const bits = clustersInGroup(sb, g);
  const first = groupFirstBlock(sb, g);
  const bm = tx.groups.has(g) ? tx.blocks.get(gd.blockBitmap) : undefined;
  const runs = bm && freeIndex.get(bm);
  if (!bm || !runs || runs.count !== gd.freeBlocks || gd.freeBlocks >= bits || bits !== blocksInGroup(sb, g) || !guard.validated.has(g)) return null;
  // (an initialised group: txBlockBitmap would give markRuns this same image, validated)
  if (uninitFlagsHonoured(sb) && gd.flags & BG_FLAGS.BLOCK_UNINIT) return null;
  let i0 = -1, len = 0;
  runs.forEach(Math.max(0, goal - first) | 0, bits, (s, l) => {
    if (i0 < 0) {
      i0 = s;
      len = l;
    }
  });
  if (i0 < 0) return NEXT_GROUP; // (free blocks only before the goal: the scan goes on to the next group too)
  if (len < n || guard.index.within(first + i0, n).length !== 0) return null;
  const i1 = (i0 + n) | 0;
  if (findBit(bm, i0, i1, true) >= 0) return null; // (the index says free: a mismatch goes the long way, which reports it)
  const run = { start: first + i0, length: n };
  // markAllocated's work for one run inside one group whose validated bitmap the transaction holds.
  markInGroup(tx, g, gd, bm, first, run.start, run.start + n, true);
  refreshBlockBitmapCsum(tx, gd);
  return run;
}

/** Find and allocate; throws ENOSPC (nothing changed) unless `partial` allows fewer blocks. */
export async function allocateBlocks(tx: Transaction, opts: FindOptions & { partial?: boolean }): Promise<Run[]> {
  const quick = await allocateAtGoal(tx, opts);
  if (quick) return [quick];
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
    const gd = tx.groups.get(g) ?? (await tx.group(g));
    if (gd.freeInodes === 0) continue;
    let bm: Uint8Array;
    const honoured = uninitFlagsHonoured(sb);
    // Slots that may hold garbage rather than inodes: an uninitialised group's, or those past
    // bg_itable_unused, unless the table is known zeroed (lazy itable init).
    const zeroed = !honoured || (gd.flags & BG_FLAGS.INODE_ZEROED) !== 0;
    const uninit = honoured && (gd.flags & BG_FLAGS.INODE_UNINIT) !== 0;
    const everUsed = uninit ? 0 : honoured ? Math.max(0, ipg - gd.itableUnused) : ipg;
    if (uninit) {
      bm = await tx.block(gd.inodeBitmap);
      bm.set(computeUninitInodeBitmap(sb));
      gd.flags &= ~BG_FLAGS.INODE_UNINIT;
    } else bm = tx.ownBlock(gd.inodeBitmap) ?? (await txInodeBitmap(tx, g));
    if (!guards.get(fs)?.inodesValidated.has(g)) await validateInodeBitmap(fs, gd, bm);
    for (let i = firstClear(bm, 0, ipg); i < ipg; i = firstClear(bm, i + 1, ipg)) {
      const ino = g * ipg + i + 1;
      // The kernel's "reserved inode found cleared" (ext4_error, the group's bitmap marked corrupt).
      if (ino < sb.s_first_ino) throw new Ext4Error('EFSCORRUPTED', `reserved inode ${ino} is marked free: run e2fsck`, inodeBitmapWhere(g, gd));
      // (what the transaction knows without an await: one async call less per create)
      const { block, offset } = tx.knownInodeLocation(ino) ?? (await tx.inodeLocation(ino));
      if (zeroed || i < everUsed) {
        const data = await tx.slotImage(ino, block);
        if (slotInUse(sb, data.subarray(offset, offset + 128)))
          throw new Ext4Error('EFSCORRUPTED', `inode ${ino} is marked free but its on-disk inode is in use: run e2fsck`, inodeBitmapWhere(g, gd));
      }
      claimInode(tx, gd, bm, i, opts.dir === true, honoured);
      // Zero the slot: the table may hold garbage if not ITABLE_ZEROED, and a reused slot holds the old inode.
      // (a free slot: the block's late inodes, other slots, stay late)
      tx.forgetInode(ino);
      (tx.slotBlockNow(block) ?? (await tx.slotBlock(block))).fill(0, offset, offset + sb.s_inode_size);
      return ino;
    }
  }
  throw new Ext4Error('ENOSPC', 'no free inodes');
}

/** allocateInode's bookkeeping for slot `i` of group `gd`: its bit, the counts, the unused-table mark. */
function claimInode(tx: Transaction, gd: GroupDesc, bm: Uint8Array, i: number, dir: boolean, honoured: boolean): void {
  const ipg = tx.fs.sb.s_inodes_per_group;
  setBit(bm, i);
  gd.freeInodes -= 1;
  tx.freeInodesDelta -= 1;
  if (dir) gd.usedDirs += 1;
  if (honoured && i >= ipg - gd.itableUnused) gd.itableUnused = ipg - i - 1;
  refreshInodeBitmapCsum(tx, gd);
}

/**
 * allocateInode's answer without an await, when everything it would look at is in the
 * transaction already (the goal group's descriptor, its validated bitmap, the free slot's table
 * block: a bulk create's usual case): the same inode, claimed and zeroed the same way; -1 (nothing
 * changed) when anything is not at hand or is not the plain case (an uninitialised group, a full
 * one, a reserved or in-use slot: allocateInode then takes it, and throws where it throws).
 * A fresh import's creates were ~20,000 awaited calls with their promises.
 */
export function allocateInodeNow(tx: Transaction, opts: { goalGroup: number; dir?: boolean }): number {
  const fs = tx.fs;
  const sb = fs.sb;
  const ipg = sb.s_inodes_per_group;
  const g = Math.min(Math.max(opts.goalGroup, 0), sb.groupCount - 1);
  const gd = tx.groups.get(g);
  if (!gd || gd.freeInodes === 0) return -1;
  const honoured = uninitFlagsHonoured(sb);
  if (honoured && (gd.flags & BG_FLAGS.INODE_UNINIT) !== 0) return -1;
  if (!guards.get(fs)?.inodesValidated.has(g)) return -1;
  const bm = tx.ownBlock(gd.inodeBitmap);
  if (!bm) return -1;
  const i = firstClear(bm, 0, ipg);
  const ino = g * ipg + i + 1;
  if (i >= ipg || ino < sb.s_first_ino) return -1;
  const at = tx.knownInodeLocation(ino);
  const image = at && tx.slotBlockNow(at.block);
  if (!at || !image) return -1;
  const zeroed = !honoured || (gd.flags & BG_FLAGS.INODE_ZEROED) !== 0;
  const everUsed = honoured ? Math.max(0, ipg - gd.itableUnused) : ipg;
  if (zeroed || i < everUsed) {
    const data = tx.slotImageNow(ino, at.block);
    if (!data || slotInUse(sb, data.subarray(at.offset, at.offset + 128))) return -1;
  }
  claimInode(tx, gd, bm, i, opts.dir === true, honoured);
  tx.forgetInode(ino);
  image.fill(0, at.offset, at.offset + sb.s_inode_size);
  return ino;
}

/** Where an inode bitmap error is (made only when thrown: a closure per allocation was a context per create). */
function inodeBitmapWhere(g: number, gd: GroupDesc): { structure: string; location: Location } {
  return { structure: 'inode bitmap', location: { kind: 'group', group: g, block: gd.inodeBitmap } };
}

/** The first clear bit of bm in [from, end): whole set words skipped (a filling group is mostly set bits). */
function firstClear(bm: Uint8Array, from: number, end: number): number {
  const i = findBit(bm, from, end, false);
  return i < 0 ? end : i;
}

/**
 * Is the on-disk inode in a slot the bitmap calls free still in use? Links,
 * or a mode with no deletion time (an open-unlinked file or the last orphan),
 * or a mode with a "deletion time" that is an orphan-list link (e2fsck's
 * low-dtime rule, only meaningful once mkfs time is past the inode count).
 *
 * Handing it out anyway would overwrite a live inode (lost+found, issue 8
 * item 3). The kernel has no such read on its fast path, but when it meets
 * this state ("failed to insert inode: doubly allocated?") it reports the
 * error and fails the allocation instead of skipping: its recently_deleted
 * skip is a preference on a consistent bitmap, not a repair. We do the same
 * (EFSCORRUPTED): the group's counts come from the same wrong bitmap.
 */
function slotInUse(sb: Filesystem['sb'], raw: Uint8Array): boolean {
  // (three fields read in place: a free slot per create, no whole decode)
  if (InodeBaseLayout.get(raw, 'i_links_count') > 0) return true;
  if (InodeBaseLayout.get(raw, 'i_mode') === 0) return false;
  const dtime = InodeBaseLayout.get(raw, 'i_dtime');
  if (dtime === 0) return true;
  return sb.s_mkfs_time >= sb.s_inodes_count && dtime <= sb.s_inodes_count;
}

/** Release an inode: bitmap bit, counts, checksum (the caller clears the inode itself). */
export async function freeInode(tx: Transaction, ino: number, wasDir: boolean): Promise<void> {
  await freeInodes(tx, [ino], wasDir);
}

/** Release inodes (all directories or none), each group's bitmap checksummed once after its bits (bulk removals free thousands). */
export async function freeInodes(tx: Transaction, inos: readonly number[], wereDirs: boolean): Promise<void> {
  const fs = tx.fs;
  const sb = fs.sb;
  const touched = new Map<number, { gd: GroupDesc; bm: Uint8Array }>();
  for (const ino of inos) {
    const g = Math.floor((ino - 1) / sb.s_inodes_per_group);
    const i = (ino - 1) % sb.s_inodes_per_group;
    let t = touched.get(g);
    if (!t) touched.set(g, (t = { gd: await tx.group(g), bm: await txInodeBitmap(tx, g) }));
    if (!testBit(t.bm, i)) throw new Ext4Error('EFSCORRUPTED', `inode ${ino} freed twice`, { structure: 'inode bitmap', location: { kind: 'group', group: g } });
    clearBit(t.bm, i);
    t.gd.freeInodes += 1;
    tx.freeInodesDelta += 1;
    if (wereDirs) t.gd.usedDirs -= 1;
  }
  for (const { gd } of touched.values()) refreshInodeBitmapCsum(tx, gd);
}


// ---------------------------------------------------------------------------------------------- inode goals (ialloc.c)

/** A group descriptor as of `tx` without taking a private copy (a copy would be written back). */
async function peekGroup(tx: Transaction, g: number): Promise<GroupDesc> {
  return tx.groups.get(g) ?? tx.fs.group(g);
}

/**
 * The kernel's in-memory i_last_alloc_group, per open filesystem and parent
 * directory: where the last inode created under that directory went (reset
 * at every open, as it is at every mount).
 */
const lastAllocGroup = new WeakMap<object, Map<number, number>>();

function lastAllocOf(tx: Transaction, dir: number): number | undefined {
  return lastAllocGroup.get(tx.fs)?.get(dir);
}

/** Remember where an inode under `dir` went (__ext4_new_inode's got_group). */
export function noteInodeGroup(tx: Transaction, dir: number, group: number): void {
  let m = lastAllocGroup.get(tx.fs);
  if (!m) lastAllocGroup.set(tx.fs, (m = new Map()));
  m.set(dir, group);
}

interface OrlovStats {
  freeInodes: number;
  freeBlocks: number;
  usedDirs: number;
}

/** get_orlov_stats: the sums over flex group `fg` (or group `fg` without flex_bg). */
async function orlovStats(tx: Transaction, fg: number, flex: number): Promise<OrlovStats> {
  const s: OrlovStats = { freeInodes: 0, freeBlocks: 0, usedDirs: 0 };
  const n = tx.fs.sb.groupCount;
  for (let g = fg * flex; g < Math.min(n, (fg + 1) * flex); g++) {
    const gd = await peekGroup(tx, g);
    s.freeInodes += gd.freeInodes;
    s.freeBlocks += gd.freeBlocks;
    s.usedDirs += gd.usedDirs;
  }
  return s;
}

/** What the inode goal needs to know about the new inode. */
export interface InodeGoalRequest {
  /** The parent directory's inode number and flags (TOPDIR). */
  parent: { ino: number; flags: number };
  dir: boolean;
  /** half_md4 of the new entry's name with the filesystem's seed: where Orlov starts looking for a top-level directory. */
  nameHash?: number;
}

const ROOT_INO = 2;

/**
 * find_group_orlov (fs/ext4/ialloc.c). A directory under the root (or a
 * TOPDIR one) goes to the (flex) group with the fewest directories among
 * those with at least the average free inodes and blocks, the search
 * starting at the name's hash, so top-level directories spread out; deeper
 * directories (and files whose parent's flex group is full) stay near the
 * parent unless its (flex) group already holds too many directories or too
 * little room. Inodes are packed at the start of the chosen flex group.
 */
async function findGroupOrlov(tx: Transaction, req: InodeGoalRequest): Promise<number> {
  const sb = tx.fs.sb;
  const real = sb.groupCount;
  const flex = flexGroupSize(sb);
  const ipg = sb.s_inodes_per_group;
  const ngroups = Math.ceil(real / flex);
  let parentGroup = Math.floor(Math.floor((req.parent.ino - 1) / ipg) / flex);
  let freei = 0, freeb = 0, ndirs = 0;
  for (let g = 0; g < real; g++) {
    const gd = await peekGroup(tx, g);
    freei += gd.freeInodes;
    freeb += gd.freeBlocks;
    ndirs += gd.usedDirs;
  }
  const avefreei = Math.floor(freei / ngroups);
  const avefreeb = Math.floor(freeb / ngroups);
  const packInFlex = async (fg: number): Promise<number | null> => {
    if (flex === 1) return fg;
    for (let i = 0; i < flex && fg * flex + i < real; i++) if ((await peekGroup(tx, fg * flex + i)).freeInodes) return fg * flex + i;
    return null;
  };
  if (req.dir && (req.parent.ino === ROOT_INO || req.parent.flags & INODE_FLAGS.TOPDIR)) {
    let bestNdir = ipg, grp = -1;
    const start = req.nameHash !== undefined ? (req.nameHash >>> 0) % ngroups : parentGroup;
    for (let i = 0; i < ngroups; i++) {
      const g = (start + i) % ngroups;
      const st = await orlovStats(tx, g, flex);
      if (!st.freeInodes || st.usedDirs >= bestNdir || st.freeInodes < avefreei || st.freeBlocks < avefreeb) continue;
      grp = g;
      bestNdir = st.usedDirs;
    }
    if (grp >= 0) {
      const got = await packInFlex(grp);
      if (got !== null) return got;
    }
  } else {
    const maxDirs = Math.floor(ndirs / ngroups) + Math.floor((ipg * flex) / 16);
    const minInodes = Math.max(1, avefreei - Math.floor((ipg * flex) / 4));
    const minBlocks = avefreeb - Math.floor((sb.s_blocks_per_group * flex) / 4);
    const last = lastAllocOf(tx, req.parent.ino);
    if (last !== undefined) parentGroup = Math.floor(last / flex);
    for (let i = 0; i < ngroups; i++) {
      const g = (parentGroup + i) % ngroups;
      const st = await orlovStats(tx, g, flex);
      if (st.usedDirs >= maxDirs || st.freeInodes < minInodes || st.freeBlocks < minBlocks) continue;
      const got = await packInFlex(g);
      if (got !== null) return got;
      break;
    }
  }
  // fallback: the first group from the parent's with at least the average free inodes, then any.
  const pg = Math.floor((req.parent.ino - 1) / ipg);
  for (const ave of [Math.floor(freei / real), 0]) {
    for (let i = 0; i < real; i++) {
      const g = (pg + i) % real;
      const f = (await peekGroup(tx, g)).freeInodes;
      if (f && f >= ave) return g;
    }
  }
  return pg;
}

/**
 * find_group_other: a file goes into its parent's flex group (the first of
 * its groups with a free inode), else the last group used under that parent,
 * else Orlov's search; without flex_bg the parent's group if it has free
 * inodes and blocks, else a quadratic hash from it, else any group with a
 * free inode.
 */
async function findGroupOther(tx: Transaction, req: InodeGoalRequest): Promise<number> {
  const sb = tx.fs.sb;
  const n = sb.groupCount;
  const flex = flexGroupSize(sb);
  const pg = Math.floor((req.parent.ino - 1) / sb.s_inodes_per_group);
  if (flex > 1) {
    const tries = [pg];
    const last = lastAllocOf(tx, req.parent.ino);
    if (last !== undefined) tries.push(last);
    for (const t of tries) {
      const first = t - (t % flex);
      for (let g = first; g < Math.min(n, first + flex); g++) if ((await peekGroup(tx, g)).freeInodes) return g;
    }
    return findGroupOrlov(tx, { ...req, dir: false });
  }
  const ok = async (g: number, blocks: boolean) => {
    const gd = await peekGroup(tx, g);
    return gd.freeInodes > 0 && (!blocks || gd.freeBlocks > 0);
  };
  if (await ok(pg, true)) return pg;
  let g = (pg + req.parent.ino) % n;
  for (let i = 1; i < n; i <<= 1) {
    g += i;
    if (g >= n) g -= n;
    if (await ok(g, true)) return g;
  }
  g = pg;
  for (let i = 0; i < n; i++) {
    if (++g >= n) g = 0;
    if (await ok(g, false)) return g;
  }
  return pg;
}

/**
 * inodeGoalGroup's answer for a new non-directory under `parent` when it needs no await (the
 * parent's flex group already in the transaction: a bulk create's usual case), else -1.
 */
export function fileGoalGroupNow(tx: Transaction, parent: number): number {
  return parentFlexGroup(tx, parent);
}

/** The group a new inode should go to, as __ext4_new_inode chooses it (Orlov for directories). */
export function inodeGoalGroup(tx: Transaction, req: InodeGoalRequest): Promise<number> {
  if (req.dir) return findGroupOrlov(tx, req);
  const quick = parentFlexGroup(tx, req.parent.ino);
  return quick >= 0 ? Promise.resolve(quick) : findGroupOther(tx, req);
}

/**
 * findGroupOther's first answer without an await: the first group with a free inode in the
 * parent's flex group, when every group it looks at is already in this transaction (a bulk
 * create's case); -1 when that does not settle it.
 */
function parentFlexGroup(tx: Transaction, parent: number): number {
  const sb = tx.fs.sb;
  const flex = flexGroupSize(sb);
  if (flex <= 1) return -1;
  const pg = Math.floor((parent - 1) / sb.s_inodes_per_group);
  const first = pg - (pg % flex), end = Math.min(sb.groupCount, first + flex);
  for (let g = first; g < end; g++) {
    const gd = tx.groups.get(g);
    if (!gd) return -1;
    if (gd.freeInodes) return g;
  }
  return -1;
}

/**
 * ext4_inode_to_goal_block: the first block of the inode's group — with
 * flex groups of 4 or more, of its flex group, a regular file starting one
 * group further in (the flex group's first group is kept for directories).
 * (The kernel adds a per-process colour only without delalloc.)
 */
export function inodeGoalBlock(sb: Filesystem['sb'], ino: number, regular: boolean): number {
  let g = Math.floor((ino - 1) / sb.s_inodes_per_group);
  const flex = flexGroupSize(sb);
  if (flex >= 4) {
    g -= g % flex;
    if (regular) g++;
  }
  if (g >= sb.groupCount) g = 0;
  return groupFirstBlock(sb, g);
}
