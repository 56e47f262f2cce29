/**
 * What the writing commands (allocate, movedata, import, export, cp, mkdir,
 * rm, mv, ln, chmod, chown, touch, xattr) share: opening the image
 * read-write with the global options and `--now`, parsing `IMAGE:PATH`,
 * modes, owners and times given on the command line.
 */
import * as nodeFs from 'node:fs';
import { InvalidArgumentError } from 'commander';
import type { Timestamp } from '../ext4/inode.js';
import { readMode, readOwner, readTime } from './option-values.js';

// (commander-free, for the fast path: open-writable.ts)
export { withWritable } from './open-writable.js';

// The parsers themselves are commander-free (option-values.ts: the fast path checks values with them).
const orInvalid = <T>(read: (v: string) => T | string) => (v: string): T => {
  const r = read(v);
  if (typeof r === 'string') throw new InvalidArgumentError(r);
  return r;
};

/** `--now SECONDS[.NANOSECONDS]` (or an ISO date) as a Timestamp. */
export const parseTime: (v: string) => Timestamp = orInvalid(readTime);

/** An octal mode (at most 07777). */
export const parseMode: (v: string) => number = orInvalid(readMode);

/** "UID[:GID]" or ":GID" (numbers); an absent part is -1 (unchanged). */
export const parseOwner: (v: string) => { uid: number; gid: number } = orInvalid(readOwner);

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
