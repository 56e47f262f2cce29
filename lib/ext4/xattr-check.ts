/**
 * Consistency rules of the two xattr areas, as e2fsck pass 1 applies them
 * (check_ea_in_inode, check_ext_attr): entries and values may not overlap each
 * other or the header and must stay inside the area, names and values must fit,
 * and every entry's e_hash must be the hash of its name and value (unsigned or
 * the legacy signed-char variant). The parser (xattr.ts) stays lenient so that
 * reads work on such images; this module says what is wrong, without throwing.
 */
import { XATTR_MAGIC, XattrBlockHeaderLayout, XattrEntryLayout, XattrIbodyHeaderLayout, inodeXattrStart, isLastXattrEntry } from './xattr.js';
import { xattrHashMatches } from './xattr-hash.js';

/** XATTR_SIZE_MAX: the largest value the VFS hands to a filesystem. */
const XATTR_SIZE_MAX = 65536;
const ENTRY_SIZE = XattrEntryLayout.size;
const round4 = (n: number) => (n + 3) & ~3;

/** Byte ranges claimed in an area; a claim that overlaps another or leaves the area fails. */
class Regions {
  private readonly taken: [number, number][] = [];
  constructor(private readonly size: number) {}
  claim(start: number, len: number): boolean {
    const end = start + len;
    if (start < 0 || end > this.size) return false;
    for (const [s, e] of this.taken) if (start < e && s < end) return false;
    this.taken.push([start, end]);
    return true;
  }
}

/** What the rules need of the filesystem: EA-inode values need the ea_inode feature and a valid inode number. */
export interface XattrCheckContext {
  eaInodeFeature: boolean;
  firstIno: number;
  inodesCount: number;
}

/** check_large_ea_inode's first rules (the EA inode's own size and hash are the caller's). */
function eaInodeRef(ctx: XattrCheckContext, inum: number): string | null {
  if (!ctx.eaInodeFeature) return `value in inode ${inum}, but the filesystem has no ea_inode feature`;
  if (inum < ctx.firstIno || inum > ctx.inodesCount) return `illegal extended attribute value inode ${inum}`;
  return null;
}

export interface XattrAreaReport {
  problems: string[];
  /** Entries whose value lives in an EA inode (ea_inode feature): inode numbers. */
  eaInodes: number[];
}

/**
 * The in-inode area: `raw` is the whole inode slot, the area starts at
 * 128 + i_extra_isize with the 4-byte magic. Returns no problem when the
 * magic is absent (no in-inode xattrs).
 */
export function checkInodeXattrs(raw: Uint8Array, extraIsize: number, ctx: XattrCheckContext): XattrAreaReport {
  const out: XattrAreaReport = { problems: [], eaInodes: [] };
  const header = inodeXattrStart(extraIsize);
  const storage = raw.length - header;
  if (storage <= 4 || header + 4 > raw.length) return out;
  if (XattrIbodyHeaderLayout.decode(raw, header).h_magic !== XATTR_MAGIC) return out;
  const start = header + 4; // entries, and the base of e_value_offs
  const regions = new Regions(storage);
  regions.claim(0, 4);
  let remain = storage - 4;
  let off = start;
  // Each entry consumes ≥ 16 bytes of `remain`: the loop is bounded by the area.
  while (remain >= ENTRY_SIZE && off + 4 <= raw.length && !isLastXattrEntry(raw, off)) {
    if (off + ENTRY_SIZE > raw.length) {
      out.problems.push(`in-inode xattr entry at byte ${off} runs past the inode`);
      return out;
    }
    const e = XattrEntryLayout.decode(raw, off);
    if (!regions.claim(off - header, round4(ENTRY_SIZE + e.e_name_len))) {
      out.problems.push(`in-inode xattr entry at byte ${off} overlaps another or leaves the area (allocation collision)`);
      return out;
    }
    remain -= ENTRY_SIZE;
    if (round4(e.e_name_len) > remain) {
      out.problems.push(`in-inode xattr entry at byte ${off}: name length ${e.e_name_len} does not fit`);
      return out;
    }
    remain -= round4(e.e_name_len);
    const name = raw.subarray(off + ENTRY_SIZE, off + ENTRY_SIZE + e.e_name_len);
    if (e.e_value_inum === 0) {
      if (e.e_value_size > remain) {
        out.problems.push(`in-inode xattr entry at byte ${off}: value size ${e.e_value_size} does not fit`);
        return out;
      }
      if (e.e_value_size && !regions.claim(4 + e.e_value_offs, round4(e.e_value_size))) {
        out.problems.push(`in-inode xattr entry at byte ${off}: value (offset ${e.e_value_offs}, size ${e.e_value_size}) overlaps another or leaves the area`);
        return out;
      }
      // e_hash 0 is allowed in the inode (old kernels did not set it)
      if (e.e_hash !== 0 && !xattrHashMatches(e.e_hash, name, raw.subarray(start + e.e_value_offs, header + storage), e.e_value_size)) {
        out.problems.push(`in-inode xattr entry at byte ${off} has a hash (${e.e_hash}) which is invalid`);
        return out;
      }
      remain -= e.e_value_size;
    } else {
      const p = eaInodeRef(ctx, e.e_value_inum);
      if (p) {
        out.problems.push(`in-inode xattr entry at byte ${off}: ${p}`);
        return out;
      }
      out.eaInodes.push(e.e_value_inum);
    }
    off += round4(ENTRY_SIZE + e.e_name_len);
  }
  if (!regions.claim(off - header, 4)) out.problems.push('in-inode xattr list has no room for its end marker (allocation collision)');
  return out;
}

