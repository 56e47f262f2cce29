/**
 * lib/ext4/dir-reader.ts readEntryTable (what `ls` reads a directory with) against readdirRaw (the
 * cached block-by-block scan every other reader uses): the same entries in the same order, the same
 * names (decoded as decodeName does), the same errors for a corrupt block; its blocks in a few large
 * reads. And lib/ops/inspect.ts listBatches: list()'s rows, in pieces of at most batchRows.
 */
import { copyFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { isExt4Error } from '../../lib/errors.js';
import { readEntryTable, type EntryTableSource } from '../../lib/ext4/dir-reader.js';
import { decodeName } from '../../lib/ext4/bytes.js';
import type { Inode } from '../../lib/ext4/inode.js';
import { list, listBatches } from '../../lib/ops/inspect.js';
import { getImage } from '../helpers/images.js';
import { tmpPath } from '../helpers/tmp.js';

/** Every directory of the image (inode), found by walking readdirRaw from the root. */
async function allDirs(fs: Filesystem): Promise<Inode[]> {
  const out: Inode[] = [];
  const seen = new Set<number>();
  const todo = [await fs.readInode(2)];
  while (todo.length) {
    const d = todo.pop()!;
    if (seen.has(d.ino)) continue;
    seen.add(d.ino);
    out.push(d);
    for (const e of await fs.readdirRaw(d)) {
      if (e.name.length <= 2 && e.name.every((c) => c === 0x2e)) continue;
      const ino = await fs.readInode(e.ino);
      if (ino.type === 'dir') todo.push(ino);
    }
  }
  return out;
}

function counting(fs: Filesystem): { src: EntryTableSource; reads: number[] } {
  const reads: number[] = [];
  const src: EntryTableSource = {
    sb: fs.sb,
    blockSize: fs.blockSize,
    fsSeed: fs.fsSeed,
    verify: fs.verify,
    fileMap: (i) => fs.fileMap(i),
    readBlock: (n) => {
      reads.push(1);
      return fs.readBlock(n);
    },
    readDataBlocks: (n, count) => {
      reads.push(count);
      return fs.readDataBlocks(n, count);
    },
    readdirRaw: (d) => fs.readdirRaw(d),
  };
  return { src, reads };
}

describe.each(['ext4-4k', 'ext4-1k', 'ext2', 'ext4-inline', 'ext4-nocsum'])('readEntryTable on %s', (name) => {
  let fs: Filesystem;
  beforeAll(async () => {
    fs = await Filesystem.open(getImage(name).image);
  });
  afterAll(async () => {
    await fs?.close();
  });

  it('gives readdirRaw’s entries in its order, with and without the dots', async () => {
    const dirs = await allDirs(fs);
    expect(dirs.length).toBeGreaterThan(3);
    let big = 0;
    for (const d of dirs) {
      const raw = await fs.readdirRaw(d);
      for (const dots of [true, false]) {
        const want = raw.filter((e) => dots || !(e.name.length <= 2 && e.name.every((c) => c === 0x2e)));
        const t = await readEntryTable(fs, d, { dots });
        expect(t.length, `dir ${d.ino}`).toBe(want.length);
        const got = Array.from({ length: t.length }, (_, i) => ({ ino: t.ino[i], fileType: t.fileType[i], name: t.names()[i], bytes: Buffer.from(t.nameBytes(i)).toString('hex') }));
        expect(got, `dir ${d.ino}`).toEqual(want.map((e) => ({ ino: e.ino, fileType: e.fileType, name: decodeName(e.name), bytes: Buffer.from(e.name).toString('hex') })));
        expect(t.ascii).toBe(want.every((e) => e.name.every((c) => c < 0x80)));
      }
      if (raw.length > 1000) big++;
    }
    expect(big, 'the image has a big directory').toBeGreaterThan(0);
  });

  it('reads a big directory in a few large reads, not one per block', async () => {
    const dirs = await allDirs(fs);
    const bigDir = dirs.reduce((a, b) => (b.size > a.size ? b : a));
    const nblocks = bigDir.size / fs.blockSize;
    expect(nblocks).toBeGreaterThan(8);
    const { src, reads } = counting(fs);
    await readEntryTable(src, bigDir);
    expect(reads.reduce((s, c) => s + c, 0)).toBe(nblocks);
    const map = await fs.fileMap(bigDir);
    expect(reads.length).toBeLessThanOrEqual(map.extents.length + Math.ceil((nblocks * fs.blockSize) / (256 * 1024)));
  });
});

describe('readEntryTable on a corrupt directory block', () => {
  it('throws what readdirRaw throws (code and location)', async () => {
    const img = tmpPath('entry-table-bad.img');
    copyFileSync(getImage('ext4-4k').image, img);
    let fs = await Filesystem.open(img);
    let target: Inode;
    let phys: number;
    try {
      const dirs = await allDirs(fs);
      target = dirs.reduce((a, b) => (b.size > a.size ? b : a));
      const map = await fs.fileMap(target);
      const last = map.extents[map.extents.length - 1]!;
      phys = last.physical + last.length - 1; // a leaf (the root of an htree is block 0)
    } finally {
      await fs.close();
    }
    // rec_len of the first entry of that block: 6, not a multiple of 4.
    const fd = openSync(img, 'r+');
    writeSync(fd, Buffer.from([6, 0]), 0, 2, phys * 4096 + 4);
    closeSync(fd);
    for (const verify of [true, false]) {
      fs = await Filesystem.open(img, { verifyChecksums: verify });
      try {
        const outcome = async (f: () => Promise<unknown>) => {
          try {
            await f();
            return 'no error';
          } catch (e) {
            if (!isExt4Error(e)) throw e;
            return { code: e.code, location: e.location, message: e.message };
          }
        };
        const want = await outcome(() => fs.readdirRaw(target));
        expect(want).toMatchObject({ code: 'EFSCORRUPTED' });
        expect(await outcome(() => readEntryTable(fs, target))).toEqual(want);
      } finally {
        await fs.close();
      }
    }
  });
});

describe('listBatches', () => {
  it('yields list()’s rows in pieces of at most batchRows', async () => {
    const fs = await Filesystem.open(getImage('ext4-4k').image);
    try {
      const whole = await list(fs, '/', { recursive: true });
      expect(whole.length).toBeGreaterThan(5000);
      for (const batchRows of [1, 1000, 100000]) {
        const pieces: number[] = [];
        const rows = [];
        for await (const b of listBatches(fs, '/', { recursive: true, batchRows })) {
          pieces.push(b.length);
          rows.push(...b);
        }
        expect(rows).toEqual(whole);
        expect(Math.max(...pieces)).toBeLessThanOrEqual(batchRows);
        expect(pieces.length).toBe(Math.ceil(whole.length / batchRows));
      }
    } finally {
      await fs.close();
    }
  });
});
