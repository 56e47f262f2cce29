/**
 * Per-inode rules of the check, after e2fsck pass 1 (e2fsck_pass1, check_blocks,
 * check_ea_in_inode, e2fsck_pass1_check_symlink / _device_inode) and the
 * "bad inode" fields pass 2 looks at (e2fsck_process_bad_inode): reserved
 * inodes, dtime, flags that need a feature or a file type, sizes against the
 * mapped blocks, symlinks, device nodes, unused fields that must be zero, and
 * the in-inode xattr area. Each rule names what e2fsck would say.
 */
import { le32 } from '../codec/layout.js';
import type { Filesystem, FileMap } from '../ext4/filesystem.js';
import { EXTENT_MAGIC, ExtentHeaderLayout, MAX_EXTENT_DEPTH } from '../ext4/extents.js';
import { COMPAT, INCOMPAT, RO_COMPAT } from '../ext4/superblock.js';
import { FscryptSymlinkLayout, INODE_FLAGS, InodeBaseLayout, hasInlineData, type Inode } from '../ext4/inode.js';
import { parseInodeXattrs } from '../ext4/xattr.js';
import { checkInodeXattrs, type XattrCheckContext } from '../ext4/xattr-check.js';
import type { CheckProblem } from './check-problem.js';

const ROOT_INO = 2, BAD_INO = 1, BOOT_LOADER_INO = 5, RESIZE_INO = 7;
const I_BLOCK_BYTES = InodeBaseLayout.sizeOf('i_block');
/** ext4 extents address 2^32 logical blocks. */
const EXTENT_MAX_LBLOCKS = 2 ** 32;

/** ext2_max_sizes: the largest size a block-mapped file can address (12 direct + 3 levels). */
function blockMapMaxSize(bs: number): number {
  const a = bs / 4;
  return (12 + a + a * a + a * a * a) * bs;
}

function iblockWord(inode: Inode, i: number): number {
  return le32.get(inode.base.i_block, i);
}

/** ext2fs_extent_header_verify on i_block: would these bytes be a valid extent root? */
function looksLikeExtentRoot(inode: Inode): boolean {
  const h = ExtentHeaderLayout.decode(inode.base.i_block);
  return h.eh_magic === EXTENT_MAGIC && h.eh_max <= 4 && h.eh_max >= 1 && h.eh_entries <= h.eh_max && h.eh_depth <= MAX_EXTENT_DEPTH;
}

/** Bytes of inline data: the 60 bytes of i_block plus the system.data value. */
function inlineSize(inode: Inode): number | null {
  try {
    const ent = parseInodeXattrs(inode.raw, inode.extraIsize, inode.ino).find((x) => x.index === 7 && x.name === 'system.data');
    return ent ? I_BLOCK_BYTES + ent.valueSize : null;
  } catch {
    return null;
  }
}

export function xattrContext(fs: Filesystem): XattrCheckContext {
  return { eaInodeFeature: (fs.sb.s_feature_incompat & INCOMPAT.EA_INODE) !== 0, firstIno: fs.sb.s_first_ino, inodesCount: fs.sb.s_inodes_count };
}

/** strnlen over `b` (the length of the NUL-terminated string it holds, at most b.length). */
function strnlen(b: Uint8Array): number {
  const i = b.indexOf(0);
  return i < 0 ? b.length : i;
}

/** e2fsck_pass1_check_symlink: a symlink's i_size is exactly the length of its target. */
async function symlinkValid(fs: Filesystem, inode: Inode, map: FileMap | null): Promise<boolean> {
  if (inode.base.i_size_high || inode.size === 0 || inode.flags & INODE_FLAGS.INDEX) return false;
  if (hasInlineData(inode)) return !(inode.flags & INODE_FLAGS.EXTENTS) && inlineSize(inode) === inode.size;
  let buf: Uint8Array;
  if (fs.isFastSymlink(inode)) {
    if (inode.flags & INODE_FLAGS.EXTENTS) return false;
    buf = inode.base.i_block;
  } else {
    if (!map || map.extents.length !== 1 || map.metadataBlocks.length !== 0) return false;
    const e = map.extents[0]!;
    if (e.logical !== 0 || e.length !== 1) return false;
    if (!(inode.flags & INODE_FLAGS.EXTENTS)) for (let i = 1; i < 15; i++) if (iblockWord(inode, i)) return false;
    buf = await fs.readBlock(e.physical);
  }
  const len = inode.flags & INODE_FLAGS.ENCRYPT ? FscryptSymlinkLayout.decode(buf).len + FscryptSymlinkLayout.size : strnlen(buf);
  return len < buf.length && len === inode.size;
}

/** e2fsck_pass1_check_device_inode (also fifos and sockets): no block-map flags, no blocks. */
function deviceValid(inode: Inode): boolean {
  if (inode.flags & (INODE_FLAGS.INDEX | INODE_FLAGS.EXTENTS)) return false;
  if (inode.flags & (INODE_FLAGS.IMMUTABLE | INODE_FLAGS.APPEND)) for (let i = 4; i < 15; i++) if (iblockWord(inode, i)) return false;
  return true;
}

