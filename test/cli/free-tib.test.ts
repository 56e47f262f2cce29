/**
 * `ext4kit free --json` over a whole 1 TiB filesystem equals what e2freefrag finds in the bitmaps:
 * the same number of free extents, free blocks and histogram (the CLI reads metadata with
 * synchronous small reads and prints the list with its own encoder; both must change nothing).
 */
import { describe, expect, it } from 'vitest';
import { run } from '../helpers/tools.js';
import { tibImage } from '../helpers/tib-image.js';
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
