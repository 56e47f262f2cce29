/**
 * Realistic fragmented images made by the kernel (issue 10): mkfs.ext4, loop-mount, several
 * writers appending to their files in an interleaved order (fdatasync'd now and then, so the
 * kernel allocates while the others are growing), a third of the files deleted, more appends into
 * the holes, up to a target fill level. The defragmenter's test ground, and bench/defrag's.
 *
 * Deterministic given the parameters: the sequence of writes (which file, how many bytes, which
 * bytes, when to sync, what to delete) is a pure function of (sizeMiB, fill, seed, writers) and the
 * filesystem's capacity (`fragPlan`). Where the kernel places the blocks may still vary a little
 * between runs and kernels (mballoc's per-CPU preallocation, writeback timing), so the extent and
 * free-extent counts are measured, never assumed.
 *
 * Built once per (parameters, kernel release, mkfs version, this file) under
 * `os.tmpdir()/ext4kit-test-images/frag-*`; every call returns a fresh PRIVATE sparse copy.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildOnce, CACHE_ROOT, touchUsed } from './images.js';
import { kernelCacheKey, parseFilefrag, type FiemapExtent } from './kernel-images.js';
import { mulberry32 } from '../../lib/io/prng.js';
import { tmpPath } from './tmp.js';
import { canLoopMount, copySparse, dumpe2fsFreeExtents, expectE2fsckClean, mkfs, run, sha256File, skipReason, withLoopMountSync } from './tools.js';
import { prngBytes } from './tree.js';

const BLOCK = 4096;
const MiB = 1024 * 1024;
/** One extent per 128 MiB counts as ideal (the issue's rule; ext4's longest extent is 128 MiB). */
const IDEAL_EXTENT_BYTES = 128 * MiB;

export interface FragImageOptions {
  /** Image size in MiB (32 for the test suite … a few GiB for the bench). */
  sizeMiB: number;
  /** Target fill, used/total blocks as `df` counts it (metadata included): 0.5, 0.7, 0.9. */
  fill: number;
  /** Seed of the write sequence (default 1). */
  seed?: number;
  /** Concurrent writers whose appends interleave (default 4). */
  writers?: number;
  /**
   * mkfs's `-g` (default: mkfs's own, 32,768 at 4 KiB blocks). Small groups put backup superblocks
   * close together: a test image whose free space no layout can gather into one half (what a
   * 1 GiB filesystem at 50 % is, at a size the suite can afford).
   */
  blocksPerGroup?: number;
}

export interface FragFileStats {
  /** Absolute path inside the filesystem. */
  path: string;
  size: number;
  /** Extents as the issue counts them (see `countExtents`). */
  extents: number;
  /** Ideal: max(1, ceil(size / 128 MiB)); 0 for an empty file. */
  ideal: number;
  /** sha256 of the content read through the kernel (when measured with `hash`). */
  sha256?: string;
  /** Physical runs [first block, length], merged, sorted by logical (when measured with `maps`). */
  runs?: [number, number][];
}

export interface FragStats {
  blockSize: number;
  /** Total blocks, free blocks (e2freefrag). */
  blocks: number;
  freeBlocks: number;
  /** (blocks − freeBlocks) / blocks. */
  fill: number;
  files: number;
  /** Sum over regular files of `countExtents` (filefrag's FIEMAP through the kernel). */
  extents: number;
  idealExtents: number;
  /** e2freefrag's "Num. free extent" and "Max. free extent" (in blocks). */
  freeExtents: number;
  largestFreeBlocks: number;
  perFile: FragFileStats[];
}

export interface FragImage extends FragStats {
  /** Private sparse copy: tests and benches may write to it. */
  image: string;
  sizeMiB: number;
  targetFill: number;
  seed: number;
  writers: number;
  /** sha256 of every surviving file as the plan wrote it (the source of truth for content). */
  expectedSha256: Record<string, string>;
  /** Seconds the kernel build took (cached builds report the original figure). */
  buildSeconds: number;
}

