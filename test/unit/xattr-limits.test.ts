/**
 * The xattr parser refuses a value larger than the kernel's EXT4_XATTR_SIZE_MAX (check_xattrs),
 * in the inode body and in a block, for a value stored in place or in an EA inode: a hostile
 * e_value_size must never become a 4 GiB allocation when the EA inode's value is read.
 */
import { describe, expect, it } from 'vitest';
import {
  inodeXattrStart, parseInodeXattrs, parseXattrBlock, XATTR_MAGIC, XATTR_SIZE_MAX,
  XattrBlockHeaderLayout, XattrEntryLayout, XattrIbodyHeaderLayout,
} from '../../lib/ext4/xattr.js';

const NAME = new TextEncoder().encode('big');

/** One entry (user.big) naming EA inode `inum` with value size `size`, at `off` in `buf`. */
function putEntry(buf: Uint8Array, off: number, inum: number, size: number): void {
  XattrEntryLayout.encode({ e_name_len: NAME.length, e_name_index: 1, e_value_offs: 0, e_value_inum: inum, e_value_size: size, e_hash: 0 }, buf, off);
  buf.set(NAME, off + XattrEntryLayout.size);
}

function inodeWith(size: number): Uint8Array {
  const raw = new Uint8Array(256);
  const start = inodeXattrStart(32);
  XattrIbodyHeaderLayout.set(raw, 'h_magic', XATTR_MAGIC, start);
  putEntry(raw, start + XattrIbodyHeaderLayout.size, 12, size);
  return raw;
}

function blockWith(size: number): Uint8Array {
  const b = new Uint8Array(1024);
  XattrBlockHeaderLayout.set(b, 'h_magic', XATTR_MAGIC);
  XattrBlockHeaderLayout.set(b, 'h_blocks', 1);
  putEntry(b, XattrBlockHeaderLayout.size, 12, size);
  return b;
}

describe('xattr value size limit', () => {
  it('accepts an EA-inode value of exactly EXT4_XATTR_SIZE_MAX bytes', () => {
    expect(parseInodeXattrs(inodeWith(XATTR_SIZE_MAX), 32, 20)[0]).toMatchObject({ name: 'user.big', valueInode: 12, valueSize: XATTR_SIZE_MAX });
    expect(parseXattrBlock(blockWith(XATTR_SIZE_MAX), 99, { fsSeed: null, verify: false })[0]).toMatchObject({ valueSize: XATTR_SIZE_MAX });
  });
  it('refuses one byte more, and 4 GiB − 1, with a typed error naming where', () => {
    for (const size of [XATTR_SIZE_MAX + 1, 0xffffffff]) {
      expect(() => parseInodeXattrs(inodeWith(size), 32, 20)).toThrow(expect.objectContaining({ code: 'EFSCORRUPTED', structure: 'inode 20 in-inode xattrs' }));
      expect(() => parseXattrBlock(blockWith(size), 99, { fsSeed: null, verify: false })).toThrow(expect.objectContaining({ code: 'EFSCORRUPTED', location: { kind: 'block', block: 99 } }));
    }
  });
});
