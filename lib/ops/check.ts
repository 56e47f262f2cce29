/**
 * An fsck-like, read-only consistency check (the parts of e2fsck passes 1–5
 * that matter for a block mover):
 *   pass 1  every inode in use parses (checksums), its block map is valid,
 *           i_blocks equals what it owns;
 *   pass 2/3 the directory tree from the root reads (dirent and htree
 *           checksums), every entry names an inode in use, every inode in
 *           use is reachable;
 *   pass 4  link counts equal the number of names (and subdirectories);
 *   pass 5  block bitmaps equal "fixed metadata ∪ owned blocks" with no
 *           block owned twice, group and superblock free counts equal the
 *           bitmaps, inode bitmaps match the inodes in use.
 * Problems are reported, never repaired.
 */
import { isExt4Error } from '../errors.js';
import type { Filesystem } from '../ext4/filesystem.js';
import { decodeName } from '../ext4/bytes.js';
import { blocksInGroup, groupFirstBlock, groupFixedMetadata, groupOfBlock, inodeTableBlocks } from '../ext4/geometry.js';
import { countFree, setBit, testBit } from '../ext4/bitmap.js';
import { COMPAT, RO_COMPAT } from '../ext4/superblock.js';
import { buildReverseMap } from './fsmap.js';

export interface CheckProblem {
  /** e2fsck pass the problem belongs to. */
  pass: 1 | 2 | 3 | 4 | 5;
  code: string;
  structure: string;
  location: string;
  message: string;
}

export interface CheckReport {
  ok: boolean;
  problems: CheckProblem[];
  stats: { inodesInUse: number; directories: number; blocksOwned: number; groups: number; ms: number };
}

const MAX_PROBLEMS = 1000;

export async function checkFilesystem(fs: Filesystem): Promise<CheckReport> {
  const t0 = performance.now();
  try {
    return await runChecks(fs, t0);
  } catch (e) {
    // Damage that stops the walk itself (a descriptor or inode table that cannot be read).
    if (!isExt4Error(e)) throw e;
    return { ok: false, problems: [{ pass: 1, code: e.code, structure: e.structure ?? 'filesystem', location: e.location ?? '', message: e.message }], stats: { inodesInUse: 0, directories: 0, blocksOwned: 0, groups: fs.sb.groupCount, ms: performance.now() - t0 } };
  }
}

