/**
 * Directory-index name hashes (ext4-format.md §8.4), as libext2fs
 * ext2fs_dirhash and the kernel's ext4fs_dirhash compute them:
 * legacy (0), half_md4 (1), tea (2) and their unsigned-char variants
 * (3, 4, 5). siphash (6) needs the casefold+encryption key and is refused.
 *
 * Facts this module relies on (checked against e2fsprogs 1.47 dirhash.c and
 * the kernel's fs/ext4/hash.c):
 * - The state starts from the superblock's s_hash_seed unless all four words
 *   are zero, in which case the MD4 initial vector is used.
 * - Names are consumed in chunks (32 bytes for half_md4, 16 for tea). Every
 *   chunk is packed with the *remaining* length as padding, not the total
 *   length, so a 40-byte name's second chunk is padded with 8s.
 * - The major hash has bit 0 cleared (bit 0 marks collision continuation in
 *   index slots). The kernel additionally never returns 0xFFFFFFFE (the
 *   32-bit htree EOF cookie, 0x7FFFFFFF << 1) and maps it to 0xFFFFFFFC;
 *   e2fsprogs does not. `compat: 'kernel'` (the default) follows the kernel,
 *   which is what decides where names live in kernel-built trees.
 * - "Signed" means each name byte is sign-extended (as x86's `char`) before
 *   it is mixed in; only bytes >= 0x80 differ between the variants.
 * - In a casefolded directory the kernel hashes the folded name (or the raw
 *   bytes when the name does not fold): pass ciHashName(name) from
 *   ./casefold.ts, not the name.
 */
import { Ext4Error } from '../errors.js';

export const DX_HASH_LEGACY = 0;
export const DX_HASH_HALF_MD4 = 1;
export const DX_HASH_TEA = 2;
export const DX_HASH_LEGACY_UNSIGNED = 3;
export const DX_HASH_HALF_MD4_UNSIGNED = 4;
export const DX_HASH_TEA_UNSIGNED = 5;
export const DX_HASH_SIPHASH = 6;

/** s_flags bits that say how the filesystem's creator hashed names. */
export const EXT2_FLAGS_SIGNED_HASH = 0x1;
export const EXT2_FLAGS_UNSIGNED_HASH = 0x2;

export interface DirHash {
  /** Major hash, bit 0 clear. */
  hash: number;
  /** Minor hash (0 for legacy). */
  minor: number;
}

const DEFAULT_SEED = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476] as const;

/**
 * The hash variant actually used for a directory: the dx root's (or the
 * superblock's default) hash_version, turned into its unsigned twin (+3) when
 * the filesystem hashes unsigned chars. Versions above tea are returned as-is.
 */
export function effectiveHashVersion(version: number, signed: boolean): number {
  return version <= DX_HASH_TEA && !signed ? version + 3 : version;
}

/** Whether a superblock's s_flags select signed hashing (the x86 default when neither flag is set). */
export function signedHashFromFlags(sFlags: number): boolean {
  return (sFlags & EXT2_FLAGS_UNSIGNED_HASH) === 0;
}

function charAt(name: Uint8Array, i: number, unsigned: boolean): number {
  const c = name[i]!;
  return unsigned || c < 0x80 ? c : c - 256;
}

/**
 * Pack up to 4*num bytes of `name` starting at `start` into `out[0..num)`
 * (str2hashbuf). `len` is the number of bytes remaining from `start`.
 */
function packWords(name: Uint8Array, start: number, len: number, out: Uint32Array, num: number, unsigned: boolean): void {
  let pad = (len | (len << 8)) >>> 0;
  pad = (pad | (pad << 16)) >>> 0;
  let val = pad;
  const n = Math.min(len, num * 4);
  let w = 0;
  for (let i = 0; i < n; i++) {
    val = (charAt(name, start + i, unsigned) + ((val << 8) >>> 0)) >>> 0;
    if (i % 4 === 3) {
      out[w++] = val;
      val = pad;
    }
  }
  if (w < num) out[w++] = val;
  while (w < num) out[w++] = pad;
}

