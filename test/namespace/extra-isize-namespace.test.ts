/**
 * i_extra_isize on link, rename (plain, over a victim, RENAME_EXCHANGE), unlink, rmdir and the
 * creates (file, directory, fifo: their parent is dirtied). The
 * kernel grows the small i_extra_isize of every inode it dirties (ext4_mark_inode_dirty →
 * ext4_try_to_expand_extra_isize): the link target, the moved inode, the victim, the parents —
 * when the body holds no xattrs (Linux 6.18 leaves those at their size; see
 * lib/ext4/xattr-edit.ts expandExtraIsize). The same operations by the kernel on one copy and by
 * ext4kit on another must leave the same i_extra_isize everywhere (an untouched inode keeps its 4),
 * e2fsck -fn clean, and the grown inodes with the nanoseconds of the change.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { createFile, link, mkdir, mknod, rename, rmdir, unlink } from '../../lib/ops/namespace.js';
import { expectE2fsckClean, oracleGate, run, withLoopMount } from '../helpers/tools.js';
import { CAN_MOUNT, LOOP_SKIP, cleanupImages, copyImage } from '../ops/helpers.js';
import { makeNsImage, withWritableAt, extraIsizes } from './helpers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_760_000_000, nsec: 500_000_000 };
const SMALL = ['/', '/a', '/b', '/c', '/x', '/y', '/v', '/p', '/k', '/d', '/e', '/h', '/h/q', '/e/sub', '/f', '/g', '/s'];
/** Every name left after the operations (the inodes: a, b, c, x, y, v, p, q, k and the dirs). */
const AFTER = ['/', '/a', '/d/a2', '/d/b2', '/c2', '/d/x2', '/v', '/v2', '/p', '/h/q', '/k', '/d', '/e', '/h', '/f', '/g', '/s', '/f/new', '/g/sub2', '/s/ff'];

const KERNEL_OPS = `
import os, sys, ctypes
os.chdir(sys.argv[1])
os.link('a', 'd/a2'); os.rename('b', 'd/b2'); os.unlink('c'); os.rename('x', 'd/x2')
os.rename('y', 'v'); os.rmdir('e/sub')
os.close(os.open('f/new', os.O_CREAT | os.O_WRONLY, 0o644)); os.mkdir('g/sub2'); os.mkfifo('s/ff')
libc = ctypes.CDLL(None, use_errno=True)
if libc.renameat2(-100, b'p', -100, b'h/q', 2) != 0: raise OSError(ctypes.get_errno(), 'renameat2')
`;

describe.skipIf(oracleGate(CAN_MOUNT ? null : LOOP_SKIP))('i_extra_isize on link, rename, unlink, rmdir, create', () => {
  it('grows on every inode the operation dirties, as the kernel does', async () => {
    const files = ['a', 'b', 'c', 'x', 'y', 'v', 'p', 'k', 'h/q'];
    const tree: Record<string, Uint8Array | null> = { 'd/': null, 'e/sub/': null, 'f/': null, 'g/': null, 's/': null };
    for (const f of files) tree[f] = new TextEncoder().encode(f);
    const base = makeNsImage({ name: 'extra-isize-ns', kind: 'ext4', blockSize: 1024, sizeMiB: 16, mkfsOpts: ['-I', '256'], tree });
    run('debugfs', ['-w', '-f', '-', base], {
      input: [
        'ln /c /c2', 'sif /c links_count 2', 'ln /v /v2', 'sif /v links_count 2',
        ...SMALL.map((p) => `sif ${p} extra_isize 4`),
        'ea_set /x user.a hello', 'ea_set /y user.a hello',
      ].join('\n') + '\n',
    });
    expectE2fsckClean(base, 'the debugfs fixture');
    for (const [p, s] of Object.entries(await extraIsizes(base, SMALL))) expect(s.extra, p).toBe(4);

    const kernel = copyImage(base, 'extra-isize-ns-kernel'), ours = copyImage(base, 'extra-isize-ns-ours');
    await withLoopMount(kernel, (mp) => {
      run('python3', ['-c', KERNEL_OPS, mp]);
    });
    await withWritableAt(ours, NOW, async (fs) => {
      await link(fs, '/a', '/d/a2');
      await rename(fs, '/b', '/d/b2');
      await unlink(fs, '/c');
      await rename(fs, '/x', '/d/x2');
      await rename(fs, '/y', '/v');
      await rmdir(fs, '/e/sub');
      await rename(fs, '/p', '/h/q', { exchange: true });
      await createFile(fs, '/f/new', { mode: 0o644 });
      await mkdir(fs, '/g/sub2');
      await mknod(fs, '/s/ff', 'fifo');
    });
    expectE2fsckClean(ours, 'after link, rename, unlink, rmdir, exchange');
    const k = await extraIsizes(kernel, AFTER), o = await extraIsizes(ours, AFTER);
    expect(o).toEqual(k);
    // The kernel's rule, spelled out: grown where no in-inode xattrs, kept where there are, the
    // untouched inode left alone.
    for (const p of ['/', '/a', '/d/b2', '/c2', '/v2', '/p', '/h/q', '/d', '/e', '/h', '/f', '/g', '/s']) expect(o[p]!.extra, p).toBe(32);
    expect(o['/d/x2']).toEqual({ extra: 4, ibody: ['user.a'] });
    expect(o['/v']).toEqual({ extra: 4, ibody: ['user.a'] });
    expect(o['/k']!.extra).toBe(4);

    // Grown before the change was stamped: the ctime nanoseconds are there, as the kernel stores them.
    await withLoopMount(ours, (mp) => {
      for (const p of ['d/b2', 'c2', 'd', 'h/q']) expect(nodefs.statSync(path.join(mp, p), { bigint: true }).ctimeNs % 1_000_000_000n, p).toBe(500_000_000n);
    });
  });
});