/**
 * Problems of one inode that is in use (links > 0, or a reserved inode).
 * `map` is its block map (null when it could not be read: reported elsewhere).
 */
export async function checkInode(fs: Filesystem, inode: Inode, map: FileMap | null): Promise<CheckProblem[]> {
  const sb = fs.sb;
  const out: CheckProblem[] = [];
  const ino = inode.ino;
  const bad = (location: string, message: string) => out.push({ pass: 1, code: 'EFSCORRUPTED', structure: `inode ${ino}`, location, message });
  const feat = {
    extents: (sb.s_feature_incompat & INCOMPAT.EXTENTS) !== 0,
    inline: (sb.s_feature_incompat & INCOMPAT.INLINE_DATA) !== 0,
    casefold: (sb.s_feature_incompat & INCOMPAT.CASEFOLD) !== 0,
    xattr: (sb.s_feature_compat & COMPAT.EXT_ATTR) !== 0,
    dirIndex: (sb.s_feature_compat & COMPAT.DIR_INDEX) !== 0,
    imagic: (sb.s_feature_compat & COMPAT.IMAGIC_INODES) !== 0,
    largedir: (sb.s_feature_incompat & INCOMPAT.LARGEDIR) !== 0,
    is64: (sb.s_feature_incompat & INCOMPAT['64BIT']) !== 0,
    huge: (sb.s_feature_ro_compat & RO_COMPAT.HUGE_FILE) !== 0,
  };
  const reserved = ino < sb.s_first_ino && ino !== ROOT_INO;
  const flags = inode.flags;

  // dtime doubles as the orphan list link: a small value in any inode is a broken list (PR_1_LOW_DTIME)
  if (inode.dtime && inode.dtime < sb.s_inodes_count) bad('i_dtime', `dtime ${inode.dtime} looks like an orphan list link`);

  if (reserved) {
    if (ino === BAD_INO) {
      if (inode.mode || inode.uid || inode.gid || inode.linksCount || flags & INODE_FLAGS.INLINE_DATA || inode.fileAcl) bad('inode', 'the bad blocks inode is not valid');
    } else if (ino === sb.s_journal_inum && sb.s_feature_compat & COMPAT.HAS_JOURNAL) {
      if (inode.type !== 'file') bad('i_mode', 'the journal inode is not a regular file');
    } else if (ino === BOOT_LOADER_INO) {
      if (inode.type === 'dir') bad('i_mode', 'reserved inode 5 (boot loader) has a directory mode');
    } else if (ino === RESIZE_INO) {
      if (inode.mode && inode.type !== 'file') bad('i_mode', `reserved inode 7 has invalid mode 0${inode.mode.toString(8)}`);
    } else if (inode.mode !== 0) {
      bad('i_mode', `reserved inode ${ino} has invalid mode 0${inode.mode.toString(8)}`);
    }
    return out; // e2fsck checks only their blocks beyond this
  }
  if (ino === ROOT_INO) {
    if (inode.type !== 'dir') bad('i_mode', 'the root inode is not a directory');
    if (inode.dtime && inode.linksCount) bad('i_dtime', 'the root inode has dtime set');
  } else if (inode.dtime) {
    bad('i_dtime', `in use, but has dtime set (${inode.dtime})`);
  }

  if (flags & INODE_FLAGS.CASEFOLD && (inode.type !== 'dir' || !feat.casefold)) bad('i_flags', 'casefold flag on a non-directory or without the casefold feature');
  if (flags & INODE_FLAGS.EA_INODE && inode.type !== 'file') bad('i_flags', 'EA_INODE flag on a non-regular file');
  if (flags & INODE_FLAGS.INLINE_DATA && flags & INODE_FLAGS.EXTENTS) bad('i_flags', 'both inline data and extents flags are set');
  if (flags & INODE_FLAGS.INLINE_DATA && !feat.inline) bad('i_flags', 'inline data flag set on a filesystem without inline_data');
  if (flags & INODE_FLAGS.INLINE_DATA && feat.inline && inlineSize(inode) === null) bad('i_flags', 'inline data flag set but the system.data attribute is missing');
  if (flags & INODE_FLAGS.EXTENTS && !feat.extents) bad('i_flags', 'in extent format, but the filesystem has no extents feature');
  if (feat.extents && !(flags & (INODE_FLAGS.EXTENTS | INODE_FLAGS.INLINE_DATA)) && (inode.type === 'file' || inode.type === 'dir') && looksLikeExtentRoot(inode))
    bad('i_flags', 'i_block holds an extent tree but the extents flag is missing');
  if (flags & INODE_FLAGS.IMAGIC && !feat.imagic) bad('i_flags', 'imagic flag set without the imagic_inodes feature');
  if (flags & INODE_FLAGS.INDEX) {
    if (inode.type !== 'dir') bad('i_flags', 'INDEX_FL set but it is not a directory');
    else if (!feat.dirIndex) bad('i_flags', 'INDEX_FL set on a filesystem without dir_index');
  }

  // fields pass 2 insists are zero (e2fsck_process_bad_inode)
  if (inode.base.i_faddr) bad('i_faddr', `i_faddr is ${inode.base.i_faddr}, should be zero`);
  if (!feat.is64 && inode.base.i_file_acl_high) bad('i_file_acl_high', `i_file_acl_hi is ${inode.base.i_file_acl_high}, should be zero`);
  if (!feat.huge && inode.base.i_blocks_hi) bad('i_blocks_hi', `i_blocks_hi is ${inode.base.i_blocks_hi}, should be zero`);
  if (inode.fileAcl && !feat.xattr) bad('i_file_acl', 'an xattr block on a filesystem without ext_attr');
  if (inode.type === 'dir' && inode.base.i_size_high && !feat.largedir && inode.blocks512 < 2 ** (29 - Math.log2(fs.blockSize)))
    bad('i_size_high', `i_size_high is ${inode.base.i_size_high}, should be zero`);

  // i_extra_isize and the in-inode xattrs
  if (sb.s_inode_size > 128) {
    const x = inode.extraIsize;
    if (x && (x < 4 || x > sb.s_inode_size - 128 || x & 3)) bad('i_extra_isize', `i_extra_isize ${x} is invalid`);
    else for (const m of checkInodeXattrs(inode.raw, x, xattrContext(fs)).problems) bad('in-inode xattrs', `extended attribute: ${m}`);
  }

  switch (inode.type) {
    case null:
      bad('i_mode', `invalid mode 0${inode.mode.toString(8)}`);
      return out;
    case 'chardev':
    case 'blockdev':
    case 'fifo':
    case 'socket':
      if (!deviceValid(inode)) bad('i_block', `${inode.type} inode with block-map flags or blocks`);
      if (flags & (INODE_FLAGS.EXTENTS | INODE_FLAGS.INLINE_DATA)) bad('i_flags', `${inode.type} inode with extents or inline data flag`);
      if (flags & (INODE_FLAGS.IMMUTABLE | INODE_FLAGS.APPEND)) bad('i_flags', `${inode.type} inode with immutable or append-only flag`);
      if (inode.size !== 0) bad('i_size', `${inode.type} inode with size ${inode.size}`);
      return out;
    case 'symlink':
      if (!(await symlinkValid(fs, inode, map))) bad('i_size', `symlink is invalid (size ${inode.size})`);
      else if (flags & (INODE_FLAGS.IMMUTABLE | INODE_FLAGS.APPEND)) bad('i_flags', 'symlink with immutable or append-only flag');
      return out;
  }

  out.push(...sizeProblems(fs, inode, map));
  return out;
}

