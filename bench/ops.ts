/**
 * bench/ops — the proposal's calls against the obvious baselines.
 *
 *   npx tsx bench/ops.ts [--runs 5] [--move-mib 256] [--skip-mount] [--only free|move|allocate]
 *                        [--baseline-cli PATH] [--layout strided|contiguous] [--fresh-only]
 *
 * Each call is timed both as users run it — a FRESH `ext4kit …` process per run (the CLI of this
 * tree, bundled into the work dir; node's own start-up, `node -e 0`, measured in the same rounds
 * and subtracted) — and warm in-process (the library call, open to close). The reference tool runs
 * in the same rounds. The load average is printed at the start and the end.
 *
 * 1. movedata of MOVE_MIB MiB into a contiguous donor, from two sources: `strided` (1 MiB chunks
 *    interleaved with another file: MOVE_MIB extents 2 MiB apart) and `contiguous` (one physical
 *    run). Warm in-process vs a raw read+write copy of the same extents (8 MiB chunks, one
 *    fdatasync), caches dropped before each timed phase. Fresh-process: a whole `ext4kit movedata`
 *    process vs `dd bs=1M conv=fsync` copying as many bytes sequentially inside a copy of the image
 *    (the same work only for the contiguous source) and vs a raw copy process of the same extents
 *    to the same destination (the like-for-like reference for the strided source), caches dropped
 *    before each and node's binary paged back in (for `node -e 0` too). Target ≥ 85 %.
 * 2. getFreeBlocks over a whole 1 TiB sparse `mkfs.ext4` image: `ext4kit free
 *    --json` fresh process, and open + scan + close in-process, vs `e2freefrag`
 *    on it. Target: ≤ 0.1× e2freefrag (fresh process, work).
 * 3. allocate 4 GiB as one contiguous run: `ext4kit allocate --contiguous
 *    --fixed-len` fresh process, and open + allocate + close in-process, vs
 *    `fallocate -l 4G` on the loop-mounted image (+ sync), and the extent
 *    counts each leaves (debugfs ex after unmounting).
 * 4. The reverse-map scan (buildReverseMap) and a whole fsmap on the 1 TiB
 *    image; `ext4kit map --json` as a fresh process.
 *
 * Every figure is the median of --runs (≥ 5) runs (each on a fresh copy where
 * the run changes the image); the first in-process run of the scans (cold JIT)
 * is reported separately. Needs root for drop_caches and the loop mount
 * (skipped with a note otherwise).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Filesystem } from '../lib/node.js';
import { getFreeBlocks } from '../lib/ops/free.js';
import { allocate, ALLOC_CONTIGUOUS, ALLOC_FIXED_LEN } from '../lib/ops/allocate.js';
import { movedata } from '../lib/ops/movedata.js';
import { openFile } from '../lib/ops/file.js';
import { buildReverseMap, fsmap } from '../lib/ops/fsmap.js';
import { bundleThisCli, freshRounds, loadavg, NODE_START } from './fresh.js';

const args = process.argv.slice(2);
const num = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const RUNS = Math.max(5, num('runs', 5));
/** The scans are cheap: more runs for a steadier median. */
const SCAN_RUNS = Math.max(RUNS, 7);
const MOVE_MIB = num('move-mib', 256);
/** Another bundled CLI (e.g. of the commit before a change) run in the same fresh rounds: before/after in one run. */
const BASELINE_CLI = args.includes('--baseline-cli') ? args[args.indexOf('--baseline-cli') + 1] : undefined;
const ROOT = process.getuid?.() === 0;
const SKIP_MOUNT = args.includes('--skip-mount') || !ROOT || !fs.existsSync('/dev/loop-control');

const work = fs.mkdtempSync(join(tmpdir(), 'ext4kit-bench-ops-'));
const MiB = 1024 * 1024;
/** The CLI of this tree, bundled once into the work dir. */
let cliPath: Promise<string> | null = null;
const cli = (): Promise<string> => (cliPath ??= bundleThisCli(work));

