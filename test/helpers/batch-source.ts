/** An InodeBatchSource over an open Filesystem for readInodeBatch tests, with hooks to watch or fail reads. */
import type { Filesystem } from '../../lib/node.js';
import type { InodeBatchSource } from '../../lib/ext4/inode-store.js';
import type { GroupDesc } from '../../lib/ext4/group-desc.js';

export interface BatchSourceHooks {
  /** Called for each readDataBlocks run (first block, count). */
  onRead?(n: number, count: number): void;
  /** Offer readDataBlocksInto too, calling this with each target buffer. */
  onReadInto?(target: Uint8Array): void;
  /** Replaces the group descriptor lookup (to fail a group). */
  group?(g: number): Promise<GroupDesc>;
}

export function inodeBatchSource(fs: Filesystem, hooks: BatchSourceHooks = {}): InodeBatchSource {
  const { onRead, onReadInto, group } = hooks;
  const src: InodeBatchSource = {
    sb: fs.sb,
    blockSize: fs.blockSize,
    fsSeed: fs.fsSeed,
    verify: fs.verify,
    group: group ?? ((g) => fs.group(g)),
    readDataBlocks: (n, count) => {
      onRead?.(n, count);
      return fs.readDataBlocks(n, count);
    },
  };
  if (onReadInto) {
    src.readDataBlocksInto = (n, count, target) => {
      onReadInto(target);
      return fs.readDataBlocksInto(n, count, target);
    };
  }
  return src;
}
