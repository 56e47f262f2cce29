/**
 * External oracles for tests: mkfs, e2fsck, dumpe2fs, debugfs, loop mounts.
 *
 * Everything here is synchronous (except `withLoopMount`, whose callback is async) and throws an
 * `Error` whose message carries the full command line, exit status and output when a tool fails
 * unexpectedly.
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tmpPath, sleepSync } from './tmp.js';

// ---------------------------------------------------------------------------------------------
// Running programs

export interface RunResult {
  /** Exit status (a signal-killed process reports 128 + signal number). */
  status: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  input?: string | Buffer;
  /** Exit statuses that are not an error (default: only 0). `true` accepts every status. */
  okStatus?: number[] | true;
  timeoutMs?: number;
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGSEGV: 11, SIGTERM: 15, SIGABRT: 6 };

function quoteArg(a: string): string {
  return /^[A-Za-z0-9_./=:,+@%^-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** Run a program synchronously; throws with command, status and output unless the status is accepted. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): RunResult {
  const r = spawnSync(cmd, args, {
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd,
    input: opts.input,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    timeout: opts.timeoutMs ?? 300_000,
  });
  const cmdline = [cmd, ...args].map(quoteArg).join(' ');
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`${cmd}: program not found (is it installed and on PATH?) — ${cmdline}`);
    throw new Error(`${cmdline}: ${r.error.message}`);
  }
  const status = r.status ?? 128 + (SIGNALS[r.signal ?? ''] ?? 0);
  const res: RunResult = { status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  const ok = opts.okStatus === true || (opts.okStatus ?? [0]).includes(status);
  if (!ok) {
    throw new Error(
      `command failed (status ${status}${r.signal ? `, signal ${r.signal}` : ''}): ${cmdline}\n` +
        `--- stdout ---\n${res.stdout}\n--- stderr ---\n${res.stderr}`,
    );
  }
  return res;
}

const whichCache = new Map<string, string | null>();
/**
 * Absolute path of a program on PATH (also /sbin, /usr/sbin), or null. A program named in
 * `EXT4KIT_TEST_HIDE_TOOLS` (comma-separated) counts as missing: test/oracles.test.ts uses it to
 * prove that a missing oracle fails the run under CI.
 */
export function which(cmd: string): string | null {
  if ((process.env.EXT4KIT_TEST_HIDE_TOOLS ?? '').split(',').includes(cmd)) return null;
  const cached = whichCache.get(cmd);
  if (cached !== undefined) return cached;
  const dirs = [...(process.env.PATH ?? '').split(':'), '/sbin', '/usr/sbin', '/bin', '/usr/bin'];
  let found: string | null = null;
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      found = p;
      break;
    } catch {
      /* next */
    }
  }
  whichCache.set(cmd, found);
  return found;
}

// ---------------------------------------------------------------------------------------------
// Determinism knobs

/** `E2FSPROGS_FAKE_TIME` used for every mkfs (and image-building debugfs): 2023-11-14T22:13:20Z. */
export const FAKE_TIME = 1_700_000_000;

/**
 * A pinned mke2fs.conf (identical to the upstream 1.47.0 default shipped here), so images do not
 * change with the distribution's /etc/mke2fs.conf. Note the "small" type: filesystems < 512 MiB
 * default to 1 KiB blocks — always pass `-b` when the block size matters.
 */
export const MKE2FS_CONF = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384

[fs_types]
	ext3 = {
		features = has_journal
	}
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
	small = {
		blocksize = 1024
		inode_ratio = 4096
	}
	floppy = {
		blocksize = 1024
		inode_ratio = 8192
	}
	big = {
		inode_ratio = 32768
	}
	huge = {
		inode_ratio = 65536
	}
	news = {
		inode_ratio = 4096
	}
	largefile = {
		inode_ratio = 1048576
		blocksize = -1
	}
	largefile4 = {
		inode_ratio = 4194304
		blocksize = -1
	}
	hurd = {
	     blocksize = 4096
	     inode_size = 128
	     warn_y2038_dates = 0
	}
