/**
 * The whole-space map (lib/ops/fsmap.ts) against real oracles on the test
 * image matrix: every byte covered once, free space equal to dumpe2fs's
 * merged free ranges, fixed metadata where dumpe2fs says it is, and for a
 * sample of blocks owned by inodes (data, extent-tree nodes, indirect
 * blocks, xattr blocks, journal, reserved GDT) the owner `debugfs icheck`
 * names; extent-tree nodes are the index targets `debugfs ex` prints,
 * indirect blocks the (IND)/(DIND)/(TIND) of `debugfs stat`, xattr blocks
 * the inode's File ACL.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { auditSpace, buildReverseMap, fsmap, ownerName, ownerOfBlock, type FsmapRecord, type InodeOwner } from '../../lib/ops/fsmap.js';
import { allocate } from '../../lib/ops/allocate.js';
import { getImage } from '../helpers/images.js';
import { debugfsFull, dumpe2fsGroups, splitDebugfsOutput } from '../helpers/tools.js';
import { cleanupImages, codeOf, copyImage, dumpe2fsFreeRuns, HAVE_E2FSPROGS, icheck, makeImage, pattern } from './helpers.js';

if (!HAVE_E2FSPROGS) console.log('skipping test/ops/fsmap.test.ts: e2fsprogs not installed');

afterEach(() => cleanupImages());

const RECIPES = ['ext4-4k-groups', 'ext4-1k', 'ext4-metabg', 'ext4-noflexbg', 'ext4-inline', 'ext2', 'ext3-1k'];

/** Deterministic sample: up to `n` items spread evenly. */
function spread<T>(list: T[], n: number): T[] {
  if (list.length <= n) return list;
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(list[Math.floor((i * list.length) / n)]!);
  return out;
}

function isInode(o: FsmapRecord['owner']): o is InodeOwner {
  return typeof o === 'object';
}

interface Checked {
  records: FsmapRecord[];
  bs: number;
  blocks: number;
  journalIno: number;
  resize: boolean;
}

async function mapOf(img: string, audit = true): Promise<Checked> {
  const f = await Filesystem.open(img);
  try {
    const records = await fsmap(f);
    if (audit) expect(await auditSpace(f), `${img}: space audit`).toEqual({ leaked: [], multiplyOwned: [], ownedButFree: [], unreadable: [] });
    return { records, bs: f.blockSize, blocks: f.sb.blocksCount, journalIno: f.sb.s_journal_inum, resize: (f.sb.s_feature_compat & 0x10) !== 0 };
  } finally {
    await f.close();
  }
}

