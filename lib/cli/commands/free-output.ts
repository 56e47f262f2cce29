/**
 * What `ext4kit free` prints: the table, or the JSON array of {start, len}. Without commander,
 * so that the fast path (fast-path.ts) can run `free IMAGE [--json]` in a fresh process without
 * loading it; free.ts registers the command and its options.
 */
import { getFreeExtentTable, type FreeExtentTable } from '../../ops/free.js';
import { table, withFs } from '../util.js';
import type { CliContext, GlobalOptions } from '../context.js';

/** `free IMAGE [--json]` over the whole filesystem, made after the scan succeeded (an error prints nothing on stdout). */
export async function runFast(positionals: readonly string[], flags: ReadonlySet<string>, globals: GlobalOptions, ctx: CliContext): Promise<string | Uint8Array> {
  const t = await withFs(positionals[0]!, globals, ctx, (fs) => getFreeExtentTable(fs));
  return flags.has('--json') ? freeExtentsJson(t) : freeExtentsText(t);
}

/** The table: start, end, length and size of each extent, and the total. */
export function freeExtentsText(t: FreeExtentTable): string {
  if (t.count === 0) return 'no free extents in the range\n';
  const rows = [['start', 'end', 'length', 'size']];
  let total = 0;
  for (let i = 0; i < t.count; i++) {
    const start = t.start[i]!, len = t.len[i]!;
    rows.push([String(start), String(start + len), String(len), humanBytes(len)]);
    total += len;
  }
  return table(rows, [0, 1, 2]) + `${t.count} extent${t.count === 1 ? '' : 's'}, ${total} bytes (${humanBytes(total)}) free\n`;
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

const ASCII = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
/** The text around the numbers: before the first start, between len and the next start, before a len, after the last len. */
const FIRST = ASCII('[\n  {\n    "start": '), NEXT = ASCII('\n  },\n  {\n    "start": '), MID = ASCII(',\n    "len": '), LAST = ASCII('\n  }\n]\n');
/** Digits of the longest safe integer. */
const MAX_DIGITS = 16;
/** "00" … "99": two digits per division. */
const PAIRS = ASCII(Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0')).join(''));

/**
 * The extents as JSON.stringify([{start, len}, …], null, 2) + "\n" prints them, byte for byte,
 * encoded in one loop into one buffer: a whole 1 TiB disk has hundreds of thousands of free
 * extents, and objects, a 12 MB string and its copy into a Buffer cost more than the scan that
 * found them. Two constant pieces per extent, copied whole.
 */
export function freeExtentsJson(t: FreeExtentTable): Uint8Array {
  if (t.count === 0) return ASCII('[]\n');
  const out = new Uint8Array(FIRST.length + LAST.length + t.count * (NEXT.length + MID.length + 2 * MAX_DIGITS));
  out.set(FIRST, 0);
  let p = FIRST.length;
  for (let i = 0; i < t.count; i++) {
    if (i > 0) {
      out.set(NEXT, p);
      p += NEXT.length;
    }
    p = writeDecimal(out, p, t.start[i]!);
    out.set(MID, p);
    p += MID.length;
    p = writeDecimal(out, p, t.len[i]!);
  }
  out.set(LAST, p);
  return out.subarray(0, p + LAST.length);
}

/** The decimal digits of a safe integer v ≥ 0 at out[p…]; returns the end. Above 10^8 as int32 halves: the high digits, then eight. */
function writeDecimal(out: Uint8Array, p: number, v: number): number {
  if (v < 1e8) return writeSmall(out, p, v | 0);
  const hi = Math.floor(v / 1e8);
  const end = hi < 1e8 ? writeSmall(out, p, hi) : writeDecimal(out, p, hi);
  let lo = (v - hi * 1e8) | 0;
  for (let k = end + 6; k >= end; k -= 2) {
    const q = (lo / 100) | 0, r = (lo - q * 100) << 1;
    out[k] = PAIRS[r]!;
    out[k + 1] = PAIRS[r + 1]!;
    lo = q;
  }
  return end + 8;
}

/** writeDecimal for 0 ≤ x < 10^8 (an int32). */
function writeSmall(out: Uint8Array, p: number, x: number): number {
  const digits = x < 10 ? 1 : x < 100 ? 2 : x < 1e3 ? 3 : x < 1e4 ? 4 : x < 1e5 ? 5 : x < 1e6 ? 6 : x < 1e7 ? 7 : 8;
  let k = p + digits;
  while (x >= 100) {
    const q = (x / 100) | 0, r = (x - q * 100) << 1;
    out[--k] = PAIRS[r + 1]!;
    out[--k] = PAIRS[r]!;
    x = q;
  }
  if (x >= 10) {
    out[--k] = PAIRS[(x << 1) + 1]!;
    out[--k] = PAIRS[x << 1]!;
  } else out[--k] = 0x30 + x;
  return p + digits;
}
