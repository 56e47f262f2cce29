/**
 * Commands a fresh process runs without commander. When argv is plainly
 * `CMD POSITIONAL… [FLAG…]` (plus the global `--no-verify` anywhere), with as many positionals
 * as the command takes and only the flags listed here, the command module's `runFast` is called
 * directly and the text it returns is written to fd 1 (output.ts), without creating
 * process.stdout (for a pipe that loads node's net and stream modules). Loading commander and
 * building the program costs more than `ext4kit info` itself (commander also loads
 * node:child_process and node:events). Anything else — help, a typo, an option not listed,
 * `--`, a repeated flag — returns null and goes through commander (program.ts), which owns
 * usage errors and help. A command listed here prints the same on both paths
 * (test/cli/fast-path.test.ts, test/cli/ls-fast-path.test.ts). Only for commands whose output is one
 * text made after the work succeeded (`info`; `ls`, whose listing of 10,000 entries is a few MB).
 *
 * This module names no command module: the bundle runs `ls` and `free` from their own
 * self-contained script with a V8 code cache (code-cache.ts, scripts/bundle-cli.mjs), which
 * imports its command and `runFastModule`; `info`, and every command from source, are loaded by
 * fast-modules.ts.
 */
import { processIO, writeStdoutSync } from './output.js';
import type { CliContext, GlobalOptions } from './context.js';

export interface FastModule {
  /** The command's whole output (text, or UTF-8 bytes). */
  runFast(positionals: readonly string[], flags: ReadonlySet<string>, globals: GlobalOptions, ctx: CliContext): Promise<string | Uint8Array>;
}

/** The commands with a fast path. */
export type FastCommandName = 'info' | 'ls' | 'free';

/** A parsed fast-path argv. */
export interface FastArgs {
  command: FastCommandName;
  positionals: string[];
  flags: Set<string>;
  verify: boolean;
}

interface FastSpec {
  /** How many positionals the command takes: at least `positionals`, at most `maxPositionals` (default the same). */
  positionals: number;
  maxPositionals?: number;
  flags: readonly string[];
}

const FAST: Readonly<Record<FastCommandName, FastSpec>> = {
  info: { positionals: 1, flags: ['--json'] },
  // `-R` and `--recursive` are one option: both given is a repeat commander accepts, so it goes there.
  ls: { positionals: 1, maxPositionals: 2, flags: ['-R', '--recursive', '--json'] },
  free: { positionals: 1, flags: ['--json'] },
};

/** `argv` as a fast command, or null when it must go through commander. */
export function parseFast(argv: readonly string[]): FastArgs | null {
  let verify = true;
  let command: FastCommandName | undefined;
  const positionals: string[] = [];
  const flags = new Set<string>();
  for (const a of argv) {
    if (a === '--no-verify') verify = false;
    else if (command === undefined) {
      if (a.startsWith('-') || !Object.hasOwn(FAST, a)) return null;
      command = a as FastCommandName;
    } else if (!a.startsWith('-')) positionals.push(a);
    else if (FAST[command].flags.includes(a) && !flags.has(a)) flags.add(a);
    else return null;
  }
  if (command === undefined) return null;
  const spec = FAST[command];
  if (positionals.length < spec.positionals || positionals.length > (spec.maxPositionals ?? spec.positionals)) return null;
  if (flags.has('-R') && flags.has('--recursive')) return null;
  return { command, positionals, flags, verify };
}

/** Run a parsed fast command with its loaded module: its output to fd 1, errors as the commander path reports them. Resolves to the exit status. */
export async function runFastModule(args: FastArgs, mod: FastModule): Promise<number> {
  const io = processIO();
  try {
    writeStdoutSync(await mod.runFast(args.positionals, args.flags, { verify: args.verify }, { io }));
    return 0;
  } catch (e) {
    // Imported here: only a failing run needs it.
    const { reportError } = await import('./context.js');
    return reportError(e, io);
  }
}
