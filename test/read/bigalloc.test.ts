/**
 * Issue 8 item 9: bigalloc filesystems (`mkfs.ext4 -O bigalloc -C N`) are
 * read completely, and every write is refused with EOPNOTSUPP naming bigalloc.
 *
 * With bigalloc a block bitmap bit is a cluster, s_blocks_per_group is
 * s_clusters_per_group × blocks per cluster (more than 8 × block size), and
 * the descriptors' free counts are clusters (the superblock's are blocks). The
 * images come from `mkfs.ext4 -d` of a small deterministic tree, with 1 KiB
 * and 4 KiB blocks and 16 KiB and 64 KiB clusters, flex_bg or not, one group
 * (mkfs's default group size, the issue's reproduction) or several with a
 * BLOCK_UNINIT one, metadata_csum or gdt_csum. Oracles:
 * - the source tree (every entry's attributes and bytes, through the reader);
 * - `dumpe2fs -h` (info) and dumpe2fs's per-group free ranges (getFreeBlocks,
 *   fsmap's free space) — dumpe2fs prints a free cluster range by the first
 *   block of its first and last cluster;
 * - `e2freefrag` on a read-only loop mount of the image (it asks the kernel's
 *   GETFSMAP then). Offline, e2freefrag 1.47 mis-reads bigalloc bitmaps (it
 *   shifts block numbers to clusters twice and reports no free extent at
 *   all), so it is no oracle there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { copySparse, dumpe2fsGroups, dumpe2fsHeader, expectE2fsckClean, mkfs, run, sha256File, skipReason, withLoopMount } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { expectedImageMtime, prngBytes, snapshotTree, type Entry } from '../helpers/tree.js';
import { cliInProcess as cli } from '../cli/helpers.js';
import { Filesystem } from '../../lib/node.js';
import { info } from '../../lib/ops/inspect.js';
import { getFreeBlocks } from '../../lib/ops/free.js';
import { auditSpace, fsmap } from '../../lib/ops/fsmap.js';
import { fileFrag, formatFileFrag, formatFreeFrag, fragReport, freeFrag, statfsBlocks, type FileFrag } from '../../lib/ops/report.js';
import { Ext4Error } from '../../lib/errors.js';
import { compareWithTruth, walkImage } from './helpers.js';

interface Config {
  name: string;
  blockSize: number;
  clusterSize: number;
  sizeMiB: number;
  /** Extra mkfs options (-O bigalloc is always given, with `features` appended). */
  opts: string[];
  features?: string;
}

const CONFIGS: Config[] = [
  // The command line: mkfs's default group size (131072 blocks, one group here).
  { name: '1k-16k-one-group', blockSize: 1024, clusterSize: 16384, sizeMiB: 16, opts: [] },
  { name: '1k-16k', blockSize: 1024, clusterSize: 16384, sizeMiB: 48, opts: ['-g', '256', '-N', '512'] },
  { name: '1k-16k-noflex', blockSize: 1024, clusterSize: 16384, sizeMiB: 48, opts: ['-g', '256', '-N', '512'], features: '^flex_bg' },
  { name: '1k-64k', blockSize: 1024, clusterSize: 65536, sizeMiB: 128, opts: ['-g', '256', '-N', '512'] },
  { name: '4k-16k-noflex', blockSize: 4096, clusterSize: 16384, sizeMiB: 64, opts: ['-g', '1024', '-N', '512'], features: '^flex_bg' },
  { name: '4k-64k', blockSize: 4096, clusterSize: 65536, sizeMiB: 128, opts: ['-g', '256', '-N', '512'] },
  { name: '4k-64k-gdtcsum', blockSize: 4096, clusterSize: 65536, sizeMiB: 128, opts: ['-g', '256', '-N', '512'], features: '^metadata_csum,uninit_bg' },
];

