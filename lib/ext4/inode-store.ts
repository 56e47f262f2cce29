/**
 * Inodes of a volume: where inode n lives in its group's inode table, reading and validating
 * it, and the per-inode checksum seed (extent, directory and xattr blocks are checksummed with it).
 * `readInodeBatch` reads many inodes at once: the table blocks they live in, coalesced into a few
 * large reads (the inodes of one directory are usually neighbours in one table), instead of one
 * cached block read per inode.
 */
import { Ext4Error } from '../errors.js';
import { inodeSeed } from './checksum.js';
import { groupOfInode, inodeTableBlocks } from './geometry.js';
import type { GroupDesc } from './group-desc.js';
import { inodeSummary, parseInode, type Inode, type InodeSummary } from './inode.js';
import { answeredSummary, summarizeInodes } from './inode-summary-wasm.js';
import type { Superblock } from './superblock.js';
import type { FsContext } from './fs-context.js';
import type { Volume } from './volume.js';

/** Where inode `ino` lives given its group's descriptor (the caller checked 1 ≤ ino ≤ s_inodes_count). */
function locate(sb: Readonly<Superblock>, gd: GroupDesc, ino: number, bs: number): { block: number; offset: number } {
  return { block: locateBlock(sb, gd, ino, bs), offset: tableByte(sb, ino) % bs };
}

/** The table block of inode `ino` (locate without an object: readInodeBatch calls it per inode). */
function locateBlock(sb: Readonly<Superblock>, gd: GroupDesc, ino: number, bs: number): number {
  const block = gd.inodeTable + Math.floor(tableByte(sb, ino) / bs);
  if (block >= gd.inodeTable + inodeTableBlocks(sb)) throw new Ext4Error('EFSCORRUPTED', `inode ${ino} outside its table`);
  return block;
}

/** Byte offset of inode `ino`'s slot in its group's inode table. */
function tableByte(sb: Readonly<Superblock>, ino: number): number {
  return ((ino - 1) % sb.s_inodes_per_group) * sb.s_inode_size;
}

function checkIno(sb: Readonly<Superblock>, ino: number): void {
  if (!Number.isInteger(ino) || ino < 1 || ino > sb.s_inodes_count) throw new Ext4Error('EINVAL', `inode ${ino} does not exist (inodes count ${sb.s_inodes_count})`);
}

export class InodeStore {
  constructor(private readonly vol: Volume) {}

  /** Where inode `ino` lives: block and byte offset within it. */
  async inodeLocation(ino: number): Promise<{ block: number; offset: number }> {
    const sb = this.vol.sb;
    checkIno(sb, ino);
    return locate(sb, await this.vol.group(groupOfInode(sb, ino)), ino, this.vol.blockSize);
  }

  async readInode(ino: number): Promise<Inode> {
    const { block, offset } = await this.inodeLocation(ino);
    const data = await this.vol.readBlock(block);
    const sb = this.vol.sb;
    return parseInode(sb, ino, data.subarray(offset, offset + sb.s_inode_size), { fsSeed: this.vol.fsSeed, verifyChecksum: this.vol.verify });
  }

  /** Seed of per-inode checksums (extent, directory blocks), or null without metadata_csum. */
  inodeCsumSeed(inode: Inode): number | null {
    return this.vol.sb.hasMetadataCsum ? inodeSeed(this.vol.fsSeed, inode.ino, inode.generation) : null;
  }
}

/** What a batch read needs (Filesystem provides it). */
export type InodeBatchSource = Pick<FsContext, 'sb' | 'blockSize' | 'fsSeed' | 'verify' | 'group' | 'readDataBlocks'> & Partial<Pick<FsContext, 'readDataBlocksInto'>>;

export interface InodeBatchOptions {
  /** Largest single read in bytes (default 4 MiB). */
  readBytes?: number;
  /** Unwanted table blocks a read may span to join two runs (default 16: a syscall costs more than 64 KiB). */
  gapBlocks?: number;
  /**
   * Where to read the runs when they fit (with a source that has readDataBlocksInto), instead of
   * new buffers: the caller is done with every batch read into it before. A listing reads a large
   * directory's inodes a batch at a time into one buffer (fresh memory costs page faults).
   */
  scratch?: Uint8Array;
}

/** Inodes read by readInodeBatch, parsed when asked for (so they can die young). */
export interface InodeBatch {
  readonly length: number;
  /** Inode `inos[i]`, or the error `readInode` would have thrown for it. */
  get(i: number): Inode;
  /**
   * The listing fields of inode `inos[i]` (inodeSummary: the same checks as `get`, the same
   * errors, read in place, no Inode object), written into `into` when given (no object at all).
   */
  summary(i: number, into?: InodeSummary): InodeSummary;
}

/**
 * Read inodes `inos`: the table blocks they live in, in coalesced runs (sorted by block, joined
 * across small gaps, at most `readBytes` each). Each inode is parsed and verified only when `get`
 * (or `summary`) asks for it, so a caller walking the list in its own order fails exactly where
 * one-by-one reads would, and keeps only the inodes it wants. Holds the runs' bytes until dropped.
 * Per inode it keeps two numbers (its run and its byte offset there): no object per inode.
 */
