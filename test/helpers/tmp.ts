/**
 * Per-process scratch space for tests.
 *
 * Everything lives under `os.tmpdir()/ext4kit-test-work/<pid>-<random>/` and is removed when the
 * process exits. Directories left behind by processes that died are pruned on first use.
 * Mount points are NOT created here (see `tools.ts`), so a recursive delete can never descend
 * into a still-mounted filesystem.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as crypto from 'node:crypto';

export const WORK_ROOT = path.join(os.tmpdir(), 'ext4kit-test-work');

let processDir: string | null = null;
let counter = 0;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Remove the directories in `root` named `<prefix><pid>-…` whose process is gone (a worker killed before its 'exit' handler ran). */
function pruneDead(root = WORK_ROOT, prefix = ''): void {
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)-/.exec(name.slice(prefix.length));
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    try {
      fs.rmSync(path.join(root, name), { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
}

/** This process's private scratch directory (created on first use, removed at exit). */
export function workDir(): string {
  if (processDir) return processDir;
  fs.mkdirSync(WORK_ROOT, { recursive: true });
  pruneDead();
  const dir = path.join(WORK_ROOT, `${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  fs.mkdirSync(dir);
  processDir = dir;
  process.on('exit', () => {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  });
  return dir;
}

/** A fresh, unique path (not created) inside the scratch directory; `name` is a readable hint. */
export function tmpPath(name = 'tmp'): string {
  const safe = name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80);
  return path.join(workDir(), `${++counter}-${safe}`);
}

/** A fresh, empty directory inside the scratch directory. */
export function tmpDir(name = 'dir'): string {
  const p = tmpPath(name);
  fs.mkdirSync(p);
  return p;
}

let shmRoot: string | null | undefined;

/** This process's directory on tmpfs (/dev/shm), made on first use and removed at exit; null when there is none. */
export function shmDir(): string | null {
  if (shmRoot === undefined) {
    shmRoot = null;
    try {
      if (fs.statSync('/dev/shm').isDirectory()) {
        // tmpfs is memory: what dead workers left behind is removed here, as workDir does on disk.
        pruneDead('/dev/shm', 'ext4kit-test-');
        const d = fs.mkdtempSync(`/dev/shm/ext4kit-test-${process.pid}-`);
        shmRoot = d;
        process.on('exit', () => fs.rmSync(d, { recursive: true, force: true }));
      }
    } catch {
      shmRoot = null;
    }
  }
  return shmRoot;
}

/**
 * A fresh, empty directory on tmpfs (/dev/shm) when there is one — a test that copies and
 * compares whole images gains nothing from disk I/O and fsync — else `tmpDir(name)`. Removed at
 * exit; tmpfs is memory, so remove what a case made once it is done.
 */
export function memDir(name = 'dir'): string {
  const root = shmDir();
  if (!root) return tmpDir(name);
  const p = path.join(root, `${++counter}-${name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80)}`);
  fs.mkdirSync(p);
  return p;
}

/** Synchronous sleep (used while waiting on locks held by other workers). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
