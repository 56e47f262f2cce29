/**
 * copyRuns overlaps its reads with its writes even when the source is read synchronously (a
 * device with syncReadMax, as the CLI opens it for defrag's small pieces): the read-ahead into
 * freed buffers is started once a write is issued, so it runs while that write is in flight —
 * not between two writes (what strace showed for defrag: reads and writes strictly serial).
 * The bytes land where they should.
 */
import { describe, expect, it } from 'vitest';
import type { Filesystem } from '../../lib/ext4/filesystem.js';
import { COPY_CHUNK, COPY_DEPTH, copyRuns, startCopy } from '../../lib/ops/copy-runs.js';

const BS = 4096;

describe('copyRuns with a synchronous source', () => {
  it('reads chunk i+COPY_DEPTH-1 while chunk i is being written; every byte copied', async () => {
    const chunkBlocks = COPY_CHUNK / BS;
    const chunks = COPY_DEPTH + 4;
    const blocks = 2 * chunks * chunkBlocks;
    const disk = new Uint8Array(blocks * BS);
    for (let b = 0; b < chunks * chunkBlocks; b++) disk.fill((b * 13 + 7) & 0xff, b * BS, (b + 1) * BS);
    const log: string[] = [];
    const chunkOf = (block: number) => Math.floor(block / chunkBlocks);
    const fs = {
      blockSize: BS,
      // Synchronous, as FileDevice's readSync path: the copy happens inside the call.
      readDataBlocksInto(n: number, count: number, target: Uint8Array): Promise<void> {
        target.set(disk.subarray(n * BS, (n + count) * BS));
        log.push(`read ${chunkOf(n)}`);
        return Promise.resolve();
      },
      device: {
        write(pos: number, data: Uint8Array): Promise<void> {
          const c = chunkOf(pos / BS) - chunks;
          log.push(`write ${c}`);
          const copy = data.slice();
          return new Promise((resolve) =>
            setTimeout(() => {
              disk.set(copy, pos);
              log.push(`written ${c}`);
              resolve();
            }, 1),
          );
        },
        flush: () => Promise.resolve(),
      },
    } as unknown as Filesystem;
    // One run: source chunks 0…n-1 → the blocks after them.
    expect(await copyRuns(fs, [{ from: 0, to: chunks * chunkBlocks, length: chunks * chunkBlocks }])).toBe(chunks * COPY_CHUNK);
    expect(Buffer.compare(disk.subarray(chunks * COPY_CHUNK), disk.subarray(0, chunks * COPY_CHUNK))).toBe(0);
    // Each read past the first COPY_DEPTH comes after the write that frees its buffer, while the next write is in flight.
    for (let j = COPY_DEPTH; j < chunks; j++) {
      const i = j - COPY_DEPTH + 1; // the write in flight when chunk j is read
      const at = log.indexOf(`read ${j}`);
      expect(at, log.join(', ')).toBeGreaterThan(log.indexOf(`written ${j - COPY_DEPTH}`));
      expect(at, log.join(', ')).toBeGreaterThan(log.indexOf(`write ${i}`));
      expect(at, log.join(', ')).toBeLessThan(log.indexOf(`written ${i}`));
    }
  });

  it('before run, two reads in flight (the caller\'s metadata reads share the pool); once run is called, up to four', async () => {
    const chunkBlocks = COPY_CHUNK / BS;
    const chunks = COPY_DEPTH + 4;
    let inFlight = 0, most = 0;
    const pending: (() => void)[] = [];
    const fs = {
      blockSize: BS,
      readDataBlocksInto(): Promise<void> {
        most = Math.max(most, ++inFlight);
        return new Promise((resolve) => pending.push(() => (inFlight--, resolve())));
      },
      device: { write: () => new Promise((r) => setTimeout(r, 1)), flush: () => Promise.resolve() },
    } as unknown as Filesystem;
    const started = startCopy(fs, [{ from: 0, to: chunks * chunkBlocks, length: chunks * chunkBlocks }]);
    await new Promise((r) => setTimeout(r, 5));
    expect(inFlight, 'reads in flight before run').toBe(2);
    let finished = false;
    const done = started.run().finally(() => void (finished = true));
    await new Promise((r) => setTimeout(r, 5));
    expect(inFlight, 'reads in flight once run is called').toBe(Math.min(4, COPY_DEPTH));
    // Release reads as they come until the copy is done (later reads are issued as writes complete).
    while (!finished) {
      pending.splice(0).forEach((f) => f());
      await new Promise((r) => setTimeout(r, 2));
    }
    expect(await done).toBe(chunks * COPY_CHUNK);
    expect(most).toBe(Math.min(4, COPY_DEPTH));
  });
});
