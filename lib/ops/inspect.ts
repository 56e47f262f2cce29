/**
 * Read-only views of a filesystem, shaped as plain JSON values: what the
 * `ext4kit info | ls | stat | extents | cat` commands print (the CLI only
 * formats these). Nothing here writes.
 *
 * Conventions of every view:
 * - names and paths are decoded as UTF-8; invalid byte sequences are
 *   replaced by U+FFFD (so a non-UTF-8 name cannot be told apart from one
 *   that really contains U+FFFD, and such a path may not resolve again);
 * - `path` is the full path inside the image, '/'-separated, starting at '/';
 * - `mode` is st_mode & 0o7777 (permission, setuid/setgid, sticky bits);
 * - times are seconds since the epoch, signed (before 1970 or after 2038 as
 *   stored with the extra epoch bits);
 * - `type` is one of file, dir, symlink, chardev, blockdev, fifo, socket.
 */
import { fsInfo, type FsInfo } from './fs-info.js';
import { Buffer } from 'buffer'; // Node's built-in under Node, the npm package in a browser bundle
import { le32 } from '../codec/layout.js';
import { Ext4Error } from '../errors.js';
import type { Filesystem, FileMap } from '../ext4/filesystem.js';
import { decodeName } from '../ext4/bytes.js';
import type { Extent } from '../ext4/extents.js';
import { INODE_FLAGS, type FileType, type Inode, type InodeSummary, type Timestamp } from '../ext4/inode.js';
import { readInodeBatch, type InodeBatch, type InodeBatchSource } from '../ext4/inode-store.js';
import { readEntryTable, type EntryTable, type EntryTableSource } from '../ext4/dir-reader.js';
import type { FsContext } from '../ext4/fs-context.js';
import { giveAligned, takeAligned } from '../io/aligned.js';

// ---------------------------------------------------------------- info

export { formatUuid, fsStateName, type FsInfo } from './fs-info.js';

/** The superblock summary of an open filesystem (fs-info.ts: the same from a probed superblock). */
export function info(fs: Filesystem): FsInfo {
  return fsInfo(fs.sb);
}

// ---------------------------------------------------------------- list

export interface DeviceNumber {
  major: number;
  minor: number;
}

export interface ListEntry {
  /** Full path inside the image, e.g. '/a/b'. */
  path: string;
  /** Last path component ('/' for the root itself). */
  name: string;
  ino: number;
  type: FileType;
  /** st_mode & 0o7777. */
  mode: number;
  /** i_size in bytes. */
  size: number;
  nlink: number;
  uid: number;
  gid: number;
  /** Modification time, whole seconds since the epoch (signed). */
  mtime: number;
  /** Symlink target (UTF-8 decoded), symlinks only. */
  target?: string;
  /** Device number, chardev/blockdev only. */
  rdev?: DeviceNumber;
}

export interface ListOptions {
  /** Descend into subdirectories (never through symlinks). */
  recursive?: boolean;
}

/** Compare names as unsigned bytes (the order `ls` uses in the C locale). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/**
 * Normalise a path given by a user: leading '/', no empty or '.' components,
 * no trailing '/'. '..' is kept (the directory lookup resolves it).
 */
export function normalizePath(p: string): string {
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  return '/' + parts.join('/');
}

function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

function baseName(path: string): string {
  if (path === '/') return '/';
  return path.slice(path.lastIndexOf('/') + 1);
}

function typeOf(inode: Inode, where: string): FileType {
  if (inode.type === null) throw invalidType(where, inode.ino, inode.mode);
  return inode.type;
}

function invalidType(path: string, ino: number, mode: number): Ext4Error {
  return new Ext4Error('EFSCORRUPTED', `${path}: inode ${ino} has an invalid file type (i_mode 0o${mode.toString(8)})`, { structure: `inode ${ino}` });
}

/**
 * A device number as the kernel decodes it (ext4_iget → init_special_inode):
 * the old 8:8 encoding in i_block[0] if non-zero, else the new 12:20
 * encoding in i_block[1].
 */
export function decodeRdev(inode: Inode): DeviceNumber {
  const b = inode.base.i_block;
  const old = le32.get(b, 0);
  if (old !== 0) return { major: (old >>> 8) & 0xff, minor: old & 0xff };
  const v = le32.get(b, 1);
  return { major: (v & 0xfff00) >>> 8, minor: (v & 0xff) | ((v >>> 12) & 0xfff00) };
}

