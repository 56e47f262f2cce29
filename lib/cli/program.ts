/**
 * The `ext4kit` program: the root command, its global options, and every
 * subcommand. Each command lives in `commands/<name>.ts` and exports
 * `register(program, ctx)`; add new ones to COMMANDS.
 *
 * Exit status: 0 success; 1 an operation failed (printed as
 * "ext4kit: CODE: message" on stderr); 2 usage error (unknown command or
 * option, missing argument).
 */
import { Command, CommanderError } from 'commander';
import { describeError, packageVersion, type CliContext, type CliIO } from './util.js';
import * as info from './commands/info.js';
import * as ls from './commands/ls.js';
import * as cat from './commands/cat.js';
import * as stat from './commands/stat.js';
import * as extents from './commands/extents.js';
import * as replay from './commands/replay.js';
import * as free from './commands/free.js';
import * as map from './commands/map.js';
import * as allocate from './commands/allocate.js';
import * as movedata from './commands/movedata.js';
import * as frag from './commands/frag.js';
import * as freefrag from './commands/freefrag.js';
import * as draw from './commands/draw.js';
import * as defrag from './commands/defrag.js';
import * as check from './commands/check.js';

export interface CommandModule {
  register(program: Command, ctx: CliContext): void;
}

/** Registered in this order (which is also the order `--help` lists them). */
export const COMMANDS: readonly CommandModule[] = [info, ls, cat, stat, extents, replay, free, map, allocate, movedata, frag, freefrag, draw, defrag, check];

export function createProgram(io: CliIO): Command {
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
  for (const c of COMMANDS) c.register(program, ctx);
  return program;
}

/** Run the CLI with `argv` (without "node" and the script); resolves to the exit status. */
export async function run(argv: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const program = createProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help, `help CMD`, --version exit 0; everything else commander reports is a usage error
      // (it has already printed the message, or the help for a bare `ext4kit`).
      return e.exitCode === 0 ? 0 : 2;
    }
    if ((e as NodeJS.ErrnoException).code === 'EPIPE') return 0; // the reader went away (`| head`)
    const d = describeError(e);
    io.stderr.write(d.message + '\n');
    return d.exitCode;
  }
}
