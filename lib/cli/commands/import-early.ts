/**
 * `ext4kit import IMAGE DIR` before its code loads: launch.ts calls this as soon as argv says import,
 * and the directory's reader thread and xattr helper start now (host-read-start.ts), while the
 * main thread loads the import's script; import-run.ts's readHostTree takes them over. A tar source
 * (a file, or - for stdin) starts nothing. Nothing here may fail the command: whatever goes wrong
 * is left to import-run.ts, which reports it.
 */
import { statSync } from 'node:fs';
import type { FastArgs } from '../fast-path.js';
import { startReadEarly } from '../host-read-start.js';

/** The read options import-run.ts gives readHostTree (a read started with others is not taken). */
export const IMPORT_READ = { reuse: true } as const;

export function startImportEarly(args: FastArgs): void {
  const source = args.positionals[1];
  if (source === undefined || source === '-') return;
  try {
    if (!statSync(source).isDirectory()) return;
    startReadEarly(source, { reuse: IMPORT_READ.reuse, xattrs: !args.flags.has('--no-xattrs') });
  } catch {
    // (import-run.ts stats the source again and reports the error)
  }
}
