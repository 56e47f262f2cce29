/**
 * writeFile / appendFile / writeFileTx (lib/ops/write-file.ts) on ext4 4k
 * (metadata_csum, extents), ext3 1k (journal, block-mapped) and ext2 1k (no
 * journal, block-mapped): create, replace bigger / smaller / empty, a stream
 * in one transaction and one through a temporary inode, appends, refusals.
 * Oracles: e2fsck -fn clean after every call; the free-block count (old
 * blocks freed, nothing leaked); one extent for a file written in one go on
 * an empty filesystem; the bytes through a kernel loop mount, which then
 * appends to a file we wrote and ext4kit reads it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import type { Filesystem as CoreFilesystem } from '../../lib/ext4/filesystem.js';
import { appendFile, writeFile, writeFileTx } from '../../lib/ops/write-file.js';
import { createFile, mkdir } from '../../lib/ops/namespace.js';
import { expectE2fsckClean, mkfs, oracleGate, withLoopMount, type FsKind } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, chunksOf, cleanupImages, codeOf, pattern, sameBytes, scratchPath } from '../ops/helpers.js';
import { makeNsImage, withWritableAt } from './helpers.js';

afterAll(() => cleanupImages());

interface Config {
  label: string;
  kind: FsKind;
  bs: number;
  opts: string[];
}

const CONFIGS: Config[] = [
  { label: 'ext4 4k (metadata_csum)', kind: 'ext4', bs: 4096, opts: [] },
  { label: 'ext3 1k (journal, block-mapped)', kind: 'ext3', bs: 1024, opts: [] },
  { label: 'ext2 1k (no journal, block-mapped)', kind: 'ext2', bs: 1024, opts: [] },
];

const NOW = { sec: 1_750_000_000, nsec: 77 };

function makeImage(c: Config): string {
  return makeNsImage({ name: `wf-${c.kind}-${c.bs}`, kind: c.kind, blockSize: c.bs, sizeMiB: 24, mkfsOpts: c.opts, tree: { hello: pattern(3000, 7), 'd/': null } });
}

const withFs = <T>(img: string, fn: (fs: CoreFilesystem) => Promise<T>) => withWritableAt(img, NOW, fn);

async function content(fs: CoreFilesystem, p: string): Promise<Uint8Array> {
  const i = await fs.resolve(p);
  return fs.read(i, 0, i.size);
}

const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

describe.skipIf(!HAVE_E2FSPROGS)('writeFile, appendFile: e2fsck after each call, the kernel reads the bytes', () => {
  for (const c of CONFIGS) {
    it(c.label, async () => {
      const img = makeImage(c);
      const model = new Map<string, Uint8Array>([['/hello', pattern(3000, 7)]]);
      const op = async (what: string, fn: (fs: CoreFilesystem) => Promise<unknown>) => {
        await withFs(img, fn);
        expectE2fsckClean(img, `${c.label}: ${what}`);
        await withFs(img, async (fs) => {
          for (const [p, want] of model) expect(sameBytes(await content(fs, p), want), `${what}: ${p}`).toBe(true);
        });
      };
      const freeOf = () => withFs(img, async (fs) => fs.sb.freeBlocksCount);
      const blocksOf = (n: number) => Math.ceil(n / c.bs);

      const big = pattern(150 * 1024 + 17, 1);
      model.set('/new', big);
      await op('create /new (one extent near its group)', async (fs) => {
        const ino = await writeFile(fs, '/new', big, { mode: 0o600, uid: 7, gid: 8 });
        const inode = await fs.readInode(ino);
        expect([inode.mode & 0o7777, inode.uid, inode.gid, inode.size]).toEqual([0o600, 7, 8, big.length]);
        expect(inode.mtime).toEqual(NOW);
        expect((await fs.fileMap(inode)).extents.length).toBe(1);
      });

      let free = await freeOf();
      const bigger = pattern(300 * 1024 + 5, 2);
      model.set('/hello', bigger);
      await op('replace /hello with a bigger content', (fs) => writeFile(fs, '/hello', bigger));
      const meta = (n: number) => (c.kind === 'ext4' ? 0 : Math.ceil(Math.max(0, blocksOf(n) - 12) / (c.bs / 4)) + (blocksOf(n) - 12 > c.bs / 4 ? 1 : 0));
      expect(free - (await freeOf())).toBe(blocksOf(bigger.length) + meta(bigger.length) - blocksOf(3000) - meta(3000));

      free = await freeOf();
      const smaller = pattern(5000, 3);
      model.set('/hello', smaller);
      await op('replace /hello with a smaller content', (fs) => writeFile(fs, '/hello', smaller));
      expect((await freeOf()) - free).toBe(blocksOf(bigger.length) + meta(bigger.length) - blocksOf(smaller.length) - meta(smaller.length));

      model.set('/d/s1', big);
      await op('a stream that fits one transaction', (fs) => writeFile(fs, '/d/s1', chunksOf(big, 999)));
      free = await freeOf();
      const streamed = pattern(200 * 1024 + 3, 4);
      model.set('/d/s1', streamed);
      await op('a stream through a temporary inode, over an existing file', async (fs) => {
        await writeFile(fs, '/d/s1', chunksOf(streamed, 4093), { bufferBytes: 32 * 1024 });
      });
      expect(free - (await freeOf())).toBe(blocksOf(streamed.length) + meta(streamed.length) - blocksOf(big.length) - meta(big.length));

      // A new file through the temporary inode: one transaction names it with its content, mode,
      // owner and times; the temporary inode leaves nothing behind. Refused before any data is
      // written when the parent is missing or not a directory, or the name exists with 'wx'.
      free = await freeOf();
      model.set('/d/s2', streamed);
      await op('a stream through a temporary inode, creating the file', async (fs) => {
        const inodesFree = fs.sb.s_free_inodes_count;
        const ino = await writeFile(fs, '/d/s2', chunksOf(streamed, 4093), { bufferBytes: 32 * 1024, mode: 0o640, uid: 5, gid: 6, now: NOW });
        const inode = await fs.readInode(ino);
        expect([inode.mode & 0o7777, inode.uid, inode.gid, inode.size, inode.linksCount]).toEqual([0o640, 5, 6, streamed.length, 1]);
        expect(inode.mtime).toEqual(NOW);
        expect(fs.sb.s_free_inodes_count).toBe(inodesFree - 1);
        for (const [p, code] of [['/none/x', 'ENOENT'], ['/hello/x', 'ENOTDIR'], ['/d/s2', 'EEXIST']] as const)
          expect(await codeOf(writeFile(fs, p, chunksOf(streamed, 4093), { bufferBytes: 32 * 1024, flag: 'wx' })), p).toBe(code);
        expect(fs.sb.s_free_inodes_count).toBe(inodesFree - 1);
      });
      expect(free - (await freeOf())).toBe(blocksOf(streamed.length) + meta(streamed.length));

      model.set('/hello', concat(smaller, pattern(777, 5), pattern(c.bs * 3, 6)));
      model.set('/d/appended', concat(pattern(100, 8), pattern(20_000, 9), pattern(5, 10)));
      await op('appends: to /hello, to a new file, a stream', async (fs) => {
        await appendFile(fs, '/hello', pattern(777, 5));
        await appendFile(fs, '/hello', pattern(c.bs * 3, 6));
        await appendFile(fs, '/d/appended', pattern(100, 8));
        await appendFile(fs, '/d/appended', chunksOf(pattern(20_000, 9), 3000), { bufferBytes: 8192 });
        await writeFile(fs, '/d/appended', pattern(5, 10), { flag: 'a' });
      });

      model.set('/new', new Uint8Array(0));
      model.set('/d/batch', pattern(6000, 11));
      await op('empty content; writeFileTx in a batch; refusals', async (fs) => {
        await writeFile(fs, '/new', new Uint8Array(0));
        expect((await fs.fileMap(await fs.resolve('/new'))).extents).toEqual([]);
        const ino = await createFile(fs, '/d/batch');
        await fs.transact((tx) => writeFileTx(tx, ino, pattern(6000, 11)));
        expect(await codeOf(writeFile(fs, '/hello', pattern(1, 1), { flag: 'wx' }))).toBe('EEXIST');
        expect(await codeOf(writeFile(fs, '/d', pattern(1, 1)))).toBe('EISDIR');
        expect(await codeOf(writeFile(fs, '/none/x', pattern(1, 1)))).toBe('ENOENT');
        await mkdir(fs, '/e');
      });

      if (!CAN_MOUNT) {
        oracleGate(LOOP_SKIP);
        return;
      }
      await withLoopMount(img, (mp) => {
        for (const [p, want] of model) expect(sameBytes(nodefs.readFileSync(path.join(mp, p)), want), `kernel ${p}`).toBe(true);
        nodefs.appendFileSync(path.join(mp, 'd/s1'), pattern(4000, 12));
      });
      model.set('/d/s1', concat(streamed, pattern(4000, 12)));
      expectE2fsckClean(img, `${c.label}: after the kernel's append`);
      await withFs(img, async (fs) => {
        for (const [p, want] of model) expect(sameBytes(await content(fs, p), want), `after the kernel: ${p}`).toBe(true);
      });
      model.set('/d/s1', pattern(9000, 13));
      await op('replace the file the kernel appended to', (fs) => writeFile(fs, '/d/s1', pattern(9000, 13)));
    });
  }
});

describe.skipIf(!HAVE_E2FSPROGS)('inline-data files (ext4 -O inline_data)', () => {
  it('writeFile keeps what fits inline, turns the rest into block files in one transaction; xattrs beside system.data', async () => {
    const src = tmpDir('wf-inline-src');
    const tiny = pattern(40, 1), mid = pattern(100, 2), keep = pattern(90, 3);
    nodefs.writeFileSync(path.join(src, 'tiny'), tiny);
    nodefs.writeFileSync(path.join(src, 'mid'), mid);
    nodefs.writeFileSync(path.join(src, 'keep'), keep);
    const img = scratchPath('wf-inline.img');
    mkfs('ext4', img, 16 * 1024 * 1024, ['-b', '4096', '-O', 'inline_data'], src);
    nodefs.rmSync(src, { recursive: true, force: true });
    const { setXattr, getXattr, listXattrs } = await import('../../lib/ops/attrs.js');
    const { INODE_FLAGS } = await import('../../lib/ext4/inode.js');
    const big = pattern(9000, 4), more = pattern(5000, 5), small = pattern(70, 8), keep2 = pattern(30, 9), keep2b = pattern(110, 10);
    await withFs(img, async (fs) => {
      for (const p of ['/tiny', '/mid', '/keep']) expect((await fs.resolve(p)).flags & INODE_FLAGS.INLINE_DATA, p).not.toBe(0);
      await writeFile(fs, '/tiny', big);
      await appendFile(fs, '/mid', more);
      await setXattr(fs, '/keep', 'user.a', pattern(8, 6));
      await setXattr(fs, '/keep', 'user.big', pattern(500, 7));
      for (const p of ['/tiny', '/mid']) expect((await fs.resolve(p)).flags & INODE_FLAGS.INLINE_DATA, p).toBe(0);
      // What fits the inode stays (or goes) inline, as the kernel keeps it.
      await writeFile(fs, '/small', small);
      await writeFile(fs, '/keep2', keep2);
      await writeFile(fs, '/keep2', keep2b);
      for (const p of ['/small', '/keep2']) expect((await fs.resolve(p)).flags & INODE_FLAGS.INLINE_DATA, p).not.toBe(0);
      expect(sameBytes(await getXattr(fs, '/keep', 'user.big'), pattern(500, 7))).toBe(true);
      // system.data (the inline data's second part) is not an attribute anyone lists (ext4_listxattr).
      expect(await listXattrs(fs, '/keep')).toEqual(['user.a', 'user.big']);
    });
    expectE2fsckClean(img, 'inline files rewritten');
    const want: Record<string, Uint8Array> = { tiny: big, mid: concat(mid, more), keep, small, keep2: keep2b };
    await withFs(img, async (fs) => {
      for (const [p, w] of Object.entries(want)) expect(sameBytes(await content(fs, `/${p}`), w), p).toBe(true);
    });
    if (!CAN_MOUNT) {
      oracleGate(LOOP_SKIP);
      return;
    }
    await withLoopMount(img, (mp) => {
      for (const [p, w] of Object.entries(want)) expect(sameBytes(nodefs.readFileSync(path.join(mp, p)), w), `kernel ${p}`).toBe(true);
    }, { readOnly: true });
  });
});

describe.skipIf(!HAVE_E2FSPROGS)('reproducible', () => {
  it('the same writes, attributes and xattrs on two copies of an image give the same bytes', async () => {
    const { chmod, chown, setXattr, utimes } = await import('../../lib/ops/attrs.js');
    const img = makeImage(CONFIGS[0]!);
    const copy = scratchPath('wf-repro-copy.img');
    nodefs.copyFileSync(img, copy);
    for (const p of [img, copy]) {
      await withFs(p, async (fs) => {
        await writeFile(fs, '/d/new', pattern(70_000, 1), { mode: 0o640 });
        await writeFile(fs, '/hello', chunksOf(pattern(50_000, 2), 7000), { bufferBytes: 16_384 });
        await appendFile(fs, '/hello', pattern(10, 3));
        await chmod(fs, '/d/new', 0o600);
        await chown(fs, '/d/new', 10, 20);
        await utimes(fs, '/d', 1, 2);
        await setXattr(fs, '/d/new', 'user.big', pattern(1000, 4));
      });
    }
    expect(sameBytes(nodefs.readFileSync(img), nodefs.readFileSync(copy))).toBe(true);
    expectE2fsckClean(img, 'reproducible sequence');
  });
});