async function runChecks(fs: Filesystem, t0: number): Promise<CheckReport> {
  const sb = fs.sb;
  const bs = fs.blockSize;
  const problems: CheckProblem[] = [];
  const report = (p: CheckProblem) => {
    if (problems.length < MAX_PROBLEMS) problems.push(p);
  };
  const fromError = (pass: CheckProblem['pass'], e: unknown, structure: string, location: string) => {
    if (!isExt4Error(e)) throw e;
    report({ pass, code: e.code, structure: e.structure ?? structure, location: e.location ?? location, message: e.message });
  };

  // ---- pass 1: inodes and what they own (one scan of the inode tables)
  const rmap = await buildReverseMap(fs);
  for (const { ino, error } of rmap.errors) fromError(1, error, `inode ${ino}`, `inode ${ino}`);
  const ownedBlocks = new Map<number, number>(); // ino -> blocks owned
  for (const r of rmap.runs) ownedBlocks.set(r.ino, (ownedBlocks.get(r.ino) ?? 0) + r.length);
  const inUse = new Set<number>();
  for (let g = 0; g < sb.groupCount; g++) {
    let bm: Uint8Array;
    try {
      bm = await fs.inodeBitmap(g);
    } catch (e) {
      fromError(5, e, 'inode bitmap', `group ${g}`);
      continue;
    }
    for (let i = 0; i < sb.s_inodes_per_group; i++) if (testBit(bm, i)) inUse.add(g * sb.s_inodes_per_group + i + 1);
  }
  let inodesInUse = 0;
  for (const ino of inUse) {
    if (ino < sb.s_first_ino && ino !== 2 && ino !== sb.s_journal_inum) continue;
    try {
      const inode = await fs.readInode(ino);
      if (inode.linksCount === 0 && inode.mode === 0) {
        report({ pass: 1, code: 'EFSCORRUPTED', structure: `inode ${ino}`, location: 'inode bitmap', message: 'marked in use in the inode bitmap but the inode is deleted' });
        continue;
      }
      inodesInUse++;
      if (ino === 7) continue; // resize inode: its blocks are accounted as reserved GDT
      const owned = ownedBlocks.get(ino) ?? 0;
      if (inode.blocks512 !== owned * (bs / 512) && (inode.type === 'file' || inode.type === 'dir' || inode.type === 'symlink'))
        report({ pass: 1, code: 'EFSCORRUPTED', structure: `inode ${ino}`, location: 'i_blocks', message: `i_blocks is ${inode.blocks512} sectors, the inode owns ${owned} block(s) (${owned * (bs / 512)} sectors)` });
    } catch (e) {
      fromError(1, e, `inode ${ino}`, `inode ${ino}`);
    }
  }

  // ---- pass 2/3/4: the tree from the root
  const names = new Map<number, number>(); // ino -> names pointing at it
  const subdirs = new Map<number, number>(); // dir ino -> subdirectories
  const seenDirs = new Set<number>();
  const queue: { ino: number; path: string }[] = [{ ino: 2, path: '/' }];
  let directories = 0;
  while (queue.length) {
    const { ino, path } = queue.shift()!;
    if (seenDirs.has(ino)) {
      report({ pass: 2, code: 'EFSCORRUPTED', structure: `directory ${ino}`, location: path, message: 'directory reachable by two paths (hard-linked directory or loop)' });
      continue;
    }
    seenDirs.add(ino);
    directories++;
    try {
      const dir = await fs.readInode(ino);
      for (const e of await fs.readdir(dir)) {
        const name = decodeName(e.name);
        if (name === '.' || name === '..') continue;
        const where = path === '/' ? `/${name}` : `${path}/${name}`;
        if (!inUse.has(e.ino)) {
          report({ pass: 2, code: 'EFSCORRUPTED', structure: `directory ${ino}`, location: where, message: `entry points at inode ${e.ino}, which is not in use` });
          continue;
        }
        names.set(e.ino, (names.get(e.ino) ?? 0) + 1);
        const child = await fs.readInode(e.ino);
        if (child.type === 'dir') {
          subdirs.set(ino, (subdirs.get(ino) ?? 0) + 1);
          queue.push({ ino: e.ino, path: where });
        }
      }
    } catch (e) {
      fromError(2, e, `directory ${ino}`, path);
    }
  }
  for (const ino of inUse) {
    if (ino < sb.s_first_ino && ino !== 2) continue;
    if (sb.s_feature_compat & COMPAT.ORPHAN_FILE && ino === sb.s_orphan_file_inum) continue; // orphan file: not in the tree
    let inode;
    try {
      inode = await fs.readInode(ino);
    } catch {
      continue; // reported in pass 1
    }
    if (inode.mode === 0) continue;
    if (inode.linksCount === 0) continue; // an orphan being released: e2fsck handles it in its orphan pass
    if (ino !== 2 && !names.has(ino)) {
      report({ pass: 3, code: 'EFSCORRUPTED', structure: `inode ${ino}`, location: 'directory tree', message: 'in use but not reachable from the root (unattached)' });
      continue;
    }
    const want = inode.type === 'dir' ? 2 + (subdirs.get(ino) ?? 0) : names.get(ino) ?? 0;
    const dirNlinkOverflow = inode.type === 'dir' && inode.linksCount === 1 && sb.s_feature_ro_compat & RO_COMPAT.DIR_NLINK;
    if (inode.linksCount !== want && !dirNlinkOverflow)
      report({ pass: 4, code: 'EFSCORRUPTED', structure: `inode ${ino}`, location: 'i_links_count', message: `links count ${inode.linksCount}, should be ${want}` });
  }

  // ---- pass 5: block bitmaps vs fixed metadata ∪ owned blocks; counts
  const expected = new Map<number, Uint8Array>();
  const exp = (g: number) => {
    let b = expected.get(g);
    if (!b) expected.set(g, (b = new Uint8Array(bs)));
    return b;
  };
  const mark = (block: number, what: string, owner?: number) => {
    if (block < sb.s_first_data_block || block >= sb.blocksCount) {
      report({ pass: 1, code: 'EFSCORRUPTED', structure: what, location: `block ${block}`, message: 'block outside the filesystem' });
      return;
    }
    const g = groupOfBlock(sb, block);
    const i = block - groupFirstBlock(sb, g);
    const e = exp(g);
    if (testBit(e, i)) {
      if (problems.length < MAX_PROBLEMS)
        report({ pass: 1, code: 'EFSCORRUPTED', structure: what, location: `block ${block}`, message: `block claimed twice${owner ? ` (again by inode ${owner})` : ''}` });
      return;
    }
    setBit(e, i);
  };
  const itb = inodeTableBlocks(sb);
  for (let g = 0; g < sb.groupCount; g++) {
    const f = groupFixedMetadata(sb, g);
    if (f.superBlock >= 0) mark(f.superBlock, 'superblock');
    for (let k = 0; k < f.oldDescCount; k++) mark(f.oldDescStart + k, 'group descriptors');
    if (f.newDescBlock >= 0) mark(f.newDescBlock, 'group descriptors');
    const gd = await fs.group(g);
    mark(gd.blockBitmap, `block bitmap of group ${g}`);
    mark(gd.inodeBitmap, `inode bitmap of group ${g}`);
    for (let k = 0; k < itb; k++) mark(gd.inodeTable + k, `inode table of group ${g}`);
  }
  let blocksOwned = 0;
  for (const r of rmap.runs) {
    if (r.ino === 7) {
      // The resize inode's blocks are the reserved GDT area (already marked) plus its own
      // double-indirect block.
      for (let k = 0; k < r.length; k++) {
        const b = r.start + k, g = groupOfBlock(sb, b);
        if (b >= sb.s_first_data_block && b < sb.blocksCount && !testBit(exp(g), b - groupFirstBlock(sb, g))) mark(b, 'resize inode');
      }
      continue;
    }
    blocksOwned += r.length;
    for (let k = 0; k < r.length; k++) mark(r.start + k, `inode ${r.ino} (${r.kind})`, r.ino);
  }
  let freeTotal = 0, freeInodesTotal = 0;
  for (let g = 0; g < sb.groupCount; g++) {
    const n = blocksInGroup(sb, g);
    const first = groupFirstBlock(sb, g);
    const gd = await fs.group(g);
    let actual: Uint8Array;
    try {
      actual = await fs.blockBitmap(g);
    } catch (e) {
      fromError(5, e, 'block bitmap', `group ${g}`);
      continue;
    }
    const e = exp(g);
    let usedNotMarked = 0, markedNotUsed = 0, firstA = -1, firstB = -1;
    for (let i = 0; i < n; i++) {
      const a = testBit(actual, i), x = testBit(e, i);
      if (x && !a) { usedNotMarked++; if (firstA < 0) firstA = first + i; }
      else if (a && !x) { markedNotUsed++; if (firstB < 0) firstB = first + i; }
    }
    if (usedNotMarked) report({ pass: 5, code: 'EFSCORRUPTED', structure: 'block bitmap', location: `group ${g}`, message: `${usedNotMarked} block(s) in use but marked free (first ${firstA})` });
    if (markedNotUsed) report({ pass: 5, code: 'EFSCORRUPTED', structure: 'block bitmap', location: `group ${g}`, message: `${markedNotUsed} block(s) marked in use but owned by nothing (first ${firstB})` });
    const free = countFree(actual, n);
    freeTotal += free;
    if (free !== gd.freeBlocks) report({ pass: 5, code: 'EFSCORRUPTED', structure: 'group descriptor', location: `group ${g}`, message: `free blocks count ${gd.freeBlocks}, the bitmap says ${free}` });
    let usedInodes = 0;
    for (let i = 0; i < sb.s_inodes_per_group; i++) if (inUse.has(g * sb.s_inodes_per_group + i + 1)) usedInodes++;
    const freeInodes = sb.s_inodes_per_group - usedInodes;
    freeInodesTotal += freeInodes;
    if (freeInodes !== gd.freeInodes) report({ pass: 5, code: 'EFSCORRUPTED', structure: 'group descriptor', location: `group ${g}`, message: `free inodes count ${gd.freeInodes}, the bitmap says ${freeInodes}` });
  }
  if (freeTotal !== sb.freeBlocksCount) report({ pass: 5, code: 'EFSCORRUPTED', structure: 'superblock', location: 's_free_blocks_count', message: `free blocks count ${sb.freeBlocksCount}, the groups say ${freeTotal}` });
  if (freeInodesTotal !== sb.s_free_inodes_count) report({ pass: 5, code: 'EFSCORRUPTED', structure: 'superblock', location: 's_free_inodes_count', message: `free inodes count ${sb.s_free_inodes_count}, the groups say ${freeInodesTotal}` });
  return { ok: problems.length === 0, problems, stats: { inodesInUse, directories, blocksOwned, groups: sb.groupCount, ms: performance.now() - t0 } };
}
