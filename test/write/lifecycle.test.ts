/**
 * The one truncate / punch / write path (lib/ext4/inode-lifecycle.ts,
 * lib/ops/file.ts) on the three map kinds: ext2 (block-mapped, no journal,
 * 1 KiB blocks: single and double indirect blocks within 300 KiB), ext3
 * (block-mapped, journal) and ext4 (extents). Truncate down and up, pwrite
 * into holes / past EOF / over data (in place and atomic), punch holes
 * (inside a block, across blocks, clipped at EOF), truncate to a block
 * boundary and to zero. After each step: e2fsck -fn clean (free counts and
 * i_blocks exact), debugfs dump equals the model; at the end the kernel
 * reads the same bytes through a loop mount. Temporary files (orphans) on
 * each kind: released by releaseTempFile, or by the next write open's orphan
 * cleanup after a "crash", back to the free counts from before.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { Filesystem } from '../../lib/node.js';
import { FileHandle, openFile } from '../../lib/ops/file.js';
import { createTempFile, releaseTempFile } from '../../lib/ext4/temp-file.js';
import { internals } from '../../lib/ext4/internals.js';
import { INODE_FLAGS } from '../../lib/ext4/inode.js';
import { allocate, ALLOC_FIXED_LEN } from '../../lib/ops/allocate.js';
import { debugfsDump, dumpe2fsHeader, expectE2fsckClean, mkfs, withLoopMount, type FsKind } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, cleanupImages, codeOf, firstDiff, pattern, sameBytes, scratchPath } from '../ops/helpers.js';

afterAll(() => cleanupImages());

interface Kind {
  name: string;
  kind: FsKind;
  bs: number;
}

const KINDS: Kind[] = [
  { name: 'ext2 (block-mapped, no journal, 1 KiB blocks)', kind: 'ext2', bs: 1024 },
  { name: 'ext3 (block-mapped, journal, 1 KiB blocks)', kind: 'ext3', bs: 1024 },
  { name: 'ext4 (extents, 4 KiB blocks)', kind: 'ext4', bs: 4096 },
];

/** A file's expected bytes, edited like the file. */
class Model {
  constructor(public data: Uint8Array) {}
  write(d: Uint8Array, pos: number): void {
    if (pos + d.length > this.data.length) this.resize(pos + d.length);
    this.data.set(d, pos);
  }
  resize(size: number): void {
    const n = new Uint8Array(size);
    n.set(this.data.subarray(0, Math.min(size, this.data.length)));
    this.data = n;
  }
  punch(pos: number, len: number): void {
    this.data.fill(0, Math.min(pos, this.data.length), Math.min(pos + len, this.data.length));
  }
}

function makeFs(k: Kind, files: Record<string, Uint8Array>): string {
  const src = tmpDir(`lifecycle-${k.kind}-src`);
  for (const [p, d] of Object.entries(files)) nodefs.writeFileSync(path.join(src, p), d);
  const img = scratchPath(`lifecycle-${k.kind}.img`);
  mkfs(k.kind, img, 16 * 1024 * 1024, ['-b', String(k.bs)], src);
  nodefs.rmSync(src, { recursive: true, force: true });
  return img;
}

function checkImage(img: string, models: Record<string, Model>, what: string): void {
  expectE2fsckClean(img, what);
  for (const [p, m] of Object.entries(models)) {
    const got = debugfsDump(img, `/${p}`);
    expect(got.length, `${what}: debugfs size of /${p}`).toBe(m.data.length);
    expect(sameBytes(got, m.data), `${what}: debugfs dump of /${p} (${firstDiff(got, m.data)})`).toBe(true);
  }
}

