/** `ext4kit ls IMAGE [PATH] [-R] [--json]`: list a directory like `ls -l` (never follows symlinks). */
import type { Command } from 'commander';
import { list, walkList, type ListEntry } from '../../ops/inspect.js';
import type { Filesystem } from '../../ext4/filesystem.js';
import { LsJson } from './ls-json.js';
import { escapeName, formatTime, modeString, table, withFs, write, type CliContext, type GlobalOptions } from '../util.js';

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
    .action(async (image: string, path: string, opts: { recursive?: boolean; json?: boolean }, cmd: Command) => write(ctx.io.stdout, await lsText(image, path, opts, cmd, ctx)));
}

/** fast-path.ts: `ls IMAGE [PATH] [-R|--recursive] [--json]` without commander (the same text, the same errors). */
export function runFast(positionals: readonly string[], flags: ReadonlySet<string>, globals: GlobalOptions, ctx: CliContext): Promise<string | Uint8Array> {
  return lsText(positionals[0]!, positionals[1] ?? '/', { recursive: flags.has('-R') || flags.has('--recursive'), json: flags.has('--json') }, globals, ctx);
}

/** The whole output, made after the walk succeeded (an error prints nothing on stdout). */
async function lsText(image: string, path: string, opts: { recursive?: boolean; json?: boolean }, globals: Command | GlobalOptions, ctx: CliContext): Promise<string | Uint8Array> {
  if (opts.json) return withFs(image, globals, ctx, (fs) => listJson(fs, path, !!opts.recursive));
  const entries = await withFs(image, globals, ctx, (fs) => list(fs, path, { recursive: !!opts.recursive }));
  return formatList(entries, !!opts.recursive);
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

/** `ls --json`'s output for an open filesystem: JSON.stringify(list(…), null, 2) + '\n' as UTF-8 (ls-json.ts). */
export async function listJson(fs: Filesystem, path: string, recursive: boolean): Promise<Uint8Array> {
  const out = new LsJson();
  for await (const _ of walkList(fs, path, { recursive }, out));
  return out.finish();
}