async function readTarget(fs: ListSource, inode: Inode): Promise<string> {
  return decodeName(await fs.readlink(inode));
}

async function entryFor(fs: ListSource, path: string, inode: Inode): Promise<ListEntry> {
  const e = entryFields(path, inode);
  if (e.type === 'symlink') e.target = await readTarget(fs, inode);
  return e;
}

/** Everything of a row but a symlink's target (which needs a read). */
function entryFields(path: string, inode: Inode): ListEntry {
  const type = typeOf(inode, path);
  const e: ListEntry = {
    path,
    name: baseName(path),
    ino: inode.ino,
    type,
    mode: inode.mode & 0o7777,
    size: inode.size,
    nlink: inode.linksCount,
    uid: inode.uid,
    gid: inode.gid,
    mtime: inode.mtime.sec,
  };
  if (type === 'chardev' || type === 'blockdev') e.rdev = decodeRdev(inode);
  return e;
}

/**
 * Resolve a user path without following a final symlink — except when the
 * path ends in '/', which (as in POSIX) names a directory: the symlink is
 * followed and anything but a directory is ENOTDIR.
 */
async function resolveForInspect(fs: ListSource, path: string): Promise<Inode> {
  const followLast = path.length > 1 && path.endsWith('/');
  const inode = await fs.resolve(normalizePath(path), { followLast });
  if (followLast && inode.type !== 'dir') throw new Ext4Error('ENOTDIR', `${path}: not a directory`);
  return inode;
}

/**
 * The entries under `path` (without '.' and '..'), sorted by name bytes
 * within each directory; with `recursive`, subdirectories follow their own
 * entry (pre-order). If `path` is not a directory, the one entry for it.
 * Symlinks are never followed during recursion; a directory reached twice
 * (a hard-linked directory, or a cycle) is corruption (EFSCORRUPTED).
 */
export async function list(fs: ListSource, path = '/', opts: ListOptions = {}): Promise<ListEntry[]> {
  const out: ListEntry[] = [];
  for await (const rows of listBatches(fs, path, opts)) for (const r of rows) out.push(r);
  return out;
}

/** Rows per piece listBatches yields (a caller printing pieces holds one at a time). */
const LIST_ROWS = 1024;

/**
 * list() in pieces: the same rows in the same order, at most `batchRows` at a time, so a caller
 * that prints them as they come holds one piece of rows, not the whole listing (10,000 rows held
 * to the end made a listing mostly garbage-collector work). An error ends the walk where list()
 * would have thrown it; pieces before it have been yielded.
 */
export async function* listBatches(fs: ListSource, path = '/', opts: ListOptions & { batchRows?: number } = {}): AsyncGenerator<ListEntry[]> {
  const per = Math.max(1, opts.batchRows ?? LIST_ROWS);
  let rows: ListEntry[] = [];
  const sink: ListSink = {
    entry(d, i, s, extra) {
      const n = d.table.names()[i]!;
      const p = joinPath(d.path, n);
      const row: ListEntry = {
        path: p,
        name: n.indexOf('/') < 0 ? n : baseName(p),
        ino: d.table.ino[i]!,
        type: s.type!,
        mode: s.mode & 0o7777,
        size: s.size,
        nlink: s.linksCount,
        uid: s.uid,
        gid: s.gid,
        mtime: s.mtime,
      };
      if (extra?.rdev) row.rdev = extra.rdev;
      else if (extra?.target !== undefined) row.target = extra.target;
      rows.push(row);
      return rows.length >= per;
    },
    single(e) {
      rows.push(e);
      return false;
    },
  };
  for await (const _ of walkList(fs, path, opts, sink)) {
    yield rows;
    rows = [];
  }
  if (rows.length) yield rows;
}

/**
 * What a listing reads: a Filesystem, or a DiskReader (lib/ext4/disk-reader.ts: `ls`'s fast script,
 * which carries no Filesystem).
 */
export type ListSource = EntryTableSource & InodeBatchSource & Pick<FsContext, 'resolve'> & { readlink(inode: Inode): Promise<Uint8Array> };

