/**
 * Crashes on ext2 (no journal, block-mapped files): commitUnjournaled's
 * ordered in-place writes with indirect blocks instead of extent-tree nodes.
 * At every crash point of a workload that allocates (zeroed blocks, new
 * IND/DIND blocks) and moves /g's data onto /space's blocks (space's inode and
 * indirect blocks give the blocks up before /g's take them: releaseFirst):
 * no block is in use but marked free, nothing is multiply claimed, /g always
 * reads its content, and a sample repaired by e2fsck -fy is clean with /g intact.
 */
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { RecordingDevice, crashPoints } from '../../lib/io/recording-device.js';
import { Prng } from '../../lib/io/prng.js';
import { allocate, ALLOC_CONTIGUOUS } from '../../lib/ops/allocate.js';
import { movedata } from '../../lib/ops/movedata.js';
import { getFreeBlocks } from '../../lib/ops/free.js';
import { FileHandle, openFile } from '../../lib/ops/file.js';
import { debugfsDump, e2fsckClean, e2fsckFix } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';
import { buildBaseImage, indexWrites, OverlayDevice, readWhole, sameBytes } from './harness.js';
import { HAVE_TOOLS } from './scenario.js';
import { internals } from '../../lib/ext4/internals.js';

/** What must never follow a crash: blocks in use but marked free ("+" differences), cross-links. */
const FORBIDDEN = [/^Block bitmap differences:.*\+/, /multiply-claimed/i, /shared with/i];

describe.skipIf(!HAVE_TOOLS)('ext2 crashes (block-mapped, no journal): never a block in use marked free', () => {
  it('allocate through IND/DIND, movedata /g onto /space and /f onto /space: every crash point', async () => {
    const base = buildBaseImage('nojournal-blockmap', 12 * 1024 * 1024, [], 1024, 'ext2');
    // Free blocks hold garbage, as on a used disk: a pointer written before the indirect block it
    // points at (a lost write) then reads 0xEEEEEEEE block numbers, not innocent zeros.
    {
      const ro = await Filesystem.open(new MemoryDevice(base.bytes), {});
      for (const e of await getFreeBlocks(ro)) base.bytes.fill(0xee, e.start, e.start + e.len);
      await ro.close();
    }
    const mem = new MemoryDevice(base.bytes.slice());
    const rec = new RecordingDevice(mem);
    const f = await Filesystem.open(rec, { write: true });
    expect(internals(f).journal).toBeNull();
    expect((await f.fileMap(await f.resolve('/g'))).kind).toBe('blockmap');
    const bs = f.blockSize;
    const g = base.files.get('/g')!;
    const gBlocks = Math.ceil(g.length / bs);
    const ops: (() => Promise<unknown>)[] = [
      () => allocate(f, '/space', { offset: 0, len: gBlocks * bs, flags: ALLOC_CONTIGUOUS }),
      () => movedata(f, '/g', '/space', { from: 0, len: gBlocks * bs }),
      () => allocate(f, '/f', { offset: 0, len: 280 * bs, flags: ALLOC_CONTIGUOUS }), // one zeroing write, not 280 crash points
      () => allocate(f, '/space', { offset: 0, len: 280 * bs, flags: ALLOC_CONTIGUOUS }),
      () => movedata(f, '/f', '/space', { from: 0, len: 280 * bs, stepExtents: 64 }),
      // A write far past EOF: new IND, DIND and IND-under-DIND blocks and the inode pointing at them.
      async () => {
        const h: FileHandle = await openFile(f, '/c/001');
        await h.pwrite(new Uint8Array(bs).fill(0x5a), 300 * bs);
      },
    ];
    for (const op of ops) await op();
    expect((await f.fileMap(await f.resolve('/f'))).metadataBlocks.length, '/f has IND, DIND and an IND under it').toBe(3);
    await f.close();
    const { writes } = indexWrites(rec.log);
    const points = crashPoints(rec.log, { random: new Prng(6), subsetsPerEpoch: 8 });
    let repaired = 0;
    for (const cp of points) {
      const dev = new OverlayDevice(base.bytes);
      const lose = cp.lose ?? new Set<number>();
      for (let j = 0; j < cp.writes; j++) if (!lose.has(j)) dev.writeSync(writes[j]!.position, writes[j]!.data);
      const where = `crash after ${cp.writes}/${writes.length} writes, lost [${[...lose].join(',')}]`;
      const ro = await Filesystem.open(dev, {});
      expect(sameBytes(await readWhole(ro, '/g'), g), `${where}: /g content`).toBe(true);
      // Every file's map reads: no pointer to an indirect block that never reached the disk.
      for (const p of ['/f', '/space', '/c/001']) await ro.fileMap(await ro.resolve(p)).catch((e: unknown) => { throw new Error(`${where}: ${p}: ${(e as Error).message}`); });
      await ro.close();
      const img = tmpPath('nojournal-blockmap-crash.img');
      try {
        fs.writeFileSync(img, dev.image());
        const r = e2fsckClean(img);
        for (const p of r.problems) if (FORBIDDEN.some((re) => re.test(p))) throw new Error(`${where}: a block in use is marked free or claimed twice: "${p}"\n${r.output}`);
        if (r.problems.length && repaired++ % 4 === 0) {
          e2fsckFix(img);
          expect(e2fsckClean(img).ok, `${where}: clean after e2fsck -fy`).toBe(true);
          expect(sameBytes(new Uint8Array(debugfsDump(img, '/g')), g), `${where}: /g after e2fsck`).toBe(true);
        }
      } finally {
        fs.rmSync(img, { force: true });
      }
    }
    expect(points.length).toBeGreaterThan(20);
  }, 300_000);
});