function sh(cmd: string, a: string[], opts: { ok?: number[] } = {}): { out: string; status: number } {
  const r = spawnSync(cmd, a, { encoding: 'utf8', maxBuffer: 1 << 28, env: { ...process.env, LANG: 'C', LC_ALL: 'C' } });
  if (r.error) throw r.error;
  const status = r.status ?? 128;
  if (!(opts.ok ?? [0]).includes(status)) throw new Error(`${cmd} ${a.join(' ')} failed (${status}): ${r.stderr}${r.stdout}`);
  return { out: r.stdout + r.stderr, status };
}
function dropCaches(): void {
  if (!ROOT) return;
  spawnSync('sync');
  try {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
  } catch {
    /* not allowed: figures then include page-cache hits */
  }
}
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
async function timed<T>(fn: () => Promise<T> | T): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await fn();
  return { ms: performance.now() - t, value };
}
const rows: string[][] = [['benchmark', 'ext4kit', 'baseline', 'ratio', 'target', 'notes']];
const fmtMs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
const fmtMBs = (bytes: number, ms: number) => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;

// ------------------------------------------------------------------------------- 1 TiB image

async function bigImage(): Promise<string> {
  const img = join(work, 'tib.img');
  sh('truncate', ['-s', '1T', img]);
  sh('mkfs.ext4', ['-q', '-F', '-U', '5b0ab1d1-0000-4000-8000-0000000001ab', img]);
  return img;
}

async function benchFree(img: string): Promise<void> {
  const ours: number[] = [];
  let runs = 0;
  let cold = 0;
  for (let i = 0; i < SCAN_RUNS + 1; i++) {
    const { ms, value } = await timed(async () => {
      const f = await Filesystem.open(img);
      try {
        return await getFreeBlocks(f);
      } finally {
        await f.close();
      }
    });
    if (i === 0) cold = ms;
    else ours.push(ms);
    runs = value.length;
  }
  const theirs: number[] = [];
  let ff = '';
  for (let i = 0; i < SCAN_RUNS; i++) {
    const { ms, value } = await timed(() => sh('e2freefrag', [img]).out);
    theirs.push(ms);
    ff = value;
  }
  const m = /Num\. free extent: (\d+)/.exec(ff);
  const a = median(ours), b = median(theirs);
  // fresh processes: ext4kit free --json vs e2freefrag, same rounds
  const bin = await cli();
  let freshRuns = 0;
  const f = freshRounds(
    [
      NODE_START,
      { name: 'free', cmd: process.execPath, args: [bin, 'free', img, '--json'], node: true, stdout: 'capture', check: (o) => void (freshRuns = (JSON.parse(o.toString('utf8')) as unknown[]).length) },
      { name: 'e2freefrag', cmd: 'e2freefrag', args: [img] },
    ],
    SCAN_RUNS,
  );
  const fa = f.work('free'), fb = f.work('e2freefrag');
  rows.push(['ext4kit free --json, whole 1 TiB fs, FRESH process', fmtMs(fa), `e2freefrag ${fmtMs(fb)}`, `${(fa / fb).toFixed(3)}×`, '≤ 0.1×', `${freshRuns} free extents; whole process ${fmtMs(f.wall.free!)} − node start-up ${fmtMs(f.nodeStart)} (same rounds); median of ${SCAN_RUNS}`]);
  rows.push(['getFreeBlocks, whole 1 TiB fs, warm in-process (open+scan+close)', fmtMs(a), `e2freefrag ${fmtMs(b)}`, `${(a / b).toFixed(3)}×`, '', `${runs} free extents (e2freefrag: ${m?.[1] ?? '?'}); first run in process (cold JIT) ${fmtMs(cold)}`]);
}

async function benchReverseMap(img: string): Promise<void> {
  const scan: number[] = [];
  const whole: number[] = [];
  let cold = 0;
  let info = '';
  for (let i = 0; i < SCAN_RUNS + 1; i++) {
    const f = await Filesystem.open(img);
    try {
      const a = await timed(() => buildReverseMap(f));
      const b = await timed(() => fsmap(f, { reverseMap: a.value }));
      if (i === 0) cold = a.ms;
      else {
        scan.push(a.ms);
        whole.push(a.ms + b.ms);
      }
      info = `${a.value.stats.inodesInUse} inodes in use, ${a.value.stats.groupsSkipped}/${a.value.stats.groups} groups skipped, ${(a.value.stats.tableBytes / 1024).toFixed(0)} KiB of inode table read; ${b.value.length} map records`;
    } finally {
      await f.close();
    }
  }
  rows.push(['reverse-map scan, 1 TiB fs (buildReverseMap), warm in-process', fmtMs(median(scan)), '—', '—', '—', `${info}; cold ${fmtMs(cold)}`]);
  rows.push(['whole fsmap, 1 TiB fs (scan + map), warm in-process', fmtMs(median(whole)), '—', '—', '—', '']);
  const bin = await cli();
  const f = freshRounds([NODE_START, { name: 'map', cmd: process.execPath, args: [bin, 'map', img, '--json'], node: true }], SCAN_RUNS);
  rows.push(['ext4kit map --json, 1 TiB fs, FRESH process', fmtMs(f.work('map')), '—', '—', '—', `whole process ${fmtMs(f.wall.map!)} − node start-up ${fmtMs(f.nodeStart)}; output to /dev/null`]);
}

