/** `ext4kit replay IMAGE [--json]`: replay the journal in place (like e2fsck -E journal_only). */
import type { Command } from 'commander';
import { replayImage } from '../../node.js';
import { printJson, write, type CliContext } from '../util.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('replay')
    .description('replay the journal in place, as e2fsck -E journal_only does, and say what was replayed')
    .argument('<image>', 'filesystem image or block device (must not be mounted)')
    .option('--json', 'print the replay summary as JSON')
    .action(async (image: string, opts: { json?: boolean }) => {
      const r = await replayImage(image);
      if (opts.json) return printJson(ctx, r);
      if (!r.replayed) return write(ctx.io.stdout, 'journal is clean: nothing to replay\n');
      await write(ctx.io.stdout,
        `replayed ${r.transactions} transaction(s) (tid ${r.firstTid}..${r.endTid - 1}): ${r.replayBlocks} block(s) logged, ${r.blocksWritten} written home, ${r.revokes} revoke record(s)\n` +
        (r.errors.length ? `errors: ${r.errors.join('; ')}\n` : '') +
        (r.needsFsck || r.errorFs ? 'the filesystem needs a full e2fsck\n' : ''));
    });
}
