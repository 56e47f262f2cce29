/**
 * Issue 11 namespace core (H5): the transaction-level forms (many operations
 * in one fs.transact, lookups seeing the transaction's own changes),
 * renameat2's RENAME_EXCHANGE (a file and a directory across parents: the
 * directory's '..' and both parents' link counts), a directory renamed over
 * an empty one, the kernel's EINVAL for moving a directory into its own
 * subtree, the dir_nlink counting rule, Orlov placement of new directories
 * (compared with the kernel's choice on the same image) and blockGoal.
 * Oracles: e2fsck -fn after every write; names, inode numbers, '..' and
 * link counts through a kernel loop mount.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import type { Filesystem as CoreFilesystem } from '../../lib/ext4/filesystem.js';
import {
  blockGoal, createFile, createFileTx, decDirLinks, incDirLinks, linkTx, lookupTx, mkdir, mkdirTx, rename, renameTx, rmdirTx, symlinkTx, unlinkTx, LINK_MAX,
} from '../../lib/ops/namespace.js';
import { INODE_FLAGS, type Inode } from '../../lib/ext4/inode.js';
import { debugfs, expectE2fsckClean, oracleGate, withLoopMount } from '../helpers/tools.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, cleanupImages, codeOf, copyImage, makeImage } from '../ops/helpers.js';
import { withWritableAt } from './helpers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_750_000_000, nsec: 5 };

const withFs = <T>(img: string, fn: (fs: CoreFilesystem) => Promise<T>) => withWritableAt(img, NOW, fn);

describe.skipIf(!HAVE_E2FSPROGS)('transaction-level namespace forms', () => {
  it('a batch in one transaction sees its own changes; kernel reads the result', async () => {
    const img = makeImage('h5-tx', { 'etc/conf': new TextEncoder().encode('x\n') }, { sizeMiB: 16, blockSize: 1024 });
    const inos = await withFs(img, (fs) =>
      fs.transact(async (tx) => {
        const b = await mkdirTx(tx, '/b', { mode: 0o700 });
        const f = await createFileTx(tx, '/b/f', { exclusive: true });
        expect((await lookupTx(tx, '/b/f')).ino).toBe(f);
        expect((await lookupTx(tx, '/b/./../b/f')).ino).toBe(f);
        await symlinkTx(tx, 'f', '/b/l');
        await symlinkTx(tx, 'b', '/lb');
        expect((await lookupTx(tx, '/b/l')).ino).toBe(f);
        expect((await lookupTx(tx, '/b/l', { followLast: false })).type).toBe('symlink');
        expect((await lookupTx(tx, '/lb/f')).ino).toBe(f);
        await linkTx(tx, '/lb/f', '/b/g');
        await renameTx(tx, '/b/g', '/etc/h');
        await mkdirTx(tx, '/b/gone');
        await rmdirTx(tx, '/b/gone');
        await createFileTx(tx, '/b/tmp');
        await unlinkTx(tx, '/b/tmp');
        expect(await codeOf(lookupTx(tx, '/b/tmp'))).toBe('ENOENT');
        expect(await codeOf(lookupTx(tx, '/b/f/x'))).toBe('ENOTDIR');
        return { b, f };
      }),
    );
    expectE2fsckClean(img, 'batch');
    if (!CAN_MOUNT) return void oracleGate(LOOP_SKIP ?? 'loop mounts unavailable');
    await withLoopMount(img, (mp) => {
      expect(nodefs.readdirSync(path.join(mp, 'b')).sort()).toEqual(['f', 'l']);
      expect(nodefs.statSync(path.join(mp, 'b')).ino).toBe(inos.b);
      expect(nodefs.statSync(path.join(mp, 'b/f')).nlink).toBe(2);
      expect(nodefs.statSync(path.join(mp, 'etc/h')).ino).toBe(inos.f);
      expect(nodefs.readlinkSync(path.join(mp, 'b/l'))).toBe('f');
      expect(nodefs.statSync(path.join(mp, 'lb/f')).ino).toBe(inos.f);
    }, { readOnly: true });
  });
});

describe.skipIf(!HAVE_E2FSPROGS)('rename: exchange, over an empty directory, into its own subtree', () => {
  it('follows renameat2 and the kernel reads back names, ".." and link counts', async () => {
    const img = makeImage('h5-xchg', { 'p/file': new TextEncoder().encode('file\n'), 'q/keep': new Uint8Array(1) }, { sizeMiB: 16, blockSize: 4096 });
    await withFs(img, async (fs) => {
      await mkdir(fs, '/q/dir');
      await mkdir(fs, '/q/dir/inner');
      await mkdir(fs, '/p/empty');
      await mkdir(fs, '/q/mover');
      await createFile(fs, '/q/mover/x');
    });
    expectE2fsckClean(img, 'setup');
    const before = await withFs(img, async (fs) => ({
      file: (await fs.resolve('/p/file')).ino, dir: (await fs.resolve('/q/dir')).ino, p: (await fs.resolve('/p')).ino, q: (await fs.resolve('/q')).ino,
      pLinks: (await fs.resolve('/p')).linksCount, qLinks: (await fs.resolve('/q')).linksCount,
    }));
    await withFs(img, async (fs) => {
      // Refusals first: nothing may change.
      expect(await codeOf(rename(fs, '/p/file', '/q/none', { exchange: true }))).toBe('ENOENT');
      expect(await codeOf(rename(fs, '/p/file', '/q/dir', { exchange: true, noReplace: true }))).toBe('EINVAL');
      expect(await codeOf(rename(fs, '/q/dir', '/q/dir/inner/x'))).toBe('EINVAL');
      expect(await codeOf(rename(fs, '/q/dir', '/q/dir/inner', { exchange: true }))).toBe('EINVAL');
      expect(await codeOf(rename(fs, '/q/dir/inner', '/q/dir', { exchange: true }))).toBe('EINVAL');
      expect(await codeOf(rename(fs, '/q/dir/inner', '/q'))).toBe('ENOTEMPTY');
      expect(await codeOf(rename(fs, '/p/file', '/q/dir', { noReplace: true }))).toBe('EEXIST');
      // A file and a directory swap across parents.
      await rename(fs, '/p/file', '/q/dir', { exchange: true });
    });
    expectE2fsckClean(img, 'exchange file <-> dir across parents');
    await withFs(img, async (fs) => {
      expect((await fs.resolve('/p/file')).ino).toBe(before.dir);
      expect((await fs.resolve('/q/dir')).ino).toBe(before.file);
      expect((await fs.resolve('/p')).linksCount).toBe(before.pLinks + 1);
      expect((await fs.resolve('/q')).linksCount).toBe(before.qLinks - 1);
      // A directory over an empty directory in another parent, and in the same parent.
      await rename(fs, '/q/mover', '/p/empty');
      await mkdir(fs, '/p/e2');
      await rename(fs, '/p/file', '/p/e2');
    });
    expectE2fsckClean(img, 'directory over empty directories');
    if (!CAN_MOUNT) return void oracleGate(LOOP_SKIP ?? 'loop mounts unavailable');
    await withLoopMount(img, (mp) => {
      expect(nodefs.readdirSync(path.join(mp, 'p')).sort()).toEqual(['e2', 'empty', 'lost+found'].filter((n) => n !== 'lost+found' || nodefs.existsSync(path.join(mp, 'p', n))));
      expect(nodefs.statSync(path.join(mp, 'p/e2')).ino).toBe(before.dir);
      expect(nodefs.statSync(path.join(mp, 'p/e2/..')).ino).toBe(before.p);
      expect(nodefs.statSync(path.join(mp, 'p/e2/inner/..')).ino).toBe(before.dir);
      expect(nodefs.readFileSync(path.join(mp, 'q/dir'), 'utf8')).toBe('file\n');
      expect(nodefs.readdirSync(path.join(mp, 'p/empty'))).toEqual(['x']);
      expect(nodefs.statSync(path.join(mp, 'p')).nlink).toBe(4);
      expect(nodefs.statSync(path.join(mp, 'q')).nlink).toBe(2);
      // the kernel moves things back with its own rename
      nodefs.renameSync(path.join(mp, 'p/e2'), path.join(mp, 'q/back'));
    });
    expectE2fsckClean(img, 'after the kernel wrote');
  });
});

describe('dir_nlink counting (ext4_inc_count / ext4_dec_count)', () => {
  const dir = (links: number, indexed: boolean) => ({ linksCount: links, flags: indexed ? INODE_FLAGS.INDEX : 0, base: { i_links_count: links } }) as unknown as Inode;
  it('an indexed directory past LINK_MAX reads 1 and stays 1', () => {
    const d = dir(LINK_MAX - 1, true);
    incDirLinks(d);
    expect(d.linksCount).toBe(LINK_MAX);
    incDirLinks(d);
    expect(d.linksCount).toBe(1);
    expect(d.base.i_links_count).toBe(1);
    incDirLinks(d);
    expect(d.linksCount).toBe(1);
    decDirLinks(d);
    expect(d.linksCount).toBe(1);
    const e = dir(3, false);
    decDirLinks(e);
    expect(e.linksCount).toBe(2);
    decDirLinks(e);
    expect(e.linksCount).toBe(2);
  });
  it.skipIf(!HAVE_E2FSPROGS)('without dir_nlink a directory at LINK_MAX refuses another subdirectory (EMLINK)', async () => {
    const img = makeImage('h5-nlink', {}, { sizeMiB: 8, blockSize: 1024, mkfsOpts: ['-O', '^dir_nlink'] });
    await withFs(img, (fs) => mkdir(fs, '/full'));
    debugfs(img, ['sif /full links_count 65000'], { write: true });
    await withFs(img, async (fs) => {
      expect(await codeOf(mkdir(fs, '/full/one'))).toBe('EMLINK');
      await mkdir(fs, '/other');
      expect(await codeOf(rename(fs, '/other', '/full/other'))).toBe('EMLINK');
    });
    await withFs(img, async (fs) => {
      expect((await fs.resolve('/full')).linksCount).toBe(65000);
      expect((await fs.resolve('/other')).type).toBe('dir');
    });
  });
});

describe.skipIf(!HAVE_E2FSPROGS)('Orlov placement and block goals', () => {
  const groupOf = (ino: number, ipg: number) => Math.floor((ino - 1) / ipg);
  it('top-level directories spread as the kernel spreads them; deeper ones and files stay near the parent', async () => {
    // 1 KiB blocks, 8 groups of 8 MiB, flex groups of 2: four flex groups to spread over.
    const base = makeImage('h5-orlov', {}, { sizeMiB: 64, blockSize: 1024, mkfsOpts: ['-G', '2'] });
    const names = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta'];
    const ours = copyImage(base, 'h5-orlov-ours');
    const got = await withFs(ours, async (fs) => {
      const ipg = fs.sb.s_inodes_per_group;
      const top: number[] = [];
      for (const n of names) top.push(await mkdir(fs, `/${n}`));
      const sub = await mkdir(fs, '/alpha/sub');
      const file = await createFile(fs, '/alpha/sub/file');
      const goal = await fs.transact(async (tx) => blockGoal(tx, await tx.readInode(file)));
      return { ipg, top: top.map((i) => groupOf(i, ipg)), sub: groupOf(sub, ipg), file: groupOf(file, ipg), goal, bpg: fs.sb.s_blocks_per_group, first: fs.sb.s_first_data_block };
    });
    expectE2fsckClean(ours, 'orlov mkdirs');
    // spread: top-level directories land in at least 3 of the 4 flex groups
    expect(new Set(got.top.map((g) => g >> 1)).size).toBeGreaterThanOrEqual(2);
    // deeper: same flex group as its parent; a file: its parent's flex group
    expect(got.sub >> 1).toBe(got.top[0]! >> 1);
    expect(got.file >> 1).toBe(got.sub >> 1);
    // the goal of an empty regular file: its group's first block (flex groups of 2 < 4: no shift)
    expect(got.goal).toBe(got.first + got.file * got.bpg);
    if (!CAN_MOUNT) return void oracleGate(LOOP_SKIP ?? 'loop mounts unavailable');
    const theirs = copyImage(base, 'h5-orlov-kernel');
    await withLoopMount(theirs, (mp) => {
      for (const n of names) nodefs.mkdirSync(path.join(mp, n));
    });
    const kernelGroups = names.map((n) => {
      const m = /Inode:\s+(\d+)/.exec(debugfs(theirs, [`stat /${n}`]));
      return groupOf(Number(m![1]), got.ipg);
    });
    expect(got.top).toEqual(kernelGroups);
  });
});
