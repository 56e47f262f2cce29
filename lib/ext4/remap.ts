/**
 * Replacing an inode's extent map inside a transaction: edit the tree
 * locally (extent-edit.ts), allocate/free tree blocks, keep i_blocks exact
 * (data + tree blocks + xattr block, ext4-format.md §6.2), and enforce the
 * per-inode preconditions the proposal's calls share (semantics.md §0).
 */
import { Ext4Error } from '../errors.js';
import type { Transaction } from './transaction.js';
import type { FileMap } from './file-map.js';
import { INODE_FLAGS, encodeTime, isExtentMapped, type Inode } from './inode.js';
import { RO_COMPAT } from './superblock.js';
import { editExtentTree } from './extent-edit.js';
import { editBlockMap, BLOCKMAP_MAX_PHYSICAL } from './blockmap-edit.js';
import { normalise, mappedBlocks, type Run } from './extent-map.js';
import { produceOrderedData } from './commit.js';
import { allocateBlocks } from './alloc.js';
import type { Extent } from './extents.js';

/** semantics.md §0: the inode checks every mutating call makes. */
export function assertMutableRegularFile(inode: Inode, sb: { s_first_ino: number; s_inodes_count: number }, what = 'file', opts: { blockMapped?: boolean } = {}): void {
  const where = { structure: `inode ${inode.ino}` };
  const firstIno = sb.s_first_ino;
  // An orphan (links 0, e.g. a defrag donor) is still in use: on the old orphan list its i_dtime
  // holds the next orphan's inode number, which e2fsck tells from a deletion time by size.
  const deleted = inode.mode === 0 || (inode.linksCount === 0 && inode.dtime > sb.s_inodes_count);
  if (deleted) throw new Ext4Error('ENOENT', `${what} inode ${inode.ino} is not in use`, where);
  if (inode.type !== 'file') throw new Ext4Error('EINVAL', `${what} inode ${inode.ino} is not a regular file`, where);
  if (inode.ino < firstIno) throw new Ext4Error('EINVAL', `${what} inode ${inode.ino} is a reserved inode`, where);
  if (inode.flags & (INODE_FLAGS.IMMUTABLE | INODE_FLAGS.APPEND)) throw new Ext4Error('EPERM', `${what} inode ${inode.ino} is immutable or append-only`, where);
  if (inode.flags & (INODE_FLAGS.ENCRYPT | INODE_FLAGS.VERITY | INODE_FLAGS.INLINE_DATA | INODE_FLAGS.JOURNAL_DATA))
    throw new Ext4Error('EOPNOTSUPP', `${what} inode ${inode.ino} is encrypted, verity, inline-data or data-journaled`, where);
  // `blockMapped`: the caller's edits go through remapInode, which writes block maps too.
  if (!(inode.flags & INODE_FLAGS.EXTENTS) && !opts.blockMapped) throw new Ext4Error('EOPNOTSUPP', `${what} inode ${inode.ino} is block-mapped (no extents)`, where);
}

/** The inode's extent map as of the transaction (tree blocks read through it). */
export async function txFileMap(tx: Transaction, inode: Inode): Promise<FileMap> {
  const map = await tx.fs.fileMap(inode, (n) => tx.readBlock(n));
  assertNoSelfOverlap(inode.ino, map);
  return map;
}

/**
 * A map about to be edited must not claim a block twice (two extents, or an extent and a tree
 * node, on the same physical block — e2fsck pass 1B's "multiply-claimed"): freeing one claim
 * would leave the other owning a free block. The tree walk checks logical order, not this.
 */
