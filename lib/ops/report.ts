/**
 * Fragmentation and free-space reports, computed offline exactly as the
 * e2fsprogs tools compute them on a mounted filesystem (semantics.md §9–§11):
 *
 * - fileFrag / formatFileFrag: `filefrag -v` — one row per FIEMAP extent
 *   (ext, logical first..last, physical first..last, length, expected,
 *   flags) and the "N extents found" count;
 * - fragReport / formatFragReport: `e4defrag -c` — per file now/best
 *   extents, physical runs, ratio and size per extent; totals, the score and
 *   the verdict, the five most fragmented files;
 * - freeFrag / formatFreeFrag: `e2freefrag [-c KB]` run offline — the
 *   histogram of free extents by log2 of their length, min/max/avg free
 *   extent, free chunks.
 *
 * "FIEMAP extents" are the cold-cache rows of lib/ext4/fiemap.ts.
 *
 * Arithmetic follows the C: e4defrag's ratios and score are `float`
 * (single precision, Math.fround at every step), its sizes are integer
 * divisions; printf's %.Nf rounds the exact binary value half-to-even.
 */
import { Ext4Error } from '../errors.js';
import type { Filesystem, FileMap } from '../ext4/filesystem.js';
import { decodeName } from '../ext4/bytes.js';
import { COMPAT, INCOMPAT } from '../ext4/superblock.js';
import { INODE_FLAGS, hasInlineData, type Inode } from '../ext4/inode.js';
import { bitOfBlock, clusterRatio, descBlockCount, groupFirstBlock, groupFixedMetadata, groupOfBlock, inodeTableBlocks } from '../ext4/geometry.js';
import { kernelReaddir } from '../ext4/hash-order.js';
import { FIEMAP_EXTENT, fiemapExtents, type FiemapExtent } from '../ext4/fiemap.js';
import { scanFreeRuns } from './free.js';

export { FIEMAP_EXTENT, fiemapExtents, kernelReaddir, type FiemapExtent };

// ============================================================================ printf helpers

/**
 * C's printf("%.{prec}f", x) for a double: the exact binary value rounded
 * half-to-even (glibc), "-0" for negative values that round to zero,
 * "inf"/"-inf"/"nan"/"-nan" for the special values.
 */
export function cFixed(x: number, prec: number): string {
  if (Number.isNaN(x)) return 'nan'; // glibc prints "-nan" for a NaN with the sign bit; JS cannot tell
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  const neg = x < 0 || Object.is(x, -0);
  const a = Math.abs(x);
  // exact decomposition a = m * 2^e
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, a);
  const hi = dv.getUint32(0), lo = dv.getUint32(4);
  const bexp = (hi >>> 20) & 0x7ff;
  let m = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let e: number;
  if (bexp === 0) e = -1074;
  else {
    m |= 1n << 52n;
    e = bexp - 1075;
  }
  const scale = 10n ** BigInt(prec);
  let q: bigint;
  if (e >= 0) q = (m << BigInt(e)) * scale;
  else {
    const num = m * scale;
    const den = 1n << BigInt(-e);
    q = num / den;
    const r2 = (num % den) * 2n;
    if (r2 > den || (r2 === den && (q & 1n) === 1n)) q += 1n;
  }
  let s = q.toString();
  if (prec > 0) {
    s = s.padStart(prec + 1, '0');
    s = `${s.slice(0, s.length - prec)}.${s.slice(s.length - prec)}`;
  }
  return (neg ? '-' : '') + s;
}

/** printf("%*s"): right-aligned in `w` columns (never truncated). */
function padL(s: string | number, w: number): string {
  return String(s).padStart(w);
}
/** printf("%-*s"): left-aligned in `w` columns. */
function padR(s: string | number, w: number): string {
  return String(s).padEnd(w);
}

/** ext2fs_log10_u64 / ulong_log10: number of decimal digits minus one. */
function log10Floor(n: number): number {
  let l = 0;
  for (let x = Math.floor(n / 10); x > 0; x = Math.floor(x / 10)) l++;
  return l;
}

function log2Floor(n: number): number {
  let l = 0;
  for (let x = Math.floor(n / 2); x > 0; x = Math.floor(x / 2)) l++;
  return l;
}

const f32 = Math.fround;

// ============================================================================ FIEMAP flags

/** Flag names in filefrag's print order. */
const FLAG_NAMES: readonly [number, string][] = [
  [FIEMAP_EXTENT.LAST, 'last'],
  [FIEMAP_EXTENT.UNKNOWN, 'unknown_loc'],
  [FIEMAP_EXTENT.DELALLOC, 'delalloc'],
  [FIEMAP_EXTENT.ENCODED, 'encoded'],
  [FIEMAP_EXTENT.DATA_ENCRYPTED, 'encrypted'],
  [FIEMAP_EXTENT.NOT_ALIGNED, 'not_aligned'],
  [FIEMAP_EXTENT.DATA_INLINE, 'inline'],
  [FIEMAP_EXTENT.DATA_TAIL, 'tail_packed'],
  [FIEMAP_EXTENT.UNWRITTEN, 'unwritten'],
  [FIEMAP_EXTENT.MERGED, 'merged'],
  [FIEMAP_EXTENT.SHARED, 'shared'],
];

