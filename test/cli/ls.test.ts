/**
 * `ext4kit ls` against the source trees the MATRIX images were made from
 * (`mkfs -d`): `ls -R --json` must list exactly the snapshot, field for
 * field, on the default image and on the 1 KiB, ext2, ext3 and inline_data
 * images; plus the non-recursive, single-file, symlink and human forms.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { mkfs } from '../helpers/tools.js';
import { getImage } from '../helpers/images.js';
import { expectedImageMtime, type Entry } from '../helpers/tree.js';
import { debugfsStat, cli, cliJson } from './helpers.js';
import type { ListEntry } from '../../lib/ops/inspect.js';

const RECIPES = ['ext4-4k', 'ext4-1k', 'ext2', 'ext3-1k', 'ext4-inline'];

/** The fields a snapshot can vouch for (directory sizes are the source filesystem's own). */
function fromSnapshot(e: Entry) {
  return {
    path: '/' + e.path,
    name: e.name,
    type: e.type,
    mode: e.mode,
    size: e.type === 'dir' ? null : e.size,
    nlink: e.nlink,
    uid: e.uid,
    gid: e.gid,
    mtime: expectedImageMtime(e),
    target: e.target ?? null,
    rdev: e.rdev ?? null,
  };
}

function fromList(e: ListEntry) {
  return {
    path: e.path,
    name: e.name,
    type: e.type,
    mode: e.mode,
    size: e.type === 'dir' ? null : e.size,
    nlink: e.nlink,
    uid: e.uid,
    gid: e.gid,
    mtime: e.mtime,
    target: e.target ?? null,
    rdev: e.rdev ?? null,
  };
}

describe.each(RECIPES)('ls -R --json on %s', (name) => {
  it('equals the source-tree snapshot', async () => {
    const im = getImage(name);
    const got = await cliJson<ListEntry[]>(['ls', '-R', '--json', im.image]);
    expect(got.filter((e) => e.path === '/lost+found')).toHaveLength(1);
    const mine = got.filter((e) => e.path !== '/lost+found' && !e.path.startsWith('/lost+found/'));
    const want = im.entries.map(fromSnapshot);
    // mkfs -d with inline_data loses trailing holes (i_size stops at the last data block): for
    // those files the image, not the source, is the truth; debugfs must agree with us.
    const sizeFixups = new Map<string, number>();
    if (im.recipe.mkfsOpts.includes('inline_data')) {
      for (const e of mine) {
        const w = want.find((x) => x.path === e.path);
        if (w && e.type === 'file' && w.size !== e.size) {
          expect(e.size, `${e.path}: size below the source's`).toBeLessThan(w.size!);
          expect(debugfsStat(im.image, e.path).size).toBe(e.size);
          sizeFixups.set(e.path, e.size);
        }
      }
      expect(sizeFixups.size).toBeLessThanOrEqual(4);
    }
    for (const w of want) if (sizeFixups.has(w.path)) w.size = sizeFixups.get(w.path)!;
    expect(mine.map(fromList)).toEqual(want);
    // inode numbers: hard links share one, everything else is distinct
    const inoOf = new Map(mine.map((e) => [e.path, e.ino]));
    const pathsByIno = new Map<number, string[]>();
    for (const e of mine) if (e.type !== 'dir') pathsByIno.set(e.ino, [...(pathsByIno.get(e.ino) ?? []), e.path]);
    const pathsByGroup = new Map<string, string[]>();
    for (const e of im.entries) if (e.linkGroup) pathsByGroup.set(e.linkGroup, [...(pathsByGroup.get(e.linkGroup) ?? []), '/' + e.path]);
    for (const [group, paths] of pathsByGroup) expect(pathsByIno.get(inoOf.get('/' + group)!), group).toEqual(paths);
    expect(new Set(mine.filter((e) => e.type === 'dir').map((e) => e.ino)).size).toBe(mine.filter((e) => e.type === 'dir').length);
  });
});