/** A directory being listed, as a ListSink sees it: its path and its entries (on-disk order). */
export interface ListDir {
  readonly path: string;
  readonly ino: number;
  readonly table: EntryTable;
}

/** What a row needs beyond its inode's listing fields: a symlink's target, a device's number. */
export interface ListExtra {
  target?: string;
  rdev?: DeviceNumber;
}

/**
 * Where walkList hands the rows, in list()'s order, without an object per row (`ls --json`
 * writes each straight to bytes). Returning true pauses the walk: walkList yields.
 */
export interface ListSink {
  /**
   * The row of entry `i` of `d.table`: its path is d.path joined with the name, its inode's fields
   * are `s` (s.type is set; `s` is only valid during the call), `extra` for symlinks and devices.
   */
  entry(d: ListDir, i: number, s: InodeSummary, extra: ListExtra | null): boolean;
  /** The one row of a path that is not a directory. */
  single(e: ListEntry): boolean;
  /**
   * Optional: the rows of the whole directory `dir` at `path` (every entry, in list()'s order and
   * with its checks), written by the sink itself — true — or nothing at all — false, and walkList
   * hands them one by one. Only for a directory it will not have to descend from (`recursive`).
   */
  directory?(path: string, dir: Inode, recursive: boolean): Promise<boolean>;
}

/**
 * The walk behind list() and listBatches(): each row goes to `sink` (the same rows, order, checks
 * and errors as list()); the generator yields whenever the sink returns true, and runs to the end
 * otherwise. Symlinks are never followed; a directory reached twice is EFSCORRUPTED.
 */
export async function* walkList(fs: ListSource, path: string, opts: ListOptions, sink: ListSink): AsyncGenerator<void> {
  const top = await resolveForInspect(fs, path);
  const topPath = normalizePath(path);
  if (top.type !== 'dir') {
    if (sink.single(await entryFor(fs, topPath, top))) yield;
    return;
  }
  const walk: Walk = { recursive: opts.recursive === true, inodesCount: fs.sb.s_inodes_count, sink, summary: { mode: 0, type: null, uid: 0, gid: 0, size: 0, linksCount: 0, mtime: 0 }, sub: null, pause: false, j: 0 };
  const visited = new Set<number>([top.ino]);
  if (sink.directory && (await sink.directory(topPath, top, walk.recursive))) return;
  // Pre-order walk with an explicit stack of open directories (depth is bounded by the visited
  // set, never by the JS stack): emit a row, and if it is a directory, list it next. Rows are made
  // by a synchronous loop (runRows) that stops only for what waits for a read: a new batch of
  // inodes, a symlink's target, a subdirectory to open (and when the sink asks to pause).
  const stack: DirCursor[] = [await openDir(fs, topPath, top)];
  while (stack.length) {
    const d = stack[stack.length - 1]!;
    const stop = runRows(d, walk);
    if (stop === Stop.End) stack.pop();
    else if (stop === Stop.Batch) await nextInodeBatch(fs, d);
    else if (stop === Stop.Pause) yield;
    else if (stop === Stop.Symlink) {
      // The entry runRows stopped at (d.k was not advanced past it).
      const i = d.order[d.k]!;
      const extra = { target: await readTarget(fs, d.batch!.get(walk.j)) };
      d.k++;
      if (sink.entry(d, i, walk.summary, extra)) yield;
    } else {
      if (walk.pause) yield;
      const sub = walk.sub!;
      walk.sub = null;
      const p = joinPath(d.path, d.table.names()[d.order[d.k - 1]!]!);
      if (visited.has(sub.ino)) throw new Ext4Error('EFSCORRUPTED', `${p}: directory inode ${sub.ino} is reachable twice (hard-linked directory or a cycle)`, { structure: `inode ${sub.ino}` });
      visited.add(sub.ino);
      if (sink.directory && (await sink.directory(p, sub, true))) continue;
      stack.push(await openDir(fs, p, sub));
    }
  }
}

/** Why runRows stopped. */
const enum Stop {
  /** The directory is listed. */
  End,
  /** The next entry's inode is not read yet (nextInodeBatch). */
  Batch,
  /** The sink asked to pause. */
  Pause,
  /** The next entry (d.k, inode walk.j of the batch, summary in walk.summary) is a symlink: its target needs a read. */
  Symlink,
  /** The row of a subdirectory was emitted (recursive): walk.sub is its inode, to open next. */
  Descend,
}

