/**
 * A whole-space map in the spirit of FS_IOC_GETFSMAP (semantics.md §7), but
 * offline and with inode owners: every byte of the filesystem is reported as
 * free, fixed metadata (superblock copies, GDT, reserved GDT, bitmaps, inode
 * tables), the journal, a block owned by an inode (data, extent-tree node,
 * indirect block, xattr block) or — used in the bitmap and claimed by nobody —
 * unknown.
 *
 * The inode owners come from a reverse map built by one scan over the inode
 * tables (lib/ext4/inode-scan.ts, the in-use slots only).
 *
 * Precedence when claims overlap (only on damaged filesystems, or for the
 * resize inode, whose indirect blocks ARE the reserved GDT blocks): fixed
 * metadata, then the inode claim that starts first, then the bitmap.
 *
 * With bigalloc the bitmap allocates clusters: the blocks of an in-use
 * cluster that no claim names are the slack of the claim that shares the
 * cluster (the whole cluster is allocated to it), and are reported as that
 * claim's, never as unknown.
 */
import { le32 } from '../codec/layout.js';
import { Ext4Error } from '../errors.js';
import type { Filesystem } from '../ext4/filesystem.js';
import { clusterFirstBlock, clusterRatio } from '../ext4/geometry.js';
import { COMPAT } from '../ext4/superblock.js';
import type { Inode } from '../ext4/inode.js';
import { scanInodeTables } from '../ext4/inode-scan.js';
import { scanFreeRuns } from './free.js';
import { fixedMetadataExtents } from '../ext4/fixed-metadata.js';

/** The resize inode (reserved GDT blocks). */
const RESIZE_INO = 7;

export type InodeBlockKind = 'data' | 'extent_tree' | 'indirect' | 'xattr';

export interface InodeOwner {
  ino: number;
  kind: InodeBlockKind;
  /** Data blocks of an unwritten (preallocated) extent. */
  unwritten?: boolean;
}

export type SpecialOwner =
  | 'free'
  | 'superblock'
  | 'gdt'
  | 'reserved_gdt'
  | 'block_bitmap'
  | 'inode_bitmap'
  | 'inode_table'
  | 'journal'
  | 'mmp'
  | 'unknown';

export type FsmapOwner = SpecialOwner | InodeOwner;

export interface FsmapRecord {
  /** Byte offset. */
  start: number;
  /** Length in bytes. */
  len: number;
  owner: FsmapOwner;
}

/** A run of physical blocks claimed by one inode. */
export interface OwnedRun {
  start: number;
  length: number;
  ino: number;
  kind: InodeBlockKind;
  unwritten: boolean;
}

export interface ReverseMapStats {
  groups: number;
  /** Groups whose inode table was not read at all (INODE_UNINIT, or nothing in use). */
  groupsSkipped: number;
  inodesInUse: number;
  /** Bytes of inode table read. */
  tableBytes: number;
  /** Device reads of inode-table runs. */
  tableReads: number;
  ms: number;
}

export interface ReverseMap {
  blockSize: number;
  /** Every inode-owned run, ascending by start (claims of different inodes may overlap only on a damaged fs). */
  runs: OwnedRun[];
  /** Inodes whose block map could not be read (their blocks show up as 'unknown'). */
  errors: { ino: number; error: Error }[];
  stats: ReverseMapStats;
}

export interface BuildReverseMapOptions {
  /** Throw on the first unreadable inode instead of recording it in `errors` (default false). */
  strict?: boolean;
  /** Largest single inode-table read in bytes (default 8 MiB). */
  readBytes?: number;
}

/** The inode that owns block `block` in a reverse map (binary search), or null. */
export function ownerOfBlock(map: ReverseMap, block: number): OwnedRun | null {
  const runs = map.runs;
  let lo = 0, hi = runs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (runs[mid]!.start <= block) lo = mid + 1;
    else hi = mid;
  }
  // runs[lo-1] is the last run starting at or before block; earlier runs may still cover it only on overlap
  for (let i = lo - 1; i >= 0 && i >= lo - 8; i--) {
    const r = runs[i]!;
    if (block < r.start + r.length) return r;
  }
  return null;
}

