/**
 * getFreeBlocks — the proposal's sys_get_free_blocks (semantics.md §3):
 * free extents between byte offsets `start` and `end`, as maximal runs
 * clipped to the range and merged across group boundaries, ascending, at
 * most `count` of them. Resumable: call again from the end of the last one.
 * Computed from the bitmaps; BLOCK_UNINIT groups are computed, not read, and
 * full groups are skipped by their descriptor count.
 */
import { Ext4Error } from '../errors.js';
import type { Filesystem } from '../ext4/filesystem.js';
import { scanFree } from '../ext4/alloc.js';

export interface FreeExtent {
  /** Byte offset of the first free block. */
  start: number;
  /** Length in bytes. */
  len: number;
}

export interface GetFreeBlocksOptions {
  /** Byte offset, block-aligned (default 0). */
  start?: number;
  /** Byte offset, block-aligned, exclusive (default: end of the filesystem; clipped to it). */
  end?: number;
  /** Maximum number of records (default: unlimited). 0 returns no records. */
  count?: number;
}

export async function getFreeBlocks(fs: Filesystem, opts: GetFreeBlocksOptions = {}): Promise<FreeExtent[]> {
  const bs = fs.blockSize;
  const fsBytes = fs.sb.blocksCount * bs;
  const start = opts.start ?? 0;
  const end = Math.min(opts.end ?? fsBytes, fsBytes);
  const count = opts.count ?? Infinity;
  if (!Number.isSafeInteger(start) || start < 0 || start % bs !== 0) throw new Ext4Error('EINVAL', `start ${start} is not a multiple of the block size ${bs}`);
  if (opts.end !== undefined && (!Number.isSafeInteger(opts.end) || opts.end % bs !== 0)) throw new Ext4Error('EINVAL', `end ${opts.end} is not a multiple of the block size ${bs}`);
  if (opts.end !== undefined && opts.end <= start) throw new Ext4Error('EINVAL', `empty range: end ${opts.end} ≤ start ${start}`);
  if (count < 0 || (count !== Infinity && !Number.isInteger(count))) throw new Ext4Error('EINVAL', `count ${count} is invalid`);
  const out: FreeExtent[] = [];
  if (count === 0 || start >= end) return out;
  await scanFree(null, fs, start / bs, end / bs, (s, l) => {
    out.push({ start: s * bs, len: l * bs });
    return out.length < count;
  });
  return out;
}
