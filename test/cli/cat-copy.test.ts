/**
 * cat().copyTo (what `ext4kit cat` writes stdout with): the file's exact bytes (against the source
 * tree fed to mkfs), in bounded chunks out of two reused buffers, the next chunk read while the sink
 * still holds the previous one, never overwriting a chunk the sink has not finished with; a sink
 * error ends the copy with that error.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { cat } from '../../lib/ops/inspect.js';
import { getImage } from '../helpers/images.js';

const sha = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');
const tick = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe.each(['ext4-4k', 'ext3-1k'])('cat().copyTo on %s', (name) => {
  let fsys: Filesystem;
  beforeAll(async () => {
    fsys = await Filesystem.open(getImage(name).image);
  });
  afterAll(async () => {
    await fsys?.close();
  });

  /** The largest regular files of the image (multi-chunk, sparse, block-mapped on ext3). */
  function bigFiles(n: number) {
    const im = getImage(name);
    return im.entries.filter((e) => e.type === 'file' && e.size > 0).sort((a, b) => b.size - a.size).slice(0, n);
  }

  it('hands over the source bytes, each chunk intact until the sink is done with it', async () => {
    const im = getImage(name);
    const files = bigFiles(6);
    expect(files[0]!.size).toBeGreaterThan(3 * 65536);
    let overlapped = 0;
    for (const e of files) {
      const f = await cat(fsys, '/' + e.path, 65536);
      const src = fs.readFileSync(path.join(im.srcDir, e.path));
      const h = crypto.createHash('sha256');
      let pending: { settled: boolean } | null = null;
      let got = 0;
      const n = await f.copyTo(async (chunk) => {
        expect(chunk.length).toBeLessThanOrEqual(65536);
        if (pending && !pending.settled) overlapped++; // called while the previous chunk was still held
        const mine = { settled: false };
        pending = mine;
        const before = sha(chunk);
        await tick(2); // hold the chunk: the copy reads ahead meanwhile, into the other buffer
        expect(sha(chunk), `${e.path} chunk at ${got} changed while held`).toBe(before);
        h.update(chunk);
        got += chunk.length;
        mine.settled = true;
      });
      expect(n, e.path).toBe(src.length);
      expect(h.digest('hex'), e.path).toBe(sha(src));
    }
    // The next read overlaps the sink's work on the current chunk (two buffers in flight).
    expect(overlapped).toBeGreaterThan(0);
  });

  it('a sink error ends the copy with that error (no unhandled rejection)', async () => {
    const e = bigFiles(1)[0]!;
    const f = await cat(fsys, '/' + e.path, 65536);
    let calls = 0;
    await expect(
      f.copyTo(async () => {
        if (++calls === 2) throw Object.assign(new Error('reader went away'), { code: 'EPIPE' });
        await tick(1);
      }),
    ).rejects.toMatchObject({ code: 'EPIPE' });
    expect(calls).toBeLessThanOrEqual(3);
  });
});
