/** `ext4kit ln IMAGE TARGET LINKPATH [-s]`: a hard link to TARGET (a path in the image), or with -s a symlink holding TARGET. */
import type { Command } from 'commander';
import { link, symlink } from '../../ops/namespace.js';
import type { Timestamp } from '../../ext4/inode.js';
import { type CliContext } from '../util.js';
import { parseOwner, parseTime, withWritable } from '../write-open.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('ln')
    .description('make a hard link (or with -s a symbolic link) inside the image')
    .argument('<image>', 'filesystem image or block device (opened read-write)')
    .argument('<target>', 'existing path (hard link) or the text the symlink holds (-s)')
    .argument('<linkpath>', 'the new name')
    .option('-s, --symbolic', 'make a symbolic link')
    .option('--owner <uid:gid>', 'owner of a new symlink (default 0:0)', parseOwner)
    .option('--now <time>', 'time written (default SOURCE_DATE_EPOCH, else the clock)', parseTime)
    .action(async (image: string, target: string, linkPath: string, opts: { symbolic?: boolean; owner?: { uid: number; gid: number }; now?: Timestamp }, cmd: Command) => {
      await withWritable(image, cmd, ctx, async (fs) => {
        if (opts.symbolic) await symlink(fs, target, linkPath, { uid: Math.max(0, opts.owner?.uid ?? 0), gid: Math.max(0, opts.owner?.gid ?? 0), now: opts.now });
        else await link(fs, target, linkPath, { now: opts.now });
      }, opts.now);
    });
}
