/**
 * What a crash can leave after writeFile over an existing file, as documented
 * in lib/ops/write-file.ts: the whole old content or the whole new one —
 * through the one-transaction path (ext4 extents, ext3 indirect blocks) and
 * through a temporary orphan inode whose map is swapped in (a stream longer
 * than the buffer). Each call recorded alone; every crash point (prefixes and
 * seeded lost subsets) replayed by ext4kit; a sample also by e2fsck -E
 * journal_only, both e2fsck -fn clean, debugfs reading old or new; and the
 * last-old and first-new points by Linux (a loop mount replays the journal).
 */
import { describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { writeFile } from '../../lib/ops/write-file.js';
import { mkfsBytes, type FsKind } from '../helpers/tools.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, chunksOf, pattern, sameBytes, scratchPath } from '../ops/helpers.js';
import { oracleGate, withLoopMount } from '../helpers/tools.js';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { RecordingDevice, materialise, type LogRecord } from '../../lib/io/recording-device.js';
import { runFileCallCase, type FileCallCase } from './file-call-case.js';

const K = 1024;
const OLD = pattern(20 * K + 300, 1);

const baseImage = (kind: FsKind): Uint8Array => mkfsBytes(kind, 4 * 1024 * 1024, ['-b', String(K)], (src) => nodefs.writeFileSync(path.join(src, 'f'), OLD));

/** ext4kit's replay of the first `writes` writes of `log`, read at c.path. */
async function replayRead(base: Uint8Array, log: readonly LogRecord[], writes: number, c: FileCallCase): Promise<Uint8Array> {
  const mem = new MemoryDevice(materialise(base, log, { writes, lose: new Set() }));
  await (await Filesystem.open(mem, { write: true })).close();
  const f = await Filesystem.open(mem);
  try {
    const i = await f.resolve(c.path);
    return await f.read(i, 0, i.size);
  } finally {
    await f.close();
  }
}

/**
 * Linux replays a sample: the last crash point that reads old and the first
 * that reads new (found by bisection over write prefixes with ext4kit's replay —
 * the new state needs the journal replayed) are loop-mounted unreplayed; the
 * kernel must read the same state. Returns problems.
 */
async function linuxSample(base: Uint8Array, c: FileCallCase): Promise<string[]> {
  const rec = new RecordingDevice(new MemoryDevice(base.slice()), { granularity: K });
  const f = await Filesystem.open(rec, { write: true });
  try {
    await c.call(f);
  } finally {
    await f.close();
  }
  const log = rec.log, total = log.filter((r) => r.kind === 'write').length;
  let lo = 0, hi = total; // old at lo, new at hi
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (sameBytes(await replayRead(base, log, mid, c), c.next)) hi = mid;
    else lo = mid;
  }
  const bad: string[] = [];
  for (const [writes, want, label] of [[lo, c.old, 'old'], [hi, c.next, 'new']] as const) {
    const img = scratchPath('wf-crash-linux.img');
    nodefs.writeFileSync(img, materialise(base, log, { writes, lose: new Set() }));
    try {
      await withLoopMount(img, (mp) => {
        if (!sameBytes(nodefs.readFileSync(path.join(mp, c.path)), want)) bad.push(`${c.name}: Linux after ${writes} writes does not read the ${label} content`);
      });
    } finally {
      nodefs.rmSync(img, { force: true });
    }
  }
  return bad;
}

describe.skipIf(!HAVE_E2FSPROGS)('crash points of writeFile', () => {
  it('every point reads the whole old or the whole new content; e2fsck clean', async () => {
    const bigger = pattern(45 * K + 11, 2), streamed = pattern(30 * K + 9, 4);
    const cases: [FsKind, FileCallCase][] = [
      ['ext4', { name: 'ext4: bigger, one transaction', path: '/f', old: OLD, next: bigger, call: (f) => writeFile(f, '/f', bigger) }],
      ['ext4', { name: 'ext4: a stream through a temporary inode', path: '/f', old: OLD, next: streamed, call: (f) => writeFile(f, '/f', chunksOf(streamed, 3001), { bufferBytes: 8 * K }) }],
      ['ext3', { name: 'ext3 (indirect blocks): bigger, one transaction', path: '/f', old: OLD, next: bigger, call: (f) => writeFile(f, '/f', bigger) }],
      ['ext3', { name: 'ext3: a stream through a temporary inode', path: '/f', old: OLD, next: streamed, call: (f) => writeFile(f, '/f', chunksOf(streamed, 3001), { bufferBytes: 8 * K }) }],
    ];
    const bases = new Map<FsKind, Uint8Array>();
    const bad: string[] = [];
    const lines: string[] = [];
    for (const [k, [kind, c]] of cases.entries()) {
      if (!bases.has(kind)) bases.set(kind, baseImage(kind));
      const r = await runFileCallCase(bases.get(kind)!, c, { granularity: K, seed: 70 + k, subsetsPerEpoch: 1, e2fsckSample: 2 });
      lines.push(`${c.name}: ${r.points} points: old ${r.states.old}, new ${r.states.new}, neither ${r.states.neither}; ${r.fscked} by e2fsck`);
      bad.push(...r.bad);
      if (CAN_MOUNT) bad.push(...(await linuxSample(bases.get(kind)!, c)));
      else oracleGate(LOOP_SKIP);
    }
    console.log(lines.join('\n'));
    expect(bad, bad.slice(0, 10).join('\n')).toEqual([]);
  }, 300_000);
});
