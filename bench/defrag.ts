/**
 * bench/defrag — `ext4kit defrag` vs e4defrag, side by side, on the same kernel-fragmented images
 * (test/helpers/frag-images.ts: interleaved appends by 4 writers, a third deleted, more appends, at
 * 50/70/90 % fill), in one run. Needs root + loop devices (e4defrag works only when mounted).
 *
 *   npx tsx bench/defrag.ts [--sizes 256,1024] [--fills 50,70,90] [--big] [--runs 5]
 *                           [--runner bundle|tsx|dist] [--seed 1] [--no-warm] [--before OLD/cli.cjs]
 *
 * ext4kit runs as a fresh process, as users run it: by default `node CLI defrag --json IMG` with
 * CLI the bundle of THIS tree (scripts/bundle-cli.mjs into the work dir; dist/ untouched); with
 * `--runner tsx` `node --import tsx lib/cli/main.ts …` (adds tsx's transform, ~0.3–0.5 s), with
 * `--runner dist` dist/cli.cjs (rebuild it first). Node's own start-up (`node -e 0`, median of 5,
 * same run) is printed and subtracted in the "work" column; ext4kit's own JSON summary (moves,
 * bytes it moved, its predicted result) is printed after the table. Where the environment sets
 * NODE_EXTRA_CA_CERTS (every node process then parses CA certificates at start: bench/fresh.ts),
 * ext4kit also runs with it empty, as a row of its own in the same rounds.
 * --big adds 4096 MiB images: built by the kernel in ~0.5–1.5 min each (the first time; then
 * cached, 2.3–3.8 GB of disk each), a few minutes per fill level for both tools: without --runs
 * they run once (5 runs, medians, below 4 GiB).
 * e4defrag runs on the loop-mounted copy; its wall includes `sync -f` so its writes are on disk
 * like ours. Both under /usr/bin/time for wall and peak RSS (e4defrag's is the tool's own RSS: the
 * kernel does its moves). Each run starts from a fresh sparse copy of the cached image, which is in
 * the page cache for both tools.
 *
 * Measured with the kernel as the oracle (loop mount ro + FIEMAP, e2freefrag): extents (merged
 * runs, one per started 128 MiB) before/after against the ideal, free extents, largest free
 * extent, blocks moved (new blocks of each file outside its old ones), `e2fsck -fn` after each,
 * every file's sha256 read through the kernel against what the builder wrote, and whether the
 * issue's targets are met (extents ≤ 1.1 × ideal, ≤ 50 free extents, largest free ≥ half; where no
 * run of the filesystem can hold half of its free space — a 1 GiB one at 50 % — the longest run
 * there is, from dumpe2fs's free ranges and the files' FIEMAP runs: largestPossibleFreeBlocks).
 * With --runs N > 1, wall and RSS are medians of N runs, the tools interleaved (layout, content
 * and fsck from the first run).
 * Next to the fresh process, the warm in-process figure (issue 10, item 4): `defrag()` of this
 * tree's library called again in this process (open + defrag + close of a fresh copy; one
 * uncounted call first warms the code), medians of the same runs; `--no-warm` leaves it out.
 * A "floor" row, in the same rounds: the least any crash-safe tool meeting the targets must copy
 * on the image (bench/defrag-floor.ts: each file that is not ideal rewritten but its largest
 * pieces, in the fewest waves the free space allows, two flushes a wave), timed as a raw copy of
 * that many bytes in a fresh copy of the image, plus node's shorter start-up: where that alone is
 * over half of e4defrag's wall, the goal is out of reach on that image on this machine.
 * `--before OLD/cli.cjs` runs another bundle as a third contender in the same rounds (before/after
 * on one machine state). "vs e4defrag" is each wall over e4defrag's (the issue's goal: ≤ 0.5×): the
 * ratio of the medians, then in brackets the lowest and highest ratio of one round's two walls.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { blocksMoved, ensureBuilt, largestPossibleFreeBlocks, measureFragImage, meetsTargets, type FragStats } from '../test/helpers/frag-images.js';
import { copySparse, e2fsckClean, run, withLoopMountSync } from '../test/helpers/tools.js';
import { bundleThisCli, EXTRA_CA_CERTS, freshRounds, NODE_START, NODE_START_NO_CA, WITHOUT_EXTRA_CA } from './fresh.js';
import { collectPlanInput, defragFloor, rawCopyInto } from './defrag-floor.js';
import { Filesystem } from '../lib/node.js';
import { defrag } from '../lib/ops/defrag.js';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const list = (v: string | undefined, def: number[]) => (v ? v.split(',').map(Number) : def);
const SIZES = list(opt('sizes'), [256, 1024]).concat(args.includes('--big') ? [4096] : []);
const FILLS = list(opt('fills'), [50, 70, 90]);
/** Runs per image: --runs, else 5 (medians), 1 from 4 GiB up (minutes per run). */
const runsFor = (sizeMiB: number) => Math.max(1, Number(opt('runs') ?? (sizeMiB >= 4096 ? 1 : 5)));
const RUNNER = opt('runner') ?? 'bundle';
const SEED = Number(opt('seed') ?? 1);
const ROOT = path.resolve(new URL('..', import.meta.url).pathname);
const WARM = !args.includes('--no-warm');
const BEFORE = opt('before') ? path.resolve(opt('before')!) : undefined;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Run under /usr/bin/time: wall seconds, peak RSS (KiB), stdout. `env`: changes to this environment. */
function timed(cmd: string, argv: string[], env?: Record<string, string>): { wall: number; rssKiB: number; stdout: string; status: number; stderr: string } {
  const out = path.join(os.tmpdir(), `ext4kit-bench-time-${process.pid}`);
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', '-o', out, cmd, ...argv], { encoding: 'utf8', maxBuffer: 1 << 28, ...(env ? { env: { ...process.env, ...env } } : {}) });
  const [wall, rss] = fs.readFileSync(out, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  fs.rmSync(out, { force: true });
  return { wall: wall!, rssKiB: rss!, stdout: r.stdout, stderr: r.stderr, status: r.status ?? -1 };
}

/** The bundled CLI of this tree (runner 'bundle'), set in main. */
let bundled = '';

function ext4kitArgv(img: string): [string, string[]] {
  if (RUNNER === 'bundle') return [process.execPath, [bundled, 'defrag', '--json', img]];
  if (RUNNER === 'dist') return [process.execPath, [path.join(ROOT, 'dist/cli.cjs'), 'defrag', '--json', img]];
  return [process.execPath, ['--import', 'tsx', path.join(ROOT, 'lib/cli/main.ts'), 'defrag', '--json', img]];
}

interface Row {
  image: string;
  tool: string;
  wall: string;
  /** wall − node's start-up, for ext4kit (a node process); e4defrag's wall. */
  work: string;
  /** wall / e4defrag's wall (same run, medians). */
  vsE4: string;
  rssMiB: string;
  extents: string;
  freeExt: number | string;
  /** largest free extent / all free space, MiB */
  largestOfFreeMiB: string;
  movedMiB: string;
  e2fsck: string;
  content: string;
  targets: string;
  exit: string;
}

function describe(s: FragStats, bs: number): Pick<Row, 'extents' | 'freeExt' | 'largestOfFreeMiB'> {
  return {
    extents: `${s.extents} (ideal ${s.idealExtents})`,
    freeExt: s.freeExtents,
    largestOfFreeMiB: `${((s.largestFreeBlocks * bs) / 2 ** 20).toFixed(1)} / ${((s.freeBlocks * bs) / 2 ** 20).toFixed(1)}`,
  };
}

/** Details too long for the table (fsck problems, errors, unmet targets), printed after it. */
const notes: string[] = [];

function contentOk(s: FragStats, expected: Record<string, string>): string {
  const got = Object.fromEntries(s.perFile.map((f) => [f.path, f.sha256]));
  const bad = Object.keys(expected).filter((p) => got[p] !== expected[p]);
  const extra = Object.keys(got).filter((p) => !(p in expected));
  return bad.length + extra.length === 0 ? 'same' : `DIFF ${bad.length}+${extra.length}${bad.length ? ` (${bad.slice(0, 3).join(', ')})` : ''}`;
}

/**
 * The library called in this process on `img`: open, defrag, close (what a program embedding
 * ext4kit pays once its code is warm); the wall is the call's, the summary its own.
 */
async function inProcess(img: string): Promise<{ wall: number; rssKiB: number; note: string; summary?: string }> {
  const t = performance.now();
  const f = await Filesystem.open(img, { write: true });
  let s;
  try {
    s = await defrag(f);
  } finally {
    await f.close();
  }
  const wall = (performance.now() - t) / 1000;
  const { plan: _plan, ...rest } = s;
  return { wall, rssKiB: NaN, note: '', summary: summarize(JSON.stringify({ ...rest, transactions: s.transactions })) };
}

async function benchImage(sizeMiB: number, fillPct: number, work: string): Promise<Row[]> {
  const t0 = Date.now();
  const built = ensureBuilt({ sizeMiB, fill: fillPct / 100, seed: SEED });
  if (!built) throw new Error('bench/defrag needs root and loop devices');
  const { info, original } = built;
  const bs = info.blockSize;
  console.error(`[${built.name}] image ready (${((Date.now() - t0) / 1000).toFixed(1)} s here; built in ${info.buildSeconds.toFixed(1)} s): ${info.files} files, fill ${(info.fill * 100).toFixed(1)} %, ${info.extents} extents (ideal ${info.idealExtents}), ${info.freeExtents} free extents, largest ${((info.largestFreeBlocks * bs) / 2 ** 20).toFixed(1)} MiB`);
  const before = measureFragImage(original, { maps: true });
  // where no run can hold half of the free space (backup superblocks cut a 1 GiB filesystem into
  // runs of 255.5 MiB at most), the target is that run: e2fsprogs' and the kernel's view of it
  const possible = largestPossibleFreeBlocks(original, before.perFile);
  const name = `${sizeMiB} MiB ${fillPct} %`;
  const rows: Row[] = [{ image: name, tool: 'before', wall: '-', work: '-', vsE4: '-', rssMiB: '-', ...describe(before, bs), movedMiB: '-', e2fsck: e2fsckClean(original).ok ? 'clean' : 'NOT CLEAN', content: '-', targets: meetsTargets(before).ok ? 'met' : 'no', exit: '-' }];

  // The least any crash-safe tool meeting the targets must copy here, in its fewest waves
  // (bench/defrag-floor.ts): timed as a raw copy in the same rounds, plus node's shorter start-up.
  const floor = defragFloor(await collectPlanInput(original));
  const floorMB = ((floor.blocks * bs) / 1e6).toFixed(1);
  type Once = { wall: number; rssKiB: number; note: string; summary?: string };
  const fresh = (cmd: string, argv: string[], env?: Record<string, string>): Once => {
    const r = timed(cmd, argv, env);
    if (r.status !== 0) return { wall: r.wall, rssKiB: r.rssKiB, note: `exit ${r.status}: ${r.stderr.trim().split('\n').pop()}` };
    return { wall: r.wall, rssKiB: r.rssKiB, note: '', summary: summarize(r.stdout) };
  };
  const tools: { tool: string; node: boolean; warm?: boolean; /** Run with NODE_EXTRA_CA_CERTS empty (its node start-up is the shorter one). */ noExtraCa?: boolean; /** Not a defragmenter: its output is not checked. */ floor?: boolean; once: (img: string) => Once | Promise<Once> }[] = [
    {
      tool: `ext4kit (${RUNNER})`,
      node: true,
      once: (img) => fresh(...ext4kitArgv(img)),
    },
    // (where this environment sets NODE_EXTRA_CA_CERTS: the same process without it — see fresh.ts)
    ...(EXTRA_CA_CERTS ? [{ tool: `ext4kit (${RUNNER}), NODE_EXTRA_CA_CERTS empty`, node: true, noExtraCa: true, once: (img: string) => fresh(...ext4kitArgv(img), WITHOUT_EXTRA_CA) }] : []),
    ...(BEFORE ? [{ tool: 'before (bundle)', node: true, once: (img: string) => fresh(process.execPath, [BEFORE, 'defrag', '--json', img]) }] : []),
    ...(WARM ? [{ tool: 'ext4kit warm in-process', node: false, warm: true, once: (img: string) => inProcess(img) }] : []),
    {
      tool: 'e4defrag',
      node: false,
      once: (img) =>
        withLoopMountSync(img, (mp) => {
          const r = timed('sh', ['-c', 'e4defrag "$1" >/dev/null; s=$?; sync -f "$1"; exit $s', 'sh', mp]);
          // e4defrag exits non-zero when some file could not be improved; that is not a failure
          return { wall: r.wall, rssKiB: r.rssKiB, note: '' };
        }),
    },
    {
      tool: `floor: ${floorMB} MB raw-copied in ${floor.waves} wave(s), + node start-up`,
      node: true,
      noExtraCa: true,
      floor: true,
      once: (img) => ({ wall: nodeStartNoCaS + rawCopyInto(img, bs, floor.blocks, floor.waves), rssKiB: NaN, note: '' }),
    },
  ];
  // runs interleaved (ext4kit, e4defrag, ext4kit, …) so the shared machine's load drifts over both alike
  const acc = tools.map(() => ({ walls: [] as number[], rss: [] as number[], after: null as FragStats | null, fsck: '', note: '' }));
  const RUNS = runsFor(sizeMiB);
  for (const [k, t] of tools.entries()) {
    if (!t.warm) continue;
    // one uncounted call: the code is compiled and optimised as in a process that defragmented before
    const img = path.join(work, `${built.name}-warmup.img`);
    copySparse(original, img);
    acc[k]!.note = (await t.once(img)).note;
    fs.rmSync(img, { force: true });
  }
  for (let i = 0; i < RUNS; i++) {
    for (const [k, t] of tools.entries()) {
      const m = acc[k]!;
      // (one name per contender: two ext4kit rows share a first word)
      const img = path.join(work, `${built.name}-${k}-${t.tool.split(' ')[0]}.img`);
      copySparse(original, img);
      run('sync', []);
      const r = await t.once(img);
      m.walls.push(r.wall);
      m.rss.push(r.rssKiB);
      if (i === 0 && !t.floor) {
        m.note = r.note;
        if (r.summary) notes.push(`${name} ${t.tool}: its own summary: ${r.summary}`);
        const f = e2fsckClean(img);
        m.fsck = f.ok ? 'clean' : 'NOT CLEAN';
        if (!f.ok) notes.push(`${name} ${t.tool}: e2fsck -fn: ${f.problems.slice(0, 4).join(' | ')}`);
        if (r.note) notes.push(`${name} ${t.tool}: ${r.note}`);
        m.after = measureFragImage(img, { hash: true, maps: true });
        if (!f.ok || contentOk(m.after, info.expectedSha256) !== 'same') {
          // keep the evidence: the input is the cached original, this is the output
          const keep = path.join(os.tmpdir(), `ext4kit-bench-defrag-failed-${built.name}-${k}-${t.tool.split(' ')[0]}.img`);
          copySparse(img, keep);
          notes.push(`${name} ${t.tool}: output kept in ${keep}; input ${original} (read-only cache: copy it)`);
        }
      }
      fs.rmSync(img, { force: true });
    }
  }
  const e4Walls = acc[tools.findIndex((t) => t.tool === 'e4defrag')]!.walls;
  const e4 = median(e4Walls);
  /** The spread of the ratio over the rounds (each round runs every contender once, interleaved): how close a single run comes to the goal. */
  const roundRatios = (walls: number[]): string => {
    if (walls.length < 2 || walls.length !== e4Walls.length) return '';
    const r = walls.map((w, i) => w / e4Walls[i]!).sort((a, b) => a - b);
    return ` (rounds ${r[0]!.toFixed(2)}–${r[r.length - 1]!.toFixed(2)})`;
  };
  tools.forEach((t, k) => {
    const { walls, rss, fsck, note } = acc[k]!;
    if (t.floor) {
      const r = median(walls) / e4;
      rows.push({ image: name, tool: t.tool, wall: `${median(walls).toFixed(2)}${RUNS > 1 ? ` (med of ${RUNS})` : ''}`, work: (median(walls) - nodeStartNoCaS).toFixed(2), vsE4: `${r.toFixed(2)}×${roundRatios(walls)}`, rssMiB: '-', extents: '-', freeExt: '-', largestOfFreeMiB: '-', movedMiB: ((floor.blocks * bs) / 2 ** 20).toFixed(1), e2fsck: '-', content: '-', targets: '-', exit: '-' });
      if (r > 0.5) notes.push(`${name}: the floor alone is ${r.toFixed(2)}× e4defrag's wall: no crash-safe tool meeting the targets reaches the goal (≤ 0.5×) on this image here`);
      return;
    }
    const a = acc[k]!.after!;
    const tm = meetsTargets(a, possible);
    rows.push({
      image: name,
      tool: t.tool,
      wall: `${median(walls).toFixed(2)}${RUNS > 1 ? ` (med of ${RUNS})` : ''}`,
      work: (median(walls) - (t.node ? (t.noExtraCa ? nodeStartNoCaS : nodeStartS) : 0)).toFixed(2),
      vsE4: `${(median(walls) / e4).toFixed(2)}×${t.tool === 'e4defrag' ? '' : roundRatios(walls)}`,
      rssMiB: Number.isNaN(median(rss)) ? '-' : (median(rss) / 1024).toFixed(0),
      ...describe(a, bs),
      movedMiB: ((blocksMoved(before.perFile, a.perFile) * bs) / 2 ** 20).toFixed(1),
      e2fsck: fsck,
      content: contentOk(a, info.expectedSha256),
      targets: `${tm.ok ? 'met' : `no (${tm.why.length})`}${tm.capped ? `, largest free held to the longest possible run, ${((possible * bs) / 2 ** 20).toFixed(1)} MiB (half does not fit)` : ''}`,
      exit: note ? note.split(':')[0]! : '0',
    });
    if (!tm.ok) notes.push(`${name} ${t.tool}: targets not met: ${tm.why.join('; ')}`);
  });
  return rows;
}

/** ext4kit defrag --json's summary, the figures worth printing (its own view, next to the kernel's). */
function summarize(stdout: string): string {
  try {
    const j = JSON.parse(stdout) as Record<string, unknown> & { predicted?: Record<string, unknown>; errors?: unknown[] };
    const mb = (n: unknown) => (typeof n === 'number' ? `${(n / 1e6).toFixed(0)} MB` : '?');
    return `moves ${j.moves}, transactions ${j.transactions}, files moved ${j.filesMoved}, bytesMoved ${mb(j.bytesMoved)}, its time ${typeof j.seconds === 'number' ? j.seconds.toFixed(2) : '?'} s, extents ${j.extentsBefore} -> ${j.extentsAfter}, free extents ${j.freeExtentsBefore} -> ${j.freeExtentsAfter}, largest free ${j.largestFreeBefore} -> ${j.largestFreeAfter} blocks, predicted ${JSON.stringify(j.predicted ?? null)}, stopped by ${j.stoppedBy}, ${j.errors?.length ?? 0} error(s)`;
  } catch {
    return `(not JSON: ${stdout.slice(0, 200)})`;
  }
}

/** Node's start-up in seconds (median of 5 `node -e 0`), measured in main; and with NODE_EXTRA_CA_CERTS empty. */
let nodeStartS = 0, nodeStartNoCaS = 0;

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ext4kit-bench-defrag-'));
  const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  if (RUNNER === 'bundle') bundled = await bundleThisCli(work);
  const starts = freshRounds(EXTRA_CA_CERTS ? [NODE_START, NODE_START_NO_CA] : [NODE_START], 5);
  nodeStartS = starts.nodeStart / 1000;
  nodeStartNoCaS = EXTRA_CA_CERTS ? starts.wall[NODE_START_NO_CA.name]! / 1000 : nodeStartS;
  const ca = EXTRA_CA_CERTS ? `; NODE_EXTRA_CA_CERTS is set here (${EXTRA_CA_CERTS}): node -e 0 takes ${(nodeStartNoCaS * 1000).toFixed(0)} ms with it empty, and ext4kit runs both ways (bench/fresh.ts)` : '';
  console.log(`bench/defrag ${new Date().toISOString()} kernel ${os.release()}, ${os.cpus().length} CPUs, load ${load}; runner ${RUNNER}; runs ${opt('runs') ?? '5 (1 from 4 GiB up)'}; seed ${SEED}; node start-up ${(nodeStartS * 1000).toFixed(0)} ms (subtracted from ext4kit's wall in "work")${ca}`);
  const rows: Row[] = [];
  try {
    for (const size of SIZES)
      for (const fill of FILLS) {
        const r = await benchImage(size, fill, work);
        // as each image completes (a 4 GiB run takes minutes): the table comes at the end
        for (const x of r) console.error(`  ${x.image} ${x.tool}: extents ${x.extents}, free ${x.freeExt}, largest/free ${x.largestOfFreeMiB} MiB, wall ${x.wall} s, RSS ${x.rssMiB} MiB, moved ${x.movedMiB} MiB, fsck ${x.e2fsck}, content ${x.content}, targets ${x.targets}`);
        rows.push(...r);
      }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  console.table(rows);
  for (const n of notes) console.log(`  ${n}`);
  const end = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`load at end ${end}. extents: merged runs, one per started 128 MiB (FIEMAP via a ro loop mount); moved: new blocks of each file outside its old ones; e4defrag's RSS is the tool's only (the kernel moves the data).`);
}

await main();
