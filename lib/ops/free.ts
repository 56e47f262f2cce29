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
 * callers write). Fast paths, so that a whole 1 TiB filesystem with hundreds
 * of thousands of free runs takes tens of milliseconds, even from a fresh
 * process: a group whose descriptor says it is full is skipped, one that is
 * entirely free is reported without reading its bitmap, a BLOCK_UNINIT
 * group's bitmap is computed from the geometry (never read); the bitmaps
 * that must be read are read in coalesced runs of neighbouring blocks
 * (flex_bg puts a flex group's bitmaps side by side), a batch of groups at a
 * time, and scanned a 32-bit word at a time. A bitmap that is read is
 * checked against its descriptor's checksum, and its free count against the
 * descriptor's (a mismatch is a warning, as mballoc's "blocks in bitmap, in
 * gd" error: the bitmap is what is reported, as e2freefrag does).
 */
import { Ext4Error } from '../errors.js';
import type { Filesystem } from '../ext4/filesystem.js';
import type { GroupDesc } from '../ext4/group-desc.js';
import { blocksInGroup, clusterRatio, groupFirstBlock, groupOfBlock } from '../ext4/geometry.js';
import { FreeRunMerger, RunTable, appendFreeRuns, groupBitmapRuns, groupFreeKind } from '../ext4/free-space.js';
import { computeUninitBlockBitmap, verifyBlockBitmap } from '../ext4/bitmap.js';
import { BG_FLAGS, uninitFlagsHonoured } from '../ext4/group-desc.js';

/** Bitmap bytes read per batch of groups (then scanned, then the buffer is reused). */
const BATCH_BYTES = 4 * 1024 * 1024;
/** Largest single read: the CLI serves reads up to this size synchronously (lib/cli/util.ts). */
const MAX_READ_BYTES = 256 * 1024;
/** Skipped groups' bitmaps read through to join two runs (cheaper than another read call). */
const MAX_GAP_BLOCKS = 8;

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
  const t = await getFreeExtentTable(fs, opts);
  const out: FreeExtent[] = new Array(t.count);
  for (let i = 0; i < t.count; i++) out[i] = { start: t.start[i]!, len: t.len[i]! };
  return out;
}

/** getFreeBlocks' extents packed: extent i is [start[i], start[i] + len[i]) in bytes, i < count. */
export interface FreeExtentTable {
  count: number;
  start: Float64Array;
  len: Float64Array;
}

/** getFreeBlocks without an object per extent (the CLI prints hundreds of thousands of them). */
export async function getFreeExtentTable(fs: Filesystem, opts: GetFreeBlocksOptions = {}): Promise<FreeExtentTable> {
  const bs = fs.blockSize;
  const { from, to, count } = rangeOf(fs, opts);
  const out = new RunTable();
  // Under the operation lock: the bitmaps of one committed state, never half of a transaction's publication.
  if (from < to && count > 0)
    await fs.exclusive(() =>
      scanFreeTables(fs, from, to, (t, done) => {
        const take = Math.max(0, Math.min(done ? t.n : t.n - 1, count - out.n));
        for (let i = 0; i < take; i++) out.push(t.start[i]! * bs, t.len[i]! * bs);
        t.drop(take);
        return out.n < count;
      }),
    );
  return { count: out.n, start: out.start, len: out.len };
}

/** getFreeBlocks one extent at a time (bytes): same validation, range, order, count and lock. */
export async function forEachFreeExtent(fs: Filesystem, opts: GetFreeBlocksOptions, fn: (start: number, len: number) => void): Promise<void> {
  const bs = fs.blockSize;
  const { from, to, count } = rangeOf(fs, opts);
  if (from >= to || count === 0) return;
  let n = 0;
  await fs.exclusive(() =>
    scanFreeRuns(fs, from, to, (s, l) => {
      fn(s * bs, l * bs);
      return ++n < count;
    }),
  );
}

