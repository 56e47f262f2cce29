/**
 * Name matching in casefolded directories (EXT4_CASEFOLD_FL on a filesystem
 * with the casefold feature), the way Linux does it with s_encoding
 * EXT4_ENC_UTF8_12_1 (fs/unicode, fs/libfs.c generic_ci_match, fs/ext4/hash.c):
 *
 * - A name is folded to the kernel's "nfdicf" form of Unicode 12.1: each code
 *   point replaced by the NFD of its full case folding (CaseFolding status C+F,
 *   so ß → ss), Default_Ignorable_Code_Points dropped, then runs of combining
 *   marks put in canonical order. The data is Unicode 12.1's
 *   (./casefold-data.ts), not the runtime's: String.prototype.normalize follows
 *   the runtime's ICU (Unicode 15 to 17 in Node 20+), which folds and orders
 *   code points added after 12.1 (e.g. U+A7C7, U+1AC1) where the kernel passes
 *   them through as unmapped class-0 characters.
 * - Folding walks the name the way the kernel's utf8byte cursor does, quirks
 *   included: the name ends at a NUL byte; a continuation byte at offset 0 or
 *   any ill-formed sequence makes the whole name invalid; a stray continuation
 *   byte after a complete character passes through as itself (and, inside a
 *   run of combining marks, once per reordering pass); an ignorable code point
 *   ends a run of combining marks like a class-0 character.
 * - Lookup (generic_ci_match): an entry matches if its bytes equal the name,
 *   or both fold and the folds are equal. A name that does not fold matches
 *   only byte for byte; with SB_ENC_STRICT_MODE_FL such a name is refused
 *   (EINVAL, as the kernel's d_hash refuses it) before the directory is read.
 * - htree hashes (ext4fs_dirhash) are computed on the folded name, or on the
 *   raw bytes when the name does not fold.
 */
import { Ext4Error } from '../errors.js';
import { COMBINING_CLASS, FOLD, IGNORABLE } from './casefold-data.js';

/** s_encoding: the only encoding ext4 defines. */
export const EXT4_ENC_UTF8_12_1 = 1;
/** s_encoding_flags bit: reject invalid UTF-8 names in casefolded directories. */
export const EXT4_ENC_STRICT_MODE_FL = 0x1;

interface Tables {
  fold: Map<number, readonly number[]>;
  ccc: Map<number, number>;
  ignorable: readonly (readonly [number, number])[];
}

let tables: Tables | null = null;

function parseRange(s: string): [number, number] {
  const [a, b] = s.split('-');
  const lo = parseInt(a!, 16);
  return [lo, b === undefined ? lo : parseInt(b, 16)];
}

/** Parse the generated tables on first use (a few thousand entries). */
function load(): Tables {
  if (tables) return tables;
  const fold = new Map<number, readonly number[]>();
  for (const item of FOLD.split(',')) {
    const [cp, m] = item.split(':');
    fold.set(parseInt(cp!, 16), m!.split(' ').map((h) => parseInt(h, 16)));
  }
  const ccc = new Map<number, number>();
  for (const item of COMBINING_CLASS.split(',')) {
    const [r, v] = item.split('=');
    const [lo, hi] = parseRange(r!);
    for (let cp = lo; cp <= hi; cp++) ccc.set(cp, Number(v));
  }
  const ignorable = IGNORABLE.split(',').map(parseRange);
  tables = { fold, ccc, ignorable };
  return tables;
}

const SBASE = 0xac00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11a7;
const VCOUNT = 21, TCOUNT = 28, NCOUNT = VCOUNT * TCOUNT, SCOUNT = 11172;

/** The nfdicf mapping of one code point (itself when it has none). */
function mapCodePoint(cp: number, t: Tables): readonly number[] {
  if (cp >= SBASE && cp < SBASE + SCOUNT) {
    // Hangul syllables decompose algorithmically (Unicode §3.12).
    const s = cp - SBASE;
    const t0 = s % TCOUNT;
    const lv = [LBASE + Math.floor(s / NCOUNT), VBASE + Math.floor((s % NCOUNT) / TCOUNT)];
    return t0 ? [...lv, TBASE + t0] : lv;
  }
  const m = t.fold.get(cp);
  if (m) return m;
  for (const [lo, hi] of t.ignorable) if (cp >= lo && cp <= hi) return [];
  return [cp];
}

/**
 * Decode one well-formed UTF-8 sequence (Unicode Table 3-7: shortest form, no
 * surrogates, at most U+10FFFF) at `i`, not reading at or past `end`.
 * Returns [code point, length] or null.
 */
function decodeAt(b: Uint8Array, i: number, end: number): [number, number] | null {
  const c0 = b[i]!;
  if (c0 < 0x80) return [c0, 1];
  let len: number, cp: number, lo = 0x80, hi = 0xbf;
  if (c0 >= 0xc2 && c0 <= 0xdf) { len = 2; cp = c0 & 0x1f; }
  else if (c0 >= 0xe0 && c0 <= 0xef) { len = 3; cp = c0 & 0x0f; if (c0 === 0xe0) lo = 0xa0; else if (c0 === 0xed) hi = 0x9f; }
  else if (c0 >= 0xf0 && c0 <= 0xf4) { len = 4; cp = c0 & 0x07; if (c0 === 0xf0) lo = 0x90; else if (c0 === 0xf4) hi = 0x8f; }
  else return null;
  if (i + len > end) return null;
  for (let k = 1; k < len; k++) {
    const c = b[i + k]!;
    if (c < (k === 1 ? lo : 0x80) || c > (k === 1 ? hi : 0xbf)) return null;
    cp = (cp << 6) | (c & 0x3f);
  }
  return [cp, len];
}

