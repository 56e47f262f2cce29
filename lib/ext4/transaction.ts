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

  constructor(fs: FsWriter) {
    this.fs = fs;
  }

  /** Block n as this transaction sees it: its own image if it changed it, else the filesystem's (treat as read-only). */
  readBlock(n: number): Promise<Uint8Array> {
    const d = this.blocks.get(n);
    return d ? Promise.resolve(d) : this.fs.readBlock(n);
  }

  /** This transaction's own (mutable) image of block n if it holds one already, else undefined: no read (hot loops that can skip an await). */
  ownBlock(n: number): Uint8Array | undefined {
    return this.blocks.get(n);
  }

  /** A mutable copy of metadata block n as of this transaction. */
  async block(n: number): Promise<Uint8Array> {
    const d = this.blocks.get(n);
    if (d) return d;
    const b = (await this.fs.readBlock(n)).slice();
    this.blocks.set(n, b);
    return b;
  }

  /** Set a block's full new image (e.g. a freshly built extent node). */
  setBlock(n: number, data: Uint8Array): void {
    if (data.length !== this.fs.blockSize) throw new Ext4Error('EINVAL', `block image of ${data.length} bytes`);
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
    const { block, offset } = await this.fs.inodeLocation(ino);
    const data = await this.readBlock(block);
    return parseInode(this.fs.sb, ino, data.subarray(offset, offset + this.fs.sb.s_inode_size), { fsSeed: this.fs.fsSeed, verifyChecksum: this.fs.verify });
  }

  /** Serialise an inode (checksum refreshed) into its inode-table block. */
  async writeInode(inode: Inode): Promise<void> {
    const raw = serializeInode(this.fs.sb, inode, this.fs.fsSeed);
    const { block, offset } = await this.fs.inodeLocation(inode.ino);
    (await this.block(block)).set(raw, offset);
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
    const runs = [...this.pendingFree].sort((a, b) => a.start - b.start);
    for (const n of [...this.blocks.keys()]) {
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
    await applyFrees(this);
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
