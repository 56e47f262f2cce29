/**
 * What the writing commands (allocate, movedata, import, export, cp, mkdir,
 * rm, mv, ln, chmod, chown, touch, xattr) share: opening the image
 * read-write with the global options and `--now`, parsing `IMAGE:PATH`,
 * modes, owners and times given on the command line.
 */
import * as nodeFs from 'node:fs';
import { InvalidArgumentError } from 'commander';
import type { Timestamp } from '../ext4/inode.js';

// (commander-free, for the fast path: open-writable.ts)
export { withWritable } from './open-writable.js';

/** `--now SECONDS[.NANOSECONDS]` (or an ISO date) as a Timestamp. */
export function parseTime(v: string): Timestamp {
  const m = /^(-?\d+)(?:\.(\d{1,9}))?$/.exec(v);
  if (m) {
    const sec = Number(m[1]);
    const nsec = Number((m[2] ?? '').padEnd(9, '0'));
    if (!Number.isSafeInteger(sec)) throw new InvalidArgumentError('seconds out of range');
    return v.startsWith('-') && nsec ? { sec: sec - 1, nsec: 1e9 - nsec } : { sec, nsec };
  }
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new InvalidArgumentError('not seconds since the epoch nor a date');
  const sec = Math.floor(ms / 1000);
  return { sec, nsec: (ms - sec * 1000) * 1e6 };
}

/** An octal mode (at most 07777). */
export function parseMode(v: string): number {
  if (!/^[0-7]{1,4}$/.test(v)) throw new InvalidArgumentError('an octal mode such as 644 or 0755');
  return parseInt(v, 8);
}

/** "UID[:GID]" or ":GID" (numbers); an absent part is -1 (unchanged). */
export function parseOwner(v: string): { uid: number; gid: number } {
  const m = /^(\d*)(?::(\d*))?$/.exec(v);
  if (!m || (m[1] === '' && (m[2] ?? '') === '')) throw new InvalidArgumentError('UID[:GID] (numbers)');
  const n = (s: string | undefined) => (s === undefined || s === '' ? -1 : Number(s));
  const uid = n(m[1]), gid = n(m[2]);
  if (uid > 0xffffffff || gid > 0xffffffff) throw new InvalidArgumentError('ids are 32-bit');
  return { uid, gid };
}

/** `IMAGE:PATH` when IMAGE is an existing file or block device (e2cp's notation); null for a host path. */
export function imageSide(arg: string): { image: string; path: string } | null {
  for (let i = arg.indexOf(':'); i > 0; i = arg.indexOf(':', i + 1)) {
    const image = arg.slice(0, i);
    try {
      const st = nodeFs.statSync(image);
      if (st.isFile() || st.isBlockDevice()) return { image, path: arg.slice(i + 1) || '/' };
    } catch {
      /* not this split */
    }
  }
  return null;
}
