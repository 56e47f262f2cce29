/**
 * 1 TiB sparse ext4 images for the whole-disk scans (`free`, `freefrag`, `info`), measured and
 * checked on them. Each is built by e2fsprogs (deterministic), e2fsck-clean, once across
 * workers under the test image cache; READ ONLY.
 * - tibImage: hundreds of scattered free runs of 1..32 blocks: four 16 MiB files written by
 *   `mkfs.ext4 -d`, then holes punched into them with debugfs.
 * - tibFragmentedImage: ~240,000 free runs spread over 70 % of the disk (the case).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildOnce, CACHE_ROOT } from './images.js';
import { debugfsFull, e2fsEnv, expectE2fsckClean, FAKE_TIME, mkfs, run } from './tools.js';
import { mulberry32 } from '../../lib/io/prng.js';
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

const FRAG_VERSION = 'v1';
/** Blocks (of 4 KiB) the file covers: 70 % of 1 TiB. */
const FRAG_FILE_BLOCKS = Math.floor(0.7 * 2 ** 28);

/**
 * 1 TiB, 4 KiB blocks, ~240,000 free runs in ~5,800 partly used groups (every one of them has a
 * bitmap to read), then 30 % of the disk never touched (BLOCK_UNINIT groups): one file
 * fallocated (unwritten extents: no data on disk) over the first 70 % of the blocks with debugfs,
 * then holes of 1..64 blocks punched into it every 1..1,500 blocks (mulberry32, fixed seed), and the
 * extent tree made as narrow as e2fsck wants it (`e2fsck -fy`).
 * Builds in ~30 s; ~100 MiB on disk (bitmaps, extent tree, a 64 MiB journal).
 */
export function tibFragmentedImage(): string {
  const dir = path.join(CACHE_ROOT, `tib-fragmented-${FRAG_VERSION}`);
  buildOnce(dir, (tmp) => {
    const img = path.join(tmp, 'image.img');
    mkfs('ext4', img, 1024 ** 4, ['-b', '4096', '-J', 'size=64', '-E', 'lazy_itable_init=1']);
    const cmds = ['write /dev/null f', `fallocate /f 0 ${FRAG_FILE_BLOCKS - 1}`];
    const rnd = mulberry32(10);
    for (let b = 0; ; ) {
      b += 1 + Math.floor(rnd() * 1500);
      const len = 1 << Math.floor(rnd() * 7);
      if (b + len > FRAG_FILE_BLOCKS) break;
      cmds.push(`punch /f ${b} ${b + len - 1}`);
      b += len;
    }
    debugfsFull(img, cmds, { write: true, fakeTime: FAKE_TIME });
    // debugfs leaves the punched extent tree wider than e2fsck wants ("could be narrower"): let it rebuild the tree.
    run('e2fsck', ['-fy', img], { okStatus: [0, 1], env: e2fsEnv(FAKE_TIME) });
    expectE2fsckClean(img, '1 TiB fragmented image');
  });
  return path.join(dir, 'image.img');
}