/** An external xattr block (h_magic, h_blocks, entries, values, hashes). */
export function checkXattrBlock(block: Uint8Array, ctx: XattrCheckContext): XattrAreaReport {
  const out: XattrAreaReport = { problems: [], eaInodes: [] };
  const bs = block.length;
  const h = XattrBlockHeaderLayout.decode(block);
  if (h.h_magic !== XATTR_MAGIC) {
    out.problems.push(`bad magic 0x${h.h_magic.toString(16)}`);
    return out;
  }
  if (h.h_blocks !== 1) {
    out.problems.push(`h_blocks ${h.h_blocks}, must be 1`);
    return out;
  }
  const regions = new Regions(bs);
  regions.claim(0, XattrBlockHeaderLayout.size);
  let off = XattrBlockHeaderLayout.size;
  // Each entry claims ≥ 16 bytes of the block: bounded by the block size.
  while (off + 4 <= bs && !isLastXattrEntry(block, off)) {
    if (off + ENTRY_SIZE > bs || !regions.claim(off, round4(ENTRY_SIZE + XattrEntryLayout.get(block, 'e_name_len', off)))) {
      out.problems.push(`entry at byte ${off} overlaps another or leaves the block (allocation collision)`);
      return out;
    }
    const e = XattrEntryLayout.decode(block, off);
    if (e.e_name_index === 0) {
      out.problems.push(`entry at byte ${off} has name index 0 (bad name)`);
      return out;
    }
    const name = block.subarray(off + ENTRY_SIZE, off + ENTRY_SIZE + e.e_name_len);
    if (e.e_value_inum === 0) {
      if (e.e_value_size > XATTR_SIZE_MAX || e.e_value_offs + e.e_value_size > bs) {
        out.problems.push(`entry at byte ${off}: value (offset ${e.e_value_offs}, size ${e.e_value_size}) leaves the block (invalid value)`);
        return out;
      }
      if (e.e_value_size && !regions.claim(e.e_value_offs, round4(e.e_value_size))) {
        out.problems.push(`entry at byte ${off}: value (offset ${e.e_value_offs}, size ${e.e_value_size}) overlaps another (allocation collision)`);
        return out;
      }
      if (!xattrHashMatches(e.e_hash, name, block.subarray(e.e_value_offs), e.e_value_size)) {
        out.problems.push(`entry at byte ${off} has a hash (${e.e_hash}) which is invalid`);
        return out;
      }
    } else {
      const p = eaInodeRef(ctx, e.e_value_inum);
      if (p) {
        out.problems.push(`entry at byte ${off}: ${p}`);
        return out;
      }
      out.eaInodes.push(e.e_value_inum);
    }
    off += round4(ENTRY_SIZE + e.e_name_len);
  }
  if (!regions.claim(off, 4)) out.problems.push('no room for the end-of-entries marker (allocation collision)');
  return out;
}