function assertNoSelfOverlap(ino: number, map: FileMap): void {
  const runs: [number, number][] = map.extents.map((e) => [e.physical, e.length]);
  // (indexed, no destructuring: interpreted in a fresh process, for-of and `const [a, b] = t`
  // allocate an iterator result per element; this runs per move)
  const meta = map.metadataBlocks;
  for (let i = 0; i < meta.length; i++) runs.push([meta[i]!, 1]);
  if (runs.length < 2) return;
  runs.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < runs.length; i++) {
    const p = runs[i - 1]!, s = runs[i]![0];
    if (s < p[0] + p[1])
      throw new Ext4Error('EFSCORRUPTED', `inode ${ino} maps block ${s} twice`, { structure: `inode ${ino} block map`, location: { kind: 'block', block: s } });
  }
}

/** Set i_blocks from a block count (sectors; HUGE_FILE rules as the kernel). */
export function setIBlocks(tx: Transaction, inode: Inode, fsBlocks: number): void {
  const sb = tx.fs.sb;
  const sectors = fsBlocks * (tx.fs.blockSize / 512);
  const huge = (sb.s_feature_ro_compat & RO_COMPAT.HUGE_FILE) !== 0;
  inode.flags &= ~INODE_FLAGS.HUGE_FILE;
  if (sectors < 2 ** 32) {
    inode.base.i_blocks_lo = sectors;
    inode.base.i_blocks_hi = 0;
  } else if (huge && sectors < 2 ** 48) {
    inode.base.i_blocks_lo = sectors % 2 ** 32;
    inode.base.i_blocks_hi = Math.floor(sectors / 2 ** 32);
  } else if (huge) {
    inode.flags |= INODE_FLAGS.HUGE_FILE;
    inode.base.i_blocks_lo = fsBlocks % 2 ** 32;
    inode.base.i_blocks_hi = Math.floor(fsBlocks / 2 ** 32);
  } else throw new Ext4Error('EFBIG', `inode ${inode.ino} would own more than 2^32 sectors without huge_file`);
  inode.base.i_flags = inode.flags;
  inode.blocks512 = sectors;
}

export function setSize(tx: Transaction, inode: Inode, size: number): void {
  inode.size = size;
  inode.base.i_size_lo = size % 2 ** 32;
  inode.base.i_size_high = Math.floor(size / 2 ** 32);
  if (size >= 2 ** 31 && !(tx.fs.sb.s_feature_ro_compat & RO_COMPAT.LARGE_FILE)) tx.sbEdits.push((sb) => { sb.s_feature_ro_compat |= RO_COMPAT.LARGE_FILE; });
}

/** ctime (and optionally mtime) = the filesystem's clock (Filesystem.now), and bump the change counter (i_version). */
export function touch(tx: Transaction, inode: Inode, opts: { mtime?: boolean } = {}): void {
  const t = tx.fs.now();
  const e = encodeTime(t);
  inode.base.i_ctime = e.base;
  inode.ctime = t;
  if (inode.extraIsize >= 8) inode.extra.i_ctime_extra = e.extra;
  if (opts.mtime) {
    inode.base.i_mtime = e.base;
    inode.mtime = t;
    if (inode.extraIsize >= 12) inode.extra.i_mtime_extra = e.extra;
  }
  const v = inode.base.i_version_lo + (inode.extraIsize >= 28 ? inode.extra.i_version_hi * 2 ** 32 : 0) + 1;
  inode.base.i_version_lo = v % 2 ** 32;
  if (inode.extraIsize >= 28) inode.extra.i_version_hi = Math.floor(v / 2 ** 32) % 2 ** 32;
}

/** The inode's change counter (i_version), part of the freshness token. */
export function changeCounter(inode: Inode): number {
  return inode.base.i_version_lo + (inode.extraIsize >= 28 ? inode.extra.i_version_hi * 2 ** 32 : 0);
}

/**
 * Give `inode` the extent list `extents` in place of `old`: rewrites only
 * the tree nodes covering what changed (plus their path to the root) into
 * the transaction, frees tree blocks it no longer needs, updates i_block
 * and i_blocks and writes the inode. Data blocks are the caller's business
 * (allocate before, free with tx.free). A block-mapped inode gets its
 * indirect blocks edited the same way (blockmap-edit.ts; written extents only).
 */
