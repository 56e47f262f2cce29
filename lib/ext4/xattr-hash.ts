/**
 * The xattr entry hash (e_hash): kernel ext4_xattr_hash_entry, e2fsprogs
 * ext2fs_ext_attr_hash_entry. The name bytes are folded in with a 5-bit
 * rotate, then the value as little-endian 32-bit words (the value's length
 * rounded up to 4, padding included) with a 16-bit rotate.
 *
 * Old kernels hashed the name through a plain `char`, which is signed on x86:
 * name bytes ≥ 0x80 were sign-extended before the XOR. e2fsck accepts either
 * (ext2fs_ext_attr_hash_entry_signed), and so must we.
 */
const NAME_HASH_SHIFT = 5;
const VALUE_HASH_SHIFT = 16;

function rot(hash: number, shift: number): number {
  return ((hash << shift) | (hash >>> (32 - shift))) >>> 0;
}

/**
 * e_hash of an entry. `value` is the area holding the value starting at its
 * first byte; words past its end read as zero (the on-disk padding is zero).
 * `valueSize` 0 (or a value in an EA inode: pass null) hashes the name only.
 */
export function xattrEntryHash(name: Uint8Array, value: Uint8Array | null, valueSize: number, signed = false): number {
  let hash = 0;
  for (let i = 0; i < name.length; i++) {
    const c = signed && name[i]! >= 0x80 ? name[i]! - 0x100 : name[i]!;
    hash = (rot(hash, NAME_HASH_SHIFT) ^ c) >>> 0;
  }
  if (value && valueSize > 0) {
    const words = (valueSize + 3) >>> 2;
    for (let w = 0; w < words; w++) {
      let word = 0;
      for (let k = 3; k >= 0; k--) word = (word << 8) | (value[w * 4 + k] ?? 0);
      hash = (rot(hash, VALUE_HASH_SHIFT) ^ (word >>> 0)) >>> 0;
    }
  }
  return hash >>> 0;
}

/** Whether a stored e_hash is one of the two hashes e2fsck accepts. */
export function xattrHashMatches(stored: number, name: Uint8Array, value: Uint8Array | null, valueSize: number): boolean {
  return stored === xattrEntryHash(name, value, valueSize, false) || stored === xattrEntryHash(name, value, valueSize, true);
}
