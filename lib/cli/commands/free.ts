/**
 * `ext4kit free IMAGE [--start B] [--end B] [--count N] [--json]`: the
 * proposal's get_free_blocks — free extents between two byte offsets,
 * maximal runs clipped to the range, ascending (getFreeBlocks).
 */
import { InvalidArgumentError, type Command } from 'commander';
import { getFreeBlocks } from '../../ops/free.js';
import { printJsonArray, table, withFs, write, type CliContext } from '../util.js';

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

/** "1.5 MiB"-style size for tables. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n, u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[u]}`;
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
      const list = await withFs(image, cmd, ctx, (fs) => getFreeBlocks(fs, { start: opts.start, end: opts.end, count: opts.count }));
      if (opts.json) return printJsonArray(ctx, list);
      if (list.length === 0) return write(ctx.io.stdout, 'no free extents in the range\n');
      const rows = [['start', 'end', 'length', 'size']];
      let total = 0;
      for (const e of list) {
        rows.push([String(e.start), String(e.start + e.len), String(e.len), humanBytes(e.len)]);
        total += e.len;
      }
      await write(ctx.io.stdout, table(rows, [0, 1, 2]) + `${list.length} extent${list.length === 1 ? '' : 's'}, ${total} bytes (${humanBytes(total)}) free\n`);
    });
}
