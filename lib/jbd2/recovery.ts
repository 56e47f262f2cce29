/**
 * jbd2 journal recovery (spec: shared/spec/jbd2.md §9): the three passes
 * SCAN, REVOKE and REPLAY of jbd2_journal_recover() — the code the kernel
 * (fs/jbd2/recovery.c) and e2fsck (e2fsck/recovery.c, identical) share —
 * reproduced decision for decision, as a pure function over journal blocks.
 * Nothing is written here: the result lists the blocks to write home.
 *
 * Faithful details (each mirrors a line of do_one_pass):
 *  - every pass walks from (s_start, s_sequence); a block ends the log when its
 *    magic or sequence is wrong, or its type is unknown;
 *  - descriptor/revoke tail checksum failures in SCAN make the rest of the
 *    log "suspicious": the next commit block decides (commit time not older
 *    than the previous transaction's ⇒ recovery fails with EFSBADCRC;
 *    older ⇒ stale tail, recovery stops successfully);
 *  - a commit block with a bad checksum ends the log at that tid (stale if
 *    its time went backwards; otherwise a *failed commit*: e2fsck prints
 *    "Journal transaction N was corrupt, replay was aborted." and marks the
 *    filesystem in error); with ASYNC_COMMIT the scan goes on;
 *  - the legacy COMPAT_CHECKSUM crc32 over descriptor+data blocks;
 *  - revokes keep the highest revoking tid per block; a logged block of tid T
 *    is skipped when revoked by a tid R ≥ T (u32 modular compare);
 *  - a data block whose tag checksum fails is skipped, the error remembered
 *    (EFSBADCRC) and replay continues;
 *  - escaped blocks get the magic put back; the log wraps at s_maxlen
 *    (e2fsck's and the kernel's wrap() use j_fc_last = s_maxlen when
 *    FAST_COMMIT is set, j_last = s_maxlen otherwise);
 *  - tids wrap modulo 2^32; next tid after recovery = end_transaction + 1.
 * Hostile input: the only unbounded loop of the C code (a log that never
 * reaches a commit block and wraps onto itself) is bounded here: a pass that
 * has consumed more than a whole lap of the log throws EFSCORRUPTED.
 */
import { Ext4Error, isExt4Error, type Location } from '../errors.js';
import {
  BLOCKTYPE,
  BLOCK_TAIL_SIZE,
  CHKSUM_TYPE,
  CRC32_CHKSUM_SIZE,
  CommitHeaderLayout,
  FC_TAG_HEAD,
  FastCommitHeadLayout,
  JBD2_MAGIC,
  JINCOMPAT,
  JournalHeaderLayout,
  RevokeHeaderLayout,
  TAG_FLAG,
  UUID_SIZE,
  blockTailChecksum,
  commitChecksum,
  crc32Be,
  decodeRevokeRecord,
  decodeTag,
  parseJournalSuperblock,
  readBlockTail,
  revokeRecordSize,
  serializeJournalSuperblock,
  setLoggedMagic,
  tagChecksum,
  tidAdd,
  tidGeq,
  tidGt,
  type JournalSuperblock,
} from './format.js';

/** Read access to the journal: journal block n = logical block n of the journal inode (block 0 is the jsb). */
export interface JournalAccess {
  blockSize: number;
  readBlock(journalBlock: number): Promise<Uint8Array>;
  /** Size of the journal inode in blocks, if known (s_maxlen may not exceed it). */
  blockCount?: number;
}

export interface ReplayWrite {
  fsBlock: number;
  data: Uint8Array;
}

