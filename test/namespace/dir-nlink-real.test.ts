/**
 * dir_nlink for real: a directory holding 64,998 subdirectories (links 65,000 = EXT4_LINK_MAX),
 * made by the kernel in a loop mount (mkfs.ext4 -d of such a tree ran over 10 minutes before it
 * was stopped: populate_fs links each name into a linear directory; the kernel's indexed mkdirs
 * take ~5 s on a journal-less image at load 17).
 * Then ext4kit's mkdir of the next one: with dir_nlink on the indexed parent, its links count
 * becomes 1 (ext4_inc_count), e2fsck -fn is clean (pass 4 takes 1 for a directory past
 * EXT2_LINK_MAX), and the kernel agrees (stat nlink 1; it can rmdir and mkdir there); rmdir back
 * leaves 1 (ext4_dec_count, e2fsck -n accepts it on an indexed directory). Without dir_nlink
 * (tune2fs -O ^dir_nlink): EMLINK (EXT4_DIR_LINK_MAX) and the image unchanged, byte for byte.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { mkdir, rmdir } from '../../lib/ops/namespace.js';
import { LINK_MAX } from '../../lib/ops/namespace.js';
import { INODE_FLAGS } from '../../lib/ext4/inode.js';
import { expectE2fsckClean, oracleGate, run, withLoopMount } from '../helpers/tools.js';
import { CAN_MOUNT, LOOP_SKIP, cleanupImages, codeOf, copyImage, scratchPath } from '../ops/helpers.js';
import { withWritableAt } from './helpers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_760_000_000, nsec: 0 };
const SUBDIRS = LINK_MAX - 2;

const skip = oracleGate(CAN_MOUNT ? null : LOOP_SKIP);

describe.skipIf(skip)('dir_nlink with 65,000 real subdirectories', () => {
  let base = '';

  beforeAll(async () => {
    base = scratchPath('nlink-65000.img');
    nodefs.writeFileSync(base, '');
    nodefs.truncateSync(base, 128 * 1024 * 1024);
    // No journal: the kernel's 64,998 mkdirs take ~5 s instead of ~12 s (load 17); dir_nlink does not care.
    run('mkfs.ext4', ['-q', '-F', '-b', '1024', '-N', '66000', '-O', 'dir_nlink,^has_journal', base]);
    await withLoopMount(
      base,
      (mp) => {
        // One python process: 64,998 mkdir(2) calls through the kernel (an indexed directory).
        run('python3', ['-c', 'import os,sys\nos.mkdir(sys.argv[1])\nfor i in range(int(sys.argv[2])): os.mkdir(os.path.join(sys.argv[1], "d%d" % i))', path.join(mp, 'p'), String(SUBDIRS)]);
        expect(nodefs.statSync(path.join(mp, 'p')).nlink).toBe(LINK_MAX);
      },
      { options: ['nobarrier'] },
    );
  }, 120_000);

  it('mkdir of the 65,001st link: the parent reads 1; e2fsck and the kernel agree; rmdir back', async () => {
    const img = copyImage(base, 'nlink-on');
    await withWritableAt(img, NOW, async (fs) => {
      const p = await fs.resolve('/p');
      expect(p.flags & INODE_FLAGS.INDEX).toBeTruthy();
      expect(p.linksCount).toBe(LINK_MAX);
      await mkdir(fs, '/p/ours', { now: NOW });
      expect((await fs.resolve('/p')).linksCount).toBe(1);
      expect((await fs.resolve('/p/ours')).linksCount).toBe(2);
    });
    expectE2fsckClean(img, 'after the 65,001st link');
    await withLoopMount(img, (mp) => {
      const p = path.join(mp, 'p');
      expect(nodefs.statSync(p).nlink).toBe(1);
      nodefs.rmdirSync(path.join(p, 'd0'));
      nodefs.mkdirSync(path.join(p, 'kernel'));
      expect(nodefs.statSync(p).nlink).toBe(1);
      expect(nodefs.statSync(path.join(p, 'ours')).isDirectory()).toBe(true);
    });
    await withWritableAt(img, NOW, async (fs) => {
      await rmdir(fs, '/p/ours', { now: NOW });
      await rmdir(fs, '/p/kernel', { now: NOW });
      // 64,997 subdirectories now: the count stays 1, as ext4_dec_count leaves it.
      expect((await fs.resolve('/p')).linksCount).toBe(1);
    });
    expectE2fsckClean(img, 'after rmdir back');
    await withLoopMount(img, (mp) => {
      expect(nodefs.statSync(path.join(mp, 'p')).nlink).toBe(1);
      expect(nodefs.readdirSync(path.join(mp, 'p')).length).toBe(SUBDIRS - 1);
    });
  });

  it('without dir_nlink: EMLINK at 65,000 and the image unchanged', async () => {
    const img = copyImage(base, 'nlink-off');
    run('tune2fs', ['-O', '^dir_nlink', img]);
    const before = copyImage(img, 'nlink-off-before');
    await withWritableAt(img, NOW, async (fs) => {
      expect(await codeOf(mkdir(fs, '/p/ours', { now: NOW }))).toBe('EMLINK');
    });
    // cmp: byte for byte (hashing 128 MiB twice took ~7 s at load 17).
    expect(run('cmp', ['-s', before, img], { okStatus: true }).status).toBe(0);
    await withLoopMount(img, (mp) => {
      expect(() => nodefs.mkdirSync(path.join(mp, 'p', 'kernel'))).toThrow(/EMLINK/);
    });
  });
});
