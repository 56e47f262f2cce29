/**
 * The one adapter from journal block numbers to device I/O. A journal is a
 * run of blocks of some device, addressed as journal block n = logical block n
 * of the log (block 0 holds the journal superblock). Where those blocks live
 * is the host filesystem's business (for ext4: the journal inode's extents),
 * so the caller supplies `physical(n)`; everything in lib/jbd2 — recovery,
 * the log writer, the live journal — reads and writes through this.
 */
import { Ext4Error } from '../errors.js';
import type { BlockDevice } from '../io/device.js';
import type { JournalAccess } from './recovery.js';

/** Journal blocks on a device: read, write, flush (a flush is the device's barrier). */
export interface JournalIO extends JournalAccess {
  readBlock(journalBlock: number): Promise<Uint8Array>;
  writeBlock(journalBlock: number, data: Uint8Array): Promise<void>;
  /**
   * Write consecutive journal blocks from `firstJournalBlock` (`data`: whole blocks), as few device
   * writes as the placement allows (one per physically contiguous stretch). Optional: without it
   * the journal writes block by block.
   */
  writeBlocks?(firstJournalBlock: number, data: Uint8Array): Promise<void>;
  flush(): Promise<void>;
}

export interface JournalPlacement {
  /** Journal (and device) block size in bytes. */
  blockSize: number;
  /** Device block holding journal block n; throws (EFSCORRUPTED) for an unmapped block. */
  physical(journalBlock: number): number;
  /** Journal length in blocks, if known (recovery then refuses s_maxlen beyond it). */
  blockCount?: number;
}

export function journalOnDevice(device: BlockDevice, placement: JournalPlacement): JournalIO {
  const { blockSize, physical, blockCount } = placement;
  const at = (n: number) => {
    if (!Number.isInteger(n) || n < 0 || (blockCount !== undefined && n >= blockCount))
      throw new Ext4Error('EFSCORRUPTED', `journal block ${n} is outside the journal${blockCount !== undefined ? ` (${blockCount} blocks)` : ''}`, { structure: 'journal', location: { kind: 'journal-block', block: n } });
    return physical(n) * blockSize;
  };
  return {
    blockSize,
    ...(blockCount !== undefined ? { blockCount } : {}),
    readBlock: async (n) => device.read(at(n), blockSize),
    writeBlock: async (n, data) => {
      if (data.length !== blockSize) throw new Ext4Error('EINVAL', `journal block ${n}: ${data.length} bytes written, block size is ${blockSize}`, { structure: 'journal', location: { kind: 'journal-block', block: n } });
      await device.write(at(n), data);
    },
    writeBlocks: async (first, data) => {
      const n = data.length / blockSize;
      if (!Number.isInteger(n) || n < 1) throw new Ext4Error('EINVAL', `journal blocks from ${first}: ${data.length} bytes written, not whole blocks of ${blockSize}`, { structure: 'journal', location: { kind: 'journal-block', block: first } });
      // one device write per stretch whose physical blocks follow each other (the journal inode's extents)
      for (let i = 0; i < n; ) {
        const start = at(first + i);
        let k = 1;
        while (i + k < n && at(first + i + k) === start + k * blockSize) k++;
        await device.write(start, data.subarray(i * blockSize, (i + k) * blockSize));
        i += k;
      }
    },
    flush: () => device.flush(),
  };
}
