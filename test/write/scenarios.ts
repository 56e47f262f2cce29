/**
 * Shared write-path scenarios (used by journal.test.ts and kernel.test.ts).
 */
import * as fs from 'node:fs';
import { expect } from 'vitest';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { parseJournalSuperblock, BLOCKTYPE, JBD2_MAGIC } from '../../lib/jbd2/format.js';
import { allocate, ALLOC_FIXED_LEN, ALLOC_FIXED_START } from '../../lib/ops/allocate.js';
import { openFile } from '../../lib/ops/file.js';
import { buildImage, bytes, type ImageConfig } from './helpers.js';
import { internals } from '../../lib/ext4/internals.js';

export const FILES = { t: new Uint8Array(0), u: new Uint8Array(0) };

async function jsbOnDisk(f: Filesystem) {
  return parseJournalSuperblock(await internals(f).journal!.readBlock(0));
}

/**
 * Build the revoke scenario on `cfg` and return the crash image (no checkpoint,
 * no close) plus the bytes /u must hold and the block that changed roles.
 */
export async function revokeScenario(cfg: ImageConfig): Promise<{ crash: Uint8Array; data: Uint8Array; leaf: number; revokes: number }> {
  const img = buildImage(cfg, FILES);
  const dev = new MemoryDevice(new Uint8Array(fs.readFileSync(img)));
  fs.rmSync(img);
  const f = await Filesystem.open(dev, { write: true });
  const bs = f.blockSize;
  // /t: 6 one-block extents → depth 1 with one leaf node (logged, still in the live log).
  for (let i = 0; i < 6; i++) await (await openFile(f, '/t')).pwrite(bytes(bs, 40 + i), i * 2 * bs);
  const map = await f.fileMap(await f.resolve('/t'));
  expect(map.depth).toBe(1);
  const leaf = map.metadataBlocks[0]!;
  expect(internals(f).journal!.pending.has(leaf)).toBe(true);
  // Free the leaf: truncate to 2 blocks → 1 extent → depth 0. The leaf has a copy in the live log → revoked.
  await (await openFile(f, '/t')).truncate(2 * bs);
  expect(f.writeStats.revokes).toBeGreaterThan(0);
  // Reuse the leaf's block for /u's data, written in place, while the log is still live.
  await allocate(f, '/u', { offset: 0, len: bs, goal: leaf * bs, flags: ALLOC_FIXED_START | ALLOC_FIXED_LEN });
  const data = bytes(bs, 99);
  await (await openFile(f, '/u')).pwrite(data, 0);
  expect((await f.fileMap(await f.resolve('/u'))).extents[0]!.physical).toBe(leaf);
  expect((await jsbOnDisk(f)).s_start).not.toBe(0); // the log is live: nothing was checkpointed
  const revokes = f.writeStats.revokes;
  const crash = dev.data.slice(); // crash: no checkpoint, no close
  await f.close();
  return { crash, data, leaf, revokes };
}

/** Empty every revoke block of the log (r_count = 16: header only). Only for journals without checksums. */
export function dropRevokes(img: Uint8Array, journalExtents: { physical: number; length: number }[], bs: number): number {
  let n = 0;
  for (const e of journalExtents)
    for (let b = e.physical; b < e.physical + e.length; b++) {
      const dv = new DataView(img.buffer, img.byteOffset + b * bs, bs);
      if (dv.getUint32(0) === JBD2_MAGIC && dv.getUint32(4) === BLOCKTYPE.REVOKE) {
        dv.setUint32(12, 16);
        n++;
      }
    }
  return n;
}