/** Validate getFreeBlocks' options: the range in blocks [from, to) and the count. */
function rangeOf(fs: Filesystem, opts: GetFreeBlocksOptions): { from: number; to: number; count: number } {
  const bs = fs.blockSize;
  const fsBytes = fs.sb.blocksCount * bs;
  const start = opts.start ?? 0;
  const end = Math.min(opts.end ?? fsBytes, fsBytes);
  const count = opts.count ?? Infinity;
  if (!Number.isSafeInteger(start) || start < 0 || start % bs !== 0) throw new Ext4Error('EINVAL', `start ${start} is not a multiple of the block size ${bs}`);
  if (opts.end !== undefined && (!Number.isSafeInteger(opts.end) || opts.end % bs !== 0)) throw new Ext4Error('EINVAL', `end ${opts.end} is not a multiple of the block size ${bs}`);
  if (opts.end !== undefined && opts.end <= start) throw new Ext4Error('EINVAL', `empty range: end ${opts.end} ≤ start ${start}`);
  if (count < 0 || (count !== Infinity && !Number.isInteger(count))) throw new Ext4Error('EINVAL', `count ${count} is invalid`);
  return { from: start / bs, to: Math.max(start, end) / bs, count };
}

/**
 * Free runs (in blocks) in [from, to) of the committed state, merged across
 * group boundaries, ascending; `fn` returns false to stop. Takes no lock:
 * callers that may race with writers hold `fs.exclusive` around it.
 */
export async function scanFreeRuns(fs: Filesystem, from: number, to: number, fn: (start: number, length: number) => boolean | void): Promise<void> {
  await scanFreeTables(fs, from, to, (t, done) => {
    const take = Math.max(0, done ? t.n : t.n - 1);
    for (let i = 0; i < take; i++) {
      if (fn(t.start[i]!, t.len[i]!) === false) return false;
    }
    t.drop(take);
    return true;
  });
}

/**
 * The scan itself, a batch of groups at a time: the free runs found so far
 * are in the table handed to `consume` after each batch (the last may still
 * grow into the next batch unless `done`); consume takes what it wants,
 * drops it from the table, and returns false to stop.
 */
async function scanFreeTables(fs: Filesystem, from: number, to: number, consume: (t: RunTable, done: boolean) => boolean): Promise<void> {
  const sb = fs.sb;
  from = Math.max(from, sb.s_first_data_block);
  to = Math.min(to, sb.blocksCount);
  if (from >= to) return;
  const bs = fs.blockSize;
  const honoured = uninitFlagsHonoured(sb);
  const verify = fs.verify && sb.hasMetadataCsum;
  const oneBitPerBlock = clusterRatio(sb) === 1;
  const out = new RunTable();
  const gFirst = groupOfBlock(sb, from), gEnd = Math.min(sb.groupCount, groupOfBlock(sb, to - 1) + 1);
  await fs.loadGroups(gFirst, gEnd);
  const descs: GroupDesc[] = [];
  for (let g = gFirst; g < gEnd; g++) descs.push(await fs.group(g));
  // Room for a batch: BATCH_BYTES, or less when the range has fewer bitmaps to read (a small
  // range, e.g. fsmap's, must not pay for megabytes of zeroed buffer), plus read-through slack.
  let wanted = 0;
  for (let g = gFirst; g < gEnd; g++) {
    const gd = descs[g - gFirst]!;
    if (!(honoured && gd.flags & BG_FLAGS.BLOCK_UNINIT) && groupFreeKind(sb, g, gd) === 'bitmap') wanted++;
  }
  const buf = new Uint8Array(Math.max(bs, Math.min(BATCH_BYTES, (wanted + MAX_GAP_BLOCKS) * bs)));
  const perBatch = Math.max(1, Math.floor(buf.length / bs) - MAX_GAP_BLOCKS);
  // Where group g's bitmap lies in buf (byte offset), or -1 when it was not read.
  const at = new Float64Array(gEnd - gFirst).fill(-1);
  const mismatched: number[] = [];
  // The generic path (bigalloc: bits are clusters, clipped back to blocks) feeds the table through a merger.
  const merger = new FreeRunMerger((s, l) => out.push(s, l));

  for (let g0 = gFirst; g0 < gEnd; ) {
    // The next batch: groups [g0, g1) with at most perBatch bitmaps to read.
    const want: GroupDesc[] = [];
    // Bitmaps a read may pass through to join two wanted ones: initialised bitmaps of groups the
    // descriptors let us skip (never a BLOCK_UNINIT one: its block on disk means nothing).
    const passable = new Set<number>();
    let g1 = g0;
    for (; g1 < gEnd && want.length < perBatch; g1++) {
      const gd = descs[g1 - gFirst]!;
      if (honoured && gd.flags & BG_FLAGS.BLOCK_UNINIT) continue;
      if (groupFreeKind(sb, g1, gd) === 'bitmap') want.push(gd);
      else passable.add(gd.blockBitmap);
    }
    await readBitmaps(fs, want, passable, buf, (gd, off) => (at[gd.group - gFirst] = off));
    for (let g = g0; g < g1; g++) {
      const gd = descs[g - gFirst]!;
      const first = groupFirstBlock(sb, g);
      const n = blocksInGroup(sb, g);
      const lo = Math.max(0, from - first), hi = Math.min(n, to - first);
      const kind = groupFreeKind(sb, g, gd);
      if (kind === 'full') continue;
      if (kind === 'free') {
        out.push(first + lo, hi - lo);
        continue;
      }
      const off = at[g - gFirst]!;
      let bm: Uint8Array;
      if (off < 0) bm = computeUninitBlockBitmap(sb, gd);
      else {
        bm = buf.subarray(off, off + bs);
        if (verify) verifyBlockBitmap(sb, fs.fsSeed, gd, bm);
      }
      let free: number;
      if (oneBitPerBlock) free = appendFreeRuns(bm, lo, hi, first, out);
      else {
        free = groupBitmapRuns(sb, g, bm, lo, hi, merger);
        merger.flush();
      }
      if (lo === 0 && hi === n && free !== gd.freeBlocks) mismatched.push(g);
    }
    g0 = g1;
    if (g0 < gEnd && !consume(out, false)) return warnMismatch(fs, mismatched);
  }
  consume(out, true);
  warnMismatch(fs, mismatched);
}

