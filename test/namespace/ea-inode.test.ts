/**
 * xattr values in EA inodes (mkfs.ext4 -O ea_inode; lib/ext4/ea-inode.ts and
 * xattr-edit.ts): large values set, replaced and removed by ext4kit, values
 * the kernel wrote (a shared EA inode, refcount 2, from its mbcache) read,
 * replaced and released, a shared xattr block naming an EA inode copied on
 * write, an owner's deletion freeing its EA inodes, one value set on two inodes sharing an EA inode. Oracles: e2fsck -fn after every step (pass 1 check_large_ea_inode:
 * size, e_hash over the value hash, the EA_INODE flag; pass 4: the refcount
 * against the references found; pass 5: bitmaps) and the kernel's getxattr
 * through a loop mount.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import type { Filesystem as CoreFilesystem } from '../../lib/ext4/filesystem.js';
import { getXattr, getXattrTx, listXattrs, removeXattr, setXattr } from '../../lib/ops/attrs.js';
import { INODE_FLAGS } from '../../lib/ext4/inode.js';
import { unlink } from '../../lib/ops/namespace.js';
import { writeFile } from '../../lib/ops/write-file.js';
import { eaInodeRefs } from '../../lib/ext4/ea-inode.js';
import { parseInodeXattrs, parseXattrBlock } from '../../lib/ext4/xattr.js';
import { expectE2fsckClean, oracleGate, run, withLoopMount } from '../helpers/tools.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, cleanupImages, codeOf, pattern } from '../ops/helpers.js';
import { makeNsImage, withWritableAt } from './helpers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_760_000_000, nsec: 0 };
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const PY_GET = `
import os, sys, json
print(json.dumps({p: {n: os.getxattr(p, n).hex() for n in os.listxattr(p)} for p in sys.argv[1:]}))
`;
function kernelXattrs(paths: string[]): Record<string, Record<string, string>> {
  return JSON.parse(run('python3', ['-c', PY_GET, ...paths]).stdout) as Record<string, Record<string, string>>;
}
function kernelSetXattr(p: string, name: string, value: Uint8Array): void {
  run('python3', ['-c', 'import os,sys; os.setxattr(sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]))', p, name, hex(value)]);
}

/** Every entry of a path's inode (body, then block) with where it lives. */
async function entriesOf(fs: CoreFilesystem, p: string) {
  const inode = await fs.resolve(p);
  const body = parseInodeXattrs(inode.raw, inode.extraIsize, inode.ino);
  const block = inode.fileAcl ? parseXattrBlock(await fs.readBlock(inode.fileAcl), inode.fileAcl, { fsSeed: fs.fsSeed, verify: true }) : [];
  return { inode, all: [...body, ...block], body, block };
}

async function eaInodeOf(fs: CoreFilesystem, p: string, name: string) {
  const e = (await entriesOf(fs, p)).all.find((x) => x.name === name);
  expect(e?.valueInode, `${p} ${name} in an EA inode`).toBeGreaterThan(0);
  const ea = await fs.readInode(e!.valueInode);
  expect(ea.flags & INODE_FLAGS.EA_INODE).toBeTruthy();
  return { ino: e!.valueInode, refs: eaInodeRefs(ea), inode: ea };
}

async function inodeInUse(fs: CoreFilesystem, ino: number): Promise<boolean> {
  const ea = await fs.readInode(ino);
  return ea.linksCount > 0 && ea.dtime === 0;
}

