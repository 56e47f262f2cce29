/**
 * bench/cold — the everyday commands as users run them: whole fresh processes of the bundled
 * CLI, node's own start-up (`node -e 0`, same run) subtracted, next to the reference tools and
 * to the warm in-process figures.
 *
 *   npx tsx bench/cold.ts [--runs 7] [--image PATH]... [--cli LABEL=PATH]...
 *
 * Images: the two 1 TiB sparse test images (test/helpers/tib-image.ts, built once and cached):
 * "punched" (1,312 free runs in a few groups) and "fragmented" (~240,000 free runs over 70 % of
 * the disk: ~5,800 bitmaps to read, the issue's case); or each --image. Commands: `--version`,
 * `info --json` (target ≤ 50 ms of work), `free --json` over the whole filesystem (target ≤ 0.1×
 * e2freefrag's work), vs `e2freefrag` and `dumpe2fs -h`.
 * Every figure is a median of --runs (≥ 5) runs, the commands interleaved round-robin so that
 * the shared machine's load drifts over all of them alike; the load average is printed. With
 * `perf stat` available, CPU time (task-clock) is printed too: on a loaded machine it is the
 * steadier measure (node's start-up CPU is subtracted likewise); else, with GNU time
 * (/usr/bin/time), user+system CPU and minor page faults (a fresh process pays for every new
 * page it touches: on a VM ~15 µs each, 4 ms a MB).
 * Each command's stdout goes to a file, as `ext4kit free IMG --json > out.json` does: through a
 * pipe into this process (spawnSync) the 13 MB of `free --json` took ~115 ms more, which is
 * spawnSync's reading (`cat` drains the same pipe in ~20 ms), not the command's work.
 * --rt runs every command under `chrt -f 10` (root): on a machine shared with other work, the
 * figures then come near a quiet machine's (run the bench itself under chrt too).
 * --cli adds other bundles (e.g. an earlier build: `--cli before=/tmp/cli-before.js`) to the
 * same run; the current tree is bundled as "now".
 * After the table, each ext4kit job's time after its output: last write → 'exit' (node drains
 * V8's background jobs, e.g. a TurboFan compile started near the end) and 'exit' → gone.
 * --instructions also counts instructions under callgrind (one run each, `node -e 0`'s count
 * subtracted): the main thread's and all threads' (V8's compiler and GC helpers). It is the one
 * figure a machine shared with other work does not move; V8 tiers up later under valgrind, so the
 * counts weigh unoptimised code more than a quiet machine's wall time does. Slow (~1 min a run).
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { bundleCli } from '../scripts/bundle-cli.mjs';
import { Filesystem } from '../lib/node.js';
import { getFreeBlocks } from '../lib/ops/free.js';
import { info } from '../lib/ops/inspect.js';
import { tibFragmentedImage, tibImage } from '../test/helpers/tib-image.js';

const args = process.argv.slice(2);
const opt = (name: string): string[] => args.flatMap((a, i) => (a === `--${name}` && args[i + 1] !== undefined ? [args[i + 1]!] : []));
const RUNS = Math.max(5, Number(opt('runs')[0] ?? 7));
const images: [string, string][] = opt('image').length > 0 ? opt('image').map((p, i) => [`image${i + 1}`, p]) : [['punched', tibImage()], ['fragmented', tibFragmentedImage()]];

const work = fs.mkdtempSync(join(os.tmpdir(), 'ext4kit-bench-cold-'));
// Beside a package.json saying "module", as dist/cli.js is (else node sniffs the format first).
fs.writeFileSync(join(work, 'package.json'), '{"type":"module"}\n');
const clis: [string, string][] = [['now', await bundleCli({ outfile: join(work, 'cli.js') })]];
for (const c of opt('cli')) {
  const [label, p] = c.includes('=') ? [c.slice(0, c.indexOf('=')), c.slice(c.indexOf('=') + 1)] : [c, c];
  // A split bundle (scripts/bundle-cli.mjs): the entry and its chunks directory (<entry>-chunks) travel together.
  const dir = join(work, `cli-${label}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
  // (cli.cjs, the launcher, and cli.js, the ES module entry, beside each other: either may be named)
  const stem = p.replace(/\.c?js$/, '');
  for (const ext of ['.js', '.cjs']) if (fs.existsSync(stem + ext)) fs.copyFileSync(stem + ext, join(dir, `cli${ext}`));
  const chunks = `${stem}-chunks`;
  if (fs.existsSync(chunks)) fs.cpSync(chunks, join(dir, 'cli-chunks'), { recursive: true });
  clis.push([label, join(dir, `cli${p.endsWith('.cjs') ? '.cjs' : '.js'}`)]);
}

interface Job {
  name: string;
  cmd: string;
  args: string[];
  times: number[];
  /** CPU time (task-clock: user + system, all threads) when perf is available. */
  cpu: number[];
  /** Minor page faults (GNU time). */
  faults: number[];
}
// On a shared machine wall time swings with the load; CPU time much less: take both when `perf stat` works.
const PERF = spawnSync('perf', ['stat', '-x,', '-e', 'task-clock', '--', 'true']).status === 0;
// Else GNU time: user + system CPU (10 ms resolution) and minor page faults.
const GNU_TIME = !PERF && spawnSync('/usr/bin/time', ['-f', '%U %S %R', 'true']).status === 0;
const RT = args.includes('--rt');
const sink = join(work, 'stdout');
const jobs: Job[] = [];
const job = (name: string, cmd: string, a: string[]) => jobs.push({ name, cmd, args: a, times: [], cpu: [], faults: [] });
job('node -e 0', process.execPath, ['-e', '0']);
for (const [label, bin] of clis) job(`${label}: --version`, process.execPath, [bin, '--version']);
for (const [im, image] of images) {
  for (const [label, bin] of clis) {
    job(`${label}: info --json ${im}`, process.execPath, [bin, 'info', image, '--json']);
    job(`${label}: free --json ${im}`, process.execPath, [bin, 'free', image, '--json']);
  }
  job(`e2freefrag ${im}`, 'e2freefrag', [image]);
  job(`dumpe2fs -h ${im}`, 'dumpe2fs', ['-h', image]);
}

