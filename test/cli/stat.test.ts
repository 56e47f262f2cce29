/**
 * `ext4kit stat --json` against `debugfs stat` (inode number, type, mode,
 * owner, size, links, i_blocks, flags, generation, all four times with
 * nanoseconds and epoch bits, fast symlink targets, device numbers) and
 * against the source snapshot (xattrs, device numbers, symlink targets).
 */
import { describe, expect, it } from 'vitest';
import { getImage } from '../helpers/images.js';
import type { StatResult } from '../../lib/ops/inspect.js';
import { cli, cliInProcess, debugfsStatMany } from './helpers.js';

const TYPE: Record<string, string> = { regular: 'file', directory: 'dir', character: 'chardev', block: 'blockdev', symlink: 'symlink', FIFO: 'fifo', socket: 'socket' };

async function statJson(img: string, p: string): Promise<StatResult> {
  const r = await cliInProcess(['stat', '--json', img, p]);
  if (r.status !== 0) throw new Error(`stat ${p}: ${r.stderr}`);
  return JSON.parse(r.stdout.toString('utf8')) as StatResult;
}

const RECIPES = ['ext4-4k', 'ext4-1k', 'ext2', 'ext3-1k', 'ext4-inline', 'ext4-inode128'];
const PICK = /^(sizes|big|sparse|symlinks|special|modes|owners|times|xattr|links)\/|^(bigdir|empty-dir|deep|names\/日本語のファイル\.txt)$/;

describe.each(RECIPES)('stat --json on %s', (name) => {
  it('equals debugfs stat and the snapshot', async () => {
    const im = getImage(name);
    const entries = im.entries.filter((e) => PICK.test(e.path));
    expect(entries.length).toBeGreaterThan(50);
    const oracle = debugfsStatMany(im.image, entries.map((e) => '/' + e.path));
    for (const [i, e] of entries.entries()) {
      const p = '/' + e.path;
      const s = await statJson(im.image, p);
      const d = oracle[i]!;
      const where = `${name}:${p}`;
      expect(s.path, where).toBe(p);
      expect(s.ino, where).toBe(d.ino);
      expect(s.type, where).toBe(TYPE[d.type]);
      expect(s.mode, where).toBe(d.mode);
      expect([s.uid, s.gid, s.size, s.nlink], where).toEqual([d.uid, d.gid, d.size, d.links]);
      expect(s.blocks, where).toBe(d.blockcount);
      expect(s.flags, where).toBe(d.flags);
      expect(s.generation, where).toBe(d.generation);
      expect(s.atime, where).toEqual(d.times.atime);
      expect(s.mtime, where).toEqual(d.times.mtime);
      expect(s.ctime, where).toEqual(d.times.ctime);
      expect(s.crtime, where).toEqual(d.times.crtime);
      if (name === 'ext4-inode128') expect(s.crtime).toBeNull();
      // snapshot: type, mode, owner, target, device numbers, xattrs
      expect([s.type, s.mode, s.uid, s.gid], where).toEqual([e.type, e.mode, e.uid, e.gid]);
      expect(s.target, where).toBe(e.target);
      if (d.fastLinkTarget !== null) expect(s.target, where).toBe(d.fastLinkTarget);
      expect(s.rdev, where).toEqual(e.rdev);
      if (e.rdev) expect(s.rdev, where).toEqual(d.device);
      const xa = Object.fromEntries(s.xattrs.filter((x) => x.name !== 'system.data').map((x) => [x.name, Buffer.from(x.value, 'base64').toString('hex')]));
      expect(xa, where).toEqual(e.xattrs);
      // mapping
      if (e.type === 'chardev' || e.type === 'blockdev' || e.type === 'fifo' || e.type === 'socket') expect(s.mapping, where).toBe('none');
    }
  });
});

describe('stat forms', () => {
  it('does not follow a final symlink, but does with a trailing /', async () => {
    const img = getImage('ext4-4k').image;
    const l = await statJson(img, '/symlinks/to-dir');
    expect(l).toMatchObject({ type: 'symlink', target: '../deep', mode: 0o777 });
    const d = await statJson(img, '/symlinks/to-dir/');
    expect(d.type).toBe('dir');
    expect(d.ino).toBe((await statJson(img, '/deep')).ino);
  });

  it('htree directories carry the INDEX flag; the mapping of inline files is "inline"', async () => {
    const s = await statJson(getImage('ext4-4k').image, '/bigdir');
    expect(s.flags & 0x1000).toBe(0x1000);
    expect(s.mapping).toBe('extents');
    const i = await statJson(getImage('ext4-inline').image, '/sizes/sixty');
    expect(i.mapping).toBe('inline');
    expect(i.xattrs.map((x) => x.name)).toContain('system.data');
    expect(i.extents).toBeUndefined();
  });

  it('human output (spawned binary)', async () => {
    const img = getImage('ext4-4k').image;
    const r = await cli(['stat', img, '/modes/all-7777']);
    expect(r.status).toBe(0);
    const t = r.stdout.toString('utf8');
    expect(t).toMatch(/^Mode: +7777 \(-rwsrwsrwt\)$/m);
    expect(t).toMatch(/^Type: +file$/m);
    expect(t).toMatch(/^Flags: +0x80000 \(extents\)$/m);
    const x = (await cli(['stat', img, '/xattr/mixed'])).stdout.toString('utf8');
    expect(x).toMatch(/^ {2}user\.text = "some text value"$/m);
    expect(x).toMatch(/^ {2}user\.empty = ""$/m);
    expect(x).toMatch(/^ {2}user\.big = 0x[0-9a-f]+$/m);
    const dev = (await cli(['stat', img, '/special/chardev-big'])).stdout.toString('utf8');
    expect(dev).toMatch(/^Device: +300, 70000$/m);
    const tm = (await cli(['stat', img, '/times/pre-1970'])).stdout.toString('utf8');
    expect(tm).toMatch(/^Modify: +1966-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9} UTC \(-\d+\)$/m);
  });
});