/** i_size against the mapped blocks (check_blocks): directories exactly their blocks, files no shorter than their last written block, no longer than the mapping can address. */
export function sizeProblems(fs: Filesystem, inode: Inode, map: FileMap | null): CheckProblem[] {
  const sb = fs.sb;
  const out: CheckProblem[] = [];
  const flags = inode.flags;
  const bad = (location: string, message: string) => out.push({ pass: 1, code: 'EFSCORRUPTED', structure: `inode ${inode.ino}`, location, message });
  const bs = fs.blockSize;
  if (inode.type === 'symlink') return out; // e2fsck_pass1_check_symlink judges those
  if (inode.type === 'dir') {
    if (hasInlineData(inode)) {
      const want = inlineSize(inode);
      if (want !== null && want !== inode.size) bad('i_size', `i_size is ${inode.size}, should be ${want}`);
    } else if (map) {
      let last = -1;
      for (const e of map.extents) last = Math.max(last, e.logical + e.length - 1);
      const nblock = Math.floor(inode.size / bs);
      if (inode.size % bs !== 0) bad('i_size', `i_size is ${inode.size}, not a multiple of the block size`);
      else if (nblock > last + 1 || last + 1 - nblock > sb.s_prealloc_dir_blocks) bad('i_size', `i_size is ${inode.size}, should be ${(last + 1) * bs}`);
    }
  } else if (map && !hasInlineData(inode)) {
    let lastInit = -1;
    for (const e of map.extents) if (!e.unwritten) lastInit = Math.max(lastInit, e.logical + e.length - 1);
    if (lastInit >= 0 && inode.size < lastInit * bs && !(flags & INODE_FLAGS.VERITY)) bad('i_size', `i_size is ${inode.size}, but block ${lastInit} is mapped`);
    else if (!(flags & INODE_FLAGS.EXTENTS) && inode.size > blockMapMaxSize(bs)) bad('i_size', `i_size ${inode.size} is too big for a block-mapped file`);
    else if (flags & INODE_FLAGS.EXTENTS && inode.size > EXTENT_MAX_LBLOCKS * bs - 1) bad('i_size', `i_size ${inode.size} is too big for an extent-mapped file`);
  }
  return out;
}
