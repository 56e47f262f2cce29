/** `ext4kit draw IMAGE --out map.svg`: an SVG picture of the block map (who owns every block, files coloured by fragmentation). */
import { writeFile } from 'node:fs/promises';
import { InvalidArgumentError, type Command } from 'commander';
import { blockMap, renderSvg } from '../../ops/draw.js';
import { info } from '../../ops/inspect.js';
import { withFs, write, type CliContext } from '../util.js';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`'${v}' is not a positive integer`);
  return n;
}

interface DrawOpts {
  out: string;
  title?: string;
  width?: number;
  maxCells?: number;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('draw')
    .description('draw the block map as SVG: free space, metadata, journal, directories, and file data coloured from contiguous (green) to highly fragmented (red)')
    .argument('<image>', 'filesystem image or block device')
    .requiredOption('-o, --out <file>', "where to write the SVG ('-' for standard output)")
    .option('--title <text>', 'heading of the picture (default "ext4kit block map")')
    .option('--width <px>', 'picture width in pixels (default 1024)', positiveInt)
    .option('--max-cells <n>', 'at most this many cells; one cell covers ceil(blocks / n) blocks (default 262144)', positiveInt)
    .action(async (image: string, opts: DrawOpts, cmd: Command) => {
      const { svg, grid } = await withFs(image, cmd, ctx, async (fs) => {
        const grid = await blockMap(fs, { maxCells: opts.maxCells });
        const i = info(fs);
        return { grid, svg: renderSvg(grid, { title: opts.title ?? 'ext4kit block map', label: i.label, uuid: i.uuid, width: opts.width }) };
      });
      if (opts.out === '-') {
        await write(ctx.io.stdout, svg);
        return;
      }
      await writeFile(opts.out, svg);
      await write(
        ctx.io.stdout,
        `wrote ${opts.out}: ${grid.cells} cells of ${grid.cellBlocks} block${grid.cellBlocks === 1 ? '' : 's'} (${grid.columns}×${grid.rows}), ${svg.length} bytes\n`,
      );
    });
}
