/**
 * Linux as the oracle (loop mounts; skipped with a reason without root):
 *  - images ext4kit modified (a depth-2 tree built from a fragmented comb,
 *    unwritten→written conversions, movedata remaps and punches, truncates;
 *    1 KiB and 4 KiB blocks) mounted read-only: the kernel reads the expected
 *    bytes (sha256) and sizes;
 *  - ext4kit "crashes" right after a commit block (throw from
 *    commitHooks.onStep('commit'), lazy checkpointing: several transactions
 *    live in the log): a read-write mount replays it; after umount the content
 *    is right and e2fsck -fn is clean;
 *  - the revoke scenario (a tree leaf freed and reused for data while the log
 *    is live): the kernel honours ext4kit's revoke record.
 */
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { Filesystem } from '../../lib/node.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { allocate } from '../../lib/ops/allocate.js';
import { openFile } from '../../lib/ops/file.js';
import { debugfsDump, skipReason, withLoopMount } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';
import { buildBaseImage, findHoles, workload, type Model } from '../crash/harness.js';
import { bytes, HAVE_E2FSPROGS, verifyImage } from './helpers.js';
import { revokeScenario } from './scenarios.js';
import { internals } from '../../lib/ext4/internals.js';

const why = HAVE_E2FSPROGS ? skipReason('loop') : 'e2fsprogs not installed';
if (why) console.log(`skipping kernel mount tests: ${why}`);

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Run the crash workload's first `steps` steps on a comb image; returns the closed image and the model. */
async function modifiedImage(label: string, blockSize: number, steps: number): Promise<{ img: string; model: Model }> {
  const base = buildBaseImage(label, (blockSize === 1024 ? 16 : 32) * 1024 * 1024, [], blockSize);
  const dev = new MemoryDevice(base.bytes.slice());
  const holes = await findHoles(dev);
  const f = await Filesystem.open(dev, { write: true });
  const model: Model = { files: new Map(base.files) };
  for (const st of workload(f.blockSize, holes).slice(0, steps)) {
    await st.run(f);
    st.apply(model);
  }
  const depth = (await f.fileMap(await f.resolve('/f'))).depth;
  await f.close();
  const img = tmpPath(`${label}.img`);
  fs.writeFileSync(img, dev.data);
  verifyImage(img, label);
  return { img, model: Object.assign(model, { depth }) };
}

describe.skipIf(why !== null)('the kernel reads what ext4kit wrote', () => {
  for (const bs of [1024, 4096]) {
    it(`${bs / 1024} KiB blocks: conversions, movedata punch, remap and copy, truncate, stepped movedata — read-only mount`, async () => {
      const { img, model } = await modifiedImage(`kernel-${bs}`, bs, 15);
      await withLoopMount(img, async (mp) => {
        for (const [p, want] of model.files) {
          const got = fs.readFileSync(path.join(mp, p));
          expect(got.length, `${p} size`).toBe(want.length);
          expect(fs.statSync(path.join(mp, p)).size).toBe(want.length);
          expect(sha(got), `${p} sha256 via the kernel`).toBe(sha(want));
        }
      }, { readOnly: true });
    });
  }

  it('depth 2 as the kernel sees it (after the third allocation)', async () => {
    const { img, model } = await modifiedImage('kernel-1k-d2', 1024, 6);
    expect((model as Model & { depth: number }).depth).toBe(2);
    await withLoopMount(img, async (mp) => {
      for (const [p, want] of model.files) expect(sha(fs.readFileSync(path.join(mp, p))), p).toBe(sha(want));
    }, { readOnly: true });
  });

  for (const [fmt, opts] of [['csum v3, 64-bit tags', []], ['no checksums, 32-bit tags', ['-O', '^metadata_csum,^64bit']]] as const)
  it(`crash right after a commit block (${fmt}): a read-write mount replays the live log`, async () => {
    const base = buildBaseImage('kernel-crash', 16 * 1024 * 1024, [...opts]);
    const img = tmpPath('kernel-crash.img');
    fs.writeFileSync(img, base.bytes);
    const f = await Filesystem.open(img, { write: true });
    const bs = f.blockSize;
    const d1 = bytes(3 * bs + 100, 5), d2 = bytes(2 * bs, 6);
    await allocate(f, '/f', { offset: 0, len: 20 * bs });
    await (await openFile(f, '/f')).pwrite(d1, bs);
    let armed = true;
    internals(f).commitHooks = { onStep: (s) => { if (s === 'commit' && armed) { armed = false; throw new Error('simulated crash after the commit block'); } } };
    await expect((await openFile(f, '/f')).pwrite(d2, 30 * bs)).rejects.toThrow('simulated crash');
    expect(internals(f).journal!.pending.size).toBeGreaterThan(0); // nothing checkpointed: three transactions in the log
    await f.close(); // broken session: no checkpoint, needs_recovery stays set
    const expected = new Uint8Array(32 * bs);
    expected.set(d1, bs);
    expected.set(d2, 30 * bs);
    await withLoopMount(img, async (mp) => {
      const got = fs.readFileSync(path.join(mp, 'f'));
      expect(sha(got)).toBe(sha(expected));
    });
    verifyImage(img, 'after the kernel replayed and unmounted');
    expect(sha(debugfsDump(img, '/f'))).toBe(sha(expected));
    expect(sha(debugfsDump(img, '/g'))).toBe(sha(base.files.get('/g')!));
  });

  it('the kernel honours ext4kit revoke records (tree leaf reused for data while the log is live)', async () => {
    const s = await revokeScenario({ label: 'kernel-revoke', blockSize: 1024, sizeMiB: 16, mkfsOpts: [] });
    const img = tmpPath('kernel-revoke.img');
    fs.writeFileSync(img, s.crash);
    await withLoopMount(img, async (mp) => {
      expect(sha(fs.readFileSync(path.join(mp, 'u')))).toBe(sha(s.data));
    });
    verifyImage(img, 'revoke scenario after the kernel replayed it');
    expect(sha(debugfsDump(img, '/u'))).toBe(sha(s.data));
  });
});