// ------------------------------------------------------------------------------- movedata

/**
 * The source layouts: `strided` — the data file written 1 MiB at a time interleaved with a filler
 * file, so its MOVE_MIB extents lie 2 MiB apart (a fragmented file, what movedata is for);
 * `contiguous` — the data file written in one go (one physical run), where dd's sequential read
 * is the same work as ours. Each template has the donor /space allocated as one contiguous run.
 */
type MoveLayout = 'strided' | 'contiguous';

async function moveTemplate(layout: MoveLayout): Promise<string> {
  const img = join(work, `move-template-${layout}.img`);
  const src = join(work, 'src');
  fs.mkdirSync(src, { recursive: true });
  for (const n of ['data', 'filler', 'space']) fs.writeFileSync(join(src, n), '');
  const size = Math.max(1024, MOVE_MIB * 4);
  sh('truncate', ['-s', `${size}M`, img]);
  sh('mkfs.ext4', ['-q', '-F', '-O', 'sparse_super2', '-G', '1024', '-d', src, img]); // long free runs for the donor
  const f = await Filesystem.open(img, { write: true });
  try {
    const d = await openFile(f, '/data'), g = await openFile(f, '/filler');
    const chunk = new Uint8Array(MiB);
    const fill = (i: number) => {
      for (let j = 0; j < chunk.length; j += 4096) chunk[j] = (i * 7 + j) & 0xff;
      chunk.fill(i & 0xff, 1, 64);
    };
    if (layout === 'strided') {
      for (let i = 0; i < MOVE_MIB; i++) {
        fill(i);
        await d.pwrite(chunk, i * MiB);
        await g.pwrite(chunk, i * MiB);
      }
    } else {
      for (let i = 0; i < MOVE_MIB; i++) (fill(i), await d.pwrite(chunk, i * MiB));
      for (let i = 0; i < MOVE_MIB; i++) (fill(i), await g.pwrite(chunk, i * MiB));
    }
    await allocate(f, '/space', { offset: 0, len: MOVE_MIB * MiB, flags: ALLOC_CONTIGUOUS | ALLOC_FIXED_LEN });
  } finally {
    await f.close();
  }
  return img;
}

/** The data file's extents and the donor's first block in an image made by moveTemplate. */
async function moveGeometry(img: string): Promise<{ data: { physical: number; length: number; logical: number }[]; runs: number; donor: number }> {
  const f = await Filesystem.open(img);
  try {
    const data = (await f.fileMap(await f.resolve('/data'))).extents;
    const donor = (await f.fileMap(await f.resolve('/space'))).extents;
    let runs = 0;
    data.forEach((e, i) => { if (i === 0 || data[i - 1]!.physical + data[i - 1]!.length !== e.physical) runs++; });
    return { data, runs, donor: donor[0]!.physical };
  } finally {
    await f.close();
  }
}

/** --layout strided|contiguous: one source layout only; --fresh-only: no warm in-process rows (the figure is the fresh one). */
const LAYOUTS: MoveLayout[] = args.includes('--layout') ? [args[args.indexOf('--layout') + 1] as MoveLayout] : ['strided', 'contiguous'];
const FRESH_ONLY = args.includes('--fresh-only');

async function benchMove(): Promise<void> {
  for (const layout of LAYOUTS) {
    if (layout !== 'strided' && layout !== 'contiguous') throw new Error(`--layout ${layout}: strided or contiguous`);
    const template = await moveTemplate(layout);
    if (!FRESH_ONLY) await benchMoveWarm(template, layout);
    await benchMoveFresh(template, layout);
  }
}

