/**
 * `ext4kit map IMAGE [--start B] [--end B] [--json]`: who owns every byte
 * (GETFSMAP-style, with inode owners): free space, fixed metadata, the
 * journal, inode data / extent-tree / indirect / xattr blocks, unknown.
 */
import type { Command } from 'commander';
import { fsmap, ownerName } from '../../ops/fsmap.js';
import { printJson, table, withFs, write, type CliContext } from '../util.js';
import { humanBytes, parseBytes } from './free.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('map')
    .description('map the filesystem space: one line per run of bytes with the same owner (free, superblock, gdt, reserved_gdt, block_bitmap, inode_bitmap, inode_table, journal, inode N data/extent tree/indirect/xattr, unknown)')
    .argument('<image>', 'filesystem image or block device')
    .option('--start <bytes>', 'first byte (block-aligned; default 0)', parseBytes)
    .option('--end <bytes>', 'end byte, exclusive (block-aligned; default and maximum: the filesystem size)', parseBytes)
    .option('--json', 'print a JSON array of {start, len, owner} in bytes; owner is a string or {ino, kind, unwritten?}')
    .action(async (image: string, opts: { start?: number; end?: number; json?: boolean }, cmd: Command) => {
      const list = await withFs(image, cmd, ctx, (fs) => fsmap(fs, { start: opts.start, end: opts.end }));
      if (opts.json) return printJson(ctx, list);
      const rows = [['start', 'end', 'length', 'size', 'owner']];
      for (const r of list) rows.push([String(r.start), String(r.start + r.len), String(r.len), humanBytes(r.len), ownerName(r.owner)]);
      await write(ctx.io.stdout, table(rows, [0, 1, 2]));
    });
}
