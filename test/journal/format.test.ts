/** Unit tests of the journal format, log writer and replay flows (in memory). */
import { describe, it, expect } from 'vitest';
import {
  JCOMPAT, JINCOMPAT, TAG_FLAG, Tag3Layout, TagCsum2x32Layout, TagCsum2x64Layout, Tag32Layout, Tag64Layout, crc32Be, decodeTag, encodeTag, parseJournalSuperblock,
  serializeJournalSuperblock, tagFormatFor, tidGt, JBD2_MAGIC, JournalHeaderLayout, BLOCKTYPE,
} from '../../lib/jbd2/format.js';
import { buildTransaction, logSpaceNeeded, maxTransactionBlocks } from '../../lib/jbd2/log-writer.js';
import { finishRecovery, recoverJournal } from '../../lib/jbd2/recovery.js';
import { replayIntoOverlay, replayJournal } from '../../lib/ext4/journal-replay.js';
import { makeJsbBlock, MemJournal, buildMemLog } from './memjournal.js';
import { prng } from './helpers.js';
import { INCOMPAT, STATE, SUPERBLOCK_SIZE, SuperblockLayout, type Superblock } from '../../lib/ext4/superblock.js';

describe('tag formats (journal_tag_bytes)', () => {
  const cases: [number, string, number][] = [
    [JINCOMPAT.CSUM_V3 | JINCOMPAT['64BIT'], 'tag3', 16],
    [JINCOMPAT.CSUM_V3, 'tag3', 16],
    [JINCOMPAT.CSUM_V2 | JINCOMPAT['64BIT'], 'csum2-64', 14],
    [JINCOMPAT.CSUM_V2, 'csum2-32', 10],
    [JINCOMPAT['64BIT'], 'plain-64', 12],
    [0, 'plain-32', 8],
  ];
  for (const [inc, name, size] of cases)
    it(`incompat 0x${inc.toString(16)} → ${name} (${size} bytes), round trip`, () => {
      const f = tagFormatFor(inc);
      expect(f.name).toBe(name);
      expect(f.size).toBe(size);
      const b = new Uint8Array(32).fill(0xee);
      const blk = f.is64 ? 0x1234_5678_9a : 0x89abcdef;
      encodeTag(f, b, 3, blk, TAG_FLAG.ESCAPE | TAG_FLAG.LAST_TAG, 0xdeadbeef);
      const t = decodeTag(f, b, 3);
      expect(t.block).toBe(BigInt(blk));
      expect(t.flags).toBe(TAG_FLAG.ESCAPE | TAG_FLAG.LAST_TAG);
      expect(t.checksum).toBe(f.csumBits === 32 ? 0xdeadbeef : f.csumBits === 16 ? 0xbeef : 0);
      // Flags are always the big-endian u16 at offset 6 (what recovery reads).
      expect((b[3 + 6]! << 8) | b[3 + 7]!).toBe(TAG_FLAG.ESCAPE | TAG_FLAG.LAST_TAG);
      expect(b[3 + size]).toBe(0xee); // nothing written past the tag
    });
  it('layout sizes', () => {
    expect([Tag3Layout.size, TagCsum2x64Layout.size, TagCsum2x32Layout.size, Tag64Layout.size, Tag32Layout.size]).toEqual([16, 14, 10, 12, 8]);
  });
});

describe('checksums and sequence arithmetic', () => {
  it('crc32_be(~0, "123456789") is CRC-32/MPEG-2 0x0376E6E7', () => {
    expect(crc32Be(0xffffffff, new TextEncoder().encode('123456789'))).toBe(0x0376e6e7);
  });
  it('tid compare is modulo 2^32', () => {
    expect(tidGt(0, 0xffffffff)).toBe(true);
    expect(tidGt(0xffffffff, 0)).toBe(false);
    expect(tidGt(5, 5)).toBe(false);
  });
});