/** What runRows carries between calls. */
interface Walk {
  recursive: boolean;
  inodesCount: number;
  sink: ListSink;
  /** The current entry's listing fields (one object for the whole walk). */
  summary: InodeSummary;
  sub: Inode | null;
  /** The sink asked to pause at the subdirectory's row (a Descend stop). */
  pause: boolean;
  /** The batch index of the entry a Symlink stop is at. */
  j: number;
}

/**
 * Emit the rows of `d` from d.k on, in one synchronous loop (one long-running loop per
 * directory: V8 optimises it early, where a loop through an async generator per entry ran
 * mostly unoptimised), until the directory ends or an entry needs a read.
 */
function runRows(d: DirCursor, w: Walk): Stop {
  const { table, order } = d;
  const { sink, summary, inodesCount } = w;
  const batch = d.batch;
  const batchEnd = batch === null ? d.k : d.batchStart + batch.length;
  while (d.k < order.length) {
    if (d.k >= batchEnd) return Stop.Batch;
    const i = order[d.k]!;
    const j = d.k - d.batchStart;
    const ino = table.ino[i]!;
    // The row's path is made only for an error message (the sink makes its own).
    if (ino < 1 || ino > inodesCount)
      throw new Ext4Error('EFSCORRUPTED', `${joinPath(d.path, table.names()[i]!)}: directory entry points at inode ${ino}, outside 1..${inodesCount}`, { structure: `directory ${d.ino}` });
    const s = batch!.summary(j, summary);
    if (s.mode === 0 && s.linksCount === 0) throw new Ext4Error('EFSCORRUPTED', `${joinPath(d.path, table.names()[i]!)}: directory entry points at unused inode ${ino}`, { structure: `directory ${d.ino}` });
    const type = s.type;
    if (type === null) throw invalidType(joinPath(d.path, table.names()[i]!), ino, s.mode);
    if (type === 'symlink') {
      w.j = j;
      return Stop.Symlink;
    }
    d.k++;
    if (type === 'chardev' || type === 'blockdev') {
      if (sink.entry(d, i, s, { rdev: decodeRdev(batch!.get(j)) })) return Stop.Pause;
    } else if (type === 'dir' && w.recursive) {
      w.sub = batch!.get(j);
      w.pause = sink.entry(d, i, s, null);
      return Stop.Descend;
    } else if (sink.entry(d, i, s, null)) return Stop.Pause;
  }
  return Stop.End;
}

/**
 * Entries whose inodes are read in one batch: bounds the table bytes held at once. A directory
 * with more reads its batches into one buffer of its own (DirCursor.scratch): 256 KiB of 256-byte
 * inodes reused, not 2.5 MB of fresh pages for 10,000 entries.
 */
const LIST_BATCH = 1024;

/** One directory being listed: its entries, their name order, the position in it, the inodes read for the current stretch of it. */
interface DirCursor {
  path: string;
  ino: number;
  table: EntryTable;
  order: number[];
  k: number;
  batch: InodeBatch | null;
  batchStart: number;
  /** Where a directory of more than one batch reads them (readInodeBatch's scratch). */
  scratch: Uint8Array | null;
}

/**
 * Open a directory for listing: its entries (without '.' and '..', readEntryTable: its blocks in a
 * few large reads), sorted by name bytes. The inodes are read in batches (the table blocks they live
 * in, in a few large reads: readInodeBatch) and checked in name order, so errors come out as with one
 * read per entry. A row needs only the listing fields of its inode (read in place, inodeSummary); a
 * whole Inode is parsed only for what needs more: subdirectories (to descend), symlinks (the target),
 * devices (the device number).
 */
async function openDir(fs: ListSource, path: string, dir: Inode): Promise<DirCursor> {
  const table = await readEntryTable(fs, dir);
  return { path, ino: dir.ino, table, order: sortedByName(table), k: 0, batch: null, batchStart: 0, scratch: null };
}

