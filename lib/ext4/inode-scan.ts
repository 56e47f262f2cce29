/**
 * One scan over the inode tables, shared by the reverse map (fsmap) and check: group by group,
 * skipping what the kernel and e2fsck never look at, reading each table in large runs instead of
 * block by block.
 *
 * - INODE_UNINIT groups are skipped (only when group checksums make the flag trustworthy, as
 *   ext4_group_desc_csum_verify / e2fsck do), and so are the slots past bg_itable_unused.
 * - `which: 'marked'` yields the slots set in the inode bitmap, and reads the table only up to the
 *   last set bit (a group with every inode free is not read at all): what owns blocks.
 * - `which: 'all'` yields every slot e2fsck pass 1 scans, set or not (check compares the
 *   bitmap with the inodes), with `marked` null when the bitmap could not be read.
 * A slot whose checksum does not match is still parsed (without verification) and yielded with
 * the EFSBADCRC error, so a checker can report it and go on; with onReadError 'per-inode' a run
 * that cannot be read is retried block by block, so one bad block costs only its own inodes.
 */
import { Ext4Error, isExt4Error } from '../errors.js';
import { testBit } from './bitmap.js';
import { inodeTableBlocks } from './geometry.js';
import { BG_FLAGS, uninitFlagsHonoured, type GroupDesc } from './group-desc.js';
import { parseInode, type Inode } from './inode.js';
import type { Superblock } from './superblock.js';

/** What the scan reads (Filesystem provides it). */
export interface InodeScanSource {
  readonly sb: Readonly<Superblock>;
  readonly blockSize: number;
  readonly fsSeed: number;
  readonly verify: boolean;
  loadGroups(): Promise<void>;
  group(g: number): Promise<GroupDesc>;
  inodeBitmap(g: number): Promise<Uint8Array>;
  /** Blocks [n, n+count) as the filesystem currently sees them (one direct read). */
  readDataBlocks(n: number, count: number): Promise<Uint8Array>;
}

export interface InodeScanOptions {
  which: 'marked' | 'all';
  /** Largest single table read in bytes (default 8 MiB). */
  readBytes?: number;
  /** Counters, filled as the scan goes. */
  stats?: InodeScanStats;
  /**
   * A table run that cannot be read: 'throw' (the default) ends the scan with the error;
   * 'per-inode' retries block by block and yields each unreadable slot with its error.
   */
  onReadError?: 'throw' | 'per-inode';
}

export interface InodeScanStats {
  /** Groups whose inode table was not read at all (INODE_UNINIT, nothing in use, unreadable descriptor). */
  groupsSkipped: number;
  /** Bytes of inode table read, and the reads that took. */
  tableBytes: number;
  tableReads: number;
}

/** The start of a group: its descriptor and bitmap, or why they could not be read. */
export interface ScannedGroup {
  kind: 'group';
  group: number;
  desc: GroupDesc | null;
  descError: unknown;
  bitmap: Uint8Array | null;
  bitmapError: unknown;
  /** Why the table is not read: 'inode-uninit', 'unused' (no slot to visit) or 'no-descriptor'; null when it is. */
  skipped: 'inode-uninit' | 'unused' | 'no-descriptor' | null;
}

export interface ScannedInode {
  kind: 'inode';
  ino: number;
  group: number;
  /** The slot's bit in the inode bitmap; null when the bitmap could not be read. */
  marked: boolean | null;
  /** Parsed; with a checksum mismatch parsed without verification (and `error` is the EFSBADCRC). */
  inode: Inode | null;
  /** Why the slot could not be read or parsed (inode null), or its checksum mismatch (inode set). */
  error: Ext4Error | null;
}

