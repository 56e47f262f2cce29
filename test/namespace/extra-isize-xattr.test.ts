/**
 * setxattr / removexattr on inodes with a small i_extra_isize. The kernel changes xattrs with
 * EXT4_STATE_NO_EXPAND held (ext4_write_lock_xattr in ext4_xattr_set_handle) and marks the inode
 * dirty through ext4_mark_iloc_dirty, which never expands: an xattr-less inode given its first
 * xattr keeps its i_extra_isize (the value goes behind it), and one whose last xattr is removed
 * keeps it too, until a later change (chmod here) dirties it without xattrs. The same steps by the
 * kernel and by ext4kit must leave the same i_extra_isize and in-inode names; e2fsck -fn clean.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { chmod, removeXattr, setXattr } from '../../lib/ops/attrs.js';
import { expectE2fsckClean, oracleGate, run, withLoopMount } from '../helpers/tools.js';
import { CAN_MOUNT, LOOP_SKIP, cleanupImages, copyImage } from '../ops/helpers.js';
import { makeNsImage, withWritableAt, extraIsizes } from './helpers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_760_000_000, nsec: 0 };
const FILES = ['fresh', 'last', 'later', 'aclmode', 'aclkept'];

/** A system.posix_acl_access value (xattr form: version 2, then tag, perm, id per entry). */
function aclXattr(entries: [number, number, number][]): Uint8Array {
  const b = Buffer.alloc(4 + 8 * entries.length);
  b.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(tag, 4 + 8 * i);
    b.writeUInt16LE(perm, 6 + 8 * i);
    b.writeUInt32LE(id >>> 0, 8 + 8 * i);
  });
  return new Uint8Array(b);
}
// Equivalent to mode 0640 (not stored; 0644 → 0640: ext4_set_acl dirties the inode for the mode).
const ACL_MODE = aclXattr([[1, 6, -1], [4, 4, -1], [0x20, 0, -1]]);
// A named user: stored in the body, mode unchanged (0644): nothing dirties the inode outside the xattr lock.
const ACL_KEPT = aclXattr([[1, 6, -1], [2, 4, 1234], [4, 4, -1], [0x10, 4, -1], [0x20, 4, -1]]);

describe.skipIf(oracleGate(CAN_MOUNT ? null : LOOP_SKIP))('xattr changes and a small i_extra_isize', () => {
  it('setxattr and removexattr keep it as the kernel does; a later chmod grows it', async () => {
    const tree = Object.fromEntries(FILES.map((f) => [f, new TextEncoder().encode(f)]));
    const base = makeNsImage({ name: 'extra-isize-xattr', kind: 'ext4', blockSize: 1024, sizeMiB: 16, mkfsOpts: ['-I', '256'], tree });
    run('debugfs', ['-w', '-f', '-', base], {
      input: ['sif /fresh extra_isize 4', 'sif /last extra_isize 4', 'sif /later extra_isize 4', 'ea_set /last user.a hello', 'ea_set /later user.a hello', 'sif /aclmode extra_isize 4', 'sif /aclkept extra_isize 4'].join('\n') + '\n',
    });
    expectE2fsckClean(base, 'the debugfs fixture');
    const kernel = copyImage(base, 'extra-isize-xattr-kernel'), ours = copyImage(base, 'extra-isize-xattr-ours');
    await withLoopMount(kernel, (mp) => {
      const set = 'import os,sys; os.setxattr(sys.argv[1], "user.n", b"value")';
      const rm = 'import os,sys; os.removexattr(sys.argv[1], "user.a")';
      run('python3', ['-c', set, path.join(mp, 'fresh')]);
      run('python3', ['-c', rm, path.join(mp, 'last')]);
      run('python3', ['-c', rm, path.join(mp, 'later')]);
      const acl = 'import os,sys; os.setxattr(sys.argv[1], "system.posix_acl_access", bytes.fromhex(sys.argv[2]))';
      run('python3', ['-c', acl, path.join(mp, 'aclmode'), Buffer.from(ACL_MODE).toString('hex')]);
      run('python3', ['-c', acl, path.join(mp, 'aclkept'), Buffer.from(ACL_KEPT).toString('hex')]);
    });
    await withLoopMount(kernel, (mp) => nodefs.chmodSync(path.join(mp, 'later'), 0o600));
    await withWritableAt(ours, NOW, async (fs) => {
      await setXattr(fs, '/fresh', 'user.n', new TextEncoder().encode('value'));
      await removeXattr(fs, '/last', 'user.a');
      await removeXattr(fs, '/later', 'user.a');
      await setXattr(fs, '/aclmode', 'system.posix_acl_access', ACL_MODE);
      await setXattr(fs, '/aclkept', 'system.posix_acl_access', ACL_KEPT);
    });
    expectE2fsckClean(ours, 'after setxattr and removexattr');
    await withWritableAt(ours, NOW, (fs) => chmod(fs, '/later', 0o600));
    expectE2fsckClean(ours, 'after chmod');
    const k = await extraIsizes(kernel, FILES, '/'), o = await extraIsizes(ours, FILES, '/');
    expect(o).toEqual(k);
    expect(o).toEqual({
      fresh: { extra: 4, ibody: ['user.n'] }, last: { extra: 4, ibody: [] }, later: { extra: 32, ibody: [] },
      aclmode: { extra: 32, ibody: [] }, aclkept: { extra: 4, ibody: ['system.posix_acl_access'] },
    });
  });
});
