/**
 * Where the internal journal lives: journal block n is logical block n of the
 * journal inode (s_journal_inum). This turns the inode's extent map into the
 * jbd2 layer's device adapter, once for every user (write open, read-only
 * overlay, `replay`, the live journal).
 */
import { Ext4Error } from '../errors.js';
import type { BlockDevice } from '../io/device.js';
import { journalOnDevice, type JournalIO } from '../jbd2/device.js';
import { findExtent, type Extent } from './extents.js';

/** Device block of journal block n; a hole or an unwritten extent in the journal is corruption. */
export function journalPhysical(map: readonly Extent[], jino: number): (journalBlock: number) => number {
  return (n) => {
    const { extent } = findExtent(map, n);
    if (!extent || extent.unwritten)
      throw new Ext4Error('EFSCORRUPTED', `journal block ${n} is not mapped`, { structure: `inode ${jino} (journal)`, location: { kind: 'logical-block', block: n } });
    return extent.physical + (n - extent.logical);
  };
}

/** The journal inode's blocks on `device`, addressed as journal blocks. */
export function journalOnInode(device: BlockDevice, blockSize: number, map: readonly Extent[], jino: number): JournalIO {
  return journalOnDevice(device, { blockSize, physical: journalPhysical(map, jino) });
}
