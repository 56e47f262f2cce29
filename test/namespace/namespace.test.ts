/**
 * Namespace operations (lib/ops/namespace.ts over lib/ext4/dir-edit.ts):
 * create, mkdir, unlink, rmdir, link, rename within a directory, on ext4 4k
 * (metadata_csum), ext4 1k, ext4 ^metadata_csum, ext2 (block-mapped, no
 * journal) and ext3 ^dir_index (linear directories past one block).
 * Oracles: e2fsck -fn clean after every operation (its pass 2 checks entries,
 * rec_lens, tails, link counts; pass 5 the counts); the names, types, link
 * counts and bytes through a kernel loop mount; then the kernel writes in the
 * directory we built (create, unlink, rename) and ext4kit reads its changes.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import type { Filesystem as CoreFilesystem } from '../../lib/ext4/filesystem.js';
import { openFile } from '../../lib/ops/file.js';
import { createFile, link, mkdir, mknod, rename, rmdir, symlink, unlink } from '../../lib/ops/namespace.js';
import { splitDev } from '../helpers/tree.js';
import { INODE_FLAGS } from '../../lib/ext4/inode.js';
import { DxCountLimitLayout, DxRootInfoLayout, DX_ROOT_COUNT_OFFSET, DX_ROOT_INFO_OFFSET } from '../../lib/ext4/htree.js';
import { debugfs, expectE2fsckClean, oracleGate, withLoopMount, type FsKind } from '../helpers/tools.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, cleanupImages, codeOf, pattern } from '../ops/helpers.js';
import { mulberry32 } from '../../lib/io/prng.js';
import { entryNames, makeNsImage, withWritableAt } from './helpers.js';

afterAll(() => cleanupImages());

interface Config {
  label: string;
  kind: FsKind;
  bs: number;
  opts: string[];
  /** Directories become htrees past one block. */
  dirIndex: boolean;
}

const CONFIGS: Config[] = [
  { label: 'ext4 4k (metadata_csum)', kind: 'ext4', bs: 4096, opts: [], dirIndex: true },
  { label: 'ext4 1k', kind: 'ext4', bs: 1024, opts: [], dirIndex: true },
  { label: 'ext4 4k ^metadata_csum', kind: 'ext4', bs: 4096, opts: ['-O', '^metadata_csum'], dirIndex: true },
  { label: 'ext2 1k (block-mapped, no journal)', kind: 'ext2', bs: 1024, opts: [], dirIndex: true },
  { label: 'ext3 1k ^dir_index (linear directories)', kind: 'ext3', bs: 1024, opts: ['-O', '^dir_index'], dirIndex: false },
];

const NOW = { sec: 1_750_000_000, nsec: 123_456_789 };

function makeImage(c: Config, name: string): string {
  return makeNsImage({ name: `ns-${name}-${c.kind}-${c.bs}-${c.opts.join('')}`, kind: c.kind, blockSize: c.bs, sizeMiB: c.bs === 65536 ? 96 : 24, mkfsOpts: c.opts, tree: { hello: pattern(3000, 7), 'etc/': null } });
}

const withFs = <T>(img: string, fn: (fs: CoreFilesystem) => Promise<T>) => withWritableAt(img, NOW, fn);

const names = entryNames;

const enc = new TextEncoder();

