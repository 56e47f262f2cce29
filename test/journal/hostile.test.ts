/**
 * Hostile input: random byte flips in descriptor, commit and revoke blocks
 * (and the journal superblock, and whole garbage logs) yield only Ext4Errors
 * or a correct shorter replay — never a RangeError/TypeError or a hang.
 */
import { describe, it, expect } from 'vitest';
import { recoverJournal } from '../../lib/jbd2/recovery.js';
import { Ext4Error } from '../../lib/errors.js';
import { BLOCKTYPE, JBD2_MAGIC, JINCOMPAT, JournalHeaderLayout, RevokeHeaderLayout } from '../../lib/jbd2/format.js';
import { buildMemLog, MemJournal, makeJsbBlock } from './memjournal.js';
import { prng } from './helpers.js';

const FORMATS = [
  { name: 'csum v3 + 64bit', inc: JINCOMPAT.CSUM_V3 | JINCOMPAT['64BIT'], csum: true },
  { name: 'csum v3, 32-bit', inc: JINCOMPAT.CSUM_V3, csum: true },
  { name: 'csum v2 + 64bit', inc: JINCOMPAT.CSUM_V2 | JINCOMPAT['64BIT'], csum: true },
  { name: 'csum v2, 32-bit', inc: JINCOMPAT.CSUM_V2, csum: true },
  { name: 'no csum + 64bit', inc: JINCOMPAT['64BIT'], csum: false },
  { name: 'no csum, 32-bit', inc: 0, csum: false },
];

async function outcome(mem: MemJournal) {
  try {
    return { result: await recoverJournal(mem.access()), error: null };
  } catch (e) {
    return { result: null, error: e };
  }
}

describe('hostile journals', () => {
  for (const fmt of FORMATS)
    it(`${fmt.name}: 300 random flips in descriptor/commit/revoke blocks`, async () => {
      const rnd = prng(fmt.inc + 1);
      const log = buildMemLog({ bs: 1024, maxlen: 400, incompat: fmt.inc, n: 8, perTx: 70, rnd, revokeEvery: 2, start: 300 }); // wraps
      const targets = [...log.roles].filter(([, r]) => r !== 'data').map(([b]) => b);
      const pick = prng(fmt.inc + 99);
      let errors = 0, shorter = 0;
      for (let iter = 0; iter < 300; iter++) {
        const m = log.mem.clone();
        const nflips = 1 + (pick(1)[0]! % 4);
        for (let k = 0; k < nflips; k++) {
          const r = pick(4);
          const jb = targets[((r[0]! << 8) | r[1]!) % targets.length]!;
          const off = ((r[2]! << 8) | r[3]!) % 1024;
          m.blocks[jb]![off]! ^= 1 << (pick(1)[0]! % 8);
        }
        const o = await outcome(m);
        if (o.error) {
          expect(o.error, String(o.error)).toBeInstanceOf(Ext4Error);
          errors++;
          continue;
        }
        const res = o.result!;
        if (res.error) expect(res.error).toBeInstanceOf(Ext4Error);
        if (fmt.csum && res.error === null && res.failedCommit === null) {
          // Checksummed formats: whatever is replayed is exactly what some transaction logged.
          for (const w of res.writes) expect(log.txBlocks.some((t) => t.get(w.fsBlock) && Buffer.compare(t.get(w.fsBlock)!, w.data) === 0), `fs block ${w.fsBlock}`).toBe(true);
        }
        if (res.transactions < 8 || res.error || res.failedCommit !== null) shorter++;
      }
      expect(errors + shorter).toBeGreaterThan(0);
    }, 60_000);

  it('flips in the journal superblock (checksum off): only Ext4Errors', async () => {
    const rnd = prng(5);
    const log = buildMemLog({ bs: 1024, maxlen: 300, incompat: JINCOMPAT['64BIT'], n: 3, perTx: 10, rnd });
    const pick = prng(6);
    for (let i = 0; i < 500; i++) {
      const m = log.mem.clone();
      for (let k = 0; k < 3; k++) {
        const r = pick(2);
        m.blocks[0]![((r[0]! << 8) | r[1]!) % 0x100]! ^= 1 << (r[0]! % 8);
      }
      const o = await outcome(m);
      if (o.error) expect(o.error, String(o.error)).toBeInstanceOf(Ext4Error);
    }
  });

  it('garbage logs: random blocks with valid headers and random tags/counts', async () => {
    const pick = prng(42);
    for (let i = 0; i < 200; i++) {
      const inc = FORMATS[i % FORMATS.length]!.inc | JINCOMPAT.REVOKE;
      const m = new MemJournal(1024, 64, makeJsbBlock({ bs: 1024, maxlen: 64, incompat: inc, sequence: 7, start: 1 + (i % 60) }));
      for (let b = 1; b < 64; b++) {
        const blk = pick(1024);
        if (pick(1)[0]! < 200) JournalHeaderLayout.encode({ h_magic: JBD2_MAGIC, h_blocktype: 1 + (pick(1)[0]! % 6), h_sequence: 7 + (pick(1)[0]! % 3) }, blk);
        m.blocks[b] = blk;
      }
      const o = await outcome(m);
      if (o.error) expect(o.error, String(o.error)).toBeInstanceOf(Ext4Error);
    }
  });

  it('a log that never reaches a commit block and wraps onto itself: EFSCORRUPTED, not a hang', async () => {
    const m = new MemJournal(1024, 40, makeJsbBlock({ bs: 1024, maxlen: 40, incompat: JINCOMPAT.REVOKE, sequence: 9, start: 5 }));
    for (let b = 1; b < 40; b++) {
      const blk = new Uint8Array(1024);
      JournalHeaderLayout.encode({ h_magic: JBD2_MAGIC, h_blocktype: BLOCKTYPE.REVOKE, h_sequence: 9 }, blk);
      RevokeHeaderLayout.encode({ r_count: 16 }, blk);
      m.blocks[b] = blk;
    }
    await expect(recoverJournal(m.access())).rejects.toMatchObject({ code: 'EFSCORRUPTED' });
    expect(m.reads).toBeLessThan(100);
  });

  it('s_start beyond the journal: recovery returns EFSCORRUPTED (jread)', async () => {
    const m = new MemJournal(1024, 40, makeJsbBlock({ bs: 1024, maxlen: 40, sequence: 9, start: 39 }));
    const jsbBlock = m.blocks[0]!;
    new DataView(jsbBlock.buffer).setUint32(0x1c, 4000, false);
    const r = await recoverJournal(m.access());
    expect(r.error?.code).toBe('EFSCORRUPTED');
    expect(r.writes).toEqual([]);
  });

  it('revoke r_count larger than the block: EINVAL from the revoke pass, nothing replayed', async () => {
    const log = buildMemLog({ bs: 1024, maxlen: 200, incompat: JINCOMPAT['64BIT'], n: 3, perTx: 4, rnd: prng(3), revokeEvery: 2 });
    const rb = [...log.roles].find(([, r]) => r === 'revoke')![0];
    RevokeHeaderLayout.encode({ r_count: 5000 }, log.mem.blocks[rb]!);
    const r = await recoverJournal(log.mem.access());
    expect(r.error?.code).toBe('EINVAL');
    expect(r.writes).toEqual([]);
  });
});
