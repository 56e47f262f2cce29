/**
 * The thread side of host-reader.ts: walks a host directory (names in byte order) and then reads
 * its regular files, in that order, into the slabs the main thread grants, so the source's
 * open/read/close syscalls run on another core while the main thread fills the image.
 *
 * A name its directory says is a regular file is not lstat'ed by the walk: it is listed PENDING,
 * and the read opens it (O_NOFOLLOW | O_NONBLOCK: it may have changed since) and fstats the open
 * file, its fields going out with its bytes. Each lstat and open by path walked the whole path:
 * per file that was a path lookup less (micro-benchmark, the bench tree's 20,100 files:
 * lstat+open+close 124–160 ms of CPU, open+fstat+close 98–136 ms). Other names are lstat'ed.
 *
 * It is a source text run with `new Worker(text, {eval: true})`, not a module file: the same text
 * runs from the TypeScript sources (tsx, vitest), from the bundle (it is inside the import
 * command's chunk; scripts/bundle-cli.mjs needs no extra entry) and from an npm-packed install.
 * It is plain CommonJS (the worker is started with `execArgv: []`, so no loader or module flag of
 * the parent applies) and uses Node's built-ins only.
 *
 * Messages, worker → main:
 *   {t: 'list', from, rels, num, targets, errors, paths}  entries from..from+rels.length-1
 *                                            (ENTRY_FIELDS), in batches, each before any byte of
 *                                            its files; paths: see listPaths;
 *   {t: 'listed', count}                     the walk is complete;
 *   {t: 'd', id, items, sealed, stats}       file bytes placed in slab `id`: items = [entry, offset,
 *                                            length, last] × n; sealed: nothing more goes in it;
 *                                            stats = [entry, ENTRY_FIELDS] × m: the fields of
 *                                            PENDING entries, before any byte of theirs (or null);
 *   {t: 's', stats}                          the same, with no slab at hand;
 *   {t: 'e', index, error}                   reading entry `index` failed (in stream order);
 *   {t: 'end'}                               every file was read;
 *   {t: 'fatal', error}                      the walk failed (nothing else follows).
 * main → worker: {t: 'grant', id, sab?, zeros?} (a slab to fill: a SharedArrayBuffer and its zero
 * map, sent with its first grant only; the first window of them comes in workerData.slabs), {t: 'stop'}.
 *
 * Zero map: zeros[k] = 1 iff the slab's bytes [k × align, (k + 1) × align) are all zeros, written
 * for a piece's units before its 'd' message goes out (lib/ops/tree-entry.ts ZeroUnits): the
 * worker has those bytes in its cache just after the read, so the importer's hole test does not
 * pay the first touch of every block on the main thread.
 */

/** Numeric fields per entry in the list's `num` column (Float64Array, this many per entry). */
export const ENTRY_FIELDS = {
  type: 0, mode: 1, uid: 2, gid: 3, atimeSec: 4, atimeNsec: 5, mtimeSec: 6, mtimeNsec: 7,
  /** Regular files: st_size; else 0. */
  size: 8,
  /** Index of the earlier entry this one is a hard link of, or -1. */
  linkOf: 9,
  major: 10, minor: 11,
} as const;
export const ENTRY_STRIDE = 12;

/** Entry types in the `type` field, in this order. */
export const ENTRY_TYPES = ['file', 'dir', 'symlink', 'chardev', 'blockdev', 'fifo', 'socket'] as const;
/** The `type` of a listed regular file whose fields come with its bytes ('d' or 's' stats). */
export const PENDING = -1;

/** A Node error's identifying fields, as the worker sends them. */
export interface WorkerError {
  message: string;
  code?: string;
  errno?: number;
  syscall?: string;
  path?: string;
}

export interface WorkerConfig {
  root: string;
  slabBytes: number;
  /** Files up to this size are read whole into one slab; larger ones in slab-sized chunks. */
  wholeFileBytes: number;
  /** Where a file starts in a slab (tails zeroed up to it). */
  align: number;
  /** A 'd' message goes out after this many files or bytes (so the consumer never waits long). */
  postFiles: number;
  postBytes: number;
  /** Each listing batch carries its absolute paths, NUL-terminated (for the xattr reader). */
  listPaths: boolean;
  /** Slabs come back after they are sealed (reuse): the worker keeps their views. */
  keepSlabs: boolean;
  /** The first slabs to fill (granted before the worker starts, so it reads from its first batch on), with their zero maps (slabBytes / align bytes). */
  slabs: { id: number; sab: SharedArrayBuffer; zeros: SharedArrayBuffer }[];
}