function rotl(x: number, s: number): number {
  return ((x << s) | (x >>> (32 - s))) >>> 0;
}

const K2 = 0x5a827999;
const K3 = 0x6ed9eba1;

/** The cut-down MD4 compression used by half_md4; adds into `buf`. */
function halfMd4Transform(buf: Uint32Array, x: Uint32Array): void {
  let a = buf[0]!, b = buf[1]!, c = buf[2]!, d = buf[3]!;
  const F = (p: number, q: number, r: number) => (r ^ (p & (q ^ r))) >>> 0;
  const G = (p: number, q: number, r: number) => (((p & q) >>> 0) + (((p ^ q) & r) >>> 0)) >>> 0;
  const H = (p: number, q: number, r: number) => (p ^ q ^ r) >>> 0;
  // Round 1: words 0..7, shifts 3 7 11 19.
  const r1 = [3, 7, 11, 19];
  for (let i = 0; i < 8; i++) {
    const s = r1[i % 4]!;
    const k = x[i]!;
    switch (i % 4) {
      case 0: a = rotl((a + F(b, c, d) + k) >>> 0, s); break;
      case 1: d = rotl((d + F(a, b, c) + k) >>> 0, s); break;
      case 2: c = rotl((c + F(d, a, b) + k) >>> 0, s); break;
      default: b = rotl((b + F(c, d, a) + k) >>> 0, s); break;
    }
  }
  // Round 2: words 1,3,5,7,0,2,4,6, shifts 3 5 9 13.
  const o2 = [1, 3, 5, 7, 0, 2, 4, 6];
  const r2 = [3, 5, 9, 13];
  for (let i = 0; i < 8; i++) {
    const s = r2[i % 4]!;
    const k = (x[o2[i]!]! + K2) >>> 0;
    switch (i % 4) {
      case 0: a = rotl((a + G(b, c, d) + k) >>> 0, s); break;
      case 1: d = rotl((d + G(a, b, c) + k) >>> 0, s); break;
      case 2: c = rotl((c + G(d, a, b) + k) >>> 0, s); break;
      default: b = rotl((b + G(c, d, a) + k) >>> 0, s); break;
    }
  }
  // Round 3: words 3,7,2,6,1,5,0,4, shifts 3 9 11 15.
  const o3 = [3, 7, 2, 6, 1, 5, 0, 4];
  const r3 = [3, 9, 11, 15];
  for (let i = 0; i < 8; i++) {
    const s = r3[i % 4]!;
    const k = (x[o3[i]!]! + K3) >>> 0;
    switch (i % 4) {
      case 0: a = rotl((a + H(b, c, d) + k) >>> 0, s); break;
      case 1: d = rotl((d + H(a, b, c) + k) >>> 0, s); break;
      case 2: c = rotl((c + H(d, a, b) + k) >>> 0, s); break;
      default: b = rotl((b + H(c, d, a) + k) >>> 0, s); break;
    }
  }
  buf[0] = (buf[0]! + a) >>> 0;
  buf[1] = (buf[1]! + b) >>> 0;
  buf[2] = (buf[2]! + c) >>> 0;
  buf[3] = (buf[3]! + d) >>> 0;
}

const TEA_DELTA = 0x9e3779b9;

/** 16 rounds of TEA in Davies–Meyer mode over the first two state words. */
function teaTransform(buf: Uint32Array, x: Uint32Array): void {
  let sum = 0;
  let b0 = buf[0]!, b1 = buf[1]!;
  const a = x[0]!, b = x[1]!, c = x[2]!, d = x[3]!;
  for (let n = 0; n < 16; n++) {
    sum = (sum + TEA_DELTA) >>> 0;
    b0 = (b0 + ((((b1 << 4) >>> 0) + a) ^ (b1 + sum) ^ ((b1 >>> 5) + b))) >>> 0;
    b1 = (b1 + ((((b0 << 4) >>> 0) + c) ^ (b0 + sum) ^ ((b0 >>> 5) + d))) >>> 0;
  }
  buf[0] = (buf[0]! + b0) >>> 0;
  buf[1] = (buf[1]! + b1) >>> 0;
}

