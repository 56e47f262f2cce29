/**
 * Hostile input: a small ext4 image (1 KiB blocks, metadata_csum, an htree directory, a depth-1
 * extent tree, an external xattr block, symlink loops) made by mkfs -d, then damaged on purpose.
 * Every failure must be an Ext4Error with the expected code and a structure + location — never a
 * hang, a RangeError/TypeError, or wrong bytes.
 *
 *  1. Targeted damage: truncation, wrong magic, a bad checksum in each checksummed structure
 *     (EFSBADCRC naming it; `verifyChecksums: false` then reads exactly the original tree),
 *     corrupted extent headers, extents/indexes outside the filesystem, an extent tree cycle, a
 *     block-map cycle (ext2), bad rec_len, an htree root claiming 5 indirect levels, symlink loops.
 *     Structural damage is made with valid checksums (forged with the library's own checksum
 *     functions) so the structural checks, not the checksums, must catch it.
 *  2. A seeded random fuzz: byte flips in the superblock, group descriptors, bitmaps, inode table,
 *     extent, directory and xattr blocks (located with dumpe2fs/debugfs); walking the whole tree
 *     (list -R, resolve, xattrs, every file's bytes) must either throw Ext4Errors only or return
 *     exactly the original (with checksums verified), and never hang (a watchdog terminates the
 *     worker running a case that takes too long).
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { tmpDir } from '../helpers/tmp.js';
import { debugfs, debugfsFull, dumpe2fsGroups, splitDebugfsOutput, e2fsckFix, expectE2fsckClean, mkfs, type GroupInfo } from '../helpers/tools.js';
import { expectedImageMtime, prngBytes, snapshotTree, type Entry } from '../helpers/tree.js';
import { Filesystem } from '../../lib/node.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { Prng } from '../../lib/io/prng.js';
import { describeLocation, Ext4Error } from '../../lib/errors.js';
import { cat } from '../../lib/ops/inspect.js';
import { inodeSeed } from '../../lib/ext4/checksum.js';
import { inodeChecksum } from '../../lib/ext4/inode.js';
import { extentBlockChecksum } from '../../lib/ext4/extents.js';
import { setDxChecksum } from '../../lib/ext4/htree.js';
import { canonicalWalk, runCase, type FuzzCase, type FuzzOutcome } from './fuzz-worker.js';
import { compareWithTruth, outcomeOf, walkImage } from './helpers.js';

const BS = 1024;
const MANY = 150;

interface Fixture {
  image: string;
  bytes: Uint8Array;
  truth: Entry[];
  original: string;
  groups: GroupInfo[];
  inodeSize: number;
  fsSeed: number;
  /** Inode number, byte offset of its slot, generation. */
  inodes: Map<string, { ino: number; offset: number; generation: number }>;
  /** debugfs `blocks` of each directory, in logical order. */
  dirBlocks: Map<string, number[]>;
  /** Extent tree blocks (ETB) of /frag.bin. */
  fragEtb: number;
  xattrBlock: number;
}

let fx: Fixture;

