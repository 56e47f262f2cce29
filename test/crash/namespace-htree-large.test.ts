/**
 * Crash points of an htree index growing from two levels to three with large_dir
 * (indirect_levels 1 → 2): ~19,500 names of 250 bytes on 1 KiB blocks fill the root and a node,
 * then all but ~50 names near the growing one are removed (the index keeps its shape); only the
 * points of the growing rename (across directories) and the create after it are checked —
 * through ext4kit, a sample through e2fsck and Linux (htree-growth.ts, namespace-points.ts).
 * Building the directory is most of this file's time.
 */
import { describe, it } from 'vitest';
import { HAVE_E2FSPROGS } from '../ops/helpers.js';
import { checkHtreeGrowth } from './htree-growth.js';

describe.skipIf(!HAVE_E2FSPROGS)('crash points of htree level growth with large_dir', () => {
  it('two index levels to three: every point replays to the old or the new namespace (ext4kit, e2fsck, Linux)', async () => {
    await checkHtreeGrowth({ label: 'large_dir: two index levels to three', mkfsOpts: ['-O', 'large_dir', '-N', '2048'], sizeMiB: 40, batch: 250, levels: 1, thin: true, moreOps: false, focusOps: [2, 3], maxPoints: 20, e2fsckSample: 2, linuxSample: 1, seed: 32 });
  }, 180_000);
});
