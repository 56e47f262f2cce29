/**
 * bench/cold-read — `ext4kit ls -R --json` and `ext4kit cat` as users run them: a fresh process
 * each time, next to debugfs in the same run, medians of --runs (≥ 5) runs, node's own start-up
 * (`node -e 0`, measured in the same run) subtracted from ext4kit's figures; the warm in-process
 * figures (listJson(), what `ls --json` does, cat().copyTo) are printed beside them. The ls
 * figures come from interleaved rounds (node -e 0, debugfs, each CLI's --version and ls, one run of
 * each per round), so load drift during the bench hits every figure alike; every CLI must print
 * the same ls bytes.
 *
 *   npx tsx bench/cold-read.ts [--runs 7] [--cli dist/cli.cjs] [--before OLD/cli.cjs] [--only ls|cat] [--keep] [--instructions]
 *
 * --instructions also counts the ls run's instructions under callgrind (one run per CLI, code
 * cache in place; `node -e 0`'s count subtracted): the main thread, and all threads (V8 compiles
 * optimised code on background threads) — figures a loaded machine does not blur.
 *
 * Images (built once into a temp dir with mkfs.ext4 -d): a 10,000-entry directory (/dir10k, empty
 * files) and a 256 MiB file (/f, pseudo-random bytes, fixed seed). `ls` is measured twice: on that
 * linear directory (mkfs -d writes it unindexed) and on a 10,000-entry directory the kernel grew
 * (htree-indexed, as a directory made by a mounted filesystem is: loop mount, touch, unmount; needs
 * root and a loop device — without them e2fsck -fD indexes a copy of the first image instead). The CLI is bundled from this
 * tree into the temp dir (scripts/bundle-cli.mjs) unless --cli names one; --before adds a second
 * bundle (e.g. one built from an older tree) to the same table.
 * Output of `cat` goes to /dev/null (a file: node writes synchronously) and to a pipe (read and
 * dropped by this process); `ls` to a pipe. Targets (issue 10): ls ≤ 1.5× `debugfs -R 'ls -l'`,
 * cat ≤ 1.1× `debugfs -R 'cat'`, both in work time (node start-up subtracted).
 * The machine's load average is printed with the figures: on a shared machine they are noisy.
 * `ls` is reported twice per CLI: a user's first run (empty V8 code cache: compile, then write
 * the cache) and a later run (cache in place) — lib/cli/code-cache.ts.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as nodefs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Filesystem } from '../lib/node.js';
import { cat } from '../lib/ops/inspect.js';
import { listJson } from '../lib/cli/commands/ls.js';
import { bundleCli } from '../scripts/bundle-cli.mjs';

const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const RUNS = Math.max(5, Number(opt('--runs')) || 7);
const KEEP = args.includes('--keep');
const INSTRUCTIONS = args.includes('--instructions');
/** --only ls / --only cat: one half of the bench (the other's image is not built). */
const ONLY = opt('--only');
if (ONLY !== undefined && ONLY !== 'ls' && ONLY !== 'cat') throw new Error(`--only ls|cat, not ${ONLY}`);
const doLs = ONLY !== 'cat';
const doCat = ONLY !== 'ls';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function sh(cmd: string, a: string[]): void {
  const r = spawnSync(cmd, a, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${a.join(' ')} failed (${r.status}): ${r.stderr}`);
}

/** Wall time of one fresh process, stdout to /dev/null or to a pipe this process drains (and hashes). */
function runOnce(cmd: string, a: string[], out: 'null' | 'pipe', env?: Record<string, string>): Promise<{ ms: number; sha?: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const devnull = out === 'null' ? nodefs.openSync('/dev/null', 'w') : null;
    const t = process.hrtime.bigint();
    const child = spawn(cmd, a, { stdio: ['ignore', devnull ?? 'pipe', 'pipe'], env: { ...process.env, ...env } });
    const h = out === 'pipe' ? crypto.createHash('sha256') : null;
    let bytes = 0;
    child.stdout?.on('data', (d: Buffer) => {
      bytes += d.length;
      h!.update(d);
    });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      if (devnull !== null) nodefs.closeSync(devnull);
      if (code !== 0) reject(new Error(`${cmd} ${a.join(' ')}: exit ${code}: ${err}`));
      else resolve({ ms, bytes, ...(h ? { sha: h.digest('hex') } : {}) });
    });
  });
}

async function fresh(cmd: string, a: string[], out: 'null' | 'pipe'): Promise<{ ms: number; all: number[]; sha?: string }> {
  await runOnce(cmd, a, out); // page cache, not counted
  const all: number[] = [];
  let sha: string | undefined;
  for (let i = 0; i < RUNS; i++) {
    const r = await runOnce(cmd, a, out);
    all.push(r.ms);
    sha = r.sha;
  }
  return { ms: median(all), all, sha };
}

/**
 * Fresh processes run in rounds: each round runs every case once, in order, so a change in the
 * machine's load during the bench shifts every figure alike (a shared machine's load drifts over a
 * minute; back-to-back series of one tool each would carry the drift into the ratios).
 */
interface FreshCase {
  cmd: string;
  args: string[];
  out: 'null' | 'pipe';
  env?: Record<string, string>;
  /** Run before each run of this case, not timed (e.g. empty the code cache). */
  before?: () => void;
}

async function freshInterleaved(cases: FreshCase[]): Promise<{ ms: number; sha?: string }[]> {
  for (const c of cases) {
    c.before?.();
    await runOnce(c.cmd, c.args, c.out, c.env); // page cache (and the code cache), not counted
  }
  const all: number[][] = cases.map(() => []);
  const sha: (string | undefined)[] = cases.map(() => undefined);
  for (let i = 0; i < RUNS; i++)
    for (let k = 0; k < cases.length; k++) {
      cases[k]!.before?.();
      const r = await runOnce(cases[k]!.cmd, cases[k]!.args, cases[k]!.out, cases[k]!.env);
      all[k]!.push(r.ms);
      sha[k] = r.sha;
    }
  return cases.map((_, k) => ({ ms: median(all[k]!), ...(sha[k] ? { sha: sha[k] } : {}) }));
}

/** Instructions of a process under callgrind: [main thread, all threads], or null without valgrind. */
function instructions(cmd: string, a: string[], env: Record<string, string>): [number, number] | null {
  const dir = nodefs.mkdtempSync(path.join(os.tmpdir(), 'ext4kit-cg-'));
  try {
    const out = path.join(dir, 'cg.out');
    const p = spawnSync('valgrind', ['--tool=callgrind', '--separate-threads=yes', '--smc-check=all-non-file', `--callgrind-out-file=${out}`, cmd, ...a], { stdio: 'ignore', env: { ...process.env, ...env } });
    if (p.status !== 0) return null;
    // One file per thread: cg.out-01 (the main thread), cg.out-02, …
    const counts = nodefs.readdirSync(dir).filter((f) => /-\d+$/.test(f)).sort().map((f) => Number(/^totals: (\d+)/m.exec(nodefs.readFileSync(path.join(dir, f), 'utf8'))?.[1] ?? 0));
    return counts.length === 0 ? null : [counts[0]!, counts.reduce((x, y) => x + y, 0)];
  } finally {
    nodefs.rmSync(dir, { recursive: true, force: true });
  }
}

async function warm(fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const all: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = process.hrtime.bigint();
    await fn();
    all.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return median(all);
}

function buildImages(dir: string): { img10k: string; imgHtree: string; htreeBy: string; img256: string; sha256: string } {
  const img10k = doLs ? buildDir10k(dir) : '';
  const { imgHtree, htreeBy } = doLs ? buildHtree10k(dir, img10k) : { imgHtree: '', htreeBy: '' };
  if (!doCat) return { img10k, imgHtree, htreeBy, img256: '', sha256: '' };
  return { img10k, imgHtree, htreeBy, ...buildFile256(dir) };
}

/**
 * /dir10k with 10,000 empty files as the kernel makes it: grown past a block on a mounted
 * filesystem, so dir_index turns it into an htree (dx root, leaves split by hash). Unmounted and
 * detached whatever happens. Without root or a loop device: the linear image, indexed by e2fsck -fD.
 */
function buildHtree10k(dir: string, img10k: string): { imgHtree: string; htreeBy: string } {
  const img = path.join(dir, 'htree10k.img');
  sh('mkfs.ext4', ['-q', '-F', '-N', '20000', '-E', 'root_owner=0:0', img, '200M']);
  const mnt = nodefs.mkdtempSync(path.join(dir, 'mnt-'));
  const loop = spawnSync('losetup', ['-f', '--show', img], { encoding: 'utf8' });
  let byKernel = false;
  if (loop.status === 0) {
    const dev = loop.stdout.trim();
    try {
      if (spawnSync('mount', [dev, mnt], { stdio: 'ignore' }).status === 0) {
        try {
          nodefs.mkdirSync(path.join(mnt, 'dir10k'));
          for (let i = 0; i < 10000; i++) nodefs.writeFileSync(path.join(mnt, 'dir10k', `f${String(i).padStart(5, '0')}`), '');
          byKernel = true;
        } finally {
          sh('umount', [mnt]);
        }
      }
    } finally {
      sh('losetup', ['-d', dev]);
    }
  }
  nodefs.rmdirSync(mnt);
  if (!byKernel) {
    nodefs.copyFileSync(img10k, img);
    // e2fsck exits 1 when it changed the image (it indexed the directory).
    const r = spawnSync('e2fsck', ['-fyD', img], { stdio: 'ignore' });
    if (r.status !== 0 && r.status !== 1) throw new Error(`e2fsck -fyD failed (${r.status})`);
  }
  if (!/Indirect levels/.test(spawnSync('debugfs', ['-R', 'htree /dir10k', img], { encoding: 'utf8' }).stdout)) throw new Error('/dir10k is not indexed');
  return { imgHtree: img, htreeBy: byKernel ? 'the kernel' : 'e2fsck -fD' };
}

function buildDir10k(dir: string): string {
  const t10k = path.join(dir, 'tree10k');
  nodefs.mkdirSync(path.join(t10k, 'dir10k'), { recursive: true });
  for (let i = 0; i < 10000; i++) nodefs.writeFileSync(path.join(t10k, 'dir10k', `f${String(i).padStart(5, '0')}`), '');
  const img10k = path.join(dir, 'dir10k.img');
  sh('mkfs.ext4', ['-q', '-F', '-N', '20000', '-E', 'root_owner=0:0', '-d', t10k, img10k, '200M']);
  return img10k;
}

function buildFile256(dir: string): { img256: string; sha256: string } {
  const t256 = path.join(dir, 'tree256');
  nodefs.mkdirSync(t256);
  // 256 MiB of pseudo-random bytes from a fixed seed (AES-256-CTR keystream of a fixed key).
  const fd = nodefs.openSync(path.join(t256, 'f'), 'w');
  const whole = crypto.createHash('sha256');
  const key = crypto.createHash('sha256').update('ext4kit bench/cold-read').digest();
  const ctr = crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(1 << 20);
  for (let m = 0; m < 256; m++) {
    const block = ctr.update(zeros);
    nodefs.writeSync(fd, block);
    whole.update(block);
  }
  nodefs.closeSync(fd);
  const img256 = path.join(dir, 'f256.img');
  sh('mkfs.ext4', ['-q', '-F', '-d', t256, img256, '400M']);
  return { img256, sha256: whole.digest('hex') };
}

const fmt = (ms: number) => `${ms.toFixed(0).padStart(6)} ms`;

async function main(): Promise<void> {
  const dir = nodefs.mkdtempSync(path.join(os.tmpdir(), 'ext4kit-cold-read-'));
  try {
    const { img10k, imgHtree, htreeBy, img256, sha256 } = buildImages(dir);
    const clis: [string, string][] = [['ext4kit', opt('--cli') ? path.resolve(opt('--cli')!) : await bundleCli({ outfile: path.join(dir, 'cli.js') })]];
    if (opt('--before')) clis.unshift(['ext4kit (before)', path.resolve(opt('--before')!)]);
    console.log(`bench/cold-read: ${RUNS} runs per figure, medians; load average at start ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);

    const nodeStart = await fresh(process.execPath, ['-e', '0'], 'null');
    console.log(`node start-up (node -e 0): ${fmt(nodeStart.ms)} — subtracted from every ext4kit figure below ("work")`);
    const rows: string[][] = [['work', 'tool', 'wall', 'work', 'vs reference']];
    const add = (work: string, tool: string, wall: number, net: number, ref?: number) =>
      rows.push([work, tool, fmt(wall), fmt(net), ref === undefined ? '' : `${(net / ref).toFixed(2)}×`]);

    // ls -R --json of 10,000 entries: the linear directory, then the indexed one.
    const lsCases: [string, string][] = doLs ? [[img10k, 'ls 10,000 entries'], [imgHtree, `ls 10,000 entries, htree (${htreeBy})`]] : [];
    for (const [lsImg, label] of lsCases) {
      // Interleaved rounds: node start-up, debugfs, and each CLI's --version and ls, once per round.
      // A CLI with a code cache (lib/cli/code-cache.ts; a bundle without one ignores the
      // variables) is run twice per round: as a user's first run (an empty cache directory each
      // time: it compiles, then writes the cache) and as every later run (the cache in place).
      const lsArgs = (cli: string) => [cli, 'ls', lsImg, '/dir10k', '-R', '--json'];
      const cases: FreshCase[] = [
        { cmd: process.execPath, args: ['-e', '0'], out: 'null' },
        { cmd: 'debugfs', args: ['-R', 'ls -l /dir10k', lsImg], out: 'null' },
        ...clis.flatMap(([, cli], i): FreshCase[] => {
          const home = path.join(dir, `code-cache-${i}`);
          const firstHome = path.join(dir, `code-cache-first-${i}`);
          return [
            { cmd: process.execPath, args: [cli, '--version'], out: 'null' },
            { cmd: process.execPath, args: lsArgs(cli), out: 'pipe', env: { XDG_CACHE_HOME: firstHome, EXT4KIT_CODE_CACHE: '' }, before: () => nodefs.rmSync(firstHome, { recursive: true, force: true }) },
            { cmd: process.execPath, args: lsArgs(cli), out: 'pipe', env: { XDG_CACHE_HOME: home, EXT4KIT_CODE_CACHE: '' } },
          ];
        }),
      ];
      const [node0, dfsLs, ...perCli] = await freshInterleaved(cases);
      console.log(`ls rounds: node start-up ${fmt(node0!.ms)} in the same rounds (subtracted from the ls figures)`);
      add(label, "debugfs -R 'ls -l' > /dev/null", dfsLs!.ms, dfsLs!.ms);
      clis.forEach(([name], i) => {
        const [version, first, cached] = perCli.slice(3 * i, 3 * i + 3) as [{ ms: number }, { ms: number }, { ms: number }];
        add('start-up', `${name} --version`, version.ms, version.ms - node0!.ms);
        add(label, `${name} ls -R --json | (pipe), first run (empty code cache)`, first.ms, first.ms - node0!.ms, dfsLs!.ms);
        add(label, `${name} ls -R --json | (pipe), code cache in place`, cached.ms, cached.ms - node0!.ms, dfsLs!.ms);
      });
      // Every CLI prints the same bytes, with or without its cache.
      const shas = new Set(perCli.filter((_, k) => k % 3 !== 0).map((r) => r.sha));
      if (shas.size !== 1) throw new Error('the CLIs printed different ls -R --json output');
      if (INSTRUCTIONS) {
        const base = instructions(process.execPath, ['-e', '0'], {});
        if (!base) console.log('instructions: valgrind (callgrind) not available');
        else
          clis.forEach(([name, cli], i) => {
            // The cached case's cache directory is in place from the rounds above.
            const c = instructions(process.execPath, lsArgs(cli), { XDG_CACHE_HOME: path.join(dir, `code-cache-${i}`), EXT4KIT_CODE_CACHE: '' });
            const M = (x: number) => `${(x / 1e6).toFixed(0)}M`;
            if (c) console.log(`instructions, ${label}, ${name} ls -R --json (code cache in place), over node -e 0: main thread ${M(c[0] - base[0])}, all threads ${M(c[1] - base[1])}`);
          });
      }
    }
    // cat of 256 MiB
    for (const out of doCat ? (['null', 'pipe'] as const) : []) {
      const where = out === 'null' ? '> /dev/null' : '| (pipe)';
      const d = await fresh('debugfs', ['-R', 'cat /f', img256], out);
      if (out === 'pipe' && d.sha !== sha256) throw new Error('debugfs cat: wrong bytes');
      add('cat 256 MiB', `debugfs -R 'cat' ${where}`, d.ms, d.ms);
      for (const [name, cli] of clis) {
        const r = await fresh(process.execPath, [cli, 'cat', img256, '/f'], out);
        if (out === 'pipe' && r.sha !== sha256) throw new Error(`${name} cat: wrong bytes`);
        add('cat 256 MiB', `${name} cat ${where}`, r.ms, r.ms - nodeStart.ms, d.ms);
      }
    }

    // Warm, in-process (this tree's library): what the figures above cost without a fresh process.
    if (doLs) {
      const fs10k = await Filesystem.open(img10k);
      try {
        // What `ls -R --json` does: the walk's rows written straight to JSON bytes.
        const lsWarm = await warm(() => listJson(fs10k, '/dir10k', true));
        add('ls 10,000 entries', 'ext4kit listJson(), warm in-process', lsWarm, lsWarm);
      } finally {
        await fs10k.close();
      }
    }
    if (doCat) {
      const fs256 = await Filesystem.open(img256);
      try {
        const catWarm = await warm(async () => (await cat(fs256, '/f')).copyTo(async () => undefined));
        add('cat 256 MiB', 'ext4kit cat().copyTo, warm in-process', catWarm, catWarm);
      } finally {
        await fs256.close();
      }
    }

    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) console.log(r.map((c, i) => (i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  '));
    console.log(`load average at end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  } finally {
    if (KEEP) console.log(`kept ${dir}`);
    else nodefs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
