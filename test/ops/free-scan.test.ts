/**
 * The whole-disk free-space scan behind getFreeBlocks / `free` / freefrag / fsmap (lib/ops/free.ts):
 * - bitmaps are read in coalesced runs (flex_bg puts 16 side by side), not one read per group;
 * - what it reads goes through the block view: a read-only open of a filesystem whose journal
 *   needs recovery sees the replayed bitmaps (oracle: dumpe2fs after e2fsck replayed a copy);
 * - a bitmap that is read is checked: a bad checksum is EFSBADCRC naming the group, and a free
 *   count that disagrees with the descriptor is reported (the bitmap wins, as in e2freefrag);
 * - forEachFreeRun (words at a time) equals a bit-by-bit scan on any bitmap, aligned or not.
 */
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FileDevice, Filesystem } from '../../lib/node.js';
import type { BlockDevice } from '../../lib/io/device.js';
import { getFreeBlocks } from '../../lib/ops/free.js';
import { forEachFreeRun, testBit } from '../../lib/ext4/bitmap.js';
import { RunTable, appendFreeRuns } from '../../lib/ext4/free-space.js';
import { BG_FLAGS } from '../../lib/ext4/group-desc.js';
import { Ext4Error } from '../../lib/errors.js';
import { mulberry32 } from '../../lib/io/prng.js';
import { tibFragmentedImage } from '../helpers/tib-image.js';
import { imageCopy } from '../helpers/images.js';
import { needsRecoveryImage, kernelSkipReason } from '../helpers/kernel-images.js';
import { copySparse, debugfs, dumpe2fsFreeBytes, e2fsckJournalOnly, oracleGate } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';

/** A device that counts the reads reaching it. */
function counting(inner: BlockDevice): BlockDevice & { reads: number; bytes: number } {
  const d = {
    reads: 0,
    bytes: 0,
    get size() {
      return inner.size;
    },
    get readOnly() {
      return inner.readOnly;
    },
    get name() {
      return inner.name;
    },
    read(position: number, length: number) {
      d.reads++;
      d.bytes += length;
      return inner.read(position, length);
    },
    readInto(position: number, target: Uint8Array) {
      d.reads++;
      d.bytes += target.length;
      return inner.readInto!(position, target);
    },
    write: (p: number, data: Uint8Array) => inner.write(p, data),
    flush: () => inner.flush(),
    close: () => inner.close(),
  };
  return d;
}


