/**
 * Temporary regular files (a defrag's donor): created with links_count 0 and
 * on the orphan list, so that a crash leaves nothing visible — Linux at
 * mount, e2fsck -fy and ext4kit's next write open all release them.
 */
import { Ext4Error } from '../errors.js';
import type { FsWriter as Filesystem } from './transaction.js';
import { INCOMPAT } from './superblock.js';
import { INODE_FLAGS, S_IFREG, encodeTime } from './inode.js';
import { writeHeader } from './extents.js';
import { allocateInode } from './alloc.js';
import { randomU32 } from './random.js';
import { addOrphan, removeOrphan } from './orphan.js';
import { releaseInode } from './inode-lifecycle.js';

export interface TempFileOptions {
  /** Group to allocate the inode in (first free from there, wrapping). */
  goalGroup?: number;
  /** Permission bits (default 0o600). */
  mode?: number;
}

/**
 * Create a temporary regular file in one transaction: a new inode with
 * links_count 0 and no blocks (extent-mapped, or block-mapped when the fs
 * lacks the extent feature, as ext2/ext3 make files), on the orphan list. It is visible
 * nowhere; release it with releaseTempFile. After a crash, Linux (at mount),
 * e2fsck -fy and ext4kit's next write open delete it.
 */
export async function createTempFile(fs: Filesystem, opts: TempFileOptions = {}): Promise<number> {
  return fs.transact(async (tx) => {
    const sb = fs.sb;
    const ino = await allocateInode(tx, { goalGroup: opts.goalGroup ?? 0 });
    const inode = await tx.readInode(ino); // the slot was zeroed by allocateInode
    const t = encodeTime(fs.now());
    const b = inode.base;
    b.i_mode = S_IFREG | ((opts.mode ?? 0o600) & 0o7777);
    b.i_links_count = 0;
    b.i_atime = b.i_ctime = b.i_mtime = t.base;
    b.i_dtime = 0;
    const extents = (sb.s_feature_incompat & INCOMPAT.EXTENTS) !== 0;
    b.i_flags = extents ? INODE_FLAGS.EXTENTS : 0;
    b.i_generation = randomU32(fs, `i_generation of inode ${ino}`);
    const root = new Uint8Array(60); // an empty block map: 15 zero pointers
    if (extents) writeHeader(root, { entries: 0, max: 4, depth: 0 });
    b.i_block = root;
    if (sb.s_inode_size > 128) {
      const extra = Math.min(Math.max(sb.s_want_extra_isize, sb.s_min_extra_isize, 32), sb.s_inode_size - 128) & ~3;
      inode.extraIsize = extra;
      inode.extra.i_extra_isize = extra;
      inode.extra.i_ctime_extra = inode.extra.i_mtime_extra = inode.extra.i_atime_extra = t.extra;
      inode.extra.i_crtime = t.base;
      inode.extra.i_crtime_extra = t.extra;
    }
    inode.flags = b.i_flags;
    inode.generation = b.i_generation;
    await tx.writeInode(inode);
    await addOrphan(tx, ino);
    return ino;
  });
}

/**
 * Delete a temporary file made by createTempFile (it may own blocks by now):
 * taken off the orphan list, its blocks and inode freed — in several
 * transactions if the journal needs it, the inode staying an orphan until
 * the last. EINVAL if the inode has links or is not an orphan.
 */
export async function releaseTempFile(fs: Filesystem, ino: number): Promise<void> {
  const inode = await fs.readInode(ino);
  if (inode.mode === 0) throw new Ext4Error('ENOENT', `inode ${ino} is not in use`);
  if (inode.linksCount !== 0) throw new Ext4Error('EINVAL', `inode ${ino} has ${inode.linksCount} links: not a temporary file`);
  await releaseInode(fs, ino, (tx) => removeOrphan(tx, ino));
}

