/**
 * Tar archives as trees for `ext4kit import` / `export`, through tar-stream
 * (framing, headers, names) plus tar-format.ts for what tar-stream lacks.
 * What GNU tar 1.34 (and bsdtar) keep both ways: types, modes, owners (pax
 * uid/gid past ustar's range), nanosecond atime/mtime (pax), xattrs as
 * `SCHILY.xattr.NAME` records with the value's raw bytes (GNU tar's form; it
 * restores binary values such as security.capability; libarchive's
 * `LIBARCHIVE.xattr.*` base64 records are read too), hard links, symlinks,
 * device nodes, fifos, long names (pax path/linkpath), and sparse files:
 * written as GNU sparse 1.0 pax members (`tar --sparse --format=posix`),
 * read in every form GNU tar writes (pax 1.0, 0.1, 0.0, old GNU 'S').
 * Sockets cannot be stored in tar: skipped with a warning, as GNU tar does
 * ("socket ignored").
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import * as tarStream from 'tar-stream';
import type { Timestamp } from '../ext4/inode.js';
import type { ExportedEntry } from '../ops/export-tree.js';
import type { TreeEntry, TreeEntryType, TreeXattr } from '../ops/tree-entry.js';
import type { HostTreeOptions } from './host-tree.js';
import {
  BodyReader, badArchive, OldGnuSparseExtensionLayout, OldGnuSparseHeaderLayout, TAR_BLOCK, checkSparseMap, decimal, encodeSparseMap10, headerInfo, isDirType,
  isMetaType, isOldGnuSparseType, isPaxType, parseOldGnuSparse, paxMember, paxRecord, parsePaxRecords, parseSparseMap00, parseSparseMap01,
  readSparseMap10, splitUstarName, tarNumber, ustarHeader, type SparseRun,
} from './tar-format.js';

// ------------------------------------------------------------------------------------------ read

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

/** What the tap saw of one member (one per member tar-stream emits, in order). */
interface MemberMeta {
  /** Its pax records, values as bytes (tar-stream decodes them as UTF-8 text, which mangles binary xattr values). */
  pax: [string, Uint8Array][];
  /** An old GNU 'S' member's map and real size. */
  oldSparse?: { runs: SparseRun[]; realSize: number };
}

/**
 * Walks the archive's bytes on their way to tar-stream's extractor (512-byte
 * headers, bodies skipped by their size) and keeps, per member, what
 * tar-stream loses: pax values as bytes, and old GNU sparse maps. The
 * extension blocks of an 'S' member sit between its header and its data,
 * where tar-stream would read them as data: the tap takes them out of the
 * stream.
 */