/** Why fragmented images cannot be built here (no root / loop devices), or null. */
export function fragImageSkipReason(): string | null {
  return canLoopMount() ? null : skipReason('loop');
}

// ---------------------------------------------------------------------------------------------
// Counting

/**
 * Extents of one file the way the issue counts them: FIEMAP extents merged when logically and
 * physically contiguous, each merged run then counted once per started 128 MiB (so a contiguous
 * 300 MiB file is 3 = ideal).
 */
export function countExtents(extents: readonly FiemapExtent[], blockSize: number): number {
  const per = Math.max(1, Math.floor(IDEAL_EXTENT_BYTES / blockSize));
  const sorted = [...extents].sort((a, b) => a.logical - b.logical);
  let n = 0;
  let runLen = 0;
  let prev: FiemapExtent | null = null;
  for (const e of sorted) {
    if (prev && prev.logical + prev.length === e.logical && prev.physical + prev.length === e.physical) {
      runLen += e.length;
    } else {
      if (prev) n += Math.ceil(runLen / per);
      runLen = e.length;
    }
    prev = e;
  }
  if (prev) n += Math.ceil(runLen / per);
  return n;
}

/** FIEMAP rows merged into physical runs [first block, length], in logical order. */
export function physicalRuns(extents: readonly FiemapExtent[]): [number, number][] {
  const out: [number, number][] = [];
  for (const e of [...extents].sort((a, b) => a.logical - b.logical)) {
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === e.physical) last[1] += e.length;
    else out.push([e.physical, e.length]);
  }
  return out;
}

/**
 * Blocks of `after` not among the same file's blocks in `before`: what a defragmenter wrote
 * (files present in both, matched by path).
 */
export function blocksMoved(before: readonly FragFileStats[], after: readonly FragFileStats[]): number {
  const old = new Map(before.map((f) => [f.path, f.runs]));
  let moved = 0;
  for (const f of after) {
    if (!f.runs) throw new Error('blocksMoved: measure with { maps: true }');
    const a = [...(old.get(f.path) ?? [])].sort((x, y) => x[0] - y[0]);
    const b = [...f.runs].sort((x, y) => x[0] - y[0]);
    let kept = 0;
    for (let i = 0, j = 0; i < a.length && j < b.length; ) {
      const lo = Math.max(a[i]![0], b[j]![0]);
      const hi = Math.min(a[i]![0] + a[i]![1], b[j]![0] + b[j]![1]);
      if (hi > lo) kept += hi - lo;
      if (a[i]![0] + a[i]![1] < b[j]![0] + b[j]![1]) i++;
      else j++;
    }
    moved += b.reduce((x, r) => x + r[1], 0) - kept;
  }
  return moved;
}

export function idealExtents(size: number): number {
  return size === 0 ? 0 : Math.max(1, Math.ceil(size / IDEAL_EXTENT_BYTES));
}

/**
 * The issue's targets for a defragmented image. `largestPossible` (largestPossibleFreeBlocks):
 * where no run of the filesystem can hold half of its free space, the largest free extent is held
 * to that run instead, and `capped` says so.
 */
export function meetsTargets(s: Pick<FragStats, 'extents' | 'idealExtents' | 'freeExtents' | 'largestFreeBlocks' | 'freeBlocks'>, largestPossible?: number): { ok: boolean; why: string[]; capped: boolean } {
  const why: string[] = [];
  if (s.extents > 1.1 * s.idealExtents) why.push(`extents ${s.extents} > 1.1 × ideal ${s.idealExtents}`);
  if (s.freeExtents > 50) why.push(`free extents ${s.freeExtents} > 50`);
  const half = Math.ceil(s.freeBlocks / 2);
  const capped = s.largestFreeBlocks < half && largestPossible !== undefined && largestPossible < half;
  if (capped && s.largestFreeBlocks < largestPossible) why.push(`largest free extent ${s.largestFreeBlocks} < the longest possible ${largestPossible} (no run holds half of free ${s.freeBlocks})`);
  if (!capped && s.largestFreeBlocks < half) why.push(`largest free extent ${s.largestFreeBlocks} < half of free ${s.freeBlocks}`);
  return { ok: why.length === 0, why, capped };
}