export interface RecoveryResult {
  /** False when s_start == 0: the journal is clean and nothing was scanned. */
  needed: boolean;
  /** Transactions replayed (end_transaction − start_transaction). */
  transactions: number;
  /** First tid of the log (s_sequence). */
  firstTid: number;
  /** end_transaction: the first tid that is not replayed. */
  endTid: number;
  /** Blocks written by replay, counting repeats (jbd2's nr_replays). */
  replayBlocks: number;
  /** Revoke records seen (nr_revokes). */
  revokes: number;
  /** Logged blocks skipped because revoked (nr_revoke_hits). */
  revokeHits: number;
  /** Replayed blocks that were logged escaped (magic restored). */
  escapedBlocks: number;
  /** Blocks to write home, in replay order; later entries overwrite earlier ones. */
  writes: ReplayWrite[];
  /** The same, deduplicated: final content per fs block. */
  blocks: Map<number, Uint8Array>;
  /**
   * s_sequence e2fsck writes after this recovery: end_transaction + 1 when
   * recovery succeeded, the unchanged s_sequence when it returned an error
   * (e2fsck then leaves j_tail_sequence alone). For a clean log (s_start = 0):
   * s_sequence + 1, as jbd2_journal_recover sets it and e2fsck writes it back.
   */
  nextSequence: number;
  /** Every problem met, as the kernel/e2fsck would print it. */
  errors: string[];
  /**
   * The error jbd2_journal_recover() returns (null on success). Blocks in
   * `writes` are still the ones e2fsck writes (replay writes as it goes).
   */
  error: Ext4Error | null;
  /** j_failed_commit: tid of a commit block whose checksum failed (no async_commit), else null. */
  failedCommit: number | null;
  /** The journal's fast-commit area holds a fast commit for end_transaction (not replayed here). */
  fastCommitPending: boolean;
  jsb: JournalSuperblock;
}

const PASS_SCAN = 0;
const PASS_REVOKE = 1;
const PASS_REPLAY = 2;
type Pass = typeof PASS_SCAN | typeof PASS_REVOKE | typeof PASS_REPLAY;
const PASS_NAME = ['scan', 'revoke', 'replay'] as const;

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

interface Info {
  startTransaction: number;
  /** 0 means "not known yet", exactly like the C code (tid 0 is ambiguous there too). */
  endTransaction: number;
  nrReplays: number;
  nrRevokes: number;
  nrRevokeHits: number;
  nrEscaped: number;
}

/** Error raised inside a pass that makes jbd2_journal_recover return it (not a thrown bug). */
class PassFailure {
  constructor(readonly error: Ext4Error) {}
}

class Recovery {
  readonly jsb: JournalSuperblock;
  readonly bs: number;
  /** j_total_len. */
  readonly total: number;
  readonly first: number;
  readonly wrapAt: number;
  readonly logLen: number;
  readonly csum23: boolean;
  readonly tagBytes: number;
  readonly revoked = new Map<bigint, number>();
  readonly writes: ReplayWrite[] = [];
  readonly errors: string[] = [];
  failedCommit: number | null = null;

  constructor(
    readonly j: JournalAccess,
    jsb: JournalSuperblock,
  ) {
    this.jsb = jsb;
    this.bs = j.blockSize;
    this.total = j.blockCount !== undefined ? Math.min(j.blockCount, jsb.s_maxlen) : jsb.s_maxlen;
    this.first = jsb.s_first;
    this.wrapAt = jsb.recoveryWrap;
    this.logLen = this.wrapAt - this.first;
    this.csum23 = jsb.csumVersion >= 2;
    this.tagBytes = jsb.tagFormat.size;
  }

  where(block: number, what: string, tid?: number): Location {
    return { kind: 'journal-block', block, role: what, ...(tid !== undefined ? { tid } : {}) };
  }

  wrap(b: number): number {
    return b >= this.wrapAt ? b - (this.wrapAt - this.first) : b;
  }

  /** jread(): EFSCORRUPTED beyond j_total_len; I/O errors of readBlock pass through as they are. */
  async jread(offset: number): Promise<Uint8Array> {
    if (offset >= this.total)
      throw new Ext4Error('EFSCORRUPTED', `log block ${offset} is beyond the journal (${this.total} blocks): corrupted journal superblock`, {
        structure: 'journal',
        location: { kind: 'journal-block', block: offset },
      });
    const b = await this.j.readBlock(offset);
    if (!(b instanceof Uint8Array) || b.length !== this.bs)
      throw new Ext4Error('EIO', `journal block ${offset} read returned ${b?.length} bytes, expected ${this.bs}`, { structure: 'journal', location: { kind: 'journal-block', block: offset } });
    return b;
  }

  countTags(buf: Uint8Array): number {
    const size = this.bs - (this.csum23 ? BLOCK_TAIL_SIZE : 0);
    let off = JournalHeaderLayout.size;
    let nr = 0;
    // Each iteration advances off by ≥ tagBytes: at most (bs − 12) / tagBytes iterations.
    while (off + this.tagBytes <= size) {
      const { flags } = decodeTag(this.jsb.tagFormat, buf, off);
      nr++;
      off += this.tagBytes;
      if (!(flags & TAG_FLAG.SAME_UUID)) off += UUID_SIZE;
      if (flags & TAG_FLAG.LAST_TAG) break;
    }
    return nr;
  }