async function benchMoveWarm(template: string, layout: MoveLayout): Promise<void> {
  const bytes = MOVE_MIB * MiB;
  const ours: number[] = [], raw: number[] = [], calls: number[] = [];
  const geo = await moveGeometry(template);
  let after = 0, steps = 0;
  for (let i = 0; i < RUNS; i++) {
    const img = join(work, 'move.img');
    sh('cp', ['--sparse=always', template, img]);
    const bs = 4096;
    // raw baseline: the same bytes, same extents, same 8 MiB chunks, into the donor's blocks, one fdatasync
    dropCaches();
    const r = await timed(async () => {
      const fh = await fs.promises.open(img, 'r+');
      try {
        const buf = new Uint8Array(8 * MiB);
        for (const e of geo.data) {
          for (let off = 0; off < e.length * bs; off += buf.length) {
            const n = Math.min(buf.length, e.length * bs - off);
            await fh.read(buf, 0, n, e.physical * bs + off);
            await fh.write(buf, 0, n, (geo.donor + e.logical) * bs + off);
          }
        }
        await fh.datasync();
      } finally {
        await fh.close();
      }
    });
    raw.push(r.ms);
    // movedata (open + call + close, which checkpoints the journal)
    dropCaches();
    const m = await timed(async () => {
      const f = await Filesystem.open(img, { write: true });
      try {
        const t0 = f.writeStats.transactions;
        const c = await timed(() => movedata(f, '/data', '/space', { from: 0, len: bytes }));
        calls.push(c.ms);
        steps = f.writeStats.transactions - t0;
        after = (await f.fileMap(await f.resolve('/data'))).extents.length;
      } finally {
        await f.close();
      }
    });
    ours.push(m.ms);
    if (i === 0) {
      const ck = sh('e2fsck', ['-fn', img], { ok: [0, 1, 4] });
      if (ck.status !== 0) console.error(`warning: e2fsck after movedata exited ${ck.status}:\n${ck.out}`);
    }
    fs.rmSync(img, { force: true });
  }
  const a = median(ours), b = median(raw), c = median(calls);
  rows.push([
    `movedata ${MOVE_MIB} MiB, ${layout} source (${geo.data.length} extents in ${geo.runs} run(s) → ${after}), the call, warm in-process`,
    `${fmtMs(c)} (${fmtMBs(bytes, c)})`,
    `raw copy ${fmtMs(b)} (${fmtMBs(bytes, b)})`,
    `${((b / c) * 100).toFixed(0)} % of raw`,
    '≥ 85 %',
    `${steps} transactions; caches dropped before each phase; raw = same extents, 8 MiB reused buffer, one fdatasync`,
  ]);
  rows.push([`movedata ${MOVE_MIB} MiB, ${layout} source, open+call+close, warm in-process`, `${fmtMs(a)} (${fmtMBs(bytes, a)})`, `raw copy ${fmtMs(b)}`, `${((b / a) * 100).toFixed(0)} % of raw`, '', 'includes journal open/replay check and the close-time checkpoint']);
}

/**
 * A raw copy as a C tool would make it, in its own process: the data file's extents (a JSON list
 * of [byte offset, byte length, destination byte offset]) read and written 1 MiB at a time (dd's
 * bs=1M) with synchronous pread/pwrite, one fdatasync. The reference for a strided source, which
 * dd (one sequential read) cannot be.
 */
const RAW_COPY = `
const fs = require('node:fs');
const [img, list] = process.argv.slice(2);
const fd = fs.openSync(img, 'r+');
const buf = Buffer.allocUnsafe(1 << 20);
for (const [from, len, to] of JSON.parse(fs.readFileSync(list, 'utf8')))
  for (let off = 0; off < len; off += buf.length) {
    const n = Math.min(buf.length, len - off);
    fs.readSync(fd, buf, 0, n, from + off);
    fs.writeSync(fd, buf, 0, n, to + off);
  }
fs.fdatasyncSync(fd);
fs.closeSync(fd);
`;

/**
 * What a user sees: a whole `ext4kit movedata` process (the bundled CLI of this tree, fresh node,
 * node's own start-up `node -e 0` subtracted) against, in the same rounds (freshRounds, medians):
 * `dd bs=1M conv=fsync` copying as many bytes from the data file's first block into the donor
 * (one sequential read: the same work as ours only for the contiguous source), and a raw copy of
 * the same extents to the same destination (RAW_COPY, node start-up subtracted too). Each run on
 * a fresh copy of the template, caches dropped before each, then node's binary paged back in.
 */