/**
 * The longest free extent any defragmenter could leave, from e2fsprogs and the kernel alone: the
 * longest run of blocks that are free (dumpe2fs's "Free blocks:" ranges, group by group), hold a
 * regular file's data (FIEMAP runs: `perFile` measured with `maps`) or its extent-tree blocks
 * (debugfs `stat`'s "(ETBn):block": a file made contiguous needs none). Every other block —
 * superblocks and their backups, descriptors, bitmaps, inode tables, the journal, directories —
 * stays where it is.
 */
export function largestPossibleFreeBlocks(img: string, perFile: readonly FragFileStats[]): number {
  const runs: [number, number][] = [];
  const cmds = tmpPath('debugfs-stat.cmds');
  fs.writeFileSync(cmds, perFile.map((f) => `stat "${f.path}"\n`).join(''));
  try {
    for (const m of run('debugfs', ['-f', cmds, img]).stdout.matchAll(/\(ETB\d+\):(\d+)/g)) runs.push([Number(m[1]), 1]);
  } finally {
    fs.rmSync(cmds, { force: true });
  }
  const free = dumpe2fsFreeExtents(img);
  for (const r of free) runs.push([r.start, r.length]);
  if (!free.length) throw new Error(`dumpe2fs ${img}: no free block ranges listed`);
  for (const f of perFile) {
    if (!f.runs) throw new Error('largestPossibleFreeBlocks: measure with { maps: true }');
    runs.push(...f.runs);
  }
  runs.sort((x, y) => x[0] - y[0]);
  let longest = 0, start = -1, end = -1;
  for (const [a, n] of runs) {
    if (a <= end) end = Math.max(end, a + n);
    else (start = a), (end = a + n);
    longest = Math.max(longest, end - start);
  }
  return longest;
}

/** e2freefrag on an unmounted image. */
export function freeFrag(img: string): { blockSize: number; blocks: number; freeBlocks: number; freeExtents: number; largestFreeBlocks: number } {
  const out = run('e2freefrag', [img]).stdout;
  const num = (re: RegExp) => {
    const m = re.exec(out);
    if (!m) throw new Error(`e2freefrag: cannot parse ${re} in:\n${out}`);
    return Number(m[1]);
  };
  const blockSize = num(/Blocksize:\s+(\d+)/);
  const freeBlocks = num(/Free blocks:\s+(\d+)/);
  return {
    blockSize,
    blocks: num(/Total blocks:\s+(\d+)/),
    freeBlocks,
    freeExtents: freeBlocks === 0 ? 0 : num(/Num\. free extent:\s+(\d+)/),
    largestFreeBlocks: freeBlocks === 0 ? 0 : (num(/Max\. free extent:\s+(\d+) KB/) * 1024) / blockSize,
  };
}

