/**
 * Exit status and messages: "ext4kit: CODE: message" and exit 1 for
 * failed operations, exit 2 for usage errors, 0 for --help/--version;
 * --no-verify reads through checksum errors; the bundle is self-contained
 * and the unbundled entry (node --import tsx lib/cli/main.ts) behaves the same.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getImage } from '../helpers/images.js';
import { tmpPath } from '../helpers/tmp.js';
import { debugfsFull, mkfs } from '../helpers/tools.js';
import { Filesystem } from '../../lib/node.js';
import { cli, cliBundle, cliInProcess } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('operation errors: exit 1, "ext4kit: CODE: message" on stderr, nothing on stdout', () => {
  const img = () => getImage('ext4-4k').image;
  const cases: [string, () => string[], RegExp][] = [
    ['nonexistent path', () => ['ls', img(), '/no/such/file'], /^ext4kit: ENOENT: \/no\/such\/file: no such file or directory\n$/],
    ['nonexistent path (cat)', () => ['cat', img(), '/nope'], /^ext4kit: ENOENT: /],
    ['nonexistent path (stat)', () => ['stat', '--json', img(), '/nope'], /^ext4kit: ENOENT: /],
    ['nonexistent path (extents)', () => ['extents', img(), '/nope'], /^ext4kit: ENOENT: /],
    ['a component that is a file', () => ['ls', img(), '/sizes/one/x'], /^ext4kit: ENOTDIR: /],
    ['image that does not exist', () => ['info', '/nonexistent/image.img'], /^ext4kit: ENOENT: .*\/nonexistent\/image\.img/],
    ['image that is a directory', () => ['info', '/tmp'], /^ext4kit: EISDIR: /],
    ['dangling symlink', () => ['cat', img(), '/symlinks/dangling'], /^ext4kit: ENOENT: /],
  ];
  it.each(cases)('%s', async (_what, args, re) => {
    const r = await cli(args());
    expect(r.stderr).toMatch(re);
    expect(r.status).toBe(1);
    expect(r.stdout.length).toBe(0);
  });

  it('not an ext2/3/4 image: EINVAL (bad magic, too small)', async () => {
    const junk = tmpPath('junk.img');
    fs.writeFileSync(junk, Buffer.alloc(1024 * 1024, 0x5a));
    for (const cmd of [['info', junk], ['ls', junk], ['cat', junk, '/x'], ['stat', junk, '/'], ['extents', junk, '/']]) {
      const r = await cli(cmd);
      expect(r.status, cmd.join(' ')).toBe(1);
      expect(r.stderr, cmd.join(' ')).toMatch(/^ext4kit: EINVAL: bad magic 0x5a5a: not an ext2\/3\/4 filesystem/);
    }
    const tiny = tmpPath('tiny.img');
    fs.writeFileSync(tiny, 'x');
    const t = await cli(['info', tiny]);
    expect(t.status).toBe(1);
    expect(t.stderr).toMatch(/^ext4kit: EINVAL: /);
  });
});

describe('corrupt directory trees: ls -R stops with EFSCORRUPTED, never loops', () => {
  function corrupt(cmds: string[]): string {
    const img = tmpPath('corrupt.img');
    mkfs('ext4', img, 8 * 1024 * 1024, ['-b', '1024'], undefined);
    debugfsFull(img, ['mkdir /a', 'mkdir /a/b', 'write /dev/null /a/b/f', ...cmds], { write: true });
    return img;
  }
  it.each([
    ['a hard-linked directory', ['link /a/b /b2'], /^ext4kit: EFSCORRUPTED: \/b2: directory inode \d+ is reachable twice/],
    ['a cycle', ['link /a /a/b/up'], /^ext4kit: EFSCORRUPTED: \/a\/b\/up: directory inode \d+ is reachable twice/],
    ['an entry pointing at an unused inode', ['link <100> /a/ghost'], /^ext4kit: EFSCORRUPTED: \/a\/ghost: directory entry points at unused inode 100/],
  ])('%s', async (_what, cmds, re) => {
    const img = corrupt(cmds);
    const r = await cli(['ls', '-R', '--json', img]);
    expect(r.stderr).toMatch(re);
    expect(r.status).toBe(1);
    expect(r.stdout.length).toBe(0);
  });

  it('a symlink loop is ELOOP for cat, but ls/stat show the link itself', async () => {
    const img = corrupt(['symlink /l1 /l2', 'symlink /l2 /l1']);
    const r = await cli(['cat', img, '/l1']);
    expect([r.status, r.stderr]).toEqual([1, 'ext4kit: ELOOP: /l1: too many levels of symbolic links\n']);
    const s = await cli(['stat', '--json', img, '/l1']);
    expect(s.status).toBe(0);
    expect(JSON.parse(s.stdout.toString())).toMatchObject({ type: 'symlink', target: '/l2' });
    expect((await cli(['ls', img, '/l1/'])).stderr).toMatch(/^ext4kit: ELOOP: /);
  });

  it('an entry pointing at an unused inode is EFSCORRUPTED for every command', async () => {
    const img = corrupt(['link <100> /a/ghost']);
    for (const cmd of ['stat', 'cat', 'ls', 'extents']) {
      const r = await cli([cmd, img, '/a/ghost']);
      expect(r.stderr, cmd).toMatch(/^ext4kit: EFSCORRUPTED: directory entry ghost points at inode 100, which is not in use/);
      expect(r.status).toBe(1);
    }
  });
});

describe('usage errors: exit 2', () => {
  const cases: [string, string[], RegExp][] = [
    ['unknown command', ['frobnicate'], /^ext4kit: error: unknown command 'frobnicate'/],
    ['unknown option', ['ls', '--frob', 'x.img'], /^ext4kit: error: unknown option '--frob'/],
    ['unknown global option', ['--frob', 'info', 'x.img'], /^ext4kit: error: unknown option '--frob'/],
    ['missing argument', ['cat', 'x.img'], /^ext4kit: error: missing required argument 'path'/],
    ['too many arguments', ['info', 'a.img', 'b.img'], /^ext4kit: error: too many arguments for 'info'/],
    ['no command at all', [], /^Usage: ext4kit /],
  ];
  it.each(cases)('%s', async (_what, args, re) => {
    const r = await cli(args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(re);
    expect(r.stdout.length).toBe(0);
  });
});

describe('help and version: exit 0 on stdout', () => {
  it('--help lists every command and the global --no-verify', async () => {
    const r = await cli(['--help']);
    expect(r.status).toBe(0);
    const t = r.stdout.toString();
    for (const c of ['info', 'ls', 'cat', 'stat', 'extents']) expect(t).toMatch(new RegExp(`^  ${c} `, 'm'));
    expect(t).toContain('--no-verify');
    expect(t).toContain('Exit status: 0 success, 1 the operation failed');
  });

  it.each([['ls', '-R, --recursive'], ['info', '--json'], ['cat', '<path>'], ['stat', 'base64'], ['extents', 'unwritten']])('help %s', async (cmd, text) => {
    for (const args of [['help', cmd], [cmd, '--help']]) {
      const r = await cli(args);
      expect(r.status, args.join(' ')).toBe(0);
      expect(r.stdout.toString()).toContain(`Usage: ext4kit ${cmd} `);
      expect(r.stdout.toString()).toContain(text);
    }
  });

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await cli(['--version']);
    expect([r.status, r.stdout.toString()]).toEqual([0, `${pkg.version}\n`]);
    const inProc = await cliInProcess(['-V']);
    expect(inProc.stdout.toString()).toBe(`${pkg.version}\n`);
  });
});

describe('--no-verify', () => {
  it('reads an inode whose checksum is wrong; without it the read fails with EFSBADCRC', async () => {
    const img = getImage('ext4-4k').copy();
    const fsys = await Filesystem.open(img);
    const ino = (await fsys.resolve('/sizes/text')).ino;
    const loc = await fsys.inodeLocation(ino);
    const bs = fsys.blockSize;
    await fsys.close();
    const fd = fs.openSync(img, 'r+');
    const off = loc.block * bs + loc.offset + 0x7c; // i_checksum_lo
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, off);
    b[0] = b[0]! ^ 0xff;
    fs.writeSync(fd, b, 0, 1, off);
    fs.closeSync(fd);

    const bad = await cli(['cat', img, '/sizes/text']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(new RegExp(`^ext4kit: EFSBADCRC: inode checksum mismatch .*inode ${ino}`));
    for (const args of [['--no-verify', 'cat', img, '/sizes/text'], ['cat', '--no-verify', img, '/sizes/text']]) {
      const ok = await cli(args);
      expect(ok.stderr, args.join(' ')).toBe('');
      expect(ok.status).toBe(0);
      expect(ok.stdout.toString()).toBe('hello, ext4kit\n'.repeat(100));
    }
    const ls = await cli(['ls', img, '/sizes']);
    expect(ls.status).toBe(1);
    expect((await cli(['ls', '--no-verify', '--json', img, '/sizes'])).status).toBe(0);
  });
});

describe('ways to run the CLI', () => {
  it('the bundle runs from a directory with no node_modules and has a shebang', async () => {
    const bin = await cliBundle();
    const text = fs.readFileSync(bin, 'utf8');
    expect(text.startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(fs.statSync(bin).mode & 0o111).not.toBe(0);
    let d = path.dirname(bin);
    for (;;) {
      expect(fs.existsSync(path.join(d, 'node_modules')), d).toBe(false);
      const up = path.dirname(d);
      if (up === d) break;
      d = up;
    }
    const r = spawnSync(bin, ['info', '--json', getImage('ext4-4k').image], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).blockSize).toBe(4096);
  });

  it('node --import tsx lib/cli/main.ts gives the same output and exit codes', async () => {
    const img = getImage('ext4-4k').image;
    const tsx = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'lib/cli/main.ts', ...args], { cwd: ROOT, encoding: 'buffer' });
    const a = tsx(['ls', '-R', '--json', img, '/links']);
    expect(a.status).toBe(0);
    expect(a.stdout.equals((await cli(['ls', '-R', '--json', img, '/links'])).stdout)).toBe(true);
    const b = tsx(['cat', img, '/nope']);
    expect([b.status, b.stderr.toString()]).toEqual([1, 'ext4kit: ENOENT: /nope: no such file or directory\n']);
    expect(tsx(['bogus']).status).toBe(2);
  });
});