/** Sizes around block and cluster boundaries, a sparse file, a multi-block directory, links. */
function buildTree(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const n of [0, 1, 1023, 1024, 1025, 4095, 4096, 4097, 16383, 16384, 16385, 65535, 65536, 65537, 200_001, 1_500_000])
    fs.writeFileSync(path.join(dir, `f-${n}`), prngBytes(`bigalloc-${n}`, n));
  const sparse = fs.openSync(path.join(dir, 'sparse'), 'w');
  fs.writeSync(sparse, prngBytes('sparse-a', 100), 0, 100, 0);
  fs.writeSync(sparse, prngBytes('sparse-b', 5000), 0, 5000, 1 << 20);
  fs.writeSync(sparse, prngBytes('sparse-c', 7), 0, 7, 3 << 20);
  fs.closeSync(sparse);
  const many = path.join(dir, 'many');
  fs.mkdirSync(many);
  for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(many, `entry-with-a-longish-name-${String(i).padStart(4, '0')}`), prngBytes(`m${i}`, (i * 37) % 3000));
  fs.mkdirSync(path.join(dir, 'a', 'b', 'c'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'a', 'b', 'c', 'deep'), prngBytes('deep', 70_000));
  fs.symlinkSync('f-1', path.join(dir, 'ln-short'));
  fs.symlinkSync('x'.repeat(300), path.join(dir, 'ln-long'));
  fs.linkSync(path.join(dir, 'f-4097'), path.join(dir, 'hard'));
}

interface Built {
  cfg: Config;
  image: string;
  ratio: number;
}

let src = '';
let truth: Entry[] = [];
const built = new Map<string, Built>();

beforeAll(() => {
  src = path.join(tmpDir('bigalloc-src'), 'tree');
  buildTree(src);
  truth = snapshotTree(src);
  for (const cfg of CONFIGS) {
    const image = tmpPath(`bigalloc-${cfg.name}.img`);
    mkfs('ext4', image, cfg.sizeMiB << 20, ['-b', String(cfg.blockSize), '-C', String(cfg.clusterSize), '-O', ['bigalloc', cfg.features].filter(Boolean).join(','), ...cfg.opts], src);
    expectE2fsckClean(image, `${cfg.name} as mkfs made it`);
    // Several groups: at least one is BLOCK_UNINIT, whose bitmap is computed, never read.
    const groups = dumpe2fsGroups(image);
    if (groups.length > 1 && !groups.some((g) => g.flags.includes('BLOCK_UNINIT'))) throw new Error(`${cfg.name}: no BLOCK_UNINIT group: ${groups.map((g) => g.flags.join('+')).join(' / ')}`);
    built.set(cfg.name, { cfg, image, ratio: cfg.clusterSize / cfg.blockSize });
  }
}, 120_000);

async function withImage<T>(b: Built, fn: (f: Filesystem) => Promise<T>): Promise<T> {
  const f = await Filesystem.open(b.image);
  try {
    return await fn(f);
  } finally {
    await f.close();
  }
}

/** dumpe2fs's free ranges as block runs: each range names the first block of its first and last cluster. */
function dumpe2fsFreeBlocks(b: Built): { start: number; len: number }[] {
  const out: { start: number; len: number }[] = [];
  for (const g of dumpe2fsGroups(b.image)) {
    for (const [first, lastClusterStart] of g.freeBlockRanges) {
      const end = Math.min(lastClusterStart + b.ratio, g.lastBlock + 1);
      const prev = out[out.length - 1];
      if (prev && prev.start + prev.len === first) prev.len = end - prev.start;
      else out.push({ start: first, len: end - first });
    }
  }
  return out;
}

