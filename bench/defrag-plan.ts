/**
 * bench/defrag-plan — the defrag planner alone (lib/ops/defrag-plan.ts) on the kernel-fragmented
 * bench images (test/helpers/frag-images.ts, the same ones bench/defrag uses): how many bytes its
 * plan copies, in how many moves, against what must move at least, and its CPU.
 *
 *   npx tsx bench/defrag-plan.ts [--sizes 256,1024] [--fills 50,70,90] [--big] [--runs 5]
 *                                [--seed 1] [--compare path/to/other-defrag-plan.ts] [--dump DIR]
 *                                [--floor-copy]
 *
 * The model is read once per image (read-only open of the cached original, as defrag() collects
 * it: regular files with their extents and tree blocks, getFreeBlocks); then planDefrag runs
 * --runs times in this process (the first run is cold: module code not yet optimised; the median
 * is printed beside it). Printed per image:
 *  - bytes: the sum of every step's target (what the executor copies), by phase;
 *  - the files not ideal: their blocks (a plan rewriting each of them once, whole, copies 1.00x of
 *    them; over it are evictions and compaction moves);
 *  - once: blocks of moves whose data moves again later (a move that a later move undoes);
 *  - the prediction and whether it meets the issue's targets;
 *  - plan CPU (user+sys of this process around the call), first and median.
 *  - the floor of any plan meeting the targets (bench/defrag-floor.ts): every file that is not
 *    ideal ends as one run, so all its blocks but its largest piece are copied, less the pieces
 *    the targets' 10 % slack lets stay ("keep-largest floor"); and each dependency wave copies only
 *    into blocks free before it, so a plan copying B blocks needs at least B / that many waves;
 * --compare loads a second planner module (same exports) and prints its figures in the same run;
 * --dump writes each image's planner input to DIR/<image>.json;
 * --floor-copy times a raw copy (1 MiB page-aligned preads/pwrites in a scratch copy of the image, two
 *    fdatasyncs per wave: a commit's flushes) of the floor's bytes in its fewest waves, and of the
 *    plan's bytes in the plan's waves, medians of --runs, next to nothing else: what the bytes and
 *    the flushes cost, whatever the planner (compare bench/defrag's e4defrag wall).
 */
import { fragmentCount, mappedBlocks } from '../lib/ext4/extent-map.js';
import * as current from '../lib/ops/defrag-plan.js';
import type { Plan } from '../lib/ops/defrag-plan.js';
import { ensureBuilt } from '../test/helpers/frag-images.js';
import { largestFreeTarget, TARGET_FREE_EXTENTS } from '../lib/ops/defrag-layout.js';
import { collectPlanInput, defragFloor, idealCount, rawCopySeconds, type PlanInput } from './defrag-floor.js';
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const list = (v: string | undefined, def: number[]) => (v ? v.split(',').map(Number) : def);
const SIZES = list(opt('sizes'), [256, 1024]).concat(args.includes('--big') ? [4096] : []);
const FILLS = list(opt('fills'), [50, 70, 90]);
const RUNS = Math.max(1, Number(opt('runs') ?? 5));
const SEED = Number(opt('seed') ?? 1);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Blocks of moves whose logical blocks move again in a later step (copies a better order saves). */
function movedAgain(plan: Plan): number {
  const last = new Map<string, number>(); // file:logical block → index of its last step
  plan.steps.forEach((s, k) => { for (let b = s.logical; b < s.logical + s.length; b++) last.set(`${s.file}:${b}`, k); });
  let again = 0;
  plan.steps.forEach((s, k) => {
    for (const e of s.expect) {
      const a = Math.max(e.logical, s.logical), b = Math.min(e.logical + e.length, s.logical + s.length);
      for (let l = a; l < b; l++) if (last.get(`${s.file}:${l}`)! > k) again++;
    }
  });
  return again;
}

type Planner = typeof current;

