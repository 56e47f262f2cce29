/**
 * Crashes on a filesystem without a journal (commitUnjournaled's ordered
 * in-place writes). Like the kernel's no-journal mode, a crash needs e2fsck:
 * an extent-tree update spans several blocks written in one epoch, so a torn
 * update can leave an invalid extent node (seen here when /f's tree grows).
 * What the ordering does guarantee, checked at every crash point of a
 * workload that allocates, pwrites, moves /g's data (movedata) and frees
 * (truncate): no block is ever in use but marked free (a block freed by an
 * operation reaches the bitmap only after the metadata that stopped using it
 * — else it could be handed out again and end up owned twice), nothing is
 * multiply claimed, /g always reads its content, and e2fsck -fy brings the
 * image back to clean with /g intact.
 */
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { RecordingDevice, crashPoints } from '../../lib/io/recording-device.js';
import { Prng } from '../../lib/io/prng.js';
import { allocate, ALLOC_CONTIGUOUS } from '../../lib/ops/allocate.js';
import { movedata } from '../../lib/ops/movedata.js';
import { openFile } from '../../lib/ops/file.js';
import { debugfsDump, e2fsckClean, e2fsckFix } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';
import { buildBaseImage, indexWrites, OverlayDevice, pattern, readWhole, sameBytes } from './harness.js';
import { HAVE_TOOLS } from './scenario.js';
import { internals } from '../../lib/ext4/internals.js';

/** What must never follow a crash: blocks in use but marked free ("+" differences), cross-links. */
const FORBIDDEN = [/^Block bitmap differences:.*\+/, /multiply-claimed/i, /shared with/i];

describe.skipIf(!HAVE_TOOLS)('crashes without a journal: never a block in use marked free', () => {
  it('allocate, pwrite, movedata, truncate on ^has_journal: every crash point', async () => {
    const base = buildBaseImage('nojournal', 12 * 1024 * 1024, ['-O', '^has_journal']);
    const mem = new MemoryDevice(base.bytes.slice());
    const rec = new RecordingDevice(mem);
    const f = await Filesystem.open(rec, { write: true });
    expect(internals(f).journal).toBeNull();
    const bs = f.blockSize;
    const g = base.files.get('/g')!;
    const gBlocks = Math.ceil(g.length / bs);
    const d = pattern(bs, 77);
    const ops: (() => Promise<unknown>)[] = [
      () => allocate(f, '/space', { offset: 0, len: gBlocks * bs, flags: ALLOC_CONTIGUOUS }),
      () => movedata(f, '/g', '/space', { from: 0, len: gBlocks * bs }),
      ...Array.from({ length: 5 }, (_, i) => async () => (await openFile(f, '/f')).pwrite(d, i * 2 * bs)),
      async () => (await openFile(f, '/f')).truncate(bs),
    ];
    for (const op of ops) await op();
    await f.close();
    const { writes } = indexWrites(rec.log);
    const points = crashPoints(rec.log, { random: new Prng(5), subsetsPerEpoch: 1 });
    let repaired = 0;
    const problems = new Map<string, number>();
    for (const cp of points) {
      const dev = new OverlayDevice(base.bytes);
      const lose = cp.lose ?? new Set<number>();
      for (let j = 0; j < cp.writes; j++) if (!lose.has(j)) dev.writeSync(writes[j]!.position, writes[j]!.data);
      const where = `crash after ${cp.writes}/${writes.length} writes, lost [${[...lose].join(',')}]`;
      const ro = await Filesystem.open(dev, {});
      expect(sameBytes(await readWhole(ro, '/g'), g), `${where}: /g content`).toBe(true);
      await ro.close();
      const img = tmpPath('nojournal-crash.img');
      try {
        fs.writeFileSync(img, dev.image());
        const r = e2fsckClean(img);
        for (const p of r.problems) {
          problems.set(p.replace(/\d+/g, 'N'), (problems.get(p.replace(/\d+/g, 'N')) ?? 0) + 1);
          if (FORBIDDEN.some((re) => re.test(p))) throw new Error(`${where}: a block in use is marked free or claimed twice: "${p}"\n${r.output}`);
        }
        if (r.problems.length && repaired++ % 3 === 0) {
          // e2fsck -fy repairs it (a sample: every third damaged image), /g intact
          e2fsckFix(img);
          expect(e2fsckClean(img).ok, `${where}: clean after e2fsck -fy`).toBe(true);
          expect(sameBytes(new Uint8Array(debugfsDump(img, '/g')), g), `${where}: /g after e2fsck`).toBe(true);
        }
      } finally {
        fs.rmSync(img, { force: true });
      }
    }
  }, 300_000);
});
