/**
 * The thread side of host-reader.ts: walks a host directory (lstat, names in byte order) and then
 * reads its regular files, in that order, into the slabs the main thread grants, so the source's
 * open/read/close syscalls run on another core while the main thread fills the image.
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
 *   {t: 'd', id, items, sealed}              file bytes placed in slab `id`: items = [entry, offset,
 *                                            length, last] × n; sealed: nothing more goes in it;
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
const NS = 1000000000n;
/** Entries per listing message; files listed ahead of the reads at least. */
const WALK_BATCH = 1024, LIST_AHEAD = 512;

function errorInfo(e) {
  return { message: String(e && e.message || e), code: e && e.code, errno: e && e.errno, syscall: e && e.syscall, path: e && e.path };
}

// Names in the order of their UTF-8 bytes (plain sort() when no name has a surrogate pair).
function sortByBytes(names) {
  if (!names.some((n) => /[\uD800-\uDFFF]/.test(n))) return names.sort();
  return names.map((n) => ({ n, b: Buffer.from(n) })).sort((x, y) => Buffer.compare(x.b, y.b)).map((x) => x.n);
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
  let sec = ns / NS, nsec = ns - sec * NS;
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
const allRels = [];
const dirs = []; // { rel, names, pos }: the directories being listed, innermost last
const links = new Map();
const files = []; // { i, size, file }: listed regular files, read in this order
let walkDone = false, failed = false;

function nextEntry() {
  if (allRels.length === 0) return { rel: '', st: fs.lstatSync(root, { bigint: true }) };
  while (dirs.length) {
    const d = dirs[dirs.length - 1];
    if (d.pos < d.names.length) {
      const r = d.rel ? d.rel + '/' + d.names[d.pos++] : d.names[d.pos++];
      return { rel: r, st: fs.lstatSync(base + r, { bigint: true }) };
    }
    dirs.pop();
  }
  return null;
}

function walkBatch() {
  const from = allRels.length, rels = [], num = new Float64Array(WALK_BATCH * STRIDE), targets = [], errors = [];
  let fatal = null;
  try {
    while (rels.length < WALK_BATCH) {
      const x = nextEntry();
      if (!x) { walkDone = true; break; }
      const { rel, st } = x, i = allRels.length, o = rels.length * STRIDE, type = typeOf(st);
      allRels.push(rel);
      rels.push(rel);
      num[o + F.type] = type;
      num[o + F.mode] = Number(st.mode & 0o7777n);
      num[o + F.uid] = Number(st.uid);
      num[o + F.gid] = Number(st.gid);
      setTime(num, o + F.atimeSec, st.atimeNs);
      setTime(num, o + F.mtimeSec, st.mtimeNs);
      num[o + F.size] = type === 0 ? Number(st.size) : 0;
      num[o + F.linkOf] = -1;
      if (type !== 1 && st.nlink > 1n) {
        const key = st.dev + ':' + st.ino, first = links.get(key);
        if (first !== undefined) { num[o + F.linkOf] = first; continue; }
        links.set(key, i);
      }
      if (type === 0) files.push({ i, size: num[o + F.size], file: abs(rel) });
      else if (type === 1) dirs.push({ rel, names: sortByBytes(fs.readdirSync(abs(rel))), pos: 0 });
      else if (type === 2) {
        try { targets.push([i, fs.readlinkSync(abs(rel), { encoding: 'buffer' })]); } catch (e) { errors.push([i, errorInfo(e)]); }
      } else if (type === 3 || type === 4) {
        // Linux dev_t to major/minor (glibc's gnu_dev_major / gnu_dev_minor).
        const dev = st.rdev;
        num[o + F.major] = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
        num[o + F.minor] = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
      }
    }
  } catch (e) {
    fatal = errorInfo(e);
  }
  if (rels.length) {
    // The batch's paths NUL-terminated, ready for the xattr reader's stdin (xattr-reader.ts). Built
    // by concatenation: rels.map(abs).join('\0') deoptimised walkBatch 7 times per import of the
    // bench tree (--trace-deopt: "wrong map" at the join, each time recompiled by TurboFan).
    let paths = null;
    if (listPaths) {
      let text = '';
      for (let k = 0; k < rels.length; k++) text += abs(rels[k]) + '\0';
      paths = Buffer.from(text);
    }
    parentPort.postMessage({ t: 'list', from, rels, num: num.slice(0, rels.length * STRIDE), targets, errors, paths });
  }
  if (fatal) {
    // A walk that cannot go on ends the reader: the consumer gets this error after the entries listed.
    failed = true;
    if (big) { fs.closeSync(big.fd); big = null; }
    parentPort.postMessage({ t: 'fatal', error: fatal });
    parentPort.close();
  } else if (walkDone) parentPort.postMessage({ t: 'listed', count: allRels.length });
}

// ------------------------------------------------------------------ the reads
/** Every slab's views by id (a slab's buffers are sent once; later grants name it). */
const slabViews = (s) => ({ view: new Uint8Array(s.sab), words: new Int32Array(s.sab), zeros: new Uint8Array(s.zeros) });
const views = new Map(workerData.slabs.map((s) => [s.id, slabViews(s)]));
const granted = workerData.slabs.map((s) => ({ id: s.id, ...views.get(s.id) }));
const UNIT_WORDS = align / 4;
let cur = null, off = 0;
let items = [], pendingBytes = 0;
let next = 0;
/** A large file being read in chunks: its fd stays open between pumps. */
let big = null;
let stopped = false;

function post(sealed) {
  if (!cur) return;
  if (items.length || sealed) parentPort.postMessage({ t: 'd', id: cur.id, items: new Float64Array(items), sealed });
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

// Reads (or walks) until both wait: for a slab (the worker yields so grants come in) or for nothing.
function pump() {
  while (!stopped && !failed) {
    // The listing stays ahead of the reads.
    if (!walkDone && files.length - next < LIST_AHEAD) { walkBatch(); continue; }
    if (big) {
      const n = Math.min(slabBytes, big.size - big.pos);
      if (!room(Math.ceil(n / align) * align)) return blocked();
      try {
        place(big.i, big.fd, n, big.pos, big.file, big.pos + n >= big.size);
        big.pos += n;
      } catch (e) {
        failedAt(big.i, e);
        big.pos = big.size;
      }
      if (big.pos >= big.size) { fs.closeSync(big.fd); big = null; }
      continue;
    }
    if (next >= files.length) {
      if (!walkDone) { walkBatch(); continue; }
      post(true);
      parentPort.postMessage({ t: 'end' });
      parentPort.close();
      return;
    }
    const { i, size, file } = files[next];
    if (size > wholeFileBytes) {
      next++;
      try { big = { i, fd: fs.openSync(file, 'r'), size, pos: 0, file }; } catch (e) { failedAt(i, e); }
      continue;
    }
    if (!room(Math.ceil(size / align) * align)) return blocked();
    files[next++] = null;
    let fd = -1;
    try {
      fd = fs.openSync(file, 'r');
      place(i, fd, size, 0, file, true);
    } catch (e) {
      failedAt(i, e);
    } finally {
      if (fd >= 0) fs.closeSync(fd);
    }
  }
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
    if (big) { fs.closeSync(big.fd); big = null; }
    parentPort.close();
  }
});
kick();
})();
`;
