/**
 * Images written by the Linux kernel through loop mounts: the oracle for layouts e2fsprogs never
 * produces (deep extent trees, unwritten extents, > 4 GiB offsets, a journal needing recovery).
 *
 * Every function returns null when loop mounts are unavailable (`kernelSkipReason()` says why) and
 * throws if the kernel did not produce what is promised. Each image is built once (across workers)
 * under `os.tmpdir()/ext4kit-test-images/kernel-*`; every call returns a fresh PRIVATE copy in
 * `image`, so tests may write to it.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildOnce, CACHE_ROOT, touchUsed } from './images.js';
import { tmpPath } from './tmp.js';
import {
  canLoopMount,
  copySparse,
  debugfs,
  debugfsStats,
  dumpe2fsHeader,
  expectE2fsckClean,
  e2fsckClean,
  featuresOf,
  mkfs,
  run,
  sha256File,
  skipReason,
  withLoopMountSync,
} from './tools.js';
import { prngBytes } from './tree.js';

/** Why kernel images are unavailable here, or null. */
export function kernelSkipReason(): string | null {
  return canLoopMount() ? null : skipReason('loop');
}

// ---------------------------------------------------------------------------------------------
// filefrag

export interface FiemapExtent {
  /** In filesystem blocks. */
  logical: number;
  physical: number;
  length: number;
  /** filefrag's flags, e.g. ["unwritten"], ["last", "eof"]. */
  flags: string[];
}

/** Parse `filefrag -v` output. */
export function parseFilefrag(out: string): FiemapExtent[] {
  const ext: FiemapExtent[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*\d+:\s+(\d+)\.\.\s*(\d+):\s+(\d+)\.\.\s*(\d+):\s+(\d+):\s*(?:\d+:)?\s*(.*)$/.exec(line);
    if (!m) continue;
    ext.push({
      logical: Number(m[1]),
      physical: Number(m[3]),
      length: Number(m[5]),
      flags: m[6]!.split(',').map((s) => s.trim()).filter(Boolean),
    });
  }
  return ext;
}

export interface KernelFile {
  /** Absolute path inside the filesystem. */
  path: string;
  size: number;
  sha256: string;
  /** st_blocks × 512 / block size: allocated blocks (unwritten ones included). */
  allocatedBlocks: number;
  /** FIEMAP as the kernel reported it (filefrag -v), in blocks. */
  extents: FiemapExtent[];
}

function describe(mp: string, rel: string, blockSize: number, hash = true): KernelFile {
  const p = path.join(mp, rel);
  const st = fs.statSync(p);
  const ff = run('filefrag', ['-v', p]);
  return {
    path: `/${rel}`,
    size: st.size,
    sha256: hash ? sha256File(p) : '',
    allocatedBlocks: (st.blocks * 512) / blockSize,
    extents: parseFilefrag(ff.stdout),
  };
}

// ---------------------------------------------------------------------------------------------
// caching

/**
 * Cache keys for images the kernel builds: `version`, the builder's own source, the kernel release
 * and the mkfs version (a change to any of them rebuilds).
 */
export function kernelCacheKey(version: string, builder: URL): (name: string) => string {
  let keyBase: string | null = null;
  return (name) => {
    if (!keyBase) {
      const h = crypto.createHash('sha256').update(version);
      try {
        h.update(fs.readFileSync(builder));
      } catch {
        /* compiled elsewhere */
      }
      h.update(run('uname', ['-r']).stdout);
      const v = run('mkfs.ext4', ['-V'], { okStatus: true });
      h.update(v.stdout + v.stderr);
      keyBase = h.digest('hex');
    }
    return crypto.createHash('sha256').update(keyBase).update(name).digest('hex').slice(0, 16);
  };
}
const kernelKey = kernelCacheKey('kernel-v1', new URL('./kernel-images.ts', import.meta.url));

function cached<T extends object>(name: string, build: (dir: string) => T): (T & { image: string }) | null {
  if (!canLoopMount()) return null;
  const dir = path.join(CACHE_ROOT, `kernel-${name}-${kernelKey(name)}`);
  buildOnce(dir, (tmp) => {
    const info = build(tmp);
    fs.writeFileSync(path.join(tmp, 'info.json'), JSON.stringify(info, null, 1));
  });
  touchUsed(dir);
  const info = JSON.parse(fs.readFileSync(path.join(dir, 'info.json'), 'utf8')) as T;
  const image = tmpPath(`kernel-${name}.img`);
  copySparse(path.join(dir, 'image.img'), image);
  return { ...info, image };
}

