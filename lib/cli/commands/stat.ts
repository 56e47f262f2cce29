/** `ext4kit stat IMAGE PATH [--json]`: an inode in detail (like lstat plus ext4 fields). */
import type { Command } from 'commander';
import { inodeFlagNames, stat, type StatResult } from '../../ops/inspect.js';
import { escapeName, formatTime, modeString, printJson, table, withFs, write, type CliContext } from '../util.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('stat')
    .description('show an inode in detail: type, mode, owner, size, times, flags, mapping, xattrs (a final symlink is not followed)')
    .argument('<image>', 'filesystem image or block device')
    .argument('<path>', 'path inside the image')
    .option(
      '--json',
      'print JSON: {path, ino, type, mode, size, nlink, uid, gid, atime, mtime, ctime, crtime ({sec, nsec} or null), flags, generation, ' +
        'blocks (512-byte units), mapping, extents?, depth?, target?, rdev? ({major, minor}), xattrs ([{name, value (base64)}])}',
    )
    .action(async (image: string, path: string, opts: { json?: boolean }, cmd: Command) => {
      const s = await withFs(image, cmd, ctx, (fs) => stat(fs, path));
      if (opts.json) return printJson(ctx, s);
      await write(ctx.io.stdout, formatStat(s));
    });
}

function xattrValue(b64: string): string {
  const b = Buffer.from(b64, 'base64');
  const text = b.toString('utf8');
  const printable = Buffer.from(text, 'utf8').equals(b) && !/[\x00-\x08\x0b-\x1f\x7f\ufffd]/.test(text.replace(/\x00$/, ''));
  return printable ? JSON.stringify(text) : b.length ? `0x${b.toString('hex')}` : '""';
}

export function formatStat(s: StatResult): string {
  const t = (x: { sec: number; nsec: number }) => `${formatTime(x.sec, x.nsec)} UTC (${x.sec})`;
  const rows: string[][] = [
    ['Path:', escapeName(s.path)],
    ['Inode:', String(s.ino)],
    ['Type:', s.type],
    ['Mode:', `${s.mode.toString(8).padStart(4, '0')} (${modeString(s.type, s.mode)})`],
    ['Links:', String(s.nlink)],
    ['Uid:', String(s.uid)],
    ['Gid:', String(s.gid)],
    ['Size:', String(s.size)],
    ['Blocks:', `${s.blocks} (512-byte units)`],
    ['Flags:', `0x${s.flags.toString(16)}${s.flags ? ` (${inodeFlagNames(s.flags).join(' ')})` : ''}`],
    ['Generation:', String(s.generation)],
    ['Mapping:', s.mapping + (s.extents !== undefined ? ` (${s.extents} extent${s.extents === 1 ? '' : 's'}, depth ${s.depth})` : '')],
  ];
  if (s.target !== undefined) rows.push(['Target:', escapeName(s.target)]);
  if (s.rdev) rows.push(['Device:', `${s.rdev.major}, ${s.rdev.minor}`]);
  rows.push(['Access:', t(s.atime)], ['Modify:', t(s.mtime)], ['Change:', t(s.ctime)], ['Birth:', s.crtime ? t(s.crtime) : '-']);
  let out = table(rows);
  if (s.xattrs.length) {
    out += 'Xattrs:\n';
    for (const x of s.xattrs) out += `  ${escapeName(x.name)} = ${xattrValue(x.value)}\n`;
  }
  return out;
}
