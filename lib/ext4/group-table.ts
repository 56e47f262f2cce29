/**
 * The group descriptors of a range of groups as columns (typed arrays), decoded straight from
 * the descriptor blocks: what whole-disk scans (getFreeBlocks over 8,192 groups of a 1 TiB fs)
 * need, without an object and a copy per descriptor. Each descriptor gets the same validation as
 * Volume.group's parseGroupDesc + checkGroupDesc (checksum, metadata locations, counts); one that
 * fails is handed to those, so the error is theirs, word for word. Field positions come from the
 * declared layout (GroupDesc32Layout/GroupDesc64Layout), read through 16/32-bit views of the
 * blocks on a little-endian host; elsewhere each descriptor is decoded by parseGroupDesc.
 */
import { Ext4Error } from '../errors.js';
import type { Superblock } from './superblock.js';
import { descPerBlock, descriptorBlockLocation, inodeTableBlocks } from './geometry.js';
import { GroupDesc32Layout, GroupDesc64Layout, checkGroupDesc, groupDescChecksum, parseGroupDesc } from './group-desc.js';
import { crc32cLe32, crc32cWords } from '../codec/crc.js';
import { COL_BB_CSUM, COL_BLOCK_BITMAP, COL_FLAGS, COL_FREE, COL_INODE_BITMAP, COL_INODE_TABLE, decodeGroupDescs } from './group-desc-wasm.js';

/** Groups [first, end); column index i is group first + i. Values combined from their lo/hi halves. */
export interface GroupTable {
  readonly first: number;
  readonly end: number;
  readonly blockBitmap: Float64Array;
  readonly inodeBitmap: Float64Array;
  readonly inodeTable: Float64Array;
  /** bg_free_blocks_count: free clusters (= blocks without bigalloc). */
  readonly freeClusters: Uint32Array;
  readonly flags: Uint16Array;
  readonly blockBitmapCsum: Uint32Array;
}

/** What loadGroupTable reads through: the filesystem's block view (journal and replay included). */
export interface GroupTableSource {
  readonly sb: Superblock;
  readonly fsSeed: number;
  readonly verify: boolean;
  readDataBlocksInto(n: number, count: number, target: Uint8Array): Promise<void>;
}

/** Largest single read (the CLI serves reads up to this size synchronously). */
const MAX_READ_BYTES = 256 * 1024;
const HOST_LE = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** 32-bit word index (within a descriptor) of a u32 field, 16-bit index of a u16 field. */
const w32 = (f: Parameters<typeof GroupDesc64Layout.offsetOf>[0]) => GroupDesc64Layout.offsetOf(f) >>> 2;
const w16 = (f: Parameters<typeof GroupDesc64Layout.offsetOf>[0]) => GroupDesc64Layout.offsetOf(f) >>> 1;
const BB_LO = w32('bg_block_bitmap_lo'), BB_HI = w32('bg_block_bitmap_hi');
const IB_LO = w32('bg_inode_bitmap_lo'), IB_HI = w32('bg_inode_bitmap_hi');
const IT_LO = w32('bg_inode_table_lo'), IT_HI = w32('bg_inode_table_hi');
const FB_LO = w16('bg_free_blocks_count_lo'), FB_HI = w16('bg_free_blocks_count_hi');
const FI_LO = w16('bg_free_inodes_count_lo'), FI_HI = w16('bg_free_inodes_count_hi');
const FLAGS = w16('bg_flags');
const BBC_LO = w16('bg_block_bitmap_csum_lo'), BBC_HI = w16('bg_block_bitmap_csum_hi');
const CSUM = GroupDesc32Layout.offsetOf('bg_checksum') >>> 1;

/**
 * The descriptors of groups [first, end), validated, read in as few reads as their blocks allow,
 * a piece at a time through `scratch` (any size of at least a block; by default one of up to
 * MAX_READ_BYTES): a fresh process pays for every new page it touches, so a caller with a buffer
 * for later reads lends it here.
 */
