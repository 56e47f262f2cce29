/**
 * The arithmetic of the reports against C itself: printf's %.Nf rounding
 * (Python's % formatting and a compiled C program as oracles), e4defrag's
 * single-precision ratio/score and get_best_count (the formulas compiled
 * from C), and the one-block rule of e4defrag ≥ 1.47.1.
 */
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { oracleGate, run, which } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { bestExtentCount, cFixed, fileRatio, fragReport, fragScore, fragTotals } from '../../lib/ops/report.js';
import { withFs } from './helpers.js';
import { hasInlineData } from '../../lib/ext4/inode.js';
import { xorshift32 } from '../../lib/io/prng.js';

/** Deterministic doubles covering ties, tiny, huge, negative and ordinary values. */
function sampleDoubles(n: number): number[] {
  const rnd = xorshift32(0x9e3779b9);
  const out = [0, -0, 0.5, 1.5, 2.5, -2.5, 0.125, 0.375, 12.25, 12.35, 99.995, 1e21, 1e22, 123456789.5, 5e-324, 2 ** 53 + 2, -0.3, 0.05, 0.15, 0.25, 33.45, 64.65];
  for (let i = 0; i < n; i++) {
    const kind = i % 4;
    if (kind === 0) out.push(Math.floor(rnd() * 1e6) / 8); // exact eighths: many ties
    else if (kind === 1) out.push((rnd() - 0.5) * 1000);
    else if (kind === 2) out.push(rnd() * 100);
    else out.push(Math.fround(rnd() * 200));
  }
  return out;
}

describe('cFixed is printf("%.Nf")', () => {
  const py = which('python3');
  oracleGate(py ? null : 'python3 not installed'); // under CI: a failure, not a skip
  if (!py) console.log('python3 not installed: printf rounding oracle skipped');
  it.skipIf(!py)('matches Python %-formatting (correctly rounded, half-even on exact ties) for 2,000 doubles × 4 precisions', () => {
    const xs = sampleDoubles(2000);
    const prog = 'import sys,json\nxs=json.load(sys.stdin)\nprint(json.dumps([["%.*f" % (p, float.fromhex(x)) for p in (0,1,2,3)] for x in xs]))';
    const hex = xs.map((v) => {
      if (Object.is(v, -0)) return '-0x0p+0';
      const dv = new DataView(new ArrayBuffer(8));
      dv.setFloat64(0, v);
      return v < 0 ? `-${toHex(-v)}` : toHex(v);
    });
    const r = run('python3', ['-c', prog], { input: JSON.stringify(hex) });
    const theirs = JSON.parse(r.stdout) as string[][];
    xs.forEach((v, i) => {
      expect([0, 1, 2, 3].map((p) => cFixed(v, p)), `x=${v}`).toEqual(theirs[i]);
    });
  });
  it('special values print as glibc does', () => {
    expect(cFixed(Infinity, 0)).toBe('inf');
    expect(cFixed(-Infinity, 2)).toBe('-inf');
    expect(cFixed(NaN, 0)).toBe('nan');
    expect(cFixed(2.5, 0)).toBe('2');
    expect(cFixed(3.5, 0)).toBe('4');
    expect(cFixed(-0.4, 0)).toBe('-0');
    expect(cFixed(12.25, 1)).toBe('12.2');
  });
});

/** A double as a C99 hex float literal (exact). */
function toHex(v: number): string {
  if (v === 0) return '0x0p+0';
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, v);
  const hi = dv.getUint32(0), lo = dv.getUint32(4);
  const e = (hi >>> 20) & 0x7ff;
  const mant = ((BigInt(hi & 0xfffff) << 32n) | BigInt(lo)).toString(16).padStart(13, '0');
  return e === 0 ? `0x0.${mant}p-1022` : `0x1.${mant}p${e - 1023 >= 0 ? '+' : ''}${e - 1023}`;
}

const C_ORACLE = String.raw`
#include <stdio.h>
#include <stdlib.h>
#define CALC_SCORE(ratio) ((ratio) > 10 ? (80 + 20 * (ratio) / 100) : (8 * (ratio)))
typedef unsigned long long u64;
static int best(u64 block_count, unsigned int bpg, unsigned int flexlog, int flex) {
  int ret; unsigned int flex_bg_num;
  if (bpg == 0) return 1;
  if (flex) { flex_bg_num = 1U << flexlog; ret = ((block_count - 1) / ((u64)bpg * flex_bg_num)) + 1; }
  else ret = ((block_count - 1) / bpg) + 1;
  return ret;
}
int main(void) {
  long long a, b, blocks; unsigned int bpg, flexlog; int flex, bs;
  while (scanf("%lld %lld %lld %u %u %d %d", &a, &b, &blocks, &bpg, &flexlog, &flex, &bs) == 7) {
    int now = (int)a, bst = (int)b; u64 blk = (u64)blocks;
    float ratio = (float)(now - bst) * 100 / blk;
    float score = CALC_SCORE(ratio);
    u64 avg = blk * (bs / 1024) / now;
    printf("%a %a %.0f %d %llu %d\n", ratio, score, score, score > 55, avg, best(blk, bpg, flexlog, flex));
  }
  return 0;
}
`;

