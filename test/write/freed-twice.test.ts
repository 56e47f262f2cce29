/**
 * markRuns' "a bit already in the target state" check, word-wise (lib/ext4/bit-runs.ts): a block
 * in the middle of a file's extent marked free in a bitmap whose checksum and counts agree
 * (debugfs freeb) is found when the file is truncated — EFSCORRUPTED naming that exact block and
 * the group, and the image left as it was.
 */
import { describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { openFile } from '../../lib/ops/file.js';
import { debugfs, dumpe2fsGroups } from '../helpers/tools.js';
import { buildImage, CONFIGS, debugfsExtents, HAVE_E2FSPROGS, sha256File } from './helpers.js';

describe.skipIf(!HAVE_E2FSPROGS)('freeing a block already free', () => {
  it('names the first such block of the run, mid-word, and writes nothing', async () => {
    const img = buildImage(CONFIGS[0]!); // 4k, metadata_csum
    const leaf = debugfsExtents(img, '/big').leaves[0]!;
    expect(leaf.length).toBeGreaterThan(66);
    // Two blocks freed behind the file's back; the first (in block order) is reported.
    const bad = leaf.physical + 65, later = leaf.physical + leaf.length - 1;
    const groups = dumpe2fsGroups(img);
    const group = groups.findIndex((g) => bad >= g.firstBlock && bad <= g.lastBlock);
    expect(later).toBeLessThanOrEqual(groups[group]!.lastBlock);
    // (freeb flips the bit only: the descriptor's count is set to match, checksummed by debugfs)
    debugfs(img, [`freeb ${later}`, `freeb ${bad}`, `set_bg ${group} free_blocks_count ${groups[group]!.freeBlocks + 2}`], { write: true });
    const sha = sha256File(img);
    const f = await Filesystem.open(img, { write: true });
    try {
      const err = await (await openFile(f, '/big')).truncate(0).then(() => null, (e: unknown) => e);
      expect(err).toMatchObject({ code: 'EFSCORRUPTED', structure: 'block bitmap', location: { kind: 'group', group } });
      expect((err as Error).message).toContain(`block ${bad} freed twice`);
    } finally {
      await f.close();
    }
    expect(sha256File(img), 'image unchanged by the failed truncate').toBe(sha);
  });
});
