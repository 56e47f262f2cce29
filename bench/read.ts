/**
 * bench/read — the read path against debugfs (e2fsprogs) and the `ext2fs` npm package
 * (libext2fs compiled to WASM), side by side in one run, medians of --runs (≥ 5) runs, each
 * scenario both as users run it — a FRESH PROCESS per run (the bundled CLI of this tree; node's
 * own start-up, `node -e 0`, measured in the same rounds and subtracted: "work") — and WARM
 * in-process (the library called again in this process: page cache, JIT and code loaded):
 *
 *   (a) open a 1 TiB sparse image made by mkfs.ext4 and list its root
 *       (fresh: `ext4kit ls IMG / --json`, `ext4kit info IMG --json`; warm: open + list /;
 *       vs `debugfs -R "ls -l /"` vs ext2fs mount + readdir + lstat);
 *   (b) sequential read of a 256 MiB file
 *       (fresh: `ext4kit cat IMG /f` > /dev/null; warm: stream; vs `debugfs -R "cat /f"` >
 *       /dev/null vs ext2fs read loop vs a raw-fd pread of the same extents into one reused buffer);
 *   (c) recursive listing of a 20,000-file tree
 *       (fresh: `ext4kit ls IMG / -R --json` > /dev/null; warm: list -R; vs one debugfs run of
 *       `ls -l` for every directory — debugfs has no recursive ls; `rdump` to /dev/shm shown too —
 *       vs ext2fs readdir + lstat recursion).
 *
 *   npx tsx bench/read.ts [--runs 5] [--keep]
 *
 * ext2fs is NOT a dependency of ext4kit: it is installed on first use into
 * /tmp/ext4kit-bench (`npm install --prefix /tmp/ext4kit-bench ext2fs`) and imported from there.
 * The images are in the page cache for every tool (a first, uncounted round): the figures compare
 * the readers' CPU cost and start-up, not the disk. The fresh-process rounds run round-robin over
 * all contenders of a scenario so the shared machine's load drifts over all of them alike; the
 * load average is printed at the start and the end.
 * Targets, fresh process, work (issue 10): `info` on 1 TiB ≤ 50 ms, `cat` ≤ 1.1× debugfs cat,
 * `ls -R --json` ≤ 1.5× debugfs ls -l. Warm: open 1 TiB < 50 ms, read throughput >= 10x ext2fs,
 * >= 0.9x debugfs cat, >= 85% of the raw-fd read (checked on `stream(..., {reuseBuffer: true})`;
 * the default stream hands out a fresh array per chunk and is shown too); listing no slower than
 * debugfs.
 * ext2fs reads need O_NOATIME (it would otherwise write atimes); on the 1 TiB image ext2fs 4.2.5
 * aborts with Aborted(OOM) (its WASM heap cannot hold what libext2fs loads at open).
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as nodefs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Filesystem } from '../lib/node.js';
import { list } from '../lib/ops/inspect.js';
import { internals } from '../lib/ext4/internals.js';
import { bundleThisCli, freshRounds, loadavg, median, NODE_START, type FreshJob } from './fresh.js';

const args = process.argv.slice(2);
const RUNS = Math.max(5, Number(args[args.indexOf('--runs') + 1]) || 5);
const KEEP = args.includes('--keep');
const BENCH_PREFIX = '/tmp/ext4kit-bench';

function sh(cmd: string, a: string[], opts: { input?: string; stdout?: 'ignore' | 'pipe'; env?: Record<string, string> } = {}): string {
  const r = spawnSync(cmd, a, { encoding: 'utf8', input: opts.input, maxBuffer: 1 << 30, stdio: ['pipe', opts.stdout ?? 'pipe', 'pipe'], env: { ...process.env, LANG: 'C', LC_ALL: 'C', ...opts.env } });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${a.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout ?? '';
}

async function timeIt(fn: () => Promise<unknown> | unknown, runs = RUNS): Promise<{ ms: number; all: number[] }> {
  await fn(); // warm-up (page cache, JIT); not counted
  const all: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    await fn();
    all.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return { ms: median(all), all };
}

// ---------------------------------------------------------------------------------------------
// ext2fs (libext2fs in WASM), from outside the repository, in a child process per scenario (an
// Aborted(OOM) leaves the WASM module unusable for the rest of the process)

const EXT2FS_RUNNER = String.raw`
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
const [op, image, arg, runsArg] = process.argv.slice(2);
const ext2fs = createRequire(process.env.EXT2FS_PKG)('ext2fs');
class Disk {
  constructor(fd) { this.fd = fd; }
  async read(buffer, bufferOffset, length, fileOffset) {
    let done = 0;
    while (done < length) {
      const n = await new Promise((res, rej) => fs.read(this.fd, buffer, bufferOffset + done, length - done, fileOffset + done, (e, b) => (e ? rej(e) : res(b))));
      if (n === 0) break;
      done += n;
    }
    return { bytesRead: done, buffer };
  }
  async write() { throw new Error('read-only'); }
  async flush() {}
  async discard() {}
}
async function withFs(fn) {
  const fd = fs.openSync(image, 'r');
  try {
    const m = await ext2fs.mount(new Disk(fd));
    try { return await fn(m.promises); } finally { await ext2fs.umount(m); }
  } finally { fs.closeSync(fd); }
}
const ops = {
  lsroot: () => withFs(async (p) => { const names = await p.readdir('/'); for (const n of names) await p.lstat('/' + n); return names.length; }),
  read: () => withFs(async (p) => {
    // O_NOATIME: otherwise every read updates atime, i.e. writes (refused by this read-only disk)
    const fh = await p.open(arg, fs.constants.O_RDONLY | fs.constants.O_NOATIME); // a FileHandle
    const buf = Buffer.alloc(8 * 1024 * 1024);
    let total = 0;
    for (;;) { const r = await fh.read(buf, 0, buf.length, total); const n = typeof r === 'number' ? r : r.bytesRead; if (!n) break; total += n; }
    await fh.close();
    return total;
  }),
  listR: () => withFs(async (p) => {
    let n = 0;
    const rec = async (d) => { for (const name of (await p.readdir(d)).sort()) { const q = d === '/' ? '/' + name : d + '/' + name; const st = await p.lstat(q); n++; if (st.isDirectory()) await rec(q); } };
    await rec('/');
    return n;
  }),
};
const times = [];
let result;
try {
  result = await ops[op]();
  for (let i = 0; i < Number(runsArg); i++) { const t = process.hrtime.bigint(); result = await ops[op](); times.push(Number(process.hrtime.bigint() - t) / 1e6); }
  console.log(JSON.stringify({ times, result, rssMiB: Math.round(process.memoryUsage().rss / 1048576) }));
} catch (e) {
  console.log(JSON.stringify({ error: String(e && e.message || e).slice(0, 200), rssMiB: Math.round(process.memoryUsage().rss / 1048576) }));
}
process.exit(0);
`;

interface Ext2fsResult {
  ms: number | null;
  result?: number;
  rssMiB?: number;
  error?: string;
}

function ensureExt2fs(): { pkg: string; version: string } | { error: string } {
  const pkg = path.join(BENCH_PREFIX, 'node_modules', 'ext2fs', 'package.json');
  if (!nodefs.existsSync(pkg)) {
    nodefs.mkdirSync(BENCH_PREFIX, { recursive: true });
    const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--prefix', BENCH_PREFIX, 'ext2fs'], { encoding: 'utf8' });
    if (r.status !== 0) return { error: `npm install ext2fs failed: ${r.stderr.slice(-500)}` };
  }
  return { pkg, version: (JSON.parse(nodefs.readFileSync(pkg, 'utf8')) as { version: string }).version };
}

function runExt2fs(pkg: string, op: 'lsroot' | 'read' | 'listR', image: string, arg = '', runs = RUNS): Ext2fsResult {
  const script = ext2fsScript();
  const r = spawnSync(process.execPath, [script, op, image, arg, String(runs)], { encoding: 'utf8', env: { ...process.env, EXT2FS_PKG: pkg }, maxBuffer: 1 << 24, timeout: 600_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    const j = JSON.parse(line) as { times?: number[]; result?: number; rssMiB?: number; error?: string };
    if (j.error || !j.times) return { ms: null, error: j.error ?? 'no timings', rssMiB: j.rssMiB };
    return { ms: median(j.times), result: j.result, rssMiB: j.rssMiB };
  } catch {
    return { ms: null, error: `runner exited ${r.status}${r.signal ? ` (${r.signal})` : ''}: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' ').slice(0, 200)}` };
  }
}

// ---------------------------------------------------------------------------------------------
// images

const work = nodefs.mkdtempSync(path.join(os.tmpdir(), 'ext4kit-bench-read-'));
const E2ENV = { E2FSPROGS_FAKE_TIME: '1700000000' };

function makeTiB(): string {
  const img = path.join(work, 'tib.img');
  sh('truncate', ['-s', '1T', img]);
  const src = path.join(work, 'tib-src');
  nodefs.mkdirSync(src);
  for (let i = 0; i < 20; i++) nodefs.writeFileSync(path.join(src, `file-${i}`), `${i}\n`);
  nodefs.mkdirSync(path.join(src, 'dir'));
  sh('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=1,lazy_journal_init=1', '-d', src, img], { env: E2ENV });
  return img;
}

function makeBigFile(): { image: string; size: number; sha256: string } {
  const img = path.join(work, 'big.img');
  const src = path.join(work, 'big-src');
  nodefs.mkdirSync(src);
  const size = 256 * 1024 * 1024;
  const h = crypto.createHash('sha256');
  const fd = nodefs.openSync(path.join(src, 'f'), 'w');
  const key = crypto.createHash('sha256').update('bench-read').digest();
  const c = crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zero = Buffer.alloc(4 * 1024 * 1024);
  for (let off = 0; off < size; off += zero.length) {
    const chunk = c.update(zero);
    h.update(chunk);
    nodefs.writeSync(fd, chunk);
  }
  nodefs.closeSync(fd);
  sh('truncate', ['-s', '400M', img]);
  sh('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', src, img], { env: E2ENV });
  nodefs.rmSync(src, { recursive: true });
  return { image: img, size, sha256: h.digest('hex') };
}

function makeTree(): { image: string; dirs: string[]; files: number } {
  const img = path.join(work, 'tree.img');
  const src = path.join(work, 'tree-src');
  const dirs: string[] = ['/'];
  let files = 0;
  for (let d = 0; d < 100; d++) {
    const dir = `/d${String(d).padStart(3, '0')}`;
    dirs.push(dir);
    nodefs.mkdirSync(path.join(src, dir), { recursive: true });
    for (let f = 0; f < 200; f++) {
      nodefs.writeFileSync(path.join(src, dir, `file-${String(f).padStart(4, '0')}.txt`), '');
      files++;
    }
  }
  sh('truncate', ['-s', '256M', img]);
  sh('mkfs.ext4', ['-q', '-F', '-b', '4096', '-N', '32768', '-d', src, img], { env: E2ENV });
  sh('e2fsck', ['-fyD', img], { stdout: 'ignore' }); // htree directories, as a kernel would make them
  nodefs.rmSync(src, { recursive: true });
  return { image: img, dirs, files };
}

// ---------------------------------------------------------------------------------------------
// contenders

interface Row {
  bench: string;
  tool: string;
  mode: 'fresh' | 'warm';
  /** fresh: work = whole process minus node's start-up (node processes); warm: the call. */
  ms: number | null;
  extra: string;
}
const rows: Row[] = [];
const add = (bench: string, tool: string, mode: Row['mode'], ms: number | null, extra = '') => {
  rows.push({ bench, tool, mode, ms, extra });
  console.error(`  ${bench} / ${tool} (${mode}): ${ms === null ? '—' : `${ms.toFixed(1)} ms`} ${extra}`);
};