// ============================================================================ filefrag

/** One row of `filefrag -v`, in the units filefrag prints (blocks; bytes for inline data). */
export interface FileFragRow {
  /** Row number ("ext:"). */
  index: number;
  /** First and last logical unit. */
  logical: number;
  logicalEnd: number;
  /** First and last physical unit. */
  physical: number;
  physicalEnd: number;
  length: number;
  /** Where the extent was expected to start, when it is a new fragment (the "expected:" column); else null. */
  expected: number | null;
  /** Flag names in filefrag's order, "eof" last when the extent reaches i_size. */
  flags: string[];
  unwritten: boolean;
  /** The raw FIEMAP extent. */
  fiemap: FiemapExtent;
}

export interface FileFrag {
  /** The path as given (resolved inside the image). */
  path: string;
  ino: number;
  size: number;
  blockSize: number;
  /** ceil(size / blockSize): filefrag's "(N blocks of B bytes)". */
  blocks: number;
  mapping: FileMap['kind'];
  /** No EXTENTS_FL (block-mapped or inline): filefrag prints the cylinder-group estimate for such files. */
  nonExtent: boolean;
  rows: FileFragRow[];
  /** filefrag's "N extents found". */
  extents: number;
  /** Filesystem facts the text output needs: statfs f_blocks (total minus overhead). */
  statfsBlocks: number;
}

/**
 * statfs(2) f_blocks of ext4: blocks minus the overhead (s_overhead_clusters
 * when set, else the first data block, every group's superblock/GDT/reserved
 * GDT copies, bitmaps and inode tables, and the internal journal).
 */
export async function statfsBlocks(fs: Filesystem): Promise<number> {
  const cached = statfsCache.get(fs);
  if (cached && cached.blocksCount === fs.sb.blocksCount) return cached.value;
  const value = await computeStatfsBlocks(fs);
  statfsCache.set(fs, { blocksCount: fs.sb.blocksCount, value });
  return value;
}

const statfsCache = new WeakMap<Filesystem, { blocksCount: number; value: number }>();

async function computeStatfsBlocks(fs: Filesystem): Promise<number> {
  const sb = fs.sb;
  // ext4_statfs: f_blocks = blocks − EXT4_C2B(overhead); the overhead counts clusters.
  const ratio = clusterRatio(sb);
  if (sb.s_overhead_clusters) return sb.blocksCount - sb.s_overhead_clusters * ratio;
  if (ratio > 1) return sb.blocksCount - (await overheadClusters(fs)) * ratio;
  let overhead = sb.s_first_data_block;
  const meta = new Set<number>();
  const itb = inodeTableBlocks(sb);
  for (let g = 0; g < sb.groupCount; g++) {
    const f = groupFixedMetadata(sb, g);
    if (f.superBlock >= 0) overhead++;
    overhead += f.oldDescCount + (f.newDescBlock >= 0 ? 1 : 0);
    const gd = await fs.group(g);
    meta.add(gd.blockBitmap);
    meta.add(gd.inodeBitmap);
    for (let i = 0; i < itb; i++) meta.add(gd.inodeTable + i);
  }
  overhead += meta.size;
  if (sb.s_feature_compat & COMPAT.HAS_JOURNAL && sb.s_journal_inum) {
    const ji = await fs.readInode(sb.s_journal_inum);
    overhead += Math.floor(ji.size / fs.blockSize);
  }
  return sb.blocksCount - overhead;
}

/**
 * ext4_calculate_overhead with bigalloc (count_overhead), in clusters: for
 * each group, the clusters of the group holding a block bitmap, an inode
 * bitmap or a whole inode table (any group's: flex_bg), its superblock copy
 * (bit 0) and its descriptor blocks (counted from the group's start, as the
 * kernel does; reserved GDT blocks are not overhead there); plus the blocks
 * before the first data block and the internal journal, in clusters.
 */
async function overheadClusters(fs: Filesystem): Promise<number> {
  const sb = fs.sb;
  const ratio = clusterRatio(sb);
  const itb = inodeTableBlocks(sb);
  const perGroup = new Map<number, Set<number>>();
  const bitsOf = (g: number) => {
    let set = perGroup.get(g);
    if (!set) perGroup.set(g, (set = new Set()));
    return set;
  };
  const mark = (b: number, n: number) => {
    if (b < sb.s_first_data_block || b >= sb.blocksCount) return;
    const g = groupOfBlock(sb, b);
    // an inode table counts only inside one group, short of its last block (`b + itb <= last_block`)
    if (n > 1 && b + n > groupFirstBlock(sb, g) + sb.s_blocks_per_group - 1) return;
    for (let k = 0; k < n; k++) bitsOf(g).add(bitOfBlock(sb, b + k));
  };
  const metaBg = (sb.s_feature_incompat & INCOMPAT.META_BG) !== 0;
  for (let g = 0; g < sb.groupCount; g++) {
    const gd = await fs.group(g);
    mark(gd.blockBitmap, 1);
    mark(gd.inodeBitmap, 1);
    mark(gd.inodeTable, itb);
    const f = groupFixedMetadata(sb, g);
    const gdb = f.newDescBlock >= 0 ? 1 : f.oldDescStart >= 0 ? (metaBg ? sb.s_first_meta_bg : descBlockCount(sb)) : 0;
    let s = 0;
    if (f.superBlock >= 0) bitsOf(g).add(s++);
    for (let k = 0; k < gdb; k++, s++) bitsOf(g).add(Math.floor(s / ratio));
  }
  let overhead = Math.floor(sb.s_first_data_block / ratio);
  for (const set of perGroup.values()) overhead += set.size;
  if (sb.s_feature_compat & COMPAT.HAS_JOURNAL && sb.s_journal_inum) {
    const ji = await fs.readInode(sb.s_journal_inum);
    overhead += Math.ceil(Math.floor(ji.size / fs.blockSize) / ratio);
  }
  return overhead;
}