describe('getFreeBlocks over a whole disk', () => {
  it('reads the bitmaps of ~5,800 groups in coalesced runs: about one read per flex group, not one per group', async () => {
    const img = tibFragmentedImage();
    const dev = counting(await FileDevice.open(img, { write: false }));
    const f = await Filesystem.open(dev, { write: false });
    try {
      await f.loadGroups();
      // Groups whose bitmap must be read (every initialised one: a descriptor's count is not trusted), and
      // the flex groups (16 groups, bitmaps side by side) they are in.
      let read = 0;
      const flexes = new Set<number>();
      for (let g = 0; g < f.sb.groupCount; g++) {
        const d = await f.group(g);
        if (!(d.flags & BG_FLAGS.BLOCK_UNINIT)) {
          read++;
          flexes.add(g >> f.sb.s_log_groups_per_flex);
        }
      }
      expect(f.sb.s_log_groups_per_flex).toBe(4);
      expect(read).toBeGreaterThan(5000);
      const before = { reads: dev.reads, bytes: dev.bytes };
      const list = await getFreeBlocks(f);
      expect(list.length).toBeGreaterThan(200_000);
      const reads = dev.reads - before.reads, bytes = dev.bytes - before.bytes;
      // One read per flex group (up to 16 bitmaps together; one read per bitmap before), plus a few batch
      // cuts and the descriptor blocks (128 of them, two 256 KiB reads): nothing but bitmaps and descriptors.
      const gdtBlocks = Math.ceil(f.sb.groupCount / (4096 / f.sb.descSize));
      expect(reads).toBeLessThanOrEqual(flexes.size + 16);
      expect(bytes).toBe((read + gdtBlocks) * 4096);
    } finally {
      await f.close();
      await dev.close();
    }
  }, 600_000);

  it('a read-only open of a filesystem whose journal needs recovery sees the replayed bitmaps (= dumpe2fs after e2fsck replays a copy)', async () => {
    if (oracleGate(kernelSkipReason())) return;
    const nr = needsRecoveryImage()!;
    const replayed = tmpPath('free-replayed.img');
    copySparse(nr.image, replayed);
    e2fsckJournalOnly(replayed);
    const want = dumpe2fsFreeBytes(replayed, nr.blockSize);
    // The disk's own bitmaps say otherwise: the journal holds newer ones.
    expect(dumpe2fsFreeBytes(nr.image, nr.blockSize)).not.toEqual(want);
    const f = await Filesystem.open(nr.image, { write: false });
    try {
      expect(await getFreeBlocks(f)).toEqual(want);
    } finally {
      await f.close();
    }
  }, 300_000);

  /** An 8-group flex_bg image with one used data block of a read (not BLOCK_UNINIT) bitmap marked free on disk. */
  async function withFreedBit(): Promise<{ img: string; block: number; group: number }> {
    const img = imageCopy('ext4-4k-groups');
    const f = await Filesystem.open(img, { write: false });
    try {
      for (let g = 0; g < f.sb.groupCount; g++) {
        const d = await f.group(g);
        if (d.flags & BG_FLAGS.BLOCK_UNINIT || d.freeBlocks === 0) continue;
        const bm = await f.blockBitmap(g);
        // The last used bit before a free one: a data block, not fixed metadata at the group's start.
        for (let i = f.blocksInGroup(g) - 1; i > 0; i--)
          if (testBit(bm, i) && !testBit(bm, i + 1)) {
            const fd = fs.openSync(img, 'r+');
            const byte = Buffer.alloc(1);
            fs.readSync(fd, byte, 0, 1, d.blockBitmap * f.blockSize + (i >> 3));
            byte[0]! &= ~(1 << (i & 7));
            fs.writeSync(fd, byte, 0, 1, d.blockBitmap * f.blockSize + (i >> 3));
            fs.closeSync(fd);
            return { img, block: g * f.sb.s_blocks_per_group + f.sb.s_first_data_block + i, group: g };
          }
      }
    } finally {
      await f.close();
    }
    throw new Error('no used block found');
  }

  it('a bitmap whose checksum does not match is EFSBADCRC naming its group', async () => {
    const { img, group } = await withFreedBit();
    const f = await Filesystem.open(img, { write: false });
    try {
      const e = await getFreeBlocks(f).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(Ext4Error);
      expect((e as Ext4Error).code).toBe('EFSBADCRC');
      expect((e as Ext4Error).location).toMatchObject({ kind: 'group', group });
    } finally {
      await f.close();
    }
  });

  it('a descriptor count saying "full" or "all free" is not trusted: the bitmap is reported (= dumpe2fs), the mismatch is a warning', async () => {
    for (const claim of ['full', 'all free'] as const) {
      const img = imageCopy('ext4-4k-groups');
      let group = -1;
      const f0 = await Filesystem.open(img, { write: false });
      try {
        for (let g = 0; g < f0.sb.groupCount && group < 0; g++) {
          const d = await f0.group(g);
          if (!(d.flags & BG_FLAGS.BLOCK_UNINIT) && d.freeBlocks > 0 && d.freeBlocks < f0.blocksInGroup(g)) group = g;
        }
      } finally {
        await f0.close();
      }
      expect(group).toBeGreaterThanOrEqual(0);
      const want = dumpe2fsFreeBytes(img, 4096);
      // debugfs writes the count and reseals the descriptor: only the bitmap can tell.
      debugfs(img, [`set_bg ${group} free_blocks_count ${claim === 'full' ? 0 : 2048}`, `set_bg ${group} checksum calc`], { write: true });
      const f = await Filesystem.open(img, { write: false });
      try {
        expect((await f.group(group)).freeBlocks).toBe(claim === 'full' ? 0 : 2048);
        expect(await getFreeBlocks(f), claim).toEqual(want);
        expect(f.warnings.join('\n')).toMatch(new RegExp(`free counts differ from the group descriptors in 1 group \\(first: ${group}\\)`));
      } finally {
        await f.close();
      }
    }
  });

  it('without checksum verification, the bitmap is reported and its count mismatch with the descriptor is a warning', async () => {
    const { img, block, group } = await withFreedBit();
    const f = await Filesystem.open(img, { write: false, verifyChecksums: false });
    try {
      const list = await getFreeBlocks(f);
      const bs = f.blockSize;
      expect(list.some((e) => e.start <= block * bs && block * bs < e.start + e.len)).toBe(true);
      expect(f.warnings.join('\n')).toMatch(new RegExp(`free counts differ from the group descriptors in 1 group \\(first: ${group}\\)`));
    } finally {
      await f.close();
    }
  });
});

