/**
 * Helpers for test/ops: small images made by `mkfs.ext4 -d`, the oracle
 * checks every mutating call is followed by (e2fsck -fn clean, debugfs dump
 * and ex, the kernel reading the files through a read-only loop mount),
 * dumpe2fs free ranges, and a device wrapper that counts reads.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import { isExt4Error } from '../../lib/errors.js';
import type { BlockDevice } from '../../lib/io/device.js';
import { Filesystem } from '../../lib/node.js';
import type { Extent } from '../../lib/ext4/extents.js';
import {
  canLoopMount,
  debugfsFull,
  E2FSPROGS_TOOLS,
  expectE2fsckClean,
  haveTools,
  dumpe2fsFreeExtents,
  mkfs,
  quoteDebugfs,
  skipReason,
  splitDebugfsOutput,
  withLoopMount,
} from '../helpers/tools.js';
import { shmDir, tmpDir, tmpPath } from '../helpers/tmp.js';

/** Under CI a missing tool throws (oracleGate) instead of skipping. */
export const HAVE_E2FSPROGS = haveTools(E2FSPROGS_TOOLS);
export const LOOP_SKIP = HAVE_E2FSPROGS ? skipReason('loop') : 'e2fsprogs missing';
export const CAN_MOUNT = LOOP_SKIP === null && canLoopMount();

/** `data` as a stream of `piece`-byte chunks (the last one shorter): a content that is not one buffer. */
export async function* chunksOf(data: Uint8Array, piece: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < data.length; at += piece) yield data.subarray(at, at + piece);
}

/** Deterministic bytes (xorshift32). */
export function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = (Math.imul(seed, 2654435761) >>> 0) || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = (x & 0xff) | 1; // never a zero block (mkfs -d turns all-zero blocks into holes)
  }
  return out;
}

/** A file for mkfs -d: bytes; all-zero blocks become holes. */
export type SourceFiles = Record<string, Uint8Array>;

/**
 * Scratch files for images: on tmpfs (/dev/shm) when available — the write
 * path flushes after every transaction, and fsync on a disk-backed /tmp makes
 * a test of a few hundred calls take seconds — else the per-process tmp dir.
 * Call `cleanupImages()` after each test (tmpfs is memory).
 */
const created: string[] = [];
export function scratchPath(name: string): string {
  const root = shmDir();
  const p = root ? path.join(root, `scratch-${created.length}-${name.replace(/[^A-Za-z0-9._-]/g, '_')}`) : tmpPath(name);
  created.push(p);
  return p;
}

/** Remove every scratch image made so far except `keep`. */
export function cleanupImages(keep: string[] = []): void {
  const rest = created.splice(0);
  for (const p of rest) {
    if (keep.includes(p)) created.push(p);
    else fs.rmSync(p, { force: true, recursive: true });
  }
}

/** mkfs.ext4 -d with the given files; returns the image path. */
export function makeImage(name: string, files: SourceFiles, opts: { sizeMiB?: number; blockSize?: number; mkfsOpts?: string[] } = {}): string {
  const src = tmpDir(`${name}-src`);
  for (const [p, data] of Object.entries(files)) {
    const abs = path.join(src, p);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, data);
  }
  const img = scratchPath(`${name}.img`);
  mkfs('ext4', img, (opts.sizeMiB ?? 32) * 1024 * 1024, ['-b', String(opts.blockSize ?? 4096), ...(opts.mkfsOpts ?? [])], src);
  fs.rmSync(src, { recursive: true, force: true });
  return img;
}

/** Sparse copy of an image. */
export function copyImage(img: string, name = 'copy'): string {
  const p = scratchPath(`${name}.img`);
  fs.copyFileSync(img, p);
  return p;
}

