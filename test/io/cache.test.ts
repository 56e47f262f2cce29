import { describe, it, expect } from 'vitest';
import { BlockCache } from '../../lib/io/cache.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import type { BlockDevice } from '../../lib/io/device.js';
import { Ext4Error } from '../../lib/errors.js';
import { Prng } from '../../lib/io/prng.js';
import { CountingDevice, pattern, rejectionCode, sameBytes } from './helpers.js';

const BS = 1024;

function setup(blocks: number, opts: { maxBytes?: number; readAhead?: number } = {}, extraBytes = 0) {
  const data = pattern(blocks * BS + extraBytes, 77);
  const counting = new CountingDevice(new MemoryDevice(data));
  const cache = new BlockCache(counting, BS, opts);
  const block = (n: number) => data.subarray(n * BS, (n + 1) * BS);
  return { data, counting, cache, block };
}

/** A device whose reads wait until released, to test concurrency. */
class GatedDevice implements BlockDevice {
  reads: Array<{ position: number; length: number; release: () => void; fail: (e: unknown) => void }> = [];
  constructor(readonly inner: MemoryDevice) {}
  get size() {
    return this.inner.size;
  }
  readonly readOnly = false;
  readonly name = 'gated';
  read(position: number, length: number): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      this.reads.push({
        position,
        length,
        release: () => resolve(this.inner.read(position, length)),
        fail: reject,
      });
    });
  }
  write(position: number, data: Uint8Array) {
    return this.inner.write(position, data);
  }
  async flush() {}
  async close() {}
}

