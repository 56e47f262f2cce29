/**
 * `ext4kit defrag` without commander (fast-path.ts; lib/cli/commands/defrag-run.ts, which
 * commander's defrag.ts runs too): the bundled binary prints what program.ts's commander path
 * prints (its own time in the summary aside) and leaves the same image, byte for byte, on the
 * demo fixture (fragmented files; a fixed clock makes a run reproducible); e2fsck finds it clean
 * and debugfs reads the fragmented files as the fixture's manifest says. --draw stays with
 * commander.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFast } from '../../lib/cli/fast-path.js';
import { tmpPath } from '../helpers/tmp.js';
import { debugfsFiles, expectClean, HAVE_E2FSPROGS, sameBytes } from '../ops/helpers.js';
import { bothPaths } from './helpers.js';

const here = path.dirname(new URL(import.meta.url).pathname);
const fixture = path.resolve(here, '../../fixtures/fragmented.ext4.img.gz');
const manifest = path.resolve(here, '../../fixtures/fragmented.manifest.json');

describe('parseFast: defrag', () => {
  it.each([
    [['defrag', 'img']],
    [['defrag', 'img', '/a', '/b/c', '--json', '--dry-run']],
    [['defrag', 'img', '--no-compact', '--no-progress', '--max-seconds', '5', '--max-bytes=1000']],
    [['--no-verify', 'defrag', '--max-bytes', 'abc', 'img']], // (commander takes any value: checked after the open, on both paths)
  ])('%j runs without commander', (argv) => {
    expect(parseFast(argv)).not.toBeNull();
  });

  it.each([
    [['defrag']], // the image is required
    [['defrag', 'img', '--draw', 'dir']],
    [['defrag', 'img', '--json', '--json']],
    [['defrag', 'img', '--max-seconds']],
    [['defrag', 'img', '-x']],
    [['defrag', 'img', '--help']],
  ])('%j goes through commander', (argv) => {
    expect(parseFast(argv)).toBeNull();
  });
});

describe.skipIf(!HAVE_E2FSPROGS)('defrag without commander does what the commander path does', () => {
  let template: string;
  let epoch: string | undefined;
  beforeAll(() => {
    template = tmpPath('fast-defrag.img');
    fs.writeFileSync(template, zlib.gunzipSync(fs.readFileSync(fixture)));
    epoch = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = '1700000000';
  });
  afterAll(() => {
    if (epoch === undefined) delete process.env.SOURCE_DATE_EPOCH;
    else process.env.SOURCE_DATE_EPOCH = epoch;
  });

  /** The run's own time is the one thing allowed to differ. */
  const timeless = (s: string) => s.replace(/"seconds": [0-9.e-]+/, '"seconds": 0').replace(/ in [0-9.]+ s/, ' in T s');


  it('a whole-filesystem run (JSON) and a dry run (text): the same output, the same image; e2fsck clean; bytes kept', async () => {
    const files = (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { path: string; type: string; sha256?: string; extents?: number }[]).filter((e) => e.type === 'file');
    const fragmented = files.filter((f) => (f.extents ?? 1) > 1).slice(0, 6);
    expect(fragmented.length).toBeGreaterThan(0);
    const { fast, slow, out } = await bothPaths(template, ['defrag', 'IMG', '--json'], timeless);
    expect(out.status, out.stderr).toBe(0);
    const summary = JSON.parse(out.stdout) as { moves: number; extentsAfter: number; extentsBefore: number; errors: unknown[] };
    expect(summary.moves).toBeGreaterThan(0);
    expect(summary.errors).toEqual([]);
    expect(summary.extentsAfter).toBeLessThan(summary.extentsBefore);
    expect(sameBytes(fs.readFileSync(fast), fs.readFileSync(slow)), 'the two paths wrote the same image').toBe(true);
    expectClean(fast, 'defrag (fast path)');
    const got = debugfsFiles(fast, fragmented.map((f) => `/${f.path}`));
    for (const f of fragmented) expect(createHash('sha256').update(got.get(`/${f.path}`)!.dump).digest('hex'), f.path).toBe(f.sha256);

    const dry = await bothPaths(template, ['defrag', 'IMG', '--dry-run', '--no-compact'], timeless);
    expect(dry.out.status, dry.out.stderr).toBe(0);
    expect(dry.out.stdout).toMatch(/^predicted result: \d+ extent\(s\)/m);
    const original = fs.readFileSync(template);
    for (const img of [dry.fast, dry.slow]) expect(sameBytes(fs.readFileSync(img), original), 'a dry run changed the image').toBe(true);
  });

  it('a bad --max-bytes: the same error on both paths, the image unchanged', async () => {
    const { fast, slow, out } = await bothPaths(template, ['defrag', 'IMG', '--max-bytes', 'abc'], timeless);
    expect(out.status).toBe(1);
    expect(out.stderr).toMatch(/--max-bytes must be a non-negative number/);
    expect(out.stdout).toBe('');
    const original = fs.readFileSync(template);
    for (const img of [fast, slow]) expect(sameBytes(fs.readFileSync(img), original)).toBe(true);
  });
});
