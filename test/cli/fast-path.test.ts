/**
 * The fresh-process start-up of the `ext4kit` binary (lib/cli/bin.ts, launch.ts, fast-path.ts,
 * output.ts, scripts/bundle-cli.mjs):
 * - `info` runs without commander and reads nothing but the superblock, with the same output
 *   and the same errors as through commander (cliInProcess runs program.ts's `run`); `ls` runs
 *   without commander too (its outputs: test/cli/ls-fast-path.test.ts);
 * - when the journal needs recovery, `info` shows the replayed superblock (the kernel's view:
 *   dumpe2fs -h after `e2fsck -E journal_only`), not the stale one on disk;
 * - what each command loads from the split bundle: `--version` only the launcher; the fast
 *   commands (`info`, `ls`, `free`, `movedata`, `defrag`, `import`) the launcher and no ES module,
 *   then their own CommonJS script (no commander in it); `stat` commander and the Filesystem class
 *   (recorded by module loader hooks);
 * - the fast scripts' V8 code cache: written by the first run (dropping other builds' caches of
 *   the same command), used as is by the next, replaced when damaged, never written where others
 *   can write, never failing a command.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseFast } from '../../lib/cli/fast-path.js';
import { COMPAT, INCOMPAT, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, SuperblockLayout, parseSuperblock, serializeSuperblock } from '../../lib/ext4/superblock.js';
import { getImage } from '../helpers/images.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { debugfsDump, dumpe2fsHeader, expectE2fsckClean, mkfs } from '../helpers/tools.js';
import { e2fsckJournalOnly, installLog } from '../journal/helpers.js';
import { CACHES_PER_COMMAND } from '../../lib/cli/code-cache.js';
import { cli, cliBundle, cliInProcess, type CliResult } from './helpers.js';
import { makeImage, pattern } from '../ops/helpers.js';

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
    expect(parseFast(argv)).not.toBeNull();
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
    expect(parseFast(argv)).toBeNull();
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

  /** The fast command scripts of the bundle (code-cache.ts runs them; the module hooks do not see them). */
  function fastScripts(): Map<string, string> {
    const dir = path.join(bundleDir, 'cli-chunks');
    return new Map(
      fs
        .readdirSync(dir)
        .filter((f) => /^fast-\w+-[0-9a-f]{16}\.cjs$/.test(f))
        .map((f) => [f.split('-')[1]!, fs.readFileSync(path.join(dir, f), 'utf8')]),
    );
  }

  it('--version loads the entry and the small shared runtime only', async () => {
    const l = await loaded(['--version']);
    // the package's bin: the CommonJS launcher (bin.ts)
    expect(l.files[0]).toBe('cli.cjs');
    expect(COMMANDER.test(l.text) || FILESYSTEM.test(l.text), l.files.join(' ')).toBe(false);
    expect(l.bytes).toBeLessThan(16 * 1024);
  });

  it('info runs from its script: no ES module but the launcher, no commander', async () => {
    const l = await loaded(['info', getImage('ext4-4k').image, '--json']);
    expect(l.files).toEqual(['cli.cjs']);
    // (its script carries the Filesystem code, for the journal-recovery case: ~355 KB, of which a
    // run compiles and caches what it uses)
    expect(COMMANDER.test(fastScripts().get('info')!), 'commander in the info script').toBe(false);
  });

  it('ls, free and movedata run from their own script: as ES modules only the entry, never commander', async () => {
    const scripts = fastScripts();
    expect([...scripts.keys()].sort()).toEqual(['defrag', 'free', 'import', 'info', 'ls', 'movedata']);
    for (const [command, text] of scripts) {
      // (import spawns its xattr reader through node:child_process: commander's own class is the marker there)
      expect((command === 'import' ? /\bCommanderError\b/ : COMMANDER).test(text), `commander in the ${command} script`).toBe(false);
      expect(/\bimport\(/.test(text), `a dynamic import in the ${command} script (vm.Script has none)`).toBe(false);
    }
    // ls reads through a DiskReader (commands/ls-run.ts; a Filesystem only through commander's ls).
    expect(FILESYSTEM.test(scripts.get('ls')!), 'the Filesystem class in the ls script').toBe(false);
    // (the structs' prebuilt codecs, written in by the bundle for the code cache, are ~16 KB of it)
    expect(scripts.get('ls')!.length).toBeLessThan(160 * 1024);
    // free reads the device through a DiskSource: no Filesystem, so no write engine, in its script.
    expect(FILESYSTEM.test(scripts.get('free')!), 'the Filesystem class in the free script').toBe(false);
    // (101.9 KB before free raised V8's interrupt budget, interrupt-budget.ts: ~1 KB more; a write
    // engine would add hundreds)
    expect(scripts.get('free')!.length).toBeLessThan(104 * 1024);
    const moveImage = makeImage('fast-load-movedata', { data: pattern(4 * 4096, 1), space: pattern(4 * 4096, 2) }, { sizeMiB: 8 });
    const importSrc = tmpDir('fast-load-import');
    fs.writeFileSync(path.join(importSrc, 'f'), pattern(5000, 3));
    for (const args of [
      ['ls', getImage('ext4-4k').image, '/links', '-R', '--json'],
      ['free', getImage('ext4-4k').image],
      ['movedata', moveImage, '/data', '/space', '--from=4096', '--len', '8K'],
      ['import', moveImage, importSrc, '--at', '/imported', '--no-progress'],
    ]) {
      const l = await loaded(args);
      // import also loads its early read (host-read-start.ts, from main.ts before the script: the
      // reader thread's source text and the xattr helper's spawn through node:child_process):
      // commander's own class is the marker there, as in its script. (40 KiB: the reader's text grew
      // with its cold paths split out of the walk and read loops, which cut its compile time.)
      const early = args[0] === 'import';
      expect((early ? /\bCommanderError\b/ : COMMANDER).test(l.text) || FILESYSTEM.test(l.text), `${args[0]}: ${l.files.join(' ')}`).toBe(false);
      expect(l.bytes, `${args[0]}: ${l.files.join(' ')}`).toBeLessThan((early ? 40 : 24) * 1024);
      // The launcher reaches the script without an ES module: node's ES module loader (~10 ms of a
      // fresh process) is never started for it (the module hooks here log what it would load).
      expect(l.files, args[0]!).toEqual(['cli.cjs']);
    }
    // the two writes did their work: e2fsck clean, the bytes as debugfs reads them
    expectE2fsckClean(moveImage, 'after movedata and import through the launcher');
    expect(debugfsDump(moveImage, '/data').equals(pattern(4 * 4096, 1))).toBe(true);
    expect(debugfsDump(moveImage, '/imported/f').equals(pattern(5000, 3))).toBe(true);
  });

  it('stat loads both (the markers work)', async () => {
    const l = await loaded(['stat', getImage('ext4-4k').image, '/']);
    expect(COMMANDER.test(l.text), `commander in ${l.files.join(' ')}`).toBe(true);
    expect(FILESYSTEM.test(l.text), `the Filesystem class in ${l.files.join(' ')}`).toBe(true);
  });
});

