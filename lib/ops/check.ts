/**
 * An fsck-like, read-only consistency check that reports what `e2fsck -fn`
 * reports (its passes, same rules, never a repair):
 *   pass 0  superblock values and times, group descriptors, the resize inode,
 *           the journal inode and superblock (check-super.ts, check-journal.ts);
 *   pass 1  every inode slot e2fsck scans: checksums, the per-inode rules of
 *           check-inode.ts (reserved inodes, dtime, flags, sizes, symlinks,
 *           devices, in-inode xattrs), block maps, i_blocks, xattr blocks
 *           (entries, hashes, reference counts), in-use vs the inode bitmap;
 *   pass 2  the directory tree from the root: entries parse (dirent and htree
 *           checksums), '.' and '..' first, names legal, every entry names an
 *           inode in use with the right file type, each directory reached once;
 *   pass 3  every inode in use is reachable, '..' names the real parent;
 *   pass 4  link counts equal the number of names (and subdirectories); an EA inode
 *           (ea_inode) is attached through the xattr entries naming it, its refcount
 *           equal to their number (check-ea-inode.ts);
 *   pass 5  block bitmaps equal "fixed metadata ∪ owned blocks" with no block
 *           owned twice, free and directory counts equal what was found.
 * Every loop is bounded by on-disk limits (inode counts, the directory tree is
 * walked once per directory), so damaged images end with a report, not a hang.
 */
import { describeLocation, isExt4Error } from '../errors.js';
import { le32 } from '../codec/layout.js';
import type { Filesystem, FileMap } from '../ext4/filesystem.js';
import { NDIR_BLOCKS } from '../ext4/blockmap.js';
import { decodeName } from '../ext4/bytes.js';
import { blocksInGroup, groupFirstBlock, groupFixedMetadata, groupOfBlock, inodeTableBlocks } from '../ext4/geometry.js';
import { mmpExtent } from '../ext4/fixed-metadata.js';
import { countFree, setBit, testBit } from '../ext4/bitmap.js';
import { BG_FLAGS, uninitFlagsHonoured } from '../ext4/group-desc.js';
import { COMPAT, INCOMPAT, RO_COMPAT } from '../ext4/superblock.js';
import type { FileType as InodeType, Inode } from '../ext4/inode.js';
import { scanInodeTables } from '../ext4/inode-scan.js';
import { FileType } from '../ext4/directory.js';
import { parseInodeXattrs, parseXattrBlock, XattrBlockHeaderLayout, type XattrEntry } from '../ext4/xattr.js';
import { checkXattrBlock } from '../ext4/xattr-check.js';
import { checkSuperblock } from './check-super.js';
import { checkJournal } from './check-journal.js';
import { checkInode, sizeProblems, xattrContext } from './check-inode.js';
import { checkHtree } from './check-htree.js';
import { EaInodeTally, eaInodeFacts, type EaInodeFacts } from './check-ea-inode.js';
import type { CheckProblem } from './check-problem.js';

export type { CheckProblem };

export interface CheckReport {
  ok: boolean;
  problems: CheckProblem[];
  stats: { inodesInUse: number; directories: number; blocksOwned: number; groups: number; ms: number };
}

const MAX_PROBLEMS = 1000;
const BAD_INO = 1, ROOT_INO = 2, RESIZE_INO = 7;

const DIRENT_TYPE: Record<InodeType, number> = {
  file: FileType.REG_FILE, dir: FileType.DIR, chardev: FileType.CHRDEV, blockdev: FileType.BLKDEV,
  fifo: FileType.FIFO, socket: FileType.SOCK, symlink: FileType.SYMLINK,
};

export async function checkFilesystem(fs: Filesystem): Promise<CheckReport> {
  const t0 = performance.now();
  const problems: CheckProblem[] = [];
  try {
    return await runChecks(fs, t0, problems);
  } catch (e) {
    // Damage that stops the walk itself (a descriptor or inode table that cannot be read).
    if (!isExt4Error(e)) throw e;
    problems.push({ pass: 1, code: e.code, structure: e.structure ?? 'filesystem', location: describeLocation(e.location) ?? '', message: e.message });
    return { ok: false, problems: problems.slice(0, MAX_PROBLEMS), stats: { inodesInUse: 0, directories: 0, blocksOwned: 0, groups: fs.sb.groupCount, ms: performance.now() - t0 } };
  }
}