describe.skipIf(!HAVE_E2FSPROGS)('namespace operations, e2fsck after each', () => {
  for (const c of CONFIGS) {
    it(c.label, async () => {
      const img = makeImage(c, 'ops');
      const op = async (what: string, fn: (fs: CoreFilesystem) => Promise<unknown>) => {
        await withFs(img, fn);
        expectE2fsckClean(img, `${c.label}: ${what}`);
      };
      const content = pattern(5 * c.bs + 17, 3);
      await op('mkdir /d', (fs) => mkdir(fs, '/d', { mode: 0o750, uid: 1000, gid: 100, now: NOW }));
      await op('create /d/a and write it', async (fs) => {
        const ino = await createFile(fs, '/d/a', { mode: 0o640, uid: 1000, gid: 100 });
        await (await openFile(fs, ino)).pwrite(content, 0);
      });
      await op('create /d/b (exclusive)', (fs) => createFile(fs, '/d/b', { exclusive: true }));
      await op('link /d/a → /d/a2 and /a3', async (fs) => {
        await link(fs, '/d/a', '/d/a2');
        await link(fs, '/d/a', '/a3');
      });
      await op('rename /d/b → /d/c', (fs) => rename(fs, '/d/b', '/d/c'));
      await op('rename /d/a2 over /d/c (its inode freed)', (fs) => rename(fs, '/d/a2', '/d/c'));
      await op('mkdir /d/sub, /d/sub/deeper', async (fs) => {
        await mkdir(fs, '/d/sub');
        await mkdir(fs, '/d/sub/deeper');
      });
      await op('rmdir /d/sub/deeper', (fs) => rmdir(fs, '/d/sub/deeper'));
      await op('unlink /a3', (fs) => unlink(fs, '/a3'));
      await op('mkdir /etc/m; rename it to /d/sub/m (a directory across parents)', async (fs) => {
        await mkdir(fs, '/etc/m');
        await rename(fs, '/etc/m', '/d/sub/m');
      });
      await op('rename /hello → /d/hello2 (a file across parents)', (fs) => rename(fs, '/hello', '/d/hello2'));
      await op('mkdir /etc/v, /d/sub/w; rename /d/sub/w over the empty /etc/v', async (fs) => {
        await mkdir(fs, '/etc/v');
        await mkdir(fs, '/d/sub/w');
        await rename(fs, '/d/sub/w', '/etc/v');
      });
      await op('refusals', async (fs) => {
        expect(await codeOf(createFile(fs, '/d/a', { exclusive: true }))).toBe('EEXIST');
        expect(await codeOf(mkdir(fs, '/d'))).toBe('EEXIST');
        expect(await codeOf(unlink(fs, '/d'))).toBe('EISDIR');
        expect(await codeOf(rmdir(fs, '/d'))).toBe('ENOTEMPTY');
        expect(await codeOf(rmdir(fs, '/d/a'))).toBe('ENOTDIR');
        expect(await codeOf(unlink(fs, '/d/nothing'))).toBe('ENOENT');
        expect(await codeOf(createFile(fs, '/none/x'))).toBe('ENOENT');
        expect(await codeOf(createFile(fs, '/d/a/x'))).toBe('ENOTDIR');
        expect(await codeOf(createFile(fs, `/d/${'n'.repeat(256)}`))).toBe('ENAMETOOLONG');
        expect(await codeOf(link(fs, '/d', '/d2'))).toBe('EPERM');
        expect(await codeOf(rename(fs, '/d', '/d/sub/m/x'))).toBe('EINVAL');
        expect(await codeOf(rename(fs, '/etc/v', '/d/sub'))).toBe('ENOTEMPTY');
        expect(await codeOf(rename(fs, '/etc/v', '/d/a'))).toBe('ENOTDIR');
        expect(await codeOf(rename(fs, '/d/a', '/d/sub'))).toBe('EISDIR');
        expect(await codeOf(rename(fs, '/d/a', '/d/c', { noReplace: true }))).toBe('EEXIST');
      });
      // The model: /d/a and /d/c are one inode (2 links) holding `content`; /d/sub holds m; /etc holds v.
      await withFs(img, async (fs) => {
        expect(await names(fs, '/d')).toEqual(['a', 'c', 'hello2', 'sub']);
        expect(await names(fs, '/d/sub')).toEqual(['m']);
        expect(await names(fs, '/etc')).toEqual(['v']);
        expect(await names(fs, '/')).toEqual(['d', 'etc', 'lost+found']);
        expect((await fs.lookup(await fs.resolve('/d/sub/m'), new Uint8Array([0x2e, 0x2e])))?.ino).toBe((await fs.resolve('/d/sub')).ino);
        expect((await fs.resolve('/d/sub')).linksCount).toBe(3);
        expect((await fs.resolve('/etc')).linksCount).toBe(3);
        const a = await fs.resolve('/d/a');
        expect((await fs.resolve('/d/c')).ino).toBe(a.ino);
        expect(a.linksCount).toBe(2);
        expect(a.mode & 0o7777).toBe(0o640);
        expect(a.uid).toBe(1000);
        const d = await fs.resolve('/d');
        expect(d.linksCount).toBe(3); // '.', its entry in /, sub's '..'
        expect(d.mtime).toEqual(NOW);
        expect(d.uid).toBe(1000);
        expect(d.mode & 0o7777).toBe(0o750);
        expect((await fs.resolve('/')).linksCount).toBe(5); // 2 + lost+found, etc, d
      });
      if (!CAN_MOUNT) {
        oracleGate(LOOP_SKIP);
        return;
      }
      await withLoopMount(img, (mp) => {
        expect(nodefs.readdirSync(path.join(mp, 'd')).sort()).toEqual(['a', 'c', 'hello2', 'sub']);
        expect(Buffer.from(nodefs.readFileSync(path.join(mp, 'd/hello2'))).equals(Buffer.from(pattern(3000, 7)))).toBe(true);
        expect(nodefs.readdirSync(path.join(mp, 'd/sub'))).toEqual(['m']);
        expect(nodefs.statSync(path.join(mp, 'd/sub/m/..')).ino).toBe(nodefs.statSync(path.join(mp, 'd/sub')).ino);
        expect(nodefs.statSync(path.join(mp, 'etc')).nlink).toBe(3);
        const st = nodefs.statSync(path.join(mp, 'd/a'));
        expect(st.nlink).toBe(2);
        expect(st.ino).toBe(nodefs.statSync(path.join(mp, 'd/c')).ino);
        expect(Buffer.from(nodefs.readFileSync(path.join(mp, 'd/c'))).equals(Buffer.from(content))).toBe(true);
        expect(nodefs.statSync(path.join(mp, 'd')).nlink).toBe(3);
        // The kernel writes where we wrote.
        nodefs.writeFileSync(path.join(mp, 'd/kernel'), 'k');
        nodefs.unlinkSync(path.join(mp, 'd/c'));
        nodefs.renameSync(path.join(mp, 'd/a'), path.join(mp, 'd/z'));
        nodefs.renameSync(path.join(mp, 'd/sub/m'), path.join(mp, 'd/m2'));
        nodefs.rmdirSync(path.join(mp, 'd/sub'));
      });
      expectE2fsckClean(img, `${c.label}: after the kernel's writes`);
      await withFs(img, async (fs) => {
        expect(await names(fs, '/d')).toEqual(['hello2', 'kernel', 'm2', 'z']);
        expect((await fs.resolve('/d/z')).linksCount).toBe(1);
      });
      await op('unlink /d/z, /d/kernel, /d/hello2; rmdir /d/m2, /d, /etc/v', async (fs) => {
        await unlink(fs, '/d/z');
        await unlink(fs, '/d/kernel');
        await unlink(fs, '/d/hello2');
        await rmdir(fs, '/d/m2');
        await rmdir(fs, '/d');
        await rmdir(fs, '/etc/v');
      });
      await withFs(img, async (fs) => {
        expect(await names(fs, '/')).toEqual(['etc', 'lost+found']);
        expect((await fs.resolve('/')).linksCount).toBe(4);
        expect((await fs.resolve('/etc')).linksCount).toBe(2);
      });
    });
  }
});

