/**
 * `ext4kit defrag IMAGE [PATH…]`: defragment files (PATH…) or the whole
 * filesystem, using only getFreeBlocks, allocate and movedata. The run and its
 * output are defrag-run.ts's (the fast path runs it without commander); this
 * adds --draw.
 */
import type { Command } from 'commander';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Filesystem } from '../../ext4/filesystem.js';
import { globalOptions, write, type CliContext } from '../context.js';
import { defragText, type DefragArgs } from './defrag-run.js';

/** A block-map picture (--draw): loaded only when asked for. */
async function drawTo(fs: Filesystem, dir: string, file: string, title: string): Promise<void> {
  const { drawMap } = await import('../../ops/draw.js');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, file), await drawMap(fs, { title }));
}

interface Opts extends Omit<DefragArgs, 'around'> {
  draw?: string;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('defrag')
    .description('defragment files, or the whole filesystem when no PATH is given (plans globally, consolidates free space); journaled, crash-safe and resumable')
    .argument('<image>', 'filesystem image or block device (must not be mounted)')
    .argument('[paths...]', 'files or directories inside the image (default: everything)')
    .option('--dry-run', 'print the plan, change nothing')
    .option('--json', 'print the summary (and with --dry-run the plan) as JSON')
    .option('--max-seconds <s>', 'stop starting new moves after this many seconds')
    .option('--max-bytes <n>', 'stop starting new moves after moving this many bytes')
    .option('--no-compact', 'skip the free-space compaction pass')
    .option('--draw <dir>', 'write before.svg and after.svg block-map pictures into DIR')
    .option('--no-progress', 'no progress bar even on a terminal')
    .action(async (image: string, paths: string[], opts: Opts, cmd: Command) => {
      const { draw, ...args } = opts;
      const around = draw ? (fs: Filesystem, when: 'before' | 'after') => drawTo(fs, draw, `${when}.svg`, `${image} ${when} defrag`) : undefined;
      await write(ctx.io.stdout, await defragText(image, paths, { ...args, around }, globalOptions(cmd), ctx));
    });
}