export async function loadGroupTable(src: GroupTableSource, first: number, end: number, scratch?: Uint8Array): Promise<GroupTable> {
  const sb = src.sb;
  const n = Math.max(0, end - first);
  const t: GroupTable = {
    first,
    end: first + n,
    blockBitmap: new Float64Array(n),
    inodeBitmap: new Float64Array(n),
    inodeTable: new Float64Array(n),
    freeClusters: new Uint32Array(n),
    flags: new Uint16Array(n),
    blockBitmapCsum: new Uint32Array(n),
  };
  if (n === 0) return t;
  if (first < 0 || first + n > sb.groupCount) throw new Ext4Error('EINVAL', `groups ${first}..${first + n - 1} do not exist`);
  const bs = sb.blockSize, per = descPerBlock(sb);
  const b0 = Math.floor(first / per), b1 = Math.floor((first + n - 1) / per) + 1;
  const buf = scratch && scratch.length >= bs ? scratch : new Uint8Array(Math.min((b1 - b0) * bs, MAX_READ_BYTES));
  const cap = Math.min(Math.floor(buf.length / bs), MAX_READ_BYTES / bs);
  for (let p = b0; p < b1; p += cap) {
    // Descriptor blocks [p, q) into buf, in runs of consecutive locations (the classic GDT is one
    // run; meta_bg scatters them), all issued before any is awaited; then their groups decoded.
    const q = Math.min(b1, p + cap);
    const reads: Promise<void>[] = [];
    for (let b = p; b < q; ) {
      const at = descriptorBlockLocation(sb, b);
      let k = 1;
      while (b + k < q && descriptorBlockLocation(sb, b + k) === at + k) k++;
      reads.push(src.readDataBlocksInto(at, k, buf.subarray((b - p) * bs, (b - p + k) * bs)));
      b += k;
    }
    await Promise.all(reads);
    decodeInto(src, t, buf, p * per, Math.max(first, p * per), Math.min(t.end, q * per));
  }
  return t;
}

