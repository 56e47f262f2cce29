/**
 * importTree's shortcuts for what it creates itself (issue 11, Measure: import speed):
 * - names in a directory the import made skip the lookup before the insert (ImportRun.claim):
 *   a name given twice is still EEXIST for a file and merged for a directory, as before, ASCII
 *   or not, after a hard link too;
 * - a new file whose extents fit in i_block gets its root written in place (mapIntoRoot): 1–4
 *   extents that way, 5 through remapInode; debugfs (e2fsprogs) reads the source bytes back and e2fsck is clean;
 * - a new inode's zeroed slot is not decoded (Transaction.readNewInode): what it gives equals
 *   parseInode of the slot.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { importInto } from './helpers.js';
import type { TreeEntry } from '../../lib/ops/tree-entry.js';
import { allocateInode } from '../../lib/ext4/alloc.js';
import { parseInode } from '../../lib/ext4/inode.js';
import { expectE2fsckClean } from '../helpers/tools.js';
import { HAVE_E2FSPROGS, cleanupImages, codeOf, debugfsFiles, makeImage, pattern } from '../ops/helpers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_700_000_000, nsec: 0 };
const dir = (path: string): TreeEntry => ({ path, type: 'dir', mode: 0o755, uid: 0, gid: 0 });
const file = (path: string, data: Uint8Array): TreeEntry => ({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, size: data.length, data });

/** `n` 4 KiB blocks, every odd one zeros (a hole after import): (n + 1) / 2 extents. */
function holey(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n * 4096);
  for (let b = 0; b < n; b += 2) out.set(pattern(4096, seed + b), b * 4096);
  return out;
}

describe.skipIf(!HAVE_E2FSPROGS)('importTree into directories it makes', () => {
  it('a file name given twice is EEXIST, a directory given twice is merged (ASCII or not, after a hard link too)', async () => {
    // Without dir_index the directory is linear: once its first block is full, an insert goes to a
    // later block, so only a lookup (or the import's own record of names) sees a name in the first.
    const a = pattern(3000, 1);
    const many = Array.from({ length: 120 }, (_, i) => file(`d/filler-${i}`, new Uint8Array(0)));
    const cases: [string, TreeEntry][] = [['ascii', file('d/a', a)], ['utf8', file('d/é', a)], ['link', file('d/link', a)]];
    for (const [tag, again] of cases) {
      const img = makeImage(`fresh-dup-${tag}`, {}, { sizeMiB: 8, blockSize: 1024, mkfsOpts: ['-O', '^dir_index'] });
      const entries: TreeEntry[] = [dir('d'), file('d/a', a), file('d/é', a), { path: 'd/link', type: 'hardlink', mode: 0, uid: 0, gid: 0, target: 'd/a' }, ...many, again];
      expect(await codeOf(importInto(img, entries, NOW)), tag).toBe('EEXIST');
      await expectE2fsckClean(img);
    }
    const img = makeImage('fresh-merge', {}, { sizeMiB: 8, blockSize: 1024, mkfsOpts: ['-O', '^dir_index'] });
    await importInto(img, [dir('d'), dir('d/s'), dir('d/ü'), ...many, dir('d/s'), file('d/s/y', a), dir('d/ü'), file('d/ü/z', a)], NOW);
    await expectE2fsckClean(img);
    const got = debugfsFiles(img, ['/d/s/y', '/d/ü/z']);
    for (const o of got.values()) expect(Buffer.compare(o.dump, Buffer.from(a))).toBe(0);
  });

  it('files of 1 to 5 extents (holes between): the root written in place up to 4, e2fsck clean, debugfs reads the source', async () => {
    const img = makeImage('fresh-roots', {}, { sizeMiB: 16, blockSize: 4096 });
    const files = new Map<string, Uint8Array>();
    for (let n = 1; n <= 9; n += 2) files.set(`d/f${n}`, holey(n, n * 100));
    files.set('d/tail', new Uint8Array([...holey(3, 7), ...pattern(100, 9)])); // a partial last block after a data block: 2 extents
    await importInto(img, [dir('d'), ...[...files].map(([p, d]) => file(p, d))], NOW);
    await expectE2fsckClean(img);
    const got = debugfsFiles(img, [...files.keys()].map((p) => '/' + p));
    for (const [p, data] of files) {
      const o = got.get('/' + p)!;
      expect(o.size).toBe(data.length);
      expect(Buffer.compare(o.dump, Buffer.from(data)), p).toBe(0);
      expect(o.extents.length, p).toBe(p === 'd/tail' ? 2 : (Number(p.slice(3)) + 1) / 2);
    }
  });
});

describe.skipIf(!HAVE_E2FSPROGS)('Transaction.readNewInode', () => {
  it('gives what parseInode gives for the zeroed slot (128- and 256-byte inodes)', async () => {
    for (const size of [128, 256]) {
      const img = makeImage(`fresh-slot-${size}`, {}, { sizeMiB: 8, mkfsOpts: ['-I', String(size)] });
      const f = await Filesystem.open(img, { write: true, now: NOW });
      try {
        await f.transact(async (tx) => {
          const ino = await allocateInode(tx, {});
          const fromSlot = await tx.readNewInode(ino);
          const { block, offset } = await f.inodeLocation(ino);
          const slot = (await tx.readBlock(block)).subarray(offset, offset + size);
          expect(slot.every((b) => b === 0)).toBe(true);
          expect(fromSlot).toEqual(parseInode(f.sb, ino, slot, { fsSeed: f.fsSeed, verifyChecksum: false }));
          // Two calls give objects that share nothing mutable.
          const again = await tx.readNewInode(ino);
          again.base.i_block[0] = 1;
          again.atime.sec = 5;
          expect(fromSlot.base.i_block[0]).toBe(0);
          expect(fromSlot.atime.sec).toBe(0);
          throw new Error('rolled back');
        }).catch((e: Error) => expect(e.message).toBe('rolled back'));
      } finally {
        await f.close();
      }
    }
  });
});
