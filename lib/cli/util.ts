/**
 * Shared helpers for the `ext4kit` commands: where output goes, opening the
 * image with the global options, JSON and table printing, streaming bytes
 * with backpressure, and turning errors into messages and exit codes.
 * The CLI only formats what lib/ops returns; it never parses on-disk bytes.
 */
import type { Command } from 'commander';
import { isExt4Error } from '../errors.js';
import { FileDevice, Filesystem } from '../node.js';

/** Where a command writes. Tests pass their own streams; the binary uses process.stdout/stderr. */
export interface CliIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** What every command's register() receives besides the program. */
export interface CliContext {
  io: CliIO;
}

/** Options on the root program, visible to every command. */
export interface GlobalOptions {
  /** false with --no-verify: ignore metadata checksum mismatches. */
  verify: boolean;
}

export function globalOptions(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals<{ verify?: boolean }>();
  return { verify: o.verify !== false };
}

/**
 * Metadata-sized reads (a block plus the cache's read-ahead) are done synchronously: a one-shot
 * command reading hundreds of scattered bitmap blocks otherwise spends more on thread-pool round
 * trips than on the reads. Bulk data reads (cat) stay asynchronous.
 */
const CLI_SYNC_READ_MAX = 256 * 1024;

/** Open IMAGE read-only with the global options. */
export async function openFs(image: string, cmd: Command): Promise<Filesystem> {
  const device = await FileDevice.open(image, { write: false, syncReadMax: CLI_SYNC_READ_MAX });
  return Filesystem.open(device, { write: false, verifyChecksums: globalOptions(cmd).verify, closeDevice: true });
}

/** Open IMAGE read-only, run fn, always close; fs warnings go to stderr. */
export async function withFs<T>(image: string, cmd: Command, ctx: CliContext, fn: (fs: Filesystem) => Promise<T>): Promise<T> {
  const fs = await openFs(image, cmd);
  try {
    return await fn(fs);
  } finally {
    await fs.close();
    for (const w of fs.warnings) ctx.io.stderr.write(`ext4kit: warning: ${w}\n`);
  }
}

/** Write a string, waiting for 'drain' if the stream asks for it. */
export async function write(out: NodeJS.WritableStream, s: string | Uint8Array): Promise<void> {
  if (out.write(s)) return;
  await drained(out);
}

function drained(out: NodeJS.WritableStream): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (err?: unknown) => {
      out.removeListener('drain', onDrain);
      out.removeListener('error', onError);
      out.removeListener('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onError = (e: unknown) => done(e);
    const onClose = () => done(Object.assign(new Error('output closed'), { code: 'EPIPE' }));
    out.on('drain', onDrain);
    out.on('error', onError);
    out.on('close', onClose);
  });
}

/** Print a value as JSON (2-space indented, trailing newline). */
export async function printJson(ctx: CliContext, value: unknown): Promise<void> {
  await write(ctx.io.stdout, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Print an array as printJson would (JSON.stringify(list, null, 2)), serialised and written
 * a slice at a time: a whole 1 TiB disk has hundreds of thousands of free extents, and one
 * multi-megabyte string (then its copy into a Buffer) costs more than the scan that found them.
 * Each slice goes through the native serializer (a hand-written encoder runs interpreted in a
 * fresh process and loses); its "[\n" and "\n]" are cut and the pieces joined with ",\n".
 */
export async function printJsonArray(ctx: CliContext, list: readonly unknown[]): Promise<void> {
  const slice = 4096;
  if (list.length <= slice) return printJson(ctx, list);
  for (let i = 0; i < list.length; i += slice) {
    const s = JSON.stringify(list.slice(i, i + slice), null, 2);
    const last = i + slice >= list.length;
    await write(ctx.io.stdout, (i === 0 ? '[\n' : ',\n') + s.slice(2, -2) + (last ? '\n]\n' : ''));
  }
}

/**
 * Copy chunks to `out` one at a time, respecting backpressure: the next
 * chunk is not produced until the stream has taken the previous one, so at
 * most one chunk is held in memory whatever the file size.
 */
export async function pipeChunks(chunks: AsyncIterable<Uint8Array>, out: NodeJS.WritableStream): Promise<number> {
  let n = 0;
  for await (const c of chunks) {
    n += c.length;
    await write(out, c);
  }
  return n;
}

/** Align columns: each row is an array of cells; `right` lists right-aligned column indexes. Last column is never padded. */
export function table(rows: string[][], right: number[] = []): string {
  if (rows.length === 0) return '';
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : right.includes(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
        .join(' ')
        .trimEnd(),
    )
    .join('\n') + '\n';
}

/** `ls -l` permission string, e.g. "drwxr-xr-x", "-rwsr-xr-T". */
export function modeString(type: string, mode: number): string {
  const t = { file: '-', dir: 'd', symlink: 'l', chardev: 'c', blockdev: 'b', fifo: 'p', socket: 's' }[type] ?? '?';
  const bit = (m: number, c: string) => (mode & m ? c : '-');
  const special = (x: number, m: number, on: string, off: string) => (mode & m ? (mode & x ? on : off) : bit(x, 'x'));
  return (
    t +
    bit(0o400, 'r') + bit(0o200, 'w') + special(0o100, 0o4000, 's', 'S') +
    bit(0o040, 'r') + bit(0o020, 'w') + special(0o010, 0o2000, 's', 'S') +
    bit(0o004, 'r') + bit(0o002, 'w') + special(0o001, 0o1000, 't', 'T')
  );
}

/** Seconds since the epoch as "YYYY-MM-DD HH:MM:SS" UTC (with ".nnnnnnnnn" if nsec is given). */
export function formatTime(sec: number, nsec?: number): string {
  const d = new Date(sec * 1000);
  if (Number.isNaN(d.getTime())) return String(sec);
  const iso = d.toISOString(); // handles negative and far-future years (±YYYYYY)
  const base = iso.slice(0, iso.indexOf('T')) + ' ' + iso.slice(iso.indexOf('T') + 1, iso.indexOf('T') + 9);
  return nsec === undefined ? base : `${base}.${String(nsec).padStart(9, '0')}`;
}

/** Make a name safe for a terminal: control characters and backslashes become escapes. */
export function escapeName(s: string): string {
  return s.replace(/[\x00-\x1f\x7f\\]/g, (c) => (c === '\\' ? '\\\\' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/** "ext4kit: CODE: message" for an error, and the exit status for it. */
export function describeError(e: unknown): { message: string; exitCode: number } {
  if (isExt4Error(e)) return { message: `ext4kit: ${e.code}: ${e.message}`, exitCode: 1 };
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (e instanceof Error && typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return { message: `ext4kit: ${code}: ${e.message}`, exitCode: 1 };
  const detail = e instanceof Error ? (process.env.EXT4KIT_DEBUG ? (e.stack ?? e.message) : e.message) : String(e);
  return { message: `ext4kit: internal error: ${detail} (set EXT4KIT_DEBUG=1 for a stack trace; please report this)`, exitCode: 1 };
}

/** A usage error raised by a command after commander's own parsing (exit status 2). */
export function usageError(cmd: Command, message: string): never {
  cmd.error(`error: ${message}`, { exitCode: 2, code: 'ext4kit.usage' });
}

export { packageVersion } from './version.js';
