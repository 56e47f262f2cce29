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
 * callers write), as e2freefrag computes it: from every initialised group's
 * bitmap, read and checked against its descriptor's checksum, and a
 * BLOCK_UNINIT group's computed from the geometry; a descriptor's free count
 * is only compared with its bitmap (a mismatch is a warning, as mballoc's
 * "blocks in bitmap, in gd" error). So that a whole 1 TiB filesystem with
 * hundreds of thousands of free runs takes tens of milliseconds, even from a
 * fresh process: descriptors are decoded as columns (group-table.ts), bitmaps
 * are read in coalesced runs of neighbouring blocks (flex_bg puts a flex
 * group's bitmaps side by side), a batch of groups at a time, and scanned a
 * 32-bit word at a time straight into typed arrays of runs. With a bit per block
 * and 32-bit block numbers the batch's checksums and scan run in WebAssembly
 * (ext4/free-runs-wasm.ts: machine code from the first word in a fresh process),
 * the bitmaps read straight into its memory and the runs left there.
 */
import { Ext4Error } from '../errors.js';
import type { Superblock } from '../ext4/superblock.js';
import { blocksInGroup, clusterRatio, clustersInGroup, groupOfBlock } from '../ext4/geometry.js';
import { FreeRunMerger, RunTable, appendFreeRunsAt, groupBitmapRuns, primeAppendFreeRuns, type BlockColumn } from '../ext4/free-space.js';
import { bitmapWords, blockBitmapCsumError, blockBitmapCsumMatches, computeUninitBlockBitmap, uninitGroupHasMetadata } from '../ext4/bitmap.js';
import { BG_FLAGS, uninitFlagsHonoured } from '../ext4/group-desc.js';
import { loadGroupTable, type GroupTable, type GroupTableSource } from '../ext4/group-table.js';
import { ALL_FREE_FLAG, FreeRunsWasm, REC_MAX, VERIFY_FLAG } from '../ext4/free-runs-wasm.js';

/**
 * Bitmap bytes read per batch of groups (then scanned, then the buffer is reused): small enough
 * to stay in L2 between the read, the checksum and the scan, and few new pages for a fresh
 * process to fault in (one read's worth).
 */
const BATCH_BYTES = 256 * 1024;
/** Largest single read: the CLI serves reads up to this size synchronously (lib/cli/util.ts). */
const MAX_READ_BYTES = 256 * 1024;

/**
 * What the scan reads through: a Filesystem (its block view, under its operation lock), or a
 * DiskSource (ext4/disk-source.ts: the device itself, when nothing newer than the disk exists
 * and nobody writes; what `ext4kit free` opens, without the write engine in its script).
 */
export interface FreeSpaceSource extends GroupTableSource {
  readonly blockSize: number;
  /** Where a bitmap/descriptor count mismatch is reported (Filesystem.warnings). */
  readonly warnings: string[];
  /** Serialise with the writers (Filesystem.exclusive); absent on a source nobody writes through. */
  exclusive?<T>(fn: () => Promise<T>): Promise<T>;
}

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

export async function getFreeBlocks(fs: FreeSpaceSource, opts: GetFreeBlocksOptions = {}): Promise<FreeExtent[]> {
  const t = await getFreeExtentTable(fs, opts);
  const out: FreeExtent[] = new Array(t.count);
  for (let i = 0; i < t.count; i++) out[i] = { start: t.start[i]! * t.unit, len: t.len[i]! * t.unit };
  return out;
}

/** getFreeBlocks' extents packed: extent i is [start[i], start[i] + len[i]) × unit bytes (the block size), i < count. */
export interface FreeExtentTable {
  count: number;
  start: BlockColumn;
  len: BlockColumn;
  /** Bytes per unit of start and len. */
  unit: number;
  /**
   * When the scan ran in WebAssembly (free-runs-wasm.ts): the memory start and len view, and
   * where TABLE_SPARE_BYTES of it, never touched, follow them (for an encoder working in place).
   */
  wasm?: { memory: WebAssembly.Memory; spareAt: number };
}

/** Spare bytes left after a wasm scan's table (ascii-records-wasm.ts: its digit table and an output chunk). */
export const TABLE_SPARE_BYTES = 512 * 1024;

/**
 * getFreeBlocks without an object per extent (the CLI prints hundreds of thousands of them), in
 * blocks: no pass over the table to scale it (a fresh process runs such a pass unoptimised).
 */
export async function getFreeExtentTable(fs: FreeSpaceSource, opts: GetFreeBlocksOptions = {}): Promise<FreeExtentTable> {
  const { from, to, count } = rangeOf(fs, opts);
  // Room for ~64 runs per group up front (the fragmented 1 TiB image has ~41): a large typed array's
  // pages cost only once written, while growing copies (and zeroes) it all again.
  const groups = Math.ceil((to - from) / fs.sb.s_blocks_per_group) + 1;
  const capacity = Math.min(count + 1, 1 << 20, 4096 + 64 * groups);
  const narrow = fs.sb.blocksCount < 2 ** 32;
  // A bit per block and 32-bit block numbers: the scan's loops in WebAssembly, where available.
  if (narrow && clusterRatio(fs.sb) === 1 && from < to && count > 0) {
    const k = FreeRunsWasm.open(batchBytes(fs, from, to), fs.blockSize, capacity, TABLE_SPARE_BYTES);
    if (k !== null) {
      await underLock(fs, () => scanFreeTablesWasm(fs, from, to, k, count));
      const t = k.table();
      return { count: Math.min(t.start.length, count), start: t.start, len: t.len, unit: fs.blockSize, wasm: { memory: t.memory, spareAt: t.spareAt } };
    }
  }
  const out = new RunTable(capacity, narrow);
  // Under the operation lock: the bitmaps of one committed state, never half of a transaction's publication.
  // The scan appends to `out` itself; it may stop once more than `count` runs are there (the last may still grow).
  if (from < to && count > 0) await underLock(fs, () => scanFreeTables(fs, from, to, out, () => out.n <= count));
  return { count: Math.min(out.n, count), start: out.start, len: out.len, unit: fs.blockSize };
}

/** getFreeBlocks one extent at a time (bytes): same validation, range, order, count and lock. */
export async function forEachFreeExtent(fs: FreeSpaceSource, opts: GetFreeBlocksOptions, fn: (start: number, len: number) => void): Promise<void> {
  const bs = fs.blockSize;
  const { from, to, count } = rangeOf(fs, opts);
  if (from >= to || count === 0) return;
  let n = 0;
  await underLock(fs, () =>
    scanFreeRuns(fs, from, to, (s, l) => {
      fn(s * bs, l * bs);
      return ++n < count;
    }),
  );
}

/** fn under the source's operation lock, when it has one. */
function underLock<T>(src: FreeSpaceSource, fn: () => Promise<T>): Promise<T> {
  return src.exclusive ? src.exclusive(fn) : fn();
}

/** Validate getFreeBlocks' options: the range in blocks [from, to) and the count. */
function rangeOf(fs: FreeSpaceSource, opts: GetFreeBlocksOptions): { from: number; to: number; count: number } {
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
export async function scanFreeRuns(fs: FreeSpaceSource, from: number, to: number, fn: (start: number, length: number) => boolean | void): Promise<void> {
  const t = new RunTable();
  await scanFreeTables(fs, from, to, t, (done) => {
    const take = Math.max(0, done ? t.n : t.n - 1);
    for (let i = 0; i < take; i++) {
      if (fn(t.start[i]!, t.len[i]!) === false) return false;
    }
    t.drop(take);
    return true;
  });
}

/**
 * The scan itself, a batch of groups at a time: the free runs found so far are
 * appended to `out` and `consume` is called after each batch (the last run may
 * still grow into the next batch unless `done`); consume takes what it wants,
 * may drop it from the table, and returns false to stop.
 *
 * The descriptors come as columns (group-table.ts: no object per group). A
 * descriptor's free count is never what is reported: every initialised group's
 * bitmap is read (and checked against its checksum), a BLOCK_UNINIT group's is
 * computed from the geometry, and a count that disagrees with its bitmap is a
 * warning (mballoc's "blocks in bitmap, in gd"), as e2freefrag reads bitmaps.
 */
async function scanFreeTables(fs: FreeSpaceSource, from: number, to: number, out: RunTable, consume: (done: boolean) => boolean): Promise<void> {
  const sb = fs.sb;
  from = Math.max(from, sb.s_first_data_block);
  to = Math.min(to, sb.blocksCount);
  if (from >= to) return;
  const bs = fs.blockSize;
  const buf = new Uint8Array(batchBytes(fs, from, to));
  const { gFirst, ng, gt, kind, toRead, nRead } = await planScan(fs, from, to, buf);
  const perBatch = Math.max(1, Math.floor(buf.length / bs));
  // Where group i's bitmap lies in buf (byte offset; small integers, so no double reaches crc32c).
  const at = new Int32Array(ng);
  const scratch = new Uint8Array(bs);
  // The generic path (bigalloc: bits are clusters, clipped back to blocks) feeds the table through a merger.
  const merger = new FreeRunMerger((s, l) => out.push(s, l));
  const st: BatchScan = {
    sb,
    fsSeed: fs.fsSeed,
    verify: fs.verify && sb.hasMetadataCsum,
    oneBitPerBlock: clusterRatio(sb) === 1,
    from,
    to,
    gFirst,
    firstData: sb.s_first_data_block,
    perGroup: sb.s_blocks_per_group,
    lastGroup: sb.groupCount - 1,
    lastGroupBlocks: blocksInGroup(sb, sb.groupCount - 1),
    gt,
    kind,
    buf,
    words: new Int32Array(0),
    at,
    out,
    scratch,
    merger,
    mismatched: [],
  };
  // Once per process: the bitmap loop's every path seen before V8 optimises it (primeAppendFreeRuns).
  if (!primed && st.oneBitPerBlock && nRead > 0) {
    primeAppendFreeRuns(out.narrow);
    primed = true;
  }
  for (let i0 = 0, r = 0; i0 < ng; ) {
    // The next batch: groups [i0, i1), whose bitmaps to read are toRead[r, r1).
    const r1 = Math.min(nRead, r + perBatch);
    const i1 = r1 < nRead ? toRead[r1]! : ng;
    await readBitmaps(fs, gt, toRead.subarray(r, r1), buf, at);
    // A view of buf on a little-endian host; elsewhere a host-order copy of what was just read.
    st.words = bitmapWords(buf);
    scanBatch(st, i0, i1);
    i0 = i1;
    r = r1;
    if (i0 < ng && !consume(false)) return warnMismatch(fs, st.mismatched);
  }
  consume(true);
  warnMismatch(fs, st.mismatched);
}

/** A batch's bitmaps: BATCH_BYTES, or less when the range [from, to) has fewer groups (fsmap's small ranges). */
function batchBytes(fs: FreeSpaceSource, from: number, to: number): number {
  const sb = fs.sb;
  from = Math.max(from, sb.s_first_data_block);
  to = Math.min(to, sb.blocksCount);
  const ng = from < to ? groupOfBlock(sb, to - 1) - groupOfBlock(sb, from) + 1 : 1;
  return Math.max(fs.blockSize, Math.min(BATCH_BYTES, ng * fs.blockSize));
}

/** What a scan of [from, to) (already clipped to the filesystem) works from: its groups' descriptors as columns, their kinds, the groups whose bitmaps are read. */
interface ScanPlan {
  gFirst: number;
  ng: number;
  gt: GroupTable;
  kind: Uint8Array;
  /** Table indices of the groups whose bitmaps are read (every initialised one), [0, nRead). */
  toRead: Int32Array;
  nRead: number;
}

/** The plan of a scan of [from, to); `buf` (at least a block) is lent to loadGroupTable (no new pages for the descriptor blocks). */
async function planScan(fs: FreeSpaceSource, from: number, to: number, buf: Uint8Array): Promise<ScanPlan> {
  const sb = fs.sb;
  const gFirst = groupOfBlock(sb, from), gEnd = Math.min(sb.groupCount, groupOfBlock(sb, to - 1) + 1);
  const ng = gEnd - gFirst;
  const gt = await loadGroupTable(fs, gFirst, gEnd, buf);
  const kind = classifyGroups(sb, gt, uninitFlagsHonoured(sb));
  const toRead = new Int32Array(ng);
  let nRead = 0;
  for (let i = 0; i < ng; i++) if (kind[i] === READ) toRead[nRead++] = i;
  return { gFirst, ng, gt, kind, toRead, nRead };
}

/**
 * scanFreeTables with a bit per block, its loops in WebAssembly (free-runs-wasm.ts): each batch's
 * bitmaps are read straight into the module's memory, and one call per batch checks them and
 * appends their runs to the table in that memory. The same groups, reads, checks, errors and
 * warnings, in the same order; it stops after the batch that takes the table past `count` runs.
 */
async function scanFreeTablesWasm(fs: FreeSpaceSource, from: number, to: number, k: FreeRunsWasm, count: number): Promise<void> {
  const sb = fs.sb;
  from = Math.max(from, sb.s_first_data_block);
  to = Math.min(to, sb.blocksCount);
  if (from >= to) return;
  const bs = fs.blockSize;
  const { gFirst, ng, gt, kind, toRead, nRead } = await planScan(fs, from, to, k.batch());
  const perBatch = Math.max(1, Math.floor(k.batchBytes / bs));
  const at = new Int32Array(ng);
  const firstData = sb.s_first_data_block, perGroup = sb.s_blocks_per_group, lastGroup = sb.groupCount - 1, lastGroupBlocks = blocksInGroup(sb, lastGroup);
  const verify = fs.verify && sb.hasMetadataCsum ? VERIFY_FLAG : 0;
  const csumBytes = sb.s_clusters_per_group >>> 3, fullCsum = sb.descSize >= 0x3a, nbits = bs * 8;
  const freeClusters = gt.freeClusters;
  const mismatched: number[] = [];
  // The table index of each record of the call being prepared.
  const recGroup = new Int32Array(REC_MAX);
  let nrec = 0;
  const flush = () => {
    const bad = k.scan(nrec, csumBytes, fs.fsSeed, fullCsum, nbits);
    if (bad >= 0) throw blockBitmapCsumError(gFirst + recGroup[bad]!, gt.blockBitmap[recGroup[bad]!]!);
    for (let r = 0; r < nrec; r++) {
      const i = recGroup[r]!, g = gFirst + i;
      const first = firstData + g * perGroup, n = g === lastGroup ? lastGroupBlocks : perGroup;
      if (from <= first && to >= first + n && k.freeOf(r) !== freeClusters[i]) mismatched.push(g);
    }
    nrec = 0;
  };
  for (let i0 = 0, r = 0; i0 < ng; ) {
    const r1 = Math.min(nRead, r + perBatch);
    const i1 = r1 < nRead ? toRead[r1]! : ng;
    await readBitmaps(fs, gt, toRead.subarray(r, r1), k.batch(), at);
    for (let i = i0; i < i1; i++) {
      const g = gFirst + i;
      const first = firstData + g * perGroup;
      const n = g === lastGroup ? lastGroupBlocks : perGroup;
      const lo = from > first ? from - first : 0, hi = to - first < n ? to - first : n;
      const kd = kind[i]!;
      if (kd === COMPUTED) {
        // Built in the module's scratch block, scanned on its own (the next one reuses the block).
        if (nrec > 0) flush();
        computeUninitBlockBitmap(sb, { group: g, blockBitmap: gt.blockBitmap[i]!, inodeBitmap: gt.inodeBitmap[i]!, inodeTable: gt.inodeTable[i]! }, k.scratch(bs));
        k.setRecord(0, k.scratchOffset, lo, hi, first, 0, 0);
        recGroup[nrec++] = i;
        flush();
        continue;
      }
      if (kd === ALL_FREE) k.setRecord(nrec, 0, lo, hi, first, 0, ALL_FREE_FLAG);
      else k.setRecord(nrec, at[i]!, lo, hi, first, gt.blockBitmapCsum[i]!, verify);
      recGroup[nrec++] = i;
      if (nrec === REC_MAX) flush();
    }
    if (nrec > 0) flush();
    i0 = i1;
    r = r1;
    if (i0 < ng && k.count > count) break;
  }
  warnMismatch(fs, mismatched);
}

/** Whether primeAppendFreeRuns ran in this process. */
let primed = false;

/** How a group's free space is found: its bitmap read; all free (BLOCK_UNINIT, nothing of its own inside); or computed. */
const READ = 0, ALL_FREE = 1, COMPUTED = 2;

/** The kind of each table group: BLOCK_UNINIT (when honoured) is computed, and needs no bitmap at all without metadata of its own. */
function classifyGroups(sb: Superblock, gt: GroupTable, honoured: boolean): Uint8Array {
  const n = gt.end - gt.first;
  const kind = new Uint8Array(n);
  if (!honoured) return kind;
  const flags = gt.flags;
  for (let i = 0; i < n; i++)
    if (flags[i]! & BG_FLAGS.BLOCK_UNINIT)
      kind[i] = uninitGroupHasMetadata(sb, gt.first + i, gt.blockBitmap[i]!, gt.inodeBitmap[i]!, gt.inodeTable[i]!) ? COMPUTED : ALL_FREE;
  return kind;
}

/** What scanBatch works on: the scan's range and table, the batch's bitmaps, where runs go. */
interface BatchScan {
  sb: Superblock;
  fsSeed: number;
  verify: boolean;
  oneBitPerBlock: boolean;
  /** The scanned block range [from, to). */
  from: number;
  to: number;
  /** Group of table index 0. */
  gFirst: number;
  /** The geometry scanBatch needs, as plain numbers: group g starts at firstData + g * perGroup. */
  firstData: number;
  perGroup: number;
  lastGroup: number;
  lastGroupBlocks: number;
  gt: GroupTable;
  kind: Uint8Array;
  /** The batch's bitmaps as read, group i's at byte at[i]; `words` views the same bytes. */
  buf: Uint8Array;
  words: Int32Array;
  at: Int32Array;
  out: RunTable;
  /** A block to compute BLOCK_UNINIT bitmaps in. */
  scratch: Uint8Array;
  merger: FreeRunMerger;
  /** Groups whose bitmap's free count is not their descriptor's. */
  mismatched: number[];
}

/**
 * Append the free runs of table groups [i0, i1) (their bitmaps read into st.buf). A plain
 * synchronous loop of its own over numbers and typed arrays: a fresh process optimises this
 * small function mid-loop, not the whole async scan around it.
 */
function scanBatch(st: BatchScan, i0: number, i1: number): void {
  const { sb, gt, kind, words, at, out, from, to, firstData, perGroup, lastGroup, lastGroupBlocks, verify, fsSeed } = st;
  const wordsPerBitmap = sb.blockSize >>> 2;
  const freeClusters = gt.freeClusters;
  for (let i = i0; i < i1; i++) {
    const g = st.gFirst + i;
    const first = firstData + g * perGroup;
    const n = g === lastGroup ? lastGroupBlocks : perGroup;
    const lo = from > first ? from - first : 0, hi = to - first < n ? to - first : n;
    const k = kind[i]!;
    let free: number;
    if (k === ALL_FREE) {
      out.push(first + lo, hi - lo);
      // (n itself with a bit per block: no call of a helper that V8 would then compile for it)
      free = st.oneBitPerBlock ? n : clustersInGroup(sb, g);
    } else if (k === READ && st.oneBitPerBlock) {
      const w0 = at[i]! >>> 2;
      if (verify && !blockBitmapCsumMatches(sb, fsSeed, gt.blockBitmapCsum[i]!, words, w0)) throw blockBitmapCsumError(g, gt.blockBitmap[i]!);
      free = appendFreeRunsAt(words, w0, wordsPerBitmap, lo, hi, first, out);
    } else if (k === COMPUTED && st.oneBitPerBlock) {
      // Built in one scratch block for all such groups (no new block of memory per group).
      const bm = computeUninitBlockBitmap(sb, { group: g, blockBitmap: gt.blockBitmap[i]!, inodeBitmap: gt.inodeBitmap[i]!, inodeTable: gt.inodeTable[i]! }, st.scratch);
      free = appendFreeRunsAt(bitmapWords(bm), 0, wordsPerBitmap, lo, hi, first, out);
    } else free = scanGroupSlowly(st, i, lo, hi);
    if (lo === 0 && hi === n && free !== freeClusters[i]) st.mismatched.push(g);
  }
}

/** A group scanBatch leaves to the generic path: bigalloc (bits are clusters). */
function scanGroupSlowly(st: BatchScan, i: number, lo: number, hi: number): number {
  const { sb, gt, merger } = st;
  const g = st.gFirst + i;
  let bits: Uint8Array;
  if (st.kind[i] === COMPUTED) bits = computeUninitBlockBitmap(sb, { group: g, blockBitmap: gt.blockBitmap[i]!, inodeBitmap: gt.inodeBitmap[i]!, inodeTable: gt.inodeTable[i]! }, st.scratch);
  else {
    const off = st.at[i]!;
    if (st.verify && !blockBitmapCsumMatches(sb, st.fsSeed, gt.blockBitmapCsum[i]!, st.words, off >>> 2)) throw blockBitmapCsumError(g, gt.blockBitmap[i]!);
    bits = st.buf.subarray(off, off + sb.blockSize);
  }
  const free = groupBitmapRuns(sb, g, bits, lo, hi, merger);
  merger.flush();
  return free;
}

/** A bitmap whose free count is not its descriptor's: mballoc's "blocks in bitmap, in gd" error, as a warning. */
function warnMismatch(fs: FreeSpaceSource, groups: number[]): void {
  if (groups.length === 0) return;
  const msg = `block bitmap free counts differ from the group descriptors in ${groups.length} group${groups.length === 1 ? '' : 's'} (first: ${groups[0]}); the bitmaps were used (e2fsck fixes the counts)`;
  if (!fs.warnings.includes(msg)) fs.warnings.push(msg);
}

/**
 * Read the block bitmaps of table groups `which` into `buf` (room for all of them), in as few
 * reads as their placement allows: by block, neighbours joined up to MAX_READ_BYTES (flex_bg puts
 * a flex group's bitmaps side by side). Nothing else is read: not even the block of a
 * BLOCK_UNINIT group lying between two (it means nothing). Each read goes through the block view,
 * so a bitmap the journal or a replay holds newer than the disk reads as the filesystem sees it.
 */
async function readBitmaps(fs: FreeSpaceSource, gt: GroupTable, which: Int32Array, buf: Uint8Array, at: Int32Array): Promise<void> {
  if (which.length === 0) return;
  const bs = fs.blockSize;
  const block = gt.blockBitmap;
  let order = which;
  for (let k = 1; k < which.length; k++)
    if (block[which[k]!]! <= block[which[k - 1]!]!) {
      order = which.slice().sort((a, b) => block[a]! - block[b]!);
      break;
    }
  const maxRun = MAX_READ_BYTES / bs;
  // All reads of the batch issued, then awaited together: a synchronous device (the CLI's) reads
  // each at once, without a trip through the event loop per read; an asynchronous one overlaps them.
  const reads: Promise<void>[] = [];
  let pos = 0;
  for (let k = 0; k < order.length; ) {
    const b0 = block[order[k]!]!;
    let j = k + 1;
    while (j < order.length && j - k < maxRun && block[order[j]!]! === b0 + (j - k)) j++;
    const nb = j - k;
    reads.push(fs.readDataBlocksInto(b0, nb, buf.subarray(pos, pos + nb * bs)));
    for (let m = k; m < j; m++) at[order[m]!] = pos + (m - k) * bs;
    pos += nb * bs;
    k = j;
  }
  await Promise.all(reads);
}
