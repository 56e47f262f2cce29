/**
 * `ext4kit import IMAGE DIR|TAR [--at PATH]`: a whole host tree (a directory,
 * or a tar archive: a file, or `-` for stdin) into the image, with types,
 * modes, owners, nanosecond times, xattrs, hard links, device nodes, fifos
 * and sparse holes; many entries per journaled transaction (ops/import-tree.ts).
 * The work is import-run.ts's, which the fast path (fast-path.ts) runs too.
 */
import type { Command } from 'commander';
import { write, type CliContext } from '../util.js';
import { parseMode, parseOwner, parseTime } from '../write-open.js';
import { globalOptions } from '../context.js';
import { importText, type ImportArgs } from './import-run.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('import')
    .description('copy a host directory or a tar archive (- for stdin) into the image: types, modes, owners, ns times, xattrs, hard links, devices, fifos, sparse holes')
    .argument('<image>', 'filesystem image or block device (opened read-write)')
    .argument('<source>', 'a directory, a tar file, or - (tar on stdin)')
    .option('--at <path>', 'directory of the image the tree goes into (created when missing)', '/')
    .option('--owner <uid:gid>', 'owner of every entry instead of the source\'s', parseOwner)
    .option('--mode <octal>', 'permission bits of every entry but symlinks (directories get x where r is set)', parseMode)
    .option('--now <time>', 'ctime of everything written (seconds[.ns] or a date; default SOURCE_DATE_EPOCH, else the clock)', parseTime)
    .option('--no-xattrs', 'do not copy extended attributes')
    .option('--no-progress', 'no progress bar even on a terminal')
    .option('--json', 'print a JSON summary')
    .action(async (image: string, source: string, opts: ImportArgs, cmd: Command) => {
      await write(ctx.io.stdout, await importText(image, source, opts, globalOptions(cmd), ctx));
    });
}
