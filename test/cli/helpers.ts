/**
 * Helpers for the CLI tests: the CLI is bundled once per test process with
 * scripts/bundle-cli.mjs (esbuild, ~0.3 s) into the scratch directory and
 * spawned as `node cli.js …` (≈0.1 s per run, versus ≈1 s through tsx).
 * Spawning the bundle from a directory with no node_modules above it also
 * proves the bundle is self-contained.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { debugfsFull, mkfs, expectE2fsckClean, quoteDebugfs, splitDebugfsOutput, FAKE_TIME } from '../helpers/tools.js';
import { bundleCli } from '../../scripts/bundle-cli.mjs';
import { expect } from 'vitest';

let bundled: Promise<string> | null = null;

/** Path of the bundled CLI (built on first use in this process). */
export function cliBundle(): Promise<string> {
  bundled ??= bundleCli({ outfile: path.join(tmpDir('cli-bundle'), 'cli.js') });
  return bundled;
}

export interface CliResult {
  status: number;
  stdout: Buffer;
  stderr: string;
}

/** Run the bundled CLI synchronously; never throws on a non-zero exit. */
export async function cli(args: string[], opts: { cwd?: string } = {}): Promise<CliResult> {
  const bin = await cliBundle();
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: opts.cwd ?? path.dirname(bin), maxBuffer: 1024 * 1024 * 1024, env: { ...process.env, LANG: 'C' } });
  if (r.error) throw r.error;
  return { status: r.status ?? 128, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

/** Run the bundled CLI and parse its stdout as JSON; throws with stderr on failure. */
export async function cliJson<T>(args: string[]): Promise<T> {
  const r = await cli(args);
  if (r.status !== 0) throw new Error(`ext4kit ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.toString('utf8')) as T;
}

/**
 * Spawn the bundled CLI with stdout piped, feeding every chunk to `onData`;
 * resolves with the exit status, stderr and the child's peak RSS (KiB,
 * reported by the child itself at exit through an --import preload).
 */
const RSS_PRELOAD = 'data:text/javascript,process.on("exit",()=>process.stderr.write("\\nMAXRSS "+process.resourceUsage().maxRSS+"\\n"))';

export async function cliStream(
  args: string[],
  onData: (chunk: Buffer) => void,
  opts: { stopAfter?: number } = {},
): Promise<{ status: number; stderr: string; maxRssKiB: number }> {
  const bin = await cliBundle();
  const child = spawn(process.execPath, ['--import', RSS_PRELOAD, bin, ...args], { cwd: path.dirname(bin), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let seen = 0;
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => (stderr += s));
  child.stdout.on('data', (c: Buffer) => {
    if (opts.stopAfter !== undefined && seen >= opts.stopAfter) return;
    seen += c.length;
    onData(c);
    if (opts.stopAfter !== undefined && seen >= opts.stopAfter) child.stdout.destroy(); // the reader goes away: EPIPE
  });
  const status = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  const m = /\nMAXRSS (\d+)\n/.exec(stderr);
  return { status, stderr: stderr.replace(/\nMAXRSS \d+\n/, ''), maxRssKiB: m ? Number(m[1]) : NaN };
}

/** Run the bundled CLI with stdout redirected to `file` (e.g. /dev/null); reports the child's peak RSS. */
export async function cliToFile(args: string[], file: string): Promise<{ status: number; stderr: string; maxRssKiB: number }> {
  const bin = await cliBundle();
  const fd = fs.openSync(file, 'w');
  try {
    const r = spawnSync(process.execPath, ['--import', RSS_PRELOAD, bin, ...args], { cwd: path.dirname(bin), stdio: ['ignore', fd, 'pipe'], encoding: 'utf8' });
    if (r.error) throw r.error;
    const m = /\nMAXRSS (\d+)\n/.exec(r.stderr);
    return { status: r.status ?? 128, stderr: r.stderr.replace(/\nMAXRSS \d+\n/, ''), maxRssKiB: m ? Number(m[1]) : NaN };
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// debugfs oracles

export interface OracleExtent {
  logical: number;
  physical: number;
  length: number;
  unwritten: boolean;
}

/** Leaf extents printed by `debugfs -R "ex -l PATH"` (extent-mapped files only). */
export function debugfsLeafExtents(img: string, fsPath: string): OracleExtent[] {
  const r = debugfsFull(img, [`ex -l ${quoteDebugfs(fsPath)}`]);
  if (r.stderr) throw new Error(`debugfs ex -l ${fsPath}: ${r.stderr}`);
  const out: OracleExtent[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*\d+\/\s*\d+\s+\d+\/\s*\d+\s+(\d+)\s+-\s+(\d+)\s+(\d+)\s+-\s+(\d+)\s+(\d+)\s*(Uninit)?\s*$/.exec(line);
    if (!m) continue;
    const [lo, hi, plo, phi, len] = [m[1], m[2], m[3], m[4], m[5]].map(Number) as [number, number, number, number, number];
    if (hi - lo + 1 !== len || phi - plo + 1 !== len) throw new Error(`inconsistent debugfs extent line: ${line}`);
    out.push({ logical: lo, physical: plo, length: len, unwritten: m[6] === 'Uninit' });
  }
  return out;
}

/**
 * The data mapping `debugfs stat` prints (EXTENTS: or BLOCKS:), as runs; index/indirect blocks
 * ((ETBn), (IND), (DIND), (TIND)) are skipped. Works for extent and block-mapped files.
 */
export function debugfsStatRuns(img: string, fsPath: string): OracleExtent[] {
  const r = debugfsFull(img, [`stat ${quoteDebugfs(fsPath)}`]);
  if (r.stderr) throw new Error(`debugfs stat ${fsPath}: ${r.stderr}`);
  const m = /\n(EXTENTS|BLOCKS):\n([\s\S]*?)(?:\n\n|\n?$)/.exec(r.stdout);
  if (!m) return [];
  const out: OracleExtent[] = [];
  for (const item of m[2]!.split(/,\s*|\n/)) {
    const t = item.trim();
    if (!t || /^\((ETB\d+|IND|DIND|TIND)\):/.test(t)) continue;
    const x = /^\((\d+)(?:-(\d+))?(\[u\])?\):(\d+)(?:-(\d+))?$/.exec(t);
    if (!x) {
      if (/^TOTAL: \d+$/.test(t)) continue;
      throw new Error(`cannot parse debugfs block run "${t}"`);
    }
    const lo = Number(x[1]), hi = Number(x[2] ?? x[1]), plo = Number(x[4]);
    out.push({ logical: lo, physical: plo, length: hi - lo + 1, unwritten: x[3] === '[u]' });
  }
  return out;
}

/** Merge runs that continue each other logically and physically (same unwritten flag). */
export function mergeRuns(runs: OracleExtent[]): OracleExtent[] {
  const out: OracleExtent[] = [];
  for (const r of runs) {
    const last = out[out.length - 1];
    if (last && last.unwritten === r.unwritten && last.logical + last.length === r.logical && last.physical + last.length === r.physical) last.length += r.length;
    else out.push({ ...r });
  }
  return out;
}

/** Fields of `debugfs stat PATH` used as an oracle for `ext4kit stat`. */
export interface DebugfsStat {
  ino: number;
  type: string;
  mode: number;
  flags: number;
  generation: number;
  uid: number;
  gid: number;
  size: number;
  links: number;
  blockcount: number;
  times: Record<'ctime' | 'atime' | 'mtime' | 'crtime', { sec: number; nsec: number } | null>;
  fastLinkTarget: string | null;
  device: { major: number; minor: number } | null;
}

export function debugfsStat(img: string, fsPath: string): DebugfsStat {
  return debugfsStatMany(img, [fsPath])[0]!;
}

/** `debugfs stat` for many paths in one debugfs run. */
export function debugfsStatMany(img: string, fsPaths: string[]): DebugfsStat[] {
  const r = debugfsFull(img, fsPaths.map((p) => `stat ${quoteDebugfs(p)}`));
  if (r.stderr) throw new Error(`debugfs stat: ${r.stderr}`);
  const parts = splitDebugfsOutput(r.stdout);
  if (parts.length !== fsPaths.length) throw new Error(`debugfs stat: ${parts.length} outputs for ${fsPaths.length} paths`);
  return parts.map((x, i) => parseDebugfsStat(x.output, fsPaths[i]!));
}

function parseDebugfsStat(s: string, fsPath: string): DebugfsStat {
  const num = (re: RegExp) => {
    const m = re.exec(s);
    if (!m) throw new Error(`debugfs stat ${fsPath}: no match for ${re}:\n${s}`);
    return Number(m[1]);
  };
  const time = (name: string) => {
    const m = new RegExp(`^ *${name}: 0x([0-9a-f]+)(?::([0-9a-f]+))? -- `, 'm').exec(s);
    if (!m) return null;
    const lo = parseInt(m[1]!, 16) | 0;
    const extra = m[2] ? parseInt(m[2], 16) : 0;
    return { sec: lo + (extra & 3) * 2 ** 32, nsec: extra >>> 2 };
  };
  const fl = /^Fast link dest: "(.*)"$/m.exec(s);
  const dev = /^(?:\(New-style\) )?Device major\/minor number: (\d+):(\d+)/m.exec(s);
  const typ = /Type: (\S+)/.exec(s);
  return {
    ino: num(/^Inode: (\d+)/m),
    type: typ ? typ[1]! : '',
    mode: parseInt(/Mode: +(\d+)/.exec(s)![1]!, 8),
    flags: parseInt(/Flags: 0x([0-9a-f]+)/.exec(s)![1]!, 16),
    generation: num(/^Generation: (\d+)/m),
    // debugfs prints uid/gid with %d: 4294967294 shows as -2
    uid: num(/User: +(-?\d+)/) >>> 0,
    gid: num(/Group: +(-?\d+)/) >>> 0,
    size: num(/Size: (\d+)/),
    links: num(/^Links: (\d+)/m),
    blockcount: num(/Blockcount: (\d+)/),
    times: { ctime: time('ctime'), atime: time('atime'), mtime: time('mtime'), crtime: time('crtime') },
    fastLinkTarget: fl ? fl[1]! : null,
    device: dev ? { major: Number(dev[1]), minor: Number(dev[2]) } : null,
  };
}

// ---------------------------------------------------------------------------------------------
// A small image with fragmented, sparse and unwritten files (built per test process)

export interface ExtentImage {
  image: string;
  /** Paths inside the image. */
  fragmented: string;
  sparse: string;
  unwritten: string;
  mixed: string;
  contiguous: string;
}

let extentImage: ExtentImage | null = null;

/**
 * 8 MiB, 1 KiB blocks, no journal. mkfs -d writes 300 small files; debugfs removes every other
 * one and then writes a 600 kB file into the holes (≈140 extents, a depth-1 tree); debugfs
 * `fallocate` makes unwritten extents (a whole file, and inside the hole of a sparse file).
 */
export function buildExtentImage(): ExtentImage {
  if (extentImage) return extentImage;
  const dir = tmpDir('extent-image');
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  const fill = (n: number, seed: number) => {
    const b = Buffer.alloc(n);
    let x = seed >>> 0 || 1;
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      b[i] = x & 0xff;
    }
    return b;
  };
  for (let i = 1; i <= 300; i++) fs.writeFileSync(path.join(src, `f${String(i).padStart(3, '0')}`), fill(3000, i));
  fs.writeFileSync(path.join(src, 'contiguous'), fill(40_000, 999));
  // sparse: data at 0, 100 KiB, 1 MiB and the last bytes of 3 MiB
  const fd = fs.openSync(path.join(src, 'sparse'), 'w');
  for (const [off, len] of [[0, 5000], [100 * 1024, 3000], [1024 * 1024, 10_000], [3 * 1024 * 1024 - 100, 100]] as const) fs.writeSync(fd, fill(len, off + 7), 0, len, off);
  fs.closeSync(fd);
  const fd2 = fs.openSync(path.join(src, 'mixed'), 'w');
  fs.writeSync(fd2, fill(4096, 5), 0, 4096, 0);
  fs.writeSync(fd2, fill(4096, 6), 0, 4096, 200 * 1024);
  fs.closeSync(fd2);
  const img = path.join(dir, 'extents.img');
  mkfs('ext4', img, 8 * 1024 * 1024, ['-b', '1024', '-O', '^has_journal', '-N', '512'], src);
  const big = path.join(dir, 'big');
  fs.writeFileSync(big, fill(600_000, 4242));
  const empty = path.join(dir, 'empty');
  fs.writeFileSync(empty, '');
  const cmds: string[] = [];
  for (let i = 1; i <= 300; i += 2) cmds.push(`rm /f${String(i).padStart(3, '0')}`);
  cmds.push(`write ${big} fragmented`, `write ${empty} unwritten`, 'fallocate /unwritten 0 39', 'fallocate /mixed 20 29', 'fallocate /mixed 150 150');
  const r = debugfsFull(img, cmds, { write: true, fakeTime: FAKE_TIME });
  if (r.stderr) throw new Error(`building the extent image: ${r.stderr}`);
  expectE2fsckClean(img, 'extent test image');
  extentImage = { image: img, fragmented: '/fragmented', sparse: '/sparse', unwritten: '/unwritten', mixed: '/mixed', contiguous: '/contiguous' };
  return extentImage;
}

// ---------------------------------------------------------------------------------------------
// In-process runs (same code path as the binary, no process start-up)

/** Run the CLI in this process (lib/cli/program.ts `run`), capturing stdout and stderr. */
export async function cliInProcess(args: string[]): Promise<CliResult> {
  const { run } = await import('../../lib/cli/program.js');
  const { Writable } = await import('node:stream');
  const out: Buffer[] = [];
  let err = '';
  const stdout = new Writable({ write: (c: Buffer, _e, cb) => (out.push(Buffer.from(c)), cb()) });
  const stderr = new Writable({ write: (c: Buffer, _e, cb) => ((err += c.toString('utf8')), cb()) });
  const status = await run(args, { stdout, stderr });
  return { status, stdout: Buffer.concat(out), stderr: err };
}

/** What a CLI run printed, comparable across the two paths (`img` written as IMG in stderr). */
export interface PathOutput {
  status: number;
  stdout: string;
  stderr: string;
}

/**
 * Run `args` (IMG stands for the image) on two copies of `template`: the bundled binary (the fast
 * path, without commander) and program.ts in-process (commander). Their outputs, after
 * `normalise` on stdout, must be equal; returns both images and that output.
 */
export async function bothPaths(template: string, args: string[], normalise: (stdout: string) => string = (s) => s): Promise<{ fast: string; slow: string; out: PathOutput }> {
  const fast = tmpPath('fast.img'), slow = tmpPath('slow.img');
  fs.copyFileSync(template, fast);
  fs.copyFileSync(template, slow);
  const f = await cli(args.map((a) => (a === 'IMG' ? fast : a)));
  const s = await cliInProcess(args.map((a) => (a === 'IMG' ? slow : a)));
  const out = (r: CliResult, img: string): PathOutput => ({ status: r.status, stdout: normalise(r.stdout.toString('utf8')), stderr: r.stderr.split(img).join('IMG') });
  expect(out(f, fast)).toEqual(out(s, slow));
  return { fast, slow, out: out(f, fast) };
}

/**
 * The one V8 code cache file of a fast command's script under XDG_CACHE_HOME `home`, as
 * "inode:mtime:size": a run that used the cache as is leaves it unchanged; one whose cache V8
 * rejected (another flag hash) writes a new file (lib/cli/code-cache.ts).
 */
export function codeCacheStamp(home: string, command: string): string {
  const caches = fs.readdirSync(path.join(home, 'ext4kit')).filter((f) => f.startsWith(`fast-${command}-`));
  expect(caches).toHaveLength(1);
  const st = fs.statSync(path.join(home, 'ext4kit', caches[0]!));
  return `${st.ino}:${st.mtimeMs}:${st.size}`;
}