async function benchMoveFresh(template: string, layout: MoveLayout): Promise<void> {
  const bin = await cli();
  const runs = Math.max(5, RUNS);
  const bytes = MOVE_MIB * MiB;
  const geo = await moveGeometry(template);
  const bs = 4096;
  const list = join(work, 'raw-copy.json');
  fs.writeFileSync(list, JSON.stringify(geo.data.map((e) => [e.physical * bs, e.length * bs, (geo.donor + e.logical) * bs])));
  const script = join(work, 'raw-copy.cjs');
  fs.writeFileSync(script, RAW_COPY);
  const img = (name: string) => join(work, `move-fresh-${name}.img`);
  // Caches dropped before each run (the image, our bundle and code cache read cold: those count),
  // then node's own ~100 MB binary paged back in, for every contender and for node's start-up
  // alike: dd's binary is tiny, and node's read from disk after a drop costs 40–120 ms more
  // than a warm `node -e 0` here — node's cost, not ours, yet it would not cancel out exactly.
  const coldButNode = () => {
    dropCaches();
    spawnSync('cat', [process.execPath], { stdio: 'ignore' }); // (into the page cache, not into this process)
  };
  const fresh = (name: string) => () => {
    sh('cp', ['--sparse=always', template, img(name)]);
    coldButNode();
  };
  const src = geo.data[0]!.physical * bs, dst = geo.donor * bs;
  let checked = false;
  // Each CLI keeps its V8 code cache (code-cache.ts) in a directory of its own, warmed by the
  // uncounted first round as a user's earlier runs warm theirs.
  const cacheHome = (name: string) => ({ XDG_CACHE_HOME: join(work, `code-cache-${name}`) });
  const moveArgs = (bin: string, image: string) => [bin, 'movedata', image, '/data', '/space', '--from', '0', '--len', String(bytes)];
  // node's start-up, subtracted from ours and raw's, is measured under the same condition (coldButNode).
  const f = freshRounds(
    [
      { ...NODE_START, before: coldButNode },
      { name: 'dd', cmd: 'dd', args: [`if=${img('dd')}`, `of=${img('dd')}`, 'bs=1M', `count=${MOVE_MIB}`, `skip=${src}`, `seek=${dst}`, 'iflag=skip_bytes', 'oflag=seek_bytes', 'conv=notrunc,fsync', 'status=none'], before: fresh('dd') },
      { name: 'raw', cmd: process.execPath, args: [script, img('raw'), list], node: true, before: fresh('raw') },
      ...(BASELINE_CLI ? [{ name: 'baseline', cmd: process.execPath, args: moveArgs(BASELINE_CLI, img('base')), node: true, env: cacheHome('baseline'), before: fresh('base') }] : []),
      {
        name: 'movedata',
        cmd: process.execPath,
        args: moveArgs(bin, img('ours')),
        node: true,
        env: cacheHome('ours'),
        before: () => {
          if (!checked && fs.existsSync(img('ours'))) {
            checked = true;
            const ck = sh('e2fsck', ['-fn', img('ours')], { ok: [0, 1, 4] });
            if (ck.status !== 0) console.error(`warning: e2fsck after the movedata process exited ${ck.status}:\n${ck.out}`);
          }
          fresh('ours')();
        },
      },
    ],
    runs,
  );
  // The syscalls that order the writes, one more run each under strace (not timed).
  const syncs = (name: string, cmd: string, a: string[]): string => {
    fresh(name)();
    const r = spawnSync('strace', ['-f', '-c', '-e', 'trace=fdatasync,fsync,pwrite64,pread64', cmd, ...a], { encoding: 'utf8', env: { ...process.env, ...cacheHome(name) } });
    if (r.error || r.status !== 0) return 'strace unavailable';
    // strace -c rows: % time, seconds, usecs/call, calls, [errors,] syscall
    const count = (sys: string) => [...r.stderr.matchAll(/^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/gm)].find((m) => m[2] === sys)?.[1];
    return `${Number(count('fdatasync') ?? 0) + Number(count('fsync') ?? 0)} f(data)sync, ${count('pwrite64') ?? 0} pwrite64, ${count('pread64') ?? 0} pread64`;
  };
  const oursSyncs = syncs('ours', process.execPath, moveArgs(bin, img('ours')));
  const ddSyncs = syncs('dd', 'dd', [`if=${img('dd')}`, `of=${img('dd')}`, 'bs=1M', `count=${MOVE_MIB}`, `skip=${src}`, `seek=${dst}`, 'iflag=skip_bytes', 'oflag=seek_bytes', 'conv=notrunc,fsync', 'status=none']);
  for (const n of ['dd', 'raw', 'ours', 'base']) fs.rmSync(img(n), { force: true });
  const a = f.work('movedata'), dd = f.work('dd'), raw = f.work('raw');
  const same = layout === 'contiguous' ? 'same work' : 'NOT the same work: dd reads one sequential run';
  rows.push([
    `ext4kit movedata ${MOVE_MIB} MiB, ${layout} source (${geo.data.length} extents, ${geo.runs} run(s)), FRESH process`,
    `${fmtMs(a)} (${fmtMBs(bytes, a)}); whole process ${fmtMs(f.wall.movedata!)}`,
    `dd bs=1M conv=fsync ${fmtMs(dd)} (${fmtMBs(bytes, dd)}); raw copy of the same extents ${fmtMs(raw)}`,
    `${((dd / a) * 100).toFixed(0)} % of dd (${same}); ${((raw / a) * 100).toFixed(0)} % of raw`,
    '≥ 85 %',
    `median of ${runs}, round-robin; node start-up ${fmtMs(f.nodeStart)} (same condition: caches dropped, node's binary paged in) subtracted from ours and raw's (not from dd's); bundled CLI of this tree; load ${loadavg()}`,
  ]);
  rows.push([`  syscalls (strace -f -c, one run each, not timed)`, oursSyncs, `dd: ${ddSyncs}`, '', '', 'fdatasync+fsync: ordering barriers and writeback']);
  if (BASELINE_CLI) {
    const b = f.work('baseline');
    rows.push([
      `  baseline CLI (${BASELINE_CLI}), same rounds`,
      `${fmtMs(b)} (${fmtMBs(bytes, b)}); whole process ${fmtMs(f.wall.baseline!)}`,
      `dd ${fmtMs(dd)}`,
      `${((dd / b) * 100).toFixed(0)} % of dd; this tree ${((b / a) * 100).toFixed(0)} % of the baseline's speed`,
      '',
      'the same rounds and images as the row above',
    ]);
  }
}

