/**
 * moveFiles' `treeBlock` (the defragmenter's predicted extent-tree leaf): a move that pushes a
 * tree-less file past the inode's four extents makes remapInode allocate a leaf — the first free
 * block from the file's first block. With the right prediction the move is made and the leaf is
 * there; with a wrong one the move fails ESTALE and changes nothing. e2fsck clean after each.
 */
import { describe, it, expect } from 'vitest';
import { writeFileSync } from 'node:fs';
import { Filesystem } from '../../lib/node.js';
import { getFreeBlocks } from '../../lib/ops/free.js';
import { openFile } from '../../lib/ops/file.js';
import { moveFiles } from '../../lib/ops/move-batch.js';
import { FreeIndex } from '../../lib/ops/defrag-plan.js';
import { debugfsDump, expectE2fsckClean, mkfs, sha256File } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { prngBytes } from '../helpers/tree.js';

describe('moveFiles: a predicted extent-tree leaf', () => {
  it('lands where predicted; a wrong prediction fails ESTALE and changes nothing', async () => {
    const src = tmpDir('leaf-src');
    writeFileSync(`${src}/f`, '');
    writeFileSync(`${src}/g`, '');
    const img = tmpPath('leaf.img');
    mkfs('ext4', img, 16 * 1024 * 1024, ['-b', '4096'], src);
    // /f: 4 extents (interleaved with /g's), the most the inode holds: 2 blocks, then 1, 1, 1
    const fs = await Filesystem.open(img, { write: true });
    const bs = fs.blockSize;
    const f = await openFile(fs, '/f'), g = await openFile(fs, '/g');
    const want = new Uint8Array(5 * bs);
    for (let k = 0, at = 0; k < 4; k++) {
      const b = prngBytes(`leaf-${k}`, (k === 0 ? 2 : 1) * bs);
      await f.pwrite(b, at);
      want.set(b, at);
      at += b.length;
      await g.pwrite(prngBytes(`leaf-g-${k}`, bs), k * bs);
    }
    const ino = (await fs.resolve('/f')).ino;
    const before = await fs.fileMap(await fs.readInode(ino));
    expect(before.extents.length).toBe(4);
    expect(before.metadataBlocks).toEqual([]);
    // logical block 1 of /f (the second of its first extent) to the far end of the free space:
    // 5 extents, out of the inode; the leaf's search starts at the first extent, the block this
    // move frees is not handed out in its own transaction
    const idx = new FreeIndex((await getFreeBlocks(fs)).map((r) => ({ start: r.start / bs, length: r.len / bs })));
    const last = idx.runs[idx.runs.length - 1]!;
    const target = last.start + last.length - 1;
    idx.take(target, 1);
    const goal = before.extents[0]!.physical;
    const leaf = Math.max(goal, idx.runs.find((r) => r.start + r.length > goal)!.start);
    const move = { ino, logicalBlock: 1, lengthBlocks: 1, target: [{ startBlock: target, lengthBlocks: 1 }], expect: before.extents };
    await fs.close();
    const sha = sha256File(img);

    const fs2 = await Filesystem.open(img, { write: true });
    const [wrong] = await moveFiles(fs2, [{ ...move, treeBlock: leaf + 1 }]);
    await fs2.close();
    expect(wrong!.moved).toBe(false);
    expect(wrong!.error?.code).toBe('ESTALE');
    expect(sha256File(img), 'nothing written').toBe(sha);

    const fs3 = await Filesystem.open(img, { write: true });
    const [right] = await moveFiles(fs3, [{ ...move, treeBlock: leaf }]);
    expect(right!.error).toBeUndefined();
    expect(right!.moved).toBe(true);
    const after = await fs3.fileMap(await fs3.readInode(ino));
    await fs3.close();
    expect(after.metadataBlocks).toEqual([leaf]);
    expect(after.extents.find((e) => e.logical === 1)!.physical).toBe(target);
    expectE2fsckClean(img, 'after the move');
    expect(Buffer.compare(debugfsDump(img, '/f'), Buffer.from(want))).toBe(0);
  });
});
