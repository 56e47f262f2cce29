/**
 * `ext4kit free --json` over a whole 1 TiB filesystem equals what e2freefrag finds in the bitmaps:
 * the same number of free extents, free blocks and histogram; on the fragmented image (~240,000
 * free runs in ~5,800 groups) it is exactly the free ranges dumpe2fs prints per group, merged
 * across groups. The CLI reads the bitmaps in coalesced runs and prints the list with its own
 * byte encoder; neither may change a byte of what JSON.stringify(list, null, 2) would print.
 */
import { describe, expect, it } from 'vitest';
import { dumpe2fsFreeBytes, run } from '../helpers/tools.js';
import { tibFragmentedImage, tibImage } from '../helpers/tib-image.js';
import { cli } from './helpers.js';

interface Histogram {
  extents: number;
  freeBlocks: number;
  /** log2 of the bucket's smallest size in blocks → [extents, blocks]. */
  buckets: Map<number, [number, number]>;
}

const UNIT: Record<string, number> = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

function parseE2freefrag(out: string, bs: number): Histogram {
  const buckets = new Map<number, [number, number]>();
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)([KMGT])\.\.\.\s*\d+[KMGT]-\s*:\s*(\d+)\s+(\d+)\s/.exec(line);
    if (m) buckets.set(Math.log2((Number(m[1]) * UNIT[m[2]!]!) / bs), [Number(m[3]), Number(m[4])]);
  }
  return {
    extents: Number(/Num\. free extent: (\d+)/.exec(out)?.[1]),
    freeBlocks: Number(/Free blocks: (\d+)/.exec(out)?.[1]),
    buckets,
  };
}

function histogramOf(list: { start: number; len: number }[], bs: number): Histogram {
  const buckets = new Map<number, [number, number]>();
  let freeBlocks = 0;
  for (const e of list) {
    const n = e.len / bs;
    const i = Math.floor(Math.log2(n));
    const b = buckets.get(i) ?? [0, 0];
    b[0]++;
    b[1] += n;
    buckets.set(i, b);
    freeBlocks += n;
  }
  return { extents: list.length, freeBlocks, buckets };
}

describe('free --json on a 1 TiB image', () => {
  it('has the free extents e2freefrag counts: same number, free blocks and histogram; output is exactly JSON.stringify(list, null, 2)', async () => {
    const img = tibImage();
    const r = await cli(['free', img, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const text = r.stdout.toString('utf8');
    const list = JSON.parse(text) as { start: number; len: number }[];
    expect(text).toBe(JSON.stringify(list, null, 2) + '\n');
    const want = parseE2freefrag(run('e2freefrag', [img], { env: { LANG: 'C' } }).stdout, 4096);
    expect(want.extents).toBeGreaterThan(700);
    expect(want.buckets.size).toBeGreaterThanOrEqual(6);
    expect(histogramOf(list, 4096)).toEqual(want);
    for (let i = 1; i < list.length; i++) expect(list[i]!.start).toBeGreaterThan(list[i - 1]!.start + list[i - 1]!.len);
  }, 120_000);

  it('--count and --start resume the same list', async () => {
    const img = tibImage();
    const all = JSON.parse((await cli(['free', img, '--json'])).stdout.toString('utf8')) as { start: number; len: number }[];
    const first = JSON.parse((await cli(['free', img, '--json', '--count', '1000'])).stdout.toString('utf8')) as typeof all;
    expect(first).toEqual(all.slice(0, 1000));
    const last = first[first.length - 1]!;
    const rest = JSON.parse((await cli(['free', img, '--json', '--start', String(last.start + last.len), '--count', '7'])).stdout.toString('utf8')) as typeof all;
    expect(rest).toEqual(all.slice(1000, 1007));
  }, 120_000);
});


describe('free --json on a 1 TiB image with ~240,000 free runs', () => {
  it('prints exactly the free ranges dumpe2fs reads from the bitmaps, merged across groups, and e2freefrag\'s histogram', async () => {
    const img = tibFragmentedImage();
    const r = await cli(['free', img, '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const text = r.stdout.toString('utf8');
    const list = JSON.parse(text) as { start: number; len: number }[];
    expect(text).toBe(JSON.stringify(list, null, 2) + '\n');
    expect(list.length).toBeGreaterThan(200_000);
    // Runs that cross group boundaries (the untouched 30 % is one run over ~2,300 groups) and starts past 2^32 bytes.
    expect(list[list.length - 1]!.len).toBeGreaterThan(128 * 1024 * 1024);
    expect(list.some((e) => e.start > 2 ** 40 / 2)).toBe(true);
    expect(list).toEqual(dumpe2fsFreeBytes(img, 4096));
    const want = parseE2freefrag(run('e2freefrag', [img], { env: { LANG: 'C' } }).stdout, 4096);
    expect(histogramOf(list, 4096)).toEqual(want);
  }, 600_000);

  it('a range cut inside runs, --count and --start resume, and the table, all agree with the whole list', async () => {
    const img = tibFragmentedImage();
    const all = JSON.parse((await cli(['free', img, '--json'])).stdout.toString('utf8')) as { start: number; len: number }[];
    // A window starting and ending inside free runs, over ~1,400 groups (bitmaps read in two batches).
    const a = all[1000]!, b = all[60_000]!;
    const from = a.start + 4096 * Math.floor(a.len / 4096 / 2), to = b.start + 4096 * Math.max(1, Math.floor(b.len / 4096 / 2));
    const want = all.filter((e) => e.start + e.len > from && e.start < to).map((e) => {
      const s = Math.max(from, e.start), t = Math.min(to, e.start + e.len);
      return { start: s, len: t - s };
    });
    const got = JSON.parse((await cli(['free', img, '--json', '--start', String(from), '--end', String(to)])).stdout.toString('utf8')) as typeof all;
    expect(got).toEqual(want);
    const first = JSON.parse((await cli(['free', img, '--json', '--count', '150000'])).stdout.toString('utf8')) as typeof all;
    expect(first).toEqual(all.slice(0, 150_000));
    const last = first[first.length - 1]!;
    const rest = JSON.parse((await cli(['free', img, '--json', '--start', String(last.start + last.len), '--count', '3'])).stdout.toString('utf8')) as typeof all;
    expect(rest).toEqual(all.slice(150_000, 150_003));
    const table = (await cli(['free', img, '--start', String(from), '--end', String(to)])).stdout.toString('utf8').trimEnd().split('\n');
    expect(table.length).toBe(want.length + 2);
    expect(table[table.length - 1]).toBe(`${want.length} extents, ${want.reduce((x, e) => x + e.len, 0)} bytes (` + table[table.length - 1]!.split('(')[1]);
    expect(table[1]!.trim().split(/\s+/).slice(0, 3)).toEqual([String(want[0]!.start), String(want[0]!.start + want[0]!.len), String(want[0]!.len)]);
  }, 600_000);
});
