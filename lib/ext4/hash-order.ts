/**
 * readdir(2) order on a mounted filesystem. The kernel reads a directory through the htree code
 * (ext4_dx_readdir) when the filesystem has dir_index and the directory is indexed, one block
 * long or inline: entries come in (major, minor) hash order, ties in block order. Other
 * directories come in block order. Used by the reports' nftw walk and checked against the kernel.
 */
import { ciHashName } from './casefold.js';
import { dirHash, DX_HASH_TEA } from './dirhash.js';
import type { Extent } from './extents.js';
import { hashSeedWords } from './hash-seed.js';
import { DxRootInfoLayout, DX_ROOT_INFO_OFFSET } from './htree.js';
import { INODE_FLAGS, hasInlineData, type Inode } from './inode.js';
import { COMPAT, INCOMPAT, S_FLAGS, type Superblock } from './superblock.js';

/** What the hash-order readdir reads (Filesystem provides it). */
export interface HashOrderSource {
  readonly sb: Readonly<Superblock>;
  readonly blockSize: number;
  /** Every live entry as stored, "." and ".." included. */
  readdirRaw(dir: Inode): Promise<{ name: Uint8Array; ino: number }[]>;
  fileMap(dir: Inode): Promise<{ extents: readonly Extent[] }>;
  readBlock(n: number): Promise<Uint8Array>;
}

/**
 * Entries of a directory (without '.' and '..') in the order readdir(2)
 * returns them on a mounted filesystem: hash order (major, minor) for
 * directories the kernel reads through the htree code — indexed ones,
 * one-block ones and inline ones, when the filesystem has dir_index — else
 * block order.
 */
export async function kernelReaddir(fs: HashOrderSource, dir: Inode): Promise<{ name: Uint8Array; ino: number }[]> {
  const entries = (await fs.readdirRaw(dir)).filter((e) => !(e.name.length === 1 && e.name[0] === 0x2e) && !(e.name.length === 2 && e.name[0] === 0x2e && e.name[1] === 0x2e));
  const sb = fs.sb;
  if (!(sb.s_feature_compat & COMPAT.DIR_INDEX)) return entries;
  const bs = fs.blockSize;
  const indexed = (dir.flags & INODE_FLAGS.INDEX) !== 0;
  const inline = hasInlineData(dir);
  if (!indexed && !inline && Math.floor(dir.size / bs) !== 1) return entries;
  let version = sb.s_def_hash_version;
  if (indexed && !inline) {
    const map = await fs.fileMap(dir);
    const first = map.extents[0];
    if (first && first.logical === 0) {
      const blk = await fs.readBlock(first.physical);
      version = DxRootInfoLayout.decode(blk, DX_ROOT_INFO_OFFSET).hash_version;
    }
  }
  if (version > DX_HASH_TEA) return entries; // siphash (casefold+encrypt): order unknown offline
  const words = hashSeedWords(sb.s_hash_seed);
  const signed = !(sb.s_flags & S_FLAGS.UNSIGNED_HASH);
  // A casefolded directory hashes the folded name (ext4fs_dirhash with the fs encoding); an
  // encrypted one keeps its on-disk names (no key here), as the kernel does without the key.
  const folded = (dir.flags & INODE_FLAGS.CASEFOLD) !== 0 && (sb.s_feature_incompat & INCOMPAT.CASEFOLD) !== 0 && !(dir.flags & INODE_FLAGS.ENCRYPT);
  const keyed = entries.map((e, i) => ({ e, i, h: dirHash(folded ? ciHashName(e.name) : e.name, version, words, signed) }));
  keyed.sort((a, b) => a.h.hash - b.h.hash || a.h.minor - b.h.minor || a.i - b.i);
  return keyed.map((k) => k.e);
}