class TarTap extends Transform {
  readonly members: MemberMeta[] = [];
  #head: Buffer[] = [];
  #headLen = 0;
  /** Body bytes (with padding) still to pass through. */
  #skip = 0;
  #capture: Buffer[] | null = null;
  #captureLeft = 0;
  /** Records of the last pax header, for the member after it. */
  #pax: [string, Uint8Array][] = [];
  /** An 'S' member waiting for its extension blocks, and its body size. */
  #sparse: { meta: MemberMeta; size: number } | null = null;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.#scan(chunk);
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  #scan(chunk: Buffer): void {
    let c = chunk;
    while (c.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, c.length);
        const part = c.subarray(0, n);
        if (this.#capture) {
          const k = Math.min(n, this.#captureLeft);
          this.#capture.push(part.subarray(0, k));
          this.#captureLeft -= k;
          if (this.#captureLeft === 0) {
            this.#pax = parsePaxRecords(Buffer.concat(this.#capture));
            this.#capture = null;
          }
        }
        this.push(part);
        this.#skip -= n;
        c = c.subarray(n);
        continue;
      }
      const take = Math.min(TAR_BLOCK - this.#headLen, c.length);
      this.#head.push(c.subarray(0, take));
      this.#headLen += take;
      c = c.subarray(take);
      if (this.#headLen < TAR_BLOCK) return;
      const h = Buffer.concat(this.#head);
      this.#head = [];
      this.#headLen = 0;
      this.#header(h);
    }
  }

  #header(h: Buffer): void {
    if (this.#sparse) {
      // An old GNU sparse extension block: more map entries; not passed on.
      const s = this.#sparse;
      s.meta.oldSparse!.runs.push(...parseOldGnuSparse(OldGnuSparseExtensionLayout.get(h, 'sparse')));
      if (!OldGnuSparseExtensionLayout.get(h, 'isextended')) {
        this.#sparse = null;
        this.#skip = Math.ceil(s.size / TAR_BLOCK) * TAR_BLOCK;
      }
      return;
    }
    this.push(h);
    const { type, size: headerSize, zero } = headerInfo(h);
    if (zero) return; // end-of-archive blocks
    if (isMetaType(type)) {
      this.#skip = Math.ceil(headerSize / TAR_BLOCK) * TAR_BLOCK;
      if (isPaxType(type)) {
        this.#capture = [];
        this.#captureLeft = headerSize;
        if (headerSize === 0) {
          this.#pax = [];
          this.#capture = null;
        }
      }
      return;
    }
    // A member: its body size as tar-stream reads it (pax size wins; a directory has none).
    const meta: MemberMeta = { pax: this.#pax };
    this.#pax = [];
    const paxSize = meta.pax.filter(([k]) => k === 'size').pop();
    let size = paxSize ? decimal(paxSize[1], 'pax size') : headerSize;
    if (isDirType(type)) size = 0;
    this.members.push(meta);
    if (isOldGnuSparseType(type)) {
      meta.oldSparse = { runs: parseOldGnuSparse(OldGnuSparseHeaderLayout.get(h, 'sparse')), realSize: tarNumber(OldGnuSparseHeaderLayout.get(h, 'realsize')) };
      if (OldGnuSparseHeaderLayout.get(h, 'isextended')) {
        this.#sparse = { meta, size };
        return;
      }
    }
    this.#skip = Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
  }
}

/** A sparse member: where its data goes, how big the file is, its real name. */
interface SparseInfo {
  /** null: the map is at the start of the data (1.0). */
  runs: SparseRun[] | null;
  realSize: number;
  name?: string;
}

function sparseOf(meta: MemberMeta, pax: Map<string, Uint8Array>, headerName: string): SparseInfo | null {
  const text = (k: string) => {
    const v = pax.get(k);
    return v && new TextDecoder().decode(v);
  };
  if (meta.oldSparse) return { runs: meta.oldSparse.runs, realSize: meta.oldSparse.realSize };
  const major = text('GNU.sparse.major'), minor = text('GNU.sparse.minor');
  if (major === '1' && minor === '0') {
    return { runs: null, realSize: decimal(pax.get('GNU.sparse.realsize') ?? new Uint8Array(0), headerName), name: text('GNU.sparse.name') };
  }
  if (major !== undefined) throw badArchive(`${headerName}: GNU sparse format ${major}.${minor} is not known`);
  const size = pax.get('GNU.sparse.size') ?? pax.get('GNU.sparse.realsize');
  if (!size) return null;
  const realSize = decimal(size, headerName);
  const map = pax.get('GNU.sparse.map');
  if (map) return { runs: parseSparseMap01(map, headerName), realSize, name: text('GNU.sparse.name') }; // 0.1
  return { runs: parseSparseMap00(meta.pax, headerName), realSize, name: text('GNU.sparse.name') }; // 0.0
}

/** Zeros for holes (read-only: consumers skip all-zero blocks and never write them). */
const ZEROS = new Uint8Array(1024 * 1024);

/** A sparse member's data runs' bytes, concatenated (TreeEntry.sparse.data: the holes are not read). */
async function* runsData(body: BodyReader, runs: readonly SparseRun[], name: string): AsyncGenerator<Uint8Array> {
  for (const r of runs) {
    for (let left = r.length; left > 0; ) {
      const b = await body.some(left);
      if (b.length === 0) throw badArchive(`${name}: sparse data cut short`);
      yield b;
      left -= b.length;
    }
  }
}

/** A sparse member's data expanded to the whole file: zeros in the holes (for consumers that do not read TreeEntry.sparse). */
async function* sparseData(body: BodyReader, runs: readonly SparseRun[], realSize: number, name: string): AsyncGenerator<Uint8Array> {
  let pos = 0;
  const zeros = function* (to: number) {
    for (; pos < to; pos = Math.min(to, pos + ZEROS.length)) yield ZEROS.subarray(0, Math.min(ZEROS.length, to - pos));
  };
  for (const r of runs) {
    yield* zeros(r.offset);
    for (let left = r.length; left > 0; ) {
      const b = await body.some(left);
      if (b.length === 0) throw badArchive(`${name}: sparse data cut short`);
      yield b;
      left -= b.length;
      pos += b.length;
    }
  }
  yield* zeros(realSize);
}

/** libarchive's %-escaped xattr name. */
function uriDecoded(s: string, member: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw badArchive(`${member}: bad LIBARCHIVE.xattr name ${JSON.stringify(s.slice(0, 40))}`);
  }
}

async function* chunksOf(it: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
}

