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
import { spawnSync } from 'node:child_process';
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

const PY_READ_XATTRS = String.raw`
import json, os, sys, base64
out = {}
for p in json.load(sys.stdin):
    try:
        names = os.listxattr(p, follow_symlinks=False)
    except OSError:
        continue
    if names:
        out[p] = [[n, base64.b64encode(os.getxattr(p, n, follow_symlinks=False)).decode()] for n in sorted(names)]
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

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
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
    for (const n of nodeFs.readdirSync(rel ? path.join(root, rel) : root).sort(byteOrder)) {
      const r = rel ? `${rel}/${n}` : n;
      visit(r, nodeFs.lstatSync(path.join(root, r), { bigint: true }));
    }
  };
  visit('', nodeFs.lstatSync(root, { bigint: true }));
  return out;
}

/** Bytes read per chunk of a large host file. */
const READ_CHUNK = 1024 * 1024;

async function* readChunks(file: string, size: number): AsyncGenerator<Uint8Array> {
  const h = await fsp.open(file, 'r');
  try {
    for (let pos = 0; pos < size; ) {
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - pos));
      const { bytesRead } = await h.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) throw Object.assign(new Error(`${file}: shrank while being read`), { code: 'EIO' });
      pos += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await h.close();
  }
}

/** Small files are read into slices of slabs this size (one allocation per slab, not per file). */
const SLAB_BYTES = 8 * 1024 * 1024;

/**
 * Reads small host files synchronously into slab slices. A slab is never reused
 * (TreeEntry.data chunks are kept by the importer until its commit): a full one is dropped.
 */
class SlabReader {
  #slab = new Uint8Array(0);
  #off = 0;
  read(file: string, size: number): Uint8Array {
    if (this.#off + size > this.#slab.length) {
      this.#slab = new Uint8Array(Math.max(SLAB_BYTES, size));
      this.#off = 0;
    }
    const out = this.#slab.subarray(this.#off, this.#off + size);
    this.#off = (this.#off + size + 7) & ~7; // 8-byte aligned slices: word-wise zero checks
    const fd = nodeFs.openSync(file, 'r');
    try {
      for (let got = 0; got < size; ) {
        const n = nodeFs.readSync(fd, out, got, size - got, got);
        if (n === 0) throw Object.assign(new Error(`${file}: shrank while being read`), { code: 'EIO' });
        got += n;
      }
    } finally {
      nodeFs.closeSync(fd);
    }
    return out;
  }
}

/** A host directory (or a single file) as TreeEntry values; count = entries, known before the first. */
export async function readHostTree(root: string, opts: HostTreeOptions = {}): Promise<{ count: number; bytes: number; entries: AsyncGenerator<TreeEntry> }> {
  const list = listHost(root);
  let xattrs: Record<string, [string, string][]> = {};
  if (opts.xattrs !== false) {
    if (python()) xattrs = JSON.parse(runPython(PY_READ_XATTRS, list.map((e) => (e.rel ? path.join(root, e.rel) : root)))) as typeof xattrs;
    else opts.warn?.('python3 not found: extended attributes are not read');
  }
  let bytes = 0;
  for (const e of list) if (e.st.isFile()) bytes += Number(e.st.size);
  async function* gen(): AsyncGenerator<TreeEntry> {
    const links = new Map<string, string>();
    const slabs = new SlabReader();
    const single = !list[0]!.st.isDirectory();
    for (const { rel, st } of list) {
      const abs = rel ? path.join(root, rel) : root;
      const type = typeOfStat(st);
      const p = single ? path.basename(root) : rel;
      const base = { path: p, mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), atime: tsOf(st.atimeNs), mtime: tsOf(st.mtimeNs) };
      if (type !== 'dir' && st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const first = links.get(key);
        if (first !== undefined) {
          yield { ...base, type: 'hardlink', target: first };
          continue;
        }
        links.set(key, p);
      }
      const xs: TreeXattr[] = (xattrs[abs] ?? []).map(([name, v]) => ({ name, value: Buffer.from(v, 'base64') }));
      const e: TreeEntry = { ...base, type, xattrs: xs };
      if (type === 'file') {
        const size = Number(st.size);
        e.size = size;
        e.data = size <= READ_CHUNK ? slabs.read(abs, size) : readChunks(abs, size);
      } else if (type === 'symlink') e.target = nodeFs.readlinkSync(abs, { encoding: 'buffer' });
      else if (type === 'chardev' || type === 'blockdev') e.rdev = splitDev(st.rdev);
      yield e;
    }
  }
  return { count: list.length, bytes, entries: gen() };
}

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
