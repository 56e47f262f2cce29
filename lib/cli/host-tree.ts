/**
 * Trees on the host for `ext4kit import` / `export` / `cp -r`: a directory
 * read into TreeEntry values (lstat with nanosecond times, hard links by
 * dev:ino, names in byte order so the same directory gives the same image)
 * and written back (tar archives: tar-tree.ts).
 *
 * Node has no xattr, mknod or nanosecond-utimens calls: those go through
 * one python3 process per tree (os.listxattr/getxattr/setxattr, os.mknod,
 * os.utime(ns=…)). Without python3: a warning, xattrs are skipped, times
 * keep microseconds, device nodes are made with mknod(1).
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as nodeFs from 'node:fs';
import * as path from 'node:path';
import type { Timestamp } from '../ext4/inode.js';
import type { TreeEntry, TreeEntryType, TreeXattr } from '../ops/tree-entry.js';

export interface HostTreeOptions {
  /** Read/write xattrs (default true; needs python3). */
  xattrs?: boolean;
  /** Called with a warning (e.g. python3 missing). */
  warn?(message: string): void;
  /** The consumer calls `recycle` (importTree's `released`): file buffers are reused (default false: each is new). */
  reuse?: boolean;
}

// ---------------------------------------------------------------------------------------------- python3 helper

let pythonPath: string | null | undefined;

function python(): string | null {
  if (pythonPath !== undefined) return pythonPath;
  // The system interpreter first: a version manager's shim (pyenv) costs ~1 s per start.
  for (const p of ['/usr/bin/python3', '/usr/local/bin/python3']) if (nodeFs.existsSync(p)) return (pythonPath = p);
  const r = spawnSync('python3', ['-c', 'import os; os.listxattr'], { stdio: 'ignore' });
  return (pythonPath = r.status === 0 ? 'python3' : null);
}

function runPython(script: string, input: unknown): string {
  const py = python()!;
  const r = spawnSync(py, ['-c', script], { input: JSON.stringify(input), encoding: 'utf8', maxBuffer: 1024 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw Object.assign(new Error(`python3 helper failed (exit ${r.status}): ${r.stderr.trim()}`), { code: 'EIO' });
  return r.stdout;
}

/** Runs a python3 script with JSON on stdin without blocking: its work overlaps ours. */
function runPythonAsync(script: string, input: unknown): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(python()!, ['-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [], err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else reject(Object.assign(new Error(`python3 helper failed (exit ${code}): ${Buffer.concat(err).toString().trim()}`), { code: 'EIO' }));
    });
    child.stdin.end(JSON.stringify(input));
  });
}

// Walks the tree itself (lstat, no symlink followed), in parallel with our own listing: keys are
// the tree paths ('' the root) of the entries that have xattrs.
const PY_READ_XATTRS = String.raw`
import json, os, sys, base64, stat
root = json.load(sys.stdin)
out = {}
todo = ['']
while todo:
    rel = todo.pop()
    p = os.path.join(root, rel) if rel else root
    try:
        names = os.listxattr(p, follow_symlinks=False)
        if names:
            out[rel] = [[n, base64.b64encode(os.getxattr(p, n, follow_symlinks=False)).decode()] for n in sorted(names)]
    except OSError:
        pass
    try:
        if stat.S_ISDIR(os.lstat(p).st_mode):
            todo.extend(rel + '/' + n if rel else n for n in os.listdir(p))
    except OSError:
        pass
json.dump(out, sys.stdout)
`;

// ops: [path, kind, mode, uid, gid, atimeNs, mtimeNs, xattrs [[name, b64]], major, minor]
const PY_APPLY = String.raw`
import json, os, sys, stat, base64
for p, kind, mode, uid, gid, ans, mns, xs, major, minor in json.load(sys.stdin):
    if kind in ('fifo', 'chardev', 'blockdev', 'socket'):
        t = {'fifo': stat.S_IFIFO, 'chardev': stat.S_IFCHR, 'blockdev': stat.S_IFBLK, 'socket': stat.S_IFSOCK}[kind]
        os.mknod(p, t | (mode & 0o777), os.makedev(major, minor))
    os.lchown(p, uid, gid)
    if kind != 'symlink':
        os.chmod(p, mode)
    for n, v in xs:
        os.setxattr(p, n, base64.b64decode(v), follow_symlinks=False)
    if mns is not None:
        os.utime(p, ns=(int(ans), int(mns)), follow_symlinks=False)
`;

