/**
 * Every ext4 metadata checksum seed in one place (as e2fsprogs lib/ext2fs/csum.c);
 * the CRCs themselves are lib/codec/crc.ts, shared with jbd2.
 */
import { crc32c, crc32cLe32 } from '../codec/crc.js';
export * from '../codec/crc.js';

/** Seeds derived from the superblock: see ext4-format.md §11. */
export function fsSeed(uuid: Uint8Array, checksumSeed: number | undefined): number {
  return checksumSeed !== undefined ? checksumSeed >>> 0 : crc32c(0xffffffff, uuid);
}

/**
 * crc32c(crc32c(fsSeed, le32 ino), le32 generation): the seed of an inode's and its blocks'
 * checksums. Computed for every inode read: the two words go straight into the CRC (no bytes).
 */
export function inodeSeed(fsSeedValue: number, ino: number, generation: number): number {
  return crc32cLe32(crc32cLe32(fsSeedValue, ino), generation);
}
