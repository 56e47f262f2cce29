/** `ext4kit chmod IMAGE MODE PATH…`: set permission bits (octal), following symlinks as chmod(1) does. */
import type { Command } from 'commander';
import { chmod } from '../../ops/attrs.js';
import type { Timestamp } from '../../ext4/inode.js';
import { type CliContext } from '../util.js';
import { parseMode, parseTime, withWritable } from '../write-open.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('chmod')
    .description('change permission bits inside the image')
    .argument('<image>', 'filesystem image or block device (opened read-write)')
    .argument('<mode>', 'octal mode, e.g. 644 or 4755', parseMode)
    .argument('<paths...>', 'files or directories')
    .option('--now <time>', 'ctime written (default SOURCE_DATE_EPOCH, else the clock)', parseTime)
    .action(async (image: string, mode: number, paths: string[], opts: { now?: Timestamp }, cmd: Command) => {
      await withWritable(image, cmd, ctx, async (fs) => {
        for (const p of paths) await chmod(fs, p, mode, { now: opts.now });
      }, opts.now);
    });
}
