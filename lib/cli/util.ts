/**
 * Shared helpers for the `ext4kit` commands: opening the image as a Filesystem with the global
 * options, JSON and table printing, streaming bytes with backpressure, and (context.ts, re-exported)
 * where output goes and turning errors into messages and exit codes.
 * The CLI only formats what lib/ops returns; it never parses on-disk bytes.
 */
import { hostname } from 'node:os';
import type { Command } from 'commander';
import type { FileDevice } from '../io/file-device.js';
// The module itself, not lib/node.ts: that one re-exports the whole library (the defragmenter
// included). Commands that need no Filesystem (info) import context.ts instead of this module.
import { Filesystem } from '../ext4/filesystem.js';
import { globalOptions, jsonText, openDevice, write, type CliContext, type GlobalOptions } from './context.js';

/** Open IMAGE (or a device from openDevice, which the filesystem then closes) read-only with the global options. */
export async function openFs(image: string | FileDevice, cmd: Command | GlobalOptions): Promise<Filesystem> {
  const device = typeof image === 'string' ? await openDevice(image) : image;
  // The hostname is what ext4kit/node's Filesystem would give (only MMP on a write open uses it).
  return Filesystem.open(device, { write: false, verifyChecksums: globalOptions(cmd).verify, closeDevice: true, platform: { hostname: () => hostname() } });
}

/** Open IMAGE read-only, run fn, always close; fs warnings go to stderr. */
export async function withFs<T>(image: string | FileDevice, cmd: Command | GlobalOptions, ctx: CliContext, fn: (fs: Filesystem) => Promise<T>): Promise<T> {
  const fs = await openFs(image, cmd);
  try {
    return await fn(fs);
  } finally {
    await fs.close();
    for (const w of fs.warnings) ctx.io.stderr.write(`ext4kit: warning: ${w}\n`);
  }
}

/** Print a value as JSON (jsonText). */
export async function printJson(ctx: CliContext, value: unknown): Promise<void> {
  await write(ctx.io.stdout, jsonText(value));
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

/** A usage error raised by a command after commander's own parsing (exit status 2). */
export function usageError(cmd: Command, message: string): never {
  cmd.error(`error: ${message}`, { exitCode: 2, code: 'ext4kit.usage' });
}

export { packageVersion } from './version.js';
export * from './context.js';
