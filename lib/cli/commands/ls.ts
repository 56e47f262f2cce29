/** `ext4kit ls IMAGE [PATH] [-R] [--json]`: list a directory like `ls -l` (never follows symlinks). */
import type { Command } from 'commander';
import { list, listBatches, type ListEntry } from '../../ops/inspect.js';
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
      if (opts.json) {
        // Rows are stringified piece by piece as the walk yields them (none held to the end); the
        // text is written once, after the walk succeeded (an error prints nothing on stdout).
        const text = new JsonArrayText();
        await withFs(image, cmd, ctx, async (fs) => {
          for await (const rows of listBatches(fs, path, { recursive: !!opts.recursive })) text.add(rows);
        });
        return write(ctx.io.stdout, text.finish());
      }
      const entries = await withFs(image, cmd, ctx, (fs) => list(fs, path, { recursive: !!opts.recursive }));
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
 * `JSON.stringify(rows, null, 2) + '\n'`, byte for byte, for rows handed over in pieces: each piece
 * is stringified when it comes (its elements sit at the same depth as in the whole array, so they
 * come out indented exactly as there) and only its text is kept.
 */
export class JsonArrayText {
  private readonly parts: string[] = [];

  add(rows: readonly unknown[]): void {
    if (rows.length === 0) return;
    const text = JSON.stringify(rows, null, 2);
    // "[\n" + elements + "\n]": keep the elements; finish() puts the brackets and commas back.
    this.parts.push(text.slice(2, text.length - 2));
  }

  finish(): string {
    return this.parts.length === 0 ? '[]\n' : `[\n${this.parts.join(',\n')}\n]\n`;
  }
}
