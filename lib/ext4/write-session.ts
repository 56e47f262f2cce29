/**
 * The write session of an open filesystem: one writer at a time (the operation queue), the
 * journal and MMP while open for writing, the lazy start of the session at the first commit
 * (and its undo when that commit is refused), the deferred journal replay of a write open,
 * commits and checkpoints, and the error state after a corruption.
 *
 * Nothing reaches the disk before the first commit: prepare() only loads and plans; a deferred
 * replay and the superblock with needs_recovery are written right before the first commit's own
 * blocks (start(); the replay at close if nobody committed after), the journal superblock with
 * that commit's log.
 */
import { Ext4Error } from '../errors.js';
import { INCOMPAT, COMPAT, STATE, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, type Superblock } from './superblock.js';
import { Transaction, type FsWriter } from './transaction.js';
import { applyPendingFrees } from './alloc.js';
import { loadJournal, commitJournaled, commitUnjournaled, planUnjournaled, type UnjournaledPlan, type JournalState, type CommitHooks, type CommitStats } from './commit.js';
import { JINCOMPAT, JCOMPAT, parseJournalSuperblock, refreshJournalSuperblock } from '../jbd2/format.js';
import { skipRecovery } from '../jbd2/recovery.js';
import { journalExtents, planReplay, replayJournal, replayTargetOn, type ReplaySummary } from './journal-replay.js';
import { MMP_SEQ_MAX, MmpSession, type MmpOptions } from './mmp.js';
import { processOrphans } from './orphan.js';
import { errorInfoOf, isCorruption, readOnlyAfterError, saveErrorInfo, type FsErrorInfo } from './error-state.js';
import { randomBelow } from './random.js';
import type { Volume } from './volume.js';

export interface SessionOptions {
  readOnly: boolean;
  recordErrors: boolean;
  checkpoint?: 'lazy' | 'each' | undefined;
  mmp?: MmpOptions | undefined;
}

export interface WriteStats {
  transactions: number;
  bytesWritten: number;
  metadataBlocks: number;
  revokes: number;
}

export class WriteSession {
  /** Journal state while open for writing (null without a journal or read-only). */
  journal: JournalState | null = null;
  /** The held MMP block while open for writing an INCOMPAT_MMP fs (mmp.ts). */
  mmp: MmpSession | null = null;
  /** Test hooks called at each commit step (crash injection). */
  commitHooks: CommitHooks = {};
  /** Statistics of the write session. */
  readonly writeStats: WriteStats = { transactions: 0, bytesWritten: 0, metadataBlocks: 0, revokes: 0 };
  /** The first corruption a write call found on this open (error-state.ts). */
  errorState: FsErrorInfo | null = null;
  /** Result of the journal replay done when this fs was opened for writing, if any. */
  replayed: ReplaySummary | null = null;
  /**
   * True once the write session has begun on disk: the first commit writes the journal
   * superblock and needs_recovery (or clears VALID_FS) before its own blocks; until then an
   * open for writing has written nothing and close writes nothing either.
   */
  private started = false;
  /** Whether this open wrote anything outside transactions (journal replay at open, an error record). */
  private wroteOutsideSession = false;
  /** What the first commit overwrote to begin the session, to put back if that commit is refused (E2BIG). */
  private undo: { sb: Uint8Array; jsb: Uint8Array | null; state: number; incompat: number } | null = null;
  /**
   * The on-disk journal superblock still points at a log that must not be replayed (s_start ≠ 0
   * without needs_recovery: the kernel discards such a log at mount): the session start writes
   * it emptied, durable before needs_recovery is.
   */
  private discardLog = false;
  /** Replayed blocks not yet written home (write opens replay lazily; see prepare). */
  private pendingReplay: Map<number, Uint8Array> | null = null;
  /** The session start's flush (start), while the first commit may still await it. */
  private startFlush: Promise<void> | null = null;
  private opQueue: Promise<unknown> = Promise.resolve();
  private broken: Error | null = null;
  private closed = false;

  constructor(private readonly host: FsWriter, private readonly vol: Volume, private readonly opts: SessionOptions) {}

  private get sb(): Superblock {
    return this.vol.sb;
  }

  /** Open for writing: MMP before anything is written; orphans released after journal replay (mmp.ts, orphan.ts). */
  async open(): Promise<void> {
    const host = this.host;
    if (this.sb.s_feature_incompat & INCOMPAT.MMP) {
      const ms = () => {
        const t = host.now();
        return t.sec * 1000 + Math.floor(t.nsec / 1e6);
      };
      const newSeq = () => randomBelow(host, MMP_SEQ_MAX + 1, 'mmp sequence');
      this.mmp = await MmpSession.start(this.vol.device, this.sb, this.vol.fsSeed, { verify: this.vol.verify, now: ms, newSeq, platform: host.platform, ...this.opts.mmp });
    }
    try {
      await this.prepare();
      await processOrphans(host);
    } catch (e) {
      if (this.started && !this.broken) await this.end().catch(() => undefined); // checkpoint, clear needs_recovery again
      await this.mmp?.release({ restore: this.wroteNothing() }).catch(() => undefined);
      throw e;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.opQueue.catch(() => undefined);
      if (!this.opts.readOnly && !this.broken) {
        await this.mmp?.check();
        await this.applyPendingReplay();
        await this.end();
      }
      await this.mmp?.release({ restore: this.wroteNothing() });
    } finally {
      this.mmp?.stop();
      this.closed = true;
    }
  }

