/**
 * The allocators on damaged images (issue 8 items 2 and 3): a block bitmap
 * that calls fixed metadata free, a descriptor whose bitmap pointer lands in
 * the reserved GDT, cleared bits of superblock backups or of files, an inode
 * bitmap that calls lost+found free. Each must make the call fail with
 * EFSCORRUPTED and leave the image byte-identical — never hand out the
 * superblock or overwrite lost+found. On `-O ^metadata_csum` images, so no
 * checksum stands between the damage and the allocator. Then a seeded corpus
 * of damaged images where the allocator and the reverse map (fsmap) must
 * agree: either the allocation refuses, or every block it hands out was free
 * in the fsmap computed before.
 */
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { checkAllocatable } from '../../lib/ext4/alloc.js';
import { Ext4Error } from '../../lib/errors.js';
import { allocate, ALLOC_FIXED_LEN, ALLOC_FIXED_START } from '../../lib/ops/allocate.js';
import { createTempFile, releaseTempFile } from '../../lib/ext4/temp-file.js';
import { fsmap } from '../../lib/ops/fsmap.js';
import { copySparse, debugfs, dumpe2fsGroups, dumpe2fsHeader, expectE2fsckClean, mkfs, sha256File, type GroupInfo } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { bytes, HAVE_E2FSPROGS, prng } from './helpers.js';

interface Config {
  label: string;
  blockSize: number;
  opts: string[];
}

/** mkfs.ext4 small, a ^flex_bg one and a 1 KiB-block one; all without metadata_csum (no checksums to reseal). */
const CONFIGS: Config[] = [
  { label: '4k ^metadata_csum', blockSize: 4096, opts: ['-g', '1024', '-O', '^metadata_csum'] },
  { label: '4k ^metadata_csum,^flex_bg', blockSize: 4096, opts: ['-g', '1024', '-O', '^metadata_csum,^flex_bg'] },
  { label: '1k ^metadata_csum', blockSize: 1024, opts: ['-O', '^metadata_csum'] },
];

interface Layout {
  img: string;
  bs: number;
  firstDataBlock: number;
  descSize: number;
  groups: GroupInfo[];
}

function buildBase(c: Config): Layout {
  const src = tmpDir('src');
  nodefs.writeFileSync(path.join(src, 'f'), new Uint8Array(0));
  nodefs.writeFileSync(path.join(src, 'a'), bytes(5000, 1));
  nodefs.writeFileSync(path.join(src, 'big'), bytes(200 * 1024, 2));
  nodefs.mkdirSync(path.join(src, 'dir'));
  for (let i = 0; i < 5; i++) nodefs.writeFileSync(path.join(src, 'dir', `x${i}`), bytes(3 * c.blockSize + 17 * i, 10 + i));
  const img = tmpPath(`${c.label}.img`);
  mkfs('ext4', img, 16 * 1024 * 1024, ['-b', String(c.blockSize), ...c.opts], src);
  nodefs.rmSync(src, { recursive: true, force: true });
  expectE2fsckClean(img, 'fresh mkfs');
  const h = dumpe2fsHeader(img);
  return { img, bs: c.blockSize, firstDataBlock: Number(h['First block']), descSize: Number(h['Group descriptor size'] ?? 32), groups: dumpe2fsGroups(img) };
}

function copyOf(l: Layout, what: string): string {
  const p = tmpPath(`${what}.img`);
  copySparse(l.img, p);
  return p;
}

/** Raw edits of an image file (no checksums on these images). */
class Editor {
  constructor(readonly img: string, readonly l: Layout) {}
  private rw<T>(fn: (fd: number) => T): T {
    const fd = nodefs.openSync(this.img, 'r+');
    try {
      return fn(fd);
    } finally {
      nodefs.closeSync(fd);
    }
  }
  zeroBlock(b: number): void {
    this.rw((fd) => nodefs.writeSync(fd, Buffer.alloc(this.l.bs), 0, this.l.bs, b * this.l.bs));
  }
  /** Clear `count` bits from `bit` in the bitmap at block `bm`. */
  clearBits(bm: number, bit: number, count: number): void {
    this.rw((fd) => {
      const buf = Buffer.alloc(this.l.bs);
      nodefs.readSync(fd, buf, 0, this.l.bs, bm * this.l.bs);
      for (let i = bit; i < bit + count; i++) buf[i >> 3]! &= ~(1 << (i & 7));
      nodefs.writeSync(fd, buf, 0, this.l.bs, bm * this.l.bs);
    });
  }
  /** Byte offset of group g's descriptor in the primary GDT. */
  private desc(g: number): number {
    return (this.l.firstDataBlock + 1) * this.l.bs + g * this.l.descSize;
  }
  setDescU32(g: number, field: number, v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.rw((fd) => nodefs.writeSync(fd, b, 0, 4, this.desc(g) + field));
  }
  addDescU16(g: number, field: number, delta: number): void {
    this.rw((fd) => {
      const b = Buffer.alloc(2);
      nodefs.readSync(fd, b, 0, 2, this.desc(g) + field);
      b.writeUInt16LE((b.readUInt16LE() + delta) & 0xffff);
      nodefs.writeSync(fd, b, 0, 2, this.desc(g) + field);
    });
  }
}
const BG_BLOCK_BITMAP = 0x00, BG_INODE_BITMAP = 0x04, BG_INODE_TABLE = 0x08, BG_FREE_BLOCKS = 0x0c, BG_FREE_INODES = 0x0e;

