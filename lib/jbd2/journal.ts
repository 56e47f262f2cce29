/**
 * The live journal of a filesystem open for writing (jbd2.md §10): the log's
 * superblock, where the next transaction goes, and the committed metadata not
 * yet written home. It knows blocks, not what they mean: the host filesystem
 * turns its transaction into `blocks` (final images), `revokes`, `freed`
 * ranges and ordered data, and reads through `pending` until a checkpoint.
 *
 * Committing (one transaction):
 *   1. ordered data, (the host's beforeLog barrier awaited), (new log cycle)
 *      jsb.s_start/s_sequence, revoke + descriptor + logged blocks → flush
 *   2. commit block → flush                      ← the transaction is durable here
 *   3. after-commit data (the host's, flushed by it)
 * Checkpointing (lazy: when the log would wrap, when pending metadata grows
 * too large, at close, or after every commit with policy 'each'):
 *   4. every pending block home → flush
 *   5. jsb.s_start = 0, s_sequence = next tid → flush  (log empty again)
 * The host has made needs_recovery durable before the first commit block.
 * Crash tests stop at each step through `hooks.onStep` ('data', 'log',
 * 'commit', 'checkpoint', 'done'): the step names and their order are a contract.
 *
 * A commit the host marks `deferNext` returns once its log is written, before step 1's flush:
 * its flush, commit block and second flush (its tail) run while the host prepares the next
 * transaction in memory, and everything that writes — the next commit, a checkpoint — awaits
 * the tail first (`settle`). The device sees the same writes and flushes in the same order, so
 * every crash point is one the plain order has; only the host's CPU work moves under the
 * flushes (bench/defrag at 90 %: 51 commits, each ~3–7 ms of flushes under load). The host must
 * itself keep anyone else from writing the device until the tail settles (moveFiles holds the
 * writer queue): the transaction's frees are published before they are durable. With
 * `orderedEarly` the next commit's ordered data starts under the tail too, as far as it avoids
 * the blocks that commit freed (the crash states are those of that data written after the tail:
 * the blocks it fills are free before and after the commit in flight).
 *
 * This is an internal journal: log and home blocks share one device, so one
 * flush of the journal's I/O is the barrier for both.
 */
import { Ext4Error } from '../errors.js';
import type { JournalIO } from './device.js';
import { JINCOMPAT, JSB_SIZE, parseJournalSuperblock, refreshJournalSuperblock, serializeJournalSuperblock, type JournalSuperblock } from './format.js';
import { buildTransaction, logCapacity, logSpaceNeeded } from './log-writer.js';

export type CommitStep = 'data' | 'log' | 'commit' | 'checkpoint' | 'done';

export interface CommitHooks {
  /** Called after a crash-relevant step, for tests that inject crashes. */
  onStep?(step: CommitStep): Promise<void> | void;
}

/** Where checkpointed blocks go: the filesystem, addressed in its blocks. */
export interface HomeBlocks {
  writeBlock(fsBlock: number, data: Uint8Array): Promise<void>;
  /** Write consecutive blocks from `fsBlock` (`data`: whole blocks) in one device write. Optional: else block by block. */
  writeBlocks?(fsBlock: number, data: Uint8Array): Promise<void>;
}

/** Most blocks gathered into one write (a checkpoint's or a log's run; the size of the reused run buffer). */
const MAX_RUN_BLOCKS = 256;

/**
 * Write `count` blocks (the i-th: number `blockAt(i)`, image `dataAt(i)`, `bs` bytes) in runs of consecutive
 * numbers, each run as one write: a transaction's log and a checkpoint's home blocks go out as a
 * few large writes rather than one awaited write per block (an `rm -r` made 2,655 pwrite64 calls,
 * strace). A lone block is written from its own image; a run is packed into `scratch`, reused for
 * every run (each write is awaited before the next run is packed: the device is done with the
 * bytes when write() resolves), so no fresh buffer — calloc and page faults — per run or commit.
 */
async function writeRuns(
  count: number,
  blockAt: (i: number) => number,
  dataAt: (i: number) => Uint8Array,
  bs: number,
  scratch: () => Uint8Array,
  write: (block: number, data: Uint8Array) => Promise<void>,
): Promise<void> {
  for (let i = 0; i < count; ) {
    const first = blockAt(i);
    let k = 1;
    if (dataAt(i).length === bs) while (i + k < count && k < MAX_RUN_BLOCKS && blockAt(i + k) === first + k && dataAt(i + k).length === bs) k++;
    if (k === 1) await write(first, dataAt(i));
    else {
      const buf = scratch();
      for (let j = 0; j < k; j++) buf.set(dataAt(i + j), j * bs);
      await write(first, buf.subarray(0, k * bs));
    }
    i += k;
  }
}

