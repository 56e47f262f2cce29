/**
 * Pure construction of one jbd2 transaction's log blocks (spec jbd2.md §4–§8,
 * §10 steps 4–5), in the format the journal superblock's features require:
 * csum v3 (16-byte tags), csum v2 (16-bit tag checksums, 14/10-byte tags),
 * or no checksums (12/8-byte tags); 64-bit or 32-bit block numbers.
 *
 * Log layout written (the kernel's order): revoke block(s), then for each
 * descriptor its data blocks, then the commit block. Blocks whose first four
 * bytes equal the jbd2 magic are logged escaped (first 4 bytes zeroed,
 * ESCAPE flag, tag checksum over the escaped copy). The first tag of each
 * descriptor is followed by the journal UUID; later tags carry SAME_UUID;
 * the last tag of each descriptor carries LAST_TAG. Log positions advance
 * within [s_first, j_last) and wrap from the last block to s_first.
 *
 * Nothing is written here. The caller writes `writes`, flushes, then writes
 * `commitBlock` (flush/FUA): the transaction is durable once the commit block
 * is on stable storage. The data entries of `writes` are the input images
 * themselves (not copies) unless escaped: they must not change until written.
 */
import { Ext4Error, type Location } from '../errors.js';
import {
  BLOCKTYPE,
  BLOCK_TAIL_SIZE,
  CommitHeaderLayout,
  JBD2_MAGIC,
  JINCOMPAT,
  JournalHeaderLayout,
  RevokeHeaderLayout,
  TAG_FLAG,
  UUID_SIZE,
  commitChecksum,
  encodeRevokeRecord,
  encodeTag,
  needsEscape,
  revokeRecordSize,
  setLoggedMagic,
  setBlockTail,
  tagChecksum,
  type JournalSuperblock,
} from './format.js';

export interface LogBlock {
  journalBlock: number;
  data: Uint8Array;
}

export interface TransactionInput {
  jsb: JournalSuperblock;
  /** Transaction id (u32). */
  tid: number;
  /** Log block where the transaction starts, in [s_first, j_last). */
  startBlock: number;
  /** Whole fs blocks (final images) to log; each fs block at most once. */
  blocks: { fsBlock: number; data: Uint8Array }[];
  /** Fs blocks to revoke (needs the REVOKE journal feature). */
  revokes?: number[];
  /** Commit time; must not go backwards between consecutive transactions. */
  commitTime: { sec: number; nsec: number };
}

export interface BuiltTransaction {
  /** Revoke, descriptor and data blocks in log order: write all, then flush. */
  writes: LogBlock[];
  /** Write after `writes` are durable; then flush. */
  commitBlock: LogBlock;
  /** Log block after the commit block (wrapped): where the next transaction starts. */
  nextBlock: number;
  /** Log blocks used including the commit block. */
  logBlocksUsed: number;
}

interface Geometry {
  bs: number;
  csum: boolean;
  tagSize: number;
  tagsPerDescriptor: number;
  recordSize: number;
  recordsPerRevoke: number;
}

function geometry(jsb: JournalSuperblock): Geometry {
  const bs = jsb.s_blocksize;
  const csum = jsb.csumVersion >= 2;
  const tagSize = jsb.tagFormat.size;
  const space = bs - JournalHeaderLayout.size - (csum ? BLOCK_TAIL_SIZE : 0);
  // First tag carries the 16-byte UUID, the others do not.
  const tagsPerDescriptor = 1 + Math.floor((space - tagSize - UUID_SIZE) / tagSize);
  const recordSize = revokeRecordSize(jsb.incompat);
  const recordsPerRevoke = Math.floor((bs - RevokeHeaderLayout.size - (csum ? BLOCK_TAIL_SIZE : 0)) / recordSize);
  return { bs, csum, tagSize, tagsPerDescriptor, recordSize, recordsPerRevoke };
}