describe('parseJournalSuperblock', () => {
  const ok = () => makeJsbBlock({ bs: 1024, maxlen: 2048, incompat: JINCOMPAT.CSUM_V3 | JINCOMPAT['64BIT'] });
  it('round-trips with checksum', () => {
    const j = parseJournalSuperblock(ok(), { kind: 'field', field: 'x' }, { fsBlockSize: 1024 });
    expect(j.csumVersion).toBe(3);
    j.s_sequence = 12345;
    const again = parseJournalSuperblock(serializeJournalSuperblock(j), { kind: 'field', field: 'x' });
    expect(again.s_sequence).toBe(12345);
  });
  it('unknown incompat bits → EOPNOTSUPP', () => {
    const b = makeJsbBlock({ bs: 1024, maxlen: 2048, incompat: 0x40 | JINCOMPAT['64BIT'] });
    expect(() => parseJournalSuperblock(b, { kind: 'field', field: 'x' })).toThrow(expect.objectContaining({ code: 'EOPNOTSUPP' }));
  });
  it('bad checksum → EFSBADCRC; v2+v3 → EFSCORRUPTED; v1 checksum with v3 → EFSCORRUPTED', () => {
    const b = ok();
    b[0x44] = b[0x44]! ^ 1; // s_dynsuper
    expect(() => parseJournalSuperblock(b, { kind: 'field', field: 'x' })).toThrow(expect.objectContaining({ code: 'EFSBADCRC' }));
    expect(() => parseJournalSuperblock(makeJsbBlock({ bs: 1024, maxlen: 2048, incompat: JINCOMPAT.CSUM_V2 | JINCOMPAT.CSUM_V3 }), { kind: 'field', field: 'x' }, { verifyChecksum: false })).toThrow(
      expect.objectContaining({ code: 'EFSCORRUPTED' }),
    );
    expect(() => parseJournalSuperblock(makeJsbBlock({ bs: 1024, maxlen: 2048, incompat: JINCOMPAT.CSUM_V3, compat: JCOMPAT.CHECKSUM }), { kind: 'field', field: 'x' }, { verifyChecksum: false })).toThrow(
      expect.objectContaining({ code: 'EFSCORRUPTED' }),
    );
  });
  it('block size mismatch, journal too short, bad magic → EFSCORRUPTED naming the place', () => {
    expect(() => parseJournalSuperblock(ok(), { kind: 'journal-block', block: 0, role: 'inode 8' }, { fsBlockSize: 4096 })).toThrow(/journal block 0 \(inode 8\)/);
    expect(() => parseJournalSuperblock(ok(), { kind: 'field', field: 'x' }, { journalBlocks: 100 })).toThrow(expect.objectContaining({ code: 'EFSCORRUPTED' }));
    const b = ok();
    b[0] = 0;
    expect(() => parseJournalSuperblock(b, { kind: 'field', field: 'x' })).toThrow(expect.objectContaining({ code: 'EFSCORRUPTED' }));
  });
  it('a v1 superblock is featureless whatever its bytes say', () => {
    const b = makeJsbBlock({ bs: 1024, maxlen: 2048, version: 1, incompat: JINCOMPAT.CSUM_V3 | JINCOMPAT['64BIT'] });
    const j = parseJournalSuperblock(b, { kind: 'field', field: 'x' });
    expect(j.version).toBe(1);
    expect(j.incompat).toBe(0);
    expect(j.tagFormat.name).toBe('plain-32');
    expect(j.csumVersion).toBe(0);
  });
  it('fast commit: j_last excludes the fast-commit area; recovery still wraps at s_maxlen like jbd2', () => {
    const j = parseJournalSuperblock(makeJsbBlock({ bs: 1024, maxlen: 2048, incompat: JINCOMPAT.FAST_COMMIT, numFc: 0 }), { kind: 'field', field: 'x' });
    expect(j.last).toBe(2048 - 256);
    expect(j.recoveryWrap).toBe(2048);
  });
});

