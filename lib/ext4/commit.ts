/**
 * Committing a Transaction (jbd2.md §10):
 *   1. ordered data → flush
 *   2. (journal empty) jsb.s_start/s_sequence; descriptors + logged blocks (+ revokes) → flush
 *   3. commit block → flush                      ← the operation is durable here
 *   4. checkpoint: every logged block home → flush
 *   5. jsb.s_start = 0, s_sequence = tid + 1 → flush  (log empty again)
 * needs_recovery is on disk (set at open) before any commit block. Without
 * a journal: ordered in-place writes (allocation bitmaps first, then the
 * metadata that points at them, then the bitmaps that release blocks).
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

/** Commit through the journal. The transaction must be finalised. */
export async function commitJournaled(dev: BlockDevice, journal: JournalState, tx: Transaction, hooks: CommitHooks = {}): Promise<CommitStats> {
  const bs = tx.fs.blockSize;
  const blocks = [...tx.blocks].map(([fsBlock, data]) => ({ fsBlock, data }));
  const revokes = [...tx.revokes];
  const need = logSpaceNeeded(journal.jsb, blocks.length, revokes.length);
  if (need > Math.floor(journal.logCapacity() / 4))
    throw new Ext4Error('E2BIG', `transaction needs ${need} log blocks, more than a quarter of the journal (${journal.logCapacity()} blocks): split the operation`);
  // 1. ordered data
  const dataBytes = await writeData(dev, tx);
  if (tx.data.length) await dev.flush();
  await hooks.onStep?.('data');
  // 2. log (the log is empty between transactions: start at s_first with tid = s_sequence)
  if (revokes.length && !(journal.jsb.s_feature_incompat & JINCOMPAT.REVOKE)) {
    journal.jsb.s_feature_incompat |= JINCOMPAT.REVOKE;
    journal.jsb = refreshJournalSuperblock(journal.jsb);
  }
  const jsb = journal.jsb;
  const tid = jsb.s_sequence >>> 0;
  const start = jsb.s_first;
  jsb.s_start = start;
  jsb.s_sequence = tid;
  await journal.writeSuperblock();
  const built = buildTransaction({ jsb, tid, startBlock: start, blocks, revokes, commitTime: journal.commitTime() });
  for (const w of built.writes) await journal.writeBlock(w.journalBlock, w.data);
  await dev.flush();
  await hooks.onStep?.('log');
  // 3. commit block: one aligned block-sized write after everything before it is durable
  await journal.writeBlock(built.commitBlock.journalBlock, built.commitBlock.data);
  await dev.flush();
  await hooks.onStep?.('commit');
  // 4. checkpoint
  for (const b of blocks) await dev.write(b.fsBlock * bs, b.data);
  await dev.flush();
  await hooks.onStep?.('checkpoint');
  // 5. empty the log
  jsb.s_start = 0;
  jsb.s_sequence = (tid + 1) >>> 0;
  await journal.writeSuperblock();
  await dev.flush();
  await hooks.onStep?.('done');
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
  for (const [b, data] of tx.blocks) if (!interim.has(b)) await dev.write(b * bs, data);
  await dev.flush();
  for (const [b, data] of tx.blocks) if (interim.has(b)) await dev.write(b * bs, data);
  await dev.flush();
  await hooks.onStep?.('done');
  return { tid: null, metadataBlocks: tx.blocks.size, dataBytes, revokes: 0 };
}

export type { JournalSuperblock };