describe.skipIf(!HAVE_E2FSPROGS)('xattr values in EA inodes (ea_inode)', () => {
  it('set, replace, remove large values; the kernel reads them; e2fsck after each step', async () => {
    const img = makeNsImage({ name: 'ea-inode-ops', kind: 'ext4', blockSize: 1024, sizeMiB: 16, mkfsOpts: ['-O', 'ea_inode'], tree: { a: pattern(100, 1), 'd/': null } });
    const op = async (what: string, fn: (fs: CoreFilesystem) => Promise<unknown>) => {
      await withWritableAt(img, NOW, fn);
      expectE2fsckClean(img, what);
    };
    const big = pattern(20_000, 7), big2 = pattern(65_536, 8), mid = pattern(900, 9);
    const model: Record<string, Record<string, string>> = { '/a': {}, '/d': {} };
    let bigIno = 0;
    await op('a 20,000-byte value goes to an EA inode', async (fs) => {
      await setXattr(fs, '/a', 'user.big', big);
      const ea = await eaInodeOf(fs, '/a', 'user.big');
      expect(ea.refs).toBe(1);
      expect(ea.inode.size).toBe(big.length);
      expect(ea.inode.linksCount).toBe(1);
      bigIno = ea.ino;
      expect(hex(await getXattr(fs, '/a', 'user.big'))).toBe(hex(big));
      const ino = (await fs.resolve('/a')).ino;
      expect(hex(await fs.transact((tx) => getXattrTx(tx, ino, 'user.big')))).toBe(hex(big));
    });
    model['/a']!['user.big'] = hex(big);
    await op('900 bytes: fits the block but not with EXT4_XATTR_BLOCK_RESERVE left: an EA inode too; small ones inline', async (fs) => {
      await setXattr(fs, '/a', 'user.mid', mid);
      await setXattr(fs, '/a', 'user.s', pattern(10, 2));
      await setXattr(fs, '/d', 'trusted.t', pattern(300, 3));
      await eaInodeOf(fs, '/a', 'user.mid');
      const { all } = await entriesOf(fs, '/a');
      expect(all.find((e) => e.name === 'user.s')!.valueInode).toBe(0);
      expect((await entriesOf(fs, '/d')).all[0]!.valueInode).toBe(0);
    });
    Object.assign(model['/a']!, { 'user.mid': hex(mid), 'user.s': hex(pattern(10, 2)) });
    model['/d']!['trusted.t'] = hex(pattern(300, 3));
    await op('replace the big value with a 64 KiB one: the old EA inode is freed', async (fs) => {
      await setXattr(fs, '/a', 'user.big', big2, { flag: 'replace' });
      const ea = await eaInodeOf(fs, '/a', 'user.big');
      expect(ea.ino).not.toBe(bigIno);
      expect(await inodeInUse(fs, bigIno)).toBe(false);
      expect(hex(await getXattr(fs, '/a', 'user.big'))).toBe(hex(big2));
      expect(await codeOf(setXattr(fs, '/a', 'user.huge', new Uint8Array(65_537)))).toBe('E2BIG');
    });
    model['/a']!['user.big'] = hex(big2);
    const same = pattern(30_000, 12);
    let sameIno = 0;
    await op('the same value set on two inodes shares one EA inode (refcount 2), as the kernel mbcache does', async (fs) => {
      await setXattr(fs, '/a', 'user.same', same);
      await setXattr(fs, '/d', 'user.same', same);
      const a = await eaInodeOf(fs, '/a', 'user.same'), d = await eaInodeOf(fs, '/d', 'user.same');
      expect(d.ino).toBe(a.ino);
      expect(d.refs).toBe(2);
      sameIno = a.ino;
      // The same bytes again: the entry keeps its EA inode, the count stays.
      await setXattr(fs, '/d', 'user.same', same);
      expect(await eaInodeOf(fs, '/d', 'user.same')).toMatchObject({ ino: sameIno, refs: 2 });
    });
    model['/a']!['user.same'] = hex(same);
    model['/d']!['user.same'] = hex(same);
    if (!CAN_MOUNT) return oracleGate(LOOP_SKIP);
    await withLoopMount(img, (mp) => {
      const got = kernelXattrs(Object.keys(model).map((p) => path.join(mp, p)));
      for (const [p, want] of Object.entries(model)) expect(got[path.join(mp, p)], `kernel ${p}`).toEqual(want);
    });
    await op('remove the EA-inode values: their inodes are freed', async (fs) => {
      const big = await eaInodeOf(fs, '/a', 'user.big'), m = await eaInodeOf(fs, '/a', 'user.mid');
      await removeXattr(fs, '/a', 'user.big');
      await removeXattr(fs, '/a', 'user.mid');
      expect(await inodeInUse(fs, big.ino)).toBe(false);
      expect(await inodeInUse(fs, m.ino)).toBe(false);
      await removeXattr(fs, '/a', 'user.same');
      expect(await eaInodeOf(fs, '/d', 'user.same')).toMatchObject({ ino: sameIno, refs: 1 });
      await removeXattr(fs, '/d', 'user.same');
      expect(await inodeInUse(fs, sameIno)).toBe(false);
      expect(await listXattrs(fs, '/a')).toEqual(['user.s']);
    });
    delete model['/a']!['user.big'];
    delete model['/a']!['user.mid'];
    delete model['/a']!['user.same'];
    delete model['/d']!['user.same'];
    await op('deleting an owner frees its EA inodes (ext4_xattr_delete_inode)', async (fs) => {
      await writeFile(fs, '/gone', pattern(3000, 4));
      await setXattr(fs, '/gone', 'user.one', pattern(10_000, 5));
      await setXattr(fs, '/gone', 'user.two', pattern(2_000, 6));
      const one = await eaInodeOf(fs, '/gone', 'user.one'), two = await eaInodeOf(fs, '/gone', 'user.two');
      await unlink(fs, '/gone');
      expect(await inodeInUse(fs, one.ino)).toBe(false);
      expect(await inodeInUse(fs, two.ino)).toBe(false);
    });
    await withLoopMount(img, (mp) => {
      const got = kernelXattrs(Object.keys(model).map((p) => path.join(mp, p)));
      for (const [p, want] of Object.entries(model)) expect(got[path.join(mp, p)], `kernel ${p}`).toEqual(want);
    });
  });

  it('values the kernel wrote: a shared EA inode (refcount 2) read, replaced and released; a shared block naming one copied on write', async (ctx) => {
    if (!CAN_MOUNT) {
      oracleGate(LOOP_SKIP);
      ctx.skip();
    }
    // 256-byte inodes: 92 bytes of in-inode space. (Not 128: with every entry in a block, the
    // kernel can share the block through its mbcache and keep the EA inode's extra reference,
    // a count e2fsck then disputes.)
    const img = makeNsImage({ name: 'ea-inode-kernel', kind: 'ext4', blockSize: 4096, sizeMiB: 16, mkfsOpts: ['-O', 'ea_inode', '-I', '256'], tree: { 'd/': null } });
    const fill = pattern(60, 11);
    const v = pattern(30_000, 4);
    await withLoopMount(img, (mp) => {
      for (const f of ['k1', 'k2', 'k3']) nodefs.writeFileSync(path.join(mp, f), f);
      // The kernel finds the first value in its EA-inode cache for the second file: one EA inode, 2 refs.
      kernelSetXattr(path.join(mp, 'k1'), 'user.v', v);
      kernelSetXattr(path.join(mp, 'k2'), 'user.v', v);
      // k3: the body filled first, so the EA entry of user.w goes to the block.
      kernelSetXattr(path.join(mp, 'k3'), 'user.fill', fill);
      kernelSetXattr(path.join(mp, 'k3'), 'user.w', pattern(5000, 6));
    });
    expectE2fsckClean(img, 'the kernel wrote the values');
    await withWritableAt(img, NOW, async (fs) => {
      for (const f of ['/k1', '/k2']) expect(hex(await getXattr(fs, f, 'user.v'))).toBe(hex(v));
      const a = await eaInodeOf(fs, '/k1', 'user.v'), b = await eaInodeOf(fs, '/k2', 'user.v');
      // Sharing depends on the kernel's cache; the refcount must match either way.
      expect(a.refs).toBe(a.ino === b.ino ? 2 : 1);
      await removeXattr(fs, '/k1', 'user.v');
      expect((await eaInodeOf(fs, '/k2', 'user.v')).refs).toBe(1);
      expect(await inodeInUse(fs, b.ino)).toBe(true);
    });
    expectE2fsckClean(img, 'one reference of the shared EA inode dropped');
    await withWritableAt(img, NOW, async (fs) => {
      const b = await eaInodeOf(fs, '/k2', 'user.v');
      await setXattr(fs, '/k2', 'user.v', pattern(30_000, 5));
      expect(await inodeInUse(fs, b.ino)).toBe(false);
      // The kernel's block of k3 (naming an EA inode) takes a new small value.
      expect((await entriesOf(fs, '/k3')).block.map((e) => e.name)).toEqual(['user.w']);
      await setXattr(fs, '/k3', 'user.small', pattern(8, 1));
      expect(hex(await getXattr(fs, '/k3', 'user.w'))).toBe(hex(pattern(5000, 6)));
    });
    expectE2fsckClean(img, 'the kernel-written values replaced');
    // A block shared by two inodes (h_refcount 2) naming an EA inode: the share made as the kernel's
    // mbcache makes it, then a write to one copies the block and counts the EA inode once more.
    await withWritableAt(img, NOW, async (fs) => {
      const k3 = await fs.resolve('/k3');
      await fs.transact(async (tx) => {
        const blk = await tx.block(k3.fileAcl);
        const { XattrBlockHeaderLayout, xattrBlockChecksum } = await import('../../lib/ext4/xattr.js');
        const h = XattrBlockHeaderLayout.decode(blk);
        h.h_refcount = 2;
        XattrBlockHeaderLayout.encode(h, blk);
        h.h_checksum = xattrBlockChecksum(blk, k3.fileAcl, fs.fsSeed);
        XattrBlockHeaderLayout.encode(h, blk);
        const k1 = await tx.readInode((await fs.resolve('/k1')).ino);
        expect(k1.fileAcl).toBe(0);
        k1.base.i_file_acl_lo = k3.fileAcl;
        k1.fileAcl = k3.fileAcl;
        // Both hold one data block; k1 now counts what k3 counts for the block and its EA inode.
        k1.base.i_blocks_lo = k3.base.i_blocks_lo;
        await tx.writeInode(k1);
      });
    });
    expectE2fsckClean(img, 'the shared block fixture');
    await withWritableAt(img, NOW, async (fs) => {
      const w = await eaInodeOf(fs, '/k3', 'user.w');
      expect(w.refs).toBe(1);
      // 200 bytes do not fit k1's body: into the shared block, which is copied.
      await setXattr(fs, '/k1', 'user.more', pattern(200, 3));
      expect((await fs.resolve('/k1')).fileAcl).not.toBe((await fs.resolve('/k3')).fileAcl);
      expect((await eaInodeOf(fs, '/k1', 'user.w')).refs).toBe(2);
      // Removing the copied entry from the copy drops its reference; the original keeps one.
      await removeXattr(fs, '/k1', 'user.w');
      expect((await eaInodeOf(fs, '/k3', 'user.w')).refs).toBe(1);
    });
    expectE2fsckClean(img, 'the shared block copied on write');
    await withLoopMount(img, (mp) => {
      const got = kernelXattrs(['k1', 'k2', 'k3'].map((f) => path.join(mp, f)));
      expect(got[path.join(mp, 'k1')]).toEqual({ 'user.small': hex(pattern(8, 1)), 'user.more': hex(pattern(200, 3)) });
      expect(got[path.join(mp, 'k2')]).toEqual({ 'user.v': hex(pattern(30_000, 5)) });
      expect(got[path.join(mp, 'k3')]).toEqual({ 'user.fill': hex(fill), 'user.w': hex(pattern(5000, 6)), 'user.small': hex(pattern(8, 1)) });
    });
  });
});
