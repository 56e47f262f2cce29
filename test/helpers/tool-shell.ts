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
import type { Readable, Writable } from 'node:stream';
import { tmpPath } from './tmp.js';

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