// ---------------------------------------------------------------------------------------------- reading a host directory

const NS = 1_000_000_000n;

function tsOf(ns: bigint): Timestamp {
  let sec = ns / NS;
  let nsec = ns - sec * NS;
  if (nsec < 0n) {
    nsec += NS;
    sec -= 1n;
  }
  return { sec: Number(sec), nsec: Number(nsec) };
}

function typeOfStat(st: nodeFs.BigIntStats): TreeEntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isBlockDevice()) return 'blockdev';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

/** Linux dev_t → major/minor (glibc's gnu_dev_major / gnu_dev_minor). */
function splitDev(dev: bigint): { major: number; minor: number } {
  return { major: Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn)), minor: Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn)) };
}

/**
 * Names in the order of their UTF-8 bytes. Without surrogates (astral characters) that is the
 * plain code-unit order of sort(); otherwise each name is encoded once, not once per comparison.
 */
function sortByBytes(names: string[]): string[] {
  if (!names.some((n) => /[\uD800-\uDFFF]/.test(n))) return names.sort();
  return names.map((n) => ({ n, b: Buffer.from(n) })).sort((x, y) => Buffer.compare(x.b, y.b)).map((x) => x.n);
}

/**
 * Every path under `root` (relative, depth-first pre-order, names in byte order), root itself as ''.
 * Synchronous on purpose: a one-shot command gains nothing from overlapping thousands of tiny
 * lstat calls, and each async one is a thread-pool round trip (seconds on a loaded machine).
 */
function listHost(root: string): { rel: string; st: nodeFs.BigIntStats }[] {
  const out: { rel: string; st: nodeFs.BigIntStats }[] = [];
  const visit = (rel: string, st: nodeFs.BigIntStats) => {
    out.push({ rel, st });
    if (!st.isDirectory()) return;
    for (const n of sortByBytes(nodeFs.readdirSync(rel ? path.join(root, rel) : root))) {
      const r = rel ? `${rel}/${n}` : n;
      visit(r, nodeFs.lstatSync(path.join(root, r), { bigint: true }));
    }
  };
  visit('', nodeFs.lstatSync(root, { bigint: true }));
  return out;
}

/** Files up to this size are read whole into a slab slice; larger ones in chunks of a slab each. */
const WHOLE_FILE_BYTES = 1024 * 1024;
/** Small files are read into slices of slabs this size (one allocation per slab, not per file). */
const SLAB_BYTES = 8 * 1024 * 1024;
/**
 * Where a file starts in a slab: files of one slab laid out block after block (4 KiB blocks, the
 * tails zero) are what the importer's blocks look like, so a run of them is written without a copy.
 */
const SLAB_ALIGN = 4096;

/**
 * Reads host files synchronously into slab slices. A slice is never handed out twice until
 * `recycle()` says every slice given so far is no longer held (importTree's `released`): then the
 * slabs are reused, which keeps a 1 GiB import from allocating 1 GiB of buffers (V8 runs a full
 * GC for every ~64 MiB of new external memory). Without `reuse` a full slab is just dropped.
 */
class SlabPool {
  readonly #reuse: boolean;
  #slab: Uint8Array = new Uint8Array(0);
  #off = 0;
  /** Slabs handed out since the last recycle (the current one included). */
  #used: Uint8Array[] = [];
  #free: Uint8Array[] = [];

  /** `reuse` false: slabs are never kept, nor reused (nobody will call recycle). */
  constructor(reuse: boolean) {
    this.#reuse = reuse;
  }