`;

let confPath: string | null = null;
/** Path of the pinned mke2fs.conf (written once per process). */
export function mke2fsConfPath(): string {
  if (confPath && fs.existsSync(confPath)) return confPath;
  const dir = path.join(os.tmpdir(), 'ext4kit-test-images');
  fs.mkdirSync(dir, { recursive: true });
  const hash = crypto.createHash('sha256').update(MKE2FS_CONF).digest('hex').slice(0, 12);
  const p = path.join(dir, `mke2fs-${hash}.conf`);
  if (!fs.existsSync(p)) {
    const t = `${p}.${process.pid}.tmp`;
    fs.writeFileSync(t, MKE2FS_CONF);
    fs.renameSync(t, p);
  }
  confPath = p;
  return p;
}

/** A deterministic UUID (RFC 4122 v4 layout) derived from a seed string. */
export function deterministicUuid(seed: string): string {
  const h = crypto.createHash('sha256').update(seed).digest();
  h[6] = (h[6]! & 0x0f) | 0x40;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/** Environment for e2fsprogs tools that create things: pinned config and fake time. */
export function e2fsEnv(fakeTime: number | null = FAKE_TIME): Record<string, string | undefined> {
  return {
    MKE2FS_CONFIG: mke2fsConfPath(),
    E2FSPROGS_FAKE_TIME: fakeTime === null ? undefined : String(fakeTime),
    LANG: 'C',
    LC_ALL: 'C',
  };
}

// ---------------------------------------------------------------------------------------------
// mkfs

export type FsKind = 'ext2' | 'ext3' | 'ext4';

export interface MkfsExtra {
  /** Filesystem UUID (default: derived from kind, size and opts). Ignored if opts contain -U. */
  uuid?: string;
  /** Directory hash seed (default: derived like the UUID). Ignored if opts set hash_seed. */
  hashSeed?: string;
  /** E2FSPROGS_FAKE_TIME (default FAKE_TIME; null = real time). */
  fakeTime?: number | null;
  /** Keep an existing file instead of recreating it (default false: fresh sparse file). */
  keepFile?: boolean;
}

/**
 * Make a filesystem in the regular file `img` (created/replaced as a sparse file of `sizeBytes`).
 * Always `-q -F`, a deterministic `-U` and `-E hash_seed=` (merged with any `-E` in `opts`),
 * pinned mke2fs.conf and `E2FSPROGS_FAKE_TIME`. With `srcDir`, populates it with `-d srcDir`.
 * Returns mkfs's combined output (warnings such as the 64 KiB block size warning end up here).
 */
export function mkfs(kind: FsKind, img: string, sizeBytes: number, opts: string[] = [], srcDir?: string, extra: MkfsExtra = {}): string {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) throw new Error(`mkfs: bad size ${sizeBytes}`);
  if (!extra.keepFile) {
    fs.rmSync(img, { force: true });
    const fd = fs.openSync(img, 'w');
    try {
      fs.ftruncateSync(fd, sizeBytes);
    } finally {
      fs.closeSync(fd);
    }
  }
  const seed = `${kind}|${sizeBytes}|${opts.join(' ')}`;
  const eOpts: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < opts.length; i++) {
    const o = opts[i]!;
    if (o === '-E') {
      const v = opts[++i];
      if (v === undefined) throw new Error('mkfs: -E without a value');
      eOpts.push(v);
    } else if (o.startsWith('-E') && o.length > 2) {
      eOpts.push(o.slice(2));
    } else {
      rest.push(o);
    }
  }
  if (!eOpts.some((e) => e.split(',').some((x) => x.startsWith('hash_seed=')))) {
    eOpts.push(`hash_seed=${extra.hashSeed ?? deterministicUuid(`hash|${seed}`)}`);
  }
  const args = ['-q', '-F'];
  if (!rest.includes('-U')) args.push('-U', extra.uuid ?? deterministicUuid(`uuid|${seed}`));
  args.push('-E', eOpts.join(','), ...rest);
  if (srcDir !== undefined) args.push('-d', srcDir);
  args.push(img);
  const r = run(`mkfs.${kind}`, args, { env: e2fsEnv(extra.fakeTime === undefined ? FAKE_TIME : extra.fakeTime) });
  return (r.stdout + r.stderr).trim();
}

/**
 * An image's bytes, made by `mkfs` from a scratch source tree that `fill` populates (both removed
 * afterwards): the base image of tests that record one call on a MemoryDevice.
 */
export function mkfsBytes(kind: FsKind, sizeBytes: number, opts: string[], fill: (srcDir: string) => void): Uint8Array {
  const src = tmpPath(`mkfs-src-${kind}`);
  const img = tmpPath(`mkfs-${kind}.img`);
  fs.mkdirSync(src, { recursive: true });
  try {
    fill(src);
    mkfs(kind, img, sizeBytes, opts, src);
    return new Uint8Array(fs.readFileSync(img));
  } finally {
    fs.rmSync(src, { recursive: true, force: true });
    fs.rmSync(img, { force: true });
  }
}

/**
 * Per path: its size, its data map as the filesystem under it reports (SEEK_DATA/SEEK_HOLE: what a
 * loop mount says the kernel stored as holes) and the sha256 of the bytes in the data runs.
 */
const PY_DATA_MAPS = `
import hashlib, json, os, sys
out = {}
for p in json.load(sys.stdin):
    fd = os.open(p, os.O_RDONLY)
    size = os.fstat(fd).st_size
    runs, h, pos = [], hashlib.sha256(), 0
    while pos < size:
        try:
            a = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            break
        b = os.lseek(fd, a, os.SEEK_HOLE)
        runs.append([a, b])
        os.lseek(fd, a, os.SEEK_SET)
        left = b - a
        while left:
            d = os.read(fd, min(left, 1 << 20))
            h.update(d)
            left -= len(d)
        pos = b
    os.close(fd)
    out[p] = {'size': size, 'runs': runs, 'sha': h.hexdigest()}