function listFiles(mp: string): string[] {
  const out: string[] = [];
  const rec = (rel: string) => {
    for (const d of fs.readdirSync(path.join(mp, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (r === 'lost+found') continue;
      if (d.isDirectory()) rec(r);
      else if (d.isFile()) out.push(r);
    }
  };
  rec('');
  return out.sort();
}


/** filefrag -v over `rels` in batches; returns the extents of each. */
function filefragAll(mp: string, rels: string[]): Map<string, FiemapExtent[]> {
  const res = new Map<string, FiemapExtent[]>();
  for (let i = 0; i < rels.length; i += 200) {
    const batch = rels.slice(i, i + 200);
    const out = run('filefrag', ['-v', ...batch], { cwd: mp }).stdout;
    // one section per file, each opened by "File size of <name> is …"
    const sections = out.split(/^(?=File size of )/m).filter((s) => s.startsWith('File size of '));
    if (sections.length !== batch.length) throw new Error(`filefrag: ${sections.length} sections for ${batch.length} files`);
    batch.forEach((rel, k) => {
      const head = sections[k]!.slice(0, sections[k]!.indexOf('\n'));
      if (!head.startsWith(`File size of ${rel} is `)) throw new Error(`filefrag: section for ${rel} reads "${head}"`);
      res.set(rel, parseFilefrag(sections[k]!));
    });
  }
  return res;
}

/**
 * Measure any image (unmounted, clean journal): loop-mounts it read-only for FIEMAP (filefrag) and
 * optionally the content, unmounts, then runs e2freefrag.
 */
export function measureFragImage(img: string, opts: { hash?: boolean; maps?: boolean } = {}): FragStats {
  const perFile = withLoopMountSync(
    img,
    (mp) => {
      const bs = fs.statfsSync(mp).bsize;
      const rels = listFiles(mp);
      const maps = filefragAll(mp, rels);
      return rels.map((rel): FragFileStats => {
        const size = fs.statSync(path.join(mp, rel)).size;
        const f: FragFileStats = { path: `/${rel}`, size, extents: countExtents(maps.get(rel)!, bs), ideal: idealExtents(size) };
        if (opts.hash) f.sha256 = sha256File(path.join(mp, rel));
        if (opts.maps) f.runs = physicalRuns(maps.get(rel)!);
        return f;
      });
    },
    { readOnly: true },
  );
  const ff = freeFrag(img);
  return {
    blockSize: ff.blockSize,
    blocks: ff.blocks,
    freeBlocks: ff.freeBlocks,
    fill: (ff.blocks - ff.freeBlocks) / ff.blocks,
    files: perFile.length,
    extents: perFile.reduce((a, f) => a + f.extents, 0),
    idealExtents: perFile.reduce((a, f) => a + f.ideal, 0),
    freeExtents: ff.freeExtents,
    largestFreeBlocks: ff.largestFreeBlocks,
    perFile,
  };
}

// ---------------------------------------------------------------------------------------------
// The plan: a pure function of the parameters and the capacity

export type FragOp =
  /** Append `length` bytes (content: the pool at `poolOffset`) to file `file`, then maybe fdatasync. */
  | { op: 'append'; file: number; length: number; poolOffset: number; sync: boolean }
  | { op: 'delete'; file: number };

export interface FragPlan {
  /** File paths (relative), indexed by the ops' `file`. */
  paths: string[];
  ops: FragOp[];
  /** Bytes of the surviving files at the end. */
  finalBytes: number;
}


const POOL_BYTES = 8 * MiB;
const DIRS = ['', 'a', 'b', 'b/c', 'd'];

/**
 * The write sequence for an image of `sizeMiB` whose writable budget is `dataBudget` bytes
 * (target used − used at mount − a margin for directories and extent blocks).
 * Sizes are skewed: 40 % small files (1–16 blocks), the rest log-uniform from 64 KiB to
 * size/32 (≤ 128 MiB). Phase 1 writes 90 % of the budget, a third of the files (chosen at random)
 * are deleted, phase 2 (half new files, half appends to survivors) fills up to the budget.
 */
export function fragPlan(o: Required<Omit<FragImageOptions, 'blocksPerGroup'>>, dataBudget: number): FragPlan {
  const r = mulberry32(o.seed * 2654435761 + Math.round(o.fill * 1000) * 97 + o.sizeMiB);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const maxFile = Math.min(128 * MiB, Math.max(256 * 1024, Math.floor((o.sizeMiB * MiB) / 16)));
  const drawSize = () => {
    if (r() < 0.4) return int(1, 16) * BLOCK - (r() < 0.5 ? int(0, BLOCK - 1) : 0);
    const lo = Math.log(64 * 1024);
    return Math.floor(Math.exp(lo + r() * (Math.log(maxFile) - lo)));
  };
  const paths: string[] = [];
  const size: number[] = [];
  const target: number[] = [];
  const alive = new Set<number>();
  const ops: FragOp[] = [];
  const newFile = (): number => {
    const id = paths.length;
    paths.push(`${DIRS[id % DIRS.length] ? `${DIRS[id % DIRS.length]}/` : ''}f${String(id).padStart(5, '0')}`);
    size.push(0);
    target.push(drawSize());
    alive.add(id);
    return id;
  };
  let used = 0;
  // each writer appends to its current file until that reaches its target, then takes another
  const writeUntil = (budget: number, pickFile: () => number) => {
    const cur: number[] = Array.from({ length: o.writers }, pickFile);
    while (used < budget) {
      const w = int(0, o.writers - 1);
      let f = cur[w]!;
      if (size[f]! >= target[f]!) f = cur[w] = pickFile();
      const chunk = int(1, 16) * BLOCK;
      const length = Math.max(1, Math.min(chunk, target[f]! - size[f]!, budget - used));
      ops.push({ op: 'append', file: f, length, poolOffset: int(0, POOL_BYTES - 1 - 128 * 1024), sync: r() < 0.9 });
      size[f]! += length;
      used += length;
    }
  };
  writeUntil(Math.floor(dataBudget * 0.9), newFile);
  const ids = [...alive];
  for (let i = ids.length - 1; i > 0; i--) {
    const j = int(0, i);
    [ids[i], ids[j]] = [ids[j]!, ids[i]!];
  }
  for (const id of ids.slice(0, Math.floor(ids.length / 3))) {
    ops.push({ op: 'delete', file: id });
    alive.delete(id);
    used -= size[id]!;
  }
  const survivors = [...alive].sort((a, b) => a - b);
  writeUntil(dataBudget, () => {
    if (survivors.length > 0 && r() < 0.5) {
      const f = survivors[int(0, survivors.length - 1)]!;
      target[f] = size[f]! + int(1, 64) * BLOCK; // grow a survivor into whatever is free now
      return f;
    }
    return newFile();
  });
  return { paths, ops, finalBytes: used };
}

/** sha256 of every surviving file the plan writes. */
export function planSha256(plan: FragPlan, pool: Buffer): Record<string, string> {
  const h = new Map<number, crypto.Hash>();
  for (const op of plan.ops) {
    if (op.op === 'delete') {
      h.delete(op.file);
      continue;
    }
    let x = h.get(op.file);
    if (!x) h.set(op.file, (x = crypto.createHash('sha256')));
    x.update(poolSlice(pool, op.poolOffset, op.length));
  }
  const out: Record<string, string> = {};
  for (const [id, x] of h) out[`/${plan.paths[id]}`] = x.digest('hex');
  return out;
}

function poolSlice(pool: Buffer, off: number, len: number): Buffer {
  if (off + len <= pool.length) return pool.subarray(off, off + len);
  return Buffer.concat([pool.subarray(off), pool.subarray(0, off + len - pool.length)]);
}

// ---------------------------------------------------------------------------------------------
// Building (through the kernel)

/**
 * Run the plan through the kernel. Every append opens, writes, maybe fdatasyncs and closes, like
 * log appenders: closing a synced file drops mballoc's per-inode preallocation
 * (ext4_release_file → ext4_discard_preallocations), so the next append of that file competes with
 * the other writers for space; that is what fragments real filesystems.
 */
function executePlan(mp: string, plan: FragPlan, pool: Buffer): void {
  for (const d of DIRS) if (d) fs.mkdirSync(path.join(mp, d), { recursive: true });
  for (const op of plan.ops) {
    const p = path.join(mp, plan.paths[op.file]!);
    if (op.op === 'delete') {
      fs.unlinkSync(p);
      continue;
    }
    const fd = fs.openSync(p, 'a');
    try {
      fs.writeSync(fd, poolSlice(pool, op.poolOffset, op.length));
      if (op.sync) fs.fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
  run('sync', ['-f', mp]);
}

const fragKey = kernelCacheKey('frag-v1', new URL('./frag-images.ts', import.meta.url));

type Cached = Omit<FragImage, 'image'>;

/**
 * A kernel-made fragmented image (see the file comment); null when loop mounts are unavailable.
 * Throws if the result is not fragmented (fewer extents than 1.5 × ideal) or misses the fill.
 */
export function fragImage(opts: FragImageOptions): FragImage | null {
  const built = ensureBuilt(opts);
  if (!built) return null;
  const image = tmpPath(`frag-${built.name}.img`);
  copySparse(built.original, image);
  return { ...built.info, image };
}

/**
 * Build (or find) the cached original: `original` is READ-ONLY, for benches that make their own
 * copies; `info` its measurements at build time.
 */
export function ensureBuilt(opts: FragImageOptions): { name: string; original: string; info: Omit<FragImage, 'image'> } | null {
  if (!canLoopMount()) return null;
  const o: Required<FragImageOptions> = { seed: 1, writers: 4, blocksPerGroup: 0, ...opts };
  if (!(o.sizeMiB >= 16) || !(o.fill > 0 && o.fill < 0.97)) throw new Error(`fragImage: bad options ${JSON.stringify(o)}`);
  const name = `${o.sizeMiB}m-${Math.round(o.fill * 100)}-s${o.seed}-w${o.writers}${o.blocksPerGroup ? `-g${o.blocksPerGroup}` : ''}`;
  const dir = path.join(CACHE_ROOT, `frag-${name}-${fragKey(name)}`);
  buildOnce(
    dir,
    (tmp) => {
      const t0 = Date.now();
      const img = path.join(tmp, 'image.img');
      // 4 KiB blocks always (mke2fs's "small" type would pick 1 KiB below 512 MiB)
      mkfs('ext4', img, o.sizeMiB * MiB, ['-b', String(BLOCK), ...(o.blocksPerGroup ? ['-g', String(o.blocksPerGroup)] : [])]);
      const pool = prngBytes(`frag-pool-${o.seed}`, POOL_BYTES);
      // the budget from the superblock's counts (statfs hides the metadata overhead: bsddf)
      const cap = freeFrag(img);
      const usedNow = (cap.blocks - cap.freeBlocks) * cap.blockSize;
      // margin for directory blocks and extent tree blocks the kernel adds while writing
      const margin = Math.max(256 * 1024, Math.floor(cap.blocks * cap.blockSize * 0.004));
      const budget = Math.floor(o.fill * cap.blocks * cap.blockSize) - usedNow - margin;
      if (budget <= 0) throw new Error(`fragImage ${name}: metadata alone fills ${usedNow} of ${cap.blocks * cap.blockSize} bytes`);
      const plan = fragPlan(o, budget);
      // nobarrier: an fdatasync still forces writeback, so mballoc allocates exactly when it would
      // otherwise (the fragmentation is the same), but jbd2 skips the cache flush each sync would
      // send through the loop device to the backing file: ~10x faster builds (a 4 GiB image at
      // 90 % in about a minute instead of 15). Nothing here needs the image durable mid-build.
      withLoopMountSync(img, (mp) => executePlan(mp, plan, pool), { options: ['nobarrier'] });
      expectE2fsckClean(img, `frag image ${name}`);
      const stats = measureFragImage(img, { hash: true });
      const expected = planSha256(plan, pool);
      for (const f of stats.perFile) {
        if (expected[f.path] !== f.sha256) throw new Error(`frag image ${name}: ${f.path} reads back differently from what was written`);
      }
      if (stats.files !== Object.keys(expected).length) throw new Error(`frag image ${name}: ${stats.files} files, plan leaves ${Object.keys(expected).length}`);
      if (stats.extents < 1.5 * stats.idealExtents) throw new Error(`frag image ${name}: only ${stats.extents} extents for ideal ${stats.idealExtents}: not fragmented`);
      if (Math.abs(stats.fill - o.fill) > 0.03) throw new Error(`frag image ${name}: fill ${stats.fill.toFixed(3)}, wanted ${o.fill}`);
      const info: Cached = { ...stats, sizeMiB: o.sizeMiB, targetFill: o.fill, seed: o.seed, writers: o.writers, expectedSha256: expected, buildSeconds: (Date.now() - t0) / 1000 };
      fs.writeFileSync(path.join(tmp, 'info.json'), JSON.stringify(info));
    },
    60 * 60_000,
  );
  touchUsed(dir);
  const info = JSON.parse(fs.readFileSync(path.join(dir, 'info.json'), 'utf8')) as Cached;
  return { name, original: path.join(dir, 'image.img'), info };
}
