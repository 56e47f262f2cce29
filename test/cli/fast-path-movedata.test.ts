/**
 * `ext4kit movedata` without commander (fast-path.ts: options with values, `--opt v` and
 * `--opt=v`; lib/cli/commands/movedata-run.ts): the bundled binary prints what program.ts's
 * commander path prints — output, errors, usage errors (a value commander's parser refuses goes
 * through commander) — and leaves the same image, byte for byte (a fixed clock makes a run
 * reproducible), which e2fsck finds clean and whose files debugfs reads as the bytes fed to mkfs.
 * That the fast path is the one taken (no commander loaded): test/cli/fast-path.test.ts.
 * The writing commands check whether the image is in use (a mounted loop device) while the
 * filesystem opens (FileDevice inUseCheck 'background'): still EBUSY before any work, and the
 * device holds every write until the check passed.
 */
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFast } from '../../lib/cli/fast-path.js';
import { FileDevice } from '../../lib/io/file-device.js';
import { isExt4Error } from '../../lib/errors.js';
import { loopSkipReason, withLoopMount } from '../safety/helpers.js';
import { tmpPath } from '../helpers/tmp.js';
import { cleanupImages, debugfsFiles, expectClean, HAVE_E2FSPROGS, makeImage, pattern, sameBytes } from '../ops/helpers.js';
import { bothPaths, cli } from './helpers.js';

const B = 4096;

describe('parseFast: movedata and its valued options', () => {
  it.each([
    [['movedata', 'img', '/d', '/s', '--from', '0', '--len', '4096']],
    [['movedata', 'img', '/d', '/s', '--from=0', '--len=4K']],
    [['movedata', '--len', '8k', 'img', '--from', '0x1000', '/d', '/s', '--json']],
    [['--no-verify', 'movedata', 'img', '/d', '/s', '--from', '0', '--len', '4096']],
    [['movedata', 'img', '/d', '/s', '--from', 'abc', '--len', '4096']], // (the value is checked by the command module: fastValuesValid)
  ])('%j runs without commander', (argv) => {
    expect(parseFast(argv)).not.toBeNull();
  });

  it('keeps each value as typed, whichever spelling', () => {
    const a = parseFast(['movedata', 'img', '/d', '/s', '--from=0x1000', '--json', '--len', '64M', '--no-verify'])!;
    expect({ command: a.command, positionals: a.positionals, flags: [...a.flags], values: Object.fromEntries(a.values), verify: a.verify }).toEqual({
      command: 'movedata',
      positionals: ['img', '/d', '/s'],
      flags: ['--json'],
      values: { '--from': '0x1000', '--len': '64M' },
      verify: false,
    });
    // A valued option takes the next word whatever it is, as commander does.
    expect(parseFast(['movedata', 'img', '/d', '/s', '--len', '4096', '--from', '--no-verify'])!.values.get('--from')).toBe('--no-verify');
  });

  it.each([
    [['movedata', 'img', '/d', '/s', '--from', '0']], // --len is required
    [['movedata', 'img', '/d', '/s', '--len', '4096', '--from']], // no value
    [['movedata', 'img', '/d', '/s', '--from', '0', '--from', '0', '--len', '4096']], // a repeat
    [['movedata', 'img', '/d', '--from', '0', '--len', '4096']], // a positional missing
    [['movedata', 'img', '/d', '/s', 'x', '--from', '0', '--len', '4096']],
    [['movedata', 'img', '/d', '/s', '--from', '0', '--len', '4096', '--count', '1']],
    [['movedata', 'img', '/d', '/s', '--from', '0', '--len', '4096', '--json=1']],
    [['movedata', 'img', '/d', '/s', '--from', '0', '--len', '4096', '--help']],
    [['--from', '0', 'movedata', 'img', '/d', '/s', '--len', '4096']],
    [['info', 'img', '--from', '0']], // valued options belong to their command
    [['free', 'img', '--start=0']],
  ])('%j goes through commander', (argv) => {
    expect(parseFast(argv)).toBeNull();
  });
});