describe('e4defrag arithmetic against the C formulas', () => {
  const cc = which('cc') ?? which('gcc');
  oracleGate(cc ? null : 'no C compiler (cc/gcc)'); // under CI: a failure, not a skip
  if (!cc) console.log('no C compiler: e4defrag arithmetic oracle skipped');
  it.skipIf(!cc)('ratio, score (float), %.0f, verdict, average size and get_best_count for 3,000 inputs', () => {
    const dir = tmpDir('c-oracle');
    const src = path.join(dir, 'o.c');
    fs.writeFileSync(src, C_ORACLE);
    run(cc!, ['-O0', '-o', path.join(dir, 'o'), src]);
    const inputs: [number, number, number, number, number, number, number][] = [];
    let x = 12345;
    const rnd = (m: number) => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x % m;
    };
    for (let i = 0; i < 3000; i++) {
      const blocks = [1, 2, 7, 100, 4096, 32768, 65536, 262144, 1 << 20, 123457][rnd(10)]! + rnd(1000);
      const now = 1 + rnd(Math.min(blocks, 3000));
      const best = 1 + rnd(Math.max(1, Math.floor(now / 2)));
      inputs.push([now, best, blocks, [8192, 32768, 1024, 65528][rnd(4)]!, rnd(5), rnd(2), [1024, 2048, 4096, 65536][rnd(4)]!]);
    }
    inputs.push([1, 0, 0, 8192, 4, 1, 1024]); // the inline-data case of e4defrag 1.47.0: 1/0 over 0 blocks
    inputs.push([5, 5, 100, 32768, 4, 1, 4096], [2, 1, 40, 32768, 4, 1, 4096], [27, 1, 20, 32768, 4, 1, 4096]);
    const out = run(path.join(dir, 'o'), [], { input: inputs.map((r) => r.join(' ')).join('\n') + '\n' }).stdout.trim().split('\n');
    expect(out.length).toBe(inputs.length);
    inputs.forEach(([now, best, blocks, bpg, flexlog, flex, bs], i) => {
      const [ratioHex, scoreHex, scoreText, needs, avg, cBest] = out[i]!.split(' ');
      const t = fragTotals(now, best, blocks, bs);
      const where = `input ${inputs[i]!.join(' ')}`;
      expect(t.filesRatio, where).toBe(parseHexFloat(ratioHex!));
      expect(fileRatio(now, best, blocks), where).toBe(parseHexFloat(ratioHex!));
      expect(t.score, where).toBe(parseHexFloat(scoreHex!));
      expect(fragScore(t.filesRatio), where).toBe(t.score);
      expect(t.scoreText, where).toBe(scoreText);
      expect(t.needsDefrag ? '1' : '0', where).toBe(needs);
      if (blocks > 0) expect(String(t.averageSizePerExtentKB), where).toBe(avg);
      expect(String(bestExtentCount(blocks, bpg, flex ? 2 ** flexlog : 1)), where).toBe(cBest);
    });
  });
});

/** Parse printf("%a") output (glibc: 0x1.8p+3, inf, nan, -0x0p+0). */
function parseHexFloat(s: string): number {
  if (s === 'inf') return Infinity;
  if (s === '-inf') return -Infinity;
  if (s === 'nan' || s === '-nan') return NaN;
  const m = /^(-)?0x([01])\.?([0-9a-f]*)p([+-]\d+)$/.exec(s);
  if (!m) throw new Error(`cannot parse %a output ${s}`);
  const frac = m[3] ? parseInt(m[3], 16) / 16 ** m[3].length : 0;
  const v = (Number(m[2]) + frac) * 2 ** Number(m[4]);
  return m[1] ? -v : v;
}

describe('e4defrag file selection', () => {
  const fixture = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../fixtures/fragmented.ext4.img.gz');
  const have = fs.existsSync(fixture);
  if (!have) console.log('fixtures/fragmented.ext4.img.gz not committed: file-selection check skipped');
  it.skipIf(!have)('≥ 1.47.1 skips files of at most one block (st_blocks ≤ blksize/512); 1.47.0 only files without blocks', async () => {
    const img = tmpPath('fragmented.img');
    fs.writeFileSync(img, zlib.gunzipSync(fs.readFileSync(fixture)));
    await withFs(img, async (f) => {
      const newer = (await fragReport(f, undefined, { skipSingleBlock: true })).targets[0]!;
      const older = (await fragReport(f, undefined, { skipSingleBlock: false })).targets[0]!;
      expect(newer.entries).toBe(older.entries);
      const dropped = older.files.filter((x) => !newer.files.some((y) => y.index === x.index));
      for (const d of dropped) {
        const inode = await f.readInode(d.ino);
        const st = inode.blocks512 + (hasInlineData(inode) ? Math.ceil(inode.size / 512) : 0);
        expect(st, d.path).toBeLessThanOrEqual(f.blockSize / 512);
      }
      expect(newer.skipped.filter((s) => s.reason === 'blocks <= 1').length).toBe(dropped.length);
      for (const x of newer.files) expect(older.files.find((y) => y.index === x.index)).toEqual(x);
    });
  });
});