describe('forEachFreeRun', () => {
  /** Bit by bit. */
  function naive(bm: Uint8Array, from: number, to: number): [number, number][] {
    const out: [number, number][] = [];
    for (let i = from; i < Math.min(to, bm.length * 8); i++) {
      if (testBit(bm, i)) continue;
      const last = out[out.length - 1];
      if (last && last[0] + last[1] === i) last[1]++;
      else out.push([i, 1]);
    }
    return out;
  }

  it('equals a bit-by-bit scan on random bitmaps (runs crossing words, all-free and all-used words, ranges cut mid-word, unaligned views)', () => {
    const rnd = mulberry32(7);
    for (let t = 0; t < 300; t++) {
      const bytes = 4 * (1 + Math.floor(rnd() * 64));
      const shift = Math.floor(rnd() * 4);
      const backing = new Uint8Array(bytes + 4);
      const bm = backing.subarray(shift, shift + bytes); // byteOffset 0..3: unaligned views too
      // Long stretches of one value with sparse flips: whole words of 0 and of 0xffffffff.
      let v = rnd() < 0.5 ? 0 : 0xff;
      for (let i = 0; i < bytes; i++) {
        if (rnd() < 0.15) v ^= 0xff;
        bm[i] = rnd() < 0.2 ? Math.floor(rnd() * 256) : v;
      }
      const from = Math.floor(rnd() * bytes * 8), to = from + Math.floor(rnd() * (bytes * 8 - from + 40));
      const got: [number, number][] = [];
      forEachFreeRun(bm, from, to, (s, l) => void got.push([s, l]));
      expect(got, `t=${t} bytes=${bytes} shift=${shift} [${from}, ${to})`).toEqual(naive(bm, from, to));
    }
  });

  it('appendFreeRuns (the bulk scanner) gives the same runs into a RunTable, merged across consecutive bitmaps, with free counts; 32-bit (narrow) tables too, grown from one entry', () => {
    const rnd = mulberry32(8);
    for (let t = 0; t < 100; t++) {
      const narrow = t % 2 === 1;
      const table = narrow ? new RunTable(1, true) : new RunTable();
      const want: [number, number][] = [];
      let base = 1000, free = 0, counted = 0;
      for (let k = 0; k < 1 + Math.floor(rnd() * 6); k++) {
        const bytes = 4 * (1 + Math.floor(rnd() * 40));
        const bm = new Uint8Array(bytes);
        const mode = rnd();
        for (let i = 0; i < bytes; i++) bm[i] = mode < 0.2 ? 0 : mode < 0.3 ? 0xff : rnd() < 0.3 ? Math.floor(rnd() * 256) : rnd() < 0.5 ? 0 : 0xff;
        const lo = rnd() < 0.5 ? 0 : Math.floor(rnd() * bytes * 8), hi = rnd() < 0.5 ? bytes * 8 : lo + Math.floor(rnd() * (bytes * 8 - lo + 1));
        counted += appendFreeRuns(bm, lo, hi, base, table);
        for (const [s, l] of naive(bm, lo, hi)) {
          free += l;
          const last = want[want.length - 1];
          if (last && last[0] + last[1] === base + s) last[1] += l;
          else want.push([base + s, l]);
        }
        base += rnd() < 0.5 ? bytes * 8 : bytes * 8 + 1 + Math.floor(rnd() * 9); // next bitmap adjacent or not
      }
      const got = Array.from({ length: table.n }, (_, i) => [table.start[i]!, table.len[i]!]);
      expect(got, `t=${t}`).toEqual(want);
      expect(table.start).toBeInstanceOf(narrow ? Uint32Array : Float64Array);
      expect(counted).toBe(free);
    }
  });
});

