/**
 * Free-space scanning over block bitmaps: maximal free runs in a block range,
 * merged across group boundaries. Shared by the allocator (a transaction's
 * view) and by getFreeBlocks, fsmap and the reports (the committed view).
 * With bigalloc a bitmap bit is a cluster: runs are whole clusters (then
 * clipped to the range asked for).
 */
import type { Superblock } from './superblock.js';
import type { GroupDesc } from './group-desc.js';
import { forEachFreeRun } from './bitmap.js';
import { blocksInGroup, clusterRatio, clustersInGroup, groupFirstBlock, groupOfBlock } from './geometry.js';

/** Where a free-space scan gets group descriptors and block bitmaps from. */
export interface FreeScanSource {
  group(g: number): Promise<GroupDesc>;
  bitmap(g: number): Promise<Uint8Array>;
  /** Called before group g is scanned (e.g. to prefetch a batch of bitmaps). */
  beforeGroup?(g: number, endGroup: number): Promise<void>;
}

/**
 * Free runs (blocks) in [from, to), merged across group boundaries,
 * ascending; fn returns false to stop. A group whose descriptor says it is
 * full is skipped and one that is entirely free is reported without its
 * bitmap; BLOCK_UNINIT bitmaps come computed from the source.
 */
export async function scanFreeWith(sb: Superblock, src: FreeScanSource, from: number, to: number, fn: (start: number, length: number) => boolean | void): Promise<void> {
  from = Math.max(from, sb.s_first_data_block);
  to = Math.min(to, sb.blocksCount);
  if (from >= to) return;
  let runStart = -1, runLen = 0;
  let stop = false;
  const flush = () => {
    if (runLen > 0 && !stop && fn(runStart, runLen) === false) stop = true;
    runLen = 0;
    runStart = -1;
  };
  const add = (abs: number, l: number) => {
    if (stop) return;
    if (runLen > 0 && runStart + runLen === abs) runLen += l;
    else {
      flush();
      runStart = abs;
      runLen = l;
    }
  };
  const ratio = clusterRatio(sb);
  const gEnd = Math.min(sb.groupCount, groupOfBlock(sb, to - 1) + 1);
  for (let g = groupOfBlock(sb, from); g < gEnd && !stop; g++) {
    await src.beforeGroup?.(g, gEnd);
    const first = groupFirstBlock(sb, g);
    const gd = await src.group(g);
    const n = blocksInGroup(sb, g);
    const lo = Math.max(0, from - first), hi = Math.min(n, to - first);
    // The descriptor's free count is in clusters (bg_free_blocks_count), like the bitmap's bits.
    if (gd.freeBlocks === 0) {
      flush();
      continue;
    }
    if (gd.freeBlocks >= clustersInGroup(sb, g)) add(first + lo, hi - lo);
    else {
      // Bits [lo/ratio, ceil(hi/ratio)) cover blocks [lo, hi); each free run of clusters, clipped back to them.
      const cLo = Math.floor(lo / ratio), cHi = Math.ceil(hi / ratio);
      forEachFreeRun(await src.bitmap(g), cLo, cHi, (s, l) => {
        const b0 = Math.max(lo, s * ratio), b1 = Math.min(hi, (s + l) * ratio);
        if (b1 > b0) add(first + b0, b1 - b0);
      });
    }
    // A run continues into the next group only if it reaches this group's end.
    if (runLen > 0 && runStart + runLen !== first + hi) flush();
  }
  flush();
}

