/**
 * Replay a journal in place, like `e2fsck -E journal_only`: the replayed
 * blocks go home, the journal is emptied and needs_recovery is cleared;
 * nothing else is touched (lib/ext4/journal-replay.ts has the exact effect).
 */
import { Ext4Error } from '../errors.js';
import type { BlockDevice } from '../io/device.js';
import { Filesystem } from '../ext4/filesystem.js';
import { internalJournal, replayJournal, replayTargetOn, type ReplaySummary } from '../ext4/journal-replay.js';
import { COMPAT } from '../ext4/superblock.js';

/** Replay the journal of the filesystem on `device` in place (ext4kit/node's replayImage also takes a path). */
export async function replayImage(device: BlockDevice): Promise<ReplaySummary> {
  // A read-only view of the stale on-disk state, only to map the journal inode.
  const fs = await Filesystem.open(device, { journalRecovery: 'ignore' });
  if (!(fs.sb.s_feature_compat & COMPAT.HAS_JOURNAL)) throw new Ext4Error('EINVAL', 'the filesystem has no journal');
  const journal = await internalJournal(fs, device);
  return replayJournal(replayTargetOn(device, journal, { blockSize: fs.blockSize }));
}
