/**
 * `ext4kit export IMAGE PATH DIR|TAR`: a tree of the image to a host
 * directory (created when missing) or a tar archive (a name ending in .tar,
 * or - for stdout), with what `import` keeps (ops/export-tree.ts). Tar: pax,
 * files with holes as GNU sparse 1.0 members, xattrs as GNU tar's
 * SCHILY.xattr records; sockets skipped with a warning (../tar-tree.ts).
 */
import * as nodeFs from 'node:fs';
import type { Command } from 'commander';
import { exportTree } from '../../ops/export-tree.js';
import { countEntry, emptySummary, type TreeEntry } from '../../ops/tree-entry.js';
import { writeHostTree } from '../host-tree.js';
import { writeTar } from '../tar-tree.js';
import { printJson, withFs, write, type CliContext } from '../util.js';
import { summaryLine } from '../progress.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('export')
    .description('copy a tree of the image to a host directory, or to a tar archive (DEST ending in .tar, or - for stdout)')
    .argument('<image>', 'filesystem image or block device')
    .argument('<path>', 'directory (or file) inside the image')
    .argument('<dest>', 'host directory, file.tar, or -')
    .option('--tar', 'write a tar archive whatever DEST is called')
    .option('--no-xattrs', 'do not copy extended attributes')
    .option('--json', 'print a JSON summary (not with tar on stdout)')
    .action(async (image: string, path: string, dest: string, opts: { tar?: boolean; xattrs?: boolean; json?: boolean }, cmd: Command) => {
      const warn = (m: string) => ctx.io.stderr.write(`ext4kit: warning: ${m}\n`);
      const summary = emptySummary();
      const count = (e: TreeEntry) => countEntry(summary, e);
      await withFs(image, cmd, ctx, async (fs) => {
        let entries: AsyncIterable<TreeEntry> = exportTree(fs, path);
        if (opts.xattrs === false) entries = stripXattrs(entries);
        if (opts.tar || dest === '-' || dest.endsWith('.tar')) {
          const out = dest === '-' ? ctx.io.stdout : nodeFs.createWriteStream(dest, { flags: 'wx' });
          await writeTar(entries, out, { warn, onEntry: count, end: dest !== '-' });
        } else await writeHostTree(dest, entries, { warn, xattrs: opts.xattrs !== false, onEntry: count });
      });
      if (dest === '-') return;
      if (opts.json) return printJson(ctx, summary);
      await write(ctx.io.stdout, summaryLine('exported', summary));
    });
}

async function* stripXattrs(it: AsyncIterable<TreeEntry>): AsyncGenerator<TreeEntry> {
  for await (const e of it) yield { ...e, xattrs: [] };
}
