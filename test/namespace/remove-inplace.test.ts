/**
 * removeTree's in-place removals (inode-lifecycle.ts InPlaceRemoval): each non-directory's inode
 * is edited where it lies in its inode-table block instead of being parsed and re-serialised.
 * - The same bytes as the general path: a tree of every inode shape (extent roots and trees,
 *   direct and indirect block maps, fast and slow symlinks, fifos, hard links inside and outside
 *   the tree, in-inode and block xattrs) removed by removeTree and, on a copy, by one unlink or
 *   rmdir per name: every non-directory slot, the free counts and e2fsck agree; Linux reads what
 *   is left.
 * - Block-mapped files with indirect blocks (ext2/ext3, 1 KiB blocks, 3 MiB each) are freed inside
 *   the step, not through the orphan list in transactions of their own (before: one or more
 *   transactions per file after its step).
 * - A corrupt extent root read in place fails the removal with the general path's error, and
 *   nothing is written.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Filesystem } from '../../lib/node.js';
import type { Filesystem as CoreFilesystem } from '../../lib/ext4/filesystem.js';
import { removeTree, rmdir, unlink } from '../../lib/ops/namespace.js';
import { setXattr } from '../../lib/ops/attrs.js';
import { debugfs, expectE2fsckClean, mkfs, oracleGate, sha256File, withLoopMount, type FsKind } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, cleanupImages, codeOf, copyImage, pattern, scratchPath } from '../ops/helpers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_760_000_000, nsec: 123_456_789 };

/** A sparse file: `pieces` data blocks separated by holes (more extents than an inode holds: a tree). */
function writeSparse(file: string, blockSize: number, pieces: number, seed: number): Uint8Array {
  const out = new Uint8Array(blockSize * pieces * 2);
  for (let i = 0; i < pieces; i++) out.set(pattern(blockSize, seed + i), 2 * i * blockSize);
  const fd = nodefs.openSync(file, 'w');
  try {
    for (let i = 0; i < pieces; i++) nodefs.writeSync(fd, out, 2 * i * blockSize, blockSize, 2 * i * blockSize);
    nodefs.ftruncateSync(fd, out.length);
  } finally {
    nodefs.closeSync(fd);
  }
  return out;
}

interface Shapes {
  img: string;
  /** Contents of the file outside the tree that shares an inode with one inside it. */
  keep: Uint8Array;
}

/** An image with /t holding every inode shape, and /keep: a second name of /t/a/linked-out. */
function shapesImage(name: string, kind: FsKind, blockSize: number, mkfsOpts: string[] = []): Shapes {
  const src = tmpDir(`${name}-src`);
  const t = path.join(src, 't');
  for (const d of ['a/deep', 'b', 'empty']) nodefs.mkdirSync(path.join(t, d), { recursive: true });
  nodefs.writeFileSync(path.join(t, 'zero'), new Uint8Array(0));
  nodefs.writeFileSync(path.join(t, 'one'), pattern(100, 1));
  nodefs.writeFileSync(path.join(t, 'a/direct'), pattern(9 * blockSize, 2)); // direct pointers only
  nodefs.writeFileSync(path.join(t, 'a/deep/indirect'), pattern(300 * blockSize, 3)); // indirect (and double with 1 KiB blocks)
  writeSparse(path.join(t, 'b/sparse'), blockSize, 9, 4); // 9 extents: a depth-1 tree on ext4
  nodefs.symlinkSync('one', path.join(t, 'fast-link'));
  nodefs.symlinkSync('x'.repeat(200), path.join(t, 'b/slow-link'));
  run('mkfifo', [path.join(t, 'b/fifo')]);
  nodefs.writeFileSync(path.join(t, 'a/linked-in'), pattern(5000, 5));
  nodefs.linkSync(path.join(t, 'a/linked-in'), path.join(t, 'b/linked-in2'));
  const keep = pattern(7000, 6);
  nodefs.writeFileSync(path.join(t, 'a/linked-out'), keep);
  nodefs.linkSync(path.join(t, 'a/linked-out'), path.join(src, 'keep'));
  nodefs.writeFileSync(path.join(t, 'xattr-inode'), pattern(10, 7));
  nodefs.writeFileSync(path.join(t, 'xattr-block'), pattern(10, 8));
  const img = scratchPath(`${name}.img`);
  mkfs(kind, img, 16 * 1024 * 1024, ['-b', String(blockSize), ...mkfsOpts], src);
  nodefs.rmSync(src, { recursive: true, force: true });
  return { img, keep };
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
}

