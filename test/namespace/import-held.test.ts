/**
 * importTree keeps a directory's names together (issue 11, Measure: import speed — names written
 * whole by dir-build.ts, not inserted one by one):
 * - a hard link to a file the import made, into a directory it made, is held with the other names
 *   (no flush of every held directory): the directories come out as if the link were any new name
 *   (a symlink of the same name in its place gives the same listing order), link counts right;
 *   a link the import cannot resolve itself (to a name not made by it, to a missing name, to a
 *   directory) goes the path way with its errors;
 * - near the end of a transaction's budget a new directory starts the next transaction
 *   (Budget.nearlyFull), so the directory before it is not split across a commit: its listing is
 *   the one a single-transaction import gives.
 * e2fsck clean after each import; debugfs lists the directories.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { importTree } from '../../lib/ops/import-tree.js';
import type { TreeEntry } from '../../lib/ops/tree-entry.js';
import { debugfs, expectE2fsckClean } from '../helpers/tools.js';
import { HAVE_E2FSPROGS, cleanupImages, codeOf, makeImage, pattern } from '../ops/helpers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_700_000_000, nsec: 0 };
const dir = (path: string): TreeEntry => ({ path, type: 'dir', mode: 0o755, uid: 0, gid: 0 });
const file = (path: string, data: Uint8Array): TreeEntry => ({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, size: data.length, data });
const hard = (path: string, target: string): TreeEntry => ({ path, type: 'hardlink', mode: 0o644, uid: 0, gid: 0, target });
const sym = (path: string, target: string): TreeEntry => ({ path, type: 'symlink', mode: 0o777, uid: 0, gid: 0, target });

async function importWith(img: string, entries: TreeEntry[], batchBytes?: number): Promise<number> {
  const f = await Filesystem.open(img, { write: true, now: NOW });
  try {
    return (await importTree(f, entries, { now: NOW, ...(batchBytes ? { batchBytes } : {}) })).transactions;
  } finally {
    await f.close();
  }
}

/** Names of directory `p` in block order (debugfs ls -p), '.' and '..' left out. */
function listing(img: string, p: string): string[] {
  return debugfs(img, [`ls -p ${p}`]).split('\n').map((l) => l.split('/')[5]).filter((n): n is string => !!n && n !== '.' && n !== '..');
}

function inodeOf(img: string, p: string): { ino: number; links: number } {
  const out = debugfs(img, [`stat ${p}`]);
  return { ino: Number(/Inode: (\d+)/.exec(out)?.[1]), links: Number(/Links: (\d+)/.exec(out)?.[1]) };
}

/** Directories a and b of 150 files each (1 KiB blocks: htrees), links (`link`) between and inside them, in the middle of a. */
function linkTree(link: (path: string, target: string) => TreeEntry): TreeEntry[] {
  const out: TreeEntry[] = [dir('a'), dir('b'), sym('b/sym', 'x')];
  for (let i = 0; i < 150; i++) {
    out.push(file(`a/file-${i}`, pattern(100 + i, i)));
    if (i === 40) out.push(link('a/same-dir', 'a/file-3'), link('b/other-dir', 'a/file-5'));
    if (i === 80) out.push(link('a/second', 'a/file-5'), link('a/to-symlink', 'b/sym'));
  }
  for (let i = 0; i < 150; i++) out.push(file(`b/file-${i}`, pattern(50 + i, 1000 + i)));
  return out;
}

