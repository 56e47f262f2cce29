/**
 * Setting and removing extended attributes inside a transaction, as the
 * kernel's ext4_xattr_set_handle (fs/ext4/xattr.c) places them:
 *
 * - a value goes into the inode body (after i_extra_isize) when it fits
 *   there, and is then removed from the block; otherwise into the xattr
 *   block and removed from the body;
 * - each area is rebuilt whole: entries packed from the front (sorted by
 *   index, name length, name in the block, as ext4_xattr_find_entry's sorted
 *   search expects), values from the back, 4-byte aligned, a zero word ending
 *   the entry list; every inline value's e_hash recomputed (e2fsck pass 1
 *   check_ext_attr / check_ea_in_inode compare it), the block's h_hash
 *   (ext4_xattr_rehash) and, with metadata_csum, its checksum;
 * - a block shared by several inodes (h_refcount > 1, the kernel's mbcache
 *   sharing) is copied on write: the inode gets a new block with refcount 1
 *   and the old one loses a reference; removing the last attribute of a
 *   block drops the inode's reference (freed at 0). i_file_acl and i_blocks
 *   (one block for the xattr block, ext4-format.md §6.2, and each EA-inode
 *   value's size in clusters, which the kernel charges to the owner) follow.
 *
 * With ea_inode (ext4_xattr_set_handle's in_inode): a value whose padded
 * size is past EXT4_XATTR_MIN_LARGE_EA_SIZE, or that fits neither the body
 * nor the block (inline values must leave EXT4_XATTR_BLOCK_RESERVE of the
 * block to names), goes to a new EA inode (ea-inode.ts: refcount 1, value
 * hash in i_atime) and the entry, name only, goes to the body or the block.
 * Shared as the kernel shares them (its mbcache): an EA inode already holding
 * the same bytes, created or read in this open (ea-inode.ts findEaInode),
 * takes one more reference instead of a new inode being made. Replacing or removing such a value drops a
 * reference (freed at 0) — except for an entry of a shared block being
 * copied, whose reference stays with the old block; the copy takes one more
 * reference on every EA inode it names (ext4_xattr_inode_inc_ref_all).
 *
 * expandExtraIsize grows a small i_extra_isize (old images) when the inode is changed, as the
 * kernel does when it dirties one; see there for what it leaves alone.
 */
import { Ext4Error, type Location } from '../errors.js';
import type { Transaction } from './transaction.js';
import { INODE_FLAGS, type Inode } from './inode.js';
import { COMPAT, INCOMPAT, RO_COMPAT } from './superblock.js';
import { groupFirstBlock, groupOfInode } from './geometry.js';
import { allocateBlocks, allocateInode } from './alloc.js';
import { remapInode, setIBlocks, setSize, txFileMap } from './remap.js';
import type { Extent } from './extents.js';
import { initNewInode } from './inode-lifecycle.js';
import { changeEaInodeRefs, eaBlockReserve, eaInodeCharge, eaEntryHash, eaValueHash, findEaInode, minLargeEaSize, noteEaInode, setEaInodeHash, setEaInodeRefs } from './ea-inode.js';
import { xattrEntryHash } from './xattr-hash.js';
import {
  XATTR_MAGIC, XattrBlockHeaderLayout, XattrEntryLayout, XattrIbodyHeaderLayout, XattrListEndLayout,
  inodeXattrStart, parseInodeXattrs, parseXattrBlock, xattrBlockChecksum, type XattrEntry,
} from './xattr.js';

/** XATTR_SIZE_MAX and XATTR_NAME_MAX (include/uapi/linux/limits.h): the VFS refuses more. */
export const XATTR_VALUE_MAX = 65536;
export const XATTR_NAME_MAX = 255;

const ENTRY_SIZE = XattrEntryLayout.size;
const HEADER_SIZE = XattrBlockHeaderLayout.size;
const END_SIZE = XattrListEndLayout.size;
const round4 = (n: number) => (n + 3) & ~3;

/** Name prefixes and their e_name_index (ext4's xattr handlers; the ACL names are whole names). */
const PREFIX_INDEX: readonly [string, number, 'prefix' | 'exact'][] = [
  ['user.', 1, 'prefix'],
  ['system.posix_acl_access', 2, 'exact'],
  ['system.posix_acl_default', 3, 'exact'],
  ['trusted.', 4, 'prefix'],
  ['security.', 6, 'prefix'],
];