/** The checks every image gets. */
function checkAgainstOracles(img: string, m: Checked, label: string): void {
  const { records, bs, blocks } = m;
  // 1. covers [0, size) exactly, ascending, merged
  let pos = 0;
  for (const [k, r] of records.entries()) {
    expect(r.start, `${label}: record ${k} starts where the previous ended`).toBe(pos);
    expect(r.len % bs, `${label}: record ${k} is whole blocks`).toBe(0);
    expect(r.len).toBeGreaterThan(0);
    if (k > 0) expect(ownerName(r.owner) === ownerName(records[k - 1]!.owner), `${label}: records ${k - 1},${k} have the same owner`).toBe(false);
    pos += r.len;
  }
  expect(pos, `${label}: the map ends at the filesystem's end`).toBe(blocks * bs);
  // 2. nothing unknown on a clean filesystem (no leaked block)
  expect(records.filter((r) => r.owner === 'unknown').map((r) => r.start / bs), `${label}: unknown blocks`).toEqual([]);
  // 3. free = dumpe2fs free ranges merged across groups (so every other block is in use in the bitmap)
  const free: [number, number][] = [];
  for (const r of records) {
    if (r.owner !== 'free') continue;
    const l = free[free.length - 1];
    const s = r.start / bs, e = (r.start + r.len) / bs;
    if (l && l[1] === s) l[1] = e;
    else free.push([s, e]);
  }
  expect(free, `${label}: free space vs dumpe2fs`).toEqual(dumpe2fsFreeRuns(img));
  // 4. fixed metadata where dumpe2fs puts it
  const ownerAt = (b: number): string => {
    let lo = 0, hi = records.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (records[mid]!.start <= b * bs) lo = mid + 1;
      else hi = mid;
    }
    return ownerName(records[lo - 1]!.owner);
  };
  for (const g of dumpe2fsGroups(img)) {
    if (g.superblock) expect(ownerAt(g.superblock.block), `${label}: group ${g.group} superblock`).toBe('superblock');
    if (g.groupDescriptors) for (let b = g.groupDescriptors[0]; b <= g.groupDescriptors[1]; b++) expect(ownerAt(b), `${label}: group ${g.group} GDT block ${b}`).toBe('gdt');
    if (g.reservedGdt) for (const b of [g.reservedGdt[0], g.reservedGdt[1]]) expect(ownerAt(b), `${label}: group ${g.group} reserved GDT ${b}`).toBe('reserved_gdt');
    expect(ownerAt(g.blockBitmap), `${label}: group ${g.group} block bitmap`).toBe('block_bitmap');
    expect(ownerAt(g.inodeBitmap), `${label}: group ${g.group} inode bitmap`).toBe('inode_bitmap');
    for (const b of [g.inodeTable[0], g.inodeTable[1]]) expect(ownerAt(b), `${label}: group ${g.group} inode table ${b}`).toBe('inode_table');
  }
  // 5. a sample of blocks of every owned record (first, middle, last) against debugfs icheck
  const sample: { block: number; want: number; what: string }[] = [];
  for (const r of records) {
    const s = r.start / bs, e = (r.start + r.len) / bs;
    const pick = [...new Set([s, Math.floor((s + e - 1) / 2), e - 1])];
    let want: number | null = null;
    if (isInode(r.owner)) want = r.owner.ino;
    else if (r.owner === 'journal') want = m.journalIno;
    else if (r.owner === 'reserved_gdt') want = m.resize ? 7 : 0;
    else if (r.owner !== 'unknown') want = 0; // fixed metadata and free space belong to no inode
    if (want === null) continue;
    for (const b of pick) if (b >= (bs === 1024 ? 1 : 0)) sample.push({ block: b, want, what: ownerName(r.owner) });
  }
  const chosen = spread(sample, 1500);
  const owners = icheck(img, chosen.map((x) => x.block));
  const wrong = chosen.filter((x) => owners.get(x.block) !== x.want).map((x) => `block ${x.block} (${x.what}): icheck says ${owners.get(x.block)}, map says ${x.want}`);
  expect(wrong, `${label}: icheck disagreements`).toEqual([]);
}

/** Extent-tree nodes, indirect blocks and xattr blocks vs debugfs ex / stat. */
function checkMetadataKinds(img: string, records: FsmapRecord[], bs: number, label: string): { tree: number; indirect: number; xattr: number } {
  const byIno = new Map<number, { tree: Set<number>; indirect: Set<number>; xattr: Set<number> }>();
  for (const r of records) {
    if (!isInode(r.owner) || r.owner.kind === 'data') continue;
    const e = byIno.get(r.owner.ino) ?? { tree: new Set(), indirect: new Set(), xattr: new Set() };
    byIno.set(r.owner.ino, e);
    const set = r.owner.kind === 'extent_tree' ? e.tree : r.owner.kind === 'indirect' ? e.indirect : e.xattr;
    for (let b = r.start / bs; b < (r.start + r.len) / bs; b++) set.add(b);
  }
  const structural = [...byIno.keys()].filter((i) => i !== 7 && (byIno.get(i)!.tree.size || byIno.get(i)!.indirect.size));
  const xattrOnly = [...byIno.keys()].filter((i) => i !== 7 && !structural.includes(i));
  const inos = [...spread(structural, 40), ...spread(xattrOnly, 20)];
  const out = splitDebugfsOutput(debugfsFull(img, inos.flatMap((i) => [`ex <${i}>`, `stat <${i}>`])).stdout);
  let tree = 0, indirect = 0, xattr = 0;
  for (const ino of inos) {
    const want = byIno.get(ino)!;
    const ex = out.find((x) => x.cmd === `ex <${ino}>`)?.output ?? '';
    const st = out.find((x) => x.cmd === `stat <${ino}>`)?.output ?? '';
    // index entries of `ex`: level < max level, their Physical column is the child node
    const nodes = new Set<number>();
    for (const line of ex.split('\n')) {
      const m = /^\s*(\d+)\/\s*(\d+)\s+\d+\/\s*\d+\s+\d+\s*-\s*\d+\s+(\d+)\s/.exec(line);
      if (m && m[1] !== m[2]) nodes.add(Number(m[3]));
    }
    expect([...want.tree].sort((a, b) => a - b), `${label}: inode ${ino} extent-tree nodes`).toEqual([...nodes].sort((a, b) => a - b));
    const ind = new Set<number>();
    for (const m of st.matchAll(/\((?:IND|DIND|TIND)\):(\d+)/g)) ind.add(Number(m[1]));
    expect([...want.indirect].sort((a, b) => a - b), `${label}: inode ${ino} indirect blocks`).toEqual([...ind].sort((a, b) => a - b));
    const acl = /File ACL: (\d+)/.exec(st);
    if (want.xattr.size) expect([...want.xattr], `${label}: inode ${ino} xattr block`).toEqual([Number(acl?.[1])]);
    tree += want.tree.size;
    indirect += want.indirect.size;
    xattr += want.xattr.size;
  }
  return { tree, indirect, xattr };
}

