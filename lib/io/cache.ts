/**
 * BlockCache: a read cache of fixed-size blocks over a BlockDevice.
 *
 * - LRU (reordering starts once the cache is half full), bounded by `maxBytes` whatever the image size. Each cached block is
 *   its own allocation (a copy out of the device read), so a retained block
 *   never pins a larger read buffer and the bound is honest. (Views into the read buffer instead,
 *   with the pinned buffers counted, measured no less CPU for an `rm -r` of 20,000 files: the
 *   fresh read buffer's page faults dominate, not the copy.)
 * - Read-ahead: a miss reads the wanted block plus up to `readAhead`
 *   following blocks in the same device read (clipped to the device end and
 *   stopped at the first block already cached or being read), so walking
 *   metadata issues few, large reads.
 * - Concurrent requests for a block that is being read share that read.
 * - The cache does not write. After writing blocks to the device yourself,
 *   call `put` (or `invalidate`) so later reads see the new contents.
 *
 * Ownership: `getBlock` returns the cached array itself — treat it as
 * READ-ONLY (copy it before modifying; mutating it would corrupt the cache
 * without touching the device). `getBlocks` returns a fresh array the
 * caller owns.
 */
import { Ext4Error } from '../errors.js';
import type { BlockDevice } from './device.js';

export interface BlockCacheOptions {
  /** Upper bound on cached bytes. Default 64 MiB. At least one block is always cached. */
  maxBytes?: number;
  /** Extra blocks read after a missed block, in the same device read. Default 32. */
  readAhead?: number;
}

export interface BlockCacheStats {
  /** Device reads issued. */
  reads: number;
  /** Bytes requested from the device. */
  bytesRead: number;
  /** Block requests served without a new device read (cached or joined an in-flight read). */
  hits: number;
  /** Block requests that needed a device read. */
  misses: number;
  /** Blocks evicted by the LRU bound. */
  evictions: number;
}

interface Deferred {
  promise: Promise<Uint8Array>;
  resolve(v: Uint8Array): void;
  reject(e: unknown): void;
}

