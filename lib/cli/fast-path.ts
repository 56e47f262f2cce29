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
 */
import { processIO, writeStdoutSync } from './output.js';
import type { CliContext, GlobalOptions } from './context.js';

interface FastModule {
  /** The command's whole output (text, or UTF-8 bytes). */
  runFast(positionals: readonly string[], flags: ReadonlySet<string>, globals: GlobalOptions, ctx: CliContext): Promise<string | Uint8Array>;
}

interface FastSpec {
  /** How many positionals the command takes: at least `positionals`, at most `maxPositionals` (default the same). */
  positionals: number;
  maxPositionals?: number;
  flags: readonly string[];
  load(): Promise<FastModule>;
}

const FAST: Readonly<Record<string, FastSpec>> = {
  info: { positionals: 1, flags: ['--json'], load: () => import('./commands/info.js') },
  // `-R` and `--recursive` are one option: both given is a repeat commander accepts, so it goes there.
  ls: { positionals: 1, maxPositionals: 2, flags: ['-R', '--recursive', '--json'], load: () => import('./commands/ls.js') },
  free: { positionals: 1, flags: ['--json'], load: () => import('./commands/free-output.js') },
};

/** The run of `argv` when it can skip commander, else null. Resolves to the exit status. */
export function fastCommand(argv: readonly string[]): (() => Promise<number>) | null {
  let verify = true;
  let spec: FastSpec | undefined;
  const positionals: string[] = [];
  const flags = new Set<string>();
  for (const a of argv) {
    if (a === '--no-verify') verify = false;
    else if (spec === undefined) {
      if (a.startsWith('-') || !Object.hasOwn(FAST, a)) return null;
      spec = FAST[a]!;
    } else if (!a.startsWith('-')) positionals.push(a);
    else if (spec.flags.includes(a) && !flags.has(a)) flags.add(a);
    else return null;
  }
  if (spec === undefined || positionals.length < spec.positionals || positionals.length > (spec.maxPositionals ?? spec.positionals)) return null;
  if (flags.has('-R') && flags.has('--recursive')) return null;
  const s = spec;
  return async () => {
    const io = processIO();
    // Imported here, not at the top: main.ts loads this module for `--version` too.
    const [{ reportError }, mod] = await Promise.all([import('./context.js'), s.load()]);
    try {
      writeStdoutSync(await mod.runFast(positionals, flags, { verify }, { io }));
      return 0;
    } catch (e) {
      return reportError(e, io);
    }
  };
}
