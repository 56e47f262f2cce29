/**
 * The superblock of a device, read and checked as Filesystem.open reads and checks it for a
 * read-only open: the 1024 bytes at byte 1024, parsed and validated (parseSuperblock: magic,
 * geometry against the device size, checksum unless `verify` is false), then the feature
 * verdict (assertOpenable: a feature we cannot read refuses). Commands that need nothing
 * but the superblock (`ext4kit info`) stop here instead of building a Filesystem — unless
 * `journaled` says the journal needs recovery: the current superblock may then be in the
 * journal, and only a full open (which replays it into memory) sees it.
 */
import type { BlockDevice } from '../io/device.js';
import { Ext4Error } from '../errors.js';
import { assertOpenable } from './features.js';
import { COMPAT, INCOMPAT, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, parseSuperblock, type Superblock } from './superblock.js';

export interface ProbedSuperblock {
  sb: Superblock;
  /** The journal needs recovery: the on-disk superblock may be stale (open the Filesystem instead). */
  journaled: boolean;
}

export async function probeSuperblock(device: BlockDevice, opts: { verify: boolean }): Promise<ProbedSuperblock> {
  const bytes = await device.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE).catch((e: unknown) => {
    throw new Ext4Error('EINVAL', `cannot read a superblock from ${device.name}: image too small or unreadable`, { structure: 'superblock', location: { kind: 'byte', offset: 1024 }, cause: e });
  });
  const sb = parseSuperblock(bytes, { deviceSize: device.size, verifyChecksum: opts.verify });
  assertOpenable(sb, { write: false });
  return { sb, journaled: !!(sb.s_feature_incompat & INCOMPAT.RECOVER && sb.s_feature_compat & COMPAT.HAS_JOURNAL) };
}
