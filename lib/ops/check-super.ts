/**
 * Pass 0 of the check: what e2fsck's check_super_block and check_resize_inode
 * look at before the inode scan — superblock values, descriptor fields, the
 * superblock times, and the resize inode (inode 7), whose blocks must be
 * exactly the reserved GDT area: a DIND block and nothing else in i_block, the
 * DIND listing each primary reserved GDT block, each of those listing its
 * backups in the groups that carry a superblock.
 */
import { le32 } from '../codec/layout.js';
import type { Filesystem } from '../ext4/filesystem.js';
import { describeLocation, isExt4Error } from '../errors.js';
import { COMPAT, INCOMPAT, RO_COMPAT, STATE, sbTime } from '../ext4/superblock.js';
import { BG_FLAGS, uninitFlagsHonoured } from '../ext4/group-desc.js';
import { featureNames } from '../ext4/features.js';
import { descBlockCount, groupFirstBlock, groupHasSuper, inodeTableBlocks } from '../ext4/geometry.js';
import type { CheckProblem } from './check-problem.js';

const RESIZE_INO = 7;
const S_IFREG = 0x8000;

export async function checkSuperblock(fs: Filesystem): Promise<CheckProblem[]> {
  const sb = fs.sb;
  const out: CheckProblem[] = [];
  const bad = (location: string, message: string) => out.push({ pass: 0, code: 'EFSCORRUPTED', structure: 'superblock', location, message });
  const bs = fs.blockSize;
  const isz = sb.s_inode_size;

  // check_super_value: the ranges e2fsck accepts (the open already rejected what cannot be read at all)
  if (sb.rBlocksCount > Math.floor(sb.blocksCount / 2)) bad('s_r_blocks_count', `reserved blocks ${sb.rBlocksCount} exceed half the filesystem (${sb.blocksCount} blocks)`);
  if (sb.s_reserved_gdt_blocks > bs / 4) bad('s_reserved_gdt_blocks', `reserved GDT blocks ${sb.s_reserved_gdt_blocks} > ${bs / 4}`);
  if (sb.s_desc_size > 1024 || (sb.s_desc_size & (sb.s_desc_size - 1)) !== 0) bad('s_desc_size', `descriptor size ${sb.s_desc_size} is invalid`);
  if (sb.s_inodes_count !== sb.s_inodes_per_group * sb.groupCount) bad('s_inodes_count', `inodes count ${sb.s_inodes_count}, should be ${sb.s_inodes_per_group * sb.groupCount}`);
  if (sb.s_rev_level > 0 && (sb.s_first_ino < 11 || sb.s_first_ino > sb.s_inodes_count)) bad('s_first_ino', `first inode ${sb.s_first_ino} is invalid`);
  if (isz < 128 || isz > bs || (isz & (isz - 1)) !== 0) bad('s_inode_size', `inode size ${isz} is invalid`);
  const firstData = bs === 1024 && sb.s_log_cluster_size === sb.s_log_block_size ? 1 : 0;
  if (sb.s_first_data_block !== firstData) bad('s_first_data_block', `first data block ${sb.s_first_data_block}, should be ${firstData}`);
  if (isz > 128) {
    for (const [field, v] of [['s_min_extra_isize', sb.s_min_extra_isize], ['s_want_extra_isize', sb.s_want_extra_isize]] as const)
      if (v && (v < 4 || v > isz - 128 || v & 3)) bad(field, `${field} ${v} is invalid`);
  }
  if (sb.hasMetadataCsum && sb.s_feature_ro_compat & RO_COMPAT.GDT_CSUM) bad('features', 'metadata_csum and uninit_bg are both set');
  if (!sb.hasMetadataCsum && sb.s_feature_incompat & INCOMPAT.CSUM_SEED) bad('features', 'metadata_csum_seed without metadata_csum');
  if (sb.s_feature_incompat & INCOMPAT['64BIT'] && !(sb.s_feature_incompat & INCOMPAT.EXTENTS)) bad('features', '64bit without extents');
  if (sb.s_feature_incompat & INCOMPAT.META_BG && sb.s_first_meta_bg > descBlockCount(sb)) bad('s_first_meta_bg', `first meta_bg ${sb.s_first_meta_bg} > ${descBlockCount(sb)} descriptor blocks`);
  if (sb.freeBlocksCount > sb.blocksCount) bad('s_free_blocks_count', `free blocks ${sb.freeBlocksCount} > blocks count`);
  if (sb.s_free_inodes_count > sb.s_inodes_count) bad('s_free_inodes_count', `free inodes ${sb.s_free_inodes_count} > inodes count`);
  // e2fsck refuses a filesystem with a feature it does not know (compat ones included)
  const unknown = featureNames(sb).filter((n) => n.startsWith('FEATURE_'));
  if (unknown.length) bad('features', `unsupported feature(s): ${unknown.join(' ')}`);
  // e2fsck_validate_quota_inodes: a quota inode number may not name another reserved inode; and
  // without the quota feature there are no quota inodes (e2fsck would still reserve the project
  // one, whatever file it is)
  for (const [field, q] of [['s_usr_quota_inum', sb.s_usr_quota_inum], ['s_grp_quota_inum', sb.s_grp_quota_inum], ['s_prj_quota_inum', sb.s_prj_quota_inum]] as const) {
    if (q && ([1, 2, 5, 6, 7, 8, 9, 10].includes(q) || q > sb.s_inodes_count)) bad(field, `invalid quota inode ${q}`);
    else if (q && !(sb.s_feature_ro_compat & RO_COMPAT.QUOTA)) bad(field, `quota inode ${q} set without the quota feature`);
  }
  // The kernel recorded an error: the filesystem needs a repair before it is trusted.
  if (sb.s_state & STATE.ERROR_FS) bad('s_state', 'the filesystem is marked as having errors (ERROR_FS)');
  // e2fsck -f: a last mount or write time in the future (beyond the clock) is reported
  const now = Math.floor(Date.now() / 1000);
  const mtime = sbTime(sb.s_mtime, sb.s_mtime_hi), wtime = sbTime(sb.s_wtime, sb.s_wtime_hi);
  if (mtime > now) bad('s_mtime', `last mount time ${mtime} is in the future`);
  if (wtime > now) bad('s_wtime', `last write time ${wtime} is in the future`);

  // descriptors (check_super_block's loop)
  const csum = uninitFlagsHonoured(sb);
  const itb = inodeTableBlocks(sb);
  const flex = (sb.s_feature_incompat & INCOMPAT.FLEX_BG) !== 0;
  for (let g = 0; g < sb.groupCount; g++) {
    let gd;
    try {
      gd = await fs.group(g);
    } catch (e) {
      if (!isExt4Error(e)) throw e;
      out.push({ pass: 0, code: e.code, structure: e.structure ?? 'group descriptor', location: describeLocation(e.location) ?? `group ${g}`, message: e.message });
      continue;
    }
    const d = (message: string) => out.push({ pass: 0, code: 'EFSCORRUPTED', structure: 'group descriptor', location: `group ${g}`, message });
    const first = flex ? sb.s_first_data_block : groupFirstBlock(sb, g);
    const last = flex ? sb.blocksCount - 1 : Math.min(sb.blocksCount, groupFirstBlock(sb, g) + sb.s_blocks_per_group) - 1;
    if (gd.blockBitmap < first || gd.blockBitmap > last) d(`block bitmap ${gd.blockBitmap} is not in the group`);
    if (gd.inodeBitmap < first || gd.inodeBitmap > last) d(`inode bitmap ${gd.inodeBitmap} is not in the group`);
    if (gd.inodeTable < first || gd.inodeTable + itb - 1 > last) d(`inode table ${gd.inodeTable} is not in the group`);
    if (gd.usedDirs > sb.s_inodes_per_group) d(`used directories ${gd.usedDirs} > inodes per group`);
    if (!csum && (gd.flags & (BG_FLAGS.BLOCK_UNINIT | BG_FLAGS.INODE_UNINIT) || gd.itableUnused !== 0)) d('uninit flags or itable_unused set without group checksums');
    if (g === sb.groupCount - 1 && gd.flags & BG_FLAGS.BLOCK_UNINIT && csum) d('the last group is BLOCK_UNINIT');
    if (csum && (gd.itableUnused > gd.freeInodes || gd.itableUnused > sb.s_inodes_per_group)) d(`itable_unused ${gd.itableUnused} > free inodes ${gd.freeInodes}`);
  }

  out.push(...(await checkResizeInode(fs)));
  return out;
}