async function withWritable<T>(img: string, fn: (fs: Filesystem) => Promise<T>): Promise<T> {
  const fs = await Filesystem.open(img, { write: true });
  try {
    return await fn(fs);
  } finally {
    await fs.close().catch(() => undefined);
  }
}

/** The call must fail with EFSCORRUPTED (at open or in the call) and leave the image byte-identical. */
async function expectRefused(img: string, fn: (fs: Filesystem) => Promise<unknown>, message?: RegExp): Promise<Ext4Error> {
  const before = sha256File(img);
  let err: unknown = null;
  try {
    await withWritable(img, fn);
  } catch (e) {
    err = e;
  }
  expect(err, 'the call succeeded on a damaged image').toBeInstanceOf(Ext4Error);
  const e = err as Ext4Error;
  expect(e.code, e.message).toBe('EFSCORRUPTED');
  if (message) expect(e.message).toMatch(message);
  expect(sha256File(img), 'image changed by a failed call').toBe(before);
  return e;
}

const lostFound = (img: string) => debugfs(img, ['stat /lost+found', 'ls -l /lost+found']).replace(/^\s*(atime|ctime|mtime|crtime):.*$/gm, '');

describe.skipIf(!HAVE_E2FSPROGS).each(CONFIGS)('damaged bitmaps and descriptors on $label', (c: Config) => {
  let base: Layout;
  beforeAll(() => {
    base = buildBase(c);
  });
  const len = (n: number) => n * c.blockSize;

  it('a zeroed block bitmap of group 0: allocate refuses (EFSCORRUPTED, nothing written); undamaged, it succeeds', async () => {
    const img = copyOf(base, 'zero-bb');
    new Editor(img, base).zeroBlock(base.groups[0]!.blockBitmap);
    const e = await expectRefused(img, (fs) => allocate(fs, '/f', { offset: 0, len: len(16) }));
    expect(e.structure).toBe('block bitmap');
    expect(e.location).toEqual({ kind: 'group', group: 0, block: base.groups[0]!.blockBitmap });
    // The control: the same call on the undamaged image allocates (past group 0's metadata) and stays clean.
    const ok = copyOf(base, 'zero-bb-control');
    expect(await withWritable(ok, (fs) => allocate(fs, '/f', { offset: 0, len: len(16) }))).toBe(len(16));
    expectE2fsckClean(ok, 'allocate on the undamaged image');
  });

  it('a descriptor whose block bitmap pointer is 3 (reserved GDT): EFSCORRUPTED naming the group, nothing written', async () => {
    for (const g of [0, 1]) {
      const img = copyOf(base, `bb-3-${g}`);
      new Editor(img, base).setDescU32(g, BG_BLOCK_BITMAP, 3);
      const e = await expectRefused(img, (fs) => allocate(fs, '/f', { offset: 0, len: len(16) }));
      expect(e.location).toEqual({ kind: 'group', group: g });
    }
    // Inode bitmap and inode table pointers into the primary GDT area, too.
    for (const field of [BG_INODE_BITMAP, BG_INODE_TABLE]) {
      const img = copyOf(base, `ptr-${field}`);
      new Editor(img, base).setDescU32(0, field, base.firstDataBlock + 1);
      await expectRefused(img, (fs) => allocate(fs, '/f', { offset: 0, len: len(16) }));
    }
  });

  it('cleared bits of a superblock backup, its GDT and reserved GDT (free count matching): never handed out', async () => {
    const g1 = base.groups[1]!;
    expect(g1.superblock?.kind).toBe('backup');
    const fixedEnd = (g1.reservedGdt ?? g1.groupDescriptors!)[1];
    const n = fixedEnd - g1.firstBlock + 1;
    const img = copyOf(base, 'backup-bits');
    const ed = new Editor(img, base);
    ed.clearBits(g1.blockBitmap, 0, n);
    ed.addDescU16(1, BG_FREE_BLOCKS, n); // so only the fixed-metadata check can tell
    // Asked for exactly the backup superblock, and first-fit from the start of group 1. (Under
    // flex_bg group 1 holds nothing else, so its descriptor now says "all free": that is caught too.)
    for (const flags of [ALLOC_FIXED_START | ALLOC_FIXED_LEN, 0]) {
      const e = await expectRefused(img, (fs) => allocate(fs, '/f', { offset: 0, len: len(4), goal: len(g1.firstBlock), flags }), /superblock|fixed metadata/);
      expect(e.location).toMatchObject({ kind: 'group', group: 1 });
    }
  });

  it("cleared bits of a file's blocks (descriptor count untouched): refused like the kernel's mballoc count check", async () => {
    const img = copyOf(base, 'file-bits');
    const big = debugfs(base.img, ['blocks /big']).split(/\s+/).filter((x) => /^\d+$/.test(x)).map(Number);
    const g = base.groups.find((x) => big[0]! >= x.firstBlock && big[0]! <= x.lastBlock)!;
    new Editor(img, base).clearBits(g.blockBitmap, big[0]! - g.firstBlock, 8);
    const e = await expectRefused(img, (fs) => allocate(fs, '/f', { offset: 0, len: len(8), goal: len(big[0]!) }), /free blocks/);
    expect(e.location).toEqual({ kind: 'group', group: g.group, block: g.blockBitmap });
  });

  it('checkAllocatable finds, before any write, the damage an allocation elsewhere would not reach', async () => {
    const last = base.groups[base.groups.length - 1]!;
    const img = copyOf(base, 'check-allocatable');
    new Editor(img, base).zeroBlock(last.blockBitmap);
    const before = sha256File(img);
    await withWritable(img, async (fs) => {
      await expect(checkAllocatable(fs)).rejects.toMatchObject({ code: 'EFSCORRUPTED', location: { kind: 'group', group: last.group, block: last.blockBitmap } });
    });
    expect(sha256File(img)).toBe(before);
    // The undamaged image passes, and so does the image after an allocation (counts kept exact).
    const ok = copyOf(base, 'check-allocatable-control');
    await withWritable(ok, async (fs) => {
      await checkAllocatable(fs);
      await allocate(fs, '/f', { offset: 0, len: len(40) });
    });
    expectE2fsckClean(ok, 'allocate after checkAllocatable');
    await withWritable(ok, (fs) => checkAllocatable(fs)); // a new open: validated afresh
  });

  it('a zeroed inode bitmap: the temporary inode is not lost+found (EFSCORRUPTED), lost+found intact', async () => {
    const img = copyOf(base, 'zero-ib');
    const lf = lostFound(img);
    new Editor(img, base).zeroBlock(base.groups[0]!.inodeBitmap);
    const e = await expectRefused(img, (fs) => createTempFile(fs));
    expect(e.structure).toBe('inode bitmap');
    expect(lostFound(img)).toBe(lf);
  });

  it("lost+found's bit cleared (free count matching): EFSCORRUPTED naming the inode bitmap; a deleted inode's slot is reused", async () => {
    const img = copyOf(base, 'lf-bit');
    const lf = lostFound(img);
    const ed = new Editor(img, base);
    ed.clearBits(base.groups[0]!.inodeBitmap, 10, 1); // inode 11
    ed.addDescU16(0, BG_FREE_INODES, 1);
    const e = await expectRefused(img, (fs) => createTempFile(fs), /inode 11 /);
    expect(e.location).toEqual({ kind: 'group', group: 0, block: base.groups[0]!.inodeBitmap });
    expect(lostFound(img)).toBe(lf);
    // The control: a file deleted by debugfs keeps its mode and gets a dtime; its slot is free to reuse.
    const ok = copyOf(base, 'lf-control');
    const ino = Number(/Inode: (\d+)/.exec(debugfs(ok, ['stat /a']))![1]);
    debugfs(ok, ['rm /a'], { write: true });
    expectE2fsckClean(ok, 'after debugfs rm');
    // (Within one open: opening for write releases orphans, as a mount does.)
    const got = await withWritable(ok, async (fs) => {
      const t = await createTempFile(fs);
      await releaseTempFile(fs, t);
      return t;
    });
    expect(got).toBe(ino);
    expectE2fsckClean(ok, 'temporary file created and released');
    expect(lostFound(ok)).toBe(lf);
  });
});

