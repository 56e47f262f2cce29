/**
 * bench/cold — the everyday commands as users run them: whole fresh processes of the bundled
 * CLI, node's own start-up (`node -e 0`, same run) subtracted, next to the reference tools and
 * to the warm in-process figures.
 *
 *   npx tsx bench/cold.ts [--runs 7] [--image PATH] [--cli LABEL=PATH]...
 *
 * Image: the 1 TiB sparse test image (test/helpers/tib-image.ts, built once and cached), or
 * --image. Commands: `--version`, `info --json` (target ≤ 50 ms of work), `free --json` over
 * the whole filesystem (target ≤ 0.1× e2freefrag's work), vs `e2freefrag` and `dumpe2fs -h`.
 * Every figure is a median of --runs (≥ 5) runs, the commands interleaved round-robin so that
 * the shared machine's load drifts over all of them alike; the load average is printed.
 * --cli adds other bundles (e.g. an earlier build: `--cli before=/tmp/cli-before.js`) to the
 * same run; the current tree is bundled as "now".
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { bundleCli } from '../scripts/bundle-cli.mjs';
import { Filesystem } from '../lib/node.js';
import { getFreeBlocks } from '../lib/ops/free.js';
import { info } from '../lib/ops/inspect.js';
import { tibImage } from '../test/helpers/tib-image.js';

const args = process.argv.slice(2);
const opt = (name: string): string[] => args.flatMap((a, i) => (a === `--${name}` && args[i + 1] !== undefined ? [args[i + 1]!] : []));
const RUNS = Math.max(5, Number(opt('runs')[0] ?? 7));
const image = opt('image')[0] ?? tibImage();

const work = fs.mkdtempSync(join(os.tmpdir(), 'ext4kit-bench-cold-'));
// Beside a package.json saying "module", as dist/cli.js is (else node sniffs the format first).
fs.writeFileSync(join(work, 'package.json'), '{"type":"module"}\n');
const clis: [string, string][] = [['now', await bundleCli({ outfile: join(work, 'cli.js') })]];
for (const c of opt('cli')) {
  const [label, p] = c.includes('=') ? [c.slice(0, c.indexOf('=')), c.slice(c.indexOf('=') + 1)] : [c, c];
  const dst = join(work, `cli-${label}.js`);
  fs.copyFileSync(p, dst);
  clis.push([label, dst]);
}

interface Job {
  name: string;
  cmd: string;
  args: string[];
  times: number[];
}
const jobs: Job[] = [];
const job = (name: string, cmd: string, a: string[]) => jobs.push({ name, cmd, args: a, times: [] });
job('node -e 0', process.execPath, ['-e', '0']);
for (const [label, bin] of clis) {
  job(`${label}: --version`, process.execPath, [bin, '--version']);
  job(`${label}: info --json`, process.execPath, [bin, 'info', image, '--json']);
  job(`${label}: free --json`, process.execPath, [bin, 'free', image, '--json']);
}
job('e2freefrag', 'e2freefrag', [image]);
job('dumpe2fs -h', 'dumpe2fs', ['-h', image]);

let freeRuns = 0;
for (let r = 0; r < RUNS + 1; r++) {
  for (const j of jobs) {
    const t = performance.now();
    const p = spawnSync(j.cmd, j.args, { maxBuffer: 1 << 30, env: { ...process.env, LANG: 'C' } });
    const ms = performance.now() - t;
    if (p.status !== 0) throw new Error(`${j.name} failed (${p.status}): ${p.stderr}`);
    if (j.name === 'now: free --json') freeRuns = (JSON.parse(p.stdout.toString('utf8')) as unknown[]).length;
    if (r > 0) j.times.push(ms); // the first round warms the page cache
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const node0 = median(jobs[0]!.times);
const work_ = (name: string) => median(jobs.find((j) => j.name === name)!.times) - (name.startsWith('e2freefrag') || name.startsWith('dumpe2fs') ? 0 : node0);

// Warm, in-process (what the README used to quote).
const fsw = await Filesystem.open(image);
const warm: { free: number[]; info: number[] } = { free: [], info: [] };
for (let r = 0; r < RUNS + 1; r++) {
  let t = performance.now();
  await getFreeBlocks(fsw);
  warm.free.push(performance.now() - t);
  t = performance.now();
  info(fsw);
  warm.info.push(performance.now() - t);
}
await fsw.close();
const firstFree = warm.free.shift()!;
warm.info.shift();

const f = (ms: number) => `${ms.toFixed(1)} ms`;
console.log(`image ${image} (${freeRuns} free extents); ${RUNS} runs each, medians; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${os.cpus().length} CPUs`);
console.log(`node start-up (node -e 0): ${f(node0)} — subtracted from every ext4kit figure below`);
const rows: string[][] = [['command', 'work (fresh process)', 'reference', 'ratio', 'target']];
const ff = work_('e2freefrag'), dh = work_('dumpe2fs -h');
for (const [label] of clis) {
  rows.push([`${label}: --version`, f(work_(`${label}: --version`)), '', '', 'small']);
  rows.push([`${label}: info --json`, f(work_(`${label}: info --json`)), `dumpe2fs -h ${f(dh)}`, (work_(`${label}: info --json`) / dh).toFixed(2) + '×', '≤ 50 ms']);
  rows.push([`${label}: free --json`, f(work_(`${label}: free --json`)), `e2freefrag ${f(ff)}`, (work_(`${label}: free --json`) / ff).toFixed(3) + '×', '≤ 0.1×']);
}
rows.push(['warm in-process getFreeBlocks', f(median(warm.free)), '', '', `first call ${f(firstFree)}`]);
rows.push(['warm in-process info', f(median(warm.info)), '', '', '']);
const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const r of rows) console.log(r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd());
fs.rmSync(work, { recursive: true, force: true });
