/**
 * bench/journal — throughput of the journaled write path on a file-backed
 * image in /tmp (real fdatasync barriers), for both checkpoint policies.
 *
 *   npx tsx bench/journal.ts [--runs 5] [--small 300] [--frag 8000] [--pieces 1000]
 *
 * Prints medians over --runs runs (each on a fresh copy of the image):
 *  - small transactions: `allocate` of 1 block, --small times (each one
 *    transaction: bitmap, descriptor, inode, superblock blocks logged);
 *  - large transactions: `movedata` of a file with --frag one-block extents
 *    onto a contiguous space file (64 extents per step by default, and the
 *    whole file in one step);
 *  - 1,000,000 blocks (4 KiB) allocated in 4 KiB pieces — a loop of
 *    1-block `allocate` calls, measured on a --pieces sample and extrapolated
 *    (a full run would take that long) — versus in one run (`allocate` with
 *    CONTIGUOUS|FIXED_LEN, one transaction).
 * Transactions/s, MiB/s of metadata logged (journal copies of whole blocks),
 * MiB/s of file data copied; lazy = checkpoint when the log fills or at close
 * (close included in "incl. close"), each = checkpoint after every commit.
 * Then the same calls as users run them, one FRESH `ext4kit` process each (the
 * CLI of this tree bundled into the work dir; node's start-up, `node -e 0`,
 * measured in the same rounds and subtracted), next to debugfs's `fallocate`
 * (e2fsprogs, no journal) on the same fresh copy, medians of --runs.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, openSync, writeSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Filesystem } from '../lib/node.js';
import { allocate, ALLOC_CONTIGUOUS, ALLOC_FIXED_LEN } from '../lib/ops/allocate.js';
import { movedata } from '../lib/ops/movedata.js';
import { bundleThisCli, freshRounds, NODE_START, type FreshJob } from './fresh.js';

const args = process.argv.slice(2);
const arg = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const RUNS = arg('runs', 5);
const SMALL = arg('small', 300);
const FRAG = arg('frag', 8000);
const PIECES = arg('pieces', 1000);
const MILLION = 1_000_000;
/** /frag's size: FRAG one-block islands at even blocks. */
const FRAG_LEN_BLOCKS = 2 * FRAG - 1;
const BS = 4096;
const MiB = 1024 * 1024;
const FRAG_LEN = FRAG_LEN_BLOCKS * BS;

