/**
 * Commands a fresh process runs without commander. When argv is plainly
 * `CMD POSITIONAL… [FLAG…]` (plus the global `--no-verify` anywhere), with the exact number of
 * positionals and only the flags listed here, the command module's `runFast` is called
 * directly and the text it returns is written to fd 1 (output.ts). Loading commander and
 * building the program costs more than `ext4kit info` itself (commander also loads
 * node:child_process and node:events). Anything else — help, a typo, an option not listed,
 * `--`, a repeated flag — returns null and goes through commander (program.ts), which owns
 * usage errors and help. A command listed here prints the same on both paths
 * (test/cli/fast-path.test.ts). Only for commands whose output is one short text.
 */
import { processIO, writeStdoutSync } from './output.js';
import type { CliContext, GlobalOptions } from './context.js';

interface FastModule {
  /** The command's whole output. */
  runFast(positionals: readonly string[], flags: ReadonlySet<string>, globals: GlobalOptions, ctx: CliContext): Promise<string>;
}

interface FastSpec {
  positionals: number;
  flags: readonly string[];
  load(): Promise<FastModule>;
}

const FAST: Readonly<Record<string, FastSpec>> = {
  info: { positionals: 1, flags: ['--json'], load: () => import('./commands/info.js') },
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
  if (spec === undefined || positionals.length !== spec.positionals) return null;
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