const freeRuns = new Map<string, number>();
for (let r = 0; r < RUNS + 1; r++) {
  for (const j of jobs) {
    let [cmd, a] = PERF ? ['perf', ['stat', '-x,', '-e', 'task-clock', '--', j.cmd, ...j.args]] : GNU_TIME ? ['/usr/bin/time', ['-f', 'EXT4KIT_TIME %U %S %R', j.cmd, ...j.args]] : [j.cmd, j.args];
    if (RT) [cmd, a] = ['chrt', ['-f', '10', cmd, ...a]];
    const out = fs.openSync(sink, 'w');
    const t = performance.now();
    const p = spawnSync(cmd, a, { stdio: ['ignore', out, 'pipe'], maxBuffer: 1 << 30, env: { ...process.env, LANG: 'C' } });
    const ms = performance.now() - t;
    fs.closeSync(out);
    if (p.status !== 0) throw new Error(`${j.name} failed (${p.status}): ${p.stderr}`);
    const clock = PERF ? /^([\d.]+),msec,task-clock/m.exec(p.stderr.toString('utf8')) : null;
    if (clock && r > 0) j.cpu.push(Number(clock[1]));
    const gt = GNU_TIME ? /^EXT4KIT_TIME ([\d.]+) ([\d.]+) (\d+)$/m.exec(p.stderr.toString('utf8')) : null;
    if (gt && r > 0) {
      j.cpu.push(1000 * (Number(gt[1]) + Number(gt[2])));
      j.faults.push(Number(gt[3]));
    }
    const m = /^now: free --json (.*)$/.exec(j.name);
    if (m && r === 0) freeRuns.set(m[1]!, (JSON.parse(fs.readFileSync(sink, 'utf8')) as unknown[]).length);
    if (r > 0) j.times.push(ms); // the first round warms the page cache
  }
}
/** Instructions of a process under callgrind: [main thread, all threads], or null without valgrind. */
function instructions(cmd: string, a: string[]): [number, number] | null {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'ext4kit-cg-'));
  try {
    const p = spawnSync('valgrind', ['--tool=callgrind', '--separate-threads=yes', '--smc-check=all-non-file', `--callgrind-out-file=${join(dir, 'cg.out')}`, cmd, ...a], { maxBuffer: 1 << 30 });
    if (p.status !== 0) return null;
    // One file per thread, cg.out-01 (the main thread), cg.out-02, …
    const files = fs.readdirSync(dir).filter((f) => /-\d+$/.test(f)).sort();
    const counts = files.map((f) => Number(/^totals: (\d+)/m.exec(fs.readFileSync(join(dir, f), 'utf8'))?.[1] ?? 0));
    return counts.length === 0 ? null : [counts[0]!, counts.reduce((x, y) => x + y, 0)];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const node0 = median(jobs[0]!.times);
const isRef = (name: string) => name.startsWith('e2freefrag') || name.startsWith('dumpe2fs');
const work_ = (name: string) => median(jobs.find((j) => j.name === name)!.times) - (isRef(name) ? 0 : node0);
const CPU = PERF || GNU_TIME;
const cpu0 = CPU ? median(jobs[0]!.cpu) : 0;
const faults0 = GNU_TIME ? median(jobs[0]!.faults) : 0;
/** Median CPU time of a job, node's own start-up CPU subtracted (ext4kit jobs). */
const cpu_ = (name: string) => (CPU ? median(jobs.find((j) => j.name === name)!.cpu) - (isRef(name) ? 0 : cpu0) : NaN);
/** Median minor page faults of a job, node's own subtracted (ext4kit jobs). */
const faults_ = (name: string) => median(jobs.find((j) => j.name === name)!.faults) - (isRef(name) ? 0 : faults0);

// Warm, in-process (what the README used to quote).
const warm = new Map<string, { free: number[]; info: number[]; firstFree: number }>();
for (const [im, image] of images) {
  const fsw = await Filesystem.open(image);
  const w = { free: [] as number[], info: [] as number[], firstFree: 0 };
  for (let r = 0; r < RUNS + 1; r++) {
    let t = performance.now();
    await getFreeBlocks(fsw);
    w.free.push(performance.now() - t);
    t = performance.now();
    info(fsw);
    w.info.push(performance.now() - t);
  }
  await fsw.close();
  w.firstFree = w.free.shift()!;
  w.info.shift();
  warm.set(im, w);
}

const f = (ms: number) => `${ms.toFixed(1)} ms`;
console.log(`${RUNS} runs each, medians; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${os.cpus().length} CPUs`);
for (const [im, image] of images) console.log(`image ${im}: ${image} (${freeRuns.get(im) ?? '?'} free extents)`);
// What each fresh `free` / `ls` compiles or deserialises: its command's script (scripts/bundle-cli.mjs).
for (const [label, bin] of clis) {
  const dir = bin.replace(/\.c?js$/, '-chunks');
  const sizes = fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => /^fast-\w+-[0-9a-f]+\.cjs$/.test(n)).map((n) => `${n.split('-')[1]} ${(fs.statSync(join(dir, n)).size / 1024).toFixed(0)} KB`) : [];
  if (sizes.length) console.log(`${label}: fast scripts: ${sizes.join(', ')}`);
}
console.log(`node start-up (node -e 0): ${f(node0)} wall${CPU ? `, ${f(cpu0)} CPU` : ''}${GNU_TIME ? `, ${faults0} page faults` : ''} — subtracted from every ext4kit figure below${RT ? '; every command under chrt -f 10' : ''}`);
const rows: string[][] = [['command', 'work (fresh process)', 'reference', 'ratio', 'target', ...(CPU ? ['CPU work', 'CPU reference', 'CPU ratio'] : []), ...(GNU_TIME ? ['page faults', 'reference'] : [])]];
const cpuCols = (name: string, ref: string) => [
  ...(CPU ? [f(cpu_(name)), ref ? f(cpu_(ref)) : '', ref && cpu_(ref) > 0 ? (cpu_(name) / cpu_(ref)).toFixed(3) + '×' : ''] : []),
  ...(GNU_TIME ? [String(faults_(name)), ref ? String(faults_(ref)) : ''] : []),
];
for (const [label] of clis) rows.push([`${label}: --version`, f(work_(`${label}: --version`)), '', '', 'small', ...cpuCols(`${label}: --version`, '')]);
for (const [im] of images) {
  const ff = work_(`e2freefrag ${im}`), dh = work_(`dumpe2fs -h ${im}`);
  for (const [label] of clis) {
    const i = work_(`${label}: info --json ${im}`), fr = work_(`${label}: free --json ${im}`);
    rows.push([`${label}: info --json (${im})`, f(i), `dumpe2fs -h ${f(dh)}`, (i / dh).toFixed(2) + '×', '≤ 50 ms', ...cpuCols(`${label}: info --json ${im}`, `dumpe2fs -h ${im}`)]);
    rows.push([`${label}: free --json (${im})`, f(fr), `e2freefrag ${f(ff)}`, (fr / ff).toFixed(3) + '×', '≤ 0.1×', ...cpuCols(`${label}: free --json ${im}`, `e2freefrag ${im}`)]);
  }
  const w = warm.get(im)!;
  const blank = rows[0]!.slice(5).map(() => '');
  rows.push([`warm in-process getFreeBlocks (${im})`, f(median(w.free)), '', '', `first call ${f(w.firstFree)}`, ...blank]);
  rows.push([`warm in-process info (${im})`, f(median(w.info)), '', '', '', ...blank]);
}
const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const r of rows) console.log(r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd());

