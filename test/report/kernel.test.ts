/**
 * Reports on images the kernel wrote (loop mounts): interleaved appends with
 * fsync to several files, deletions, a file with a deep extent tree, sparse
 * and preallocated files, hard links, symlinks, an indexed directory.
 *
 * Oracles, each on the same image:
 * - `filefrag -v` on the loop-mounted image: our text must be identical
 *   (rows, physical ranges, expected, flags, "N extents found");
 * - `e4defrag -c` and `e4defrag -c -v` on the mount point and on the loop
 *   device: per-file now/best/size, the five most fragmented files, totals,
 *   score and verdict; the non-verbose text must be identical;
 * - `e2freefrag IMAGE` and `e2freefrag -c 64 IMAGE` (offline): identical text;
 * - dumpe2fs's free ranges and filefrag's rows for the block-map picture.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { dumpe2fsFreeExtents, missingTools, oracleGate, run, skipReason, withLoopMount } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';
import { prngBytes } from '../helpers/tree.js';
import {
  e4defrag, e4defragVersion, filefragV, interleave, kernelImage, listTree, parseE4defragTotals, parseE4defragVerbose,
  parseFilefrag, parseXml, skipsSingleBlock, withFs, writeSync, LANG_C,
} from './helpers.js';
import { fileFrag, formatFileFrag, formatFragReport, formatFreeFrag, fragReport, freeFrag, statfsBlocks, type FileFrag } from '../../lib/ops/report.js';
import { blockMap, drawMap, fileClass, CLASS_ORDER, type CellClass } from '../../lib/ops/draw.js';
import { fragmentCount } from '../../lib/ext4/extent-map.js';
import { bestExtentCount } from '../../lib/ops/report.js';

const why = skipReason('loop') ?? oracleGate(missingTools(['filefrag', 'e4defrag', 'e2freefrag', 'fallocate'])); // under CI: throws instead
if (why) console.log(`skipping kernel report tests: ${why}`);

interface Img {
  img: string;
  mountType?: string;
  /** Paths (inside the image) of every regular file and directory. */
  paths: string[];
}

const images: Record<string, Img> = {};

/** ext4, 4 KiB blocks, 16 groups of 1024 blocks, flex groups of 2 (so a 12 MiB file's best is 2 extents). */
async function buildExt4(): Promise<Img> {
  const img = tmpPath('kernel-ext4.img');
  await kernelImage(img, 'ext4', 64, ['-b', '4096', '-g', '1024', '-G', '2', '-N', '2048', '-L', 'frag-test'], (mnt) => {
    const p = (x: string) => path.join(mnt, x);
    fs.mkdirSync(p('a/b'), { recursive: true });
    fs.mkdirSync(p('big'));
    interleave([p('a/i1'), p('a/del1'), p('a/i2'), p('a/b/i3'), p('a/del2')], 30, 8192, 'ilv');
    interleave([p('a/many'), p('a/filler')], 60, 4096, 'many'); // > 4 extents: a depth-1 tree
    writeSync(p('large'), prngBytes('large', 12 * 1024 * 1024));
    for (const [blk, n] of [[3, 1], [50, 2], [400, 1]] as const) writeSync(p('sparse'), prngBytes(`sparse${blk}`, n * 4096), blk * 4096);
    run('fallocate', ['-l', '1M', p('prealloc')]);
    writeSync(p('prealloc'), prngBytes('pre', 3 * 4096), 5 * 4096);
    run('fallocate', ['-n', '-o', '1M', '-l', '512K', p('prealloc')]);
    writeSync(p('one'), prngBytes('one', 100));
    fs.writeFileSync(p('empty'), '');
    fs.linkSync(p('a/i1'), p('hard'));
    fs.symlinkSync('x'.repeat(100), p('slowlink'));
    fs.symlinkSync('a/i1', p('fastlink'));
    for (let i = 0; i < 300; i++) fs.writeFileSync(p(`big/f${String(i).padStart(3, '0')}`), prngBytes(`big${i}`, 1000 + i));
    run('sync', []);
    for (const x of ['a/del1', 'a/del2', 'big/f007', 'big/f100', 'big/f200']) fs.rmSync(p(x));
    interleave([p('a/after1'), p('a/after2')], 20, 4096 * 3, 'after'); // fills some of the holes
  });
  return { img, paths: [] };
}