/**
 * One scan over every inode in use: records each inode's data extents and
 * its metadata blocks (extent-tree nodes or indirect blocks, xattr block).
 * Holds the filesystem's operation lock for the scan, so the map is a
 * consistent snapshot of the last committed state.
 */
export async function buildReverseMap(fs: Filesystem, opts: BuildReverseMapOptions = {}): Promise<ReverseMap> {
  return fs.exclusive(() => scanInodes(fs, opts));
}

async function scanInodes(fs: Filesystem, opts: BuildReverseMapOptions): Promise<ReverseMap> {
  const t0 = performance.now();
  const sb = fs.sb;
  const bs = fs.blockSize;
  const runs: OwnedRun[] = [];
  const errors: ReverseMap['errors'] = [];
  const stats: ReverseMapStats = { groups: sb.groupCount, groupsSkipped: 0, inodesInUse: 0, tableBytes: 0, tableReads: 0, ms: 0 };
  const xattrSeen = new Set<number>();

  const addRun = (start: number, length: number, ino: number, kind: InodeBlockKind, unwritten: boolean) => {
    const last = runs[runs.length - 1];
    if (last && last.ino === ino && last.kind === kind && last.unwritten === unwritten && last.start + last.length === start) last.length += length;
    else runs.push({ start, length, ino, kind, unwritten });
  };

  const record = async (inode: Inode) => {
    const ino = inode.ino;
    if (inode.fileAcl && !xattrSeen.has(inode.fileAcl)) {
      // A shared xattr block (h_refcount > 1) is reported once, for the first inode that names it.
      xattrSeen.add(inode.fileAcl);
      if (inode.fileAcl >= sb.s_first_data_block && inode.fileAcl < sb.blocksCount) addRun(inode.fileAcl, 1, ino, 'xattr', false);
    }
    if (ino === RESIZE_INO && sb.s_feature_compat & COMPAT.RESIZE_INODE) {
      // Its indirect blocks are the primary reserved GDT blocks and its data the backups, all of
      // which the geometry reports as reserved_gdt; walking ~1000 blocks would add nothing but
      // the top-level (double-indirect) block itself.
      for (const [i, p] of le32.words(inode.base.i_block).entries()) {
        if (p !== 0 && p >= sb.s_first_data_block && p < sb.blocksCount) addRun(p, 1, ino, i < 12 ? 'data' : 'indirect', false);
      }
      return;
    }
    const map = await fs.fileMap(inode);
    if (map.kind !== 'extents' && map.kind !== 'blockmap') return;
    const metaKind: InodeBlockKind = map.kind === 'extents' ? 'extent_tree' : 'indirect';
    const meta = [...map.metadataBlocks].sort((a, b) => a - b);
    for (const b of meta) addRun(b, 1, ino, metaKind, false);
    for (const e of map.extents) addRun(e.physical, e.length, ino, 'data', e.unwritten);
  };

  for await (const item of scanInodeTables(fs, { which: 'marked', stats, ...(opts.readBytes !== undefined ? { readBytes: opts.readBytes } : {}) })) {
    if (item.kind === 'group') {
      if (item.descError) throw item.descError;
      if (item.bitmapError) throw item.bitmapError;
      continue;
    }
    try {
      if (item.error) throw item.error;
      const inode = item.inode!;
      if (inode.mode === 0 && inode.linksCount === 0 && inode.base.i_blocks_lo === 0 && inode.fileAcl === 0) continue;
      stats.inodesInUse++;
      await record(inode);
    } catch (e) {
      if (opts.strict || !(e instanceof Ext4Error)) throw e;
      errors.push({ ino: item.ino, error: e });
    }
  }
  runs.sort((a, b) => a.start - b.start || a.ino - b.ino);
  stats.ms = performance.now() - t0;
  return { blockSize: bs, runs, errors, stats };
}

