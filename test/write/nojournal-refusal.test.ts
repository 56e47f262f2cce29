/**
 * Without a journal the in-place commit order reads the committed block bitmaps (which blocks the
 * transaction allocated) and the releasing inodes' table blocks. A bitmap whose checksum does not
 * match its descriptor — what a writer killed between the two blocks leaves — must refuse the
 * call before the session's first write: EFSBADCRC naming the group, the image byte for byte
 * as it was (no superblock state flipped, no data written into free blocks).
 */
import { describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { Filesystem } from '../../lib/node.js';
import { isExt4Error } from '../../lib/errors.js';
import { createTempFile } from '../../lib/ext4/temp-file.js';
import { openFile } from '../../lib/ops/file.js';
import { debugfs, mkfs } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import { HAVE_E2FSPROGS } from '../ops/helpers.js';

describe.skipIf(!HAVE_E2FSPROGS)('no journal: a bad bitmap checksum refuses a write before anything is written', () => {
  const calls: [string, (fs: Filesystem) => Promise<unknown>][] = [
    ['a temp file (its inode-table block)', (fs) => createTempFile(fs)],
    ['pwrite growing a file', async (fs) => (await openFile(fs, '/f')).pwrite(new Uint8Array(200_000).fill(7), 300_000)],
  ];
  for (const [name, call] of calls) {
    it(name, async () => {
      const dir = tmpDir('nojournal-refusal');
      const src = path.join(dir, 'src');
      nodefs.mkdirSync(src);
      nodefs.writeFileSync(path.join(src, 'f'), new Uint8Array(300_000).fill(1));
      const img = path.join(dir, 'fs.img');
      mkfs('ext4', img, 32 << 20, ['-b', '4096', '-O', '^has_journal,^orphan_file'], src);
      // group 0's bitmap checksum wrong, the descriptor's own checksum right
      debugfs(img, ['set_bg 0 block_bitmap_csum 0x1234', 'set_bg 0 checksum calc'], { write: true });
      const before = nodefs.readFileSync(img);
      const fs = await Filesystem.open(img, { write: true });
      let err: unknown = null;
      try {
        await call(fs);
      } catch (e) {
        err = e;
      } finally {
        await fs.close().catch(() => undefined);
      }
      expect(isExt4Error(err) && err.code, String(err)).toBe('EFSBADCRC');
      expect(isExt4Error(err) && err.location).toMatchObject({ kind: 'group', group: 0 });
      expect(nodefs.readFileSync(img).equals(before), 'the image is unchanged').toBe(true);
      nodefs.rmSync(dir, { recursive: true, force: true });
    });
  }
});
