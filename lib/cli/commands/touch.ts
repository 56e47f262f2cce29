/** `ext4kit touch IMAGE PATH… [-c] [-d TIME] [-a|-m]`: set atime/mtime (to now or -d), creating empty files unless -c. */
import type { Command } from 'commander';
import { createFile } from '../../ops/namespace.js';
import { utimes } from '../../ops/attrs.js';
import type { Timestamp } from '../../ext4/inode.js';
import { isExt4Error } from '../../errors.js';
import { type CliContext } from '../util.js';
import { parseMode, parseOwner, parseTime, withWritable } from '../write-open.js';

interface TouchCliOptions { create?: boolean; date?: Timestamp; now?: Timestamp; a?: boolean; m?: boolean; mode?: number; owner?: { uid: number; gid: number } }

export function register(program: Command, ctx: CliContext): void {
  program
    .command('touch')
    .description('set access and modification times inside the image, creating empty files that do not exist')
    .argument('<image>', 'filesystem image or block device (opened read-write)')
    .argument('<paths...>', 'files')
    .option('-c, --no-create', 'do not create missing files')
    .option('-d, --date <time>', 'the time to set (seconds[.ns] or a date; default now)', parseTime)
    .option('-a', 'change only the access time')
    .option('-m', 'change only the modification time')
    .option('--mode <octal>', 'permission bits of created files (default 644)', parseMode)
    .option('--owner <uid:gid>', 'owner of created files (default 0:0)', parseOwner)
    .option('--now <time>', 'the clock for ctime (default SOURCE_DATE_EPOCH, else the clock)', parseTime)
    .action(async (image: string, paths: string[], opts: TouchCliOptions, cmd: Command) => {
      await withWritable(image, cmd, ctx, async (fs) => {
        const t = opts.date ?? opts.now ?? fs.now();
        for (const p of paths) {
          let inode = await fs.resolve(p, { followLast: true }).catch((e: unknown) => {
            if (isExt4Error(e) && e.code === 'ENOENT') return null;
            throw e;
          });
          if (!inode) {
            if (opts.create === false) continue;
            await createFile(fs, p, { mode: opts.mode ?? 0o644, uid: Math.max(0, opts.owner?.uid ?? 0), gid: Math.max(0, opts.owner?.gid ?? 0), now: opts.now });
            inode = await fs.resolve(p, { followLast: true });
          }
          const atime = opts.m && !opts.a ? inode.atime : t;
          const mtime = opts.a && !opts.m ? inode.mtime : t;
          await utimes(fs, p, atime, mtime, { now: opts.now });
        }
      }, opts.now);
    });
}