  descriptorCsumOk(buf: Uint8Array): boolean {
    if (!this.csum23) return true;
    return readBlockTail(buf) === blockTailChecksum(this.jsb.seed, buf);
  }

  commitCsumOk(buf: Uint8Array): boolean {
    if (!this.csum23) return true;
    return CommitHeaderLayout.decode(buf).h_chksum0 === commitChecksum(this.jsb.seed, buf);
  }

  tagCsumOk(checksum: number, data: Uint8Array, tid: number): boolean {
    if (!this.csum23) return true;
    const c = tagChecksum(this.jsb.seed, tid, data);
    return this.jsb.csumVersion === 3 ? checksum === c : checksum === (c & 0xffff);
  }

  setRevoke(block: bigint, tid: number): void {
    const cur = this.revoked.get(block);
    if (cur === undefined || tidGt(tid, cur)) this.revoked.set(block, tid);
  }

  testRevoke(block: bigint, tid: number): boolean {
    const cur = this.revoked.get(block);
    if (cur === undefined) return false;
    return !tidGt(tid, cur);
  }

  scanRevokeRecords(buf: Uint8Array, tid: number, info: Info, at: number): void {
    const rcount = RevokeHeaderLayout.decode(buf).r_count;
    const csumSize = this.csum23 ? BLOCK_TAIL_SIZE : 0;
    if (rcount > this.bs - csumSize)
      throw new PassFailure(
        new Ext4Error('EINVAL', `revoke block r_count ${rcount} exceeds the block (${this.bs - csumSize} usable bytes)`, {
          structure: 'journal revoke block',
          location: this.where(at, 'revoke', tid),
        }),
      );
    const recLen = revokeRecordSize(this.jsb.incompat);
    let off = RevokeHeaderLayout.size;
    while (off + recLen <= rcount) {
      const blk = decodeRevokeRecord(this.jsb.incompat, buf, off);
      off += recLen;
      this.setRevoke(blk, tid);
      info.nrRevokes++;
    }
  }