function pushUtf8(out: number[], cp: number): void {
  if (cp < 0x80) out.push(cp);
  else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
  else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
}

// A folded name is a sequence of units: an output code point with its class,
// a stray continuation byte, or the empty mapping of an ignorable.
const RAW = -1;
const EMPTY = -2;

/**
 * The kernel's utf8_casefold of `name` for utf8-12.1: the folded bytes, or
 * null when the kernel's cursor rejects the name (not UTF-8 by its rules).
 */
export function utf8Casefold(name: Uint8Array): Uint8Array | null {
  const t = load();
  let end = name.indexOf(0);
  if (end < 0) end = name.length;
  if (end > 0 && (name[0]! & 0xc0) === 0x80) return null;

  const val: number[] = [];
  const cls: number[] = []; // ccc for code points, RAW or EMPTY otherwise
  for (let i = 0; i < end; ) {
    const b = name[i]!;
    if ((b & 0xc0) === 0x80) {
      val.push(b);
      cls.push(RAW);
      i++;
      continue;
    }
    const d = decodeAt(name, i, end);
    if (!d) return null;
    const m = mapCodePoint(d[0], t);
    if (m.length === 0) {
      val.push(0);
      cls.push(EMPTY);
    }
    for (const cp of m) {
      val.push(cp);
      cls.push(t.ccc.get(cp) ?? 0);
    }
    i += d[1];
  }

  const out: number[] = [];
  const emit = (k: number) => (cls[k] === RAW ? out.push(val[k]!) : pushUtf8(out, val[k]!));
  const n = val.length;
  for (let i = 0; i < n; ) {
    const c = cls[i]!;
    if (c === EMPTY) { i++; continue; }
    if (c === RAW || c === 0) { emit(i++); continue; }
    // A run of combining marks up to the next class-0 or ignorable unit: the
    // cursor first scans it (emitting stray bytes only), then makes one pass
    // per distinct class in ascending order, each emitting that class's marks
    // and, again, the stray bytes, all in string order.
    let j = i + 1;
    while (j < n && cls[j] !== 0 && cls[j] !== EMPTY) j++;
    const classes = new Set<number>();
    for (let k = i; k < j; k++) {
      if (cls[k] === RAW) out.push(val[k]!);
      else classes.add(cls[k]!);
    }
    for (const pass of [...classes].sort((x, y) => x - y)) {
      for (let k = i; k < j; k++) if (cls[k] === RAW || cls[k] === pass) emit(k);
    }
    i = j;
  }
  return Uint8Array.from(out);
}

// Folds of on-disk names, memoised per name buffer (directory entries parsed
// from cached blocks keep their buffers, so a linear scan folds each name once).
const foldCache = new WeakMap<Uint8Array, Uint8Array | null>();

function foldCached(name: Uint8Array): Uint8Array | null {
  if (foldCache.has(name)) return foldCache.get(name)!;
  const f = utf8Casefold(name);
  foldCache.set(name, f);
  return f;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The superblock fields that say how casefolded directories compare names. */
export interface EncodingFields {
  s_encoding: number;
  s_encoding_flags: number;
}

/** A name being looked up in a casefolded directory. */
export interface CiName {
  /** What the htree hash is computed on: the folded name, or the raw bytes when it does not fold. */
  hashName: Uint8Array;
  /** Whether a directory entry's name matches (generic_ci_match). */
  matches(entryName: Uint8Array): boolean;
}

/**
 * Prepare `name` for lookup in a casefolded directory of a filesystem whose
 * superblock is `sb`. Throws EOPNOTSUPP for an encoding other than utf8-12.1
 * (the kernel refuses to mount those) and, under strict mode, EINVAL for a
 * name that is not valid UTF-8.
 */
export function ciLookupName(name: Uint8Array, sb: EncodingFields): CiName {
  if (sb.s_encoding !== EXT4_ENC_UTF8_12_1) {
    throw new Ext4Error('EOPNOTSUPP', `casefold encoding ${sb.s_encoding} is not supported (only utf8-12.1)`, { structure: 'superblock', location: { kind: 'field', field: 's_encoding' } });
  }
  const folded = utf8Casefold(name);
  if (!folded && sb.s_encoding_flags & EXT4_ENC_STRICT_MODE_FL) {
    throw new Ext4Error('EINVAL', 'name is not valid UTF-8 (casefolded directory, strict encoding)');
  }
  return {
    hashName: folded ?? name,
    matches(entryName: Uint8Array): boolean {
      if (bytesEqual(entryName, name)) return true;
      if (!folded) return false;
      const f = foldCached(entryName);
      return f !== null && bytesEqual(f, folded);
    },
  };
}

/**
 * The bytes ext4fs_dirhash hashes for an entry name in a casefolded directory
 * (for hash-order readdir and index checks): the fold, else the raw name.
 */
export function ciHashName(name: Uint8Array): Uint8Array {
  return foldCached(name) ?? name;
}
