/**
 * What the writing commands (allocate, movedata, import, export, cp, mkdir,
 * rm, mv, ln, chmod, chown, touch, xattr) share: opening the image
 * read-write with the global options and `--now`, parsing `IMAGE:PATH`,
 * modes, owners and times given on the command line.
 */
import * as nodeFs from 'node:fs';
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { Filesystem } from '../ext4/filesystem.js';
import { FileDevice } from '../io/file-device.js';
import type { Timestamp } from '../ext4/inode.js';
import { globalOptions, type CliContext } from './util.js';

/** Reads up to this size are synchronous (fewer async round trips for metadata; data copies stay async). */
const SYNC_READ_MAX = 256 * 1024;

/**
 * Open IMAGE read-write (times from `now`, else SOURCE_DATE_EPOCH, else the clock), run fn, always
 * close; warnings to stderr. Opens the device and the Filesystem class directly rather than through
 * ext4kit/node, which would load the whole library into a one-call process.
 */
export async function withWritable<T>(image: string, cmd: Command, ctx: CliContext, fn: (fs: Filesystem) => Promise<T>, now?: Timestamp, opts: { syncReads?: boolean; readOnly?: boolean } = {}): Promise<T> {
  // movedata/allocate keep every read async: a cold synchronous read on the main thread would hold
  // back the copy's early reads (copy-runs.ts startCopy). `readOnly` (defrag --dry-run) opens the
  // same lean way without write access.
  const write = !opts.readOnly;
  const device = await FileDevice.open(image, { write, ...(opts.syncReads === false ? {} : { syncReadMax: SYNC_READ_MAX }) });
  // (the hostname, as ext4kit/node's Filesystem gives it: the MMP block of a write open names it)
  let fs: Filesystem;
  try {
    fs = await Filesystem.open(device, { write, verifyChecksums: globalOptions(cmd).verify, closeDevice: true, platform: { hostname: () => hostname() }, ...(now ? { now } : {}) });
  } catch (e) {
    await device.close();
    throw e;
  }
  try {
    return await fn(fs);
  } finally {
    await fs.close();
    for (const w of fs.warnings) ctx.io.stderr.write(`ext4kit: warning: ${w}\n`);
  }
}

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
