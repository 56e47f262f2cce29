/**
 * What opening a filesystem reads (lib/ext4/volume.ts, superblock-probe.ts): the superblock
 * only; the classic GDT (all descriptor blocks, one read) when the first descriptor is asked
 * for; and the descriptors then agree with dumpe2fs. On a 1 TiB image the GDT is 128 blocks
 * that `info` never needs.
 */
import { describe, expect, it } from 'vitest';
import type { BlockDevice } from '../../lib/io/device.js';
import { FileDevice } from '../../lib/io/file-device.js';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { descBlockCount, descriptorBlockLocation } from '../../lib/ext4/geometry.js';
import { probeSuperblock } from '../../lib/ext4/superblock-probe.js';
import { getImage } from '../helpers/images.js';
import { dumpe2fsGroups } from '../helpers/tools.js';

/** A device that records every read (position, length). */
function recording(inner: BlockDevice): { device: BlockDevice; reads: [number, number][] } {
  const reads: [number, number][] = [];
  const device: BlockDevice = {
    get size() { return inner.size; },
    get readOnly() { return inner.readOnly; },
    get name() { return inner.name; },
    read: (p, n) => (reads.push([p, n]), inner.read(p, n)),
    write: (p, d) => inner.write(p, d),
    flush: () => inner.flush(),
    close: () => inner.close(),
  };
  return { device, reads };
}

describe('opening reads the superblock; the GDT when a descriptor is first needed', () => {
  it.each(['ext4-4k', 'ext4-1k', 'ext2'])('%s', async (name) => {
    const img = getImage(name).image;
    const { device, reads } = recording(await FileDevice.open(img, { write: false }));
    const fs = await Filesystem.open(device, { closeDevice: true });
    try {
      expect(reads).toEqual([[1024, 1024]]);
      expect((await probeSuperblock(device, { verify: true })).sb.s_uuid).toEqual(fs.sb.s_uuid);
      reads.length = 0;
      const groups = dumpe2fsGroups(img);
      const last = fs.sb.groupCount - 1;
      const gd = await fs.group(last);
      // One read starting at the first descriptor block and covering all of them (the cache may read ahead).
      const bs = fs.blockSize;
      expect(reads.length).toBe(1);
      expect(reads[0]![0]).toBe(descriptorBlockLocation(fs.sb, 0) * bs);
      expect(reads[0]![1]).toBeGreaterThanOrEqual(descBlockCount(fs.sb) * bs);
      reads.length = 0;
      await fs.loadGroups();
      expect(reads).toEqual([]);
      expect(gd.blockBitmap).toBe(groups[last]!.blockBitmap);
      expect(gd.inodeTable).toBe(groups[last]!.inodeTable[0]);
    } finally {
      await fs.close();
    }
  });
});
