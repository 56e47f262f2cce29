/**
 * A long-lived `sh` that runs oracle commands (e2fsck, debugfs, …) one after another, for files
 * that run hundreds of them. Forking the test process for each costs more CPU than the tool:
 * the fork copies the page tables of a process that holds vitest, the library and worker
 * threads, and afterwards every page those threads write faults copy-on-write (the write fuzz
 * spent ~90 ms of system time per e2fsck that way). The shell is forked once, while the process
 * is still small, and forks the tools itself.
 *
 * Output is what `run` gives: stdout and stderr apart (a tool's stderr goes to a scratch file,
 * so interleaved writes never split a line) and the exit status.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { tmpPath } from './tmp.js';
import { fsckResult, type DebugfsResult, type FsckResult } from './tools.js';

export interface ShellResult {
  status: number;
  stdout: string;
  stderr: string;
}

const RS = '\x1e';
const US = '\x1f';
const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;

export class ToolShell {
  private readonly sh: ChildProcessByStdio<Writable, Readable, null>;
  private readonly waiting: { resolve: (r: ShellResult) => void; reject: (e: Error) => void }[] = [];
  private buf = '';
  private failed: Error | null = null;

  constructor(env: Record<string, string> = {}) {
    const err = tmpPath('tool-shell-stderr');
    // Each command: its stdout, then RS + status, then its stderr, then US: never in tool output.
    const script = `while IFS= read -r cmd; do eval "$cmd" 2>"$ERRF" </dev/null; s=$?; printf '\\n${RS}%d\\n' "$s"; cat "$ERRF"; printf '\\n${US}\\n'; done`;
    this.sh = spawn('sh', ['-c', script], { env: { ...process.env, ...env, ERRF: err }, stdio: ['pipe', 'pipe', 'inherit'] });
    this.sh.stdout.setEncoding('utf8');
    this.sh.stdout.on('data', (d: string) => this.take(d));
    const fail = (e: Error) => {
      this.failed = e;
      for (const w of this.waiting.splice(0)) w.reject(e);
    };
    this.sh.on('error', fail);
    this.sh.on('exit', (code) => fail(new Error(`tool shell exited (${code})`)));
  }

  private take(d: string): void {
    this.buf += d;
    for (;;) {
      const end = this.buf.indexOf(`\n${US}\n`);
      if (end < 0) return;
      const rec = this.buf.slice(0, end);
      this.buf = this.buf.slice(end + 3);
      const rs = rec.lastIndexOf(`\n${RS}`);
      const nl = rec.indexOf('\n', rs + 2);
      this.waiting.shift()?.resolve({ stdout: rec.slice(0, rs), status: Number(rec.slice(rs + 2, nl)), stderr: rec.slice(nl + 1) });
    }
  }

  /** Run `cmd args…` (no shell syntax: every word is quoted). */
  run(cmd: string, args: string[]): Promise<ShellResult> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.sh.stdin.write(`${[cmd, ...args].map(quote).join(' ')}\n`);
    });
  }

  /** Ends the shell once the queued commands are done. */
  close(): void {
    this.sh.removeAllListeners('exit');
    this.sh.stdin.end();
  }
}

// The oracle commands of tools.ts through a shell, with the same results (LANG=C for parsing).
const C_LOCALE = ['LANG=C', 'LC_ALL=C'];

/** `e2fsck -fn IMG` judged as tools.ts e2fsckClean judges it. */
export async function e2fsckCleanVia(sh: ToolShell, img: string): Promise<FsckResult> {
  const r = await sh.run('env', [...C_LOCALE, 'e2fsck', '-fn', img]);
  return fsckResult(r.status, r.stdout, r.stderr);
}

/** tools.ts e2fsckJournalOnly: `e2fsck -p -E journal_only IMG` (replays in place). */
export async function e2fsckJournalOnlyVia(sh: ToolShell, img: string): Promise<{ exitCode: number; output: string }> {
  const r = await sh.run('env', [...C_LOCALE, 'e2fsck', '-p', '-E', 'journal_only', img]);
  return { exitCode: r.status, output: (r.stdout + r.stderr).trim() };
}

/** tools.ts debugfsFull (`debugfs [-w] -f CMDFILE IMG`, real time): stderr without the banner; throws on a non-zero exit. */
export async function debugfsVia(sh: ToolShell, img: string, cmds: string[], opts: { write?: boolean } = {}): Promise<DebugfsResult> {
  const file = tmpPath('debugfs-cmds');
  writeFileSync(file, cmds.join('\n') + '\n');
  try {
    const r = await sh.run('env', [...C_LOCALE, 'debugfs', ...(opts.write ? ['-w'] : []), '-f', file, img]);
    const stderr = r.stderr.split('\n').filter((l) => !DEBUGFS_BANNER.test(l)).join('\n').trim();
    if (r.status !== 0) throw new Error(`debugfs ${opts.write ? '-w ' : ''}${img} failed (exit ${r.status}):\n${r.stdout}\n${stderr}`);
    return { exitCode: r.status, stdout: r.stdout, stderr };
  } finally {
    rmSync(file, { force: true });
  }
}
const DEBUGFS_BANNER = /^debugfs \d+\.\d+(\.\d+)? \(.*\)$/;
