/**
 * Crash points of an htree index growing from one level to two (indirect_levels 0 → 1; 1 KiB
 * blocks, ~240 names of 250 bytes), with renames across directories, an exchange, an rmdir, a
 * symlink and a fifo around it — every point through ext4kit, a sample through e2fsck and Linux
 * (htree-growth.ts, namespace-points.ts).
 */
import { describe, it } from 'vitest';
import { HAVE_E2FSPROGS } from '../ops/helpers.js';
import { checkHtreeGrowth } from './htree-growth.js';

describe.skipIf(!HAVE_E2FSPROGS)('crash points of htree level growth', () => {
  it('one index level to two: every point replays to the old or the new namespace (ext4kit, e2fsck, Linux)', async () => {
    await checkHtreeGrowth({ label: 'one index level to two', mkfsOpts: [], sizeMiB: 8, batch: 1, levels: 0, thin: false, moreOps: true, maxPoints: 160, e2fsckSample: 6, linuxSample: 3, seed: 31 });
  }, 180_000);
});