const enc = new TextEncoder();

export interface XattrName {
  index: number;
  suffix: Uint8Array;
}

/**
 * The on-disk (index, suffix) of a full attribute name. EOPNOTSUPP for a
 * namespace ext4 has no handler for (system.* besides the POSIX ACLs: system.data
 * belongs to inline data), EINVAL for a bare prefix, ERANGE for an empty or too long name.
 */
export function xattrName(name: string): XattrName {
  const bytes = enc.encode(name);
  if (bytes.length === 0 || bytes.length > XATTR_NAME_MAX) throw new Ext4Error('ERANGE', `xattr name of ${bytes.length} bytes (1..${XATTR_NAME_MAX})`);
  for (const [p, index, kind] of PREFIX_INDEX) {
    if (kind === 'exact' ? name === p : name.startsWith(p)) {
      const suffix = enc.encode(name.slice(kind === 'exact' ? name.length : p.length));
      if (kind === 'prefix' && suffix.length === 0) throw new Ext4Error('EINVAL', `xattr name "${name}" has no name after its prefix`);
      return { index, suffix };
    }
  }
  throw new Ext4Error('EOPNOTSUPP', `xattr namespace of "${name}" is not supported (user., trusted., security., system.posix_acl_access/default)`);
}

function sameName(e: XattrEntry, n: XattrName): boolean {
  if (e.index !== n.index || e.suffix.length !== n.suffix.length) return false;
  for (let i = 0; i < n.suffix.length; i++) if (e.suffix[i] !== n.suffix[i]) return false;
  return true;
}

/** ext4_xattr_find_entry's sort order for block entries: index, name length, name bytes. */
function compareEntries(a: XattrEntry, b: XattrEntry): number {
  if (a.index !== b.index) return a.index - b.index;
  if (a.suffix.length !== b.suffix.length) return a.suffix.length - b.suffix.length;
  for (let i = 0; i < a.suffix.length; i++) if (a.suffix[i] !== b.suffix[i]) return a.suffix[i]! - b.suffix[i]!;
  return 0;
}

/**
 * Blocks an inode's i_blocks counts for its xattrs, as e2fsck pass 1 expects: the xattr block
 * (a cluster), and for each value in an EA inode its size in clusters — the kernel charges
 * them to the owner (ext4_xattr_inode_alloc_quota), whether the entry is in the body or the block.
 */
function xattrCharge(tx: Transaction, ibody: readonly XattrEntry[], block: readonly XattrEntry[]): number {
  const sb = tx.fs.sb, ratio = 2 ** (sb.s_log_cluster_size - sb.s_log_block_size);
  return (block.length ? ratio : 0) + eaInodeCharge(sb, tx.fs.blockSize, [...ibody, ...block]);
}

/** Bytes the inline values of a list take (4-aligned). */
function valueBytes(items: readonly XattrEntry[]): number {
  let n = 0;
  for (const e of items) if (!e.valueInode) n += round4(e.valueSize);
  return n;
}

/** Bytes a list of entries takes in an area: entries, the end word, the 4-aligned values. */
function areaNeed(items: readonly XattrEntry[]): number {
  let n = END_SIZE;
  for (const e of items) n += round4(ENTRY_SIZE + e.suffix.length) + (e.valueInode ? 0 : round4(e.valueSize));
  return n;
}

/**
 * Write `items` into `buf`: entries from `entriesStart`, values from `areaEnd`
 * down, e_value_offs counted from `valueBase`. The area is zeroed first.
 * Returns the entries' hashes (the block hash needs them).
 */
function layoutArea(buf: Uint8Array, entriesStart: number, valueBase: number, areaEnd: number, items: readonly XattrEntry[]): number[] {
  buf.fill(0, entriesStart, areaEnd);
  let off = entriesStart, valueAt = areaEnd;
  const hashes: number[] = [];
  for (const e of items) {
    let offs = 0, hash = e.hash;
    if (!e.valueInode) {
      const v = e.value!;
      if (v.length > 0) {
        valueAt -= round4(v.length);
        buf.set(v, valueAt);
        offs = valueAt - valueBase;
      }
      // Over the value with its zero padding, as e2fsck recomputes it.
      hash = xattrEntryHash(e.suffix, v, v.length);
    }
    XattrEntryLayout.encode({ e_name_len: e.suffix.length, e_name_index: e.index, e_value_offs: offs, e_value_inum: e.valueInode, e_value_size: e.valueSize, e_hash: hash }, buf, off);
    buf.set(e.suffix, off + ENTRY_SIZE);
    hashes.push(hash);
    off += round4(ENTRY_SIZE + e.suffix.length);
  }
  return hashes;
}