async function ext4kitStream(image: string, file: string, opts: { reuseBuffer?: boolean }): Promise<number> {
  const fs = await Filesystem.open(image);
  try {
    let n = 0;
    for await (const c of fs.stream(await fs.resolve(file), opts.reuseBuffer ? 8 * 1024 * 1024 : undefined, opts)) n += c.length;
    return n;
  } finally {
    await fs.close();
  }
}

/** Raw fd: pread the file's extents (from ext4kit's map, read once) into one reused buffer. */
async function rawRead(image: string, extents: { physical: number; length: number }[], bs: number, size: number): Promise<number> {
  const fh = await nodefs.promises.open(image, 'r');
  try {
    const buf = Buffer.allocUnsafe(8 * 1024 * 1024);
    let left = size;
    for (const e of extents) {
      let off = e.physical * bs;
      let n = Math.min(e.length * bs, left);
      while (n > 0) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, n), off);
        if (bytesRead === 0) throw new Error('short read');
        off += bytesRead;
        n -= bytesRead;
        left -= bytesRead;
      }
    }
    return size - left;
  } finally {
    await fh.close();
  }
}

/**
 * The fresh-process rounds of one scenario: node's start-up, the given jobs, and ext2fs as a whole
 * process (its runner doing the op once: node start-up + WASM load + mount + op) when it works on
 * this image (checked once first: on the 1 TiB image it aborts). Adds one row per job.
 */
