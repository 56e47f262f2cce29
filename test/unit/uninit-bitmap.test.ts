/**
 * setBitRange (whole bytes at once) against setting bit by bit, and computeUninitBlockBitmap
 * (ranges of metadata marked through it, built in a reused block or a new one) against marking
 * each block of every group's fixed metadata one at a time, on every descriptor layout; and
 * computeUninitInodeBitmap against setting the padding bits one by one.
 */
import { describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { computeUninitBlockBitmap, computeUninitInodeBitmap, setBit, setBitRange } from '../../lib/ext4/bitmap.js';
import { bitOfBlock, blocksInGroup, clustersInGroup, groupFirstBlock, groupFixedMetadata, inodeTableBlocks } from '../../lib/ext4/geometry.js';
import { mulberry32 } from '../../lib/io/prng.js';
import { getImage } from '../helpers/images.js';

describe('setBitRange', () => {
  it('equals setting each bit, for ranges starting and ending anywhere in a byte', () => {
    const rnd = mulberry32(3);
    for (let t = 0; t < 500; t++) {
      const bytes = 1 + Math.floor(rnd() * 40);
      const start = Math.floor(rnd() * bytes * 8), count = Math.floor(rnd() * (bytes * 8 - start + 1));
      const got = Uint8Array.from({ length: bytes }, () => (rnd() < 0.5 ? 0 : Math.floor(rnd() * 256)));
      const want = got.slice();
      setBitRange(got, start, count);
      for (let i = start; i < start + count; i++) setBit(want, i);
      expect(got, `start ${start} count ${count}`).toEqual(want);
    }
  });
});

describe('computeUninitBlockBitmap', () => {
  for (const name of ['ext4-4k-groups', 'ext4-1k', 'ext4-metabg', 'ext4-noflexbg', 'ext3-1k'] as const) {
    it(`${name}: every group's computed bitmap marks exactly its fixed metadata and padding, bit by bit`, async () => {
      const fs = await Filesystem.open(getImage(name).image, { write: false });
      try {
        const sb = fs.sb;
        const scratch = new Uint8Array(sb.blockSize).fill(0xa5); // stale bytes must not show through
        for (let g = 0; g < sb.groupCount; g++) {
          const d = await fs.group(g);
          const want = new Uint8Array(sb.blockSize);
          const first = groupFirstBlock(sb, g), n = blocksInGroup(sb, g);
          const mark = (b: number, count = 1) => {
            for (let x = b; x < b + count; x++) if (x >= first && x < first + n) setBit(want, bitOfBlock(sb, x));
          };
          const fixed = groupFixedMetadata(sb, g);
          if (fixed.superBlock >= 0) mark(fixed.superBlock);
          if (fixed.oldDescStart >= 0) mark(fixed.oldDescStart, fixed.oldDescCount);
          if (fixed.newDescBlock >= 0) mark(fixed.newDescBlock);
          mark(d.blockBitmap);
          mark(d.inodeBitmap);
          mark(d.inodeTable, inodeTableBlocks(sb));
          for (let i = clustersInGroup(sb, g); i < sb.blockSize * 8; i++) setBit(want, i);
          expect(computeUninitBlockBitmap(sb, d), `group ${g}`).toEqual(want);
          expect(computeUninitBlockBitmap(sb, d, scratch), `group ${g} in a reused block`).toEqual(want);
        }
      } finally {
        await fs.close();
      }
    });
  }
});

describe('computeUninitInodeBitmap', () => {
  it('sets exactly the bits past s_inodes_per_group, for inode counts ending anywhere in a byte', () => {
    for (const blockSize of [1024, 4096]) {
      for (const perGroup of [1, 7, 8, 9, 2041, 2048, 8191, blockSize * 8 - 1, blockSize * 8]) {
        const want = new Uint8Array(blockSize);
        for (let i = perGroup; i < blockSize * 8; i++) setBit(want, i);
        const got = computeUninitInodeBitmap({ blockSize, s_inodes_per_group: perGroup } as Parameters<typeof computeUninitInodeBitmap>[0]);
        expect(got, `block ${blockSize} inodes ${perGroup}`).toEqual(want);
      }
    }
  });
});
