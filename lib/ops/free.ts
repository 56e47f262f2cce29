/**
 * getFreeBlocks — the proposal's sys_get_free_blocks (semantics.md §3):
 * free extents between byte offsets `start` and `end`, as maximal runs
 * clipped to the range and merged across group boundaries, ascending, at
 * most `count` of them. Resumable: call again from the end of the last one.
 * With bigalloc the allocation unit is the cluster: runs are whole free
 * clusters (cut only where the range cuts them).
 *
 * Computed from the bitmaps of the last committed state, under the
 * filesystem's operation lock (a consistent snapshot even while other async
 * callers write). Fast paths, so that a whole 1 TiB filesystem takes tens of
 * milliseconds: a group whose descriptor says it is full is skipped, one that
 * is entirely free is reported without reading its bitmap, a BLOCK_UNINIT
 * group's bitmap is computed from the geometry (never read), and bitmaps
 * are scanned a 32-bit word at a time.
 */
import { Ext4Error } from '../errors.js';
import type { Filesystem } from '../ext4/filesystem.js';
import { clustersInGroup } from '../ext4/geometry.js';
import { scanFreeWith } from '../ext4/free-space.js';
import { BG_FLAGS, uninitFlagsHonoured } from '../ext4/group-desc.js';
import { internals } from '../ext4/internals.js';

/** Groups whose bitmaps are fetched together, concurrently. */
const PREFETCH_GROUPS = 1024;

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
  // Under the operation lock: the bitmaps of one committed state, never half of a transaction's publication.
  await fs.exclusive(() =>
    scanFreeRuns(fs, start / bs, end / bs, (s, l) => {
      out.push({ start: s * bs, len: l * bs });
      return out.length < count;
    }),
  );
  return out;
}

/**
 * Free runs (in blocks) in [from, to) of the committed state, merged across
 * group boundaries, ascending; `fn` returns false to stop. Takes no lock:
 * callers that may race with writers hold `fs.exclusive` around it.
 */
export async function scanFreeRuns(fs: Filesystem, from: number, to: number, fn: (start: number, length: number) => boolean | void): Promise<void> {
  const sb = fs.sb;
  const honoured = uninitFlagsHonoured(sb);
  let prefetchedTo = -1;
  await scanFreeWith(sb, {
    group: (g) => fs.group(g),
    // fs.blockBitmap computes BLOCK_UNINIT bitmaps from the geometry and verifies checksums of real ones.
    bitmap: (g) => fs.blockBitmap(g),
    beforeGroup: async (g, gEnd) => {
      if (g < prefetchedTo) return;
      // Bring the next batch of bitmaps that must really be read into the cache with
      // concurrent single-block reads (the cache's read-ahead would read 32 neighbours each).
      prefetchedTo = Math.min(gEnd, g + PREFETCH_GROUPS);
      await fs.loadGroups(g, prefetchedTo);
      const want: Promise<void>[] = [];
      for (let h = g; h < prefetchedTo; h++) {
        const d = await fs.group(h);
        if (d.freeBlocks === 0 || d.freeBlocks >= clustersInGroup(sb, h) || (honoured && d.flags & BG_FLAGS.BLOCK_UNINIT)) continue;
        // Never fetch a block whose latest image is not on the device (replay overlay, or committed
        // but not yet checkpointed): the cache would keep the stale bytes after the checkpoint.
        const b = d.blockBitmap;
        const { view, cache } = internals(fs);
        if (!view.inMemory(b)) want.push(cache.prefetch(b, 1));
      }
      await Promise.all(want);
    },
  }, from, to, fn);
}
