/**
 * What `ext4kit free` prints: the table, or the JSON array of {start, len}. Without commander,
 * so that the fast path (fast-path.ts) can run `free IMAGE [--json]` in a fresh process without
 * loading it; free.ts registers the command and its options.
 */
import { getFreeExtentTable, type FreeExtentTable } from '../../ops/free.js';
import { openDiskSource, type DiskSource } from '../../ext4/disk-source.js';
import { encodeRecords, RecordEncoder, type RecordPieces } from '../../codec/ascii-records.js';
import { wasmRecordChunks } from '../../codec/ascii-records-wasm.js';
import { openDevice, table, type CliContext, type GlobalOptions } from '../context.js';
import { withRaisedInterruptBudget } from '../interrupt-budget.js';

/**
 * `free IMAGE [--json]` over the whole filesystem, made after the scan succeeded (an error prints
 * nothing on stdout). It reads the device through a DiskSource, not a Filesystem, so that its
 * script carries no write engine; null (nothing done: commander's path opens a Filesystem) when
 * the journal needs recovery, whose replay only a Filesystem does.
 */
export function runFast(positionals: readonly string[], flags: ReadonlySet<string>, globals: GlobalOptions, ctx: CliContext): Promise<string | Iterable<Uint8Array> | null> {
  // (4× V8's default interrupt budget for the scan: interrupt-budget.ts; V8's default is back
  // before the output is made and before code-cache.ts writes the script's cache)
  return withRaisedInterruptBudget(() => freeFast(positionals, flags, globals, ctx));
}

async function freeFast(positionals: readonly string[], flags: ReadonlySet<string>, globals: GlobalOptions, ctx: CliContext): Promise<string | Iterable<Uint8Array> | null> {
  const device = await openDevice(positionals[0]!);
  let src: DiskSource | null = null;
  let t: FreeExtentTable | undefined;
  try {
    src = await openDiskSource(device, { verify: globals.verify });
    if (src !== null) t = await getFreeExtentTable(src);
  } finally {
    // As withFs (util.ts): closed, then the warnings, whatever happened.
    await device.close();
    for (const w of src?.warnings ?? []) ctx.io.stderr.write(`ext4kit: warning: ${w}\n`);
  }
  if (t === undefined) return null;
  return flags.has('--json') ? freeExtentsJsonChunks(t) : freeExtentsText(t);
}

/** The table: start, end, length and size of each extent, and the total. */
export function freeExtentsText(t: FreeExtentTable): string {
  if (t.count === 0) return 'no free extents in the range\n';
  const rows = [['start', 'end', 'length', 'size']];
  let total = 0;
  for (let i = 0; i < t.count; i++) {
    const start = t.start[i]! * t.unit, len = t.len[i]! * t.unit;
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
/** The text around the numbers: before the first start, before a len, between len and the next start, after the last len. */
const PIECES: RecordPieces = { first: ASCII('[\n  {\n    "start": '), mid: ASCII(',\n    "len": '), next: ASCII('\n  },\n  {\n    "start": '), last: ASCII('\n  }\n]\n') };

/**
 * The extents as JSON.stringify([{start, len}, …], null, 2) + "\n" prints them, byte for byte,
 * encoded in one loop into one buffer (lib/codec/ascii-records.ts): a whole 1 TiB disk has
 * hundreds of thousands of free extents, and objects, a 12 MB string and its copy into a Buffer
 * cost more than the scan that found them.
 */
export function freeExtentsJson(t: FreeExtentTable): Uint8Array {
  return t.count === 0 ? ASCII('[]\n') : encodeRecords(PIECES, t.count, t.start, t.len, t.unit);
}

/** Bytes per chunk of freeExtentsJsonChunks. */
const CHUNK_BYTES = 256 * 1024;

/**
 * freeExtentsJson's bytes a chunk at a time, every chunk a view of the same buffer (the next
 * chunk overwrites it: write each before asking for the next). What the fast path prints: a
 * fresh process pays for each new page it touches, and 13 MB of output in one buffer cost more
 * page faults (tens of ms on a VM) than encoding it.
 */
export function* freeExtentsJsonChunks(t: FreeExtentTable, chunkBytes = CHUNK_BYTES): Generator<Uint8Array> {
  if (t.count === 0) {
    yield ASCII('[]\n');
    return;
  }
  // A table a wasm scan left in its memory is encoded there too (ascii-records-wasm.ts).
  const w = t.wasm && t.start instanceof Uint32Array && t.len instanceof Uint32Array ? wasmRecordChunks(PIECES, t.wasm.memory, t.wasm.spareAt, t.count, t.start, t.len, t.unit, chunkBytes) : null;
  if (w !== null) {
    yield* w;
    return;
  }
  const enc = new RecordEncoder(PIECES, t.count, t.start, t.len, t.unit);
  const out = new Uint8Array(Math.max(enc.minBuffer, Math.min(chunkBytes, enc.totalBound)));
  // Stops once done, without a last fill() that only returns 0: that call would start the
  // TurboFan job V8 queued for fill() when its previous call returned hot, and a process
  // waits for its background jobs before it exits (node's DrainTasks) — ~20 ms for nothing.
  do yield out.subarray(0, enc.fill(out));
  while (!enc.done);
}