// Where a fresh process's time goes after its output: a preload (--require) notes when the last
// write to fd 1 returned and when 'exit' was emitted; the parent, when the process was gone.
// Last write → 'exit' is node's DrainTasks (it waits for every background job: a TurboFan
// compile V8 started near the end is waited for, not cancelled); 'exit' → gone is the teardown
// (V8's heap unmapped, worker threads joined), which `node -e 0` pays too.
const PROBE = join(work, 'exit-probe.cjs');
fs.writeFileSync(
  PROBE,
  `const fs = require('node:fs'), w = fs.writeSync, now = () => performance.timeOrigin + performance.now();
let last = 0;
fs.writeSync = function (fd, ...a) { const r = w.call(this, fd, ...a); if (fd === 1) last = now(); return r; };
process.on('exit', () => w(2, 'EXT4KIT_PROBE ' + last + ' ' + now() + '\\n'));\n`,
);
async function exitSplit(cmd: string, a: string[]): Promise<[number, number]> {
  const out = fs.openSync(sink, 'w');
  const p = spawn(cmd, ['--require', PROBE, ...a], { stdio: ['ignore', out, 'pipe'] });
  let err = '';
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  let gone = 0;
  p.on('exit', () => (gone = performance.timeOrigin + performance.now()));
  await new Promise((r) => p.on('close', r)); // stderr read to its end too
  fs.closeSync(out);
  const m = /EXT4KIT_PROBE ([\d.]+) ([\d.]+)/.exec(err);
  if (!m) throw new Error(`no probe line from ${a.join(' ')}: ${err}`);
  const last = Number(m[1]), exit = Number(m[2]);
  return [last > 0 ? exit - last : 0, gone - exit];
}
const splitJobs = jobs.filter((j) => j.cmd === process.execPath);
const splits = new Map<string, [number[], number[]]>(splitJobs.map((j) => [j.name, [[], []]]));
for (let r = 0; r < RUNS + 1; r++)
  for (const j of splitJobs) {
    const [drain, teardown] = await exitSplit(j.cmd, j.args);
    if (r > 0) {
      splits.get(j.name)![0].push(drain);
      splits.get(j.name)![1].push(teardown);
    }
  }
console.log(`after the output (medians; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}): last write → 'exit' (background jobs drained) / 'exit' → process gone (teardown)`);
for (const [name, [d, t]] of splits) console.log(`  ${name}: ${f(median(d))} / ${f(median(t))}`);

if (args.includes('--instructions')) {
  const base = instructions(process.execPath, ['-e', '0']);
  if (!base) console.log('instructions: valgrind (callgrind) not available');
  else {
    const M = (n: number) => `${(n / 1e6).toFixed(0)} M`;
    console.log(`instructions under callgrind (node -e 0: ${M(base[0])} main thread, ${M(base[1])} all threads, subtracted):`);
    for (const [im, image] of images)
      for (const [label, bin] of clis) {
        const c = instructions(process.execPath, [bin, 'free', image, '--json']);
        console.log(`  ${label}: free --json (${im}): ${c ? `${M(c[0] - base[0])} main thread, ${M(c[1] - base[1])} all threads` : 'failed'}`);
      }
  }
}
fs.rmSync(work, { recursive: true, force: true });
