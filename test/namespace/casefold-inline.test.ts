/**
 * Casefolded (+F) directories stored inline (inline_data). On an inline_data filesystem every new
 * directory starts in its inode (ext4_init_inline_dir), and a subdirectory of a casefolded one is
 * casefolded too (ext4_mask_flags), so these are what any mkdir under a +F directory makes. The
 * kernel edits them as any inline directory, with names compared by ext4_match — folded
 * (ext4_find_dest_de's EEXIST, ext4_search_dir's lookup) — and, when one outgrows its inode,
 * ext4_convert_inline_dir copies the entries to a block that stays +F: from then on an htree
 * hashes the folded names. Strict encoding refuses a name that is not UTF-8 (EINVAL) before the
 * directory is touched.
 *
 * Oracles: e2fsck -fn after every write (pass 2 checks an htree's leaves against the hashes of the
 * folded names and flags names equal after folding), debugfs (flags, sizes, stored names,
 * inodes). This kernel has no CONFIG_UNICODE, so casefold images do not mount here.
 */
import { describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { INODE_FLAGS } from '../../lib/ext4/inode.js';
import { openFile } from '../../lib/ops/file.js';
import { createFile, createFileTx, link, mkdir, rename, rmdir, unlink } from '../../lib/ops/namespace.js';
import { debugfs, debugfsDump, debugfsStats, expectE2fsckClean, quoteDebugfs } from '../helpers/tools.js';
import { HAVE_E2FSPROGS, codeOf, pattern } from '../ops/helpers.js';
import { importTree } from '../../lib/ops/import-tree.js';
import type { TreeEntry } from '../../lib/ops/tree-entry.js';
import { makeNsImage, withWritableAt } from './helpers.js';

const NOW = { sec: 1_750_000_000, nsec: 0 };
const CF = INODE_FLAGS.CASEFOLD, INLINE = INODE_FLAGS.INLINE_DATA, INDEX = INODE_FLAGS.INDEX;

/** 1 KiB blocks, casefold + inline_data, /a made +F (kept inline) by debugfs, as chattr +F would on an empty directory. */
function image(name: string, strict = false): string {
  const img = makeNsImage({
    name, kind: 'ext4', blockSize: 1024, sizeMiB: 8, tree: { 'a/': null },
    mkfsOpts: ['-O', 'casefold,inline_data', ...(strict ? ['-E', 'encoding=utf8,encoding_flags=strict'] : [])],
  });
  const f = debugfsStats(img, ['/a']).get('/a')!.flags;
  expect(f & INLINE).toBe(INLINE);
  debugfs(img, [`set_inode_field /a flags 0x${((f | CF) >>> 0).toString(16)}`], { write: true });
  return img;
}

/** A path's flags among +F, inline and index, and its size (debugfs stat). */
function shape(img: string, p: string): { flags: number; size: number } {
  const s = debugfsStats(img, [p]).get(p);
  if (!s) throw new Error(`debugfs stat ${p} failed`);
  return { flags: (s.flags & (CF | INLINE | INDEX)) >>> 0, size: s.size };
}

/** Live names and inodes as debugfs lists them (`ls -p`; an inline area's unused entries show as inode 0), '.' and '..' left out, sorted by name. */
function listing(img: string, dir: string): [string, number][] {
  const out = debugfs(img, [`ls -p ${quoteDebugfs(dir)}`]);
  const rows = out.split('\n').map((l) => l.split('/')).filter((f) => f.length >= 7 && f[0] === '' && f[1] !== '0' && f[5] !== '.' && f[5] !== '..');
  return rows.map((f): [string, number] => [f[5]!, Number(f[1])]).sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
}

describe.skipIf(!HAVE_E2FSPROGS)('casefolded inline directories', () => {
  it('create, link, rename, unlink, rmdir in a +F inline directory compare names folded; it stays inline', async () => {
    const img = image('cfi-edit');
    const content = pattern(200, 3);
    const ino: Record<string, number> = {};
    await withWritableAt(img, NOW, async (fs) => {
      ino.Sub = await mkdir(fs, '/a/Sub'); // into the +F inline /a
      ino.File = await createFile(fs, '/a/SUB/File', { mode: 0o644 }); // the parent found folded
      await (await openFile(fs, ino.File)).pwrite(content, 0);
      ino.Other = await createFile(fs, '/a/Sub/Other', { mode: 0o644 });
      ino.Dir = await mkdir(fs, '/a/Sub/Dir');
      // ext4_find_dest_de: a name equal after folding is EEXIST.
      expect(await codeOf(createFile(fs, '/a/Sub/FILE', { exclusive: true }))).toBe('EEXIST');
      expect(await codeOf(mkdir(fs, '/a/sub/dir'))).toBe('EEXIST');
      expect(await codeOf(mkdir(fs, '/a/sub'))).toBe('EEXIST');
      await link(fs, '/a/sub/file', '/a/Sub/Hard');
      expect(await codeOf(link(fs, '/a/Sub/Other', '/a/Sub/HARD'))).toBe('EEXIST');
      await rename(fs, '/a/Sub/OTHER', '/a/Sub/Renamed');
      // Over an existing name spelt otherwise: the entry keeps its stored name ("Hard"), now the renamed inode (ext4_setent).
      await rename(fs, '/a/Sub/renamed', '/a/Sub/hard');
      await unlink(fs, '/a/sub/file');
      await rmdir(fs, '/a/Sub/DIR');
      ino.Kept = await createFile(fs, '/a/Sub/Kept', { mode: 0o644 });
      // A spelling of the same name is the same file: rename does nothing (vfs_rename, source == target).
      await rename(fs, '/a/Sub/kept', '/a/Sub/KEPT');
    });
    expectE2fsckClean(img, 'after edits in a casefolded inline directory');
    expect(shape(img, '/a')).toEqual({ flags: CF | INLINE, size: 60 });
    expect(shape(img, '/a/Sub').flags).toBe(CF | INLINE);
    expect(listing(img, '/a')).toEqual([['Sub', ino.Sub]]);
    expect(listing(img, '/a/Sub')).toEqual([['Hard', ino.Other], ['Kept', ino.Kept]]);
    const fs = await Filesystem.open(img);
    try {
      expect((await fs.resolve('/a/SUB/hArD')).ino).toBe(ino.Other);
      expect(await codeOf(fs.resolve('/a/Sub/File'))).toBe('ENOENT');
      expect(await codeOf(fs.resolve('/a/Sub/Dir'))).toBe('ENOENT');
    } finally {
      await fs.close();
    }
    // The inode File held is gone with its last name (e2fsck above would flag a leak); Other has one link.
    expect(debugfsStats(img, ['/a/Sub/Hard']).get('/a/Sub/Hard')!.links).toBe(1);
    expect(new Uint8Array(debugfsDump(img, '/a/Sub/Kept'))).toEqual(new Uint8Array(0));
  }, 60_000);

  it('a +F inline directory that outgrows its inode becomes a +F block directory, then an htree hashed on folded names', async () => {
    const img = image('cfi-grow');
    const names = Array.from({ length: 150 }, (_, i) => `Grow_Name_${String(i).padStart(3, '0')}`);
    const shapes: { flags: number; size: number }[] = [];
    await withWritableAt(img, NOW, (fs) => mkdir(fs, '/a/d'));
    // One name per write open until the directory leaves the inode, the rest in one transaction.
    let i = 0;
    for (; i < 12; i++) {
      await withWritableAt(img, NOW, (fs) => createFile(fs, `/a/d/${names[i]}`));
      shapes.push(shape(img, '/a/d'));
    }
    expectE2fsckClean(img, 'after the conversion to a block');
    expect(shapes[0]!.flags).toBe(CF | INLINE);
    const converted = shapes.findIndex((s) => !(s.flags & INLINE));
    expect(converted).toBeGreaterThan(0);
    expect(shapes[converted]).toEqual({ flags: CF, size: 1024 });
    await withWritableAt(img, NOW, async (fs) => {
      // Still folded as a block directory.
      expect(await codeOf(createFile(fs, `/a/d/${names[3]!.toUpperCase()}`, { exclusive: true }))).toBe('EEXIST');
      await fs.transact(async (tx) => {
        for (; i < names.length; i++) await createFileTx(tx, `/a/d/${names[i]}`);
      });
      await unlink(fs, `/a/D/${names[40]!.toLowerCase()}`);
      expect(await codeOf(createFile(fs, `/a/d/${names[99]!.toLowerCase()}`, { exclusive: true }))).toBe('EEXIST');
    });
    expectE2fsckClean(img, 'after the htree grew');
    expect(shape(img, '/a/d').flags).toBe(CF | INDEX);
    const kept = names.filter((_, k) => k !== 40);
    expect(listing(img, '/a/d').map(([n]) => n)).toEqual(kept);
    const fs = await Filesystem.open(img);
    try {
      for (const n of kept) expect(await fs.resolve(`/a/d/${n.toLowerCase()}`), n).toBeTruthy();
      expect(await codeOf(fs.resolve(`/a/d/${names[40]}`))).toBe('ENOENT');
    } finally {
      await fs.close();
    }
  }, 60_000);

  it('strict encoding: a name that is not UTF-8 is EINVAL and leaves the inline directory as it was, full or not', async () => {
    const img = image('cfi-strict', true);
    const bad = (dir: string) => new Uint8Array([...new TextEncoder().encode(`${dir}/x`), 0xff]);
    await withWritableAt(img, NOW, async (fs) => {
      expect(await codeOf(createFile(fs, bad('/a')))).toBe('EINVAL');
      expect(await codeOf(mkdir(fs, bad('/a')))).toBe('EINVAL');
      // k names take /a/f out of its inode; k - 1 fill /a/g to the last name that still fits inline.
      await mkdir(fs, '/a/f');
      let k = 0;
      while ((await fs.resolve('/a/f')).flags & INLINE) await createFile(fs, `/a/f/n${k++}`);
      await mkdir(fs, '/a/g');
      for (let j = 0; j < k - 1; j++) await createFile(fs, `/a/g/n${j}`);
    });
    const before = shape(img, '/a/g');
    expect(before.flags).toBe(CF | INLINE);
    expect(before.size).toBeGreaterThan(60);
    await withWritableAt(img, NOW, async (fs) => {
      expect(await codeOf(createFile(fs, bad('/a/g')))).toBe('EINVAL');
      expect(await codeOf(rename(fs, '/a/g/n0', bad('/a/g')))).toBe('EINVAL');
      expect(await codeOf(link(fs, '/a/g/n0', bad('/a/g')))).toBe('EINVAL');
    });
    expectE2fsckClean(img, 'after refused names under strict encoding');
    expect(shape(img, '/a/g')).toEqual(before);
    expect(shape(img, '/a').flags).toBe(CF | INLINE);
  }, 60_000);

  it('import into a +F inline directory: names merged folded, directories made inline and +F, grown ones converted', async () => {
    const img = image('cfi-import');
    const file = (p: string, data: Uint8Array): TreeEntry => ({ path: p, type: 'file', mode: 0o644, uid: 0, gid: 0, size: data.length, data });
    const dir = (p: string): TreeEntry => ({ path: p, type: 'dir', mode: 0o755, uid: 0, gid: 0 });
    const y = pattern(30, 4);
    const many = Array.from({ length: 40 }, (_, k) => `Many_${String(k).padStart(2, '0')}`);
    const entries: TreeEntry[] = [dir(''), dir('Small'), file('Small/y', y), dir('SMALL'), file('small/Z', y), dir('Big'), ...many.map((n) => file(`Big/${n}`, new Uint8Array(0)))];
    await withWritableAt(img, NOW, (fs) => importTree(fs, entries, { at: '/a', now: NOW }));
    expectE2fsckClean(img, 'after an import into a casefolded inline directory');
    expect(listing(img, '/a').map(([n]) => n)).toEqual(['Big', 'Small']);
    expect(listing(img, '/a/Small').map(([n]) => n)).toEqual(['Z', 'y']);
    expect(shape(img, '/a/Small').flags).toBe(CF | INLINE);
    expect(shape(img, '/a/Big').flags & (CF | INLINE)).toBe(CF);
    expect(listing(img, '/a/Big').map(([n]) => n)).toEqual(many);
    expect(new Uint8Array(debugfsDump(img, '/a/Small/Z'))).toEqual(y);
  }, 60_000);
});
