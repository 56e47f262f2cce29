/**
 * When the write path must refuse: read-only opens (EROFS), a filesystem
 * marked with errors (ERROR_FS), and corruption found while preparing a
 * write — a block bitmap or an extent-tree block with a bad checksum
 * (EFSBADCRC) or bad contents (EFSCORRUPTED). In every case not one byte of
 * the image changes (sha256 before/after the failing call).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { Filesystem } from '../../lib/node.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { allocate, ALLOC_FIXED_LEN, ALLOC_FIXED_START } from '../../lib/ops/allocate.js';
import { movedata } from '../../lib/ops/movedata.js';
import { openFile } from '../../lib/ops/file.js';
import { allocateInode } from '../../lib/ext4/alloc.js';
import { copySparse, debugfs, dumpe2fsGroups } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';
import { buildImage, CONFIGS, debugfsExtents, expectCode, HAVE_E2FSPROGS, sha256File, verifyImage } from './helpers.js';

if (!HAVE_E2FSPROGS) console.log('skipping refusal tests: e2fsprogs not installed');

function patch(img: string, offset: number, fn: (b: Buffer) => void, length = 1): void {
  const fd = fs.openSync(img, 'r+');
  try {
    const b = Buffer.alloc(length);
    fs.readSync(fd, b, 0, length, offset);
    fn(b);
    fs.writeSync(fd, b, 0, length, offset);
  } finally {
    fs.closeSync(fd);
  }
}

const C4K = CONFIGS[0]!;

describe.skipIf(!HAVE_E2FSPROGS)('read-only and error states', () => {
  let img: string;
  beforeAll(() => {
    img = buildImage(C4K);
  });

  it('a read-only open refuses every write with EROFS', async () => {
    const sha = sha256File(img);
    const f = await Filesystem.open(img);
    try {
      await expectCode(allocate(f, '/empty', { offset: 0, len: 4096 }), 'EROFS');
      await expectCode(async () => (await openFile(f, '/a')).pwrite(new Uint8Array(10), 0), 'EROFS');
      await expectCode(async () => (await openFile(f, '/a')).truncate(0), 'EROFS');
      await expectCode(movedata(f, '/a', '/empty', { from: 0, len: 4096 }), 'EROFS');
      await expectCode(f.transact(async () => 1), 'EROFS');
    } finally {
      await f.close();
    }
    expect(sha256File(img)).toBe(sha);
    // A read-only device cannot be opened for writing.
    const dev = new MemoryDevice(new Uint8Array(fs.readFileSync(img)), { readOnly: true });
    await expectCode(Filesystem.open(dev, { write: true }), 'EROFS');
  });

  it('a filesystem with ERROR_FS set refuses a write open and is left untouched', async () => {
    const copy = tmpPath('errorfs.img');
    copySparse(img, copy);
    debugfs(copy, ['ssv state 2'], { write: true });
    const sha = sha256File(copy);
    await expectCode(Filesystem.open(copy, { write: true }), 'EROFS');
    expect(sha256File(copy)).toBe(sha);
    // Read-only opens still work.
    const f = await Filesystem.open(copy);
    expect((await f.resolve('/a')).size).toBe(5000);
    await f.close();
  });
});

describe.skipIf(!HAVE_E2FSPROGS).each(CONFIGS.filter((c) => ['4k', '1k no checksums (^metadata_csum)', '1k gdt_csum (^metadata_csum,uninit_bg)'].includes(c.label)))(
  'corruption found while preparing a write ($label)',
  (c) => {
    let img: string;
    const csum = !c.mkfsOpts.join(' ').includes('^metadata_csum');
    beforeAll(() => {
      img = buildImage(c);
      verifyImage(img, 'fresh');
    });

    /** Open for writing, run `op`; it must fail with `code` and leave every byte as it was. */
    async function refuses(copy: string, code: string | string[], op: (f: Filesystem) => Promise<unknown>): Promise<void> {
      const f = await Filesystem.open(copy, { write: true });
      try {
        const sha = sha256File(copy);
        await expectCode(op(f), code);
        expect(sha256File(copy), 'image unchanged by the failed operation').toBe(sha);
      } finally {
        await f.close();
      }
    }

    it('block bitmap: bad checksum (EFSBADCRC) or a freed block already free (EFSCORRUPTED)', async () => {
      const copy = tmpPath('badbitmap.img');
      copySparse(img, copy);
      const big = debugfsExtents(copy, '/big').leaves[0]!;
      const groups = dumpe2fsGroups(copy);
      const g = groups.find((x) => big.physical >= x.firstBlock && big.physical <= x.lastBlock)!;
      // Clear the bit of /big's first block: the bitmap claims it is free.
      const bit = big.physical - g.firstBlock;
      patch(copy, g.blockBitmap * c.blockSize + (bit >> 3), (b) => { b[0]! &= ~(1 << (bit & 7)); });
      const free = g.freeBlockRanges[0]!;
      if (csum) {
        await refuses(copy, 'EFSBADCRC', async (f) => (await openFile(f, '/big')).truncate(0));
        await refuses(copy, 'EFSBADCRC', (f) => allocate(f, '/empty', { offset: 0, len: c.blockSize, goal: free[0] * c.blockSize, flags: ALLOC_FIXED_START | ALLOC_FIXED_LEN }));
        await refuses(copy, 'EFSBADCRC', (f) => movedata(f, '/big', '/empty', { from: 0, len: c.blockSize }));
      } else {
        // Without checksums the damage shows when the block is freed: "freed twice".
        await refuses(copy, 'EFSCORRUPTED', async (f) => (await openFile(f, '/big')).truncate(0));
      }
    });

    it.skipIf(!csum)('inode bitmap: bad checksum (EFSBADCRC) on inode allocation', async () => {
      const copy = tmpPath('badinodebitmap.img');
      copySparse(img, copy);
      const g0 = dumpe2fsGroups(copy)[0]!;
      // Mark a free inode slot (near the end of group 0) as used: only the checksum notices.
      const last = g0.freeInodeRanges.at(-1)![1] - 1; // inode number
      patch(copy, g0.inodeBitmap * c.blockSize + (last >> 3), (b) => { b[0]! |= 1 << (last & 7); });
      await refuses(copy, 'EFSBADCRC', (f) => f.transact((tx) => allocateInode(tx, { goalGroup: 0 })));
    });

    it('extent-tree block: bad checksum (EFSBADCRC) or bad magic (EFSCORRUPTED)', async () => {
      const copy = tmpPath('badextent.img');
      copySparse(img, copy);
      const ex = debugfsExtents(copy, '/sparse');
      expect(ex.depth).toBe(1);
      const leaf = ex.all.find((e) => e.level === 0)!.physical; // the index entry points at the leaf block
      if (csum) patch(copy, leaf * c.blockSize + c.blockSize - 100, (b) => { b[0]! ^= 0x40; }); // unused slot: only the checksum notices
      else patch(copy, leaf * c.blockSize, (b) => { b[0] = 0; }); // eh_magic
      const code = csum ? 'EFSBADCRC' : 'EFSCORRUPTED';
      await refuses(copy, code, async (f) => (await openFile(f, '/sparse')).pwrite(new Uint8Array(100).fill(1), 1));
      await refuses(copy, code, (f) => allocate(f, '/sparse', { offset: c.blockSize, len: c.blockSize }));
      await refuses(copy, code, async (f) => (await openFile(f, '/sparse')).truncate(0));
      await refuses(copy, code, (f) => movedata(f, '/sparse', '/empty', { from: 0, len: c.blockSize }));
    });
  },
);