function writable(jsb: JournalSuperblock): void {
  const where = { structure: 'journal superblock', location: { kind: 'journal-block', block: 0 } satisfies Location };
  if (jsb.version !== 2) throw new Ext4Error('EOPNOTSUPP', 'refusing to write to a v1 journal', where);
  if (jsb.csumVersion === 1) throw new Ext4Error('EOPNOTSUPP', 'refusing to write legacy v1 (crc32) journal checksums; clear COMPAT_CHECKSUM or use csum v3', where);
  if (jsb.errno !== 0) throw new Ext4Error('EROFS', `the journal has an error recorded (s_errno ${jsb.errno})`, where);
}

/** Log blocks one transaction needs: descriptors + data + revoke blocks + commit. */
export function logSpaceNeeded(jsb: JournalSuperblock, blockCount: number, revokeCount = 0): number {
  const g = geometry(jsb);
  const descriptors = Math.ceil(blockCount / g.tagsPerDescriptor);
  const revokeBlocks = Math.ceil(revokeCount / g.recordsPerRevoke);
  return descriptors + blockCount + revokeBlocks + 1;
}

/** Usable log blocks: [s_first, j_last). */
export function logCapacity(jsb: JournalSuperblock): number {
  return jsb.last - jsb.s_first;
}

/** Largest transaction (log blocks) the library should write: a quarter of the log, like the kernel's limit. */
export function maxTransactionBlocks(jsb: JournalSuperblock): number {
  return Math.floor(logCapacity(jsb) / 4);
}

