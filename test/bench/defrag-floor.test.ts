/**
 * bench/defrag-floor.ts — the least a defragmenter meeting the targets must copy, and its raw copy:
 * the keep-largest rule, the targets' 10 % slack, the waves the free space allows, and a copy that
 * really moves the bytes (the floor row of bench/defrag is only as true as these).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defragFloor, rawCopyInto, type PlanInput } from '../../bench/defrag-floor.js';
import type { Extent } from '../../lib/ext4/extents.js';

/** A file of pieces (lengths), each piece apart from the others on disk, logically in order. */
function file(pieces: number[], at: number, trees: number[] = []): PlanInput['files'][number] {
  const extents: Extent[] = [];
  let logical = 0, physical = at;
  for (const n of pieces) {
    extents.push({ logical, physical, length: n, unwritten: false });
    logical += n;
    physical += n + 7; // (a gap: the pieces never merge)
  }
  return { ino: at, path: `/f${at}`, extents, treeBlocks: trees, blockMapped: false };
}

const input = (files: PlanInput['files'], freeBlocks: number, idealExtentBlocks = 32768): PlanInput => ({
  files,
  free: [{ start: 1_000_000, length: freeBlocks }],
  bounds: { first: 0, end: 2_000_000 },
  blockSize: 4096,
  idealExtentBlocks,
  leafExtents: 340,
});

describe('bench/defrag-floor', () => {
  it('copies all of a fragmented file but its largest piece; ideal files not at all', () => {
    // one file: ideal 1 extent, 1.1 × 1 leaves no slack
    expect(defragFloor(input([file([10, 50, 3], 0)], 1000))).toMatchObject({ blocks: 13, notIdeal: 63, waves: 1 });
    // a contiguous file is ideal: nothing to copy
    expect(defragFloor(input([file([10, 50, 3], 0), file([40], 5000)], 1000)).blocks).toBe(13);
  });

  it('the 10 % slack lets the largest other pieces stay, one extent each', () => {
    // 10 files, ideal 10 extents: 11 allowed, one piece over the ideal may stay
    const files = [file([100, 30, 20], 0), ...Array.from({ length: 9 }, (_, i) => file([5, 4], 10_000 * (i + 1)))];
    // without slack: 30 + 20 + 9 × 4 = 86; the largest spare piece (30) stays
    expect(defragFloor(input(files, 1000)).blocks).toBe(86 - 30);
    // 20 files: 22 allowed, two stay (30 and 20)
    const twenty = [...files, ...Array.from({ length: 10 }, (_, i) => file([9], 200_000 + 100 * i))];
    expect(defragFloor(input(twenty, 1000)).blocks).toBe(86 - 30 - 20);
  });

  it('a file of several ideal extents keeps that many pieces', () => {
    // idealExtentBlocks 100: a 250-block file's ideal is 3 runs; 4 pieces → the smallest is copied
    expect(defragFloor(input([file([100, 90, 40, 20], 0)], 1000, 100)).blocks).toBe(20);
  });

  it('waves: each copies at most the free space and the movers\' tree blocks', () => {
    const f = [file([100, 30, 20], 0, [9999, 9998])];
    const fl = defragFloor(input(f, 14));
    expect(fl.perWave).toBe(16);
    expect(fl.waves).toBe(Math.ceil(50 / 16));
  });

  it('the raw copy moves the bytes from the first half to the second', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ext4kit-floor-'));
    try {
      const img = path.join(dir, 'x.img');
      const size = 8 << 20;
      const data = new Uint8Array(size);
      for (let i = 0; i < size; i += 4096) data[i] = (i >>> 12) & 0xff;
      fs.writeFileSync(img, data);
      const s = rawCopyInto(img, 4096, 768, 3); // 3 MiB in 3 waves
      expect(s).toBeGreaterThan(0);
      const out = fs.readFileSync(img);
      expect(Buffer.compare(out.subarray(4 << 20, (4 << 20) + (3 << 20)), Buffer.from(data.subarray(0, 3 << 20)))).toBe(0);
      // past the copy, the second half is as it was
      expect(out[(7 << 20) + 4096]).toBe(data[(7 << 20) + 4096]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
