/**
 * A deterministic corpus of damaged ext2/3/4 images, shared by the tests that must survive hostile
 * input (check parity with e2fsck, write fuzzing).
 *
 * Four small base images, each made by `mkfs -d` over the same small tree (nested directories, an
 * htree directory, a file with holes, xattrs in the inode and in a block, fast and slow symlinks,
 * a hard link), then `e2fsck -fyD` (htree directories) and checked clean:
 *
 *   ext4-4k         default ext4 (metadata_csum, 64bit, flex_bg), 4 KiB blocks, 4 groups, journal
 *   ext4-1k-nocsum  ext4 -O ^metadata_csum, 1 KiB blocks, 2 groups, journal
 *   ext3            block-mapped, 1 KiB blocks, journal
 *   inline          ext4 with inline_data, 4 KiB blocks, no journal
 *
 * From these, two kinds of damage, each returned as a private copy (sparse) the caller may write:
 *   - `targetedImages()`: every named kind in `TARGETED_KINDS` on every base it applies to. Damage
 *     to a checksummed structure is resealed (its checksum recomputed with the library's checksum
 *     functions, or written by debugfs, which does the same), so the structural check, not the
 *     checksum, has to catch it.
 *   - `damagedImages(seed, count)`: seeded random byte flips (1–3 bytes) in the metadata of a base:
 *     superblock, descriptors, bitmaps, inodes in use and reserved inodes, extent/indirect blocks,
 *     directory blocks, the xattr block, the journal superblock. Not resealed. Same seed, same
 *     images, byte for byte.
 * `cleanImages()` gives private copies of the undamaged bases; `baseImage(name)` where things are
 * in a base (inode slots, directory/map/xattr/journal blocks); `ImageEditor` edits a copy and
 * reseals what it touched. Bases are built once per process with a fake clock and pinned ctimes,
 * so every image is the same byte for byte on every run.
 */
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { tmpDir } from './tmp.js';
import { debugfs, dumpe2fsGroups, e2fsEnv, expectE2fsckClean, FAKE_TIME, mkfs, run, type FsKind, type GroupInfo } from './tools.js';
import { prngBytes } from './tree.js';
import { Prng } from '../../lib/io/prng.js';
import { Filesystem } from '../../lib/node.js';
import { inodeChecksum } from '../../lib/ext4/inode.js';
import { inodeSeed } from '../../lib/ext4/checksum.js';
import { xattrBlockChecksum } from '../../lib/ext4/xattr.js';
import { jsbChecksum, JournalSuperblockLayout } from '../../lib/jbd2/format.js';
import { setDirBlockChecksum, findDirTail } from '../../lib/ext4/directory.js';
import { setDxChecksum, classifyDirBlock } from '../../lib/ext4/htree.js';
import { extentBlockChecksum } from '../../lib/ext4/extents.js';
import { superblockChecksum } from '../../lib/ext4/superblock.js';
import { groupDescChecksum } from '../../lib/ext4/group-desc.js';

export const BASE_NAMES = ['ext4-4k', 'ext4-1k-nocsum', 'ext3', 'inline'] as const;
export type BaseName = (typeof BASE_NAMES)[number];

export interface DamagedImage {
  /** Unique, e.g. "ext4-4k/xattr-hash-block" or "ext3/flip-17". */
  name: string;
  base: BaseName;
  /** The targeted kind, "flip" or "clean". */
  kind: string;
  /** A private copy: the caller may write it. */
  path: string;
  /** What was damaged, in words (offsets for flips). */
  describe: string;
}

interface InodeInfo {
  ino: number;
  /** Byte offset of the inode's slot in the image. */
  offset: number;
  generation: number;
}

/** Where things are in a base image (found with the library on the clean image). */
export interface BaseImage {
  name: BaseName;
  /** Shared, read-only: never write it. */
  path: string;
  blockSize: number;
  blocksCount: number;
  inodeSize: number;
  inodesPerGroup: number;
  descSize: number;
  fsSeed: number;
  metadataCsum: boolean;
  hasJournal: boolean;
  groups: GroupInfo[];
  /** Every path of the tree ('/' included) → its inode. */
  inodes: Map<string, InodeInfo>;
  /** Directory path → its data blocks in logical order. */
  dirBlocks: Map<string, number[]>;
  /** Path → extent-tree nodes or indirect blocks. */
  treeBlocks: Map<string, number[]>;
  /** Path → data blocks (first extent's first block). */
  firstDataBlock: Map<string, number>;
  /** The external xattr block of /xa (0 if none). */
  xattrBlock: number;
  /** Physical block of journal block 0 (0 without a journal). */
  journalBlock0: number;
  journalBlocks: number;
  /** The resize inode's double-indirect block (0 if none). */
  resizeDind: number;
}

// ---------------------------------------------------------------------------------------------
// The source tree and the base images

const MANY = 80;

