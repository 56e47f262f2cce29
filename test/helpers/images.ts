/**
 * The image MATRIX: one `mkfs -d` image per recipe, built once and cached under
 * `os.tmpdir()/ext4kit-test-images/<name>-<hash>/` (hash of the recipe, the helper sources and the
 * mkfs version), with a lock file so parallel vitest workers build each image only once.
 *
 * The cached image is SHARED: never write to `image` — write to `copy()`.
 *
 * Source trees are shared too: one per block size / tree options (`tree-<bs>-<hash>/src`), built
 * with the big directory's ~9,400 fifos NOT on disk (see below); `entries` includes them.
 *
 * Build of one recipe:
 *   1. mkfs.<kind> -q -F -U … -E hash_seed=… -b BS -N 16384 <opts> -d src (FAKE_TIME, pinned
 *      mke2fs.conf); mkfs -d inserts directory entries linearly (quadratic: 10,000 entries would
 *      take 5–10 s), so bigdir holds only its 600 regular files at this point;
 *   2. if recipe.indexDirs: `e2fsck -fyD` — mkfs -d writes linear directories only; this turns
 *      every multi-block directory into an htree (bigdir among them);
 *   3. debugfs -w: `mknod` the remaining bigdir fifos (fast once bigdir is an htree; linear in the
 *      ext2 recipe, ~3 s), then `sif` their mode to 0644 (mtime is FAKE_TIME, owner root);
 *   4. restore file sizes mkfs got wrong (`sizeFixups`, inline_data only), then `e2fsck -fn` must
 *      be clean.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  copySparse,
  debugfsFull,
  debugfsStats,
  quoteDebugfs,
  dumpe2fsHeader,
  e2fsckFix,
  expectE2fsckClean,
  FAKE_TIME,
  MKE2FS_CONF,
  mkfs,
  run,
  type FsKind,
} from './tools.js';
import { tmpPath, sleepSync } from './tmp.js';
import {
  bigDirDebugfsCommands,
  bigDirFifoEntries,
  compareBytes,
  bigDirModeCommands,
  buildSourceTree,
  snapshotTree,
  type Entry,
  type TreeInfo,
  type TreeOptions,
} from './tree.js';

export interface Recipe {
  name: string;
  kind: FsKind;
  /** Image file size. */
  sizeMiB: number;
  /** Block size (also passed to mkfs as -b). */
  blockSize: number;
  /** Extra mkfs options (after -b and -N). */
  mkfsOpts: string[];
  /** Inode count (-N). */
  inodes: number;
  /** Run `e2fsck -fyD` after mkfs so multi-block directories become htrees. */
  indexDirs: boolean;
  /** Source-tree options besides the block size. */
  tree: Omit<TreeOptions, 'blockSize' | 'deferBigDirFifos'>;
  description: string;
}

const N = 16384;
const r = (name: string, kind: FsKind, blockSize: number, sizeMiB: number, mkfsOpts: string[], description: string, extra: Partial<Recipe> = {}): Recipe => ({
  name,
  kind,
  blockSize,
  sizeMiB,
  mkfsOpts,
  inodes: N,
  indexDirs: true,
  tree: {},
  description,
  ...extra,
});

