/**
 * The fresh-process start-up of the `ext4kit` binary (lib/cli/main.ts, fast-path.ts, output.ts,
 * scripts/bundle-cli.mjs):
 * - `info` runs without commander and reads nothing but the superblock, with the same output
 *   and the same errors as through commander (cliInProcess runs program.ts's `run`); `ls` runs
 *   without commander too (its outputs: test/cli/ls-fast-path.test.ts);
 * - when the journal needs recovery, `info` shows the replayed superblock (the kernel's view:
 *   dumpe2fs -h after `e2fsck -E journal_only`), not the stale one on disk;
 * - what each command loads from the split bundle: `--version` only the entry, `info` neither
 *   commander nor the Filesystem class, `ls` the Filesystem class only, `stat` both (recorded by
 *   module loader hooks).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { fastCommand } from '../../lib/cli/fast-path.js';
import { COMPAT, INCOMPAT, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, SuperblockLayout, parseSuperblock, serializeSuperblock } from '../../lib/ext4/superblock.js';
import { getImage } from '../helpers/images.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { dumpe2fsHeader, mkfs } from '../helpers/tools.js';
import { e2fsckJournalOnly, installLog } from '../journal/helpers.js';
import { cli, cliBundle, cliInProcess, type CliResult } from './helpers.js';

describe('fastCommand: which argv skips commander', () => {
  it.each([
    [['info', 'img']],
    [['info', 'img', '--json']],
    [['info', '--json', 'img']],
    [['--no-verify', 'info', 'img']],
    [['info', 'img', '--no-verify', '--json']],
    [['ls', 'img']],
    [['ls', 'img', '/a/b']],
    [['ls', '-R', 'img', '--json']],
    [['ls', 'img', '/', '--recursive', '--no-verify']],
    [['free', 'img']],
    [['free', 'img', '--json']],
  ])('%j runs without commander', (argv) => {
    expect(fastCommand(argv)).toBeTypeOf('function');
  });

  it.each([
    [[]],
    [['info']],
    [['info', 'a', 'b']],
    [['info', 'img', '--json', '--json']],
    [['info', 'img', '--help']],
    [['info', '-h']],
    [['info', '--', 'img']],
    [['info', '-', '--json']],
    [['--json', 'info', 'img']],
    [['help', 'info']],
    [['ls']],
    [['ls', 'img', '/', 'x']],
    [['ls', 'img', '-R', '--recursive']],
    [['ls', 'img', '-Rx']],
    [['ls', 'img', '-l']],
    [['free', 'img', '--count', '5']],
    [['free', 'img', '--start', '0', '--json']],
    [['infos', 'img']],
    [['info', 'img', '--jsonx']],
  ])('%j goes through commander', (argv) => {
    expect(fastCommand(argv)).toBeNull();
  });
});

/** What the binary prints, as program.ts's commander path prints it. */
async function expectSameAsCommander(args: string[]): Promise<CliResult> {
  const fast = await cli(args);
  const slow = await cliInProcess(args);
  expect({ status: fast.status, stdout: fast.stdout.toString('utf8'), stderr: fast.stderr }).toEqual({
    status: slow.status,
    stdout: slow.stdout.toString('utf8'),
    stderr: slow.stderr,
  });
  return fast;
}

describe('info without commander prints what the commander path prints', () => {
  it('JSON and text, with and without --no-verify', async () => {
    const img = getImage('ext4-4k').image;
    for (const args of [['info', img, '--json'], ['info', img], ['--no-verify', 'info', img, '--json'], ['info', '--json', img, '--no-verify']]) {
      const r = await expectSameAsCommander(args);
      expect(r.status).toBe(0);
    }
  });

  it('errors: a missing file, a file too small, a bad superblock checksum (and --no-verify reads it)', async () => {
    const missing = await expectSameAsCommander(['info', '/nonexistent/ext4kit.img', '--json']);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^ext4kit: ENOENT: /);
    const small = tmpPath('info-small.img');
    fs.writeFileSync(small, Buffer.alloc(1500));
    expect((await expectSameAsCommander(['info', small])).stderr).toMatch(/^ext4kit: EINVAL: /);

    const bad = tmpPath('info-badcsum.img');
    const uuid = dumpe2fsHeader(getImage('ext4-4k').image)['Filesystem UUID'];
    fs.copyFileSync(getImage('ext4-4k').image, bad);
    const fd = fs.openSync(bad, 'r+');
    const at = SUPERBLOCK_OFFSET + SuperblockLayout.offsetOf('s_checksum');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, at);
    b[0] = b[0]! ^ 0xff;
    fs.writeSync(fd, b, 0, 1, at);
    fs.closeSync(fd);
    const r = await expectSameAsCommander(['info', bad, '--json']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^ext4kit: EFSBADCRC: /);
    const nv = await expectSameAsCommander(['--no-verify', 'info', bad, '--json']);
    expect(nv.status).toBe(0);
    expect(JSON.parse(nv.stdout.toString('utf8')).uuid).toBe(uuid);
  });
});

