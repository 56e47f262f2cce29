/**
 * `ext4kit import` without commander (fast-path.ts; lib/cli/commands/import-run.ts, which
 * commander's import.ts runs too): the bundled binary — its own code-cached script — prints what
 * program.ts's commander path prints and leaves the same image, byte for byte (a fixed clock);
 * e2fsck finds it clean and debugfs reads the source files back. Values commander's parsers refuse
 * (`--mode 9`) go to commander, which prints the usage error. The script's V8 code cache, written
 * by a first import, is used as is by the next: the raised interrupt budget (interrupt-budget.ts)
 * is back at V8's default when the cache is written, else V8 rejects it in every later run.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFast } from '../../lib/cli/fast-path.js';
import { mkfs } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { prngBytes } from '../helpers/tree.js';
import { debugfsFiles, expectClean, HAVE_E2FSPROGS, sameBytes } from '../ops/helpers.js';
import { bothPaths, cli, cliBundle, cliInProcess } from './helpers.js';

describe('parseFast: import', () => {
  it.each([
    [['import', 'img', 'dir']],
    [['import', 'img', 'dir', '--at', '/x', '--no-progress']],
    [['import', 'img', 'dir', '--json', '--no-xattrs', '--owner=1:2', '--mode', '0640', '--now', '1700000000.5']],
    [['--no-verify', 'import', 'img', 'dir', '--mode', '9']], // (a value commander refuses: fastValuesValid sends it there)
  ])('%j runs without commander', (argv) => {
    expect(parseFast(argv)).not.toBeNull();
  });

  it.each([
    [['import', 'img']],
    [['import', 'img', '-']], // tar on stdin
    [['import', 'img', 'dir', 'x']],
    [['import', 'img', 'dir', '--at']],
    [['import', 'img', 'dir', '--json', '--json']],
    [['import', 'img', 'dir', '--xattrs']],
    [['import', 'img', 'dir', '--help']],
  ])('%j goes through commander', (argv) => {
    expect(parseFast(argv)).toBeNull();
  });
});

describe.skipIf(!HAVE_E2FSPROGS)('import without commander does what the commander path does', () => {
  let template: string;
  let src: string;
  let epoch: string | undefined;
  const files: Record<string, Buffer> = {
    'a/small': prngBytes('small', 5000),
    'a/b/empty': Buffer.alloc(0),
    // larger than the reader's whole-file limit (1 MiB): read in pieces
    'big': prngBytes('big', 1_500_000),
  };
  beforeAll(() => {
    src = tmpDir('fast-import-src');
    for (const [p, data] of Object.entries(files)) {
      fs.mkdirSync(path.join(src, path.dirname(p)), { recursive: true });
      fs.writeFileSync(path.join(src, p), data);
    }
    fs.symlinkSync('a/small', path.join(src, 'link'));
    fs.linkSync(path.join(src, 'a/small'), path.join(src, 'hard'));
    template = tmpPath('fast-import.img');
    mkfs('ext4', template, 16 << 20, ['-b', '1024']);
    epoch = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = '1700000000';
  });
  afterAll(() => {
    if (epoch === undefined) delete process.env.SOURCE_DATE_EPOCH;
    else process.env.SOURCE_DATE_EPOCH = epoch;
  });

  it('text and JSON summaries, values given: the same output, the same image; e2fsck clean; debugfs reads the files', async () => {
    const { fast, out } = await bothPaths(template, ['import', 'IMG', src, '--no-progress', '--no-xattrs']);
    expect(out.status, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/^imported 8 entries \(3 dirs, 3 files, 1 symlinks, 1 hard links, 0 special, 0 xattrs\), 1505000 bytes in \d+ transactions\n$/);
    expectClean(fast, 'import (fast path)');
    const got = debugfsFiles(fast, Object.keys(files).map((p) => `/${p}`));
    for (const [p, data] of Object.entries(files)) expect(sameBytes(got.get(`/${p}`)!.dump, data), p).toBe(true);

    const v = await bothPaths(template, ['import', 'IMG', src, '--json', '--at', '/in/here', '--owner', '7:8', '--mode=0640', '--now', '1600000000.25']);
    expect(v.out.status, v.out.stderr).toBe(0);
    expect(JSON.parse(v.out.stdout)).toMatchObject({ entries: 8, files: 3, hardlinks: 1 });
    expect(sameBytes(fs.readFileSync(v.fast), fs.readFileSync(v.slow)), 'the two paths wrote the same image').toBe(true);
    expectClean(v.fast, 'import --at --owner --mode --now (fast path)');
    const st = debugfsFiles(v.fast, ['/in/here/a/small']).get('/in/here/a/small')!;
    expect(sameBytes(st.dump, files['a/small']!)).toBe(true);
  });

  it('a value commander refuses gets commander\'s usage error; a missing source the same error on both paths', async () => {
    const img = tmpPath('fast-import-bad.img');
    fs.copyFileSync(template, img);
    const fast = await cli(['import', img, src, '--mode', '9']);
    const slow = await cliInProcess(['import', img, src, '--mode', '9']);
    expect(fast.status).not.toBe(0);
    expect({ status: fast.status, stderr: fast.stderr }).toEqual({ status: slow.status, stderr: slow.stderr });
    expect(fast.stderr).toMatch(/--mode <octal>.*invalid/);
    const missing = await bothPaths(template, ['import', 'IMG', path.join(src, 'nope')]);
    expect(missing.out.status).not.toBe(0);
    expect(missing.out.stderr).toMatch(/ENOENT|no such file/i);
  });

  it('the next import uses the code cache the first one wrote (not rejected, not rewritten)', async () => {
    const bin = await cliBundle();
    const home = tmpDir('import-code-cache');
    const run = () => {
      const img = tmpPath('fast-import-cache.img');
      fs.copyFileSync(template, img);
      const r = spawnSync(process.execPath, [bin, 'import', img, src, '--no-progress', '--no-xattrs'], { env: { ...process.env, XDG_CACHE_HOME: home, EXT4KIT_CODE_CACHE: '' }, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expectClean(img, 'import (cached script)');
      const dir = path.join(home, 'ext4kit');
      const files = fs.readdirSync(dir).filter((f) => f.startsWith('fast-import-'));
      expect(files).toHaveLength(1);
      const st = fs.statSync(path.join(dir, files[0]!));
      return `${st.ino}:${st.mtimeMs}:${st.size}`;
    };
    const first = run();
    expect(run(), 'the cache was rewritten: V8 rejected it').toBe(first);
  });
});