export interface JournalCommit {
  /**
   * Final block images to log (fs block → bytes, one block each). The journal logs and keeps these
   * very arrays (`pending`, until the checkpoint writes them home): the caller hands them over and
   * never writes into them again.
   */
  blocks: ReadonlyMap<number, Uint8Array>;
  /** Blocks the host revokes explicitly. */
  revokes?: Iterable<number>;
  /**
   * Ranges the transaction frees: any block of them with a copy in the live
   * log (and not logged again here) is revoked, since it may be reused for
   * data before the next checkpoint and replay must not write the old copy over it.
   */
  freed?: readonly { start: number; length: number }[];
  /** Ordered data: written (not flushed) once the transaction is known to fit, durable before the commit block. Returns bytes written. */
  ordered?: () => Promise<number>;
  /** Run once the commit is durable, before any checkpoint (e.g. data the new metadata hides). Returns bytes written. */
  afterCommit?: () => Promise<number>;
  /**
   * Awaited after the ordered data is issued and before the journal superblock and the log are
   * written: a barrier the host started earlier (its session start: needs_recovery, flushed
   * while the ordered data is written) that must be complete before the log can go live.
   */
  beforeLog?: () => Promise<void>;
  /** The host's clock; the commit time is kept strictly increasing from it. */
  now: { sec: number; nsec: number };
}

export interface JournalCommitResult {
  tid: number;
  /** Fs blocks logged. */
  blocks: number;
  /** Revoke records written (explicit and from `freed`). */
  revokes: number;
  /** Blocks revoked because `freed` covered a copy in the live log (the host may record them). */
  revokedFromLog: number[];
  /** Bytes of ordered and after-commit data. */
  dataBytes: number;
  /** Log blocks the transaction used, commit block included. */
  logBlocks: number;
}

export class Journal {
  readonly io: JournalIO;
  readonly home: HomeBlocks;
  jsb: JournalSuperblock;
  /**
   * Committed but not yet checkpointed metadata (fs block → latest image). The
   * host reads through it, so these blocks can't be lost to cache eviction.
   * Its keys are exactly the blocks that have a copy in the live log.
   */
  readonly pending = new Map<number, Uint8Array>();
  /** Next log block to write (meaningful while the log is live). */
  head = 0;
  /** Next transaction id. */
  nextTid = 0;
  /** True while the log holds committed, not yet checkpointed transactions. */
  live = false;
  /** 'lazy': checkpoint when the log fills up (or at close); 'each': after every commit. */
  policy: 'lazy' | 'each' = 'lazy';
  /** Checkpoint when pending metadata exceeds this many bytes (bounded memory). */
  maxPendingBytes = 64 * 1024 * 1024;
  /**
   * Called with the pending blocks once they are home, before they are dropped: the host's
   * block cache must take them, because while pending it may have read (ahead) the stale
   * on-disk copies, which reads no longer bypass afterwards.
   */
  onCheckpointed: ((blocks: ReadonlyMap<number, Uint8Array>) => void) | null = null;
  /** Last commit time, to keep commit times non-decreasing. */
  #lastCommit = { sec: 0, nsec: 0 };
  /** The buffer runs of log and home blocks are packed into (allocated once; commit and checkpoint never overlap: the host serialises them). */
  #runs: Uint8Array | null = null;
  /**
   * Set by the host right before a commit (consumed by it): that commit returns once its log is
   * written and leaves its tail — flush, commit block, flush — running (see the module comment).
   * Ignored where the commit must checkpoint after it (policy 'each', pending memory full).
   */
  deferNext = false;
  /**
   * Set by the host right before a commit (consumed by it): that commit's ordered data may run
   * while the last commit's tail is still in flight. The host then writes there only blocks the
   * last commit did not free (free in both states: a crash leaves nobody pointing at them), and
   * awaits `settle()` before writing any it freed.
   */
  orderedEarly = false;
  /** The running tail of a deferred commit. */
  #tail: Promise<void> | null = null;
  /** A deferred tail's failure: the journal is unusable after it (every later commit, checkpoint and settle throws it). */
  #failed: unknown = null;

  #runBuffer(): Uint8Array {
    return (this.#runs ??= new Uint8Array(MAX_RUN_BLOCKS * this.blockSize));
  }

  constructor(io: JournalIO, home: HomeBlocks, jsb: JournalSuperblock) {
    this.io = io;
    this.home = home;
    this.jsb = jsb;
  }

  /** True while a deferred commit's tail is in flight (its commit block not yet durable). */
  get committing(): boolean {
    return this.#tail !== null;
  }

