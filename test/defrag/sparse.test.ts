/**
 * Issue 8 item 7: on a nearly empty image, defragmenting a sparse file with many segments failed
 * with a per-file ENOSPC ("cannot allocate 2 block(s) contiguously at block N") although most of the
 * disk was free: reserving the donor segment by segment let the donor's new extent-tree leaf land
 * on a block planned for a later segment. A defragmenter must not fail where space is plentiful.
 */
import { describe, it, expect } from 'vitest';
import { writeFileSync } from 'node:fs';
import { Filesystem } from '../../lib/node.js';
import { defrag } from '../../lib/ops/defrag.js';
import { openFile } from '../../lib/ops/file.js';
import { fragmentCount } from '../../lib/ext4/extent-map.js';
import { debugfsDump, expectE2fsckClean, mkfs } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { prngBytes } from '../helpers/tree.js';

describe('defrag: sparse files with many segments on a nearly empty image', () => {
  for (const blockSize of [1024, 4096]) {
    it(`${blockSize}-byte blocks: every file is moved, none fails, bytes and holes unchanged`, async () => {
      const src = tmpDir('sparse-src');
      writeFileSync(`${src}/sparse`, '');
      writeFileSync(`${src}/other`, '');
      const img = tmpPath('sparse.img');
      mkfs('ext4', img, 64 * 1024 * 1024, ['-b', String(blockSize)], src);
      // 40 two-block segments of /sparse with holes between them, interleaved with /other's
      // appends so the segments land out of order: 40 extents, more than the inode holds.
      const fs = await Filesystem.open(img, { write: true });
      const bs = fs.blockSize;
      const sparse = await openFile(fs, '/sparse');
      const other = await openFile(fs, '/other');
      const expected = new Uint8Array(40 * 5 * bs);
      // Written back to front: each segment's goal (after the previous logical one) is taken.
      for (let k = 39; k >= 0; k--) {
        const seg = prngBytes(`sparse-${blockSize}-${k}`, 2 * bs);
        await sparse.pwrite(seg, k * 5 * bs);
        expected.set(seg, k * 5 * bs);
        await other.pwrite(prngBytes(`other-${blockSize}-${k}`, bs), (39 - k) * bs);
      }
      const before = await fs.fileMap(await fs.resolve('/sparse'));
      expect(before.extents.length).toBe(40);
      expect(fragmentCount(before.extents)).toBeGreaterThan(1);
      await fs.close();
      expectE2fsckClean(img, 'before defrag');

      const fs2 = await Filesystem.open(img, { write: true });
      const summary = await defrag(fs2);
      await fs2.close();
      expect(summary.errors).toEqual([]);
      expect(summary.filesSkipped).toBe(0);
      expectE2fsckClean(img, 'after defrag');
      const fs3 = await Filesystem.open(img);
      const after = await fs3.fileMap(await fs3.resolve('/sparse'));
      await fs3.close();
      expect(fragmentCount(after.extents)).toBe(1);
      // Holes stay holes: the same 40 logical segments.
      expect(after.extents.map((e) => [e.logical, e.length])).toEqual(before.extents.map((e) => [e.logical, e.length]));
      // The bytes as e2fsprogs reads them (holes read as zeros; i_size ends at the last segment).
      expect(Buffer.compare(debugfsDump(img, '/sparse'), Buffer.from(expected.subarray(0, (39 * 5 + 2) * bs)))).toBe(0);
    });
  }
});