  /** do_one_pass(). Returns the pass's "success" value (an error to report, or null); throws PassFailure on `goto failed`. */
  async pass(info: Info, pass: Pass): Promise<Ext4Error | null> {
    const jsb = this.jsb;
    let nextCommitId = jsb.s_sequence;
    let nextLogBlock = jsb.s_start;
    let success: Ext4Error | null = null;
    let crc32Sum = 0xffffffff;
    let descrCsumSize = 0;
    let blockError = false;
    let needCheckCommitTime = false;
    let lastTransCommitTime = 0n;
    // Bound: blocks consumed in this pass (a live log can never be longer than the log area).
    let consumed = 0;
    const budget = () => {
      if (consumed > this.logLen)
        throw new Ext4Error('EFSCORRUPTED', `the log wraps onto itself without ending (more than ${this.logLen} blocks in ${PASS_NAME[pass]} pass at tid ${nextCommitId})`, {
          structure: 'journal',
          location: { kind: 'journal-block', block: nextLogBlock },
        });
    };
    if (pass === PASS_SCAN) info.startTransaction = nextCommitId;

    const failed = (e: Ext4Error): never => {
      throw new PassFailure(e);
    };
    const jreadOrFail = async (b: number) => {
      try {
        return await this.jread(b);
      } catch (e) {
        if (isExt4Error(e)) failed(e);
        throw e;
      }
    };

    scan: while (true) {
      if (pass !== PASS_SCAN && tidGeq(nextCommitId, info.endTransaction)) break;
      budget();
      const here = nextLogBlock;
      const buf = await jreadOrFail(here);
      consumed++;
      nextLogBlock = this.wrap(nextLogBlock + 1);

      const hdr = JournalHeaderLayout.decode(buf);
      if (hdr.h_magic !== JBD2_MAGIC) break;
      const sequence = hdr.h_sequence;
      if (sequence !== nextCommitId) break;

      switch (hdr.h_blocktype) {
        case BLOCKTYPE.DESCRIPTOR: {
          if (this.csum23) descrCsumSize = BLOCK_TAIL_SIZE;
          if (descrCsumSize > 0 && !this.descriptorCsumOk(buf)) {
            if (pass !== PASS_SCAN) {
              const msg = `JBD2: Invalid checksum recovering block ${nextLogBlock} in log`;
              this.errors.push(msg);
              failed(new Ext4Error('EFSBADCRC', 'descriptor block checksum mismatch', { structure: 'journal descriptor block', location: this.where(here, 'descriptor', sequence) }));
            }
            needCheckCommitTime = true;
          }
          if (pass !== PASS_REPLAY) {
            if (pass === PASS_SCAN && jsb.csumVersion === 1 && !needCheckCommitTime && !info.endTransaction) {
              // calc_chksums(): crc32_be over the descriptor and each data block it describes.
              const n = this.countTags(buf);
              crc32Sum = crc32Be(crc32Sum, buf);
              let ioErr = false;
              for (let i = 0; i < n; i++) {
                const io = nextLogBlock;
                nextLogBlock = this.wrap(nextLogBlock + 1);
                consumed++;
                let ob: Uint8Array;
                try {
                  ob = await this.jread(io);
                } catch (e) {
                  if (!isExt4Error(e)) throw e;
                  this.errors.push(`JBD2: IO error ${e.code} recovering block ${io} in log`);
                  ioErr = true;
                  break;
                }
                crc32Sum = crc32Be(crc32Sum, ob);
              }
              // On an I/O error the C code `break`s out of the switch only: the scan goes on from here.
              void ioErr;
              continue scan;
            }
            const n = this.countTags(buf);
            consumed += n;
            nextLogBlock = this.wrap(nextLogBlock + n);
            continue scan;
          }
          // PASS_REPLAY: write every tagged block (tags per block bounded by the block size).
          let off = JournalHeaderLayout.size;
          while (off + this.tagBytes <= this.bs - descrCsumSize) {
            const tag = decodeTag(jsb.tagFormat, buf, off);
            const flags = tag.flags;
            const io = nextLogBlock;
            nextLogBlock = this.wrap(nextLogBlock + 1);
            consumed++;
            let ob: Uint8Array | null = null;
            try {
              ob = await this.jread(io);
            } catch (e) {
              if (!isExt4Error(e)) throw e;
              success = e;
              this.errors.push(`JBD2: IO error ${e.code} recovering block ${io} in log`);
            }
            if (ob) {
              const blocknr = tag.block;
              if (this.testRevoke(blocknr, nextCommitId)) {
                info.nrRevokeHits++;
              } else if (!this.tagCsumOk(tag.checksum, ob, sequence)) {
                success = new Ext4Error('EFSBADCRC', `data block checksum mismatch for fs block ${blocknr}`, {
                  structure: 'journal data block',
                  location: this.where(io, `data for fs block ${blocknr}`, sequence),
                });
                this.errors.push(`JBD2: Invalid checksum recovering data block ${blocknr} in log`);
                blockError = true;
              } else {
                if (blocknr > MAX_SAFE)
                  failed(new Ext4Error('EFSCORRUPTED', `tag names fs block ${blocknr}, beyond 2^53`, { structure: 'journal descriptor block', location: this.where(here, 'descriptor', sequence) }));
                const data = ob.slice();
                if (flags & TAG_FLAG.ESCAPE) {
                  setLoggedMagic(data, false);
                  info.nrEscaped++;
                }
                this.writes.push({ fsBlock: Number(blocknr), data });
                info.nrReplays++;
              }
            }
            off += this.tagBytes;
            if (!(flags & TAG_FLAG.SAME_UUID)) off += UUID_SIZE;
            if (flags & TAG_FLAG.LAST_TAG) break;
          }
          continue scan;
        }

        case BLOCKTYPE.COMMIT: {
          const ch = CommitHeaderLayout.decode(buf);
          const commitTime = (BigInt(ch.h_commit_sec_hi) << 32n) | BigInt(ch.h_commit_sec_lo);
          if (needCheckCommitTime) {
            if (commitTime >= lastTransCommitTime) {
              this.errors.push(`JBD2: Invalid checksum found in transaction ${nextCommitId}`);
              failed(new Ext4Error('EFSBADCRC', `invalid checksum found in transaction ${nextCommitId} (a descriptor or revoke block of it fails its checksum)`, {
                structure: 'journal',
                location: this.where(here, 'commit', sequence),
              }));
            }
            // Stale block from an older journal: end recovery successfully here.
            break scan;
          }
          let chksumError = false;
          if (pass === PASS_SCAN && jsb.csumVersion === 1) {
            if (info.endTransaction) {
              this.failedCommit = info.endTransaction;
              continue scan; // C: `break` out of the switch; the tid is not advanced
            }
            const ok =
              (crc32Sum === ch.h_chksum0 && ch.h_chksum_type === CHKSUM_TYPE.CRC32 && ch.h_chksum_size === CRC32_CHKSUM_SIZE) ||
              (ch.h_chksum_type === 0 && ch.h_chksum_size === 0 && ch.h_chksum0 === 0);
            if (!ok) chksumError = true;
            else crc32Sum = 0xffffffff;
          }
          if (chksumError || (pass === PASS_SCAN && !this.commitCsumOk(buf))) {
            if (commitTime < lastTransCommitTime) break scan; // stale: ignore the mismatch, end here
            info.endTransaction = nextCommitId;
            if (!(jsb.incompat & JINCOMPAT.ASYNC_COMMIT)) {
              this.failedCommit = nextCommitId;
              continue scan; // C: `break` out of the switch; the tid is not advanced, so the next block normally ends the log
            }
          }
          if (pass === PASS_SCAN) lastTransCommitTime = commitTime;
          nextCommitId = tidAdd(nextCommitId, 1);
          continue scan;
        }

        case BLOCKTYPE.REVOKE: {
          if (pass === PASS_SCAN && !this.descriptorCsumOk(buf)) needCheckCommitTime = true;
          if (pass !== PASS_REVOKE) continue scan;
          this.scanRevokeRecords(buf, nextCommitId, info, here);
          continue scan;
        }

        default:
          break scan;
      }
    }

    // done:
    if (pass === PASS_SCAN) {
      if (!info.endTransaction) info.endTransaction = nextCommitId;
    } else if (info.endTransaction !== nextCommitId) {
      this.errors.push(`JBD2: recovery pass ${pass} ended at transaction ${nextCommitId}, expected ${info.endTransaction}`);
      if (!success)
        success = new Ext4Error('EIO', `recovery ${PASS_NAME[pass]} pass ended at transaction ${nextCommitId}, expected ${info.endTransaction}`, { structure: 'journal' });
    }
    if (blockError && !success) success = new Ext4Error('EIO', 'journal data block checksum errors', { structure: 'journal' });
    return success;
  }

