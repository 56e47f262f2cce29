/**
 * Crash points of size changes (issue 8 item 11): truncate down to an
 * unaligned size, truncate up, pwrite past EOF (in a later block, and inside
 * the old EOF block). Each call is recorded alone (open, the call, close)
 * with multi-block writes torn at block boundaries; at every crash point (every write
 * prefix plus seeded sets of lost unflushed writes) the image is replayed by
 * ext4kit (open for writing + close) and the file must read exactly its old
 * size and bytes, or exactly its new size and bytes:
 *  - truncate down must not zero live bytes before the new size commits
 *    (the old size with zeroed bytes is neither state);
 *  - growing a file must zero the stale bytes past the old EOF in its last
 *    block (planted here: a crash, another tool or an mmap write can leave
 *    them) in the same transaction, so nothing old reappears.
 * A deterministic sample is also replayed by `e2fsck -E journal_only`; both
 * replays must be e2fsck -fn clean and debugfs must read old or new.
 * The same calls without a journal: the content rule at every crash point.
 */
import { describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { memoryDeviceFromFile } from '../../lib/io/file-device.js';
import { openFile } from '../../lib/ops/file.js';
import { HAVE_E2FSPROGS, makeImage, pattern } from '../ops/helpers.js';
import { resizedBytes, runFileCallCase, type FileCallCase } from './file-call-case.js';

const K = 1024;

/** Bytes planted past EOF in a file's last block (stale data that must never become visible). */
const STALE = 0xa5;

function cases(files: Map<string, Uint8Array>): FileCallCase[] {
  const f = (p: string) => files.get(p)!;
  const w1 = pattern(3000, 21), w2 = pattern(200, 22);
  return [
    { name: 'truncate down to an unaligned size', path: '/down', old: f('/down'), next: f('/down').slice(0, 7 * K + 123), call: async (fs) => (await openFile(fs, '/down')).truncate(7 * K + 123) },
    { name: 'truncate down inside the last block', path: '/down2', old: f('/down2'), next: f('/down2').slice(0, 12 * K + 10), call: async (fs) => (await openFile(fs, '/down2')).truncate(12 * K + 10) },
    { name: 'truncate up', path: '/up', old: f('/up'), next: resizedBytes(f('/up'), 9 * K + 10), call: async (fs) => (await openFile(fs, '/up')).truncate(9 * K + 10) },
    { name: 'pwrite past EOF into a later block', path: '/append', old: f('/append'), next: resizedBytes(f('/append'), 8 * K + 50 + w1.length, w1, 8 * K + 50), call: async (fs) => (await openFile(fs, '/append')).pwrite(w1, 8 * K + 50) },
    { name: 'pwrite past EOF inside the old EOF block', path: '/within', old: f('/within'), next: resizedBytes(f('/within'), 5 * K + 600 + w2.length, w2, 5 * K + 600), call: async (fs) => (await openFile(fs, '/within')).pwrite(w2, 5 * K + 600) },
  ];
}

/** mkfs -d image with the files, then stale bytes planted past EOF in the last block of each. */
async function buildBase(journal: boolean): Promise<{ base: Uint8Array; files: Map<string, Uint8Array> }> {
  const files = new Map<string, Uint8Array>([
    ['/down', pattern(20 * K + 700, 1)],
    ['/down2', pattern(12 * K + 900, 2)],
    ['/up', pattern(5 * K + 300, 3)],
    ['/append', pattern(5 * K + 300, 4)],
    ['/within', pattern(5 * K + 300, 5)],
  ]);
  const img = makeImage(`trunc-${journal ? 'j' : 'nj'}`, Object.fromEntries([...files].map(([p, d]) => [p.slice(1), d])), { blockSize: K, sizeMiB: 8, mkfsOpts: journal ? [] : ['-O', '^has_journal'] });
  const mem = await memoryDeviceFromFile(img);
  nodefs.rmSync(img, { force: true });
  const f = await Filesystem.open(mem);
  const plants: { pos: number; bytes: Uint8Array }[] = [];
  try {
    for (const [p, d] of files) {
      if (p.startsWith('/down')) continue; // truncate down: the bytes past the new size are live ones
      const map = (await f.fileMap(await f.resolve(p))).extents;
      const lb = Math.floor(d.length / K);
      const e = map.find((x) => x.logical <= lb && lb < x.logical + x.length)!;
      const off = d.length % K;
      plants.push({ pos: (e.physical + lb - e.logical) * K + off, bytes: new Uint8Array(K - off).fill(STALE) });
    }
  } finally {
    await f.close();
  }
  for (const p of plants) mem.data.set(p.bytes, p.pos);
  return { base: mem.data.slice(), files };
}

/**
 * After the call the bytes past EOF in the last block are zero on disk (what the kernel expects
 * when it grows the file: it does not zero them itself).
 */
async function zeroPastEof(image: MemoryDevice, c: FileCallCase): Promise<string[]> {
  const g = await Filesystem.open(new MemoryDevice(image.data, { readOnly: true }));
  try {
    const map = (await g.fileMap(await g.resolve(c.path))).extents;
    const lb = Math.floor(c.next.length / K);
    const e = map.find((x) => x.logical <= lb && lb < x.logical + x.length);
    if (c.next.length % K && e) {
      const raw = await g.readDataBlocks(e.physical + lb - e.logical, 1);
      if (!raw.subarray(c.next.length % K).every((x) => x === 0)) return [`${c.name}: bytes past the new EOF are not zero on disk after the call`];
    }
    return [];
  } finally {
    await g.close();
  }
}

const runCase = (base: Uint8Array, c: FileCallCase, seed: number, e2fsckSample: number) =>
  runFileCallCase(base, c, { granularity: K, seed, subsetsPerEpoch: 3, e2fsckSample, afterCall: zeroPastEof });

describe.skipIf(!HAVE_E2FSPROGS)('crash points of size changes: the old size and bytes, or the new', () => {
  it('journaled (metadata_csum): every crash point, a sample also replayed by e2fsck', async () => {
    const { base, files } = await buildBase(true);
    const allBad: string[] = [];
    for (const [k, c] of cases(files).entries()) {
      const r = await runCase(base, c, 11 + k, 3);
      expect(r.fscked, `${c.name}: crash points replayed by e2fsck`).toBeGreaterThan(0);
      allBad.push(...r.bad);
    }
    expect(allBad, `crash points that are neither state:\n${allBad.slice(0, 12).join('\n')}`).toEqual([]);
  }, 300_000);

  it('no journal: every crash point reads the old or the new state', async () => {
    const { base, files } = await buildBase(false);
    const allBad: string[] = [];
    for (const [k, c] of cases(files).entries()) {
      const r = await runCase(base, c, 31 + k, 0);
      allBad.push(...r.bad);
    }
    expect(allBad, `crash points that are neither state:\n${allBad.slice(0, 12).join('\n')}`).toEqual([]);
  }, 300_000);
});