// ------------------------------------------------------------------------------- allocate 4 GiB

function extentCount(img: string, path: string): number {
  const out = sh('debugfs', ['-R', `ex ${path}`, img]).out;
  let n = 0, runs = 0, prevEnd = -1;
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\/\s*(\d+)\s+\d+\/\s*\d+\s+\d+\s*-\s*\d+\s+(\d+)\s*-\s*(\d+)\s+(\d+)/.exec(line);
    if (!m || m[1] !== m[2]) continue;
    n++;
    if (Number(m[3]) !== prevEnd + 1) runs++;
    prevEnd = Number(m[4]);
  }
  return n * 1000 + runs; // packed: extents, physical runs
}

async function benchAllocate(): Promise<void> {
  const template = join(work, 'alloc-template.img');
  sh('truncate', ['-s', '16G', template]);
  const src = join(work, 'src-alloc');
  fs.mkdirSync(src, { recursive: true });
  fs.writeFileSync(join(src, 'big'), '');
  // sparse_super2 + one flex group: free space in long runs (a default mkfs has none of 4 GiB)
  sh('mkfs.ext4', ['-q', '-F', '-O', 'sparse_super2', '-G', '1024', '-d', src, template]);
  const len = 4 * 1024 * MiB;
  const ours: number[] = [], oursCall: number[] = [];
  let oursExt = 0;
  for (let i = 0; i < RUNS; i++) {
    const img = join(work, 'alloc.img');
    sh('cp', ['--sparse=always', template, img]);
    let call = 0;
    const t = await timed(async () => {
      const f = await Filesystem.open(img, { write: true });
      try {
        const c = await timed(() => allocate(f, '/big', { offset: 0, len, flags: ALLOC_CONTIGUOUS | ALLOC_FIXED_LEN }));
        call = c.ms;
      } finally {
        await f.close();
      }
    });
    ours.push(t.ms);
    oursCall.push(call);
    oursExt = extentCount(img, '/big');
    fs.rmSync(img, { force: true });
  }
  let kernel = '(skipped: needs root and loop devices)';
  let ratio = '—';
  let kernelExt = '';
  let kernelMs: number | null = null;
  if (!SKIP_MOUNT) {
    const times: number[] = [];
    let kext = 0;
    const mnt = join(work, 'mnt');
    fs.mkdirSync(mnt, { recursive: true });
    for (let i = 0; i < RUNS; i++) {
      const img = join(work, 'alloc-k.img');
      sh('cp', ['--sparse=always', template, img]);
      const dev = sh('losetup', ['-f', '--show', img]).out.trim();
      try {
        sh('mount', [dev, mnt]);
        try {
          const t = await timed(() => {
            sh('fallocate', ['-l', '4G', join(mnt, 'big')]);
            sh('sync', ['-f', join(mnt, 'big')]);
          });
          times.push(t.ms);
        } finally {
          sh('umount', [mnt]);
        }
      } finally {
        sh('losetup', ['-d', dev], { ok: [0, 1] });
      }
      kext = extentCount(img, '/big');
      fs.rmSync(img, { force: true });
    }
    const b = median(times);
    kernelMs = b;
    kernel = `fallocate -l 4G + sync ${fmtMs(b)}`;
    ratio = `${(b / median(ours)).toFixed(1)}× (kernel / ours; call alone ${(b / median(oursCall)).toFixed(1)}×)`;
    kernelExt = `; kernel: ${Math.floor(kext / 1000)} extents in ${kext % 1000} physical runs`;
  }
  // fresh processes: `ext4kit allocate` on a fresh copy each run (the copy is not timed)
  const bin = await cli();
  const img = join(work, 'alloc-fresh.img');
  const f = freshRounds(
    [
      NODE_START,
      {
        name: 'allocate',
        cmd: process.execPath,
        args: [bin, 'allocate', img, '/big', '--offset', '0', '--len', String(len), '--contiguous', '--fixed-len'],
        node: true,
        before: () => sh('cp', ['--sparse=always', template, img]),
      },
    ],
    RUNS,
  );
  const freshExt = extentCount(img, '/big');
  const ck = sh('e2fsck', ['-fn', img], { ok: [0, 1, 4] });
  if (ck.status !== 0) console.error(`warning: e2fsck after the allocate process exited ${ck.status}:\n${ck.out}`);
  fs.rmSync(img, { force: true });
  const fa = f.work('allocate');
  rows.push([
    'ext4kit allocate 4 GiB --contiguous --fixed-len, FRESH process',
    fmtMs(fa),
    kernel,
    kernelMs === null ? '—' : `${(kernelMs / fa).toFixed(1)}× (kernel / ours)`,
    '—',
    `whole process ${fmtMs(f.wall.allocate!)} − node start-up ${fmtMs(f.nodeStart)}; ${Math.floor(freshExt / 1000)} extents in ${freshExt % 1000} physical run(s)`,
  ]);
  rows.push([
    'allocate 4 GiB CONTIGUOUS|FIXED_LEN (open+call+close), warm in-process',
    `${fmtMs(median(ours))} (call ${fmtMs(median(oursCall))})`,
    kernel,
    ratio,
    '—',
    `ext4kit: ${Math.floor(oursExt / 1000)} extents in ${oursExt % 1000} physical run(s)${kernelExt}`,
  ]);
}

// ------------------------------------------------------------------------------- main

try {
  console.log(`bench/ops: ${RUNS} runs each, work dir ${work}${SKIP_MOUNT ? ' (kernel comparison skipped: needs root and loop devices)' : ''}; load average ${loadavg()}`);
  const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : null;
  if (!only || only === 'free') {
    const big = await bigImage();
    await benchFree(big);
    await benchReverseMap(big);
    fs.rmSync(big, { force: true });
  }
  if (!only || only === 'move') await benchMove();
  if (!only || only === 'allocate') await benchAllocate();
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows) console.log(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
  console.log(`load average at end ${loadavg()}; FRESH = a whole \`ext4kit\` process of this tree's bundled CLI, node's start-up subtracted; ratios are ext4kit / reference unless labelled`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