// ------------------------------------------------------------------------------------------- corpus

type Damage = { name: string; apply: (ed: Editor, l: Layout, r: () => number) => void };
const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

/** Seeded damage of the kinds issue 8 saw: bitmaps zeroed or partly cleared, descriptor pointers and counts moved. */
const DAMAGE: Damage[] = [
  { name: 'zero block bitmap', apply: (ed, l, r) => ed.zeroBlock(pick(r, l.groups).blockBitmap) },
  {
    name: 'clear bitmap bits',
    apply: (ed, l, r) => {
      const g = pick(r, l.groups);
      const n = g.lastBlock - g.firstBlock + 1;
      ed.clearBits(g.blockBitmap, Math.floor(r() * n), 1 + Math.floor(r() * 64));
    },
  },
  {
    name: 'clear fixed metadata bits, count matching',
    apply: (ed, l, r) => {
      const g = pick(r, l.groups.filter((x) => x.blockBitmap >= x.firstBlock && x.blockBitmap <= x.lastBlock));
      const runs: [number, number][] = [[g.blockBitmap, g.blockBitmap], [g.inodeBitmap, g.inodeBitmap], g.inodeTable];
      if (g.superblock) runs.push([g.superblock.block, g.superblock.block]);
      if (g.reservedGdt) runs.push(g.reservedGdt);
      const [s, e] = pick(r, runs.filter(([s]) => s >= g.firstBlock && s <= g.lastBlock));
      ed.clearBits(g.blockBitmap, s - g.firstBlock, e - s + 1);
      ed.addDescU16(g.group, BG_FREE_BLOCKS, e - s + 1);
    },
  },
  {
    name: 'move a descriptor pointer',
    apply: (ed, l, r) => {
      const g = pick(r, l.groups);
      const last = l.groups[l.groups.length - 1]!.lastBlock;
      ed.setDescU32(g.group, pick(r, [BG_BLOCK_BITMAP, BG_INODE_BITMAP, BG_INODE_TABLE]), l.firstDataBlock + 1 + Math.floor(r() * (last - l.firstDataBlock)));
    },
  },
  { name: 'wrong free count', apply: (ed, l, r) => ed.addDescU16(pick(r, l.groups).group, BG_FREE_BLOCKS, 1 + Math.floor(r() * 100)) },
];

