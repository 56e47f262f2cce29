/**
 * A transaction gathers every metadata change of one operation as whole
 * block images (with checksums refreshed), plus the ordered data writes that
 * must be durable before the metadata that links them in. Committing is the
 * job of the journal (commit.ts, lib/jbd2) or, without a journal, of ordered
 * in-place writes. Reads inside a transaction see its own changes.
 */
import { Ext4Error } from '../errors.js';
import type { BlockReader } from './block-view.js';
import type { FsContext } from './fs-context.js';
import { serializeGroupDesc, type GroupDesc } from './group-desc.js';
import { parseInode, serializeInode, type Inode } from './inode.js';
import { SUPERBLOCK_OFFSET, serializeSuperblock, type Superblock } from './superblock.js';
import { descPerBlock, descriptorBlockLocation } from './geometry.js';
import { isZeroRange } from './bytes.js';

export interface DataWrite {
  /** First physical block. */
  block: number;
  data: Uint8Array;
}

/** An open filesystem that runs transactions (Filesystem implements it; orphan and temp-file processing take it). */
export interface FsWriter extends FsContext {
  transact<T>(fn: (tx: Transaction) => Promise<T>): Promise<T>;
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
}

/** parseInode of an all-zero slot, per inode size (what a zero slot parses to depends on nothing else). */
const zeroSlotParses = new Map<number, Inode>();

/**
 * What parseInode gives for inode `ino` in an all-zero slot, copied from one parse per inode size
 * (a create's slot: no decode). The zero `raw` is shared, not copied (Inode.raw is replaced, never
 * written in place): one off-heap buffer less per new inode (a typed array past 64 bytes is a
 * malloc and an ArrayBuffer for the GC to sweep).
 */
function zeroSlotInode(sb: Superblock, ino: number): Inode {
  let t = zeroSlotParses.get(sb.s_inode_size);
  if (!t) zeroSlotParses.set(sb.s_inode_size, (t = parseInode(sb, 0, new Uint8Array(sb.s_inode_size), { fsSeed: 0, verifyChecksum: false })));
  return {
    ...t, ino, base: { ...t.base, i_block: new Uint8Array(t.base.i_block.length) }, extra: { ...t.extra },
    atime: { ...t.atime }, ctime: { ...t.ctime }, mtime: { ...t.mtime }, crtime: t.crtime && { ...t.crtime },
  };
}

/**
 * Inode-table start per group, per open filesystem, learned from its inodeLocation answers: a
 * group's table never moves while the filesystem is open, so the slot of any other inode of the
 * group is arithmetic — no awaited lookup and no object per inode write (a bulk import writes
 * each new inode several times). -1: not known yet.
 */
const tableStarts = new WeakMap<FsWriter, Float64Array>();

const DONE: Promise<void> = Promise.resolve();

/** The top of the block view stack (block-view.ts): this transaction's own images, then the filesystem's. */
export class Transaction implements BlockReader {
  readonly fs: FsWriter;
  /** Metadata blocks: final images, in first-touched order. */
  readonly blocks = new Map<number, Uint8Array>();
  /** Ordered data: written and flushed before the commit. */
  readonly data: DataWrite[] = [];
  /** Group descriptors changed by this transaction (serialised at finalise). */
  readonly groups = new Map<number, GroupDesc>();
  /** Blocks freed by this transaction: not reusable until it is durable (their bits are cleared at finalise). */
  readonly pendingFree: { start: number; length: number }[] = [];
  /** Superblock counters delta. */
  freeBlocksDelta = 0;
  freeInodesDelta = 0;
  /** Extra superblock changes (feature bits etc.) applied at finalise. */
  sbEdits: ((sb: Superblock) => void)[] = [];
  /** Blocks revoked (freed while possibly in the live log). */
  readonly revokes = new Set<number>();
  finalised = false;
  /**
   * Checksums kept in a descriptor (the bitmaps'), refreshed once at finalise rather than at every
   * bit flipped: a bulk import flips bits of the same few bitmaps thousands of times. Keyed by the
   * bitmap's block; the refresh reads this transaction's image of it.
   */
  readonly #descriptorSums = new Map<number, (image: Uint8Array) => void>();
  /**
   * Checksums kept in the block itself (a directory leaf's tail), refreshed at finalise or as soon
   * as anyone reads the block through readBlock (a reader may verify it); the editor that deferred
   * it reads its own image through ownBlock, which does not refresh.
   */
  readonly #blockSums = new Map<number, (image: Uint8Array) => void>();