/** ext4_xattr_rehash: the block hash folds the entry hashes; one zero entry hash makes it zero. */
function blockHash(hashes: readonly number[]): number {
  let h = 0;
  for (const e of hashes) {
    if (e === 0) return 0;
    h = (((h << 16) | (h >>> 16)) ^ e) >>> 0;
  }
  return h;
}

/** Bytes of in-inode xattr space after the ibody header, or 0 when the inode has none. */
function ibodyCapacity(tx: Transaction, inode: Inode): number {
  // EXT4_INODE_HAS_XATTR_SPACE: past the 128-byte base and an i_extra_isize that is set.
  if (tx.fs.sb.s_inode_size <= 128 || inode.extraIsize < 4) return 0;
  const cap = tx.fs.sb.s_inode_size - inodeXattrStart(inode.extraIsize) - XattrIbodyHeaderLayout.size;
  return cap > END_SIZE ? cap : 0;
}

interface XattrBlockState {
  nr: number;
  refcount: number;
  entries: XattrEntry[];
}

async function readXattrBlock(tx: Transaction, inode: Inode): Promise<XattrBlockState | null> {
  const fs = tx.fs, nr = inode.fileAcl;
  if (!nr) return null;
  const location: Location = { kind: 'field', field: 'i_file_acl' };
  if (nr < fs.sb.s_first_data_block || nr >= fs.sb.blocksCount)
    throw new Ext4Error('EFSCORRUPTED', `xattr block ${nr} is outside the filesystem`, { structure: `inode ${inode.ino}`, location });
  const data = await tx.readBlock(nr);
  const entries = parseXattrBlock(data, nr, { fsSeed: fs.sb.hasMetadataCsum ? fs.fsSeed : null, verify: fs.verify });
  const refcount = XattrBlockHeaderLayout.decode(data).h_refcount;
  if (refcount === 0) throw new Ext4Error('EFSCORRUPTED', `xattr block ${nr} has refcount 0 but inode ${inode.ino} uses it`, { structure: 'xattr block', location: { kind: 'block', block: nr } });
  return { nr, refcount, entries };
}

/** The inode's attributes as of the transaction: in-inode first, then the block's (values of EA inodes not read). */
export async function txXattrs(tx: Transaction, inode: Inode): Promise<XattrEntry[]> {
  const ib = ibodyCapacity(tx, inode) ? parseInodeXattrs(inode.raw, inode.extraIsize, inode.ino) : [];
  const blk = await readXattrBlock(tx, inode);
  return [...ib, ...(blk?.entries ?? [])];
}

/** A block image holding `entries` (refcount 1), hash and checksum set. */
function buildBlock(tx: Transaction, nr: number, entries: readonly XattrEntry[], refcount: number): Uint8Array {
  const fs = tx.fs, bs = fs.blockSize;
  const img = new Uint8Array(bs);
  const hashes = layoutArea(img, HEADER_SIZE, 0, bs, entries);
  const h = { h_magic: XATTR_MAGIC, h_refcount: refcount, h_blocks: 1, h_hash: blockHash(hashes), h_checksum: 0 };
  XattrBlockHeaderLayout.encode(h, img);
  if (fs.sb.hasMetadataCsum) {
    h.h_checksum = xattrBlockChecksum(img, nr, fs.fsSeed);
    XattrBlockHeaderLayout.encode(h, img);
  }
  return img;
}

/** One reference fewer on a block: freed at refcount 0, else rewritten with refcount − 1. */
async function dropBlockRef(tx: Transaction, blk: XattrBlockState): Promise<void> {
  if (blk.refcount <= 1) {
    tx.free(blk.nr, 1);
    return;
  }
  const w = await tx.block(blk.nr);
  const h = XattrBlockHeaderLayout.decode(w);
  h.h_refcount = blk.refcount - 1;
  XattrBlockHeaderLayout.encode(h, w);
  if (tx.fs.sb.hasMetadataCsum) {
    h.h_checksum = xattrBlockChecksum(w, blk.nr, tx.fs.fsSeed);
    XattrBlockHeaderLayout.encode(h, w);
  }
}

