/**
 * Commands a fresh process runs without commander. When argv is plainly
 * `CMD POSITIONAL… [OPTION…]` (plus the global `--no-verify` anywhere), with as many positionals
 * as the command takes, only the flags and valued options listed here (`--opt v` or `--opt=v`),
 * and every required option given, the command
 * module's `runFast` is called directly and the text it returns is written to fd 1 (output.ts),
 * without creating process.stdout (for a pipe that loads node's net and stream modules). Loading
 * commander and building the program costs more than `ext4kit info` itself (commander also loads
 * node:child_process and node:events). Anything else — help, a typo, an option not listed, a
 * missing required option, `--`, a repeated option — returns null, and a value commander's parser
 * would refuse makes runFastModule return null: both go through commander (program.ts), which
 * owns usage errors and help. A command
 * listed here prints the same on both paths (test/cli/fast-path.test.ts,
 * test/cli/ls-fast-path.test.ts). Only for commands whose output is one text made after the work
 * succeeded (`info`; `ls`, whose listing of 10,000 entries is a few MB; `movedata`, one line;
 * `defrag` and `import`, a summary — their progress bars go to stderr meanwhile).
 *
 * This module names no command module: the bundle runs each fast command from its own
 * self-contained script with a V8 code cache (code-cache.ts, scripts/bundle-cli.mjs), which
 * imports its command and `runFastModule`; from source, fast-modules.ts loads them.
 */
import { processIO, writeStdoutSync } from './output.js';
import type { CliContext, GlobalOptions } from './context.js';

export interface FastModule {
  /**
   * The command's whole output (text, or UTF-8 bytes, or bytes in chunks: each chunk is written
   * before the next is asked for, so a command may hand out one buffer again and again — fresh
   * memory is what a large output costs most in a fresh process); `values` holds the valued
   * options given (`--from` → its text). null: this case is commander's after all (nothing was
   * printed; e.g. `free` on a filesystem whose journal needs recovery, which only the full
   * Filesystem open replays), and the caller runs commander.
   */
  runFast(positionals: readonly string[], flags: ReadonlySet<string>, globals: GlobalOptions, ctx: CliContext, values: ReadonlyMap<string, string>): Promise<string | Uint8Array | Iterable<Uint8Array> | null>;
  /**
   * For a command with valued options: whether commander's parser for each would accept its
   * value. When not, nothing runs and the command goes through commander, which prints the usage
   * error. (Here, not in parseFast: the parsers live with the commands, and launch.ts, which
   * loads parseFast for every command, `--version` included, must not load them.)
   */
  fastValuesValid?(values: ReadonlyMap<string, string>): boolean;
}

/** The commands with a fast path. */
export type FastCommandName = 'info' | 'ls' | 'free' | 'movedata' | 'defrag' | 'import';

/** A parsed fast-path argv. */
export interface FastArgs {
  command: FastCommandName;
  positionals: string[];
  flags: Set<string>;
  /** Valued options given, by long name, each value as typed (the command parses it again, as commander's parser would). */
  values: Map<string, string>;
  verify: boolean;
}

interface FastSpec {
  /** How many positionals the command takes: at least `positionals`, at most `maxPositionals` (default the same). */
  positionals: number;
  maxPositionals?: number;
  flags: readonly string[];
  /** Options that take a value (`--opt v`, `--opt=v`); the command module checks the values (FastModule.fastValuesValid). */
  values?: readonly string[];
  /** Valued options commander requires (`requiredOption`): missing, commander reports it. */
  required?: readonly string[];
}

const FAST: Readonly<Record<FastCommandName, FastSpec>> = {
  info: { positionals: 1, flags: ['--json'] },
  // `-R` and `--recursive` are one option: both given is a repeat commander accepts, so it goes there.
  ls: { positionals: 1, maxPositionals: 2, flags: ['-R', '--recursive', '--json'] },
  free: { positionals: 1, flags: ['--json'] },
  movedata: { positionals: 3, flags: ['--json'], values: ['--from', '--len'], required: ['--from', '--len'] },
  defrag: { positionals: 1, maxPositionals: Infinity, flags: ['--dry-run', '--json', '--no-compact', '--no-progress'], values: ['--max-seconds', '--max-bytes'] },
  import: { positionals: 2, flags: ['--no-xattrs', '--no-progress', '--json'], values: ['--at', '--owner', '--mode', '--now'] },
};

/** `argv` as a fast command, or null when it must go through commander. */
export function parseFast(argv: readonly string[]): FastArgs | null {
  let verify = true;
  let command: FastCommandName | undefined;
  const positionals: string[] = [];
  const flags = new Set<string>();
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const spec = command === undefined ? undefined : FAST[command];
    // A valued option takes the next word whatever it is (commander does: `--from --no-verify`
    // makes "--no-verify" the value, which then fails its parser), so it is looked at first.
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 2 ? a.slice(0, eq) : a;
    if (spec?.values?.includes(name)) {
      const v = name === a ? argv[++i] : a.slice(eq + 1);
      if (v === undefined || values.has(name)) return null;
      values.set(name, v);
    } else if (a === '--no-verify') verify = false;
    else if (spec === undefined) {
      if (a.startsWith('-') || !Object.hasOwn(FAST, a)) return null;
      command = a as FastCommandName;
    } else if (!a.startsWith('-')) positionals.push(a);
    else if (spec.flags.includes(a) && !flags.has(a)) flags.add(a);
    else return null;
  }
  if (command === undefined) return null;
  const spec = FAST[command];
  if (positionals.length < spec.positionals || positionals.length > (spec.maxPositionals ?? spec.positionals)) return null;
  if (flags.has('-R') && flags.has('--recursive')) return null;
  if (spec.required?.some((o) => !values.has(o))) return null;
  return { command, positionals, flags, values, verify };
}

/**
 * Run a parsed fast command with its loaded module: its output to fd 1, errors as the commander
 * path reports them. Resolves to the exit status, or null when a value is one commander refuses
 * or the command hands the case to commander (nothing printed: the caller goes through commander).
 */
export async function runFastModule(args: FastArgs, mod: FastModule): Promise<number | null> {
  if (mod.fastValuesValid && !mod.fastValuesValid(args.values)) return null;
  const io = processIO();
  try {
    const out = await mod.runFast(args.positionals, args.flags, { verify: args.verify }, { io }, args.values);
    if (out === null) return null;
    if (typeof out === 'string' || out instanceof Uint8Array) writeStdoutSync(out);
    else for (const chunk of out) writeStdoutSync(chunk, true);
    return 0;
  } catch (e) {
    // Imported here: only a failing run needs it.
    const { reportError } = await import('./context.js');
    return reportError(e, io);
  }
}
