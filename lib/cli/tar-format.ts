/**
 * The parts of the tar format tar-stream does not give us, as GNU tar 1.34
 * writes and reads them:
 * - pax records with values as raw bytes: GNU tar stores xattr values raw in
 *   `SCHILY.xattr.NAME` records ("%d key=value\n" is length-prefixed, so NUL
 *   and newline bytes are fine), which tar-stream's UTF-8 text cannot hold;
 * - sparse files: GNU's pax formats 1.0 (map at the start of the data,
 *   `--sparse --format=posix`), 0.1 (`GNU.sparse.map`), 0.0 (repeated
 *   `GNU.sparse.offset`/`numbytes`), and the old GNU 'S' member (`--sparse`
 *   with the default gnu format: four map entries in the header, more in
 *   512-byte extension blocks between the header and the data).
 * See GNU tar's manual, "Sparse Formats".
 */
import { defineStruct } from '../codec/layout.js';
import { Ext4Error } from '../errors.js';

export const TAR_BLOCK = 512;

/** Byte ranges of a sparse file that hold data (the rest reads as zeros). */
export interface SparseRun {
  offset: number;
  length: number;
}

/** POSIX ustar header (the fields this module reads or writes). */
export const UstarHeaderLayout = defineStruct('tar ustar header', TAR_BLOCK, [
  ['name', 0, 'bytes', 100],
  ['mode', 100, 'bytes', 8],
  ['uid', 108, 'bytes', 8],
  ['gid', 116, 'bytes', 8],
  ['size', 124, 'bytes', 12],
  ['mtime', 136, 'bytes', 12],
  ['chksum', 148, 'bytes', 8],
  ['typeflag', 156, 'u8'],
  ['linkname', 157, 'bytes', 100],
  ['magic', 257, 'bytes', 6],
  ['version', 263, 'bytes', 2],
  ['uname', 265, 'bytes', 32],
  ['gname', 297, 'bytes', 32],
  ['devmajor', 329, 'bytes', 8],
  ['devminor', 337, 'bytes', 8],
  ['prefix', 345, 'bytes', 155],
]);

/** Old GNU header of an 'S' member: four (offset, numbytes) pairs of 12-byte numbers, then more in extension blocks. */
export const OldGnuSparseHeaderLayout = defineStruct('tar old GNU sparse header', TAR_BLOCK, [
  ['sparse', 386, 'bytes', 4 * 24],
  ['isextended', 482, 'u8'],
  ['realsize', 483, 'bytes', 12],
]);

/** An old GNU sparse extension block: 21 more pairs. */
export const OldGnuSparseExtensionLayout = defineStruct('tar old GNU sparse extension', TAR_BLOCK, [
  ['sparse', 0, 'bytes', 21 * 24],
  ['isextended', 504, 'u8'],
]);

const TYPE = { PAX: 0x78, PAX_GLOBAL: 0x67, GNU_LONGNAME: 0x4c, GNU_LONGLINK: 0x4b, GNU_OLD_LONGNAME: 0x4e, DIR: 0x35, GNU_SPARSE: 0x53 } as const;

/** Header types whose body describes the next member (tar-stream consumes them too). */
export function isMetaType(t: number): boolean {
  return t === TYPE.PAX || t === TYPE.PAX_GLOBAL || t === TYPE.GNU_LONGNAME || t === TYPE.GNU_LONGLINK || t === TYPE.GNU_OLD_LONGNAME;
}
export const isPaxType = (t: number) => t === TYPE.PAX;
export const isDirType = (t: number) => t === TYPE.DIR;
export const isOldGnuSparseType = (t: number) => t === TYPE.GNU_SPARSE;

/** A malformed archive. */
export function badArchive(message: string): Ext4Error {
  return new Ext4Error('EINVAL', `tar: ${message}`, { structure: 'tar archive' });
}

