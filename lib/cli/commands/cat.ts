/** `ext4kit cat IMAGE PATH`: a regular file's bytes to stdout, streamed (bounded memory). */
import type { Command } from 'commander';
import { cat } from '../../ops/inspect.js';
import { withFs, type CliContext } from '../util.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('cat')
    .description('write the contents of a regular file inside the image to stdout (symlinks are followed; holes read as zeros)')
    .argument('<image>', 'filesystem image or block device')
    .argument('<path>', 'path inside the image')
    .action(async (image: string, path: string, _opts: unknown, cmd: Command) => {
      await withFs(image, cmd, ctx, async (fs) => {
        const f = await cat(fs, path);
        const out = ctx.io.stdout;
        // One write per 1 MiB chunk, the next chunk read while this one is written; the chunk's
        // buffer is reused once its write callback ran (the stream is done with it).
        await f.copyTo((chunk) => new Promise<void>((resolve, reject) => void out.write(chunk, (err) => (err ? reject(err) : resolve()))));
      });
    });
}
