/**
 * Issue 11 item 2 (H5): inline_data directories. A new directory on an
 * inline_data filesystem lives in its inode (ext4_init_inline_dir: '..' in
 * i_block, an empty system.data, i_size 60); entries go into i_block, then
 * into system.data grown to the inode body's room (ext4_update_inline_dir),
 * then the directory moves to a block (ext4_convert_inline_dir) and goes on
 * as a linear / htree directory. Removal, rename (its '..' when it moves),
 * exchange and rmdir on inline directories; directories made inline by
 * mkfs.ext4 -d are edited too.
 * Oracles: the kernel making the same directory on the same image (i_size
 * and the INLINE_DATA flag at each step, via debugfs), e2fsck -fn after each
 * step, names through a kernel loop mount; the kernel then writes in our
 * inline directories and we read its changes.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import type { Filesystem as CoreFilesystem } from '../../lib/ext4/filesystem.js';
import { createFile, createFileTx, mkdir, rename, rmdir, symlink, unlink } from '../../lib/ops/namespace.js';
import { writeInlineData } from '../../lib/ext4/inline-data.js';
import { INODE_FLAGS } from '../../lib/ext4/inode.js';
import { debugfs, expectE2fsckClean, oracleGate, withLoopMount } from '../helpers/tools.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, cleanupImages, codeOf, copyImage, makeImage } from '../ops/helpers.js';
import { entryNames, withWritableAt } from './helpers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_750_000_000, nsec: 7 };

const withFs = <T>(img: string, fn: (fs: CoreFilesystem) => Promise<T>) => withWritableAt(img, NOW, fn);

const names = entryNames;

/** (i_size, inline?) of a path as debugfs sees it. */
function shape(img: string, p: string): string {
  const out = debugfs(img, [`stat ${p}`]);
  const size = /Size:\s+(\d+)/.exec(out)?.[1];
  const flags = Number(/Flags:\s+(0x[0-9a-f]+)/.exec(out)?.[1] ?? 'NaN');
  return `${size}${flags & INODE_FLAGS.INLINE_DATA ? ' inline' : ''}`;
}

const entry = (i: number) => `n${String(i).padStart(2, '0')}`;