/** `filefrag -v PATH` on the file at `path` inside the image (symlinks are followed, as open(2) does). */
export async function fileFrag(fs: Filesystem, path: string): Promise<FileFrag> {
  const inode = await fs.resolve(path);
  if (inode.type !== 'file' && inode.type !== 'dir') throw new Ext4Error('EINVAL', `${path}: not a regular file or directory (filefrag maps files and directories)`);
  const map = await fs.fileMap(inode);
  const list = await fiemapExtents(fs, inode, map);
  const bs = fs.blockSize;
  const rows: FileFragRow[] = [];
  // filefrag compares byte offsets; every extent of one file has the same unit (blocks, or bytes for
  // inline data), and the comparisons are scale-invariant, so work in units. The printed values are
  // in those units too (filefrag shifts by the block size, or by 0 for inline data).
  let lastL = 0, lastP = 0, lastLen = 0;
  let count = 0;
  list.forEach((e, i) => {
    const dense = lastP + lastLen;
    let expected = lastP + e.logical - lastL;
    if (e.logical !== 0 && e.physical !== expected && e.physical !== dense) count++;
    else {
      expected = 0;
      if (count === 0) count = 1;
    }
    lastL = e.logical;
    lastP = e.physical;
    lastLen = e.length;
    const flags: string[] = [];
    for (const [bit, name] of FLAG_NAMES) if (e.flags & bit) flags.push(name);
    if ((e.logical + e.length) * e.unit >= inode.size) flags.push('eof');
    rows.push({
      index: i,
      logical: e.logical,
      logicalEnd: e.logical + e.length - 1,
      physical: e.physical,
      physicalEnd: e.physical + e.length - 1,
      length: e.length,
      expected: expected ? expected : null,
      flags,
      unwritten: (e.flags & FIEMAP_EXTENT.UNWRITTEN) !== 0,
      fiemap: e,
    });
  });
  return {
    path,
    ino: inode.ino,
    size: inode.size,
    blockSize: bs,
    blocks: Math.ceil(inode.size / bs),
    mapping: map.kind,
    nonExtent: !(inode.flags & INODE_FLAGS.EXTENTS),
    rows,
    extents: count,
    statfsBlocks: await statfsBlocks(fs),
  };
}

export interface FormatFileFragOptions {
  /** filefrag -v (default true); false prints only the "N extents found" lines. */
  verbose?: boolean;
  /** How each file is named (default: its path inside the image). */
  name?: (f: FileFrag) => string;
}

/**
 * The text `filefrag [-v] F…` prints for these files (one filesystem, in
 * order: the column widths only grow, and the filesystem lines are printed
 * for the first file only, as filefrag does for files on one device).
 */
export function formatFileFrag(files: FileFrag | readonly FileFrag[], opts: FormatFileFragOptions = {}): string {
  const list = Array.isArray(files) ? (files as readonly FileFrag[]) : [files as FileFrag];
  const verbose = opts.verbose !== false;
  let out = '';
  let logicalWidth = 8, physicalWidth = 10;
  list.forEach((f, k) => {
    const name = opts.name ? opts.name(f) : f.path;
    const bs = f.blockSize;
    if (k === 0 && verbose) out += 'Filesystem type is: ef53\n';
    if (f.nonExtent && k === 0 && verbose) {
      const cyl = f.statfsBlocks <= 0 ? 0 : Math.floor((f.statfsBlocks - 1) / (bs * 8)) + 1;
      out += `Filesystem cylinder groups approximately ${cyl}\n`;
    }
    physicalWidth = Math.max(physicalWidth, log10Floor(f.statfsBlocks));
    logicalWidth = Math.max(logicalWidth, log10Floor(f.blocks));
    if (verbose) {
      out += `File size of ${name} is ${f.size} (${f.blocks} block${f.blocks === 1 ? '' : 's'} of ${bs} bytes)\n`;
      if (f.rows.length) {
        out += ` ext: ${padL('logical_offset:', logicalWidth * 2 + 3)} ${padL('physical_offset:', physicalWidth * 2 + 3)} length: ${padL('expected:', physicalWidth + 1)} flags:\n`;
      }
      for (const r of f.rows) {
        let flags = r.expected !== null ? `${padL(r.expected, physicalWidth)}: ` : ' '.repeat(physicalWidth) + '  ';
        for (const n of r.flags) if (n !== 'eof') flags += n + ',';
        flags = flags.slice(0, -1); // filefrag drops the last character ("trailing comma")
        if (r.flags.includes('eof')) flags += ',eof';
        out += `${padL(r.index, 4)}: ${padL(r.logical, logicalWidth)}..${padL(r.logicalEnd, logicalWidth)}: ${padL(r.physical, physicalWidth)}..${padL(r.physicalEnd, physicalWidth)}: ${padL(r.length, 6)}: ${flags}\n`;
      }
    }
    out += f.extents === 1 ? `${name}: 1 extent found\n` : `${name}: ${f.extents} extents found\n`;
  });
  return out;
}