function sameValue(e: XattrEntry, v: Uint8Array): boolean {
  if (e.valueInode || !e.value || e.value.length !== v.length) return false;
  for (let i = 0; i < v.length; i++) if (e.value[i] !== v[i]) return false;
  return true;
}

export interface XattrEditOptions {
  /** 'create': EEXIST when present (XATTR_CREATE); 'replace': ENODATA when absent (XATTR_REPLACE). */
  flag?: 'create' | 'replace';
}

/**
 * Set (`value` given) or remove (`value` null: ENODATA when absent) attribute
 * `name` of `inode` inside `tx`. Changes inode.raw (the in-inode area),
 * i_file_acl and i_blocks in `inode` without writing it: the caller sets
 * ctime and writes it. Returns false when nothing changed (the same value
 * set again, as the kernel skips it).
 */
export async function editXattr(tx: Transaction, inode: Inode, which: string | XattrName, value: Uint8Array | null, opts: XattrEditOptions = {}): Promise<boolean> {
  const fs = tx.fs, bs = fs.blockSize;
  // An (index, suffix) pair is the format's own business (system.data of inline data), unchecked.
  const n = typeof which === 'string' ? xattrName(which) : which;
  const name = typeof which === 'string' ? which : `index ${which.index} ${new TextDecoder().decode(which.suffix)}`;
  if (value && value.length > XATTR_VALUE_MAX) throw new Ext4Error('E2BIG', `xattr value of ${value.length} bytes (at most ${XATTR_VALUE_MAX})`);
  const cap = ibodyCapacity(tx, inode);
  let ib = cap ? parseInodeXattrs(inode.raw, inode.extraIsize, inode.ino) : [];
  const blk = await readXattrBlock(tx, inode);
  let bl = blk?.entries ?? [];
  const inIb = ib.find((e) => sameName(e, n)), inBl = bl.find((e) => sameName(e, n));
  const exists = inIb !== undefined || inBl !== undefined;
  let fresh: XattrEntry | null = null;
  const ibWithout = ib.filter((e) => !sameName(e, n)), blWithout = bl.filter((e) => !sameName(e, n));
  if (value === null) {
    if (!exists) throw new Ext4Error('ENODATA', `no xattr ${name} on inode ${inode.ino}`);
    ib = ibWithout;
    bl = blWithout;
  } else {
    if (opts.flag === 'create' && exists) throw new Ext4Error('EEXIST', `xattr ${name} exists on inode ${inode.ino}`);
    if (opts.flag === 'replace' && !exists) throw new Ext4Error('ENODATA', `no xattr ${name} on inode ${inode.ino}`);
    if ((inBl && sameValue(inBl, value)) || (inIb && sameValue(inIb, value))) return false;
    const ea = (fs.sb.s_feature_incompat & INCOMPAT.EA_INODE) !== 0;
    const inline: XattrEntry = { name, index: n.index, suffix: n.suffix, value: value.slice(), valueInode: 0, valueSize: value.length, hash: 0 };
    // Where an entry goes: the body when it fits, else the block (ext4_xattr_ibody_set, then _block_set).
    const place = (entry: XattrEntry): 'ibody' | 'block' | null => {
      if (cap && areaNeed([...ibWithout, entry]) <= cap) return 'ibody';
      const blNew = [...blWithout, entry];
      if (areaNeed(blNew) > bs - HEADER_SIZE) return null;
      // EXT4_XATTR_BLOCK_RESERVE: an inline value must not eat the block's room for names.
      if (ea && !entry.valueInode && entry.valueSize > 0 && bs - valueBytes(blNew) < eaBlockReserve(bs)) return null;
      return 'block';
    };
    let entry = inline;
    let where = ea && round4(value.length) > minLargeEaSize(bs) ? null : place(inline);
    if (!where && ea && value.length > 0) {
      // in_inode: the entry names an EA inode (placeholder number until it exists).
      entry = { ...inline, value: null, valueInode: 1 };
      where = place(entry);
    }
    if (!where) throw new Ext4Error('ENOSPC', `xattr ${name} (${value.length} bytes) does not fit in the inode or its xattr block`);
    if (entry.valueInode) {
      // ext4_xattr_inode_lookup_create: an EA inode holding these bytes already takes one more reference.
      const hash = eaValueHash(fs.fsSeed, value);
      let ino = await findEaInode(tx, value, hash, inode.ino);
      if (ino) await changeEaInodeRefs(tx, ino, inode.ino, +1);
      else ino = (await createEaInode(tx, inode, value)).ino;
      entry = { ...entry, valueInode: ino, hash: eaEntryHash(n.suffix, hash) };
    }
    if (where === 'ibody') {
      // ext4_xattr_ibody_set first; then the block copy goes.
      ib = [...ibWithout, entry];
      bl = blWithout;
    } else {
      ib = ibWithout;
      bl = [...blWithout, entry].sort(compareEntries);
    }
    fresh = entry;
  }
  // The old value's EA inode loses this reference, unless a shared block keeps it (copied below).
  const old = inIb ?? inBl;
  if (old?.valueInode && !(old === inBl && blk && blk.refcount > 1)) await changeEaInodeRefs(tx, old.valueInode, inode.ino, -1);
  // Rewrite only the areas that held the name or take it now.
  const chargedBefore = xattrCharge(tx, cap ? parseInodeXattrs(inode.raw, inode.extraIsize, inode.ino) : [], blk?.entries ?? []);
  if (cap && (inIb || ib !== ibWithout)) writeIbody(inode, cap, ib);
  if (inBl || (bl !== blWithout && bl.length > 0)) await writeBlock(tx, inode, blk, bl, fresh);
  const chargedAfter = xattrCharge(tx, ib, inode.fileAcl ? bl : []);
  if (chargedAfter !== chargedBefore) setIBlocks(tx, inode, inode.blocks512 / (bs / 512) - chargedBefore + chargedAfter);
  if (!(fs.sb.s_feature_compat & COMPAT.EXT_ATTR)) tx.sbEdits.push((sb) => { sb.s_feature_compat |= COMPAT.EXT_ATTR; });
  return true;
}

