/**
 * Issue 11 item 7: the namespace commands, each once, e2fsck -fn after every
 * write, results read back through the kernel (loop mount) or debugfs:
 * mkdir [-p], touch, ln [-s], mv, chmod, chown, xattr set|get|list|rm,
 * cp (host → image, image → host, image → image, -r, -p), rm [-r] [-f], and
 * the exit codes and messages of failures.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { expectE2fsckClean, mkfs, oracleGate, skipReason, withLoopMount } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { prngBytes } from '../helpers/tree.js';
import { cliInProcess as cli } from './helpers.js';

const skip = oracleGate(skipReason('loop'));

let img = '';

async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  expect(r.stderr, args.join(' ')).toBe('');
  expect(r.status, args.join(' ')).toBe(0);
  return r.stdout.toString();
}

beforeAll(() => {
  if (skip) return;
  img = tmpPath('ns-cli.img');
  mkfs('ext4', img, 32 << 20, ['-b', '1024']);
});

describe.skipIf(!!skip)('namespace commands', () => {
  it('mkdir -p, touch, ln, ln -s, mv, chmod, chown: e2fsck clean, the kernel sees each', async () => {
    await ok(['mkdir', img, '/etc/app/conf.d', '-p', '-m', '750']);
    expectE2fsckClean(img, 'mkdir -p');
    await ok(['mkdir', img, '/etc/app', '-p']); // existing: fine with -p
    const dup = await cli(['mkdir', img, '/etc/app']);
    expect(dup.status).toBe(1);
    expect(dup.stderr).toMatch(/^ext4kit: EEXIST: /);
    await ok(['touch', img, '/etc/app/a.conf', '-d', '1600000000.123456789']);
    expectE2fsckClean(img, 'touch');
    await ok(['ln', img, '/etc/app/a.conf', '/etc/app/b.conf']);
    await ok(['ln', img, '-s', '../app/a.conf', '/etc/app/conf.d/link']);
    expectE2fsckClean(img, 'ln');
    await ok(['mv', img, '/etc/app/b.conf', '/etc/app/conf.d']); // into a directory
    await ok(['mv', img, '/etc/app/conf.d/b.conf', '/etc/app/c.conf']);
    expectE2fsckClean(img, 'mv');
    await ok(['chmod', img, '4711', '/etc/app/a.conf']);
    await ok(['chown', img, '1000:2000', '/etc/app/conf.d']);
    await ok(['chown', img, '-h', '77', '/etc/app/conf.d/link']);
    expectE2fsckClean(img, 'chmod/chown');
    await withLoopMount(img, (mp) => {
      const st = fs.statSync(path.join(mp, 'etc/app/a.conf'), { bigint: true });
      expect(st.mtimeNs).toBe(1_600_000_000_123_456_789n);
      expect(Number(st.mode & 0o7777n)).toBe(0o4711);
      expect(Number(st.nlink)).toBe(2);
      expect(fs.statSync(path.join(mp, 'etc/app/c.conf')).ino).toBe(Number(st.ino));
      expect(fs.existsSync(path.join(mp, 'etc/app/b.conf'))).toBe(false);
      expect(fs.readlinkSync(path.join(mp, 'etc/app/conf.d/link'))).toBe('../app/a.conf');
      expect(fs.lstatSync(path.join(mp, 'etc/app/conf.d/link')).uid).toBe(77);
      const d = fs.statSync(path.join(mp, 'etc/app/conf.d'));
      expect([d.uid, d.gid, d.mode & 0o7777]).toEqual([1000, 2000, 0o750]);
    }, { readOnly: true });
  }, 60_000);

  it('xattr set / get / list / rm', async () => {
    await ok(['xattr', 'set', img, '/etc/app/a.conf', 'user.note', 'hello']);
    await ok(['xattr', 'set', img, '/etc/app/a.conf', 'trusted.bin', '--hex', '00ff7f']);
    expectE2fsckClean(img, 'xattr set');
    expect(await ok(['xattr', 'get', img, '/etc/app/a.conf', 'user.note'])).toBe('hello');
    expect(await ok(['xattr', 'get', img, '/etc/app/a.conf', 'trusted.bin', '--hex'])).toBe('00ff7f\n');
    expect(JSON.parse(await ok(['xattr', 'list', img, '/etc/app/a.conf', '--json']))).toEqual({ 'user.note': '68656c6c6f', 'trusted.bin': '00ff7f' });
    await withLoopMount(img, (mp) => {
      const r = spawnSync('python3', ['-c', 'import os,sys; p=sys.argv[1]; print(sorted(os.listxattr(p)), os.getxattr(p, "user.note").decode(), os.getxattr(p, "trusted.bin").hex())', path.join(mp, 'etc/app/a.conf')], { encoding: 'utf8' });
      expect(r.stdout.trim()).toBe("['trusted.bin', 'user.note'] hello 00ff7f");
    }, { readOnly: true });
    await ok(['xattr', 'rm', img, '/etc/app/a.conf', 'user.note']);
    expectE2fsckClean(img, 'xattr rm');
    const gone = await cli(['xattr', 'get', img, '/etc/app/a.conf', 'user.note']);
    expect(gone.status).toBe(1);
    expect(gone.stderr).toMatch(/^ext4kit: ENODATA: /);
  }, 60_000);

  it('cp host → image (file, -r -p tree), image → host, image → image', async () => {
    const host = tmpDir('cp-host');
    fs.rmSync(host, { recursive: true, force: true });
    fs.mkdirSync(path.join(host, 'tree/sub'), { recursive: true });
    const big = prngBytes('cp-big', 300_000);
    fs.writeFileSync(path.join(host, 'tree/big.bin'), big);
    fs.writeFileSync(path.join(host, 'tree/sub/small'), 'small\n');
    fs.chmodSync(path.join(host, 'tree/sub/small'), 0o600);
    fs.utimesSync(path.join(host, 'tree/sub/small'), 1_500_000_000, 1_500_000_000);
    await ok(['cp', path.join(host, 'tree/big.bin'), `${img}:/etc/app/big.bin`]);
    // replacing an existing file: whole new content
    fs.writeFileSync(path.join(host, 'v2'), 'version 2\n');
    await ok(['cp', path.join(host, 'v2'), `${img}:/etc/app/big.bin`]);
    await ok(['cp', path.join(host, 'tree/big.bin'), `${img}:/etc/`]);
    expectE2fsckClean(img, 'cp file');
    await ok(['cp', '-r', '-p', path.join(host, 'tree'), `${img}:/copied`]);
    expectE2fsckClean(img, 'cp -r -p');
    await ok(['cp', '-r', `${img}:/copied`, `${img}:/copied2`]);
    expectE2fsckClean(img, 'cp image → image');
    const back = path.join(host, 'back.bin');
    await ok(['cp', `${img}:/copied2/big.bin`, back]);
    expect(fs.readFileSync(back).equals(big)).toBe(true);
    const backDir = path.join(host, 'backdir');
    await ok(['cp', '-r', '-p', `${img}:/copied`, backDir]);
    expect(fs.readFileSync(path.join(backDir, 'sub/small'), 'utf8')).toBe('small\n');
    const st = fs.statSync(path.join(backDir, 'sub/small'));
    expect([st.mode & 0o777, st.mtimeMs]).toEqual([0o600, 1_500_000_000_000]);
    await withLoopMount(img, (mp) => {
      expect(fs.readFileSync(path.join(mp, 'etc/app/big.bin'), 'utf8')).toBe('version 2\n');
      expect(fs.readFileSync(path.join(mp, 'etc/big.bin')).equals(big)).toBe(true);
      expect(fs.readFileSync(path.join(mp, 'copied/big.bin')).equals(big)).toBe(true);
      expect(fs.statSync(path.join(mp, 'copied/sub/small')).mtimeMs).toBe(1_500_000_000_000);
      expect(fs.readFileSync(path.join(mp, 'copied2/sub/small'), 'utf8')).toBe('small\n');
    }, { readOnly: true });
    fs.rmSync(host, { recursive: true, force: true });
  }, 60_000);

  it('rm, rm -r, rm -f; errors', async () => {
    const noDir = await cli(['rm', img, '/copied']);
    expect(noDir.status).toBe(1);
    expect(noDir.stderr).toMatch(/^ext4kit: EISDIR: /);
    await ok(['rm', img, '/etc/app/c.conf']);
    await ok(['rm', '-r', img, '/copied', '/copied2']);
    expectE2fsckClean(img, 'rm -r');
    const missing = await cli(['rm', img, '/nope']);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^ext4kit: ENOENT: /);
    await ok(['rm', '-f', img, '/nope']);
    await withLoopMount(img, (mp) => {
      expect(fs.existsSync(path.join(mp, 'copied'))).toBe(false);
      expect(fs.statSync(path.join(mp, 'etc/app/a.conf')).nlink).toBe(1);
    }, { readOnly: true });
  }, 60_000);
});