function freshScenario(
  bench: string,
  jobs: FreshJob[],
  ext2fs: { pkg: string; name: string; op: 'lsroot' | 'read' | 'listR'; image: string; arg?: string } | null,
  note: Record<string, string> = {},
  rate: (ms: number) => string = () => '',
) {
  const all = [NODE_START, ...jobs];
  let ext2fsNote = '';
  if (ext2fs) {
    const probe = runExt2fs(ext2fs.pkg, ext2fs.op, ext2fs.image, ext2fs.arg ?? '', 0);
    if (probe.error) ext2fsNote = `failed: ${probe.error} (RSS ${probe.rssMiB ?? '?'} MiB)`;
    else all.push({ name: `${ext2fs.name} (whole process)`, cmd: process.execPath, args: [ext2fsScript(), ext2fs.op, ext2fs.image, ext2fs.arg ?? '', '0'], node: true, env: { EXT2FS_PKG: ext2fs.pkg } });
  }
  const r = freshRounds(all, RUNS);
  for (const j of all.slice(1)) add(bench, j.name, 'fresh', r.work(j.name), `${rate(r.work(j.name))}${j.node ? `whole process ${r.wall[j.name]!.toFixed(1)} ms − node start-up ${r.nodeStart.toFixed(1)} ms` : 'whole process'}${note[j.name] ? `; ${note[j.name]}` : ''}`);
  if (ext2fs && ext2fsNote) add(bench, `${ext2fs.name} (whole process)`, 'fresh', null, ext2fsNote);
  return r;
}

