/**
 * "The current image of block n", one way for every reader. Views stack:
 *
 *   disk + cache  ←  journal (committed, not yet checkpointed)  ←  replay overlay  ←  transaction
 *
 * Each layer answers from its own images and asks the layer below for the rest, so the
 * allocator, fsmap, the reports and the transaction all see the same bytes: a block the
 * journal holds newer than the disk (a lazy checkpoint), a block replayed from the journal
 * into memory (a read-only open of a fs that needs recovery, or a write open's deferred replay),
 * a block the running transaction changed.
 */
import type { BlockCache } from '../io/cache.js';
import type { BlockDevice } from '../io/device.js';

/** The read interface every layer implements (and a Transaction: its own images first). */
export interface BlockReader {
  /** Block n as this layer sees it (shared: treat as read-only). */
  readBlock(n: number): Promise<Uint8Array>;
}

export interface BlockView extends BlockReader {
  readonly blockSize: number;
  /** Blocks [n, n+count) in one uncached read (bulk scans, file data), every layer's images laid over. */
  readBlocks(n: number, count: number): Promise<Uint8Array>;
  /** The same into `target` (count = target.length / blockSize): no allocation for bulk copies. */
  readBlocksInto(n: number, target: Uint8Array): Promise<void>;
  /** True when block n is held in memory by some layer (a readBlock costs no device I/O). */
  inMemory(n: number): boolean;
}

/** The bottom of the stack: the device, single blocks through the block cache. */
export class DiskView implements BlockView {
  readonly blockSize: number;
  constructor(private readonly device: BlockDevice, private readonly cache: BlockCache) {
    this.blockSize = cache.blockSize;
  }

  readBlock(n: number): Promise<Uint8Array> {
    return this.cache.getBlock(n);
  }

  readBlocks(n: number, count: number): Promise<Uint8Array> {
    return this.device.read(n * this.blockSize, count * this.blockSize);
  }

  async readBlocksInto(n: number, target: Uint8Array): Promise<void> {
    if (this.device.readInto) await this.device.readInto(n * this.blockSize, target);
    else target.set(await this.device.read(n * this.blockSize, target.length));
  }

  inMemory(n: number): boolean {
    return this.cache.has(n);
  }
}

/** Newer images of some blocks over a lower view; `images()` is read at every call (the set comes and goes). */
export class ImageLayer implements BlockView {
  readonly blockSize: number;
  constructor(private readonly lower: BlockView, private readonly images: () => ReadonlyMap<number, Uint8Array> | null | undefined) {
    this.blockSize = lower.blockSize;
  }

  readBlock(n: number): Promise<Uint8Array> {
    const img = this.images()?.get(n);
    return img ? Promise.resolve(img) : this.lower.readBlock(n);
  }

  async readBlocks(n: number, count: number): Promise<Uint8Array> {
    const data = await this.lower.readBlocks(n, count);
    this.layOver(n, count, data);
    return data;
  }

  async readBlocksInto(n: number, target: Uint8Array): Promise<void> {
    await this.lower.readBlocksInto(n, target);
    this.layOver(n, target.length / this.blockSize, target);
  }

  inMemory(n: number): boolean {
    return this.images()?.has(n) === true || this.lower.inMemory(n);
  }

  /** Copy this layer's images of [n, n+count) into `data`, walking whichever is smaller: the run or the set. */
  private layOver(n: number, count: number, data: Uint8Array): void {
    const imgs = this.images();
    if (!imgs || imgs.size === 0) return;
    const bs = this.blockSize;
    if (imgs.size < count) {
      // (forEach: interpreted in a fresh process, for-of allocates an iterator result per entry)
      imgs.forEach((img, b) => {
        if (b >= n && b < n + count) data.set(img, (b - n) * bs);
      });
    } else {
      for (let b = n; b < n + count; b++) {
        const img = imgs.get(b);
        if (img) data.set(img, (b - n) * bs);
      }
    }
  }
}