describe.skipIf(!HAVE_E2FSPROGS)('unlinking a large file', () => {
  for (const c of [CONFIGS[0]!, CONFIGS[3]!]) {
    it(`${c.label}: its blocks are freed through the orphan list after the entry goes`, async () => {
      const img = makeImage(c, 'large-unlink');
      const free0 = await withFs(img, async (fs) => fs.sb.freeBlocksCount);
      await withFs(img, async (fs) => {
        const ino = await createFile(fs, '/large');
        await (await openFile(fs, ino)).pwrite(pattern(3000 * c.bs, 9), 0); // > INLINE_DELETE_BLOCKS
      });
      expectE2fsckClean(img, `${c.label}: large file written`);
      await withFs(img, async (fs) => {
        expect(fs.sb.freeBlocksCount).toBeLessThanOrEqual(free0 - 3000);
        await unlink(fs, '/large');
        expect(fs.sb.s_last_orphan).toBe(0);
      });
      expectE2fsckClean(img, `${c.label}: large file unlinked`);
      await withFs(img, async (fs) => {
        expect(fs.sb.freeBlocksCount).toBe(free0);
        expect(await names(fs, '/')).toEqual(['etc', 'hello', 'lost+found']);
      });
    });
  }
});

describe.skipIf(!HAVE_E2FSPROGS)('symlinks and special files', () => {
  for (const c of CONFIGS) {
    it(c.label, async () => {
      const img = makeImage(c, 'special');
      const counts = (fs: CoreFilesystem) => ({ blocks: fs.sb.freeBlocksCount, inodes: fs.sb.s_free_inodes_count });
      const before = await withFs(img, async (fs) => counts(fs));
      const slowTarget = `${'long/'.repeat(60)}hello`; // 305 bytes: a block of its own
      await withFs(img, async (fs) => {
        await mkdir(fs, '/s');
        await symlink(fs, '../hello', '/s/fast');
        await symlink(fs, slowTarget, '/s/slow');
        await symlink(fs, 'f'.repeat(59), '/s/fast59'); // the longest fast one
        await symlink(fs, 'g'.repeat(60), '/s/slow60'); // the shortest slow one
        await mknod(fs, '/s/fifo', 'fifo', { mode: 0o600 });
        await mknod(fs, '/s/sock', 'socket');
        await mknod(fs, '/s/null', 'chardev', { rdev: { major: 1, minor: 3 }, mode: 0o666 });
        await mknod(fs, '/s/nvme', 'blockdev', { rdev: { major: 259, minor: 70_000 } });
        expect(await codeOf(symlink(fs, 'x'.repeat(c.bs), '/s/toolong'))).toBe('ENAMETOOLONG');
        expect(await codeOf(mknod(fs, '/s/fifo', 'fifo'))).toBe('EEXIST');
      });
      expectE2fsckClean(img, `${c.label}: symlinks and special files`);
      await withFs(img, async (fs) => {
        const dec = new TextDecoder();
        expect(dec.decode(await fs.readlink(await fs.resolve('/s/fast', { followLast: false })))).toBe('../hello');
        expect(dec.decode(await fs.readlink(await fs.resolve('/s/slow', { followLast: false })))).toBe(slowTarget);
        expect(dec.decode(await fs.readlink(await fs.resolve('/s/slow60', { followLast: false })))).toBe('g'.repeat(60));
        expect((await fs.resolve('/s/fast')).ino).toBe((await fs.resolve('/hello')).ino); // followed
        const types = new Map<string, string>();
        for await (const e of fs.readdir('/s')) types.set(e.name, e.type);
        expect(Object.fromEntries(types)).toMatchObject({ fast: 'symlink', slow: 'symlink', fifo: 'fifo', sock: 'socket', null: 'chardev', nvme: 'blockdev' });
      });
      if (CAN_MOUNT) {
        await withLoopMount(img, (mp) => {
          const s = (n: string) => path.join(mp, 's', n);
          expect(nodefs.readlinkSync(s('fast'))).toBe('../hello');
          expect(nodefs.readlinkSync(s('slow'))).toBe(slowTarget);
          expect(nodefs.readlinkSync(s('fast59'))).toBe('f'.repeat(59));
          expect(nodefs.readlinkSync(s('slow60'))).toBe('g'.repeat(60));
          expect(Buffer.from(nodefs.readFileSync(s('fast'))).equals(Buffer.from(pattern(3000, 7)))).toBe(true);
          expect(nodefs.lstatSync(s('fifo')).isFIFO()).toBe(true);
          expect(nodefs.lstatSync(s('fifo')).mode & 0o7777).toBe(0o600);
          expect(nodefs.lstatSync(s('sock')).isSocket()).toBe(true);
          const nul = nodefs.lstatSync(s('null'), { bigint: true });
          expect(nul.isCharacterDevice()).toBe(true);
          expect(splitDev(nul.rdev)).toEqual({ major: 1, minor: 3 });
          const nvme = nodefs.lstatSync(s('nvme'), { bigint: true });
          expect(nvme.isBlockDevice()).toBe(true);
          expect(splitDev(nvme.rdev)).toEqual({ major: 259, minor: 70_000 });
        }, { readOnly: true });
      } else oracleGate(LOOP_SKIP);
      await withFs(img, async (fs) => {
        for (const n of ['fast', 'slow', 'fast59', 'slow60', 'fifo', 'sock', 'null', 'nvme']) await unlink(fs, `/s/${n}`);
        await rmdir(fs, '/s');
      });
      expectE2fsckClean(img, `${c.label}: all removed`);
      expect(await withFs(img, async (fs) => counts(fs))).toEqual(before);
    });
  }
});