export const HOST_READER_WORKER = String.raw`
'use strict';
(function main() {
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const { root, slabBytes, wholeFileBytes, align, postFiles, postBytes, keepSlabs, listPaths } = workerData;
const F = ${JSON.stringify(ENTRY_FIELDS)};
const STRIDE = ${ENTRY_STRIDE};
const PENDING = ${PENDING};
// A listed file is opened without following a symlink and without waiting for a writer (a FIFO):
// its directory entry may have been replaced since the readdir.
const OPEN_LISTED = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;
const NS = 1000000000n;
/** lstat's options: nanosecond times (one object for every call). */
const BIG = { bigint: true };
/** readdir's options: the entries' types (d_type) with their names. */
const DIRENTS = { withFileTypes: true };
/**
 * Entries per listing message: the first one small, then doubling up to WALK_BATCH. The main thread
 * waits for the first entry (a fresh import of the bench tree: it asked ~40 ms before a first
 * batch of 1,024 came), and a message per few entries later on would cost both threads.
 */
const FIRST_BATCH = 32, WALK_BATCH = 1024;
/** Files listed ahead of the reads at least: FIRST_BATCH more than the files read so far, up to LIST_AHEAD (the first bytes go out early too). */
const LIST_AHEAD = 512;

function errorInfo(e) {
  return { message: String(e && e.message || e), code: e && e.code, errno: e && e.errno, syscall: e && e.syscall, path: e && e.path };
}

// A directory's entries (Dirents) in the order of their names' UTF-8 bytes (UTF-16 order when no name has a surrogate pair).
function sortByBytes(ds) {
  if (!ds.some((d) => /[\uD800-\uDFFF]/.test(d.name))) return ds.sort((x, y) => (x.name < y.name ? -1 : 1));
  return ds.map((d) => ({ d, b: Buffer.from(d.name) })).sort((x, y) => Buffer.compare(x.b, y.b)).map((x) => x.d);
}

// A directory being listed: its names in byte order, and which of them it says are regular files.
function openDir(rel) {
  const ds = sortByBytes(fs.readdirSync(abs(rel), DIRENTS));
  const names = new Array(ds.length), regular = new Uint8Array(ds.length);
  for (let k = 0; k < ds.length; k++) {
    names[k] = ds[k].name;
    regular[k] = ds[k].isFile() ? 1 : 0;
  }
  return { rel, names, regular, pos: 0 };
}

function typeOf(st) {
  if (st.isFile()) return 0;
  if (st.isDirectory()) return 1;
  if (st.isSymbolicLink()) return 2;
  if (st.isCharacterDevice()) return 3;
  if (st.isBlockDevice()) return 4;
  if (st.isFIFO()) return 5;
  return 6;
}

function setTime(num, o, ns) {
  let sec = ns / NS, nsec = ns % NS;
  if (nsec < 0n) { nsec += NS; sec -= 1n; }
  num[o] = Number(sec);
  num[o + 1] = Number(nsec);
}

// Paths by concatenation (tree paths are plain names joined by '/'): path.join per entry is a cost.
const base = path.join(root, '/');
const abs = (rel) => (rel ? base + rel : root);

// ------------------------------------------------------------------ the walk, in batches
// Pre-order, names in byte order. Each batch is posted as it is made; the reads below take the
// files of the batches listed so far, and the walk runs on whenever they wait for a slab.
// (Cold paths: a batch's message, the walk's end or failure, a large file, are functions of
// their own: V8 drops a hot function's optimised code the first time it meets a path it has no
// feedback for, and walkBatch and pump each did once per import: --trace-deopt.)
let listed = 0;
let batchSize = FIRST_BATCH;
const dirs = []; // openDir(): the directories being listed, innermost last
const links = new Map();
const files = []; // { i, size, file, fd }: listed regular files, read in this order (size -1: PENDING; fd: opened, not yet read)
let walkDone = false, failed = false;

function walkBatch() {
  const n = batchSize;
  batchSize = Math.min(WALK_BATCH, n * 2);
  const from = listed, rels = [], num = new Float64Array(n * STRIDE), targets = [], errors = [];
  let fatal = null;
  try {
    if (listed === 0) listOne('', fs.lstatSync(root, BIG), rels, num, targets, errors);
    while (rels.length < n) {
      const d = dirs[dirs.length - 1];
      if (d === undefined) { walkDone = true; break; }
      if (d.pos === d.names.length) { dirs.pop(); continue; }
      const k = d.pos++, rel = d.rel ? d.rel + '/' + d.names[k] : d.names[k];
      if (d.regular[k] === 1) listPending(rel, rels, num);
      else listOne(rel, fs.lstatSync(base + rel, BIG), rels, num, targets, errors);
    }
  } catch (e) {
    fatal = errorInfo(e);
  }
  if (rels.length) postList(from, rels, num, targets, errors);
  if (fatal) walkFailed(fatal);
  else if (walkDone) parentPort.postMessage({ t: 'listed', count: listed });
}

// The next entry (number listed), lstat'ed: its fields at the end of the batch.
function listOne(rel, st, rels, num, targets, errors) {
  const i = listed++, o = rels.length * STRIDE, type = typeOf(st);
  rels.push(rel);
  setFields(num, o, st, type);
  if (type !== 1 && (num[o + F.linkOf] = linkOf(st, i)) >= 0) return;
  if (type === 0) files.push({ i, size: num[o + F.size], file: abs(rel), fd: -1 });
  else if (type === 1) dirs.push(openDir(rel));
  else listSpecial(i, rel, type, st, num, o, targets, errors);
}

// The next entry, a regular file by its directory's word: PENDING until it is read.
function listPending(rel, rels, num) {
  const o = rels.length * STRIDE;
  rels.push(rel);
  num[o + F.type] = PENDING;
  num[o + F.linkOf] = -1;
  files.push({ i: listed++, size: -1, file: base + rel, fd: -1 });
}

// An entry's fields from its (l)stat.
function setFields(num, o, st, type) {
  num[o + F.type] = type;
  num[o + F.mode] = Number(st.mode & 0o7777n);
  num[o + F.uid] = Number(st.uid);
  num[o + F.gid] = Number(st.gid);
  setTime(num, o + F.atimeSec, st.atimeNs);
  setTime(num, o + F.mtimeSec, st.mtimeNs);
  num[o + F.size] = type === 0 ? Number(st.size) : 0;
  num[o + F.linkOf] = -1;
}

// The earlier entry that entry i is a hard link of (by dev:ino, in listing order), or -1 (then it is the first).
function linkOf(st, i) {
  if (st.nlink <= 1n) return -1;
  const key = st.dev + ':' + st.ino, first = links.get(key);
  if (first !== undefined) return first;
  links.set(key, i);
  return -1;
}

function listSpecial(i, rel, type, st, num, o, targets, errors) {
  if (type === 2) {
    try { targets.push([i, fs.readlinkSync(abs(rel), { encoding: 'buffer' })]); } catch (e) { errors.push([i, errorInfo(e)]); }
  } else if (type === 3 || type === 4) {
    // Linux dev_t to major/minor (glibc's gnu_dev_major / gnu_dev_minor).
    const dev = st.rdev;
    num[o + F.major] = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
    num[o + F.minor] = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  }
}

function postList(from, rels, num, targets, errors) {
  // The batch's paths NUL-terminated, ready for the xattr reader's stdin (xattr-reader.ts). Built
  // by concatenation: rels.map(abs).join('\0') deoptimised walkBatch 7 times per import of the
  // bench tree (--trace-deopt: "wrong map" at the join, each time recompiled by TurboFan).
  let paths = null;
  if (listPaths) {
    let text = '';
    for (let k = 0; k < rels.length; k++) text += abs(rels[k]) + '\0';
    paths = Buffer.from(text);
  }
  parentPort.postMessage({ t: 'list', from, rels, num: num.length === rels.length * STRIDE ? num : num.slice(0, rels.length * STRIDE), targets, errors, paths });
}

// A walk that cannot go on ends the reader: the consumer gets this error after the entries listed.
function walkFailed(error) {
  failed = true;
  closeHeld();
  parentPort.postMessage({ t: 'fatal', error });
  parentPort.close();
}

// ------------------------------------------------------------------ the reads
/** Every slab's views by id (a slab's buffers are sent once; later grants name it). */
const slabViews = (s) => ({ view: new Uint8Array(s.sab), words: new Int32Array(s.sab), zeros: new Uint8Array(s.zeros) });
const views = new Map(workerData.slabs.map((s) => [s.id, slabViews(s)]));
const granted = workerData.slabs.map((s) => ({ id: s.id, ...views.get(s.id) }));
const UNIT_WORDS = align / 4;
let cur = null, off = 0;
let items = [], pendingBytes = 0;
/** [entry, ENTRY_FIELDS] of PENDING entries opened since the last post. */
let stats = [];
const fields = new Float64Array(STRIDE);
let next = 0;
/** A large file being read in chunks: its fd stays open between pumps. */
let big = null;
let stopped = false;

function post(sealed) {
  const s = stats.length ? new Float64Array(stats) : null;
  stats = [];
  if (!cur) {
    if (s) parentPort.postMessage({ t: 's', stats: s });
    return;
  }
  if (items.length || sealed || s) parentPort.postMessage({ t: 'd', id: cur.id, items: new Float64Array(items), sealed, stats: s });
  items = [];
  pendingBytes = 0;
  if (sealed) {
    // A slab that never comes back (no reuse) is not kept alive here.
    if (!keepSlabs) views.delete(cur.id);
    cur = null;
    off = 0;
  }
}

// The current slab has span bytes free from off (or the next granted one is taken); false: none granted.
function room(span) {
  if (cur && off + span <= cur.view.length) return true;
  post(true);
  cur = granted.shift() || null;
  off = 0;
  return cur !== null;
}

function readFully(fd, view, at, len, pos, file) {
  for (let got = 0; got < len;) {
    const k = fs.readSync(fd, view, at + got, len - got, pos + got);
    if (k === 0) throw Object.assign(new Error(file + ': shrank while being read'), { code: 'EIO', path: file });
    got += k;
  }
}

function failedAt(i, e) {
  post(false);
  parentPort.postMessage({ t: 'e', index: i, error: errorInfo(e) });
}

// One piece: len bytes of fd from pos into the current slab, the tail up to the next align zeroed
// (a reused slab holds old bytes; the importer writes whole blocks as they lie).
function place(i, fd, len, pos, file, last) {
  const span = Math.ceil(len / align) * align;
  readFully(fd, cur.view, off, len, pos, file);
  if (span > len) zeroTail(cur, off + len, off + span);
  markZeros(cur, off, span);
  items.push(i, off, len, last ? 1 : 0);
  off += span;
  pendingBytes += len;
  if (items.length >= postFiles * 4 || pendingBytes >= postBytes) post(false);
}

// Zeros slab bytes [from, to) (to a multiple of 4): bytes up to a word boundary, then words. fill()
// on a Uint8Array over shared memory stores byte by byte: 5 times the instructions of the word fill.
function zeroTail(s, from, to) {
  const w = Math.min(to, (from + 3) & ~3);
  for (let k = from; k < w; k++) s.view[k] = 0;
  if (w < to) s.words.fill(0, w >> 2, to >> 2);
}

// The zero map of slab bytes [from, from + span) (whole units): first and last word first, as data rarely starts and ends with zeros.
function markZeros(s, from, span) {
  const w = s.words, z = s.zeros;
  for (let u = from / align, end = (from + span) / align; u < end; u++) {
    const a = u * UNIT_WORDS, b = a + UNIT_WORDS - 1;
    let zero = w[a] === 0 && w[b] === 0 ? 1 : 0;
    if (zero) for (let k = a + 1; k < b; k++) if (w[k] !== 0) { zero = 0; break; }
    z[u] = zero;
  }
}

// Whether the walk should list more before the next read: the listing stays ahead of the reads,
// less so at the start (the consumer waits for the first bytes).
function listBehind() {
  return !walkDone && files.length - next < Math.min(LIST_AHEAD, FIRST_BATCH + next);
}

// Reads (or walks) until both wait: for a slab (the worker yields so grants come in) or for nothing.
function pump() {
  while (!stopped && !failed) {
    if (listBehind()) { walkBatch(); continue; }
    if (big) {
      if (!readBigPiece()) return blocked();
      continue;
    }
    if (next >= files.length) {
      if (!walkDone) { walkBatch(); continue; }
      return finish();
    }
    const f = files[next];
    if (f.size < 0 && !openPending(f)) { files[next++] = null; continue; }
    if (f.size > wholeFileBytes) {
      openBig(f);
      files[next++] = null;
      continue;
    }
    if (!readSmallFiles()) return blocked();
  }
}

// The hot loop: whole files, in listing order, while they fit and the listing is ahead (false: no slab).
function readSmallFiles() {
  while (next < files.length) {
    const f = files[next];
    if (listBehind()) return true;
    if (f.size < 0 && !openPending(f)) { files[next++] = null; continue; }
    if (f.size > wholeFileBytes) return true;
    if (!room(Math.ceil(f.size / align) * align)) return false;
    files[next++] = null;
    readWhole(f);
  }
  return true;
}

// Opens and fstats a PENDING file, its fields queued for the next post; false: nothing to read
// (a hard link of an earlier entry, or a failure, reported).
function openPending(f) {
  let st;
  try {
    f.fd = fs.openSync(f.file, OPEN_LISTED);
    st = fs.fstatSync(f.fd, BIG);
    if (!st.isFile()) throw changed(f.file);
  } catch (e) {
    if (f.fd >= 0) { fs.closeSync(f.fd); f.fd = -1; }
    // (its fields as a file: the consumer takes the error where it asks for the bytes)
    fields.fill(0);
    fields[F.linkOf] = -1;
    queueStats(f.i);
    failedAt(f.i, e && e.code === 'ELOOP' ? changed(f.file) : e);
    return false;
  }
  setFields(fields, 0, st, 0);
  f.size = fields[F.size];
  if ((fields[F.linkOf] = linkOf(st, f.i)) >= 0) {
    fs.closeSync(f.fd);
    f.fd = -1;
    queueStats(f.i);
    return false;
  }
  queueStats(f.i);
  return true;
}

function queueStats(i) {
  stats.push(i);
  for (let k = 0; k < STRIDE; k++) stats.push(fields[k]);
}

// A listed regular file that is no longer one (a symlink, a FIFO, a directory put in its place).
function changed(file) {
  return Object.assign(new Error(file + ': changed while being read (no longer a regular file)'), { code: 'EIO', path: file });
}

function readWhole(f) {
  let fd = f.fd;
  f.fd = -1;
  try {
    if (fd < 0) fd = fs.openSync(f.file, 'r');
    place(f.i, fd, f.size, 0, f.file, true);
  } catch (e) {
    failedAt(f.i, e);
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}

function openBig(f) {
  try {
    big = { i: f.i, fd: f.fd >= 0 ? f.fd : fs.openSync(f.file, 'r'), size: f.size, pos: 0, file: f.file };
  } catch (e) {
    failedAt(f.i, e);
  }
  f.fd = -1;
}

// Closes what is open between pumps: the large file being read, a file opened but not yet read.
function closeHeld() {
  if (big) { fs.closeSync(big.fd); big = null; }
  const f = files[next];
  if (f && f.fd >= 0) { fs.closeSync(f.fd); f.fd = -1; }
}

// The next piece of the large file being read, a slab at most (false: no slab to put it in).
function readBigPiece() {
  const n = Math.min(slabBytes, big.size - big.pos);
  if (!room(Math.ceil(n / align) * align)) return false;
  try {
    place(big.i, big.fd, n, big.pos, big.file, big.pos + n >= big.size);
    big.pos += n;
  } catch (e) {
    failedAt(big.i, e);
    big.pos = big.size;
  }
  if (big.pos >= big.size) { fs.closeSync(big.fd); big = null; }
  return true;
}

function finish() {
  post(true);
  parentPort.postMessage({ t: 'end' });
  parentPort.close();
}

// No slab to read into: walk on meanwhile (a batch at a time, letting grants in between).
function blocked() {
  if (walkDone || failed) return;
  walkBatch();
  kick();
}

let scheduled = false;
function kick() {
  if (scheduled) return;
  scheduled = true;
  setImmediate(() => { scheduled = false; pump(); });
}

parentPort.on('message', (m) => {
  if (m.t === 'grant') {
    if (m.sab) views.set(m.id, slabViews(m));
    granted.push({ id: m.id, ...views.get(m.id) });
    kick();
  } else if (m.t === 'stop') {
    stopped = true;
    closeHeld();
    parentPort.close();
  }
});
kick();
})();
`;
