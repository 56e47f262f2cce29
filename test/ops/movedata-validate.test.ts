/**
 * movedata validates the whole call before its first step commits (issue 8
 * item 5), and a step is only copied once it is known to fit the journal
 * (item 12): a call that fails leaves the image byte-identical (sha256 of the
 * device while the filesystem is open, and no write issued during the call).
 *  - a stepped call (stepBytes, or a range over more than 64 extents) whose
 *    range ends past the end of the data file: EINVAL, nothing written;
 *  - space a directory, data == space, data a directory: refused, nothing written;
 *  - 1 KiB blocks, a 1 MiB journal and a space file of 24,576 extents: the
 *    step either commits (extent edits small enough) or fails with E2BIG, and
 *    then not one byte of space — or of anything else — has changed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { memoryDeviceFromFile } from '../../lib/io/file-device.js';
import { RecordingDevice } from '../../lib/io/recording-device.js';
import { movedata } from '../../lib/ops/movedata.js';
import { allocate, ALLOC_CONTIGUOUS } from '../../lib/ops/allocate.js';
import { cleanupImages, codeOf, expectClean, HAVE_E2FSPROGS, makeImage, pattern, sameBytes, scratchPath } from './helpers.js';
import * as nodefs from 'node:fs';
import { debugfsDump } from '../helpers/tools.js';

const K = 1024;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/**
 * `n` blocks: the first `solid` written, then every other block zero (mkfs -d
 * makes those holes: one-block extents).
 */
function combed(n: number, seed: number, solid = 0): Uint8Array {
  const out = new Uint8Array(n * K);
  const p = pattern(n * K, seed);
  out.set(p.subarray(0, solid * K));
  for (let b = solid; b < n; b += 2) out.set(p.subarray(b * K, (b + 1) * K), b * K);
  return out;
}

async function openMem(img: string): Promise<{ mem: MemoryDevice; rec: RecordingDevice; f: Filesystem }> {
  const mem = await memoryDeviceFromFile(img);
  nodefs.rmSync(img, { force: true });
  const rec = new RecordingDevice(mem);
  const f = await Filesystem.open(rec, { write: true });
  return { mem, rec, f };
}

/** Run a call that must fail with `code`; the device must not see one write and keep its bytes. */
async function expectNoChange(mem: MemoryDevice, rec: RecordingDevice, code: string, call: () => Promise<unknown>, what: string): Promise<void> {
  const before = sha(mem.data);
  const writes = rec.writeCount;
  expect(await codeOf(call), what).toBe(code);
  expect(rec.writeCount - writes, `${what}: writes issued by the failed call`).toBe(0);
  expect(sha(mem.data), `${what}: image sha256`).toBe(before);
}

afterEach(() => cleanupImages());