/** Read the inodes of the cursor's next LIST_BATCH entries (name order). */
async function nextInodeBatch(fs: ListSource, d: DirCursor): Promise<void> {
  d.batch = null; // drop the previous batch's table bytes before reading the next
  d.batchStart = d.k;
  const end = Math.min(d.order.length, d.k + LIST_BATCH);
  const inos = new Array<number>(end - d.k);
  for (let k = d.k; k < end; k++) inos[k - d.k] = d.table.ino[d.order[k]!]!;
  // Twice one batch's slots: room for the table blocks when the inodes are not all neighbours.
  if (d.scratch === null && d.order.length > LIST_BATCH) d.scratch = new Uint8Array(2 * LIST_BATCH * fs.sb.s_inode_size + 16 * fs.blockSize);
  d.batch = await readInodeBatch(fs, inos, d.scratch ? { scratch: d.scratch } : {});
}

/** Indexes of the table's entries in name-byte order (stable: equal names keep their on-disk order). */
function sortedByName(t: EntryTable): number[] {
  const order = new Array<number>(t.length);
  for (let i = 0; i < t.length; i++) order[i] = i;
  if (t.ascii) {
    // ASCII strings compare as their bytes do.
    const names = t.names();
    order.sort((a, b) => {
      const x = names[a]!;
      const y = names[b]!;
      return x < y ? -1 : x > y ? 1 : 0;
    });
  } else order.sort((a, b) => compareBytes(t.nameBytes(a), t.nameBytes(b)));
  return order;
}

// ---------------------------------------------------------------- stat

export interface XattrView {
  /** Full name with its namespace prefix, e.g. "user.comment", "system.data". */
  name: string;
  /** The value, base64-encoded (values are arbitrary bytes). */
  value: string;
}

export type MappingKind = FileMap['kind'];

export interface StatResult {
  path: string;
  ino: number;
  type: FileType;
  /** st_mode & 0o7777. */
  mode: number;
  size: number;
  nlink: number;
  uid: number;
  gid: number;
  /** Times with nanoseconds: {sec (signed), nsec}. crtime is null if the inode has no room for it. */
  atime: Timestamp;
  mtime: Timestamp;
  ctime: Timestamp;
  crtime: Timestamp | null;
  /** i_flags (EXT4_*_FL bits). */
  flags: number;
  generation: number;
  /** Space used, in 512-byte units (i_blocks, scaled for HUGE_FILE inodes). */
  blocks: number;
  /** How the data is mapped: extent tree, indirect blocks, inline data, or nothing (devices, fast symlinks…). */
  mapping: MappingKind;
  /** Extent-mapped files: number of leaf extents and tree depth (0 = all in the inode). */
  extents?: number;
  depth?: number;
  /** Symlinks: the target (UTF-8 decoded). */
  target?: string;
  /** Character and block devices: the device number. */
  rdev?: DeviceNumber;
  /** Extended attributes in on-disk order (in-inode first, then the xattr block). */
  xattrs: XattrView[];
}

/** Names of the set i_flags bits (EXT4_*_FL without the suffix, lowercase), lowest bit first; unknown bits as 0x…. */
export function inodeFlagNames(flags: number): string[] {
  const out: string[] = [];
  for (let bit = 0; bit < 32; bit++) {
    const m = 2 ** bit;
    if (!(flags & m)) continue;
    const name = Object.entries(INODE_FLAGS).find(([, v]) => v === m)?.[0];
    out.push(name ? name.toLowerCase() : `0x${m.toString(16)}`);
  }
  return out;
}

/** Like lstat(2) plus ext4 details; a final symlink is not followed (unless the path ends in '/'). */
export async function stat(fs: Filesystem, path: string): Promise<StatResult> {
  const inode = await resolveForInspect(fs, path);
  const p = normalizePath(path);
  const type = typeOf(inode, p);
  const map = await fs.fileMap(inode);
  const xattrs = (await fs.xattrs(inode)).map((x) => ({ name: x.name, value: Buffer.from(x.value ?? new Uint8Array(0)).toString('base64') }));
  const s: StatResult = {
    path: p,
    ino: inode.ino,
    type,
    mode: inode.mode & 0o7777,
    size: inode.size,
    nlink: inode.linksCount,
    uid: inode.uid,
    gid: inode.gid,
    atime: { ...inode.atime },
    mtime: { ...inode.mtime },
    ctime: { ...inode.ctime },
    crtime: inode.crtime ? { ...inode.crtime } : null,
    flags: inode.flags,
    generation: inode.generation,
    blocks: inode.blocks512,
    mapping: map.kind,
    ...(map.kind === 'extents' ? { extents: map.extents.length, depth: map.depth } : {}),
    ...(type === 'symlink' ? { target: await readTarget(fs, inode) } : {}),
    ...(type === 'chardev' || type === 'blockdev' ? { rdev: decodeRdev(inode) } : {}),
    xattrs,
  };
  return s;
}

