/**
 * The extended attributes of a host tree's entries, for `ext4kit import` and `cp -rp`. Node has no
 * listxattr/getxattr, so one python3 process answers for the whole tree, fed the paths as the walk
 * lists them (host-reader.ts onList): its answers keep pace with the listing, so the first entries
 * need not wait for a walk of the whole tree. `getfattr -R` would do its own walk, in readdir order,
 * and say nothing for an entry until it ends (0.2–0.3 s of system time for the 20,563-entry bench
 * tree, more than python3's whole run).
 *
 * python3 is started lean, because a fresh import waits for its first answer and pays its CPU on the
 * other core: `-I -S` (no site module, no user site, no PYTHON* variables: ~10 M instructions less)
 * and only the built-in `posix` and `sys` (json and base64 cost ~28 M instructions to import). Names
 * and values go back as hex, and a batch of paths is one listxattr each in a list comprehension
 * (callgrind, the bench tree's 20,584 paths: 147 M instructions before, 67 M).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as nodeFs from 'node:fs';
import type { TreeXattr } from '../ops/tree-entry.js';

let pythonPath: string | null | undefined;

/** The python3 to run (null: none works). */
export function python(): string | null {
  if (pythonPath !== undefined) return pythonPath;
  // The system interpreter first: a version manager's shim (pyenv) costs ~1 s per start.
  for (const p of ['/usr/bin/python3', '/usr/local/bin/python3']) if (nodeFs.existsSync(p)) return (pythonPath = p);
  const r = spawnSync('python3', ['-c', 'import os; os.listxattr'], { stdio: 'ignore' });
  return (pythonPath = r.status === 0 ? 'python3' : null);
}

/**
 * Reads NUL-terminated paths on stdin as they come and answers each with one line, in order: empty
 * when the entry has no xattrs (none followed through a symlink) or they cannot be read, else
 * `NAME=VALUE …` with both in hex, sorted by name bytes. Most entries have none: a batch is one
 * listxattr per path, and only a batch with some goes through `one`.
 */
export const PY_READ_XATTRS = String.raw`
import sys, posix
lx = posix.listxattr
gx = posix.getxattr
def one(p):
    try:
        ns = lx(p, follow_symlinks=False)
        xs = sorted((n.encode('utf-8', 'surrogateescape'), gx(p, n, follow_symlinks=False)) for n in ns)
        return b' '.join(n.hex().encode() + b'=' + v.hex().encode() for n, v in xs)
    except OSError:
        return b''
out = sys.stdout.buffer
rest = b''
while True:
    chunk = posix.read(0, 1 << 16)
    if not chunk:
        break
    parts = (rest + chunk).split(b'\0')
    rest = parts.pop()
    if not parts:
        continue
    try:
        found = [lx(p, follow_symlinks=False) for p in parts]
    except OSError:
        found = parts
    if any(found):
        out.write(b'\n'.join(one(p) if f else b'' for p, f in zip(parts, found)) + b'\n')
    else:
        out.write(b'\n' * len(parts))
    out.flush()
`;

/** One answer line (`NAME=VALUE …`, hex) as xattrs. */
function parseLine(line: string): TreeXattr[] {
  const xs: TreeXattr[] = [];
  for (const nv of line.split(' ')) {
    const eq = nv.indexOf('=');
    xs.push({ name: Buffer.from(nv.slice(0, eq), 'hex').toString('utf8'), value: Buffer.from(nv.slice(eq + 1), 'hex') });
  }
  return xs;
}

/** A started helper process whose reader may come later (host-read-start.ts: `import` starts it from launch.ts). */
export interface StartedHelper {
  readonly child: ChildProcess;
  /** From now on `l` hears the helper's 'error' and 'close' (what came already first, on a microtask). */
  listen(l: { error(e: Error): void; close(code: number | null): void }): void;
}

/**
 * Spawn the helper (PY_READ_XATTRS; `interpreter` and `script` are for tests). It and its pipes are
 * unref'd until listened to: a process that never takes it (commander's usage error) still exits,
 * and python3 ends at the end of its stdin. Its output waits in the pipe meanwhile (a stream nobody reads is
 * paused); its spawn error and its end are kept.
 */
