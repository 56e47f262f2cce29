/**
 * What the format modules below the Filesystem facade (transactions, the allocator, file-map
 * edits, orphan and inode lifecycle, journal replay) need from an open filesystem: its read
 * side. Declared here, below filesystem.ts, so that none of them imports the facade back
 * (test/structure/deps.test.ts). Filesystem implements it; the writer side (`transact`) is
 * `FsWriter` in transaction.ts.
 */
import type { BlockDevice } from '../io/device.js';
import type { BlockReader } from './block-view.js';
import type { Clock } from './clock.js';
import type { FileMap } from './file-map.js';
import type { GroupDesc } from './group-desc.js';
import type { Inode } from './inode.js';
import type { Platform } from './platform.js';
import type { Superblock } from './superblock.js';

export interface FsContext extends BlockReader {
  readonly device: BlockDevice;
  readonly sb: Superblock;
  readonly blockSize: number;
  readonly fsSeed: number;
  readonly verify: boolean;
  readonly readOnly: boolean;
  /** Warnings for the caller (the format layer never prints). */
  readonly warnings: string[];
  readonly now: Clock;
  readonly reproducible: boolean;
  readonly platform: Platform;
  /** Blocks [n, n+count) in one uncached read, as the block view sees them. */
  readDataBlocks(n: number, count: number): Promise<Uint8Array>;
  readDataBlocksInto(n: number, count: number, target: Uint8Array): Promise<void>;
  group(g: number): Promise<GroupDesc>;
  loadGroups(first?: number, end?: number): Promise<void>;
  blockBitmap(g: number): Promise<Uint8Array>;
  inodeBitmap(g: number): Promise<Uint8Array>;
  blocksInGroup(g: number): number;
  inodeLocation(ino: number): Promise<{ block: number; offset: number }>;
  readInode(ino: number): Promise<Inode>;
  inodeCsumSeed(inode: Inode): number | null;
  isFastSymlink(inode: Inode): boolean;
  fileMap(inode: Inode, readBlock?: (n: number) => Promise<Uint8Array>): Promise<FileMap>;
  /** A path (from the root) to its inode, following symlinks. */
  resolve(path: string | Uint8Array, opts?: { followLast?: boolean }): Promise<Inode>;
}
