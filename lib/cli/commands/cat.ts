/** `ext4kit cat IMAGE PATH`: a regular file's bytes to stdout, streamed (bounded memory). */
import type { Command } from 'commander';
import { cat } from '../../ops/inspect.js';
import { pipeChunks, withFs, type CliContext } from '../util.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('cat')
    .description('write the contents of a regular file inside the image to stdout (symlinks are followed; holes read as zeros)')
    .argument('<image>', 'filesystem image or block device')
    .argument('<path>', 'path inside the image')
    .action(async (image: string, path: string, _opts: unknown, cmd: Command) => {
      await withFs(image, cmd, ctx, async (fs) => {
        const f = await cat(fs, path);
        await pipeChunks(f.chunks, ctx.io.stdout);
      });
    });
}
