/**
 * A filesystem read straight from its device, for read-only scans of the committed state that
 * need only the superblock, the group descriptors and bitmaps (`free`): what a read-only
 * Filesystem.open reads, without building one — no block cache, block-view stack, inode and
 * directory readers or write session, so a command's bundled script need not carry them.
 *
 * Only when the disk is the current state: with needs_recovery set the journal may hold newer
 * blocks (the superblock itself included), which only a full open replays into memory, so
 * openDiskSource answers null and the caller opens a Filesystem. A read-only open does nothing
 * more than this otherwise (no MMP, no orphan processing: those are write-open work), so both
 * read the same bytes and fail with the same errors.
 */
import type { BlockDevice } from '../io/device.js';
import { Ext4Error } from '../errors.js';
import { checkBlockRun, superblockFsSeed, type Superblock } from './superblock.js';
import { probeSuperblock } from './superblock-probe.js';

export interface DiskSource {
  readonly device: BlockDevice;
  readonly sb: Superblock;
  readonly blockSize: number;
  readonly fsSeed: number;
  readonly verify: boolean;
  /** Warnings for the caller, as Filesystem.warnings. */
  readonly warnings: string[];
  /** Blocks [n, n+count) into `target` (count × blockSize bytes), checked as Filesystem.readDataBlocksInto checks them. */
  readDataBlocksInto(n: number, count: number, target: Uint8Array): Promise<void>;
}

/**
 * The superblock of `device` probed and checked as a read-only open checks it; null when the
 * journal needs recovery (open a Filesystem: it replays the journal into memory). The device
 * stays the caller's to close, whatever happens.
 */
export async function openDiskSource(device: BlockDevice, opts: { verify: boolean }): Promise<DiskSource | null> {
  const { sb, journaled } = await probeSuperblock(device, opts);
  if (journaled) return null;
  const blockSize = sb.blockSize;
  return {
    device,
    sb,
    blockSize,
    fsSeed: superblockFsSeed(sb),
    verify: opts.verify,
    warnings: [],
    async readDataBlocksInto(n: number, count: number, target: Uint8Array): Promise<void> {
      // Volume.readBlocksInto's checks.
      checkBlockRun(sb, n, count);
      if (target.length !== count * blockSize) throw new Ext4Error('EINVAL', `readDataBlocksInto: ${target.length}-byte buffer for ${count} blocks`);
      if (device.readInto) await device.readInto(n * blockSize, target);
      else target.set(await device.read(n * blockSize, target.length));
    },
  };
}