// ============================================================================ directory walk (nftw order)

export interface WalkEntry {
  /** Path inside the image, '/'-separated, starting at '/'. */
  path: string;
  ino: number;
  inode: Inode;
}

/**
 * nftw(path, FTW_PHYS) as glibc runs it on a mounted filesystem: pre-order,
 * each directory's entries in readdir order, symlinks not followed, every
 * name visited (hard links more than once).
 *
 * A directory reached twice (a hard-linked directory or a cycle — e2fsck
 * pass 3 fixes both) is EFSCORRUPTED, as in `list -R`: without that check a
 * cycle walks forever. The walk keeps an explicit stack, so depth costs heap
 * (bounded by the number of directories), never the JS stack.
 */
export async function* walkTree(fs: Filesystem, path: string, inode: Inode): AsyncGenerator<WalkEntry> {
  yield { path, ino: inode.ino, inode };
  if (inode.type !== 'dir') return;
  const visited = new Set<number>([inode.ino]);
  const stack: { path: string; entries: { name: Uint8Array; ino: number }[]; next: number }[] = [{ path, entries: await kernelReaddir(fs, inode), next: 0 }];
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const e = top.entries[top.next++];
    if (!e) {
      stack.pop();
      continue;
    }
    const child = await fs.readInode(e.ino);
    const p = top.path === '/' ? `/${decodeName(e.name)}` : `${top.path}/${decodeName(e.name)}`;
    yield { path: p, ino: child.ino, inode: child };
    if (child.type !== 'dir') continue;
    if (visited.has(child.ino))
      throw new Ext4Error('EFSCORRUPTED', `${p}: directory inode ${child.ino} is reachable twice (hard-linked directory or a cycle)`, { structure: `inode ${child.ino}` });
    visited.add(child.ino);
    stack.push({ path: p, entries: await kernelReaddir(fs, child), next: 0 });
  }
}

// ============================================================================ e4defrag -c

export interface FragFile {
  path: string;
  ino: number;
  /** Position in the walk ("[i/n]"), 1-based. */
  index: number;
  /** FIEMAP extents ("now"). */
  now: number;
  /** get_best_count(blocks). */
  best: number;
  /** Runs contiguous both physically and logically (e4defrag's physical_ext_count). */
  physical: number;
  /** Blocks mapped (Σ FIEMAP lengths / block size). */
  blocks: number;
  /** blocks × (blksize/1024) / now, integer (KB). */
  sizePerExtentKB: number;
  /** (physical − best) × 100 / blocks, single precision. */
  ratio: number;
  /** The FIEMAP extents in blocks, logical order (only for a file given as its own target). */
  extentList?: { logical: number; physical: number; length: number }[];
}

export type FragSkipReason = 'lost+found' | 'not a regular file' | 'size is 0' | 'no blocks' | 'blocks <= 1' | 'no extents';

export interface FragSkip {
  path: string;
  index: number;
  reason: FragSkipReason;
}

export interface FragTotals {
  /** Σ now. */
  now: number;
  /** Σ best. */
  best: number;
  blocks: number;
  averageSizePerExtentKB: number;
  /** (Σnow − Σbest) × 100 / Σblocks, single precision. */
  filesRatio: number;
  /** files_ratio > 10 ? 80 + 20 × files_ratio / 100 : 8 × files_ratio (single precision). */
  score: number;
  /** The score as e4defrag prints it (%.0f). */
  scoreText: string;
  /** score > 55. */
  needsDefrag: boolean;
}

export interface FragTarget {
  /** The argument as given ('' for the whole filesystem). */
  arg: string;
  kind: 'device' | 'directory' | 'file';
  /** Set when e4defrag refuses the argument itself (the message it prints). */
  error?: string;
  /** Entries the walk visits (total_count). */
  entries: number;
  /** Regular files among them (regular_count). */
  regular: number;
  /** Files with statistics, in walk order. */
  files: FragFile[];
  skipped: FragSkip[];
  /** The five most fragmented files by ratio, as e4defrag ranks them (directory/device only). */
  fragmented: FragFile[];
  /** null when no file could be measured ("none can be defragmented"). */
  totals: FragTotals | null;
}

export interface FragReport {
  blockSize: number;
  blocksPerGroup: number;
  /** Groups per flex group when FLEX_BG is set (1 otherwise). */
  flexGroups: number;
  targets: FragTarget[];
}

export interface FragReportOptions {
  /**
   * Skip files of at most one block (st_blocks ≤ blksize/512), as e4defrag
   * does since e2fsprogs 1.47.1 (default true). false: skip only files with
   * st_blocks == 0, as 1.47.0 and earlier do.
   */
  skipSingleBlock?: boolean;
}