  /** A slice of `size` bytes starting on a SLAB_ALIGN boundary, zero from `size` to the next boundary. */
  take(size: number): Uint8Array {
    const span = Math.ceil(size / SLAB_ALIGN) * SLAB_ALIGN;
    if (this.#off + span > this.#slab.length) {
      this.#slab = span <= SLAB_BYTES ? (this.#free.pop() ?? new Uint8Array(SLAB_BYTES)) : new Uint8Array(span);
      if (this.#reuse) this.#used.push(this.#slab);
      this.#off = 0;
    }
    const at = this.#off;
    this.#off += span;
    // A reused slab holds old bytes: the tail of the last block must read as zeros.
    if (span > size) this.#slab.fill(0, at + size, at + span);
    return this.#slab.subarray(at, at + size);
  }

  /** Every slice handed out so far is free again, but `held`'s slab. */
  recycle(held: Uint8Array | null): void {
    const keep = held?.buffer;
    for (const s of this.#used) if (s.buffer !== keep && s.length === SLAB_BYTES) this.#free.push(s);
    this.#used = this.#used.filter((s) => s.buffer === keep);
    if (this.#slab.buffer !== keep) {
      this.#slab = new Uint8Array(0);
      this.#off = 0;
    }
  }

  /** `size` bytes of `fd` from `pos` into a new slice. */
  readInto(fd: number, file: string, size: number, pos: number): Uint8Array {
    const out = this.take(size);
    for (let got = 0; got < size; ) {
      const n = nodeFs.readSync(fd, out, got, size - got, pos + got);
      if (n === 0) throw Object.assign(new Error(`${file}: shrank while being read`), { code: 'EIO' });
      got += n;
    }
    return out;
  }

  read(file: string, size: number): Uint8Array {
    const fd = nodeFs.openSync(file, 'r');
    try {
      return this.readInto(fd, file, size, 0);
    } finally {
      nodeFs.closeSync(fd);
    }
  }

  /** A large file in slab-sized chunks, read synchronously (no thread-pool round trip per chunk). */
  async *chunks(file: string, size: number): AsyncGenerator<Uint8Array> {
    const fd = nodeFs.openSync(file, 'r');
    try {
      for (let pos = 0; pos < size; ) {
        const n = Math.min(SLAB_BYTES, size - pos);
        yield this.readInto(fd, file, n, pos);
        pos += n;
      }
    } finally {
      nodeFs.closeSync(fd);
    }
  }
}

/** A host directory (or a single file) as TreeEntry values; count = entries, known before the first. */
export async function readHostTree(root: string, opts: HostTreeOptions = {}): Promise<{ count: number; bytes: number; entries: AsyncGenerator<TreeEntry>; recycle(held: Uint8Array | null): void }> {
  let pending: Promise<string> | null = null;
  if (opts.xattrs !== false) {
    if (python()) pending = runPythonAsync(PY_READ_XATTRS, root);
    else opts.warn?.('python3 not found: extended attributes are not read');
  }
  // Our listing while python3 makes its own; a failed listing must not leave the child unawaited.
  let list: ReturnType<typeof listHost>;
  try {
    list = listHost(root);
  } catch (e) {
    await pending?.catch(() => undefined);
    throw e;
  }
  const xattrs = (pending ? JSON.parse(await pending) : {}) as Record<string, [string, string][]>;
  let bytes = 0;
  for (const e of list) if (e.st.isFile()) bytes += Number(e.st.size);
  async function* gen(): AsyncGenerator<TreeEntry> {
    const links = new Map<string, string>();
    const single = !list[0]!.st.isDirectory();
    for (const { rel, st } of list) {
      const abs = rel ? path.join(root, rel) : root;
      const type = typeOfStat(st);
      const p = single ? path.basename(root) : rel;
      // One object of one shape per entry (no spreads: 20,000 of them in a bench tree).
      const e: TreeEntry = {
        path: p, type, mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), atime: tsOf(st.atimeNs), mtime: tsOf(st.mtimeNs),
        xattrs: NO_XATTRS, size: undefined, data: undefined, target: undefined, rdev: undefined,
      };
      if (type !== 'dir' && st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const first = links.get(key);
        if (first !== undefined) {
          e.type = 'hardlink';
          e.target = first;
          yield e;
          continue;
        }
        links.set(key, p);
      }
      const xs = xattrs[rel];
      if (xs) e.xattrs = xs.map(([name, v]) => ({ name, value: Buffer.from(v, 'base64') }));
      if (type === 'file') {
        const size = Number(st.size);
        e.size = size;
        e.data = size <= WHOLE_FILE_BYTES ? slabs.read(abs, size) : slabs.chunks(abs, size);
      } else if (type === 'symlink') e.target = nodeFs.readlinkSync(abs, { encoding: 'buffer' });
      else if (type === 'chardev' || type === 'blockdev') e.rdev = splitDev(st.rdev);
      yield e;
    }
  }
  const slabs = new SlabPool(opts.reuse === true);
  return { count: list.length, bytes, entries: gen(), recycle: (held) => slabs.recycle(held) };
}

const NO_XATTRS: readonly TreeXattr[] = Object.freeze([]);

// ---------------------------------------------------------------------------------------------- writing a host directory

function nsOf(t: Timestamp | undefined): string | null {
  return t ? (BigInt(t.sec) * NS + BigInt(t.nsec)).toString() : null;
}

function isZero(b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * Write file data at its offsets, leaving all-zero 4 KiB blocks as holes
 * (cp --sparse=always), then set the length.
 */
async function writeSparse(file: string, mode: number, size: number, data: TreeEntry['data']): Promise<void> {
  const h = await fsp.open(file, nodeFs.constants.O_WRONLY | nodeFs.constants.O_CREAT | nodeFs.constants.O_EXCL, mode & 0o777);
  try {
    let pos = 0;
    const put = async (c: Uint8Array) => {
      const B = 4096;
      for (let o = 0; o < c.length; ) {
        const end = Math.min(c.length, o + B - ((pos + o) % B));
        if (!isZero(c, o, end)) await h.write(c, o, end - o, pos + o);
        o = end;
      }
      pos += c.length;
    };
    if (data instanceof Uint8Array) await put(data);
    else if (data) for await (const c of data) await put(c);
    if (pos !== size) throw Object.assign(new Error(`${file}: ${pos} bytes read, ${size} expected`), { code: 'EIO' });
    await h.truncate(size);
  } finally {
    await h.close();
  }
}

/**
 * Write a tree under `dest` (created if missing; the root entry's
 * attributes go to it). Owners are set as the entries say (as root; a
 * non-root user keeps its own where chown is refused).
 */
export async function writeHostTree(dest: string, entries: AsyncIterable<TreeEntry>, opts: HostTreeOptions & { onEntry?(e: TreeEntry): void } = {}): Promise<void> {
  await fsp.mkdir(dest, { recursive: true });
  const py = python();
  if (!py) opts.warn?.(`python3 not found: ${opts.xattrs !== false ? 'extended attributes are not written, ' : ''}times keep microseconds, device nodes use mknod(1)`);
  // [path, kind, mode, uid, gid, atimeNs, mtimeNs, xattrs, major, minor], applied after all content (directories last-first).
  const ops: [string, string, number, number, number, string | null, string | null, [string, string][], number, number][] = [];
  for await (const e of entries) {
    const p = e.path === '' ? dest : path.join(dest, ...e.path.split('/'));
    opts.onEntry?.(e);
    switch (e.type) {
      case 'dir':
        if (e.path !== '') await fsp.mkdir(p).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'EEXIST') throw err; });
        break;
      case 'file':
        await writeSparse(p, e.mode, e.size ?? 0, e.data);
        break;
      case 'symlink':
        await fsp.symlink(Buffer.from(e.target ?? ''), p);
        break;
      case 'hardlink':
        await fsp.link(path.join(dest, ...String(e.target).split('/')), p);
        continue;
      default:
        if (!py) {
          const r = e.type === 'fifo' ? spawnSync('mkfifo', [p]) : e.type === 'socket' ? null : spawnSync('mknod', [p, e.type === 'chardev' ? 'c' : 'b', String(e.rdev?.major ?? 0), String(e.rdev?.minor ?? 0)]);
          if (r === null) { opts.warn?.(`${e.path}: sockets are not created without python3`); continue; }
          if (r.status !== 0) throw Object.assign(new Error(`${e.path}: mknod failed: ${r.stderr}`), { code: 'EIO' });
        }
    }
    const xs = (e.xattrs ?? []).map((x): [string, string] => [x.name, Buffer.from(x.value).toString('base64')]);
    const kind = py ? e.type : e.type === 'fifo' || e.type === 'chardev' || e.type === 'blockdev' ? 'made' : e.type;
    ops.push([p, kind, e.mode, e.uid, e.gid, nsOf(e.atime ?? e.mtime), nsOf(e.mtime), xs, e.rdev?.major ?? 0, e.rdev?.minor ?? 0]);
  }
  // Children before their directory: setting a directory's times last keeps them.
  ops.reverse();
  if (py) {
    runPython(PY_APPLY, ops);
    return;
  }
  for (const [p, kind, mode, uid, gid, a, m] of ops) {
    await fsp.lchown(p, uid, gid).catch(() => undefined);
    if (kind !== 'symlink') await fsp.chmod(p, mode);
    if (m !== null) await fsp.lutimes(p, Number(BigInt(a!)) / 1e9, Number(BigInt(m)) / 1e9);
  }
}
