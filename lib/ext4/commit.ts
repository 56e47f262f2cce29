/**
 * Committing a Transaction (jbd2.md §10):
 *   1. ordered data, (new log cycle) jsb.s_start/s_sequence, descriptors + logged blocks
 *      (+ revokes) → flush
 *   2. commit block → flush                      ← the operation is durable here
 *   later, when the log fills up or at close (checkpoint):
 *   3. every pending block home → flush
 *   4. jsb.s_start = 0, s_sequence = next tid → flush  (log empty again)
 * needs_recovery is on disk (set at open) before any commit block. Without
 * a journal: ordered in-place writes (allocation bitmaps first, then the
 * metadata that points at them, then the bitmaps that release blocks); an
 * in-place tree rewrite can still be torn, so a crash needs e2fsck (the fs is
 * marked not clean while a write session is open).
 */
import { Ext4Error } from '../errors.js';
import type { BlockDevice } from '../io/device.js';
import type { Extent } from './extents.js';
import { findExtent } from './extents.js';
import { parseJournalSuperblock, serializeJournalSuperblock, refreshJournalSuperblock, JINCOMPAT, type JournalSuperblock } from './journal/format.js';
import { buildTransaction, logSpaceNeeded } from './journal/log-writer.js';
import type { Transaction } from './transaction.js';

/** The live state of the internal journal while a fs is open for writing. */
export class JournalState {
  readonly device: BlockDevice;
  readonly blockSize: number;
  /** The journal inode's map (journal block n = logical block n). */
  readonly map: Extent[];
  jsb: JournalSuperblock;
  /** Last commit time, to keep commit times non-decreasing. */
  private lastCommit = { sec: 0, nsec: 0 };
  /**
   * Committed but not yet checkpointed metadata (fs block → latest image). The
   * Filesystem reads through it, so these blocks can't be lost to cache eviction.
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
   * Called with the pending blocks once they are home, before they are dropped: the owner's
   * block cache must take them, because while pending it may have read (ahead) the stale
   * on-disk copies, which reads no longer bypass afterwards.
   */
  onCheckpointed: ((blocks: ReadonlyMap<number, Uint8Array>) => void) | null = null;

  constructor(device: BlockDevice, blockSize: number, map: Extent[], jsb: JournalSuperblock) {
    this.device = device;
    this.blockSize = blockSize;
    this.map = map;
    this.jsb = jsb;
  }

  static async load(device: BlockDevice, blockSize: number, map: Extent[]): Promise<JournalState> {
    const st = new JournalState(device, blockSize, map, undefined as unknown as JournalSuperblock);
    st.jsb = parseJournalSuperblock(await st.readBlock(0));
    return st;
  }

  /** Physical block of journal block n. */
  physical(n: number): number {
    const { extent } = findExtent(this.map, n);
    if (!extent || extent.unwritten) throw new Ext4Error('EFSCORRUPTED', `journal block ${n} is not mapped`, { structure: 'journal inode' });
    return extent.physical + (n - extent.logical);
  }

  async readBlock(n: number): Promise<Uint8Array> {
    return this.device.read(this.physical(n) * this.blockSize, this.blockSize);
  }

  async writeBlock(n: number, data: Uint8Array): Promise<void> {
    await this.device.write(this.physical(n) * this.blockSize, data);
  }

  async writeSuperblock(): Promise<void> {
    const bytes = serializeJournalSuperblock(this.jsb);
    // The jsb occupies the first 1024 bytes of journal block 0; keep the rest of the block as is.
    const blk = await this.readBlock(0);
    blk.set(bytes.subarray(0, 1024), 0);
    await this.writeBlock(0, blk);
  }

  /** Usable log blocks (excluding the fast-commit area). */
  logCapacity(): number {
    return this.lastLogBlock() - this.jsb.s_first;
  }

  lastLogBlock(): number {
    const fc = this.jsb.s_feature_incompat & JINCOMPAT.FAST_COMMIT ? this.jsb.s_num_fc_blks || 256 : 0;
    return this.jsb.s_maxlen - fc;
  }

  commitTime(): { sec: number; nsec: number } {
    const now = Date.now();
    let t = { sec: Math.floor(now / 1000), nsec: (now % 1000) * 1e6 };
    const l = this.lastCommit;
    if (t.sec < l.sec || (t.sec === l.sec && t.nsec <= l.nsec)) t = { sec: l.sec, nsec: l.nsec + 1 };
    this.lastCommit = t;
    return t;
  }
}

export interface CommitHooks {
  /** Called after a crash-relevant step, for tests that inject crashes. */
  onStep?(step: 'data' | 'log' | 'commit' | 'checkpoint' | 'done'): Promise<void> | void;
}

export interface CommitStats {
  tid: number | null;
  metadataBlocks: number;
  dataBytes: number;
  revokes: number;
}

async function writeData(dev: BlockDevice, tx: Transaction): Promise<number> {
  let bytes = 0;
  for (const w of tx.data) {
    await dev.write(w.block * tx.fs.blockSize, w.data);
    bytes += w.data.length;
  }
  return bytes;
}

/**
 * Write every pending block home, flush, and empty the log (flushed: the
 * log's space is only reused after the emptied journal superblock is durable,
 * so recovery can never replay a half-overwritten old log).
 */
export async function checkpoint(dev: BlockDevice, journal: JournalState, bs: number, hooks: CommitHooks = {}): Promise<void> {
  if (!journal.live) return;
  for (const [b, data] of journal.pending) await dev.write(b * bs, data);
  await dev.flush();
  await hooks.onStep?.('checkpoint');
  journal.jsb.s_start = 0;
  journal.jsb.s_sequence = journal.nextTid >>> 0;
  await journal.writeSuperblock();
  await dev.flush();
  journal.onCheckpointed?.(journal.pending);
  journal.pending.clear();
  journal.live = false;
  await hooks.onStep?.('done');
}