/** The thresholds line e4defrag prints under the score. */
export const FRAG_THRESHOLDS = '[0-30 no problem: 31-55 a little bit fragmented: 56- needs defrag]';
const SHOW_FRAG_FILES = 5;
const BOUND_SCORE = 55;

/** get_best_count: the fewest extents a file of `blocks` blocks could have (u64 math, int result). */
export function bestExtentCount(blocks: number, blocksPerGroup: number, flexGroups: number): number {
  if (blocksPerGroup === 0) return 1;
  const per = BigInt(blocksPerGroup) * BigInt(flexGroups);
  const b = BigInt.asUintN(64, BigInt(blocks) - 1n);
  return Number(BigInt.asIntN(32, b / per + 1n));
}

/** CALC_SCORE on a float ratio, in float. */
export function fragScore(filesRatio: number): number {
  return filesRatio > 10 ? f32(80 + f32(f32(20 * filesRatio) / 100)) : f32(8 * filesRatio);
}

/** st_blocks as stat(2) reports it for an ext4 inode (inline data counts its bytes in sectors). */
function statBlocks(inode: Inode): number {
  return inode.blocks512 + (hasInlineData(inode) ? Math.ceil(inode.size / 512) : 0);
}

interface FragContext {
  fs: Filesystem;
  bs: number;
  bpg: number;
  flex: number;
  skipSingleBlock: boolean;
}

/** file_statistic for one regular file; a FragFile, or why it was skipped. */
async function measure(ctx: FragContext, path: string, index: number, inode: Inode, withList = false): Promise<FragFile | FragSkipReason> {
  if (inode.type !== 'file') return 'not a regular file';
  if (inode.size === 0) return 'size is 0';
  const stb = statBlocks(inode);
  if (ctx.skipSingleBlock ? stb <= ctx.bs / 512 : stb === 0) return ctx.skipSingleBlock ? 'blocks <= 1' : 'no blocks';
  const list = await fiemapExtents(ctx.fs, inode);
  if (list.length === 0) return 'no extents';
  // e4defrag converts FIEMAP bytes to blocks by integer division
  const ext = list.map((e) => ({
    logical: Math.floor((e.logical * e.unit) / ctx.bs),
    physical: Math.floor((e.physical * e.unit) / ctx.bs),
    len: Math.floor((e.length * e.unit) / ctx.bs),
  }));
  const byPhys = [...ext].sort((a, b) => a.physical - b.physical);
  let physical = 0;
  for (let i = 0; i < byPhys.length; i++) {
    const a = byPhys[i]!, b = byPhys[(i + 1) % byPhys.length]!;
    if (a.physical + a.len !== b.physical || a.logical + a.len !== b.logical) physical++;
  }
  const now = ext.length;
  let blocks = 0;
  for (const e of ext) blocks += e.len;
  const best = bestExtentCount(blocks, ctx.bpg, ctx.flex);
  const kb = Math.floor(ctx.bs / 1024);
  const sizePerExtentKB = Math.floor((blocks * kb) / now);
  const ratio = fileRatio(physical, best, blocks);
  const f: FragFile = { path, ino: inode.ino, index, now, best, physical, blocks, sizePerExtentKB, ratio };
  if (withList) f.extentList = ext.map((e) => ({ logical: e.logical, physical: e.physical, length: e.len }));
  return f;
}

/** e4defrag's frag_rank insertion: the first slot whose ratio ≤ this one's, later ones shift down. */
function rank(top: (FragFile | null)[], f: FragFile): void {
  for (let i = 0; i < SHOW_FRAG_FILES; i++) {
    const slotRatio = top[i]?.ratio ?? 0;
    if (f.ratio >= slotRatio) {
      for (let j = SHOW_FRAG_FILES - 1; j > i; j--) top[j] = top[j - 1] ?? null;
      top[i] = f;
      return;
    }
  }
}

/** e4defrag's per-file ratio: (float)(physical − best) × 100 / blocks, in single precision. */
export function fileRatio(physical: number, best: number, blocks: number): number {
  return f32(f32(f32(physical - best) * 100) / f32(blocks));
}

/** e4defrag's totals from Σnow, Σbest (C ints) and Σblocks: average size per extent, files_ratio, score, verdict. */
export function fragTotals(now: number, best: number, blocks: number, blockSize: number): FragTotals {
  now |= 0;
  best |= 0;
  const kb = Math.floor(blockSize / 1024);
  const filesRatio = fileRatio(now, best, blocks);
  const score = fragScore(filesRatio);
  return {
    now,
    best,
    blocks,
    averageSizePerExtentKB: Math.floor((blocks * kb) / now),
    filesRatio,
    score,
    scoreText: cFixed(score, 0),
    needsDefrag: score > BOUND_SCORE,
  };
}

function totalsOf(files: readonly FragFile[], bs: number): FragTotals | null {
  if (files.length === 0) return null;
  let now = 0, best = 0, blocks = 0;
  for (const f of files) {
    now = (now + f.now) | 0;
    best = (best + f.best) | 0;
    blocks += f.blocks;
  }
  return fragTotals(now, best, blocks, bs);
}

