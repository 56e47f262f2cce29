/**
 * The volume of an open filesystem: the device, the superblock, the group descriptors and
 * bitmaps, and the block view stack every read goes through (block-view.ts):
 * disk + cache ← journal pending checkpoint ← replay overlay. Knows nothing about files.
 */
import type { BlockDevice } from '../io/device.js';
import { BlockCache } from '../io/cache.js';
import { Ext4Error } from '../errors.js';
import { INCOMPAT, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, checkBlockRun, parseSuperblock, serializeSuperblock, superblockFsSeed, type Superblock } from './superblock.js';
import { descPerBlock, descBlockCount, descriptorBlockLocation, blocksInGroup } from './geometry.js';
import { BG_FLAGS, checkGroupDesc, parseGroupDesc, uninitFlagsHonoured, type GroupDesc } from './group-desc.js';
import { bitmapChecksumMatches, blockBitmapChecksum, computeUninitBlockBitmap, computeUninitInodeBitmap, inodeBitmapChecksum } from './bitmap.js';
import { DiskView, ImageLayer, type BlockView } from './block-view.js';

export class Volume {
  readonly device: BlockDevice;
  readonly sb: Superblock;
  readonly blockSize: number;
  readonly fsSeed: number;
  readonly verify: boolean;
  readonly cache: BlockCache;
  /** Blocks replayed from the journal into memory (a read-only open of a fs that needs recovery, or a write open's deferred replay). */
  overlay: Map<number, Uint8Array> | null = null;
  /** Committed, not yet checkpointed metadata (the live journal's pending map), newer than the disk. */
  pending: ReadonlyMap<number, Uint8Array> | null = null;
  /** disk + cache ← pending checkpoint ← replay overlay. */
  readonly view: BlockView;
  private readonly groupDescs = new Map<number, GroupDesc>();

  constructor(device: BlockDevice, sb: Superblock, opts: { verify: boolean; cacheBytes?: number | undefined }) {
    this.device = device;
    this.sb = sb;
    this.blockSize = sb.blockSize;
    this.fsSeed = superblockFsSeed(sb);
    this.verify = opts.verify;
    this.cache = new BlockCache(device, sb.blockSize, { maxBytes: opts.cacheBytes ?? 64 * 1024 * 1024 });
    const disk = new DiskView(device, this.cache);
    const journal = new ImageLayer(disk, () => this.pending);
    this.view = new ImageLayer(journal, () => this.overlay);
  }