function sh(cmd: string, a: string[]): string {
  const r = spawnSync(cmd, a, { encoding: 'utf8', maxBuffer: 1 << 26, env: { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH ?? ''}` } });
  if (r.status !== 0) throw new Error(`${cmd} ${a.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

const work = mkdtempSync(join(tmpdir(), 'ext4kit-bench-journal-'));
const base = join(work, 'base.img');

/**
 * 6 GiB sparse image, 4 KiB blocks: sparse_super2 (backups in groups 1 and
 * last only), one flex group of 64 (all group metadata at the start) and the
 * journal (64 MiB) at the start, so 1,000,000 contiguous free blocks exist.
 * /frag has FRAG one-block data islands (FRAG extents); the others are empty.
 */
function makeImage(): void {
  const src = join(work, 'src');
  mkdirSync(src);
  for (const n of ['small', 'space', 'pieces', 'run']) writeFileSync(join(src, n), '');
  const fd = openSync(join(src, 'frag'), 'w');
  const blk = Buffer.alloc(BS, 0x5a);
  for (let i = 0; i < FRAG; i++) writeSync(fd, blk, 0, BS, i * 2 * BS);
  closeSync(fd);
  sh('truncate', ['-s', '6G', base]);
  sh('mkfs.ext4', ['-q', '-F', '-b', String(BS), '-O', 'sparse_super2', '-G', '64', '-J', 'size=64,location=0', '-U', '5b0ab1d1-0000-4000-8000-0000000000bb', '-d', src, base]);
  rmSync(src, { recursive: true, force: true });
}

function freshCopy(): string {
  const p = join(work, 'run.img');
  rmSync(p, { force: true });
  sh('cp', ['--sparse=always', base, p]);
  return p;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const now = () => performance.now();

interface Sample {
  /** Seconds for the operations themselves. */
  secs: number;
  /** Seconds including close (the final checkpoint for 'lazy'). */
  secsClose: number;
  transactions: number;
  metadataBlocks: number;
  dataBytes: number;
}

/** Open a fresh copy, run `prepare` (untimed, then checkpointed), time `body` and close. */
async function session(policy: 'lazy' | 'each', body: (f: Filesystem) => Promise<number>, prepare?: (f: Filesystem) => Promise<void>): Promise<Sample> {
  const img = freshCopy();
  const f = await Filesystem.open(img, { write: true, checkpoint: policy });
  let dataBytes = 0;
  let t0 = now(), t1 = t0;
  let tx0 = 0, blocks0 = 0;
  try {
    if (prepare) {
      await prepare(f);
      await f.checkpoint();
    }
    tx0 = f.writeStats.transactions;
    blocks0 = f.writeStats.metadataBlocks;
    t0 = now();
    dataBytes = await body(f);
    t1 = now();
  } finally {
    await f.close();
  }
  const t2 = now();
  return { secs: (t1 - t0) / 1000, secsClose: (t2 - t0) / 1000, transactions: f.writeStats.transactions - tx0, metadataBlocks: f.writeStats.metadataBlocks - blocks0, dataBytes };
}

async function repeat(n: number, fn: () => Promise<Sample>): Promise<Sample[]> {
  const out: Sample[] = [];
  for (let i = 0; i < n; i++) out.push(await fn());
  return out;
}

function report(label: string, samples: Sample[]): void {
  const tx = median(samples.map((s) => s.transactions / s.secs));
  const txc = median(samples.map((s) => s.transactions / s.secsClose));
  const meta = median(samples.map((s) => (s.metadataBlocks * BS) / MiB / s.secs));
  const data = median(samples.map((s) => s.dataBytes / MiB / s.secs));
  const s0 = samples[0]!;
  console.log(
    `  ${label.padEnd(44)} ${tx.toFixed(0).padStart(6)} tx/s (${txc.toFixed(0)} incl. close)  ${meta.toFixed(2).padStart(7)} MiB/s logged` +
      `${s0.dataBytes ? `  ${data.toFixed(1)} MiB/s data copied` : ''}  [${s0.transactions} tx, ${(s0.metadataBlocks / s0.transactions).toFixed(1)} blocks/tx, median of ${samples.length}: ${median(samples.map((s) => s.secs)).toFixed(3)} s]`,
  );
}

/** The calls above as whole processes, each on its own fresh copy of the image (copy not timed). */
async function freshProcesses(): Promise<void> {
  const cli = await bundleThisCli(work);
  const node = (name: string, img: string, a: string[], before?: () => void): FreshJob => ({ name, cmd: process.execPath, args: [cli, ...a], node: true, before });
  const copy = (name: string) => {
    const p = join(work, `fresh-${name}.img`);
    return { p, before: () => sh('cp', ['--sparse=always', base, p]) };
  };
  const a1 = copy('a1'), d1 = copy('d1'), mv = copy('mv'), run = copy('run'), drun = copy('drun');
  const jobs: FreshJob[] = [
    NODE_START,
    node('ext4kit allocate 1 block', a1.p, ['allocate', a1.p, '/small', '--offset', '0', '--len', String(BS)], a1.before),
    { name: 'debugfs -w fallocate 1 block', cmd: 'debugfs', args: ['-w', '-R', 'fallocate /small 0 0', d1.p], before: d1.before },
    node(`ext4kit movedata ${FRAG}-extent file`, mv.p, ['movedata', mv.p, '/frag', '/space', '--from', '0', '--len', String(FRAG_LEN)], () => {
      mv.before();
      // the donor, untimed: one contiguous run, as in the in-process figure
      sh(process.execPath, [cli, 'allocate', mv.p, '/space', '--offset', '0', '--len', String(FRAG_LEN), '--contiguous', '--fixed-len']);
    }),
    node('ext4kit allocate 1,000,000 blocks, one run', run.p, ['allocate', run.p, '/run', '--offset', '0', '--len', String(MILLION * BS), '--contiguous', '--fixed-len'], run.before),
    { name: 'debugfs -w fallocate 1,000,000 blocks', cmd: 'debugfs', args: ['-w', '-R', `fallocate /run 0 ${MILLION - 1}`, drun.p], before: drun.before },
  ];
  const r = freshRounds(jobs, RUNS);
  console.log(`fresh processes (medians of ${RUNS}; node start-up ${r.nodeStart.toFixed(1)} ms, same rounds, subtracted from ext4kit's; debugfs writes without a journal):`);
  for (const j of jobs.slice(1)) console.log(`  ${j.name.padEnd(44)} ${r.work(j.name).toFixed(1).padStart(8)} ms${j.node ? ` (whole process ${r.wall[j.name]!.toFixed(1)} ms)` : ' (whole process)'}`);
  for (const c of [a1, d1, mv, run, drun]) rmSync(c.p, { force: true });
}

async function main(): Promise<void> {
  const t0 = now();
  makeImage();
  console.log(`bench/journal: 6 GiB image, 4 KiB blocks, 64 MiB journal, in ${tmpdir()} (load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}); medians of ${RUNS} runs`);

  console.log(`small transactions: allocate 1 block, ${SMALL} times (appending: one extent)`);
  for (const policy of ['lazy', 'each'] as const)
    report(`allocate 1 block [${policy}]`, await repeat(RUNS, () => session(policy, async (f) => {
      for (let i = 0; i < SMALL; i++) await allocate(f, '/small', { offset: i * BS, len: BS });
      return 0;
    })));

  console.log(`large transactions: movedata of a ${FRAG}-extent file (${(FRAG * BS) / MiB} MiB of data) onto contiguous space`);
  for (const [steps, name] of [[64, '64 extents/step'], [FRAG, 'one step']] as const)
    for (const policy of ['lazy', 'each'] as const)
      report(`movedata, ${name} [${policy}]`, await repeat(RUNS, () => session(
        policy,
        async (f) => {
          await movedata(f, '/frag', '/space', { from: 0, len: FRAG_LEN, stepExtents: steps });
          return FRAG * BS;
        },
        async (f) => void (await allocate(f, '/space', { offset: 0, len: FRAG_LEN, flags: ALLOC_CONTIGUOUS | ALLOC_FIXED_LEN })),
      )));

  console.log(`1,000,000 blocks (${((MILLION * BS) / 2 ** 30).toFixed(2)} GiB):`);
  const pieces = await repeat(Math.min(RUNS, 3), () => session('lazy', async (f) => {
    for (let i = 0; i < PIECES; i++) await allocate(f, '/pieces', { offset: i * BS, len: BS });
    return 0;
  }));
  const perPiece = median(pieces.map((s) => s.secsClose / PIECES));
  console.log(
    `  in 4 KiB pieces (1-block allocate loop, lazy): ${(1 / perPiece).toFixed(0)} pieces/s measured on a ${PIECES}-piece sample (median of ${pieces.length}); ` +
      `EXTRAPOLATED to 1,000,000 pieces: ${(perPiece * MILLION).toFixed(0)} s (${((perPiece * MILLION) / 60).toFixed(1)} min) — not run in full`,
  );
  const one = await repeat(RUNS, () => session('lazy', async (f) => {
    const got = await allocate(f, '/run', { offset: 0, len: MILLION * BS, flags: ALLOC_CONTIGUOUS | ALLOC_FIXED_LEN });
    if (got !== MILLION * BS) throw new Error(`allocated ${got} bytes`);
    const map = await f.fileMap(await f.resolve('/run'));
    const contiguous = map.extents.every((e, i) => i === 0 || e.physical === map.extents[i - 1]!.physical + map.extents[i - 1]!.length);
    if (!contiguous) throw new Error('not one physical run');
    return 0;
  }));
  console.log(
    `  in one run (allocate CONTIGUOUS|FIXED_LEN, 1 transaction, ${Math.ceil(MILLION / 32767)} unwritten extents of <= 32767 blocks): ` +
      `${median(one.map((s) => s.secs * 1000)).toFixed(1)} ms (${median(one.map((s) => s.secsClose * 1000)).toFixed(1)} ms incl. close), ` +
      `${one[0]!.metadataBlocks} blocks logged — ${(perPiece * MILLION / median(one.map((s) => s.secsClose))).toFixed(0)}x faster than the extrapolated piecewise loop`,
  );
  await freshProcesses();
  console.log(`done in ${((now() - t0) / 1000).toFixed(1)} s (load average ${loadavg().map((x) => x.toFixed(1)).join(' ')})`);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => rmSync(work, { recursive: true, force: true }));