  /** Nothing of this open reached the filesystem (the MMP block is then put back as found). */
  private wroteNothing(): boolean {
    return !this.started && !this.wroteOutsideSession && !this.broken;
  }

  /**
   * Open for writing: refuse a fs with errors, replay a journal that needs
   * it (as the kernel does at mount) and make the journal's features match
   * what we write — in memory: nothing else is written until the first
   * commit (start), so an open whose calls all fail leaves the image as it was.
   */
  private async prepare(): Promise<void> {
    const sb = this.sb;
    if (sb.s_state & STATE.ERROR_FS) throw new Ext4Error('EROFS', 'the filesystem has errors (ERROR_FS is set): run e2fsck before writing', { structure: 'superblock', location: { kind: 'field', field: 's_state' } });
    if (sb.s_feature_compat & COMPAT.HAS_JOURNAL) {
      const map = await journalExtents(this.host);
      const journal = await loadJournal(this.vol.device, this.vol.blockSize, map, sb.s_journal_inum);
      if (journal.jsb.s_errno) throw new Ext4Error('EROFS', `the journal was aborted (errno ${journal.jsb.s_errno}): run e2fsck`, { structure: 'journal superblock', location: { kind: 'field', field: 's_errno' } });
      if (sb.s_feature_incompat & INCOMPAT.RECOVER) {
        // Replay as the kernel does at mount, but lazily: the replayed blocks are laid over the
        // device (every read sees the recovered state) and written home right before the first
        // commit (start). An open whose calls all fail leaves the image as it was.
        const plan = await planReplay(journal.io, sb.blocksCount);
        this.replayed = plan.summary;
        if (plan.summary.errorFs) throw new Ext4Error('EROFS', `the journal replay found a corrupt transaction (${plan.summary.errors.join('; ')}); run e2fsck before writing`, { structure: 'journal' });
        this.vol.adoptOverlay(plan.blocks);
        this.pendingReplay = plan.blocks;
        // The superblock as recovery leaves it: needs_recovery cleared (the session sets it again).
        sb.s_feature_incompat &= ~INCOMPAT.RECOVER;
        if (plan.clearValidFs) sb.s_state &= ~STATE.VALID_FS;
        journal.jsb = parseJournalSuperblock(plan.jsbBlock);
      } else if (journal.jsb.s_start !== 0) {
        // The kernel discards such a log ("Clearing recovery information on journal"); the first
        // commit starts a new log cycle over it, with tids past the old log's (skipRecovery).
        journal.jsb.s_sequence = await skipRecovery(journal.io);
        journal.jsb.s_start = 0;
        this.discardLog = true;
      }
      const jsb = journal.jsb;
      if (jsb.version < 2) throw new Ext4Error('EROFS', 'journal superblock v1 cannot be written', { structure: 'journal superblock' });
      if (sb.hasMetadataCsum) {
        jsb.s_feature_incompat = (jsb.s_feature_incompat | JINCOMPAT.CSUM_V3) & ~JINCOMPAT.CSUM_V2;
        jsb.s_feature_compat &= ~JCOMPAT.CHECKSUM;
        jsb.s_checksum_type = 4;
      }
      if (sb.is64) jsb.s_feature_incompat |= JINCOMPAT['64BIT'];
      journal.jsb = refreshJournalSuperblock(jsb); // written by the first commit (or start: discardLog)
      journal.policy = this.opts.checkpoint ?? 'lazy';
      // The checkpointed images are committed transactions' final images, never written again: the cache takes them as they are.
      journal.onCheckpointed = (blocks) => {
        for (const [n, data] of blocks) this.vol.cache.adopt(n, data);
      };
      this.journal = journal;
      this.vol.pending = journal.pending;
    } else {
      this.host.warnings.push('this filesystem has no journal: writes are ordered carefully, but a crash may need e2fsck to reclaim leaked blocks');
    }
  }