  /** fc_do_one_pass / ext4_fc_replay_scan, reduced to: does the fast-commit area start with a head for this tid? */
  async fastCommitPending(endTid: number): Promise<boolean> {
    if (!(this.jsb.incompat & JINCOMPAT.FAST_COMMIT)) return false;
    const fcFirst = this.jsb.last + 1; // j_fc_first = j_last + 1
    if (fcFirst >= this.total) return false;
    let b: Uint8Array;
    try {
      b = await this.jread(fcFirst);
    } catch {
      return false;
    }
    const head = FastCommitHeadLayout.decode(b);
    return head.fc_tag === FC_TAG_HEAD && head.fc_tid === endTid;
  }
}

/**
 * Recover a journal: parse the superblock (journal block 0) and run the
 * three passes. Throws Ext4Error for a journal that cannot be used at all
 * (bad superblock, unknown incompat features, wrong block size); problems
 * the kernel/e2fsck report *from* recovery (checksum failures, failed
 * commits, I/O errors) are returned in `error` / `errors` / `failedCommit`
 * with the blocks e2fsck would still have written.
 */
export async function recoverJournal(j: JournalAccess): Promise<RecoveryResult> {
  const raw = await j.readBlock(0);
  const jsb = parseJournalSuperblock(raw, { kind: 'journal-block', block: 0 }, { fsBlockSize: j.blockSize, journalBlocks: j.blockCount });
  const rec = new Recovery(j, jsb);
  const info: Info = { startTransaction: jsb.s_sequence, endTransaction: 0, nrReplays: 0, nrRevokes: 0, nrRevokeHits: 0, nrEscaped: 0 };
  const base = {
    firstTid: jsb.s_sequence,
    jsb,
  };
  if (jsb.s_start === 0) {
    return {
      ...base,
      needed: false,
      transactions: 0,
      endTid: jsb.s_sequence,
      replayBlocks: 0,
      revokes: 0,
      revokeHits: 0,
      escapedBlocks: 0,
      writes: [],
      blocks: new Map(),
      // jbd2_journal_recover on a clean log: j_transaction_sequence = s_sequence + 1, which e2fsck writes back.
      nextSequence: tidAdd(jsb.s_sequence, 1),
      errors: [],
      error: null,
      failedCommit: null,
      fastCommitPending: false,
    };
  }
  let err: Ext4Error | null = null;
  let fcPending = false;
  const run = async (p: Pass) => {
    try {
      const r = await rec.pass(info, p);
      if (p !== PASS_REVOKE && (await rec.fastCommitPending(info.endTransaction))) fcPending = true;
      return r;
    } catch (e) {
      if (e instanceof PassFailure) return e.error;
      throw e;
    }
  };
  err = await run(PASS_SCAN);
  if (!err) err = await run(PASS_REVOKE);
  if (!err) err = await run(PASS_REPLAY);
  const endTid = info.endTransaction;
  const blocks = new Map<number, Uint8Array>();
  for (const w of rec.writes) blocks.set(w.fsBlock, w.data);
  if (rec.failedCommit !== null) rec.errors.push(`Journal transaction ${rec.failedCommit} was corrupt, replay was aborted.`);
  return {
    ...base,
    needed: true,
    transactions: (endTid - info.startTransaction) >>> 0,
    endTid,
    replayBlocks: info.nrReplays,
    revokes: info.nrRevokes,
    revokeHits: info.nrRevokeHits,
    escapedBlocks: info.nrEscaped,
    writes: rec.writes,
    blocks,
    nextSequence: err ? jsb.s_sequence : tidAdd(endTid, 1),
    errors: rec.errors,
    error: err,
    failedCommit: rec.failedCommit,
    fastCommitPending: fcPending,
  };
}

