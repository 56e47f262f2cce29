/**
 * `ext4kit movedata IMAGE DATAPATH SPACEPATH --from F --len L`: the
 * proposal's sys_movedata — the blocks carrying SPACEPATH's [F, F+L) replace
 * DATAPATH's, with DATAPATH's bytes copied into them; a hole in SPACEPATH
 * makes a hole in DATAPATH (its bytes there are DISCARDED); DATAPATH's old
 * blocks are freed and SPACEPATH gets a hole. Journaled, in crash-safe steps.
 */
import type { Command } from 'commander';
import { globalOptions, write, type CliContext } from '../context.js';
import { parseBytes } from './free.js';
import { movedataText } from './movedata-run.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('movedata')
    .description("move space into a file (the proposal's movedata): SPACEPATH's blocks in [from, from+len) take DATAPATH's place there, DATAPATH's bytes copied into them; where SPACEPATH has a hole DATAPATH gets a hole (its bytes there are lost); DATAPATH's old blocks are freed")
    .argument('<image>', 'filesystem image or block device (opened read-write)')
    .argument('<datapath>', 'the file whose content stays the same (regular file inside the image)')
    .argument('<spacepath>', 'the file whose blocks are taken (it is left with a hole over the range)')
    .requiredOption('--from <bytes>', 'file offset (block-aligned)', parseBytes)
    .requiredOption('--len <bytes>', 'length (block-aligned)', parseBytes)
    .option('--json', 'print {"moved": bytes}')
    .action(async (image: string, dataPath: string, spacePath: string, opts: { from: number; len: number; json?: boolean }, cmd: Command) => {
      await write(ctx.io.stdout, await movedataText(image, dataPath, spacePath, opts, globalOptions(cmd), ctx));
    });
}