/** A name of 10..`max` bytes, unique by its index. */
function longName(i: number, rnd: () => number, max: number): string {
  // Every other name has bytes ≥ 0x80, where signed and unsigned hashing differ.
  const base = i % 2 ? `n${i.toString(36)}-é` : `n${i.toString(36)}-`;
  const len = 10 + Math.floor(rnd() * (max - 10));
  return (base + 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(8)).slice(0, Math.max(base.length, len));
}

describe.skipIf(!HAVE_E2FSPROGS)('a directory past one block', () => {
  for (const c of CONFIGS) {
    it(`${c.label}: 400 creates, every third unlinked, some renamed; kernel reads and writes it`, async () => {
      const img = makeImage(c, 'grow');
      const rnd = mulberry32(11);
      const model = new Set<string>();
      await withFs(img, async (fs) => {
        await mkdir(fs, '/big');
        for (let i = 0; i < 400; i++) {
          const n = longName(i, rnd, 60);
          await createFile(fs, `/big/${n}`);
          model.add(n);
        }
        const all = [...model];
        for (let i = 0; i < all.length; i += 3) {
          await unlink(fs, `/big/${all[i]}`);
          model.delete(all[i]!);
        }
        for (let i = 1; i < all.length; i += 17) {
          if (!model.has(all[i]!)) continue;
          await rename(fs, `/big/${all[i]}`, `/big/renamed-${i}`);
          model.delete(all[i]!);
          model.add(`renamed-${i}`);
        }
      });
      expectE2fsckClean(img, `${c.label}: grown directory`);
      await withFs(img, async (fs) => {
        const big = await fs.resolve('/big');
        expect(big.size).toBeGreaterThan(3 * c.bs);
        expect((big.flags & INODE_FLAGS.INDEX) !== 0).toBe(c.dirIndex);
        expect(await names(fs, '/big')).toEqual([...model].sort());
        for (const n of model) expect((await fs.resolve(`/big/${n}`)).type).toBe('file');
      });
      if (!CAN_MOUNT) {
        oracleGate(LOOP_SKIP);
        return;
      }
      await withLoopMount(img, (mp) => {
        const dir = path.join(mp, 'big');
        expect(nodefs.readdirSync(dir).sort()).toEqual([...model].sort());
        for (const n of model) expect(nodefs.lstatSync(path.join(dir, n)).isFile()).toBe(true); // the kernel's own (hash) lookup
        for (let i = 0; i < 50; i++) nodefs.writeFileSync(path.join(dir, `k${i}`), '');
        const some = [...model].slice(0, 20);
        for (const n of some) nodefs.unlinkSync(path.join(dir, n));
        nodefs.renameSync(path.join(dir, [...model][30]!), path.join(dir, 'by-kernel'));
      });
      const after = new Set(model);
      for (let i = 0; i < 50; i++) after.add(`k${i}`);
      for (const n of [...model].slice(0, 20)) after.delete(n);
      after.delete([...model][30]!);
      after.add('by-kernel');
      expectE2fsckClean(img, `${c.label}: after the kernel's writes`);
      await withFs(img, async (fs) => {
        expect(await names(fs, '/big')).toEqual([...after].sort());
        await createFile(fs, '/big/after-kernel');
      });
      expectE2fsckClean(img, `${c.label}: our create after the kernel's writes`);
    });
  }
});

