/**
 * Helpers for test/safety: real e2fsprogs tools, loop mounts that are always
 * unmounted and detached, and a shortened MMP clock.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, rmdirSync, readFileSync, realpathSync, openSync, readSync, writeSync, closeSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MmpOptions } from '../../lib/ext4/mmp.js';
import { oracleGate } from '../helpers/tools.js';

export const ENV = { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH ?? ''}`, LANG: 'C', LC_ALL: 'C', E2FSPROGS_FAKE_TIME: undefined };

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
  out: string;
}

export function run(cmd: string, args: string[], input?: string): Run {
  const r = spawnSync(cmd, args, { env: ENV, input, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 120_000 });
  if (r.error) throw r.error;
  return { status: r.status ?? 128, stdout: r.stdout, stderr: r.stderr, out: r.stdout + r.stderr };
}

export function must(cmd: string, args: string[], input?: string): string {
  const r = run(cmd, args, input);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}\n${r.out}`);
  return r.out;
}

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `ext4kit-safety-${tag}-`));
}

export function removeDir(d: string): void {
  if (d) rmSync(d, { recursive: true, force: true });
}

/** mkfs.ext4 (or -t kind) -q -F on a fresh file of sizeMiB. */
export function mkfs(img: string, sizeMiB: number, opts: string[] = [], kind = 'ext4'): void {
  rmSync(img, { force: true });
  must('truncate', ['-s', `${sizeMiB}M`, img]);
  must(`mkfs.${kind}`, ['-q', '-F', ...opts, img]);
}

export interface Fsck {
  ok: boolean;
  status: number;
  out: string;
  problems: string[];
}

/** e2fsck -fn: exit 0 AND nothing printed but the pass headers, banner and summary. */
export function e2fsckClean(img: string): Fsck {
  const r = run('e2fsck', ['-fn', img]);
  const problems = r.out.split('\n').filter((l) => l.trim() && !/^Pass \d/.test(l) && !/^e2fsck \d/.test(l) && !/: \d+\/\d+ files \(/.test(l));
  return { ok: r.status === 0 && problems.length === 0, status: r.status, out: r.out, problems };
}

/** e2fsck -fy (repairs in place). */
export function e2fsckFix(img: string): Run {
  const r = run('e2fsck', ['-fy', img]);
  if (r.status >= 4) throw new Error(`e2fsck -fy ${img} exited ${r.status}\n${r.out}`);
  return r;
}

/** dumpe2fs -h as key → value. */
export function header(img: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of run('dumpe2fs', ['-h', img]).stdout.split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (m && !(m[1]! in out)) out[m[1]!] = m[2]!.trim();
  }
  return out;
}

export function freeCounts(img: string): { blocks: number; inodes: number } {
  const h = header(img);
  return { blocks: Number(h['Free blocks']), inodes: Number(h['Free inodes']) };
}

export function features(img: string): string[] {
  return (header(img)['Filesystem features'] ?? '').split(/\s+/).filter(Boolean);
}

export interface MmpDump {
  sequence: number;
  nodeName: string;
  deviceName: string;
  time: number;
  checkInterval: number;
}

/** debugfs -R dump_mmp (read-only open: debugfs does not take MMP for that). */
export function dumpMmp(img: string): MmpDump {
  const out = must('debugfs', ['-R', 'dump_mmp', img]);
  const get = (k: string) => (new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(out)?.[1] ?? '').trim();
  return {
    sequence: parseInt(get('sequence'), 16),
    nodeName: get('node_name'),
    deviceName: get('device_name'),
    time: Number(get('time').split(' ')[0]),
    checkInterval: Number(get('check_interval')),
  };
}

/** debugfs -w with a command script. */
export function debugfsW(img: string, cmds: string[]): string {
  return must('debugfs', ['-w', '-f', '-', img], cmds.join('\n') + '\n');
}

export function debugfsR(img: string, request: string): string {
  return must('debugfs', ['-R', request, img]);
}

/** Inode number of a path, via debugfs. */
export function inodeOf(img: string, path: string): number {
  const m = /^Inode:\s*(\d+)/m.exec(debugfsR(img, `stat ${path}`));
  if (!m) throw new Error(`no inode for ${path}`);
  return Number(m[1]);
}

