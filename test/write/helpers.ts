/**
 * Helpers for the write-path tests: small real images with chosen features,
 * the oracle checks run after every write (e2fsck -fn clean, per-group free
 * counts equal dumpe2fs's bitmap recount, superblock and e2fsck summary
 * totals), debugfs's view of extent trees, and error-code assertions.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'vitest';
import { isExt4Error } from '../../lib/errors.js';
import { mulberry32 as prng } from '../../lib/io/prng.js';
import { debugfs, dumpe2fsGroups, dumpe2fsHeader, E2FSPROGS_TOOLS, e2fsckClean, haveTools, mkfs, sha256File } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';

/** Under CI a missing tool throws (oracleGate) instead of skipping. */
export const HAVE_E2FSPROGS = haveTools(E2FSPROGS_TOOLS);

export interface ImageConfig {
  label: string;
  blockSize: number;
  sizeMiB: number;
  mkfsOpts: string[];
}

/**
 * The allocator matrix: default 4 KiB (small groups so there are several),
 * 1 KiB, ^flex_bg, gdt_csum instead of metadata_csum, no group checksums
 * at all, 32-bit (^64bit), and no journal (ordered in-place commits).
 */
export const CONFIGS: ImageConfig[] = [
  { label: '4k', blockSize: 4096, sizeMiB: 48, mkfsOpts: ['-g', '2048'] },
  { label: '1k', blockSize: 1024, sizeMiB: 48, mkfsOpts: [] },
  { label: '1k ^flex_bg', blockSize: 1024, sizeMiB: 48, mkfsOpts: ['-O', '^flex_bg'] },
  { label: '1k gdt_csum (^metadata_csum,uninit_bg)', blockSize: 1024, sizeMiB: 48, mkfsOpts: ['-O', '^metadata_csum,uninit_bg'] },
  { label: '1k no checksums (^metadata_csum)', blockSize: 1024, sizeMiB: 48, mkfsOpts: ['-O', '^metadata_csum'] },
  { label: '4k 32-bit (^64bit)', blockSize: 4096, sizeMiB: 48, mkfsOpts: ['-g', '2048', '-O', '^64bit'] },
  { label: '4k no journal (^has_journal)', blockSize: 4096, sizeMiB: 48, mkfsOpts: ['-g', '2048', '-O', '^has_journal'] },
];

export { prng };

export function bytes(n: number, seed: number): Uint8Array {
  const r = prng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 256) | 0;
  return out;
}

/**
 * Build an image with: /a (5000 bytes), /empty, /big (300 KiB), /sparse (10
 * one-block data islands between holes: an extent tree of depth 1).
 */
export function buildImage(c: ImageConfig, extraFiles: Record<string, Uint8Array> = {}): string {
  const src = tmpDir('src');
  fs.writeFileSync(path.join(src, 'a'), bytes(5000, 1));
  fs.writeFileSync(path.join(src, 'empty'), new Uint8Array(0));
  fs.writeFileSync(path.join(src, 'big'), bytes(300 * 1024, 2));
  const fd = fs.openSync(path.join(src, 'sparse'), 'w');
  for (let i = 0; i < 10; i++) fs.writeSync(fd, bytes(c.blockSize, 10 + i), 0, c.blockSize, i * 3 * c.blockSize);
  fs.closeSync(fd);
  for (const [name, data] of Object.entries(extraFiles)) fs.writeFileSync(path.join(src, name), data);
  const img = tmpPath(`${c.label}.img`);
  mkfs('ext4', img, c.sizeMiB * 1024 * 1024, ['-b', String(c.blockSize), ...c.mkfsOpts], src);
  fs.rmSync(src, { recursive: true, force: true });
  return img;
}

export interface CountCheck {
  freeBlocks: number;
  freeInodes: number;
  groups: ReturnType<typeof dumpe2fsGroups>;
}

const rangeTotal = (rs: [number, number][]) => rs.reduce((a, [s, e]) => a + e - s + 1, 0);

/**
 * The oracle check after a write: e2fsck -fn exits 0 and prints nothing
 * but its pass headers and summary; every group's descriptor free counts
 * equal dumpe2fs's recount of its bitmaps; the sums equal the superblock
 * totals and e2fsck's summary line.
 */
export function verifyImage(img: string, what = ''): CountCheck {
  const r = e2fsckClean(img);
  expect(r.problems, `e2fsck -fn ${what}\n${r.output}`).toEqual([]);
  expect(r.ok, `e2fsck -fn ${what}\n${r.output}`).toBe(true);
  const groups = dumpe2fsGroups(img);
  const hdr = dumpe2fsHeader(img);
  let fb = 0, fi = 0;
  for (const g of groups) {
    expect(rangeTotal(g.freeBlockRanges), `${what}: group ${g.group} free blocks (descriptor vs bitmap)`).toBe(g.freeBlocks);
    expect(rangeTotal(g.freeInodeRanges), `${what}: group ${g.group} free inodes (descriptor vs bitmap)`).toBe(g.freeInodes);
    fb += g.freeBlocks;
    fi += g.freeInodes;
  }
  expect(Number(hdr['Free blocks']), `${what}: superblock free blocks`).toBe(fb);
  expect(Number(hdr['Free inodes']), `${what}: superblock free inodes`).toBe(fi);
  expect(r.summary!.freeBlocks, `${what}: e2fsck summary free blocks`).toBe(fb);
  expect(r.summary!.freeInodes, `${what}: e2fsck summary free inodes`).toBe(fi);
  return { freeBlocks: fb, freeInodes: fi, groups };
}

export interface DebugfsExtent {
  level: number;
  depth: number;
  logical: number;
  end: number;
  physical: number;
  length: number;
  uninit: boolean;
  leaf: boolean;
}

/** `debugfs -R "ex PATH"`: every node entry; depth of the tree; leaf extents. */
export function debugfsExtents(img: string, p: string): { depth: number; leaves: DebugfsExtent[]; all: DebugfsExtent[] } {
  const out = debugfs(img, [`ex ${p}`]);
  const all: DebugfsExtent[] = [];
  for (const line of out.split('\n')) {
    // " 1/ 2   1/  5     0 -    83  4001             84" (index) / " 2/ 2   1/ 84     0 -     0  4000 -  4000      1 Uninit" (leaf)
    const m = /^\s*(\d+)\/\s*(\d+)\s+\d+\/\s*\d+\s+(\d+)\s*-\s*(\d+)\s+(\d+)(?:\s*-\s*(\d+))?\s+(\d+)\s*(Uninit)?/.exec(line);
    if (!m) continue;
    const level = Number(m[1]), depth = Number(m[2]);
    all.push({ level, depth, logical: Number(m[3]), end: Number(m[4]), physical: Number(m[5]), length: Number(m[7]), uninit: !!m[8], leaf: level === depth });
  }
  const depth = all.length ? all[0]!.depth : 0;
  return { depth, leaves: all.filter((e) => e.leaf), all };
}

/** Expect a promise to reject with an Ext4Error of one of `codes`. */
export async function expectCode(p: Promise<unknown> | (() => Promise<unknown>), codes: string | string[]): Promise<void> {
  const want = Array.isArray(codes) ? codes : [codes];
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (isExt4Error(e) && want.includes(e.code)) return;
    throw new Error(`expected ${want.join('/')} but got ${isExt4Error(e) ? e.code : 'a non-Ext4Error'}: ${(e as Error).message}`);
  }
  throw new Error(`expected ${want.join('/')} but the call succeeded`);
}

export { sha256File };