  /** Resolves once no deferred commit is in flight (its commit block durable); throws a deferred tail's failure. */
  async settle(): Promise<void> {
    while (this.#tail) {
      const t = this.#tail;
      await t;
      if (this.#tail === t) this.#tail = null;
    }
    if (this.#failed !== null) throw this.#failed;
  }

  /** Read journal block 0 and parse it (the host validates what it can write). */
  static async load(io: JournalIO, home: HomeBlocks): Promise<Journal> {
    return new Journal(io, home, parseJournalSuperblock(await io.readBlock(0)));
  }

  get blockSize(): number {
    return this.io.blockSize;
  }

  readBlock(n: number): Promise<Uint8Array> {
    return this.io.readBlock(n);
  }

  writeBlock(n: number, data: Uint8Array): Promise<void> {
    return this.io.writeBlock(n, data);
  }

  /** Write `jsb` to journal block 0 (no flush). */
  async writeSuperblock(): Promise<void> {
    const bytes = serializeJournalSuperblock(this.jsb);
    // The jsb occupies the first 1024 bytes of journal block 0; keep the rest of the block as is.
    const blk = await this.readBlock(0);
    blk.set(bytes.subarray(0, JSB_SIZE), 0);
    await this.writeBlock(0, blk);
  }

  /** Usable log blocks (excluding the fast-commit area). */
  logCapacity(): number {
    return logCapacity(this.jsb);
  }

  /** The largest transaction (log blocks) commit() accepts: a quarter of the log, like the kernel's limit. */
  maxTransactionBlocks(): number {
    return Math.floor(this.logCapacity() / 4);
  }

  /** End of the regular log area (s_maxlen minus the fast-commit blocks). */
  lastLogBlock(): number {
    return this.jsb.last;
  }

  /** The commit block's time: the host's clock (reproducible writes), kept strictly increasing. */
  commitTime(now: { sec: number; nsec: number }): { sec: number; nsec: number } {
    let t = { sec: now.sec, nsec: now.nsec };
    const l = this.#lastCommit;
    if (t.sec < l.sec || (t.sec === l.sec && t.nsec <= l.nsec)) t = l.nsec + 1 < 1e9 ? { sec: l.sec, nsec: l.nsec + 1 } : { sec: l.sec + 1, nsec: 0 };
    this.#lastCommit = t;
    return t;
  }

  /** Blocks of `freed` that have a copy in the live log and are not logged again by this transaction. */
  #revokedByFrees(freed: readonly { start: number; length: number }[], logged: ReadonlyMap<number, Uint8Array>): number[] {
    const out: number[] = [];
    // (indexed and forEach: interpreted in a fresh process, for-of allocates an iterator result per element)
    for (let i = 0; i < freed.length; i++) {
      const f = freed[i]!;
      if (this.pending.size < f.length) {
        this.pending.forEach((_, b) => {
          if (b >= f.start && b < f.start + f.length && !logged.has(b)) out.push(b);
        });
      } else for (let b = f.start; b < f.start + f.length; b++) if (this.pending.has(b) && !logged.has(b)) out.push(b);
    }
    return out;
  }

  /**
   * Commit one transaction (steps 1–3 above). Refuses (E2BIG) a transaction
   * larger than a quarter of the log, like the kernel's limit, before anything
   * at all is written: no feature bit, no ordered data.
   */
  async commit(input: JournalCommit, hooks: CommitHooks = {}): Promise<JournalCommitResult> {
    const defer = this.deferNext, early = this.orderedEarly;
    this.deferNext = this.orderedEarly = false;
    // (nothing of this transaction before the last one is durable — but the ordered data of a
    // host that said it writes none of that one's freed blocks before settle())
    if (!early) await this.settle();
    else if (this.#failed !== null) throw this.#failed;
    // (forEach, not a spread and destructuring: interpreted in a fresh process, those allocate an iterator result per entry)
    const blocks: { fsBlock: number; data: Uint8Array }[] = [];
    input.blocks.forEach((data, fsBlock) => blocks.push({ fsBlock, data }));
    const revokedFromLog = this.#revokedByFrees(input.freed ?? [], input.blocks);
    const revokes = [...new Set([...(input.revokes ?? []), ...revokedFromLog])];
    const need = logSpaceNeeded(this.jsb, blocks.length, revokes.length);
    if (need > this.maxTransactionBlocks())
      throw new Ext4Error('E2BIG', `transaction needs ${need} log blocks, more than a quarter of the journal (${this.logCapacity()} blocks): split the operation`);
    if (revokes.length && !(this.jsb.s_feature_incompat & JINCOMPAT.REVOKE)) {
      this.jsb.s_feature_incompat |= JINCOMPAT.REVOKE;
      this.jsb = refreshJournalSuperblock(this.jsb);
      if (this.live) {
        await this.settle();
        await this.writeSuperblock(); // durable with this transaction's log flush, before its commit
      }
    }
    // Never wrap: when the rest of the log is too short, checkpoint and start a new cycle at s_first.
    if (this.live && this.head + need > this.lastLogBlock()) await this.checkpoint(hooks);
    // 1. ordered data + log, one flush (the data only has to be durable before the commit block)
    let dataBytes = input.ordered ? await input.ordered() : 0;
    await this.settle();
    await hooks.onStep?.('data');
    if (input.beforeLog) await input.beforeLog();
    // A new log cycle: the journal superblock (s_start, s_sequence) goes with the log, durable
    // before the commit block (after the ordered data, in the same flush: the order within one
    // flush is no order at all).
    const jsb = this.jsb;
    if (!this.live) {
      this.nextTid = jsb.s_sequence >>> 0;
      this.head = jsb.s_first;
      jsb.s_start = jsb.s_first;
      await this.writeSuperblock();
    }
    const tid = this.nextTid;
    const built = buildTransaction({ jsb, tid, startBlock: this.head, blocks, revokes, commitTime: this.commitTime(input.now) });
    const w = built.writes;
    if (this.io.writeBlocks) {
      const writeBlocks = this.io.writeBlocks.bind(this.io);
      await writeRuns(w.length, (i) => w[i]!.journalBlock, (i) => w[i]!.data, this.blockSize, () => this.#runBuffer(), writeBlocks);
    } else for (const x of w) await this.writeBlock(x.journalBlock, x.data);
    const result = (): JournalCommitResult => ({ tid, blocks: blocks.length, revokes: revokes.length, revokedFromLog, dataBytes, logBlocks: built.logBlocksUsed });
    /** The log → commit block → flush order of steps 1–2 (one aligned block-sized write after everything before it is durable). */
    const seal = async (): Promise<void> => {
      await this.io.flush();
      await hooks.onStep?.('log');
      await this.writeBlock(built.commitBlock.journalBlock, built.commitBlock.data);
      await this.io.flush();
    };
    /** The journal as it is once the commit block is durable (what the host reads through `pending`). */
    const publish = (): void => {
      this.live = true;
      this.head = built.nextBlock;
      this.nextTid = (tid + 1) >>> 0;
      for (let i = 0; i < revokedFromLog.length; i++) this.pending.delete(revokedFromLog[i]!);
      for (let i = 0; i < blocks.length; i++) this.pending.set(blocks[i]!.fsBlock, blocks[i]!.data);
    };
    const checkpointAfter = (): boolean => this.policy === 'each' || this.pending.size * this.blockSize > this.maxPendingBytes;
    if (defer && this.policy !== 'each' && (this.pending.size + blocks.length) * this.blockSize <= this.maxPendingBytes) {
      // The tail runs on; the journal's state already is what it will be once it is done (the next
      // commit starts its log at the new head, after awaiting the tail). Its after-commit data goes
      // with it (not counted in dataBytes: the host that defers has none).
      publish();
      const tail: Promise<void> = (async () => {
        await seal();
        await hooks.onStep?.('commit');
        if (input.afterCommit) await input.afterCommit();
      })()
        .catch((e: unknown) => {
          this.#failed ??= e;
        })
        .finally(() => {
          if (this.#tail === tail) this.#tail = null;
        });
      this.#tail = tail;
      return result();
    }
    await seal();
    publish();
    await hooks.onStep?.('commit');
    // 3.
    if (input.afterCommit) dataBytes += await input.afterCommit();
    if (checkpointAfter()) await this.checkpoint(hooks);
    return result();
  }

  /**
   * Write every pending block home, flush, and empty the log (flushed: the
   * log's space is only reused after the emptied journal superblock is durable,
   * so recovery can never replay a half-overwritten old log).
   */
  async checkpoint(hooks: CommitHooks = {}): Promise<void> {
    await this.settle();
    if (!this.live) return;
    if (this.home.writeBlocks) {
      // in block order, adjacent blocks in one write (all of them land before the flush anyway)
      const order = Float64Array.from(this.pending.keys()).sort();
      const pending = this.pending;
      const writeBlocks = this.home.writeBlocks.bind(this.home);
      await writeRuns(order.length, (i) => order[i]!, (i) => pending.get(order[i]!)!, this.blockSize, () => this.#runBuffer(), writeBlocks);
    } else for (const [b, data] of this.pending) await this.home.writeBlock(b, data);
    await this.io.flush();
    await hooks.onStep?.('checkpoint');
    this.jsb.s_start = 0;
    this.jsb.s_sequence = this.nextTid >>> 0;
    await this.writeSuperblock();
    await this.io.flush();
    this.onCheckpointed?.(this.pending);
    this.pending.clear();
    this.live = false;
    await hooks.onStep?.('done');
  }
}