function python(script: string, input: unknown): void {
  const py = nodefs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const r = spawnSync(py, ['-c', script], { input: JSON.stringify(input), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
}

function buildSource(src: string): void {
  const p = (n: string) => path.join(src, n);
  nodefs.mkdirSync(p('deep/a/b/c'), { recursive: true });
  nodefs.writeFileSync(p('deep/a/b/c/leaf.txt'), 'leaf\n');
  nodefs.writeFileSync(p('small.txt'), 'hello, hostile world\n');
  nodefs.writeFileSync(p('empty'), '');
  nodefs.writeFileSync(p('big.bin'), prngBytes('hostile-big', 300 * 1024 + 17));
  // 12 data chunks separated by holes: 12 extents, more than i_block holds → a depth-1 tree
  const fd = nodefs.openSync(p('frag.bin'), 'w');
  for (let i = 0; i < 12; i++) nodefs.writeSync(fd, prngBytes(`frag-${i}`, 1024), 0, 1024, i * 4096);
  nodefs.ftruncateSync(fd, 12 * 4096 - 1000);
  nodefs.closeSync(fd);
  nodefs.mkdirSync(p('many'));
  for (let i = 0; i < MANY; i++) nodefs.writeFileSync(p(`many/entry-${String(i).padStart(3, '0')}-${'n'.repeat(30)}`), `${i}\n`);
  nodefs.writeFileSync(p('xa'), 'xattrs here\n');
  nodefs.symlinkSync('small.txt', p('fast-link'));
  nodefs.symlinkSync('deep/a/b/c/' + '/'.repeat(70) + 'leaf.txt', p('slow-link')); // > 60 bytes: a slow symlink
  nodefs.symlinkSync('loop2', p('loop1'));
  nodefs.symlinkSync('loop1', p('loop2'));
  nodefs.symlinkSync('self/x', p('self'));
  python(
    `import json,os,sys\nfor p,n,v in json.load(sys.stdin): os.setxattr(p,n,bytes.fromhex(v))`,
    [
      [p('xa'), 'user.small', Buffer.from('tiny').toString('hex')],
      [p('xa'), 'user.big', prngBytes('hostile-xattr', 700).toString('hex')],
    ],
  );
  // deterministic mtimes (seconds only: mkfs -d keeps no nanoseconds)
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

/** `debugfs imap` of many paths in one run: inode number and the byte offset of its slot. */
function imapAll(img: string, paths: string[]): Map<string, { ino: number; offset: number }> {
  const parts = splitDebugfsOutput(debugfsFull(img, paths.map((p) => `imap ${p}`)).stdout);
  const out = new Map<string, { ino: number; offset: number }>();
  paths.forEach((p, i) => {
    const m = /Inode (\d+) is part of block group \d+\s+located at block (\d+), offset 0x([0-9a-f]+)/.exec(parts[i]?.output ?? '');
    if (!m) throw new Error(`debugfs imap ${p}: ${parts[i]?.output}`);
    out.set(p, { ino: Number(m[1]), offset: Number(m[2]) * BS + parseInt(m[3]!, 16) });
  });
  return out;
}

/** A file's data blocks in logical order, from the EXTENTS of `debugfs stat` (tree blocks skipped). */
function dataBlocks(img: string, p: string): number[] {
  const st = debugfs(img, [`stat ${p}`]);
  const ext = /EXTENTS:\n([\s\S]*)$/.exec(st);
  if (!ext) throw new Error(`debugfs stat ${p}: no EXTENTS:\n${st}`);
  const out: { l: number; p: number }[] = [];
  for (const m of ext[1]!.matchAll(/\((\d+)(?:-(\d+))?\):(\d+)(?:-\d+)?/g)) {
    const lo = Number(m[1]);
    const hi = Number(m[2] ?? m[1]);
    for (let l = lo; l <= hi; l++) out.push({ l, p: Number(m[3]) + l - lo });
  }
  out.sort((a, b) => a.l - b.l);
  out.forEach((x, i) => {
    if (x.l !== i) throw new Error(`${p}: logical block ${i} is not mapped`);
  });
  return out.map((x) => x.p);
}

function buildFixture(): Fixture {
  const dir = tmpDir('hostile');
  const src = path.join(dir, 'src');
  nodefs.mkdirSync(src);
  buildSource(src);
  const image = path.join(dir, 'hostile.img');
  mkfs('ext4', image, 4 * 1024 * 1024, ['-b', String(BS), '-N', '256', '-J', 'size=1'], src);
  e2fsckFix(image, ['-D']);
  expectE2fsckClean(image, 'hostile fixture');
  const bytes = new Uint8Array(nodefs.readFileSync(image));
  const inodes = new Map<string, { ino: number; offset: number; generation: number }>();
  const truth = snapshotTree(src);
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  for (const [p, { ino, offset }] of imapAll(image, ['/', ...truth.map((e) => `/${e.path}`)])) {
    inodes.set(p, { ino, offset, generation: dv.getUint32(offset + 0x64, true) });
  }
  const dirBlocks = new Map<string, number[]>();
  for (const d of ['/', ...truth.filter((e) => e.type === 'dir').map((e) => `/${e.path}`)]) {
    dirBlocks.set(d, dataBlocks(image, d));
  }
  const fragStat = debugfs(image, ['stat /frag.bin']);
  const etb = /\(ETB0\):(\d+)/.exec(fragStat);
  if (!etb) throw new Error(`/frag.bin has no extent tree block:\n${fragStat}`);
  const acl = /File ACL: (\d+)/.exec(debugfs(image, ['stat /xa']));
  if (!acl || acl[1] === '0') throw new Error('/xa has no xattr block');
  return {
    image,
    bytes,
    truth,
    original: '',
    groups: dumpe2fsGroups(image),
    inodeSize: 256, // both set from the opened image in beforeAll
    fsSeed: 0,
    inodes,
    dirBlocks,
    fragEtb: Number(etb[1]),
    xattrBlock: Number(acl[1]),
  };
}

function xor(b: Uint8Array, off: number, v: number): void {
  b[off] = b[off]! ^ v;
}

/** A patched copy of the fixture. */
function patched(edit: (b: Uint8Array, dv: DataView) => void): Uint8Array {
  const b = fx.bytes.slice();
  edit(b, new DataView(b.buffer, b.byteOffset, b.byteLength));
  return b;
}

function open(bytes: Uint8Array, verify = true): Promise<Filesystem> {
  return Filesystem.open(new MemoryDevice(bytes, { readOnly: true, name: 'hostile' }), { verifyChecksums: verify });
}

/** Open + walk everything; returns the canonical walk or the error. */
async function walk(bytes: Uint8Array, verify = true): Promise<string | unknown> {
  try {
    const fs = await open(bytes, verify);
    try {
      return await canonicalWalk(fs);
    } finally {
      await fs.close();
    }
  } catch (e) {
    return e;
  }
}

function expectExt4(e: unknown, code: string, structure: RegExp, location: RegExp): Ext4Error {
  if (!(e instanceof Ext4Error)) throw new Error(`expected an Ext4Error ${code}, got ${typeof e === 'string' ? 'a successful walk' : String((e as Error)?.stack ?? e)}`);
  expect(e.code, e.message).toBe(code);
  expect(e.structure ?? '', e.message).toMatch(structure);
  expect(describeLocation(e.location) ?? '', e.message).toMatch(location);
  return e;
}

/** Recompute the inode checksum of the slot at `offset` (metadata_csum). */
function fixInodeCsum(b: Uint8Array, who: string): void {
  const i = fx.inodes.get(who)!;
  const slot = b.subarray(i.offset, i.offset + fx.inodeSize);
  const c = inodeChecksum(slot, i.ino, i.generation, fx.fsSeed, fx.inodeSize);
  const dv = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
  dv.setUint16(0x7c, c.lo, true);
  if (c.hi !== null) dv.setUint16(0x82, c.hi, true);
}

function fixExtentCsum(b: Uint8Array, block: number, owner: string): void {
  const i = fx.inodes.get(owner)!;
  const node = b.subarray(block * BS, (block + 1) * BS);
  const dv = new DataView(node.buffer, node.byteOffset, node.byteLength);
  const max = dv.getUint16(4, true);
  dv.setUint32(12 + 12 * max, extentBlockChecksum(node, max, inodeSeed(fx.fsSeed, i.ino, i.generation)), true);
}

beforeAll(async () => {
  fx = buildFixture();
  const fs = await open(fx.bytes);
  try {
    fx.fsSeed = fs.fsSeed;
    fx.inodeSize = fs.sb.s_inode_size;
    // ground the fixture in the source tree, then record the canonical walk
    const image = await walkImage(fs);
    const r = await compareWithTruth(fs, image, fx.truth, { mtime: expectedImageMtime, mtimeNs: () => 0 });
    expect(r.problems).toEqual([]);
    fx.original = await canonicalWalk(fs);
    const many = await fs.resolve('/many');
    expect(many.flags & 0x1000, '/many is an htree').toBe(0x1000);
    const frag = await fs.fileMap(await fs.resolve('/frag.bin'));
    expect(frag.depth).toBe(1);
  } finally {
    await fs.close();
  }
});

describe('targeted damage', () => {
  it('a truncated image: EFSCORRUPTED naming the superblock (or EINVAL when not even the superblock fits); by path too', async () => {
    expectExt4(await outcomeOf(open(fx.bytes.slice(0, 2 * 1024 * 1024))), 'EFSCORRUPTED', /^superblock$/, /byte 1024/);
    expectExt4(await outcomeOf(open(fx.bytes.slice(0, 1500))), 'EINVAL', /^superblock$/, /byte 1024/);
    const p = path.join(tmpDir('trunc'), 'trunc.img');
    nodefs.writeFileSync(p, fx.bytes.subarray(0, 3 * 1024 * 1024 + 5));
    expectExt4(await outcomeOf(Filesystem.open(p)), 'EFSCORRUPTED', /^superblock$/, /byte 1024/);
  });

  it('wrong magic: EINVAL "not an ext2/3/4 filesystem"', async () => {
    const e = expectExt4(await outcomeOf(open(patched((b) => xor(b, 1024 + 0x38, 0xff)))), 'EINVAL', /^superblock$/, /byte 1024/);
    expect(e.message).toMatch(/magic/);
    expectExt4(await outcomeOf(open(new Uint8Array(64 * 1024))), 'EINVAL', /^superblock$/, /byte 1024/);
  });

  describe('a bad checksum in each structure: EFSBADCRC naming it; verifyChecksums: false reads the original tree', () => {
    const cases: { what: string; structure: () => RegExp; location: () => RegExp; edit: (b: Uint8Array) => void; check?: (fs: Filesystem) => Promise<unknown> }[] = [
      { what: 'superblock (volume name byte)', structure: () => /^superblock$/, location: () => /^byte 1024$/, edit: (b) => xor(b, 1024 + 0x78, 0x41) },
      {
        what: 'group descriptor 0 (free blocks count)',
        structure: () => /^group descriptor$/,
        location: () => /^group 0$/,
        edit: (b) => xor(b, fx.groups[0]!.groupDescriptors![0] * BS + 0x0c, 0x01),
      },
      {
        what: 'inode of /big.bin (atime)',
        structure: () => new RegExp(`^inode ${fx.inodes.get('/big.bin')!.ino}$`),
        location: () => /^group 0$/,
        edit: (b) => xor(b, fx.inodes.get('/big.bin')!.offset + 0x08, 0x01),
      },
      {
        what: 'extent tree block of /frag.bin (an unused slot)',
        structure: () => /extent tree/,
        location: () => new RegExp(`^block ${fx.fragEtb}$`),
        edit: (b) => xor(b, fx.fragEtb * BS + 12 + 12 * 12 + 5, 0x10), // 12 extents: entry 12 is unused
      },
      {
        what: 'directory block of /deep (slack after the last entry)',
        structure: () => /^directory block$/,
        location: () => new RegExp(`^directory ${fx.inodes.get('/deep')!.ino} block 0 \\(physical ${fx.dirBlocks.get('/deep')![0]}\\)$`),
        edit: (b) => xor(b, fx.dirBlocks.get('/deep')![0]! * BS + 200, 0x20),
      },
      {
        what: 'xattr block of /xa (gap between entries and values)',
        structure: () => /^xattr block$/,
        location: () => new RegExp(`^block ${fx.xattrBlock}$`),
        edit: (b) => xor(b, fx.xattrBlock * BS + 150, 0x08),
      },
      {
        what: 'htree root of /many (dx tail reserved word)',
        structure: () => /^dx root$/,
        location: () => new RegExp(`^directory ${fx.inodes.get('/many')!.ino} block 0`),
        edit: (b) => {
          const blk = fx.dirBlocks.get('/many')![0]! * BS;
          const limit = b[blk + 0x20]! | (b[blk + 0x21]! << 8);
          xor(b, blk + 0x20 + limit * 8, 0x01);
        },
      },
      {
        what: 'block bitmap of group 0',
        structure: () => /^block bitmap$/,
        location: () => new RegExp(`^group 0 block ${fx.groups[0]!.blockBitmap}$`),
        edit: (b) => xor(b, fx.groups[0]!.blockBitmap * BS + 500, 0x01),
        check: (fs) => fs.blockBitmap(0),
      },
      {
        what: 'inode bitmap of group 0',
        structure: () => /^inode bitmap$/,
        location: () => new RegExp(`^group 0 block ${fx.groups[0]!.inodeBitmap}$`),
        edit: (b) => xor(b, fx.groups[0]!.inodeBitmap * BS + 3, 0x80),
        check: (fs) => fs.inodeBitmap(0),
      },
    ];
    for (const c of cases) {
      it(c.what, async () => {
        const bytes = patched(c.edit);
        const structure = c.structure();
        if (c.check) {
          const fs = await open(bytes);
          try {
            expectExt4(await outcomeOf(c.check(fs)), 'EFSBADCRC', structure, c.location());
          } finally {
            await fs.close();
          }
          const lax = await open(bytes, false);
          try {
            expect(await outcomeOf(c.check(lax))).not.toBeInstanceOf(Error);
          } finally {
            await lax.close();
          }
        } else {
          expectExt4(await walk(bytes), 'EFSBADCRC', structure, c.location());
        }
        expect(await walk(bytes, false), 'verifyChecksums: false reads exactly the original').toBe(fx.original);
      });
    }
  });

  it('a corrupted extent header (magic in i_block; entries > max in the tree block): EFSCORRUPTED, with valid checksums and without checking them', async () => {
    const who = '/frag.bin';
    const ino = fx.inodes.get(who)!;
    const magic = patched((b) => {
      xor(b, ino.offset + 0x28, 0xff);
      fixInodeCsum(b, who);
    });
    for (const v of [true, false]) expectExt4(await walk(magic, v), 'EFSCORRUPTED', new RegExp(`^inode ${ino.ino} extent tree$`), /^i_block$/);
    const entries = patched((b, dv) => {
      const o = fx.fragEtb * BS;
      dv.setUint16(o + 2, dv.getUint16(o + 4, true) + 1, true);
      fixExtentCsum(b, fx.fragEtb, who);
    });
    const e = expectExt4(await walk(entries), 'EFSCORRUPTED', /extent tree$/, new RegExp(`^block ${fx.fragEtb}$`));
    expect(e.message).toMatch(/eh_entries/);
    // reading that file directly gives the same error, never bytes
    const fs = await open(entries);
    try {
      const inode = await fs.resolve(who);
      expectExt4(await outcomeOf(fs.read(inode, 0, inode.size)), 'EFSCORRUPTED', /extent tree$/, new RegExp(`^block ${fx.fragEtb}$`));
    } finally {
      await fs.close();
    }
  });

  it('an extent and an index pointing outside the filesystem: EFSCORRUPTED at the entry', async () => {
    const who = '/frag.bin';
    const ino = fx.inodes.get(who)!;
    const leaf = patched((b, dv) => {
      dv.setUint32(fx.fragEtb * BS + 12 + 8, 0xfffff000, true); // entry 0 ee_start_lo
      fixExtentCsum(b, fx.fragEtb, who);
    });
    expectExt4(await walk(leaf), 'EFSCORRUPTED', /extent tree$/, new RegExp(`^block ${fx.fragEtb} entry 0$`));
    const index = patched((b, dv) => {
      dv.setUint32(ino.offset + 0x28 + 12 + 4, 0x7ffffff0, true); // i_block index 0 ei_leaf_lo
      fixInodeCsum(b, who);
    });
    expectExt4(await walk(index), 'EFSCORRUPTED', /extent tree$/, /^i_block index 0$/);
    // a file whose i_block extent (depth 0) points past the end: /small.txt
    const small = fx.inodes.get('/small.txt')!;
    const direct = patched((b, dv) => {
      dv.setUint32(small.offset + 0x28 + 12 + 8, 4096 * 1024, true);
      fixInodeCsum(b, '/small.txt');
    });
    expectExt4(await walk(direct), 'EFSCORRUPTED', /extent tree$/, /^i_block entry 0$/);
  });

  it('an extent tree with a cycle (a node indexing itself, i.e. its ancestor): EFSCORRUPTED, no hang', async () => {
    const who = '/frag.bin';
    const ino = fx.inodes.get(who)!;
    const cyc = patched((b, dv) => {
      // root: depth 1 → 2 (its one index entry still points at the tree block)
      dv.setUint16(ino.offset + 0x28 + 6, 2, true);
      fixInodeCsum(b, who);
      // the tree block becomes an index node (depth 1) whose only entry points back at itself
      const o = fx.fragEtb * BS;
      dv.setUint16(o + 2, 1, true);
      dv.setUint16(o + 6, 1, true);
      dv.setUint32(o + 12, 0, true); // ei_block 0
      dv.setUint32(o + 12 + 4, fx.fragEtb, true); // ei_leaf_lo
      dv.setUint16(o + 12 + 8, 0, true);
      fixExtentCsum(b, fx.fragEtb, who);
    });
    for (const v of [true, false]) {
      const e = expectExt4(await walk(cyc, v), 'EFSCORRUPTED', /extent tree$/, /index 0$/);
      expect(e.message).toMatch(/cycle|twice/);
    }
  });

  it('a block-mapped (ext2) file whose double-indirect block points at itself: EFSCORRUPTED, no hang', async () => {
    const dir = tmpDir('hostile-ext2');
    const src = path.join(dir, 'src');
    nodefs.mkdirSync(src);
    nodefs.writeFileSync(path.join(src, 'f'), prngBytes('ext2-f', (12 + 256 + 10) * 1024));
    const img = path.join(dir, 'e2.img');
    mkfs('ext2', img, 2 * 1024 * 1024, ['-b', '1024', '-N', '32'], src);
    const st = debugfs(img, ['stat /f']);
    const dind = /\(DIND\):(\d+)/.exec(st);
    if (!dind) throw new Error(`no DIND block:\n${st}`);
    const b = new Uint8Array(nodefs.readFileSync(img));
    const d = Number(dind[1]);
    new DataView(b.buffer).setUint32(d * 1024 + 4, d, true); // slot 1 → the DIND block itself
    const e = await walk(b);
    const err = expectExt4(e, 'EFSCORRUPTED', /block map$/, /./);
    expect(err.message).toMatch(/twice/);
    // and an indirect pointer outside the filesystem
    const b2 = new Uint8Array(nodefs.readFileSync(img));
    new DataView(b2.buffer).setUint32(d * 1024 + 8, 0x7fffffff, true);
    expectExt4(await walk(b2), 'EFSCORRUPTED', /block map$/, /./);
  });

  it('a directory block with a bad rec_len: EFSCORRUPTED naming the directory, block and offset', async () => {
    const d = fx.inodes.get('/deep')!;
    const blk = fx.dirBlocks.get('/deep')![0]!;
    for (const recLen of [5, 6, 2000, 0]) {
      const bytes = patched((_b, dv) => dv.setUint16(blk * BS + 12 + 4, recLen, true)); // '..' entry
      for (const v of [true, false]) {
        const e = expectExt4(await walk(bytes, v), 'EFSCORRUPTED', /^directory entry$/, new RegExp(`^directory ${d.ino} block 0 \\(physical ${blk}\\) offset 12$`));
        expect(e.message).toMatch(/rec_len/);
      }
    }
    // in an htree leaf: the lookup fails the same way (resolve of a name in that leaf)
    const many = fx.dirBlocks.get('/many')!;
    const leaf = many[1]!;
    const bytes = patched((_b, dv) => dv.setUint16(leaf * BS + 4, 3, true));
    const fs = await open(bytes, false);
    try {
      const names = (await outcomeOf(fs.readdirRaw(await fs.resolve('/many')))) as Ext4Error;
      expectExt4(names, 'EFSCORRUPTED', /^directory entry$/, new RegExp(`physical ${leaf}\\) offset 0$`));
      let hits = 0;
      for (let i = 0; i < MANY; i++) {
        const r = await outcomeOf(fs.resolve(`/many/entry-${String(i).padStart(3, '0')}-${'n'.repeat(30)}`));
        if (r instanceof Error) {
          expectExt4(r, 'EFSCORRUPTED', /^directory entry$/, /offset 0$/);
          hits++;
        }
      }
      expect(hits, 'names hashed into the damaged leaf fail, the others resolve').toBeGreaterThan(0);
      expect(hits).toBeLessThan(MANY);
    } finally {
      await fs.close();
    }
  });

  it('an htree root with indirect_levels 5: EFSCORRUPTED at the dx root (valid checksum)', async () => {
    const d = fx.inodes.get('/many')!;
    const blk = fx.dirBlocks.get('/many')![0]!;
    const bytes = patched((b) => {
      b[blk * BS + 0x18 + 6] = 5;
      setDxChecksum(b.subarray(blk * BS, (blk + 1) * BS), inodeSeed(fx.fsSeed, d.ino, d.generation));
    });
    for (const v of [true, false]) {
      const e = expectExt4(await walk(bytes, v), 'EFSCORRUPTED', /^dx root$/, new RegExp(`^directory ${d.ino} block 0`));
      expect(e.message).toMatch(/indirect_levels 5/);
    }
  });

  it('symlink loops: ELOOP (following), fine when not following', async () => {
    const fs = await open(fx.bytes);
    try {
      for (const p of ['/loop1', '/loop2', '/loop1/x', '/self', '/self/y']) {
        const e = await outcomeOf(fs.resolve(p));
        expect(e, p).toBeInstanceOf(Ext4Error);
        expect((e as Ext4Error).code, p).toBe('ELOOP');
      }
      expect((await fs.resolve('/loop1', { followLast: false })).type).toBe('symlink');
      expect(((await outcomeOf(cat(fs, '/loop2'))) as Ext4Error).code).toBe('ELOOP');
      // the slow symlink and the fast one still work
      expect((await fs.resolve('/slow-link')).ino).toBe(fx.inodes.get('/deep/a/b/c/leaf.txt')!.ino);
      expect((await fs.resolve('/fast-link')).ino).toBe(fx.inodes.get('/small.txt')!.ino);
    } finally {
      await fs.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Random byte flips

interface Region {
  label: string;
  /** Absolute byte range worth flipping. */
  from: number;
  to: number;
}

function metadataRegions(): Map<string, Region[]> {
  const r = new Map<string, Region[]>();
  const add = (cat: string, label: string, from: number, to: number) => {
    if (to > from) (r.get(cat) ?? r.set(cat, []).get(cat)!).push({ label, from, to });
  };
  add('superblock', 'superblock', 1024, 1024 + 0x280);
  const dv = new DataView(fx.bytes.buffer, fx.bytes.byteOffset);
  const descSize = dv.getUint16(1024 + 0xfe, true) || 32;
  const g0 = fx.groups[0]!;
  add('group descriptors', `GDT block ${g0.groupDescriptors![0]}`, g0.groupDescriptors![0] * BS, g0.groupDescriptors![0] * BS + fx.groups.length * descSize);
  for (const g of fx.groups) {
    add('bitmaps', `block bitmap ${g.blockBitmap}`, g.blockBitmap * BS, (g.blockBitmap + 1) * BS);
    add('bitmaps', `inode bitmap ${g.inodeBitmap}`, g.inodeBitmap * BS, (g.inodeBitmap + 1) * BS);
  }
  for (const [p, i] of fx.inodes) add('inode table', `inode ${i.ino} (${p})`, i.offset, i.offset + fx.inodeSize);
  for (const ino of [1, 5, 7, 8]) {
    // bad-blocks, boot loader, resize, journal inodes: read on open/replay paths
    const g = fx.groups[0]!;
    add('inode table', `inode ${ino}`, g.inodeTable[0] * BS + (ino - 1) * fx.inodeSize, g.inodeTable[0] * BS + ino * fx.inodeSize);
  }
  add('extent blocks', `ETB ${fx.fragEtb}`, fx.fragEtb * BS, fx.fragEtb * BS + 12 + 12 * 12 + 16);
  for (const [d, blocks] of fx.dirBlocks) for (const b of blocks) add('directory blocks', `${d} block ${b}`, b * BS, (b + 1) * BS);
  add('xattr blocks', `xattr block ${fx.xattrBlock}`, fx.xattrBlock * BS, (fx.xattrBlock + 1) * BS);
  return r;
}

function makeCases(seed: string, n: number): FuzzCase[] {
  const rng = new Prng(seed);
  const regions = metadataRegions();
  const cats = [...regions.keys()];
  const cases: FuzzCase[] = [];
  for (let id = 0; id < n; id++) {
    const cat = cats[id % cats.length]!;
    const reg = rng.pick(regions.get(cat)!);
    const flips: [number, number][] = [];
    const k = 1 + rng.int(3);
    for (let i = 0; i < k; i++) {
      const off = reg.from + rng.int(reg.to - reg.from);
      const mode = rng.int(4);
      const x = mode === 0 ? 0xff : mode === 1 ? 1 << rng.int(8) : 1 + rng.int(255);
      flips.push([off, x]);
    }
    cases.push({ id, label: `${cat}: ${reg.label} @ ${flips.map(([o, x]) => `${o - reg.from}^0x${x.toString(16)}`).join(',')}`, flips });
  }
  return cases;
}

interface FuzzReport {
  outcomes: Map<number, FuzzOutcome | { kind: 'hang' }>;
  ms: number;
}

/** Run cases in a worker; a case running longer than `caseMs` is a hang (the worker is killed and a new one continues). */
async function runFuzz(cases: FuzzCase[], verify: boolean, caseMs: number): Promise<FuzzReport> {
  const t0 = Date.now();
  const outcomes = new Map<number, FuzzOutcome | { kind: 'hang' }>();
  const boot = fileURLToPath(new URL('./fuzz-worker-boot.mjs', import.meta.url));
  const entry = fileURLToPath(new URL('./fuzz-worker.ts', import.meta.url));
  let remaining = cases;
  while (remaining.length) {
    await new Promise<void>((resolve, reject) => {
      const w = new Worker(boot, { workerData: { entry, fuzz: true, image: fx.image, verify, cases: remaining, original: fx.original } });
      let current: number | null = null;
      let timer: NodeJS.Timeout | null = null;
      let startupTimer: NodeJS.Timeout | null = setTimeout(() => {
        void w.terminate();
        reject(new Error('the fuzz worker did not start within 60 s'));
      }, 60_000);
      const arm = () => {
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => {
          if (current !== null) outcomes.set(current, { kind: 'hang' });
          void w.terminate();
        }, caseMs);
      };
      w.on('message', (m: { kind: string; id?: number; outcome?: FuzzOutcome }) => {
        if (startupTimer) {
          clearTimeout(startupTimer);
          startupTimer = null;
        }
        if (m.kind === 'start') {
          current = m.id!;
          arm();
        } else if (m.kind === 'done') {
          outcomes.set(m.id!, m.outcome!);
          current = null;
          if (timer) clearTimeout(timer);
        }
      });
      w.on('error', (e) => {
        if (timer) clearTimeout(timer);
        if (startupTimer) clearTimeout(startupTimer);
        if (current !== null) outcomes.set(current, { kind: 'other-error', name: 'WorkerError', message: String((e as Error)?.stack ?? e) });
        resolve();
      });
      w.on('exit', () => {
        if (timer) clearTimeout(timer);
        if (startupTimer) clearTimeout(startupTimer);
        resolve();
      });
    });
    const before = remaining.length;
    remaining = remaining.filter((c) => !outcomes.has(c.id));
    if (remaining.length === before) throw new Error('the fuzz worker made no progress');
  }
  return { outcomes, ms: Date.now() - t0 };
}

function summarise(cases: FuzzCase[], rep: FuzzReport): { bad: string[]; counts: Record<string, number> } {
  const bad: string[] = [];
  const counts: Record<string, number> = {};
  for (const c of cases) {
    const o = rep.outcomes.get(c.id)!;
    const key = o.kind === 'ext4error' ? `${o.code}` : o.kind;
    counts[key] = (counts[key] ?? 0) + 1;
    if (o.kind === 'hang') bad.push(`case ${c.id} (${c.label}): HANG`);
    if (o.kind === 'other-error') bad.push(`case ${c.id} (${c.label}): ${o.name}: ${o.message}\n${o.stack ?? ''}`);
    // Every on-disk problem names the structure and where it is. Path errors (a corrupted name no
    // longer hashes to its htree leaf: ENOENT; a mode turned into a symlink: ELOOP/ENOTDIR) name the path.
    const pathError = ['ENOENT', 'ENOTDIR', 'ELOOP', 'EISDIR', 'EINVAL'].includes(o.kind === 'ext4error' ? o.code : '');
    if (o.kind === 'ext4error' && !pathError && !o.structure) {
      bad.push(`case ${c.id} (${c.label}): ${o.code} without a structure: ${o.message}`);
    }
  }
  return { bad, counts };
}

describe('random byte flips in metadata (seeded)', () => {
  const CASE_MS = 10_000;

  it('with checksums verified: every walk throws Ext4Errors only or returns exactly the original tree; no hang', async () => {
    const cases = makeCases('ext4kit-read-fuzz-verify', 320);
    const rep = await runFuzz(cases, true, CASE_MS);
    const { bad, counts } = summarise(cases, rep);
    for (const c of cases) {
      const o = rep.outcomes.get(c.id)!;
      if (o.kind === 'different') bad.push(`case ${c.id} (${c.label}): WRONG CONTENT with checksums on: ${o.detail}`);
    }
    expect(bad).toEqual([]);
    expect(counts.EFSBADCRC ?? 0, 'checksums catch most flips').toBeGreaterThan(cases.length / 4);
  }, 240_000);

  it('without checksum verification: only Ext4Errors, never a hang, RangeError or TypeError', async () => {
    const cases = makeCases('ext4kit-read-fuzz-lax', 240);
    const rep = await runFuzz(cases, false, CASE_MS);
    const { bad, counts } = summarise(cases, rep);
    expect(bad).toEqual([]);
    expect((counts.EFSCORRUPTED ?? 0) + (counts.EINVAL ?? 0), 'structural checks fire').toBeGreaterThan(10);
  }, 240_000);

  it('the runner itself: a flip-free case is "same", an in-process run agrees with the worker', async () => {
    const same = await runCase(fx.bytes, { id: 0, label: 'none', flips: [] }, true, fx.original);
    expect(same).toEqual({ kind: 'same' });
    const c = makeCases('runner-check', 8);
    const rep = await runFuzz(c, true, CASE_MS);
    for (const x of c) expect(rep.outcomes.get(x.id)).toEqual(await runCase(fx.bytes, x, true, fx.original));
  }, 120_000);
});