  /**
   * Classic GDT: all descriptor blocks in one contiguous read (128 blocks for 1 TiB), done when
   * the first descriptor is asked for rather than at open — `info` needs none. Nothing is
   * checked by this read (each descriptor is validated when parsed), so deferring it is sound.
   * meta_bg: each block on demand.
   */
  async loadDescriptorBlocks(): Promise<void> {
    if (this.#descPrefetch === undefined) this.#descPrefetch = this.sb.s_feature_incompat & INCOMPAT.META_BG ? null : 'wanted';
  }
  #descPrefetch: 'wanted' | Promise<void> | null | undefined;

  /** The deferred GDT read of loadDescriptorBlocks, started once (concurrent callers share it). */
  #descriptorBlocks(): Promise<void> | null {
    if (this.#descPrefetch === 'wanted') {
      this.#descPrefetch = this.cache.getBlocks(descriptorBlockLocation(this.sb, 0), descBlockCount(this.sb)).then(() => {
        this.#descPrefetch = null; // done: later lookups need not wait on it
      });
    }
    return this.#descPrefetch ?? null;
  }

  // ---------------------------------------------------------------- blocks

  /** A metadata block (cached; treat as read-only). */
  async readBlock(n: number): Promise<Uint8Array> {
    if (!Number.isInteger(n) || n < 0 || n >= this.sb.blocksCount)
      throw new Ext4Error('EFSCORRUPTED', `block ${n} is outside the filesystem (${this.sb.blocksCount} blocks)`, { structure: 'block pointer', location: { kind: 'block', block: n } });
    return this.view.readBlock(n);
  }

  /** Blocks [n, n+count) read directly (not cached), as the view sees them. */
  async readBlocks(n: number, count: number): Promise<Uint8Array> {
    checkBlockRun(this.sb, n, count);
    return this.view.readBlocks(n, count);
  }

  /** The allocation-free variant of readBlocks for bulk copies (`target` is count × blockSize bytes). */
  async readBlocksInto(n: number, count: number, target: Uint8Array): Promise<void> {
    checkBlockRun(this.sb, n, count);
    if (target.length !== count * this.blockSize) throw new Ext4Error('EINVAL', `readDataBlocksInto: ${target.length}-byte buffer for ${count} blocks`);
    await this.view.readBlocksInto(n, target);
  }

  /** Read through replayed journal blocks from now on; the superblock itself may have been journaled. */
  adoptOverlay(blocks: ReadonlyMap<number, Uint8Array>): void {
    const overlay = new Map(blocks);
    this.overlay = overlay;
    this.cache.invalidate();
    this.groupDescs.clear();
    const sbBlock = Math.floor(SUPERBLOCK_OFFSET / this.blockSize);
    const blk = overlay.get(sbBlock);
    if (blk) {
      const off = SUPERBLOCK_OFFSET - sbBlock * this.blockSize;
      Object.assign(this.sb, parseSuperblock(blk.subarray(off, off + SUPERBLOCK_SIZE), { deviceSize: this.device.size, verifyChecksum: this.verify }));
    }
  }

  /** Write the primary superblock in place (outside any transaction) and flush, unless `flush: false` (the caller flushes). */
  async writeSuperblockInPlace(opts: { flush?: boolean } = {}): Promise<void> {
    const bytes = serializeSuperblock(this.sb);
    await this.device.write(SUPERBLOCK_OFFSET, bytes);
    if (opts.flush !== false) await this.device.flush();
    this.cache.invalidate(Math.floor(SUPERBLOCK_OFFSET / this.blockSize));
  }

  // ---------------------------------------------------------------- groups

  async group(g: number): Promise<GroupDesc> {
    if (!Number.isInteger(g) || g < 0 || g >= this.sb.groupCount) throw new Ext4Error('EINVAL', `group ${g} does not exist`);
    const cached = this.groupDescs.get(g);
    if (cached) return cached;
    const gdt = this.#descriptorBlocks();
    if (gdt) await gdt;
    const per = descPerBlock(this.sb);
    const block = await this.readBlock(descriptorBlockLocation(this.sb, Math.floor(g / per)));
    const off = (g % per) * this.sb.descSize;
    const gd = parseGroupDesc(this.sb, g, block, off);
    checkGroupDesc(this.sb, gd, this.fsSeed, this.verify);
    this.groupDescs.set(g, gd);
    return gd;
  }

  /**
   * Decode the descriptors of groups [first, end) in one pass per descriptor
   * block (same validation as group()): bulk scans over thousands of groups
   * (getFreeBlocks, fsmap) otherwise pay an async block lookup per group.
   */
  async loadGroups(first = 0, end = this.sb.groupCount): Promise<void> {
    const per = descPerBlock(this.sb);
    const size = this.sb.descSize;
    first = Math.max(0, first);
    end = Math.min(this.sb.groupCount, end);
    const gdt = first < end ? this.#descriptorBlocks() : null;
    if (gdt) await gdt;
    for (let g = first; g < end; ) {
      const bi = Math.floor(g / per);
      const stop = Math.min(end, (bi + 1) * per);
      let h = g;
      while (h < stop && this.groupDescs.has(h)) h++;
      if (h < stop) {
        const block = await this.readBlock(descriptorBlockLocation(this.sb, bi));
        for (; h < stop; h++) {
          if (this.groupDescs.has(h)) continue;
          const off = (h % per) * size;
          const gd = parseGroupDesc(this.sb, h, block, off);
          checkGroupDesc(this.sb, gd, this.fsSeed, this.verify);
          this.groupDescs.set(h, gd);
        }
      }
      g = stop;
    }
  }

  /** Replace the cached descriptor (used by the write path after it changes one). */
  setGroupDesc(gd: GroupDesc): void {
    this.groupDescs.set(gd.group, gd);
  }

  /** The block bitmap of group g; computed (not read) for BLOCK_UNINIT groups. */
  async blockBitmap(g: number): Promise<Uint8Array> {
    const gd = await this.group(g);
    if (uninitFlagsHonoured(this.sb) && gd.flags & BG_FLAGS.BLOCK_UNINIT) return computeUninitBlockBitmap(this.sb, gd);
    const bm = await this.readBlock(gd.blockBitmap);
    if (this.verify && this.sb.hasMetadataCsum) {
      const c = blockBitmapChecksum(bm, this.fsSeed, this.sb.s_clusters_per_group);
      if (!bitmapChecksumMatches(c, gd.blockBitmapCsum, this.sb.descSize, this.sb.descSize >= 0x3a))
        throw new Ext4Error('EFSBADCRC', `block bitmap checksum mismatch`, { structure: 'block bitmap', location: { kind: 'group', group: g, block: gd.blockBitmap } });
    }
    return bm;
  }

  async inodeBitmap(g: number): Promise<Uint8Array> {
    const gd = await this.group(g);
    if (uninitFlagsHonoured(this.sb) && gd.flags & BG_FLAGS.INODE_UNINIT) return computeUninitInodeBitmap(this.sb);
    const bm = await this.readBlock(gd.inodeBitmap);
    if (this.verify && this.sb.hasMetadataCsum) {
      const c = inodeBitmapChecksum(bm, this.fsSeed, this.sb.s_inodes_per_group);
      if (!bitmapChecksumMatches(c, gd.inodeBitmapCsum, this.sb.descSize, this.sb.descSize >= 0x3c))
        throw new Ext4Error('EFSBADCRC', `inode bitmap checksum mismatch`, { structure: 'inode bitmap', location: { kind: 'group', group: g, block: gd.inodeBitmap } });
    }
    return bm;
  }

  /** Total blocks in group g (the last may be short). */
  blocksInGroup(g: number): number {
    return blocksInGroup(this.sb, g);
  }
}
