/**
 * `ext4kit free IMAGE [--start B] [--end B] [--count N] [--json]`: the
 * proposal's get_free_blocks — free extents between two byte offsets,
 * maximal runs clipped to the range, ascending (getFreeBlocks).
 */
import { InvalidArgumentError, type Command } from 'commander';
import { getFreeExtentTable } from '../../ops/free.js';
import { withFs, write, type CliContext } from '../util.js';
import { readByteCount } from '../byte-count.js';
import { freeExtentsJson, freeExtentsText, humanBytes } from './free-output.js';

export { freeExtentsJson, humanBytes };

/** Parse a byte count: decimal or 0x hex, optionally with a binary suffix K, M, G, T (e.g. 4G). */
export function parseBytes(value: string): number {
  // (the grammar lives in byte-count.ts: the fast path validates with it too)
  const v = readByteCount(value);
  if (typeof v === 'string') throw new InvalidArgumentError(v);
  return v;
}

/** Parse a record count (non-negative integer). */
export function parseCount(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`"${value}" is not a non-negative integer`);
  const v = Number(value);
  if (!Number.isSafeInteger(v)) throw new InvalidArgumentError(`"${value}" is too large`);
  return v;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('free')
    .description('list free extents (get_free_blocks): maximal free runs in [start, end), merged across block groups, ascending; offsets and lengths in bytes')
    .argument('<image>', 'filesystem image or block device')
    .option('--start <bytes>', 'first byte (block-aligned; default 0)', parseBytes)
    .option('--end <bytes>', 'end byte, exclusive (block-aligned; default and maximum: the filesystem size)', parseBytes)
    .option('--count <n>', 'at most this many extents (resume with --start at the end of the last one)', parseCount)
    .option('--json', 'print a JSON array of {start, len} in bytes')
    .action(async (image: string, opts: { start?: number; end?: number; count?: number; json?: boolean }, cmd: Command) => {
      const t = await withFs(image, cmd, ctx, (fs) => getFreeExtentTable(fs, { start: opts.start, end: opts.end, count: opts.count }));
      await write(ctx.io.stdout, opts.json ? freeExtentsJson(t) : freeExtentsText(t));
    });
}

