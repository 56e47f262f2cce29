/**
 * Open an image read-write for a writing command, without commander: write-open.ts re-exports
 * it for the commander commands, and the `movedata` fast path (fast-path.ts) runs on it alone.
 */
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { Filesystem } from '../ext4/filesystem.js';
import { FileDevice } from '../io/file-device.js';
import type { Timestamp } from '../ext4/inode.js';
import { globalOptions, type CliContext, type GlobalOptions } from './context.js';

/** Reads up to this size are synchronous (fewer async round trips for metadata; data copies stay async). */
const SYNC_READ_MAX = 256 * 1024;

/**
 * Open IMAGE read-write (times from `now`, else SOURCE_DATE_EPOCH, else the clock), run fn, always
 * close; warnings to stderr. Opens the device and the Filesystem class directly rather than through
 * ext4kit/node, which would load the whole library into a one-call process.
 */
export async function withWritable<T>(image: string, cmd: Command | GlobalOptions, ctx: CliContext, fn: (fs: Filesystem) => Promise<T>, now?: Timestamp, opts: { syncReads?: boolean; syncWriteMax?: number; readOnly?: boolean } = {}): Promise<T> {
  // movedata/allocate keep every read async: a cold synchronous read on the main thread would hold
  // back the copy's early reads (copy-runs.ts startCopy). `readOnly` (defrag --dry-run) opens the
  // same lean way without write access.
  const write = !opts.readOnly;
  // The in-use check (is the image mounted through a loop device?) runs while the filesystem is
  // opened: reads only, and the device holds every write until the check passed.
  const device = await FileDevice.open(image, { write, inUseCheck: 'background', ...(opts.syncReads === false ? {} : { syncReadMax: SYNC_READ_MAX }), ...(opts.syncWriteMax ? { syncWriteMax: opts.syncWriteMax } : {}) });
  // (the hostname, as ext4kit/node's Filesystem gives it: the MMP block of a write open names it)
  let fs: Filesystem;
  try {
    fs = await Filesystem.open(device, { write, verifyChecksums: globalOptions(cmd).verify, closeDevice: true, platform: { hostname: () => hostname() }, ...(now ? { now } : {}) });
  } catch (e) {
    await device.close();
    await device.ready(); // a busy image says so first, as when the check came before the open
    throw e;
  }
  try {
    await device.ready();
  } catch (e) {
    await fs.close(); // (nothing was written: a write open writes at its first commit)
    throw e;
  }
  try {
    return await fn(fs);
  } finally {
    await fs.close();
    for (const w of fs.warnings) ctx.io.stderr.write(`ext4kit: warning: ${w}\n`);
  }
}
