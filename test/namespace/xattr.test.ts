/**
 * Extended attributes (lib/ops/attrs.ts over lib/ext4/xattr-edit.ts): set,
 * replace and remove in the inode body and in an xattr block, on ext4 4k
 * (metadata_csum: block checksums), ext4 1k ^metadata_csum, 128-byte inodes
 * (no in-inode space: everything in the block) and ext3 (block-mapped).
 * Oracles: e2fsck -fn clean after every operation (pass 1 checks entry
 * hashes, value regions, i_blocks with the block; pass 5 the counts); the
 * kernel's getxattr/listxattr through a loop mount (python3's os.*xattr),
 * the kernel writing an attribute we then read, and a block shared by two
 * inodes (h_refcount 2, as the kernel's mbcache shares them) copied on write.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import type { Filesystem as CoreFilesystem } from '../../lib/ext4/filesystem.js';
import { chmod, getXattr, listXattrs, removeXattr, setXattr } from '../../lib/ops/attrs.js';
import { symlink } from '../../lib/ops/namespace.js';
import { XattrBlockHeaderLayout, parseInodeXattrs, xattrBlockChecksum } from '../../lib/ext4/xattr.js';
import { expectE2fsckClean, oracleGate, run, withLoopMount, type FsKind } from '../helpers/tools.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, cleanupImages, codeOf, pattern } from '../ops/helpers.js';
import { makeNsImage, withWritableAt } from './helpers.js';

afterAll(() => cleanupImages());

interface Config {
  label: string;
  kind: FsKind;
  bs: number;
  opts: string[];
  /** In-inode xattr space (inode size > 128). */
  ibody: boolean;
}

const CONFIGS: Config[] = [
  { label: 'ext4 4k (metadata_csum)', kind: 'ext4', bs: 4096, opts: [], ibody: true },
  { label: 'ext4 1k ^metadata_csum', kind: 'ext4', bs: 1024, opts: ['-O', '^metadata_csum'], ibody: true },
  { label: 'ext4 4k, 128-byte inodes', kind: 'ext4', bs: 4096, opts: ['-I', '128'], ibody: false },
  { label: 'ext3 1k (block-mapped)', kind: 'ext3', bs: 1024, opts: ['-I', '256'], ibody: true },
];

const NOW = { sec: 1_750_000_000, nsec: 5 };
const enc = new TextEncoder();

function makeImage(c: Config, name: string): string {
  return makeNsImage({ name: `xattr-${name}-${c.kind}-${c.bs}-${c.opts.join('')}`, kind: c.kind, blockSize: c.bs, sizeMiB: 16, mkfsOpts: c.opts, tree: { hello: pattern(3000, 7), 'd/': null } });
}

const withFs = <T>(img: string, fn: (fs: CoreFilesystem) => Promise<T>) => withWritableAt(img, NOW, fn);

const PY = `
import os, sys, json
out = {}
for p in sys.argv[1:]:
    out[p] = {n: os.getxattr(p, n, follow_symlinks=False).hex() for n in os.listxattr(p, follow_symlinks=False)}
print(json.dumps(out))
`;

/** name → hex value of each path, as the kernel's listxattr/getxattr return them. */
function kernelXattrs(paths: string[]): Record<string, Record<string, string>> {
  return JSON.parse(run('python3', ['-c', PY, ...paths]).stdout) as Record<string, Record<string, string>>;
}

function kernelSetXattr(p: string, name: string, value: Uint8Array): void {
  run('python3', ['-c', 'import os,sys; os.setxattr(sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]))', p, name, Buffer.from(value).toString('hex')]);
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Our view of a path's attributes, as name → hex. */
async function ourXattrs(fs: CoreFilesystem, p: string, noFollow = false): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of await listXattrs(fs, p, { noFollow })) out[n] = hex(await getXattr(fs, p, n, { noFollow }));
  return out;
}

