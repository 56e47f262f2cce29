/**
 * The `ext4kit` program: the root command, its global options, and every
 * subcommand. Each command lives in `commands/<name>.ts` and exports
 * `register(program, ctx)`; add new ones to COMMANDS (name → loader).
 *
 * Exit status: 0 success; 1 an operation failed (printed as
 * "ext4kit: CODE: message" on stderr); 2 usage error (unknown command or
 * option, missing argument).
 */
import { Command, CommanderError } from 'commander';
import { packageVersion, reportError, type CliContext, type CliIO } from './util.js';

export interface CommandModule {
  register(program: Command, ctx: CliContext): void;
}

/**
 * Every command, in the order `--help` lists them, each loaded on demand: a run registers only
 * the command it names (in the bundle, esbuild evaluates a dynamically imported module only when
 * it is imported, so `ext4kit info` does not pay for defrag's or check's modules).
 */
export const COMMANDS: Readonly<Record<string, () => Promise<CommandModule>>> = {
  info: () => import('./commands/info.js'),
  ls: () => import('./commands/ls.js'),
  cat: () => import('./commands/cat.js'),
  stat: () => import('./commands/stat.js'),
  extents: () => import('./commands/extents.js'),
  replay: () => import('./commands/replay.js'),
  free: () => import('./commands/free.js'),
  map: () => import('./commands/map.js'),
  allocate: () => import('./commands/allocate.js'),
  movedata: () => import('./commands/movedata.js'),
  frag: () => import('./commands/frag.js'),
  freefrag: () => import('./commands/freefrag.js'),
  draw: () => import('./commands/draw.js'),
  defrag: () => import('./commands/defrag.js'),
  check: () => import('./commands/check.js'),
  import: () => import('./commands/import.js'),
  export: () => import('./commands/export.js'),
  cp: () => import('./commands/cp.js'),
  mkdir: () => import('./commands/mkdir.js'),
  rm: () => import('./commands/rm.js'),
  mv: () => import('./commands/mv.js'),
  ln: () => import('./commands/ln.js'),
  chmod: () => import('./commands/chmod.js'),
  chown: () => import('./commands/chown.js'),
  touch: () => import('./commands/touch.js'),
  xattr: () => import('./commands/xattr.js'),
};

/**
 * The command `argv` runs: its first word, since no global option takes a value. Anything else
 * (no command, `help`, an unknown word) needs every command registered (for the listing, or
 * commander's "did you mean").
 */
function namedCommand(argv: readonly string[]): string | null {
  const w = argv.find((a) => !a.startsWith('-'));
  return w !== undefined && Object.hasOwn(COMMANDS, w) ? w : null;
}

/** The program with every command registered, or only `only`. */
export async function createProgram(io: CliIO, only: string | null = null): Promise<Command> {
  const names = only === null ? Object.keys(COMMANDS) : [only];
  const modules = await Promise.all(names.map((n) => COMMANDS[n]!()));
  return buildProgram(io, modules);
}

function buildProgram(io: CliIO, modules: readonly CommandModule[]): Command {
  const ctx: CliContext = { io };
  const program = new Command('ext4kit');
  program
    .description('Read, check, write and defragment ext2/ext3/ext4 images and block devices; movedata, allocate and getFreeBlocks run as journaled, crash-safe transactions')
    .version(packageVersion(), '-V, --version', 'print the version')
    .option('--no-verify', 'read anyway when metadata checksums do not match (default: verify and refuse)')
    .helpOption('-h, --help', 'show help')
    .helpCommand('help [command]', 'show help for a command')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', '\nExit status: 0 success, 1 the operation failed ("ext4kit: CODE: message" on stderr), 2 usage error.')
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, w) => w(`ext4kit: ${s}`),
    })
    .exitOverride();
  // Subcommands inherit the output settings, exitOverride and showHelpAfterError set above.
  for (const c of modules) c.register(program, ctx);
  return program;
}

/** Run the CLI with `argv` (without "node" and the script); resolves to the exit status. */
export async function run(argv: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  try {
    const program = await createProgram(io, namedCommand(argv));
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help, `help CMD`, --version exit 0; everything else commander reports is a usage error
      // (it has already printed the message, or the help for a bare `ext4kit`).
      return e.exitCode === 0 ? 0 : 2;
    }
    return reportError(e, io);
  }
}