/** A bitmap whose free count is not its descriptor's: mballoc's "blocks in bitmap, in gd" error, as a warning. */
function warnMismatch(fs: Filesystem, groups: number[]): void {
  if (groups.length === 0) return;
  const msg = `block bitmap free counts differ from the group descriptors in ${groups.length} group${groups.length === 1 ? '' : 's'} (first: ${groups[0]}); the bitmaps were used (e2fsck fixes the counts)`;
  if (!fs.warnings.includes(msg)) fs.warnings.push(msg);
}

/**
 * Read the block bitmaps of `groups` into `buf` (room for all of them), in
 * as few reads as their placement allows: sorted by block, neighbours joined
 * up to MAX_READ_BYTES, also across up to MAX_GAP_BLOCKS blocks that are all
 * `passable`. Each read goes through the block view, so a bitmap the
 * journal or a replay holds newer than the disk reads as the filesystem sees it.
 */
async function readBitmaps(fs: Filesystem, groups: GroupDesc[], passable: ReadonlySet<number>, buf: Uint8Array, placed: (gd: GroupDesc, offset: number) => void): Promise<void> {
  if (groups.length === 0) return;
  const bs = fs.blockSize;
  const sorted = groups.slice().sort((a, b) => a.blockBitmap - b.blockBitmap);
  const maxRun = MAX_READ_BYTES / bs;
  const joinable = (prev: number, next: number) => {
    if (next - prev > MAX_GAP_BLOCKS + 1) return false;
    for (let b = prev + 1; b < next; b++) if (!passable.has(b)) return false;
    return true;
  };
  let pos = 0;
  for (let i = 0; i < sorted.length; ) {
    const startBlock = sorted[i]!.blockBitmap;
    let j = i + 1;
    while (j < sorted.length) {
      const b = sorted[j]!.blockBitmap;
      // Room for this run so far and one block for each bitmap still to place.
      const room = pos + (b - startBlock + 1 + sorted.length - j - 1) * bs <= buf.length;
      if (!room || b - startBlock + 1 > maxRun || !joinable(sorted[j - 1]!.blockBitmap, b)) break;
      j++;
    }
    const blocks = sorted[j - 1]!.blockBitmap - startBlock + 1;
    await fs.readDataBlocksInto(startBlock, blocks, buf.subarray(pos, pos + blocks * bs));
    for (let k = i; k < j; k++) placed(sorted[k]!, pos + (sorted[k]!.blockBitmap - startBlock) * bs);
    pos += blocks * bs;
    i = j;
  }
}
