/** `ext4kit ls IMAGE [PATH] [-R] [--json]`: list a directory like `ls -l` (never follows symlinks). */
import type { Command } from 'commander';
import { list, type ListEntry } from '../../ops/inspect.js';
import { escapeName, formatTime, modeString, table, withFs, write, type CliContext } from '../util.js';

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
      if (opts.json) return writeJsonArray(ctx.io.stdout, entries);
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

/**
 * `JSON.stringify(rows, null, 2) + '\n'`, byte for byte, without ever holding the whole listing as
 * one string: rows are stringified in slices (a slice's elements sit at the same depth, so they
 * come out indented exactly as in the whole array) and written one slice at a time.
 */
export async function writeJsonArray(out: NodeJS.WritableStream, rows: readonly unknown[], sliceRows = 256): Promise<void> {
  if (rows.length === 0) return write(out, '[]\n');
  for (let i = 0; i < rows.length; i += sliceRows) {
    const text = JSON.stringify(rows.slice(i, i + sliceRows), null, 2);
    // "[\n" + elements + "\n]": keep the brackets of the first and last slice only.
    const body = text.slice(2, text.length - 2);
    const last = i + sliceRows >= rows.length;
    await write(out, (i === 0 ? '[\n' : '') + body + (last ? '\n]\n' : ',\n'));
  }
}