/** ext3 (block-mapped files, no extents), 1 KiB blocks; mounted as ext4 so e4defrag accepts it. */
async function buildExt3(): Promise<Img> {
  const img = tmpPath('kernel-ext3.img');
  await kernelImage(img, 'ext3', 32, ['-b', '1024'], (mnt) => {
    const p = (x: string) => path.join(mnt, x);
    writeSync(p('f'), prngBytes('f', 1500 * 1024)); // direct, single and double indirect
    interleave([p('p'), p('q')], 20, 7 * 1024, 'pq');
    writeSync(p('s'), prngBytes('s', 1024), 5000 * 1024);
    fs.mkdirSync(p('d'));
    for (let i = 0; i < 40; i++) fs.writeFileSync(p(`d/n${i}`), prngBytes(`d${i}`, 3000));
    fs.rmSync(p('d/n5'));
  }, 'ext4');
  return { img, mountType: 'ext4', paths: [] };
}

/** ext4 with inline_data: tiny files live in the inode. */
async function buildInline(): Promise<Img> {
  const img = tmpPath('kernel-inline.img');
  await kernelImage(img, 'ext4', 16, ['-b', '4096', '-O', 'inline_data'], (mnt) => {
    const p = (x: string) => path.join(mnt, x);
    fs.writeFileSync(p('in'), 'hello\n');
    fs.writeFileSync(p('in2'), prngBytes('in2', 100));
    writeSync(p('reg'), prngBytes('reg', 10000));
    fs.mkdirSync(p('d'));
    fs.writeFileSync(p('d/x'), 'x');
  });
  return { img, paths: [] };
}

beforeAll(async () => {
  if (why) return;
  images.ext4 = await buildExt4();
  images.ext3 = await buildExt3();
  images.inline = await buildInline();
  for (const im of Object.values(images)) {
    im.paths = await withLoopMount(im.img, (mnt) => listTree(mnt), { readOnly: true, ...(im.mountType ? { type: im.mountType } : {}) });
  }
}, 120_000);

const cases = ['ext4', 'ext3', 'inline'] as const;

describe.skipIf(why !== null)('filefrag -v on kernel-written images', () => {
  for (const name of cases) {
    it(`${name}: every file and directory has filefrag's rows, flags and extent count`, async () => {
      const im = images[name]!;
      const ours: FileFrag[] = await withFs(im.img, async (f) => {
        const list: FileFrag[] = [];
        for (const p of im.paths) list.push(await fileFrag(f, p));
        return list;
      });
      const mapCounts = await withFs(im.img, async (f) => {
        const out = new Map<string, number>();
        for (const p of im.paths) {
          const ino = await f.resolve(p);
          out.set(p, fragmentCount((await f.fileMap(ino)).extents));
        }
        return out;
      });
      const statfs = await withFs(im.img, (f) => statfsBlocks(f));
      await withLoopMount(
        im.img,
        (mnt) => {
          const abs = (p: string) => (p === '/' ? mnt : mnt + p);
          const theirs = filefragV(im.paths.map(abs));
          const mine = formatFileFrag(ours, { name: (f) => abs(f.path) });
          expect(mine).toBe(theirs);
          // and the JSON rows carry the same physical ranges
          const parsed = parseFilefrag(theirs);
          for (const f of ours) {
            const t = parsed.get(abs(f.path))!;
            expect(f.rows.map((r) => [r.logical, r.logicalEnd, r.physical, r.physicalEnd, r.length]), f.path).toEqual(t.rows.map((r) => [r.logical, r.logicalEnd, r.physical, r.physicalEnd, r.length]));
            expect(f.extents, f.path).toBe(t.count);
            // extent-map.ts fragmentCount on the file map counts like filefrag, except inline data (no map, one FIEMAP extent)
            if (f.mapping !== 'inline') expect(mapCounts.get(f.path), `fragmentCount ${f.path}`).toBe(t.count);
          }
          expect(Number(run('stat', ['-f', '-c', '%b', mnt], { env: LANG_C }).stdout.trim())).toBe(statfs);
        },
        { readOnly: true, ...(im.mountType ? { type: im.mountType } : {}) },
      );
    });
  }
});