function legacyHash(name: Uint8Array, unsigned: boolean): number {
  let h0 = 0x12a3fe2d, h1 = 0x37abe8f9;
  for (let i = 0; i < name.length; i++) {
    const c = charAt(name, i, unsigned);
    let h = (h1 + ((h0 ^ Math.imul(c, 7152373)) >>> 0)) >>> 0;
    if (h & 0x80000000) h = (h - 0x7fffffff) >>> 0;
    h1 = h0;
    h0 = h;
  }
  return (h0 << 1) >>> 0;
}

export interface DirHashOptions {
  /** 'kernel' (default) remaps the reserved EOF value 0xFFFFFFFE to 0xFFFFFFFC; 'e2fsprogs' does not. */
  compat?: 'kernel' | 'e2fsprogs';
}

/**
 * Hash a directory entry name.
 * @param version hash_version (0 legacy, 1 half_md4, 2 tea; 3/4/5 are the unsigned variants)
 * @param seed s_hash_seed as four u32 words; null/absent or all-zero selects the default seed
 * @param signed when true, versions 0–2 hash bytes as signed chars; when false they
 *   are turned into 3–5. Versions 3–5 are always unsigned.
 */
export function dirHash(name: Uint8Array, version: number, seed: Uint32Array | readonly number[] | null, signed: boolean, opts: DirHashOptions = {}): DirHash {
  const v = effectiveHashVersion(version, signed);
  const buf = new Uint32Array(DEFAULT_SEED);
  if (seed) {
    if (seed.length < 4) throw new Ext4Error('EINVAL', `hash seed has ${seed.length} words, expected 4`);
    if (seed[0] || seed[1] || seed[2] || seed[3]) for (let i = 0; i < 4; i++) buf[i] = seed[i]! >>> 0;
  }
  let hash: number;
  let minor = 0;
  switch (v) {
    case DX_HASH_LEGACY:
    case DX_HASH_LEGACY_UNSIGNED:
      hash = legacyHash(name, v === DX_HASH_LEGACY_UNSIGNED);
      break;
    case DX_HASH_HALF_MD4:
    case DX_HASH_HALF_MD4_UNSIGNED: {
      const unsigned = v === DX_HASH_HALF_MD4_UNSIGNED;
      const words = new Uint32Array(8);
      for (let p = 0; p < name.length; p += 32) {
        packWords(name, p, name.length - p, words, 8, unsigned);
        halfMd4Transform(buf, words);
      }
      hash = buf[1]!;
      minor = buf[2]!;
      break;
    }
    case DX_HASH_TEA:
    case DX_HASH_TEA_UNSIGNED: {
      const unsigned = v === DX_HASH_TEA_UNSIGNED;
      const words = new Uint32Array(4);
      for (let p = 0; p < name.length; p += 16) {
        packWords(name, p, name.length - p, words, 4, unsigned);
        teaTransform(buf, words);
      }
      hash = buf[0]!;
      minor = buf[1]!;
      break;
    }
    case DX_HASH_SIPHASH:
      throw new Ext4Error('EOPNOTSUPP', 'siphash directory hashing (casefolded+encrypted directories) is not supported');
    default:
      throw new Ext4Error('EINVAL', `unknown directory hash version ${version}`);
  }
  hash = (hash & ~1) >>> 0;
  if ((opts.compat ?? 'kernel') === 'kernel' && hash === 0xfffffffe) hash = 0xfffffffc;
  return { hash, minor: minor >>> 0 };
}
