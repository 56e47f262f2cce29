/**
 * Block and inode bitmaps (ext4-format.md §5.3): checksums, padding, and the
 * bitmap of a BLOCK_UNINIT group computed from the geometry rather than read
 * (as the kernel's ext4_init_block_bitmap and e2fsprogs do).
 */
import { Ext4Error } from '../errors.js';
import { countClear, ctz, fillBits } from './bit-runs.js';
import { crc32c, crc32cWords } from './checksum.js';
import { bitOfBlock, blocksInGroup, clustersInGroup, groupFirstBlock, groupFixedMetadata, groupHasSuper, inodeTableBlocks, type Geometry } from './geometry.js';
import { INCOMPAT } from './superblock.js';
import type { GroupDesc } from './group-desc.js';

export function testBit(bm: Uint8Array, i: number): boolean {
  return (bm[i >>> 3]! & (1 << (i & 7))) !== 0;
}
export function setBit(bm: Uint8Array, i: number): void {
  bm[i >>> 3]! |= 1 << (i & 7);
}
export function clearBit(bm: Uint8Array, i: number): void {
  bm[i >>> 3]! &= ~(1 << (i & 7));
}
/** Set `count` bits from `start`, whole bytes at once (an inode table's 512 blocks, a short last group's padding). */
export function setBitRange(bm: Uint8Array, start: number, count: number): void {
  fillBits(bm, start, start + count, true);
}

/** Checksum of a block bitmap: covers clusters_per_group/8 bytes (stored 16 bits with 32-byte descriptors). */
export function blockBitmapChecksum(bm: Uint8Array, fsSeed: number, blocksPerGroup: number): number {
  return crc32c(fsSeed, bm, 0, blocksPerGroup / 8);
}
export function inodeBitmapChecksum(bm: Uint8Array, fsSeed: number, inodesPerGroup: number): number {
  return crc32c(fsSeed, bm, 0, inodesPerGroup / 8);
}

/** Compare a computed checksum with the stored one, honouring the 16-bit storage of 32-byte descriptors. */
export function bitmapChecksumMatches(computed: number, stored: number, descSize: number, hiPresent: boolean): boolean {
  return hiPresent && descSize >= 64 ? computed === stored : (computed & 0xffff) === (stored & 0xffff);
}

/** Throw EFSBADCRC unless `bm` (group gd's block bitmap as read) matches its descriptor's checksum (metadata_csum). */
export function verifyBlockBitmap(sb: { descSize: number; s_clusters_per_group: number }, fsSeed: number, gd: GroupDesc, bm: Uint8Array): void {
  verifyBlockBitmapAt(sb, fsSeed, gd.group, gd.blockBitmap, gd.blockBitmapCsum, bm, 0);
}

/** verifyBlockBitmap for a bitmap at `offset` in a bulk read (`stored`: the descriptor's bg_block_bitmap_csum). */
export function verifyBlockBitmapAt(sb: { descSize: number; s_clusters_per_group: number }, fsSeed: number, group: number, block: number, stored: number, buf: Uint8Array, offset: number): void {
  const c = crc32c(fsSeed, buf, offset, offset + sb.s_clusters_per_group / 8);
  if (!bitmapChecksumMatches(c, stored, sb.descSize, sb.descSize >= 0x3a))
    throw blockBitmapCsumError(group, block);
}

/**
 * verifyBlockBitmapAt for a bitmap held in words[w0…] (a batch of bitmaps viewed once as words):
 * the checksum from whole words, 16 bytes a step. Returns false instead of throwing when `stored`
 * does not match, so the caller's loop stays small (it throws blockBitmapCsumError).
 */
export function blockBitmapCsumMatches(sb: { descSize: number; s_clusters_per_group: number }, fsSeed: number, stored: number, words: Int32Array, w0: number): boolean {
  const c = crc32cWords(fsSeed, words, w0, sb.s_clusters_per_group >>> 3);
  return sb.descSize >= 0x3a ? c === stored : (c & 0xffff) === (stored & 0xffff);
}

/** The error verifyBlockBitmapAt throws, for group `group` whose bitmap is at `block`. */
export function blockBitmapCsumError(group: number, block: number): Ext4Error {
  return new Ext4Error('EFSBADCRC', `block bitmap checksum mismatch`, { structure: 'block bitmap', location: { kind: 'group', group, block } });
}

/** The parts of a descriptor a BLOCK_UNINIT group's bitmap is computed from. */
export type UninitGroupDesc = Pick<GroupDesc, 'group' | 'blockBitmap' | 'inodeBitmap' | 'inodeTable'>;

/**
 * Whether a BLOCK_UNINIT group's computed bitmap marks any block of the group itself (a
 * superblock or descriptor copy, its own bitmaps or inode table; flex_bg usually puts those in
 * the flex group's first group): when not, every block of it is free, without building the bitmap.
 */
