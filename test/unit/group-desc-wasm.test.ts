/**
 * lib/ext4/group-desc-wasm.ts: on a real descriptor block (metadata_csum, 64-byte descriptors,
 * and 32-byte ones without checksums) it decodes every descriptor to what group(g) decodes, and it
 * stops exactly at the first descriptor that is not plainly valid — a wrong checksum, a bound, a
 * high half set — so that group-table.ts decodes that one in JS (and throws group()'s error).
 * (test/unit/group-table.test.ts checks loadGroupTable as a whole, errors included.)
 */
import { describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { COL_BB_CSUM, COL_BLOCK_BITMAP, COL_FLAGS, COL_FREE, COL_INODE_BITMAP, COL_INODE_TABLE, decodeGroupDescs } from '../../lib/ext4/group-desc-wasm.js';
import { descriptorBlockLocation, inodeTableBlocks } from '../../lib/ext4/geometry.js';
import { GroupDesc64Layout } from '../../lib/ext4/group-desc.js';
import { getImage } from '../helpers/images.js';

describe('group-desc-wasm', () => {
  for (const name of ['ext4-4k-groups', 'ext4-no64bit', 'ext4-nocsum'] as const) {
    it(`${name}: decodes the first descriptor block as group(g); stops at a bad checksum, bound or high half`, async () => {
      const fs = await Filesystem.open(getImage(name).image, { write: false });
      try {
        const sb = fs.sb, size = sb.descSize, bs = sb.blockSize;
        const block = new Uint8Array(bs);
        await fs.readDataBlocksInto(descriptorBlockLocation(sb, 0), 1, block);
        const n = Math.min(sb.groupCount, bs / size);
        const bytes = block.subarray(0, n * size);
        const verify = sb.hasMetadataCsum;
        const wide = sb.is64 && size >= 64;
        const bounds = { lo: sb.s_first_data_block, top: sb.blocksCount, itMax: sb.blocksCount - inodeTableBlocks(sb), maxFree: sb.s_clusters_per_group, maxFreeInodes: sb.s_inodes_per_group };
        const d = decodeGroupDescs(bytes, size, 0, fs.fsSeed, bounds, verify, wide)!;
        expect(d.count).toBe(n);
        const cols = [COL_BLOCK_BITMAP, COL_INODE_BITMAP, COL_INODE_TABLE, COL_FREE, COL_FLAGS, COL_BB_CSUM].map((c) => Array.from(d.column(c)));
        for (let g = 0; g < n; g++) {
          const gd = await fs.group(g);
          expect(cols.map((c) => c[g]), `group ${g}`).toEqual([gd.blockBitmap, gd.inodeBitmap, gd.inodeTable, gd.freeBlocks, gd.flags, gd.blockBitmapCsum]);
        }
        const at = Math.min(3, n - 1);
        const damaged = (f: (b: Uint8Array) => void) => {
          const b = bytes.slice();
          f(b.subarray(at * size, (at + 1) * size));
          return decodeGroupDescs(b, size, 0, fs.fsSeed, bounds, verify, wide)!.count;
        };
        if (verify) expect(damaged((b) => (b[GroupDesc64Layout.offsetOf('bg_checksum')]! ^= 1))).toBe(at);
        expect(damaged((b) => GroupDesc64Layout.set(b, 'bg_block_bitmap_lo', sb.blocksCount))).toBe(at);
        expect(damaged((b) => GroupDesc64Layout.set(b, 'bg_inode_table_lo', bounds.itMax + 1))).toBe(at);
        expect(damaged((b) => GroupDesc64Layout.set(b, 'bg_free_blocks_count_lo', sb.s_clusters_per_group + 1))).toBe(at);
        if (wide) expect(damaged((b) => GroupDesc64Layout.set(b, 'bg_inode_table_hi', 1))).toBe(at);
        // A descriptor checksum is not looked at without verify.
        if (verify) expect(decodeGroupDescs(bytes.map((x, i) => (i === at * size + GroupDesc64Layout.offsetOf('bg_checksum') ? x ^ 1 : x)), size, 0, fs.fsSeed, bounds, false, wide)!.count).toBe(n);
      } finally {
        await fs.close();
      }
    });
  }
});