describe.skipIf(why !== null)('e4defrag -c on kernel-written images', () => {
  for (const name of cases) {
    it(`${name}: per-file now/best/size, top five, totals, score and verdict equal e4defrag's`, async () => {
      const im = images[name]!;
      const version = e4defragVersion()!;
      const skipSingleBlock = skipsSingleBlock(version);
      const whole = await withFs(im.img, (f) => fragReport(f, undefined, { skipSingleBlock }));
      const atRoot = await withFs(im.img, (f) => fragReport(f, ['/'], { skipSingleBlock }));
      const sub = name === 'ext4' ? ['/a', '/a/i1', '/nope', '/large', '/lost+found', '/slowlink'] : name === 'ext3' ? ['/d', '/f'] : ['/in', '/reg'];
      const perPath = await withFs(im.img, (f) => fragReport(f, sub, { skipSingleBlock }));
      // Every e4defrag run gets a fresh mount: once the kernel's extent-status cache is warm, FIEMAP merges
      // neighbouring rows that are contiguous (e.g. across an indirect-block boundary) and "now" drops.
      const fresh = <T>(fn: (real: string) => T) => withLoopMount(im.img, (mnt) => fn(fs.realpathSync(mnt)), { readOnly: true, ...(im.mountType ? { type: im.mountType } : {}) });
      // the mount point: a directory at the mount point (lost+found skipped by prefix)
      await fresh((real) => expect(formatFragReport(atRoot, { pathPrefix: real, argName: () => real })).toBe(e4defrag(['-c', real])));
      // the device
      await fresh((real) => {
        const dev = run('findmnt', ['-n', '-o', 'SOURCE', '--target', real], { env: LANG_C }).stdout.trim();
        expect(formatFragReport(whole, { pathPrefix: real, argName: () => dev })).toBe(e4defrag(['-c', dev]));
      });
      // -v: every file's numbers and its position in the walk
      const t = atRoot.targets[0]!;
      await fresh((real) => {
        const out = e4defrag(['-c', '-v', real]);
        const v = parseE4defragVerbose(out);
        expect(t.files.map((f) => ({ index: f.index, total: t.entries, path: real + f.path, now: f.now, best: f.best, sizeKB: f.sizePerExtentKB }))).toEqual(v);
        const totals = parseE4defragTotals(out);
        expect(totals).toEqual(t.totals ? { now: t.totals.now, best: t.totals.best, avgKB: t.totals.averageSizePerExtentKB, score: t.totals.scoreText, needs: t.totals.needsDefrag } : null);
      });
      // several arguments: each its own report (files, directories, refusals on stderr)
      await fresh((real) => {
        let errors = '';
        const mine = formatFragReport(perPath, { pathPrefix: real, argName: (x) => real + x.arg, errorsTo: (e) => (errors += e) });
        const r = run('e4defrag', ['-c', ...sub.map((s) => real + s)], { okStatus: true, env: LANG_C });
        expect(mine).toBe(r.stdout.replace(/^e4defrag [^\n]*\n/, ''));
        expect(errors).toBe(r.stderr);
      });
    });
  }
});

describe.skipIf(why !== null)('e2freefrag on kernel-written images', () => {
  for (const name of cases) {
    it(`${name}: e2freefrag IMAGE and -c 64 / -c 4 / -c 1024 are identical`, async () => {
      const im = images[name]!;
      for (const chunk of [undefined, 64, 4, 1024]) {
        const theirs = run('e2freefrag', [...(chunk ? ['-c', String(chunk)] : []), im.img], { env: LANG_C }).stdout;
        const ours = await withFs(im.img, (f) => freeFrag(f, chunk ? { chunkKB: chunk } : {}));
        expect(formatFreeFrag(ours, im.img), `-c ${chunk}`).toBe(theirs);
        expect(ours.freeBlocksInBitmaps).toBe(ours.freeBlocks);
      }
    });
  }
});