// ---------------------------------------------------------------------------- fsmap

export interface FsmapOptions {
  /** Byte offset, block-aligned (default 0). */
  start?: number;
  /** Byte offset, block-aligned, exclusive (default: end of the filesystem; clipped to it). */
  end?: number;
  /** A reverse map built earlier (default: built now). */
  reverseMap?: ReverseMap;
}

interface Claim {
  start: number;
  end: number;
  owner: FsmapOwner;
}

/**
 * Fixed metadata runs (in blocks) of every group, ascending: the same list the allocator guards
 * (lib/ext4/fixed-metadata.ts), so the reverse map and the allocator agree on what is never free.
 */
async function fixedMetadata(fs: Filesystem): Promise<Claim[]> {
  await fs.loadGroups();
  const tables = [];
  for (let g = 0; g < fs.sb.groupCount; g++) tables.push(await fs.group(g));
  return fixedMetadataExtents(fs.sb, tables).map((e) => ({
    start: e.start,
    end: e.start + e.length,
    // The 1 KiB boot block is reported with the superblock, as GETFSMAP does.
    owner: (e.kind === 'boot' ? 'superblock' : e.kind) as SpecialOwner,
  }));
}

function sameOwner(a: FsmapOwner, b: FsmapOwner): boolean {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  return a.ino === b.ino && a.kind === b.kind && !!a.unwritten === !!b.unwritten;
}

/**
 * Map [start, end) of the filesystem: byte records, ascending, covering the
 * whole range without gaps, adjacent records of the same owner merged.
 */
