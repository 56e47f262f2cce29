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
 * inodes and trees that release blocks another inode acquires, then the rest
 * of the metadata, then the bitmaps that release blocks); an in-place tree
 * rewrite can still be torn, so a crash needs e2fsck (the fs is marked not
 * clean while a write session is open).
 *
 * Besides its block images, a transaction can carry (see the CommitPlan
 * functions below): ordered data produced only once the commit is sure to go
 * ahead (movedata's copy: nothing is copied for a transaction the journal
 * refuses), data written only after the commit is durable (bytes the new
 * metadata made invisible), and, without a journal, which inodes release
 * blocks to others (so that no crash point has two inodes claiming a block).
 */
import { Ext4Error } from '../errors.js';
import type { BlockDevice } from '../io/device.js';
import type { Extent } from './extents.js';
import { findExtent } from './extents.js';
import { parseJournalSuperblock, serializeJournalSuperblock, refreshJournalSuperblock, JINCOMPAT, type JournalSuperblock } from '../jbd2/format.js';
import { buildTransaction, logSpaceNeeded } from '../jbd2/log-writer.js';
import type { DataWrite, Transaction } from './transaction.js';
import type { Timestamp } from './clock.js';

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

  /** The commit block's time: the filesystem clock (reproducible writes), kept strictly increasing. */
  commitTime(now: Timestamp): { sec: number; nsec: number } {
    let t = { sec: now.sec, nsec: now.nsec };
    const l = this.lastCommit;
    if (t.sec < l.sec || (t.sec === l.sec && t.nsec <= l.nsec)) t = l.nsec + 1 < 1e9 ? { sec: l.sec, nsec: l.nsec + 1 } : { sec: l.sec + 1, nsec: 0 };
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

// ------------------------------------------------------------------ commit plans

/** What a transaction asks of its commit beyond writing its blocks (kept here, keyed by the transaction). */
interface CommitPlan {
  /** Ordered data written by the commit itself, after the transaction is known to fit: returns bytes written. */
  producers: (() => Promise<number>)[];
  /** Written (and flushed) only once the commit is durable. */
  after: DataWrite[];
  /** Without a journal: inodes (and their tree blocks) whose new state releases blocks another inode acquires. */
  releasing: { ino: number; treeBlocks: number[] }[];
}

const plans = new WeakMap<Transaction, CommitPlan>();

function planOf(tx: Transaction): CommitPlan {
  let p = plans.get(tx);
  if (!p) plans.set(tx, (p = { producers: [], after: [], releasing: [] }));
  return p;
}

/**
 * Ordered data that the commit writes itself, with the transaction's other
 * ordered data, once the journal has accepted the transaction's size: a
 * transaction refused with E2BIG has written nothing. `write` issues the
 * device writes (no flush) and returns the bytes it wrote.
 */
export function produceOrderedData(tx: Transaction, write: () => Promise<number>): void {
  planOf(tx).producers.push(write);
}

/**
 * Data written only after the commit is durable: bytes that the committed
 * metadata makes invisible (the tail of a block past a new, smaller EOF), so
 * a crash before the commit keeps the old bytes and one after it cannot show
 * them either way.
 */
export function writeAfterCommit(tx: Transaction, block: number, data: Uint8Array): void {
  if (data.length % tx.fs.blockSize !== 0) throw new Ext4Error('EINVAL', 'data writes must be whole blocks');
  planOf(tx).after.push({ block, data });
}

/**
 * Without a journal: `ino`'s new inode and tree blocks give up blocks that
 * another inode of the same transaction takes (movedata: the donor's blocks
 * go to the data file). They reach the disk, flushed, before the taker's
 * inode and tree, so no crash point has both claiming a block (orphan cleanup
 * of a donor that still listed them would free a live file's blocks).
 * Harmless with a journal (the transaction is atomic there).
 */
export function releaseFirst(tx: Transaction, ino: number, treeBlocks: readonly number[]): void {
  planOf(tx).releasing.push({ ino, treeBlocks: [...treeBlocks] });
}

async function writeData(dev: BlockDevice, tx: Transaction): Promise<number> {
  let bytes = 0;
  for (const w of tx.data) {
    await dev.write(w.block * tx.fs.blockSize, w.data);
    bytes += w.data.length;
  }
  for (const produce of plans.get(tx)?.producers ?? []) bytes += await produce();
  return bytes;
}

/** The after-commit writes, flushed; returns bytes written. */
async function writeAfter(dev: BlockDevice, tx: Transaction): Promise<number> {
  const after = plans.get(tx)?.after ?? [];
  let bytes = 0;
  for (const w of after) {
    await dev.write(w.block * tx.fs.blockSize, w.data);
    bytes += w.data.length;
  }
  if (after.length) await dev.flush();
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
  const revokes = [...new Set([...tx.revokes, ...revoked])];
  // Refuse an oversized transaction before anything at all is written (no feature bit, no data).
  const need = logSpaceNeeded(journal.jsb, blocks.length, revokes.length);
  if (need > Math.floor(journal.logCapacity() / 4))
    throw new Ext4Error('E2BIG', `transaction needs ${need} log blocks, more than a quarter of the journal (${journal.logCapacity()} blocks): split the operation`);
  for (const r of revoked) tx.revokes.add(r);
  if (revokes.length && !(journal.jsb.s_feature_incompat & JINCOMPAT.REVOKE)) {
    journal.jsb.s_feature_incompat |= JINCOMPAT.REVOKE;
    journal.jsb = refreshJournalSuperblock(journal.jsb);
    if (journal.live) await journal.writeSuperblock(); // durable with this transaction's log flush, before its commit
  }
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
  const built = buildTransaction({ jsb, tid, startBlock: journal.head, blocks, revokes, commitTime: journal.commitTime(tx.fs.now()) });
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
  const afterBytes = await writeAfter(dev, tx);
  if (journal.policy === 'each' || journal.pending.size * bs > journal.maxPendingBytes) await checkpoint(dev, journal, bs, hooks);
  return { tid, metadataBlocks: blocks.length, dataBytes: dataBytes + afterBytes, revokes: revokes.length };
}

/**
 * No journal: write so that a crash leaves at worst leaked blocks (which
 * e2fsck reclaims), never a block owned twice or pointed at while free:
 *   1. data → flush
 *   2. every bitmap with allocations applied but frees not yet → flush
 *   3. the inodes and tree blocks that release blocks to another inode
 *      (releaseFirst), their inode-table blocks as interim images with only
 *      those inodes changed → flush
 *   4. the rest of the metadata → flush
 *   5. the final block bitmaps (frees) → flush
 *   6. the after-commit data → flush
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
  const early = await releasingImages(tx, late);
  for (const [b, data] of early) await dev.write(b * bs, data);
  if (early.size) await dev.flush();
  for (const [b, data] of tx.blocks) if (!late.has(b) && early.get(b) !== data) await dev.write(b * bs, data);
  await dev.flush();
  for (const [b, data] of tx.blocks) if (late.has(b)) await dev.write(b * bs, data);
  await dev.flush();
  const afterBytes = await writeAfter(dev, tx);
  await hooks.onStep?.('done');
  return { tid: null, metadataBlocks: tx.blocks.size, dataBytes: dataBytes + afterBytes, revokes: 0 };
}

/**
 * Step 3's block images: the releasing inodes' tree blocks (final images: the
 * tree belongs to that inode alone) and their inode-table blocks as on disk
 * with only the releasing inodes' slots taken from the final image (a taker
 * sharing the block keeps its old slot until step 4). Bitmaps are never here.
 */
async function releasingImages(tx: Transaction, late: ReadonlySet<number>): Promise<Map<number, Uint8Array>> {
  const out = new Map<number, Uint8Array>();
  const releasing = plans.get(tx)?.releasing ?? [];
  if (!releasing.length) return out;
  const isz = tx.fs.sb.s_inode_size;
  const slots = new Map<number, number[]>();
  for (const r of releasing) {
    for (const b of r.treeBlocks) {
      const img = tx.blocks.get(b);
      if (img && !late.has(b)) out.set(b, img);
    }
    const { block, offset } = await tx.fs.inodeLocation(r.ino);
    if (!tx.blocks.has(block) || late.has(block)) continue;
    slots.set(block, [...(slots.get(block) ?? []), offset]);
  }
  for (const [block, offsets] of slots) {
    const final = tx.blocks.get(block)!;
    // The committed image (the cache is only updated once the commit is done).
    const img = (await tx.fs.readBlock(block)).slice();
    for (const off of offsets) img.set(final.subarray(off, off + isz), off);
    // Identical to the final image (nothing else changed in the block): write it once, in step 3.
    out.set(block, img.every((x, k) => x === final[k]) ? final : img);
  }
  return out;
}

export type { JournalSuperblock };