describe('info when the journal needs recovery', () => {
  it('shows the superblock the journal holds (as e2fsck -E journal_only replays it), on both paths', async () => {
    const img = tmpPath('info-journaled.img');
    mkfs('ext4', img, 32 * 1024 * 1024, ['-b', '4096', '-L', 'on-disk']);
    // Block 0 holds the superblock at byte 1024; log a copy with another label and counts.
    const block0 = Buffer.alloc(4096);
    const fd = fs.openSync(img, 'r');
    fs.readSync(fd, block0, 0, 4096, 0);
    fs.closeSync(fd);
    const sb = parseSuperblock(block0.subarray(SUPERBLOCK_OFFSET, SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE));
    expect(sb.s_feature_compat & COMPAT.HAS_JOURNAL).toBeTruthy();
    sb.s_volume_name = new Uint8Array(16);
    sb.s_volume_name.set(Buffer.from('from-journal'));
    sb.s_free_inodes_count -= 3;
    sb.s_feature_incompat |= INCOMPAT.RECOVER; // as the kernel logs it: mounted
    const logged = Buffer.from(block0);
    logged.set(serializeSuperblock(sb), SUPERBLOCK_OFFSET);
    installLog(img, { csum: 3, is64: true, firstTid: 5, txs: [{ blocks: [{ fsBlock: 0, data: logged }] }] });
    expect(dumpe2fsHeader(img)['Filesystem volume name']).toBe('on-disk');

    const r = await expectSameAsCommander(['info', img, '--json']);
    expect(r.status).toBe(0);
    const got = JSON.parse(r.stdout.toString('utf8')) as Record<string, unknown>;

    const replayed = tmpPath('info-journaled-replayed.img');
    fs.copyFileSync(img, replayed);
    e2fsckJournalOnly(replayed);
    const h = dumpe2fsHeader(replayed);
    expect(got.label).toBe('from-journal');
    expect(got.label).toBe(h['Filesystem volume name']);
    expect(got.freeInodes).toBe(Number(h['Free inodes']));
    expect(got.freeBlocks).toBe(Number(h['Free blocks']));
    expect(got.uuid).toBe(h['Filesystem UUID']);
    // The logged copy says needs_recovery (it was written while mounted); the replayed image no longer does.
    expect((got.features as string[]).filter((f) => f !== 'needs_recovery').join(' ')).toBe(h['Filesystem features']);
  });
});

describe('what a fresh process loads from the split bundle', () => {
  let hooks: string;
  let bundleDir: string;
  beforeAll(async () => {
    bundleDir = path.dirname(await cliBundle());
    const dir = tmpDir('cli-load-hooks');
    // Module loader hooks (node:module register) record every module URL the process loads.
    fs.writeFileSync(
      path.join(dir, 'hooks.mjs'),
      `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  if (process.env.EXT4KIT_LOAD_LOG && url.startsWith('file:')) appendFileSync(process.env.EXT4KIT_LOAD_LOG, url + '\\n');
  return next(url, context);
}
`,
    );
    hooks = path.join(dir, 'register.mjs');
    fs.writeFileSync(hooks, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(path.join(dir, 'hooks.mjs')).href)});\n`);
  });

  /** The bundle files a run of the binary loads, and their text. */
  async function loaded(args: string[]): Promise<{ files: string[]; bytes: number; text: string }> {
    const bin = await cliBundle();
    const log = tmpPath('cli-load.log');
    fs.rmSync(log, { force: true });
    const r = spawnSync(process.execPath, ['--import', pathToFileURL(hooks).href, bin, ...args], { cwd: bundleDir, env: { ...process.env, EXT4KIT_LOAD_LOG: log }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const files = [...new Set(fs.readFileSync(log, 'utf8').split('\n').filter(Boolean))]
      .map((u) => new URL(u).pathname)
      .filter((p) => p.startsWith(bundleDir + path.sep));
    const text = files.map((f) => fs.readFileSync(f, 'utf8')).join('\n');
    return { files: files.map((f) => path.relative(bundleDir, f)), bytes: Buffer.byteLength(text), text };
  }

  // Markers: commander is the only code that loads node:child_process; the Filesystem class is
  // the filesystem code (names survive the bundle's minification).
  const COMMANDER = /node:child_process/;
  const FILESYSTEM = /\bFilesystem ?= ?class\b|\bclass Filesystem\b/;

  it('--version loads the entry and the small shared runtime only', async () => {
    const l = await loaded(['--version']);
    expect(l.files[0]).toBe('cli.js');
    expect(COMMANDER.test(l.text) || FILESYSTEM.test(l.text), l.files.join(' ')).toBe(false);
    expect(l.bytes).toBeLessThan(16 * 1024);
  });

  it('info loads neither commander nor the filesystem code (a fraction of the bundle)', async () => {
    const l = await loaded(['info', getImage('ext4-4k').image, '--json']);
    expect(COMMANDER.test(l.text), `commander in ${l.files.join(' ')}`).toBe(false);
    expect(FILESYSTEM.test(l.text), `the Filesystem class in ${l.files.join(' ')}`).toBe(false);
    expect(l.bytes).toBeLessThan(100 * 1024);
  });

  it('ls loads the filesystem code but not commander', async () => {
    const l = await loaded(['ls', getImage('ext4-4k').image, '/links', '-R', '--json']);
    expect(COMMANDER.test(l.text), `commander in ${l.files.join(' ')}`).toBe(false);
    expect(FILESYSTEM.test(l.text), `the Filesystem class in ${l.files.join(' ')}`).toBe(true);
  });

  it('stat loads both (the markers work)', async () => {
    const l = await loaded(['stat', getImage('ext4-4k').image, '/']);
    expect(COMMANDER.test(l.text), `commander in ${l.files.join(' ')}`).toBe(true);
    expect(FILESYSTEM.test(l.text), `the Filesystem class in ${l.files.join(' ')}`).toBe(true);
  });
});
