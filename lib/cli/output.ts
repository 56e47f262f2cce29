/**
 * Where the binary's output goes. process.stdout and process.stderr are created on first use:
 * for a pipe, creating one loads node's stream and net modules, a sixth of what `ext4kit info`
 * costs in a fresh process. Short outputs (`--version`, fast-path.ts) are written to fd 1
 * synchronously instead, without ever creating process.stdout.
 */
import { writeSync } from 'node:fs';
import type { CliIO } from './context.js';

let stdoutReady = false;

/** process.stdout, with the binary's rule for a closed pipe (`ext4kit cat … | head`): not an error, stop quietly. */
function processStdout(): NodeJS.WriteStream {
  if (!stdoutReady) {
    stdoutReady = true;
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
  return process.stdout;
}

/** The binary's CliIO: the process streams, each created when a command first writes to it. */
export function processIO(): CliIO {
  return {
    get stdout() {
      return processStdout();
    },
    get stderr() {
      return process.stderr;
    },
  };
}

/**
 * Write `text` (a string, or UTF-8 bytes) to fd 1 now. A closed pipe ends the process as
 * processStdout's rule does; a non-blocking fd 1 that is full (EAGAIN: a parent made it
 * non-blocking) hands the rest to process.stdout, which waits for the reader — a copy of it when
 * `reused` (the caller fills the same buffer again once this returns).
 */
export function writeStdoutSync(text: string | Uint8Array, reused = false): void {
  if (stdoutReady) {
    processStdout().write(reused && typeof text !== 'string' ? Buffer.from(text) : text); // behind what is already queued there
    return;
  }
  const b = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  for (let off = 0; off < b.length; ) {
    try {
      off += writeSync(1, b, off, b.length - off);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EPIPE') process.exit(process.exitCode ?? 0);
      if (code !== 'EAGAIN') throw e;
      processStdout().write(reused ? Buffer.from(b.subarray(off)) : b.subarray(off));
      return;
    }
  }
}