describe.each(CONFIGS.map((c) => c.name))('bigalloc image %s: read completely', (name) => {
  const b = () => built.get(name)!;

  it('opens read-only; info equals dumpe2fs -h (cluster size, clusters per group, free blocks)', async () => {
    const h = dumpe2fsHeader(b().image);
    const i = await withImage(b(), async (f) => info(f));
    const num = (k: string) => {
      if (!(k in h)) throw new Error(`dumpe2fs -h printed no "${k}"`);
      return Number(h[k]);
    };
    expect(i.features).toContain('bigalloc');
    expect({
      blockSize: i.blockSize, blocksCount: i.blocksCount, freeBlocks: i.freeBlocks, reservedBlocks: i.reservedBlocks, firstBlock: i.firstBlock,
      blocksPerGroup: i.blocksPerGroup, clusterSize: i.clusterSize, clustersPerGroup: i.clustersPerGroup, inodesPerGroup: i.inodesPerGroup,
      inodesCount: i.inodesCount, freeInodes: i.freeInodes, groups: i.groups, features: i.features.join(' '),
    }).toEqual({
      blockSize: num('Block size'), blocksCount: num('Block count'), freeBlocks: num('Free blocks'), reservedBlocks: num('Reserved block count'), firstBlock: num('First block'),
      blocksPerGroup: num('Blocks per group'), clusterSize: num('Cluster size'), clustersPerGroup: num('Clusters per group'), inodesPerGroup: num('Inodes per group'),
      inodesCount: num('Inode count'), freeInodes: num('Free inodes'), groups: dumpe2fsGroups(b().image).length, features: h['Filesystem features'],
    });
  });

  it('every entry matches the source tree: attributes, links, targets, bytes', async () => {
    const r = await withImage(b(), async (f) => compareWithTruth(f, await walkImage(f), truth, { mtime: expectedImageMtime, mtimeNs: () => 0 }));
    expect(r.problems).toEqual([]);
    expect(r.checked).toBe(truth.length);
    expect(r.filesHashed).toBeGreaterThan(300);
  });

  it('getFreeBlocks equals dumpe2fs free ranges, in whole clusters, totalling the free blocks', async () => {
    const runs = await withImage(b(), (f) => getFreeBlocks(f));
    const bs = b().cfg.blockSize, cs = b().cfg.clusterSize;
    expect(runs.map((r) => ({ start: r.start / bs, len: r.len / bs }))).toEqual(dumpe2fsFreeBlocks(b()));
    for (const r of runs) {
      expect(r.start % cs).toBe(0);
      expect(r.len % cs).toBe(0);
    }
    const free = runs.reduce((s, r) => s + r.len / bs, 0);
    expect(free).toBe(Number(dumpe2fsHeader(b().image)['Free blocks']));
    // A range that starts and ends inside free clusters is clipped to it.
    const big = runs.find((r) => r.len >= 3 * cs);
    expect(big).toBeDefined();
    const clipped = await withImage(b(), (f) => getFreeBlocks(f, { start: big!.start + bs, end: big!.start + 2 * cs + bs }));
    expect(clipped).toEqual([{ start: big!.start + bs, len: 2 * cs }]);
  });

  it('fsmap: no block of unknown owner, free space as getFreeBlocks; the space audit is clean', async () => {
    const { map, free, audit } = await withImage(b(), async (f) => ({ map: await fsmap(f), free: await getFreeBlocks(f), audit: await auditSpace(f) }));
    expect(map.filter((r) => r.owner === 'unknown')).toEqual([]);
    expect(map.filter((r) => r.owner === 'free').map((r) => ({ start: r.start, len: r.len }))).toEqual(free);
    const last = map[map.length - 1]!;
    expect(last.start + last.len).toBe(Number(dumpe2fsHeader(b().image)['Block count']) * b().cfg.blockSize);
    expect(audit).toEqual({ leaked: [], multiplyOwned: [], ownedButFree: [], unreadable: [] });
  });

  it('freefrag counts the free clusters of the bitmaps (the free-blocks count of the superblock)', async () => {
    const [r, free] = await withImage(b(), async (f) => [await freeFrag(f), await getFreeBlocks(f)] as const);
    expect(r.freeBlocksInBitmaps).toBe(r.freeBlocks);
    expect(r.freeExtents).toBe(free.length);
    expect(r.histogram.reduce((s, h) => s + h.blocks, 0)).toBe(r.freeBlocks);
  });

  it('frag measures every regular file with blocks', async () => {
    const rep = await withImage(b(), (f) => fragReport(f));
    const withBlocks = truth.filter((e) => e.type === 'file' && e.size > 0).length;
    const t = rep.targets[0]!;
    // every name is visited (a hard link twice, as nftw does); a file of one cluster is not "one block"
    expect(t.skipped.filter((s) => s.reason === 'blocks <= 1')).toEqual([]);
    expect(t.files.length).toBe(withBlocks);
    expect(t.totals).not.toBeNull();
  });
});