/** A tar number field: octal text (NUL/space terminated), or base-256 when the first byte's high bit is set. */
export function tarNumber(f: Uint8Array): number {
  if (f[0]! & 0x80) {
    let v = f[0]! & 0x3f;
    if (f[0]! & 0x40) throw badArchive('negative base-256 number');
    for (let i = 1; i < f.length; i++) v = v * 256 + f[i]!;
    if (!Number.isSafeInteger(v)) throw badArchive('number too large');
    return v;
  }
  let v = 0;
  let i = 0;
  while (i < f.length && f[i] === 0x20) i++;
  for (; i < f.length && f[i]! >= 0x30 && f[i]! <= 0x37; i++) v = v * 8 + (f[i]! - 0x30);
  return v;
}

const latin1 = new TextDecoder('latin1');
const utf8 = new TextEncoder();

/** A member's header fields this module needs, from a raw 512-byte header. */
export function headerInfo(h: Uint8Array): { type: number; size: number; zero: boolean } {
  let zero = true;
  for (let i = 0; i < TAR_BLOCK && zero; i++) if (h[i] !== 0) zero = false;
  return { type: UstarHeaderLayout.get(h, 'typeflag'), size: tarNumber(UstarHeaderLayout.get(h, 'size')), zero };
}

// ------------------------------------------------------------------------------------------- pax

/** "%d key=value\n" records, values as bytes, in order (duplicates kept: sparse 0.0 repeats its keys). */
export function parsePaxRecords(b: Uint8Array): [string, Uint8Array][] {
  const out: [string, Uint8Array][] = [];
  const dec = new TextDecoder();
  let i = 0;
  while (i < b.length) {
    let sp = i;
    while (sp < b.length && sp - i < 20 && b[sp]! >= 0x30 && b[sp]! <= 0x39) sp++;
    if (b[sp] !== 0x20) break;
    const len = Number(latin1.decode(b.subarray(i, sp)));
    if (!(len > sp - i + 1) || i + len > b.length || b[i + len - 1] !== 0x0a) throw badArchive('malformed pax record');
    const rec = b.subarray(sp + 1, i + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq > 0) out.push([dec.decode(rec.subarray(0, eq)), rec.subarray(eq + 1)]);
    i += len;
  }
  return out;
}

/** One pax record: its length prefix counts itself. */
export function paxRecord(key: string, value: Uint8Array | string): Uint8Array {
  const k = utf8.encode(key);
  const v = typeof value === 'string' ? utf8.encode(value) : value;
  const body = k.length + v.length + 3; // ' ' '=' '\n'
  let len = body + String(body).length;
  if (String(len).length !== String(body).length) len = body + String(len).length;
  const out = new Uint8Array(len);
  const prefix = utf8.encode(`${len} `);
  out.set(prefix);
  out.set(k, prefix.length);
  out[prefix.length + k.length] = 0x3d;
  out.set(v, prefix.length + k.length + 1);
  out[len - 1] = 0x0a;
  return out;
}

function octal(value: number, width: number): Uint8Array {
  const s = value.toString(8).padStart(width - 1, '0');
  if (s.length > width - 1) throw new RangeError(`${value} does not fit ${width - 1} octal digits`);
  return utf8.encode(s + '\0');
}

function field(s: string, width: number): Uint8Array {
  const out = new Uint8Array(width);
  out.set(utf8.encode(s).subarray(0, width));
  return out;
}

/**
 * A name as ustar's (prefix, name) pair, split at a '/' as tar-stream does (the first '/' that
 * leaves ≤ 100 bytes), or null when it does not fit: not ASCII, or too long.
 */
export function splitUstarName(name: string): [string, string] | null {
  if (!/^[\x01-\x7f]+$/.test(name)) return null;
  let n = name;
  let prefix = '';
  while (n.length > 100) {
    const i = n.indexOf('/');
    if (i === -1) return null;
    prefix += (prefix ? '/' : '') + n.slice(0, i);
    n = n.slice(i + 1);
  }
  return n.length > 0 && prefix.length <= 155 ? [prefix, n] : null;
}