/** Rebuild the in-inode area; the magic goes when the last entry does (ext4_xattr_ibody_set). */
function writeIbody(inode: Inode, cap: number, items: readonly XattrEntry[]): void {
  const start = inodeXattrStart(inode.extraIsize);
  const raw = inode.raw.slice();
  const entries = start + XattrIbodyHeaderLayout.size;
  layoutArea(raw, entries, entries, entries + cap, items);
  XattrIbodyHeaderLayout.encode({ h_magic: items.length ? XATTR_MAGIC : 0 }, raw, start);
  inode.raw = raw;
}

function setFileAcl(inode: Inode, nr: number): void {
  inode.base.i_file_acl_lo = nr % 2 ** 32;
  inode.base.i_file_acl_high = Math.floor(nr / 2 ** 32) & 0xffff;
  inode.fileAcl = nr;
}

/** Give the inode a block holding `items` (none: no block), copying a shared one. */
async function writeBlock(tx: Transaction, inode: Inode, old: XattrBlockState | null, items: readonly XattrEntry[], fresh: XattrEntry | null): Promise<void> {
  const fs = tx.fs;
  if (items.length === 0) {
    if (!old) return;
    await dropBlockRef(tx, old);
    setFileAcl(inode, 0);
    return;
  }
  if (old && old.refcount === 1) {
    tx.setBlock(old.nr, buildBlock(tx, old.nr, items, 1));
    return;
  }
  // A new block near the inode (the kernel's goal: the first block of the inode's group).
  const [run] = await allocateBlocks(tx, { goal: groupFirstBlock(fs.sb, groupOfInode(fs.sb, inode.ino)), length: 1 });
  const nr = run!.start;
  tx.setBlock(nr, buildBlock(tx, nr, items, 1));
  // A copy of a shared block names its EA inodes once more (the fresh one has its reference).
  if (old) for (const e of items) if (e.valueInode && e !== fresh) await changeEaInodeRefs(tx, e.valueInode, inode.ino, +1);
  if (old) await dropBlockRef(tx, old);
  setFileAcl(inode, nr);
}

/**
 * A new EA inode holding `value` (ext4_xattr_inode_create + _write): a regular
 * file 0600 owned as `owner`, flagged EA_INODE, links 1, refcount 1, the value
 * hash in i_atime; its blocks written through the journal as the kernel
 * writes them (metadata), near the owner (goal: the inode after it).
 */