describe('log writer', () => {
  const jsbOf = (inc: number, bs = 1024, maxlen = 2048) => parseJournalSuperblock(makeJsbBlock({ bs, maxlen, incompat: inc }), { kind: 'field', field: 'x' });
  it('several descriptors when tags do not fit; logSpaceNeeded matches; UUID after each first tag; LAST_TAG on each last tag', () => {
    const jsb = jsbOf(JINCOMPAT.CSUM_V3 | JINCOMPAT['64BIT'] | JINCOMPAT.REVOKE);
    const rnd = prng(1);
    const blocks = Array.from({ length: 130 }, (_, i) => ({ fsBlock: 500 + i, data: rnd(1024) }));
    const revokes = Array.from({ length: 200 }, (_, i) => 9000 + i);
    const t = buildTransaction({ jsb, tid: 7, startBlock: 10, blocks, revokes, commitTime: { sec: 1, nsec: 2 } });
    expect(t.logBlocksUsed).toBe(logSpaceNeeded(jsb, 130, 200));
    expect(t.writes.length + 1).toBe(t.logBlocksUsed);
    const descs = t.writes.filter((w) => JournalHeaderLayout.decode(w.data).h_blocktype === BLOCKTYPE.DESCRIPTOR);
    const revs = t.writes.filter((w) => JournalHeaderLayout.decode(w.data).h_blocktype === BLOCKTYPE.REVOKE);
    expect(descs.length).toBe(3); // 61 tags per 1 KiB descriptor with tag3
    expect(revs.length).toBe(2); // 125 64-bit records per block
    for (const d of descs) {
      expect([...d.data.subarray(12 + 16, 12 + 32)]).toEqual([...jsb.s_uuid]);
      expect(decodeTag(jsb.tagFormat, d.data, 12).flags & TAG_FLAG.SAME_UUID).toBe(0);
      expect(decodeTag(jsb.tagFormat, d.data, 28 + 16).flags & TAG_FLAG.SAME_UUID).toBe(TAG_FLAG.SAME_UUID);
    }
    expect(new DataView(revs[0]!.data.buffer).getUint32(12, false)).toBe(16 + 125 * 8);
    expect(t.nextBlock).toBe(10 + t.logBlocksUsed);
    expect(maxTransactionBlocks(jsb)).toBe(Math.floor(2047 / 4));
  });
  it('refuses revokes without the REVOKE feature, duplicate blocks, wrong sizes, v1 journals, and wrapping a fast-commit log', () => {
    const jsb = jsbOf(JINCOMPAT.CSUM_V3);
    const d = new Uint8Array(1024);
    const base = { jsb, tid: 1, startBlock: 1, commitTime: { sec: 1, nsec: 0 } };
    expect(() => buildTransaction({ ...base, blocks: [], revokes: [5] })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => buildTransaction({ ...base, blocks: [{ fsBlock: 3, data: d }, { fsBlock: 3, data: d }] })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => buildTransaction({ ...base, blocks: [{ fsBlock: 3, data: new Uint8Array(10) }] })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => buildTransaction({ ...base, blocks: [{ fsBlock: 2 ** 33, data: d }] })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    const v1 = parseJournalSuperblock(makeJsbBlock({ bs: 1024, maxlen: 2048, version: 1 }), { kind: 'field', field: 'x' });
    expect(() => buildTransaction({ ...base, jsb: v1, blocks: [] })).toThrow(expect.objectContaining({ code: 'EOPNOTSUPP' }));
    const fc = jsbOf(JINCOMPAT.CSUM_V3 | JINCOMPAT.FAST_COMMIT);
    expect(() => buildTransaction({ ...base, jsb: fc, startBlock: fc.last - 2, blocks: [{ fsBlock: 3, data: d }, { fsBlock: 4, data: d }] })).toThrow(expect.objectContaining({ code: 'ENOSPC' }));
  });
  it('wraps from the last log block to s_first', () => {
    const jsb = jsbOf(JINCOMPAT['64BIT'], 1024, 1100);
    const blocks = Array.from({ length: 5 }, (_, i) => ({ fsBlock: 100 + i, data: new Uint8Array(1024).fill(i) }));
    const t = buildTransaction({ jsb, tid: 1, startBlock: 1097, blocks, commitTime: { sec: 1, nsec: 0 } });
    expect(t.writes.map((w) => w.journalBlock)).toEqual([1097, 1098, 1099, 1, 2, 3]);
    expect(t.commitBlock.journalBlock).toBe(4);
    expect(t.nextBlock).toBe(5);
  });
});

function memSuperblock(blocksCount: number, state: number) {
  const raw = new Uint8Array(SUPERBLOCK_SIZE);
  const sb = {
    ...SuperblockLayout.decode(raw),
    raw, blockSize: 1024, blocksCount, rBlocksCount: 0, freeBlocksCount: 0, groupCount: 1, descSize: 32, is64: false, hasMetadataCsum: false, hasGdtCsum: false,
  } as Superblock;
  sb.s_feature_incompat = INCOMPAT.RECOVER;
  sb.s_state = state;
  sb.s_kbytes_written = 100;
  return sb;
}

describe('replay flows (in memory)', () => {
  it('replayJournal: writes home, flushes, then jsb, then the superblock; replayIntoOverlay writes nothing', async () => {
    const log = buildMemLog({ bs: 1024, maxlen: 600, incompat: JINCOMPAT.CSUM_V3 | JINCOMPAT['64BIT'], n: 4, perTx: 20, rnd: prng(9), revokeEvery: 2 });
    const expected = await recoverJournal(log.mem.access());
    const overlay = await replayIntoOverlay(log.mem.access(), 10_000);
    expect([...overlay.blocks.keys()].sort()).toEqual([...expected.blocks.keys()].sort());
    const events: string[] = [];
    let sb = memSuperblock(10_000, STATE.VALID_FS);
    const j = log.mem.access();
    const summary = await replayJournal({
      device: { writeBlock: async (b) => void events.push(`w${b}`), flush: async () => void events.push('flush') },
      journal: { ...j, writeBlock: async (n, d) => { events.push(`j${n}`); await j.writeBlock(n, d); } },
      superblock: { read: () => sb, write: async (_bytes, s) => { events.push('sb'); sb = s; } },
      now: 1234,
    });
    expect(summary.transactions).toBe(4);
    expect(events.filter((e) => e.startsWith('w')).length).toBe(expected.blocks.size);
    const tail = events.slice(events.indexOf('j0') - 1);
    expect(tail).toEqual(['flush', 'j0', 'flush', 'sb', 'flush']);
    expect(sb.s_feature_incompat & INCOMPAT.RECOVER).toBe(0);
    expect(sb.s_wtime).toBe(1234);
    expect(sb.s_kbytes_written).toBe(100 + expected.blocks.size + 1);
    const jsb = parseJournalSuperblock(log.mem.blocks[0]!, { kind: 'field', field: 'x' });
    expect(jsb.s_start).toBe(0);
    expect(jsb.s_sequence).toBe(expected.endTid + 1);
  });
  it('refuses targets beyond the filesystem before writing anything', async () => {
    const log = buildMemLog({ bs: 1024, maxlen: 600, incompat: 0, n: 2, perTx: 5, rnd: prng(2) });
    let writes = 0;
    await expect(
      replayJournal({
        device: { writeBlock: async () => void writes++, flush: async () => {} },
        journal: log.mem.access(),
        superblock: { read: () => memSuperblock(1001, STATE.VALID_FS), write: async () => void writes++ },
      }),
    ).rejects.toMatchObject({ code: 'EFSCORRUPTED' });
    expect(writes).toBe(0);
  });
  it('fast commits pending → EOPNOTSUPP before any write', async () => {
    const bs = 1024, maxlen = 1400;
    const m = new MemJournal(bs, maxlen, makeJsbBlock({ bs, maxlen, incompat: JINCOMPAT.FAST_COMMIT, sequence: 5, start: 1, numFc: 100 }));
    const commit = new Uint8Array(bs);
    JournalHeaderLayout.encode({ h_magic: JBD2_MAGIC, h_blocktype: BLOCKTYPE.COMMIT, h_sequence: 5 }, commit);
    m.blocks[1] = commit;
    const fc = new Uint8Array(bs);
    const dv = new DataView(fc.buffer);
    dv.setUint16(0, 9, true); // EXT4_FC_TAG_HEAD
    dv.setUint16(2, 8, true);
    dv.setUint32(8, 6, true); // fc_tid = end_transaction
    m.blocks[maxlen - 100 + 1] = fc;
    const r = await recoverJournal(m.access());
    expect(r.fastCommitPending).toBe(true);
    await expect(replayIntoOverlay(m.access(), 1 << 20)).rejects.toMatchObject({ code: 'EOPNOTSUPP' });
  });
  it('finishRecovery: s_start 0, next sequence, s_errno handed over', async () => {
    const log = buildMemLog({ bs: 1024, maxlen: 600, incompat: JINCOMPAT.CSUM_V3, n: 2, perTx: 3, rnd: prng(4) });
    const j = log.mem.jsb;
    j.errno = -30;
    log.mem.jsb = j;
    const r = await recoverJournal(log.mem.access());
    const fin = finishRecovery(r);
    const after = parseJournalSuperblock(fin.jsbBlock, { kind: 'field', field: 'x' });
    expect(after.s_start).toBe(0);
    expect(after.errno).toBe(0);
    expect(after.s_sequence).toBe(r.endTid + 1);
    expect(fin.setErrorFs).toBe(true);
    expect(fin.clearValidFs).toBe(false);
  });
});
