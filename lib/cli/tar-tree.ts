/**
 * Tar archives as trees for `ext4kit import` / `export`, through tar-stream:
 * pax records carry nanosecond times, large ids and xattrs (SCHILY.xattr.*
 * as GNU tar writes them, LIBARCHIVE.xattr.* (base64) for binary values).
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import * as tarStream from 'tar-stream';
import type { Timestamp } from '../ext4/inode.js';
import type { TreeEntry, TreeEntryType, TreeXattr } from '../ops/tree-entry.js';
import type { HostTreeOptions } from './host-tree.js';

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