/** A tar archive (a stream) as TreeEntry values; each file's data must be read before the next entry. */
export async function* readTar(input: Readable): AsyncGenerator<TreeEntry> {
  const extract = tarStream.extract();
  const tap = new TarTap();
  input.on('error', (e) => tap.destroy(e));
  tap.on('error', (e) => extract.destroy(e));
  input.pipe(tap).pipe(extract as unknown as NodeJS.WritableStream);
  const dec = new TextDecoder();
  for await (const entry of extract) {
    const h = entry.header as PaxHeaders;
    const body = (entry as unknown as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    const meta = tap.members.shift() ?? { pax: [] };
    const raw = new Map(meta.pax);
    const sparse = sparseOf(meta, raw, h.name);
    const type = h.type ? TAR_TYPES[h.type] : meta.oldSparse ? 'file' : undefined;
    if (!type) {
      while (!(await body.next()).done); // skip (GNU volume headers and the like)
      continue;
    }
    const text = (k: string) => {
      const v = raw.get(k);
      return v && dec.decode(v);
    };
    const xattrs: TreeXattr[] = [];
    for (const [k, v] of raw) {
      if (k.startsWith('LIBARCHIVE.xattr.')) xattrs.push({ name: uriDecoded(k.slice(17), h.name), value: Buffer.from(Buffer.from(v).toString('latin1'), 'base64') });
    }
    for (const [k, v] of raw) {
      if (k.startsWith('SCHILY.xattr.') && !xattrs.some((x) => x.name === k.slice(13))) xattrs.push({ name: k.slice(13), value: Uint8Array.from(v) });
    }
    const mtime = paxTime(text('mtime')) ?? { sec: Math.floor((h.mtime?.getTime() ?? 0) / 1000), nsec: 0 };
    const uid = raw.get('uid'), gid = raw.get('gid');
    const e: TreeEntry = {
      path: tarPath(sparse?.name ?? h.name),
      type,
      mode: (h.mode ?? 0o644) & 0o7777,
      uid: uid !== undefined ? decimal(uid, h.name) : (h.uid ?? 0),
      gid: gid !== undefined ? decimal(gid, h.name) : (h.gid ?? 0),
      mtime,
      atime: paxTime(text('atime')) ?? mtime,
      xattrs,
    };
    if (type === 'file') {
      if (sparse) {
        // The map is known before the entry is handed out (1.0 keeps it at the start of the data):
        // the consumer reads the runs' bytes only, or (e.data) the whole file with zeros.
        const reader = new BodyReader(body);
        const runs = sparse.runs ?? (await readSparseMap10(reader, e.path, h.size ?? 0));
        checkSparseMap(runs, sparse.realSize, e.path);
        e.size = sparse.realSize;
        e.sparse = { runs, data: () => runsData(reader, runs, e.path) };
        e.data = sparseData(reader, runs, sparse.realSize, e.path);
      } else {
        e.size = h.size ?? 0;
        e.data = chunksOf(body);
      }
    } else if (type === 'symlink') e.target = raw.get('linkpath') ?? h.linkname ?? '';
    else if (type === 'hardlink') e.target = tarPath(h.linkname ?? '');
    else if (type === 'chardev' || type === 'blockdev') e.rdev = { major: h.devmajor ?? 0, minor: h.devminor ?? 0 };
    yield e;
    while (!(await body.next()).done); // whatever the consumer left
  }
}

// ----------------------------------------------------------------------------------------- write

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

/** Whether tar-stream encodes `name` in the ustar header exactly. */
function fitsUstar(name: string): boolean {
  return splitUstarName(name) !== null;
}

/** A name tar-stream can encode, for a member whose real name is in a pax record. */
function ustarStandIn(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]/g, '_');
  if (fitsUstar(ascii)) return ascii;
  return ascii.slice(-100).replace(/^\/+/, '') || '_';
}

function dirAndBase(path: string): [string, string] {
  const i = path.lastIndexOf('/');
  return i < 0 ? ['', path] : [path.slice(0, i + 1), path.slice(i + 1)];
}

/** A xattr name GNU tar's SCHILY.xattr record can carry (the key ends at the first '='). */
function schilyName(name: string): boolean {
  return !/[=\n\0]/.test(name);
}