/**
 * Commit through the journal (the transaction must be finalised):
 *   1. ordered data, (new log cycle: the journal superblock pointing at it), the log → flush
 *   2. commit block → flush                         ← durable here
 * Checkpointing is lazy: several transactions share the log and are written
 * home together when it fills up, when pending metadata grows too large, or
 * at close. A block freed while an older copy of it is in the live log gets
 * a revoke record (it may be reused for data before the next checkpoint).
 */
export async function commitJournaled(dev: BlockDevice, journal: JournalState, tx: Transaction, hooks: CommitHooks = {}): Promise<CommitStats> {
  const bs = tx.fs.blockSize;
  const blocks = [...tx.blocks].map(([fsBlock, data]) => ({ fsBlock, data }));
  // Revoke freed blocks that have a copy in the live log.
  const revoked: number[] = [];
  for (const f of tx.pendingFree) {
    if (journal.pending.size < f.length) {
      for (const b of journal.pending.keys()) if (b >= f.start && b < f.start + f.length && !tx.blocks.has(b)) revoked.push(b);
    } else for (let b = f.start; b < f.start + f.length; b++) if (journal.pending.has(b) && !tx.blocks.has(b)) revoked.push(b);
  }
  for (const r of revoked) tx.revokes.add(r);
  const revokes = [...tx.revokes];
  if (revokes.length && !(journal.jsb.s_feature_incompat & JINCOMPAT.REVOKE)) {
    journal.jsb.s_feature_incompat |= JINCOMPAT.REVOKE;
    journal.jsb = refreshJournalSuperblock(journal.jsb);
    if (journal.live) await journal.writeSuperblock(); // durable with this transaction's log flush, before its commit
  }
  const need = logSpaceNeeded(journal.jsb, blocks.length, revokes.length);
  if (need > Math.floor(journal.logCapacity() / 4))
    throw new Ext4Error('E2BIG', `transaction needs ${need} log blocks, more than a quarter of the journal (${journal.logCapacity()} blocks): split the operation`);
  // Never wrap: when the rest of the log is too short, checkpoint and start a new cycle at s_first.
  if (journal.live && journal.head + need > journal.lastLogBlock()) await checkpoint(dev, journal, bs, hooks);
  const jsb = journal.jsb;
  if (!journal.live) {
    journal.nextTid = jsb.s_sequence >>> 0;
    journal.head = jsb.s_first;
    jsb.s_start = jsb.s_first;
    await journal.writeSuperblock();
  }
  const tid = journal.nextTid;
  // 1. ordered data + log, one flush (the data only has to be durable before the commit block)
  const dataBytes = await writeData(dev, tx);
  await hooks.onStep?.('data');
  const built = buildTransaction({ jsb, tid, startBlock: journal.head, blocks, revokes, commitTime: journal.commitTime() });
  for (const w of built.writes) await journal.writeBlock(w.journalBlock, w.data);
  await dev.flush();
  await hooks.onStep?.('log');
  // 2. commit block: one aligned block-sized write after everything before it is durable
  await journal.writeBlock(built.commitBlock.journalBlock, built.commitBlock.data);
  await dev.flush();
  journal.live = true;
  journal.head = built.nextBlock;
  journal.nextTid = (tid + 1) >>> 0;
  for (const r of revoked) journal.pending.delete(r);
  for (const b of blocks) journal.pending.set(b.fsBlock, b.data);
  await hooks.onStep?.('commit');
  if (journal.policy === 'each' || journal.pending.size * bs > journal.maxPendingBytes) await checkpoint(dev, journal, bs, hooks);
  return { tid, metadataBlocks: blocks.length, dataBytes, revokes: revokes.length };
}

/**
 * No journal: write so that a crash leaves at worst leaked blocks (which
 * e2fsck reclaims), never a block owned twice or pointed at while free:
 * data, then every bitmap/descriptor/superblock block with allocations
 * applied but frees not yet applied, then the rest, then the final bitmaps.
 */
export async function commitUnjournaled(dev: BlockDevice, tx: Transaction, interim: Map<number, Uint8Array>, hooks: CommitHooks = {}): Promise<CommitStats> {
  const bs = tx.fs.blockSize;
  const dataBytes = await writeData(dev, tx);
  await dev.flush();
  await hooks.onStep?.('data');
  for (const [b, data] of interim) await dev.write(b * bs, data);
  if (interim.size) await dev.flush();
  // Every block bitmap the transaction changed goes last, also those that only
  // release blocks (not in `interim`: their on-disk image is the pre-free
  // state): a bitmap that frees blocks must not reach the disk before the
  // metadata that stops pointing at them, or a crash leaves blocks marked free
  // while still in use — handed out again, they end up owned twice.
  const late = new Set(interim.keys());
  for (const gd of tx.groups.values()) if (tx.blocks.has(gd.blockBitmap)) late.add(gd.blockBitmap);
  for (const [b, data] of tx.blocks) if (!late.has(b)) await dev.write(b * bs, data);
  await dev.flush();
  for (const [b, data] of tx.blocks) if (late.has(b)) await dev.write(b * bs, data);
  await dev.flush();
  await hooks.onStep?.('done');
  return { tid: null, metadataBlocks: tx.blocks.size, dataBytes, revokes: 0 };
}

export type { JournalSuperblock };