export async function fsmap(fs: Filesystem, opts: FsmapOptions = {}): Promise<FsmapRecord[]> {
  const bs = fs.blockSize;
  const fsBytes = fs.sb.blocksCount * bs;
  const start = opts.start ?? 0;
  if (!Number.isSafeInteger(start) || start < 0 || start % bs !== 0) throw new Ext4Error('EINVAL', `start ${start} is not a multiple of the block size ${bs}`);
  if (opts.end !== undefined && (!Number.isSafeInteger(opts.end) || opts.end % bs !== 0)) throw new Ext4Error('EINVAL', `end ${opts.end} is not a multiple of the block size ${bs}`);
  if (opts.end !== undefined && opts.end <= start) throw new Ext4Error('EINVAL', `empty range: end ${opts.end} ≤ start ${start}`);
  const end = Math.min(opts.end ?? fsBytes, fsBytes);
  if (start >= end) return [];
  const rmap = opts.reverseMap ?? (await buildReverseMap(fs));
  return fs.exclusive(async () => {
    const sb = fs.sb;
    const b0 = start / bs, b1 = end / bs;
    const fixed = (await fixedMetadata(fs)).filter((c) => c.end > b0 && c.start < b1);
    const jino = sb.s_journal_inum;
    // Inode claims, minus what fixed metadata covers, minus overlaps with earlier claims.
    const claims: Claim[] = [];
    let fi = 0;
    let coveredTo = -1;
    const inodeClaims: Claim[] = [];
    for (const r of rmap.runs) {
      if (r.start + r.length <= b0 || r.start >= b1) continue;
      let s = Math.max(r.start, coveredTo), e = r.start + r.length;
      if (s >= e) continue;
      coveredTo = Math.max(coveredTo, e);
      const owner: FsmapOwner = jino && r.ino === jino ? 'journal' : { ino: r.ino, kind: r.kind, ...(r.unwritten ? { unwritten: true } : {}) };
      // subtract fixed intervals
      while (fi < fixed.length && fixed[fi]!.end <= s) fi++;
      for (let k = fi; k < fixed.length && s < e; k++) {
        const f = fixed[k]!;
        if (f.start >= e) break;
        if (f.start > s) inodeClaims.push({ start: s, end: Math.min(f.start, e), owner });
        s = Math.max(s, f.end);
      }
      if (s < e) inodeClaims.push({ start: s, end: e, owner });
    }
    // merge the two sorted, disjoint lists
    for (let i = 0, j = 0; i < fixed.length || j < inodeClaims.length; ) {
      const a = fixed[i], b = inodeClaims[j];
      if (b === undefined || (a !== undefined && a.start <= b.start)) {
        claims.push(a!);
        i++;
      } else {
        claims.push(b);
        j++;
      }
    }
    // free runs from the bitmaps
    const free: { start: number; end: number }[] = [];
    await scanFreeRuns(fs, b0, b1, (s, l) => {
      free.push({ start: s, end: s + l });
    });
    const out: FsmapRecord[] = [];
    const emit = (s: number, e: number, owner: FsmapOwner) => {
      s = Math.max(s, b0);
      e = Math.min(e, b1);
      if (e <= s) return;
      const last = out[out.length - 1];
      if (last && last.start + last.len === s * bs && sameOwner(last.owner, owner)) last.len += (e - s) * bs;
      else out.push({ start: s * bs, len: (e - s) * bs, owner });
    };
    const ratio = clusterRatio(sb);
    /** The claim emitted last (null after free or unknown space). */
    let prevClaim: Claim | null = null;
    /** Used-but-unclaimed [s, e) before `next` (the claim starting at e, if any): cluster slack goes to its claim. */
    const emitUnclaimed = (s: number, e: number, next: Claim | undefined) => {
      if (ratio > 1 && prevClaim && prevClaim.end === s && clusterFirstBlock(sb, s) !== s) {
        const h = Math.min(e, clusterFirstBlock(sb, s) + ratio);
        emit(s, h, prevClaim.owner);
        s = h;
      }
      let t = e;
      if (ratio > 1 && next && next.start === e && clusterFirstBlock(sb, e) !== e) t = Math.max(s, clusterFirstBlock(sb, e));
      emit(s, t, 'unknown');
      if (next && t < e) emit(t, e, next.owner);
    };
    let cur = b0;
    let ci = 0, fj = 0;
    let prevEnd = -1;
    while (cur < b1) {
      while (ci < claims.length && claims[ci]!.end <= cur) ci++;
      while (fj < free.length && free[fj]!.end <= cur) fj++;
      const c = claims[ci], f = free[fj];
      if (c && c.start <= cur) {
        // fixed claims may overlap each other on odd geometries: the first one wins
        emit(cur, c.end, c.owner);
        cur = c.end;
        prevClaim = c;
      } else {
        const nextClaim = c ? c.start : b1;
        if (f && f.start <= cur) {
          const e = Math.min(f.end, nextClaim);
          emit(cur, e, 'free');
          cur = e;
        } else {
          const e = Math.min(nextClaim, f ? f.start : b1, b1);
          emitUnclaimed(cur, e, c);
          cur = e;
        }
        prevClaim = null;
      }
      if (cur <= prevEnd) throw new Error('fsmap sweep made no progress');
      prevEnd = cur;
    }
    return out;
  });
}

/** A printable name for an owner ("free", "inode 12 data (unwritten)", …). */
export function ownerName(o: FsmapOwner): string {
  if (typeof o === 'string') return o;
  return `inode ${o.ino} ${o.kind.replace('_', ' ')}${o.unwritten ? ' (unwritten)' : ''}`;
}

// ---------------------------------------------------------------------------- audit

