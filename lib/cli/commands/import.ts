/**
 * `ext4kit import IMAGE DIR|TAR [--at PATH]`: a whole host tree (a directory,
 * or a tar archive: a file, or `-` for stdin) into the image, with types,
 * modes, owners, nanosecond times, xattrs, hard links, device nodes, fifos
 * and sparse holes; many entries per journaled transaction (ops/import-tree.ts).
 */
import * as nodeFs from 'node:fs';
import type { Command } from 'commander';
import { importTree } from '../../ops/import-tree.js';
import type { Timestamp } from '../../ext4/inode.js';
import { readHostTree } from '../host-tree.js';
import { readTar } from '../tar-tree.js';
import { printJson, write, type CliContext } from '../util.js';
import { parseMode, parseOwner, parseTime, withWritable } from '../write-open.js';
import { progressBar, summaryLine } from '../progress.js';

interface ImportCliOptions {
  at?: string;
  owner?: { uid: number; gid: number };
  mode?: number;
  now?: Timestamp;
  xattrs?: boolean;
  progress?: boolean;
  json?: boolean;
}

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
    .action(async (image: string, source: string, opts: ImportCliOptions, cmd: Command) => {
      const warn = (m: string) => ctx.io.stderr.write(`ext4kit: warning: ${m}\n`);
      const isDir = source !== '-' && nodeFs.statSync(source).isDirectory();
      let total = 0;
      let entries;
      let released: ((held: Uint8Array | null) => void) | undefined;
      if (isDir) {
        const t = await readHostTree(source, { xattrs: opts.xattrs !== false, warn, reuse: true });
        total = t.count;
        entries = t.entries;
        released = t.recycle;
      } else {
        const input = source === '-' ? process.stdin : nodeFs.createReadStream(source, { highWaterMark: 1024 * 1024 });
        entries = readTar(input);
      }
      const bar = progressBar(ctx, opts.progress !== false && !opts.json && total > 0, total, 'entries');
      const owner = opts.owner && { uid: opts.owner.uid === -1 ? 0 : opts.owner.uid, gid: opts.owner.gid === -1 ? 0 : opts.owner.gid };
      let summary;
      try {
        summary = await withWritable(image, cmd, ctx, (fs) =>
          importTree(fs, opts.xattrs === false ? stripXattrs(entries) : entries, {
            at: opts.at, owner, mode: opts.mode, now: opts.now, onProgress: bar ? (s) => bar.update(s) : undefined, released,
          }), opts.now);
      } finally {
        bar?.stop();
      }
      if (opts.json) return printJson(ctx, summary);
      await write(ctx.io.stdout, summaryLine('imported', summary));
    });
}

async function* stripXattrs<T extends { xattrs?: unknown }>(it: AsyncIterable<T>): AsyncGenerator<T> {
  for await (const e of it) yield { ...e, xattrs: [] };
}