/** Bytes [pos, pos+len) of a file. */
export function readAt(file: string, pos: number, len: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(len);
    readSync(fd, b, 0, len, pos);
    return b;
  } finally {
    closeSync(fd);
  }
}

export function writeAt(file: string, pos: number, data: Uint8Array): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, data, 0, data.length, pos);
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------- loop devices

/** Why kernel loop tests cannot run here, or undefined. */
export function loopSkipReason(): string | undefined {
  // Under CI a reason throws (oracleGate): a missing loop device or root fails the run.
  return oracleGate(probeLoopSkipReason());
}

function probeLoopSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  if (!existsSync('/dev/loop-control')) return 'no /dev/loop-control';
  for (const t of ['losetup', 'mount', 'umount', 'mkfs.ext4', 'e2fsck', 'debugfs']) if (run('sh', ['-c', `command -v ${t}`]).status !== 0) return `${t} not installed`;
  return undefined;
}

/** Every loop device backed by `img`. */
export function loopsOf(img: string): string[] {
  const r = run('losetup', ['-n', '-O', 'NAME', '-j', img]);
  return r.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
}

/** Detach every loop device still backed by `img`. */
export function detachAll(img: string): void {
  for (const dev of loopsOf(img)) run('losetup', ['-d', dev]);
}

function isMounted(mnt: string): boolean {
  let real = mnt;
  try {
    real = realpathSync(mnt);
  } catch {
    return false;
  }
  return readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === real);
}

/** Unmount (retrying while busy) — never throws. */
export function umountQuiet(mnt: string): void {
  for (let i = 0; i < 20 && isMounted(mnt); i++) {
    if (run('umount', [mnt]).status === 0) break;
    spawnSync('sleep', ['0.1']);
  }
  if (isMounted(mnt)) run('umount', ['-l', mnt]);
}

/**
 * Loop-mount `img` on a fresh directory, run fn(mountPoint, loopDevice), and
 * always unmount and detach afterwards (also when fn throws).
 */
export async function withLoopMount<T>(img: string, fn: (mnt: string, dev: string) => Promise<T> | T, options: string[] = []): Promise<T> {
  const mnt = mkdtempSync(join(tmpdir(), 'ext4kit-safety-mnt-'));
  let dev = '';
  try {
    dev = must('losetup', ['-f', '--show', img]).trim();
    must('mount', ['-t', 'ext4', ...(options.length ? ['-o', options.join(',')] : []), dev, mnt]);
    return await fn(mnt, dev);
  } finally {
    umountQuiet(mnt);
    if (dev) run('losetup', ['-d', dev]);
    detachAll(img);
    try {
      if (!isMounted(mnt)) rmdirSync(mnt);
    } catch {
      /* still busy */
    }
  }
}

/** A scratch mount point: unmounted if needed, then removed without recursing (never into a mounted fs). */
export function removeMountDir(mnt: string): void {
  umountQuiet(mnt);
  try {
    if (!isMounted(mnt)) rmdirSync(mnt);
  } catch {
    /* not empty or busy: leave it */
  }
}

/** An attached (not mounted) loop device for `img`; detached by the returned function. */
export function attachLoop(img: string): { dev: string; detach: () => void } {
  const dev = must('losetup', ['-f', '--show', img]).trim();
  return {
    dev,
    detach: () => {
      run('losetup', ['-d', dev]);
      detachAll(img);
    },
  };
}

// ---------------------------------------------------------------------------------------------- MMP clocks

/** MMP options that skip the protocol sleeps entirely (for images no other node touches). */
export const NO_WAIT: MmpOptions = { sleep: async () => undefined };

/** MMP options whose sleeps last `1/divisor` of the real protocol delay (for tests against a live kernel). */
export function scaledSleep(divisor: number, record?: number[]): MmpOptions {
  return {
    sleep: (ms: number) => {
      record?.push(ms);
      return new Promise<void>((r) => setTimeout(r, ms / divisor));
    },
  };
}

export function ensureDir(d: string): void {
  mkdirSync(d, { recursive: true });
}