describe('bigalloc on a read-only mount: freefrag equals e2freefrag (the kernel\'s GETFSMAP), filefrag -v, statfs f_blocks', () => {
  const why = skipReason('loop');
  if (why) console.log(`skipping: ${why}`);
  const FILES = ['/f-1', '/f-16385', '/f-65537', '/f-1500000', '/sparse', '/many', '/a/b/c/deep'];
  it.skipIf(why !== null).each([
    ['1k-16k', false],
    ['1k-16k-noflex', false],
    ['4k-64k', false],
    // s_overhead_clusters 0: both sides compute the overhead (in clusters) themselves
    ['1k-16k', true],
    ['4k-64k-gdtcsum', true],
  ] as const)('%s (overhead computed: %s)', async (name, zeroOverhead) => {
    const b = built.get(name)!;
    const copy = tmpPath(`bigalloc-ro-${name}.img`);
    copySparse(b.image, copy);
    if (zeroOverhead) run('debugfs', ['-w', '-R', 'ssv overhead_clusters 0', copy], { env: { LANG: 'C', LC_ALL: 'C' } });
    const ours = await withImage({ ...b, image: copy }, async (f) => {
      const frag: FileFrag[] = [];
      for (const p of FILES) frag.push(await fileFrag(f, p));
      return { free: await freeFrag(f), frag, fBlocks: await statfsBlocks(f) };
    });
    const theirs = await withLoopMount(copy, (mp) => {
      const env = { LANG: 'C', LC_ALL: 'C' };
      const dev = run('findmnt', ['-n', '-o', 'SOURCE', '--mountpoint', mp]).stdout.trim();
      return {
        dev,
        mp,
        free: run('e2freefrag', [dev], { env }).stdout,
        frag: run('filefrag', ['-v', ...FILES.map((p) => mp + p)], { env }).stdout,
        fBlocks: Number(run('stat', ['-f', '-c', '%b', mp], { env }).stdout.trim()),
      };
    }, { readOnly: true });
    expect(ours.fBlocks).toBe(theirs.fBlocks);
    expect(formatFreeFrag(ours.free, theirs.dev)).toBe(theirs.free);
    expect(formatFileFrag(ours.frag, { name: (f) => theirs.mp + f.path })).toBe(theirs.frag);
  });
});

describe('bigalloc: every write call is refused with EOPNOTSUPP naming bigalloc; the image is unchanged', () => {
  const images: { name: string; copy: string; sha: string }[] = [];
  beforeAll(() => {
    for (const name of ['1k-16k-one-group', '4k-64k']) {
      const copy = tmpPath(`bigalloc-w-${name}.img`);
      copySparse(built.get(name)!.image, copy);
      images.push({ name, copy, sha: sha256File(copy) });
    }
  });
  afterAll(() => {
    for (const i of images) fs.rmSync(i.copy, { force: true });
  });

  it('Filesystem.open for writing', async () => {
    for (const i of images) {
      const e = await Filesystem.open(i.copy, { write: true }).then(
        async (f) => {
          await f.close();
          return null;
        },
        (err: unknown) => err,
      );
      expect(e, i.name).toBeInstanceOf(Ext4Error);
      expect((e as Ext4Error).code).toBe('EOPNOTSUPP');
      expect((e as Ext4Error).message).toMatch(/bigalloc/);
      expect(sha256File(i.copy), i.name).toBe(i.sha);
    }
  });

  it.each([
    ['allocate', (img: string) => ['allocate', img, '/f-16385', '--offset', '65536', '--len', '65536']],
    ['allocate (new size past EOF)', (img: string) => ['allocate', img, '/f-1', '--offset', '0', '--len', '131072']],
    ['movedata', (img: string) => ['movedata', img, '/f-65537', '/f-200001', '--from', '0', '--len', '65536']],
    ['defrag', (img: string) => ['defrag', img]],
    ['defrag of a path', (img: string) => ['defrag', img, '/many']],
  ] as const)('the CLI: %s', async (_what, args) => {
    for (const i of images) {
      const r = await cli(args(i.copy));
      expect(r.status, `${i.name}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toMatch(/^ext4kit: EOPNOTSUPP: .*bigalloc/m);
      expect(sha256File(i.copy), i.name).toBe(i.sha);
    }
  });
});
