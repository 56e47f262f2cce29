/**
 * Creating in casefolded (+F) directories. The kernel's __ext4_new_inode gives a new inode its
 * parent's flags masked by ext4_mask_flags(EXT4_FL_INHERITED): EXT4_CASEFOLD_FL is kept for a
 * directory only, so every subdirectory of a casefolded directory is casefolded and a file,
 * symlink or device is not. Names there match folded (a create of "FILE" beside "File" is EEXIST,
 * a lookup of "file" finds "File") and an htree hashes the folded names.
 *
 * Oracles: e2fsck -fn (pass 2 checks a casefolded htree's leaves against the hashes of the
 * folded names, pass 1 flags +F on a non-directory) and debugfs (flags, names, inodes, content).
 * This kernel has no CONFIG_UNICODE, so no casefold image mounts here (test/dir/casefold.test.ts
 * says the same): the kernel's view is not checked.
 */
import { describe, expect, it } from 'vitest';
import type { Filesystem as CoreFilesystem } from '../../lib/ext4/filesystem.js';
import { Filesystem } from '../../lib/node.js';
import { INODE_FLAGS } from '../../lib/ext4/inode.js';
import { openFile } from '../../lib/ops/file.js';
import { createFile, createFileTx, mkdir, mknod, symlink, unlink } from '../../lib/ops/namespace.js';
import { importTree } from '../../lib/ops/import-tree.js';
import type { TreeEntry } from '../../lib/ops/tree-entry.js';
import { debugfs, debugfsDump, debugfsStats, expectE2fsckClean, quoteDebugfs } from '../helpers/tools.js';
import { HAVE_E2FSPROGS, codeOf, pattern } from '../ops/helpers.js';
import { makeNsImage, withWritableAt } from './helpers.js';

const NOW = { sec: 1_750_000_000, nsec: 0 };
const CF: number = INODE_FLAGS.CASEFOLD;

/** The other inherited flags our writer knows (chattr +S +d +A +D). */
const OTHERS = INODE_FLAGS.SYNC | INODE_FLAGS.NODUMP | INODE_FLAGS.NOATIME | INODE_FLAGS.DIRSYNC;

/**
 * A small ext4 (1 KiB blocks, so a directory indexes early) with /a set +F by debugfs, as chattr
 * +F would on an empty directory, and /plain set +S +d +A +D.
 */
function casefoldImage(name: string, feature = true): string {
  const img = makeNsImage({ name, kind: 'ext4', blockSize: 1024, sizeMiB: 8, mkfsOpts: feature ? ['-O', 'casefold'] : [], tree: { 'a/': null, 'plain/': null } });
  const st = debugfsStats(img, ['/a', '/plain']);
  const flags = (p: string, add: number) => `set_inode_field ${p} flags 0x${((st.get(p)!.flags | add) >>> 0).toString(16)}`;
  debugfs(img, [flags('/a', CF), flags('/plain', OTHERS)], { write: true });
  return img;
}

/** Each path's flags within `mask` (debugfs stat). */
function flagsOf(img: string, paths: string[], mask = CF): Record<string, number> {
  const st = debugfsStats(img, paths);
  return Object.fromEntries(paths.map((p) => {
    const s = st.get(p);
    if (!s) throw new Error(`debugfs stat ${p} failed`);
    return [p, (s.flags & mask) >>> 0];
  }));
}

/** The names debugfs lists (`ls -p`: /ino/mode/uid/gid/name/size/), as stored, '.' and '..' left out. */
function debugfsNames(img: string, dir: string): string[] {
  const out = debugfs(img, [`ls -p ${quoteDebugfs(dir)}`]);
  const names = out.split('\n').map((l) => l.split('/')).filter((f) => f.length >= 7 && f[0] === '').map((f) => f[5]!);
  return names.filter((n) => n !== '.' && n !== '..').sort();
}

const inoOf = async (fs: CoreFilesystem, p: string) => (await fs.resolve(p)).ino;

