/**
 * Trees on the host for `ext4kit import` / `export` / `cp -r`: a directory
 * read into TreeEntry values (lstat with nanosecond times, hard links by
 * dev:ino, names in byte order so the same directory gives the same image)
 * and written back; tar archives through tar-stream (pax records carry
 * nanosecond times, large ids and xattrs: SCHILY.xattr.* as GNU tar writes
 * them, LIBARCHIVE.xattr.* (base64) for binary values).
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
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import * as tarStream from 'tar-stream';
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

// ---------------------------------------------------------------------------------------------- tar

const TAR_TYPES: Record<string, TreeEntryType> = {
  file: 'file', 'contiguous-file': 'file', directory: 'dir', symlink: 'symlink', link: 'hardlink',
  'character-device': 'chardev', 'block-device': 'blockdev', fifo: 'fifo',
};

/** A tar member name as a tree path: './a/b/' → 'a/b', './' → ''. */
function tarPath(name: string): string {
  return name.split('/').filter((s) => s !== '' && s !== '.').join('/');
}

/** pax "sec.frac" → Timestamp (exact: decimal digits, not a float). */
function paxTime(v: string | undefined): Timestamp | undefined {
  if (v === undefined || !/^-?\d+(\.\d+)?$/.test(v)) return undefined;
  const [s, f = ''] = v.split('.');
  const sec = Number(s);
  const nsec = Number((f + '000000000').slice(0, 9));
  if (v.startsWith('-') && nsec) return { sec: sec - 1, nsec: 1e9 - nsec };
  return { sec, nsec };
}

type PaxHeaders = Partial<tarStream.Header> & { name: string; pax?: Record<string, string> | null };

/**
 * The raw records of every per-file pax header ('x') of a tar stream, in
 * order. tar-stream decodes pax values as UTF-8 text, which mangles the
 * binary xattr values GNU tar stores raw in SCHILY.xattr.* records
 * (security.capability, for one): this scanner walks the same bytes on their
 * way to the extractor (512-byte headers, bodies skipped by their size) and
 * keeps those records as bytes.
 */