export async function readInodeBatch(src: InodeBatchSource, inos: readonly number[], opts: InodeBatchOptions = {}): Promise<InodeBatch> {
  const sb = src.sb;
  const bs = src.blockSize;
  const n = inos.length;
  const errors = new Map<number, Error>();
  /** Table block of inode i (-1: failed before a read, see errors). */
  const block = new Float64Array(n);
  const groups = new Map<number, GroupDesc | Error>();
  // Per inode: its group (a division), its table block (one more); the descriptor is looked up
  // again only when the group changes (a directory's inodes mostly share one). An inode that
  // fails any check goes through checkIno/locateBlock, which throw the errors readInode would.
  const ipg = sb.s_inodes_per_group;
  const isz = sb.s_inode_size;
  const tableBlocks = inodeTableBlocks(sb);
  let curGroup = -1;
  let curTable = -1; // the current group's inode table, or -1 if its descriptor failed
  for (let i = 0; i < n; i++) {
    const ino = inos[i]!;
    if (ino >= 1 && ino <= sb.s_inodes_count && Number.isInteger(ino)) {
      const g = Math.floor((ino - 1) / ipg);
      if (g !== curGroup) {
        let gd = groups.get(g);
        if (gd === undefined) {
          try {
            gd = await src.group(g);
          } catch (e) {
            gd = asError(e);
          }
          groups.set(g, gd);
        }
        curGroup = g;
        curTable = gd instanceof Error ? -1 : gd.inodeTable;
      }
      const rel = Math.floor((((ino - 1) % ipg) * isz) / bs);
      if (curTable >= 0 && rel < tableBlocks) {
        block[i] = curTable + rel;
        continue;
      }
    }
    try {
      checkIno(sb, ino);
      const gd = groups.get(groupOfInode(sb, ino))!;
      if (gd instanceof Error) throw gd;
      block[i] = locateBlock(sb, gd, ino, bs);
    } catch (e) {
      errors.set(i, asError(e));
      block[i] = -1;
    }
  }
  // The distinct blocks, ascending (a numeric typed-array sort), cut into runs.
  const sorted = block.slice().sort();
  const maxBlocks = Math.max(1, Math.floor((opts.readBytes ?? 4 << 20) / bs));
  const gap = opts.gapBlocks ?? 16;
  const runFirst: number[] = [];
  const runCount: number[] = [];
  let s = 0;
  while (s < n && sorted[s]! < 0) s++;
  while (s < n) {
    const first = sorted[s]!;
    let last = first;
    let e = s + 1;
    while (e < n && sorted[e]! - last <= gap && sorted[e]! - first < maxBlocks) last = sorted[e++]!;
    runFirst.push(first);
    runCount.push(last - first + 1);
    s = e;
  }
  let total = 0;
  for (const c of runCount) total += c * bs;
  const scratch = opts.scratch !== undefined && opts.scratch.length >= total && src.readDataBlocksInto ? opts.scratch : null;
  const runBytes: (Uint8Array | Error)[] = [];
  for (let r = 0, at = 0; r < runFirst.length; r++) {
    const len = runCount[r]! * bs;
    let bytes: Uint8Array | Error;
    try {
      if (scratch) {
        bytes = scratch.subarray(at, at + len);
        await src.readDataBlocksInto!(runFirst[r]!, runCount[r]!, bytes);
      } else bytes = await src.readDataBlocks(runFirst[r]!, runCount[r]!);
    } catch (err) {
      bytes = asError(err);
    }
    runBytes.push(bytes);
    at += len;
  }
  // Each inode's run and byte offset there, found once in one pass (a listing asks per inode).
  const run = new Int32Array(n);
  const slot = new Float64Array(n);
  let last = 0; // the run of the previous inode: neighbours in a directory mostly share it
  for (let i = 0; i < n; i++) {
    const b = block[i]!;
    if (b < 0) {
      run[i] = -1;
      continue;
    }
    // The run holding table block b (runs are ascending and every located block is in one).
    let lo = 0;
    if (runFirst[last]! <= b && (last + 1 === runFirst.length || runFirst[last + 1]! > b)) lo = last;
    else {
      let hi = runFirst.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >>> 1;
        if (runFirst[mid]! <= b) lo = mid;
        else hi = mid - 1;
      }
      last = lo;
    }
    run[i] = lo;
    slot[i] = (b - runFirst[lo]!) * bs + ((((inos[i]! - 1) % ipg) * isz) % bs);
  }
  const parseOpts = { fsSeed: src.fsSeed, verifyChecksum: src.verify };
  /** summary()'s answers for the whole batch (inode-summary-wasm.ts), made at its first call; null: none. */
  let fast: Int32Array | null | undefined;
  /** The run bytes holding inode i (throwing its error, if any); its offset there is slot[i]. */
  const runBytesOf = (i: number): Uint8Array => {
    if (!(i >= 0 && i < n)) throw new Ext4Error('EINVAL', `inode batch: no slot ${i}`);
    const r = run[i]!;
    if (r < 0) throw errors.get(i)!;
    const bytes = runBytes[r]!;
    if (bytes instanceof Error) throw bytes;
    return bytes;
  };
  return {
    length: n,
    get(i: number): Inode {
      const bytes = runBytesOf(i);
      const off = slot[i]!;
      return parseInode(sb, inos[i]!, bytes.subarray(off, off + sb.s_inode_size), parseOpts);
    },
    summary(i: number, into?: InodeSummary): InodeSummary {
      // The whole batch's checks and fields in one wasm call at the first ask (inode-summary-wasm.ts);
      // what it leaves (done ≠ 0) inodeSummary decides, with its errors.
      if (fast === undefined) fast = summarizeInodes(runBytes.map((b) => (b instanceof Error ? null : b)), run, slot, inos, src.fsSeed, sb.s_inode_size, src.verify && sb.hasMetadataCsum);
      return answeredSummary(fast, i, into) ?? inodeSummary(sb, inos[i]!, runBytesOf(i), slot[i]!, parseOpts, into);
    },
  };
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
