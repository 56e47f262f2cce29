/**
 * How an inode's logical blocks map to the disk, whatever the mapping: an extent tree, a
 * block map (direct/indirect pointers), inline data, or nothing (device nodes, fast symlinks).
 * One reader for every user (file reads, directories, truncate and delete, the reports); the
 * caller passes the block view to read tree/indirect blocks through (a transaction passes its own).
 */
import type { BlockReader } from './block-view.js';
import { INODE_FLAGS, hasInlineData, isExtentMapped, type Inode } from './inode.js';
import { walkExtentTree, type Extent } from './extents.js';
import { walkBlockMap } from './blockmap.js';

/** How a file's logical blocks map to the disk. */
export interface FileMap {
  extents: Extent[];
  /** Blocks owned for bookkeeping: extent-tree nodes or indirect blocks. */
  metadataBlocks: number[];
  /** Extent tree depth (0 = all in the inode), or -1 for block-mapped/inline. */
  depth: number;
  kind: 'extents' | 'blockmap' | 'inline' | 'none';
}

/** What reading a map needs to know about the filesystem. */
export interface FileMapContext {
  readonly blockSize: number;
  readonly verify: boolean;
  readonly sb: { readonly s_first_data_block: number; readonly blocksCount: number };
  /** Seed of the inode's extent-block checksums, or null without metadata_csum. */
  inodeCsumSeed(inode: Inode): number | null;
}

/** kernel ext4_inode_is_fast_symlink: no data blocks besides the xattr block (and not inline data). */
export function isFastSymlink(inode: Inode, blockSize: number): boolean {
  if (inode.type !== 'symlink' || hasInlineData(inode)) return false;
  if (inode.flags & INODE_FLAGS.EA_INODE) return inode.size > 0 && inode.size < 60;
  const eaSectors = inode.fileAcl ? blockSize / 512 : 0;
  return inode.blocks512 - eaSectors === 0;
}

export async function readFileMap(ctx: FileMapContext, inode: Inode, view: BlockReader): Promise<FileMap> {
  if (hasInlineData(inode)) return { extents: [], metadataBlocks: [], depth: -1, kind: 'inline' };
  const t = inode.type;
  // Fast symlinks and device nodes keep other data in i_block.
  if (t === 'chardev' || t === 'blockdev' || t === 'fifo' || t === 'socket') return { extents: [], metadataBlocks: [], depth: -1, kind: 'none' };
  if (t === 'symlink' && isFastSymlink(inode, ctx.blockSize)) return { extents: [], metadataBlocks: [], depth: -1, kind: 'none' };
  // (one context for both walks, the extent walk's checksum seed filled in only for it: no spread,
  // which interpreted in a fresh process copies key by key)
  const walk = { ino: inode.ino, blockSize: ctx.blockSize, firstDataBlock: ctx.sb.s_first_data_block, blocksCount: ctx.sb.blocksCount, readBlock: (n: number) => view.readBlock(n), csumSeed: null as number | null, verify: ctx.verify };
  if (isExtentMapped(inode)) {
    walk.csumSeed = ctx.inodeCsumSeed(inode);
    const info = await walkExtentTree(inode.base.i_block, walk);
    return { extents: info.extents, metadataBlocks: info.treeBlocks.map((b) => b.block), depth: info.depth, kind: 'extents' };
  }
  const info = await walkBlockMap(inode.base.i_block, walk);
  return { extents: info.extents, metadataBlocks: info.indirectBlocks, depth: -1, kind: 'blockmap' };
}
