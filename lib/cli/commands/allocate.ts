/**
 * `ext4kit allocate IMAGE PATH --offset O --len L [--goal G] [--fixed-start]
 * [--fixed-len] [--contiguous] [--json]`: the proposal's sys_allocate — give
 * the file new (unwritten, zero-reading) space at [O, O+L), which must be a
 * hole; prints the number of bytes allocated. One journaled transaction.
 */
import type { Command } from 'commander';
import { allocate, ALLOC_CONTIGUOUS, ALLOC_FIXED_LEN, ALLOC_FIXED_START } from '../../ops/allocate.js';
import { printJson, write, type CliContext } from '../util.js';
import { withWritable } from '../write-open.js';
import { parseBytes } from './free.js';

interface AllocateCliOptions {
  offset: number;
  len: number;
  goal?: number;
  fixedStart?: boolean;
  fixedLen?: boolean;
  contiguous?: boolean;
  json?: boolean;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('allocate')
    .description('allocate space to a file (the proposal\'s allocate): unwritten blocks for the hole [offset, offset+len), extending the size past EOF; prints the bytes allocated')
    .argument('<image>', 'filesystem image or block device (opened read-write)')
    .argument('<path>', 'regular file inside the image')
    .requiredOption('--offset <bytes>', 'file offset (block-aligned)', parseBytes)
    .requiredOption('--len <bytes>', 'length (block-aligned, > 0)', parseBytes)
    .option('--goal <bytes>', 'byte address on the device to start the search at (with --fixed-start: where the allocation must start)', parseBytes)
    .option('--fixed-start', 'ALLOC_FIXED_START: the allocation must start exactly at --goal')
    .option('--fixed-len', 'ALLOC_FIXED_LEN: exactly --len bytes or nothing (ENOSPC)')
    .option('--contiguous', 'ALLOC_CONTIGUOUS: one contiguous run of blocks')
    .option('--json', 'print {"allocated": bytes}')
    .action(async (image: string, path: string, opts: AllocateCliOptions, cmd: Command) => {
      const flags = (opts.fixedStart ? ALLOC_FIXED_START : 0) | (opts.fixedLen ? ALLOC_FIXED_LEN : 0) | (opts.contiguous ? ALLOC_CONTIGUOUS : 0);
      const bytes = await withWritable(image, cmd, ctx, (fs) => allocate(fs, path, { offset: opts.offset, len: opts.len, goal: opts.goal, flags }), undefined, { syncReads: false });
      if (opts.json) return printJson(ctx, { allocated: bytes });
      await write(ctx.io.stdout, `${bytes}\n`);
    });
}
