/**
 * Fresh-process timing for the benches (issue 10, item 4): users run `ext4kit …` as a new node
 * process each time, so every bench prints that figure next to its warm in-process one.
 *
 * - `bundleThisCli(dir)` bundles the CLI of THIS tree (scripts/bundle-cli.mjs) into `dir`, beside a
 *   package.json saying "module" as dist/cli.js is (else node sniffs the format first); dist/ is
 *   left alone.
 * - `freshRounds(jobs, runs)` runs every job as a whole process, round-robin (job 1, job 2, …, job
 *   1, …) so the shared machine's load drifts over all of them alike; the first round warms the
 *   page cache and is not counted; each job's figure is the median of `runs` rounds.
 *   Include `NODE_START` (node -e 0) to measure node's own start-up in the same run: `work()`
 *   subtracts it from node processes (ext4kit, the ext2fs runner), never from the C tools.
 * - `loadavg()` the load average as text, to print next to every figure.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bundleCli } from '../scripts/bundle-cli.mjs';

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export const loadavg = (): string => os.loadavg().map((x) => x.toFixed(2)).join(' ');

export async function bundleThisCli(dir: string): Promise<string> {
  fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}\n');
  return bundleCli({ outfile: path.join(dir, 'cli.js') }) as Promise<string>;
}

export interface FreshJob {
  name: string;
  cmd: string;
  args: string[];
  /** A node process (its start-up is subtracted by `work`). */
  node?: boolean;
  /** Where stdout goes: /dev/null (default) or captured (`check` gets it, on the counted rounds). */
  stdout?: 'null' | 'capture';
  /** Called with each counted round's stdout when captured; throw to fail the bench. */
  check?: (stdout: Buffer) => void;
  /** Run before each round of this job (not timed): e.g. a fresh copy of an image, drop caches. */
  before?: () => void;
  /** Exit statuses that are not failures (default [0]). */
  okStatus?: number[];
  /** Extra environment. */
  env?: Record<string, string>;
}

export const NODE_START: FreshJob = { name: 'node -e 0', cmd: process.execPath, args: ['-e', '0'], node: true };

/**
 * NODE_EXTRA_CA_CERTS as this environment sets it (undefined when unset or empty). When it names a
 * file, Node 20–22 builds its whole CA store from it and the bundled roots at every start, before
 * any JavaScript runs (nodejs/node#40524; Node 25 loads them only with node:tls): a fixed cost of
 * every node process (~40 ms on the development machine, which sets it), that no program can
 * avoid from inside. ext4kit opens no TLS connection, so its benches that time whole processes
 * also run it with the variable empty (what Node reads as unset), labelled so, and print node's
 * start-up both ways.
 */
export const EXTRA_CA_CERTS = process.env.NODE_EXTRA_CA_CERTS || undefined;
/** The environment change that leaves NODE_EXTRA_CA_CERTS out (empty: Node then reads no file). */
export const WITHOUT_EXTRA_CA: Record<string, string> = { NODE_EXTRA_CA_CERTS: '' };
/** NODE_START with NODE_EXTRA_CA_CERTS empty. */
export const NODE_START_NO_CA: FreshJob = { name: 'node -e 0 (NODE_EXTRA_CA_CERTS empty)', cmd: process.execPath, args: ['-e', '0'], node: true, env: WITHOUT_EXTRA_CA };

export interface FreshResult {
  /** Median wall of the whole process, ms. */
  wall: Record<string, number>;
  all: Record<string, number[]>;
  /** Node's start-up (median of NODE_START), 0 if it was not among the jobs. */
  nodeStart: number;
  /** Wall minus node's start-up for node processes; the wall for the others. */
  work(name: string): number;
}

function once(j: FreshJob): { ms: number; stdout: Buffer } {
  j.before?.();
  const out = j.stdout === 'capture' ? 'pipe' : fs.openSync('/dev/null', 'w');
  try {
    const t = performance.now();
    const r = spawnSync(j.cmd, j.args, { stdio: ['ignore', out, 'pipe'], maxBuffer: 1 << 30, env: { ...process.env, LANG: 'C', LC_ALL: 'C', ...j.env } });
    const ms = performance.now() - t;
    if (r.error) throw r.error;
    if (!(j.okStatus ?? [0]).includes(r.status ?? -1)) throw new Error(`${j.name}: ${j.cmd} ${j.args.join(' ')} exited ${r.status ?? r.signal}: ${String(r.stderr).slice(-500)}`);
    return { ms, stdout: (r.stdout as Buffer | null) ?? Buffer.alloc(0) };
  } finally {
    if (typeof out === 'number') fs.closeSync(out);
  }
}

export function freshRounds(jobs: readonly FreshJob[], runs: number): FreshResult {
  const all: Record<string, number[]> = Object.fromEntries(jobs.map((j) => [j.name, []]));
  for (let r = 0; r <= runs; r++) {
    for (const j of jobs) {
      const { ms, stdout } = once(j);
      if (r === 0) continue; // page cache, not counted
      all[j.name]!.push(ms);
      j.check?.(stdout);
    }
  }
  const wall = Object.fromEntries(Object.entries(all).map(([k, v]) => [k, median(v)]));
  const nodeStart = wall[NODE_START.name] ?? 0;
  const isNode = new Map(jobs.map((j) => [j.name, !!j.node]));
  return {
    wall,
    all,
    nodeStart,
    work: (name) => {
      if (!(name in wall)) throw new Error(`freshRounds: no job ${name}`);
      return wall[name]! - (isNode.get(name) && name !== NODE_START.name ? nodeStart : 0);
    },
  };
}
