/** `ext4kit mkdir IMAGE PATH… [-p] [-m MODE]`: make directories (with -p, their missing parents too; existing ones are fine). */
import type { Command } from 'commander';
import { mkdir } from '../../ops/namespace.js';
import type { Timestamp } from '../../ext4/inode.js';
import type { Filesystem } from '../../ext4/filesystem.js';
import { isExt4Error } from '../../errors.js';
import { printJson, type CliContext } from '../util.js';
import { parseMode, parseOwner, parseTime, withWritable } from '../write-open.js';

interface MkdirCliOptions { parents?: boolean; mode?: number; owner?: { uid: number; gid: number }; now?: Timestamp; json?: boolean }

export function register(program: Command, ctx: CliContext): void {
  program
    .command('mkdir')
    .description('make directories inside the image')
    .argument('<image>', 'filesystem image or block device (opened read-write)')
    .argument('<paths...>', 'directories to make')
    .option('-p, --parents', 'make missing parents too; no error if a directory exists')
    .option('-m, --mode <octal>', 'permission bits (default 755)', parseMode)
    .option('--owner <uid:gid>', 'owner (default 0:0)', parseOwner)
    .option('--now <time>', 'time written (default SOURCE_DATE_EPOCH, else the clock)', parseTime)
    .option('--json', 'print the new directories\' inode numbers as JSON')
    .action(async (image: string, paths: string[], opts: MkdirCliOptions, cmd: Command) => {
      const made: { path: string; ino: number }[] = [];
      await withWritable(image, cmd, ctx, async (fs) => {
        for (const p of paths) {
          if (!opts.parents) {
            made.push({ path: p, ino: await mkdir(fs, p, createOpts(opts)) });
            continue;
          }
          let cur = '';
          const parts = p.split('/').filter((s) => s !== '' && s !== '.');
          for (let i = 0; i < parts.length; i++) {
            cur += '/' + parts[i];
            // Parents made by -p get u+wx as coreutils' mkdir -p gives them.
            const o = i < parts.length - 1 ? { ...createOpts(opts), mode: 0o755 } : createOpts(opts);
            const ino = await mkdirExisting(fs, cur, o);
            if (ino !== null) made.push({ path: cur, ino });
          }
        }
      }, opts.now);
      if (opts.json) await printJson(ctx, made);
    });
}

function createOpts(o: MkdirCliOptions) {
  return { mode: o.mode ?? 0o755, uid: o.owner && o.owner.uid >= 0 ? o.owner.uid : 0, gid: o.owner && o.owner.gid >= 0 ? o.owner.gid : 0, now: o.now };
}

/** mkdir, or null when `path` is already a directory. */
async function mkdirExisting(fs: Filesystem, path: string, o: ReturnType<typeof createOpts>): Promise<number | null> {
  try {
    return await mkdir(fs, path, o);
  } catch (e) {
    if (isExt4Error(e) && e.code === 'EEXIST' && (await fs.resolve(path, { followLast: true })).type === 'dir') return null;
    throw e;
  }
}
