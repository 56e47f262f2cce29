/**
 * The proposal's calls on the command line: `ext4kit free`, `map`,
 * `allocate`, `movedata` (the bundled CLI, spawned), checked against the
 * library and the real tools.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { getFreeBlocks } from '../../lib/ops/free.js';
import { fsmap } from '../../lib/ops/fsmap.js';
import { cli, cliJson } from '../cli/helpers.js';
import { cleanupImages, debugfsFiles, dumpe2fsFreeRuns, expectClean, HAVE_E2FSPROGS, makeImage, pattern, sameBytes, verify } from './helpers.js';

afterEach(() => cleanupImages());

const B = 4096;

function image(): string {
  return makeImage('cli', { data: pattern(8 * B, 1), space: pattern(8 * B, 2), small: pattern(100, 3) }, { sizeMiB: 64, mkfsOpts: ['-g', '2048'] });
}

describe.skipIf(!HAVE_E2FSPROGS)('ext4kit free / map / allocate / movedata', () => {
  it('free --json is getFreeBlocks (bytes), equal to dumpe2fs; --start/--end/--count clip and limit; the text form totals', async () => {
    const img = image();
    const got = await cliJson<{ start: number; len: number }[]>(['free', img, '--json']);
    expect(got.map((e) => [e.start / B, (e.start + e.len) / B])).toEqual(dumpe2fsFreeRuns(img));
    const f = await Filesystem.open(img);
    try {
      expect(await cliJson(['free', img, '--json', '--start', String(3000 * B), '--end', '40M', '--count', '2'])).toEqual(
        await getFreeBlocks(f, { start: 3000 * B, end: 40 * 2 ** 20, count: 2 }),
      );
    } finally {
      await f.close();
    }
    const text = await cli(['free', img]);
    expect(text.status).toBe(0);
    const total = got.reduce((a, e) => a + e.len, 0);
    expect(text.stdout.toString()).toContain(`${got.length} extents, ${total} bytes`);
  });

  it('free: unaligned start → "ext4kit: EINVAL: …", exit 1; a malformed number is a usage error (exit 2)', async () => {
    const img = image();
    const r = await cli(['free', img, '--start', '1000']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^ext4kit: EINVAL: /);
    const u = await cli(['free', img, '--start', 'lots']);
    expect(u.status).toBe(2);
    const m = await cli(['free', '/nonexistent.img']);
    expect(m.status).toBe(1);
    expect(m.stderr).toMatch(/^ext4kit: ENOENT: /);
  });

  it('map --json is fsmap; the text form names owners', async () => {
    const img = image();
    const got = await cliJson<unknown[]>(['map', img, '--json']);
    const f = await Filesystem.open(img);
    try {
      expect(got).toEqual(JSON.parse(JSON.stringify(await fsmap(f))));
      expect(await cliJson(['map', img, '--json', '--start', String(B), '--end', String(600 * B)])).toEqual(JSON.parse(JSON.stringify(await fsmap(f, { start: B, end: 600 * B }))));
    } finally {
      await f.close();
    }
    const text = (await cli(['map', img])).stdout.toString();
    for (const w of ['superblock', 'gdt', 'inode_table', 'journal', 'free', 'inode 12 data']) expect(text).toContain(w);
  });

  it('allocate prints the bytes allocated; flags map to ALLOC_*; EEXIST/EINVAL are "ext4kit: CODE: …" with exit 1 and change nothing', async () => {
    const img = image();
    const free = await cliJson<{ start: number; len: number }[]>(['free', img, '--json']);
    const goal = free.filter((e) => e.len >= 8 * B).pop()!.start + 4 * B;
    const r = await cli(['allocate', img, '/small', '--offset', String(B), '--len', String(4 * B), '--goal', String(goal), '--fixed-start', '--fixed-len', '--contiguous']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.toString()).toBe(`${4 * B}\n`);
    expect(await cliJson(['allocate', img, '/small', '--offset', '20K', '--len', '4K', '--json'])).toEqual({ allocated: B });
    const want = new Uint8Array(6 * B);
    want.set(pattern(100, 3));
    const ex = debugfsFiles(img, ['/small']).get('/small')!.extents;
    // the second call (no goal) continued right after the first: one 5-block unwritten extent
    expect(ex[1]).toEqual({ logical: 1, physical: goal / B, length: 5, unwritten: true });
    await verify(img, { '/small': { content: want } }, 'ext4kit allocate');
    const e = await cli(['allocate', img, '/small', '--offset', '0', '--len', String(B)]);
    expect(e.status).toBe(1);
    expect(e.stderr).toMatch(/^ext4kit: EEXIST: /);
    const i = await cli(['allocate', img, '/small', '--offset', '1', '--len', String(B)]);
    expect(i.status).toBe(1);
    expect(i.stderr).toMatch(/^ext4kit: EINVAL: /);
    const missing = await cli(['allocate', img, '/small', '--len', String(B)]);
    expect(missing.status).toBe(2); // --offset is required
    expectClean(img, 'refused allocate');
  });

  it('movedata moves space\'s blocks into data (content kept, space holed); errors are "ext4kit: CODE: …"', async () => {
    const img = image();
    const before = debugfsFiles(img, ['/data', '/space']);
    const r = await cli(['movedata', img, '/data', '/space', '--from', String(2 * B), '--len', String(4 * B)]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const after = debugfsFiles(img, ['/data', '/space']);
    expect(sameBytes(after.get('/data')!.dump, pattern(8 * B, 1))).toBe(true);
    const sp = new Uint8Array(pattern(8 * B, 2));
    sp.fill(0, 2 * B, 6 * B);
    const s0 = before.get('/space')!.extents[0]!;
    expect(after.get('/data')!.extents.find((e) => e.logical === 2)).toEqual({ logical: 2, physical: s0.physical + 2, length: 4, unwritten: false });
    await verify(img, { '/data': { content: pattern(8 * B, 1) }, '/space': { content: sp } }, 'ext4kit movedata');
    const e = await cli(['movedata', img, '/data', '/data', '--from', '0', '--len', String(B)]);
    expect(e.status).toBe(1);
    expect(e.stderr).toMatch(/^ext4kit: EINVAL: /);
    const ro = await cli(['movedata', img, '/data', '/space', '--from', '0', '--len', '4097']);
    expect(ro.stderr).toMatch(/^ext4kit: EINVAL: /);
    expectClean(img, 'refused movedata');
  });
});