async function checkResizeInode(fs: Filesystem): Promise<CheckProblem[]> {
  const sb = fs.sb;
  const out: CheckProblem[] = [];
  const bad = (message: string) => out.push({ pass: 0, code: 'EFSCORRUPTED', structure: 'inode 7 (resize inode)', location: 'i_block', message: `resize inode not valid: ${message}` });
  const has = (sb.s_feature_compat & COMPAT.RESIZE_INODE) !== 0;
  if (has && sb.s_feature_incompat & INCOMPAT.META_BG) out.push({ pass: 0, code: 'EFSCORRUPTED', structure: 'superblock', location: 'features', message: 'resize_inode and meta_bg are both set' });
  if (!has && sb.s_reserved_gdt_blocks) out.push({ pass: 0, code: 'EFSCORRUPTED', structure: 'superblock', location: 's_reserved_gdt_blocks', message: `reserved GDT blocks ${sb.s_reserved_gdt_blocks} without resize_inode` });
  let inode;
  try {
    inode = await fs.readInode(RESIZE_INO);
  } catch (e) {
    if (!isExt4Error(e)) throw e;
    out.push({ pass: 0, code: e.code, structure: e.structure ?? 'inode 7', location: describeLocation(e.location) ?? '', message: e.message });
    return out;
  }
  const ptr = (i: number) => le32.get(inode.base.i_block, i);
  if (!has) {
    for (let i = 0; i < 15; i++) if (ptr(i)) return bad('the feature is off but the inode maps blocks'), out;
    return out;
  }
  const dind = ptr(13);
  for (let i = 0; i < 15; i++) if (i !== 13 && ptr(i)) return bad(`i_block[${i}] is ${ptr(i)}; only the double-indirect block may be set`), out;
  if (!dind) return bad('no double-indirect block'), out;
  if (!inode.linksCount) return bad('links count 0'), out;
  if (!(inode.mode & S_IFREG)) return bad(`mode 0${inode.mode.toString(8)} is not a regular file`), out;
  if (dind < sb.s_first_data_block || dind >= sb.blocksCount) return bad(`double-indirect block ${dind} is outside the filesystem`), out;
  const perBlock = fs.blockSize / 4;
  const dindBuf = await fs.readBlock(dind);
  const descBlocks = descBlockCount(sb);
  let pblk = sb.s_first_data_block + 1 + descBlocks;
  if (fs.blockSize === 1024 && sb.s_first_data_block === 0) pblk++; // 1 KiB bigalloc: block 0 is the boot block, the superblock block 1
  for (let i = 0, gdtOff = descBlocks; i < sb.s_reserved_gdt_blocks; i++, gdtOff++, pblk++) {
    gdtOff %= perBlock;
    if (le32.get(dindBuf, gdtOff) !== pblk) return bad(`double-indirect entry ${gdtOff} is ${le32.get(dindBuf, gdtOff)}, should be reserved GDT block ${pblk}`), out;
    if (pblk >= sb.blocksCount) return bad(`reserved GDT block ${pblk} is outside the filesystem`), out;
    const ind = await fs.readBlock(pblk);
    let k = 0;
    for (let g = 1; g < sb.groupCount && k < perBlock; g++) {
      if (!groupHasSuper(sb, g)) continue;
      const want = pblk + g * sb.s_blocks_per_group;
      if (le32.get(ind, k) !== want) return bad(`reserved GDT block ${pblk} entry ${k} is ${le32.get(ind, k)}, should be its backup ${want}`), out;
      k++;
    }
  }
  return out;
}
