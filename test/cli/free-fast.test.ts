/**
 * `free IMAGE [--json]` without commander (lib/cli/commands/free-output.ts runFast, what the fast
 * path calls) prints byte for byte what the commander path prints (`--start 0` keeps argv off
 * the fast path), and a bad image prints nothing on stdout: the error comes before any output.
 */
import { Writable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { freeExtentsJson, freeExtentsJsonChunks, runFast } from '../../lib/cli/commands/free-output.js';
import { mulberry32 } from '../../lib/io/prng.js';
import { RecordEncoder } from '../../lib/codec/ascii-records.js';
import { getImage } from '../helpers/images.js';
import { tmpPath } from '../helpers/tmp.js';
import { cli } from './helpers.js';
import { debugfsFull, expectE2fsckClean, FAKE_TIME, mkfs } from '../helpers/tools.js';
import { prngBytes } from '../helpers/tree.js';
import { e2fsckJournalOnly, installLog } from '../journal/helpers.js';
import * as fs from 'node:fs';

/** runFast's output as one Buffer: chunks are copied as they come (each reuses the previous one's buffer). */
function bytesOf(out: string | Uint8Array | Iterable<Uint8Array> | null): Buffer {
  if (out === null) throw new Error('runFast handed the case to commander');
  if (typeof out === 'string') return Buffer.from(out, 'utf8');
  if (out instanceof Uint8Array) return Buffer.from(out);
  return Buffer.concat([...(function* () {
    for (const c of out) yield Buffer.from(c);
  })()]);
}

function sink(): { stream: NodeJS.WritableStream; text: () => string } {
  const parts: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(Buffer.from(chunk));
      cb();
    },
  });
  return { stream, text: () => Buffer.concat(parts).toString('utf8') };
}

describe('freeExtentsJson', () => {
  it('is JSON.stringify(list, null, 2) + "\\n" byte for byte: digit-count edges, values past 10^8 and 10^16, random values, the empty list', () => {
    const edges = [0, 1, 9, 10, 99, 100, 4096, 99_999_999, 1e8, 1e8 + 1, 123_456_789, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 40, 999_999_999_999_999, 1e16, 2 ** 53 - 1];
    const rnd = mulberry32(11);
    const values = [...edges, ...Array.from({ length: 2000 }, () => Math.floor(rnd() * 2 ** Math.floor(rnd() * 53)))];
    const list = values.map((v, i) => ({ start: v, len: values[(i * 7) % values.length]! }));
    const t = { count: list.length, start: Float64Array.from(list, (e) => e.start), len: Float64Array.from(list, (e) => e.len), unit: 1 };
    expect(Buffer.from(freeExtentsJson(t)).toString('latin1')).toBe(JSON.stringify(list, null, 2) + '\n');
    // A table in blocks (what getFreeExtentTable returns): the bytes are start × unit.
    const blocks = values.filter((v) => v * 4096 <= Number.MAX_SAFE_INTEGER);
    const tb = { count: blocks.length, start: Float64Array.from(blocks), len: Float64Array.from(blocks, (_, i) => blocks[(i * 3) % blocks.length]!), unit: 4096 };
    const bytes = blocks.map((b, i) => ({ start: b * 4096, len: blocks[(i * 3) % blocks.length]! * 4096 }));
    expect(Buffer.from(freeExtentsJson(tb)).toString('latin1')).toBe(JSON.stringify(bytes, null, 2) + '\n');
    expect(Buffer.from(freeExtentsJson({ count: 0, start: new Float64Array(0), len: new Float64Array(0), unit: 4096 })).toString('latin1')).toBe('[]\n');
  });
});

describe('freeExtentsJsonChunks', () => {
  it('the same bytes as freeExtentsJson in chunks of one reused buffer, whatever the chunk size', () => {
    const rnd = mulberry32(5);
    const n = 3000;
    const start = Float64Array.from({ length: n }, () => Math.floor(rnd() * 2 ** 36));
    const len = Float64Array.from({ length: n }, () => Math.floor(rnd() * 2 ** Math.floor(rnd() * 30)));
    const t = { count: n, start, len, unit: 4096 };
    const whole = Buffer.from(freeExtentsJson(t));
    expect(whole.toString('latin1')).toBe(JSON.stringify(Array.from(start, (s, i) => ({ start: s * 4096, len: len[i]! * 4096 })), null, 2) + '\n');
    for (const size of [0, 100, 4096, 1 << 20]) {
      const buffers = new Set<ArrayBufferLike>();
      let chunks = 0;
      const got = bytesOf(
        (function* () {
          for (const c of freeExtentsJsonChunks(t, size)) {
            buffers.add(c.buffer);
            chunks++;
            yield c;
          }
        })(),
      );
      expect(got.equals(whole), `chunk size ${size}`).toBe(true);
      expect(buffers.size).toBe(1);
      if (size <= 4096) expect(chunks).toBeGreaterThan(10);
    }
    expect(bytesOf(freeExtentsJsonChunks({ count: 0, start: new Float64Array(0), len: new Float64Array(0), unit: 4096 })).toString()).toBe('[]\n');
  });

  it('asks the encoder for no fill after the last chunk (a call that only returns 0 starts the TurboFan job V8 queued for fill, which the exit then waits for)', () => {
    const n = 1312;
    const t = { count: n, start: Float64Array.from({ length: n }, (_, i) => 3 * i), len: new Float64Array(n).fill(1), unit: 4096 };
    const fill = vi.spyOn(RecordEncoder.prototype, 'fill');
    try {
      for (const size of [4096, 1 << 20]) {
        fill.mockClear();
        let chunks = 0;
        for (const c of freeExtentsJsonChunks(t, size)) {
          expect(c.length).toBeGreaterThan(0);
          chunks++;
        }
        expect(fill.mock.calls.length, `chunk size ${size}`).toBe(chunks);
        expect(fill.mock.results.every((r) => r.type === 'return' && (r.value as number) > 0)).toBe(true);
      }
    } finally {
      fill.mockRestore();
    }
  });
});

