/**
 * Temporary regular files (a defrag's donor): created with links_count 0 and
 * on the orphan list, so that a crash leaves nothing visible — Linux at
 * mount, e2fsck -fy and ext4kit's next write open all release them.
 */
import { Ext4Error } from '../errors.js';
import type { FsWriter as Filesystem } from './transaction.js';
import { S_IFREG } from './inode.js';
import { allocateInode } from './alloc.js';
import { addOrphan, removeOrphan } from './orphan.js';
import { initNewInode, releaseInode } from './inode-lifecycle.js';

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
    const ino = await allocateInode(tx, { goalGroup: opts.goalGroup ?? 0 });
    const inode = await initNewInode(tx, ino, { mode: S_IFREG | ((opts.mode ?? 0o600) & 0o7777), time: fs.now() });
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

