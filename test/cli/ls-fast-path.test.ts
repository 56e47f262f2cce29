/**
 * `ext4kit ls` in a fresh process runs without commander (lib/cli/fast-path.ts → ls-run.ts runFast)
 * and writes its output to fd 1 in one synchronous write; through commander (program.ts `run`,
 * in-process here) it goes to a stream. Both must print the same bytes, the same errors and the
 * same exit status: JSON and human forms, recursive or not, a file, a symlink with and without a
 * trailing '/', a missing path, --no-verify, and an output far larger than a pipe's buffer (the
 * spawned binary's stdout is a pipe). The listing itself is checked against the source trees and
 * the kernel in ls.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { parseFast } from '../../lib/cli/fast-path.js';
import { getImage } from '../helpers/images.js';
import { cli, cliInProcess } from './helpers.js';

async function expectSameOnBothPaths(args: string[]): Promise<{ status: number; stdout: Buffer; stderr: string }> {
  expect(parseFast(args), `${args.join(' ')} takes the fast path`).not.toBeNull();
  const fast = await cli(args);
  const slow = await cliInProcess(args);
  expect({ status: fast.status, stderr: fast.stderr }).toEqual({ status: slow.status, stderr: slow.stderr });
  expect(fast.stdout.equals(slow.stdout), `stdout of ${args.join(' ')}`).toBe(true);
  return fast;
}

describe('ls without commander prints what the commander path prints', () => {
  it('JSON and human, recursive or not, the whole image', async () => {
    const img = getImage('ext4-4k').image;
    const whole = await expectSameOnBothPaths(['ls', img, '-R', '--json']);
    expect(whole.status).toBe(0);
    // Far more than a pipe holds (64 KiB): the synchronous write to fd 1 must not lose a byte.
    expect(whole.stdout.length).toBeGreaterThan(128 * 1024);
    const rows = JSON.parse(whole.stdout.toString('utf8')) as { path: string }[];
    expect(rows.map((r) => r.path)).toContain('/symlinks/to-dir');
    for (const args of [['ls', img], ['--no-verify', 'ls', img, '/special', '--json'], ['ls', img, '--recursive', '/links']])
      expect((await expectSameOnBothPaths(args)).status).toBe(0);
  });

  it('a file, a symlink (followed only with a trailing /), and errors', async () => {
    const img = getImage('ext4-4k').image;
    for (const p of ['/sizes/one', '/symlinks/to-dir', '/symlinks/to-dir/']) expect((await expectSameOnBothPaths(['ls', img, p, '--json'])).status).toBe(0);
    const notDir = await expectSameOnBothPaths(['ls', img, '/sizes/one/']);
    expect(notDir.status).toBe(1);
    expect(notDir.stderr).toMatch(/^ext4kit: ENOTDIR: /);
    expect(notDir.stdout.length).toBe(0);
    const missing = await expectSameOnBothPaths(['ls', img, '/no/such', '-R', '--json']);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^ext4kit: ENOENT: /);
    const noImage = await expectSameOnBothPaths(['ls', '/nonexistent/ext4kit.img']);
    expect(noImage.status).toBe(1);
    expect(noImage.stderr).toMatch(/^ext4kit: ENOENT: /);
  });
});
