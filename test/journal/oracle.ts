/**
 * The comparison at the heart of the journal tests: replay one image with
 * `e2fsck -p -E journal_only` and a copy with ext4kit's replayJournal, then
 * compare the two images byte for byte.
 */
import { join } from 'node:path';
import { replayJournal, type ReplaySummary } from '../../lib/ext4/journal-replay.js';
import { recoverJournal, type RecoveryResult } from '../../lib/jbd2/recovery.js';
import { copy, readSb, diffImages, e2fsckJournalOnly, ImageFile, sbFieldRange, summarize, withoutRanges, type ByteDiff } from './helpers.js';

/** Superblock fields e2fsck and ext4kit legitimately set differently: the write time and, with it, the checksum. */
export const ALWAYS_DIFFERENT = ['s_wtime', 's_wtime_hi', 's_checksum'];

export interface Comparison {
  e2fsck: { status: number; out: string };
  ours: ReplaySummary;
  recovery: RecoveryResult;
  /** Differences outside ALWAYS_DIFFERENT (and outside `alsoIgnore`). */
  diffs: ByteDiff[];
  /** Human-readable summary of `diffs`. */
  report: string;
  /** Path of the e2fsck-replayed copy and of ours. */
  theirs: string;
  mine: string;
  /**
   * When blocks repeat in the log (and only then) s_kbytes_written is compared by range instead of
   * byte for byte: increments (KiB) of e2fsck and ours, and the bounds e2fsck's must lie in.
   */
  kbytes: { theirs: number; ours: number; min: number; max: number } | null;
}

/** Assertion helper: e2fsck's s_kbytes_written increment is within the bounds (or the comparison was exact). */
export function kbytesWithinBounds(c: Comparison): boolean {
  if (!c.kbytes) return true;
  const k = c.kbytes;
  return k.ours === k.min && (k.theirs === 0 || (k.theirs >= k.min && k.theirs <= k.max));
}

export async function compareReplay(img: string, dir: string, alsoIgnore: string[] = []): Promise<Comparison> {
  const theirs = join(dir, 'e2fsck.img');
  const mine = join(dir, 'ours.img');
  copy(img, theirs);
  copy(img, mine);
  const e2fsck = e2fsckJournalOnly(theirs);
  const f = new ImageFile(mine);
  let ours: ReplaySummary;
  let recovery: RecoveryResult;
  try {
    recovery = await recoverJournal(f.journalAccess());
    ours = await replayJournal(f.replayTarget());
  } finally {
    f.close();
  }
  const all = diffImages(theirs, mine, f.bs);
  const ignore = [...ALWAYS_DIFFERENT, ...alsoIgnore];
  // s_kbytes_written: e2fsck adds its I/O channel's physical writes (jsb + replayed blocks as they leave its
  // 8-block write-back cache, which merges some repeats of a block). Identical when no block repeats in the
  // log; otherwise e2fsck's increment must lie between ours (distinct blocks + 1) and replayBlocks + 1.
  let kbytes: Comparison['kbytes'] = null;
  if (recovery.replayBlocks > recovery.blocks.size) {
    const base = readSb(img).s_kbytes_written;
    const k = { theirs: readSb(theirs).s_kbytes_written - base, ours: readSb(mine).s_kbytes_written - base };
    const kb = f.bs / 1024;
    kbytes = { ...k, min: (recovery.blocks.size + 1) * kb, max: (recovery.replayBlocks + 1) * kb };
    ignore.push('s_kbytes_written');
  }
  const diffs = withoutRanges(all, ignore.map(sbFieldRange));
  return { e2fsck, ours, recovery, diffs, report: summarize(diffs), theirs, mine, kbytes };
}