export function sha256File(p: string): string {
  return createHash('sha256').update(fs.readFileSync(p)).digest('hex');
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

/** Where two byte arrays first differ (for messages). */
export function firstDiff(a: Uint8Array, b: Uint8Array): string {
  if (a.length !== b.length) return `length ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `byte ${i}: ${a[i]} vs ${b[i]}`;
  return 'equal';
}

/** The Ext4Error code a call rejects with. */
export async function codeOf(p: Promise<unknown> | (() => Promise<unknown>)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return isExt4Error(e) ? e.code : `not an Ext4Error: ${String(e)}`;
  }
  return 'resolved';
}

/** A leaf extent as `debugfs ex` prints it. */
export interface DebugfsExtent extends Extent {}

/** Parse `debugfs ex` output: leaf extents (logical, physical, length, unwritten). */
export function parseEx(out: string): DebugfsExtent[] {
  const ext: DebugfsExtent[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\/\s*(\d+)\s+\d+\/\s*\d+\s+(\d+)\s*-\s*(\d+)\s+(\d+)\s*-\s*(\d+)\s+(\d+)\s*(Uninit)?/.exec(line);
    if (!m || m[1] !== m[2]) continue;
    ext.push({ logical: Number(m[3]), physical: Number(m[5]), length: Number(m[7]), unwritten: m[8] === 'Uninit' });
  }
  return ext;
}

/** Merge logically and physically adjacent extents of the same state (the tree may split long ones). */
export function mergeExtents(list: readonly Extent[]): Extent[] {
  const out: Extent[] = [];
  for (const e of list) {
    const l = out[out.length - 1];
    if (l && l.unwritten === e.unwritten && l.logical + l.length === e.logical && l.physical + l.length === e.physical) l.length += e.length;
    else out.push({ ...e });
  }
  return out;
}

export interface FileOracle {
  /** debugfs dump of the file. */
  dump: Buffer;
  /** debugfs ex leaf extents. */
  extents: DebugfsExtent[];
  /** debugfs stat size. */
  size: number;
}

/** One debugfs batch: dump + ex + stat of each path. */
export function debugfsFiles(img: string, paths: string[]): Map<string, FileOracle> {
  const outs = paths.map((p) => tmpPath(`dump-${path.basename(p)}`));
  const cmds: string[] = [];
  paths.forEach((p, i) => cmds.push(`dump ${quoteDebugfs(p)} ${outs[i]}`, `ex ${quoteDebugfs(p)}`, `stat ${quoteDebugfs(p)}`));
  const r = debugfsFull(img, cmds);
  const parts = splitDebugfsOutput(r.stdout);
  const res = new Map<string, FileOracle>();
  paths.forEach((p, i) => {
    const ex = parts.find((x) => x.cmd === `ex ${quoteDebugfs(p)}`)?.output ?? '';
    const st = parts.find((x) => x.cmd === `stat ${quoteDebugfs(p)}`)?.output ?? '';
    const size = /Size:\s*(\d+)/.exec(st);
    if (!fs.existsSync(outs[i]!) || !size) throw new Error(`debugfs could not read ${p}:\n${r.stdout}\n${r.stderr}`);
    res.set(p, { dump: fs.readFileSync(outs[i]!), extents: parseEx(ex), size: Number(size[1]) });
    fs.rmSync(outs[i]!, { force: true });
  });
  return res;
}

/** The one strict e2fsck helper (exit 0 and no problem printed), under the name these tests use. */
export const expectClean = expectE2fsckClean;

export interface Expectation {
  /** Expected full content. */
  content: Uint8Array;
  /** Expected leaf extents (compared after merging adjacent ones); omit to only compare with ext4kit's own view. */
  extents?: Extent[];
}

/**
 * The oracle checks after a mutating call (the filesystem must be closed):
 * e2fsck -fn clean; debugfs dump equals the expected content and debugfs ex
 * equals what ext4kit reads (and `extents` when given); the kernel reads the
 * same bytes through a read-only loop mount (when loop mounts work).
 */
export async function verify(img: string, files: Record<string, Expectation>, what: string): Promise<void> {
  expectClean(img, what);
  const paths = Object.keys(files);
  const oracle = debugfsFiles(img, paths);
  const f = await Filesystem.open(img);
  try {
    for (const p of paths) {
      const want = files[p]!;
      const o = oracle.get(p)!;
      expect(o.size, `${what}: debugfs size of ${p}`).toBe(want.content.length);
      expect(sameBytes(o.dump, want.content), `${what}: debugfs dump of ${p} (${firstDiff(o.dump, want.content)})`).toBe(true);
      const mine = (await f.fileMap(await f.resolve(p))).extents;
      expect(mergeExtents(o.extents), `${what}: debugfs ex of ${p} vs ext4kit`).toEqual(mergeExtents(mine));
      if (want.extents) expect(mergeExtents(o.extents), `${what}: layout of ${p}`).toEqual(mergeExtents(want.extents));
    }
  } finally {
    await f.close();
  }
  if (CAN_MOUNT) {
    await withLoopMount(
      img,
      (mp) => {
        for (const p of paths) {
          const got = fs.readFileSync(path.join(mp, p));
          expect(sameBytes(got, files[p]!.content), `${what}: the kernel reads ${p} (${firstDiff(got, files[p]!.content)})`).toBe(true);
        }
      },
      { readOnly: true, options: ['noload'] },
    );
  }
}

/** dumpe2fs "Free blocks:" ranges of every group, merged across groups, as [start, end) block runs. */
export function dumpe2fsFreeRuns(img: string): [number, number][] {
  return dumpe2fsFreeExtents(img).map((r) => [r.start, r.start + r.length]);
}

/** Clip [start, end) runs to [lo, hi). */
export function clipRuns(runs: [number, number][], lo: number, hi: number): [number, number][] {
  const out: [number, number][] = [];
  for (const [a, b] of runs) {
    const s = Math.max(a, lo), e = Math.min(b, hi);
    if (s < e) out.push([s, e]);
  }
  return out;
}

/** Wraps a device and records every read and write. */
export class CountingDevice implements BlockDevice {
  reads: { position: number; length: number }[] = [];
  writes: { position: number; length: number }[] = [];
  constructor(readonly inner: BlockDevice) {}
  get size() {
    return this.inner.size;
  }
  get readOnly() {
    return this.inner.readOnly;
  }
  get name() {
    return this.inner.name;
  }
  read(position: number, length: number) {
    this.reads.push({ position, length });
    return this.inner.read(position, length);
  }
  write(position: number, data: Uint8Array) {
    this.writes.push({ position, length: data.length });
    return this.inner.write(position, data);
  }
  flush() {
    return this.inner.flush();
  }
  close() {
    return this.inner.close();
  }
  /** Was any byte of block b (of size bs) read? */
  readBlock(b: number, bs: number): boolean {
    return this.reads.some((r) => r.position < (b + 1) * bs && r.position + r.length > b * bs);
  }
}

/** Read a file's content through ext4kit. */
export async function readAll(f: Filesystem, p: string): Promise<Uint8Array> {
  const ino = await f.resolve(p);
  return f.read(ino, 0, ino.size);
}

/** Extents of a file through ext4kit. */
export async function extentsOf(f: Filesystem, p: string): Promise<Extent[]> {
  return (await f.fileMap(await f.resolve(p))).extents;
}

/** The bytes of physical blocks [b, b+n) straight from the image file. */
export function rawBlocks(img: string, b: number, n: number, bs: number): Uint8Array {
  const fd = fs.openSync(img, 'r');
  try {
    const buf = Buffer.alloc(n * bs);
    fs.readSync(fd, buf, 0, n * bs, b * bs);
    return new Uint8Array(buf);
  } finally {
    fs.closeSync(fd);
  }
}

/** Is block b in use according to debugfs (testb)? */
export function debugfsTestBlocks(img: string, blocks: number[]): Map<number, boolean> {
  const r = debugfsFull(img, blocks.map((b) => `testb ${b}`));
  const out = new Map<number, boolean>();
  for (const m of r.stdout.matchAll(/Block (\d+) (marked in use|not in use)/g)) out.set(Number(m[1]), m[2] === 'marked in use');
  return out;
}

/** `debugfs icheck` owners of blocks (0 = not found). */
export function icheck(img: string, blocks: number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (let i = 0; i < blocks.length; i += 500) {
    const chunk = blocks.slice(i, i + 500);
    const r = debugfsFull(img, [`icheck ${chunk.join(' ')}`]);
    for (const line of r.stdout.split('\n')) {
      const m = /^(\d+)\s+(\d+|<block not found>)/.exec(line);
      if (m) out.set(Number(m[1]), m[2] === '<block not found>' ? 0 : Number(m[2]));
    }
  }
  return out;
}
