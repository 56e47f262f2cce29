/**
 * Journal replay flows built on recoverJournal (spec jbd2.md §9, §10 step 1).
 *
 * replayJournal(): in-place replay with exactly the on-disk effect of
 * `e2fsck -p -E journal_only` (e2fsprogs 1.47): every replayed block written
 * home → flush → journal superblock with s_start = 0 and the new s_sequence
 * (s_errno handed over to the fs as ERROR_FS and cleared) → flush → ext4
 * superblock re-read (it may itself have been replayed) with needs_recovery
 * cleared, VALID_FS cleared if recovery returned an error, ERROR_FS set for a
 * failed commit or an aborted journal, s_kbytes_written advanced by what was
 * written, s_wtime = now → flush.
 *
 * replayIntoOverlay(): the same recovery for read-only opens; writes nothing.
 *
 * internalJournal() / replayTargetOn(): the one adapter from a filesystem on a BlockDevice to
 * what recovery reads and writes (jbd2 block I/O over the journal inode, the fs device, the
 * primary superblock), shared by the read-only overlay, a write open's deferred replay and `replay`.
 */
import { Ext4Error } from '../errors.js';
import { INCOMPAT, STATE, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, parseSuperblock, serializeSuperblock, setSbWtime, type Superblock } from './superblock.js';
import { finishRecovery, recoverJournal, type JournalAccess, type RecoveryResult } from '../jbd2/recovery.js';
import type { JournalIO } from '../jbd2/device.js';
import type { BlockDevice } from '../io/device.js';
import { journalOnInode } from './journal-inode.js';
import type { Extent } from './extents.js';
import type { FsContext } from './fs-context.js';

/** The internal journal's extents (journal block n = logical block n of s_journal_inum). */
export async function journalExtents(fs: Pick<FsContext, 'sb' | 'readInode' | 'fileMap'>): Promise<Extent[]> {
  const jino = fs.sb.s_journal_inum;
  if (!jino) throw new Ext4Error('EOPNOTSUPP', 'external journals are not supported', { structure: 'superblock', location: { kind: 'field', field: 's_journal_inum' } });
  return (await fs.fileMap(await fs.readInode(jino))).extents;
}

/** The internal journal of `fs` as jbd2 block I/O on `device` (read-only overlay, `replay`). */
export async function internalJournal(fs: Pick<FsContext, 'sb' | 'readInode' | 'fileMap' | 'blockSize'>, device: BlockDevice): Promise<JournalIO> {
  return journalOnInode(device, fs.blockSize, await journalExtents(fs), fs.sb.s_journal_inum);
}

/**
 * The one ReplayTarget: a filesystem on `device` whose journal is `journal` — used by `replay`
 * (ops/replay.ts) and by a write open's deferred replay (write-session.ts).
 */
export function replayTargetOn(device: BlockDevice, journal: JournalIO, opts: { blockSize: number; verifySuperblock?: boolean; now?: number }): ReplayTarget {
  const bs = opts.blockSize;
  return {
    device: {
      writeBlock: async (b, d) => {
        await device.write(b * bs, d);
      },
      flush: () => device.flush(),
    },
    journal,
    superblock: {
      read: async () => parseSuperblock(await device.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE), { deviceSize: device.size, ...(opts.verifySuperblock === false ? { verifyChecksum: false } : {}) }),
      write: async (bytes) => {
        await device.write(SUPERBLOCK_OFFSET, bytes);
      },
    },
    ...(opts.now !== undefined ? { now: opts.now } : {}),
  };
}

export interface ReplayTarget {
  /** The filesystem device, addressed in fs blocks. */
  device: {
    writeBlock(fsBlock: number, data: Uint8Array): Promise<void>;
    flush(): Promise<void>;
  };
  /** The journal (journal block n = logical block n of the journal inode). */
  journal: JournalAccess & { writeBlock(journalBlock: number, data: Uint8Array): Promise<void> };
  /**
   * The primary ext4 superblock. `read()` must read it from the device (it is
   * called after the replayed blocks are written, which may include it);
   * `write(bytes, sb)` must put the 1024 bytes at byte 1024 of the device.
   */
  superblock: {
    read(): Superblock | Promise<Superblock>;
    write(bytes: Uint8Array, sb: Superblock): Promise<void>;
  };
  /** Seconds since the epoch for s_wtime (default: now). */
  now?: number;
}

export interface ReplaySummary {
  /** False when there was nothing to do (needs_recovery clear). */
  replayed: boolean;
  transactions: number;
  firstTid: number;
  endTid: number;
  replayBlocks: number;
  /** Distinct fs blocks written home. */
  blocksWritten: number;
  revokes: number;
  nextSequence: number;
  errors: string[];
  /** Recovery returned an error: VALID_FS was cleared, a full e2fsck is needed. */
  needsFsck: boolean;
  /** ERROR_FS was set (failed commit or journal s_errno). */
  errorFs: boolean;
  failedCommit: number | null;
}

