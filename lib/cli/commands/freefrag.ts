/** `ext4kit freefrag IMAGE [-c KB] [--json]`: free-space fragmentation exactly as `e2freefrag [-c KB]` reports it offline. */
import { InvalidArgumentError, type Command } from 'commander';
import { formatFreeFrag, freeFrag } from '../../ops/report.js';
import { printJson, withFs, write, type CliContext } from '../util.js';

function chunkKB(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) === 0) throw new InvalidArgumentError(`bad chunk size '${v}'`);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n & (n - 1)) throw new InvalidArgumentError('chunk size must be a power of 2.');
  return n;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('freefrag')
    .description('free-space fragmentation: histogram of free extents by size, min/max/avg free extent, free chunks (as `e2freefrag`)')
    .argument('<image>', 'filesystem image or block device')
    .option('-c, --chunk <KB>', 'also count free aligned chunks of this many KB (a power of two, at least one block)', chunkKB)
    .option(
      '--json',
      'print JSON: {blockSize, totalBlocks, freeBlocks, freeBlocksInBitmaps, freePercent, chunk: {bytes, blocks, total, free, percent} | null, ' +
        'freeExtents, minKB, maxKB, avgKB, histogram: [{index, label, minBlocks, extents, blocks, percent}]}',
    )
    .action(async (image: string, opts: { chunk?: number; json?: boolean }, cmd: Command) => {
      const r = await withFs(image, cmd, ctx, (fs) => freeFrag(fs, opts.chunk !== undefined ? { chunkKB: opts.chunk } : {}));
      if (opts.json) return printJson(ctx, r);
      await write(ctx.io.stdout, formatFreeFrag(r, image));
    });
}
