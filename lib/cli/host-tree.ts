/**
 * Trees on the host for `ext4kit import` / `export` / `cp -r`: a directory
 * read into TreeEntry values (lstat with nanosecond times, hard links by
 * dev:ino, names in byte order so the same directory gives the same image;
 * walked and read ahead on a worker thread: host-reader.ts) and written
 * back (tar archives: tar-tree.ts).
 *
 * Node has no xattr, mknod or nanosecond-utimens calls: those go through
 * one python3 process per tree (os.listxattr/getxattr/setxattr, os.mknod,
 * os.utime(ns=…); the reading one is xattr-reader.ts). Without python3: a
 * warning, xattrs are skipped, times keep microseconds, device nodes are
 * made with mknod(1).
 */
import { spawnSync } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as nodeFs from 'node:fs';
import * as path from 'node:path';
import type { Timestamp } from '../ext4/inode.js';
import type { TreeEntry, TreeXattr } from '../ops/tree-entry.js';
import { ENTRY_FIELDS, ENTRY_TYPES, HostReader, type ListedEntry } from './host-reader.js';
import { python, XattrReader } from './xattr-reader.js';
import { takeStartedRead } from './host-read-start.js';

export interface HostTreeOptions {
  /** Read/write xattrs (default true; needs python3). */
  xattrs?: boolean;
  /** Called with a warning (e.g. python3 missing). */
  warn?(message: string): void;
  /** The consumer calls `recycle` (importTree's `released`): file buffers are reused (default false: never overwritten). */
  reuse?: boolean;
  /** Read-ahead of the reader thread, in slabs (host-read-start.ts: SLAB_BYTES, default WINDOW_SLABS). */
  readAheadSlabs?: number;
}

// ---------------------------------------------------------------------------------------------- python3 helper

function runPython(script: string, input: unknown): string {
  const py = python()!;
  const r = spawnSync(py, ['-c', script], { input: JSON.stringify(input), encoding: 'utf8', maxBuffer: 1024 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw Object.assign(new Error(`python3 helper failed (exit ${r.status}): ${r.stderr.trim()}`), { code: 'EIO' });
  return r.stdout;
}

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

/**
 * A host directory (or a single file) as TreeEntry values. The walk and the file reads run ahead
 * on a worker thread (host-reader.ts), the xattr listing in python3 fed as the walk goes: the
 * first entries come before the walk is complete. `counted()` gives the number of entries once it
 * is; `close()` stops the reader (the entries' generator does so when it ends, is returned from, or
 * throws).
 */
export async function readHostTree(root: string, opts: HostTreeOptions = {}): Promise<{
  entries: AsyncGenerator<TreeEntry>; counted(): Promise<number>; recycle(held: Uint8Array | null): void; close(): Promise<void>;
}> {
  const withXattrs = opts.xattrs !== false && python() !== null;
  if (opts.xattrs !== false && !withXattrs) opts.warn?.('python3 not found: extended attributes are not read');
  // Started already (`ext4kit import`: launch.ts, host-read-start.ts), or started here: the thread
  // first, its start (~112 M instructions, Node's own) overlapping python3's fork.
  // (Its messages come on a later turn, when x is set.)
  const started = takeStartedRead(root, { reuse: opts.reuse === true, listPaths: withXattrs, windowSlabs: opts.readAheadSlabs });
  let x: XattrReader | null = null;
  const reader = new HostReader(root, {
    reuse: opts.reuse === true, windowSlabs: opts.readAheadSlabs, started: started?.thread,
    onList: withXattrs ? (paths) => x?.ask(paths) : undefined,
    onListed: withXattrs ? () => x?.finish() : undefined,
  });
  try {
    if (withXattrs) x = new XattrReader(started?.helper ?? undefined);
  } catch (e) {
    await reader.close();
    throw e;
  }
  const close = async () => {
    await reader.close();
    await x?.close();
  };
  // The root is listed (or refused: a missing root fails here, before any entry).
  let first: ListedEntry;
  try {
    first = (await reader.entry(0))!;
  } catch (e) {
    await close();
    throw e;
  }
  const F = ENTRY_FIELDS;
  const single = first.num[first.o + F.type] !== ENTRY_TYPES.indexOf('dir');
  async function* gen(): AsyncGenerator<TreeEntry> {
    try {
      for (let i = 0; ; i++) {
        // (what has come already is taken without an await: see HostReader.listed)
        let l = reader.listed(i);
        if (l === undefined) l = await reader.entry(i);
        if (!l) return;
        const { rel, num, o } = l;
        const type = ENTRY_TYPES[num[o + F.type]!]!;
        // One object of one shape per entry (no spreads: 20,000 of them in a bench tree).
        const e: TreeEntry = {
          path: single ? path.basename(root) : rel, type, mode: num[o + F.mode]!, uid: num[o + F.uid]!, gid: num[o + F.gid]!,
          atime: { sec: num[o + F.atimeSec]!, nsec: num[o + F.atimeNsec]! }, mtime: { sec: num[o + F.mtimeSec]!, nsec: num[o + F.mtimeNsec]! },
          xattrs: NO_XATTRS, size: undefined, data: undefined, target: undefined, rdev: undefined,
        };
        const linkOf = num[o + F.linkOf]!;
        if (linkOf >= 0) {
          e.type = 'hardlink';
          e.target = reader.rels[linkOf]!;
          yield e;
          continue;
        }
        let xs = x ? x.now(i) : null;
        if (xs === undefined) xs = await x!.get(i);
        if (xs) e.xattrs = xs;
        const failed = reader.errors.get(i);
        if (failed) throw failed;
        if (type === 'file') {
          const size = num[o + F.size]!;
          e.size = size;
          e.data = HostReader.isWhole(size) ? (reader.wholeNow(i) ?? (await reader.whole(i))) : reader.chunks(i);
        } else if (type === 'symlink') e.target = reader.targets.get(i);
        else if (type === 'chardev' || type === 'blockdev') e.rdev = { major: num[o + F.major]!, minor: num[o + F.minor]! };
        yield e;
      }
    } finally {
      await close();
    }
  }
  return { entries: gen(), counted: () => reader.counted(), recycle: (held) => reader.recycle(held), close };
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