export async function* scanInodeTables(src: InodeScanSource, opts: InodeScanOptions): AsyncGenerator<ScannedGroup | ScannedInode> {
  const sb = src.sb;
  const bs = src.blockSize;
  const isz = sb.s_inode_size;
  const ipg = sb.s_inodes_per_group;
  const honoured = uninitFlagsHonoured(sb);
  const tableBlocks = inodeTableBlocks(sb);
  const maxRead = Math.max(bs, Math.floor((opts.readBytes ?? 8 * 1024 * 1024) / bs) * bs);
  const stats = opts.stats ?? { groupsSkipped: 0, tableBytes: 0, tableReads: 0 };
  const skip = (item: ScannedGroup, why: NonNullable<ScannedGroup['skipped']>): ScannedGroup => {
    stats.groupsSkipped++;
    item.skipped = why;
    return item;
  };

  try {
    await src.loadGroups();
  } catch {
    // each group's own read below reports its descriptor
  }
  for (let g = 0; g < sb.groupCount; g++) {
    const item: ScannedGroup = { kind: 'group', group: g, desc: null, descError: null, bitmap: null, bitmapError: null, skipped: null };
    try {
      item.desc = await src.group(g);
    } catch (e) {
      item.descError = e;
      yield skip(item, 'no-descriptor');
      continue;
    }
    const gd = item.desc;
    const readBitmap = async () => {
      try {
        item.bitmap = await src.inodeBitmap(g);
      } catch (e) {
        item.bitmapError = e;
      }
    };
    // 'all' compares every group's bitmap (even an uninitialised group's); 'marked' reads it only
    // for a group with inodes in use.
    if (opts.which === 'all') await readBitmap();
    if (honoured && gd.flags & BG_FLAGS.INODE_UNINIT) {
      yield skip(item, 'inode-uninit');
      continue;
    }
    // Slots past bg_itable_unused were never handed out (only meaningful with group checksums).
    let slots = honoured ? Math.max(0, ipg - gd.itableUnused) : ipg;
    if (opts.which === 'marked') {
      if (gd.freeInodes === ipg) slots = 0;
      if (slots > 0) await readBitmap();
      const marks = item.bitmap;
      if (!marks) slots = 0;
      else while (slots > 0 && !testBit(marks, slots - 1)) slots--;
    }
    const bm = item.bitmap;
    if (slots === 0) {
      yield skip(item, 'unused');
      continue;
    }
    yield item;
    const tableBytes = Math.ceil((slots * isz) / bs) * bs;
    if (tableBytes > tableBlocks * bs) throw new Ext4Error('EFSCORRUPTED', `inode table slots ${slots} exceed the table`, { structure: 'group descriptor', location: { kind: 'group', group: g } });
    for (let off = 0; off < tableBytes; off += maxRead) {
      const len = Math.min(maxRead, tableBytes - off);
      const run = await readRun(src, gd.inodeTable + off / bs, len / bs, stats, opts.onReadError ?? 'throw');
      const first = off / isz, last = Math.min(slots, (off + len) / isz);
      for (let i = first; i < last; i++) {
        const marked = bm ? testBit(bm, i) : null;
        if (opts.which === 'marked' && !marked) continue;
        const ino = g * ipg + i + 1;
        const at = i * isz - off;
        const block = run[Math.floor(at / bs)]!;
        if (block instanceof Ext4Error) {
          yield { kind: 'inode', ino, group: g, marked, inode: null, error: block };
          continue;
        }
        const slot = block.subarray(at % bs, (at % bs) + isz);
        yield { kind: 'inode', ino, group: g, marked, ...parseLenient(src, ino, slot) };
      }
    }
  }
}

/** The blocks of one table run, each a view of its bytes or the error that kept it from being read. */
async function readRun(src: InodeScanSource, n: number, count: number, stats: InodeScanStats, onError: 'throw' | 'per-inode'): Promise<(Uint8Array | Ext4Error)[]> {
  const bs = src.blockSize;
  const split = (bytes: Uint8Array, k: number) => Array.from({ length: k }, (_, j) => bytes.subarray(j * bs, (j + 1) * bs));
  try {
    const bytes = await src.readDataBlocks(n, count);
    stats.tableReads++;
    stats.tableBytes += count * bs;
    return split(bytes, count);
  } catch (e) {
    if (onError === 'throw' || !isExt4Error(e)) throw e;
  }
  const out: (Uint8Array | Ext4Error)[] = [];
  for (let j = 0; j < count; j++) {
    try {
      out.push((await src.readDataBlocks(n + j, 1)).subarray(0, bs));
      stats.tableReads++;
      stats.tableBytes += bs;
    } catch (e) {
      if (!isExt4Error(e)) throw e;
      out.push(e);
    }
  }
  return out;
}

function parseLenient(src: InodeScanSource, ino: number, slot: Uint8Array): { inode: Inode | null; error: Ext4Error | null } {
  try {
    return { inode: parseInode(src.sb as Superblock, ino, slot, { fsSeed: src.fsSeed, verifyChecksum: src.verify }), error: null };
  } catch (e) {
    if (!isExt4Error(e)) throw e;
    if (e.code !== 'EFSBADCRC') return { inode: null, error: e };
    try {
      return { inode: parseInode(src.sb as Superblock, ino, slot, { fsSeed: src.fsSeed, verifyChecksum: false }), error: e };
    } catch (e2) {
      if (!isExt4Error(e2)) throw e2;
      return { inode: null, error: e2 };
    }
  }
}
