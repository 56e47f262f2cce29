/**
 * lib/codec/ascii-records-wasm.ts against RecordEncoder (ascii-records.ts), byte for byte: values
 * on every digit-count edge (0, 9, 10, 99, …, 10^8 ± 1, up to 2^32 − 1 blocks of 64 KiB), units of
 * 1 KiB to 64 KiB, pieces of odd lengths, chunks from the smallest allowed up, and a record count
 * below the columns' length. Fixed seed.
 */
import { describe, expect, it } from 'vitest';
import { encodeRecords, type RecordPieces } from '../../lib/codec/ascii-records.js';
import { wasmRecordChunks, QUAD_BYTES, CHUNK_SLACK } from '../../lib/codec/ascii-records-wasm.js';
import { mulberry32 } from '../../lib/io/prng.js';

const rand = mulberry32(0xa5c11);
const int = (n: number) => Math.floor(rand() * n);
const ASCII = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const PIECE_SETS: RecordPieces[] = [
  { first: ASCII('[\n  {\n    "start": '), mid: ASCII(',\n    "len": '), next: ASCII('\n  },\n  {\n    "start": '), last: ASCII('\n  }\n]\n') },
  { first: ASCII('a'), mid: ASCII(' '), next: ASCII('\n'), last: ASCII('.\n') },
];
/** Numbers on digit-count edges, then random ones. */
function value(unitShift: number): number {
  const edge = 10 ** (1 + int(13));
  const v = rand() < 0.5 ? edge + int(3) - 1 : int(2 ** 32);
  return Math.min(2 ** 32 - 1, Math.max(0, Math.floor(v / 2 ** unitShift) + int(2)));
}

describe('ascii-records-wasm', () => {
  it('writes what RecordEncoder writes', () => {
    for (let round = 0; round < 40; round++) {
      const pieces = PIECE_SETS[round % 2]!;
      const unitShift = 10 + int(7);
      const n = 1 + int(round < 20 ? 30 : 3000);
      const memory = new WebAssembly.Memory({ initial: 16 });
      const a = new Uint32Array(memory.buffer, 64, n + 2), b = new Uint32Array(memory.buffer, 64 + 4 * (n + 2), n + 2);
      for (let i = 0; i < n + 2; i++) {
        a[i] = rand() < 0.05 ? 0 : value(unitShift);
        b[i] = value(unitShift);
      }
      const spareAt = 64 + 8 * (n + 2);
      const chunk = [80, 100, 1000, 65536][int(4)]!;
      const want = encodeRecords(pieces, n, Float64Array.from(a), Float64Array.from(b), 2 ** unitShift);
      const chunks = wasmRecordChunks(pieces, memory, spareAt, n, a, b, 2 ** unitShift, chunk);
      expect(chunks).not.toBeNull();
      const got: Buffer[] = [];
      for (const c of chunks!) {
        if (c.length === 0 || c.length > chunk) expect.fail(`round ${round}: a chunk of ${c.length} bytes`);
        got.push(Buffer.from(c)); // (a copy: the next chunk overwrites it)
      }
      const all = Buffer.concat(got);
      // The first difference, as text, when there is one.
      if (!all.equals(want)) expect(all.toString('latin1'), `round ${round}`).toBe(Buffer.from(want).toString('latin1'));
    }
  });

  it('refuses a memory without the room, or columns outside it', () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const a = new Uint32Array(memory.buffer, 0, 4), b = new Uint32Array(memory.buffer, 16, 4);
    expect(wasmRecordChunks(PIECE_SETS[0]!, memory, 65536 - QUAD_BYTES - 8 - 1000 - CHUNK_SLACK + 1, 4, a, b, 4096, 1000)).toBeNull();
    expect(wasmRecordChunks(PIECE_SETS[0]!, memory, 32, 4, new Uint32Array(4), b, 4096, 1000)).toBeNull();
    expect(wasmRecordChunks(PIECE_SETS[0]!, memory, 32, 4, a, b, 4096, 1000)).not.toBeNull();
  });
});