describe.skipIf(!HAVE_E2FSPROGS)('movedata: a failed call changes nothing', () => {
  it('range past data\'s EOF with stepBytes: EINVAL before the first step commits', async () => {
    const img = makeImage('mdv-steps', { data: pattern(40 * K, 1), space: new Uint8Array(0) }, { blockSize: K, sizeMiB: 8 });
    const { mem, rec, f } = await openMem(img);
    try {
      expect(await allocate(f, '/space', { offset: 0, len: 48 * K, flags: ALLOC_CONTIGUOUS })).toBe(48 * K);
      // 40 blocks of data, the range covers 48: the first five 8-block steps are fine, the sixth is not
      await expectNoChange(mem, rec, 'EINVAL', () => movedata(f, '/data', '/space', { from: 0, len: 48 * K, stepBytes: 8 * K }), 'stepBytes 8 KiB, range 48 blocks over a 40-block file');
      // the same with a range starting inside the file
      await expectNoChange(mem, rec, 'EINVAL', () => movedata(f, '/data', '/space', { from: 16 * K, len: 32 * K, stepBytes: 4 * K }), 'from block 16, 32 blocks, stepBytes 4 KiB');
      // a call inside the file still works, in steps
      expect(await movedata(f, '/data', '/space', { from: 0, len: 40 * K, stepBytes: 8 * K })).toBeUndefined();
    } finally {
      await f.close();
    }
    const out = scratchPath('mdv-steps-after.img');
    nodefs.writeFileSync(out, mem.data);
    expectClean(out, 'movedata after refused calls');
    // the bytes as debugfs reads them, not only as we do
    expect(sameBytes(new Uint8Array(debugfsDump(out, '/data')), pattern(40 * K, 1))).toBe(true);
  });

  it('range past data\'s EOF over more than 64 extents (default steps): EINVAL, nothing written', async () => {
    // 160 blocks, every other one a hole: 80 extents in data, so the default 64-extent steps split the call
    const img = makeImage('mdv-extents', { data: combed(160, 2), space: new Uint8Array(0) }, { blockSize: K, sizeMiB: 8 });
    const { mem, rec, f } = await openMem(img);
    try {
      expect((await f.fileMap(await f.resolve('/data'))).extents.length).toBe(80);
      expect(await allocate(f, '/space', { offset: 0, len: 170 * K, flags: ALLOC_CONTIGUOUS })).toBe(170 * K);
      // data is 159 blocks + 1 KiB long (its last block is a hole); 170 blocks end past it
      await expectNoChange(mem, rec, 'EINVAL', () => movedata(f, '/data', '/space', { from: 0, len: 170 * K }), '80 extents, range past EOF');
      await expectNoChange(mem, rec, 'EINVAL', () => movedata(f, '/data', '/space', { from: 0, len: 170 * K, stepExtents: 4 }), 'stepExtents 4, range past EOF');
    } finally {
      await f.close();
    }
  });

  it('space or data not a regular file, data == space: refused, nothing written', async () => {
    const img = makeImage('mdv-types', { data: pattern(8 * K, 3), 'dir/x': pattern(K, 4) }, { blockSize: K, sizeMiB: 8 });
    const { mem, rec, f } = await openMem(img);
    try {
      await expectNoChange(mem, rec, 'EINVAL', () => movedata(f, '/data', '/dir', { from: 0, len: 8 * K, stepBytes: K }), 'space is a directory');
      await expectNoChange(mem, rec, 'EINVAL', () => movedata(f, '/dir', '/data', { from: 0, len: K, stepBytes: K }), 'data is a directory');
      await expectNoChange(mem, rec, 'EINVAL', () => movedata(f, '/data', '/data', { from: 0, len: 8 * K, stepBytes: K }), 'data == space');
    } finally {
      await f.close();
    }
  });

  it('a step too big for a 1 MiB journal (space of 24,576 extents): it commits, or E2BIG with not one byte copied', async () => {
    // space: 64 written blocks, then every other block written → 24,576 extents (a depth-2 tree of ~300
    // blocks with 1 KiB blocks: rewriting it whole needs more than a quarter of the 1024-block log)
    const img = makeImage('mdv-e2big', { data: pattern(32 * K, 5), space: combed(64 + 2 * 24576, 6, 64) }, { blockSize: K, sizeMiB: 64, mkfsOpts: ['-J', 'size=1'] });
    const { mem, f } = await openMem(img);
    let code: string;
    try {
      const space = await f.resolve('/space');
      expect((await f.fileMap(space)).extents.length).toBe(24576);
      const before = sha(mem.data);
      code = await codeOf(() => movedata(f, '/data', '/space', { from: 0, len: 32 * K }));
      expect(['resolved', 'E2BIG'], `movedata: ${code}`).toContain(code);
      // (writes are not counted here: beginning and rolling back the write session around the
      // refused commit may rewrite the superblocks with their old bytes; the image must not change)
      if (code === 'E2BIG') expect(sha(mem.data), 'image sha256 after E2BIG').toBe(before);
      expect(sameBytes(await f.read(await f.resolve('/data'), 0, 32 * K), pattern(32 * K, 5)), '/data content').toBe(true);
    } finally {
      await f.close();
    }
    const out = scratchPath('mdv-e2big-after.img');
    nodefs.writeFileSync(out, mem.data);
    expectClean(out, `movedata that ended with ${code}`);
  }, 120_000);
});