/** A ustar header's fields as this module writes them. */
export interface UstarFields {
  name: string;
  /** The typeflag character: '0', '3', 'x', … */
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeSec: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}

/**
 * A 512-byte ustar header with 7-digit octal numbers, as GNU tar writes them (tar-stream writes
 * 6, which device minors up to 2^20 - 1 do not fit). Names must fit (ASCII, ≤ 100 bytes).
 */
export function ustarHeader(f: UstarFields): Uint8Array {
  const split = splitUstarName(f.name);
  if (!split) throw new RangeError(`${f.name}: does not fit a ustar header`);
  const out = new Uint8Array(TAR_BLOCK);
  UstarHeaderLayout.encode({
    name: field(split[1], 100),
    mode: octal(f.mode & 0o7777, 8),
    uid: octal(Math.min(f.uid, 0o7777777), 8),
    gid: octal(Math.min(f.gid, 0o7777777), 8),
    size: octal(f.size, 12),
    mtime: octal(Math.max(0, Math.min(f.mtimeSec, 0o77777777777)), 12),
    chksum: utf8.encode('        '),
    typeflag: f.type.charCodeAt(0),
    linkname: field(f.linkname ?? '', 100),
    magic: utf8.encode('ustar\0'),
    version: utf8.encode('00'),
    uname: new Uint8Array(32),
    gname: new Uint8Array(32),
    devmajor: octal(f.devmajor ?? 0, 8),
    devminor: octal(f.devminor ?? 0, 8),
    prefix: field(split[0], 155),
  }, out);
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += out[i]!;
  UstarHeaderLayout.set(out, 'chksum', utf8.encode(sum.toString(8).padStart(6, '0') + '\0 '));
  return out;
}

/**
 * A whole pax extended-header member ('x' header, the records, padding to 512):
 * written to the archive right before the member it describes.
 */
export function paxMember(name: string, records: readonly Uint8Array[], mtimeSec: number): Uint8Array {
  const size = records.reduce((n, r) => n + r.length, 0);
  const out = new Uint8Array(TAR_BLOCK + Math.ceil(size / TAR_BLOCK) * TAR_BLOCK);
  out.set(ustarHeader({ name, type: 'x', mode: 0o644, uid: 0, gid: 0, size, mtimeSec }));
  let at = TAR_BLOCK;
  for (const r of records) {
    out.set(r, at);
    at += r.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------- sparse

/** Check a sparse map against the file's size: in order, no overlap, inside the file. */
export function checkSparseMap(runs: readonly SparseRun[], realSize: number, name: string): void {
  let end = 0;
  for (const r of runs) {
    if (!Number.isSafeInteger(r.offset) || !Number.isSafeInteger(r.length) || r.offset < end || r.length < 0 || r.offset + r.length > realSize) {
      throw badArchive(`${name}: sparse map entry ${r.offset}+${r.length} out of order or past the size ${realSize}`);
    }
    end = r.offset + r.length;
  }
}

/** GNU.sparse.map (0.1): "offset,size,offset,size,…". */
export function parseSparseMap01(v: Uint8Array, name: string): SparseRun[] {
  const s = latin1.decode(v);
  const nums = s === '' ? [] : s.split(',').map((x) => (/^\d+$/.test(x) ? Number(x) : NaN));
  if (nums.length % 2 || nums.some((n) => !Number.isSafeInteger(n))) throw badArchive(`${name}: bad GNU.sparse.map`);
  const runs: SparseRun[] = [];
  for (let i = 0; i < nums.length; i += 2) runs.push({ offset: nums[i]!, length: nums[i + 1]! });
  return runs;
}

/** Repeated GNU.sparse.offset / GNU.sparse.numbytes records (0.0), in order. */
export function parseSparseMap00(records: readonly [string, Uint8Array][], name: string): SparseRun[] {
  const runs: SparseRun[] = [];
  let offset: number | null = null;
  for (const [k, v] of records) {
    if (k === 'GNU.sparse.offset') offset = decimal(v, name);
    else if (k === 'GNU.sparse.numbytes') {
      if (offset === null) throw badArchive(`${name}: GNU.sparse.numbytes without an offset`);
      runs.push({ offset, length: decimal(v, name) });
      offset = null;
    }
  }
  return runs;
}

export function decimal(v: Uint8Array, name: string): number {
  const s = latin1.decode(v);
  const n = /^\d+$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n)) throw badArchive(`${name}: bad number "${s.slice(0, 30)}"`);
  return n;
}