describe.skipIf(!HAVE_E2FSPROGS)('xattrs: set, replace, remove; e2fsck after each; the kernel reads them', () => {
  for (const c of CONFIGS) {
    it(c.label, async () => {
      const img = makeImage(c, 'ops');
      const op = async (what: string, fn: (fs: CoreFilesystem) => Promise<unknown>) => {
        await withFs(img, fn);
        expectE2fsckClean(img, `${c.label}: ${what}`);
      };
      const big = pattern(Math.min(600, c.bs / 2), 11);
      const selinux = enc.encode('system_u:object_r:etc_t:s0\0');
      const model: Record<string, Record<string, string>> = { '/hello': {}, '/d': {}, '/ln': {} };
      await op('user.small (fits the inode body when there is one)', async (fs) => {
        await setXattr(fs, '/hello', 'user.small', enc.encode('abc'));
        const inode = await fs.resolve('/hello');
        expect(parseInodeXattrs(inode.raw, inode.extraIsize, inode.ino).map((e) => e.name)).toEqual(c.ibody ? ['user.small'] : []);
        expect(inode.fileAcl !== 0).toBe(!c.ibody);
        expect(inode.ctime).toEqual(c.ibody ? NOW : { sec: NOW.sec, nsec: 0 });
      });
      model['/hello']!['user.small'] = hex(enc.encode('abc'));
      await op('user.big (into the block)', async (fs) => {
        const before = await fs.resolve('/hello');
        await setXattr(fs, '/hello', 'user.big', big);
        const inode = await fs.resolve('/hello');
        expect(inode.fileAcl).not.toBe(0);
        // i_blocks counts the xattr block once.
        if (!before.fileAcl) expect(inode.blocks512 - before.blocks512).toBe(c.bs / 512);
      });
      model['/hello']!['user.big'] = hex(big);
      await op('trusted.*, security.*, an empty value, a directory, a symlink', async (fs) => {
        await setXattr(fs, '/hello', 'trusted.t', enc.encode('T'));
        await setXattr(fs, '/hello', 'security.selinux', selinux);
        await setXattr(fs, '/hello', 'user.empty', new Uint8Array(0));
        await setXattr(fs, '/d', 'user.x', pattern(40, 3));
        await symlink(fs, 'hello', '/ln');
        await setXattr(fs, '/ln', 'trusted.l', enc.encode('link'), { noFollow: true });
        expect(await codeOf(setXattr(fs, '/ln', 'user.l', enc.encode('x'), { noFollow: true }))).toBe('EPERM');
      });
      Object.assign(model['/hello']!, { 'trusted.t': hex(enc.encode('T')), 'security.selinux': hex(selinux), 'user.empty': '' });
      model['/d']!['user.x'] = hex(pattern(40, 3));
      model['/ln']!['trusted.l'] = hex(enc.encode('link'));
      await op('replace user.small; refusals change nothing', async (fs) => {
        await setXattr(fs, '/hello', 'user.small', enc.encode('xyz123'), { flag: 'replace' });
        expect(await codeOf(setXattr(fs, '/hello', 'user.small', enc.encode('q'), { flag: 'create' }))).toBe('EEXIST');
        expect(await codeOf(setXattr(fs, '/hello', 'user.none', enc.encode('q'), { flag: 'replace' }))).toBe('ENODATA');
        expect(await codeOf(removeXattr(fs, '/hello', 'user.none'))).toBe('ENODATA');
        expect(await codeOf(getXattr(fs, '/hello', 'user.none'))).toBe('ENODATA');
        expect(await codeOf(setXattr(fs, '/hello', 'foo.bar', enc.encode('q')))).toBe('EOPNOTSUPP');
        expect(await codeOf(setXattr(fs, '/hello', 'user.', enc.encode('q')))).toBe('EINVAL');
        expect(await codeOf(setXattr(fs, '/hello', `user.${'n'.repeat(251)}`, enc.encode('q')))).toBe('ERANGE');
        expect(await codeOf(setXattr(fs, '/hello', 'user.huge', new Uint8Array(70_000)))).toBe('E2BIG');
        expect(await codeOf(setXattr(fs, '/hello', 'user.toobig', new Uint8Array(c.bs)))).toBe('ENOSPC');
      });
      model['/hello']!['user.small'] = hex(enc.encode('xyz123'));
      await withFs(img, async (fs) => {
        for (const [p, want] of Object.entries(model)) expect(await ourXattrs(fs, p, true), p).toEqual(want);
      });
      if (!CAN_MOUNT) {
        oracleGate(LOOP_SKIP);
        return;
      }
      await withLoopMount(img, (mp) => {
        const got = kernelXattrs(Object.keys(model).map((p) => path.join(mp, p)));
        for (const [p, want] of Object.entries(model)) expect(got[path.join(mp, p)], `kernel ${p}`).toEqual(want);
        kernelSetXattr(path.join(mp, 'hello'), 'user.kernel', enc.encode('from linux'));
      });
      expectE2fsckClean(img, `${c.label}: after the kernel's setxattr`);
      model['/hello']!['user.kernel'] = hex(enc.encode('from linux'));
      await op('remove everything from /hello: the block is freed', async (fs) => {
        expect(await ourXattrs(fs, '/hello')).toEqual(model['/hello']);
        const withBlock = await fs.resolve('/hello');
        for (const n of Object.keys(model['/hello']!)) await removeXattr(fs, '/hello', n);
        const inode = await fs.resolve('/hello');
        expect(inode.fileAcl).toBe(0);
        expect(withBlock.blocks512 - inode.blocks512).toBe(c.bs / 512);
        expect(await listXattrs(fs, '/hello')).toEqual([]);
      });
      model['/hello'] = {};
      await withLoopMount(img, (mp) => {
        const got = kernelXattrs(Object.keys(model).map((p) => path.join(mp, p)));
        for (const [p, want] of Object.entries(model)) expect(got[path.join(mp, p)], `kernel ${p}`).toEqual(want);
      });
    });
  }
});