function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Parse `debugfs ex` rows into per-level counts; depth = the tree depth printed ("0/ 2"). */
function extentTreeShape(img: string, file: string): { depth: number; leaves: number; indexBlocks: number } {
  const out = debugfs(img, [`ex ${file}`]);
  let depth = -1;
  let leaves = 0;
  let index = 0;
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\/\s*(\d+)\s+\d+\/\s*\d+\s/.exec(line);
    if (!m) continue;
    const level = Number(m[1]);
    depth = Number(m[2]);
    if (level === depth) leaves++;
    else if (level > 0) index++;
  }
  return { depth, leaves, indexBlocks: index };
}

// ---------------------------------------------------------------------------------------------
// (a) a deep extent tree

export interface ManyExtentsImage {
  /** Private copy of the image (ext4, 4 KiB blocks, 64 MiB, mkfs defaults). */
  image: string;
  blockSize: number;
  /** The file: every other 4 KiB block written (3,200 data blocks over 6,399 logical blocks). */
  file: KernelFile;
  /** Extent tree depth from `debugfs ex` (≥ 2) and leaf extent count (≥ 3,000). */
  depth: number;
  leafExtents: number;
  /** Extent tree blocks at levels 1 … depth−1 (index blocks below the root). */
  indexBlocks: number;
}

