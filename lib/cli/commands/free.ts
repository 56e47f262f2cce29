/**
 * `ext4kit free IMAGE [--start B] [--end B] [--count N] [--json]`: the
 * proposal's get_free_blocks — free extents between two byte offsets,
 * maximal runs clipped to the range, ascending (getFreeBlocks).
 */
import { InvalidArgumentError, type Command } from 'commander';
import { getFreeExtentTable } from '../../ops/free.js';
import { withFs, write, type CliContext } from '../util.js';
import { freeExtentsJson, freeExtentsText, humanBytes } from './free-output.js';

export { freeExtentsJson, humanBytes };

/** Parse a byte count: decimal or 0x hex, optionally with a binary suffix K, M, G, T (e.g. 4G). */
export function parseBytes(value: string): number {
  const m = /^(0x[0-9a-f]+|\d+)([kmgt]i?b?)?$/i.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`"${value}" is not a byte count (e.g. 4096, 0x1000, 64M, 4G)`);
  const base = Number(m[1]);
  const unit = m[2] ? 1024 ** ('kmgt'.indexOf(m[2][0]!.toLowerCase()) + 1) : 1;
  const v = base * unit;
  if (!Number.isSafeInteger(v)) throw new InvalidArgumentError(`"${value}" is too large`);
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