  /**
   * The on-disk flags of a write session, set in memory before the first commit is finalised
   * (so that its superblock image carries them) and undone if that commit never happens:
   * needs_recovery with a journal; without one, VALID_FS off — like a journal-less kernel
   * mount, "not clean" while writing, so that after a crash e2fsck -p checks the filesystem.
   */
  private markSessionFlags(): { state: number; incompat: number } {
    const saved = { state: this.sb.s_state, incompat: this.sb.s_feature_incompat };
    if (this.journal) this.sb.s_feature_incompat |= INCOMPAT.RECOVER;
    else this.sb.s_state &= ~STATE.VALID_FS;
    return saved;
  }

  /**
   * Begin the write session on disk, right before the first commit: the superblock with
   * needs_recovery (or VALID_FS off). With a journal it must be durable before the journal
   * superblock that makes the log live: a live log (s_start ≠ 0) without needs_recovery is what
   * `e2fsck -p` refuses to preen (PR_0_JOURNAL_RUN, "needs_recovery flag is clear, but journal
   * has data": no PR_PREEN_OK, so a boot-time check halts), and jbd2 needs it before any commit
   * block (jbd2.md §9.1). Its flush is started here and returned, not awaited: the first
   * commit's ordered data (movedata's copy) is written meanwhile, and the journal awaits it
   * before the journal superblock (`beforeLog`), which goes with the first commit's log, durable
   * before its commit block, as the kernel writes it (jbd2_journal_commit_transaction after a
   * mount that found the log empty). Without a journal no flush of its own: commitUnjournaled's
   * first flush (after the data, which only fills free blocks) makes it durable before any
   * metadata is written in place. Only a log to discard is emptied first, durably, or
   * needs_recovery would make recovery replay it. What is overwritten is kept to put back if
   * that commit is refused.
   */
  private async start(saved: { state: number; incompat: number }): Promise<{ flushed: Promise<void> } | null> {
    await this.applyPendingReplay();
    const sbBefore = await this.vol.device.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE);
    const jsbBefore = this.journal && this.discardLog ? await this.journal.readBlock(0) : null;
    this.undo = { sb: sbBefore, jsb: jsbBefore, ...saved };
    this.started = true;
    if (this.journal && this.discardLog) {
      await this.journal.writeSuperblock();
      await this.vol.device.flush();
      this.discardLog = false;
    }
    // (flushed below with a journal, not awaited; without one, by commitUnjournaled's first flush)
    await this.vol.writeSuperblockInPlace({ flush: false });
    if (!this.journal) return null;
    const flushed = this.vol.device.flush();
    flushed.catch(() => undefined); // awaited by the commit (beforeLog) or by undoStart
    this.startFlush = flushed;
    return { flushed }; // (wrapped: an async function returning the promise itself would await it)
  }

  /** The first commit was refused before writing anything of its own: put back what start wrote. */
  private async undoStart(): Promise<void> {
    const u = this.undo;
    if (!u) return;
    await this.startFlush?.catch(() => undefined);
    this.startFlush = null;
    await this.vol.device.write(SUPERBLOCK_OFFSET, u.sb);
    await this.vol.device.flush();
    this.vol.cache.invalidate(Math.floor(SUPERBLOCK_OFFSET / this.vol.blockSize));
    // The discarded log's superblock back only once needs_recovery is off again on disk (never
    // both durable: recovery would replay that log).
    if (u.jsb && this.journal) {
      await this.journal.writeBlock(0, u.jsb);
      await this.vol.device.flush();
      this.discardLog = true;
    }
    this.sb.s_state = u.state;
    this.sb.s_feature_incompat = u.incompat;
    this.undo = null;
    this.started = false;
  }

  /** Write every committed transaction home and empty the journal (also done when the log fills and at close). */
  async checkpoint(): Promise<void> {
    await this.exclusive(async () => {
      if (this.journal && !this.broken) await this.journal.checkpoint(this.commitHooks);
    });
  }

  /** Close the write session: checkpoint, clear needs_recovery (or set VALID_FS), stamp. Nothing when nothing was committed. */
  private async end(): Promise<void> {
    if (!this.started) return;
    if (this.journal) await this.journal.checkpoint(this.commitHooks);
    const now = this.host.now().sec;
    if (this.journal) this.sb.s_feature_incompat &= ~INCOMPAT.RECOVER;
    else this.sb.s_state |= STATE.VALID_FS;
    this.sb.s_wtime = now % 2 ** 32;
    this.sb.s_wtime_hi = Math.floor(now / 2 ** 32) & 0xff;
    this.sb.s_kbytes_written += Math.floor(this.writeStats.bytesWritten / 1024);
    await this.vol.writeSuperblockInPlace();
  }

  /**
   * Write a deferred journal replay home, exactly as `ext4kit replay` / e2fsck -E journal_only
   * would (blocks, flush, journal superblock, superblock without needs_recovery): before the first
   * commit, or at close — a write open that commits nothing still completes recovery, like a
   * kernel mount and unmount. A call that fails on such an image thus leaves it as open + close.
   */
  private async applyPendingReplay(): Promise<void> {
    const replay = this.pendingReplay;
    const journal = this.journal;
    if (!replay || !journal) return;
    this.pendingReplay = null;
    this.wroteOutsideSession = true;
    await replayJournal(replayTargetOn(this.vol.device, journal.io, { blockSize: this.vol.blockSize, verifySuperblock: false, now: this.host.now().sec }));
    for (const [n, d] of replay) this.vol.cache.put(n, d);
    this.vol.cache.invalidate(Math.floor(SUPERBLOCK_OFFSET / this.vol.blockSize));
    this.vol.overlay = null;
  }

  /**
   * Run `fn` as one atomic transaction: operations are serialised (one
   * writer at a time; concurrent callers queue), the transaction's blocks are
   * committed through the journal and checkpointed before this resolves.
   * If `fn` throws, nothing is written.
   */
  async transact<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.opts.readOnly) throw new Ext4Error('EROFS', 'the filesystem is open read-only');
      if (this.closed) throw new Ext4Error('EINVAL', 'the filesystem is closed');
      if (this.broken) throw new Ext4Error('EIO', `an earlier commit failed; reopen the filesystem (${this.broken.message})`);
      if (this.errorState) throw readOnlyAfterError(this.errorState);
      this.mmp?.assertHeld();
      const tx = new Transaction(this.host);
      try {
        const result = await fn(tx);
        if (!tx.isEmpty()) await this.commit(tx);
        return result;
      } catch (e) {
        if (isCorruption(e)) await this.noteError(e);
        throw e;
      }
    };
    const p = this.opQueue.then(run, run);
    this.opQueue = p.catch(() => undefined);
    return p;
  }

  /** Serialise an operation with the writers without starting a transaction (e.g. a consistent read). */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.opQueue.then(fn, fn);
    this.opQueue = p.catch(() => undefined);
    return p;
  }

  /**
   * Remember the first corruption found by a write call (later writes: EROFS); with
   * `recordErrors`, also write it into the superblock as the kernel does — after a checkpoint,
   * so that no logged superblock image is written home over it later.
   */
  private async noteError(e: Ext4Error): Promise<void> {
    if (this.errorState) return;
    this.errorState = errorInfoOf(e, this.host.now());
    if (!this.opts.recordErrors || this.broken) return;
    try {
      if (this.journal) await this.journal.checkpoint(this.commitHooks);
      saveErrorInfo(this.sb, this.errorState);
      this.wroteOutsideSession = true;
      await this.vol.writeSuperblockInPlace();
    } catch (w) {
      this.broken = w as Error;
    }
  }

  private async commit(tx: Transaction): Promise<CommitStats> {
    const first = !this.started;
    const saved = first ? this.markSessionFlags() : null;
    const interim = new Map<number, Uint8Array>();
    let newSb: Superblock;
    let plan: UnjournaledPlan | null = null;
    try {
      newSb = await tx.finalise(async (t) => {
        if (!this.journal) for (const gd of t.groups.values()) { const b = t.blocks.get(gd.blockBitmap); if (b) interim.set(gd.blockBitmap, b.slice()); }
        await applyPendingFrees(t);
      });
      // What the in-place order reads (and verifies) is read before the session's first write.
      if (!this.journal) plan = await planUnjournaled(tx, interim);
    } catch (e) {
      if (saved) Object.assign(this.sb, { s_state: saved.state, s_feature_incompat: saved.incompat });
      throw e;
    }
    let stats: CommitStats;
    const device = this.vol.device;
    try {
      const started = saved ? await this.start(saved) : null;
      stats = this.journal
        ? await commitJournaled(device, this.journal, tx, this.commitHooks, started ? () => started.flushed : undefined)
        : await commitUnjournaled(device, tx, plan!, this.commitHooks);
    } catch (e) {
      // E2BIG: refused before anything of the transaction was written.
      if (e instanceof Ext4Error && e.code === 'E2BIG') {
        if (first) await this.undoStart().catch((u: unknown) => { this.broken = u as Error; });
      } else this.broken = e as Error;
      throw e;
    }
    this.undo = null;
    this.startFlush = null;
    // The transaction is durable: publish its state. Its final images are handed over (the journal's
    // pending set holds the same arrays): nothing writes into them after the commit, and the next
    // transaction's tx.block() copies them before changing anything.
    for (const [n, data] of tx.blocks) this.vol.cache.adopt(n, data);
    for (const gd of tx.groups.values()) this.vol.setGroupDesc(gd);
    Object.assign(this.sb, newSb);
    this.writeStats.transactions++;
    this.writeStats.metadataBlocks += stats.metadataBlocks;
    this.writeStats.revokes += stats.revokes;
    this.writeStats.bytesWritten += stats.dataBytes + stats.metadataBlocks * this.vol.blockSize * (this.journal ? 2 : 1);
    return stats;
  }
}
