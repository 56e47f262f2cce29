/**
 * Offline reports on the shared mkfs -d images and the committed fixtures:
 * e2freefrag (default and -c) must print exactly what we print; the
 * block-map picture must be well-formed and its free-cell fraction match
 * dumpe2fs's free blocks within the cell granularity.
 */
import { describe, expect, it } from 'vitest';
import { run } from '../helpers/tools.js';
import { parseXml, withFs, LANG_C } from './helpers.js';
import { dumpe2fsFreeExtents } from '../helpers/tools.js';
import { formatFreeFrag, freeFrag } from '../../lib/ops/report.js';
import { drawMap } from '../../lib/ops/draw.js';
import { isExt4Error } from '../../lib/errors.js';
import { fixtures, subjects } from './subjects.js';

if (!fixtures.length) console.log('no fixtures/*.img.gz committed yet: fixture report checks skipped');

describe('e2freefrag on mkfs -d images and fixtures', () => {
  for (const s of subjects) {
    it(`${s.name}: e2freefrag and -c 64 are identical; a chunk below the block size is refused`, async () => {
      const img = s.copy();
      for (const chunk of [undefined, 64, 1024]) {
        const theirs = run('e2freefrag', [...(chunk ? ['-c', String(chunk)] : []), img], { env: LANG_C }).stdout;
        const ours = await withFs(img, (f) => freeFrag(f, chunk ? { chunkKB: chunk } : {}));
        expect(formatFreeFrag(ours, img), `-c ${chunk}`).toBe(theirs);
      }
      const bs = await withFs(img, async (f) => f.blockSize);
      if (bs > 1024) {
        const r = run('e2freefrag', ['-c', '1', img], { okStatus: true, env: LANG_C });
        expect(r.status).not.toBe(0);
        const err = await withFs(img, (f) => freeFrag(f, { chunkKB: 1 })).catch((e: unknown) => e);
        expect(isExt4Error(err) && err.code === 'EINVAL' && r.stderr.includes(err.message)).toBe(true);
      }
    });
  }
});

describe('block-map picture on mkfs -d images', () => {
  for (const s of subjects) {
    it(`${s.name}: well-formed SVG whose free-cell fraction matches the free fraction`, async () => {
      const img = s.copy();
      const svg = await withFs(img, (f) => drawMap(f, { maxCells: 4096 }));
      const els = parseXml(svg);
      const map = els.find((e) => e.attrs.id === 'map')!;
      const cells = Number(map.attrs['data-cells']);
      const n = Number(map.attrs['data-cell-blocks']);
      const mapIdx = els.indexOf(map);
      const legendIdx = els.findIndex((e) => e.attrs.id === 'legend');
      const used = els.slice(mapIdx + 1, legendIdx).filter((e) => e.name === 'rect' && e.attrs.class !== map.attrs['data-free-class']).reduce((x, r) => x + Number(r.attrs.width), 0);
      const runs = dumpe2fsFreeExtents(img);
      const free = runs.reduce((x, r) => x + r.length, 0);
      const total = await withFs(img, async (f) => f.sb.blocksCount);
      const mixed = new Set<number>();
      for (const r of runs) {
        mixed.add(Math.floor(r.start / n));
        mixed.add(Math.floor((r.start + r.length - 1) / n));
      }
      expect(Math.abs((cells - used) / cells - free / total)).toBeLessThanOrEqual((mixed.size + 1) / cells);
      expect(els.filter((e) => e.attrs['data-class']).length).toBeGreaterThanOrEqual(4);
    });
  }
});