/** Build one transaction's log blocks. Throws EINVAL/ENOSPC/EOPNOTSUPP; never writes. */
export function buildTransaction(input: TransactionInput): BuiltTransaction {
  const { jsb, blocks } = input;
  const revokes = input.revokes ?? [];
  writable(jsb);
  const g = geometry(jsb);
  const inval = (m: string) => new Ext4Error('EINVAL', m, { structure: 'journal transaction', location: { kind: 'transaction', tid: input.tid } });
  if (!Number.isInteger(input.tid) || input.tid < 0 || input.tid > 0xffffffff) throw inval(`tid ${input.tid} is not a u32`);
  if (!Number.isInteger(input.startBlock) || input.startBlock < jsb.s_first || input.startBlock >= jsb.last)
    throw inval(`start block ${input.startBlock} outside the log [${jsb.s_first}, ${jsb.last})`);
  if (revokes.length && !(jsb.incompat & JINCOMPAT.REVOKE)) throw inval('revoke records need the REVOKE journal feature set in the journal superblock first');
  const maxBlock = jsb.incompat & JINCOMPAT['64BIT'] ? 2 ** 48 : 2 ** 32;
  const seen = new Set<number>();
  // (indexed: interpreted in a fresh process, for-of allocates an iterator result per element)
  for (let i = 0; i < blocks.length; i++) {
    const b = blocks[i]!;
    if (!Number.isInteger(b.fsBlock) || b.fsBlock < 0 || b.fsBlock >= maxBlock) throw inval(`fs block ${b.fsBlock} cannot be logged in this journal`);
    if (seen.has(b.fsBlock)) throw inval(`fs block ${b.fsBlock} appears twice in one transaction`);
    seen.add(b.fsBlock);
    if (b.data.length !== g.bs) throw inval(`fs block ${b.fsBlock}: ${b.data.length} bytes, block size is ${g.bs}`);
  }
  for (let i = 0; i < revokes.length; i++) {
    const r = revokes[i]!;
    if (!Number.isInteger(r) || r < 0 || r >= maxBlock) throw inval(`revoked block ${r} cannot be recorded in this journal`);
  }
  const { sec, nsec } = input.commitTime;
  if (!Number.isInteger(sec) || sec < 0 || sec >= 2 ** 53 || !Number.isInteger(nsec) || nsec < 0 || nsec >= 1e9) throw inval(`bad commit time ${sec}.${nsec}`);

  const used = logSpaceNeeded(jsb, blocks.length, revokes.length);
  if (used > logCapacity(jsb)) throw new Ext4Error('ENOSPC', `transaction needs ${used} log blocks, the log has ${logCapacity(jsb)}`, { structure: 'journal transaction', location: { kind: 'transaction', tid: input.tid } });
  if (jsb.incompat & JINCOMPAT.FAST_COMMIT && input.startBlock + used > jsb.last)
    // Recovery (kernel and e2fsck) wraps at s_maxlen when FAST_COMMIT is set, not at j_last: a wrapped transaction would not be read back.
    throw new Ext4Error('ENOSPC', `transaction would wrap the log of a fast-commit journal (start ${input.startBlock}, ${used} blocks, log end ${jsb.last}); start it at s_first`, {
      structure: 'journal transaction',
      location: { kind: 'transaction', tid: input.tid },
    });

  let pos = input.startBlock;
  const next = () => {
    const b = pos;
    pos = pos + 1 >= jsb.last ? jsb.s_first : pos + 1;
    return b;
  };
  const header = (type: number) => {
    const b = new Uint8Array(g.bs);
    JournalHeaderLayout.encode({ h_magic: JBD2_MAGIC, h_blocktype: type, h_sequence: input.tid >>> 0 }, b);
    return b;
  };
  const writes: LogBlock[] = [];

  // Revoke blocks.
  for (let i = 0; i < revokes.length; i += g.recordsPerRevoke) {
    const chunk = revokes.slice(i, i + g.recordsPerRevoke);
    const b = header(BLOCKTYPE.REVOKE);
    let off = RevokeHeaderLayout.size;
    for (let k = 0; k < chunk.length; k++) {
      const r = chunk[k]!;
      encodeRevokeRecord(jsb.incompat, b, off, r);
      off += g.recordSize;
    }
    RevokeHeaderLayout.encode({ r_count: off }, b);
    if (g.csum) setBlockTail(jsb.seed, b);
    writes.push({ journalBlock: next(), data: b });
  }

  // Descriptors and their data blocks.
  for (let i = 0; i < blocks.length; i += g.tagsPerDescriptor) {
    const chunk = blocks.slice(i, i + g.tagsPerDescriptor);
    const d = header(BLOCKTYPE.DESCRIPTOR);
    const descPos = next();
    const data: LogBlock[] = [];
    let off = JournalHeaderLayout.size;
    chunk.forEach((blk, k) => {
      // The final image itself is logged (the caller owns it and does not change it until the
      // commit is done); only a block that starts with the jbd2 magic is logged as an escaped copy.
      let logged = blk.data;
      let flags = 0;
      if (needsEscape(logged)) {
        logged = logged.slice();
        setLoggedMagic(logged, true);
        flags |= TAG_FLAG.ESCAPE;
      }
      if (k > 0) flags |= TAG_FLAG.SAME_UUID;
      if (k === chunk.length - 1) flags |= TAG_FLAG.LAST_TAG;
      const csum = g.csum ? tagChecksum(jsb.seed, input.tid >>> 0, logged) : 0;
      encodeTag(jsb.tagFormat, d, off, blk.fsBlock, flags, csum);
      off += g.tagSize;
      if (k === 0) {
        d.set(jsb.s_uuid, off);
        off += UUID_SIZE;
      }
      data.push({ journalBlock: next(), data: logged });
    });
    if (g.csum) setBlockTail(jsb.seed, d);
    writes.push({ journalBlock: descPos, data: d }, ...data);
  }

  // Commit block.
  const c = header(BLOCKTYPE.COMMIT);
  CommitHeaderLayout.encode(
    {
      h_chksum_type: 0,
      h_chksum_size: 0,
      h_chksum0: 0,
      h_commit_sec_hi: Math.floor(sec / 2 ** 32),
      h_commit_sec_lo: sec % 2 ** 32,
      h_commit_nsec: nsec,
    },
    c,
  );
  if (g.csum) CommitHeaderLayout.encode({ ...CommitHeaderLayout.decode(c), h_chksum0: commitChecksum(jsb.seed, c) }, c);
  const commitBlock = { journalBlock: next(), data: c };
  return { writes, commitBlock, nextBlock: pos, logBlocksUsed: used };
}
