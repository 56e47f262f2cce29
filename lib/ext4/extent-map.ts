/**
 * Pure operations on a file's logical→physical map as a sorted list of
 * extents: lookup, insert, punch, convert unwritten→written, merge. The tree
 * writer (extent-tree.ts) turns the resulting list back into on-disk nodes.
 * All functions return new arrays and never mutate their inputs.
 */
import { Ext4Error } from '../errors.js';
import { EXT_INIT_MAX_LEN, EXT_UNWRITTEN_MAX_LEN, type Extent } from './extents.js';

export interface Run {
  start: number;
  length: number;
}

export function maxLen(unwritten: boolean): number {
  return unwritten ? EXT_UNWRITTEN_MAX_LEN : EXT_INIT_MAX_LEN;
}

/** Merge logically+physically adjacent extents of the same state (within length limits). */
export function mergeAdjacent(list: readonly Extent[]): Extent[] {
  const out: Extent[] = [];
  for (const e of list) {
    const last = out[out.length - 1];
    if (
      last &&
      last.unwritten === e.unwritten &&
      last.logical + last.length === e.logical &&
      last.physical + last.length === e.physical &&
      last.length + e.length <= maxLen(e.unwritten)
    ) {
      last.length += e.length;
    } else out.push({ ...e });
  }
  return out;
}

/** Split extents longer than the on-disk limit (32768 written / 32767 unwritten). */
export function splitLong(list: readonly Extent[]): Extent[] {
  const out: Extent[] = [];
  for (const e of list) {
    const m = maxLen(e.unwritten);
    for (let off = 0; off < e.length; off += m) out.push({ logical: e.logical + off, physical: e.physical + off, length: Math.min(m, e.length - off), unwritten: e.unwritten });
  }
  return out;
}

/** Normalise: sort-check, split over-long, merge adjacent. Throws on overlap. */
export function normalise(list: readonly Extent[]): Extent[] {
  for (let i = 1; i < list.length; i++) {
    const a = list[i - 1]!, b = list[i]!;
    if (a.logical + a.length > b.logical) throw new Ext4Error('EINVAL', `extents overlap at logical ${b.logical}`);
  }
  return splitLong(mergeAdjacent(splitLong(list)));
}

/** The parts of [lb, lb+len) that are mapped, clipped, in order. */
export function mappedIn(list: readonly Extent[], lb: number, len: number): Extent[] {
  const out: Extent[] = [];
  const end = lb + len;
  // (indexed: the planner and the executor call this per step, in a fresh process interpreted,
  // where for-of allocates an iterator result per element)
  for (let i = 0; i < list.length; i++) {
    const e = list[i]!;
    if (e.logical >= end) break;
    const s = Math.max(lb, e.logical), t = Math.min(end, e.logical + e.length);
    if (s < t) out.push({ logical: s, physical: e.physical + (s - e.logical), length: t - s, unwritten: e.unwritten });
  }
  return out;
}

/**
 * Remove the mapping of [lb, lb+len). Returns the new list and the physical
 * runs that were unmapped (to be freed by the caller), with their state.
 */
export function punch(list: readonly Extent[], lb: number, len: number): { list: Extent[]; removed: Extent[] } {
  const end = lb + len;
  const out: Extent[] = [];
  const removed: Extent[] = [];
  for (const e of list) {
    const eEnd = e.logical + e.length;
    if (eEnd <= lb || e.logical >= end) {
      out.push({ ...e });
      continue;
    }
    if (e.logical < lb) out.push({ ...e, length: lb - e.logical });
    const s = Math.max(lb, e.logical), t = Math.min(end, eEnd);
    removed.push({ logical: s, physical: e.physical + (s - e.logical), length: t - s, unwritten: e.unwritten });
    if (eEnd > end) out.push({ logical: end, physical: e.physical + (end - e.logical), length: eEnd - end, unwritten: e.unwritten });
  }
  return { list: out, removed };
}

/** Insert extents into holes. Throws EEXIST if any overlaps an existing mapping. */
export function insert(list: readonly Extent[], add: readonly Extent[]): Extent[] {
  const all = [...list.map((e) => ({ ...e })), ...add.map((e) => ({ ...e }))].sort((a, b) => a.logical - b.logical);
  for (let i = 1; i < all.length; i++) {
    const a = all[i - 1]!, b = all[i]!;
    if (a.logical + a.length > b.logical) throw new Ext4Error('EEXIST', `logical block ${b.logical} is already mapped`);
  }
  return normalise(all);
}

/** Mark [lb, lb+len) as written wherever it is mapped unwritten (splitting extents as needed). */
export function markWritten(list: readonly Extent[], lb: number, len: number): Extent[] {
  const end = lb + len;
  const out: Extent[] = [];
  for (const e of list) {
    const eEnd = e.logical + e.length;
    if (!e.unwritten || eEnd <= lb || e.logical >= end) {
      out.push({ ...e });
      continue;
    }
    const s = Math.max(lb, e.logical), t = Math.min(end, eEnd);
    if (e.logical < s) out.push({ ...e, length: s - e.logical });
    out.push({ logical: s, physical: e.physical + (s - e.logical), length: t - s, unwritten: false });
    if (eEnd > t) out.push({ logical: t, physical: e.physical + (t - e.logical), length: eEnd - t, unwritten: true });
  }
  return normalise(out);
}

/** Number of blocks mapped (written + unwritten). */
export function mappedBlocks(list: readonly Extent[]): number {
  let n = 0;
  // (indexed loops here and below: a fresh defrag plans in bytecode, where for-of pays an
  // iterator call per element)
  for (let i = 0; i < list.length; i++) n += list[i]!.length;
  return n;
}

/** Group physical runs (sorted, coalesced) from extents, e.g. to free them. */
export function physicalRuns(list: readonly Extent[]): Run[] {
  const runs = list.map((e) => ({ start: e.physical, length: e.length })).sort((a, b) => a.start - b.start);
  const out: Run[] = [];
  for (let i = 0; i < runs.length; i++) {
    const r = runs[i]!;
    const last = out[out.length - 1];
    if (last && last.start + last.length === r.start) last.length += r.length;
    else out.push({ ...r });
  }
  return out;
}

/**
 * Fragment count as filefrag counts it: an extent starts a new fragment
 * unless it continues the previous one physically (ext4-format / semantics §11).
 */
export function fragmentCount(list: readonly Extent[]): number {
  let n = 0;
  let prev: Extent | null = null;
  for (let i = 0; i < list.length; i++) {
    const e = list[i]!;
    if (!prev) n++;
    else {
      const expectA = prev.physical + (e.logical - prev.logical);
      const expectB = prev.physical + prev.length;
      if (e.logical !== 0 && e.physical !== expectA && e.physical !== expectB) n++;
    }
    prev = e;
  }
  return n;
}
