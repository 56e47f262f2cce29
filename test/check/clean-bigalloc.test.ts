/**
 * checkFilesystem on clean bigalloc images (mkfs.ext4 -O bigalloc -d): bitmaps and descriptor
 * counts are in clusters, i_blocks counts whole clusters, several blocks of one file share a
 * cluster, and on 1 KiB blocks the reserved GDT starts one block later (block 0 is the boot
 * block). Where e2fsck -fn is clean, check must be too.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { tmpDir } from '../helpers/tmp.js';
import { expectE2fsckClean, mkfs } from '../helpers/tools.js';
import { prngBytes } from '../helpers/tree.js';
import { Filesystem } from '../../lib/node.js';
import { checkFilesystem } from '../../lib/ops/check.js';

const VARIANTS = [
  { name: '1k blocks, 16k clusters', opts: ['-b', '1024', '-C', '16384'] },
  { name: '4k blocks, 64k clusters', opts: ['-b', '4096', '-C', '65536'] },
  { name: '4k blocks, 16k clusters, no flex_bg', opts: ['-b', '4096', '-C', '16384', '-O', '^flex_bg'] },
  { name: '1k blocks, 16k clusters, gdt_csum', opts: ['-b', '1024', '-C', '16384', '-O', '^metadata_csum,uninit_bg'] },
] as const;

let src = '';
beforeAll(() => {
  src = path.join(tmpDir('bigalloc-check'), 'src');
  nodefs.mkdirSync(path.join(src, 'd/e'), { recursive: true });
  for (let i = 0; i < 30; i++) nodefs.writeFileSync(path.join(src, `d/f${i}`), prngBytes(`f${i}`, i * 3000 + 1));
  nodefs.writeFileSync(path.join(src, 'big'), prngBytes('big', 300_000));
  nodefs.writeFileSync(path.join(src, 'd/e/empty'), '');
});

describe('check on clean bigalloc images', () => {
  for (const v of VARIANTS) {
    it(`${v.name}: clean like e2fsck`, async () => {
      const img = path.join(tmpDir('bigalloc-img'), 'b.img');
      mkfs('ext4', img, 64 << 20, ['-O', 'bigalloc', ...v.opts], src);
      expectE2fsckClean(img, v.name);
      const fs = await Filesystem.open(img);
      try {
        const r = await checkFilesystem(fs);
        expect(r.problems).toEqual([]);
        expect(r.stats.inodesInUse).toBeGreaterThan(30);
      } finally {
        await fs.close();
      }
    });
  }
});