describe.skipIf(!HAVE_E2FSPROGS)('truncate, punch and pwrite on every map kind', () => {
  for (const k of KINDS) {
    it(k.name, async () => {
      const bs = k.bs;
      const models: Record<string, Model> = { f: new Model(pattern(300 * bs + 77, 1)), small: new Model(pattern(5000, 2)) };
      const img = makeFs(k, { f: models.f!.data.slice(), small: models.small!.data.slice() });
      const step = async (what: string, fn: (fs: Filesystem) => Promise<void>) => {
        const fs = await Filesystem.open(img, { write: true });
        try {
          await fn(fs);
        } finally {
          await fs.close();
        }
        checkImage(img, models, `${k.kind}: ${what}`);
      };
      const f = models.f!, small = models.small!;

      await step('truncate down (unaligned), then up', async (fs) => {
        const h = await openFile(fs, '/f');
        await h.truncate(100 * bs + 123);
        f.resize(100 * bs + 123);
        await h.truncate(150 * bs + 5);
        f.resize(150 * bs + 5);
        expect((await h.stat()).size).toBe(150 * bs + 5);
      });

      await step('pwrite into a hole, past EOF, over data (in place and atomic)', async (fs) => {
        const h = await openFile(fs, '/f');
        const writes: [Uint8Array, number, boolean][] = [
          [pattern(3 * bs, 3), 120 * bs + 7, false], // into the hole left by truncate up
          [pattern(2 * bs + 3, 4), 280 * bs + 11, false], // past EOF (1 KiB: double indirect)
          [pattern(200, 5), 10 * bs - 100, false], // partial overwrite across two blocks
          [pattern(bs, 6), 50 * bs + 1, true], // atomic overwrite (copy-on-write)
          [pattern(10, 7), 101 * bs - 3, false], // over the old EOF block's zeroed tail
        ];
        for (const [d, pos, atomic] of writes) {
          expect(await h.pwrite(d, pos, { atomic })).toBe(d.length);
          f.write(d, pos);
        }
      });

      await step('punch holes (inside a block, across blocks, clipped at EOF)', async (fs) => {
        const h = await openFile(fs, '/f');
        const size = f.data.length;
        const punches: [number, number][] = [
          [5 * bs + 10, 20], // inside one block: zeroed, nothing freed
          [20 * bs + 10, 5 * bs], // partial edges + 4 whole blocks
          [30 * bs, 30 * bs], // whole blocks only, across the direct/indirect boundary on 1 KiB
          [size - bs - 5, 10 * bs], // runs past EOF: clipped
        ];
        for (const [pos, len] of punches) {
          await h.punchHole(pos, len);
          f.punch(pos, len);
        }
        await h.punchHole(size + 100, bs); // past EOF: nothing
        expect((await h.stat()).size).toBe(size);
      });

      await step('truncate to a block boundary and to zero, then write again', async (fs) => {
        const h = await openFile(fs, '/f');
        await h.truncate(12 * bs); // drops every indirect block of a block-mapped file
        f.resize(12 * bs);
        const s = await openFile(fs, '/small');
        await s.truncate(0);
        small.resize(0);
        expect((await s.stat()).blocks).toBe(0);
        const d = pattern(bs + 9, 8);
        await s.pwrite(d, 3);
        small.write(d, 3);
        const max = (k.kind === 'ext4' ? 2 ** 32 - 1 : 12 + bs / 4 + (bs / 4) ** 2 + (bs / 4) ** 3) * bs;
        expect(await codeOf(h.truncate(max + 1))).toBe('EFBIG');
        expect(await codeOf(h.pwrite(new Uint8Array(2), max - 1))).toBe('EFBIG');
      });

      if (CAN_MOUNT) {
        await withLoopMount(
          img,
          (mp) => {
            for (const [p, m] of Object.entries(models)) {
              const got = nodefs.readFileSync(path.join(mp, p));
              expect(sameBytes(got, m.data), `${k.kind}: the kernel reads /${p} (${firstDiff(got, m.data)})`).toBe(true);
            }
          },
          { readOnly: true },
        );
      }
    });

    it(`${k.name}: temporary files are deleted by releaseTempFile and, after a crash, by the next write open`, async () => {
      const bs = k.bs;
      const img = makeFs(k, { keep: pattern(3 * bs, 9) });
      const free = () => {
        const h = dumpe2fsHeader(img);
        return { blocks: Number(h['Free blocks']), inodes: Number(h['Free inodes']) };
      };
      const before = free();
      const fill = async (fs: Filesystem, ino: number) => {
        const h = new FileHandle(fs, ino);
        await h.pwrite(pattern(300 * bs + 5, 10), 0); // 1 KiB blocks: double indirect
        await h.truncate(200 * bs + 1);
        await h.pwrite(pattern(bs, 11), 250 * bs); // a hole, then a block
      };
      let fs = await Filesystem.open(img, { write: true });
      const t = await createTempFile(fs);
      await fill(fs, t);
      await releaseTempFile(fs, t);
      await fs.close();
      expectE2fsckClean(img, `${k.kind}: after releaseTempFile`);
      expect(free(), `${k.kind}: free counts after releaseTempFile`).toEqual(before);

      fs = await Filesystem.open(img, { write: true });
      const u = await createTempFile(fs);
      await fill(fs, u);
      await fs.close(); // left on the orphan list, as a crash would
      fs = await Filesystem.open(img, { write: true });
      expect(fs.warnings.join('\n')).toMatch(/1 orphan inode deleted/);
      await fs.close();
      expectE2fsckClean(img, `${k.kind}: after orphan cleanup`);
      expect(free(), `${k.kind}: free counts after orphan cleanup`).toEqual(before);
      expect(debugfsDump(img, '/keep').equals(pattern(3 * bs, 9))).toBe(true);
    });
  }
});

describe.skipIf(!HAVE_E2FSPROGS)('a block-mapped orphan too large for one transaction', () => {
  it('ext3: releaseTempFile frees it in several transactions (indirect blocks edited between), back to the old free counts', async () => {
    const img = scratchPath('lifecycle-steps.img');
    mkfs('ext3', img, 48 * 1024 * 1024, ['-b', '1024', '-g', '1024', '-O', '^resize_inode']);
    const free = () => {
      const h = dumpe2fsHeader(img);
      return { blocks: Number(h['Free blocks']), inodes: Number(h['Free inodes']) };
    };
    const before = free();
    const fs = await Filesystem.open(img, { write: true });
    try {
      const t = await createTempFile(fs);
      expect((await fs.readInode(t)).flags & INODE_FLAGS.EXTENTS).toBe(0);
      await allocate(fs, { ino: t }, { offset: 0, len: 20 << 20, flags: ALLOC_FIXED_LEN }); // ~20 groups of 1 MiB
      internals(fs).journal!.logCapacity = () => 300; // pretend the journal is tiny: 4 groups per transaction
      const n = fs.writeStats.transactions;
      await releaseTempFile(fs, t);
      expect(fs.writeStats.transactions - n).toBeGreaterThanOrEqual(5);
    } finally {
      await fs.close();
    }
    expectE2fsckClean(img, 'ext3: after a stepwise release');
    expect(free()).toEqual(before);
  });
});
