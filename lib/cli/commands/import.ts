/**
 * `ext4kit import IMAGE DIR|TAR [--at PATH]`: a whole host tree (a directory,
 * or a tar archive: a file, or `-` for stdin) into the image, with types,
 * modes, owners, nanosecond times, xattrs, hard links, device nodes, fifos
 * and sparse holes; many entries per journaled transaction (ops/import-tree.ts).
 */
import * as nodeFs from 'node:fs';
import type { Command } from 'commander';
import { importTree } from '../../ops/import-tree.js';
import type { TreeEntry, TreeSummary } from '../../ops/tree-entry.js';
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
      // A directory's walk and reads start now, on their own thread, while the image opens.
      const tree = isDir ? readHostTree(source, { xattrs: opts.xattrs !== false, warn, reuse: true }) : null;
      // Rejections are taken where the tree is awaited (or dropped when the image failed to open).
      tree?.catch(() => undefined);
      const owner = opts.owner && { uid: opts.owner.uid === -1 ? 0 : opts.owner.uid, gid: opts.owner.gid === -1 ? 0 : opts.owner.gid };
      let bar = null as ReturnType<typeof progressBar>;
      let stopped = false;
      let summary;
      try {
        summary = await withWritable(image, cmd, ctx, async (fs) => {
          let entries: AsyncIterable<TreeEntry>;
          let released: ((held: Uint8Array | null) => void) | undefined;
          const showBar = opts.progress !== false && !opts.json;
          let onProgress: ((s: Readonly<TreeSummary>) => void) | undefined;
          if (tree) {
            const t = await tree;
            entries = t.entries;
            released = t.recycle;
            // The bar appears once the walk (ahead of the import) has counted the entries.
            if (showBar) {
              t.counted().then((n) => { if (!stopped) bar = progressBar(ctx, n > 0, n, 'entries'); }, () => undefined);
              onProgress = (s) => bar?.update(s);
            }
          } else entries = readTar(source === '-' ? process.stdin : nodeFs.createReadStream(source, { highWaterMark: 1024 * 1024 }));
          return importTree(fs, opts.xattrs === false ? stripXattrs(entries) : entries, {
            at: opts.at, owner, mode: opts.mode, now: opts.now, onProgress, released,
          });
        }, opts.now);
      } finally {
        stopped = true;
        bar?.stop();
        // No reader thread is left behind (importTree stopped early, or the image did not open).
        await tree?.then((t) => t.close(), () => undefined);
      }
      if (opts.json) return printJson(ctx, summary);
      await write(ctx.io.stdout, summaryLine('imported', summary));
    });
}

async function* stripXattrs<T extends { xattrs?: unknown }>(it: AsyncIterable<T>): AsyncGenerator<T> {
  for await (const e of it) yield { ...e, xattrs: [] };
}