function measure(label: string, planner: Planner, inp: PlanInput, image?: string): void {
  const cpu: number[] = [];
  let plan: Plan | null = null;
  for (let r = 0; r < RUNS; r++) {
    const c0 = process.cpuUsage();
    plan = planner.planDefrag(inp.files, inp.free, inp.bounds, { idealExtentBlocks: inp.idealExtentBlocks, wholeFs: true, leafExtents: inp.leafExtents });
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  const p = plan!;
  const blocks = (ph: string) => p.steps.filter((s) => s.phase === ph).reduce((a, s) => a + s.target.reduce((x, t) => x + t.length, 0), 0);
  const total = p.steps.reduce((a, s) => a + s.target.reduce((x, t) => x + t.length, 0), 0);
  const MB = (b: number) => ((b * inp.blockSize) / 1e6).toFixed(1);
  const pr = p.predicted;
  // (the largest free extent's target is the longest possible run where half does not fit: the plan says so)
  const met = pr.extents <= 1.1 * inp.files.reduce((a, f) => a + idealCount(inp, f.extents), 0) && pr.freeExtents <= TARGET_FREE_EXTENTS && pr.largestFree >= largestFreeTarget(pr.freeBlocks, p.largestFreePossible ?? Infinity);
  const waves = current.planWaves(inp.files, p.steps, inp.bounds);
  const fl = defragFloor(inp);
  const fewest = fl.waves;
  const raw = (blocks: number, n: number) => rawCopySeconds(image!, inp.blockSize, blocks, n, RUNS).toFixed(3);
  console.log(`  ${label.padEnd(8)} floor: keep-largest ${MB(fl.blocks)} MB (plan ${(total / Math.max(1, fl.blocks)).toFixed(2)}x), at least ${fewest} wave(s) (${MB(fl.perWave)} MB free a wave at most; the plan's bytes need ${Math.ceil(total / fl.perWave)}, it takes ${waves})`);
  if (image) console.log(`  ${label.padEnd(8)} raw copy (median of ${RUNS}): the floor's bytes in ${fewest} wave(s) ${raw(fl.blocks, fewest)} s, in 1 ${raw(fl.blocks, 1)} s; the plan's bytes in its ${waves} waves ${raw(total, waves)} s`);
  console.log(`  ${label.padEnd(8)} moves ${p.steps.length}, bytes ${MB(total)} MB (${(total / Math.max(1, fl.notIdeal)).toFixed(2)}x the files not ideal; defrag ${MB(blocks('defrag'))}, evict ${MB(blocks('evict'))}, compact ${MB(blocks('compact'))}; moved again later ${MB(movedAgain(p))}), files moved ${new Set(p.steps.map((s) => s.file)).size}, waves ${waves}, predicted ${pr.extents} extents / ${pr.freeExtents} free extents / largest ${pr.largestFree} of ${pr.freeBlocks}, targets ${met ? 'met' : 'NOT met'}${p.complete ? '' : ' (incomplete)'}, skipped ${p.skipped.length}; plan CPU first ${cpu[0]!.toFixed(0)} ms, median ${median(cpu).toFixed(0)} ms of ${RUNS}`);
}

async function main(): Promise<void> {
  const other = opt('compare') ? ((await import(path.resolve(opt('compare')!))) as Planner) : null;
  console.log(`bench/defrag-plan ${new Date().toISOString()} load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; runs ${RUNS}; seed ${SEED}`);
  for (const size of SIZES) for (const fill of FILLS) {
    const built = ensureBuilt({ sizeMiB: size, fill: fill / 100, seed: SEED });
    if (!built) throw new Error('bench/defrag-plan needs root and loop devices to build the images');
    const inp = await collectPlanInput(built.original);
    if (opt('dump')) nodeFs.writeFileSync(path.join(opt('dump')!, `${built.name}.json`), JSON.stringify(inp));
    const bad = inp.files.filter((f) => fragmentCount(f.extents) > idealCount(inp, f.extents));
    const used = inp.files.reduce((a, f) => a + mappedBlocks(f.extents), 0);
    const MB = (b: number) => ((b * inp.blockSize) / 1e6).toFixed(1);
    console.log(`[${built.name}] ${inp.files.length} files (${bad.length} not ideal, ${MB(bad.reduce((a, f) => a + mappedBlocks(f.extents), 0))} MB), data ${MB(used)} MB, ${inp.files.reduce((a, f) => a + fragmentCount(f.extents), 0)} extents, ${inp.free.length} free extents, free ${MB(inp.free.reduce((a, r) => a + r.length, 0))} MB`);
    if (other) measure('compare', other, inp);
    measure('current', current, inp, args.includes('--floor-copy') ? built.original : undefined);
  }
  console.log(`load at end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

await main();
