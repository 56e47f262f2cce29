/**
 * Issue 11 Measure (H9): the bulk forms importTree and rm -r use.
 * - Names given as (directory inode, name) (`InDir`): every create kind, checked like a path's
 *   last component; a directory no longer in use is ENOENT. The kernel reads the result.
 * - removeTree in few steps: its block budget counts the groups that frees touch (not two
 *   blocks per free), and a large contiguous file is freed inside the step (not through the
 *   orphan list in transactions of its own).
 * - Pooled i_generation randoms: one platform call per 1,024 values.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { Filesystem } from '../../lib/node.js';
import { openFile } from '../../lib/ops/file.js';
import { createFile, createFileTx, linkTx, mkdir, mkdirTx, mknodTx, removeTree, rmdir, symlinkTx } from '../../lib/ops/namespace.js';
import { randomU32 } from '../../lib/ext4/random.js';
import { expectE2fsckClean, oracleGate, withLoopMount } from '../helpers/tools.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, cleanupImages, codeOf, makeImage, pattern } from '../ops/helpers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_750_000_000, nsec: 0 };

describe.skipIf(!HAVE_E2FSPROGS)('names given by directory inode (InDir)', () => {
  it('creates every kind in a directory known by inode; bad names and stale directories refused', async () => {
    const img = makeImage('h9-indir', { 'a/x': pattern(5000, 1) }, { sizeMiB: 16 });
    const f = await Filesystem.open(img, { write: true, now: NOW });
    let d = 0, file = 0, gone = 0;
    try {
      gone = await mkdir(f, '/gone');
      await rmdir(f, '/gone');
      // (checked before anything else is created: a new directory may reuse the inode number)
      expect(await codeOf(f.transact((tx) => createFileTx(tx, { dir: gone, name: 'z' })))).toBe('ENOENT');
      await f.transact(async (tx) => {
        d = await mkdirTx(tx, '/d');
        file = await createFileTx(tx, { dir: d, name: 'f1' }, { exclusive: true });
        await symlinkTx(tx, 'f1', { dir: d, name: 'l' });
        await mknodTx(tx, { dir: d, name: 'p' }, 'fifo');
        await linkTx(tx, '/d/f1', { dir: d, name: 'f2' });
        await mkdirTx(tx, { dir: d, name: 'sub' });
        await createFileTx(tx, { dir: d, name: new TextEncoder().encode('bytes') });
      });
      expect(await codeOf(f.transact((tx) => createFileTx(tx, { dir: file, name: 'z' })))).toBe('ENOTDIR');
      expect(await codeOf(f.transact((tx) => createFileTx(tx, { dir: d, name: 'a/b' })))).toBe('EINVAL');
      expect(await codeOf(f.transact((tx) => createFileTx(tx, { dir: d, name: '' })))).toBe('ENOENT');
      expect(await codeOf(f.transact((tx) => createFileTx(tx, { dir: d, name: 'n'.repeat(256) })))).toBe('ENAMETOOLONG');
      expect(await codeOf(f.transact((tx) => createFileTx(tx, { dir: 0, name: 'z' })))).toBe('EINVAL');
      expect(await codeOf(f.transact((tx) => createFileTx(tx, { dir: d, name: 'f1' }, { exclusive: true })))).toBe('EEXIST');
      expect(await codeOf(f.transact((tx) => mkdirTx(tx, { dir: d, name: 'sub' })))).toBe('EEXIST');
    } finally {
      await f.close();
    }
    expectE2fsckClean(img, 'after InDir creates');
    const why = oracleGate(CAN_MOUNT ? null : (LOOP_SKIP ?? 'loop mounts unavailable'));
    if (why) return;
    await withLoopMount(img, (mp) => {
      const dir = path.join(mp, 'd');
      expect(nodefs.readdirSync(dir).sort()).toEqual(['bytes', 'f1', 'f2', 'l', 'p', 'sub']);
      expect(nodefs.statSync(path.join(dir, 'f1')).ino).toBe(file);
      expect(nodefs.statSync(path.join(dir, 'f2')).ino).toBe(file);
      expect(nodefs.statSync(path.join(dir, 'f1')).nlink).toBe(2);
      expect(nodefs.readlinkSync(path.join(dir, 'l'))).toBe('f1');
      expect(nodefs.lstatSync(path.join(dir, 'p')).isFIFO()).toBe(true);
      expect(nodefs.statSync(dir).ino).toBe(d);
      expect(nodefs.statSync(dir).nlink).toBe(3);
      expect(nodefs.existsSync(path.join(mp, 'gone'))).toBe(false);
    }, { readOnly: true });
  });
});

describe.skipIf(!HAVE_E2FSPROGS)('removeTree in few steps', () => {
  it('300 files and a 12 MiB contiguous file go in one or two steps, no extra orphan transactions', async () => {
    const img = makeImage('h9-rm-steps', {}, { sizeMiB: 64 });
    let freeBlocks = 0, freeInodes = 0;
    {
      const f = await Filesystem.open(img, { write: true, now: NOW });
      try {
        freeBlocks = f.sb.freeBlocksCount;
        freeInodes = f.sb.s_free_inodes_count;
        await mkdir(f, '/t');
        await f.transact(async (tx) => {
          for (let k = 0; k < 3; k++) {
            const sub = await mkdirTx(tx, { dir: (await f.resolve('/t')).ino, name: `d${k}` });
            for (let i = 0; i < 100; i++) await createFileTx(tx, { dir: sub, name: `f${i}` });
          }
        });
        const big = await createFile(f, '/t/d1/big');
        await (await openFile(f, big)).pwrite(pattern(12 * 2 ** 20, 5), 0);
      } finally {
        await f.close();
      }
    }
    expectE2fsckClean(img, 'before removeTree');
    const f = await Filesystem.open(img, { write: true, now: NOW });
    let transactions = 0, steps = 0, removed = 0;
    try {
      const transact = f.transact.bind(f);
      f.transact = ((fn: Parameters<typeof transact>[0]) => {
        transactions++;
        return transact(fn);
      }) as typeof f.transact;
      removed = await removeTree(f, '/t', { onProgress: (p) => (steps = p.steps) });
    } finally {
      await f.close();
    }
    expect(removed).toBe(1 + 3 + 300 + 1);
    // Before: a quarter of the journal, two blocks per free, 1/4 of that in entries: ~19 steps, and
    // the big file freed through the orphan list afterwards (transactions > steps).
    expect(steps).toBeLessThanOrEqual(2);
    expect(transactions).toBe(steps);
    expectE2fsckClean(img, 'after removeTree');
    const g = await Filesystem.open(img, { now: NOW });
    try {
      expect(await codeOf(g.resolve('/t'))).toBe('ENOENT');
      expect(g.sb.freeBlocksCount).toBe(freeBlocks);
      expect(g.sb.s_free_inodes_count).toBe(freeInodes);
    } finally {
      await g.close();
    }
  });
});

describe('pooled randoms for i_generation', () => {
  it('one platform call per 1,024 values, handed out in order; reproducible sessions unchanged', () => {
    let calls = 0, next = 1;
    const platform = {
      randomValues(out: Uint32Array): Uint32Array {
        calls++;
        for (let i = 0; i < out.length; i++) out[i] = next++;
        return out;
      },
    };
    const src = { reproducible: false, now: () => NOW, sb: { s_uuid: new Uint8Array(16) }, platform };
    const got = Array.from({ length: 1500 }, () => randomU32(src, 'i_generation'));
    expect(calls).toBe(2);
    expect(got).toEqual(Array.from({ length: 1500 }, (_, i) => i + 1));
    const fixed = { ...src, reproducible: true };
    expect(randomU32({ ...fixed }, 'x')).toBe(randomU32({ ...fixed }, 'x'));
    expect(calls).toBe(2);
  });
});