/** Decode and validate groups [from, to) of t from `buf`, the descriptor blocks from the one holding group `bufFirst`. */
function decodeInto(src: GroupTableSource, t: GroupTable, buf: Uint8Array, bufFirst: number, from: number, to: number): void {
  const sb = src.sb;
  const size = sb.descSize;
  const wide = sb.is64 && size >= 64;
  const checksummed = src.verify && (sb.hasMetadataCsum || sb.hasGdtCsum);
  // metadata_csum: crc32c(fsSeed, le32 group, the descriptor with bg_checksum as zeros), 16 bytes a step
  // from whole words (bg_checksum zeroed in place for the sum, then put back); gdt_csum's crc16 as group() does.
  const wordCsum = checksummed && sb.hasMetadataCsum && size % 16 === 0;
  if (!HOST_LE) {
    for (let g = from; g < to; g++) {
      const gd = parseGroupDesc(sb, g, buf, (g - bufFirst) * size);
      checkGroupDesc(sb, gd, src.fsSeed, src.verify);
      const i = g - t.first;
      t.blockBitmap[i] = gd.blockBitmap;
      t.inodeBitmap[i] = gd.inodeBitmap;
      t.inodeTable[i] = gd.inodeTable;
      t.freeClusters[i] = gd.freeBlocks;
      t.flags[i] = gd.flags;
      t.blockBitmapCsum[i] = gd.blockBitmapCsum;
    }
    return;
  }
  const u32 = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
  const u16 = new Uint16Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 1);
  const i32 = new Int32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
  // checkGroupDesc's bounds, hoisted.
  const lo = sb.s_first_data_block, top = sb.blocksCount, itb = inodeTableBlocks(sb);
  const maxFree = sb.s_clusters_per_group, maxFreeInodes = sb.s_inodes_per_group;
  // 32-bit block numbers, and a metadata_csum checksum or none: the plainly valid descriptors
  // from the first are decoded in WebAssembly (group-desc-wasm.ts), the rest (a 64-bit value,
  // or the one that fails, for its exact error) below.
  let g0 = from;
  if (top < 2 ** 32 && top >= itb && (wordCsum || !checksummed)) {
    const d = decodeGroupDescs(buf.subarray((from - bufFirst) * size, (to - bufFirst) * size), size, from, src.fsSeed, { lo, top, itMax: top - itb, maxFree, maxFreeInodes }, wordCsum, wide);
    if (d !== null) {
      const i0 = from - t.first;
      t.blockBitmap.set(d.column(COL_BLOCK_BITMAP), i0);
      t.inodeBitmap.set(d.column(COL_INODE_BITMAP), i0);
      t.inodeTable.set(d.column(COL_INODE_TABLE), i0);
      t.freeClusters.set(d.column(COL_FREE), i0);
      t.flags.set(d.column(COL_FLAGS), i0);
      t.blockBitmapCsum.set(d.column(COL_BB_CSUM), i0);
      g0 = from + d.count;
    }
  }
  for (let g = g0; g < to; g++) {
    const off = (g - bufFirst) * size;
    const w = off >>> 2, h = off >>> 1, i = g - t.first;
    // A hi half is multiplied in only when non-zero: the first thousands of descriptors are
    // decoded interpreted, where every floating-point product is a new heap number (a megabyte
    // of garbage over a 1 TiB filesystem's 8,192 descriptors).
    const bbHi = wide ? u32[w + BB_HI]! : 0, ibHi = wide ? u32[w + IB_HI]! : 0, itHi = wide ? u32[w + IT_HI]! : 0;
    const fbHi = wide ? u16[h + FB_HI]! : 0, fiHi = wide ? u16[h + FI_HI]! : 0;
    const bb = bbHi === 0 ? u32[w + BB_LO]! : u32[w + BB_LO]! + bbHi * 2 ** 32;
    const ib = ibHi === 0 ? u32[w + IB_LO]! : u32[w + IB_LO]! + ibHi * 2 ** 32;
    const it = itHi === 0 ? u32[w + IT_LO]! : u32[w + IT_LO]! + itHi * 2 ** 32;
    const fb = fbHi === 0 ? u16[h + FB_LO]! : u16[h + FB_LO]! + fbHi * 65536;
    const fi = fiHi === 0 ? u16[h + FI_LO]! : u16[h + FI_LO]! + fiHi * 65536;
    let ok = bb >= lo && bb < top && bb !== 0 && ib >= lo && ib < top && ib !== 0 && it >= lo && it + itb <= top && it !== 0 && fb <= maxFree && fi <= maxFreeInodes;
    if (ok && wordCsum) {
      const stored = u16[h + CSUM]!;
      u16[h + CSUM] = 0;
      ok = (crc32cWords(crc32cLe32(src.fsSeed, g), i32, w, size) & 0xffff) === stored;
      u16[h + CSUM] = stored;
    } else if (ok && checksummed) ok = groupDescChecksum(sb, g, buf, src.fsSeed, off) === u16[h + CSUM]!;
    if (!ok) {
      // The slow path names the problem exactly as a single lookup would.
      checkGroupDesc(sb, parseGroupDesc(sb, g, buf, off), src.fsSeed, src.verify);
      throw new Ext4Error('EFSCORRUPTED', `group ${g}: descriptor rejected`, { structure: 'group descriptor', location: { kind: 'group', group: g } });
    }
    t.blockBitmap[i] = bb;
    t.inodeBitmap[i] = ib;
    t.inodeTable[i] = it;
    t.freeClusters[i] = fb;
    t.flags[i] = u16[h + FLAGS]!;
    const bbcHi = wide ? u16[h + BBC_HI]! : 0;
    t.blockBitmapCsum[i] = bbcHi === 0 ? u16[h + BBC_LO]! : u16[h + BBC_LO]! + bbcHi * 65536;
  }
}
