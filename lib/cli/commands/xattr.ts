/**
 * `ext4kit xattr get|set|rm|list IMAGE PATH [NAME [VALUE]]`: extended
 * attributes inside the image (in-inode, block, shared blocks: ops/attrs.ts).
 * Values are text unless --hex (get prints hex; set takes hex).
 */
import type { Command } from 'commander';
import { getXattr, listXattrs, removeXattr, setXattr } from '../../ops/attrs.js';
import type { Timestamp } from '../../ext4/inode.js';
import { Ext4Error } from '../../errors.js';
import { printJson, withFs, write, type CliContext } from '../util.js';
import { parseTime, withWritable } from '../write-open.js';

interface XattrCliOptions { hex?: boolean; dereference?: boolean; json?: boolean; create?: boolean; replace?: boolean; now?: Timestamp }

function hexOf(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

function valueOf(v: string, hex: boolean | undefined): Uint8Array {
  if (!hex) return Buffer.from(v, 'utf8');
  const s = v.replace(/^0x/, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(s)) throw new Ext4Error('EINVAL', `${v}: not an even number of hex digits`);
  return Buffer.from(s, 'hex');
}

export function register(program: Command, ctx: CliContext): void {
  const x = program.command('xattr').description('get, set, remove or list extended attributes inside the image');
  x.command('get')
    .description('print one attribute\'s value (raw bytes; hex with --hex)')
    .argument('<image>').argument('<path>').argument('<name>', 'e.g. user.comment, security.selinux')
    .option('--hex', 'print the value as hex')
    .option('-h, --no-dereference', 'the symlink itself')
    .action(async (image: string, path: string, name: string, opts: XattrCliOptions, cmd: Command) => {
      const v = await withFs(image, cmd, ctx, (fs) => getXattr(fs, path, name, { noFollow: opts.dereference === false }));
      await write(ctx.io.stdout, opts.hex ? hexOf(v) + '\n' : v);
    });
  x.command('list')
    .description('list attribute names (with --json: names and hex values)')
    .argument('<image>').argument('<path>')
    .option('-h, --no-dereference', 'the symlink itself')
    .option('--json', 'print {name: hex value}')
    .action(async (image: string, path: string, opts: XattrCliOptions, cmd: Command) => {
      const out = await withFs(image, cmd, ctx, async (fs) => {
        const names = await listXattrs(fs, path, { noFollow: opts.dereference === false });
        if (!opts.json) return names;
        const o: Record<string, string> = {};
        for (const n of names) o[n] = hexOf(await getXattr(fs, path, n, { noFollow: opts.dereference === false }));
        return o;
      });
      if (opts.json) return printJson(ctx, out);
      await write(ctx.io.stdout, (out as string[]).map((n) => n + '\n').join(''));
    });
  x.command('set')
    .description('set an attribute')
    .argument('<image>').argument('<path>').argument('<name>').argument('<value>', 'text (or hex with --hex)')
    .option('--hex', 'VALUE is hex')
    .option('--create', 'fail (EEXIST) if it exists')
    .option('--replace', 'fail (ENODATA) if it does not exist')
    .option('-h, --no-dereference', 'the symlink itself')
    .option('--now <time>', 'ctime written (default SOURCE_DATE_EPOCH, else the clock)', parseTime)
    .action(async (image: string, path: string, name: string, value: string, opts: XattrCliOptions, cmd: Command) => {
      const flag = opts.create ? 'create' : opts.replace ? 'replace' : undefined;
      await withWritable(image, cmd, ctx, (fs) => setXattr(fs, path, name, valueOf(value, opts.hex), { flag, noFollow: opts.dereference === false, now: opts.now }), opts.now);
    });
  x.command('rm')
    .description('remove an attribute (ENODATA if absent)')
    .argument('<image>').argument('<path>').argument('<name>')
    .option('-h, --no-dereference', 'the symlink itself')
    .option('--now <time>', 'ctime written (default SOURCE_DATE_EPOCH, else the clock)', parseTime)
    .action(async (image: string, path: string, name: string, opts: XattrCliOptions, cmd: Command) => {
      await withWritable(image, cmd, ctx, (fs) => removeXattr(fs, path, name, { noFollow: opts.dereference === false, now: opts.now }), opts.now);
    });
}
