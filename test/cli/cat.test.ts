/**
 * `ext4kit cat`: every regular file of the MATRIX images read through the
 * library function the command uses (`cat()` in lib/ops/inspect.ts) must
 * hash like the source file; the real CLI is spawned for a handful of files
 * (multi-MiB, sparse, block-mapped with triple-indirect data, through a
 * symlink), and for a > 4 GiB sparse file with its memory use measured.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { getImage } from '../helpers/images.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { debugfsDump, mkfs } from '../helpers/tools.js';
import { Filesystem } from '../../lib/node.js';
import { cat } from '../../lib/ops/inspect.js';
import { cli, cliStream, cliToFile } from './helpers.js';

const RECIPES = ['ext4-4k', 'ext4-1k', 'ext2', 'ext3-1k', 'ext4-inline'];

async function sha256Of(chunks: AsyncIterable<Uint8Array>, maxChunk: number): Promise<{ hex: string; bytes: number; data?: Buffer }> {
  const h = crypto.createHash('sha256');
  let bytes = 0;
  for await (const c of chunks) {
    expect(c.length).toBeLessThanOrEqual(maxChunk);
    h.update(c);
    bytes += c.length;
  }
  return { hex: h.digest('hex'), bytes };
}

describe.each(RECIPES)('cat() on every regular file of %s', (name) => {
  let fsys: Filesystem;
  beforeAll(async () => {
    fsys = await Filesystem.open(getImage(name).image);
  });
  afterAll(async () => {
    await fsys?.close();
  });

  it('hashes like the source file', async () => {
    const im = getImage(name);
    const files = im.entries.filter((e) => e.type === 'file');
    expect(files.length).toBeGreaterThan(600);
    const inline = im.recipe.mkfsOpts.includes('inline_data');
    let truncated = 0;
    for (const e of files) {
      const f = await cat(fsys, '/' + e.path, 1 << 20);
      const got = await sha256Of(f.chunks, 1 << 20);
      expect(got.bytes, e.path).toBe(f.size);
      if (inline && f.size < e.size) {
        // mkfs -d with inline_data drops trailing holes (see ls.test.ts): the bytes we return
        // must be the source's prefix and exactly what debugfs dumps.
        truncated++;
        const src = fs.readFileSync(path.join(im.srcDir, e.path)).subarray(0, f.size);
        expect(got.hex, e.path).toBe(crypto.createHash('sha256').update(src).digest('hex'));
        expect(got.hex, e.path).toBe(crypto.createHash('sha256').update(debugfsDump(im.image, '/' + e.path)).digest('hex'));
        continue;
      }
      expect(f.size, e.path).toBe(e.size);
      expect(got.hex, e.path).toBe(e.sha256);
    }
    expect(truncated).toBeLessThanOrEqual(4);
  });
});

describe('ext4kit cat (spawned)', () => {
  const pick = (name: string, p: string) => {
    const e = getImage(name).entries.find((x) => x.path === p);
    if (!e) throw new Error(`${p} not in ${name}`);
    return e;
  };
  const cases: [string, string][] = [
    ['ext4-4k', 'big/random-5m'],
    ['ext4-4k', 'big/random-3m'],
    ['ext4-4k', 'sparse/hole-middle'],
    ['ext4-4k', 'sizes/empty'],
    ['ext4-1k', 'sparse/unaligned'],
    ['ext2', 'blockmap/dind-start'],
    ['ext3-1k', 'sparse/triple-indirect'],
    ['ext4-inline', 'sizes/sixty'],
  ];
  it.each(cases)('%s %s: stdout has the source bytes', async (name, p) => {
    const e = pick(name, p);
    const r = await cli(['cat', getImage(name).image, '/' + p]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.length).toBe(e.size);
    expect(crypto.createHash('sha256').update(r.stdout).digest('hex')).toBe(e.sha256);
  });

  it('follows symlinks (in the middle and at the end of the path)', async () => {
    const im = getImage('ext4-4k');
    const r = await cli(['cat', im.image, '/symlinks/relative']);
    expect(r.status).toBe(0);
    expect(crypto.createHash('sha256').update(r.stdout).digest('hex')).toBe(pick('ext4-4k', 'sizes/one').sha256);
    const r2 = await cli(['cat', im.image, '/symlinks/to-dir/l01/l02/l03/l04/l05/l06/l07/l08/l09/l10/l11/l12/l13/l14/l15/l16/l17/l18/l19/l20/l21/l22/l23/l24/l25/l26/l27/l28/l29/l30/l31/l32/l33/l34/l35/l36/l37/l38/l39/l40/l41/l42/l43/l44/l45/leaf.txt']);
    expect(r2.stdout.toString()).toBe('at the bottom\n');
  });

  it('refuses directories (EISDIR), devices and fifos (EINVAL), dangling links (ENOENT)', async () => {
    const img = getImage('ext4-4k').image;
    const d = await cli(['cat', img, '/sizes']);
    expect([d.status, d.stdout.length]).toEqual([1, 0]);
    expect(d.stderr).toMatch(/^ext4kit: EISDIR: \/sizes: is a directory\n$/);
    const f = await cli(['cat', img, '/special/fifo']);
    expect(f.status).toBe(1);
    expect(f.stderr).toMatch(/^ext4kit: EINVAL: .*not a regular file \(fifo\)/);
    const n = await cli(['cat', img, '/symlinks/dangling']);
    expect(n.status).toBe(1);
    expect(n.stderr).toMatch(/^ext4kit: ENOENT: /);
  });
});

describe('a sparse file larger than 4 GiB', () => {
  const SIZE = 4 * 1024 ** 3 + 8 * 1024 ** 2 + 123;
  const DATA: [number, Buffer][] = [
    [0, crypto.randomBytes(5000)],
    [4 * 1024 ** 3 - 3000, crypto.randomBytes(7000)], // straddles 4 GiB
    [SIZE - 100, crypto.randomBytes(100)],
  ];
  const ZERO = Buffer.alloc(8 * 1024 * 1024);
  let img = '';
  beforeAll(() => {
    const src = tmpDir('huge-src');
    const fd = fs.openSync(path.join(src, 'huge'), 'w');
    for (const [off, b] of DATA) fs.writeSync(fd, b, 0, b.length, off);
    fs.ftruncateSync(fd, SIZE);
    fs.closeSync(fd);
    img = tmpPath('huge.img');
    mkfs('ext4', img, 32 * 1024 * 1024, ['-b', '4096'], src);
  });

  /** Compare a piece at `pos` with the expected contents (zeros outside DATA). */
  function check(pos: number, piece: Buffer): void {
    const hits = DATA.filter(([off, b]) => off < pos + piece.length && off + b.length > pos);
    if (hits.length === 0) {
      if (piece.length > ZERO.length || !ZERO.subarray(0, piece.length).equals(piece)) throw new Error(`bytes ${pos}..${pos + piece.length - 1} are not all zero`);
      return;
    }
    const want = Buffer.alloc(piece.length);
    for (const [off, b] of hits) {
      const s = Math.max(off, pos), t = Math.min(off + b.length, pos + piece.length);
      b.copy(want, s - pos, s - off, t - off);
    }
    if (!want.equals(piece)) throw new Error(`content mismatch in bytes ${pos}..${pos + piece.length - 1}`);
  }

  it('cat() yields bounded chunks with the right bytes (offsets past 2^32)', async () => {
    const fsys = await Filesystem.open(img);
    try {
      const f = await cat(fsys, '/huge');
      expect(f.size).toBe(SIZE);
      let pos = 0;
      for await (const c of f.chunks) {
        expect(c.length).toBeLessThanOrEqual(8 * 1024 * 1024);
        check(pos, Buffer.from(c.buffer, c.byteOffset, c.length));
        pos += c.length;
      }
      expect(pos).toBe(SIZE);
    } finally {
      await fsys.close();
    }
  });

  it('the CLI streams it without buffering it (peak RSS far below the file size)', async () => {
    // stdout is /dev/null: a pipe would only add ~4 GiB of copying to the test; the bytes
    // themselves are checked above and through a pipe for the multi-MiB files.
    const r = await cliToFile(['cat', img, '/huge'], '/dev/null');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.maxRssKiB).toBeGreaterThan(0);
    expect(r.maxRssKiB).toBeLessThan(400 * 1024);
  });

  it('the CLI stops quietly (exit 0, nothing on stderr) when the reader closes the pipe early', async () => {
    // Read the first 5000 bytes through a pipe, then stop: the CLI must exit quietly (EPIPE).
    let got = Buffer.alloc(0);
    const r = await cliStream(['cat', img, '/huge'], (c) => {
      got = Buffer.concat([got, c]);
    }, { stopAfter: 5000 });
    expect(got.subarray(0, 5000).equals(DATA[0]![1])).toBe(true);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
