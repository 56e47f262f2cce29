/** `ext4kit mv IMAGE FROM TO [-n]`: rename(2) inside the image; TO an existing directory means TO/basename(FROM), as mv does. */
import type { Command } from 'commander';
import { rename } from '../../ops/namespace.js';
import type { Timestamp } from '../../ext4/inode.js';
import { type CliContext } from '../util.js';
import { parseTime, withWritable } from '../write-open.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('mv')
    .description('rename or move a file or directory inside the image (one journaled transaction)')
    .argument('<image>', 'filesystem image or block device (opened read-write)')
    .argument('<from>', 'existing path')
    .argument('<to>', 'new path, or an existing directory to move into')
    .option('-n, --no-clobber', 'fail (EEXIST) rather than replace an existing target')
    .option('--now <time>', 'ctime/mtime written (default SOURCE_DATE_EPOCH, else the clock)', parseTime)
    .action(async (image: string, from: string, to: string, opts: { clobber?: boolean; now?: Timestamp }, cmd: Command) => {
      await withWritable(image, cmd, ctx, async (fs) => {
        let dest = to;
        const target = await fs.resolve(to, { followLast: true }).catch(() => null);
        if (target?.type === 'dir') {
          const base = from.split('/').filter(Boolean).pop() ?? '';
          dest = `${to.replace(/\/+$/, '')}/${base}`;
        }
        await rename(fs, from, dest, { noReplace: opts.clobber === false, now: opts.now });
      }, opts.now);
    });
}