function ext2fsScript(): string {
  const script = path.join(work, 'ext2fs-runner.mjs');
  if (!nodefs.existsSync(script)) nodefs.writeFileSync(script, EXT2FS_RUNNER);
  return script;
}

async function main(): Promise<void> {
  console.error(`bench/read: ${RUNS} timed runs each (median), work dir ${work}`);
  const loadStart = loadavg();
  const e2 = ensureExt2fs();
  const ext2fs = 'pkg' in e2 ? e2.pkg : null;
  const ext2fsName = 'pkg' in e2 ? `ext2fs ${e2.version} (WASM)` : 'ext2fs (WASM)';
  if (!ext2fs) console.error(`  ext2fs unavailable: ${(e2 as { error: string }).error}`);
  const debugfsVersion = sh('debugfs', ['-V']).trim() || spawnSync('debugfs', ['-V'], { encoding: 'utf8' }).stderr.trim().split('\n')[0]!;
  const cli = await bundleThisCli(work);
  const ext4kit = (name: string, a: string[], extra: Partial<FreshJob> = {}): FreshJob => ({ name, cmd: process.execPath, args: [cli, ...a], node: true, ...extra });
  let nodeStart = 0;

  // (a) ---------------------------------------------------------------------------------------
  console.error('(a) 1 TiB image: open + list /');
  const tib = makeTiB();
  {
    // fresh processes
    const lsEntries = (JSON.parse(sh(process.execPath, [cli, 'ls', tib, '/', '--json'])) as unknown[]).length;
    const r = freshScenario(
      '(a) open 1 TiB + ls /',
      [ext4kit('ext4kit ls / --json', ['ls', tib, '/', '--json']), ext4kit('ext4kit info --json', ['info', tib, '--json']), ext4kit('ext4kit --version', ['--version']), { name: 'debugfs ls -l /', cmd: 'debugfs', args: ['-R', 'ls -l /', tib] }],
      ext2fs ? { pkg: ext2fs, name: ext2fsName, op: 'lsroot', image: tib } : null,
      { 'ext4kit ls / --json': `${lsEntries} entries`, 'ext4kit --version': 'start-up of the CLI itself' },
    );
    nodeStart = r.nodeStart;
    // warm, in-process
    let entries = 0;
    const cache = { reads: 0, bytes: 0 };
    const t = await timeIt(async () => {
      const fs = await Filesystem.open(tib);
      try {
        entries = (await list(fs, '/')).length;
        cache.reads = internals(fs).cache.stats.reads;
        cache.bytes = internals(fs).cache.stats.bytesRead;
      } finally {
        await fs.close();
      }
    });
    const openOnly = await timeIt(async () => (await Filesystem.open(tib)).close());
    add('(a) open 1 TiB + ls /', 'ext4kit open + list /', 'warm', t.ms, `${entries} entries; open alone ${openOnly.ms.toFixed(1)} ms; ${cache.reads} device reads, ${(cache.bytes / 1024).toFixed(0)} KiB`);
    if (ext2fs) {
      const x = runExt2fs(ext2fs, 'lsroot', tib);
      add('(a) open 1 TiB + ls /', ext2fsName, 'warm', x.ms, x.ms === null ? `failed: ${x.error} (RSS ${x.rssMiB ?? '?'} MiB)` : `${x.result} entries; RSS ${x.rssMiB} MiB`);
    }
  }
  if (!KEEP) nodefs.rmSync(tib, { force: true });

  // (b) ---------------------------------------------------------------------------------------
  console.error('(b) sequential read of a 256 MiB file');
  const big = makeBigFile();
  {
    const fs = await Filesystem.open(big.image);
    const map = await fs.fileMap(await fs.resolve('/f'));
    const bs = fs.blockSize;
    // correctness first: the bytes are the file's, through the library and through the CLI
    const h = crypto.createHash('sha256');
    for await (const c of fs.stream(await fs.resolve('/f'))) h.update(c);
    if (h.digest('hex') !== big.sha256) throw new Error('ext4kit read the 256 MiB file wrong');
    await fs.close();
    const catOut = spawnSync(process.execPath, [cli, 'cat', big.image, '/f'], { maxBuffer: 1 << 30 });
    if (crypto.createHash('sha256').update(catOut.stdout).digest('hex') !== big.sha256) throw new Error('ext4kit cat read the 256 MiB file wrong');
    const mib = big.size / 1048576;
    const rate = (ms: number) => `${(mib / (ms / 1000)).toFixed(0)} MiB/s`;
    freshScenario(
      '(b) read 256 MiB',
      [ext4kit('ext4kit cat > /dev/null', ['cat', big.image, '/f']), { name: 'debugfs cat > /dev/null', cmd: 'debugfs', args: ['-R', 'cat /f', big.image] }],
      ext2fs ? { pkg: ext2fs, name: ext2fsName, op: 'read', image: big.image, arg: '/f' } : null,
      {},
      (ms) => `${rate(ms)}; `,
    );
    const raw = await timeIt(() => rawRead(big.image, map.extents, bs, big.size));
    const k = await timeIt(() => ext4kitStream(big.image, '/f', { reuseBuffer: true }));
    add('(b) read 256 MiB', 'ext4kit stream (reused buffer)', 'warm', k.ms, `${rate(k.ms)}; ${(100 * raw.ms / k.ms).toFixed(0)}% of raw fd; stream(inode, 8 MiB, {reuseBuffer: true})`);
    const kf = await timeIt(() => ext4kitStream(big.image, '/f', {}));
    add('(b) read 256 MiB', 'ext4kit stream (fresh chunks)', 'warm', kf.ms, `${rate(kf.ms)}; ${(100 * raw.ms / kf.ms).toFixed(0)}% of raw fd; default: a new 1 MiB array per chunk`);
    const d = await timeIt(() => sh('debugfs', ['-R', 'cat /f', big.image], { stdout: 'ignore' }));
    add('(b) read 256 MiB', 'debugfs cat > /dev/null', 'warm', d.ms, `${rate(d.ms)}; a process each time (there is no warm debugfs)`);
    if (ext2fs) {
      const x = runExt2fs(ext2fs, 'read', big.image, '/f', 3);
      add('(b) read 256 MiB', ext2fsName, 'warm', x.ms, x.ms === null ? `failed: ${x.error}` : `${rate(x.ms)}; ${x.result === big.size ? 'all bytes' : `read ${x.result} bytes`}`);
    }
    add('(b) read 256 MiB', 'raw fd pread of the extents', 'warm', raw.ms, `${rate(raw.ms)}; ${map.extents.length} extents, 8 MiB reused buffer`);
  }
  if (!KEEP) nodefs.rmSync(big.image, { force: true });

  // (c) ---------------------------------------------------------------------------------------
  console.error('(c) recursive listing of a 20,000-file tree');
  const tree = makeTree();
  {
    const script = path.join(work, 'ls-all.cmds');
    nodefs.writeFileSync(script, tree.dirs.map((d) => `ls -l ${d}`).join('\n') + '\n');
    const cliEntries = (JSON.parse(sh(process.execPath, [cli, 'ls', tree.image, '/', '-R', '--json'])) as unknown[]).length;
    const lines = sh('debugfs', ['-f', script, tree.image]).split('\n').length;
    freshScenario(
      '(c) list -R 20,000 files',
      [ext4kit('ext4kit ls / -R --json > /dev/null', ['ls', tree.image, '/', '-R', '--json']), { name: `debugfs -f (ls -l × ${tree.dirs.length} dirs)`, cmd: 'debugfs', args: ['-f', script, tree.image] }],
      ext2fs ? { pkg: ext2fs, name: ext2fsName, op: 'listR', image: tree.image } : null,
      { 'ext4kit ls / -R --json > /dev/null': `${cliEntries} entries`, [`debugfs -f (ls -l × ${tree.dirs.length} dirs)`]: `${lines} output lines` },
    );
    let n = 0;
    const k = await timeIt(async () => {
      const fs = await Filesystem.open(tree.image);
      try {
        n = (await list(fs, '/', { recursive: true })).length;
      } finally {
        await fs.close();
      }
    });
    add('(c) list -R 20,000 files', 'ext4kit open + list -R', 'warm', k.ms, `${n} entries`);
    const shm = nodefs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
    const dest = nodefs.mkdtempSync(path.join(shm, 'ext4kit-rdump-'));
    try {
      const r = await timeIt(() => {
        nodefs.rmSync(dest, { recursive: true, force: true });
        nodefs.mkdirSync(dest);
        sh('debugfs', ['-R', `rdump / ${dest}`, tree.image]);
      });
      add('(c) list -R 20,000 files', `debugfs rdump / → ${shm}`, 'fresh', r.ms, 'whole process; creates the 20,000 (empty) files');
    } finally {
      nodefs.rmSync(dest, { recursive: true, force: true });
    }
    if (ext2fs) {
      const x = runExt2fs(ext2fs, 'listR', tree.image, '', 3);
      add('(c) list -R 20,000 files', `${ext2fsName} readdir+lstat`, 'warm', x.ms, x.ms === null ? `failed: ${x.error}` : `${x.result} entries`);
    }
  }

  // table ---------------------------------------------------------------------------------------
  const w1 = Math.max(...rows.map((r) => r.bench.length));
  const w2 = Math.max(...rows.map((r) => r.tool.length));
  console.log(`\next4kit read benchmark — ${os.cpus().length} CPUs, node ${process.version}, ${debugfsVersion}; median of ${RUNS} runs; load average at start ${loadStart}, at end ${loadavg()}`);
  console.log(`fresh = a whole process per run (the bundled CLI of this tree), node's start-up (node -e 0, same rounds: ${nodeStart.toFixed(1)} ms in (a)) subtracted from node processes; warm = in this process, after a warm-up run\n`);
  console.log(`${'benchmark'.padEnd(w1)}  ${'tool'.padEnd(w2)}  mode   ${'median'.padStart(10)}  notes`);
  console.log(`${'-'.repeat(w1)}  ${'-'.repeat(w2)}  -----  ${'-'.repeat(10)}  -----`);
  for (const r of rows) console.log(`${r.bench.padEnd(w1)}  ${r.tool.padEnd(w2)}  ${r.mode.padEnd(5)}  ${(r.ms === null ? '—' : `${r.ms.toFixed(1)} ms`).padStart(10)}  ${r.extra}`);

  const get = (b: string, t: string, mode: Row['mode']) => rows.find((r) => r.bench.startsWith(b) && r.tool.startsWith(t) && r.mode === mode)?.ms ?? null;
  const ratio = (a: number | null, b: number | null) => (a === null || b === null ? '' : ` (${(a / b).toFixed(2)}×)`);
  const checks: [string, boolean | null][] = [];
  const fi = get('(a)', 'ext4kit info', 'fresh');
  checks.push([`fresh: info --json on 1 TiB ≤ 50 ms of work (${fi?.toFixed(1) ?? '?'} ms)`, fi === null ? null : fi <= 50]);
  const fc = get('(b)', 'ext4kit cat', 'fresh'), fd = get('(b)', 'debugfs', 'fresh');
  checks.push([`fresh: cat 256 MiB ≤ 1.1× debugfs cat${ratio(fc, fd)}`, fc === null || fd === null ? null : fc <= 1.1 * fd]);
  const fl = get('(c)', 'ext4kit', 'fresh'), fld = get('(c)', 'debugfs -f', 'fresh');
  checks.push([`fresh: ls -R --json ≤ 1.5× debugfs ls -l${ratio(fl, fld)}`, fl === null || fld === null ? null : fl <= 1.5 * fld]);
  const a = get('(a)', 'ext4kit', 'warm');
  checks.push(['warm: open 1 TiB + ls / < 50 ms', a === null ? null : a < 50]);
  const bk = get('(b)', 'ext4kit', 'warm'), bd = get('(b)', 'debugfs', 'warm'), bx = get('(b)', 'ext2fs', 'warm'), br = get('(b)', 'raw', 'warm');
  checks.push(['warm: read >= 10x ext2fs', bk === null || bx === null ? null : bx / bk >= 10]);
  checks.push(['warm: read >= 0.9x debugfs cat', bk === null || bd === null ? null : bd / bk >= 0.9]);
  checks.push(['warm: read >= 85% of raw fd', bk === null || br === null ? null : br / bk >= 0.85]);
  const bf = get('(b)', 'ext4kit stream (fresh', 'warm');
  checks.push(['(warm: default fresh-chunk stream >= 85% of raw fd; informational: every chunk is new memory)', bf === null || br === null ? null : br / bf >= 0.85]);
  const ck = get('(c)', 'ext4kit', 'warm');
  checks.push(['warm: list -R no slower than debugfs (a process)', ck === null || fld === null ? null : ck <= fld]);
  console.log('\ntargets:');
  for (const [what, ok] of checks) console.log(`  ${ok === null ? 'n/a ' : ok ? 'MET ' : 'MISS'}  ${what}`);
  if (!KEEP) nodefs.rmSync(work, { recursive: true, force: true });
  else console.log(`\nimages kept in ${work}`);
}

main().catch((e) => {
  console.error(e);
  if (!KEEP) nodefs.rmSync(work, { recursive: true, force: true });
  process.exit(1);
});
