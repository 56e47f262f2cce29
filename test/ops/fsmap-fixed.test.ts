/**
 * The reverse map names fixed metadata from the same list the allocator guards
 * (lib/ext4/fixed-metadata.ts): the MMP block is metadata, not a leaked block.
 */
import { describe, it, expect } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { auditSpace, fsmap } from '../../lib/ops/fsmap.js';
import { dumpe2fsHeader, expectE2fsckClean, mkfs } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';

describe('fsmap fixed metadata', () => {
  it('an mmp filesystem: the MMP block is owned by "mmp", and the space audit is clean', async () => {
    const img = tmpPath('mmp.img');
    mkfs('ext4', img, 16 * 1024 * 1024, ['-b', '4096', '-O', 'mmp']);
    expectE2fsckClean(img);
    const mmpBlock = Number(dumpe2fsHeader(img)['MMP block number']);
    expect(mmpBlock).toBeGreaterThan(0);
    const fs = await Filesystem.open(img);
    try {
      const audit = await auditSpace(fs);
      expect(audit).toEqual({ leaked: [], multiplyOwned: [], ownedButFree: [], unreadable: [] });
      const recs = await fsmap(fs);
      const at = recs.find((r) => r.start <= mmpBlock * 4096 && mmpBlock * 4096 < r.start + r.len);
      expect(at?.owner).toBe('mmp');
    } finally {
      await fs.close();
    }
  });
});