describe.skipIf(!HAVE_E2FSPROGS)('movedata without commander does what the commander path does', () => {
  let template: string;
  let epoch: string | undefined;
  beforeAll(() => {
    template = makeImage('fast-movedata', { data: pattern(16 * B, 1), space: pattern(16 * B, 2), other: pattern(3 * B, 3) }, { sizeMiB: 16 });
    // One clock for both paths (the spawned binary inherits it): a reproducible run writes the same bytes.
    epoch = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = '1700000000';
  });
  afterAll(() => {
    if (epoch === undefined) delete process.env.SOURCE_DATE_EPOCH;
    else process.env.SOURCE_DATE_EPOCH = epoch;
    cleanupImages();
  });


  it('a move: the same output, the same image; e2fsck clean; data reads as before, space has its hole', async () => {
    for (const args of [
      ['movedata', 'IMG', '/data', '/space', '--from', String(2 * B), '--len', String(4 * B)],
      ['--no-verify', 'movedata', 'IMG', '/data', '/space', '--from=8K', '--len=0x4000', '--json'],
    ]) {
      const { fast, slow, out } = await bothPaths(template, args);
      expect(out.status, out.stderr).toBe(0);
      expect(out.stdout).toBe(args.includes('--json') ? JSON.stringify({ moved: 4 * B }, null, 2) + '\n' : `moved ${4 * B} bytes\n`);
      expect(sameBytes(fs.readFileSync(fast), fs.readFileSync(slow)), 'the two paths wrote the same image').toBe(true);
      expectClean(fast, `movedata ${args.join(' ')}`);
      const files = debugfsFiles(fast, ['/data', '/space']);
      expect(sameBytes(files.get('/data')!.dump, pattern(16 * B, 1))).toBe(true);
      const space = pattern(16 * B, 2);
      space.fill(0, 2 * B, 6 * B);
      expect(sameBytes(files.get('/space')!.dump, space)).toBe(true);
    }
  });

  it('errors and usage errors print the same on both paths and change nothing', async () => {
    const original = fs.readFileSync(template);
    for (const [args, status, message] of [
      [['movedata', 'IMG', '/data', '/space', '--from', '0', '--len', '4097'], 1, /^ext4kit: EINVAL: len 4097 is not a multiple/],
      [['movedata', 'IMG', '/data', '/data', '--from', '0', '--len', '4096'], 1, /^ext4kit: EINVAL: data and space are the same file/],
      [['movedata', 'IMG', '/nope', '/space', '--from', '0', '--len', '4096'], 1, /^ext4kit: ENOENT: /],
      [['movedata', 'IMG', '/data', '/space', '--from', '0', '--len', String(32 * B)], 1, /^ext4kit: EINVAL: range ends past the end/],
      // values commander's parser refuses: the fast path hands them to commander (usage error, exit 2)
      [['movedata', 'IMG', '/data', '/space', '--from', 'abc', '--len', '4096'], 2, /^ext4kit: error: option '--from <bytes>' argument 'abc' is invalid\. "abc" is not a byte count/],
      [['movedata', 'IMG', '/data', '/space', '--from=0', '--len=99999999999999999T'], 2, /argument '99999999999999999T' is invalid\. .* is too large/],
    ] as const) {
      const { fast, slow, out } = await bothPaths(template, [...args]);
      expect(out.status, out.stderr).toBe(status);
      expect(out.stderr).toMatch(message);
      expect(out.stdout).toBe('');
      for (const img of [fast, slow]) expect(sameBytes(fs.readFileSync(img), original), `${args.join(' ')} changed the image`).toBe(true);
    }
    const missing = await cli(['movedata', tmpPath('missing.img'), '/data', '/space', '--from', '0', '--len', '4096']);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^ext4kit: ENOENT: /);
  });
});

const loopWhy = loopSkipReason();
describe.skipIf(!HAVE_E2FSPROGS || !!loopWhy)('an image a mounted loop device uses: refused (EBUSY), never written', () => {
  afterAll(() => cleanupImages());

  it('movedata (fast path) and mkdir (commander) fail with EBUSY; a device checking in the background refuses writes', async () => {
    const img = makeImage('fast-movedata-busy', { data: pattern(4 * B, 1), space: pattern(4 * B, 2) }, { sizeMiB: 16 });
    await withLoopMount(img, async (mnt, loop) => {
      for (const args of [['movedata', img, '/data', '/space', '--from', '0', '--len', String(B)], ['mkdir', img, '/new']]) {
        const r = await cli(args);
        expect({ status: r.status, stdout: r.stdout.toString('utf8') }, r.stderr).toEqual({ status: 1, stdout: '' });
        expect(r.stderr).toMatch(/^ext4kit: EBUSY: .* is in use: it backs /);
        expect(r.stderr).toContain(loop);
        expect(r.stderr).toContain(mnt);
      }
      const dev = await FileDevice.open(img, { write: true, inUseCheck: 'background' });
      try {
        const last = dev.size - B;
        const before = await dev.read(last, B);
        const code = (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (isExt4Error(e) ? e.code : String(e)));
        expect(await code(dev.write(last, new Uint8Array(B).fill(0x5a)))).toBe('EBUSY');
        expect(await code(dev.flush())).toBe('EBUSY');
        expect(await code(dev.ready())).toBe('EBUSY');
        expect(sameBytes(await dev.read(last, B), before)).toBe(true);
      } finally {
        await dev.close();
      }
    });
    expectClean(img, 'after the refused writes and the kernel\'s unmount');
    expect(sameBytes(debugfsFiles(img, ['/data']).get('/data')!.dump, pattern(4 * B, 1))).toBe(true);
  });
});
