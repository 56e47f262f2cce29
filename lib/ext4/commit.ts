/**
 * Committing a Transaction: the ext4 side. The jbd2 layer (lib/jbd2/journal.ts)
 * logs block images and checkpoints them; this module turns a Transaction into
 * what it logs — final block images, revokes, the ranges it frees, ordered data
 * and data written after the commit — and, without a journal, writes the
 * metadata in place in an order a crash can only leave leaked blocks behind:
 * allocation bitmaps first, with the blocks the transaction allocated (new
 * tree and indirect blocks: nothing on disk points at them yet), then the
 * inodes and trees that release blocks
 * another inode acquires, then the rest of the metadata, then the bitmaps that
 * release blocks; an in-place tree rewrite can still be torn, so a crash needs
 * e2fsck (the fs is marked not clean while a write session is open).
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
import { Journal, type CommitHooks, type HomeBlocks } from '../jbd2/journal.js';
import type { JournalIO } from '../jbd2/device.js';
import { parseJournalSuperblock, type JournalSuperblock } from '../jbd2/format.js';
import { journalOnInode } from './journal-inode.js';
import { bitOfBlock, groupOfBlock } from './geometry.js';
import { testBit } from './bitmap.js';
import type { DataWrite, Transaction } from './transaction.js';

/** The live internal journal while a fs is open for writing: the jbd2 Journal plus where it lives. */
export class JournalState extends Journal {
  /** The journal inode's map (journal block n = logical block n): the allocator never hands these out. */
  readonly map: readonly Extent[];

  constructor(io: JournalIO, home: HomeBlocks, jsb: JournalSuperblock, map: readonly Extent[]) {
    super(io, home, jsb);
    this.map = map;
  }
}

/** Load the internal journal: journal block n is logical block n of inode `jino` (mapped by `map`). */
export async function loadJournal(device: BlockDevice, blockSize: number, map: readonly Extent[], jino: number): Promise<JournalState> {
  const io = journalOnInode(device, blockSize, map, jino);
  const home: HomeBlocks = { writeBlock: (b, data) => device.write(b * blockSize, data), writeBlocks: (b, data) => device.write(b * blockSize, data) };
  return new JournalState(io, home, parseJournalSuperblock(await io.readBlock(0)), map);
}

export type { CommitHooks };

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
 * Commit through the journal (the transaction must be finalised): its block
 * images are logged, its frees revoke older copies in the live log, its
 * ordered data (tx.data, then produceOrderedData's producers) is written once
 * the journal accepted its size, and writeAfterCommit's data once it is durable.
 * `beforeLog` (the write session's start flush) is awaited after the ordered data is
 * issued, before the journal superblock and the log.
 */
export async function commitJournaled(dev: BlockDevice, journal: Journal, tx: Transaction, hooks: CommitHooks = {}, beforeLog?: () => Promise<void>): Promise<CommitStats> {
  const r = await journal.commit(
    {
      blocks: tx.blocks,
      revokes: tx.revokes,
      freed: tx.pendingFree,
      ordered: () => writeData(dev, tx),
      afterCommit: () => writeAfter(dev, tx),
      ...(beforeLog ? { beforeLog } : {}),
      now: tx.fs.now(),
    },
    hooks,
  );
  for (let i = 0; i < r.revokedFromLog.length; i++) tx.revokes.add(r.revokedFromLog[i]!);
  return { tid: r.tid, metadataBlocks: r.blocks, dataBytes: r.dataBytes, revokes: r.revokes };
}

export interface UnjournaledPlan {
  interim: Map<number, Uint8Array>;
  /** Metadata blocks this transaction allocated (written with the interim bitmaps). */
  fresh: Set<number>;
  /** Block bitmaps written last. */
  late: Set<number>;
  /** Step 3's images. */
  early: Map<number, Uint8Array>;
}

/**
 * Everything commitUnjournaled reads, read (and verified: the committed bitmaps' checksums) before
 * anything is written, so that a refusal leaves the image untouched.
 */
export async function planUnjournaled(tx: Transaction, interim: Map<number, Uint8Array>): Promise<UnjournaledPlan> {
  const fresh = await freshBlocks(tx, interim);
  const late = new Set(interim.keys());
  for (const gd of tx.groups.values()) if (tx.blocks.has(gd.blockBitmap)) late.add(gd.blockBitmap);
  const early = await releasingImages(tx, late);
  return { interim, fresh, late, early };
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
export async function commitUnjournaled(dev: BlockDevice, tx: Transaction, plan: UnjournaledPlan, hooks: CommitHooks = {}): Promise<CommitStats> {
  const bs = tx.fs.blockSize;
  const { interim, fresh, late, early } = plan;
  const dataBytes = await writeData(dev, tx);
  await dev.flush();
  await hooks.onStep?.('data');
  // Blocks this transaction allocated (new tree or indirect blocks) go home with the bitmaps
  // that claim them, before anything points at them: a lost write must never leave an inode
  // or index pointing at a block that still holds whatever was there before.
  for (const [b, data] of interim) await dev.write(b * bs, data);
  for (const b of fresh) await dev.write(b * bs, tx.blocks.get(b)!);
  if (interim.size || fresh.size) await dev.flush();
  // Every block bitmap the transaction changed goes last (`late`), also those that only
  // release blocks (not in `interim`: their on-disk image is the pre-free
  // state): a bitmap that frees blocks must not reach the disk before the
  // metadata that stops pointing at them, or a crash leaves blocks marked free
  // while still in use — handed out again, they end up owned twice.
  for (const [b, data] of early) await dev.write(b * bs, data);
  if (early.size) await dev.flush();
  for (const [b, data] of tx.blocks) if (!late.has(b) && !fresh.has(b) && early.get(b) !== data) await dev.write(b * bs, data);
  await dev.flush();
  for (const [b, data] of tx.blocks) if (late.has(b)) await dev.write(b * bs, data);
  await dev.flush();
  const afterBytes = await writeAfter(dev, tx);
  await hooks.onStep?.('done');
  return { tid: null, metadataBlocks: tx.blocks.size, dataBytes: dataBytes + afterBytes, revokes: 0 };
}

/** The transaction's metadata blocks that are free in the committed block bitmaps (allocated by it). */
async function freshBlocks(tx: Transaction, interim: ReadonlyMap<number, Uint8Array>): Promise<Set<number>> {
  const out = new Set<number>();
  const sb = tx.fs.sb;
  for (const b of tx.blocks.keys()) {
    if (interim.has(b)) continue;
    const g = groupOfBlock(sb, b);
    if (g < 0 || g >= sb.groupCount) continue;
    if (!testBit(await tx.fs.blockBitmap(g), bitOfBlock(sb, b))) out.add(b);
  }
  return out;
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
