/**
 * Reproducible writes (issue 8): the same calls on the same image give the
 * same bytes. Every time written comes from the `now` option, else
 * SOURCE_DATE_EPOCH, else the clock; every random value written (the
 * i_generation of defrag's temporary inodes) is derived from the fs UUID, the
 * time and the inode when the time is fixed. The sequence — allocate,
 * pwrite, truncate, movedata, defrag on the kernel-made fragmented fixture —
 * runs on two copies, which must end up with the same sha256, and the times
 * debugfs reads back are `now`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Filesystem, type OpenOptions } from '../../lib/node.js';
import { allocate } from '../../lib/ops/allocate.js';
import { movedata } from '../../lib/ops/movedata.js';
import { openFile } from '../../lib/ops/file.js';
import { defrag } from '../../lib/ops/defrag.js';
import { debugfsStat, expectE2fsckClean, run, sha256File } from '../helpers/tools.js';
import { fixtureCopy } from '../helpers/fixtures.js';
import { bytes, HAVE_E2FSPROGS } from './helpers.js';

if (!HAVE_E2FSPROGS) console.log('skipping reproducibility tests: e2fsprogs not installed');

const B = 4096;

/** The call sequence; returns the defrag summary's move count (the run must really move files). */
async function sequence(img: string, opts: OpenOptions): Promise<number> {
  const f = await Filesystem.open(img, { write: true, ...opts });
  try {
    expect(f.reproducible).toBe(true);
    expect(await allocate(f, '/frag/README', { offset: 16 * B, len: 16 * B })).toBe(16 * B);
    await (await openFile(f, '/frag/file1')).pwrite(bytes(3 * B + 100, 7), 5 * B + 17);
    await (await openFile(f, '/frag/file2')).truncate(100_003);
    await movedata(f, '/frag/file3', '/frag/README', { from: 16 * B, len: 16 * B });
    const summary = await defrag(f, { paths: ['/frag'] });
    expect(summary.errors).toEqual([]);
    return summary.moves;
  } finally {
    await f.close();
  }
}

/** Last write time and the error-free state, as dumpe2fs prints them in UTC. */
function lastWriteTime(img: string): string {
  const out = run('dumpe2fs', ['-h', img], { env: { LANG: 'C', LC_ALL: 'C', TZ: 'UTC' } }).stdout;
  return /^Last write time:\s*(.*)$/m.exec(out)![1]!.trim();
}

function utcCtime(sec: number): string {
  return new Date(sec * 1000).toUTCString().replace(/^(\w+), (\d+) (\w+) (\d+) ([\d:]+) GMT$/, (_, d, day, mon, y, t) => `${d} ${mon} ${String(Number(day)).padStart(2, ' ')} ${t} ${y}`);
}

function expectTimes(img: string, sec: number, nsec: number): void {
  // allocate, pwrite and truncate change mtime and ctime; movedata (no content change) ctime only.
  for (const p of ['/frag/file1', '/frag/file2', '/frag/file3', '/frag/README']) {
    const s = debugfsStat(img, p);
    expect(s.ctime, `${p} ctime`).toBe(sec);
    expect(new RegExp(`ctime: 0x[0-9a-f]{8}:([0-9a-f]{8})`).exec(s.raw)![1], `${p} ctime extra`).toBe(((nsec * 4) >>> 0).toString(16).padStart(8, '0'));
    if (p === '/frag/file3') continue;
    expect(s.mtime, `${p} mtime`).toBe(sec);
    expect(s.mtimeNs, `${p} mtime ns`).toBe(nsec);
  }
  expect(lastWriteTime(img)).toBe(utcCtime(sec).replace(/ {2}/, '  '));
}

describe.skipIf(!HAVE_E2FSPROGS)('reproducible writes', () => {
  const saved = process.env.SOURCE_DATE_EPOCH;
  afterEach(() => {
    if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
    else process.env.SOURCE_DATE_EPOCH = saved;
  });

  it('with `now` fixed: two copies, the same calls, the same sha256; times are `now`', async () => {
    delete process.env.SOURCE_DATE_EPOCH;
    const now = { sec: 1_750_000_000, nsec: 123_456_789 };
    const a = fixtureCopy('fragmented');
    const b = fixtureCopy('fragmented');
    expect(await sequence(a, { now })).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 20)); // the real clock moves on between the runs
    await sequence(b, { now });
    expect(sha256File(b)).toBe(sha256File(a));
    expectE2fsckClean(a, 'after the sequence');
    expectTimes(a, now.sec, now.nsec);
  });

  it('with SOURCE_DATE_EPOCH: two copies, the same sha256; times are SOURCE_DATE_EPOCH', async () => {
    process.env.SOURCE_DATE_EPOCH = '1700000123';
    const a = fixtureCopy('fragmented');
    const b = fixtureCopy('fragmented');
    expect(await sequence(a, {})).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 20));
    await sequence(b, {});
    expect(sha256File(b)).toBe(sha256File(a));
    expectE2fsckClean(a, 'after the sequence');
    expectTimes(a, 1_700_000_123, 0);
  });
});
