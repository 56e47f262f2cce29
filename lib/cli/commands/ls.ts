/** `ext4kit ls IMAGE [PATH] [-R] [--json]`: list a directory like `ls -l` (never follows symlinks). */
import type { Command } from 'commander';
import { list, walkList } from '../../ops/inspect.js';
import type { Filesystem } from '../../ext4/filesystem.js';
import { LsJson } from './ls-json.js';
import { formatList } from './ls-text.js';
import { withFs, write, type CliContext, type GlobalOptions } from '../util.js';

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

// A fresh process runs `ls` without commander through ls-run.ts (a DiskReader, no Filesystem); when
// that cannot answer, it hands the case back to commander, and so to lsText below.

/** The whole output, made after the walk succeeded (an error prints nothing on stdout). */
async function lsText(image: string, path: string, opts: { recursive?: boolean; json?: boolean }, globals: Command | GlobalOptions, ctx: CliContext): Promise<string | Uint8Array> {
  if (opts.json) return withFs(image, globals, ctx, (fs) => listJson(fs, path, !!opts.recursive));
  const entries = await withFs(image, globals, ctx, (fs) => list(fs, path, { recursive: !!opts.recursive }));
  return formatList(entries, !!opts.recursive);
}

/** `ls --json`'s output for an open filesystem: JSON.stringify(list(…), null, 2) + '\n' as UTF-8 (ls-json.ts). */
export async function listJson(fs: Filesystem, path: string, recursive: boolean): Promise<Uint8Array> {
  const out = new LsJson();
  for await (const _ of walkList(fs, path, { recursive }, out));
  return out.finish();
}