/** Write TreeEntry values as a pax tar archive to `out`; sockets are skipped with a warning (tar has no type for them). */
export async function writeTar(entries: AsyncIterable<ExportedEntry>, out: NodeJS.WritableStream, opts: HostTreeOptions & { onEntry?(e: TreeEntry): void; end?: boolean } = {}): Promise<void> {
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
      opts.warn?.(`${e.path}: ${e.type} ignored (tar cannot hold a ${e.type})`);
      continue;
    }
    const path = e.path === '' ? '.' : e.path;
    const name = e.type === 'dir' ? `${path}/` : path;
    const records: Uint8Array[] = [];
    let headerName = name;
    // A file with holes: GNU sparse 1.0 (what `tar --sparse --format=posix` writes). The ustar
    // name is a stand-in (tars that do not know the format extract the map and data there).
    const sparse = e.type === 'file' && e.sparse && e.sparse.runs.reduce((n, r) => n + r.length, 0) < (e.size ?? 0) ? e.sparse : null;
    let map: Uint8Array | null = null;
    let size = e.type === 'file' ? (e.size ?? 0) : 0;
    if (sparse) {
      const runs: SparseRun[] = [...sparse.runs];
      const last = runs[runs.length - 1];
      if (!last || last.offset + last.length < size) runs.push({ offset: size, length: 0 }); // as GNU tar: the end, for 0.x readers
      map = encodeSparseMap10(runs);
      const [dir, base] = dirAndBase(path);
      headerName = ustarStandIn(`${dir}GNUSparseFile.0/${base}`);
      records.push(paxRecord('GNU.sparse.major', '1'), paxRecord('GNU.sparse.minor', '0'), paxRecord('GNU.sparse.name', path), paxRecord('GNU.sparse.realsize', String(size)));
      size = map.length + sparse.runs.reduce((n, r) => n + r.length, 0);
    } else if (!fitsUstar(name)) {
      records.push(paxRecord('path', name));
      headerName = ustarStandIn(name);
    }
    let linkname: string | undefined;
    if (e.type === 'symlink' || e.type === 'hardlink') {
      // A symlink target is bytes (not always UTF-8): the pax record keeps them as they are.
      const raw = typeof e.target === 'string' ? Buffer.from(e.target) : (e.target ?? new Uint8Array(0));
      linkname = Buffer.from(raw).toString('latin1');
      if (!/^[\x01-\x7f]{1,100}$/.test(linkname)) {
        records.push(paxRecord('linkpath', raw));
        linkname = ustarStandIn(dec.decode(raw));
      }
    }
    if (size > 0o77777777777) records.push(paxRecord('size', String(size)));
    if (e.mtime) records.push(paxRecord('mtime', paxTimeString(e.mtime)));
    if (e.atime) records.push(paxRecord('atime', paxTimeString(e.atime)));
    if (e.uid > 0o777777) records.push(paxRecord('uid', String(e.uid)));
    if (e.gid > 0o777777) records.push(paxRecord('gid', String(e.gid)));
    for (const x of e.xattrs ?? []) {
      // GNU tar's record, the value's bytes as they are; libarchive's base64 one for a name the
      // SCHILY key cannot hold.
      if (schilyName(x.name)) records.push(paxRecord(`SCHILY.xattr.${x.name}`, x.value));
      else records.push(paxRecord(`LIBARCHIVE.xattr.${encodeURIComponent(x.name)}`, Buffer.from(x.value).toString('base64')));
    }
    const mtimeSec = Math.max(0, Math.min(e.mtime?.sec ?? 0, 0o77777777777));
    if (records.length) {
      // Our own 'x' member (tar-stream's pax writer takes text only), queued between two of its
      // members: the previous one is complete (its callback ran) and the next is not begun.
      const [dir, base] = dirAndBase(path === '.' ? '.' : path.replace(/\/$/, ''));
      pack.push(paxMember(ustarStandIn(`${dir}PaxHeaders/${base}`), records, mtimeSec));
    }
    const header: PaxHeaders = {
      name: headerName,
      type,
      mode: e.mode,
      uid: Math.min(e.uid, 0o777777),
      gid: Math.min(e.gid, 0o777777),
      mtime: new Date(mtimeSec * 1000),
      size,
    };
    if (linkname !== undefined) header.linkname = linkname;
    if (e.rdev) {
      header.devmajor = e.rdev.major;
      header.devminor = e.rdev.minor;
    }
    if (e.rdev && (e.rdev.major > 0o777777 || e.rdev.minor > 0o777777)) {
      // tar-stream's 6 octal digits cannot hold a minor up to 2^20 - 1: our own header (no body).
      pack.push(ustarHeader({ name: headerName, type: e.type === 'chardev' ? '3' : '4', mode: e.mode, uid: header.uid!, gid: header.gid!, size: 0, mtimeSec, devmajor: e.rdev.major, devminor: e.rdev.minor }));
      continue;
    }
    if (e.type !== 'file') {
      await new Promise<void>((resolve, reject) => pack.entry(header, (err) => (err ? reject(err) : resolve())));
      continue;
    }
    await new Promise<void>((resolve, reject) => {
      const w = pack.entry(header, (err) => (err ? reject(err) : resolve()));
      void (async () => {
        try {
          const chunks = sparse ? sparse.data() : e.data instanceof Uint8Array ? [e.data] : (e.data ?? []);
          if (map && !w.write(Buffer.from(map))) await new Promise<void>((r) => w.once('drain', () => r()));
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
