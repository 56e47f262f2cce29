/**
 * chmod, chown, utimes (lib/ops/attrs.ts) on ext4 with 256-byte inodes
 * (nanoseconds, post-2038 epoch bits) and 128-byte inodes (seconds only,
 * clamped to the signed 32-bit range as the kernel clamps them), symlinks
 * with noFollow, and setuid/setgid clearing on chown.
 * Oracles: e2fsck -fn after each batch; the kernel's lstat through a loop
 * mount (modes, owners, nanosecond times); debugfs for the raw fields.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import type { Filesystem as CoreFilesystem } from '../../lib/ext4/filesystem.js';
import { chmod, chown, setXattr, listXattrs, utimes } from '../../lib/ops/attrs.js';
import { symlink } from '../../lib/ops/namespace.js';
import { expectE2fsckClean, oracleGate, withLoopMount } from '../helpers/tools.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, cleanupImages, codeOf, pattern } from '../ops/helpers.js';
import { makeNsImage, withWritableAt } from './helpers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_750_000_000, nsec: 987_654_321 };
/** Year 2128: needs epoch bit 1 in *_extra. */
const FUTURE = { sec: 5_000_000_000, nsec: 123_456_789 };
/** 1960: a negative time. */
const PAST = { sec: -315_619_200, nsec: 42 };

function makeImage(inodeSize: number): string {
  const small = pattern(100, 1);
  return makeNsImage({ name: `attrs-${inodeSize}`, kind: 'ext4', blockSize: 4096, sizeMiB: 16, mkfsOpts: ['-I', String(inodeSize)], tree: { a: small, b: small, c: small, 'd/': null } });
}

const withFs = <T>(img: string, fn: (fs: CoreFilesystem) => Promise<T>) => withWritableAt(img, NOW, fn);

const ns = (t: { sec: number; nsec: number }) => BigInt(t.sec) * 1_000_000_000n + BigInt(t.nsec);

describe.skipIf(!HAVE_E2FSPROGS)('chmod, chown, utimes', () => {
  for (const inodeSize of [256, 128]) {
    const extra = inodeSize > 128;
    it(`${inodeSize}-byte inodes`, async () => {
      const img = makeImage(inodeSize);
      await withFs(img, async (fs) => {
        await chmod(fs, '/a', 0o6755);
        await chown(fs, '/a', 1000, 2000);
        await chmod(fs, '/b', 0o2644);
        await chown(fs, '/b', -1, 70_000);
        await chown(fs, '/d', 123_456, -1);
        await chmod(fs, '/d', 0o3775);
        await chown(fs, '/d', 5, 6);
        await utimes(fs, '/a', FUTURE, PAST);
        await utimes(fs, '/b', new Date(1_600_000_000_123), 1_600_000_001.5);
        await symlink(fs, 'a', '/ln');
        await chown(fs, '/ln', 77, 88, { noFollow: true });
        await utimes(fs, '/ln', PAST, FUTURE, { noFollow: true });
        expect(await codeOf(chmod(fs, '/ln', 0o600, { noFollow: true }))).toBe('EOPNOTSUPP');
        expect(await codeOf(chown(fs, '/nothing', 1, 1))).toBe('ENOENT');
        expect(await codeOf(utimes(fs, '/a', NaN, 0))).toBe('EINVAL');
        // chown drops file capabilities (ATTR_KILL_PRIV)
        await setXattr(fs, '/c', 'security.capability', pattern(20, 2));
        await setXattr(fs, '/c', 'user.keep', pattern(4, 2));
        await chown(fs, '/c', 1, 1);
        expect(await listXattrs(fs, '/c')).toEqual(['user.keep']);
      });
      expectE2fsckClean(img, `${inodeSize}: after the attribute changes`);
      const clamp = (t: { sec: number; nsec: number }) => (extra ? t : { sec: Math.min(Math.max(t.sec, -(2 ** 31)), 2 ** 31 - 1), nsec: 0 });
      const want = {
        a: { mode: 0o100755, uid: 1000, gid: 2000, atime: clamp(FUTURE), mtime: clamp(PAST) },
        b: { mode: 0o102644, uid: 0, gid: 70_000, atime: clamp({ sec: 1_600_000_000, nsec: 123_000_000 }), mtime: clamp({ sec: 1_600_000_001, nsec: 500_000_000 }) },
        d: { mode: 0o43775, uid: 5, gid: 6 },
        ln: { uid: 77, gid: 88, atime: clamp(PAST), mtime: clamp(FUTURE) },
      } as const;
      await withFs(img, async (fs) => {
        for (const [name, w] of Object.entries(want)) {
          const i = await fs.resolve(`/${name}`, { followLast: false });
          if ('mode' in w) expect(i.mode, name).toBe(w.mode);
          expect([i.uid, i.gid], name).toEqual([w.uid, w.gid]);
          if ('atime' in w) expect([i.atime, i.mtime], name).toEqual([w.atime, w.mtime]);
          expect(i.ctime, name).toEqual(clamp(NOW));
        }
      });
      if (!CAN_MOUNT) {
        oracleGate(LOOP_SKIP);
        return;
      }
      await withLoopMount(
        img,
        (mp) => {
          for (const [name, w] of Object.entries(want)) {
            const st = nodefs.lstatSync(path.join(mp, name), { bigint: true });
            if ('mode' in w) expect(Number(st.mode), name).toBe(w.mode);
            expect([Number(st.uid), Number(st.gid)], name).toEqual([w.uid, w.gid]);
            if ('atime' in w) expect([st.atimeNs, st.mtimeNs], name).toEqual([ns(w.atime), ns(w.mtime)]);
            expect(st.ctimeNs, name).toBe(ns(clamp(NOW)));
          }
        },
        { readOnly: true },
      );
    });
  }
});
