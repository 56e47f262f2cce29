/**
 * The read path against every image recipe of the MATRIX (test/helpers/images.ts): each image was
 * made by `mkfs -d` from a source tree, and every entry ext4kit reports is compared with the
 * SOURCE-TREE SNAPSHOT (never with ext4kit's own output): type, mode, uid, gid, size, mtime,
 * nlink, hard links, symlink targets, device numbers, xattrs and the sha256 of every file's bytes;
 * directories list exactly the source names; every path resolves; `info` matches `dumpe2fs -h`.
 *
 * `mkfs -d` keeps neither nanoseconds nor timestamps past 2038 (see MKFS_D_FIDELITY), so each
 * mountable recipe also gets a kernel-populated copy: the odd-time, name, symlink, xattr,
 * device, owner, mode and hard-link subtrees are `cp -a`'d into it through a loop mount, plus a
 * directory the kernel turns into an htree. Those entries are compared with the source snapshot
 * with exact seconds and nanoseconds (clamped to 32 bits for 128-byte inodes, as the kernel
 * stores them) and with a snapshot taken through the mount.
 *
 * Known deviation handled here: with inline_data, mkfs.ext4 1.47.0 -d drops a file's trailing
 * hole (i_size ends at the last data block). For those files the expected size is what debugfs
 * reports, the expected bytes are the source's first `size` bytes, and the dropped tail must be
 * all zeros in the source — anything else fails.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as crypto from 'node:crypto';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { MATRIX, getImage, type BuiltImage } from '../helpers/images.js';
import { expectedImageMtime, snapshotTree } from '../helpers/tree.js';
import { debugfsStats, featuresOf, run, skipReason, withLoopMount } from '../helpers/tools.js';
import { Filesystem } from '../../lib/node.js';
import { INODE_FLAGS } from '../../lib/ext4/inode.js';
import { info } from '../../lib/ops/inspect.js';
import { Ext4Error } from '../../lib/errors.js';
import { compareDirectoryNames, compareWithTruth, outcomeOf, resolveAll, walkImage, type ImageEntry } from './helpers.js';

const KERNEL_SUBTREES = ['times', 'names', 'symlinks', 'xattr', 'special', 'owners', 'modes', 'links'];
const HTREE_FILES = 600;

const loopWhy = skipReason('loop');
if (loopWhy) console.log(`test/read/matrix.test.ts: kernel-populated copies skipped: ${loopWhy}`);

/** Files whose image copy legitimately differs from the source (inline_data trailing holes). */
function inlineOverrides(b: BuiltImage): Map<string, { size: number; sha256: string }> {
  const out = new Map<string, { size: number; sha256: string }>();
  const files = b.entries.filter((e) => e.type === 'file' && !e.path.startsWith('bigdir/'));
  const stats = debugfsStats(b.image, files.map((e) => `/${e.path}`));
  const inline = featuresOf(b.header).has('inline_data');
  for (const e of files) {
    const st = stats.get(`/${e.path}`);
    if (!st) throw new Error(`debugfs cannot stat /${e.path}`);
    if (st.size === e.size) continue;
    const src = nodefs.readFileSync(path.join(b.srcDir, e.path));
    const tailZero = st.size < e.size && src.subarray(st.size).every((x) => x === 0);
    if (!inline || !tailZero) throw new Error(`${b.recipe.name}: debugfs says /${e.path} has ${st.size} bytes, the source ${e.size} (not the known inline_data deviation)`);
    out.set(e.path, { size: st.size, sha256: crypto.createHash('sha256').update(src.subarray(0, st.size)).digest('hex') });
  }
  return out;
}

function dumpe2fsValue(h: Record<string, string>, k: string): string {
  const v = h[k];
  if (v === undefined) throw new Error(`dumpe2fs -h printed no "${k}"`);
  return v;
}

/** 128-byte inodes store signed 32-bit seconds: the kernel clamps (no extra epoch bits, no ns). */
function clamp32(s: number): number {
  return Math.min(2 ** 31 - 1, Math.max(-(2 ** 31), s));
}

