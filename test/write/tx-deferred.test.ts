/**
 * What a transaction defers for bulk creates (issue 11 Measure, import): directory leaf checksums,
 * bitmap checksums and "late" inode writes are applied at the latest at finalise, and before anyone
 * else reads the block in question: a reader inside the transaction sees valid bytes (the inode and
 * leaf checksums verify), the object last written is what `writtenInode` gives, and the committed
 * image is e2fsck-clean.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { createFileTx, mkdirTx } from '../../lib/ops/namespace.js';
import { dirBlockChecksum, findDirTail, DirEntryTailLayout } from '../../lib/ext4/directory.js';
import { txFileMap } from '../../lib/ext4/remap.js';
import { expectE2fsckClean } from '../helpers/tools.js';
import { HAVE_E2FSPROGS, cleanupImages, makeImage } from '../ops/helpers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_750_000_000, nsec: 0 };

describe.skipIf(!HAVE_E2FSPROGS)('deferred checksums and late inode writes', () => {
  it('300 creates in one transaction: the parent, its leaves and the new inodes read back valid inside it', async () => {
    const img = makeImage('tx-deferred', { 'keep/a': new Uint8Array([120]) }, { sizeMiB: 16 });
    const f = await Filesystem.open(img, { write: true, now: NOW });
    try {
      await f.transact(async (tx) => {
        const d = await mkdirTx(tx, '/d');
        const made: number[] = [];
        for (let i = 0; i < 300; i++) made.push(await createFileTx(tx, { dir: d, name: `file-with-a-longish-name-${i}` }, { exclusive: true }));
        // The parent was stamped by every create: the object written last is the one handed out.
        const last = tx.writtenInode(d);
        expect(last?.ino).toBe(d);
        // Reading it parses the block (checksum verified): the late write was serialised first.
        const dir = await tx.readInode(d);
        expect(dir.size).toBe(last!.size);
        expect(dir.flags).toBe(last!.flags);
        expect(dir.size / f.blockSize).toBeGreaterThan(2); // indexed, several leaves
        // Every new inode reads back (its slot serialised, checksum valid).
        for (const ino of made) expect((await tx.readInode(ino)).linksCount).toBe(1);
        // Every leaf read through readBlock carries its refreshed tail checksum.
        const seed = f.inodeCsumSeed(dir)!;
        const map = await txFileMap(tx, dir);
        let leaves = 0;
        for (const e of map.extents) {
          for (let k = 0; k < e.length; k++) {
            const b = await tx.readBlock(e.physical + k);
            const top = findDirTail(b);
            if (top < 0) continue; // the dx root and index nodes keep theirs in a dx tail
            leaves++;
            expect(DirEntryTailLayout.get(b, 'det_checksum', top), `leaf ${e.logical + k}`).toBe(dirBlockChecksum(b, seed));
          }
        }
        expect(leaves).toBeGreaterThan(1);
      });
      let n = 0;
      for await (const e of f.readdir('/d')) if (e.name !== '.' && e.name !== '..') n++;
      expect(n).toBe(300);
    } finally {
      await f.close();
    }
    expectE2fsckClean(img);
  });
});
