/**
 * MMP on a block device (the O_DIRECT read path of lib/ext4/mmp.ts): the
 * bytes we last wrote must be our own copy, not a view of the O_DIRECT read
 * buffer — else every re-read overwrites them and a foreign write to the MMP
 * block is never noticed. And an open whose calls all fail puts the MMP
 * block back exactly as it found it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Filesystem } from '../../lib/node.js';
import { isExt4Error } from '../../lib/errors.js';
import { allocate } from '../../lib/ops/allocate.js';
import { buildMmp, MMP_SEQ_FSCK } from '../../lib/ext4/mmp.js';
import { SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, parseSuperblock } from '../../lib/ext4/superblock.js';
import { fsSeed } from '../../lib/ext4/checksum.js';
import { NO_WAIT, attachLoop, loopSkipReason, mkfs, readAt, removeDir, tempDir, writeAt } from './helpers.js';
import { sha256File } from '../helpers/tools.js';
import { internals } from '../../lib/ext4/internals.js';

const loopWhy = loopSkipReason();
if (loopWhy) console.log(`test/safety/mmp-blockdev.test.ts: skipping: ${loopWhy}`);

let dir = '';
beforeAll(() => {
  dir = tempDir('mmp-blockdev');
});
afterAll(() => removeDir(dir));

function mmpImage(name: string): string {
  const img = join(dir, name);
  mkfs(img, 16, ['-b', '4096', '-O', 'mmp']);
  return img;
}

describe.skipIf(!!loopWhy)('MMP on a loop block device', () => {
  it('notices a foreign write to the MMP block while held (EBUSY, session lost)', async () => {
    const img = mmpImage('lost.img');
    const loop = attachLoop(img);
    try {
      const fs = await Filesystem.open(loop.dev, { write: true, mmp: { ...NO_WAIT, refreshMs: 60_000 } });
      try {
        await internals(fs).mmp!.check(); // a re-read through O_DIRECT, nothing changed yet
        const sb = parseSuperblock(readAt(img, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE));
        const pos = sb.s_mmp_block * sb.blockSize;
        const seed = sb.hasMetadataCsum ? fsSeed(sb.s_uuid, undefined) : null;
        writeAt(img, pos, buildMmp(readAt(img, pos, 1024), { seq: MMP_SEQ_FSCK, nodename: 'intruder', bdevname: 'sdi', time: 1 }, seed));
        let code = 'resolved';
        try {
          await internals(fs).mmp!.check();
        } catch (e) {
          code = isExt4Error(e) ? e.code : String(e);
        }
        expect(code).toBe('EBUSY');
        expect(internals(fs).mmp!.lost).not.toBeNull();
      } finally {
        await fs.close().catch(() => undefined);
      }
    } finally {
      loop.detach();
    }
  });

  it('an open whose only call fails leaves the image byte-for-byte unchanged, MMP block included', async () => {
    const img = mmpImage('unchanged.img');
    const sha = sha256File(img);
    const loop = attachLoop(img);
    try {
      const fs = await Filesystem.open(loop.dev, { write: true, mmp: NO_WAIT });
      try {
        let code = 'resolved';
        try {
          await allocate(fs, '/lost+found', { offset: 0, len: 4096 });
        } catch (e) {
          code = isExt4Error(e) ? e.code : String(e);
        }
        expect(['EISDIR', 'EINVAL']).toContain(code);
      } finally {
        await fs.close();
      }
    } finally {
      loop.detach();
    }
    expect(sha256File(img)).toBe(sha);
  });
});
