/**
 * bench/namespace — issue 11's Measure: copy a test tree into an empty image and remove it again.
 *
 *   npx tsx bench/namespace.ts [--files 20000] [--mib 1024] [--runs 3] [--creates 100000]
 *                              [--only import,rm,extents,creates] [--before OLD/cli.cjs]
 *
 * The tree (seeded, built once into $TMPDIR/ext4kit-bench-tree-<files>-<mib>): nested directories
 * (20 × 10 × …), a few 1,000-entry directories, mixed sizes (most files a few KiB, some of
 * hundreds of KiB, a few of tens of MiB: `--mib` in all), symlinks and hard links. Images are
 * made on /dev/shm (tmpfs: the figures are the tools' work, not this disk's flushes).
 *
 * import (fresh processes, round-robin, medians of --runs after a warm-up round; node's start-up
 * measured in the same rounds and subtracted from ext4kit's "work"):
 *   ext4kit import IMG TREE   (CLI bundled from this tree)  vs
 *   mkfs.ext4 -d TREE IMG     (mkfs time included)          vs
 *   mount -o loop + cp -a + umount (the kernel)             vs
 *   debugfs -w -f SCRIPT      (mkdir / write / symlink per entry)
 * Each contender starts from the same empty image (mkfs.ext4, not timed) except mkfs -d.
 * --before: a CLI bundled from an earlier tree (node scripts/bundle-cli.mjs --outfile OLD/cli.js, which writes OLD/cli.cjs beside it)
 * runs the same import in the same rounds: before/after on a shared machine.
 * Then the warm in-process figure: the same import called again in this process (host reader
 * thread, Filesystem.open, importTree, close; one uncounted warm-up, medians of --runs).
 * importCpuS: CPU seconds (user + sys, medians of --runs more fresh runs) of each import (the
 * kernel's cp excepted: its work is in kernel threads), ours split into the main thread, its other
 * threads (V8's compiler and GC, libuv's pool writing the image, the host reader's worker) and
 * child processes (python3 for xattrs).
 * rm: ext4kit rm -r IMG /tree vs mount + rm -rf + umount, each on a copy of the imported image.
 * extents: total extents of the regular files after ext4kit import vs the kernel's cp -a.
 * creates: bench/namespace-creates.ts (N creates in one directory; last window vs first).
 * Load average printed at the start and the end.
 *
 * Spread: every contender writes ~1.2 GB into fresh tmpfs pages. On a VM whose balloon reports
 * free pages to the host (virtio_balloon F_REPORTING, 2 MiB chunks), a page the host has dropped
 * faults again on the host when touched: `dd` of 1.2 GB into /dev/shm took 0.45–2.3 s of system
 * time from one run to the next (most in the first minutes after boot, and after a large free),
 * and a fresh import 1.2–3.5 s of system time with its user time steady (2.3–2.9 s). With other
 * processes on the two cores as well, one contender's wall can double: compare figures from the
 * same rounds (--before), and importCpuS (user + sys per thread) rather than one wall.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bundleThisCli, freshRounds, loadavg, median, NODE_START, type FreshJob } from './fresh.js';
import { Filesystem } from '../lib/node.js';
import { importTree } from '../lib/ops/import-tree.js';
import { readHostTree } from '../lib/cli/host-tree.js';
import { xorshift32 } from '../lib/io/prng.js';

const args = process.argv.slice(2);
const opt = (name: string, def: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : def;
};
const FILES = Number(opt('files', '20000'));
const MIB = Number(opt('mib', '1024'));
const RUNS = Number(opt('runs', '3'));
const CREATES = Number(opt('creates', '100000'));
const ONLY = new Set(opt('only', 'import,rm,extents,creates').split(','));
const BEFORE = opt('before', '');

const work = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'ext4kit-bench-ns-'));
const treeDir = path.join(os.tmpdir(), `ext4kit-bench-tree-${FILES}-${MIB}`);
const imageMiB = Math.max(256, Math.ceil(MIB * 1.6 + FILES / 200));

function sh(cmd: string, a: string[], okStatus = [0]): string {
  const r = spawnSync(cmd, a, { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.error) throw r.error;
  if (!okStatus.includes(r.status ?? -1)) throw new Error(`${cmd} ${a.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

// ------------------------------------------------------------------------------------- the tree


interface TreePlan { dirs: string[]; files: { path: string; size: number }[]; symlinks: [string, string][]; hardlinks: [string, string][] }

function planTree(): TreePlan {
  const r = xorshift32(11);
  const dirs: string[] = [];
  for (let a = 0; a < 20; a++) for (let b = 0; b < 10; b++) dirs.push(`d${a}/s${b}`, ...(b < 3 ? [`d${a}/s${b}/t`] : []));
  const bigDirs = ['wide0', 'wide1', 'wide2'];
  dirs.push(...bigDirs);
  const files: { path: string; size: number }[] = [];
  const wide = Math.min(1000, Math.floor(FILES / 20));
  for (const d of bigDirs) for (let i = 0; i < wide; i++) files.push({ path: `${d}/entry-${i}`, size: Math.floor(r() * 3000) });
  const rest = FILES - files.length;
  // sizes: 85 % small (≤ 16 KiB), 14 % medium (16 KiB – 512 KiB), 1 % large; scaled to MIB at the end
  const raw: number[] = [];
  for (let i = 0; i < rest; i++) {
    const u = r();
    raw.push(u < 0.85 ? Math.floor(r() * 16384) : u < 0.99 ? 16384 + Math.floor(r() * 512 * 1024) : 8 * 2 ** 20 + Math.floor(r() * 56 * 2 ** 20));
  }
  const small = files.reduce((s, f) => s + f.size, 0);
  const sum = raw.reduce((a, b) => a + b, 0);
  const scale = (MIB * 2 ** 20 - small) / sum;
  for (let i = 0; i < rest; i++) {
    const d = dirs[Math.floor(r() * (dirs.length - bigDirs.length))]!;
    files.push({ path: `${d}/f${i}.dat`, size: Math.max(0, Math.round(raw[i]! * (raw[i]! > 16384 ? scale : 1))) });
  }
  const symlinks: [string, string][] = [];
  const hardlinks: [string, string][] = [];
  for (let i = 0; i < 200; i++) symlinks.push([`d${i % 20}/link${i}`, i % 2 ? `s${i % 10}/f${i}.dat` : 'x'.repeat(100 + (i % 50))]);
  for (let i = 0; i < 100; i++) hardlinks.push([files[(3000 + i * 7) % files.length]!.path, `d${i % 20}/hard${i}`]);
  return { dirs, files, symlinks, hardlinks };
}

function buildTree(plan: TreePlan): void {
  const stamp = path.join(treeDir, '.complete');
  if (fs.existsSync(stamp)) return;
  fs.rmSync(treeDir, { recursive: true, force: true });
  const root = path.join(treeDir, 'tree');
  for (const d of plan.dirs) fs.mkdirSync(path.join(root, d), { recursive: true });
  const r = xorshift32(7);
  const pool = Buffer.alloc(4 * 2 ** 20);
  for (let i = 0; i < pool.length; i += 4) pool.writeUInt32LE((r() * 2 ** 32) >>> 0, i);
  let off = 0;
  for (const f of plan.files) {
    const fd = fs.openSync(path.join(root, f.path), 'w');
    for (let done = 0; done < f.size; ) {
      const n = Math.min(f.size - done, pool.length - off, 1 << 20);
      fs.writeSync(fd, pool, off, n);
      done += n;
      off = (off + n + 4097) % (pool.length - 4096);
    }
    fs.closeSync(fd);
  }
  for (const [p, t] of plan.symlinks) fs.symlinkSync(t, path.join(root, p));
  for (const [from, to] of plan.hardlinks) fs.linkSync(path.join(root, from), path.join(root, to));
  fs.writeFileSync(stamp, '');
}

// ------------------------------------------------------------------------------------- helpers

function emptyImage(img: string): void {
  fs.rmSync(img, { force: true });
  sh('mkfs.ext4', ['-q', '-F', '-b', '4096', '-N', String(FILES * 2 + 4096), img, `${imageMiB}M`]);
}

function fsckClean(img: string): boolean {
  const r = spawnSync('e2fsck', ['-fn', img], { encoding: 'utf8' });
  return r.status === 0;
}

function debugfsScript(root: string, file: string): void {
  const lines: string[] = [];
  const walk = (rel: string) => {
    for (const n of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const st = fs.lstatSync(path.join(root, r));
      if (st.isDirectory()) {
        lines.push(`mkdir /tree/${r}`);
        walk(r);
      } else if (st.isSymbolicLink()) lines.push(`symlink /tree/${r} ${fs.readlinkSync(path.join(root, r))}`);
      else lines.push(`write ${path.join(root, r)} /tree/${r}`);
    }
  };
  lines.push('mkdir /tree');
  walk('');
  fs.writeFileSync(file, lines.join('\n') + '\n');
}

async function extentCount(img: string, under: string): Promise<{ files: number; extents: number }> {
  const f = await Filesystem.open(img);
  let files = 0, extents = 0;
  try {
    const stack = [under];
    while (stack.length) {
      const d = stack.pop()!;
      for await (const e of f.readdir(d)) {
        if (e.name === '.' || e.name === '..') continue;
        const p = `${d}/${e.name}`;
        if (e.type === 'dir') stack.push(p);
        else if (e.type === 'file') {
          const ino = await f.readInode(e.ino);
          const map = await f.fileMap(ino);
          files++;
          // contiguous pieces (an extent split at 32768 blocks is one run)
          let runs = 0, end = -1;
          for (const x of map.extents) {
            if (x.physical !== end) runs++;
            end = x.physical + x.length;
          }
          extents += runs;
        }
      }
    }
  } finally {
    await f.close();
  }
  return { files, extents };
}

/** CPU seconds (user + sys) of one process's threads, as /proc last showed them. */
interface CpuSplit {
  wallS: number;
  /** The process's main thread. */
  main: number;
  /** Its other threads: V8's compiler and GC threads, libuv's pool (the image writes), worker threads (the host reader). */
  otherThreads: number;
  /** Its child processes (python3 for xattrs). */
  children: number;
  total: number;
}