describe.skipIf(why !== null)('block-map picture', () => {
  it('one block per cell: free cells = free blocks, classes match filefrag/e4defrag-derived expectations', async () => {
    const im = images.ext4!;
    const svg = await withFs(im.img, (f) => drawMap(f, { title: 'kernel <ext4> & co' }));
    const grid = await withFs(im.img, (f) => blockMap(f));
    const els = parseXml(svg);
    expect(els[0]!.name).toBe('svg');
    const map = els.find((e) => e.attrs.id === 'map')!;
    const cells = Number(map.attrs['data-cells']);
    expect(Number(map.attrs['data-cell-blocks'])).toBe(1);
    const freeClass = map.attrs['data-free-class']!;
    const mapIdx = els.indexOf(map);
    const legendIdx = els.findIndex((e) => e.attrs.id === 'legend');
    const rects = els.slice(mapIdx + 1, legendIdx).filter((e) => e.name === 'rect');
    const nonFree = rects.filter((r) => r.attrs.class !== freeClass);
    const used = nonFree.reduce((n, r) => n + Number(r.attrs.width), 0);
    const freeRuns = dumpe2fsFreeExtents(im.img);
    const freeBlocks = freeRuns.reduce((n, r) => n + r.length, 0);
    expect(cells - used).toBe(freeBlocks);
    // classes: from filefrag's rows (an independent oracle) compute every file's class
    const expected = new Set<CellClass>(['metadata', 'journal', 'directory', 'mapping', 'free']);
    const flex = 2; // -G 2
    await withLoopMount(im.img, (mnt) => {
      const files = im.paths.filter((p) => fs.statSync(mnt + p).isFile());
      const parsed = parseFilefrag(filefragV(files.map((p) => mnt + p)));
      for (const p of files) {
        const rows = parsed.get(mnt + p)!.rows;
        if (!rows.length) continue;
        const byPhys = [...rows].sort((a, b) => a.physical - b.physical);
        let physical = 0, blocks = 0;
        byPhys.forEach((a, i) => {
          const b = byPhys[(i + 1) % byPhys.length]!;
          if (a.physical + a.length !== b.physical || a.logical + a.length !== b.logical) physical++;
          blocks += a.length;
        });
        const best = bestExtentCount(blocks, 1024, flex);
        expected.add(fileClass(physical, best, Math.fround(Math.fround(Math.fround(physical - best) * 100) / Math.fround(blocks))));
      }
    }, { readOnly: true });
    const rectClasses = new Set(rects.map((r) => CLASS_ORDER[Number(r.attrs.class!.slice(1))]!));
    expect([...rectClasses].sort()).toEqual([...expected].sort());
    const legend = els.slice(legendIdx).filter((e) => e.name === 'rect').map((e) => e.attrs['data-class']);
    expect(legend.sort()).toEqual([...expected].sort());
    expect(grid.cellsPerClass.free).toBe(freeBlocks);
    expect(svg).toContain('frag-test'); // the label
    expect(svg).toContain('kernel &lt;ext4&gt; &amp; co');
    // compact: far fewer rects than cells
    expect(rects.length).toBeLessThan(cells / 4);
  });

  it('many blocks per cell: the free-cell fraction is within the cell granularity of the free fraction', async () => {
    for (const name of cases) {
      const im = images[name]!;
      for (const maxCells of [1000, 5000]) {
        const svg = await withFs(im.img, (f) => drawMap(f, { maxCells }));
        const els = parseXml(svg);
        const map = els.find((e) => e.attrs.id === 'map')!;
        const cells = Number(map.attrs['data-cells']);
        const n = Number(map.attrs['data-cell-blocks']);
        expect(cells).toBeLessThanOrEqual(maxCells);
        const mapIdx = els.indexOf(map);
        const legendIdx = els.findIndex((e) => e.attrs.id === 'legend');
        const used = els.slice(mapIdx + 1, legendIdx).filter((e) => e.name === 'rect' && e.attrs.class !== map.attrs['data-free-class']).reduce((s, r) => s + Number(r.attrs.width), 0);
        const freeRuns = dumpe2fsFreeExtents(im.img);
        const total = await withFs(im.img, async (f) => f.sb.blocksCount);
        const freeBlocks = freeRuns.reduce((s, r) => s + r.length, 0);
        // cells holding both free and used blocks: those containing a run boundary
        const mixed = new Set<number>();
        for (const r of freeRuns) {
          mixed.add(Math.floor(r.start / n));
          mixed.add(Math.floor((r.start + r.length - 1) / n));
        }
        const err = Math.abs((cells - used) / cells - freeBlocks / total);
        expect(err, `${name} maxCells ${maxCells}`).toBeLessThanOrEqual((mixed.size + 1) / cells);
      }
    }
  });
});