describe.skipIf(!HAVE_E2FSPROGS)('htree splits', () => {
  const cases: { c: Config; n: number; max: number; levels: number; unsigned?: boolean; mount?: boolean; emptyAndRemove?: boolean }[] = [
    // 1k blocks, long names: the root fills, the index grows a level, then its node splits
    { c: CONFIGS[1]!, n: 2000, max: 120, levels: 1 },
    { c: CONFIGS[0]!, n: 2000, max: 40, levels: 0, emptyAndRemove: true },
    { c: { ...CONFIGS[0]!, label: 'ext4 4k, unsigned_directory_hash' }, n: 600, max: 40, levels: 0, unsigned: true },
    // 64 KiB blocks: rec_len 65536 is stored as 65535 (^metadata_csum); x86's kernel cannot mount them
    { c: { label: 'ext4 64k ^metadata_csum', kind: 'ext4', bs: 65536, opts: ['-N', '4096', '-O', '^metadata_csum'], dirIndex: true }, n: 1500, max: 60, levels: 0, mount: false },
    { c: { label: 'ext4 64k', kind: 'ext4', bs: 65536, opts: ['-N', '4096'], dirIndex: true }, n: 1500, max: 60, levels: 0, mount: false },
  ];
  for (const { c, n, max, levels, unsigned, mount, emptyAndRemove } of cases) {
    it(`${c.label}: ${n} creates in one directory (names up to ${max} bytes), in a shuffled order`, async () => {
      const img = makeImage(c, `htree-${n}`);
      if (unsigned) debugfs(img, ['ssv flags 2'], { write: true });
      const rnd = mulberry32(5);
      const list = Array.from({ length: n }, (_, i) => longName(i, rnd, max));
      for (let i = list.length - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [list[i], list[j]] = [list[j]!, list[i]!];
      }
      await withFs(img, async (fs) => {
        await mkdir(fs, '/h');
        for (const name of list) await createFile(fs, `/h/${name}`);
      });
      expectE2fsckClean(img, `${c.label}: ${n} creates`);
      await withFs(img, async (fs) => {
        const h = await fs.resolve('/h');
        expect(h.flags & INODE_FLAGS.INDEX).toBeTruthy();
        const map = await fs.fileMap(h);
        const root = await fs.readBlock(map.extents[0]!.physical);
        expect(DxRootInfoLayout.get(root, 'indirect_levels', DX_ROOT_INFO_OFFSET)).toBe(levels);
        // with a level added, the root's one slot has become several: an index node was split
        if (levels > 0) expect(DxCountLimitLayout.get(root, 'count', DX_ROOT_COUNT_OFFSET)).toBeGreaterThan(1);
        if (unsigned) expect(fs.sb.s_flags & 2).toBe(2);
        expect(await names(fs, '/h')).toEqual([...list].sort());
        for (const name of list) expect((await fs.lookup(h, enc.encode(name)))?.ino).toBeGreaterThan(0);
        // Remove half, in another order; then the rest must still be found by hash.
        for (let i = 0; i < list.length; i += 2) await unlink(fs, `/h/${list[i]}`);
      });
      expectE2fsckClean(img, `${c.label}: half removed`);
      const rest = list.filter((_, i) => i % 2 === 1).sort();
      if (mount === false) return;
      if (!CAN_MOUNT) {
        oracleGate(LOOP_SKIP);
        return;
      }
      await withLoopMount(img, (mp) => {
        expect(nodefs.readdirSync(path.join(mp, 'h')).sort()).toEqual(rest);
        for (const name of rest) expect(nodefs.lstatSync(path.join(mp, 'h', name)).isFile()).toBe(true);
      });
      if (!emptyAndRemove) return;
      // Emptied, the indexed directory (dozens of blocks) is empty to rmdir, and all its blocks go.
      const before = await withFs(img, async (fs) => {
        const free = fs.sb.freeBlocksCount;
        const dirBlocks = (await fs.resolve('/h')).size / c.bs;
        expect(await codeOf(rmdir(fs, '/h'))).toBe('ENOTEMPTY');
        for (const name of rest) await unlink(fs, `/h/${name}`);
        await rmdir(fs, '/h');
        return { free, dirBlocks };
      });
      expectE2fsckClean(img, `${c.label}: emptied and removed`);
      await withFs(img, async (fs) => {
        expect(await names(fs, '/')).toEqual(['etc', 'hello', 'lost+found']);
        expect(fs.sb.freeBlocksCount).toBe(before.free + before.dirBlocks);
      });
    });
  }
});
