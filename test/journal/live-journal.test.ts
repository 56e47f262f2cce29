/**
 * The live journal (lib/jbd2/journal.ts) and the device adapter
 * (lib/jbd2/device.ts) on a memory device, without ext4 (no child processes,
 * fixed seeds): random transactions that log metadata, free blocks (revoked
 * while the log holds a copy) and reuse them for ordered data; at every
 * crash step the device as it stands is recovered and must hold exactly the
 * committed state.
 */
import { describe, it, expect } from 'vitest';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { Prng } from '../../lib/io/prng.js';
import { journalOnDevice } from '../../lib/jbd2/device.js';
import { Journal, type CommitStep } from '../../lib/jbd2/journal.js';
import { JINCOMPAT, parseJournalSuperblock } from '../../lib/jbd2/format.js';
import { recoverJournal } from '../../lib/jbd2/recovery.js';
import { isExt4Error } from '../../lib/errors.js';
import { makeJsbBlock } from './memjournal.js';

const BS = 1024;
const HOME = 64; // fs blocks 0..63 are "home"; the journal follows them
const JOURNAL_AT = HOME;

function bytes(p: Prng, n: number): Uint8Array {
  const w = new Uint32Array(n / 4);
  for (let i = 0; i < w.length; i++) w[i] = p.uint32();
  return new Uint8Array(w.buffer);
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, k) => x === b[k]);
}

function setup(maxlen: number, incompat: number) {
  const image = new Uint8Array((HOME + maxlen) * BS);
  image.set(makeJsbBlock({ bs: BS, maxlen, incompat, sequence: 0x1234, start: 0 }), JOURNAL_AT * BS);
  const dev = new MemoryDevice(image);
  const io = journalOnDevice(dev, { blockSize: BS, physical: (n) => JOURNAL_AT + n, blockCount: maxlen });
  return { image, dev, io };
}

describe('journalOnDevice', () => {
  it('maps journal blocks through physical(); refuses blocks outside the journal and partial writes', async () => {
    const { dev, io } = setup(1024, 0);
    await io.writeBlock(5, new Uint8Array(BS).fill(7));
    expect((await dev.read((JOURNAL_AT + 5) * BS, BS))[0]).toBe(7);
    expect((await io.readBlock(5))[BS - 1]).toBe(7);
    expect(parseJournalSuperblock(await io.readBlock(0)).s_maxlen).toBe(1024);
    for (const n of [-1, 1024, 1.5])
      await expect(io.readBlock(n)).rejects.toSatisfy((e: unknown) => isExt4Error(e, 'EFSCORRUPTED') && e.location?.kind === 'journal-block');
    await expect(io.writeBlock(1, new Uint8Array(BS / 2))).rejects.toSatisfy((e: unknown) => isExt4Error(e, 'EINVAL'));
  });
});

