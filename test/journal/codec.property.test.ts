/**
 * Fast property tests of the jbd2 codec (no child processes, fixed seeds):
 * tag and revoke-record round trips for every format, descriptor packing and
 * log-space estimates checked by an independent reader of what
 * buildTransaction writes, and writer → recovery against a naive model.
 */
import { describe, it, expect } from 'vitest';
import {
  BLOCKTYPE, BLOCK_TAIL_SIZE, CommitHeaderLayout, JBD2_MAGIC, JINCOMPAT, JournalHeaderLayout, RevokeHeaderLayout, TAG_FLAG, UUID_SIZE,
  blockTailChecksum, commitChecksum, decodeRevokeRecord, decodeTag, encodeRevokeRecord, encodeTag, parseJournalSuperblock, readBlockTail,
  revokeRecordSize, tagChecksum, tagFormatFor, type JournalSuperblock,
} from '../../lib/jbd2/format.js';
import { buildTransaction, logSpaceNeeded } from '../../lib/jbd2/log-writer.js';
import { recoverJournal } from '../../lib/jbd2/recovery.js';
import { Prng } from '../../lib/io/prng.js';
import { makeJsbBlock, MemJournal } from './memjournal.js';

/** Every tag format the feature words select: csum v3 / v2 / none × 64 / 32-bit. */
const FORMATS: { name: string; incompat: number }[] = [
  { name: 'csum v3 + 64bit', incompat: JINCOMPAT.CSUM_V3 | JINCOMPAT['64BIT'] },
  { name: 'csum v3, 32-bit', incompat: JINCOMPAT.CSUM_V3 },
  { name: 'csum v2 + 64bit', incompat: JINCOMPAT.CSUM_V2 | JINCOMPAT['64BIT'] },
  { name: 'csum v2, 32-bit', incompat: JINCOMPAT.CSUM_V2 },
  { name: 'no csum + 64bit', incompat: JINCOMPAT['64BIT'] },
  { name: 'no csum, 32-bit', incompat: 0 },
];

/** Tag bytes no field covers (journal_tag_bytes() pads csum v2 tags by a u16; plain tags skip the checksum slot). */
const UNDECLARED: Record<string, number[]> = { tag3: [4, 5], 'csum2-64': [12, 13], 'csum2-32': [8, 9], 'plain-64': [4, 5], 'plain-32': [4, 5] };

const ALL_FLAGS = [TAG_FLAG.ESCAPE, TAG_FLAG.SAME_UUID, TAG_FLAG.DELETED, TAG_FLAG.LAST_TAG];

function bytes(p: Prng, n: number): Uint8Array {
  const w = new Uint32Array(Math.ceil(n / 4));
  for (let i = 0; i < w.length; i++) w[i] = p.uint32();
  return new Uint8Array(w.buffer, 0, n);
}

/** Byte equality with one assertion (vitest's toEqual walks big arrays element by element). */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, k) => x === b[k]);
}

/** Bytes outside [from, to) are unchanged. */
function untouchedOutside(before: Uint8Array, after: Uint8Array, from: number, to: number): boolean {
  return same(before.subarray(0, from), after.subarray(0, from)) && same(before.subarray(to), after.subarray(to));
}

function jsbFor(incompat: number, bs: number, maxlen: number): JournalSuperblock {
  return parseJournalSuperblock(makeJsbBlock({ bs, maxlen, incompat: incompat | JINCOMPAT.REVOKE, sequence: 7, start: 0 }));
}

/** A block number the format can hold: below 2^32, or below 2^48 with 64-bit tags (mixing small and huge). */
function blockFor(p: Prng, is64: boolean): number {
  const hi = is64 && p.chance(0.5) ? p.int(2 ** 16) : 0;
  return hi * 2 ** 32 + p.uint32();
}

