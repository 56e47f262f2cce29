import type { Extent } from '../../lib/ext4/extents.js';

/**
 * Adjacent extents joined without the on-disk length cap (lib's mergeAdjacent stops at 32,768
 * blocks, as a leaf entry must): for comparing a file's mapping with a per-block model.
 */
export function mergedExtents(list: readonly Extent[]): Extent[] {
  const out: Extent[] = [];
  for (const e of list) {
    const last = out[out.length - 1];
    if (last && last.logical + last.length === e.logical && last.physical + last.length === e.physical) last.length += e.length;
    else out.push({ ...e });
  }
  return out;
}
