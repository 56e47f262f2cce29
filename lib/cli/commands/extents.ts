/** `ext4kit extents IMAGE PATH [--json]`: how a file's logical blocks map to the disk. */
import type { Command } from 'commander';
import { extents } from '../../ops/inspect.js';
import { printJson, table, withFs, write, type CliContext } from '../util.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('extents')
    .description('show the extents of a file (leaf extents; runs of contiguous blocks for indirect-mapped files), in filesystem blocks')
    .argument('<image>', 'filesystem image or block device')
    .argument('<path>', 'path inside the image (a final symlink is not followed)')
    .option('--json', 'print a JSON array of {logical, physical, length, unwritten}')
    .action(async (image: string, path: string, opts: { json?: boolean }, cmd: Command) => {
      const list = await withFs(image, cmd, ctx, (fs) => extents(fs, path));
      if (opts.json) return printJson(ctx, list);
      const rows = [['logical', 'physical', 'length', 'flags']];
      const range = (a: number, n: number) => (n === 1 ? String(a) : `${a}-${a + n - 1}`);
      for (const e of list) rows.push([range(e.logical, e.length), range(e.physical, e.length), String(e.length), e.unwritten ? 'unwritten' : '']);
      await write(ctx.io.stdout, list.length ? table(rows, [2]) : 'no extents\n');
    });
}
