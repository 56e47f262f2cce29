/**
 * FIEMAP emulated offline: the rows FS_IOC_FIEMAP returns for a file on a freshly mounted
 * filesystem (checked on Linux 6.18):
 * - extent-mapped files: one row per leaf extent of the on-disk tree, `unwritten` for
 *   uninitialised extents, `last` on the final one;
 * - block-mapped (ext2/ext3) files: maximal runs of logically and physically contiguous blocks
 *   that do not cross a block-pointer array (the 12 direct pointers, then every indirect block's
 *   pointers), each flagged `merged`;
 * - inline-data files: one row in bytes at the address of i_block, length min(inline size, i_size),
 *   flagged `last,not_aligned,inline`.
 * Once the kernel's extent-status cache is warm it may return neighbouring rows that are
 * contiguous (both logically and physically, same written state) as one; we give the cold-cache
 * view (filefrag's extent count is the same either way).
 */
import { NDIR_BLOCKS } from './blockmap.js';
import type { Extent } from './extents.js';
import { InodeBaseLayout, hasInlineData, type Inode } from './inode.js';
import { parseInodeXattrs } from './xattr.js';

/** What the emulation reads: the block size, where an inode lives, and the file's map. */
export interface FiemapSource {
  readonly blockSize: number;
  inodeLocation(ino: number): Promise<{ block: number; offset: number }>;
  fileMap(inode: Inode): Promise<FiemapFileMap>;
}

/** A file's block map as Filesystem.fileMap gives it (logical/physical in blocks). */
export interface FiemapFileMap {
  kind: string;
  extents: readonly Extent[];
}

export const FIEMAP_EXTENT = {
  LAST: 0x1,
  UNKNOWN: 0x2,
  DELALLOC: 0x4,
  ENCODED: 0x8,
  DATA_ENCRYPTED: 0x80,
  NOT_ALIGNED: 0x100,
  DATA_INLINE: 0x200,
  DATA_TAIL: 0x400,
  UNWRITTEN: 0x800,
  MERGED: 0x1000,
  SHARED: 0x2000,
} as const;

/**
 * One FIEMAP extent. Offsets and length count units of `unit` bytes: the
 * block size for block-based extents, 1 byte for inline data (so every value
 * stays an exact integer however large the filesystem).
 */
export interface FiemapExtent {
  logical: number;
  physical: number;
  length: number;
  unit: number;
  flags: number;
}

/** Byte address of an inode's i_block (inline data lives there). */
async function iblockAddress(fs: FiemapSource, ino: number): Promise<number> {
  const { block, offset } = await fs.inodeLocation(ino);
  return block * fs.blockSize + offset + InodeBaseLayout.offsetOf('i_block');
}

/** The extents FS_IOC_FIEMAP returns for a file (cold extent-status cache; see the module comment). */
export async function fiemapExtents(fs: FiemapSource, inode: Inode, map?: FiemapFileMap): Promise<FiemapExtent[]> {
  const bs = fs.blockSize;
  if (hasInlineData(inode)) {
    // ext4_inline_data_iomap: length = min(inline size, i_size); the inline size is the 60 bytes of
    // i_block plus the system.data value (0 without that xattr); a zero length maps nothing.
    const data = parseInodeXattrs(inode.raw, inode.extraIsize, inode.ino).find((x) => x.index === 7 && x.name === 'system.data');
    const length = Math.min(data ? InodeBaseLayout.sizeOf('i_block') + data.valueSize : 0, inode.size);
    if (length === 0) return [];
    return [{ logical: 0, physical: await iblockAddress(fs, inode.ino), length, unit: 1, flags: FIEMAP_EXTENT.LAST | FIEMAP_EXTENT.NOT_ALIGNED | FIEMAP_EXTENT.DATA_INLINE }];
  }
  const m = map ?? (await fs.fileMap(inode));
  const out: FiemapExtent[] = [];
  if (m.kind === 'extents') {
    for (const e of m.extents) out.push({ logical: e.logical, physical: e.physical, length: e.length, unit: bs, flags: e.unwritten ? FIEMAP_EXTENT.UNWRITTEN : 0 });
  } else if (m.kind === 'blockmap') {
    // ext4_ind_map_blocks maps at most to the end of the pointer array holding the first block.
    const per = bs / 4;
    const arrayEnd = (lb: number) => (lb < NDIR_BLOCKS ? NDIR_BLOCKS : NDIR_BLOCKS + (Math.floor((lb - NDIR_BLOCKS) / per) + 1) * per);
    for (const e of m.extents) {
      let lb = e.logical, pb = e.physical;
      const end = e.logical + e.length;
      while (lb < end) {
        const stop = Math.min(end, arrayEnd(lb));
        const prev = out[out.length - 1];
        if (prev && prev.logical + prev.length === lb && prev.physical + prev.length === pb && arrayEnd(prev.logical) >= stop) prev.length += stop - lb;
        else out.push({ logical: lb, physical: pb, length: stop - lb, unit: bs, flags: FIEMAP_EXTENT.MERGED });
        pb += stop - lb;
        lb = stop;
      }
    }
  }
  if (out.length) out[out.length - 1]!.flags |= FIEMAP_EXTENT.LAST;
  return out;
}
