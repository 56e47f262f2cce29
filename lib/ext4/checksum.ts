/**
 * Every ext4 metadata checksum seed in one place (as e2fsprogs lib/ext2fs/csum.c);
 * the CRCs themselves are lib/codec/crc.ts, shared with jbd2.
 */
import { crc32c } from '../codec/crc.js';
import { le32 as words } from '../codec/layout.js';
export * from '../codec/crc.js';

/** Seeds derived from the superblock: see ext4-format.md §11. */
export function fsSeed(uuid: Uint8Array, checksumSeed: number | undefined): number {
  return checksumSeed !== undefined ? checksumSeed >>> 0 : crc32c(0xffffffff, uuid);
}

/** Scratch for inodeSeed: computed for every inode read, so it allocates nothing (single-threaded, never held across a call). */
const SEED_WORDS = new Uint8Array(8);

/** crc32c(crc32c(fsSeed, le32 ino), le32 generation): the seed of an inode's and its blocks' checksums. */
export function inodeSeed(fsSeedValue: number, ino: number, generation: number): number {
  words.set(SEED_WORDS, 0, ino);
  words.set(SEED_WORDS, 1, generation);
  return crc32c(fsSeedValue, SEED_WORDS);
}