export async function remapInode(tx: Transaction, inode: Inode, old: FileMap, extents: readonly Extent[]): Promise<void> {
  const fs = tx.fs;
  const list = normalise(extents);
  const goal = list[0]?.physical ?? old.extents[0]?.physical ?? 0;
  const readBlock = (n: number) => tx.readBlock(n);
  const xattrBlocks = inode.fileAcl ? 1 : 0;
  if (!isExtentMapped(inode)) {
    const result = await editBlockMap(inode.base.i_block, old.extents, list, {
      ino: inode.ino,
      blockSize: fs.blockSize,
      firstDataBlock: fs.sb.s_first_data_block,
      blocksCount: fs.sb.blocksCount,
      readBlock,
      allocate: (count, g) => allocateForBlockMap(tx, count, g),
    });
    for (const [b, data] of result.writes) tx.setBlock(b, data);
    for (const b of result.freed) tx.free(b, 1);
    inode.base.i_block = result.iblock;
    // e2fsck counts data + indirect blocks + the xattr block.
    const indirect = old.metadataBlocks.length + result.allocated.length - result.freed.length;
    setIBlocks(tx, inode, mappedBlocks(list) + indirect + xattrBlocks);
    await tx.writeInode(inode);
    return;
  }
  const result = await editExtentTree(inode.base.i_block, list, {
    ino: inode.ino,
    blockSize: fs.blockSize,
    csumSeed: fs.inodeCsumSeed(inode),
    allocate: async (count, g) => {
      const runs = await allocateBlocks(tx, { goal: g, length: count });
      return runs.flatMap((r) => Array.from({ length: r.length }, (_, i) => r.start + i));
    },
    readBlock,
    goal,
  });
  for (const [b, data] of result.writes) tx.setBlock(b, data);
  for (const b of result.freed) tx.free(b, 1);
  inode.base.i_block = result.iblock;
  setIBlocks(tx, inode, mappedBlocks(list) + result.treeBlockCount + xattrBlocks);
  await tx.writeInode(inode);
}

/**
 * Block-map pointers are 32-bit: blocks for a block-mapped file come from below 2^32
 * (the kernel's s_blockfile_groups limit for non-extent files). Undefined when the
 * filesystem has no block that high (the allocator tests `exclude` block by block).
 */
export function blockMapExclude(sb: { blocksCount: number }): ((start: number, length: number) => boolean) | undefined {
  return sb.blocksCount - 1 > BLOCKMAP_MAX_PHYSICAL ? (start, length) => start + length - 1 > BLOCKMAP_MAX_PHYSICAL : undefined;
}

async function allocateForBlockMap(tx: Transaction, count: number, goal: number): Promise<number[]> {
  const runs = await allocateBlocks(tx, { goal, length: count, exclude: blockMapExclude(tx.fs.sb) });
  return runs.flatMap((r) => Array.from({ length: r.length }, (_, i) => r.start + i));
}

const ZERO_CHUNK = 1024 * 1024;

/**
 * Zero new blocks of a block-mapped file as ordered data — a block map cannot
 * say "unwritten, reads as zeros". The commit writes them once the journal has
 * accepted the transaction, before its commit block (without a journal: before
 * any metadata), so no crash point maps them with stale bytes.
 */
export function zeroOrdered(tx: Transaction, runs: readonly Run[]): void {
  if (!runs.length) return;
  const fs = tx.fs;
  const bs = fs.blockSize;
  produceOrderedData(tx, async () => {
    const zeros = new Uint8Array(Math.min(ZERO_CHUNK, runs.reduce((m, r) => Math.max(m, r.length), 0) * bs));
    let bytes = 0;
    for (const r of runs) {
      for (let off = 0; off < r.length * bs; off += zeros.length) {
        const n = Math.min(zeros.length, r.length * bs - off);
        await fs.device.write(r.start * bs + off, zeros.subarray(0, n));
        bytes += n;
      }
    }
    return bytes;
  });
}