print(json.dumps(out))
`;

export function hostDataMaps(files: string[]): Record<string, { size: number; runs: [number, number][]; sha: string }> {
  const r = spawnSync(fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3', ['-c', PY_DATA_MAPS], { input: JSON.stringify(files), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python3: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, { size: number; runs: [number, number][]; sha: string }>;
}

// ---------------------------------------------------------------------------------------------
// e2fsck

export interface FsckSummary {
  usedInodes: number;
  totalInodes: number;
  usedBlocks: number;
  totalBlocks: number;
  freeInodes: number;
  freeBlocks: number;
  nonContiguousPercent: number;
}

export interface FsckResult {
  /** exit code 0 and nothing but the pass headers and the summary line was printed. */
  ok: boolean;
  exitCode: number;
  /** stdout followed by stderr. */
  output: string;
  /** Every line that is not a pass header, the version banner, the summary or blank. */
  problems: string[];
  summary: FsckSummary | null;
}

const PASS_HEADERS = new Set([
  'Pass 1: Checking inodes, blocks, and sizes',
  'Pass 2: Checking directory structure',
  'Pass 3: Checking directory connectivity',
  'Pass 4: Checking reference counts',
  'Pass 5: Checking group summary information',
]);
const SUMMARY_RE = /^(.*): (\d+)\/(\d+) files \(([\d.]+)% non-contiguous\), (\d+)\/(\d+) blocks$/;
const BANNER_RE = /^e2fsck \d+\.\d+(\.\d+)? \(.*\)$/;

/** Parse the final "IMG: N/M files (x% non-contiguous), A/B blocks" line; throws if absent. */
export function freeCountsFromSummary(output: string): FsckSummary {
  const s = parseSummary(output);
  if (!s) throw new Error(`no e2fsck summary line found in output:\n${output}`);
  return s;
}

function parseSummary(output: string): FsckSummary | null {
  let found: FsckSummary | null = null;
  for (const line of output.split('\n')) {
    const m = SUMMARY_RE.exec(line.trim());
    if (!m) continue;
    const usedInodes = Number(m[2]), totalInodes = Number(m[3]);
    const usedBlocks = Number(m[5]), totalBlocks = Number(m[6]);
    found = {
      usedInodes,
      totalInodes,
      usedBlocks,
      totalBlocks,
      freeInodes: totalInodes - usedInodes,
      freeBlocks: totalBlocks - usedBlocks,
      nonContiguousPercent: Number(m[4]),
    };
  }
  return found;
}

/** The lines of e2fsck output that report something (empty = clean). */
export function e2fsckProblems(output: string): string[] {
  const problems: string[] = [];
  for (const raw of output.split('\n')) {
    const line = raw.trimEnd();
    if (line.trim() === '') continue;
    if (PASS_HEADERS.has(line)) continue;
    if (BANNER_RE.test(line)) continue;
    if (SUMMARY_RE.test(line.trim())) continue;
    problems.push(line);
  }
  return problems;
}

/**
 * `e2fsck -fn IMG`: ok only if the exit code is 0 AND nothing but the five pass headers, the
 * version banner and the summary line was printed (e2fsck -n exits 0 for e.g. "Free blocks count
 * wrong … Fix? no", which we count as a problem, as we do "Warning…", needs_recovery, padding…).
 */
export function e2fsckClean(img: string): FsckResult {
  const r = run('e2fsck', ['-fn', img], { okStatus: true, env: { LANG: 'C', LC_ALL: 'C' } });
  return fsckResult(r.status, r.stdout, r.stderr);
}

/** An `e2fsck -fn` run judged by e2fsckClean's rule (also for runs through a ToolShell: tool-shell.ts). */
export function fsckResult(status: number, stdout: string, stderr: string): FsckResult {
  const output = stdout + (stderr ? (stdout.endsWith('\n') || !stdout ? '' : '\n') + stderr : '');
  const problems = e2fsckProblems(output);
  const summary = parseSummary(output);
  const ok = status === 0 && problems.length === 0 && summary !== null;
  return { ok, exitCode: status, output, problems, summary };
}

/** Throws (with the full e2fsck output) unless `e2fsckClean(img).ok`. Returns the result. */
export function expectE2fsckClean(img: string, what = ''): FsckResult {
  const r = e2fsckClean(img);
  if (!r.ok) {
    throw new Error(
      `e2fsck -fn ${img}${what ? ` (${what})` : ''} is not clean (exit ${r.exitCode}); problems:\n` +
        `${r.problems.map((p) => `  ${p}`).join('\n')}\n--- full output ---\n${r.output}`,
    );
  }
  return r;
}

/** `e2fsck -fp -E journal_only IMG`: replays the journal in place (modifies IMG). */
/**
 * Replay the journal only, as `e2fsck -p -E journal_only` does. Not `-fp`: with -f e2fsck goes on
 * to a full preen pass and silently fixes what it finds, which would hide the very problems a
 * crash test looks for with e2fsckClean afterwards.
 */
export function e2fsckJournalOnly(img: string): { exitCode: number; output: string } {
  const r = run('e2fsck', ['-p', '-E', 'journal_only', img], { okStatus: true, env: { LANG: 'C', LC_ALL: 'C' } });
  return { exitCode: r.status, output: (r.stdout + r.stderr).trim() };
}

/** `e2fsck -fy IMG` (repairs in place); returns exit code and output. */
export function e2fsckFix(img: string, extraArgs: string[] = []): { exitCode: number; output: string } {
  const r = run('e2fsck', ['-fy', ...extraArgs, img], { okStatus: true, env: { LANG: 'C', LC_ALL: 'C' } });
  if (r.status >= 4) throw new Error(`e2fsck -fy ${extraArgs.join(' ')} ${img} failed (exit ${r.status}):\n${r.stdout}${r.stderr}`);
  return { exitCode: r.status, output: (r.stdout + r.stderr).trim() };
}

// ---------------------------------------------------------------------------------------------
// dumpe2fs

/**
 * `dumpe2fs -h IMG` as a key → value map ("Block size" → "4096", "Filesystem features" →
 * "has_journal ext_attr …", "Journal features" → …). The first occurrence of a key wins.
 */
export function dumpe2fsHeader(img: string): Record<string, string> {
  const r = run('dumpe2fs', ['-h', img], { env: { LANG: 'C', LC_ALL: 'C' } });
  const out: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1]!.trim();
    if (!(key in out)) out[key] = m[2]!.trim();
  }
  return out;
}

/** The "Filesystem features" of a dumpe2fs header as a set. */
export function featuresOf(header: Record<string, string>): Set<string> {
  return new Set((header['Filesystem features'] ?? '').split(/\s+/).filter(Boolean));
}

export interface GroupInfo {
  group: number;
  firstBlock: number;
  lastBlock: number;
  /** Group descriptor checksum (gdt_csum/metadata_csum) if printed. */
  csum: number | null;
  /** e.g. ["INODE_UNINIT", "BLOCK_UNINIT", "ITABLE_ZEROED"]. */
  flags: string[];
  /** 'primary' | 'backup' superblock location in this group, if any. */
  superblock: { kind: 'primary' | 'backup'; block: number } | null;
  /** Group descriptor block range in this group (classic layout, or the meta_bg block). */
  groupDescriptors: [number, number] | null;
  reservedGdt: [number, number] | null;
  blockBitmap: number;
  blockBitmapCsum: number | null;
  inodeBitmap: number;
  inodeBitmapCsum: number | null;
  inodeTable: [number, number];
  freeBlocks: number;
  freeInodes: number;
  directories: number;
  unusedInodes: number | null;
  freeBlockRanges: [number, number][];
  freeInodeRanges: [number, number][];
}

function parseRanges(s: string): [number, number][] {
  const out: [number, number][] = [];
  for (const part of s.split(',')) {
    const t = part.trim();
    if (!t) continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(t);
    if (!m) throw new Error(`dumpe2fs: cannot parse range "${t}"`);
    out.push([Number(m[1]), Number(m[2] ?? m[1])]);
  }
  return out;
}

/** dumpe2fs's "Free blocks:" ranges (read from the bitmaps), merged across groups, in blocks. */
export function dumpe2fsFreeExtents(img: string): { start: number; length: number }[] {
  const runs: { start: number; length: number }[] = [];
  for (const g of dumpe2fsGroups(img)) {
    for (const [a, b] of g.freeBlockRanges) {
      const last = runs[runs.length - 1];
      if (last && last.start + last.length === a) last.length += b - a + 1;
      else runs.push({ start: a, length: b - a + 1 });
    }
  }
  return runs;
}

/** The same in bytes, as `ext4kit free --json` prints them: {start, len}. */
export function dumpe2fsFreeBytes(img: string, blockSize: number): { start: number; len: number }[] {
  return dumpe2fsFreeExtents(img).map((r) => ({ start: r.start * blockSize, len: r.length * blockSize }));
}

/** Parse every "Group N:" section of `dumpe2fs IMG`. */
export function dumpe2fsGroups(img: string): GroupInfo[] {
  const r = run('dumpe2fs', [img], { env: { LANG: 'C', LC_ALL: 'C' } });
  const groups: GroupInfo[] = [];
  let g: GroupInfo | null = null;
  for (const line of r.stdout.split('\n')) {
    let m = /^Group (\d+): \(Blocks (\d+)-(\d+)\)(?: csum 0x([0-9a-f]+))?(?: \[(.*)\])?/.exec(line);
    if (m) {
      g = {
        group: Number(m[1]),
        firstBlock: Number(m[2]),
        lastBlock: Number(m[3]),
        csum: m[4] ? parseInt(m[4], 16) : null,
        flags: m[5] ? m[5].split(',').map((s) => s.trim()).filter(Boolean) : [],
        superblock: null,
        groupDescriptors: null,
        reservedGdt: null,
        blockBitmap: -1,
        blockBitmapCsum: null,
        inodeBitmap: -1,
        inodeBitmapCsum: null,
        inodeTable: [-1, -1],
        freeBlocks: -1,
        freeInodes: -1,
        directories: -1,
        unusedInodes: null,
        freeBlockRanges: [],
        freeInodeRanges: [],
      };
      groups.push(g);
      continue;
    }
    if (!g || !line.startsWith('  ')) continue;
    const t = line.trim();
    for (const piece of t.split(/,\s*(?=[A-Z])/)) {
      if ((m = /^(Primary|Backup) superblock at (\d+)/.exec(piece))) {
        g.superblock = { kind: m[1] === 'Primary' ? 'primary' : 'backup', block: Number(m[2]) };
      } else if ((m = /^Group descriptors? at (\d+)(?:-(\d+))?/.exec(piece))) {
        g.groupDescriptors = [Number(m[1]), Number(m[2] ?? m[1])];
      } else if ((m = /^Reserved GDT blocks at (\d+)-(\d+)/.exec(piece))) {
        g.reservedGdt = [Number(m[1]), Number(m[2])];
      }
    }
    if ((m = /^Block bitmap at (\d+) \([^)]*\)(?:, csum 0x([0-9a-f]+))?/.exec(t))) {
      g.blockBitmap = Number(m[1]);
      g.blockBitmapCsum = m[2] ? parseInt(m[2], 16) : null;
    } else if ((m = /^Inode bitmap at (\d+) \([^)]*\)(?:, csum 0x([0-9a-f]+))?/.exec(t))) {
      g.inodeBitmap = Number(m[1]);
      g.inodeBitmapCsum = m[2] ? parseInt(m[2], 16) : null;
    } else if ((m = /^Inode table at (\d+)-(\d+)/.exec(t))) {
      g.inodeTable = [Number(m[1]), Number(m[2])];
    } else if ((m = /^(\d+) free (?:blocks|clusters), (\d+) free inodes, (\d+) directories(?:, (\d+) unused inodes)?/.exec(t))) {
      g.freeBlocks = Number(m[1]);
      g.freeInodes = Number(m[2]);
      g.directories = Number(m[3]);
      g.unusedInodes = m[4] !== undefined ? Number(m[4]) : null;
    } else if ((m = /^Free (?:blocks|clusters): ?(.*)$/.exec(t))) {
      g.freeBlockRanges = parseRanges(m[1]!);
    } else if ((m = /^Free inodes: ?(.*)$/.exec(t))) {
      g.freeInodeRanges = parseRanges(m[1]!);
    }
  }
  if (groups.length === 0) throw new Error(`dumpe2fs ${img}: no groups parsed:\n${r.stdout.slice(0, 4000)}\n${r.stderr}`);
  return groups;
}

// ---------------------------------------------------------------------------------------------
// debugfs

export interface DebugfsOptions {
  /** Open read-write (`-w`). Default: read-only. */
  write?: boolean;
  /** Catastrophic mode (`-c`: do not read bitmaps). */
  catastrophic?: boolean;
  /** E2FSPROGS_FAKE_TIME for the session (default: real time). */
  fakeTime?: number | null;
}

export interface DebugfsResult {
  exitCode: number;
  stdout: string;
  /** stderr without the "debugfs 1.47.0 (…)" banner: per-command errors land here. */
  stderr: string;
}

/** Run a batch of debugfs commands (`-f cmdfile`) and return stdout and stderr separately. */
export function debugfsFull(img: string, cmds: string[], opts: DebugfsOptions = {}): DebugfsResult {
  const cmdfile = tmpPath('debugfs-cmds');
  fs.writeFileSync(cmdfile, cmds.join('\n') + '\n');
  try {
    const args: string[] = [];
    if (opts.write) args.push('-w');
    if (opts.catastrophic) args.push('-c');
    args.push('-f', cmdfile, img);
    const env = opts.fakeTime ? { ...e2fsEnv(opts.fakeTime) } : { LANG: 'C', LC_ALL: 'C' };
    const r = run('debugfs', args, { okStatus: true, env });
    const stderr = r.stderr
      .split('\n')
      .filter((l) => !/^debugfs \d+\.\d+(\.\d+)? \(.*\)$/.test(l))
      .join('\n')
      .trim();
    if (r.status !== 0) throw new Error(`debugfs ${args.join(' ')} failed (exit ${r.status}):\n${r.stdout}\n${stderr}`);
    return { exitCode: r.status, stdout: r.stdout, stderr };
  } finally {
    fs.rmSync(cmdfile, { force: true });
  }
}

/**
 * Run debugfs commands in one batch (read-only unless `{write: true}`) and return stdout, with
 * any stderr (minus the version banner) appended after it. Each command is echoed in stdout as
 * "debugfs: CMD" before its output, which `splitDebugfsOutput` uses to split per command.
 */
export function debugfs(img: string, cmds: string[], opts: DebugfsOptions = {}): string {
  const r = debugfsFull(img, cmds, opts);
  return r.stderr ? `${r.stdout}${r.stdout.endsWith('\n') ? '' : '\n'}${r.stderr}\n` : r.stdout;
}

/** Split `debugfs -f` stdout into the outputs of each command (echoed as "debugfs: CMD"). */
export function splitDebugfsOutput(stdout: string): { cmd: string; output: string }[] {
  const out: { cmd: string; output: string }[] = [];
  for (const line of stdout.split('\n')) {
    if (line.startsWith('debugfs: ')) out.push({ cmd: line.slice(9), output: '' });
    else if (out.length > 0) out[out.length - 1]!.output += line + '\n';
  }
  return out;
}

/** File contents read by debugfs (`dump -p PATH OUT`). Throws if debugfs cannot read it. */
export function debugfsDump(img: string, fsPath: string): Buffer {
  const out = tmpPath('debugfs-dump');
  try {
    const r = debugfsFull(img, [`dump ${quoteDebugfs(fsPath)} ${out}`]);
    if (!fs.existsSync(out)) throw new Error(`debugfs dump ${fsPath} failed:\n${r.stdout}\n${r.stderr}`);
    return fs.readFileSync(out);
  } finally {
    fs.rmSync(out, { force: true });
  }
}

/** Quote a path for a debugfs command line (debugfs understands double quotes). */
export function quoteDebugfs(p: string): string {
  if (/^[^\s"\\]+$/.test(p)) return p;
  if (p.includes('"')) throw new Error(`debugfs cannot quote a path containing '"': ${p}`);
  return `"${p}"`;
}

// ---------------------------------------------------------------------------------------------
// Root and loop mounts

export function hasRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

let loopProbe: { ok: boolean; reason: string | null } | null = null;

function probeLoop(): { ok: boolean; reason: string | null } {
  if (!hasRoot()) return { ok: false, reason: 'not running as root (loop mounts need root)' };
  if (!fs.existsSync('/dev/loop-control')) return { ok: false, reason: '/dev/loop-control does not exist' };
  for (const t of ['mount', 'umount', 'losetup']) {
    if (!which(t)) return { ok: false, reason: `${t} is not installed` };
  }
  const img = tmpPath('loop-probe.img');
  const mp = makeMountPoint();
  try {
    mkfs('ext4', img, 8 * 1024 * 1024, ['-b', '4096']);
    const r = run('mount', ['-o', 'loop', img, mp], { okStatus: true });
    if (r.status !== 0) return { ok: false, reason: `test loop mount failed: ${(r.stderr || r.stdout).trim()}` };
    const dev = mountSource(mp);
    fs.writeFileSync(path.join(mp, 'probe'), 'ok');
    cleanupMount(mp, dev, img);
    return { ok: true, reason: null };
  } catch (e) {
    return { ok: false, reason: `test loop mount failed: ${(e as Error).message.split('\n')[0]}` };
  } finally {
    try {
      fs.rmdirSync(mp);
    } catch {
      /* ignore */
    }
    fs.rmSync(img, { force: true });
  }
}

/**
 * Root, /dev/loop-control, mount/losetup present and a real loop mount worked (cached per
 * process). Under CI a failed probe throws (`oracleGate`) instead of returning false.
 */
export function canLoopMount(): boolean {
  loopProbe ??= probeLoop();
  oracleGate(loopProbe.reason);
  return loopProbe.ok;
}

/**
 * Why a test needing `need` must be skipped, or null if it can run. Use as
 * `const why = skipReason(); if (why) console.log(`skipping: ${why}`); it.skipIf(why !== null)(…)`.
 * Under CI a reason throws instead (`oracleGate`): the test file fails rather than skips.
 */
export function skipReason(need: 'root' | 'loop' = 'loop'): string | null {
  if (need === 'root') return oracleGate(hasRoot() ? null : 'not running as root');
  loopProbe ??= probeLoop();
  return oracleGate(loopProbe.reason);
}

// ---------------------------------------------------------------------------------------------
// Oracles: skip with a reason on a developer machine, fail in CI

/**
 * Whether a missing oracle (e2fsprogs, root, loop devices, kernel tools) must fail the run: `CI`
 * set to anything but "", "0" or "false" (GitHub Actions, GitLab CI and most others export
 * CI=true). In CI a skipped oracle test would be a silent pass.
 */
export function oraclesRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = (env.CI ?? '').trim().toLowerCase();
  return v !== '' && v !== '0' && v !== 'false';
}

export class MissingOracleError extends Error {
  override name = 'MissingOracleError';
}

/**
 * The one gate every oracle-dependent skip goes through: returns `why` unchanged (null or
 * undefined: available; a string: the reason to skip), except that under CI a reason throws
 * `MissingOracleError`. Gate predicates evaluated at a test file's top level thus fail the file.
 */
export function oracleGate<T extends string | null | undefined>(why: T, env: NodeJS.ProcessEnv = process.env): T {
  if (typeof why === 'string' && oraclesRequired(env)) {
    throw new MissingOracleError(`CI=${env.CI}: a test oracle is missing (failing instead of skipping): ${why}`);
  }
  return why;
}

/** The e2fsprogs programs the oracle tests run. */
export const E2FSPROGS_TOOLS = ['mkfs.ext4', 'e2fsck', 'debugfs', 'dumpe2fs'] as const;

/** Why not all of `tools` can run ("x, y not installed"), or null. Not gated: see `haveTools`. */
export function missingTools(tools: readonly string[]): string | null {
  const missing = tools.filter((t) => which(t) === null);
  return missing.length ? `${missing.join(', ')} not installed` : null;
}

/** Whether every program in `tools` is installed; under CI a missing one throws (`oracleGate`). */
export function haveTools(tools: readonly string[]): boolean {
  return oracleGate(missingTools(tools)) === null;
}

const MOUNT_ROOT = path.join(os.tmpdir(), 'ext4kit-test-mnt');

function makeMountPoint(): string {
  fs.mkdirSync(MOUNT_ROOT, { recursive: true });
  return fs.mkdtempSync(path.join(MOUNT_ROOT, `${process.pid}-`));
}

function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The source device of the filesystem mounted exactly at `mp`, or null. */
function mountSource(mp: string): string | null {
  const real = fs.realpathSync(mp);
  let src: string | null = null;
  for (const line of fs.readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f.length < 2) continue;
    if (unescapeMountField(f[1]!) === real) src = unescapeMountField(f[0]!);
  }
  return src;
}

function isMounted(mp: string): boolean {
  return mountSource(mp) !== null;
}

function loopBackingFile(dev: string): string | null {
  const r = run('losetup', ['-n', '-O', 'BACK-FILE', dev], { okStatus: true });
  if (r.status !== 0) return null;
  const s = r.stdout.trim().replace(/ \(deleted\)$/, '');
  return s || null;
}

function cleanupMount(mp: string, dev: string | null, img: string): void {
  let lastErr = '';
  for (let i = 0; i < 20 && isMounted(mp); i++) {
    const r = run('umount', [mp], { okStatus: true });
    if (r.status === 0) break;
    lastErr = (r.stderr || r.stdout).trim();
    sleepSync(100 + 50 * i);
  }
  if (isMounted(mp)) {
    run('umount', ['-l', mp], { okStatus: true });
    if (!lastErr) lastErr = 'unknown';
  }
  if (dev && dev.startsWith('/dev/loop')) {
    let realImg = img;
    try {
      realImg = fs.realpathSync(img);
    } catch {
      /* deleted */
    }
    // autoclear normally detaches on umount; detach ourselves if it is still bound to *our* file.
    for (let i = 0; i < 10; i++) {
      const back = loopBackingFile(dev);
      if (back === null || (back !== realImg && back !== img)) break;
      run('losetup', ['-d', dev], { okStatus: true });
      sleepSync(50);
    }
  }
  if (lastErr && isMounted(mp)) throw new Error(`could not unmount ${mp}: ${lastErr}`);
}

export interface LoopMountOptions {
  readOnly?: boolean;
  /** Extra mount options (joined with commas after "loop"). */
  options?: string[];
  /** Filesystem type for `mount -t` (default: let the kernel detect). */
  type?: string;
}

function mountLoop(img: string, opts: LoopMountOptions): { mp: string; dev: string | null } {
  if (!canLoopMount()) throw new Error(`withLoopMount: ${skipReason('loop')}`);
  const mp = makeMountPoint();
  const o = ['loop', ...(opts.readOnly ? ['ro'] : []), ...(opts.options ?? [])].join(',');
  try {
    run('mount', [...(opts.type ? ['-t', opts.type] : []), '-o', o, img, mp]);
  } catch (e) {
    try {
      fs.rmdirSync(mp);
    } catch {
      /* ignore */
    }
    throw e;
  }
  return { mp, dev: mountSource(mp) };
}

function unmountLoop(m: { mp: string; dev: string | null }, img: string): void {
  try {
    cleanupMount(m.mp, m.dev, img);
  } finally {
    try {
      fs.rmdirSync(m.mp);
    } catch {
      /* still busy: leave the empty dir */
    }
  }
}

/**
 * Loop-mount `img` on a fresh temporary directory, run `fn(mountPoint)`, and ALWAYS unmount and
 * detach the loop device afterwards (even when fn throws). Requires `canLoopMount()`.
 */
export async function withLoopMount<T>(img: string, fn: (mountPoint: string) => Promise<T> | T, opts: LoopMountOptions = {}): Promise<T> {
  const m = mountLoop(img, opts);
  try {
    return await fn(m.mp);
  } finally {
    unmountLoop(m, img);
  }
}

/** Synchronous twin of `withLoopMount` for synchronous callbacks. */
export function withLoopMountSync<T>(img: string, fn: (mountPoint: string) => T, opts: LoopMountOptions = {}): T {
  const m = mountLoop(img, opts);
  try {
    return fn(m.mp);
  } finally {
    unmountLoop(m, img);
  }
}

// ---------------------------------------------------------------------------------------------
// Misc

/** Copy a (sparse) image file, keeping holes. */
export function copySparse(src: string, dst: string): void {
  run('cp', ['--sparse=always', src, dst]);
}

/** sha256 of a file (hex). */
export function sha256File(p: string): string {
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(p, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

// ---------------------------------------------------------------------------------------------
// debugfs stat / ea_list parsing

export interface DebugfsStat {
  ino: number;
  /** debugfs's type word: regular, directory, symlink, "character special", "block special", FIFO, socket. */
  type: string;
  mode: number;
  flags: number;
  uid: number;
  gid: number;
  size: number;
  links: number;
  blockcount: number;
  fileAcl: number;
  /** Decoded timestamps: seconds (signed 32 bits + epoch bits from the extra field) and ns. */
  mtime: number;
  mtimeNs: number;
  atime: number;
  ctime: number;
  crtime: number | null;
  /** Raw `mtime:` field as printed ("0xHHHHHHHH" or "0xHHHHHHHH:EEEEEEEE"). */
  mtimeRaw: string;
  fastLinkDest: string | null;
  device: { major: number; minor: number } | null;
  /** Everything debugfs printed for this inode. */
  raw: string;
}

function decodeTime(raw: string): { sec: number; ns: number } {
  const m = /^0x([0-9a-f]+)(?::([0-9a-f]+))?$/.exec(raw);
  if (!m) throw new Error(`cannot parse debugfs time ${raw}`);
  const lo = Number(BigInt.asIntN(32, BigInt(`0x${m[1]}`)));
  const extra = m[2] ? parseInt(m[2], 16) : 0;
  return { sec: lo + (extra & 3) * 2 ** 32, ns: extra >>> 2 };
}

/** Parse one `stat` output of debugfs. */
export function parseDebugfsStat(raw: string): DebugfsStat {
  const need = (re: RegExp, what: string): RegExpExecArray => {
    const m = re.exec(raw);
    if (!m) throw new Error(`debugfs stat: no ${what} in:\n${raw}`);
    return m;
  };
  const head = need(/Inode: (\d+)\s+Type: (.+?)\s+Mode:\s+(\d+)\s+Flags: 0x([0-9a-f]+)/, 'Inode line');
  const who = need(/User:\s+(-?\d+)\s+Group:\s+(-?\d+)(?:\s+Project:\s+-?\d+)?\s+Size: (\d+)/, 'User line');
  const links = need(/Links: (\d+)\s+Blockcount: (\d+)/, 'Links line');
  const acl = need(/File ACL: (\d+)/, 'File ACL');
  const t = (name: string): string | null => new RegExp(`^\\s*${name}: (0x[0-9a-f]+(?::[0-9a-f]+)?) --`, 'm').exec(raw)?.[1] ?? null;
  const mRaw = t('mtime');
  if (!mRaw) throw new Error(`debugfs stat: no mtime in:\n${raw}`);
  const mt = decodeTime(mRaw);
  const fast = /Fast link dest: "([\s\S]*)"\s*$/m.exec(raw);
  const dev = /Device major\/minor number: (\d+):(\d+)/.exec(raw);
  const cr = t('crtime');
  return {
    ino: Number(head[1]),
    type: head[2]!,
    mode: parseInt(head[3]!, 8),
    flags: parseInt(head[4]!, 16),
    uid: Number(who[1]) >>> 0,
    gid: Number(who[2]) >>> 0,
    size: Number(who[3]),
    links: Number(links[1]),
    blockcount: Number(links[2]),
    fileAcl: Number(acl[1]),
    mtime: mt.sec,
    mtimeNs: mt.ns,
    atime: decodeTime(t('atime') ?? '0x0').sec,
    ctime: decodeTime(t('ctime') ?? '0x0').sec,
    crtime: cr ? decodeTime(cr).sec : null,
    mtimeRaw: mRaw,
    fastLinkDest: fast ? fast[1]! : null,
    device: dev ? { major: Number(dev[1]), minor: Number(dev[2]) } : null,
    raw,
  };
}

/** `stat` many paths in one debugfs run; a path debugfs cannot find maps to null. */
export function debugfsStats(img: string, fsPaths: string[]): Map<string, DebugfsStat | null> {
  const cmds = fsPaths.map((p) => `stat ${quoteDebugfs(p.startsWith('/') || p.startsWith('<') ? p : `/${p}`)}`);
  const r = debugfsFull(img, cmds);
  const parts = splitDebugfsOutput(r.stdout);
  const out = new Map<string, DebugfsStat | null>();
  fsPaths.forEach((p, i) => {
    const part = parts[i];
    out.set(p, part && /Inode: \d+/.test(part.output) ? parseDebugfsStat(part.output) : null);
  });
  return out;
}

/** `stat` of one path (throws if debugfs cannot find it). */
export function debugfsStat(img: string, fsPath: string): DebugfsStat {
  const s = debugfsStats(img, [fsPath]).get(fsPath);
  if (!s) throw new Error(`debugfs: cannot stat ${fsPath} in ${img}`);
  return s;
}

/** `ea_list` of many paths: name → value length, and the value when debugfs prints it. */
export function debugfsXattrs(img: string, fsPaths: string[]): Map<string, Map<string, { length: number; value: string | null }>> {
  const r = debugfsFull(img, fsPaths.map((p) => `ea_list ${quoteDebugfs(p.startsWith('/') ? p : `/${p}`)}`));
  const parts = splitDebugfsOutput(r.stdout);
  const out = new Map<string, Map<string, { length: number; value: string | null }>>();
  fsPaths.forEach((p, i) => {
    const m = new Map<string, { length: number; value: string | null }>();
    for (const line of (parts[i]?.output ?? '').split('\n')) {
      const x = /^\s+(\S+) \((\d+)\)(?: = "(.*)")?$/.exec(line);
      if (x) m.set(x[1]!, { length: Number(x[2]), value: x[3] ?? null });
    }
    out.set(p, m);
  });
  return out;
}
