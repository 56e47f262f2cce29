/**
 * Issue 10 item 3: defrag and moveFiles move block-mapped files (ext2/ext3, no EXTENTS_FL) too —
 * remapInode rewrites the pointers in their indirect blocks in place (a block map is positional,
 * so the indirect blocks stay). Files are fragmented by interleaved appends through our own
 * pwrite, then defragmented: each ends in one run, still block-mapped, the bytes as e2fsprogs
 * (debugfs) and the kernel read them are the bytes written, e2fsck is clean.
 */
import { describe, it, expect } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { Filesystem } from '../../lib/node.js';
import { defrag } from '../../lib/ops/defrag.js';
import { openFile } from '../../lib/ops/file.js';
import { fragmentCount } from '../../lib/ext4/extent-map.js';
import { INODE_FLAGS } from '../../lib/ext4/inode.js';
import { canLoopMount, debugfsDump, expectE2fsckClean, mkfs, withLoopMountSync } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { prngBytes } from '../helpers/tree.js';

describe('defrag: block-mapped files (ext2/ext3)', () => {
  for (const [kind, blockSize] of [['ext3', 4096], ['ext2', 1024]] as const) {
    it(`${kind}, ${blockSize}-byte blocks: fragmented files end in one run each, indirect blocks kept, bytes unchanged`, async () => {
      const names = ['a', 'b', 'c'];
      const src = tmpDir(`blockmap-src-${kind}`);
      for (const n of names) writeFileSync(`${src}/${n}`, '');
      const img = tmpPath(`blockmap-${kind}.img`);
      mkfs(kind, img, 32 * 1024 * 1024, ['-b', String(blockSize)], src);
      // Three files appended to in turn, 1-3 blocks at a time: each one's blocks interleave with
      // the others' (past 12 blocks, with single and, at 1 KiB, double indirect blocks).
      const fs = await Filesystem.open(img, { write: true });
      const bs = fs.blockSize;
      const handles = await Promise.all(names.map((n) => openFile(fs, `/${n}`)));
      const expected = names.map(() => [] as Uint8Array[]);
      const sizes = names.map(() => 0);
      for (let k = 0; k < 60; k++) {
        const f = k % 3;
        const chunk = prngBytes(`${kind}-${k}`, (1 + (k % 3)) * bs - (k === 59 ? 100 : 0));
        await handles[f]!.pwrite(chunk, sizes[f]!);
        expected[f]!.push(chunk);
        sizes[f]! += chunk.length;
      }
      const before = [];
      for (const n of names) {
        const inode = await fs.resolve(`/${n}`);
        expect(inode.flags & INODE_FLAGS.EXTENTS, `/${n} is block-mapped`).toBe(0);
        const map = await fs.fileMap(inode);
        expect(fragmentCount(map.extents), `/${n} starts fragmented`).toBeGreaterThan(10);
        expect(map.metadataBlocks.length, `/${n} has indirect blocks`).toBeGreaterThan(0);
        before.push(map);
      }
      await fs.close();
      expectE2fsckClean(img, 'before defrag');

      const fs2 = await Filesystem.open(img, { write: true });
      const s = await defrag(fs2);
      expect(s.errors).toEqual([]);
      expect(s.filesSkipped).toBe(0);
      expect(s.filesMoved).toBe(names.length);
      expect({ extents: s.extentsAfter, freeExtents: s.freeExtentsAfter, largestFree: s.largestFreeAfter }).toEqual(s.predicted);
      for (const [i, n] of names.entries()) {
        const inode = await fs2.resolve(`/${n}`);
        expect(inode.flags & INODE_FLAGS.EXTENTS, `/${n} stays block-mapped`).toBe(0);
        const map = await fs2.fileMap(inode);
        expect(fragmentCount(map.extents), `/${n}`).toBe(1);
        // the same logical blocks, the same indirect blocks
        expect(map.extents.reduce((a, e) => a + e.length, 0)).toBe(before[i]!.extents.reduce((a, e) => a + e.length, 0));
        expect([...map.metadataBlocks].sort((x, y) => x - y)).toEqual([...before[i]!.metadataBlocks].sort((x, y) => x - y));
      }
      await fs2.close();
      expectE2fsckClean(img, 'after defrag');
      const want = expected.map((parts) => Buffer.concat(parts));
      for (const [i, n] of names.entries()) expect(Buffer.compare(debugfsDump(img, `/${n}`), want[i]!), `/${n} via debugfs`).toBe(0);
      if (canLoopMount())
        withLoopMountSync(img, (mp) => {
          for (const [i, n] of names.entries()) expect(Buffer.compare(readFileSync(`${mp}/${n}`), want[i]!), `/${n} via the kernel`).toBe(0);
        }, { readOnly: true });
    });
  }
});