/**
 * jbd2_journal_skip_recovery(): the first tid of a new log written over a log that is discarded
 * rather than replayed (s_start ≠ 0, but the host says no recovery is needed). The scan pass
 * finds where that log's valid transactions end; the new log starts past them (end_transaction
 * + 1), so that a crash before the new log's blocks are durable can never lead recovery from the
 * new s_start into a stale transaction that carries the tid it expects. Where the scan fails the
 * kernel takes s_sequence + 1; here the tid skips the whole log instead (every transaction takes
 * at least one log block, so no stale tid lies that far ahead). A clean log: s_sequence.
 */
export async function skipRecovery(j: JournalAccess): Promise<number> {
  const jsb = parseJournalSuperblock(await j.readBlock(0), { kind: 'journal-block', block: 0 }, { fsBlockSize: j.blockSize, journalBlocks: j.blockCount });
  if (jsb.s_start === 0) return jsb.s_sequence;
  const rec = new Recovery(j, jsb);
  const info: Info = { startTransaction: jsb.s_sequence, endTransaction: 0, nrReplays: 0, nrRevokes: 0, nrRevokeHits: 0, nrEscaped: 0 };
  let failed: unknown = null;
  try {
    failed = await rec.pass(info, PASS_SCAN);
  } catch (e) {
    failed = e; // (a PassFailure, or an unreadable log block: either way nothing of it is trusted)
  }
  return failed ? tidAdd(jsb.s_sequence, rec.logLen + 1) : tidAdd(info.endTransaction, 1);
}

export interface FinishedRecovery {
  /** New journal block 0 (whole block) to write after the replayed blocks are durable. */
  jsbBlock: Uint8Array;
  /** The ext4 superblock must get ERROR_FS (journal s_errno was set, or a commit failed). */
  setErrorFs: boolean;
  /** The ext4 superblock must lose VALID_FS (recovery returned an error: a full fsck is needed). */
  clearValidFs: boolean;
}

/**
 * The journal-superblock update e2fsck makes after replay (recover_ext3_journal
 * + e2fsck_journal_release(reset=1) + the s_errno hand-over in
 * e2fsck_check_ext3_journal): s_start = 0; s_sequence = end_transaction + 1 on
 * success, unchanged if recovery returned an error; a failed commit sets
 * s_errno = −EINVAL, and any non-zero s_errno is then moved to the ext4
 * superblock as ERROR_FS and cleared — so the written jsb has s_errno = 0.
 */
export function finishRecovery(result: RecoveryResult): FinishedRecovery {
  const jsb: JournalSuperblock = { ...result.jsb, raw: result.jsb.raw.slice() };
  const hadErrno = jsb.errno !== 0 || result.failedCommit !== null;
  jsb.s_start = 0;
  jsb.s_sequence = result.nextSequence >>> 0;
  jsb.errno = 0;
  jsb.s_errno = 0;
  return { jsbBlock: serializeJournalSuperblock(jsb), setErrorFs: hadErrno, clearValidFs: result.error !== null };
}