describe('ls forms', () => {
  const im = () => getImage('ext4-4k');

  it('lists one directory without recursion, sorted by name bytes, without . and ..', async () => {
    const got = await cliJson<ListEntry[]>(['ls', '--json', im().image, '/names']);
    const want = im()
      .entries.filter((e) => e.path.startsWith('names/') && !e.path.slice(6).includes('/'))
      .map(fromSnapshot);
    expect(got.map(fromList)).toEqual(want);
    const names = got.map((e) => Buffer.from(e.name));
    for (let i = 1; i < names.length; i++) expect(Buffer.compare(names[i - 1]!, names[i]!)).toBeLessThan(0);
  });

  it('PATH defaults to /, includes lost+found, and paths are normalised', async () => {
    const a = await cliJson<ListEntry[]>(['ls', '--json', im().image]);
    const b = await cliJson<ListEntry[]>(['ls', '--json', im().image, '//./']);
    expect(b).toEqual(a);
    expect(a.map((e) => e.name)).toContain('lost+found');
    const sub = await cliJson<ListEntry[]>(['ls', '--json', im().image, 'links//sub/']);
    expect(sub.map((e) => e.path)).toEqual(['/links/sub/c']);
  });

  it('a file lists itself; a symlink is not followed unless the path ends in /', async () => {
    const f = await cliJson<ListEntry[]>(['ls', '--json', im().image, '/sizes/one']);
    expect(f.map(fromList)).toEqual(im().entries.filter((e) => e.path === 'sizes/one').map(fromSnapshot));
    const l = await cliJson<ListEntry[]>(['ls', '--json', im().image, '/symlinks/to-dir']);
    expect(l).toHaveLength(1);
    expect(l[0]).toMatchObject({ path: '/symlinks/to-dir', type: 'symlink', target: '../deep' });
    const d = await cliJson<ListEntry[]>(['ls', '--json', im().image, '/symlinks/to-dir/']);
    expect(d.map((e) => e.name)).toEqual(['l01']);
    const r = await cli(['ls', im().image, '/sizes/one/']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^ext4kit: ENOTDIR: /);
  });

  it('-R does not descend through symlinks and lists a subtree in pre-order', async () => {
    const got = await cliJson<ListEntry[]>(['ls', '-R', '--json', im().image, '/links']);
    expect(got.map((e) => e.path)).toEqual(['/links/a', '/links/b', '/links/sub', '/links/sub/c', '/links/x', '/links/y']);
    const sl = await cliJson<ListEntry[]>(['ls', '-R', '--json', im().image, '/symlinks']);
    expect(sl.every((e) => e.type === 'symlink')).toBe(true);
  });

  it('human output: ls -l mode strings, owners, device numbers and link targets', async () => {
    const img = im().image;
    const r = await cli(['ls', img, '/modes']);
    expect(r.status).toBe(0);
    const lines = r.stdout.toString('utf8').trimEnd().split('\n');
    // the mode column must equal GNU ls -l on the source tree
    const src = path.join(im().srcDir, 'modes');
    const gnu = spawnSync('ls', ['-la', '--time-style=+', src], { encoding: 'utf8', env: { LC_ALL: 'C' } }).stdout.trimEnd().split('\n').slice(1);
    const gnuModes = new Map<string, string>();
    for (const l of gnu) {
      const f = l.split(/\s+/);
      const n = f[f.length - 1]!;
      if (n !== '.' && n !== '..') gnuModes.set(n, f[0]!.slice(0, 10));
    }
    expect(lines).toHaveLength(gnuModes.size);
    for (const l of lines) {
      const f = l.split(/\s+/);
      expect(gnuModes.get(f[f.length - 1]!), l).toBe(f[1]);
    }
    const special = (await cli(['ls', img, '/special'])).stdout.toString('utf8');
    for (const e of im().entries.filter((x) => x.path.startsWith('special/'))) {
      const line = special.split('\n').find((l) => l.endsWith(` ${e.name}`));
      expect(line, e.name).toBeDefined();
      if (e.rdev) expect(line).toContain(` ${e.rdev.major}, ${e.rdev.minor} `);
    }
    const links = (await cli(['ls', img, '/symlinks'])).stdout.toString('utf8');
    expect(links).toMatch(/^\d+ lrwxrwxrwx +1 +0 +0 +14 \d{4}-\d\d-\d\d \d\d:\d\d dangling -> does\/not\/exist$/m);
    const rec = (await cli(['ls', '-R', img, '/links'])).stdout.toString('utf8');
    expect(rec).toMatch(/ \/links\/sub\/c$/m);
  });

  it('names that are not valid UTF-8 are decoded with U+FFFD and sorted by their raw bytes', async () => {
    const src = tmpDir('bad-utf8');
    const mk = (bytes: number[]) => fs.writeFileSync(Buffer.concat([Buffer.from(src + '/'), Buffer.from(bytes)]), Buffer.from(bytes));
    mk([0x61, 0xff, 0x62]); // a\xffb
    mk([0x61, 0xef, 0xbf, 0xbd, 0x63]); // a + a real U+FFFD + c: sorts before a\xffb
    mk([0x7a]);
    const img = tmpPath('bad-utf8.img');
    mkfs('ext4', img, 8 * 1024 * 1024, ['-b', '1024'], src);
    const got = await cliJson<ListEntry[]>(['ls', '--json', img]);
    expect(got.map((e) => e.name)).toEqual(['a\ufffdc', 'a\ufffdb', 'lost+found', 'z']);
    expect(got[1]!.path).toBe('/a\ufffdb');
  });
});
