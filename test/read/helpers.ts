/**
 * Shared helpers of the read-path tests: walk an image with ext4kit and compare what it reports
 * with an independent truth (a source-tree snapshot, or a snapshot taken through a kernel mount).
 */
import * as crypto from 'node:crypto';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { list, type ListEntry } from '../../lib/ops/inspect.js';
import type { Inode } from '../../lib/ext4/inode.js';
import { Ext4Error } from '../../lib/errors.js';
import type { Entry } from '../helpers/tree.js';

export interface ImageEntry {
  row: ListEntry;
  /** The entry's inode (read on demand: keeping 10,000 parsed inodes alive costs more GC than re-reading them). */
  inode(): Promise<Inode>;
}

/** Every entry of the image (list -R), keyed by path without the leading '/'. */
export async function walkImage(fs: Filesystem, top = '/'): Promise<Map<string, ImageEntry>> {
  const rows = await list(fs, top, { recursive: true });
  const out = new Map<string, ImageEntry>();
  for (const row of rows) out.set(row.path.slice(1), { row, inode: () => fs.readInode(row.ino) });
  return out;
}

/** sha256 of a file's bytes read through `stream` (holes and unwritten extents as zeros). */
export async function sha256Of(fs: Filesystem, inode: Inode, chunkBytes?: number): Promise<{ sha256: string; bytes: number }> {
  const h = crypto.createHash('sha256');
  let bytes = 0;
  for await (const c of fs.stream(inode, chunkBytes)) {
    h.update(c);
    bytes += c.length;
  }
  return { sha256: h.digest('hex'), bytes };
}

/** name → hex value of an inode's xattrs, without inline data's system.data. */
export async function xattrsOf(fs: Filesystem, inode: Inode): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const x of await fs.xattrs(inode)) {
    if (x.name === 'system.data') continue;
    if (x.name in out) throw new Error(`xattr ${x.name} listed twice on inode ${inode.ino}`);
    out[x.name] = Buffer.from(x.value ?? new Uint8Array(0)).toString('hex');
  }
  return out;
}

function sortedJson(o: Record<string, string>): string {
  return JSON.stringify(Object.keys(o).sort().map((k) => [k, o[k]]));
}

export interface CompareOptions {
  /** Expected mtime seconds of a truth entry (default: its mtime). */
  mtime?: (e: Entry) => number;
  /** Expected mtime nanoseconds (default: its mtimeNs); null = do not compare. */
  mtimeNs?: ((e: Entry) => number) | null;
  /** Compare directory nlink (default true). */
  dirNlink?: boolean;
  /**
   * Regular files whose image copy legitimately differs from the truth: return the expected
   * size and sha256 instead (see the inline_data deviation in matrix.test.ts), or null.
   */
  contentOverride?: (e: Entry) => { size: number; sha256: string } | null;
  /** Path prefix of the truth entries inside the image (default ''). */
  prefix?: string;
}

export interface CompareResult {
  problems: string[];
  filesHashed: number;
  bytesRead: number;
  checked: number;
}

/**
 * Compare every truth entry with the image: type, mode, uid, gid, size, mtime (s, ns), nlink,
 * hard-link groups (same inode), symlink target, device numbers, xattrs and file bytes.
 */
export async function compareWithTruth(fs: Filesystem, image: Map<string, ImageEntry>, truth: Entry[], opts: CompareOptions = {}): Promise<CompareResult> {
  const problems: string[] = [];
  const prefix = opts.prefix ?? '';
  const groupIno = new Map<string, number>();
  let filesHashed = 0;
  let bytesRead = 0;
  for (const e of truth) {
    const p = prefix + e.path;
    const x = image.get(p);
    if (!x) {
      problems.push(`${p}: missing from the image listing`);
      continue;
    }
    const { row } = x;
    const inode = await x.inode();
    const want: Record<string, unknown> = { type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, mtime: opts.mtime ? opts.mtime(e) : e.mtime };
    const got: Record<string, unknown> = { type: row.type, mode: row.mode, uid: row.uid, gid: row.gid, mtime: row.mtime };
    if (opts.mtimeNs !== null) {
      want.mtimeNs = opts.mtimeNs ? opts.mtimeNs(e) : e.mtimeNs;
      got.mtimeNs = inode.mtime.nsec;
    }
    if (e.type !== 'dir' || opts.dirNlink !== false) {
      want.nlink = e.nlink;
      got.nlink = row.nlink;
    }
    const override = e.type === 'file' && opts.contentOverride ? opts.contentOverride(e) : null;
    if (e.type !== 'dir') {
      want.size = override ? override.size : e.size;
      got.size = row.size;
    }
    if (e.type === 'symlink') {
      want.target = e.target;
      got.target = row.target;
      // readlink agrees with the listing (fast or slow symlink)
      const raw = Buffer.from(await fs.readlink(inode)).toString();
      if (raw !== e.target) problems.push(`${p}: readlink ${JSON.stringify(raw)} != ${JSON.stringify(e.target)}`);
    }
    if (e.rdev) {
      want.rdev = e.rdev;
      got.rdev = row.rdev;
    }
    if (JSON.stringify(want) !== JSON.stringify(got)) problems.push(`${p}: expected ${JSON.stringify(want)}, image has ${JSON.stringify(got)}`);
    if (e.linkGroup !== null) {
      const g = groupIno.get(e.linkGroup);
      if (g === undefined) groupIno.set(e.linkGroup, row.ino);
      else if (g !== row.ino) problems.push(`${p}: hard link of ${e.linkGroup} but inode ${row.ino} != ${g}`);
    }
    const xa = await xattrsOf(fs, inode);
    if (sortedJson(xa) !== sortedJson(e.xattrs)) problems.push(`${p}: xattrs ${sortedJson(xa).slice(0, 300)} != ${sortedJson(e.xattrs).slice(0, 300)}`);
    if (e.type === 'file') {
      const { sha256, bytes } = await sha256Of(fs, inode);
      filesHashed++;
      bytesRead += bytes;
      const wantSha = override ? override.sha256 : e.sha256;
      if (sha256 !== wantSha) problems.push(`${p}: sha256 of the bytes read differs (read ${bytes} bytes)`);
    }
  }
  return { problems, filesHashed, bytesRead, checked: truth.length };
}