/** Every recipe; iterate with `for (const recipe of MATRIX)`. */
export const MATRIX: readonly Recipe[] = [
  r('ext4-4k', 'ext4', 4096, 64, [], 'mkfs.ext4 defaults with 4 KiB blocks (one block group)'),
  r('ext4-4k-groups', 'ext4', 4096, 64, ['-g', '2048'], '4 KiB blocks, 8 MiB groups (8 groups, flex_bg packing)'),
  r('ext4-1k', 'ext4', 1024, 64, [], '1 KiB blocks (8 groups; first data block 1; 2-level htree)'),
  r('ext4-2k', 'ext4', 2048, 64, [], '2 KiB blocks (2 groups)'),
  r('ext4-64k', 'ext4', 65536, 160, [], '64 KiB blocks (mkfs warns but works with -F; not mountable on 4 KiB-page kernels)'),
  r('ext4-no64bit', 'ext4', 4096, 64, ['-O', '^64bit', '-g', '4096'], '32-byte group descriptors (^64bit), 4 groups'),
  r('ext4-gdtcsum', 'ext4', 4096, 64, ['-O', '^metadata_csum,uninit_bg', '-g', '4096'], 'gdt_csum (crc16) instead of metadata_csum, 4 groups'),
  r('ext4-nocsum', 'ext4', 4096, 64, ['-O', '^metadata_csum,^uninit_bg', '-g', '4096'], 'no checksums at all, 4 groups'),
  r('ext4-noflexbg', 'ext4', 4096, 64, ['-O', '^flex_bg', '-g', '4096'], 'no flex_bg: bitmaps and inode table inside each group, 4 groups'),
  r('ext4-nojournal', 'ext4', 4096, 64, ['-O', '^has_journal'], 'no journal'),
  r('ext4-inline', 'ext4', 4096, 64, ['-O', 'inline_data'], 'inline_data (small files, dirs and symlinks in the inode)'),
  r('ext4-metabg', 'ext4', 4096, 80, ['-O', 'meta_bg,^resize_inode', '-g', '256'], 'meta_bg without resize_inode, 80 groups of 1 MiB → 2 meta groups'),
  r('ext4-inode128', 'ext4', 4096, 64, ['-I', '128'], '128-byte inodes (no extra fields: no in-inode xattrs, no ns/epoch)'),
  r('ext2', 'ext2', 1024, 64, [], 'mkfs.ext2 (1 KiB blocks, blockmap, no journal); directories left linear (bigdir: 10,000 entries, linear)', { indexDirs: false }),
  r('ext3-1k', 'ext3', 1024, 64, [], 'mkfs.ext3 with 1 KiB blocks; sparse/triple-indirect has data in the triple-indirect region', {
    tree: { tripleIndirect: true },
  }),
];

export type RecipeName = (typeof MATRIX)[number]['name'];

export function recipe(name: string): Recipe {
  const rc = MATRIX.find((x) => x.name === name);
  if (!rc) throw new Error(`unknown image recipe "${name}" (known: ${MATRIX.map((x) => x.name).join(', ')})`);
  return rc;
}

export interface BuiltImage {
  recipe: Recipe;
  /** The cached image, shared by every test and worker: READ ONLY. Use `copy()` to write. */
  image: string;
  /**
   * The source tree the image was populated from (shared by all recipes with this block size;
   * read only). The ~9,400 bigdir fifos are not on disk there: they were added to the image by
   * debugfs, and `entries` lists them.
   */
  srcDir: string;
  /** The ground truth: snapshotTree(srcDir) + the bigdir fifos, sorted by path bytes. */
  entries: Entry[];
  tree: TreeInfo;
  /** dumpe2fs -h of the image. */
  header: Record<string, string>;
  /**
   * Files whose size mkfs -d got wrong and the build restored with `debugfs sif … size` (1.47.0
   * with inline_data truncates files ending in holes/zero blocks to their last data block).
   */
  sizeFixups: { path: string; mkfsSize: number | null; size: number }[];
  /** How long the build took (ms), 0 if it came from the cache. */
  buildMs: number;
  /** A private sparse copy of the image in the per-process scratch directory. */
  copy(): string;
}

export const CACHE_ROOT = path.join(os.tmpdir(), 'ext4kit-test-images');
const VERSION = 'images-v1';

