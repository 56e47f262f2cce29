/**
 * The times, modes and owners the writing commands take (`--now 1700000000.5`, `--mode 0644`,
 * `--owner 1000:100`), without commander: the fast path (fast-path.ts, `import`) checks a value
 * exactly as commander's parsers (write-open.ts parseTime / parseMode / parseOwner, which wrap
 * these) do. Each returns the value, or the reason it names none (the InvalidArgumentError text).
 */
import type { Timestamp } from '../ext4/inode.js';

/** `SECONDS[.NANOSECONDS]` (or a date Date.parse reads) as a Timestamp. */
export function readTime(v: string): Timestamp | string {
  const m = /^(-?\d+)(?:\.(\d{1,9}))?$/.exec(v);
  if (m) {
    const sec = Number(m[1]);
    const nsec = Number((m[2] ?? '').padEnd(9, '0'));
    if (!Number.isSafeInteger(sec)) return 'seconds out of range';
    return v.startsWith('-') && nsec ? { sec: sec - 1, nsec: 1e9 - nsec } : { sec, nsec };
  }
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) return 'not seconds since the epoch nor a date';
  const sec = Math.floor(ms / 1000);
  return { sec, nsec: (ms - sec * 1000) * 1e6 };
}

/** An octal mode (at most 07777). */
export function readMode(v: string): number | string {
  if (!/^[0-7]{1,4}$/.test(v)) return 'an octal mode such as 644 or 0755';
  return parseInt(v, 8);
}

/** "UID[:GID]" or ":GID" (numbers); an absent part is -1 (unchanged). */
export function readOwner(v: string): { uid: number; gid: number } | string {
  const m = /^(\d*)(?::(\d*))?$/.exec(v);
  if (!m || (m[1] === '' && (m[2] ?? '') === '')) return 'UID[:GID] (numbers)';
  const n = (s: string | undefined) => (s === undefined || s === '' ? -1 : Number(s));
  const uid = n(m[1]), gid = n(m[2]);
  if (uid > 0xffffffff || gid > 0xffffffff) return 'ids are 32-bit';
  return { uid, gid };
}