/** The (offset, numbytes) pairs of an old GNU header or extension block, up to the first empty one. */
export function parseOldGnuSparse(area: Uint8Array): SparseRun[] {
  const runs: SparseRun[] = [];
  for (let at = 0; at + 24 <= area.length; at += 24) {
    if (area[at] === 0) break;
    runs.push({ offset: tarNumber(area.subarray(at, at + 12)), length: tarNumber(area.subarray(at + 12, at + 24)) });
  }
  return runs;
}

/** The 1.0 map block at the start of the data: count, then offset and size, one decimal per line, padded to 512. */
export function encodeSparseMap10(runs: readonly SparseRun[]): Uint8Array {
  const text = [runs.length, ...runs.flatMap((r) => [r.offset, r.length])].join('\n') + '\n';
  const out = new Uint8Array(Math.ceil(text.length / TAR_BLOCK) * TAR_BLOCK);
  out.set(utf8.encode(text));
  return out;
}

/** Reads exact byte counts from a member's body. */
export class BodyReader {
  #it: AsyncIterator<Uint8Array>;
  #buf: Uint8Array = new Uint8Array(0);
  /** Bytes handed out so far. */
  consumed = 0;
  constructor(it: AsyncIterator<Uint8Array>) {
    this.#it = it;
  }
  /** Up to `max` bytes (fewer at the end of a chunk); empty at the end of the body. */
  async some(max: number): Promise<Uint8Array> {
    if (this.#buf.length === 0) {
      const r = await this.#it.next();
      if (r.done) return new Uint8Array(0);
      this.#buf = r.value;
    }
    const n = Math.min(max, this.#buf.length);
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    this.consumed += n;
    return out;
  }
}

/** Parse the 1.0 map block from the start of the body (it ends at a 512 boundary). */
export async function readSparseMap10(body: BodyReader, name: string, storedSize: number): Promise<SparseRun[]> {
  const nums: number[] = [];
  let want = -1; // numbers still to read once the count is known
  let digits = '';
  while (want !== 0) {
    const b = await body.some(TAR_BLOCK - (body.consumed % TAR_BLOCK));
    if (b.length === 0) throw badArchive(`${name}: sparse map cut short`);
    for (let i = 0; i < b.length && want !== 0; i++) {
      const c = b[i]!;
      if (c === 0x0a) {
        if (!/^\d{1,16}$/.test(digits)) throw badArchive(`${name}: bad sparse map`);
        const n = Number(digits);
        digits = '';
        if (want < 0) {
          // each entry takes at least 4 bytes of map ("0\n0\n"): bound the count by the member's size
          if (n * 4 > storedSize) throw badArchive(`${name}: sparse map of ${n} entries in ${storedSize} bytes`);
          want = 2 * n;
        } else {
          nums.push(n);
          want--;
        }
      } else if (c >= 0x30 && c <= 0x39 && digits.length < 17) digits += String.fromCharCode(c);
      else throw badArchive(`${name}: bad sparse map`);
    }
  }
  // the rest of the map's last block is padding
  while (body.consumed % TAR_BLOCK) if ((await body.some(TAR_BLOCK - (body.consumed % TAR_BLOCK))).length === 0) break;
  const runs: SparseRun[] = [];
  for (let i = 0; i < nums.length; i += 2) runs.push({ offset: nums[i]!, length: nums[i + 1]! });
  return runs;
}
