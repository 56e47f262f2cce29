/**
 * The journal as the write path leaves it, inspected on disk.
 *
 * - checkpoint 'each': after every transaction the log is empty on disk
 *   (journal s_start = 0, s_sequence = next tid) — so no revoke is ever needed.
 * - checkpoint 'lazy' (the default): the log stays live across transactions
 *   (s_start = s_first after each commit, debugfs logdump lists them all) and
 *   is emptied at close; a crash copy replays to the right state.
 * - Revokes are load-bearing: an extent-tree leaf logged by one transaction,
 *   freed by a later one (truncate to depth 0) and then reused for file data
 *   while the log is still live must not be overwritten by the replay. With
 *   the revoke record, e2fsck's replay and ext4kit's give the new data; with
 *   the revoke record emptied (r_count = header only), e2fsck replays the stale
 *   tree node over the data — the path needs the revoke.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { parseJournalSuperblock } from '../../lib/jbd2/format.js';
import { allocate } from '../../lib/ops/allocate.js';
import { openFile } from '../../lib/ops/file.js';
import { dropRevokes, FILES, revokeScenario } from './scenarios.js';
import { debugfs, debugfsDump, dumpe2fsHeader, e2fsckJournalOnly } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';
import { buildImage, bytes, debugfsExtents, HAVE_E2FSPROGS, verifyImage, type ImageConfig } from './helpers.js';
import { internals } from '../../lib/ext4/internals.js';

if (!HAVE_E2FSPROGS) console.log('skipping journal tests: e2fsprogs not installed');

const C1K: ImageConfig = { label: 'journal-1k', blockSize: 1024, sizeMiB: 16, mkfsOpts: [] };
const C1K_NOCSUM: ImageConfig = { label: 'journal-1k-nocsum', blockSize: 1024, sizeMiB: 16, mkfsOpts: ['-O', '^metadata_csum'] };

async function jsbOnDisk(f: Filesystem) {
  return parseJournalSuperblock(await internals(f).journal!.readBlock(0));
}

describe.skipIf(!HAVE_E2FSPROGS)('journal state after transactions', () => {
  let base: Uint8Array;
  beforeAll(() => {
    const img = buildImage(C1K, FILES);
    base = new Uint8Array(fs.readFileSync(img));
    fs.rmSync(img);
  });

  it("checkpoint 'each': the log is empty on disk after every transaction", async () => {
    const dev = new MemoryDevice(base.slice());
    const f = await Filesystem.open(dev, { write: true, checkpoint: 'each' });
    const seen: { start: number; seq: number }[] = [];
    let committedTid = -1;
    internals(f).commitHooks = {
      onStep: async (s) => {
        if (s === 'commit') committedTid = (await jsbOnDisk(f)).s_sequence;
        if (s === 'done') {
          const j = await jsbOnDisk(f);
          seen.push({ start: j.s_start, seq: j.s_sequence });
          expect(j.s_sequence).toBe((committedTid + 1) >>> 0);
        }
      },
    };
    for (let i = 0; i < 6; i++) await allocate(f, '/t', { offset: i * 2048, len: 1024 });
    await (await openFile(f, '/t')).truncate(0);
    expect(seen.length).toBe(7);
    expect(seen.every((s) => s.start === 0)).toBe(true);
    expect(f.writeStats.revokes).toBe(0);
    await f.close();
  });

  it("checkpoint 'lazy': the log stays live, holds every transaction, replays from a crash copy, empties at close", async () => {
    const dev = new MemoryDevice(base.slice());
    const f = await Filesystem.open(dev, { write: true });
    const starts: number[] = [];
    let checkpoints = 0;
    internals(f).commitHooks = {
      onStep: async (s) => {
        if (s === 'commit') starts.push((await jsbOnDisk(f)).s_start);
        if (s === 'done') checkpoints++;
      },
    };
    const data = bytes(5 * 1024, 3);
    for (let i = 0; i < 5; i++) await (await openFile(f, '/t')).pwrite(data.subarray(i * 1024, (i + 1) * 1024), i * 2048);
    const jsb = await jsbOnDisk(f);
    expect(starts).toEqual(new Array(5).fill(jsb.s_first));
    expect(checkpoints).toBe(0);
    // A copy taken now is a crash: debugfs sees 5 transactions in the log, e2fsck replays them.
    const crash = tmpPath('lazy-crash.img');
    fs.writeFileSync(crash, dev.data);
    const log = debugfs(crash, ['logdump']);
    expect(log.match(/commit block/g)?.length).toBe(5);
    const j = e2fsckJournalOnly(crash);
    expect(j.exitCode).toBeLessThanOrEqual(1);
    verifyImage(crash, 'lazy log replayed by e2fsck');
    const expected = new Uint8Array(9 * 1024);
    for (let i = 0; i < 5; i++) expected.set(data.subarray(i * 1024, (i + 1) * 1024), i * 2048);
    expect(Buffer.compare(debugfsDump(crash, '/t'), Buffer.from(expected))).toBe(0);
    await f.close();
    expect(checkpoints).toBe(1);
    const out = tmpPath('lazy-closed.img');
    fs.writeFileSync(out, dev.data);
    expect(dumpe2fsHeader(out)['Journal start']).toBe('0');
    verifyImage(out, 'lazy session closed');
  });
});

describe.skipIf(!HAVE_E2FSPROGS)('revoke records for blocks freed while in the live log', () => {
  for (const cfg of [C1K, C1K_NOCSUM]) {
    it(`${cfg.mkfsOpts.length ? 'no journal checksums' : 'csum v3'}: a tree leaf freed and reused for data survives e2fsck's and ext4kit's replay`, async () => {
      const s = await revokeScenario(cfg);
      expect(s.revokes).toBeGreaterThan(0);
      const crash = tmpPath('revoke-crash.img');
      fs.writeFileSync(crash, s.crash);
      const log = debugfs(crash, ['logdump']);
      expect(log).toMatch(/Revoke/i);
      // e2fsck replay on a copy
      const e2 = tmpPath('revoke-e2fsck.img');
      fs.copyFileSync(crash, e2);
      expect(e2fsckJournalOnly(e2).exitCode).toBeLessThanOrEqual(1);
      verifyImage(e2, 'revoke scenario replayed by e2fsck');
      expect(Buffer.compare(debugfsDump(e2, '/u'), Buffer.from(s.data)), 'e2fsck replay kept /u data').toBe(0);
      expect(debugfsExtents(e2, '/u').leaves[0]!.physical).toBe(s.leaf);
      // ext4kit replay (open for writing, close)
      const dev = new MemoryDevice(s.crash.slice());
      const w = await Filesystem.open(dev, { write: true });
      expect(w.replayed?.revokes ?? 0).toBeGreaterThan(0);
      await w.close();
      const ours = tmpPath('revoke-ours.img');
      fs.writeFileSync(ours, dev.data);
      verifyImage(ours, 'revoke scenario replayed by ext4kit');
      expect(Buffer.compare(debugfsDump(ours, '/u'), Buffer.from(s.data)), 'ext4kit replay kept /u data').toBe(0);

      if (cfg === C1K_NOCSUM) {
        // Negative control: the same log without its revoke records clobbers /u with the stale leaf.
        const ro = await Filesystem.open(new MemoryDevice(s.crash.slice(), { readOnly: true }), { journalRecovery: 'ignore' });
        const jext = (await ro.fileMap(await ro.readInode(ro.sb.s_journal_inum))).extents;
        await ro.close();
        const tampered = s.crash.slice();
        expect(dropRevokes(tampered, jext, 1024)).toBeGreaterThan(0);
        const bad = tmpPath('revoke-dropped.img');
        fs.writeFileSync(bad, tampered);
        expect(e2fsckJournalOnly(bad).exitCode).toBeLessThanOrEqual(1);
        const clobbered = debugfsDump(bad, '/u');
        expect(Buffer.compare(clobbered, Buffer.from(s.data)), 'without the revoke the replay overwrites the data').not.toBe(0);
        expect(clobbered.readUInt16LE(0), 'it is the stale extent-tree node (magic 0xF30A)').toBe(0xf30a);
      }
    });
  }
});