/** Every name under `dir` (post-order: entries before their directory), with its inode and type. */
async function walkTree(fs: CoreFilesystem, dir: string): Promise<{ path: string; ino: number; dir: boolean }[]> {
  const out: { path: string; ino: number; dir: boolean }[] = [];
  for await (const e of fs.readdir(dir)) {
    if (e.name === '.' || e.name === '..') continue;
    const p = `${dir}/${e.name}`;
    if (e.type === 'dir') out.push(...(await walkTree(fs, p)));
    out.push({ path: p, ino: e.ino, dir: e.type === 'dir' });
  }
  return out;
}

/** The raw slot of inode `ino` as on disk. */
async function slot(fs: CoreFilesystem, ino: number): Promise<Uint8Array> {
  const { block, offset } = await fs.inodeLocation(ino);
  return (await fs.readBlock(block)).slice(offset, offset + fs.sb.s_inode_size);
}

const CASES: { label: string; kind: FsKind; blockSize: number; mkfsOpts?: string[] }[] = [
  { label: 'ext4, 4 KiB, metadata_csum', kind: 'ext4', blockSize: 4096 },
  { label: 'ext4, 1 KiB, 128-byte inodes, no checksums', kind: 'ext4', blockSize: 1024, mkfsOpts: ['-I', '128', '-O', '^metadata_csum'] },
  { label: 'ext3, 1 KiB (block maps)', kind: 'ext3', blockSize: 1024 },
];

describe.skipIf(!HAVE_E2FSPROGS)('removeTree in place = the general path', () => {
  for (const c of CASES) {
    it(`${c.label}: every non-directory slot, the counts and e2fsck agree with unlink/rmdir per name`, async () => {
      const { img, keep } = shapesImage(`inplace-${c.kind}-${c.blockSize}`, c.kind, c.blockSize, c.mkfsOpts);
      {
        const f = await Filesystem.open(img, { write: true, now: NOW });
        try {
          await setXattr(f, '/t/xattr-inode', 'user.small', pattern(8, 9)); // in the inode (if it has room), else a block
          await setXattr(f, '/t/xattr-block', 'user.big', pattern(Math.min(600, c.blockSize - 100), 10)); // too big for the inode: a block
        } finally {
          await f.close();
        }
      }
      expectE2fsckClean(img, 'the tree');
      const general = copyImage(img, `inplace-${c.kind}-${c.blockSize}-general`);
      let names: { path: string; ino: number; dir: boolean }[] = [];
      const fast = await Filesystem.open(img, { write: true, now: NOW });
      try {
        names = await walkTree(fast, '/t');
        expect(await removeTree(fast, '/t', { now: NOW })).toBe(names.length + 1);
      } finally {
        await fast.close();
      }
      const ref = await Filesystem.open(general, { write: true, now: NOW });
      try {
        for (const n of names) await (n.dir ? rmdir(ref, n.path, { now: NOW }) : unlink(ref, n.path, { now: NOW }));
        await rmdir(ref, '/t', { now: NOW });
      } finally {
        await ref.close();
      }
      expectE2fsckClean(img, 'after removeTree');
      expectE2fsckClean(general, 'after unlink/rmdir per name');
      const a = await Filesystem.open(img), b = await Filesystem.open(general);
      try {
        expect(a.sb.freeBlocksCount).toBe(b.sb.freeBlocksCount);
        expect(a.sb.s_free_inodes_count).toBe(b.sb.s_free_inodes_count);
        for (let g = 0; g < a.sb.groupCount; g++) {
          const ga = await a.group(g), gb = await b.group(g);
          expect([ga.freeBlocks, ga.freeInodes, ga.usedDirs], `group ${g}`).toEqual([gb.freeBlocks, gb.freeInodes, gb.usedDirs]);
        }
        const inos = new Set(names.filter((n) => !n.dir).map((n) => n.ino));
        for (const ino of inos) expect(Buffer.from(await slot(a, ino)).equals(Buffer.from(await slot(b, ino))), `inode ${ino}`).toBe(true);
        expect(await codeOf(a.resolve('/t'))).toBe('ENOENT');
        const k = await a.readInode((await a.resolve('/keep')).ino);
        expect(k.linksCount).toBe(1);
        expect(k.ctime.sec).toBe(NOW.sec); // (nanoseconds where the inode has room: both paths agree, slots compared above)
      } finally {
        await a.close();
        await b.close();
      }
      if (CAN_MOUNT) {
        await withLoopMount(img, (mp) => {
          expect(nodefs.readdirSync(mp).sort()).toEqual(['keep', 'lost+found']);
          expect(Buffer.from(nodefs.readFileSync(path.join(mp, 'keep'))).equals(Buffer.from(keep))).toBe(true);
          expect(nodefs.statSync(path.join(mp, 'keep')).nlink).toBe(1);
        }, { readOnly: true });
      } else oracleGate(LOOP_SKIP ?? 'loop mounts unavailable');
    });
  }
});