export function uninitGroupHasMetadata(g: Geometry, group: number, blockBitmap: number, inodeBitmap: number, inodeTable: number): boolean {
  // Called for thousands of groups: no object unless meta_bg may put a descriptor block here.
  if (groupHasSuper(g, group)) return true;
  if (g.s_feature_incompat & INCOMPAT.META_BG && groupFixedMetadata(g, group).newDescBlock >= 0) return true;
  const first = groupFirstBlock(g, group);
  const end = first + blocksInGroup(g, group);
  return (blockBitmap >= first && blockBitmap < end) || (inodeBitmap >= first && inodeBitmap < end) || (inodeTable < end && inodeTable + inodeTableBlocks(g) > first);
}

/**
 * The block bitmap of a BLOCK_UNINIT group: superblock/GDT/reserved-GDT
 * copies, this group's own bitmaps and inode table when they fall inside it,
 * and the padding past the end of a short last group. Built in `into` (a block's
 * worth, cleared first) when given: a whole-disk scan computes hundreds of them.
 */
export function computeUninitBlockBitmap(g: Geometry, gd: UninitGroupDesc, into?: Uint8Array): Uint8Array {
  const bm = into ? into.fill(0, 0, g.blockSize).subarray(0, g.blockSize) : new Uint8Array(g.blockSize);
  const first = groupFirstBlock(g, gd.group);
  const n = blocksInGroup(g, gd.group);
  // Blocks [b, b + count) clipped to the group, as the bits of the clusters holding them.
  const mark = (b: number, count = 1) => {
    const lo = Math.max(b, first), hi = Math.min(b + count, first + n);
    if (lo < hi) {
      const c0 = bitOfBlock(g, lo);
      setBitRange(bm, c0, bitOfBlock(g, hi - 1) + 1 - c0);
    }
  };
  const fixed = groupFixedMetadata(g, gd.group);
  if (fixed.superBlock >= 0) mark(fixed.superBlock);
  if (fixed.oldDescStart >= 0) mark(fixed.oldDescStart, fixed.oldDescCount);
  if (fixed.newDescBlock >= 0) mark(fixed.newDescBlock);
  mark(gd.blockBitmap);
  mark(gd.inodeBitmap);
  mark(gd.inodeTable, inodeTableBlocks(g));
  const c = clustersInGroup(g, gd.group);
  setBitRange(bm, c, g.blockSize * 8 - c);
  return bm;
}

/** An INODE_UNINIT group's inode bitmap: all free, padding set. */
export function computeUninitInodeBitmap(g: Geometry): Uint8Array {
  const bm = new Uint8Array(g.blockSize);
  // (whole bytes at once: a bit-at-a-time loop here got optimised, then deoptimised, during imports)
  fillBits(bm, g.s_inodes_per_group, g.blockSize * 8, true);
  return bm;
}

/** Count clear bits in [0, n) (bit-runs.ts: by words). */
export const countFree = countClear;

/** Little-endian host: a bitmap's on-disk 32-bit words read directly through an Int32Array view. */
const HOST_LE = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** The bitmap as 32-bit words, bit i = bit i%32 of word i/32 (bit i%8 of byte i/8 on disk: little-endian words). */
export function bitmapWords(bm: Uint8Array): Int32Array {
  const n = bm.byteLength >>> 2;
  if (HOST_LE && (bm.byteOffset & 3) === 0) return new Int32Array(bm.buffer, bm.byteOffset, n);
  // Unaligned or big-endian host: an aligned, host-order copy.
  const out = new Int32Array(n);
  const dv = new DataView(bm.buffer, bm.byteOffset, bm.byteLength);
  for (let w = 0; w < n; w++) out[w] = dv.getUint32(w << 2, true);
  return out;
}

/**
 * Maximal runs of clear bits in [from, to) of a bitmap: calls fn(start, len).
 * A 32-bit word at a time, words all set or all clear passed over whole;
 * the hot path of every free-space scan.
 */
export function forEachFreeRun(bm: Uint8Array, from: number, to: number, fn: (start: number, len: number) => void): void {
  const words = bitmapWords(bm);
  const nw = words.length;
  to = Math.min(to, nw * 32);
  let i = from;
  while (i < to) {
    // First clear bit ≥ i.
    let w = i >>> 5;
    let x = ~words[w]! & (-1 << (i & 31));
    while (x === 0) {
      if (++w >= nw || w << 5 >= to) return;
      x = ~words[w]!;
    }
    const st = (w << 5) + ctz(x);
    if (st >= to) return;
    // First set bit after it.
    x = words[w]! & (-1 << (st & 31));
    while (x === 0) {
      if (++w >= nw || w << 5 >= to) {
        fn(st, to - st);
        return;
      }
      x = words[w]!;
    }
    const e = Math.min(to, (w << 5) + ctz(x));
    fn(st, e - st);
    i = e;
  }
}