/**
 * Directories list exactly the truth's names: for every truth directory (and the top), the
 * readdir names minus '.'/'..' equal the truth's children (`extra` adds names only the image has,
 * e.g. lost+found); '.' is the directory itself and '..' its parent.
 */
export async function compareDirectoryNames(fs: Filesystem, image: Map<string, ImageEntry>, truth: Entry[], top: { path: string; ino: number; parentIno: number }, extra: Record<string, string[]> = {}): Promise<string[]> {
  const problems: string[] = [];
  const children = new Map<string, string[]>();
  const dirs = [top.path, ...truth.filter((e) => e.type === 'dir').map((e) => (top.path ? `${top.path}/${e.path}` : e.path))];
  for (const d of dirs) children.set(d, [...(extra[d] ?? [])]);
  for (const e of truth) {
    const full = top.path ? `${top.path}/${e.path}` : e.path;
    const parent = full.includes('/') ? full.slice(0, full.lastIndexOf('/')) : '';
    children.get(parent)?.push(e.name);
  }
  for (const [d, names] of children) {
    const ino = d === top.path ? top.ino : image.get(d)?.row.ino;
    if (ino === undefined) {
      problems.push(`${d}: directory missing`);
      continue;
    }
    const dir = await fs.readInode(ino);
    const ents = await fs.readdirRaw(dir);
    const got = ents.map((x) => Buffer.from(x.name).toString()).filter((n) => n !== '.' && n !== '..');
    const a = [...got].sort();
    const b = [...names].sort();
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      const missing = b.filter((n) => !a.includes(n)).slice(0, 5);
      const surplus = a.filter((n) => !b.includes(n)).slice(0, 5);
      problems.push(`${d || '/'}: readdir has ${a.length} names, truth ${b.length}; missing ${JSON.stringify(missing)}, surplus ${JSON.stringify(surplus)}`);
    }
    if (new Set(got).size !== got.length) problems.push(`${d || '/'}: a name is listed twice`);
    const dot = ents.filter((x) => x.name.length === 1 && x.name[0] === 0x2e);
    const dotdot = ents.filter((x) => x.name.length === 2 && x.name[0] === 0x2e && x.name[1] === 0x2e);
    const parentPath = d === top.path ? null : d.includes('/') ? d.slice(0, d.lastIndexOf('/')) : '';
    const parentIno = parentPath === null ? top.parentIno : parentPath === top.path ? top.ino : image.get(parentPath)?.row.ino;
    if (dot.length !== 1 || dot[0]!.ino !== ino) problems.push(`${d || '/'}: '.' is ${JSON.stringify(dot.map((x) => x.ino))}, expected [${ino}]`);
    if (dotdot.length !== 1 || dotdot[0]!.ino !== parentIno) problems.push(`${d || '/'}: '..' is ${JSON.stringify(dotdot.map((x) => x.ino))}, expected [${parentIno}]`);
  }
  return problems;
}

/** Every truth path resolves (final symlink not followed) to the inode the listing shows. */
export async function resolveAll(fs: Filesystem, image: Map<string, ImageEntry>, paths: string[]): Promise<string[]> {
  const problems: string[] = [];
  for (const p of paths) {
    try {
      const ino = await fs.resolve(`/${p}`, { followLast: false });
      const want = image.get(p)?.row.ino;
      if (ino.ino !== want) problems.push(`resolve /${p}: inode ${ino.ino}, listing has ${want}`);
    } catch (err) {
      problems.push(`resolve /${p}: ${err instanceof Ext4Error ? `${err.code} ${err.message}` : String(err)}`);
    }
  }
  return problems;
}

/** What a promise rejects with (or 'ok'). */
export async function outcomeOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return e;
  }
}