function deferred(): Deferred {
  let resolve!: (v: Uint8Array) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<Uint8Array>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Read-ahead blocks may fail with nobody waiting: never an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

export class BlockCache {
  readonly device: BlockDevice;
  readonly blockSize: number;
  /** Whole blocks on the device (a trailing partial block is not addressable). */
  readonly blockCount: number;
  /** Capacity in blocks (maxBytes / blockSize, at least 1). */
  readonly maxBlocks: number;
  readonly readAhead: number;
  readonly stats: BlockCacheStats = { reads: 0, bytesRead: 0, hits: 0, misses: 0, evictions: 0 };

  /** Cached blocks; Map iteration order is LRU order (oldest first). */
  private readonly blocks = new Map<number, Uint8Array>();
  /** Blocks being read; a read only inserts a block it still owns here. */
  private readonly pending = new Map<number, Deferred>();

  constructor(device: BlockDevice, blockSize: number, options: BlockCacheOptions = {}) {
    const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    const readAhead = options.readAhead ?? 32;
    if (!Number.isSafeInteger(blockSize) || blockSize <= 0) throw new Ext4Error('EINVAL', `invalid cache block size ${blockSize}`, { structure: device.name });
    if (!(maxBytes >= 0)) throw new Ext4Error('EINVAL', `invalid cache size ${maxBytes}`, { structure: device.name });
    if (!Number.isSafeInteger(readAhead) || readAhead < 0) throw new Ext4Error('EINVAL', `invalid read-ahead ${readAhead}`, { structure: device.name });
    this.device = device;
    this.blockSize = blockSize;
    this.blockCount = Math.floor(device.size / blockSize);
    this.maxBlocks = Math.max(1, Math.floor(maxBytes / blockSize));
    // A single read never brings in more than fits: it would evict itself.
    this.readAhead = Math.min(readAhead, this.maxBlocks - 1);
  }

  /** Number of blocks currently cached. */
  get cachedBlocks(): number {
    return this.blocks.size;
  }

  /** Bytes currently held by cached blocks (≤ maxBlocks × blockSize). */
  get cachedBytes(): number {
    return this.blocks.size * this.blockSize;
  }

  /** Is block n cached (not counting in-flight reads)? Does not touch LRU order. */
  has(n: number): boolean {
    return this.blocks.has(n);
  }

  resetStats(): void {
    Object.assign(this.stats, { reads: 0, bytesRead: 0, hits: 0, misses: 0, evictions: 0 });
  }

  private checkBlocks(n: number, count: number): void {
    if (!Number.isSafeInteger(n) || n < 0 || !Number.isSafeInteger(count) || count < 0) {
      throw new Ext4Error('EINVAL', `invalid block range start=${n} count=${count}`, { structure: this.device.name });
    }
    if (n + count > this.blockCount) {
      throw new Ext4Error('EIO', `block beyond the end of the device (${this.blockCount} blocks of ${this.blockSize} bytes)`, {
        structure: this.device.name,
        location: { kind: 'block', block: n, count },
      });
    }
  }

  /**
   * Mark block n most recently used. While the cache is at most half full nothing can be evicted
   * soon, so the (costly, Map delete + re-insert) reordering is skipped: a block hit then is
   * reordered by its next hit once the cache is more than half full, long before the first
   * eviction. Metadata walks hit the same few blocks tens of thousands of times.
   */
  private touch(n: number, block: Uint8Array): void {
    if (this.blocks.size * 2 <= this.maxBlocks) return;
    this.blocks.delete(n);
    this.blocks.set(n, block);
  }

  private insert(n: number, block: Uint8Array): void {
    this.blocks.delete(n);
    this.blocks.set(n, block);
    while (this.blocks.size > this.maxBlocks) {
      const oldest = this.blocks.keys().next().value as number;
      this.blocks.delete(oldest);
      this.stats.evictions++;
    }
  }

  private free(b: number): boolean {
    return !this.blocks.has(b) && !this.pending.has(b);
  }

  /**
   * Start one device read covering [first, first+count), taking ownership of
   * every block in it that is neither cached nor already being read. The span
   * is trimmed to the first..last owned block. Synchronous up to issuing the read.
   */
  private startRead(first: number, count: number): void {
    const owned: Array<[number, Deferred]> = [];
    for (let b = first; b < first + count; b++) {
      if (!this.free(b)) continue;
      const d = deferred();
      this.pending.set(b, d);
      owned.push([b, d]);
    }
    if (owned.length === 0) return;
    const lo = owned[0]![0];
    const hi = owned[owned.length - 1]![0] + 1;
    const bs = this.blockSize;
    this.stats.reads++;
    this.stats.bytesRead += (hi - lo) * bs;
    let io: Promise<Uint8Array>;
    try {
      io = this.device.read(lo * bs, (hi - lo) * bs);
    } catch (e) {
      io = Promise.reject(e);
    }
    io.then(
      (buf) => {
        for (const [b, d] of owned) {
          const block = buf.slice((b - lo) * bs, (b - lo + 1) * bs);
          if (this.pending.get(b) === d) {
            // Still ours: not invalidated or overwritten by put() meanwhile.
            this.pending.delete(b);
            this.insert(b, block);
          }
          d.resolve(block);
        }
      },
      (err: unknown) => {
        for (const [b, d] of owned) {
          if (this.pending.get(b) === d) this.pending.delete(b);
          d.reject(err);
        }
      },
    );
  }

  /**
   * Group missing blocks (ascending) into runs; a gap of at most `maxGap`
   * non-missing blocks is read through rather than split into two reads.
   */
  private runs(missing: number[], maxGap: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (const b of missing) {
      const last = out[out.length - 1];
      if (last && b - last[1] <= maxGap) last[1] = b + 1;
      else out.push([b, b + 1]);
    }
    return out;
  }

  /**
   * Block n (blockSize bytes). The returned array is the cached copy:
   * READ-ONLY for the caller. Throws EIO for a block past the device end.
   */
  getBlock(n: number): Promise<Uint8Array> {
    try {
      this.checkBlocks(n, 1);
    } catch (e) {
      return Promise.reject(e);
    }
    const hit = this.blocks.get(n);
    if (hit) {
      this.stats.hits++;
      this.touch(n, hit);
      return Promise.resolve(hit);
    }
    const inflight = this.pending.get(n);
    if (inflight) {
      this.stats.hits++;
      return inflight.promise;
    }
    this.stats.misses++;
    const limit = Math.min(this.blockCount, n + 1 + this.readAhead);
    let end = n + 1;
    while (end < limit && this.free(end)) end++;
    this.startRead(n, end - n);
    return this.pending.get(n)!.promise;
  }

  /**
   * Blocks n..n+count-1 as one fresh contiguous array (the caller owns it).
   * Missing blocks are fetched in as few device reads as possible: runs of
   * misses separated by at most `readAhead` cached blocks are read as one,
   * and a run ending at the last requested block gets read-ahead. A request
   * larger than the whole cache is read in one device read and not cached
   * (cached blocks still take precedence over the device's bytes).
   */
  async getBlocks(n: number, count: number): Promise<Uint8Array> {
    this.checkBlocks(n, count);
    const bs = this.blockSize;
    const out = new Uint8Array(count * bs);
    if (count === 0) return out;

    if (count > this.maxBlocks) return this.readUncached(n, count, out);

    const waits: Array<Promise<void>> = [];
    const missing: number[] = [];
    for (let i = 0; i < count; i++) {
      const b = n + i;
      const hit = this.blocks.get(b);
      if (hit) {
        this.stats.hits++;
        this.touch(b, hit);
        out.set(hit, i * bs);
        continue;
      }
      const inflight = this.pending.get(b);
      if (inflight) {
        this.stats.hits++;
        waits.push(inflight.promise.then((blk) => out.set(blk, i * bs)));
        continue;
      }
      missing.push(b);
    }
    if (missing.length > 0) {
      this.stats.misses += missing.length;
      const runs = this.runs(missing, this.readAhead);
      const lastRun = runs[runs.length - 1]!;
      if (lastRun[1] === n + count) {
        const limit = Math.min(this.blockCount, lastRun[1] + Math.min(this.readAhead, this.maxBlocks - count));
        while (lastRun[1] < limit && this.free(lastRun[1])) lastRun[1]++;
      }
      for (const [lo, hi] of runs) this.startRead(lo, hi - lo);
      for (const b of missing) {
        const i = b - n;
        waits.push(this.pending.get(b)!.promise.then((blk) => out.set(blk, i * bs)));
      }
    }
    await Promise.all(waits);
    return out;
  }

  private async readUncached(n: number, count: number, out: Uint8Array): Promise<Uint8Array> {
    const bs = this.blockSize;
    this.stats.reads++;
    this.stats.bytesRead += count * bs;
    const buf = await this.device.read(n * bs, count * bs);
    out.set(buf);
    // Blocks put() by the caller are authoritative over what the device returned.
    let hits = 0;
    for (let i = 0; i < count; i++) {
      const c = this.blocks.get(n + i);
      if (c) {
        out.set(c, i * bs);
        hits++;
      }
    }
    this.stats.hits += hits;
    this.stats.misses += count - hits;
    return out;
  }

  /**
   * Bring blocks n..n+count-1 into the cache (clipped to the device end and
   * to the cache capacity), in as few reads as possible; resolves when they
   * are in. No read-ahead beyond the range; does not count hits/misses.
   */
  async prefetch(n: number, count: number): Promise<void> {
    if (!Number.isSafeInteger(n) || n < 0 || !Number.isSafeInteger(count) || count < 0) {
      throw new Ext4Error('EINVAL', `invalid prefetch range start=${n} count=${count}`, { structure: this.device.name });
    }
    const end = Math.min(this.blockCount, n + Math.min(count, this.maxBlocks));
    const missing: number[] = [];
    for (let b = n; b < end; b++) if (this.free(b)) missing.push(b);
    for (const [lo, hi] of this.runs(missing, this.readAhead)) this.startRead(lo, hi - lo);
    const waits: Array<Promise<Uint8Array>> = [];
    for (let b = n; b < end; b++) {
      const p = this.pending.get(b);
      if (p) waits.push(p.promise);
    }
    await Promise.all(waits);
  }

  /**
   * Record blocks the caller has just written to the device: `data` is one
   * or more whole blocks starting at block n. The cache keeps its own copy.
   * A read of those blocks still in flight will not overwrite them.
   */
  put(n: number, data: Uint8Array): void {
    const bs = this.blockSize;
    if (data.length === 0 || data.length % bs !== 0) {
      throw new Ext4Error('EINVAL', `put: ${data.length} bytes is not a whole number of ${bs}-byte blocks`, { structure: this.device.name, location: { kind: 'block', block: n } });
    }
    const count = data.length / bs;
    this.checkBlocks(n, count);
    for (let i = 0; i < count; i++) {
      this.pending.delete(n + i);
      this.insert(n + i, data.slice(i * bs, (i + 1) * bs));
    }
  }

  /**
   * Record one block the caller has just written (or a journal holds newer than the disk), taking
   * the array itself rather than a copy: the caller hands it over and never writes into it again
   * (a transaction's final image after its commit; the next transaction copies it out through
   * getBlock before changing it). An array that is a view into a larger buffer is copied, so a
   * cached block never pins more memory than its own. A read of the block in flight will not overwrite it.
   */
  adopt(n: number, block: Uint8Array): void {
    const bs = this.blockSize;
    if (block.length !== bs) throw new Ext4Error('EINVAL', `adopt: ${block.length} bytes is not one ${bs}-byte block`, { structure: this.device.name, location: { kind: 'block', block: n } });
    this.checkBlocks(n, 1);
    this.pending.delete(n);
    this.insert(n, block.byteOffset === 0 && block.buffer.byteLength === bs ? block : block.slice());
  }

  /**
   * Forget cached blocks: all of them (no argument) or n..n+count-1. Reads
   * in flight for them will not be cached when they complete.
   */
  invalidate(n?: number, count = 1): void {
    if (n === undefined) {
      this.blocks.clear();
      this.pending.clear();
      return;
    }
    for (let b = n; b < n + count; b++) {
      this.blocks.delete(b);
      this.pending.delete(b);
    }
  }
}