describe('tag encode/decode round trips (every format)', () => {
  for (const f of FORMATS)
    it(f.name, () => {
      const fmt = tagFormatFor(f.incompat);
      const p = new Prng(`tags ${f.name}`);
      for (let i = 0; i < 2000; i++) {
        const buf = bytes(p, 64);
        const before = buf.slice();
        const off = p.int(64 - fmt.size + 1);
        const block = blockFor(p, fmt.is64);
        const flags = ALL_FLAGS.filter(() => p.chance(0.5)).reduce((a, b) => a | b, 0);
        const checksum = p.uint32();
        encodeTag(fmt, buf, off, block, flags, checksum);
        const t = decodeTag(fmt, buf, off);
        expect(t.block).toBe(BigInt(block));
        expect(t.flags).toBe(flags);
        expect(t.checksum).toBe(fmt.csumBits === 32 ? checksum : fmt.csumBits === 16 ? checksum & 0xffff : 0);
        // Nothing outside the tag slot changes.
        expect(untouchedOutside(before, buf, off, off + fmt.size)).toBe(true);
        // Bytes → tag → bytes: any tag bytes decode to values that encode back to the same bytes,
        // except the slot's undeclared bytes (and tag3's high flag half: jbd2 has 16 flag bits).
        const raw = bytes(p, fmt.size);
        if (fmt.is64) raw[8] = raw[9] = 0; // t_blocknr_high below 2^16: ext4 block numbers are 48-bit (and exact as a number)
        const t2 = decodeTag(fmt, raw, 0);
        const again = new Uint8Array(fmt.size);
        encodeTag(fmt, again, 0, Number(t2.block), t2.flags, t2.checksum);
        // Without 64BIT a v3 tag's t_blocknr_high is ignored (jbd2 reads only t_blocknr).
        const undeclared = [...UNDECLARED[fmt.name]!, ...(fmt.name === 'tag3' && !fmt.is64 ? [8, 9, 10, 11] : [])];
        expect([...again]).toEqual([...raw].map((x, k) => (undeclared.includes(k) ? 0 : x)));
      }
    });
});

describe('revoke records round trip', () => {
  for (const is64 of [false, true])
    it(is64 ? '64-bit (be64, exact to 2^48)' : '32-bit (be32)', () => {
      const incompat = is64 ? JINCOMPAT['64BIT'] : 0;
      expect(revokeRecordSize(incompat)).toBe(is64 ? 8 : 4);
      const p = new Prng(`revoke ${is64}`);
      for (let i = 0; i < 2000; i++) {
        const buf = bytes(p, 32);
        const before = buf.slice();
        const off = p.int(32 - revokeRecordSize(incompat) + 1);
        const block = blockFor(p, is64);
        encodeRevokeRecord(incompat, buf, off, block);
        expect(decodeRevokeRecord(incompat, buf, off)).toBe(BigInt(block));
        expect(untouchedOutside(before, buf, off, off + revokeRecordSize(incompat))).toBe(true);
      }
    });
});

/** An independent reader of one built transaction (the spec, not lib/jbd2/recovery.ts). */
function readBack(jsb: JournalSuperblock, tid: number, writes: { journalBlock: number; data: Uint8Array }[]) {
  const bs = jsb.s_blocksize;
  const fmt = jsb.tagFormat;
  const csum = jsb.csumVersion >= 2;
  const usable = bs - (csum ? BLOCK_TAIL_SIZE : 0);
  const logged: { fsBlock: number; data: Uint8Array }[] = [];
  const revoked: number[] = [];
  const tagsPerDescriptor: number[] = [];
  let i = 0;
  while (i < writes.length) {
    const blk = writes[i++]!.data;
    const h = JournalHeaderLayout.decode(blk);
    expect(h.h_magic).toBe(JBD2_MAGIC);
    expect(h.h_sequence).toBe(tid);
    if (csum) expect(readBlockTail(blk)).toBe(blockTailChecksum(jsb.seed, blk));
    if (h.h_blocktype === BLOCKTYPE.REVOKE) {
      expect(logged).toEqual([]); // revoke blocks come first
      const count = RevokeHeaderLayout.decode(blk).r_count;
      expect(count).toBeLessThanOrEqual(usable);
      for (let off = RevokeHeaderLayout.size; off < count; off += revokeRecordSize(jsb.incompat)) revoked.push(Number(decodeRevokeRecord(jsb.incompat, blk, off)));
      continue;
    }
    expect(h.h_blocktype).toBe(BLOCKTYPE.DESCRIPTOR);
    let off = JournalHeaderLayout.size;
    let n = 0;
    for (;;) {
      expect(off + fmt.size).toBeLessThanOrEqual(usable);
      const t = decodeTag(fmt, blk, off);
      off += fmt.size;
      // The UUID follows the first tag only; later tags say SAME_UUID.
      if (n === 0) {
        expect(t.flags & TAG_FLAG.SAME_UUID).toBe(0);
        expect([...blk.subarray(off, off + UUID_SIZE)]).toEqual([...jsb.s_uuid]);
        off += UUID_SIZE;
      } else expect(t.flags & TAG_FLAG.SAME_UUID).toBe(TAG_FLAG.SAME_UUID);
      n++;
      const data = writes[i++]!.data.slice();
      if (csum) expect(t.checksum).toBe(jsb.csumVersion === 3 ? tagChecksum(jsb.seed, tid, data) : tagChecksum(jsb.seed, tid, data) & 0xffff);
      if (t.flags & TAG_FLAG.ESCAPE) {
        expect(JournalHeaderLayout.decode(data).h_magic).toBe(0);
        JournalHeaderLayout.encode({ ...JournalHeaderLayout.decode(data), h_magic: JBD2_MAGIC }, data);
      } else expect(JournalHeaderLayout.decode(data).h_magic).not.toBe(JBD2_MAGIC);
      logged.push({ fsBlock: Number(t.block), data });
      if (t.flags & TAG_FLAG.LAST_TAG) break;
    }
    tagsPerDescriptor.push(n);
  }
  return { logged, revoked, tagsPerDescriptor };
}

