/**
 * What every command shares that loads no filesystem code: where a command writes, the global
 * options, opening the image's device, writing with backpressure, JSON and table text, and
 * turning errors into messages and exit codes. `ext4kit info` (fast-path.ts) runs on this
 * alone; util.ts re-exports it with the helpers that open a Filesystem.
 */
import type { Command } from 'commander';
import { isExt4Error } from '../errors.js';
import { FileDevice } from '../io/file-device.js';

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

/** The global options of a commander command (or, on the commander-free fast path, the parsed ones as they are). */
export function globalOptions(cmd: Command | GlobalOptions): GlobalOptions {
  if (!('optsWithGlobals' in cmd)) return cmd;
  const o = cmd.optsWithGlobals<{ verify?: boolean }>();
  return { verify: o.verify !== false };
}

/**
 * Metadata-sized reads (a block plus the cache's read-ahead) are done synchronously: a one-shot
 * command reading hundreds of scattered bitmap blocks otherwise spends more on thread-pool round
 * trips than on the reads. Bulk data reads (cat) stay asynchronous.
 */
const CLI_SYNC_READ_MAX = 256 * 1024;

/** IMAGE's device, opened read-only as every reading command opens it. */
export function openDevice(image: string): Promise<FileDevice> {
  return FileDevice.open(image, { write: false, syncReadMax: CLI_SYNC_READ_MAX });
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

/** A value as the CLI prints JSON: 2-space indented, trailing newline. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
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

/** "ext4kit: CODE: message" for an error, and the exit status for it. */
export function describeError(e: unknown): { message: string; exitCode: number } {
  if (isExt4Error(e)) return { message: `ext4kit: ${e.code}: ${e.message}`, exitCode: 1 };
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (e instanceof Error && typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return { message: `ext4kit: ${code}: ${e.message}`, exitCode: 1 };
  const detail = e instanceof Error ? (process.env.EXT4KIT_DEBUG ? (e.stack ?? e.message) : e.message) : String(e);
  return { message: `ext4kit: internal error: ${detail} (set EXT4KIT_DEBUG=1 for a stack trace; please report this)`, exitCode: 1 };
}

/**
 * A command failed: its message on stderr ("ext4kit: CODE: message"), and the exit status. A
 * reader that went away (`| head`) is not a failure. (Commander's own errors: program.ts.)
 */
export function reportError(e: unknown, io: CliIO): number {
  if ((e as NodeJS.ErrnoException | undefined)?.code === 'EPIPE') return 0;
  const d = describeError(e);
  io.stderr.write(d.message + '\n');
  return d.exitCode;
}