describe.skipIf(!HAVE_E2FSPROGS)('a shared xattr block (h_refcount 2)', () => {
  it('is copied on write and released reference by reference', async (ctx) => {
    if (!CAN_MOUNT) {
      oracleGate(LOOP_SKIP);
      ctx.skip();
    }
    const c = CONFIGS[0]!;
    const img = makeImage(c, 'shared');
    const shared = pattern(300, 5);
    await withLoopMount(img, (mp) => {
      for (const f of ['s1', 's2']) nodefs.writeFileSync(path.join(mp, f), f);
      kernelSetXattr(path.join(mp, 's1'), 'user.shared', shared);
    });
    const blockOf = async (fs: CoreFilesystem, p: string) => (await fs.resolve(p)).fileAcl;
    const refcount = async (fs: CoreFilesystem, b: number) => XattrBlockHeaderLayout.decode(await fs.readBlock(b)).h_refcount;
    // The kernel shares identical blocks through its mbcache, but only while the cache keeps the
    // entry (memory pressure drops it): the share is made here as the kernel makes it — s2 points
    // at s1's block, refcount 2, i_blocks counting it — and e2fsck and the kernel judge it.
    const sharedBlock = await withFs(img, async (fs) => {
      const b = await blockOf(fs, '/s1');
      expect(b).not.toBe(0);
      await fs.transact(async (tx) => {
        const blk = await tx.block(b);
        const h = XattrBlockHeaderLayout.decode(blk);
        h.h_refcount = 2;
        XattrBlockHeaderLayout.encode(h, blk);
        h.h_checksum = xattrBlockChecksum(blk, b, fs.fsSeed);
        XattrBlockHeaderLayout.encode(h, blk);
        const s2 = await tx.readInode((await fs.resolve('/s2')).ino);
        s2.base.i_file_acl_lo = b;
        s2.fileAcl = b;
        s2.base.i_blocks_lo += fs.blockSize / 512;
        await tx.writeInode(s2);
      });
      return b;
    });
    expectE2fsckClean(img, 'the shared block fixture');
    await withLoopMount(img, (mp) => {
      expect(kernelXattrs([path.join(mp, 's2')])[path.join(mp, 's2')]).toEqual({ 'user.shared': hex(shared) });
    }, { readOnly: true });
    await withFs(img, async (fs) => expect(await refcount(fs, sharedBlock)).toBe(2));
    await withFs(img, async (fs) => {
      await setXattr(fs, '/s1', 'user.more', pattern(200, 9));
      const b1 = await blockOf(fs, '/s1');
      expect(b1).not.toBe(sharedBlock);
      expect(await refcount(fs, b1)).toBe(1);
      expect(await blockOf(fs, '/s2')).toBe(sharedBlock);
      expect(await refcount(fs, sharedBlock)).toBe(1);
    });
    expectE2fsckClean(img, 'shared block copied on write');
    const free0 = await withFs(img, async (fs) => fs.sb.freeBlocksCount);
    await withFs(img, async (fs) => {
      await removeXattr(fs, '/s2', 'user.shared');
      expect(await blockOf(fs, '/s2')).toBe(0);
    });
    expectE2fsckClean(img, 'last reference removed');
    expect(await withFs(img, async (fs) => fs.sb.freeBlocksCount)).toBe(free0 + 1);
    await withLoopMount(img, (mp) => {
      const got = kernelXattrs([path.join(mp, 's1'), path.join(mp, 's2')]);
      expect(got[path.join(mp, 's1')]).toEqual({ 'user.shared': hex(shared), 'user.more': hex(pattern(200, 9)) });
      expect(got[path.join(mp, 's2')]).toEqual({});
    });
  });
});