export interface SpaceAudit {
  /** Blocks marked used in the bitmap that no inode and no fixed metadata owns (leaked). */
  leaked: { start: number; length: number }[];
  /** Blocks claimed by more than one owner (two inodes, or an inode and fixed metadata). */
  multiplyOwned: { start: number; length: number; owners: string[] }[];
  /** Blocks an inode (or fixed metadata) claims while the bitmap says they are free. */
  ownedButFree: { start: number; length: number; owner: string }[];
  /** Inodes whose block map could not be read. */
  unreadable: { ino: number; error: Error }[];
}

/**
 * Cross-check every owner claim against the others and against the block
 * bitmaps (in blocks): the space bookkeeping e2fsck's pass 1 and 5 verify,
 * computed from one reverse-map scan. Empty lists = consistent.
 */
export async function auditSpace(fs: Filesystem, reverseMap?: ReverseMap): Promise<SpaceAudit> {
  const rmap = reverseMap ?? (await buildReverseMap(fs));
  return fs.exclusive(async () => {
    const sb = fs.sb;
    const fixed = await fixedMetadata(fs);
    const jino = sb.s_journal_inum;
    const claims: { start: number; end: number; name: string }[] = [
      ...fixed.map((c) => ({ start: c.start, end: c.end, name: ownerName(c.owner) })),
      ...rmap.runs
        // the resize inode's indirect block(s) only; its other blocks are the reserved GDT itself
        .map((r) => ({ start: r.start, end: r.start + r.length, name: jino && r.ino === jino ? 'journal' : `inode ${r.ino} ${r.kind}` })),
    ].sort((a, b) => a.start - b.start || a.end - b.end);
    const out: SpaceAudit = { leaked: [], multiplyOwned: [], ownedButFree: [], unreadable: rmap.errors };
    // overlaps between claims
    let reachEnd = -1, reachName = '';
    for (const c of claims) {
      if (c.start < reachEnd) out.multiplyOwned.push({ start: c.start, length: Math.min(reachEnd, c.end) - c.start, owners: [reachName, c.name].sort() });
      if (c.end > reachEnd) {
        reachEnd = c.end;
        reachName = c.name;
      }
    }
    // claims vs the bitmap (blocks before s_first_data_block are outside the bitmaps)
    const free: { start: number; end: number }[] = [];
    await scanFreeRuns(fs, 0, sb.blocksCount, (s, l) => {
      free.push({ start: s, end: s + l });
    });
    let fi = 0;
    for (const c of claims) {
      while (fi < free.length && free[fi]!.end <= c.start) fi++;
      for (let k = fi; k < free.length && free[k]!.start < c.end; k++) {
        const s = Math.max(c.start, free[k]!.start), e = Math.min(c.end, free[k]!.end);
        if (s < e) out.ownedButFree.push({ start: s, length: e - s, owner: c.name });
      }
    }
    // used in the bitmap, claimed by nobody (bigalloc: a claim holds its whole clusters)
    const ratio = clusterRatio(sb);
    const merged: { start: number; end: number }[] = [];
    for (const c of claims) {
      const cs = clusterFirstBlock(sb, c.start);
      const ce = Math.min(sb.blocksCount, c.end > c.start ? clusterFirstBlock(sb, c.end - 1) + ratio : c.end);
      const l = merged[merged.length - 1];
      if (l && cs <= l.end) l.end = Math.max(l.end, ce);
      else merged.push({ start: cs, end: ce });
    }
    let pos = sb.s_first_data_block, ci = 0, fj = 0;
    while (pos < sb.blocksCount) {
      while (ci < merged.length && merged[ci]!.end <= pos) ci++;
      while (fj < free.length && free[fj]!.end <= pos) fj++;
      const c = merged[ci], f = free[fj];
      if (c && c.start <= pos) pos = c.end;
      else if (f && f.start <= pos) pos = Math.min(f.end, c ? c.start : Infinity);
      else {
        const e = Math.min(c ? c.start : sb.blocksCount, f ? f.start : sb.blocksCount);
        out.leaked.push({ start: pos, length: e - pos });
        pos = e;
      }
    }
    return out;
  });
}
