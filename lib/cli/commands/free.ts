/**
 * `ext4kit free IMAGE [--start B] [--end B] [--count N] [--json]`: the
 * proposal's get_free_blocks — free extents between two byte offsets,
 * maximal runs clipped to the range, ascending (getFreeBlocks).
 */
import { InvalidArgumentError, type Command } from 'commander';
import { getFreeExtentTable, type FreeExtentTable } from '../../ops/free.js';
import { table, withFs, write, type CliContext } from '../util.js';

/** Parse a byte count: decimal or 0x hex, optionally with a binary suffix K, M, G, T (e.g. 4G). */
export function parseBytes(value: string): number {
  const m = /^(0x[0-9a-f]+|\d+)([kmgt]i?b?)?$/i.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`"${value}" is not a byte count (e.g. 4096, 0x1000, 64M, 4G)`);
  const base = Number(m[1]);
  const unit = m[2] ? 1024 ** ('kmgt'.indexOf(m[2][0]!.toLowerCase()) + 1) : 1;
  const v = base * unit;
  if (!Number.isSafeInteger(v)) throw new InvalidArgumentError(`"${value}" is too large`);
  return v;
}

/** Parse a record count (non-negative integer). */
export function parseCount(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`"${value}" is not a non-negative integer`);
  const v = Number(value);
  if (!Number.isSafeInteger(v)) throw new InvalidArgumentError(`"${value}" is too large`);
  return v;
}

/** "1.5 MiB"-style size for tables. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n, u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[u]}`;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('free')
    .description('list free extents (get_free_blocks): maximal free runs in [start, end), merged across block groups, ascending; offsets and lengths in bytes')
    .argument('<image>', 'filesystem image or block device')
    .option('--start <bytes>', 'first byte (block-aligned; default 0)', parseBytes)
    .option('--end <bytes>', 'end byte, exclusive (block-aligned; default and maximum: the filesystem size)', parseBytes)
    .option('--count <n>', 'at most this many extents (resume with --start at the end of the last one)', parseCount)
    .option('--json', 'print a JSON array of {start, len} in bytes')
    .action(async (image: string, opts: { start?: number; end?: number; count?: number; json?: boolean }, cmd: Command) => {
      const t = await withFs(image, cmd, ctx, (fs) => getFreeExtentTable(fs, { start: opts.start, end: opts.end, count: opts.count }));
      if (opts.json) return write(ctx.io.stdout, freeExtentsJson(t));
      if (t.count === 0) return write(ctx.io.stdout, 'no free extents in the range\n');
      const rows = [['start', 'end', 'length', 'size']];
      let total = 0;
      for (let i = 0; i < t.count; i++) {
        const start = t.start[i]!, len = t.len[i]!;
        rows.push([String(start), String(start + len), String(len), humanBytes(len)]);
        total += len;
      }
      await write(ctx.io.stdout, table(rows, [0, 1, 2]) + `${t.count} extent${t.count === 1 ? '' : 's'}, ${total} bytes (${humanBytes(total)}) free\n`);
    });
}

const ASCII = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const OPEN = ASCII('  {\n    "start": '), MID = ASCII(',\n    "len": '), CLOSE = ASCII('\n  }');
/** Digits of the longest safe integer. */
const MAX_DIGITS = 16;

/**
 * The extents as JSON.stringify([{start, len}, …], null, 2) + "\n" prints them, byte for byte,
 * encoded in one loop into one buffer: a whole 1 TiB disk has hundreds of thousands of free
 * extents, and objects, a 12 MB string and its copy into a Buffer cost more than the scan that
 * found them. (One function with the loop inside: a fresh process optimises it mid-loop.)
 */
export function freeExtentsJson(t: FreeExtentTable): Uint8Array {
  if (t.count === 0) return ASCII('[]\n');
  const out = new Uint8Array(4 + t.count * (OPEN.length + MID.length + CLOSE.length + 2 * MAX_DIGITS + 2));
  let p = 0;
  for (let i = 0; i < t.count; i++) {
    out[p++] = i === 0 ? 0x5b : 0x2c; // "[" or ","
    out[p++] = 0x0a;
    for (let k = 0; k < OPEN.length; k++) out[p++] = OPEN[k]!;
    for (let f = 0; f < 2; f++) {
      if (f === 1) for (let k = 0; k < MID.length; k++) out[p++] = MID[k]!;
      // The decimal digits of a safe integer: above 10^9 as two int32 halves (high digits, then nine).
      const v = f === 0 ? t.start[i]! : t.len[i]!;
      let hi = 0, lo = v, width = 0;
      if (v >= 1e9) {
        hi = Math.floor(v / 1e9);
        lo = v - hi * 1e9;
        width = 9;
      }
      for (let part = hi > 0 ? 0 : 1; part < 2; part++) {
        let x = (part === 0 ? hi : lo) | 0;
        let digits = 1;
        for (let y = x; y >= 10; y = (y / 10) | 0) digits++;
        if (part === 1 && digits < width) digits = width;
        for (let k = p + digits - 1; k >= p; k--) {
          const q = (x / 10) | 0;
          out[k] = 0x30 + x - q * 10;
          x = q;
        }
        p += digits;
      }
    }
    for (let k = 0; k < CLOSE.length; k++) out[p++] = CLOSE[k]!;
  }
  out[p++] = 0x0a;
  out[p++] = 0x5d; // "]"
  out[p++] = 0x0a;
  return out.subarray(0, p);
}
