/** `ext4kit ls IMAGE [PATH] [-R] [--json]`: list a directory like `ls -l` (never follows symlinks). */
import type { Command } from 'commander';
import { list, type ListEntry } from '../../ops/inspect.js';
import { escapeName, formatTime, modeString, printJson, table, withFs, write, type CliContext } from '../util.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('ls')
    .description("list the entries of a directory inside the image (without '.' and '..'), sorted by name; a file lists itself")
    .argument('<image>', 'filesystem image or block device')
    .argument('[path]', 'path inside the image', '/')
    .option('-R, --recursive', 'list subdirectories recursively (symlinks are not followed)')
    .option('--json', 'print a JSON array of {path, name, ino, type, mode, size, nlink, uid, gid, mtime, target?, rdev?}')
    .addHelpText(
      'after',
      '\nHuman output columns: inode, mode, links, uid, gid, size (major, minor for devices), mtime (UTC), name.\n' +
        'With -R the name column is the full path. Names are decoded as UTF-8 (invalid bytes show as U+FFFD).',
    )
    .action(async (image: string, path: string, opts: { recursive?: boolean; json?: boolean }, cmd: Command) => {
      const entries = await withFs(image, cmd, ctx, (fs) => list(fs, path, { recursive: !!opts.recursive }));
      if (opts.json) return printJson(ctx, entries);
      await write(ctx.io.stdout, formatList(entries, !!opts.recursive));
    });
}

export function formatList(entries: ListEntry[], fullPaths: boolean): string {
  const rows = entries.map((e) => [
    String(e.ino),
    modeString(e.type, e.mode),
    String(e.nlink),
    String(e.uid),
    String(e.gid),
    e.rdev ? `${e.rdev.major}, ${e.rdev.minor}` : String(e.size),
    formatTime(e.mtime).slice(0, 16),
    escapeName(fullPaths ? e.path : e.name) + (e.target !== undefined ? ` -> ${escapeName(e.target)}` : ''),
  ]);
  return table(rows, [0, 2, 3, 4, 5]);
}
