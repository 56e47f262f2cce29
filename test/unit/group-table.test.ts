/**
 * loadGroupTable (lib/ext4/group-table.ts): the descriptors as columns, decoded in bulk from the
 * descriptor blocks, equal what Volume.group decodes one by one (parseGroupDesc + checkGroupDesc)
 * on every descriptor layout — 64-byte and 32-byte descriptors, metadata_csum, gdt_csum, no
 * checksums, meta_bg, 1 KiB blocks — and a damaged descriptor is rejected with group()'s error.
 */
import { describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { loadGroupTable } from '../../lib/ext4/group-table.js';
import { computeUninitBlockBitmap, testBit, uninitGroupHasMetadata } from '../../lib/ext4/bitmap.js';
import { blocksInGroup, clusterRatio } from '../../lib/ext4/geometry.js';
import { Ext4Error } from '../../lib/errors.js';
import { getImage, imageCopy } from '../helpers/images.js';
import { debugfs } from '../helpers/tools.js';

const LAYOUTS = ['ext4-4k-groups', 'ext4-1k', 'ext4-no64bit', 'ext4-gdtcsum', 'ext4-nocsum', 'ext4-metabg', 'ext3-1k'] as const;

describe('loadGroupTable', () => {
  for (const name of LAYOUTS) {
    it(`${name}: every descriptor equals group(g), whole table and a range starting mid-block`, async () => {
      const fs = await Filesystem.open(getImage(name).image, { write: false });
      try {
        const n = fs.sb.groupCount;
        const t = await loadGroupTable(fs, 0, n);
        expect(t.first).toBe(0);
        expect(t.end).toBe(n);
        for (let g = 0; g < n; g++) {
          const d = await fs.group(g);
          const got = { blockBitmap: t.blockBitmap[g], inodeBitmap: t.inodeBitmap[g], inodeTable: t.inodeTable[g], freeBlocks: t.freeClusters[g], flags: t.flags[g], blockBitmapCsum: t.blockBitmapCsum[g] };
          expect(got, `group ${g}`).toEqual({ blockBitmap: d.blockBitmap, inodeBitmap: d.inodeBitmap, inodeTable: d.inodeTable, freeBlocks: d.freeBlocks, flags: d.flags, blockBitmapCsum: d.blockBitmapCsum });
        }
        const from = Math.min(n - 1, 1), part = await loadGroupTable(fs, from, n);
        expect(Array.from(part.blockBitmap)).toEqual(Array.from(t.blockBitmap.subarray(from)));
        expect(Array.from(part.freeClusters)).toEqual(Array.from(t.freeClusters.subarray(from)));
        // Read and decoded a descriptor block at a time through a lent buffer: the same columns.
        const pieces = await loadGroupTable(fs, from, n, new Uint8Array(fs.blockSize + 7));
        for (const col of ['blockBitmap', 'inodeBitmap', 'inodeTable', 'freeClusters', 'flags', 'blockBitmapCsum'] as const)
          expect(Array.from(pieces[col]), col).toEqual(Array.from(t[col].subarray(from)));
      } finally {
        await fs.close();
      }
    });
  }

  it('a descriptor whose checksum or bounds are wrong is rejected as group(g) rejects it (code, message, location)', async () => {
    for (const [label, cmds] of [
      ['checksum', ['set_bg 3 free_blocks_count 17']],
      ['block bitmap outside the filesystem', ['set_bg 3 block_bitmap 99999999', 'set_bg 3 checksum calc']],
      ['free count above the group size', ['set_bg 3 free_blocks_count 9999', 'set_bg 3 checksum calc']],
    ] as const) {
      const img = imageCopy('ext4-4k-groups');
      debugfs(img, [...cmds], { write: true });
      const whole = await Filesystem.open(img, { write: false });
      const single = await Filesystem.open(img, { write: false });
      try {
        const e = await loadGroupTable(whole, 0, whole.sb.groupCount).catch((x: unknown) => x);
        const want = await single.group(3).catch((x: unknown) => x);
        expect(want, label).toBeInstanceOf(Ext4Error);
        expect(e, label).toBeInstanceOf(Ext4Error);
        const { code, message, location } = e as Ext4Error;
        expect({ code, message, location }, label).toEqual({ code: (want as Ext4Error).code, message: (want as Ext4Error).message, location: (want as Ext4Error).location });
        // Groups before it decode fine on their own.
        await expect(loadGroupTable(whole, 0, 3)).resolves.toBeDefined();
      } finally {
        await whole.close();
        await single.close();
      }
    }
  });
});

describe('uninitGroupHasMetadata', () => {
  it('is true exactly when the computed BLOCK_UNINIT bitmap marks a block of the group (every group of every layout)', async () => {
    for (const name of [...LAYOUTS, 'ext4-noflexbg'] as const) {
      const fs = await Filesystem.open(getImage(name).image, { write: false });
      try {
        expect(clusterRatio(fs.sb)).toBe(1);
        let yes = 0, no = 0;
        for (let g = 0; g < fs.sb.groupCount; g++) {
          const d = await fs.group(g);
          const bm = computeUninitBlockBitmap(fs.sb, d);
          let marked = false;
          for (let i = 0; i < blocksInGroup(fs.sb, g) && !marked; i++) marked = testBit(bm, i);
          expect(uninitGroupHasMetadata(fs.sb, g, d.blockBitmap, d.inodeBitmap, d.inodeTable), `${name} group ${g}`).toBe(marked);
          if (marked) yes++;
          else no++;
        }
        // Both answers occur on the multi-group flex_bg layouts.
        if (name === 'ext4-4k-groups' || name === 'ext4-metabg') expect(yes > 0 && no > 0, name).toBe(true);
      } finally {
        await fs.close();
      }
    }
  });
});
