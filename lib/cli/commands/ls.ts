/** `ext4kit ls IMAGE [PATH] [-R] [--json]`: list a directory like `ls -l` (never follows symlinks). */
import type { Command } from 'commander';
import { list, listBatches, type ListEntry } from '../../ops/inspect.js';
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
  if (opts.json) {
    // Rows are stringified piece by piece as the walk yields them (none held to the end).
    const text = new JsonArrayText();
    await withFs(image, globals, ctx, async (fs) => {
      for await (const rows of listBatches(fs, path, { recursive: !!opts.recursive })) text.add(rows);
    });
    return text.finish();
  }
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

/**
 * `JSON.stringify(rows, null, 2) + '\n'` as UTF-8, byte for byte, for rows handed over in pieces:
 * each piece is stringified when it comes (its elements sit at the same depth as in the whole
 * array, so they come out indented exactly as there) and its text is encoded at once into one
 * growing byte buffer. The native serializer beats any formatter written here (in a fresh process
 * that code runs interpreted: concatenating 10,000 rows by hand cost half again as much CPU), and
 * encoding each piece as it comes keeps no text alive: a listing held as strings to the end is
 * what every garbage collection of the run copies.
 */
export class JsonArrayText {
  private buf = new Uint8Array(64 * 1024);
  private len = 0;
  private pieces = 0;
  private readonly encoder = new TextEncoder();

  add(rows: readonly unknown[]): void {
    if (rows.length === 0) return;
    const text = JSON.stringify(rows, null, 2);
    // "[\n" + elements + "\n]": the whole text is encoded (no sliced copy of it), then its "[" becomes
    // the comma after the previous piece and its closing "\n]" is dropped (ASCII: 2 bytes).
    const start = this.len;
    this.put(text);
    if (this.pieces++ > 0) this.buf[start] = 0x2c; // ','
    this.len -= 2;
  }

  /** The whole text, UTF-8 encoded. */
  finish(): Uint8Array {
    this.put(this.pieces === 0 ? '[]\n' : '\n]\n');
    return this.buf.subarray(0, this.len);
  }

  private put(s: string): void {
    for (;;) {
      const r = this.encoder.encodeInto(s, this.buf.subarray(this.len));
      this.len += r.written;
      if (r.read === s.length) return;
      s = s.slice(r.read); // the buffer is full (encodeInto never splits a character)
      const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.len + s.length * 3));
      bigger.set(this.buf.subarray(0, this.len));
      this.buf = bigger;
    }
  }
}