describe('free without commander', () => {
  for (const name of ['ext4-4k-groups', 'ext4-1k'] as const) {
    it(`${name}: --json and the table equal the commander path's output`, async () => {
      const img = getImage(name).image;
      for (const json of [true, false]) {
        const err = sink();
        const out = await runFast([img], new Set(json ? ['--json'] : []), { verify: true }, { io: { stdout: sink().stream, stderr: err.stream } });
        const want = await cli(['free', img, '--start', '0', ...(json ? ['--json'] : [])]);
        expect(want.status, want.stderr).toBe(0);
        expect(bytesOf(out).equals(want.stdout), `json=${json}`).toBe(true);
        expect(err.text()).toBe('');
      }
    });
  }

  it('a file that is not a filesystem is an error before any output', async () => {
    const bad = tmpPath('free-fast-not-fs.img');
    fs.writeFileSync(bad, new Uint8Array(1 << 20));
    const e = await runFast([bad], new Set(['--json']), { verify: true }, { io: { stdout: sink().stream, stderr: sink().stream } }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Error);
  });

  it('a journal that needs recovery goes to the Filesystem open (commander): free shows the replayed bitmaps', async () => {
    // A, then B = A with a file written by debugfs; every block B changed is logged into A's
    // journal (A gets needs_recovery): replayed, A is B. What the disk of A says is stale.
    const a = tmpPath('free-fast-journaled.img'), b = tmpPath('free-fast-journaled-b.img');
    mkfs('ext4', a, 32 * 1024 * 1024, ['-b', '4096']);
    fs.copyFileSync(a, b);
    const host = tmpPath('free-fast-journaled.bin');
    fs.writeFileSync(host, prngBytes('free-fast-journaled', 20 * 4096));
    debugfsFull(b, [`write ${host} f`], { write: true, fakeTime: FAKE_TIME });
    expectE2fsckClean(b, 'the image whose blocks are logged');
    const before = await cli(['free', a, '--json']);
    const ba = fs.readFileSync(a), bb = fs.readFileSync(b);
    const blocks: { fsBlock: number; data: Uint8Array }[] = [];
    for (let n = 0; n * 4096 < ba.length; n++) {
      const x = bb.subarray(n * 4096, (n + 1) * 4096);
      if (!x.equals(ba.subarray(n * 4096, (n + 1) * 4096))) blocks.push({ fsBlock: n, data: Buffer.from(x) });
    }
    expect(blocks.length).toBeGreaterThan(20); // the data, the bitmaps, the descriptors, the superblock, the inode, the root
    installLog(a, { csum: 3, is64: true, firstTid: 3, txs: [{ blocks }] });

    const err = sink();
    expect(await runFast([a], new Set(['--json']), { verify: true }, { io: { stdout: sink().stream, stderr: err.stream } })).toBeNull();
    expect(err.text()).toBe('');
    const got = await cli(['free', a, '--json']);
    expect(got.status, got.stderr).toBe(0);
    // e2fsck's replay of the same journal is the oracle.
    const replayed = tmpPath('free-fast-journaled-replayed.img');
    fs.copyFileSync(a, replayed);
    e2fsckJournalOnly(replayed);
    expectE2fsckClean(replayed, 'A replayed by e2fsck');
    const want = await cli(['free', replayed, '--json']);
    expect(got.stdout.equals(want.stdout)).toBe(true);
    expect(got.stdout.equals((await cli(['free', b, '--json'])).stdout)).toBe(true);
    expect(got.stdout.equals(before.stdout)).toBe(false);
    for (const f of [a, b, replayed, host]) fs.rmSync(f, { force: true });
  });
});