describe.skipIf(!HAVE_E2FSPROGS)('casefold (+F) inheritance and names', () => {
  it('mkdir, create, symlink, mknod in a +F directory: subdirectories +F, others not (+S +d +A +D by ext4_mask_flags too); folded names; htree by folded hash', async () => {
    const img = casefoldImage('cf-inherit');
    const content = pattern(3000, 5);
    // 160 mixed-case names in /a/b/c: with 1 KiB blocks an htree with leaf splits, hashed folded.
    const many = Array.from({ length: 160 }, (_, i) => `Mixed_Case_${String(i).padStart(3, '0')}`);
    await withWritableAt(img, NOW, async (fs) => {
      await mkdir(fs, '/a/b');
      await mkdir(fs, '/a/B/c'); // the parent found folded
      const ino = await createFile(fs, '/a/b/File', { mode: 0o644 });
      await (await openFile(fs, ino)).pwrite(content, 0);
      await symlink(fs, 'File', '/a/b/Link');
      await mknod(fs, '/a/b/Fifo', 'fifo');
      await mkdir(fs, '/plain/d');
      await symlink(fs, 'd', '/plain/L');
      await mknod(fs, '/plain/S', 'socket');
      await fs.transact(async (tx) => {
        for (const n of many) await createFileTx(tx, `/a/b/c/${n}`);
      });
      // The same names spelt otherwise exist already (ext4_match folded: EEXIST).
      expect(await codeOf(createFile(fs, '/a/b/FILE', { exclusive: true }))).toBe('EEXIST');
      expect(await codeOf(mkdir(fs, '/a/b/file'))).toBe('EEXIST');
      expect(await codeOf(createFile(fs, '/a/b/c/MIXED_CASE_077', { exclusive: true }))).toBe('EEXIST');
      // …but not in a directory without +F.
      await createFile(fs, '/plain/D', { exclusive: true });
      // A remove by another spelling removes the stored name.
      await unlink(fs, '/a/b/c/mixed_case_100');
    });
    expectE2fsckClean(img, 'after creates in a casefolded directory');
    expect(flagsOf(img, ['/a', '/a/b', '/a/b/c', '/a/b/File', '/a/b/Link', '/a/b/Fifo', '/plain/d', '/plain/D'])).toEqual({
      '/a': CF, '/a/b': CF, '/a/b/c': CF, '/a/b/File': 0, '/a/b/Link': 0, '/a/b/Fifo': 0, '/plain/d': 0, '/plain/D': 0,
    });
    // ext4_mask_flags: a directory takes all, a regular file all but DIRSYNC, anything else NODUMP and NOATIME only.
    expect(flagsOf(img, ['/plain/d', '/plain/D', '/plain/L', '/plain/S'], OTHERS)).toEqual({
      '/plain/d': OTHERS, '/plain/D': OTHERS & ~INODE_FLAGS.DIRSYNC, '/plain/L': INODE_FLAGS.NODUMP | INODE_FLAGS.NOATIME, '/plain/S': INODE_FLAGS.NODUMP | INODE_FLAGS.NOATIME,
    });
    expect(debugfsNames(img, '/a/b')).toEqual(['Fifo', 'File', 'Link', 'c']);
    expect(debugfsNames(img, '/a/b/c')).toEqual(many.filter((n) => n !== 'Mixed_Case_100').sort());
    expect(new Uint8Array(debugfsDump(img, '/a/b/File'))).toEqual(content);
    expect((debugfsStats(img, ['/a/b/c']).get('/a/b/c')!.flags & INODE_FLAGS.INDEX) !== 0).toBe(true);
    const fs = await Filesystem.open(img);
    try {
      const file = await fs.resolve('/a/B/file');
      expect(file.ino).toBe(await inoOf(fs, '/a/b/File'));
      expect(await fs.read(file, 0, content.length)).toEqual(content);
      for (const n of many.filter((x) => x !== 'Mixed_Case_100')) expect(await inoOf(fs, `/a/b/C/${n.toUpperCase()}`), n).toBe(await inoOf(fs, `/a/b/c/${n}`));
      expect(await codeOf(fs.resolve('/a/b/c/MIXED_CASE_100'))).toBe('ENOENT');
      expect(await codeOf(fs.resolve('/plain/PLAIN'))).toBe('ENOENT');
    } finally {
      await fs.close();
    }
  }, 60_000);

  it('import into a +F directory: its new directories +F, names merged folded (Deeper and DEEPER are one directory)', async () => {
    const img = casefoldImage('cf-import');
    const file = (path: string, data: Uint8Array): TreeEntry => ({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, size: data.length, data });
    const dir = (path: string): TreeEntry => ({ path, type: 'dir', mode: 0o755, uid: 0, gid: 0 });
    const readme = pattern(1500, 9), y = pattern(700, 11);
    const names = Array.from({ length: 120 }, (_, i) => `Name_${String(i).padStart(3, '0')}`);
    const entries: TreeEntry[] = [
      dir(''), dir('Sub'), dir('Sub/Deeper'), file('Sub/Readme.txt', readme), dir('Sub/DEEPER'), file('Sub/DEEPER/y', y),
      ...names.map((n) => file(`Sub/Deeper/${n}`, new Uint8Array(0))),
    ];
    await withWritableAt(img, NOW, (fs) => importTree(fs, entries, { at: '/a', now: NOW }));
    expectE2fsckClean(img, 'after an import into a casefolded directory');
    expect(flagsOf(img, ['/a/Sub', '/a/Sub/Deeper', '/a/Sub/Readme.txt', '/a/Sub/Deeper/y'])).toEqual({
      '/a/Sub': CF, '/a/Sub/Deeper': CF, '/a/Sub/Readme.txt': 0, '/a/Sub/Deeper/y': 0,
    });
    expect(debugfsNames(img, '/a/Sub')).toEqual(['Deeper', 'Readme.txt']);
    expect(debugfsNames(img, '/a/Sub/Deeper')).toEqual([...names, 'y'].sort());
    expect(new Uint8Array(debugfsDump(img, '/a/Sub/Deeper/y'))).toEqual(y);
    // A second import naming an existing file by another spelling: EEXIST, as open(O_CREAT|O_EXCL) would be.
    await withWritableAt(img, NOW, async (fs) => {
      expect(await codeOf(importTree(fs, [dir(''), file('README.TXT', readme)], { at: '/a/sub', now: NOW }))).toBe('EEXIST');
    });
    expectE2fsckClean(img, 'after the refused import');
    const fs = await Filesystem.open(img);
    try {
      expect(await fs.read(await fs.resolve('/a/SUB/readme.TXT'), 0, readme.length)).toEqual(readme);
      for (const n of names) expect(await inoOf(fs, `/a/sub/deeper/${n.toLowerCase()}`), n).toBe(await inoOf(fs, `/a/Sub/Deeper/${n}`));
    } finally {
      await fs.close();
    }
  }, 60_000);

  it('+F on a directory of a filesystem without the casefold feature: corruption (as __ext4_iget refuses it)', async () => {
    const img = casefoldImage('cf-nofeature', false);
    await withWritableAt(img, NOW, async (fs) => {
      expect(await codeOf(mkdir(fs, '/a/b'))).toBe('EFSCORRUPTED');
    });
  }, 60_000);
});
