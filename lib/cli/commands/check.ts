/** `ext4kit check IMAGE [--json]`: read-only, fsck-like consistency check. */
import type { Command } from 'commander';
import { Ext4Error } from '../../errors.js';
import { checkFilesystem } from '../../ops/check.js';
import { printJson, withFs, write, type CliContext } from '../util.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('check')
    .description('check consistency like e2fsck -fn passes 0-5 (superblock, journal, resize inode, inodes, xattrs, htree, directories, links, reachability, block ownership, bitmaps, counts, checksums); never repairs')
    .argument('<image>', 'filesystem image or block device')
    .option('--json', 'print {ok, problems: [{pass, code, structure, location, message}], stats}')
    .action(async (image: string, opts: { json?: boolean }, cmd: Command) => {
      const r = await withFs(image, cmd, ctx, (fs) => checkFilesystem(fs));
      if (opts.json) await printJson(ctx, r);
      else {
        const lines = r.problems.map((p) => `pass ${p.pass}: ${p.code}: ${p.message} (${p.structure} at ${p.location})`);
        lines.push(`${r.stats.inodesInUse} inodes in use, ${r.stats.directories} directories, ${r.stats.blocksOwned} blocks owned, ${r.stats.groups} groups: ${r.ok ? 'clean' : `${r.problems.length} problem(s)`}`);
        await write(ctx.io.stdout, lines.join('\n') + '\n');
      }
      if (!r.ok) throw new Ext4Error('EFSCORRUPTED', `${r.problems.length} problem(s) found`);
    });
}