/** What pass 1 keeps of each inode in use for the later passes. */
interface InodeInfo {
  type: InodeType | null;
  links: number;
  /** Set for an inode flagged EXT4_EA_INODE_FL. */
  ea: EaInodeFacts | null;
}

async function runChecks(fs: Filesystem, t0: number, problems: CheckProblem[]): Promise<CheckReport> {
  const sb = fs.sb;
  const bs = fs.blockSize;
  const report = (p: CheckProblem) => {
    if (problems.length < MAX_PROBLEMS) problems.push(p);
  };
  const fromError = (pass: CheckProblem['pass'], e: unknown, structure: string, location: string) => {
    if (!isExt4Error(e)) throw e;
    report({ pass, code: e.code, structure: e.structure ?? structure, location: describeLocation(e.location) ?? location, message: e.message });
  };
  const bad = (pass: CheckProblem['pass'], structure: string, location: string, message: string) => report({ pass, code: 'EFSCORRUPTED', structure, location, message });

  // ---- pass 0: superblock, descriptors, resize inode, journal
  for (const p of await checkSuperblock(fs)) report(p);
  for (const p of await checkJournal(fs)) report(p);

  // ---- pass 1: every inode slot e2fsck scans
  const ipg = sb.s_inodes_per_group;
  /** Blocks per cluster (bigalloc; 1 otherwise): bitmaps and counts are in clusters. */
  const ratio = 2 ** (sb.s_log_cluster_size - sb.s_log_block_size);
  const cpg = sb.s_clusters_per_group;
  const honoured = uninitFlagsHonoured(sb);
  const inUse = new Map<number, InodeInfo>();
  const dirsInGroup = new Map<number, number>();
  /** Owned blocks, for pass 5: [start, length, owner]. */
  const owned: { start: number; length: number; ino: number; what: string }[] = [];
  const xattrRefs = new Map<number, XattrBlockSeen>();
  const eaInodes = new EaInodeTally();
  let inodesInUse = 0;
  for await (const item of scanInodeTables(fs, { which: 'all', onReadError: 'per-inode' })) {
    if (item.kind === 'group') {
      // An unreadable descriptor is reported in pass 0.
      if (item.bitmapError) fromError(5, item.bitmapError, 'inode bitmap', `group ${item.group}`);
      continue;
    }
    const { ino, group: g, marked } = item;
    if (!item.inode) {
      fromError(1, item.error, `inode ${ino}`, `group ${g}`);
      continue;
    }
    const inode = item.inode;
    // "passes checks, but checksum does not match": reported, and the inode's other rules still checked.
    if (item.error) report({ pass: 1, code: item.error.code, structure: item.error.structure ?? `inode ${ino}`, location: describeLocation(item.error.location) ?? '', message: item.error.message });
    const reserved = ino < sb.s_first_ino;
    if (!reserved && inode.linksCount === 0) {
      if (inode.mode !== 0 && inode.dtime === 0) bad(1, `inode ${ino}`, 'i_dtime', 'deleted inode has zero dtime');
      if (marked) bad(5, `inode ${ino}`, 'inode bitmap', 'marked in use in the inode bitmap but the inode is deleted');
      continue;
    }
    if (marked === false) bad(5, `inode ${ino}`, 'inode bitmap', reserved ? 'reserved inode marked free in the inode bitmap' : `in use (links ${inode.linksCount}) but marked free in the inode bitmap`);
    inodesInUse++;
    if (reserved && ino !== ROOT_INO) {
      // Reserved inodes: their own rules, and e2fsck's check_blocks on whatever they map.
      for (const p of await checkInode(fs, inode, null)) report(p);
    } else {
      inUse.set(ino, { type: inode.type, links: inode.linksCount, ea: eaInodeFacts(inode) });
      if (inode.type === 'dir') dirsInGroup.set(g, (dirsInGroup.get(g) ?? 0) + 1);
    }
    let map: FileMap | null = null;
    try {
      map = await fs.fileMap(inode);
    } catch (e) {
      fromError(1, e, `inode ${ino}`, 'block map');
    }
    if (!reserved || ino === ROOT_INO) for (const p of await checkInode(fs, inode, map)) report(p);
    else for (const p of sizeProblems(fs, inode, map)) report(p);
    if (ino === RESIZE_INO) {
      // Its blocks are the reserved GDT area and its backups (fixed metadata, checked in pass 0)
      // plus the DIND block; only i_blocks is left to compare.
      // (with bigalloc e2fsck counts its scattered blocks by a rule of its own: not compared)
      if (map && ratio === 1) {
        const n = clustersOf([...map.metadataBlocks.map((b): [number, number] => [b, 1]), ...map.extents.map((e): [number, number] => [e.physical, e.length])], ratio) * ratio;
        if (inode.blocks512 !== n * (bs / 512)) bad(1, `inode ${ino}`, 'i_blocks', `i_blocks is ${inode.blocks512} sectors, the resize inode maps ${n} block(s)`);
      }
      const dind = le32.get(inode.base.i_block, NDIR_BLOCKS + 1) /* i_block[EXT2_DIND_BLOCK] */;
      if (dind) owned.push({ start: dind, length: 1, ino, what: 'resize inode' });
      continue;
    }
    // i_blocks counts the clusters the inode owns (blocks without bigalloc), its xattr block included
    const runs: [number, number][] = [];
    if (map) {
      for (const b of map.metadataBlocks) {
        owned.push({ start: b, length: 1, ino, what: `inode ${ino} (${map.kind === 'extents' ? 'extent tree' : 'indirect'})` });
        runs.push([b, 1]);
      }
      for (const e of map.extents) {
        owned.push({ start: e.physical, length: e.length, ino, what: `inode ${ino} (data)` });
        runs.push([e.physical, e.length]);
      }
    }
    // values in EA inodes count in whole clusters (e2fsck's ea quota), body and block entries
    let eaCharge = await eaInodes.body(fs, inode, bodyXattrs(fs, inode), report);
    if (inode.fileAcl) {
      runs.push([inode.fileAcl, 1]);
      eaCharge += await checkXattrBlockOnce(fs, inode, xattrRefs, eaInodes, owned, report);
    }
    const blocks = clustersOf(runs, ratio) * ratio + eaCharge;
    // (the bad-blocks inode lists unreadable blocks: e2fsck checks that they lie in the
    // filesystem and marks them used, not its i_blocks)
    if (map && ino !== BAD_INO && inode.blocks512 !== blocks * (bs / 512))
      bad(1, `inode ${ino}`, 'i_blocks', `i_blocks is ${inode.blocks512} sectors, the inode owns ${blocks} block(s) (${blocks * (bs / 512)} sectors)${eaCharge ? `, ${eaCharge} of them for xattr values in EA inodes` : ''}`);
  }
  for (const [blk, x] of xattrRefs)
    if (x.refcount !== null && x.refcount !== x.refs) bad(1, 'xattr block', `block ${blk}`, `reference count ${x.refcount}, should be ${x.refs}`);

  // ---- pass 2/3/4: the tree from the root
  const names = new Map<number, number>(); // ino -> names pointing at it
  const subdirs = new Map<number, number>(); // dir ino -> subdirectories
  const parentOf = new Map<number, number>();
  const dotdotOf = new Map<number, number>();
  const seenDirs = new Set<number>();
  const hasFiletype = (sb.s_feature_incompat & INCOMPAT.FILETYPE) !== 0;
  // inodes no directory may name (e2fsck pass 2 PR_2_BAD_INO): quota files and the orphan file
  const specialInodes = new Set([sb.s_usr_quota_inum, sb.s_grp_quota_inum, sb.s_prj_quota_inum, sb.s_orphan_file_inum].filter((n) => n !== 0));
  // Each directory is expanded once (seenDirs), so the walk ends even on a directory cycle.
  const queue: { ino: number; path: string }[] = [];
  if (inUse.get(ROOT_INO)?.type === 'dir') queue.push({ ino: ROOT_INO, path: '/' });
  let directories = 0;
  for (let qi = 0; qi < queue.length; qi++) {
    const { ino, path } = queue[qi]!;
    if (seenDirs.has(ino)) {
      bad(2, `directory ${ino}`, path, 'directory reachable by two paths (hard-linked directory or loop)');
      continue;
    }
    seenDirs.add(ino);
    directories++;
    try {
      const dir = await fs.readInode(ino);
      if (sb.s_feature_compat & COMPAT.DIR_INDEX) for (const p of await checkHtree(fs, dir, await fs.fileMap(dir), path)) report(p);
      const entries = await fs.readdirRaw(dir);
      const nameOf = (k: number) => (entries[k] ? decodeName(entries[k]!.name) : null);
      if (nameOf(0) !== '.') bad(2, `directory ${ino}`, path, "missing '.' as the first entry");
      else if (entries[0]!.ino !== ino) bad(2, `directory ${ino}`, path, `invalid inode number for '.' (${entries[0]!.ino})`);
      if (nameOf(1) !== '..') bad(2, `directory ${ino}`, path, "missing '..' as the second entry");
      else dotdotOf.set(ino, entries[1]!.ino);
      entries.forEach((e, k) => {
        const name = decodeName(e.name);
        if (k < 2 && (name === '.' || name === '..')) return;
        const where = path === '/' ? `/${name}` : `${path}/${name}`;
        if (name === '.' || name === '..') return void bad(2, `directory ${ino}`, where, `a second '${name}' entry`);
        if (e.name.length === 0 || e.name.includes(0x2f) || e.name.includes(0)) return void bad(2, `directory ${ino}`, where, 'entry has illegal characters in its name');
        if (e.ino === ROOT_INO) return void bad(2, `directory ${ino}`, where, 'entry is a link to the root inode');
        if (e.ino === ino) return void bad(2, `directory ${ino}`, where, "entry is a link to '.'");
        if (e.ino < sb.s_first_ino || e.ino > sb.s_inodes_count || specialInodes.has(e.ino)) return void bad(2, `directory ${ino}`, where, `entry has bad inode number ${e.ino}`);
        const child = inUse.get(e.ino);
        if (!child) return void bad(2, `directory ${ino}`, where, `entry points at inode ${e.ino}, which is not in use`);
        names.set(e.ino, (names.get(e.ino) ?? 0) + 1);
        const want = child.type ? DIRENT_TYPE[child.type] : 0;
        if (hasFiletype ? e.fileType !== want : e.fileType !== 0) bad(2, `directory ${ino}`, where, `entry has an incorrect filetype (was ${e.fileType}, should be ${hasFiletype ? want : 0})`);
        if (child.type === 'dir') {
          subdirs.set(ino, (subdirs.get(ino) ?? 0) + 1);
          if (!parentOf.has(e.ino)) parentOf.set(e.ino, ino);
          queue.push({ ino: e.ino, path: where });
        }
      });
    } catch (e) {
      fromError(2, e, `directory ${ino}`, path);
    }
  }
  if (!seenDirs.has(ROOT_INO)) bad(3, 'inode 2', 'root', 'the root directory is missing or not a directory');
  for (const [dir, dotdot] of dotdotOf) {
    const parent = dir === ROOT_INO ? ROOT_INO : parentOf.get(dir);
    if (parent !== undefined && dotdot !== parent) bad(3, `directory ${dir}`, "'..'", `'..' is ${dotdot}, should be ${parent}`);
  }
  for (const [ino, info] of inUse) {
    if (specialInodes.has(ino)) continue; // quota files and the orphan file are not in the tree
    // e2fsck pass 4 check_ea_inode: an EA inode no directory names is linked by the entries naming it
    const viaXattrs = ino !== ROOT_INO && !names.has(ino) && eaInodes.attached(info.ea, ino, report);
    if (ino !== ROOT_INO && !names.has(ino) && !viaXattrs) {
      bad(3, `inode ${ino}`, 'directory tree', 'in use but not reachable from the root (unattached)');
      continue;
    }
    const want = info.type === 'dir' ? 2 + (subdirs.get(ino) ?? 0) : viaXattrs ? 1 : names.get(ino) ?? 0;
    const dirNlinkOverflow = info.type === 'dir' && info.links === 1 && sb.s_feature_ro_compat & RO_COMPAT.DIR_NLINK;
    if (info.links !== want && !dirNlinkOverflow) bad(4, `inode ${ino}`, 'i_links_count', `links count ${info.links}, should be ${want}`);
  }

  // ---- pass 5: block bitmaps vs fixed metadata ∪ owned blocks; counts
  const expected = new Map<number, Uint8Array>();
  const exp = (g: number) => {
    let b = expected.get(g);
    if (!b) expected.set(g, (b = new Uint8Array(bs)));
    return b;
  };
  // With bigalloc several blocks of one owner share a cluster; two owners may not.
  const clusterOwner = new Map<number, number>();
  const mark = (block: number, what: string, owner = 0) => {
    if (block < sb.s_first_data_block || block >= sb.blocksCount) {
      bad(1, what, `block ${block}`, 'block outside the filesystem');
      return;
    }
    const g = groupOfBlock(sb, block);
    const i = Math.floor((block - groupFirstBlock(sb, g)) / ratio);
    const e = exp(g);
    if (testBit(e, i)) {
      if (ratio > 1 && clusterOwner.get(g * cpg + i) === owner) return;
      bad(1, what, `block ${block}`, `block claimed twice${owner ? ` (again by inode ${owner})` : ''}`);
      return;
    }
    setBit(e, i);
    if (ratio > 1) clusterOwner.set(g * cpg + i, owner);
  };
  const itb = inodeTableBlocks(sb);
  for (let g = 0; g < sb.groupCount; g++) {
    const f = groupFixedMetadata(sb, g);
    if (f.superBlock >= 0) mark(f.superBlock, 'superblock');
    for (let k = 0; k < f.oldDescCount; k++) mark(f.oldDescStart + k, 'group descriptors');
    if (f.newDescBlock >= 0) mark(f.newDescBlock, 'group descriptors');
    let gd;
    try {
      gd = await fs.group(g);
    } catch {
      continue;
    }
    mark(gd.blockBitmap, `block bitmap of group ${g}`);
    mark(gd.inodeBitmap, `inode bitmap of group ${g}`);
    for (let k = 0; k < itb; k++) mark(gd.inodeTable + k, `inode table of group ${g}`);
  }
  // e2fsck pass 1 reserves the MMP block (mark_table_blocks); it belongs to no inode.
  const mmp = mmpExtent(sb);
  if (mmp) mark(mmp.start, 'MMP block');
  let blocksOwned = 0;
  for (const r of owned) {
    if (r.ino !== RESIZE_INO) blocksOwned += r.length;
    // a run longer than the filesystem is reported once, not block by block
    if (r.start + r.length > sb.blocksCount || r.start < sb.s_first_data_block) {
      bad(1, r.what, `block ${r.start}`, `blocks ${r.start}+${r.length} lie outside the filesystem`);
      continue;
    }
    for (let k = 0; k < r.length; k++) mark(r.start + k, r.what, r.ino);
  }
  let freeTotal = 0, freeInodesTotal = 0;
  for (let g = 0; g < sb.groupCount; g++) {
    const n = Math.ceil(blocksInGroup(sb, g) / ratio); // clusters in the group
    const first = groupFirstBlock(sb, g);
    let gd, actual: Uint8Array, inodeBm: Uint8Array;
    try {
      gd = await fs.group(g);
      actual = await fs.blockBitmap(g);
      inodeBm = await fs.inodeBitmap(g);
    } catch (e) {
      fromError(5, e, 'bitmap', `group ${g}`);
      continue;
    }
    // Bytes of a bitmap block past the group's bits must be all ones (libext2fs
    // bitmap_tail_verify on read: e2fsck "Padding at end of … bitmap is not set").
    const tail = (bm: Uint8Array, bits: number, what: string) => {
      for (let k = bits / 8; k < bs; k++)
        if (bm[k] !== 0xff) {
          bad(5, what, `group ${g}`, `padding at the end of the ${what} is not set (byte ${k})`);
          break;
        }
    };
    if (!(honoured && gd.flags & BG_FLAGS.BLOCK_UNINIT)) tail(actual, sb.s_clusters_per_group, 'block bitmap');
    if (!(honoured && gd.flags & BG_FLAGS.INODE_UNINIT)) tail(inodeBm, ipg, 'inode bitmap');
    const e = exp(g);
    let usedNotMarked = 0, markedNotUsed = 0, firstA = -1, firstB = -1;
    for (let i = 0; i < n; i++) {
      const a = testBit(actual, i), x = testBit(e, i);
      if (x && !a) { usedNotMarked++; if (firstA < 0) firstA = first + i * ratio; }
      else if (a && !x) { markedNotUsed++; if (firstB < 0) firstB = first + i * ratio; }
    }
    if (usedNotMarked) bad(5, 'block bitmap', `group ${g}`, `${usedNotMarked} block(s) in use but marked free (first ${firstA})`);
    if (markedNotUsed) bad(5, 'block bitmap', `group ${g}`, `${markedNotUsed} block(s) marked in use but owned by nothing (first ${firstB})`);
    // e2fsck (check_block_end): the bits past the end of the filesystem, up to the last group's
    // nominal size, must be set
    if (g === sb.groupCount - 1)
      for (let i = n; i < cpg; i++)
        if (!testBit(actual, i)) {
          bad(5, 'block bitmap', `group ${g}`, 'padding at the end of the block bitmap is not set');
          break;
        }
    const free = countFree(actual, n);
    freeTotal += free;
    if (free !== gd.freeBlocks) bad(5, 'group descriptor', `group ${g}`, `free blocks count ${gd.freeBlocks}, the bitmap says ${free}`);
    const freeInodes = countFree(inodeBm, ipg);
    freeInodesTotal += freeInodes;
    if (freeInodes !== gd.freeInodes) bad(5, 'group descriptor', `group ${g}`, `free inodes count ${gd.freeInodes}, the bitmap says ${freeInodes}`);
    const dirs = dirsInGroup.get(g) ?? 0;
    if (dirs !== gd.usedDirs) bad(5, 'group descriptor', `group ${g}`, `directories count ${gd.usedDirs}, counted ${dirs}`);
  }
  if (freeTotal * ratio !== sb.freeBlocksCount) bad(5, 'superblock', 's_free_blocks_count', `free blocks count ${sb.freeBlocksCount}, the groups say ${freeTotal * ratio}`);
  if (freeInodesTotal !== sb.s_free_inodes_count) bad(5, 'superblock', 's_free_inodes_count', `free inodes count ${sb.s_free_inodes_count}, the groups say ${freeInodesTotal}`);
  return { ok: problems.length === 0, problems, stats: { inodesInUse, directories, blocksOwned, groups: sb.groupCount, ms: performance.now() - t0 } };
}

