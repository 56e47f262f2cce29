/**
 * Crash points of the lifecycle calls on block-mapped files (ext3, with a
 * journal): truncate down across indirect blocks, truncate up,
 * pwrite into a hole and past EOF (new indirect blocks), punching whole
 * blocks. Each call is recorded alone (open, call, close), multi-block writes
 * torn at block boundaries; at every crash point (each write prefix plus
 * seeded sets of lost unflushed writes) ext4kit's next write open must read
 * exactly the old bytes or exactly the new ones. A sample of the journaled
 * points is also replayed by `e2fsck -E journal_only`, and both replays must
 * be e2fsck -fn clean. (Without a journal a map change spanning several
 * blocks — the inode and indirect blocks — is not atomic: commit.ts promises
 * only that a crash needs e2fsck there, so ext2 is not held to old-or-new.)
 */
import { describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { Filesystem, memoryDeviceFromFile } from '../../lib/node.js';
import { openFile } from '../../lib/ops/file.js';
import { mkfs, type FsKind } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import { HAVE_E2FSPROGS, pattern, scratchPath } from '../ops/helpers.js';
import { resizedBytes, runFileCallCase, type FileCallCase } from '../crash/file-call-case.js';

const K = 1024;

const FILES: [string, Uint8Array][] = [
  ['down', pattern(300 * K + 700, 1)], // 1 KiB blocks: direct, single and double indirect
  ['up', pattern(5 * K + 300, 2)],
  ['hole', pattern(40 * K, 3)],
  ['append', pattern(20 * K + 5, 4)],
  ['punch', pattern(280 * K, 5)],
];

function cases(): FileCallCase[] {
  const f = new Map(FILES.map(([p, d]) => [`/${p}`, d]));
  const g = (p: string) => f.get(p)!;
  const w = pattern(3 * K + 17, 21), x = pattern(2 * K, 22);
  const holed = resizedBytes(g('/hole'), 40 * K);
  holed.fill(0, 8 * K, 30 * K);
  const punched = g('/punch').slice();
  punched.fill(0, 10 * K, 270 * K);
  return [
    { name: 'truncate down across indirect blocks', path: '/down', old: g('/down'), next: g('/down').slice(0, 11 * K + 123), call: async (fs) => (await openFile(fs, '/down')).truncate(11 * K + 123) },
    { name: 'truncate up', path: '/up', old: g('/up'), next: resizedBytes(g('/up'), 400 * K + 1), call: async (fs) => (await openFile(fs, '/up')).truncate(400 * K + 1) },
    { name: 'pwrite into a hole', path: '/hole', old: holed, next: resizedBytes(holed, 40 * K, w, 9 * K + 5), call: async (fs) => (await openFile(fs, '/hole')).pwrite(w, 9 * K + 5) },
    { name: 'pwrite past EOF (new indirect blocks)', path: '/append', old: g('/append'), next: resizedBytes(g('/append'), 290 * K + 3 + x.length, x, 290 * K + 3), call: async (fs) => (await openFile(fs, '/append')).pwrite(x, 290 * K + 3) },
    { name: 'punch whole blocks', path: '/punch', old: g('/punch'), next: punched, call: async (fs) => (await openFile(fs, '/punch')).punchHole(10 * K, 260 * K) },
  ];
}

async function buildBase(kind: FsKind): Promise<Uint8Array> {
  const src = tmpDir(`lifecycle-crash-${kind}`);
  for (const [p, d] of FILES) nodefs.writeFileSync(path.join(src, p), d);
  const img = scratchPath(`lifecycle-crash-${kind}.img`);
  mkfs(kind, img, 8 * 1024 * 1024, ['-b', String(K)], src);
  nodefs.rmSync(src, { recursive: true, force: true });
  const mem = await memoryDeviceFromFile(img);
  nodefs.rmSync(img, { force: true });
  // The hole of /hole: punched before recording (mkfs -d writes the file dense).
  const f = await Filesystem.open(mem, { write: true });
  try {
    await (await openFile(f, '/hole')).punchHole(8 * K, 22 * K);
  } finally {
    await f.close();
  }
  return mem.data.slice();
}

describe.skipIf(!HAVE_E2FSPROGS)('crash points of truncate, pwrite and punch on block-mapped files', () => {
  for (const [kind, seed, sample] of [['ext3', 51, 1]] as const) {
    it(`${kind}: the old bytes or the new at every crash point`, async () => {
      const base = await buildBase(kind);
      const bad: string[] = [];
      for (const [k, c] of cases().entries()) bad.push(...(await runFileCallCase(base, c, { granularity: K, seed: seed + k, subsetsPerEpoch: 2, e2fsckSample: sample })).bad);
      expect(bad, `crash points that are neither state:\n${bad.slice(0, 12).join('\n')}`).toEqual([]);
    }, 300_000);
  }
});
