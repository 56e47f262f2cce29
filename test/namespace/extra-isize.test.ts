/**
 * Inodes with an i_extra_isize smaller than the filesystem wants (as old images have them; made
 * here with debugfs set_inode_field, in-inode xattrs added behind the small i_extra_isize with
 * debugfs ea_set): the same chmod / setxattr done by the kernel on one copy and by ext4kit on
 * another must leave the same i_extra_isize on every inode (grown to 32 without in-inode xattrs,
 * kept with them), the in-inode xattrs readable by the kernel, and e2fsck -fn clean.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { chmod, setXattr, utimes } from '../../lib/ops/attrs.js';
import { expectE2fsckClean, oracleGate, run, withLoopMount } from '../helpers/tools.js';
import { CAN_MOUNT, LOOP_SKIP, cleanupImages, copyImage } from '../ops/helpers.js';
import { makeNsImage, withWritableAt, extraIsizes } from './helpers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_760_000_000, nsec: 0 };
const FILES = ['plain', 'zero', 'withx', 'setx', 'full'];

const PY_GET = `
import os, sys, json
print(json.dumps({p: {n: os.getxattr(p, n).hex() for n in os.listxattr(p)} for p in sys.argv[1:]}))
`;

describe.skipIf(oracleGate(CAN_MOUNT ? null : LOOP_SKIP))('inodes with a small i_extra_isize', () => {
  it('chmod, utimes and setxattr grow it as the kernel does and keep in-inode xattrs', async () => {
    const tree = Object.fromEntries(FILES.map((f) => [f, new TextEncoder().encode(f)]));
    const base = makeNsImage({ name: 'extra-isize', kind: 'ext4', blockSize: 1024, sizeMiB: 16, mkfsOpts: ['-I', '256'], tree });
    // 80 bytes: fits the body behind i_extra_isize 4 (120 bytes), not behind 32 (92).
    const fill = '0123456789'.repeat(8);
    const script = [
      'sif /plain extra_isize 4', 'sif /zero extra_isize 0', 'sif /withx extra_isize 4', 'sif /setx extra_isize 4', 'sif /full extra_isize 4',
      'ea_set /withx user.a hello', 'ea_set /setx user.a hello', `ea_set /full user.fill ${fill}`,
    ];
    run('debugfs', ['-w', '-f', '-', base], { input: script.join('\n') + '\n' });
    expectE2fsckClean(base, 'the debugfs fixture');
    const before = await extraIsizes(base, FILES, '/');
    expect(before).toEqual({
      plain: { extra: 4, ibody: [] }, zero: { extra: 0, ibody: [] }, withx: { extra: 4, ibody: ['user.a'] },
      setx: { extra: 4, ibody: ['user.a'] }, full: { extra: 4, ibody: ['user.fill'] },
    });

    const kernel = copyImage(base, 'extra-isize-kernel'), ours = copyImage(base, 'extra-isize-ours');
    await withLoopMount(kernel, (mp) => {
      for (const f of ['plain', 'zero', 'withx', 'full']) nodefs.chmodSync(path.join(mp, f), 0o600);
      run('python3', ['-c', 'import os,sys; os.setxattr(sys.argv[1], "user.b", b"world")', path.join(mp, 'setx')]);
    });
    await withWritableAt(ours, NOW, async (fs) => {
      for (const f of ['plain', 'zero', 'withx', 'full']) await chmod(fs, `/${f}`, 0o600);
      await setXattr(fs, '/setx', 'user.b', new TextEncoder().encode('world'));
    });
    expectE2fsckClean(ours, 'after our chmod and setxattr');
    const k = await extraIsizes(kernel, FILES, '/'), o = await extraIsizes(ours, FILES, '/');
    expect(o).toEqual(k);
    // Grown where the body held no xattrs, kept where it did.
    expect(o.plain!.extra).toBe(32);
    expect(o.zero!.extra).toBe(32);
    expect(o.withx!.extra).toBe(4);

    const read = async (img: string) => withLoopMount(img, (mp) => JSON.parse(run('python3', ['-c', PY_GET, ...FILES.map((f) => path.join(mp, f))]).stdout.split(mp).join('')) as unknown);
    expect(await read(ours)).toEqual(await read(kernel));

    // Nanosecond times need the room: utimes after the growth keeps them, as the kernel's stat shows.
    await withWritableAt(ours, NOW, async (fs) => {
      await utimes(fs, '/plain', { sec: 1_700_000_000, nsec: 123_456_789 }, { sec: 1_700_000_001, nsec: 987_654_321 });
    });
    expectE2fsckClean(ours, 'after utimes');
    await withLoopMount(ours, (mp) => {
      const st = nodefs.statSync(path.join(mp, 'plain'), { bigint: true });
      expect(st.mtimeNs).toBe(1_700_000_001_987_654_321n);
      expect(st.atimeNs).toBe(1_700_000_000_123_456_789n);
    });
  });
});