describe('log writer: descriptor packing, revoke blocks, log-space estimates', () => {
  for (const f of FORMATS)
    for (const bs of [1024, 4096])
      it(`${f.name}, ${bs}-byte blocks`, () => {
        const maxlen = 4096;
        const jsb = jsbFor(f.incompat, bs, maxlen);
        const fmt = jsb.tagFormat;
        const usable = bs - JournalHeaderLayout.size - (jsb.csumVersion >= 2 ? BLOCK_TAIL_SIZE : 0);
        // The densest packing: one UUID per descriptor, every other byte used by tags.
        const perDescriptor = 1 + Math.floor((usable - fmt.size - UUID_SIZE) / fmt.size);
        const perRevoke = Math.floor((bs - RevokeHeaderLayout.size - (jsb.csumVersion >= 2 ? BLOCK_TAIL_SIZE : 0)) / revokeRecordSize(jsb.incompat));
        const p = new Prng(`writer ${f.name} ${bs}`);
        for (let round = 0; round < 8; round++) {
          const nBlocks = round === 0 ? 0 : round === 1 ? perDescriptor : round === 2 ? perDescriptor + 1 : p.int(2 * perDescriptor + 2);
          const nRevokes = round === 3 ? perRevoke : round === 4 ? perRevoke + 1 : p.int(2 * perRevoke + 2);
          const seen = new Set<number>();
          const blocks: { fsBlock: number; data: Uint8Array }[] = [];
          while (blocks.length < nBlocks) {
            const fsBlock = blockFor(p, fmt.is64);
            if (seen.has(fsBlock)) continue;
            seen.add(fsBlock);
            const data = bytes(p, bs);
            if (p.chance(0.25)) JournalHeaderLayout.encode({ ...JournalHeaderLayout.decode(data), h_magic: JBD2_MAGIC }, data);
            blocks.push({ fsBlock, data });
          }
          const revokes = Array.from({ length: nRevokes }, () => blockFor(p, fmt.is64));
          const tid = p.uint32();
          const startBlock = 1 + p.int(maxlen - 1);
          const built = buildTransaction({ jsb, tid, startBlock, blocks, revokes, commitTime: { sec: p.uint32(), nsec: p.int(1e9) } });
          const need = logSpaceNeeded(jsb, nBlocks, nRevokes);
          expect(built.logBlocksUsed).toBe(need);
          expect(built.writes.length + 1).toBe(need);
          // Log positions: consecutive from startBlock, wrapping from the last log block to s_first.
          const positions = [...built.writes, built.commitBlock].map((w) => w.journalBlock);
          positions.forEach((b, k) => expect(b).toBe(((startBlock - 1 + k) % (maxlen - 1)) + 1));
          expect(built.nextBlock).toBe(((startBlock - 1 + need) % (maxlen - 1)) + 1);
          const back = readBack(jsb, tid, built.writes);
          expect(back.revoked).toEqual(revokes);
          expect(back.logged.map((b) => b.fsBlock)).toEqual(blocks.map((b) => b.fsBlock));
          expect(back.logged.every((b, k) => same(b.data, blocks[k]!.data))).toBe(true);
          // Every descriptor but the last is full.
          back.tagsPerDescriptor.slice(0, -1).forEach((n) => expect(n).toBe(perDescriptor));
          expect(back.tagsPerDescriptor.length).toBe(Math.ceil(nBlocks / perDescriptor));
          const c = built.commitBlock.data;
          expect(JournalHeaderLayout.decode(c)).toEqual({ h_magic: JBD2_MAGIC, h_blocktype: BLOCKTYPE.COMMIT, h_sequence: tid });
          if (jsb.csumVersion >= 2) expect(CommitHeaderLayout.decode(c).h_chksum0).toBe(commitChecksum(jsb.seed, c));
        }
      });
});

