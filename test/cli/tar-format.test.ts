/**
 * The tar pieces tar-stream lacks (lib/cli/tar-format.ts), in process:
 * pax records with raw values at every length-prefix boundary, our own
 * writer read back by our reader (random sparse maps, binary xattrs, long
 * names), and hostile archives: a bad pax record, a sparse map out of order
 * or past the size, a map count larger than the member, data cut short —
 * each a typed EINVAL, never a RangeError or a hang.
 */
import { describe, expect, it } from 'vitest';
import { Readable, Writable } from 'node:stream';
import { readTar, writeTar } from '../../lib/cli/tar-tree.js';
import { parsePaxRecords, paxRecord } from '../../lib/cli/tar-format.js';
import type { ExportedEntry } from '../../lib/ops/export-tree.js';
import type { TreeEntry } from '../../lib/ops/tree-entry.js';
import { Ext4Error } from '../../lib/errors.js';

/** Deterministic bytes (xorshift32). */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

function bytes(next: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = next() & 0xff || 1; // no zero bytes: data stays data
  return b;
}

async function archive(entries: ExportedEntry[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  const out = new Writable({ write: (c: Buffer, _e, cb) => (parts.push(Buffer.from(c)), cb()) });
  async function* gen() {
    yield* entries;
  }
  await writeTar(gen(), out);
  return Buffer.concat(parts);
}

async function readBack(tar: Uint8Array): Promise<{ e: TreeEntry; data: Uint8Array }[]> {
  const got: { e: TreeEntry; data: Uint8Array }[] = [];
  for await (const e of readTar(Readable.from([Buffer.from(tar)]))) {
    const parts: Uint8Array[] = [];
    if (e.data) for await (const c of e.data instanceof Uint8Array ? [e.data] : e.data) parts.push(Uint8Array.from(c));
    got.push({ e, data: Buffer.concat(parts) });
  }
  return got;
}

const base = { mode: 0o644, uid: 0, gid: 0, mtime: { sec: 1_700_000_000, nsec: 5 }, atime: { sec: 1_700_000_000, nsec: 5 } };

describe('tar format', () => {
  it('pax records carry raw values at every length boundary', () => {
    const next = rng(7);
    for (let n = 0; n < 1100; n += n < 120 ? 1 : 97) {
      const v = new Uint8Array(n).map(() => next() & 0xff);
      const rec = paxRecord('SCHILY.xattr.user.x', v);
      expect(Number(Buffer.from(rec).toString('latin1').split(' ')[0])).toBe(rec.length);
      expect(parsePaxRecords(rec)).toEqual([['SCHILY.xattr.user.x', v]]);
    }
  });

  it('a bad pax record is a typed error', () => {
    for (const bad of ['30 path=short\n', '5 a=b\n', '9 path=x', '12 pathx']) {
      expect(() => parsePaxRecords(Buffer.from(bad)), bad).toThrow(Ext4Error);
    }
  });

  it('our archives read back: random sparse maps, binary xattrs, long and non-ASCII names', async () => {
    const next = rng(42);
    const entries: ExportedEntry[] = [{ ...base, path: '', type: 'dir', mode: 0o755 }];
    const want = new Map<string, Uint8Array>();
    for (let f = 0; f < 30; f++) {
      const size = 1 + (next() % 300_000);
      const runs: { offset: number; length: number }[] = [];
      for (let at = next() % 5000; at < size; ) {
        const length = Math.min(size - at, 1 + (next() % 9000));
        runs.push({ offset: at, length });
        at += length + 1 + (next() % 20_000);
      }
      const full = new Uint8Array(size);
      const pieces = runs.map((r) => bytes(next, r.length));
      runs.forEach((r, i) => full.set(pieces[i]!, r.offset));
      const path = `d/${'é'.repeat(f)}f${f}${'x'.repeat(f * 7)}`;
      want.set(path, full);
      entries.push({
        ...base, path, type: 'file', size, uid: 3_000_000 + f,
        xattrs: [{ name: 'user.bin', value: Uint8Array.of(0, 255, 10, f) }],
        data: full,
        sparse: { runs, data: async function* () { yield* pieces; } },
      });
    }
    entries.push({ ...base, path: 'dev', type: 'chardev', rdev: { major: 4095, minor: (1 << 20) - 1 } }); // past tar-stream's 6 octal digits
    entries.push({ ...base, path: 'link', type: 'symlink', target: Uint8Array.of(0xff, 0x41, 0x0a) }); // not UTF-8
    const longest = entries.at(-3)!.path; // non-ASCII, > 100 bytes: a pax linkpath
    entries.push({ ...base, path: 'hard', type: 'hardlink', target: longest });
    const got = await readBack(await archive(entries));
    expect(got.map((g) => g.e.path)).toEqual(entries.map((e) => e.path));
    expect(got.at(-3)!.e).toMatchObject({ type: 'chardev', rdev: { major: 4095, minor: (1 << 20) - 1 } });
    expect(Buffer.from(got.at(-2)!.e.target as Uint8Array)).toEqual(Buffer.from([0xff, 0x41, 0x0a]));
    expect(got.at(-1)!.e).toMatchObject({ type: 'hardlink', target: longest });
    for (const { e, data } of got.slice(1, -3)) {
      expect(e.size, e.path).toBe(want.get(e.path)!.length);
      expect(Buffer.compare(data, want.get(e.path)!), e.path).toBe(0);
      expect(e.xattrs?.[0]?.value[3]).toBe(Number(/f(\d+)/.exec(e.path)![1]));
      expect(e.uid).toBe(3_000_000 + Number(/f(\d+)/.exec(e.path)![1]));
      expect(e.mtime).toEqual({ sec: 1_700_000_000, nsec: 5 });
    }
  });

  it('hostile sparse members are typed errors', async () => {
    const member = (runs: { offset: number; length: number }[], size: number): ExportedEntry => ({
      ...base, path: 'f', type: 'file', size, data: new Uint8Array(size),
      sparse: { runs, data: async function* () { for (const r of runs) yield new Uint8Array(r.length).fill(1); } },
    });
    const cases: [string, Promise<Buffer>][] = [
      ['out of order', archive([member([{ offset: 9000, length: 10 }, { offset: 0, length: 10 }], 100_000)])],
      ['past the size', archive([member([{ offset: 0, length: 10 }, { offset: 99_995, length: 10 }], 100_000)])],
    ];
    for (const [what, tar] of cases) await expect(readBack(await tar), what).rejects.toThrow(Ext4Error);
    // A map whose count is larger than the member holds.
    const ok = await archive([member([{ offset: 0, length: 10 }], 100_000)]);
    const at = ok.indexOf('2\n0\n10\n100000\n0\n'); // one run and the end (the file ends in a hole)
    expect(at).toBeGreaterThan(0);
    const huge = Buffer.from(ok);
    huge.write('99999999\n0\n10\n', at, 'latin1');
    await expect(readBack(huge)).rejects.toThrow(/sparse map/);
    // Data cut short: the archive ends inside a member.
    await expect(readBack(ok.subarray(0, at + 512))).rejects.toThrow(/cut short|end of data/i);
  });
});
