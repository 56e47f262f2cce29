/** `ext4kit chown IMAGE UID[:GID] PATH… [-h]`: set owner and/or group (numeric ids). */
import type { Command } from 'commander';
import { chown } from '../../ops/attrs.js';
import type { Timestamp } from '../../ext4/inode.js';
import { type CliContext } from '../util.js';
import { parseOwner, parseTime, withWritable } from '../write-open.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('chown')
    .description('change owner and group inside the image (numeric ids; as root: setuid/setgid and file capabilities dropped as Linux does)')
    .argument('<image>', 'filesystem image or block device (opened read-write)')
    .argument('<owner>', 'UID[:GID] or :GID', parseOwner)
    .argument('<paths...>', 'files or directories')
    .option('-h, --no-dereference', 'change a symlink itself, not its target')
    .option('--now <time>', 'ctime written (default SOURCE_DATE_EPOCH, else the clock)', parseTime)
    .action(async (image: string, owner: { uid: number; gid: number }, paths: string[], opts: { dereference?: boolean; now?: Timestamp }, cmd: Command) => {
      await withWritable(image, cmd, ctx, async (fs) => {
        for (const p of paths) await chown(fs, p, owner.uid, owner.gid, { noFollow: opts.dereference === false, now: opts.now });
      }, opts.now);
    });
}