function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir + '/');
}

/**
 * `e4defrag -c` statistics. Without `paths`, the whole filesystem as
 * `e4defrag -c DEVICE` walks it (files under /lost+found skipped); with
 * `paths`, one target per path, each with its own totals, as e4defrag
 * handles each argument: a directory is walked (given the root directory,
 * names starting with "/lost+found" are skipped — e4defrag's prefix match),
 * a regular file is measured on its own.
 */
export async function fragReport(fs: Filesystem, paths?: readonly string[], opts: FragReportOptions = {}): Promise<FragReport> {
  const sb = fs.sb;
  const flex = sb.s_feature_incompat & INCOMPAT.FLEX_BG ? 2 ** sb.s_log_groups_per_flex : 1;
  const ctx: FragContext = { fs, bs: fs.blockSize, bpg: sb.s_blocks_per_group, flex, skipSingleBlock: opts.skipSingleBlock !== false };
  const targets: FragTarget[] = [];
  const args = paths && paths.length ? paths : null;
  for (const arg of args ?? ['']) {
    const t: FragTarget = { arg, kind: 'device', entries: 0, regular: 0, files: [], skipped: [], fragmented: [], totals: null };
    targets.push(t);
    let root: Inode;
    let start: string;
    let lostFound: string | null;
    if (args === null) {
      root = await fs.readInode(2);
      start = '/';
      lostFound = '/lost+found/';
    } else {
      start = '/' + arg.split('/').filter((x) => x !== '' && x !== '.').join('/');
      try {
        root = await fs.resolve(start, { followLast: false });
      } catch (e) {
        // e4defrag: lstat fails → perror("Failed to get file information"), next argument
        if (!(e instanceof Ext4Error) || (e.code !== 'ENOENT' && e.code !== 'ENOTDIR')) throw e;
        t.kind = 'file';
        t.error = `Failed to get file information: ${e.code === 'ENOENT' ? 'No such file or directory' : 'Not a directory'}`;
        continue;
      }
      if (root.type === 'dir') {
        t.kind = 'directory';
        if (start !== '/' && isUnder(start, '/lost+found')) {
          t.error = 'Can not process "lost+found"';
          continue;
        }
        lostFound = start === '/' ? '/lost+found' : null;
      } else if (root.type === 'file') {
        t.kind = 'file';
        if (start.startsWith('/lost+found/')) {
          t.error = 'Can not process "lost+found"';
          continue;
        }
        lostFound = null;
      } else {
        t.kind = 'file';
        t.error = 'File is not regular file';
        continue;
      }
    }
    if (t.kind === 'file') {
      t.entries = 1;
      t.regular = 1;
      const r = await measure(ctx, start, 1, root, true);
      if (typeof r === 'string') t.skipped.push({ path: start, index: 1, reason: r });
      else t.files.push(r);
      t.totals = totalsOf(t.files, ctx.bs);
      continue;
    }
    const top: (FragFile | null)[] = new Array<FragFile | null>(SHOW_FRAG_FILES).fill(null);
    let index = 0;
    for await (const e of walkTree(fs, start, root)) {
      index++;
      t.entries++;
      if (e.inode.type === 'file') t.regular++;
      if (lostFound !== null && e.path.startsWith(lostFound)) {
        t.skipped.push({ path: e.path, index, reason: 'lost+found' });
        continue;
      }
      const r = await measure(ctx, e.path, index, e.inode);
      if (typeof r === 'string') t.skipped.push({ path: e.path, index, reason: r });
      else {
        t.files.push(r);
        rank(top, r);
      }
    }
    t.fragmented = top.filter((x): x is FragFile => x !== null);
    t.totals = totalsOf(t.files, ctx.bs);
  }
  return { blockSize: fs.blockSize, blocksPerGroup: sb.s_blocks_per_group, flexGroups: flex, targets };
}

export interface FormatFragOptions {
  /** Per-file lines, as `e4defrag -c -v` prints them (without its terminal escape codes). */
  verbose?: boolean;
  /** Prepended to every file path (e.g. a mount point, to compare with e4defrag's output). */
  pathPrefix?: string;
  /** How each target is named in the verdict line (default: its arg; the device name for the whole fs). */
  argName?: (t: FragTarget) => string;
  /** First line (e4defrag prints its version banner); default none. */
  banner?: string;
  /** Where refusals of an argument go (e4defrag prints them on stderr); default: inline. */
  errorsTo?: (text: string) => void;
}

function fileLine(name: string, f: FragFile): string {
  if (name.length > 40) return `${name}\n${padL(f.now, 50)}/${padR(f.best, 10)}${padL(f.sizePerExtentKB, 6)} KB\n`;
  return `${padR(name, 40)}${padL(f.now, 10)}/${padR(f.best, 10)}${padL(f.sizePerExtentKB, 6)} KB\n`;
}

