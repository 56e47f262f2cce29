/**
 * `ext4kit frag IMAGE [PATH…] [--json] [-v] [--extents]`: fragmentation
 * statistics computed exactly as `e4defrag -c` computes them (the whole
 * filesystem without PATH, else each PATH on its own), or with --extents the
 * `filefrag -v` extent list of each PATH.
 */
import type { Command } from 'commander';
import { fileFrag, formatFileFrag, formatFragReport, fragReport, type FileFrag } from '../../ops/report.js';
import { printJson, usageError, withFs, write, type CliContext } from '../util.js';

interface FragOpts {
  json?: boolean;
  verbose?: boolean;
  extents?: boolean;
  oneBlockFiles?: boolean;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('frag')
    .description(
      'fragmentation report: per-file now/best extents, totals and the fragmentation score exactly as `e4defrag -c` computes them ' +
        '(the whole filesystem, or each PATH: a directory is walked, a file measured alone); with --extents, `filefrag -v` extent lists',
    )
    .argument('<image>', 'filesystem image or block device')
    .argument('[path...]', 'paths inside the image (default: the whole filesystem)')
    .option('-v, --verbose', 'list every file measured (as `e4defrag -c -v`), or with --extents nothing more')
    .option('-e, --extents', 'print the `filefrag -v` extent list of each PATH instead (files and directories)')
    .option('--one-block-files', 'also measure files of one block, as e4defrag 1.47.0 and earlier did (1.47.1+ skip them)')
    .option(
      '--json',
      'print JSON: {blockSize, blocksPerGroup, flexGroups, targets: [{arg, kind, error?, entries, regular, files: [{path, ino, index, now, best, physical, blocks, ' +
        'sizePerExtentKB, ratio}], skipped: [{path, index, reason}], fragmented: [...], totals: {now, best, blocks, averageSizePerExtentKB, filesRatio, score, ' +
        'scoreText, needsDefrag} | null}]}; with --extents an array of {path, ino, size, blockSize, blocks, mapping, nonExtent, rows: [{index, logical, logicalEnd, ' +
        'physical, physicalEnd, length, expected, flags, unwritten, fiemap}], extents, statfsBlocks}',
    )
    .action(async (image: string, paths: string[], opts: FragOpts, cmd: Command) => {
      if (opts.extents) {
        if (!paths.length) usageError(cmd, '--extents needs at least one PATH');
        const list: FileFrag[] = await withFs(image, cmd, ctx, async (fs) => {
          const out: FileFrag[] = [];
          for (const p of paths) out.push(await fileFrag(fs, p));
          return out;
        });
        if (opts.json) return printJson(ctx, list);
        await write(ctx.io.stdout, formatFileFrag(list));
        return;
      }
      const report = await withFs(image, cmd, ctx, (fs) => fragReport(fs, paths.length ? paths : undefined, { skipSingleBlock: !opts.oneBlockFiles }));
      if (opts.json) return printJson(ctx, report);
      await write(ctx.io.stdout, formatFragReport(report, { verbose: !!opts.verbose, argName: (t) => t.arg || image }));
    });
}