for (const rc of MATRIX) {
  describe(`${rc.name}: ${rc.description}`, () => {
    let b: BuiltImage;
    let fs: Filesystem;
    let image: Map<string, ImageEntry>;

    beforeAll(async () => {
      b = getImage(rc.name);
      fs = await Filesystem.open(b.image);
      image = await walkImage(fs);
    });
    afterAll(async () => {
      await fs?.close();
      // vitest keeps every closure alive until the file ends: drop the caches now
      (fs as unknown) = undefined;
      (image as unknown) = undefined;
    });

    it('info matches dumpe2fs -h', () => {
      const h = b.header;
      const i = info(fs);
      const num = (k: string) => Number(dumpe2fsValue(h, k));
      expect(i).toEqual({
        blockSize: num('Block size'),
        blocksCount: num('Block count'),
        freeBlocks: num('Free blocks'),
        reservedBlocks: num('Reserved block count'),
        firstBlock: num('First block'),
        blocksPerGroup: num('Blocks per group'),
        inodesPerGroup: num('Inodes per group'),
        groups: Math.ceil((num('Block count') - num('First block')) / num('Blocks per group')),
        inodeSize: num('Inode size'),
        inodesCount: num('Inode count'),
        freeInodes: num('Free inodes'),
        features: dumpe2fsValue(h, 'Filesystem features').split(/\s+/),
        uuid: dumpe2fsValue(h, 'Filesystem UUID'),
        label: dumpe2fsValue(h, 'Filesystem volume name') === '<none>' ? '' : dumpe2fsValue(h, 'Filesystem volume name'),
        state: dumpe2fsValue(h, 'Filesystem state'),
      });
    });

    it('every entry matches the source snapshot: attributes, links, targets, devices, xattrs, bytes', async () => {
      const paths = [...image.keys()].sort();
      const want = [...b.entries.map((e) => e.path), 'lost+found'].sort();
      expect(paths).toEqual(want);
      const overrides = inlineOverrides(b);
      if (overrides.size) console.log(`${rc.name}: mkfs -d dropped the trailing hole of ${[...overrides.keys()].join(', ')} (inline_data deviation; checked against debugfs and the source prefix)`);
      const r = await compareWithTruth(fs, image, b.entries, {
        mtime: expectedImageMtime,
        mtimeNs: () => 0, // mkfs -d writes no nanoseconds
        contentOverride: (e) => overrides.get(e.path) ?? null,
      });
      expect(r.problems).toEqual([]);
      expect(r.filesHashed).toBe(b.entries.filter((e) => e.type === 'file').length);
      // the matrix really covers what it claims
      const types = new Set(b.entries.map((e) => e.type));
      for (const t of ['file', 'dir', 'symlink', 'fifo', 'socket', 'chardev', 'blockdev']) expect(types, t).toContain(t);
      const targets = b.entries.filter((e) => e.type === 'symlink').map((e) => Buffer.byteLength(e.target!));
      for (const n of [59, 60, 61]) expect(targets).toContain(n);
      // both sides of the fast-symlink limit really are exercised: < 60 bytes in i_block, else a block (or inline data)
      const kinds: Record<number, string> = {};
      for (const n of [59, 60, 61]) kinds[n] = (await fs.fileMap(await image.get(`symlinks/len-${n}`)!.inode())).kind;
      expect(kinds[59]).toBe('none');
      for (const n of [60, 61]) expect(['extents', 'blockmap', 'inline']).toContain(kinds[n]);
      expect(b.entries.some((e) => Buffer.byteLength(e.name) === 255 && /[^\x00-\x7f]/.test(e.name))).toBe(true);
      expect(b.entries.some((e) => e.mtime < 0)).toBe(true);
      const big = b.entries.find((e) => e.path === 'xattr/large')!;
      expect((await image.get('xattr/large')!.inode()).fileAcl, 'large xattr lives in an external block').toBeGreaterThan(0);
      expect(Object.keys(big.xattrs)).toContain('user.large');
      if (fs.sb.s_inode_size > 128) expect((await image.get('xattr/small')!.inode()).fileAcl, 'small xattr lives in the inode').toBe(0);
      if (rc.tree.tripleIndirect) {
        const m = await fs.fileMap(await image.get('sparse/triple-indirect')!.inode());
        expect(m.kind).toBe('blockmap');
        const apb = fs.blockSize / 4;
        expect(m.extents.some((e) => e.logical >= 12 + apb + apb * apb), 'data in the triple-indirect region').toBe(true);
      }
    });

    it('directories list exactly the source names; "." and ".." point where they should', async () => {
      const problems = await compareDirectoryNames(fs, image, b.entries, { path: '', ino: 2, parentIno: 2 }, { '': ['lost+found'] });
      expect(problems).toEqual([]);
    });

    it(`every path resolves (${rc.indexDirs ? 'htree' : 'linear'} bigdir), symlinks followed, missing names ENOENT`, async () => {
      const bigdir = await image.get('bigdir')!.inode();
      const blocks = bigdir.size / fs.blockSize;
      expect(blocks).toBeGreaterThan(1);
      // mkfs -d writes linear directories; e2fsck -fD indexes every multi-block one
      expect((bigdir.flags & INODE_FLAGS.INDEX) !== 0, 'bigdir INDEX_FL').toBe(rc.indexDirs);
      const problems = await resolveAll(fs, image, b.entries.map((e) => e.path));
      expect(problems).toEqual([]);
      // names that are not there, in the htree and in small directories
      for (const p of ['/bigdir/f99999', '/bigdir/p10000', '/bigdir/' + 'z'.repeat(255), '/names/nope', '/nope/x']) {
        const e = await outcomeOf(fs.resolve(p));
        expect(e, p).toBeInstanceOf(Ext4Error);
        expect((e as Ext4Error).code, p).toBe('ENOENT');
      }
      const tooLong = await outcomeOf(fs.resolve('/bigdir/' + 'z'.repeat(256)));
      expect((tooLong as Ext4Error).code).toBe('ENAMETOOLONG');
      // '.', '..' and symlinks in the middle and at the end
      expect((await fs.resolve('/deep/../symlinks/./relative')).ino).toBe(image.get('sizes/one')!.row.ino);
      expect((await fs.resolve('/symlinks/to-dir/l01/l02/..')).ino).toBe(image.get('deep/l01')!.row.ino);
      expect((await fs.resolve('/symlinks/relative', { followLast: false })).ino).toBe(image.get('symlinks/relative')!.row.ino);
      expect((await fs.resolve('/bigdir/..')).ino).toBe(2);
      expect((await fs.resolve('/bigdir/.')).ino).toBe(image.get('bigdir')!.row.ino);
      for (const p of ['/symlinks/dangling', '/symlinks/absolute']) expect(((await outcomeOf(fs.resolve(p))) as Ext4Error).code, p).toBe('ENOENT');
      expect(((await outcomeOf(fs.resolve('/sizes/one/x'))) as Ext4Error).code).toBe('ENOTDIR');
    });

    const mountable = rc.blockSize <= 4096;
    it.skipIf(loopWhy !== null || !mountable)(
      `kernel-populated copy: exact ns and post-2038 mtimes, kernel-built htree${mountable ? '' : ' (skipped: 64 KiB blocks do not mount on this kernel)'}`,
      async () => {
        const copy = b.copy();
        const kernelTruth = await withLoopMount(
          copy,
          (mp) => {
            const k = path.join(mp, 'k');
            nodefs.mkdirSync(k);
            run('cp', ['-a', '--preserve=all', ...KERNEL_SUBTREES.map((s) => path.join(b.srcDir, s)), k]);
            const h = path.join(k, 'htree');
            nodefs.mkdirSync(h);
            for (let i = 0; i < HTREE_FILES; i++) nodefs.writeFileSync(path.join(h, `kernel-made-entry-${String(i).padStart(4, '0')}-${'é'.repeat(i % 20)}`), `${i}\n`);
            run('sync', ['-f', k]);
            return snapshotTree(k);
          },
          { type: 'ext4' },
        );
        const kfs = await Filesystem.open(copy);
        try {
          const kimage = await walkImage(kfs, '/k');
          const ktop = await kfs.resolve('/k');
          expect([...kimage.keys()].sort()).toEqual(kernelTruth.map((e) => `k/${e.path}`).sort());
          // 1. everything as the kernel shows it through the mount (exact s + ns)
          const r1 = await compareWithTruth(kfs, kimage, kernelTruth, { prefix: 'k/' });
          expect(r1.problems).toEqual([]);
          // 2. the copied subtrees against the SOURCE snapshot: exact ns with extra time fields,
          //    signed 32-bit seconds (clamped) without
          const big = kfs.sb.s_inode_size > 128;
          const src = b.entries.filter((e) => KERNEL_SUBTREES.some((s) => e.path === s || e.path.startsWith(`${s}/`)));
          const r2 = await compareWithTruth(kfs, kimage, src, {
            prefix: 'k/',
            mtime: (e) => (big ? e.mtime : clamp32(e.mtime)),
            mtimeNs: (e) => (big ? e.mtimeNs : 0),
            dirNlink: true,
          });
          expect(r2.problems).toEqual([]);
          // the odd times are really there
          const y2100 = await kimage.get('k/times/y2100')!.inode();
          const pre = await kimage.get('k/times/pre-1970')!.inode();
          if (big) {
            expect(y2100.mtime).toEqual({ sec: 4_102_444_800, nsec: 123_456_789 });
            expect(pre.mtime).toEqual({ sec: -123_456_790, nsec: 12_345_679 });
          } else {
            expect(y2100.mtime).toEqual({ sec: 2 ** 31 - 1, nsec: 0 });
          }
          // 3. names: the kernel's htree
          const hdir = await kimage.get('k/htree')!.inode();
          expect(hdir.flags & INODE_FLAGS.INDEX, 'the kernel indexed k/htree').toBe(INODE_FLAGS.INDEX);
          const names = await compareDirectoryNames(kfs, kimage, kernelTruth, { path: 'k', ino: ktop.ino, parentIno: 2 });
          expect(names).toEqual([]);
          expect(await resolveAll(kfs, kimage, [...kimage.keys()])).toEqual([]);
        } finally {
          await kfs.close();
          nodefs.rmSync(copy, { force: true });
        }
      },
    );
  });
}