function checkTargets(result: RecoveryResult, blocksCount: number): void {
  for (const [b] of result.blocks)
    if (b >= blocksCount)
      throw new Ext4Error('EFSCORRUPTED', `journal replays fs block ${b}, beyond the filesystem's ${blocksCount} blocks`, { structure: 'journal', location: { kind: 'transaction', tid: result.firstTid, lastTid: result.endTid } });
  if (result.fastCommitPending)
    throw new Ext4Error('EOPNOTSUPP', 'the journal holds fast commits to replay; ext4kit does not replay fast commits (mount the filesystem or run e2fsck)', { structure: 'journal', location: { kind: 'text', text: 'fast-commit area' } });
}

/**
 * Replay the journal in place if the superblock says needs_recovery.
 * Writes nothing when the journal cannot be used (Ext4Error thrown before any write).
 */
export async function replayJournal(t: ReplayTarget): Promise<ReplaySummary> {
  const sb0 = await t.superblock.read();
  if (!(sb0.s_feature_incompat & INCOMPAT.RECOVER)) {
    return {
      replayed: false, transactions: 0, firstTid: 0, endTid: 0, replayBlocks: 0, blocksWritten: 0, revokes: 0,
      nextSequence: 0, errors: [], needsFsck: false, errorFs: false, failedCommit: null,
    };
  }
  const plan = await planReplay(t.journal, sb0.blocksCount);

  for (const [b, data] of plan.blocks) await t.device.writeBlock(b, data);
  await t.device.flush();

  await t.journal.writeBlock(0, plan.jsbBlock);
  await t.device.flush();

  const sb = await t.superblock.read();
  sb.s_feature_incompat = (sb.s_feature_incompat & ~INCOMPAT.RECOVER) >>> 0;
  if (plan.clearValidFs) sb.s_state &= ~STATE.VALID_FS;
  if (plan.summary.errorFs) sb.s_state |= STATE.ERROR_FS;
  // Like e2fsck, add what recovery wrote, only when the counter is in use: here the distinct blocks
  // written home plus the journal superblock. (e2fsck counts its I/O channel's physical writes: the
  // same figure when no block repeats in the log; with repeats its write-back cache merges some of
  // them, so its figure lies between this and replayBlocks + 1.)
  // An empty log (s_start = 0) counts nothing: e2fsck's jbd2_journal_recover returns before syncing.
  if (sb.s_kbytes_written && plan.logScanned) sb.s_kbytes_written += Math.floor((plan.blocks.size + 1) * t.journal.blockSize / 1024);
  setSbWtime(sb, t.now ?? Math.floor(Date.now() / 1000));
  await t.superblock.write(serializeSuperblock(sb), sb);
  await t.device.flush();
  return plan.summary;
}

/** What replaying the log would do, computed without writing anything (a write open replays lazily). */
export interface PlannedReplay {
  /** Final content per fs block, to lay over the device until written home. */
  blocks: Map<number, Uint8Array>;
  /** The journal superblock as recovery leaves it (s_start 0, next sequence, errno cleared). */
  jsbBlock: Uint8Array;
  /** Recovery failed part-way: VALID_FS must be cleared (a full e2fsck is needed). */
  clearValidFs: boolean;
  /** False for an empty log (s_start 0): nothing was scanned. */
  logScanned: boolean;
  summary: ReplaySummary;
}

/**
 * Recovery planned, not applied: the blocks replay would write home and the journal superblock it
 * would leave, for the caller to write when (and only if) it writes anything at all. Throws
 * before any write, like replayJournal, when the log cannot be replayed.
 */
export async function planReplay(journal: JournalAccess, blocksCount: number): Promise<PlannedReplay> {
  const result = await recoverJournal(journal);
  checkTargets(result, blocksCount);
  const fin = finishRecovery(result);
  return {
    blocks: result.blocks,
    jsbBlock: fin.jsbBlock,
    clearValidFs: fin.clearValidFs,
    logScanned: result.needed,
    summary: {
      replayed: true,
      transactions: result.transactions,
      firstTid: result.firstTid,
      endTid: result.endTid,
      replayBlocks: result.replayBlocks,
      blocksWritten: result.blocks.size,
      revokes: result.revokes,
      nextSequence: result.nextSequence,
      errors: result.errors,
      needsFsck: fin.clearValidFs,
      errorFs: fin.setErrorFs,
      failedCommit: result.failedCommit,
    },
  };
}

/**
 * Recovery for read-only opens: the deduplicated replayed blocks (fs block →
 * content) to lay over the device. Writes nothing. `blocksCount` bounds the
 * targets (EFSCORRUPTED beyond the filesystem).
 */
export async function replayIntoOverlay(journal: JournalAccess, blocksCount: number): Promise<{ blocks: Map<number, Uint8Array>; result: RecoveryResult }> {
  const result = await recoverJournal(journal);
  checkTargets(result, blocksCount);
  return { blocks: result.blocks, result };
}