describe('the fast scripts keep V8 code for the next process (code-cache.ts)', () => {
  /** Run the bundled binary with its code cache under `cacheHome` (XDG_CACHE_HOME). */
  async function run(args: string[], env: Record<string, string>): Promise<CliResult> {
    const bin = await cliBundle();
    const r = spawnSync(process.execPath, [bin, ...args], { cwd: path.dirname(bin), env: { ...process.env, LANG: 'C', EXT4KIT_CODE_CACHE: '', ...env }, maxBuffer: 1 << 28 });
    return { status: r.status ?? 128, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
  }
  const stamp = (f: string) => {
    const st = fs.statSync(f);
    return `${st.ino}:${st.mtimeMs}:${st.size}`;
  };

  it('the first run writes the cache, the next uses it as is, a damaged one is replaced; the output never changes', async () => {
    const home = tmpDir('code-cache-home');
    const args = ['ls', getImage('ext4-4k').image, '/links', '-R', '--json'];
    const plain = await run(args, { EXT4KIT_CODE_CACHE: '0', XDG_CACHE_HOME: home });
    expect(plain.status, plain.stderr).toBe(0);
    expect(fs.existsSync(path.join(home, 'ext4kit')), 'EXT4KIT_CODE_CACHE=0 writes nothing').toBe(false);

    // Caches of other builds (another install sharing the directory, older versions): the
    // CACHES_PER_COMMAND newest of a command are kept, this build's included — so the oldest ls
    // one goes when this build's ls cache is written; free's stays.
    const dir = path.join(home, 'ext4kit');
    fs.mkdirSync(dir, { mode: 0o700 });
    const stale = (command: string, i: number) => `fast-${command}-${String(i).repeat(16)}.cjs-${process.version}-${process.arch}.v8`;
    const others = [0, 1, 2, 3].map((i) => stale('ls', i));
    others.forEach((f, i) => {
      fs.writeFileSync(path.join(dir, f), 'old');
      fs.utimesSync(path.join(dir, f), 1e9 + i, 1e9 + i); // stale('ls', 0) the oldest
    });
    fs.writeFileSync(path.join(dir, stale('free', 0)), 'old');
    expect(CACHES_PER_COMMAND).toBe(4);

    const first = await run(args, { XDG_CACHE_HOME: home });
    const files = fs.readdirSync(dir).filter((f) => f !== stale('free', 0) && !others.includes(f));
    expect(files).toEqual([expect.stringMatching(new RegExp(`^fast-ls-[0-9a-f]{16}\\.cjs-${process.version.replace(/\./g, '\\.')}-${process.arch}\\.v8$`))]);
    expect(others.map((f) => fs.existsSync(path.join(dir, f))), 'the oldest other ls build goes').toEqual([false, true, true, true]);
    expect(fs.existsSync(path.join(dir, stale('free', 0)))).toBe(true);
    const cache = path.join(dir, files[0]!);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(cache).mode & 0o777).toBe(0o600);
    const before = stamp(cache);

    const second = await run(args, { XDG_CACHE_HOME: home });
    // Accepted by V8: not rewritten (code-cache.ts rewrites only a missing or rejected cache).
    expect(stamp(cache)).toBe(before);

    fs.writeFileSync(cache, Buffer.alloc(4096, 0x5a));
    const damaged = await run(args, { XDG_CACHE_HOME: home });
    expect(fs.readFileSync(cache).equals(Buffer.alloc(4096, 0x5a)), 'a rejected cache is replaced').toBe(false);
    expect(fs.readdirSync(dir), 'no temporary file left').toHaveLength(5);

    for (const r of [first, second, damaged]) expect({ status: r.status, stderr: r.stderr, same: r.stdout.equals(plain.stdout) }).toEqual({ status: 0, stderr: '', same: true });
  });

  it('a cache directory that cannot be made, or that others may write to, is not used and fails nothing', async () => {
    const args = ['free', getImage('ext4-4k').image, '--json'];
    const plain = await run(args, { EXT4KIT_CODE_CACHE: '0' });
    expect(plain.status, plain.stderr).toBe(0);
    const notADir = tmpPath('code-cache-file');
    fs.writeFileSync(notADir, 'x');
    const shared = tmpDir('code-cache-shared');
    fs.mkdirSync(path.join(shared, 'ext4kit'), { mode: 0o777 });
    fs.chmodSync(path.join(shared, 'ext4kit'), 0o777);
    for (const home of [notADir, shared]) {
      const r = await run(args, { XDG_CACHE_HOME: home });
      expect({ status: r.status, stderr: r.stderr, same: r.stdout.equals(plain.stdout) }).toEqual({ status: 0, stderr: '', same: true });
    }
    expect(fs.readdirSync(path.join(shared, 'ext4kit')), 'nothing written where others can write').toEqual([]);
  });
});
