/**
 * The fragmented-image builder (test/helpers/frag-images.ts): the write plan is deterministic, the
 * kernel-built image is consistent (e2fsck), holds exactly what the plan wrote (read through the
 * kernel), is at the fill asked for and really fragmented (FIEMAP), and every call returns a
 * private copy.
 */
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { blocksMoved, countExtents, fragImage, fragImageSkipReason, fragPlan, idealExtents, measureFragImage, meetsTargets } from './frag-images.js';
import { expectE2fsckClean, oracleGate, run, sha256File } from './tools.js';

const why = oracleGate(fragImageSkipReason());
if (why) console.log(`frag-images kernel tests skipped: ${why}`);

describe('frag-images: counting and the plan', () => {
  it('the largest free extent: half of the free space, or the longest possible run where half fits in none', () => {
    const s = { extents: 10, idealExtents: 10, freeExtents: 5, freeBlocks: 1000 };
    expect(meetsTargets({ ...s, largestFreeBlocks: 500 })).toEqual({ ok: true, why: [], capped: false });
    expect(meetsTargets({ ...s, largestFreeBlocks: 499 }).ok).toBe(false);
    // the half reached: met whatever the cap says (the oracle may undercount what can move)
    expect(meetsTargets({ ...s, largestFreeBlocks: 600 }, 400)).toEqual({ ok: true, why: [], capped: false });
    // half fits in no run: the longest run possible is the target
    expect(meetsTargets({ ...s, largestFreeBlocks: 400 }, 400)).toEqual({ ok: true, why: [], capped: true });
    const short = meetsTargets({ ...s, largestFreeBlocks: 399 }, 400);
    expect(short.ok).toBe(false);
    expect(short.why).toEqual(['largest free extent 399 < the longest possible 400 (no run holds half of free 1000)']);
    // a cap above the half changes nothing
    expect(meetsTargets({ ...s, largestFreeBlocks: 499 }, 800).why).toEqual(['largest free extent 499 < half of free 1000']);
  });

  it('counts merged runs once per started 128 MiB', () => {
    const e = (logical: number, physical: number, length: number) => ({ logical, physical, length, flags: [] });
    // two FIEMAP rows that continue each other are one extent; a jump starts another
    expect(countExtents([e(0, 100, 10), e(10, 110, 5), e(15, 500, 1)], 4096)).toBe(2);
    // out of order rows are sorted by logical first
    expect(countExtents([e(15, 500, 1), e(0, 100, 15)], 4096)).toBe(2);
    // a contiguous 300 MiB run counts 3 (one per 128 MiB), as ideal says
    expect(countExtents([e(0, 0, 32768), e(32768, 32768, 32768), e(65536, 65536, 11264)], 4096)).toBe(3);
    expect(idealExtents(300 * 1024 * 1024)).toBe(3);
    expect(idealExtents(1)).toBe(1);
    expect(idealExtents(0)).toBe(0);
  });

  it('counts moved blocks as the new blocks outside the file\'s old ones', () => {
    const f = (p: string, runs: [number, number][]) => ({ path: p, size: 0, extents: 0, ideal: 0, runs });
    const before = [f('/a', [[100, 10], [300, 10]]), f('/b', [[500, 4]])];
    // /a keeps 105..109 and 300..304 and gets 10 new blocks at 900; /b stays
    const after = [f('/a', [[105, 5], [300, 5], [900, 10]]), f('/b', [[500, 4]])];
    expect(blocksMoved(before, after)).toBe(10);
    expect(blocksMoved(before, before)).toBe(0);
  });

  it('plans the same writes for the same parameters, different ones for another seed', () => {
    const o = { sizeMiB: 64, fill: 0.7, seed: 7, writers: 4 };
    const a = fragPlan(o, 40 * 1024 * 1024);
    const b = fragPlan(o, 40 * 1024 * 1024);
    const c = fragPlan({ ...o, seed: 8 }, 40 * 1024 * 1024);
    expect(b).toEqual(a);
    expect(c.ops).not.toEqual(a.ops);
    expect(a.finalBytes).toBe(40 * 1024 * 1024);
    // a third of the files deleted, and appends after the deletions (into the holes)
    const firstDelete = a.ops.findIndex((x) => x.op === 'delete');
    const deletes = a.ops.filter((x) => x.op === 'delete').length;
    const created = new Set(a.ops.slice(0, firstDelete).map((x) => x.file)).size;
    expect(deletes).toBe(Math.floor(created / 3));
    expect(a.ops.slice(firstDelete + deletes).filter((x) => x.op === 'append').length).toBeGreaterThan(0);
    // appends of several writers interleave: consecutive appends switch files often
    const appends = a.ops.filter((x) => x.op === 'append');
    const switches = appends.filter((x, i) => i > 0 && x.file !== appends[i - 1]!.file).length;
    expect(switches).toBeGreaterThan(appends.length / 2);
  });
});

describe.skipIf(why !== null)('frag-images: kernel-built 32 MiB image at 70 %', () => {
  it('is consistent, at the fill, fragmented, and holds what the plan wrote', () => {
    const img = fragImage({ sizeMiB: 32, fill: 0.7 })!;
    expectE2fsckClean(img.image, 'frag image copy');
    expect(Math.abs(img.fill - 0.7)).toBeLessThanOrEqual(0.03);
    expect(img.files).toBe(Object.keys(img.expectedSha256).length);
    expect(img.files).toBeGreaterThan(20);
    // really fragmented: well above one extent per file, and free space in many pieces
    expect(img.extents).toBeGreaterThanOrEqual(2 * img.idealExtents);
    expect(img.freeExtents).toBeGreaterThan(5);
    expect(meetsTargets(img).ok).toBe(false);
    // the private copy measures the same (placement and content), read through the kernel
    const m = measureFragImage(img.image, { hash: true });
    expect(m.extents).toBe(img.extents);
    expect(m.freeExtents).toBe(img.freeExtents);
    expect(m.largestFreeBlocks).toBe(img.largestFreeBlocks);
    expect(Object.fromEntries(m.perFile.map((f) => [f.path, f.sha256]))).toEqual(img.expectedSha256);
    // e2freefrag agrees with dumpe2fs's free block count
    const header = run('dumpe2fs', ['-h', img.image]).stdout;
    expect(Number(/Free blocks:\s+(\d+)/.exec(header)![1])).toBe(m.freeBlocks);
  });

  it('returns a private copy each call', () => {
    const a = fragImage({ sizeMiB: 32, fill: 0.7 })!;
    const before = sha256File(a.image);
    const fd = fs.openSync(a.image, 'r+');
    fs.writeSync(fd, Buffer.alloc(4096, 0xee), 0, 4096, 1024 * 1024);
    fs.closeSync(fd);
    const b = fragImage({ sizeMiB: 32, fill: 0.7 })!;
    expect(b.image).not.toBe(a.image);
    expect(sha256File(b.image)).toBe(before);
  });
});