/** The text `e4defrag -c [-v]` prints for these targets (root's view: numbers included). */
export function formatFragReport(report: FragReport, opts: FormatFragOptions = {}): string {
  const prefix = opts.pathPrefix ?? '';
  const header = `${padR('<File>', 40)}${padL('now', 10)}/${padR('best', 10)}${padL('size/ext', 9)}\n`;
  let out = opts.banner ? opts.banner + '\n' : '';
  report.targets.forEach((t, i) => {
    if (i > 0) out += '\n';
    const argName = opts.argName ? opts.argName(t) : t.arg || 'device';
    if (t.error) {
      const msg = `${t.error}\n "${argName}"\n`;
      if (opts.errorsTo) opts.errorsTo(msg);
      else out += msg;
      return;
    }
    if (t.kind === 'file') {
      const f = t.files[0];
      if (opts.verbose) {
        out += '<File>\n';
        f?.extentList?.forEach((e, j) => (out += `[ext ${j + 1}]:\tstart ${e.physical}:\tlogical ${e.logical}:\tlen ${e.length}\n`));
      } else if (f) out += header + fileLine(prefix + f.path, f);
    } else {
      if (opts.verbose) {
        out += header;
        for (const f of t.files) out += fileLine(`[${f.index}/${t.entries}]${prefix}${f.path}`, f);
      }
      if (t.files.length) {
        if (opts.verbose) out += '\n';
        out += `${padR('<Fragmented files>', 40)}${padL('now', 10)}/${padR('best', 10)}${padL('size/ext', 9)}\n`;
        t.fragmented.forEach((f, j) => {
          const name = prefix + f.path;
          if (name.length > 37) out += `${j + 1}. ${name}\n${padL(f.now, 50)}/${padR(f.best, 10)}${padL(f.sizePerExtentKB, 6)} KB\n`;
          else out += `${j + 1}. ${padR(name, 37)}${padL(f.now, 10)}/${padR(f.best, 10)}${padL(f.sizePerExtentKB, 6)} KB\n`;
        });
      }
    }
    const what = t.kind === 'device' ? 'device' : t.kind === 'directory' ? 'directory' : 'file';
    if (!t.totals) {
      if (opts.verbose) out += '\n';
      if (t.kind === 'file') out += ` This file(${argName}) can't be defragmented.\n`;
      else out += ` In this ${what}(${argName}), none can be defragmented.\n`;
    } else {
      const s = t.totals;
      out += `\n Total/best extents\t\t\t\t${s.now}/${s.best}\n`;
      out += ` Average size per extent\t\t\t${s.averageSizePerExtentKB} KB\n`;
      out += ` Fragmentation score\t\t\t\t${s.scoreText}\n`;
      out += ` ${FRAG_THRESHOLDS}\n`;
      out += ` This ${what} (${argName}) ${s.needsDefrag ? 'needs defragmentation.' : 'does not need defragmentation.'}\n`;
    }
    out += ' Done.\n';
  });
  return out;
}

// ============================================================================ e2freefrag

const MAX_HIST = 32;
const DEFAULT_CHUNK_BYTES = 1024 * 1024;

export interface FreeFragBucket {
  /** Histogram slot: floor(log2(run length in blocks)) + 1, capped at 31. */
  index: number;
  /** The range as e2freefrag prints it, e.g. "4K...8K-", or "...max" for the last slot. */
  label: string;
  /** Smallest run length (in blocks) that falls in this slot. */
  minBlocks: number;
  /** Free extents in the slot. */
  extents: number;
  /** Free blocks in them. */
  blocks: number;
  /** blocks × 100 / free blocks (the superblock's count), unrounded. */
  percent: number;
}

export interface FreeFragChunks {
  bytes: number;
  blocks: number;
  /** (blocks count + blocks per chunk) >> log2(blocks per chunk) — e2freefrag's off-by-one included. */
  total: number;
  /** Chunks (aligned to the chunk size from block 0) whose every block is free. */
  free: number;
  /** free × 100 / total, unrounded. */
  percent: number;
}

export interface FreeFragReport {
  blockSize: number;
  totalBlocks: number;
  /** The superblock's free blocks count (what e2freefrag prints offline). */
  freeBlocks: number;
  /** Free blocks counted in the bitmaps (equal on a consistent filesystem). */
  freeBlocksInBitmaps: number;
  /** freeBlocks × 100 / totalBlocks, unrounded. */
  freePercent: number;
  chunk: FreeFragChunks | null;
  /** Free extents (maximal runs of free blocks, across group boundaries). */
  freeExtents: number;
  /** In KB, as e2freefrag computes them (avg = Σ / count, integer, × blocksize/1024). */
  minKB: number;
  maxKB: number;
  avgKB: number;
  /** Non-empty slots only, ascending. */
  histogram: FreeFragBucket[];
}

export interface FreeFragOptions {
  /** -c: chunk size in KB (a power of two, at least one block). */
  chunkKB?: number;
}

/** e2freefrag's range labels for every histogram slot (unit letters K, M, G, …). */
function bucketLabels(blockSize: number): string[] {
  const units = 'KMGTPEZY';
  const bits = log2Floor(blockSize);
  let unitShift = 10, u = 0;
  let start = 0;
  const out: string[] = [];
  for (let i = 0; i < MAX_HIST; i++) {
    const end = 2 ** (i + bits - unitShift);
    const endStr = i === MAX_HIST - 1 ? 'max ' : `${padL(end, 5)}${units[u]}-`;
    out.push(`${padL(start, 5)}${units[u]}...${padL(endStr, 7)}`);
    start = end;
    if (start === 1024) {
      start = 1;
      unitShift += 10;
      u++;
    }
  }
  return out;
}