function python(script: string, input: unknown): void {
  const py = nodefs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const r = spawnSync(py, ['-c', script], { input: JSON.stringify(input), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
}

function buildTree(src: string, blockSize: number): void {
  const p = (n: string) => path.join(src, n);
  nodefs.mkdirSync(p('deep/a/b/c'), { recursive: true });
  nodefs.writeFileSync(p('deep/a/b/c/leaf.txt'), 'leaf\n');
  nodefs.writeFileSync(p('small.txt'), 'hello, damaged world\n');
  nodefs.writeFileSync(p('empty'), '');
  nodefs.writeFileSync(p('big.bin'), prngBytes('damage-big', 40 * blockSize + 17));
  // 6 separated chunks: 6 extents, more than i_block's 4 → a depth-1 extent tree
  const fd = nodefs.openSync(p('frag.bin'), 'w');
  for (let i = 0; i < 6; i++) nodefs.writeSync(fd, prngBytes(`frag-${i}`, blockSize), 0, blockSize, i * 2 * blockSize);
  nodefs.ftruncateSync(fd, 12 * blockSize - 100);
  nodefs.closeSync(fd);
  nodefs.mkdirSync(p('many'));
  for (let i = 0; i < MANY; i++) nodefs.writeFileSync(p(`many/entry-${String(i).padStart(3, '0')}-${'n'.repeat(40)}`), `${i}\n`);
  nodefs.writeFileSync(p('xa'), 'xattrs here\n');
  nodefs.writeFileSync(p('hard1'), 'two names\n');
  nodefs.linkSync(p('hard1'), p('deep/hard2'));
  nodefs.symlinkSync('small.txt', p('fast-link'));
  nodefs.symlinkSync('deep/a/b/c/' + '/'.repeat(70) + 'leaf.txt', p('slow-link'));
  python(`import json,os,sys\nfor p,n,v in json.load(sys.stdin): os.setxattr(p,n,bytes.fromhex(v))`, [
    [p('xa'), 'user.small', Buffer.from('tiny').toString('hex')],
    [p('xa'), 'user.big', prngBytes('damage-xattr', Math.min(700, blockSize - 200)).toString('hex')],
  ]);
  const all: string[] = [];
  const rec = (d: string) => {
    for (const e of nodefs.readdirSync(path.join(src, d), { withFileTypes: true })) {
      const r = d ? `${d}/${e.name}` : e.name;
      all.push(r);
      if (e.isDirectory()) rec(r);
    }
  };
  rec('');
  all.sort().reverse().forEach((r, i) => nodefs.lutimesSync(path.join(src, r), 1_650_000_000 + i, 1_650_000_000 + i));
}

const RECIPES: Record<BaseName, { kind: FsKind; size: number; blockSize: number; opts: string[] }> = {
  'ext4-4k': { kind: 'ext4', size: 16 << 20, blockSize: 4096, opts: ['-b', '4096', '-g', '1024', '-N', '512', '-J', 'size=4'] },
  'ext4-1k-nocsum': { kind: 'ext4', size: 8 << 20, blockSize: 1024, opts: ['-b', '1024', '-g', '4096', '-N', '256', '-O', '^metadata_csum', '-J', 'size=1'] },
  ext3: { kind: 'ext3', size: 4 << 20, blockSize: 1024, opts: ['-b', '1024', '-N', '256', '-J', 'size=1'] },
  inline: { kind: 'ext4', size: 8 << 20, blockSize: 4096, opts: ['-b', '4096', '-g', '1024', '-N', '256', '-O', 'inline_data,^has_journal'] },
};

const baseCache = new Map<BaseName, Promise<BaseImage>>();

/** The base image `name` (built once per process). */
export function baseImage(name: BaseName): Promise<BaseImage> {
  let p = baseCache.get(name);
  if (!p) baseCache.set(name, (p = buildBase(name)));
  return p;
}

async function buildBase(name: BaseName): Promise<BaseImage> {
  const rc = RECIPES[name];
  const dir = tmpDir(`damage-base-${name}`);
  const src = path.join(dir, 'src');
  nodefs.mkdirSync(src);
  buildTree(src, rc.blockSize);
  const img = path.join(dir, `${name}.img`);
  mkfs(rc.kind, img, rc.size, rc.opts, src);
  // mkfs -d copies each source file's ctime, which no call can set: pin it, so the image is the
  // same byte for byte on every run
  const paths = ['/'];
  const walk = (d: string) => {
    for (const e of nodefs.readdirSync(path.join(src, d), { withFileTypes: true })) {
      paths.push(`${d}/${e.name}`);
      if (e.isDirectory()) walk(`${d}/${e.name}`);
    }
  };
  walk('');
  debugfs(img, paths.map((p) => `sif ${p} ctime @${FAKE_TIME}`), { write: true, fakeTime: FAKE_TIME });
  // htree directories; with the fake clock so the base (and every image made from it) is the same
  // byte for byte on every run
  run('e2fsck', ['-fyD', img], { okStatus: [0, 1, 2], env: { ...e2fsEnv(), E2FSCK_TIME: String(FAKE_TIME) } });
  expectE2fsckClean(img, `damage base ${name}`);
  nodefs.chmodSync(img, 0o444);
  const fs = await Filesystem.open(img);
  try {
    const sb = fs.sb;
    const info: BaseImage = {
      name,
      path: img,
      blockSize: fs.blockSize,
      blocksCount: sb.blocksCount,
      inodeSize: sb.s_inode_size,
      inodesPerGroup: sb.s_inodes_per_group,
      descSize: sb.descSize,
      fsSeed: fs.fsSeed,
      metadataCsum: sb.hasMetadataCsum,
      hasJournal: sb.s_journal_inum !== 0,
      groups: dumpe2fsGroups(img),
      inodes: new Map(),
      dirBlocks: new Map(),
      treeBlocks: new Map(),
      firstDataBlock: new Map(),
      xattrBlock: 0,
      journalBlock0: 0,
      journalBlocks: 0,
      resizeDind: 0,
    };
    const visit = async (p: string, ino: number) => {
      const inode = await fs.readInode(ino);
      const loc = await fs.inodeLocation(ino);
      info.inodes.set(p, { ino, offset: loc.block * fs.blockSize + loc.offset, generation: inode.generation });
      const map = await fs.fileMap(inode);
      if (map.metadataBlocks.length) info.treeBlocks.set(p, [...map.metadataBlocks]);
      if (map.extents[0]) info.firstDataBlock.set(p, map.extents[0].physical);
      if (inode.type === 'dir') {
        const blocks: number[] = [];
        for (const e of map.extents) for (let i = 0; i < e.length; i++) blocks.push(e.physical + i);
        info.dirBlocks.set(p, blocks);
        for (const e of await fs.readdirRaw(inode)) {
          const n = Buffer.from(e.name).toString('utf8');
          if (n === '.' || n === '..' || n === 'lost+found') continue;
          await visit(p === '/' ? `/${n}` : `${p}/${n}`, e.ino);
        }
      }
      if (p === '/xa') info.xattrBlock = inode.fileAcl;
    };
    await visit('/', 2);
    if (info.hasJournal) {
      const j = await fs.readInode(sb.s_journal_inum);
      const map = await fs.fileMap(j);
      info.journalBlock0 = map.extents[0]!.physical;
      info.journalBlocks = j.size / fs.blockSize;
    }
    const r = await fs.readInode(7);
    info.resizeDind = new DataView(r.base.i_block.buffer, r.base.i_block.byteOffset).getUint32(13 * 4, true);
    return info;
  } finally {
    await fs.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Editing a private copy, resealing checksums

/** Byte-level editor of one image file that recomputes the checksum of what it changed. */
export class ImageEditor {
  constructor(readonly path: string, readonly base: BaseImage) {}

  read(off: number, len: number): Uint8Array {
    const fd = nodefs.openSync(this.path, 'r');
    try {
      const b = new Uint8Array(len);
      nodefs.readSync(fd, b, 0, len, off);
      return b;
    } finally {
      nodefs.closeSync(fd);
    }
  }

  write(off: number, bytes: Uint8Array): void {
    const fd = nodefs.openSync(this.path, 'r+');
    try {
      nodefs.writeSync(fd, bytes, 0, bytes.length, off);
    } finally {
      nodefs.closeSync(fd);
    }
  }

  block(n: number): Uint8Array {
    return this.read(n * this.base.blockSize, this.base.blockSize);
  }

  writeBlock(n: number, b: Uint8Array): void {
    this.write(n * this.base.blockSize, b);
  }

  /** Edit the inode at `p` (a path or an inode number) and reseal its checksum. */
  inode(p: string | number, edit: (slot: Uint8Array, dv: DataView) => void): void {
    const info = typeof p === 'number' ? this.inodeByNumber(p) : this.base.inodes.get(p);
    if (!info) throw new Error(`damage: no inode ${p} in ${this.base.name}`);
    const slot = this.read(info.offset, this.base.inodeSize);
    const dv = new DataView(slot.buffer);
    edit(slot, dv);
    if (this.base.metadataCsum) {
      const c = inodeChecksum(slot, info.ino, dv.getUint32(0x64, true), this.base.fsSeed, this.base.inodeSize);
      dv.setUint16(0x7c, c.lo, true);
      if (c.hi !== null) dv.setUint16(0x82, c.hi, true);
    }
    this.write(info.offset, slot);
  }

  inodeByNumber(ino: number): InodeInfo {
    const g = Math.floor((ino - 1) / this.base.inodesPerGroup);
    const table = this.base.groups[g]!.inodeTable[0];
    const offset = table * this.base.blockSize + ((ino - 1) % this.base.inodesPerGroup) * this.base.inodeSize;
    const slot = this.read(offset, this.base.inodeSize);
    return { ino, offset, generation: new DataView(slot.buffer).getUint32(0x64, true) };
  }

  /** Edit the xattr block of /xa and reseal it. */
  xattrBlock(edit: (b: Uint8Array, dv: DataView) => void): void {
    const n = this.base.xattrBlock;
    if (!n) throw new Error(`damage: ${this.base.name} has no xattr block`);
    const b = this.block(n);
    const dv = new DataView(b.buffer);
    edit(b, dv);
    if (this.base.metadataCsum) dv.setUint32(16, xattrBlockChecksum(b, n, this.base.fsSeed), true);
    this.writeBlock(n, b);
  }

  /** Edit the journal superblock (big-endian fields) and reseal it when it carries a checksum (v2/v3). */
  journalSuperblock(edit: (b: Uint8Array, dv: DataView) => void): void {
    const n = this.base.journalBlock0;
    if (!n) throw new Error(`damage: ${this.base.name} has no journal`);
    const b = this.block(n);
    const dv = new DataView(b.buffer);
    const incompat = dv.getUint32(0x28, false);
    edit(b, dv);
    if (incompat & 0x18) dv.setUint32(JournalSuperblockLayout.offsetOf('s_checksum'), jsbChecksum(b.subarray(0, 1024)), false);
    this.writeBlock(n, b);
  }

  /** Edit logical block `i` of directory `dir` and reseal it (leaf tail or dx tail). */
  dirBlock(dir: string, i: number, edit: (b: Uint8Array, dv: DataView) => void): void {
    const n = this.base.dirBlocks.get(dir)?.[i];
    if (n === undefined) throw new Error(`damage: ${dir} has no block ${i} in ${this.base.name}`);
    const b = this.block(n);
    const dv = new DataView(b.buffer);
    const kind = classifyDirBlock(b);
    edit(b, dv);
    if (this.base.metadataCsum) {
      const info = this.base.inodes.get(dir)!;
      const seed = inodeSeed(this.base.fsSeed, info.ino, info.generation);
      if (kind === 'leaf' && findDirTail(b) >= 0) setDirBlockChecksum(b, seed);
      else if (kind === 'dx-root' || kind === 'dx-node') setDxChecksum(b, seed);
    }
    this.writeBlock(n, b);
  }

  /** Edit the first extent-tree node of `p` and reseal it. */
  extentBlock(p: string, edit: (b: Uint8Array, dv: DataView) => void): void {
    const n = this.base.treeBlocks.get(p)?.[0];
    if (n === undefined) throw new Error(`damage: ${p} has no tree block in ${this.base.name}`);
    const b = this.block(n);
    const dv = new DataView(b.buffer);
    edit(b, dv);
    if (this.base.metadataCsum) {
      const info = this.base.inodes.get(p)!;
      const max = dv.getUint16(4, true);
      dv.setUint32(12 + 12 * max, extentBlockChecksum(b, max, inodeSeed(this.base.fsSeed, info.ino, info.generation)), true);
    }
    this.writeBlock(n, b);
  }

  /** Edit the primary superblock (1024 bytes at byte 1024) and reseal it. */
  superblock(edit: (b: Uint8Array, dv: DataView) => void): void {
    const b = this.read(1024, 1024);
    const dv = new DataView(b.buffer);
    edit(b, dv);
    if (this.base.metadataCsum) dv.setUint32(0x3fc, superblockChecksum(b), true);
    this.write(1024, b);
  }

  /** Edit group descriptor `g` (primary copy) and reseal it. */
  groupDesc(g: number, edit: (d: Uint8Array, dv: DataView) => void): void {
    const sbBytes = this.read(1024, 1024);
    const sbv = new DataView(sbBytes.buffer);
    const per = this.base.blockSize / this.base.descSize;
    // classic layout (no base uses meta_bg): descriptor block i follows the primary superblock
    const off = (sbv.getUint32(0x14, true) + 1 + Math.floor(g / per)) * this.base.blockSize + (g % per) * this.base.descSize;
    const d = this.read(off, this.base.descSize);
    const dv = new DataView(d.buffer);
    edit(d, dv);
    // the checksum needs the parsed superblock's view (metadata_csum or gdt_csum)
    const sbLike = {
      descSize: this.base.descSize,
      hasMetadataCsum: this.base.metadataCsum,
      hasGdtCsum: (sbv.getUint32(0x64, true) & 0x10) !== 0,
      s_uuid: sbBytes.slice(0x68, 0x78),
      is64: (sbv.getUint32(0x60, true) & 0x80) !== 0,
    } as unknown as Parameters<typeof groupDescChecksum>[0];
    const c = groupDescChecksum(sbLike, g, d, this.base.fsSeed);
    if (c !== null) dv.setUint16(0x1e, c, true);
    this.write(off, d);
  }

  debugfs(cmds: string[]): void {
    debugfs(this.path, cmds, { write: true, fakeTime: FAKE_TIME });
  }
}

// ---------------------------------------------------------------------------------------------
// Targeted kinds

export interface DamageKind {
  name: string;
  describe: string;
  /** Bases it applies to (default: all). */
  bases?: readonly BaseName[];
  apply: (ed: ImageEditor) => void;
}

const WITH_JOURNAL: readonly BaseName[] = ['ext4-4k', 'ext4-1k-nocsum', 'ext3'];

/** Offset of the first in-inode xattr entry (after i_extra_isize and the 4-byte magic). */
function inodeXattrEntry(slot: Uint8Array, dv: DataView): number {
  const start = 0x80 + dv.getUint16(0x80, true);
  if (dv.getUint32(start, true) !== 0xea020000) throw new Error('damage: no in-inode xattrs');
  return start + 4;
}

/** Offset of the directory entry named `name` in a linear block (or -1). */
function findEntry(b: Uint8Array, name: string, from = 0): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const want = Buffer.from(name);
  for (let off = from; off + 8 <= b.length; ) {
    const rec = dv.getUint16(off + 4, true) || 65536;
    const nl = b[off + 6]!;
    if (dv.getUint32(off, true) !== 0 && nl === want.length && Buffer.from(b.subarray(off + 8, off + 8 + nl)).equals(want)) return off;
    if (rec < 8) return -1;
    off += rec;
  }
  return -1;
}

export const TARGETED_KINDS: readonly DamageKind[] = [
  // --- the resize inode (e2fsck "Resize inode not valid")
  { name: 'resize-inode-direct-block', describe: 'resize inode: a direct block pointer set (only the DIND block may be)', apply: (ed) => ed.inode(7, (_s, dv) => dv.setUint32(0x28 + 2 * 4, 1234, true)) },
  { name: 'resize-inode-dind-outside', describe: 'resize inode: DIND pointer outside the filesystem', apply: (ed) => ed.inode(7, (_s, dv) => dv.setUint32(0x28 + 13 * 4, ed.base.blocksCount + 7, true)) },
  {
    name: 'resize-inode-dind-entry',
    describe: 'resize inode: a DIND entry does not point at its reserved GDT block',
    apply: (ed) => {
      const b = ed.block(ed.base.resizeDind);
      const dv = new DataView(b.buffer);
      // the first used slot is at desc_blocks (one descriptor block in every base)
      dv.setUint32(4, dv.getUint32(4, true) + 3, true);
      ed.writeBlock(ed.base.resizeDind, b);
    },
  },
  { name: 'resize-inode-mode', describe: 'resize inode: not a regular file', apply: (ed) => ed.inode(7, (_s, dv) => dv.setUint16(0, 0x41c0, true)) },

  // --- xattr entry hashes (e2fsck "extended attribute … has a hash … which is invalid")
  {
    name: 'xattr-hash-inode',
    describe: 'in-inode xattr entry with a wrong e_hash (inode resealed)',
    bases: ['ext4-4k', 'ext4-1k-nocsum', 'ext3'],
    apply: (ed) => ed.inode('/xa', (s, dv) => dv.setUint32(inodeXattrEntry(s, dv) + 12, 0x12345678, true)),
  },
  { name: 'xattr-hash-block', describe: 'xattr block entry with a wrong e_hash (block resealed)', apply: (ed) => ed.xattrBlock((_b, dv) => dv.setUint32(32 + 12, 0x0badf00d, true)) },
  { name: 'xattr-block-refcount', describe: 'xattr block h_refcount 5 with one user', apply: (ed) => ed.xattrBlock((_b, dv) => dv.setUint32(4, 5, true)) },
  { name: 'xattr-block-magic', describe: 'xattr block with a wrong magic', apply: (ed) => ed.xattrBlock((_b, dv) => dv.setUint32(0, 0xea010000, true)) },
  { name: 'xattr-block-value-outside', describe: 'xattr block entry whose value runs past the block', apply: (ed) => ed.xattrBlock((_b, dv) => dv.setUint16(32 + 2, ed.base.blockSize - 4, true)) },
  { name: 'xattr-value-inode', describe: 'xattr block entry whose value is said to live in an EA inode (no ea_inode feature)', apply: (ed) => ed.xattrBlock((_b, dv) => dv.setUint32(32 + 4, 0xe7000000, true)) },
  { name: 'xattr-block-outside', describe: 'i_file_acl outside the filesystem', apply: (ed) => ed.inode('/xa', (_s, dv) => dv.setUint32(0x68, ed.base.blocksCount + 100, true)) },

  // --- the journal superblock
  { name: 'journal-sb-magic', describe: 'journal superblock magic wrong', bases: WITH_JOURNAL, apply: (ed) => ed.journalSuperblock((_b, dv) => dv.setUint32(0, 0xc03b3999, false)) },
  { name: 'journal-sb-blocktype', describe: 'journal superblock block type 1 (descriptor)', bases: WITH_JOURNAL, apply: (ed) => ed.journalSuperblock((_b, dv) => dv.setUint32(4, 1, false)) },
  { name: 'journal-sb-blocksize', describe: 'journal s_blocksize ≠ the filesystem block size', bases: WITH_JOURNAL, apply: (ed) => ed.journalSuperblock((_b, dv) => dv.setUint32(0x0c, ed.base.blockSize * 2, false)) },
  { name: 'journal-sb-maxlen', describe: 'journal s_maxlen larger than the journal inode', bases: WITH_JOURNAL, apply: (ed) => ed.journalSuperblock((_b, dv) => dv.setUint32(0x10, ed.base.journalBlocks + 50, false)) },
  { name: 'journal-sb-first', describe: 'journal s_first 0', bases: WITH_JOURNAL, apply: (ed) => ed.journalSuperblock((_b, dv) => dv.setUint32(0x14, 0, false)) },
  { name: 'journal-sb-first-past', describe: 'journal s_first ≥ s_maxlen', bases: WITH_JOURNAL, apply: (ed) => ed.journalSuperblock((_b, dv) => dv.setUint32(0x14, dv.getUint32(0x10, false), false)) },
  { name: 'journal-sb-start', describe: 'journal s_start set without needs_recovery (a log that looks live)', bases: WITH_JOURNAL, apply: (ed) => ed.journalSuperblock((_b, dv) => dv.setUint32(0x1c, 1, false)) },
  { name: 'journal-sb-errno', describe: 'journal s_errno set (an aborted journal)', bases: WITH_JOURNAL, apply: (ed) => ed.journalSuperblock((_b, dv) => dv.setUint32(0x20, (-5 >>> 0), false)) },
  { name: 'journal-sb-incompat', describe: 'journal unknown incompat feature', bases: WITH_JOURNAL, apply: (ed) => ed.journalSuperblock((_b, dv) => dv.setUint32(0x28, dv.getUint32(0x28, false) | 0x1000, false)) },
  {
    name: 'journal-sb-checksum',
    describe: 'journal with checksum v3 whose superblock checksum is wrong',
    bases: WITH_JOURNAL,
    apply: (ed) => {
      const n = ed.base.journalBlock0;
      const b = ed.block(n);
      const dv = new DataView(b.buffer);
      dv.setUint32(0x28, dv.getUint32(0x28, false) | 0x10, false); // JBD2 CSUM_V3
      b[0x50] = 4; // crc32c
      dv.setUint32(0xfc, (jsbChecksum(b.subarray(0, 1024)) ^ 0x100) >>> 0, false);
      ed.writeBlock(n, b);
    },
  },
  { name: 'journal-inode-size', describe: 'journal inode i_size smaller than the log', bases: WITH_JOURNAL, apply: (ed) => ed.inode(8, (_s, dv) => dv.setUint32(4, 100 * ed.base.blockSize, true)) },
  { name: 'journal-inode-mode', describe: 'journal inode is not a regular file', bases: WITH_JOURNAL, apply: (ed) => ed.inode(8, (_s, dv) => dv.setUint16(0, 0x41c0, true)) },

  // --- directory sizes
  { name: 'dir-size-2^40', describe: 'directory i_size 2^40 (i_size_high 256)', apply: (ed) => ed.inode('/deep/a', (_s, dv) => dv.setUint32(0x6c, 256, true)) },
  { name: 'dir-size-short', describe: 'htree directory i_size one block short of its blocks', bases: ['ext4-4k', 'ext4-1k-nocsum', 'ext3'], apply: (ed) => ed.inode('/many', (_s, dv) => dv.setUint32(4, dv.getUint32(4, true) - ed.base.blockSize, true)) },
  { name: 'dir-size-long', describe: 'directory i_size one block more than its blocks', bases: ['ext4-4k', 'ext4-1k-nocsum', 'ext3'], apply: (ed) => ed.inode('/deep', (_s, dv) => dv.setUint32(4, dv.getUint32(4, true) + ed.base.blockSize, true)) },
  { name: 'dir-size-unaligned', describe: 'directory i_size not a multiple of the block size', bases: ['ext4-4k', 'ext4-1k-nocsum', 'ext3'], apply: (ed) => ed.inode('/deep', (_s, dv) => dv.setUint32(4, dv.getUint32(4, true) - 100, true)) },
  { name: 'file-size-huge', describe: 'regular file i_size 2^60', apply: (ed) => ed.inode('/big.bin', (_s, dv) => dv.setUint32(0x6c, 0x10000000, true)) },

  // --- directory tree
  { name: 'dir-cycle', describe: 'a directory linked under its own descendant (a cycle)', apply: (ed) => ed.debugfs(['link /deep /deep/a/b/c/up']) },
  {
    name: 'dotdot-wrong',
    describe: "'..' of /deep/a points at the root",
    bases: ['ext4-4k', 'ext4-1k-nocsum', 'ext3'],
    apply: (ed) => ed.dirBlock('/deep/a', 0, (b, dv) => dv.setUint32(findEntry(b, '..'), 2, true)),
  },
  {
    name: 'dirent-filetype',
    describe: 'a directory entry with the wrong file type (a file called a directory)',
    bases: ['ext4-4k', 'ext4-1k-nocsum', 'ext3'],
    apply: (ed) => ed.dirBlock('/', 0, (b) => {
      b[findEntry(b, 'small.txt') + 7] = 2;
    }),
  },
  {
    name: 'dirent-unused-inode',
    describe: 'a directory entry naming an inode that is not in use',
    bases: ['ext4-4k', 'ext4-1k-nocsum', 'ext3'],
    apply: (ed) => ed.dirBlock('/', 0, (b, dv) => dv.setUint32(findEntry(b, 'small.txt'), ed.base.inodesPerGroup - 3, true)),
  },
  {
    name: 'dirent-inode-outside',
    describe: 'a directory entry naming an inode past s_inodes_count',
    bases: ['ext4-4k', 'ext4-1k-nocsum', 'ext3'],
    apply: (ed) => ed.dirBlock('/', 0, (b, dv) => dv.setUint32(findEntry(b, 'small.txt'), 0x7fffffff, true)),
  },
  {
    name: 'dirent-link-dot',
    describe: 'a directory entry naming its own directory',
    bases: ['ext4-4k', 'ext4-1k-nocsum', 'ext3'],
    apply: (ed) => ed.dirBlock('/deep', 0, (b, dv) => dv.setUint32(findEntry(b, 'hard2'), ed.base.inodes.get('/deep')!.ino, true)),
  },
  { name: 'dirent-rec-len', describe: 'a directory entry with rec_len 6', bases: ['ext4-4k', 'ext4-1k-nocsum', 'ext3'], apply: (ed) => ed.dirBlock('/deep', 0, (b, dv) => dv.setUint16(findEntry(b, '..') + 4, 6, true)) },
  { name: 'dot-missing', describe: "a directory whose '.' entry names another inode", bases: ['ext4-4k', 'ext4-1k-nocsum', 'ext3'], apply: (ed) => ed.dirBlock('/deep/a/b', 0, (_b, dv) => dv.setUint32(0, 2, true)) },
  { name: 'unattached-inode', describe: 'an inode in use that no directory names', apply: (ed) => ed.debugfs(['unlink /deep/a/b/c/leaf.txt']) },
  { name: 'unattached-dir', describe: 'a directory in use that no directory names', apply: (ed) => ed.debugfs(['unlink /deep/a/b/c']) },
  {
    name: 'htree-bad-hash-order',
    describe: 'htree root whose second slot hash is below the first',
    bases: ['ext4-4k', 'ext4-1k-nocsum', 'ext3'],
    apply: (ed) => ed.dirBlock('/many', 0, (_b, dv) => {
      // dx_root: count/limit at 0x20, entries from 0x28 (slot 0 has no hash); slot 1 hash at 0x28
      dv.setUint32(0x28, 0, true);
    }),
  },

  // --- inodes
  { name: 'links-count', describe: 'a file links count 3 with one name', apply: (ed) => ed.debugfs(['sif /small.txt links_count 3']) },
  { name: 'links-count-hardlink', describe: 'a hard-linked file links count 1 with two names', apply: (ed) => ed.debugfs(['sif /hard1 links_count 1']) },
  { name: 'dtime-set', describe: 'an inode in use with dtime set', apply: (ed) => ed.debugfs(['sif /small.txt dtime 1700000000']) },
  { name: 'i-blocks', describe: 'i_blocks larger than what the file owns', bases: ['ext4-4k', 'ext4-1k-nocsum', 'ext3'], apply: (ed) => ed.inode('/big.bin', (_s, dv) => dv.setUint32(0x1c, dv.getUint32(0x1c, true) + 64, true)) },
  { name: 'mode-invalid', describe: 'an inode with file type bits 0xf000', apply: (ed) => ed.inode('/small.txt', (_s, dv) => dv.setUint16(0, 0xf1a4, true)) },
  { name: 'index-flag-on-file', describe: 'INDEX_FL on a regular file', apply: (ed) => ed.inode('/small.txt', (_s, dv) => dv.setUint32(0x20, dv.getUint32(0x20, true) | 0x1000, true)) },
  { name: 'extents-flag-ext3', describe: 'EXTENTS_FL on a file of a filesystem without extents', bases: ['ext3'], apply: (ed) => ed.inode('/big.bin', (_s, dv) => dv.setUint32(0x20, dv.getUint32(0x20, true) | 0x80000, true)) },
  { name: 'inline-flag-without-feature', describe: 'INLINE_DATA_FL on a filesystem without inline_data', bases: ['ext4-4k', 'ext4-1k-nocsum', 'ext3'], apply: (ed) => ed.inode('/small.txt', (_s, dv) => dv.setUint32(0x20, dv.getUint32(0x20, true) | 0x10000000, true)) },
  { name: 'fast-symlink-size', describe: 'a fast symlink whose i_size exceeds its target', apply: (ed) => ed.inode('/fast-link', (_s, dv) => dv.setUint32(4, 59, true)) },
  { name: 'slow-symlink-size', describe: 'a slow symlink whose i_size is larger than a block', bases: ['ext4-4k', 'ext4-1k-nocsum', 'ext3'], apply: (ed) => ed.inode('/slow-link', (_s, dv) => dv.setUint32(4, ed.base.blockSize + 5, true)) },
  { name: 'extra-isize', describe: 'i_extra_isize larger than the inode', bases: ['ext4-4k', 'ext4-1k-nocsum', 'inline'], apply: (ed) => ed.inode('/small.txt', (_s, dv) => dv.setUint16(0x80, 200, true)) },
  { name: 'special-inode-mode', describe: 'a reserved inode (inode 9) with a mode set', apply: (ed) => ed.inode(9, (_s, dv) => dv.setUint16(0, 0x81a4, true)) },
  { name: 'root-not-dir', describe: 'the root inode is a regular file', apply: (ed) => ed.inode('/', (_s, dv) => dv.setUint16(0, 0x81ed, true)) },

  // --- block maps
  { name: 'extent-header-magic', describe: 'extent tree node with a wrong magic', bases: ['ext4-4k', 'ext4-1k-nocsum'], apply: (ed) => ed.extentBlock('/frag.bin', (_b, dv) => dv.setUint16(0, 0xf30b, true)) },
  { name: 'extent-outside', describe: 'an extent pointing past the end of the filesystem', bases: ['ext4-4k', 'ext4-1k-nocsum'], apply: (ed) => ed.extentBlock('/frag.bin', (_b, dv) => dv.setUint32(12 + 8, ed.base.blocksCount + 10, true)) },
  {
    name: 'extent-overlap-logical',
    describe: 'two extents of one file covering the same logical block',
    bases: ['ext4-4k', 'ext4-1k-nocsum'],
    apply: (ed) => ed.extentBlock('/frag.bin', (_b, dv) => dv.setUint32(12 + 12, 0, true)),
  },
  {
    name: 'block-shared',
    describe: "two files claiming the same block (small.txt's extent pointed at big.bin's first block)",
    bases: ['ext4-4k', 'ext4-1k-nocsum'],
    apply: (ed) => ed.inode('/small.txt', (_s, dv) => dv.setUint32(0x28 + 12 + 8, ed.base.firstDataBlock.get('/big.bin')!, true)),
  },
  {
    name: 'block-on-metadata',
    describe: "a file block on the inode table (small.txt's block)",
    bases: ['ext4-4k', 'ext4-1k-nocsum'],
    apply: (ed) => ed.inode('/small.txt', (_s, dv) => dv.setUint32(0x28 + 12 + 8, ed.base.groups[0]!.inodeTable[0], true)),
  },
  {
    name: 'indirect-outside',
    describe: 'an indirect block pointer outside the filesystem',
    bases: ['ext3'],
    apply: (ed) => ed.inode('/big.bin', (_s, dv) => dv.setUint32(0x28 + 12 * 4, ed.base.blocksCount + 10, true)),
  },
  {
    name: 'indirect-entry-outside',
    describe: 'an entry of an indirect block outside the filesystem',
    bases: ['ext3'],
    apply: (ed) => {
      const n = ed.base.treeBlocks.get('/big.bin')![0]!;
      const b = ed.block(n);
      new DataView(b.buffer).setUint32(4, ed.base.blocksCount + 99, true);
      ed.writeBlock(n, b);
    },
  },
  { name: 'extent-unwritten-dir', describe: 'a directory block in an unwritten extent', bases: ['ext4-4k', 'ext4-1k-nocsum'], apply: (ed) => ed.inode('/deep', (_s, dv) => dv.setUint16(0x28 + 12 + 4, dv.getUint16(0x28 + 12 + 4, true) | 0x8000, true)) },

  // --- bitmaps and counts
  { name: 'block-bitmap-free', describe: 'a file block marked free', apply: (ed) => ed.debugfs([`freeb ${ed.base.firstDataBlock.get('/big.bin')}`]) },
  { name: 'block-bitmap-set', describe: 'an unowned block marked in use', apply: (ed) => ed.debugfs([`setb ${ed.base.groups[ed.base.groups.length - 1]!.lastBlock - 1}`]) },
  { name: 'inode-bitmap-free', describe: 'an inode in use marked free', apply: (ed) => ed.debugfs([`freei /small.txt`]) },
  { name: 'inode-bitmap-set', describe: 'an unused inode marked in use', apply: (ed) => ed.debugfs([`seti <${ed.base.inodesPerGroup - 5}>`]) },
  { name: 'gd-free-blocks', describe: 'a group free blocks count wrong', apply: (ed) => ed.groupDesc(0, (_d, dv) => dv.setUint16(0x0c, dv.getUint16(0x0c, true) + 1, true)) },
  { name: 'gd-free-inodes', describe: 'a group free inodes count wrong', apply: (ed) => ed.groupDesc(0, (_d, dv) => dv.setUint16(0x0e, dv.getUint16(0x0e, true) - 1, true)) },
  { name: 'gd-used-dirs', describe: 'a group used directories count wrong', apply: (ed) => ed.groupDesc(0, (_d, dv) => dv.setUint16(0x10, dv.getUint16(0x10, true) + 2, true)) },
  { name: 'sb-free-blocks', describe: 'superblock free blocks count wrong', apply: (ed) => ed.superblock((_b, dv) => dv.setUint32(0x0c, dv.getUint32(0x0c, true) - 3, true)) },
  { name: 'sb-free-inodes', describe: 'superblock free inodes count wrong', apply: (ed) => ed.superblock((_b, dv) => dv.setUint32(0x10, dv.getUint32(0x10, true) + 2, true)) },

  // --- superblock
  { name: 'sb-orphan-live', describe: 's_last_orphan names a live file', apply: (ed) => ed.superblock((_b, dv) => dv.setUint32(0xe8, ed.base.inodes.get('/small.txt')!.ino, true)) },
  { name: 'sb-error-state', describe: 's_state with ERROR_FS', apply: (ed) => ed.superblock((_b, dv) => dv.setUint16(0x3a, dv.getUint16(0x3a, true) | 2, true)) },
  { name: 'sb-reserved-blocks', describe: 's_r_blocks_count larger than the filesystem', apply: (ed) => ed.superblock((_b, dv) => dv.setUint32(0x08, ed.base.blocksCount + 1, true)) },
  { name: 'sb-first-ino', describe: 's_first_ino 5', apply: (ed) => ed.superblock((_b, dv) => dv.setUint32(0x54, 5, true)) },
  { name: 'sb-wtime-future', describe: 'superblock last write time in the future (2100)', apply: (ed) => ed.superblock((_b, dv) => dv.setUint32(0x30, 4_102_444_800 >>> 0, true)) },
  { name: 'sb-quota-inode', describe: 's_usr_quota_inum names the resize inode', apply: (ed) => ed.superblock((_b, dv) => dv.setUint32(0x240, 7, true)) },
  { name: 'sb-quota-inode-file', describe: 's_grp_quota_inum names a file in the tree', apply: (ed) => ed.superblock((_b, dv) => dv.setUint32(0x244, ed.base.inodes.get('/small.txt')!.ino, true)) },
  { name: 'journal-uuid-and-inode', describe: 'an external journal UUID set next to the journal inode', bases: WITH_JOURNAL, apply: (ed) => ed.superblock((b) => (b[0xd0] = 0x42)) },
  {
    name: 'bitmap-padding',
    describe: 'a padding byte past the group bits of a block bitmap cleared',
    bases: ['ext4-4k', 'ext4-1k-nocsum', 'inline'],
    apply: (ed) => {
      const g = ed.base.groups[0]!;
      const b = ed.block(g.blockBitmap);
      b[b.length - 1] = 0x7f;
      ed.writeBlock(g.blockBitmap, b);
    },
  },
  {
    name: 'inode-bitmap-padding',
    describe: 'a padding byte past the group bits of an inode bitmap cleared',
    apply: (ed) => {
      const g = ed.base.groups[0]!;
      const b = ed.block(g.inodeBitmap);
      b[b.length - 1] = 0xfe;
      ed.writeBlock(g.inodeBitmap, b);
    },
  },
  { name: 'sb-unknown-feature', describe: 'an unknown compat feature bit set', apply: (ed) => ed.superblock((_b, dv) => dv.setUint32(0x5c, (dv.getUint32(0x5c, true) | (1 << 29)) >>> 0, true)) },
  { name: 'bad-blocks-inode-outside', describe: 'the bad-blocks inode lists a block outside the filesystem', apply: (ed) => ed.inode(1, (_s, dv) => dv.setUint32(0x28, ed.base.blocksCount + 5, true)) },
  { name: 'sb-inodes-count', describe: 's_inodes_count not groups × inodes per group', apply: (ed) => ed.superblock((_b, dv) => dv.setUint32(0x00, dv.getUint32(0x00, true) - 1, true)) },
];

// ---------------------------------------------------------------------------------------------
// Producing images

const baseBytes = new Map<string, Uint8Array>();

/** A sparse private copy of a base (only its non-zero 4 KiB pieces are written): cheap in time and disk. */
function privateCopy(base: BaseImage, label: string): string {
  let bytes = baseBytes.get(base.path);
  if (!bytes) baseBytes.set(base.path, (bytes = new Uint8Array(nodefs.readFileSync(base.path))));
  const p = path.join(tmpDir(`damage-${base.name}-${label}`), 'img');
  const fd = nodefs.openSync(p, 'w', 0o644);
  try {
    nodefs.ftruncateSync(fd, bytes.length);
    const piece = 4096;
    const zero = Buffer.alloc(piece);
    for (let off = 0; off < bytes.length; off += piece) {
      const chunk = Buffer.from(bytes.buffer, bytes.byteOffset + off, Math.min(piece, bytes.length - off));
      if (!chunk.equals(zero.subarray(0, chunk.length))) nodefs.writeSync(fd, chunk, 0, chunk.length, off);
    }
  } finally {
    nodefs.closeSync(fd);
  }
  return p;
}

/** Private copies of the undamaged bases. */
export async function cleanImages(bases: readonly BaseName[] = BASE_NAMES): Promise<DamagedImage[]> {
  const out: DamagedImage[] = [];
  for (const name of bases) {
    const b = await baseImage(name);
    out.push({ name: `${name}/clean`, base: name, kind: 'clean', path: privateCopy(b, 'clean'), describe: 'undamaged base image' });
  }
  return out;
}

/** Every targeted kind on every base it applies to (optionally only some kinds/bases). */
export async function targetedImages(opts: { kinds?: readonly string[]; bases?: readonly BaseName[] } = {}): Promise<DamagedImage[]> {
  const out: DamagedImage[] = [];
  for (const name of opts.bases ?? BASE_NAMES) {
    const b = await baseImage(name);
    for (const k of TARGETED_KINDS) {
      if (opts.kinds && !opts.kinds.includes(k.name)) continue;
      if (k.bases && !k.bases.includes(name)) continue;
      const p = privateCopy(b, k.name);
      k.apply(new ImageEditor(p, b));
      out.push({ name: `${name}/${k.name}`, base: name, kind: k.name, path: p, describe: k.describe });
    }
  }
  return out;
}

interface Region {
  label: string;
  from: number;
  to: number;
}

function flipRegions(b: BaseImage): Map<string, Region[]> {
  const r = new Map<string, Region[]>();
  const add = (cat: string, label: string, from: number, to: number) => {
    if (to > from) (r.get(cat) ?? r.set(cat, []).get(cat)!).push({ label, from, to });
  };
  const bs = b.blockSize;
  add('superblock', 'superblock', 1024, 1024 + 0x280);
  const g0 = b.groups[0]!;
  const gdt = g0.groupDescriptors![0];
  add('group descriptors', `GDT block ${gdt}`, gdt * bs, gdt * bs + b.groups.length * b.descSize);
  for (const g of b.groups) {
    if (!g.flags.includes('BLOCK_UNINIT')) add('bitmaps', `block bitmap ${g.blockBitmap}`, g.blockBitmap * bs, (g.blockBitmap + 1) * bs);
    if (!g.flags.includes('INODE_UNINIT')) add('bitmaps', `inode bitmap ${g.inodeBitmap}`, g.inodeBitmap * bs, (g.inodeBitmap + 1) * bs);
  }
  for (const [p, i] of b.inodes) add('inodes', `inode ${i.ino} (${p})`, i.offset, i.offset + b.inodeSize);
  for (const ino of [1, 5, 7, 8, 11]) {
    const off = g0.inodeTable[0] * bs + (ino - 1) * b.inodeSize;
    add('inodes', `inode ${ino}`, off, off + b.inodeSize);
  }
  for (const [p, blocks] of b.treeBlocks) for (const n of blocks) add('map blocks', `${p} map block ${n}`, n * bs, n * bs + Math.min(bs, 256));
  if (b.resizeDind) add('map blocks', `resize DIND ${b.resizeDind}`, b.resizeDind * bs, b.resizeDind * bs + 64);
  for (const [d, blocks] of b.dirBlocks) for (const n of blocks) add('directory blocks', `${d} block ${n}`, n * bs, (n + 1) * bs);
  if (b.xattrBlock) add('xattr', `xattr block ${b.xattrBlock}`, b.xattrBlock * bs, (b.xattrBlock + 1) * bs);
  if (b.journalBlock0) add('journal superblock', `journal block 0 (${b.journalBlock0})`, b.journalBlock0 * bs, b.journalBlock0 * bs + 0x100);
  return r;
}

/**
 * `count` images with seeded random byte flips in metadata, spread over the bases and the region
 * categories in turn. Deterministic in `seed`.
 */
export async function damagedImages(seed: string | number, count: number, opts: { bases?: readonly BaseName[] } = {}): Promise<DamagedImage[]> {
  const rng = new Prng(typeof seed === 'number' ? seed : `damage|${seed}`);
  const bases = opts.bases ?? BASE_NAMES;
  const infos = await Promise.all(bases.map((n) => baseImage(n)));
  const regions = infos.map(flipRegions);
  const out: DamagedImage[] = [];
  for (let id = 0; id < count; id++) {
    const bi = id % infos.length;
    const b = infos[bi]!;
    const reg = regions[bi]!;
    const cats = [...reg.keys()];
    const cat = cats[Math.floor(id / infos.length) % cats.length]!;
    const region = rng.pick(reg.get(cat)!);
    const flips: [number, number][] = [];
    const k = 1 + rng.int(3);
    for (let i = 0; i < k; i++) {
      const off = region.from + rng.int(region.to - region.from);
      const mode = rng.int(4);
      const x = mode === 0 ? 0xff : mode === 1 ? 1 << rng.int(8) : 1 + rng.int(255);
      flips.push([off, x]);
    }
    const p = privateCopy(b, `flip-${id}`);
    const ed = new ImageEditor(p, b);
    for (const [off, x] of flips) {
      const v = ed.read(off, 1);
      v[0] = v[0]! ^ x;
      ed.write(off, v);
    }
    const describe = `${cat}: ${region.label} @ ${flips.map(([o, x]) => `+${o - region.from}^0x${x.toString(16)}`).join(',')}`;
    out.push({ name: `${b.name}/flip-${id}`, base: b.name, kind: 'flip', path: p, describe });
  }
  return out;
}