async function createEaInode(tx: Transaction, owner: Inode, value: Uint8Array): Promise<{ ino: number; hash: number }> {
  const fs = tx.fs, bs = fs.blockSize;
  const goalGroup = groupOfInode(fs.sb, Math.min(owner.ino + 1, fs.sb.s_inodes_count));
  const ino = await allocateInode(tx, { goalGroup, dir: false });
  const inode = await initNewInode(tx, ino, { mode: 0o100600, uid: owner.uid, gid: owner.gid, flags: INODE_FLAGS.EA_INODE, time: fs.now() });
  inode.base.i_links_count = 1;
  inode.linksCount = 1;
  const hash = eaValueHash(fs.fsSeed, value);
  setEaInodeRefs(inode, 1);
  setEaInodeHash(inode, hash);
  const n = Math.ceil(value.length / bs);
  const runs = await allocateBlocks(tx, { goal: groupFirstBlock(fs.sb, groupOfInode(fs.sb, ino)), length: n });
  const extents: Extent[] = [];
  let lb = 0;
  for (const r of runs) {
    extents.push({ logical: lb, physical: r.start, length: r.length, unwritten: false });
    for (let i = 0; i < r.length; i++, lb++) {
      const img = new Uint8Array(bs);
      img.set(value.subarray(lb * bs, (lb + 1) * bs));
      tx.setBlock(r.start + i, img);
    }
  }
  await remapInode(tx, inode, await txFileMap(tx, inode), extents);
  setSize(tx, inode, value.length);
  await tx.writeInode(inode);
  noteEaInode(fs, hash, ino);
  return { ino, hash };
}

/**
 * The i_extra_isize the kernel wants for its inodes (ext4_clamp_want_extra_isize): 32 (sizeof
 * struct ext4_inode − 128), or s_want/s_min_extra_isize when extra_isize says and they are
 * larger — back to 32 when that does not fit the inode; 0 for 128-byte inodes.
 */
export function wantExtraIsize(sb: { s_inode_size: number; s_feature_ro_compat: number; s_want_extra_isize: number; s_min_extra_isize: number }): number {
  const dflt = 32;
  if (sb.s_inode_size <= 128) return 0;
  let want = dflt;
  if (sb.s_feature_ro_compat & RO_COMPAT.EXTRA_ISIZE) want = Math.max(want, sb.s_want_extra_isize, sb.s_min_extra_isize);
  if (128 + want > sb.s_inode_size) want = dflt;
  return want;
}

/**
 * Grow an inode's i_extra_isize to what the kernel wants, as it does when it dirties one
 * (ext4_mark_inode_dirty → ext4_try_to_expand_extra_isize → __ext4_expand_extra_isize): an inode
 * without in-inode xattrs gets the new bytes zeroed and the larger i_extra_isize. One with in-inode
 * xattrs is left as it is: ext4_expand_extra_isize_ea would shift them, but Linux 6.18 never does
 * here — chmod, touch, link, rename on such inodes keep 4, 16 or 28 with and without a journal,
 * with a large one, 1k or 4k blocks, s_min_extra_isize 32, and no "Unable to expand inode" warning
 * (so not journal credits; the exact gate was not traced: kprobes are not allowed in this sandbox).
 * A smaller i_extra_isize is valid (e2fsck pass 1 asks only for 4-byte alignment and at least 4).
 * Callers: every change that ends in ext4_mark_inode_dirty (attrs.ts chmod/chown/utimes, an ACL
 * that changes the mode; namespace.ts link/rename/unlink/rmdir on targets and parents) — not the
 * xattr edits themselves, which the kernel makes under EXT4_STATE_NO_EXPAND.
 * Tests: test/namespace/extra-isize*.test.ts. Changes `inode` without writing it; returns whether it grew.
 * i_extra_isize 0 counts as none (ext4_iget takes it as 32: no xattr space behind it).
 */
export function expandExtraIsize(tx: Transaction, inode: Inode): boolean {
  const sb = tx.fs.sb;
  const want = wantExtraIsize(sb);
  const old = inode.extraIsize;
  if (!want || old >= want || old & 3 || 128 + old > sb.s_inode_size) return false;
  if (ibodyCapacity(tx, inode) && parseInodeXattrs(inode.raw, old, inode.ino).length) return false;
  const raw = inode.raw.slice();
  // Past the new fields too: a stale ibody header must not survive behind the new i_extra_isize.
  raw.fill(0, inodeXattrStart(old), Math.min(inodeXattrStart(want) + XattrIbodyHeaderLayout.size, sb.s_inode_size));
  inode.raw = raw;
  inode.extraIsize = want;
  inode.extra.i_extra_isize = want;
  return true;
}
