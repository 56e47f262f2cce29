/**
 * Replay a journal in place, like `e2fsck -E journal_only`: the replayed
 * blocks go home, the journal is emptied and needs_recovery is cleared;
 * nothing else is touched (lib/ext4/journal/replay.ts has the exact effect).
 */
import { Ext4Error } from '../errors.js';
import type { BlockDevice } from '../io/device.js';
import { Filesystem } from '../ext4/filesystem.js';
import { findExtent } from '../ext4/extents.js';
import { replayJournal, type ReplaySummary } from '../ext4/journal-replay.js';
import { COMPAT, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, parseSuperblock } from '../ext4/superblock.js';

/** Replay the journal of the filesystem on `device` in place (ext4kit/node's replayImage also takes a path). */
export async function replayImage(device: BlockDevice): Promise<ReplaySummary> {
  {
    // A read-only view of the stale on-disk state, only to map the journal inode.
    const fs = await Filesystem.open(device, { journalRecovery: 'ignore' });
    if (!(fs.sb.s_feature_compat & COMPAT.HAS_JOURNAL)) throw new Ext4Error('EINVAL', 'the filesystem has no journal');
    const ji = await fs.readInode(fs.sb.s_journal_inum);
    const map = (await fs.fileMap(ji)).extents;
    const bs = fs.blockSize;
    const phys = (n: number) => {
      const { extent } = findExtent(map, n);
      if (!extent) throw new Ext4Error('EFSCORRUPTED', `journal block ${n} is not mapped`, { structure: 'journal inode' });
      return extent.physical + n - extent.logical;
    };
    return await replayJournal({
      device: {
        writeBlock: (b, d) => device.write(b * bs, d),
        flush: () => device.flush(),
      },
      journal: {
        blockSize: bs,
        readBlock: (n) => device.read(phys(n) * bs, bs),
        writeBlock: (n, d) => device.write(phys(n) * bs, d),
      },
      superblock: {
        read: async () => parseSuperblock(await device.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE), { deviceSize: device.size }),
        write: (bytes) => device.write(SUPERBLOCK_OFFSET, bytes),
      },
    });
  }
}