let sourceHash: string | null = null;
/** Hash of the helper sources that determine image contents + the e2fsprogs version. */
function helpersHash(): string {
  if (sourceHash) return sourceHash;
  const h = crypto.createHash('sha256').update(VERSION);
  for (const f of ['./tree.ts', './images.ts']) {
    try {
      h.update(fs.readFileSync(new URL(f, import.meta.url)));
    } catch {
      h.update(f);
    }
  }
  // only what shapes images from tools.ts (so parser fixes there do not invalidate the cache)
  h.update(mkfs.toString()).update(MKE2FS_CONF).update(String(FAKE_TIME)).update(e2fsckFix.toString());
  const v = run('mkfs.ext4', ['-V'], { okStatus: true });
  h.update(v.stdout + v.stderr);
  sourceHash = h.digest('hex');
  return sourceHash;
}

export function recipeKey(rc: Recipe): string {
  return crypto.createHash('sha256').update(helpersHash()).update(JSON.stringify(rc)).digest('hex').slice(0, 16);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Run `build(tmpDir)` once across processes for the cache directory `finalDir`: the first caller
 * takes `<finalDir>.lock` and builds into a temporary sibling that is renamed into place; other
 * callers wait for `<finalDir>/done`. A lock whose owner died is broken.
 */
export function buildOnce(finalDir: string, build: (dir: string) => void, timeoutMs = 15 * 60_000): void {
  const done = path.join(finalDir, 'done');
  const lock = `${finalDir}.lock`;
  fs.mkdirSync(path.dirname(finalDir), { recursive: true });
  const start = Date.now();
  for (;;) {
    if (fs.existsSync(done)) return;
    let fd: number | null = null;
    try {
      fd = fs.openSync(lock, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (fd !== null) {
      try {
        fs.writeSync(fd, String(process.pid));
        fs.closeSync(fd);
        if (fs.existsSync(done)) return;
        const tmp = `${finalDir}.tmp-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
        fs.rmSync(tmp, { recursive: true, force: true });
        fs.mkdirSync(tmp);
        try {
          build(tmp);
          fs.writeFileSync(path.join(tmp, 'done'), new Date().toISOString());
          fs.rmSync(finalDir, { recursive: true, force: true }); // a half-built leftover
          fs.renameSync(tmp, finalDir);
        } catch (e) {
          fs.rmSync(tmp, { recursive: true, force: true });
          throw e;
        }
        return;
      } finally {
        fs.rmSync(lock, { force: true });
      }
    }
    // someone else holds the lock
    let owner = NaN;
    try {
      owner = Number(fs.readFileSync(lock, 'utf8'));
    } catch {
      continue; // lock just vanished
    }
    let age = 0;
    try {
      age = Date.now() - fs.statSync(lock).mtimeMs;
    } catch {
      continue;
    }
    if ((Number.isInteger(owner) && owner > 0 && !pidAlive(owner)) || (!Number.isInteger(owner) && age > 10_000)) {
      fs.rmSync(lock, { force: true });
      continue;
    }
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${lock} (held by pid ${owner})`);
    sleepSync(200);
  }
}

/** Remove cache entries nobody used for 3 days (best effort, never an in-use or locked one). */
function pruneCache(): void {
  const cutoff = Date.now() - 3 * 24 * 3600_000;
  let names: string[];
  try {
    names = fs.readdirSync(CACHE_ROOT);
  } catch {
    return;
  }
  for (const n of names) {
    const p = path.join(CACHE_ROOT, n);
    const tmp = /\.tmp-(\d+)-/.exec(n);
    if (tmp) {
      // a build whose process died
      if (!pidAlive(Number(tmp[1]))) fs.rmSync(p, { recursive: true, force: true });
      continue;
    }
    if (n.endsWith('.lock') || n.endsWith('.conf')) continue;
    try {
      const used = fs.statSync(path.join(p, 'used')).mtimeMs;
      if (used < cutoff && !fs.existsSync(`${p}.lock`)) fs.rmSync(p, { recursive: true, force: true });
    } catch {
      /* not ours or vanished */
    }
  }
}

export interface SourceTree {
  /** The mkfs -d input (shared, read only). The bigdir fifos are NOT on disk (see header comment). */
  srcDir: string;
  tree: TreeInfo;
  /** snapshotTree(srcDir) plus the bigdir fifo entries: what every image of this tree holds. */
  entries: Entry[];
}

type TreeKeyOpts = TreeOptions & { deferBigDirFifos: true };

function treeOptionsOf(rc: Recipe): TreeKeyOpts {
  return { ...rc.tree, blockSize: rc.blockSize, deferBigDirFifos: true };
}

function treeDirFor(o: TreeKeyOpts): string {
  const key = crypto.createHash('sha256').update(helpersHash()).update(JSON.stringify(o)).digest('hex').slice(0, 16);
  return path.join(CACHE_ROOT, `tree-${o.blockSize}-${key}`);
}

const treeMemo = new Map<string, SourceTree>();

/**
 * The shared source tree for a block size / tree options (built once across workers). Recipes
 * with the same block size share it, so the tree and its snapshot are made 5 times, not 15.
 */
export function getSourceTree(o: TreeKeyOpts): SourceTree {
  const dir = treeDirFor(o);
  const hit = treeMemo.get(dir);
  if (hit) return hit;
  buildOnce(dir, (tmp) => {
    const t0 = Date.now();
    const tree = buildSourceTree(path.join(tmp, 'src'), o);
    const t1 = Date.now();
    const entries = [...snapshotTree(tree.dir), ...bigDirFifoEntries(tree)].sort((a, b) => compareBytes(a.path, b.path));
    const t2 = Date.now();
    fs.writeFileSync(path.join(tmp, 'tree.json'), JSON.stringify({ tree, timingsMs: { tree: t1 - t0, snapshot: t2 - t1 } }, null, 1));
    fs.writeFileSync(path.join(tmp, 'entries.json'), JSON.stringify(entries));
  });
  touchUsed(dir);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'tree.json'), 'utf8')) as { tree: TreeInfo };
  const st: SourceTree = {
    srcDir: path.join(dir, 'src'),
    tree: { ...meta.tree, dir: path.join(dir, 'src') },
    entries: JSON.parse(fs.readFileSync(path.join(dir, 'entries.json'), 'utf8')) as Entry[],
  };
  treeMemo.set(dir, st);
  return st;
}

/** Mark a cache entry as used (entries unused for 3 days are pruned). */
export function touchUsed(dir: string): void {
  try {
    fs.writeFileSync(path.join(dir, 'used'), String(Date.now()));
  } catch {
    /* read-only cache is fine */
  }
}

/** Build a recipe's image into `dir` from a source tree (no caching); getImage() is what tests want. */
export function buildRecipe(rc: Recipe, dir: string, st: SourceTree = getSourceTree(treeOptionsOf(rc))): void {
  const t0 = Date.now();
  const img = path.join(dir, 'image.img');
  const tree = st.tree;
  const mkfsOut = mkfs(rc.kind, img, rc.sizeMiB * 1024 * 1024, ['-b', String(rc.blockSize), '-N', String(rc.inodes), ...rc.mkfsOpts], st.srcDir);
  const tMkfs = Date.now();
  if (rc.indexDirs) e2fsckFix(img, ['-D']);
  const tIndex = Date.now();
  if (tree.bigDir.fifos.length) {
    const a = debugfsFull(img, bigDirDebugfsCommands(tree), { write: true, fakeTime: FAKE_TIME });
    if (a.stderr) throw new Error(`debugfs mknod into bigdir reported errors:\n${a.stderr.slice(0, 4000)}`);
    const b = debugfsFull(img, bigDirModeCommands(tree, a.stdout), { write: true, fakeTime: FAKE_TIME });
    if (b.stderr) throw new Error(`debugfs sif mode reported errors:\n${b.stderr.slice(0, 4000)}`);
  }
  // mkfs -d (1.47.0) with inline_data sets the size of a file that ends in a hole or in
  // all-zero blocks to the end of its last data block: restore the source sizes
  const files = st.entries.filter((e) => e.type === 'file' && !e.path.startsWith(`${tree.bigDir.path}/`));
  const sizes = debugfsStats(img, files.map((e) => `/${e.path}`));
  const sizeFixups = files
    .filter((e) => sizes.get(`/${e.path}`)?.size !== e.size)
    .map((e) => ({ path: e.path, mkfsSize: sizes.get(`/${e.path}`)?.size ?? null, size: e.size }));
  if (sizeFixups.length) {
    const r = debugfsFull(img, sizeFixups.map((f) => `sif ${quoteDebugfs(`/${f.path}`)} size ${f.size}`), { write: true, fakeTime: FAKE_TIME });
    if (r.stderr) throw new Error(`debugfs sif size reported errors:\n${r.stderr.slice(0, 4000)}`);
  }
  const tFifos = Date.now();
  expectE2fsckClean(img, `freshly built recipe ${rc.name}`);
  const header = dumpe2fsHeader(img);
  const tEnd = Date.now();
  fs.writeFileSync(
    path.join(dir, 'meta.json'),
    JSON.stringify(
      {
        recipe: rc,
        header,
        mkfsOutput: mkfsOut,
        sizeFixups,
        timingsMs: { mkfs: tMkfs - t0, index: tIndex - tMkfs, bigdir: tFifos - tIndex, check: tEnd - tFifos, total: tEnd - t0 },
      },
      null,
      1,
    ),
  );
}

const memo = new Map<string, BuiltImage>();
let pruned = false;

function imageDirFor(rc: Recipe): string {
  return path.join(CACHE_ROOT, `${rc.name}-${recipeKey(rc)}`);
}

/**
 * The image for a MATRIX recipe, built on first use (once across all workers) and cached.
 * Synchronous; a cold build takes ~1–3 s per recipe (plus ~2 s per distinct source tree).
 */
export function getImage(name: string): BuiltImage {
  const hit = memo.get(name);
  if (hit) return hit;
  const rc = recipe(name);
  if (!pruned) {
    pruned = true;
    pruneCache();
  }
  const t0 = Date.now();
  const st = getSourceTree(treeOptionsOf(rc));
  const finalDir = imageDirFor(rc);
  let built = false;
  buildOnce(finalDir, (dir) => {
    built = true;
    buildRecipe(rc, dir, st);
  });
  const buildMs = built ? Date.now() - t0 : 0;
  touchUsed(finalDir);
  const meta = JSON.parse(fs.readFileSync(path.join(finalDir, 'meta.json'), 'utf8')) as {
    header: Record<string, string>;
    sizeFixups: BuiltImage['sizeFixups'];
  };
  const image = path.join(finalDir, 'image.img');
  const bi: BuiltImage = {
    recipe: rc,
    image,
    srcDir: st.srcDir,
    entries: st.entries,
    tree: st.tree,
    header: meta.header,
    sizeFixups: meta.sizeFixups,
    buildMs,
    copy: () => {
      const p = tmpPath(`${rc.name}.img`);
      copySparse(image, p);
      return p;
    },
  };
  memo.set(name, bi);
  return bi;
}

/** A private, writable copy of a recipe's image. */
export function imageCopy(name: string): string {
  return getImage(name).copy();
}

/** Build timings recorded when the cached image was made (ms). */
export function buildTimings(name: string): { image: Record<string, number>; tree: Record<string, number> } {
  const rc = recipe(name);
  getImage(name);
  const image = (JSON.parse(fs.readFileSync(path.join(imageDirFor(rc), 'meta.json'), 'utf8')) as { timingsMs: Record<string, number> }).timingsMs;
  const tree = (JSON.parse(fs.readFileSync(path.join(treeDirFor(treeOptionsOf(rc)), 'tree.json'), 'utf8')) as { timingsMs: Record<string, number> }).timingsMs;
  return { image, tree };
}
