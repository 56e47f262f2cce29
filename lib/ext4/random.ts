/**
 * Random values written to disk (i_generation of new inodes, the MMP claim
 * sequence). When the fs clock is fixed (`fs.reproducible`: a `now` option
 * or SOURCE_DATE_EPOCH) they come from a PRNG seeded with the fs UUID, the
 * time and what the value is for (e.g. the inode number), so the same calls
 * on the same image write the same bytes; otherwise from the platform's
 * CSPRNG: the open's injected platform (platform.ts; by default Web Crypto, which
 * browsers and Node ≥ 20 both have — no node:crypto import here).
 */
import { Ext4Error } from '../errors.js';
import { Prng, hashString } from '../io/prng.js';
import type { Timestamp } from './clock.js';
import { defaultPlatform, type Platform } from './platform.js';

/** What the seed is drawn from. */
export interface RandomSource {
  readonly reproducible: boolean;
  readonly now: () => Timestamp;
  readonly sb: { readonly s_uuid: Uint8Array };
  /** Where CSPRNG values come from (the open's OpenOptions.platform, defaults filled in). */
  readonly platform: Pick<Platform, 'randomValues'>;
}

function cryptoU32(platform: Pick<Platform, 'randomValues'>): number {
  return platform.randomValues(new Uint32Array(1))[0]!;
}

const draws = new WeakMap<RandomSource, number>();

/** 4 KiB of CSPRNG output per platform, handed out a word at a time: one crypto call per 1,024 new inodes, not one each. */
const POOL_WORDS = 1024;
const pools = new WeakMap<object, { words: Uint32Array; next: number }>();

function pooledU32(platform: Pick<Platform, 'randomValues'>): number {
  let p = pools.get(platform);
  if (!p) pools.set(platform, (p = { words: new Uint32Array(POOL_WORDS), next: POOL_WORDS }));
  if (p.next === POOL_WORDS) {
    platform.randomValues(p.words);
    p.next = 0;
  }
  const x = p.words[p.next]!;
  p.words[p.next++] = 0; // a drawn value is not kept in memory
  return x;
}

/** The last fs UUID turned into hex, with its bytes (a reproducible draw per new inode made the string again each time). */
let lastUuid: { bytes: Uint8Array; hex: string } | null = null;

function hexOf(uuid: Uint8Array): string {
  const l = lastUuid;
  if (l && l.bytes.length === uuid.length) {
    let i = 0;
    while (i < uuid.length && l.bytes[i] === uuid[i]) i++;
    if (i === uuid.length) return l.hex;
  }
  const hex = Array.from(uuid, (b) => b.toString(16).padStart(2, '0')).join('');
  lastUuid = { bytes: uuid.slice(), hex };
  return hex;
}

/** The seed's hashed prefix for the last (uuid, time). */
let lastPrefix: { uuid: string; sec: number; nsec: number; hash: number } | null = null;

/**
 * A uniformly random integer in [0, n), n in 1..2^32; deterministic in (uuid, now, purpose) when
 * `src.reproducible`. `purpose` may be given as a function: it is only needed then (an import
 * otherwise built a string per new inode for nothing).
 */
export function randomBelow(src: RandomSource, n: number, purpose: string | (() => string)): number {
  if (!Number.isInteger(n) || n < 1 || n > 2 ** 32) throw new Ext4Error('EINVAL', `randomBelow: bad bound ${n}`);
  if (src.reproducible) {
    const t = src.now();
    // (compared byte by byte: the bytes as they are now, whichever array holds them)
    const uuid = hexOf(src.sb.s_uuid);
    if (typeof purpose === 'function') purpose = purpose();
    // The draw number keeps values apart when the same purpose recurs in one session (an inode
    // number reused by a second temporary file gets a new i_generation, as the kernel's would).
    const k = (draws.get(src) ?? 0) + 1;
    draws.set(src, k);
    // The seed is the string `${uuid}/${sec}.${nsec}/${purpose}/${k}` (new Prng(seed)), hashed here
    // in pieces: the prefix once per (uuid, time), not again with every new inode (with
    // SOURCE_DATE_EPOCH an import's draws were ~6 % of its main thread, measured).
    let pre = lastPrefix;
    if (!pre || pre.uuid !== uuid || pre.sec !== t.sec || pre.nsec !== t.nsec) lastPrefix = pre = { uuid, sec: t.sec, nsec: t.nsec, hash: hashString(`${uuid}/${t.sec}.${t.nsec}/`) };
    return new Prng(hashString(`/${k}`, hashString(purpose, pre.hash))).int(n);
  }
  return cryptoBelow(n, src.platform);
}

/** A uniformly random integer in [0, n) from the platform's CSPRNG (rejection sampling: unbiased). */
export function cryptoBelow(n: number, platform: Pick<Platform, 'randomValues'> = defaultPlatform): number {
  if (!Number.isInteger(n) || n < 1 || n > 2 ** 32) throw new Ext4Error('EINVAL', `cryptoBelow: bad bound ${n}`);
  const limit = 2 ** 32 - (2 ** 32 % n);
  for (let i = 0; i < 64; i++) {
    const x = cryptoU32(platform);
    if (x < limit) return x % n;
  }
  return cryptoU32(platform) % n; // 64 rejections in a row: astronomically unlikely (p < 2^-64)
}

/** A random 32-bit value (for i_generation): from a pooled CSPRNG buffer unless the session is reproducible. */
export function randomU32(src: RandomSource, purpose: string | (() => string)): number {
  return src.reproducible ? randomBelow(src, 2 ** 32, purpose) : pooledU32(src.platform);
}