/**
 * `e2freefrag [-c KB]` computed offline from the block bitmaps (what the
 * tool does on an unmounted filesystem): free runs merged across groups.
 */
export async function freeFrag(fs: Filesystem, opts: FreeFragOptions = {}): Promise<FreeFragReport> {
  const sb = fs.sb;
  const bs = fs.blockSize;
  const N = sb.blocksCount;
  let chunkBytes = 0;
  if (opts.chunkKB !== undefined) {
    const c = opts.chunkKB;
    if (!Number.isSafeInteger(c) || c <= 0) throw new Ext4Error('EINVAL', `bad chunk size '${c}'`);
    if (c & (c - 1)) throw new Ext4Error('EINVAL', 'chunk size must be a power of 2.');
    chunkBytes = c * 1024;
    if (chunkBytes < bs) throw new Ext4Error('EINVAL', 'chunksize must be greater than or equal to filesystem blocksize.');
  }
  const blksInChunk = (chunkBytes || DEFAULT_CHUNK_BYTES) / bs;
  // scan_block_bitmap's chunks: chunk 0 tests blocks [fdb, c0End) (its first block is moved to the
  // first data block); chunk k ≥ 1 starts at c0End + (k−1)·b and counts when all b blocks are free.
  const fdb = sb.s_first_data_block;
  const c0End = Math.max(Math.min(blksInChunk, N), fdb + 1);
  const fc = new Array<number>(MAX_HIST).fill(0);
  const fb = new Array<number>(MAX_HIST).fill(0);
  let min = Infinity, max = 0, sum = 0, count = 0, freeChunks = 0, scanned = 0;
  await fs.exclusive(() =>
    scanFreeRuns(fs, 0, N, (s, l) => {
      let idx = log2Floor(l) + 1;
      if (idx >= MAX_HIST) idx = MAX_HIST - 1;
      fc[idx]!++;
      fb[idx]! += l;
      if (l > max) max = l;
      if (l < min) min = l;
      sum += l;
      count++;
      scanned += l;
      const e = s + l;
      if (c0End - fdb === blksInChunk && s <= fdb && c0End <= e) freeChunks++;
      const jlo = s <= c0End ? 0 : Math.ceil((s - c0End) / blksInChunk);
      const jhi = Math.floor((e - c0End) / blksInChunk) - 1;
      if (jhi >= jlo) freeChunks += jhi - jlo + 1;
    }),
  );
  const free = sb.freeBlocksCount;
  const scale = bs >> 10;
  const labels = bucketLabels(bs);
  const histogram: FreeFragBucket[] = [];
  for (let i = 0; i < MAX_HIST; i++) {
    if (fc[i] === 0) continue;
    histogram.push({ index: i, label: labels[i]!, minBlocks: i === 0 ? 0 : 2 ** (i - 1), extents: fc[i]!, blocks: fb[i]!, percent: (fb[i]! * 100) / free });
  }
  let chunk: FreeFragChunks | null = null;
  if (chunkBytes) {
    const total = Math.floor((N + blksInChunk) / blksInChunk);
    chunk = { bytes: chunkBytes, blocks: blksInChunk, total, free: freeChunks, percent: (freeChunks * 100) / total };
  }
  return {
    blockSize: bs,
    totalBlocks: N,
    freeBlocks: free,
    freeBlocksInBitmaps: scanned,
    freePercent: (free * 100) / N,
    chunk,
    freeExtents: count,
    minKB: count ? min * scale : 0,
    maxKB: max * scale,
    avgKB: count ? Math.floor(sum / count) * scale : 0,
    histogram,
  };
}

/** The text `e2freefrag [-c KB] DEVICE` prints (offline). */
export function formatFreeFrag(r: FreeFragReport, device: string): string {
  let out = `Device: ${device}\nBlocksize: ${r.blockSize} bytes\n`;
  out += `Total blocks: ${r.totalBlocks}\nFree blocks: ${r.freeBlocks} (${cFixed(r.freePercent, 1)}%)\n`;
  if (r.chunk) {
    out += `\nChunksize: ${r.chunk.bytes} bytes (${r.chunk.blocks} blocks)\n`;
    out += `Total chunks: ${r.chunk.total}\nFree chunks: ${r.chunk.free} (${cFixed(r.chunk.percent, 1)}%)\n`;
  }
  out += `\nMin. free extent: ${r.minKB} KB \nMax. free extent: ${r.maxKB} KB\nAvg. free extent: ${r.avgKB} KB\n`;
  out += `Num. free extent: ${r.freeExtents}\n`;
  out += '\nHISTOGRAM OF FREE EXTENT SIZES:\n';
  out += `Extent Size Range :  ${padL('Free extents', 12)}  ${padL('Free Blocks', 12)}  ${padL('Percent', 7)}\n`;
  for (const b of r.histogram) out += `${b.label}  :  ${padL(b.extents, 12)}  ${padL(b.blocks, 12)}  ${padL(cFixed(b.percent, 2), 6)}%\n`;
  return out;
}