describe.skipIf(!HAVE_E2FSPROGS)('fsmap: the whole space, owner by owner', () => {
  for (const name of RECIPES) {
    it(`${name}: covers every byte once; free = dumpe2fs; fixed metadata where dumpe2fs says; inode owners = debugfs icheck`, async () => {
      const img = getImage(name).image;
      const m = await mapOf(img);
      checkAgainstOracles(img, m, name);
      const kinds = checkMetadataKinds(img, m.records, m.bs, name);
      if (name === 'ext2' || name === 'ext3-1k') expect(kinds.indirect, `${name}: indirect blocks checked`).toBeGreaterThan(0);
      expect(kinds.xattr, `${name}: xattr blocks checked`).toBeGreaterThan(0);
    });
  }

  it('unwritten data is flagged; movedata/allocate results show up with the right owner; the journal is inode 8\'s blocks', async () => {
    const img = makeImage('fsmapw', { a: pattern(40 * 4096, 1), b: new Uint8Array(0) }, { sizeMiB: 64, mkfsOpts: ['-g', '2048'] });
    const f = await Filesystem.open(img, { write: true });
    let bIno = 0;
    try {
      const { getFreeBlocks } = await import('../../lib/ops/free.js');
      const at = (await getFreeBlocks(f)).find((e) => e.len >= 100 * 4096)!.start;
      await allocate(f, '/b', { offset: 0, len: 100 * 4096, goal: at, flags: 1 });
      bIno = (await f.resolve('/b')).ino;
      const recs = await fsmap(f, { start: at, end: at + 100 * 4096 });
      expect(recs).toEqual([{ start: at, len: 100 * 4096, owner: { ino: bIno, kind: 'data', unwritten: true } }]);
      const journal = (await f.fileMap(await f.readInode(8))).extents;
      const all = await fsmap(f);
      const jrec = all.filter((r) => r.owner === 'journal');
      expect(jrec.map((r) => [r.start / 4096, r.len / 4096])).toEqual(journal.map((e) => [e.physical, e.length]));
      // a depth-1 extent tree: 12 discontiguous one-block extents
      for (let k = 0; k < 12; k++) await allocate(f, '/a', { offset: (100 + 2 * k) * 4096, len: 4096, goal: at + (200 + 2 * k) * 4096, flags: 1 });
      expect((await f.fileMap(await f.resolve('/a'))).depth).toBe(1);
    } finally {
      await f.close();
    }
    const m = await mapOf(img);
    checkAgainstOracles(img, m, 'after allocate');
    expect(checkMetadataKinds(img, m.records, 4096, 'after allocate').tree).toBe(1);
  });

  it('start/end clip the map (records cut at the edges); unaligned or empty ranges are EINVAL; end beyond the fs is clipped', async () => {
    const img = getImage('ext4-4k-groups').image;
    const f = await Filesystem.open(img);
    try {
      const bs = f.blockSize;
      const all = await fsmap(f);
      const s = all[3]!.start + bs, e = all[10]!.start + bs;
      const part = await fsmap(f, { start: s, end: e });
      expect(part[0]!.start).toBe(s);
      expect(part[part.length - 1]!.start + part[part.length - 1]!.len).toBe(e);
      const rm = await buildReverseMap(f);
      for (const r of part) {
        const full = all.find((x) => x.start <= r.start && r.start < x.start + x.len)!;
        expect(ownerName(r.owner)).toBe(ownerName(full.owner));
        if (isInode(r.owner)) expect(ownerOfBlock(rm, r.start / bs)?.ino).toBe(r.owner.ino);
      }
      expect(await fsmap(f, { end: 2 ** 50, reverseMap: rm })).toEqual(all);
      expect(await codeOf(fsmap(f, { start: 1 }))).toBe('EINVAL');
      expect(await codeOf(fsmap(f, { start: bs, end: bs }))).toBe('EINVAL');
      expect(await codeOf(fsmap(f, { end: bs + 7 }))).toBe('EINVAL');
    } finally {
      await f.close();
    }
  });

  it('the reverse-map scan skips INODE_UNINIT groups and reads only the used part of inode tables', async () => {
    const img = getImage('ext4-4k-groups').image;
    const groups = dumpe2fsGroups(img);
    const f = await Filesystem.open(img);
    try {
      const rm = await buildReverseMap(f);
      const uninit = groups.filter((g) => g.flags.includes('INODE_UNINIT')).length;
      expect(rm.stats.groupsSkipped).toBeGreaterThanOrEqual(uninit);
      const used = groups.reduce((a, g) => a + (g.flags.includes('INODE_UNINIT') ? 0 : (f.sb.s_inodes_per_group - (g.unusedInodes ?? 0)) * f.sb.s_inode_size), 0);
      expect(rm.stats.tableBytes).toBeLessThanOrEqual(used + groups.length * f.blockSize);
      expect(rm.errors).toEqual([]);
      const usedInodes = f.sb.s_inodes_count - f.sb.s_free_inodes_count;
      expect(rm.stats.inodesInUse).toBeLessThanOrEqual(usedInodes);
      expect(rm.stats.inodesInUse).toBeGreaterThanOrEqual(usedInodes - 10); // reserved inodes 1..10 are marked in use, most are all zero
    } finally {
      await f.close();
    }
  });

  it('a damaged image: leaked blocks are "unknown" in the map; auditSpace reports leaked, doubly-owned and owned-but-free blocks', async () => {
    const base = makeImage('fsmapbad', { a: pattern(8 * 4096, 1), b: pattern(8 * 4096, 2), c: pattern(4 * 4096, 3) }, { sizeMiB: 32 });
    const before = await mapOf(base);
    const dataOf = (ino: number) => before.records.filter((r) => isInode(r.owner) && r.owner.kind === 'data' && r.owner.ino === ino);
    const [a, b, c] = [dataOf(12), dataOf(13), dataOf(14)];
    expect([a.length, b.length, c.length]).toEqual([1, 1, 1]);
    // 1. clear /b's inode (its blocks stay marked in use): leaked
    const leak = copyImage(base, 'leak');
    debugfsFull(leak, ['clri <13>'], { write: true });
    const m1 = await mapOf(leak, false);
    expect(m1.records.filter((r) => r.owner === 'unknown').map((r) => [r.start, r.len])).toEqual(b.map((r) => [r.start, r.len]));
    // 2. point /c's extent at /a's first block (i_block[5] = ee_start_lo): owned twice, /c's own blocks leaked
    const twice = copyImage(base, 'twice');
    debugfsFull(twice, [`sif <14> block[5] ${a[0]!.start / 4096}`], { write: true });
    // 3. mark /a's last block free in the bitmap while it is still mapped
    const aLast = (a[0]!.start + a[0]!.len) / 4096 - 1;
    debugfsFull(twice, [`freeb ${aLast}`], { write: true });
    const f = await Filesystem.open(leak);
    const g = await Filesystem.open(twice);
    try {
      const r1 = await auditSpace(f);
      expect(r1.leaked).toEqual([{ start: b[0]!.start / 4096, length: 8 }]);
      expect(r1.multiplyOwned).toEqual([]);
      const r2 = await auditSpace(g);
      expect(r2.multiplyOwned).toEqual([{ start: a[0]!.start / 4096, length: 4, owners: ['inode 12 data', 'inode 14 data'] }]);
      expect(r2.leaked).toEqual([{ start: c[0]!.start / 4096, length: 4 }]);
      expect(r2.ownedButFree).toEqual([{ start: aLast, length: 1, owner: 'inode 12 data' }]);
    } finally {
      await f.close();
      await g.close();
    }
  });
});
