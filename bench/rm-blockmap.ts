/**
 * bench/rm-blockmap — `rm -r` of big block-mapped files (ext2/ext3: indirect and double-indirect
 * blocks), the case issue 11's rm bench (ext4 extents) does not cover.
 *
 *   npx tsx bench/rm-blockmap.ts [--files 200] [--mib 200] [--runs 3] [--block 1024]
 *
 * The tree (seeded): 10 directories of `--files`/10 files each, sizes 50 KB – 3 MB (`--mib` in
 * all), fed to mkfs.ext2 -d and mkfs.ext3 -d (`--block`-byte blocks) on /dev/shm. Fresh
 * processes, round-robin, medians after a warm-up round, node's start-up subtracted from
 * ext4kit's "work": `ext4kit rm -r IMG /d0 … /d9` vs mount + `rm -rf` + umount, each on a copy
 * of the same image. Prints JSON with the load average at the start and the end, and whether
 * e2fsck is clean after ext4kit's rm.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bundleThisCli, freshRounds, loadavg, NODE_START, type FreshJob } from './fresh.js';
import { xorshift32 } from '../lib/io/prng.js';

const args = process.argv.slice(2);
const opt = (name: string, def: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : def;
};
const FILES = Number(opt('files', '200'));
const MIB = Number(opt('mib', '200'));
const RUNS = Number(opt('runs', '3'));
const BLOCK = Number(opt('block', '1024'));
const DIRS = 10;

function sh(cmd: string, a: string[]): string {
  const r = spawnSync(cmd, a, { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${a.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}


const work = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'ext4kit-bench-rmbm-'));
const out: Record<string, unknown> = { files: FILES, mib: MIB, runs: RUNS, blockSize: BLOCK, loadStart: loadavg() };
try {
  const tree = path.join(work, 'tree');
  const r = xorshift32(17);
  const sizes = Array.from({ length: FILES }, () => [50_000, 200_000, 1_000_000, 3_000_000][Math.floor(r() * 4)]!);
  const scale = (MIB * 2 ** 20) / sizes.reduce((a, b) => a + b, 0);
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((r() * 2 ** 32) >>> 0, i);
  for (let i = 0; i < FILES; i++) {
    const dir = path.join(tree, `d${i % DIRS}`);
    fs.mkdirSync(dir, { recursive: true });
    const fd = fs.openSync(path.join(dir, `f${i}`), 'w');
    for (let left = Math.round(sizes[i]! * scale); left > 0; left -= chunk.length) fs.writeSync(fd, chunk, 0, Math.min(left, chunk.length));
    fs.closeSync(fd);
  }
  const cli = await bundleThisCli(work);
  const mp = path.join(work, 'mnt');
  fs.mkdirSync(mp);
  const names = Array.from({ length: DIRS }, (_, d) => `/d${d}`);
  const imageMiB = Math.ceil(MIB * 1.5 + 64);
  for (const kind of ['ext2', 'ext3'] as const) {
    const base = path.join(work, `${kind}.img`);
    sh(`mkfs.${kind}`, ['-q', '-F', '-b', String(BLOCK), '-d', tree, base, `${imageMiB}M`]);
    const copy = path.join(work, `${kind}-rm.img`);
    const fresh = () => sh('cp', ['--sparse=always', base, copy]);
    const jobs: FreshJob[] = [
      NODE_START,
      { name: `ext4kit rm -r (${kind})`, cmd: process.execPath, args: [cli, 'rm', '-r', copy, ...names], node: true, before: fresh },
      { name: `kernel rm -rf + umount (${kind})`, cmd: 'sh', args: ['-c', `mount -o loop ${copy} ${mp} && rm -rf ${names.map((n) => mp + n).join(' ')} && umount ${mp}`], before: fresh },
    ];
    const res = freshRounds(jobs, RUNS);
    const k = `ext4kit rm -r (${kind})`, l = `kernel rm -rf + umount (${kind})`;
    out[kind] = { ext4kit: { wall: Math.round(res.wall[k]!), work: Math.round(res.work(k)) }, kernel: Math.round(res.wall[l]!), ratio: +(res.work(k) / res.wall[l]!).toFixed(2) };
    fresh();
    sh(process.execPath, [cli, 'rm', '-r', copy, ...names]);
    out[`${kind}E2fsckClean`] = spawnSync('e2fsck', ['-fn', copy]).status === 0;
  }
} finally {
  out.loadEnd = loadavg();
  spawnSync('umount', [path.join(work, 'mnt')], { stdio: 'ignore' });
  fs.rmSync(work, { recursive: true, force: true });
  console.log(JSON.stringify(out, null, 2));
}