describe.skipIf(!HAVE_E2FSPROGS)('the allocator agrees with fsmap on seeded damaged images', () => {
  it('every allocation refuses (EFSCORRUPTED, image unchanged) or hands out only blocks fsmap called free', async () => {
    const r = prng(0x8a110c);
    const tally = { refused: 0, allocated: 0 };
    for (const c of CONFIGS) {
      const base = buildBase(c);
      const last = base.groups[base.groups.length - 1]!.lastBlock;
      for (let i = 0; i < 14; i++) {
        const dmg = pick(r, DAMAGE);
        const img = copyOf(base, `corpus-${i}`);
        dmg.apply(new Editor(img, base), base, r);
        const goalBlock = r() < 0.5 ? undefined : base.firstDataBlock + Math.floor(r() * (last - base.firstDataBlock));
        const what = `${c.label} #${i} ${dmg.name}, goal ${goalBlock ?? 'default'}`;
        // The reverse map before: which blocks are free (bitmap-free and claimed by no inode and no fixed metadata).
        let free: { start: number; end: number }[];
        const ro = await Filesystem.open(img);
        try {
          free = (await fsmap(ro)).filter((x) => x.owner === 'free').map((x) => ({ start: x.start / c.blockSize, end: (x.start + x.len) / c.blockSize }));
        } catch (e) {
          // An image the reverse map cannot read must not be written either.
          expect(e, what).toBeInstanceOf(Ext4Error);
          free = [];
        } finally {
          await ro.close();
        }
        const before = sha256File(img);
        let got: number;
        try {
          got = await withWritable(img, (fs) => allocate(fs, '/f', { offset: 0, len: 24 * c.blockSize, ...(goalBlock !== undefined ? { goal: goalBlock * c.blockSize } : {}) }));
        } catch (e) {
          expect(e, what).toBeInstanceOf(Ext4Error);
          const code = (e as Ext4Error).code;
          expect(['EFSCORRUPTED', 'EFSBADCRC'], `${what}: ${(e as Error).message}`).toContain(code);
          expect(sha256File(img), `${what}: image changed by a failed call`).toBe(before);
          tally.refused++;
          continue;
        }
        expect(got, what).toBeGreaterThan(0);
        tally.allocated++;
        const ro2 = await Filesystem.open(img);
        try {
          const map = await ro2.fileMap(await ro2.resolve('/f'));
          for (const ext of map.extents)
            for (let b = ext.physical; b < ext.physical + ext.length; b++)
              expect(free.some((x) => b >= x.start && b < x.end), `${what}: block ${b} handed out but not free in fsmap`).toBe(true);
        } finally {
          await ro2.close();
        }
      }
    }
    // Both outcomes occur (the corpus exercises the refusals and the allocations).
    expect(tally.refused).toBeGreaterThan(0);
    expect(tally.allocated).toBeGreaterThan(0);
  });
});