describe.skipIf(!HAVE_E2FSPROGS)('block-mapped files with indirect blocks', () => {
  for (const kind of ['ext2', 'ext3'] as const) {
    it(`${kind}, 1 KiB: four 3 MiB files freed inside removeTree's step, no orphan transactions after it`, async () => {
      const src = tmpDir(`bm-${kind}-src`);
      const files: Record<string, Uint8Array> = {};
      for (let i = 0; i < 4; i++) {
        files[`d/f${i}`] = pattern(3 * 2 ** 20 + 1000 * i, 20 + i); // > 2,048 blocks: indirect and double-indirect blocks
        nodefs.mkdirSync(path.join(src, 'd'), { recursive: true });
        nodefs.writeFileSync(path.join(src, `d/f${i}`), files[`d/f${i}`]!);
      }
      nodefs.writeFileSync(path.join(src, 'other'), pattern(4000, 30));
      const img = scratchPath(`bm-${kind}.img`);
      mkfs(kind, img, 32 * 1024 * 1024, ['-b', '1024'], src);
      nodefs.rmSync(src, { recursive: true, force: true });
      const f = await Filesystem.open(img, { write: true, now: NOW });
      let owned = 0, freeBefore = 0, transactions = 0, steps = 0;
      try {
        freeBefore = f.sb.freeBlocksCount;
        for (const p of Object.keys(files)) {
          const map = await f.fileMap(await f.readInode((await f.resolve(`/${p}`)).ino));
          expect(map.kind).toBe('blockmap');
          expect(map.metadataBlocks.length).toBeGreaterThan(12);
          owned += map.extents.reduce((s, e) => s + e.length, 0) + map.metadataBlocks.length;
        }
        owned += (await f.fileMap(await f.readInode((await f.resolve('/d')).ino))).extents.reduce((s, e) => s + e.length, 0);
        const transact = f.transact.bind(f);
        f.transact = ((fn: Parameters<typeof transact>[0]) => {
          transactions++;
          return transact(fn);
        }) as typeof f.transact;
        expect(await removeTree(f, '/d', { onProgress: (p) => (steps = p.steps) })).toBe(5);
      } finally {
        await f.close();
      }
      expect(steps).toBe(1);
      expect(transactions).toBe(steps);
      expectE2fsckClean(img, `${kind} after removeTree`);
      const g = await Filesystem.open(img);
      try {
        expect(g.sb.freeBlocksCount).toBe(freeBefore + owned);
        expect(await codeOf(g.resolve('/d'))).toBe('ENOENT');
      } finally {
        await g.close();
      }
      if (CAN_MOUNT) {
        await withLoopMount(img, (mp) => {
          expect(nodefs.readdirSync(mp).sort()).toEqual(['lost+found', 'other']);
          expect(Buffer.from(nodefs.readFileSync(path.join(mp, 'other'))).equals(Buffer.from(pattern(4000, 30)))).toBe(true);
        }, { readOnly: true });
      } else oracleGate(LOOP_SKIP ?? 'loop mounts unavailable');
    });
  }
});

describe.skipIf(!HAVE_E2FSPROGS)('a corrupt extent root', () => {
  it('fails the removal with the extent reader error; nothing is written', async () => {
    const src = tmpDir('bad-root-src');
    nodefs.mkdirSync(path.join(src, 't'));
    nodefs.writeFileSync(path.join(src, 't/ok'), pattern(5000, 1));
    nodefs.writeFileSync(path.join(src, 't/bad'), pattern(5000, 2));
    const img = scratchPath('bad-root.img');
    mkfs('ext4', img, 16 * 1024 * 1024, ['-b', '4096'], src);
    nodefs.rmSync(src, { recursive: true, force: true });
    debugfs(img, ['sif /t/bad block[0] 0x12345'], { write: true }); // eh_magic gone (debugfs refreshes the inode checksum)
    const before = sha256File(img);
    const f = await Filesystem.open(img, { write: true, now: NOW });
    let err: unknown;
    try {
      await removeTree(f, '/t', { now: NOW });
    } catch (e) {
      err = e;
    } finally {
      await f.close().catch(() => undefined);
    }
    expect(err).toMatchObject({ code: 'EFSCORRUPTED', message: expect.stringContaining('bad extent header magic') });
    expect(sha256File(img)).toBe(before);
  });
});