export function startXattrHelper(interpreter = python()!, script = PY_READ_XATTRS): StartedHelper {
  const child = spawn(interpreter, ['-I', '-S', '-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  // Its pipes hold the event loop as much as the process does.
  const pipes = [child.stdin, child.stdout, child.stderr] as unknown as { ref(): void; unref(): void }[];
  child.unref();
  for (const p of pipes) p.unref();
  // A consumer that stopped early closes stdin first: python3 then ends on its own.
  child.stdin!.on('error', () => undefined);
  type Ev = { error: Error } | { close: number | null };
  const early: Ev[] = [];
  let to: { error(e: Error): void; close(code: number | null): void } | null = null;
  const hear = (ev: Ev) => {
    if (!to) early.push(ev);
    else if ('error' in ev) to.error(ev.error);
    else to.close(ev.close);
  };
  child.on('error', (e) => hear({ error: e }));
  child.on('close', (code) => hear({ close: code }));
  return {
    child,
    listen(l) {
      child.ref();
      for (const p of pipes) p.ref();
      queueMicrotask(() => {
        to = l;
        for (const ev of early.splice(0)) hear(ev);
      });
    },
  };
}

/**
 * Extended attributes of the listed entries, from one python3 process (PY_READ_XATTRS): one it
 * starts, or one started already (startXattrHelper). Answer i is entry i's. `interpreter` and
 * `script` are for tests.
 */
export class XattrReader {
  readonly #child: ReturnType<typeof spawn>;
  readonly #found = new Map<number, TreeXattr[]>();
  #answered = 0;
  /** The start of a line whose end has not come yet. */
  #partial = '';
  #error: Error | null = null;
  #done = false;
  #wakers: (() => void)[] = [];
  readonly #closed: Promise<void>;

  constructor(helper: StartedHelper | string = python()!, script = PY_READ_XATTRS) {
    const h = typeof helper === 'string' ? startXattrHelper(helper, script) : helper;
    this.#child = h.child;
    const err: Buffer[] = [];
    this.#child.stderr!.on('data', (c: Buffer) => err.push(c));
    this.#child.stdout!.on('data', (c: Buffer) => this.#lines(c));
    this.#closed = new Promise((resolve) => {
      h.listen({
        error: (e) => this.#end(e),
        close: (code) => {
          this.#end(code === 0 ? null : Object.assign(new Error(`python3 helper failed (exit ${code}): ${Buffer.concat(err).toString().trim()}`), { code: 'EIO' }));
          resolve();
        },
      });
    });
  }

  /** Most of the output is empty lines: they are counted, and only a line with text is decoded. */
  #lines(c: Buffer): void {
    let s = 0;
    for (let nl = c.indexOf(10); nl >= 0; nl = c.indexOf(10, s)) {
      const line = nl > s ? this.#partial + c.toString('latin1', s, nl) : this.#partial;
      if (line) this.#found.set(this.#answered, parseLine(line));
      this.#partial = '';
      this.#answered++;
      s = nl + 1;
    }
    if (s < c.length) this.#partial += c.toString('latin1', s);
    this.#wake();
  }

  #end(e: Error | null): void {
    this.#done = true;
    this.#error ??= e;
    this.#wake();
  }

  #wake(): void {
    const w = this.#wakers;
    this.#wakers = [];
    for (const f of w) f();
  }

  /** Paths of the next entries (in entry order), each NUL-terminated. */
  ask(paths: Uint8Array): void {
    this.#child.stdin!.write(paths);
  }

  /** No more paths. */
  finish(): void {
    this.#child.stdin!.end();
  }

  /** Entry `i`'s xattrs (null: none) if answered already, else undefined (get()). */
  now(i: number): TreeXattr[] | null | undefined {
    return this.#answered > i ? (this.#found.get(i) ?? null) : undefined;
  }

  /** Entry `i`'s xattrs (null: none). */
  async get(i: number): Promise<TreeXattr[] | null> {
    while (this.#answered <= i) {
      if (this.#error) throw this.#error;
      if (this.#done) throw Object.assign(new Error('python3 helper ended before answering every entry'), { code: 'EIO' });
      await new Promise<void>((resolve) => this.#wakers.push(resolve));
    }
    return this.#found.get(i) ?? null;
  }

  async close(): Promise<void> {
    this.#child.stdin!.end();
    await this.#closed;
  }
}