describe('Journal: commit, revoke, checkpoint; recovery at every step gives the committed state', () => {
  const cases = [
    { name: 'csum v3 + 64bit, lazy', incompat: JINCOMPAT.CSUM_V3 | JINCOMPAT['64BIT'], policy: 'lazy' as const },
    { name: 'csum v2, 32-bit, lazy with small pending limit', incompat: JINCOMPAT.CSUM_V2, policy: 'lazy' as const, maxPendingBlocks: 40 },
    { name: 'no csum, 32-bit, each', incompat: 0, policy: 'each' as const },
  ];
  for (const c of cases)
    it(c.name, async () => {
      const p = new Prng(`live ${c.name}`);
      const maxlen = 512; // small: the log fills and checkpoints several times
      const { image, dev, io } = setup(maxlen, c.incompat);
      const journal = await Journal.load(io, { writeBlock: (b, d) => dev.write(b * BS, d) });
      journal.policy = c.policy;
      if (c.maxPendingBlocks) journal.maxPendingBytes = c.maxPendingBlocks * BS;
      // Model: fs block → content (metadata image or data); absent = free (any content).
      let committed = new Map<number, Uint8Array>();
      let inflight = committed;
      const free = new Set<number>(Array.from({ length: HOME }, (_, i) => i));
      const steps: CommitStep[] = [];
      let checked = 0;
      const verify = async (step: CommitStep) => {
        steps.push(step);
        if (step === 'commit') committed = inflight;
        // The device as it stands, recovered: replayed blocks laid over the home area.
        const copy = image.slice();
        const res = await recoverJournal(journalOnDevice(new MemoryDevice(copy), { blockSize: BS, physical: (n) => JOURNAL_AT + n }));
        expect(res.error).toBeNull();
        for (const [b, data] of res.blocks) copy.set(data, b * BS);
        for (const [b, want] of committed) expect(same(copy.subarray(b * BS, (b + 1) * BS), want), `fs block ${b} after ${step} (${steps.length})`).toBe(true);
        checked++;
      };
      const hooks = { onStep: verify };

      let revokedFromLog = 0;
      for (let t = 0; t < 60; t++) {
        const next = new Map(committed);
        const blocks = new Map<number, Uint8Array>();
        const freed: { start: number; length: number }[] = [];
        const ordered: { block: number; data: Uint8Array }[] = [];
        // Log some metadata (free blocks become metadata, metadata gets new images).
        for (let i = p.int(30); i > 0; i--) {
          const b = p.int(HOME);
          if (blocks.has(b) || ordered.some((w) => w.block === b)) continue;
          const img = bytes(p, BS);
          if (p.chance(0.1)) img.set([0xc0, 0x3b, 0x39, 0x98]); // escaped in the log
          blocks.set(b, img);
          next.set(b, img);
        }
        // Free some metadata of earlier transactions (not logged here): they may hold a copy in the live log.
        for (const b of [...committed.keys()]) if (!blocks.has(b) && p.chance(0.1)) { freed.push({ start: b, length: 1 }); next.delete(b); }
        // Reuse blocks freed by committed transactions for ordered data, written in place.
        for (const b of [...free]) if (!committed.has(b) && !blocks.has(b) && p.chance(0.05)) { const d = bytes(p, BS); ordered.push({ block: b, data: d }); next.set(b, d); }
        inflight = next;
        const r = await journal.commit(
          {
            blocks,
            freed,
            ordered: async () => {
              for (const w of ordered) await dev.write(w.block * BS, w.data);
              return ordered.length * BS;
            },
            now: { sec: 1_700_000_000, nsec: 0 }, // a stuck clock: commit times must still increase
          },
          hooks,
        );
        expect(r.blocks).toBe(blocks.size);
        expect(r.dataBytes).toBe(ordered.length * BS);
        revokedFromLog += r.revokedFromLog.length;
        for (const b of r.revokedFromLog) expect(journal.pending.has(b)).toBe(false);
        if (journal.live) for (const [b, d] of blocks) expect(journal.pending.get(b)).toBe(d); // read-through until checkpointed
        free.clear();
        for (let b = 0; b < HOME; b++) if (!next.has(b)) free.add(b);
      }
      await journal.checkpoint(hooks);
      expect(journal.live).toBe(false);
      expect(parseJournalSuperblock(await io.readBlock(0)).s_start).toBe(0);
      for (const [b, want] of committed) expect(same(image.subarray(b * BS, (b + 1) * BS), want), `fs block ${b} at the end`).toBe(true);
      // The step contract crash tests rely on: data, log, commit per transaction; checkpoint, done per checkpoint.
      const s = steps.join(' ');
      expect(s.replace(/data log commit/g, 'T').replace(/checkpoint done/g, 'C').split(' ').every((x) => x === 'T' || x === 'C')).toBe(true);
      expect(steps.filter((x) => x === 'commit').length).toBe(60);
      expect(steps.filter((x) => x === 'checkpoint').length).toBeGreaterThan(1);
      if (c.policy === 'lazy') expect(revokedFromLog).toBeGreaterThan(0); // with 'each' the log is empty at every commit
      expect(checked).toBe(steps.length);
    });

  it('refuses a transaction over a quarter of the log (E2BIG) before writing anything', async () => {
    const { image, dev, io } = setup(1024, JINCOMPAT.CSUM_V3);
    const journal = await Journal.load(io, { writeBlock: (b, d) => dev.write(b * BS, d) });
    const before = image.slice();
    const blocks = new Map(Array.from({ length: 300 }, (_, i) => [i, new Uint8Array(BS).fill(1)] as [number, Uint8Array]));
    let ordered = 0;
    const steps: string[] = [];
    await expect(journal.commit({ blocks, revokes: [1, 2, 3], ordered: async () => ++ordered, now: { sec: 1, nsec: 0 } }, { onStep: (s) => void steps.push(s) })).rejects.toSatisfy((e: unknown) => isExt4Error(e, 'E2BIG'));
    expect(ordered).toBe(0);
    expect(steps).toEqual([]);
    expect(same(image, before)).toBe(true);
    expect(journal.jsb.s_feature_incompat & JINCOMPAT.REVOKE).toBe(0); // not even the feature bit
  });
});