  /**
   * Inodes written with `writeInode(inode, {late: true})`, serialised into their block later: at
   * the next read of that block or of an inode in it, or at finalise (the kernel's in-memory inode,
   * marked dirty). A parent directory stamped by every create in it is then serialised once per
   * transaction, not once per create. Per inode-table block: the inodes waiting.
   */
  readonly #lateByBlock = new Map<number, Inode[]>();
  /** ino → the inode-table block of a late inode (its offset in it: #slotOffset). */
  readonly #lateAt = new Map<number, number>();
  /**
   * The object last written for an inode in this transaction (late or not): what
   * `writtenInode` gives, so a bulk caller keeps editing the same object instead of parsing again.
   */
  readonly #written = new Map<number, Inode>();
  /** Inode-table block → the inodes of #written in it (forgotten when anyone takes the block to edit its bytes directly). */
  readonly #writtenIn = new Map<number, number[]>();

  readonly #tableStart: Float64Array;

  constructor(fs: FsWriter) {
    this.fs = fs;
    let t = tableStarts.get(fs);
    if (!t || t.length !== fs.sb.groupCount) tableStarts.set(fs, (t = new Float64Array(fs.sb.groupCount).fill(-1)));
    this.#tableStart = t;
  }

  /** Inode `ino`'s inode-table block when its group's table start is known (see tableStarts), else -1. */
  #knownSlotBlock(ino: number): number {
    const sb = this.fs.sb;
    if (!(ino >= 1 && ino <= sb.s_inodes_count && Number.isInteger(ino))) return -1;
    const ipg = sb.s_inodes_per_group;
    const start = this.#tableStart[Math.floor((ino - 1) / ipg)]!;
    return start < 0 ? -1 : start + Math.floor((((ino - 1) % ipg) * sb.s_inode_size) / this.fs.blockSize);
  }

  /** Byte offset of inode `ino`'s slot in its table block. */
  #slotOffset(ino: number): number {
    const sb = this.fs.sb;
    return (((ino - 1) % sb.s_inodes_per_group) * sb.s_inode_size) % this.fs.blockSize;
  }

  /** Where inode `ino` lives when its group's table start is known (see tableStarts), without an await; else null. */
  knownInodeLocation(ino: number): { block: number; offset: number } | null {
    const block = this.#knownSlotBlock(ino);
    return block < 0 ? null : { block, offset: this.#slotOffset(ino) };
  }

  /** Where inode `ino` lives (fs.inodeLocation, its group's table start noted). */
  async inodeLocation(ino: number): Promise<{ block: number; offset: number }> {
    const known = this.knownInodeLocation(ino);
    if (known) return known;
    const at = await this.fs.inodeLocation(ino);
    const sb = this.fs.sb;
    this.#tableStart[Math.floor((ino - 1) / sb.s_inodes_per_group)] = at.block - Math.floor((((ino - 1) % sb.s_inodes_per_group) * sb.s_inode_size) / this.fs.blockSize);
    return at;
  }

  /** Block n as this transaction sees it: its own image if it changed it, else the filesystem's (treat as read-only). */
  readBlock(n: number): Promise<Uint8Array> {
    const d = this.blocks.get(n);
    if (d && this.#blockSums.size !== 0) this.#refreshBlockSum(n, d);
    if (d && this.#lateByBlock.size !== 0) this.#flushLate(n, d);
    return d ? Promise.resolve(d) : this.fs.readBlock(n);
  }

  /** Serialise the late inodes of block n into its image. */
  #flushLate(n: number, image: Uint8Array): void {
    const list = this.#lateByBlock.get(n);
    if (!list) return;
    this.#lateByBlock.delete(n);
    for (const inode of list) {
      this.#lateAt.delete(inode.ino);
      image.set(serializeInode(this.fs.sb, inode, this.fs.fsSeed), this.#slotOffset(inode.ino));
    }
  }

  /** Every late inode serialised (finalise). */
  flushInodes(): void {
    for (const n of [...this.#lateByBlock.keys()]) this.#flushLate(n, this.blocks.get(n)!);
  }

  /** Forget what was written for inode `ino` (its slot is being handed out again: allocateInode). */
  forgetInode(ino: number): void {
    this.#written.delete(ino); // (its #writtenIn entry may stay: forgetting an ino twice is harmless)
    const at = this.#lateAt.get(ino);
    if (at === undefined) return;
    this.#lateAt.delete(ino);
    const list = this.#lateByBlock.get(at)!;
    list.splice(list.findIndex((x) => x.ino === ino), 1);
    if (list.length === 0) this.#lateByBlock.delete(at);
  }

  /** The object last written for inode `ino` in this transaction, if any (see #written): its current state. */
  writtenInode(ino: number): Inode | undefined {
    return this.#written.get(ino);
  }

  /** Refresh bitmap `block`'s descriptor checksum at finalise (one refresh per bitmap: later ones for it are the same). */
  deferDescriptorChecksum(block: number, refresh: (image: Uint8Array) => void): void {
    if (!this.#descriptorSums.has(block)) this.#descriptorSums.set(block, refresh);
  }

  /** Whether block n's descriptor checksum is already deferred (callers skip building the closure). */
  hasDeferredDescriptorChecksum(block: number): boolean {
    return this.#descriptorSums.has(block);
  }

  /** Refresh the checksum inside block n (this transaction's image) before anyone else reads it, at the latest at finalise. */
  deferBlockChecksum(n: number, refresh: (image: Uint8Array) => void): void {
    this.#blockSums.set(n, refresh);
  }

  #refreshBlockSum(n: number, image: Uint8Array): void {
    const f = this.#blockSums.get(n);
    if (!f) return;
    this.#blockSums.delete(n);
    f(image);
  }

  /** Run every deferred checksum refresh (finalise). */
  flushChecksums(): void {
    // (forEach: interpreted in a fresh process, for-of allocates an iterator result per entry)
    this.#blockSums.forEach((f, n) => {
      const b = this.blocks.get(n);
      if (b) f(b);
    });
    this.#blockSums.clear();
    this.#descriptorSums.forEach((f, n) => {
      const b = this.blocks.get(n);
      if (b) f(b);
    });
    this.#descriptorSums.clear();
  }

  /** This transaction's own (mutable) image of block n if it holds one already, else undefined: no read (hot loops that can skip an await). */
  ownBlock(n: number): Uint8Array | undefined {
    const d = this.blocks.get(n);
    if (d && this.#lateByBlock.size !== 0) this.#flushLate(n, d);
    if (this.#writtenIn.size !== 0) this.#forgetWritten(n);
    return d;
  }

  /** Block n's bytes may be edited directly: the objects last written for its inodes may no longer be their state. */
  #forgetWritten(n: number): void {
    const inos = this.#writtenIn.get(n);
    if (!inos) return;
    this.#writtenIn.delete(n);
    for (const ino of inos) this.#written.delete(ino);
  }

  /** A mutable copy of metadata block n as of this transaction. */
  async block(n: number): Promise<Uint8Array> {
    const d = this.blocks.get(n);
    if (this.#writtenIn.size !== 0) this.#forgetWritten(n);
    if (d) {
      if (this.#lateByBlock.size !== 0) this.#flushLate(n, d);
      return d;
    }
    const b = (await this.fs.readBlock(n)).slice();
    this.blocks.set(n, b);
    return b;
  }

  /**
   * Block n's mutable image for writing one inode slot that no late inode occupies (allocating a
   * free slot, writing an inode): the late inodes of the block stay late.
   */
  async slotBlock(n: number): Promise<Uint8Array> {
    const d = this.slotBlockNow(n);
    if (d) return d;
    const b = (await this.fs.readBlock(n)).slice();
    this.blocks.set(n, b);
    return b;
  }

  /** slotBlock's answer without an await when this transaction holds block n already, else undefined. */
  slotBlockNow(n: number): Uint8Array | undefined {
    return this.blocks.get(n);
  }

  /** Set a block's full new image (e.g. a freshly built extent node). */
  setBlock(n: number, data: Uint8Array): void {
    if (data.length !== this.fs.blockSize) throw new Ext4Error('EINVAL', `block image of ${data.length} bytes`);
    // A new image: whatever checksum was deferred for the old one is its new owner's business.
    this.#blockSums.delete(n);
    const old = this.blocks.get(n);
    if (old && this.#lateByBlock.size !== 0) this.#flushLate(n, old);
    if (this.#writtenIn.size !== 0) this.#forgetWritten(n);
    this.blocks.set(n, data);
  }

  /** Queue ordered data for newly allocated blocks. */
  writeData(block: number, data: Uint8Array): void {
    if (data.length % this.fs.blockSize !== 0) throw new Ext4Error('EINVAL', 'data writes must be whole blocks');
    this.data.push({ block, data });
  }

  /** Group descriptor as of this transaction (a private copy once touched). */
  async group(g: number): Promise<GroupDesc> {
    const d = this.groups.get(g);
    if (d) return d;
    const gd = await this.fs.group(g);
    const copy = { ...gd, raw: gd.raw.slice() };
    this.groups.set(g, copy);
    return copy;
  }

  async readInode(ino: number): Promise<Inode> {
    const { block, offset } = await this.inodeLocation(ino);
    const data = await this.readBlock(block);
    return parseInode(this.fs.sb, ino, data.subarray(offset, offset + this.fs.sb.s_inode_size), { fsSeed: this.fs.fsSeed, verifyChecksum: this.fs.verify });
  }

  /**
   * Inode-table block `block` as this transaction sees it, to read inode `ino`'s slot: the late
   * inodes of the block stay late unless `ino` is one of them (readBlock would serialise them all;
   * allocateInode looks at a free slot per create).
   */
  slotImage(ino: number, block: number): Promise<Uint8Array> {
    const d = this.slotImageNow(ino, block);
    return d ? Promise.resolve(d) : this.readBlock(block);
  }

  /** slotImage's answer without an await when this transaction holds the block (and `ino` is not late in it), else undefined. */
  slotImageNow(ino: number, block: number): Uint8Array | undefined {
    const d = this.blocks.get(block);
    return d && !this.#lateAt.has(ino) ? d : undefined;
  }

  /**
   * The inode in a slot this transaction just allocated and zeroed (allocateInode): parsed
   * without a checksum test (a zeroed slot has none) and without serialising the late inodes of
   * its block first (no late inode is in a free slot: allocateInode forgot it).
   */
  async readNewInode(ino: number): Promise<Inode> {
    const now = this.readNewInodeNow(ino);
    if (now) return now;
    const { block, offset } = await this.inodeLocation(ino);
    return this.#newInodeIn(ino, await this.slotImage(ino, block), offset);
  }

  /** readNewInode without an await when the slot's block is known and held by this transaction (allocateInode just zeroed it there), else null. */
  readNewInodeNow(ino: number): Inode | null {
    const block = this.#knownSlotBlock(ino);
    const data = block >= 0 ? this.slotImageNow(ino, block) : undefined;
    return data ? this.#newInodeIn(ino, data, this.#slotOffset(ino)) : null;
  }

  #newInodeIn(ino: number, data: Uint8Array, offset: number): Inode {
    const sb = this.fs.sb;
    return isZeroRange(data, offset, offset + sb.s_inode_size)
      ? zeroSlotInode(sb, ino)
      : parseInode(sb, ino, data.subarray(offset, offset + sb.s_inode_size), { fsSeed: this.fs.fsSeed, verifyChecksum: false });
  }

  /**
   * Serialise an inode (checksum refreshed) into its inode-table block. With `late`, the inode is
   * serialised later (see #lateByBlock) from the same object: the caller must not change the
   * object afterwards unless that change is to be written too (it then writes it again).
   */
  writeInode(inode: Inode, opts?: { late?: boolean }): Promise<void> {
    return this.writeInodeNow(inode, opts) ? DONE : this.#writeInodeSlow(inode, opts);
  }

  /** writeInode done without an await when the slot's place and block are at hand (the usual case in a bulk import): true; false: nothing done (call writeInode). */
  writeInodeNow(inode: Inode, opts?: { late?: boolean }): boolean {
    const block = this.#knownSlotBlock(inode.ino);
    const image = block >= 0 ? this.blocks.get(block) : undefined;
    if (image === undefined) return false;
    this.#writeInodeAt(inode, opts, block, this.#slotOffset(inode.ino), image);
    return true;
  }

  async #writeInodeSlow(inode: Inode, opts: { late?: boolean } | undefined): Promise<void> {
    const { block, offset } = await this.inodeLocation(inode.ino);
    this.#writeInodeAt(inode, opts, block, offset, await this.slotBlock(block));
  }

  #writeInodeAt(inode: Inode, opts: { late?: boolean } | undefined, block: number, offset: number, image: Uint8Array): void {
    if (!this.#written.has(inode.ino)) {
      const inos = this.#writtenIn.get(block);
      if (inos) inos.push(inode.ino);
      else this.#writtenIn.set(block, [inode.ino]);
    }
    this.#written.set(inode.ino, inode);
    if (this.#lateAt.has(inode.ino)) {
      // Written again: the earlier late object is superseded (the last write wins, as before).
      const list = this.#lateByBlock.get(block)!;
      const i = list.findIndex((x) => x.ino === inode.ino);
      if (opts?.late) {
        list[i] = inode;
        return;
      }
      list.splice(i, 1);
      if (list.length === 0) this.#lateByBlock.delete(block);
      this.#lateAt.delete(inode.ino);
    } else if (opts?.late) {
      const list = this.#lateByBlock.get(block);
      if (list) list.push(inode);
      else this.#lateByBlock.set(block, [inode]);
      this.#lateAt.set(inode.ino, block);
      return;
    }
    image.set(serializeInode(this.fs.sb, inode, this.fs.fsSeed), offset);
  }

  /** Free blocks once this transaction commits (bits cleared at finalise, never reused inside it). */
  free(start: number, length: number): void {
    if (length > 0) this.pendingFree.push({ start, length });
  }

  /**
   * A block this transaction both changed and freed is dead: logging its image would let the
   * checkpoint write it over whatever reuses the block later (the kernel's jbd2_journal_forget
   * drops a freed metadata buffer from the running transaction; the journal then revokes any
   * older copy, see Journal.commit's `freed`).
   */
  private dropFreedImages(): void {
    if (this.blocks.size === 0 || this.pendingFree.length === 0) return;
    const runs = this.pendingFree.slice().sort((a, b) => a.start - b.start);
    // (indexed over a copy of the keys: interpreted in a fresh process, for-of allocates an iterator result per element)
    const keys = [...this.blocks.keys()];
    for (let k = 0; k < keys.length; k++) {
      const n = keys[k]!;
      let lo = 0, hi = runs.length - 1, hit = false;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1, r = runs[mid]!;
        if (n < r.start) hi = mid - 1;
        else if (n >= r.start + r.length) lo = mid + 1;
        else { hit = true; break; }
      }
      if (hit) this.blocks.delete(n);
    }
  }

  isEmpty(): boolean {
    return this.blocks.size === 0 && this.groups.size === 0 && this.data.length === 0 && this.pendingFree.length === 0 && this.freeBlocksDelta === 0 && this.freeInodesDelta === 0 && this.sbEdits.length === 0;
  }

  /**
   * Fold descriptor and superblock changes into their blocks. After this the
   * transaction is the exact set of block images to log. Returns the new superblock.
   */
  async finalise(applyFrees: (tx: Transaction) => Promise<void>): Promise<Superblock> {
    if (this.finalised) throw new Error('transaction finalised twice');
    this.flushInodes();
    await applyFrees(this);
    this.flushChecksums();
    const fs = this.fs;
    const sb = fs.sb;
    const per = descPerBlock(sb);
    for (const gd of this.groups.values()) {
      const raw = serializeGroupDesc(sb, gd, fs.fsSeed);
      const blk = await this.block(descriptorBlockLocation(sb, Math.floor(gd.group / per)));
      blk.set(raw, (gd.group % per) * sb.descSize);
    }
    const nsb: Superblock = { ...sb, raw: sb.raw.slice() };
    nsb.freeBlocksCount = sb.freeBlocksCount + this.freeBlocksDelta;
    nsb.s_free_inodes_count = sb.s_free_inodes_count + this.freeInodesDelta;
    if (nsb.freeBlocksCount < 0 || nsb.s_free_inodes_count < 0) throw new Ext4Error('EFSCORRUPTED', 'superblock free counts would go negative', { structure: 'superblock' });
    const now = fs.now().sec;
    nsb.s_wtime = now % 2 ** 32;
    nsb.s_wtime_hi = Math.floor(now / 2 ** 32) & 0xff;
    for (const edit of this.sbEdits) edit(nsb);
    const bytes = serializeSuperblock(nsb);
    const sbBlock = Math.floor(SUPERBLOCK_OFFSET / fs.blockSize);
    const blk = await this.block(sbBlock);
    blk.set(bytes, SUPERBLOCK_OFFSET - sbBlock * fs.blockSize);
    this.dropFreedImages();
    this.finalised = true;
    return nsb;
  }
}
