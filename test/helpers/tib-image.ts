/**
 * A 1 TiB sparse ext4 image with hundreds of scattered free runs of 1..32 blocks: the whole-disk scans
 * (`free`, `freefrag`, `info`) are measured and checked on it. Four 16 MiB files written by
 * `mkfs.ext4 -d`, then holes of 1..32 blocks punched into them with debugfs (deterministic),
 * e2fsck-clean. Built once across workers under the test image cache; READ ONLY.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildOnce, CACHE_ROOT } from './images.js';
import { debugfsFull, expectE2fsckClean, FAKE_TIME, mkfs } from './tools.js';
import { prngBytes } from './tree.js';

const VERSION = 'v1';
const FILE_BLOCKS = 4096;

export function tibImage(): string {
  const dir = path.join(CACHE_ROOT, `tib-punched-${VERSION}`);
  buildOnce(dir, (tmp) => {
    const src = path.join(tmp, 'src');
    const punches: string[] = [];
    for (let k = 0; k < 4; k++) {
      fs.mkdirSync(path.join(src, `d${k}`), { recursive: true });
      fs.writeFileSync(path.join(src, `d${k}`, 'f'), prngBytes(`tib-${k}`, FILE_BLOCKS * 4096));
      // Holes of 1, 2, 4, … 32 blocks with as much kept between them: several histogram buckets.
      for (let b = 0, j = 0; ; j++) {
        const len = 1 << ((j + k) % 6);
        if (b + len > FILE_BLOCKS) break;
        punches.push(`punch /d${k}/f ${b} ${b + len - 1}`);
        b += 2 * len;
      }
    }
    const img = path.join(tmp, 'image.img');
    mkfs('ext4', img, 1024 ** 4, ['-b', '4096', '-E', 'lazy_itable_init=1'], src);
    fs.rmSync(src, { recursive: true });
    debugfsFull(img, punches, { write: true, fakeTime: FAKE_TIME });
    expectE2fsckClean(img, '1 TiB punched image');
  });
  return path.join(dir, 'image.img');
}