class PaxRecordTap extends Transform {
  readonly queue: Map<string, Uint8Array>[] = [];
  #buf = Buffer.alloc(0);
  /** Bytes of the current member's body (and padding) still to skip, or to capture for a pax header. */
  #skip = 0;
  #capture: Buffer[] | null = null;
  #captureLeft = 0;
  #nextSize: number | null = null;
  #ended = false;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#scan(chunk);
    cb(null, chunk);
  }

  #scan(chunk: Buffer): void {
    let c = chunk;
    while (c.length && !this.#ended) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, c.length);
        if (this.#capture && this.#captureLeft > 0) {
          const k = Math.min(n, this.#captureLeft);
          this.#capture.push(c.subarray(0, k));
          this.#captureLeft -= k;
          if (this.#captureLeft === 0) {
            this.queue.push(parsePaxRecords(Buffer.concat(this.#capture)));
            const size = this.queue[this.queue.length - 1]!.get('size');
            this.#nextSize = size ? Number(Buffer.from(size).toString('latin1')) : null;
            this.#capture = null;
          }
        }
        this.#skip -= n;
        c = c.subarray(n);
        continue;
      }
      const need = 512 - this.#buf.length;
      this.#buf = Buffer.concat([this.#buf, c.subarray(0, need)]);
      c = c.subarray(Math.min(need, c.length));
      if (this.#buf.length < 512) return;
      const h = this.#buf;
      this.#buf = Buffer.alloc(0);
      if (h.every((b) => b === 0)) continue; // end-of-archive blocks
      const type = String.fromCharCode(h[156]!);
      let size = tarNumber(h.subarray(124, 136));
      if (type !== 'x' && type !== 'g' && this.#nextSize !== null) {
        size = this.#nextSize;
        this.#nextSize = null;
      }
      if (['1', '2', '3', '4', '5', '6'].includes(type)) size = 0; // links, devices, dirs, fifos carry no data
      this.#skip = Math.ceil(size / 512) * 512;
      if (type === 'x') {
        this.#capture = [];
        this.#captureLeft = size;
        if (size === 0) this.queue.push(new Map());
      }
    }
  }
}

/** A tar number field: octal text, or base-256 when the high bit of the first byte is set. */
function tarNumber(f: Uint8Array): number {
  if (f[0]! & 0x80) {
    let v = f[0]! & 0x7f;
    for (let i = 1; i < f.length; i++) v = v * 256 + f[i]!;
    return v;
  }
  const s = Buffer.from(f).toString('latin1').replace(/\0.*$/, '').trim();
  return s ? parseInt(s, 8) : 0;
}

/** "%d key=value\n" records with their values as bytes. */
function parsePaxRecords(b: Buffer): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let i = 0;
  while (i < b.length) {
    const sp = b.indexOf(0x20, i);
    if (sp < 0) break;
    const len = Number(b.subarray(i, sp).toString('latin1'));
    if (!Number.isInteger(len) || len <= sp - i) break;
    const rec = b.subarray(sp + 1, i + len - 1); // without the trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq > 0) out.set(rec.subarray(0, eq).toString('utf8'), rec.subarray(eq + 1));
    i += len;
  }
  return out;
}

/** A tar archive (a stream) as TreeEntry values; each file's data must be read before the next entry. */
export async function* readTar(input: Readable): AsyncGenerator<TreeEntry> {
  const extract = tarStream.extract();
  const tap = new PaxRecordTap();
  input.on('error', (e) => tap.destroy(e));
  tap.on('error', (e) => extract.destroy(e));
  input.pipe(tap).pipe(extract as unknown as NodeJS.WritableStream);
  for await (const entry of extract) {
    const h = entry.header as PaxHeaders;
    const body = entry as unknown as AsyncIterable<Uint8Array>;
    const raw = h.pax ? (tap.queue.shift() ?? new Map<string, Uint8Array>()) : new Map<string, Uint8Array>();
    const type = h.type ? TAR_TYPES[h.type] : undefined;
    if (!type) {
      for await (const _ of body) void _; // skip (GNU volume headers and the like)
      continue;
    }
    const pax = h.pax ?? {};
    const xattrs: TreeXattr[] = [];
    for (const [k, v] of raw) {
      if (k.startsWith('LIBARCHIVE.xattr.')) xattrs.push({ name: decodeURIComponent(k.slice(17)), value: Buffer.from(Buffer.from(v).toString('latin1'), 'base64') });
    }
    for (const [k, v] of raw) {
      if (k.startsWith('SCHILY.xattr.') && !xattrs.some((x) => x.name === k.slice(13))) xattrs.push({ name: k.slice(13), value: Uint8Array.from(v) });
    }
    const mtime = paxTime(pax.mtime) ?? { sec: Math.floor((h.mtime?.getTime() ?? 0) / 1000), nsec: 0 };
    const e: TreeEntry = {
      path: tarPath(h.name),
      type,
      mode: (h.mode ?? 0o644) & 0o7777,
      uid: pax.uid !== undefined ? Number(pax.uid) : (h.uid ?? 0),
      gid: pax.gid !== undefined ? Number(pax.gid) : (h.gid ?? 0),
      mtime,
      atime: paxTime(pax.atime) ?? mtime,
      xattrs,
    };
    if (type === 'file') {
      e.size = h.size ?? 0;
      e.data = body;
    } else if (type === 'symlink') e.target = h.linkname ?? '';
    else if (type === 'hardlink') e.target = tarPath(h.linkname ?? '');
    else if (type === 'chardev' || type === 'blockdev') e.rdev = { major: h.devmajor ?? 0, minor: h.devminor ?? 0 };
    yield e;
    for await (const _ of body) void _; // whatever the consumer left
  }
}

const TAR_TYPE_OF: Partial<Record<TreeEntryType, tarStream.Header['type']>> = {
  file: 'file', dir: 'directory', symlink: 'symlink', hardlink: 'link', chardev: 'character-device', blockdev: 'block-device', fifo: 'fifo',
};

function paxTimeString(t: Timestamp): string {
  if (t.nsec === 0) return String(t.sec);
  if (t.sec < 0) {
    // -1.5 s is sec -2, nsec 500000000
    const whole = t.sec + 1;
    return `${whole === 0 ? '-0' : whole}.${String(1e9 - t.nsec).padStart(9, '0')}`;
  }
  return `${t.sec}.${String(t.nsec).padStart(9, '0')}`;
}

function isUtf8Text(b: Uint8Array): boolean {
  try {
    const s = new TextDecoder('utf-8', { fatal: true }).decode(b);
    return !/[\x00\n]/.test(s);
  } catch {
    return false;
  }
}

/** Write TreeEntry values as a pax tar archive to `out`; sockets are skipped (tar has no type for them). */
export async function writeTar(entries: AsyncIterable<TreeEntry>, out: NodeJS.WritableStream, opts: HostTreeOptions & { onEntry?(e: TreeEntry): void; end?: boolean } = {}): Promise<void> {
  const pack = tarStream.pack();
  // Our own pump (not pipe): stdout must not be ended, and a slow reader holds the packer back.
  let failed: unknown = null;
  const onError = (e: unknown) => (failed ??= e);
  out.on('error', onError);
  const pump = (async () => {
    try {
      for await (const chunk of pack as unknown as AsyncIterable<Uint8Array>) {
        if (failed) throw failed;
        if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
      }
      if (opts.end !== false) await new Promise<void>((resolve) => out.end(() => resolve()));
      if (failed) throw failed;
    } finally {
      out.removeListener('error', onError);
    }
  })();
  pump.catch(() => undefined);
  const dec = new TextDecoder();
  for await (const e of entries) {
    opts.onEntry?.(e);
    const type = TAR_TYPE_OF[e.type];
    if (!type) {
      opts.warn?.(`${e.path}: a ${e.type} cannot be stored in tar; skipped`);
      continue;
    }
    const pax: Record<string, string> = {};
    if (e.mtime) pax.mtime = paxTimeString(e.mtime);
    if (e.atime) pax.atime = paxTimeString(e.atime);
    if (e.uid > 0o777777) pax.uid = String(e.uid);
    if (e.gid > 0o777777) pax.gid = String(e.gid);
    for (const x of e.xattrs ?? []) {
      // GNU tar's record where the value survives pax's UTF-8 text, else libarchive's base64 one.
      if (isUtf8Text(x.value)) pax[`SCHILY.xattr.${x.name}`] = dec.decode(x.value);
      else pax[`LIBARCHIVE.xattr.${encodeURIComponent(x.name)}`] = Buffer.from(x.value).toString('base64');
    }
    const name = e.path === '' ? './' : e.type === 'dir' ? `${e.path}/` : e.path;
    const header: PaxHeaders = {
      name,
      type,
      mode: e.mode,
      uid: Math.min(e.uid, 0o777777),
      gid: Math.min(e.gid, 0o777777),
      mtime: new Date((e.mtime?.sec ?? 0) * 1000),
      size: e.type === 'file' ? (e.size ?? 0) : 0,
      pax,
    };
    if (e.type === 'symlink') header.linkname = typeof e.target === 'string' ? e.target : dec.decode(e.target);
    if (e.type === 'hardlink') header.linkname = String(e.target);
    if (e.rdev) {
      header.devmajor = e.rdev.major;
      header.devminor = e.rdev.minor;
    }
    if (e.type !== 'file') {
      await new Promise<void>((resolve, reject) => pack.entry(header, (err) => (err ? reject(err) : resolve())));
      continue;
    }
    await new Promise<void>((resolve, reject) => {
      const w = pack.entry(header, (err) => (err ? reject(err) : resolve()));
      void (async () => {
        try {
          const chunks = e.data instanceof Uint8Array ? [e.data] : (e.data ?? []);
          for await (const c of chunks as AsyncIterable<Uint8Array>) {
            // The reader may reuse its buffer: pack keeps a reference until it is flushed.
            if (!w.write(Buffer.from(c))) await new Promise<void>((r) => w.once('drain', () => r()));
          }
          (w as unknown as { end(): void }).end(); // streamx's typings want a chunk; none is fine
        } catch (err) {
          w.destroy(err as Error);
          reject(err);
        }
      })();
    });
  }
  pack.finalize();
  await pump;
}