// ---------------------------------------------------------------- extents

/**
 * How a file's logical blocks map to physical blocks, in logical order, in
 * filesystem blocks: the leaf extents of an extent-mapped file, or the runs
 * of contiguous blocks of a block-mapped (indirect) file. Inline-data files,
 * devices and fast symlinks map nothing (an empty list). A final symlink is
 * not followed (unless the path ends in '/').
 */
export async function extents(fs: Filesystem, path: string): Promise<Extent[]> {
  const inode = await resolveForInspect(fs, path);
  typeOf(inode, normalizePath(path));
  const map = await fs.fileMap(inode);
  return map.extents.map((e) => ({ logical: e.logical, physical: e.physical, length: e.length, unwritten: e.unwritten }));
}

// ---------------------------------------------------------------- cat

export interface FileContents {
  ino: number;
  size: number;
  /** The bytes, in order, in chunks of at most `chunkBytes` (one chunk in memory at a time). */
  chunks: AsyncGenerator<Uint8Array>;
  /**
   * Hand the bytes to `sink` in order, in chunks of at most `chunkBytes`, reading the next chunk
   * while the sink takes the current one (two buffers, reused: no allocation per chunk). A chunk
   * is only valid until the promise `sink` returned for it settles. Returns the bytes copied.
   */
  copyTo(sink: (chunk: Uint8Array) => Promise<void>): Promise<number>;
}

/**
 * Open a regular file for reading its bytes (symlinks are followed, like
 * cat). Holes and unwritten extents read as zeros. Errors about the path
 * (ENOENT, EISDIR, EINVAL for devices, fifos, sockets) are thrown here,
 * before any byte is produced.
 */
export async function cat(fs: Filesystem, path: string, chunkBytes = CAT_CHUNK): Promise<FileContents> {
  const inode = await fs.resolve(normalizePath(path), { followLast: true });
  const p = normalizePath(path);
  const type = typeOf(inode, p);
  if (type === 'dir') throw new Ext4Error('EISDIR', `${p}: is a directory`);
  if (type !== 'file') throw new Ext4Error('EINVAL', `${p}: not a regular file (${type})`);
  return { ino: inode.ino, size: inode.size, chunks: fs.stream(inode, chunkBytes), copyTo: (sink) => copyFile(fs, inode, chunkBytes, sink) };
}

/** cat's chunk: large aligned reads (1 MiB: larger buffers cost page faults, file-reader.ts DATA_READ_CHUNK). */
const CAT_CHUNK = 1 << 20;

async function copyFile(fs: Filesystem, inode: Inode, chunkBytes: number, sink: (chunk: Uint8Array) => Promise<void>): Promise<number> {
  const size = inode.size;
  if (size === 0) return 0;
  const map = await fs.fileMap(inode);
  const bs = fs.blockSize;
  const chunk = Math.max(bs, Math.floor(chunkBytes / bs) * bs);
  // page-aligned: the kernel copies into a misaligned buffer at half speed (lib/io/aligned.ts)
  const bufs = takeAligned(2, chunk);
  // The sink's promise for each buffer: a buffer is refilled only once the sink is done with it.
  const taken: (Promise<void> | null)[] = [null, null];
  let copied = 0;
  try {
    for (let pos = 0, k = 0; pos < size; pos += chunk, k ^= 1) {
      if (taken[k]) await taken[k];
      const buf = bufs[k]!;
      const n = await fs.readInto(inode, pos, buf.subarray(0, Math.min(chunk, size - pos)), map);
      const p = sink(buf.subarray(0, n));
      p.catch(() => undefined); // awaited below (or before the buffer's next use): never unhandled
      taken[k] = p;
      copied += n;
    }
  } finally {
    // On a read error, let the sink finish with what it holds before the error goes up.
    await Promise.allSettled(taken.filter((p) => p !== null));
    giveAligned(bufs);
  }
  for (const p of taken) if (p) await p;
  return copied;
}