/** (a) A file of 3,200 extents (extent tree depth 2) written by the kernel. */
export function manyExtentsImage(): ManyExtentsImage | null {
  return cached('many-extents', (dir) => {
    const img = path.join(dir, 'image.img');
    const bs = 4096;
    const n = 3200;
    mkfs('ext4', img, 64 * 1024 * 1024, ['-b', String(bs)]);
    const data = prngBytes('many-extents', n * bs);
    const file = withLoopMountSync(img, (mp) => {
      const fd = fs.openSync(path.join(mp, 'many'), 'w');
      try {
        for (let i = 0; i < n; i++) fs.writeSync(fd, data, i * bs, bs, 2 * i * bs);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      return describe(mp, 'many', bs);
    });
    expectE2fsckClean(img, 'kernel many-extents image');
    const shape = extentTreeShape(img, '/many');
    if (shape.depth < 2 || shape.leaves < 3000) throw new Error(`kernel produced extent depth ${shape.depth} with ${shape.leaves} leaf extents (wanted ≥ 2 / ≥ 3000)`);
    return { blockSize: bs, file, depth: shape.depth, leafExtents: shape.leaves, indexBlocks: shape.indexBlocks };
  });
}

// ---------------------------------------------------------------------------------------------
// (b) unwritten extents and punched holes

export interface FallocImage {
  image: string;
  blockSize: number;
  /**
   * /prealloc: 64 KiB data at 0; `fallocate -o 1M -l 1M` (unwritten, size → 2 MiB); 4 KiB written
   *   at 1.5 MiB (splits the unwritten extent); `fallocate -n -o 2M -l 64K` (the kernel merges it
   *   into an unwritten extent that crosses EOF) and `-n -o 2.5M -l 1M` (an extent wholly past EOF).
   * /punched: 1 MiB data; `fallocate -p` at 256 KiB+128 KiB, at 100000+5000 (unaligned: zeroes
   *   parts of blocks), and the last 4 KiB (size unchanged).
   * /beyond-eof-only: empty file with `fallocate -n -l 256K` (size 0, 64 unwritten blocks).
   * /zero-range: 512 KiB data; `fallocate -z -o 128K -l 128K`.
   */
  files: Record<'prealloc' | 'punched' | 'beyond-eof-only' | 'zero-range', KernelFile>;
}

/** (b) fallocate: unwritten extents inside and past EOF, punched and zeroed ranges. */
export function fallocImage(): FallocImage | null {
  return cached('falloc', (dir) => {
    const img = path.join(dir, 'image.img');
    const bs = 4096;
    const K = 1024;
    const M = 1024 * 1024;
    mkfs('ext4', img, 32 * M, ['-b', String(bs)]);
    const files = withLoopMountSync(img, (mp) => {
      const p = (n: string) => path.join(mp, n);
      const writeAt = (n: string, off: number, len: number, flags = 'r+') => {
        const fd = fs.openSync(p(n), flags);
        fs.writeSync(fd, prngBytes(`${n}@${off}`, len), 0, len, off);
        fs.fsyncSync(fd);
        fs.closeSync(fd);
      };
      const falloc = (args: string[], n: string) => run('fallocate', [...args, p(n)]);
      writeAt('prealloc', 0, 64 * K, 'w');
      falloc(['-o', String(M), '-l', String(M)], 'prealloc');
      writeAt('prealloc', 1.5 * M, 4 * K);
      falloc(['-n', '-o', String(2 * M), '-l', String(64 * K)], 'prealloc');
      falloc(['-n', '-o', String(2.5 * M), '-l', String(M)], 'prealloc');
      writeAt('punched', 0, M, 'w');
      falloc(['-p', '-o', String(256 * K), '-l', String(128 * K)], 'punched');
      falloc(['-p', '-o', '100000', '-l', '5000'], 'punched');
      falloc(['-p', '-o', String(M - 4 * K), '-l', String(4 * K)], 'punched');
      fs.closeSync(fs.openSync(p('beyond-eof-only'), 'w'));
      falloc(['-n', '-l', String(256 * K)], 'beyond-eof-only');
      writeAt('zero-range', 0, 512 * K, 'w');
      falloc(['-z', '-o', String(128 * K), '-l', String(128 * K)], 'zero-range');
      for (const n of ['prealloc', 'punched', 'beyond-eof-only', 'zero-range']) fsyncPath(p(n));
      return {
        prealloc: describe(mp, 'prealloc', bs),
        punched: describe(mp, 'punched', bs),
        'beyond-eof-only': describe(mp, 'beyond-eof-only', bs),
        'zero-range': describe(mp, 'zero-range', bs),
      };
    });
    expectE2fsckClean(img, 'kernel falloc image');
    const pre = files.prealloc;
    const unwritten = pre.extents.filter((e) => e.flags.includes('unwritten'));
    const crossing = pre.extents.some((e) => e.logical * bs < pre.size && (e.logical + e.length) * bs > pre.size);
    const beyond = pre.extents.some((e) => e.logical * bs >= pre.size);
    if (unwritten.length === 0 || !crossing || !beyond) {
      throw new Error(`kernel falloc image lacks unwritten/past-EOF extents: ${JSON.stringify(pre.extents)}`);
    }
    if (files['beyond-eof-only'].size !== 0 || files['beyond-eof-only'].allocatedBlocks !== 64) {
      throw new Error(`beyond-eof-only: ${JSON.stringify(files['beyond-eof-only'])}`);
    }
    return { blockSize: bs, files };
  });
}

// ---------------------------------------------------------------------------------------------
// (c) > 4 GiB sparse file

export interface DataChunk {
  offset: number;
  length: number;
  sha256: string;
}

export interface BigSparseImage {
  image: string;
  blockSize: number;
  /** /big: size 5.5 GiB + 7; everything outside `chunks` reads as zeros. */
  file: Omit<KernelFile, 'sha256'>;
  chunks: DataChunk[];
}

/** (c) A 6 GiB filesystem holding a sparse file with data at offsets beyond 4 GiB. */
export function bigSparseImage(): BigSparseImage | null {
  return cached('big-sparse', (dir) => {
    const img = path.join(dir, 'image.img');
    const bs = 4096;
    const G = 1024 * 1024 * 1024;
    mkfs('ext4', img, 6 * G, ['-b', String(bs), '-N', '8192', '-J', 'size=16']);
    const plan: [number, number][] = [
      [0, 64 * 1024],
      [4 * G - 4096, 8192], // straddles 2^32 bytes
      [4 * G + 12_345, 1024 * 1024], // unaligned, beyond 4 GiB
      [5 * G, 4096],
    ];
    const size = 5.5 * G + 7;
    const chunks: DataChunk[] = [];
    const file = withLoopMountSync(img, (mp) => {
      const p = path.join(mp, 'big');
      const fd = fs.openSync(p, 'w');
      try {
        for (const [off, len] of plan) {
          const data = prngBytes(`big@${off}`, len);
          fs.writeSync(fd, data, 0, len, off);
          chunks.push({ offset: off, length: len, sha256: crypto.createHash('sha256').update(data).digest('hex') });
        }
        fs.ftruncateSync(fd, size);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      // read back through the kernel
      const rfd = fs.openSync(p, 'r');
      try {
        for (const c of chunks) {
          const b = Buffer.alloc(c.length);
          fs.readSync(rfd, b, 0, c.length, c.offset);
          if (crypto.createHash('sha256').update(b).digest('hex') !== c.sha256) throw new Error(`big-sparse: chunk at ${c.offset} reads back differently`);
        }
      } finally {
        fs.closeSync(rfd);
      }
      const { sha256: _ignored, ...rest } = describe(mp, 'big', bs, false);
      return rest;
    });
    expectE2fsckClean(img, 'kernel big-sparse image');
    if (!file.extents.some((e) => e.logical * bs >= 4 * G)) throw new Error(`big-sparse: no extent beyond 4 GiB: ${JSON.stringify(file.extents)}`);
    return { blockSize: bs, file, chunks };
  });
}

// ---------------------------------------------------------------------------------------------
// (d) a journal that needs recovery

export interface TruthEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: number;
  size: number;
  sha256?: string;
  target?: string;
}

export interface NeedsRecoveryImage {
  /** Private copy of an image copied while mounted: needs_recovery set, committed transactions in the journal. */
  image: string;
  blockSize: number;
  /** What the kernel shows after mounting (= replaying) another copy: every path but lost+found, sorted. */
  expected: TruthEntry[];
  /** Transactions found by `debugfs logdump` (committed, not checkpointed). */
  transactions: number;
  /** Revoke blocks seen in the log. */
  revokeBlocks: number;
  /** Journal features (dumpe2fs "Journal features"). */
  journalFeatures: string;
  /** Paths of `expected` that debugfs cannot find in the unreplayed copy (evidence replay matters). */
  missingWithoutReplay: string[];
  /** The `e2fsck -fn` output of the unreplayed copy (reports the skipped recovery). */
  fsckWithoutReplay: string;
  /** `debugfs logdump` of the copy. */
  logdump: string;
}

function walkTruth(mp: string): TruthEntry[] {
  const out: TruthEntry[] = [];
  const rec = (rel: string) => {
    for (const d of fs.readdirSync(rel ? path.join(mp, rel) : mp, { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (r === 'lost+found') continue;
      const p = path.join(mp, r);
      const st = fs.lstatSync(p);
      const e: TruthEntry = { path: r, type: 'other', mode: st.mode & 0o7777, size: st.size };
      if (st.isFile()) {
        e.type = 'file';
        e.sha256 = sha256File(p);
      } else if (st.isDirectory()) {
        e.type = 'dir';
        rec(r);
      } else if (st.isSymbolicLink()) {
        e.type = 'symlink';
        e.target = fs.readlinkSync(p);
      }
      out.push(e);
    }
  };
  rec('');
  return out.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
}

/** (d) An image copied while mounted right after fsync'd writes: its journal needs recovery. */
export function needsRecoveryImage(): NeedsRecoveryImage | null {
  return cached('needs-recovery', (dir) => {
    const img = path.join(dir, 'live.img');
    const copy = path.join(dir, 'image.img');
    const replayed = path.join(dir, 'replayed.img');
    const bs = 4096;
    mkfs('ext4', img, 64 * 1024 * 1024, ['-b', String(bs)]);
    withLoopMountSync(img, (mp) => {
      const p = (n: string) => path.join(mp, n);
      const put = (n: string, data: Buffer | string) => {
        const fd = fs.openSync(p(n), 'w');
        fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
        fs.fsyncSync(fd);
        fs.closeSync(fd);
      };
      fs.mkdirSync(p('dir'));
      put('dir/a.txt', 'first file\n');
      put('dir/b.bin', prngBytes('recovery-b', 200 * 1024));
      fsyncPath(p('dir'));
      fsyncPath(mp);
      // a multi-block directory, committed, then deleted: its blocks get revoked
      fs.mkdirSync(p('victim'));
      for (let i = 0; i < 300; i++) fs.closeSync(fs.openSync(p(`victim/entry-${String(i).padStart(4, '0')}-${'v'.repeat(40)}`), 'w'));
      fsyncPath(p('victim'));
      fsyncPath(mp);
      fs.rmSync(p('victim'), { recursive: true });
      fsyncPath(mp);
      put('dir/c.txt', 'written after the deletion\n');
      fs.renameSync(p('dir/a.txt'), p('dir/a-renamed.txt'));
      fs.symlinkSync('a-renamed.txt', p('dir/link'));
      fsyncPath(p('dir'));
      const fd = fs.openSync(p('dir/b.bin'), 'a');
      fs.writeSync(fd, prngBytes('recovery-b-append', 100 * 1024));
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fs.mkdirSync(p('late-dir'));
      put('late-dir/last.txt', 'the last committed transaction\n');
      fsyncPath(p('late-dir'));
      fsyncPath(mp);
      // copy while still mounted: committed but not checkpointed transactions
      copySparse(img, copy);
    });
    fs.rmSync(img, { force: true });
    const header = dumpe2fsHeader(copy);
    if (!featuresOf(header).has('needs_recovery')) throw new Error(`copied image lacks needs_recovery: ${header['Filesystem features']}`);
    const logdump = debugfs(copy, ['logdump']);
    const transactions = [...logdump.matchAll(/commit block/gi)].length;
    const revokeBlocks = [...logdump.matchAll(/revoke table/gi)].length;
    if (transactions < 1) throw new Error(`no committed transaction in the journal:\n${logdump}`);
    const fsck = e2fsckClean(copy);
    copySparse(copy, replayed);
    const expected = withLoopMountSync(replayed, (mp) => walkTruth(mp));
    expectE2fsckClean(replayed, 'after the kernel replayed the journal');
    fs.rmSync(replayed, { force: true });
    const stats = debugfsStats(copy, expected.map((e) => `/${e.path}`));
    const missingWithoutReplay = expected.filter((e) => stats.get(`/${e.path}`) === null).map((e) => e.path);
    return {
      blockSize: bs,
      expected,
      transactions,
      revokeBlocks,
      journalFeatures: header['Journal features'] ?? '',
      missingWithoutReplay,
      fsckWithoutReplay: fsck.output,
      logdump,
    };
  });
}