describe.skipIf(!HAVE_E2FSPROGS)('inline_data directories', () => {
  for (const bs of [4096, 1024]) {
    it(`${bs}-byte blocks: grows as the kernel grows it, converts to a block, kernel reads and writes it`, async () => {
      const base = makeImage(`h5-inline-${bs}`, { 'seed/a': new TextEncoder().encode('a') }, { sizeMiB: 16, blockSize: bs, mkfsOpts: ['-O', 'inline_data'] });
      const ours = copyImage(base, `h5-inline-ours-${bs}`);
      const N = 14;
      const shapes: string[] = [];
      await withFs(ours, (fs) => mkdir(fs, '/d'));
      shapes.push(shape(ours, '/d'));
      for (let i = 0; i < N; i++) {
        await withFs(ours, (fs) => createFile(fs, `/d/${entry(i)}`));
        shapes.push(shape(ours, '/d'));
        if (i % 4 === 3 || i === N - 1) expectE2fsckClean(ours, `after ${i + 1} entries`);
      }
      expect(shapes[0]).toBe('60 inline');
      expect(shapes.some((s) => s.endsWith('inline') && s !== '60 inline')).toBe(true); // system.data grew
      expect(shapes[shapes.length - 1]).toBe(String(bs)); // converted to one block
      await withFs(ours, async (fs) => {
        expect(await names(fs, '/d')).toEqual(Array.from({ length: N }, (_, i) => entry(i)));
        // edits in an inline directory: a subdirectory, removal, rename, moving an inline dir across parents
        await mkdir(fs, '/e');
        await mkdir(fs, '/e/sub');
        await createFile(fs, '/e/one');
        await symlink(fs, 'one', '/e/link');
        await unlink(fs, '/e/one');
        await createFile(fs, '/e/two');
        await rename(fs, '/e/two', '/e/three');
        await rename(fs, '/e/sub', '/seed/sub');
        await mkdir(fs, '/e/gone');
        await rmdir(fs, '/e/gone');
        await mkdir(fs, '/f');
        await rename(fs, '/e', '/f', { exchange: true });
        expect(await codeOf(rmdir(fs, '/f'))).toBe('ENOTEMPTY');
        expect((await fs.resolve('/f')).flags & INODE_FLAGS.INLINE_DATA).toBeTruthy();
      });
      expectE2fsckClean(ours, 'inline edits');
      if (!CAN_MOUNT) return void oracleGate(LOOP_SKIP ?? 'loop mounts unavailable');
      // The kernel making the same directory on the same image: the same shapes.
      const kernel = copyImage(base, `h5-inline-kernel-${bs}`);
      const kshapes: string[] = [];
      await withLoopMount(kernel, (mp) => nodefs.mkdirSync(path.join(mp, 'd')));
      kshapes.push(shape(kernel, '/d'));
      for (let i = 0; i < N; i++) {
        await withLoopMount(kernel, (mp) => nodefs.writeFileSync(path.join(mp, 'd', entry(i)), ''));
        kshapes.push(shape(kernel, '/d'));
      }
      expect(shapes).toEqual(kshapes);
      await withLoopMount(ours, (mp) => {
        expect(nodefs.readdirSync(path.join(mp, 'd')).sort()).toEqual(Array.from({ length: N }, (_, i) => entry(i)));
        expect(nodefs.readdirSync(path.join(mp, 'f')).sort()).toEqual(['link', 'three']);
        expect(nodefs.readlinkSync(path.join(mp, 'f/link'))).toBe('one');
        expect(nodefs.readdirSync(path.join(mp, 'e'))).toEqual([]);
        expect(nodefs.statSync(path.join(mp, 'seed/sub/..')).ino).toBe(nodefs.statSync(path.join(mp, 'seed')).ino);
        // the kernel writes in our inline directory
        nodefs.writeFileSync(path.join(mp, 'f', 'kernel'), 'k');
        nodefs.unlinkSync(path.join(mp, 'f', 'three'));
      });
      expectE2fsckClean(ours, 'after the kernel wrote');
      await withFs(ours, async (fs) => {
        expect(await names(fs, '/f')).toEqual(['kernel', 'link']);
        await createFile(fs, '/f/after');
        await unlink(fs, '/f/kernel');
      });
      expectE2fsckClean(ours, 'after we wrote again');
    });
  }

  it('edits inline directories mkfs.ext4 -d made; small files stored inline; inline files unlinked', async () => {
    const small = new TextEncoder().encode('inline content that spills past sixty bytes of i_block into system.data\n');
    const img = makeImage('h5-inline-mkfs', { 'x/a': new Uint8Array(0), 'x/b': new Uint8Array(0), 'y/c': new TextEncoder().encode('tiny') }, { sizeMiB: 16, blockSize: 4096, mkfsOpts: ['-O', 'inline_data'] });
    await withFs(img, async (fs) => {
      expect((await fs.resolve('/x')).flags & INODE_FLAGS.INLINE_DATA).toBeTruthy();
      expect((await fs.resolve('/y/c')).flags & INODE_FLAGS.INLINE_DATA).toBeTruthy();
      await fs.transact(async (tx) => {
        const ino = await createFileTx(tx, '/x/small');
        const inode = await tx.readInode(ino);
        await writeInlineData(tx, inode, small);
        await tx.writeInode(inode);
      });
      for (let i = 0; i < 20; i++) await createFile(fs, `/x/more-${i}`);
      await unlink(fs, '/y/c');
      await rmdir(fs, '/y');
      await rename(fs, '/x/a', '/moved');
    });
    expectE2fsckClean(img, 'edited mkfs -d directories');
    await withFs(img, async (fs) => {
      expect(await names(fs, '/x')).toEqual(['b', 'small', ...Array.from({ length: 20 }, (_, i) => `more-${i}`)].sort());
    });
    if (!CAN_MOUNT) return void oracleGate(LOOP_SKIP ?? 'loop mounts unavailable');
    await withLoopMount(img, (mp) => {
      expect(nodefs.readFileSync(path.join(mp, 'x/small'), 'utf8')).toBe(new TextDecoder().decode(small));
      expect(nodefs.existsSync(path.join(mp, 'y'))).toBe(false);
    }, { readOnly: true });
    await withFs(img, (fs) => unlink(fs, '/x/small'));
    expectE2fsckClean(img, 'an inline file unlinked');
  });
});