/** Distinct clusters covered by block runs (their count of blocks without bigalloc). */
function clustersOf(runs: [number, number][], ratio: number): number {
  if (ratio === 1) return runs.reduce((n, [, len]) => n + len, 0);
  const seen = new Set<number>();
  for (const [start, len] of runs) for (let c = Math.floor(start / ratio); c <= Math.floor((start + len - 1) / ratio); c++) seen.add(c);
  return seen.size;
}

/** The in-inode xattr entries (none when the area cannot be parsed: reported by checkInode). */
function bodyXattrs(fs: Filesystem, inode: Inode): XattrEntry[] {
  if (fs.sb.s_inode_size <= 128) return [];
  try {
    return parseInodeXattrs(inode.raw, inode.extraIsize, inode.ino);
  } catch {
    return [];
  }
}

/** An xattr block as pass 1 saw it: inodes naming it, its h_refcount, the blocks its EA-inode values charge each sharer. */
interface XattrBlockSeen {
  refs: number;
  refcount: number | null;
  eaCharge: number;
}

/**
 * Check an xattr block the first time an inode names it; count every reference. Returns the
 * blocks its EA-inode values add to the naming inode's i_blocks (the same for every sharer).
 */
async function checkXattrBlockOnce(
  fs: Filesystem,
  inode: Inode,
  refs: Map<number, XattrBlockSeen>,
  eaInodes: EaInodeTally,
  owned: { start: number; length: number; ino: number; what: string }[],
  report: (p: CheckProblem) => void,
): Promise<number> {
  const blk = inode.fileAcl;
  const seen = refs.get(blk);
  if (seen) {
    seen.refs++;
    return seen.eaCharge;
  }
  const entry: XattrBlockSeen = { refs: 1, refcount: null, eaCharge: 0 };
  refs.set(blk, entry);
  const where = { pass: 1 as const, structure: 'xattr block', location: `block ${blk}` };
  if (blk < fs.sb.s_first_data_block || blk >= fs.sb.blocksCount) {
    report({ ...where, structure: `inode ${inode.ino}`, location: 'i_file_acl', code: 'EFSCORRUPTED', message: `xattr block ${blk} is outside the filesystem` });
    return 0;
  }
  owned.push({ start: blk, length: 1, ino: inode.ino, what: `inode ${inode.ino} (xattr block)` });
  const block = await fs.readBlock(blk);
  const r = checkXattrBlock(block, xattrContext(fs));
  for (const m of r.problems) report({ ...where, code: 'EFSCORRUPTED', message: `extended attribute block: ${m}` });
  if (r.problems.length) return 0;
  entry.refcount = XattrBlockHeaderLayout.decode(block).h_refcount;
  try {
    parseXattrBlock(block, blk, { fsSeed: fs.sb.hasMetadataCsum ? fs.fsSeed : null, verify: fs.verify });
  } catch (e) {
    if (!isExt4Error(e)) throw e;
    report({ ...where, code: e.code, message: e.message });
  }
  // the entries parse (checkXattrBlock found none wrong); a bad checksum is reported above
  entry.eaCharge = await eaInodes.block(fs, inode, blk, parseXattrBlock(block, blk, { fsSeed: null, verify: false }), report);
  return entry.eaCharge;
}