describe.skipIf(!HAVE_E2FSPROGS)('importTree holds the names of its directories', () => {
  it('hard links are held with their directory: same listing as any new name, link counts right, e2fsck clean', async () => {
    // (a 4 MiB journal: each import is one transaction, so only the links can make a difference)
    const linked = makeImage('held-links', {}, { sizeMiB: 16, blockSize: 1024, mkfsOpts: ['-J', 'size=4'] });
    const plain = makeImage('held-symlinks', {}, { sizeMiB: 16, blockSize: 1024, mkfsOpts: ['-J', 'size=4'] });
    expect(await importWith(linked, linkTree(hard))).toBe(1);
    expect(await importWith(plain, linkTree(sym))).toBe(1);
    await expectE2fsckClean(linked, 'after an import with hard links');
    await expectE2fsckClean(plain);
    for (const d of ['/a', '/b']) {
      const got = listing(linked, d);
      expect(got.length, d).toBeGreaterThan(150);
      // Inserted after a flush, the names after a link would sit in other places than a whole build puts them.
      expect(got, d).toEqual(listing(plain, d));
    }
    const f3 = inodeOf(linked, '/a/file-3'), f5 = inodeOf(linked, '/a/file-5'), s = inodeOf(linked, '/b/sym');
    expect(inodeOf(linked, '/a/same-dir')).toEqual(f3);
    expect(f3.links).toBe(2);
    expect(inodeOf(linked, '/b/other-dir')).toEqual(f5);
    expect(inodeOf(linked, '/a/second')).toEqual(f5);
    expect(f5.links).toBe(3);
    expect(inodeOf(linked, '/a/to-symlink')).toEqual(s);
    expect(s.links).toBe(2);
  });

  it('links it cannot resolve itself take the path way: to the import root, EEXIST, ENOENT, EPERM on a directory', async () => {
    const img = makeImage('held-links-root', {}, { sizeMiB: 8, blockSize: 1024 });
    // A name at the tree's root (a directory the import did not make): resolved by path.
    await importWith(img, [dir(''), file('top', pattern(10, 1)), dir('d'), hard('d/l', 'top'), hard('l2', 'd/l')]);
    await expectE2fsckClean(img);
    expect(inodeOf(img, '/d/l')).toEqual(inodeOf(img, '/top'));
    expect(inodeOf(img, '/l2')).toEqual({ ...inodeOf(img, '/top'), links: 3 });
    const cases: [string, TreeEntry[], string][] = [
      ['exists', [dir('d'), file('d/f', pattern(10, 2)), file('d/g', pattern(10, 3)), hard('d/g', 'd/f')], 'EEXIST'],
      ['missing', [dir('d'), file('d/f', pattern(10, 2)), hard('d/l', 'd/nothing')], 'ENOENT'],
      ['directory', [dir('d'), dir('d/s'), hard('d/l', 'd/s')], 'EPERM'],
    ];
    for (const [tag, entries, code] of cases) {
      const bad = makeImage(`held-links-${tag}`, {}, { sizeMiB: 8, blockSize: 1024 });
      expect(await codeOf(importWith(bad, entries)), tag).toBe(code);
      await expectE2fsckClean(bad, tag);
    }
  });

  it('a directory starting near the end of the budget waits for the next transaction: the one before is not split', async () => {
    // d1: 40 files of 4 KiB (160 KiB, past 7/8 of a 180 KiB batch), then d2 with 120 names (120 KiB).
    const entries: TreeEntry[] = [dir('d1')];
    for (let i = 0; i < 40; i++) entries.push(file(`d1/f${i}`, pattern(4096, i)));
    entries.push(dir('d2'));
    for (let i = 0; i < 120; i++) entries.push(file(`d2/entry-${i}`, pattern(100, 100 + i)));
    const batched = makeImage('held-boundary', {}, { sizeMiB: 16, blockSize: 1024 });
    const whole = makeImage('held-boundary-one', {}, { sizeMiB: 16, blockSize: 1024 });
    expect(await importWith(batched, entries, 180 * 1024)).toBeGreaterThan(1);
    expect(await importWith(whole, entries, 64 << 20)).toBe(1);
    await expectE2fsckClean(batched, 'batched');
    await expectE2fsckClean(whole, 'one transaction');
    expect(listing(batched, '/d2')).toEqual(listing(whole, '/d2'));
    expect(listing(batched, '/d2')).toHaveLength(120);
  });
});
