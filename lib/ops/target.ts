/** How the ops name a file: a path inside the image, or an inode number. */
import { Ext4Error } from '../errors.js';
import type { FsContext } from '../ext4/fs-context.js';

export type FileRef = string | number | { ino: number };

export async function resolveTarget(fs: FsContext, ref: FileRef): Promise<number> {
  if (typeof ref === 'number') {
    if (!Number.isInteger(ref) || ref < 1 || ref > fs.sb.s_inodes_count) throw new Ext4Error('EINVAL', `inode ${ref} does not exist`);
    return ref;
  }
  if (typeof ref === 'object') return resolveTarget(fs, ref.ino);
  return (await fs.resolve(ref, { followLast: true })).ino;
}
