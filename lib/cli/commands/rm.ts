/** `ext4kit rm IMAGE PATH… [-r] [-f]`: remove names; -r whole trees (removeTree: journal-sized steps, orphan-protected), -f no error for missing ones. */
import type { Command } from 'commander';
import { removeTree, unlink } from '../../ops/namespace.js';
import { Ext4Error, isExt4Error } from '../../errors.js';
import { printJson, type CliContext } from '../util.js';
import { withWritable } from '../write-open.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('rm')
    .description('remove files, symlinks and special files inside the image; with -r, directories and everything in them')
    .argument('<image>', 'filesystem image or block device (opened read-write)')
    .argument('<paths...>', 'names to remove')
    .option('-r, --recursive', 'remove directories and their contents')
    .option('-f, --force', 'ignore names that do not exist')
    .option('--json', 'print {"removed": [...]}')
    .action(async (image: string, paths: string[], opts: { recursive?: boolean; force?: boolean; json?: boolean }, cmd: Command) => {
      const removed: string[] = [];
      await withWritable(image, cmd, ctx, async (fs) => {
        for (const p of paths) {
          let inode;
          try {
            inode = await fs.resolve(p, { followLast: false });
          } catch (e) {
            if (opts.force && isExt4Error(e) && e.code === 'ENOENT') continue;
            throw e;
          }
          if (inode.type === 'dir') {
            if (!opts.recursive) throw new Ext4Error('EISDIR', `${p}: is a directory (use -r)`);
            if (inode.ino === 2) throw new Ext4Error('EBUSY', 'refusing to remove the root directory');
            await removeTree(fs, p);
          } else await unlink(fs, p);
          removed.push(p);
        }
      });
      if (opts.json) await printJson(ctx, { removed });
    });
}