describe('BlockCache', () => {
  it('returns the right bytes', async () => {
    const { cache, block } = setup(100);
    for (const n of [0, 1, 50, 99, 3, 50]) expect(sameBytes(await cache.getBlock(n), block(n))).toBe(true);
    expect(cache.blockCount).toBe(100);
  });

  it('read-ahead: walking blocks sequentially issues few, large reads', async () => {
    const walk = async (readAhead: number) => {
      const { cache, counting, block } = setup(256, { readAhead });
      for (let n = 0; n < 256; n++) expect(sameBytes(await cache.getBlock(n), block(n))).toBe(true);
      return { reads: counting.reads.length, stats: { ...cache.stats }, sizes: counting.reads.map((r) => r.length) };
    };
    const none = await walk(0);
    expect(none.reads).toBe(256);
    const ra = await walk(32);
    expect(ra.reads).toBe(Math.ceil(256 / 33)); // 8
    expect(ra.stats.reads).toBe(8);
    expect(ra.stats.misses).toBe(8);
    expect(ra.stats.hits).toBe(248);
    expect(ra.sizes[0]).toBe(33 * BS);
    // The last read is clipped at the device end (256 = 7*33 + 25).
    expect(ra.sizes[7]).toBe(25 * BS);
    expect(ra.stats.bytesRead).toBe(256 * BS);
  });

  it('read-ahead stops at cached blocks and at the device end, and ignores a trailing partial block', async () => {
    const { cache, counting } = setup(40, { readAhead: 32 }, 500);
    expect(cache.blockCount).toBe(40);
    await cache.getBlock(10);
    expect(counting.reads).toEqual([{ position: 10 * BS, length: 30 * BS }]);
    await cache.getBlock(5);
    expect(counting.reads[1]).toEqual({ position: 5 * BS, length: 5 * BS }); // 5..9, stops at cached 10
    expect(await rejectionCode(cache.getBlock(40))).toBe('EIO');
    expect(await rejectionCode(cache.getBlock(-1))).toBe('EINVAL');
    expect(await rejectionCode(cache.getBlock(1.5))).toBe('EINVAL');
    expect(await rejectionCode(cache.getBlocks(39, 2))).toBe('EIO');
  });

  it('LRU: memory stays bounded whatever is read, and the least recently used block goes first', async () => {
    const { cache, data, block } = setup(4096, { maxBytes: 16 * BS, readAhead: 4 });
    expect(cache.maxBlocks).toBe(16);
    const rng = new Prng(1);
    for (let i = 0; i < 3000; i++) {
      const n = rng.int(4096);
      expect(sameBytes(await cache.getBlock(n), block(n))).toBe(true);
      expect(cache.cachedBytes).toBeLessThanOrEqual(16 * BS);
    }
    for (let i = 0; i < 50; i++) {
      const n = rng.int(4000);
      const run = await cache.getBlocks(n, 1 + rng.int(40));
      expect(sameBytes(run, data.subarray(n * BS, n * BS + run.length))).toBe(true);
      expect(cache.cachedBytes).toBeLessThanOrEqual(16 * BS);
    }
    expect(cache.stats.evictions).toBeGreaterThan(0);

    // LRU order, with read-ahead off for a clear picture.
    const small = setup(100, { maxBytes: 4 * BS, readAhead: 0 });
    for (const n of [0, 1, 2, 3]) await small.cache.getBlock(n);
    await small.cache.getBlock(0); // 0 is now most recent; 1 is least
    await small.cache.getBlock(4); // evicts 1
    expect([0, 1, 2, 3, 4].map((n) => small.cache.has(n))).toEqual([true, false, true, true, true]);
    const before = small.counting.reads.length;
    await small.cache.getBlock(0);
    expect(small.counting.reads.length).toBe(before);
    await small.cache.getBlock(1);
    expect(small.counting.reads.length).toBe(before + 1);
  });

  it('read-ahead is clipped to the capacity so a read never evicts itself', () => {
    const { cache } = setup(100, { maxBytes: 8 * BS, readAhead: 32 });
    expect(cache.readAhead).toBe(7);
    const tiny = setup(10, { maxBytes: 0 });
    expect(tiny.cache.maxBlocks).toBe(1);
    expect(tiny.cache.readAhead).toBe(0);
  });

  it('concurrent getBlock of a missing block shares one in-flight read', async () => {
    const mem = new MemoryDevice(pattern(64 * BS, 3));
    const gated = new GatedDevice(mem);
    const cache = new BlockCache(gated, BS, { readAhead: 4 });
    const a = cache.getBlock(5);
    const b = cache.getBlock(5);
    const c = cache.getBlock(7); // inside the read-ahead of the first read
    const d = cache.getBlocks(5, 3);
    expect(gated.reads.length).toBe(1);
    expect(gated.reads[0]).toMatchObject({ position: 5 * BS, length: 5 * BS });
    gated.reads[0]!.release();
    const [ra, rb, rc, rd] = await Promise.all([a, b, c, d]);
    expect(ra).toBe(rb);
    expect(sameBytes(ra, mem.data.subarray(5 * BS, 6 * BS))).toBe(true);
    expect(sameBytes(rc, mem.data.subarray(7 * BS, 8 * BS))).toBe(true);
    expect(sameBytes(rd, mem.data.subarray(5 * BS, 8 * BS))).toBe(true);
    expect(gated.reads.length).toBe(1);
    expect(cache.stats).toMatchObject({ reads: 1, misses: 1, hits: 5 });
  });

  it('a failed read rejects every waiter, caches nothing, and a retry reads again', async () => {
    const gated = new GatedDevice(new MemoryDevice(pattern(16 * BS)));
    const cache = new BlockCache(gated, BS, { readAhead: 2 });
    const a = cache.getBlock(3);
    const b = cache.getBlock(4);
    gated.reads[0]!.fail(new Ext4Error('EIO', 'media error'));
    expect(await rejectionCode(a)).toBe('EIO');
    expect(await rejectionCode(b)).toBe('EIO');
    expect(cache.cachedBlocks).toBe(0);
    const again = cache.getBlock(3);
    expect(gated.reads.length).toBe(2);
    gated.reads[1]!.release();
    expect((await again).length).toBe(BS);
  });

  it('put() during an in-flight read wins over the stale read; invalidate() forces a re-read', async () => {
    const mem = new MemoryDevice(pattern(16 * BS));
    const gated = new GatedDevice(mem);
    const cache = new BlockCache(gated, BS, { readAhead: 3 });
    const pending = cache.getBlock(2);
    const fresh = new Uint8Array(BS).fill(0xee);
    await mem.write(3 * BS, fresh); // the caller writes block 3 ...
    cache.put(3, fresh); // ... and tells the cache, while 2..5 is being read
    fresh[0] = 0; // the cache kept its own copy
    gated.reads[0]!.release();
    await pending;
    expect((await cache.getBlock(3)).every((x) => x === 0xee)).toBe(true);

    cache.invalidate(3);
    expect(cache.has(3)).toBe(false);
    const re = cache.getBlock(3);
    expect(gated.reads.length).toBe(2);
    gated.reads[1]!.release();
    expect((await re).every((x) => x === 0xee)).toBe(true);

    cache.invalidate();
    expect(cache.cachedBlocks).toBe(0);
    expect(() => cache.put(0, new Uint8Array(BS + 1))).toThrow(Ext4Error);
    cache.put(0, new Uint8Array(2 * BS).fill(1));
    expect(cache.has(0) && cache.has(1)).toBe(true);
  });

  it('adopt() keeps the handed-over block itself (no copy), copies a view into a larger buffer, and wins over an in-flight read', async () => {
    const mem = new MemoryDevice(pattern(16 * BS));
    const gated = new GatedDevice(mem);
    const cache = new BlockCache(gated, BS, { readAhead: 3 });
    const pending = cache.getBlock(2); // reads 2..5
    const img = new Uint8Array(BS).fill(0x5a);
    cache.adopt(4, img);
    gated.reads[0]!.release();
    await pending;
    expect(await cache.getBlock(4)).toBe(img); // the stale read did not replace it
    const big = new Uint8Array(3 * BS).fill(0x33);
    cache.adopt(7, big.subarray(BS, 2 * BS));
    const seven = await cache.getBlock(7);
    expect(seven.buffer.byteLength).toBe(BS); // its own allocation: does not pin `big`
    big.fill(0);
    expect(seven.every((x) => x === 0x33)).toBe(true);
    expect(() => cache.adopt(8, new Uint8Array(2 * BS))).toThrow(Ext4Error);
    expect(() => cache.adopt(16, new Uint8Array(BS))).toThrow(Ext4Error);
    expect(cache.cachedBytes).toBeLessThanOrEqual(cache.maxBlocks * BS);
  });

  it('getBlocks: one device read for scattered misses, hits served from cache, fresh array', async () => {
    const { cache, counting, data } = setup(200, { readAhead: 8 });
    await cache.prefetch(10, 8); // caches 10..17
    await cache.prefetch(30, 8); // caches 30..37
    counting.reads.length = 0;
    const run = await cache.getBlocks(5, 40); // misses 5..9, 18..29, 38..44 (cached gaps ≤ readAhead → one read)
    expect(sameBytes(run, data.subarray(5 * BS, 45 * BS))).toBe(true);
    expect(counting.reads.length).toBe(1);
    // The run ends in a miss, so read-ahead extends it past block 44.
    expect(counting.reads[0]).toEqual({ position: 5 * BS, length: (45 - 5 + 8) * BS });
    run.fill(0);
    expect(sameBytes(await cache.getBlock(20), data.subarray(20 * BS, 21 * BS))).toBe(true);
    // All cached now: no read.
    const again = await cache.getBlocks(5, 40);
    expect(counting.reads.length).toBe(1);
    expect(sameBytes(again, data.subarray(5 * BS, 45 * BS))).toBe(true);
    expect((await cache.getBlocks(3, 0)).length).toBe(0);
  });

  it('getBlocks splits the read when cached gaps are longer than readAhead', async () => {
    const { cache, counting } = setup(200, { readAhead: 4 });
    await cache.prefetch(10, 20); // 10..29 cached
    counting.reads.length = 0;
    await cache.getBlocks(5, 30); // misses 5..9 and 30..34: gap of 20 cached blocks
    expect(counting.reads).toEqual([
      { position: 5 * BS, length: 5 * BS },
      { position: 30 * BS, length: (5 + 4) * BS },
    ]);
  });

  it('getBlocks larger than the cache reads once and does not flood it; put() data still wins', async () => {
    const { cache, counting, data } = setup(100, { maxBytes: 8 * BS });
    cache.put(50, new Uint8Array(BS).fill(0x11));
    const run = await cache.getBlocks(0, 100);
    expect(counting.reads).toEqual([{ position: 0, length: 100 * BS }]);
    expect(run.subarray(50 * BS, 51 * BS).every((x) => x === 0x11)).toBe(true);
    expect(sameBytes(run.subarray(0, 50 * BS), data.subarray(0, 50 * BS))).toBe(true);
    expect(cache.cachedBlocks).toBe(1);
  });

  it('prefetch brings a range in with one read; later getBlocks are hits', async () => {
    const { cache, counting } = setup(500, { readAhead: 32 });
    await cache.prefetch(100, 64);
    expect(counting.reads).toEqual([{ position: 100 * BS, length: 64 * BS }]);
    for (let n = 100; n < 164; n++) await cache.getBlock(n);
    expect(counting.reads.length).toBe(1);
    expect(cache.stats.hits).toBe(64);
    await cache.prefetch(490, 100); // clipped to the device end
    expect(counting.reads[1]).toEqual({ position: 490 * BS, length: 10 * BS });
    await cache.prefetch(100, 64); // already cached: no read
    expect(counting.reads.length).toBe(2);
  });

  it('rejects bad construction parameters', () => {
    const dev = new MemoryDevice(new Uint8Array(4096));
    expect(() => new BlockCache(dev, 0)).toThrow(Ext4Error);
    expect(() => new BlockCache(dev, 1024, { readAhead: -1 })).toThrow(Ext4Error);
    expect(() => new BlockCache(dev, 1024, { maxBytes: NaN })).toThrow(Ext4Error);
  });
});