describe('log writer → recovery agrees with a naive model', () => {
  for (const f of FORMATS)
    it(f.name, async () => {
      const bs = 1024;
      const maxlen = 2048;
      const p = new Prng(`model ${f.name}`);
      for (let round = 0; round < 6; round++) {
        const firstTid = round % 2 ? 0xffffffff - p.int(3) : p.uint32(); // some runs wrap the tid
        const start = 1 + p.int(maxlen - 1);
        const mem = new MemJournal(bs, maxlen, makeJsbBlock({ bs, maxlen, incompat: f.incompat | JINCOMPAT.REVOKE, sequence: firstTid, start }));
        const jsb = mem.jsb;
        // Model: per fs block, its last logged image and tid; per fs block, the highest revoking tid.
        const last = new Map<number, { tid: number; data: Uint8Array }[]>();
        const revokedBy = new Map<number, number>();
        let pos = start;
        const n = 1 + p.int(8);
        for (let t = 0; t < n; t++) {
          const tid = (firstTid + t) >>> 0;
          const pool = 40; // a small pool of fs blocks so that blocks repeat across transactions
          const chosen = new Set<number>();
          const k = p.int(25);
          for (let i = 0; i < k; i++) chosen.add(500 + p.int(pool));
          const blocks = [...chosen].map((fsBlock) => {
            const data = bytes(p, bs);
            if (p.chance(0.2)) JournalHeaderLayout.encode({ ...JournalHeaderLayout.decode(data), h_magic: JBD2_MAGIC }, data);
            return { fsBlock, data };
          });
          const revokes = Array.from({ length: p.int(6) }, () => 500 + p.int(pool));
          const built = buildTransaction({ jsb, tid, startBlock: pos, blocks, revokes, commitTime: { sec: 1_700_000_000 + t, nsec: 0 } });
          for (const w of [...built.writes, built.commitBlock]) mem.blocks[w.journalBlock] = w.data;
          pos = built.nextBlock;
          for (const b of blocks) last.set(b.fsBlock, [...(last.get(b.fsBlock) ?? []), { tid: t, data: b.data }]);
          for (const r of revokes) revokedBy.set(r, t); // t only grows: the latest revoke is the highest
        }
        // End the log: the next block must not continue it (a stale header from an older tid).
        mem.blocks[pos] = new Uint8Array(bs);
        const res = await recoverJournal(mem.access());
        expect(res.error).toBeNull();
        expect(res.transactions).toBe(n);
        expect(res.endTid).toBe((firstTid + n) >>> 0);
        // A block replays its last image from a tid that no revoke at or after it cancels (jbd2: revoked by R ≥ T).
        const want = new Map<number, Uint8Array>();
        for (const [b, images] of last) {
          const r = revokedBy.get(b);
          const live = images.filter((x) => r === undefined || x.tid > r);
          if (live.length) want.set(b, live[live.length - 1]!.data);
        }
        expect([...res.blocks.keys()].sort((a, b) => a - b)).toEqual([...want.keys()].sort((a, b) => a - b));
        for (const [b, data] of want) expect(same(res.blocks.get(b)!, data), `fs block ${b}`).toBe(true);
      }
    });
});