/**
 * Run `cmd` and poll /proc every 10 ms for the CPU of each of its threads and children (their
 * last values: a thread that ends between polls loses its last <10 ms). On two cores the wall
 * is bounded by the sum of every thread's CPU over two as much as by the main thread's: this
 * says which. Linux only (null elsewhere).
 */
async function cpuSplit(cmd: string, a: string[]): Promise<CpuSplit | null> {
  if (!fs.existsSync('/proc/self/task')) return null;
  const tick = Number(sh('getconf', ['CLK_TCK']).trim()) || 100;
  const last = new Map<string, { main: boolean; child: boolean; cpu: number }>();
  const poll = (pid: number, top: number) => {
    let tids: string[];
    try {
      tids = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      return;
    }
    for (const tid of tids) {
      try {
        const st = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
        last.set(`${pid}/${tid}`, { main: pid === top && Number(tid) === pid, child: pid !== top, cpu: (Number(f[11]) + Number(f[12])) / tick });
        for (const c of fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1').split(' ')) if (c) poll(Number(c), top);
      } catch {
        // (the thread ended)
      }
    }
  };
  const t0 = performance.now();
  const child = spawn(cmd, a, { stdio: 'ignore' });
  const timer = setInterval(() => poll(child.pid!, child.pid!), 10);
  const status = await new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  clearInterval(timer);
  if (status !== 0) throw new Error(`${cmd} ${a.join(' ')}: exit ${status}`);
  const sum = (f: (t: { main: boolean; child: boolean }) => boolean) => +[...last.values()].filter(f).reduce((s, t) => s + t.cpu, 0).toFixed(2);
  return { wallS: +((performance.now() - t0) / 1000).toFixed(2), main: sum((t) => t.main), otherThreads: sum((t) => !t.main && !t.child), children: sum((t) => t.child), total: sum(() => true) };
}

/** Median of each field over runs. */
function medianSplit(runs: CpuSplit[]): CpuSplit {
  const m = (k: keyof CpuSplit) => +median(runs.map((r) => r[k])).toFixed(2);
  return { wallS: m('wallS'), main: m('main'), otherThreads: m('otherThreads'), children: m('children'), total: m('total') };
}

// ------------------------------------------------------------------------------------- main

const out: Record<string, unknown> = { files: FILES, mib: MIB, runs: RUNS, loadStart: loadavg() };
try {
  const plan = planTree();
  const t0 = performance.now();
  buildTree(plan);
  out.treeBuildMs = Math.round(performance.now() - t0);
  const root = path.join(treeDir, 'tree');
  out.tree = { entries: plan.dirs.length + plan.files.length + plan.symlinks.length + plan.hardlinks.length, bytes: plan.files.reduce((s, f) => s + f.size, 0) };
  const cli = await bundleThisCli(work);
  const img = path.join(work, 'bench.img');
  const mp = path.join(work, 'mnt');
  fs.mkdirSync(mp);

  if (ONLY.has('import')) {
    const script = path.join(work, 'debugfs.cmd');
    debugfsScript(root, script);
    const jobs: FreshJob[] = [
      NODE_START,
      { name: 'ext4kit import', cmd: process.execPath, args: [cli, 'import', img, root, '--at', '/tree'], node: true, before: () => emptyImage(img) },
      { name: 'mkfs.ext4 -d', cmd: 'mkfs.ext4', args: ['-q', '-F', '-b', '4096', '-N', String(FILES * 2 + 4096), '-d', root, img, `${imageMiB}M`], before: () => fs.rmSync(img, { force: true }) },
      { name: 'kernel cp -a + umount', cmd: 'sh', args: ['-c', `mount -o loop ${img} ${mp} && cp -a ${root} ${mp}/tree && umount ${mp}`], before: () => emptyImage(img) },
      { name: 'debugfs -w', cmd: 'debugfs', args: ['-w', '-f', script, img], before: () => emptyImage(img) },
      ...(BEFORE ? [{ name: 'ext4kit import (before)', cmd: process.execPath, args: [BEFORE, 'import', img, root, '--at', '/tree'], node: true, before: () => emptyImage(img) }] : []),
    ];
    const res = freshRounds(jobs, RUNS);
    out.nodeStartMs = Math.round(res.nodeStart);
    out.importMs = Object.fromEntries(jobs.filter((j) => j !== NODE_START).map((j) => [j.name, { wall: Math.round(res.wall[j.name]!), work: Math.round(res.work(j.name)) }]));
    out.importAllMs = res.all;
    const k = res.work('ext4kit import');
    out.importRatios = {
      vsMkfsD: +(k / res.wall['mkfs.ext4 -d']!).toFixed(2), vsKernelCp: +(k / res.wall['kernel cp -a + umount']!).toFixed(2), vsDebugfs: +(k / res.wall['debugfs -w']!).toFixed(2),
      ...(BEFORE ? { vsBefore: +(k / res.work('ext4kit import (before)')).toFixed(2) } : {}),
    };
    // CPU per thread of fresh imports (ours, and --before), next to the C tools' CPU: on two
    // cores, whether the main thread or the sum of all threads sets the wall.
    const cpuJobs = jobs.filter((j) => j !== NODE_START && j.name !== 'kernel cp -a + umount');
    const cpu: Record<string, CpuSplit[]> = Object.fromEntries(cpuJobs.map((j) => [j.name, []]));
    for (let r = 0; r < RUNS; r++) {
      for (const j of cpuJobs) {
        j.before?.();
        const c = await cpuSplit(j.cmd, j.args);
        if (c) cpu[j.name]!.push(c);
      }
    }
    if (Object.values(cpu).every((v) => v.length)) out.importCpuS = Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, medianSplit(v)]));
    // Warm in-process: what the library costs once node and the code are warm (as the CLI does it).
    const warm: number[] = [];
    for (let r = 0; r <= RUNS; r++) {
      emptyImage(img);
      const t0 = performance.now();
      const tree = await readHostTree(root, { xattrs: true, reuse: true });
      try {
        const f = await Filesystem.open(img, { write: true });
        try {
          await importTree(f, tree.entries, { at: '/tree', released: tree.recycle });
        } finally {
          await f.close();
        }
      } finally {
        await tree.close();
      }
      if (r > 0) warm.push(performance.now() - t0);
    }
    out.importWarmInProcessMs = { median: Math.round(median(warm)), all: warm.map(Math.round) };
    out.importWarmE2fsckClean = fsckClean(img);
  }

  const kimg = path.join(work, 'ext4kit.img');
  const limg = path.join(work, 'kernel.img');
  if (ONLY.has('extents') || ONLY.has('rm')) {
    emptyImage(kimg);
    const t = performance.now();
    sh(process.execPath, [cli, 'import', kimg, root, '--at', '/tree']);
    out.importOnceMs = Math.round(performance.now() - t);
    out.importE2fsckClean = fsckClean(kimg);
    emptyImage(limg);
    sh('sh', ['-c', `mount -o loop ${limg} ${mp} && cp -a ${root} ${mp}/tree && umount ${mp}`]);
  }
  if (ONLY.has('extents')) {
    out.extents = { ext4kit: await extentCount(kimg, '/tree'), kernel: await extentCount(limg, '/tree') };
  }
  if (ONLY.has('rm')) {
    const copy = path.join(work, 'rm.img');
    const jobs: FreshJob[] = [
      NODE_START,
      { name: 'ext4kit rm -r', cmd: process.execPath, args: [cli, 'rm', '-r', copy, '/tree'], node: true, before: () => sh('cp', ['--sparse=always', kimg, copy]) },
      { name: 'kernel rm -rf + umount', cmd: 'sh', args: ['-c', `mount -o loop ${copy} ${mp} && rm -rf ${mp}/tree && umount ${mp}`], before: () => sh('cp', ['--sparse=always', kimg, copy]) },
    ];
    const res = freshRounds(jobs, RUNS);
    out.rmMs = { 'ext4kit rm -r': { wall: Math.round(res.wall['ext4kit rm -r']!), work: Math.round(res.work('ext4kit rm -r')) }, 'kernel rm -rf + umount': Math.round(res.wall['kernel rm -rf + umount']!) };
    sh('cp', ['--sparse=always', kimg, copy]);
    sh(process.execPath, [cli, 'rm', '-r', copy, '/tree']);
    out.rmE2fsckClean = fsckClean(copy);
  }
  if (ONLY.has('creates')) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'namespace-creates.ts'), '--count', String(CREATES), '--window', String(Math.max(1, Math.floor(CREATES / 10)))], { encoding: 'utf8', cwd: path.join(import.meta.dirname, '..') });
    out.creates = r.status === 0 ? JSON.parse(r.stdout) : { error: r.stderr.slice(-500) };
  }
} finally {
  out.loadEnd = loadavg();
  spawnSync('umount', [path.join(work, 'mnt')], { stdio: 'ignore' });
  fs.rmSync(work, { recursive: true, force: true });
  console.log(JSON.stringify(out, null, 2));
}