/** An ACL in the xattr form (version 2; every entry tag, perm, id). */
function aclValue(entries: [number, number, number?][]): Uint8Array {
  const v = Buffer.alloc(4 + 8 * entries.length);
  v.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    v.writeUInt16LE(tag, 4 + 8 * i);
    v.writeUInt16LE(perm, 6 + 8 * i);
    v.writeUInt32LE(id ?? 0xffffffff, 8 + 8 * i);
  });
  return new Uint8Array(v);
}

describe.skipIf(!HAVE_E2FSPROGS)('POSIX ACLs (system.posix_acl_*)', () => {
  it('stored in ext4 form, read back by the kernel in xattr form; mode and chmod kept in step', async (ctx) => {
    const c = CONFIGS[0]!;
    const img = makeImage(c, 'acl');
    // user::rw- user:1000:rwx group::r-- mask::rw- other::r--
    const acl = aclValue([[0x01, 6], [0x02, 7, 1000], [0x04, 4], [0x10, 6], [0x20, 4]]);
    const dflt = aclValue([[0x01, 7], [0x04, 5], [0x08, 5, 100], [0x10, 5], [0x20, 0]]);
    await withFs(img, async (fs) => {
      await setXattr(fs, '/hello', 'system.posix_acl_access', acl);
      expect((await fs.resolve('/hello')).mode & 0o777).toBe(0o664);
      expect(hex(await getXattr(fs, '/hello', 'system.posix_acl_access'))).toBe(hex(acl));
      await setXattr(fs, '/d', 'system.posix_acl_default', dflt);
      expect(await codeOf(setXattr(fs, '/hello', 'system.posix_acl_default', dflt))).toBe('EACCES');
      expect(await codeOf(setXattr(fs, '/hello', 'system.posix_acl_access', new Uint8Array([2, 0, 0, 0, 1])))).toBe('EINVAL');
    });
    expectE2fsckClean(img, 'ACLs set');
    await withFs(img, async (fs) => {
      // ext4's own form on disk: version 1, 4-byte entries for owner/group/mask/other.
      const raw = (await fs.xattrs(await fs.resolve('/hello'))).find((e) => e.name === 'system.posix_acl_access')!.value!;
      expect(raw.length).toBe(4 + 4 * 4 + 8);
      expect(raw[0]).toBe(1);
      await chmod(fs, '/hello', 0o640);
      // user::rw- user:1000:rwx group::r-- mask::r-- other::---
      expect(hex(await getXattr(fs, '/hello', 'system.posix_acl_access'))).toBe(hex(aclValue([[0x01, 6], [0x02, 7, 1000], [0x04, 4], [0x10, 4], [0x20, 0]])));
      // An ACL the mode bits say all of is not stored (posix_acl_update_mode).
      await setXattr(fs, '/d', 'system.posix_acl_access', aclValue([[0x01, 7], [0x04, 5], [0x20, 1]]));
      expect((await fs.resolve('/d')).mode & 0o777).toBe(0o751);
      expect(await listXattrs(fs, '/d')).toEqual(['system.posix_acl_default']);
    });
    expectE2fsckClean(img, 'chmod with an ACL');
    if (!CAN_MOUNT) {
      oracleGate(LOOP_SKIP);
      ctx.skip();
    }
    await withLoopMount(img, (mp) => {
      const got = kernelXattrs([path.join(mp, 'hello'), path.join(mp, 'd')]);
      expect(got[path.join(mp, 'hello')]).toEqual({ 'system.posix_acl_access': hex(aclValue([[0x01, 6], [0x02, 7, 1000], [0x04, 4], [0x10, 4], [0x20, 0]])) });
      expect(got[path.join(mp, 'd')]).toEqual({ 'system.posix_acl_default': hex(dflt) });
      expect(nodefs.statSync(path.join(mp, 'hello')).mode & 0o777).toBe(0o640);
      nodefs.writeFileSync(path.join(mp, 'k'), 'k');
      kernelSetXattr(path.join(mp, 'k'), 'system.posix_acl_access', acl);
    });
    await withFs(img, async (fs) => {
      expect(hex(await getXattr(fs, '/k', 'system.posix_acl_access'))).toBe(hex(acl));
    });
  });
});
