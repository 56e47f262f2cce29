/**
 * The same script against two node:fs/promises: node's own on a host directory (the oracle) and a
 * Volume's on an image. A Driver runs a step and reports its outcome in one comparable shape —
 * the value (Buffers as text/hex, listings sorted, Stats as type/mode/size/nlink) or the error's
 * code, errno, syscall, path, dest and message, with the host root cut out of paths and messages.
 * `snapshot` reads a whole tree through a driver (or a plain directory, e.g. a kernel mount).
 */
import * as nodefs from 'node:fs/promises';
import { createHash } from 'node:crypto';

/** The node:fs/promises subset the scripts use, loosely typed (both sides are called the same way). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type FsApi = any;

export interface Driver {
  name: string;
  p: FsApi;
  /** The driver's path for a script path ('/a/b'). */
  abs(rel: string): string;
  /** The host root cut from error paths and messages ('' for the image). */
  root: string;
}

/**
 * node:fs/promises on the host directory `root` (which stands for the image's root); `prefix` puts
 * the script's root in a subdirectory of it. Paths in outcomes are then image paths on both sides.
 */
export function hostDriver(root: string, prefix = ''): Driver {
  return { name: 'host', p: nodefs, abs: (rel) => (rel === '/' ? root + prefix : root + prefix + rel), root };
}

/** A Volume's promises; `prefix` as for hostDriver. */
export function volumeDriver(p: FsApi, prefix = ''): Driver {
  return { name: 'image', p, abs: (rel) => (rel === '/' ? prefix || '/' : prefix + rel), root: '' };
}

export type Outcome = { ok: unknown } | { err: { code: unknown; errno: unknown; syscall: unknown; path: unknown; dest: unknown; message: string } };

function strip(root: string, p: unknown): unknown {
  if (typeof p !== 'string' || !root) return p;
  if (p === root) return '/';
  return p.startsWith(root + '/') ? p.slice(root.length) : p;
}

export function normalize(root: string, v: unknown): unknown {
  if (v === undefined || v === null) return v;
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) {
    const b = Buffer.from(v);
    return b.length > 256 ? { len: b.length, sha: createHash('sha256').update(b).digest('hex').slice(0, 16) } : { text: b.toString('latin1') };
  }
  if (typeof v === 'string') return strip(root, v);
  if (Array.isArray(v)) {
    const items = v.map((x) => normalize(root, x));
    return items.sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
  }
  if (typeof v === 'object') {
    const o = v as Record<string, unknown> & { isDirectory?: () => boolean; isFile?: () => boolean; isSymbolicLink?: () => boolean };
    if (typeof o.isDirectory === 'function' && 'name' in o && 'parentPath' in o) {
      return { dirent: o.name, parent: strip(root, o.parentPath), type: typeName(o) };
    }
    if (typeof o.isDirectory === 'function' && 'nlink' in o) {
      return { type: typeName(o), mode: Number(o.mode), size: o.isDirectory!() ? undefined : Number(o.size), nlink: Number(o.nlink), uid: Number(o.uid), gid: Number(o.gid) };
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) out[k] = normalize(root, x);
    return out;
  }
  return v;
}

function typeName(o: { isDirectory?: () => boolean; isFile?: () => boolean; isSymbolicLink?: () => boolean }): string {
  return o.isDirectory!() ? 'dir' : o.isFile!() ? 'file' : o.isSymbolicLink!() ? 'symlink' : 'other';
}

export async function outcome(d: Driver, fn: (p: FsApi, abs: (rel: string) => string) => Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: normalize(d.root, await fn(d.p, d.abs)) };
  } catch (e) {
    const x = e as { code?: unknown; errno?: unknown; syscall?: unknown; path?: unknown; dest?: unknown; message?: string };
    if (x.code === undefined) throw e;
    const message = d.root ? String(x.message).split(d.root + '/').join('/').split(`'${d.root}'`).join("'/'") : String(x.message);
    return { err: { code: x.code, errno: x.errno, syscall: x.syscall, path: strip(d.root, x.path), dest: strip(d.root, x.dest), message } };
  }
}

export interface Node {
  type: string;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size?: number;
  sha?: string;
  target?: string;
}

/** Every entry under the root by script path, read through `p` (node:fs/promises-shaped). */
export async function snapshot(p: FsApi, abs: (rel: string) => string): Promise<Record<string, Node>> {
  const out: Record<string, Node> = {};
  const walk = async (rel: string): Promise<void> => {
    const st = await p.lstat(abs(rel));
    const n: Node = { type: typeName(st), mode: Number(st.mode), nlink: Number(st.nlink), uid: Number(st.uid), gid: Number(st.gid) };
    out[rel] = n;
    if (st.isSymbolicLink()) n.target = String(await p.readlink(abs(rel)));
    else if (st.isFile()) {
      n.size = Number(st.size);
      n.sha = createHash('sha256').update(await p.readFile(abs(rel))).digest('hex').slice(0, 16);
    } else if (st.isDirectory()) {
      const names: string[] = (await p.readdir(abs(rel))).map(String).sort();
      for (const name of names) if (name !== 'lost+found' || rel !== '/') await walk(rel === '/' ? `/${name}` : `${rel}/${name}`);
    }
  };
  await walk('/');
  return out;
}
