/**
 * readInodeBatch's `scratch` (lib/ext4/inode-store.ts): a listing reads a large directory's inodes
 * a batch at a time into one buffer. Batches read into it give what fresh reads give (inodes and
 * summaries, errors included), one after the other in the same buffer; the runs land in it (no
 * new buffers); a scratch too small, or a source without readDataBlocksInto, reads as before.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { isExt4Error } from '../../lib/errors.js';
import { readInodeBatch, type InodeBatch, type InodeBatchSource } from '../../lib/ext4/inode-store.js';
import { getImage } from '../helpers/images.js';
import { inodeBatchSource } from '../helpers/batch-source.js';

function source(fs: Filesystem, into: boolean): { src: InodeBatchSource; fresh: number[]; targets: Uint8Array[] } {
  const fresh: number[] = [];
  const targets: Uint8Array[] = [];
  const src = inodeBatchSource(fs, { onRead: (n) => fresh.push(n), ...(into ? { onReadInto: (t: Uint8Array) => targets.push(t) } : {}) });
  return { src, fresh, targets };
}

/** Every inode of a batch as its raw bytes and summary, or the error code. */
function contents(b: InodeBatch): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < b.length; i++) {
    try {
      out.push([Buffer.from(b.get(i).raw).toString('hex'), { ...b.summary(i) }]);
    } catch (e) {
      if (!isExt4Error(e)) throw e;
      out.push(e.code);
    }
  }
  return out;
}

describe('readInodeBatch into a scratch buffer', () => {
  let fs: Filesystem;
  beforeAll(async () => {
    fs = await Filesystem.open(getImage('ext4-4k').image);
  });
  afterAll(async () => {
    await fs?.close();
  });

  it('batch after batch in one buffer, each equal to a fresh read', async () => {
    const count = fs.sb.s_inodes_count;
    const isz = fs.sb.s_inode_size;
    const scratch = new Uint8Array(2 * 256 * isz + 16 * fs.blockSize);
    const { src, fresh, targets } = source(fs, true);
    // Consecutive stretches of inodes, scrambled within each, plus numbers that do not exist.
    for (let first = 1; first < Math.min(count, 2048); first += 256) {
      const inos = Array.from({ length: 256 }, (_, i) => first + ((i * 97) % 256));
      inos.push(0, count + 1);
      const viaScratch = await readInodeBatch(src, inos, { scratch });
      const want = await readInodeBatch(fs, inos);
      expect(contents(viaScratch), `inodes from ${first}`).toEqual(contents(want));
    }
    expect(fresh).toEqual([]);
    expect(targets.length).toBeGreaterThan(0);
    for (const t of targets) expect(t.buffer).toBe(scratch.buffer);
  });

  it('reads as before when the runs do not fit, or the source cannot read into a buffer', async () => {
    const inos = Array.from({ length: 64 }, (_, i) => 1 + i * 3);
    const want = contents(await readInodeBatch(fs, inos));
    const small = source(fs, true);
    expect(contents(await readInodeBatch(small.src, inos, { scratch: new Uint8Array(fs.blockSize) }))).toEqual(want);
    expect(small.targets).toEqual([]);
    expect(small.fresh.length).toBeGreaterThan(0);
    const plain = source(fs, false);
    expect(contents(await readInodeBatch(plain.src, inos, { scratch: new Uint8Array(1 << 20) }))).toEqual(want);
    expect(plain.fresh.length).toBeGreaterThan(0);
  });
});
