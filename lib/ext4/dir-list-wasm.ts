/**
 * A plain directory's listing prepared by WebAssembly, for `ls --json`'s fast script (an htree's
 * too: its dx root and node blocks passed over as readEntryTable passes them): its blocks
 * scanned (readEntryTable's checks), its entries sorted by name bytes, the table blocks of their
 * inodes located and coalesced into runs, and the inodes' listing fields turned into row records,
 * a batch at a time, all in one memory the row writer (lib/cli/commands/ls-json-wasm.ts) shares.
 * A fresh process lists 10,000 entries before V8 optimises the JS that does this (each entry a
 * few dozen calls through inline caches, its name a string for the sort); the module runs as
 * machine code from instantiation (Liftoff). The JS here only reads blocks and descriptors.
 *
 * It answers only what is certain, and only whole directories: a directory whose blocks, entries,
 * descriptors or inodes are anything but plain and valid — inline, encrypted, a bad
 * entry or checksum, a non-ASCII name, a symlink, a device, a subdirectory to descend into, an
 * inode inodeSummary must decide (inode-summary-wasm.ts) — makes list() answer false, and the
 * caller lists the directory as before (inspect.ts walkList), which prints the same rows or
 * throws the error. Nothing here throws for the image's sake.
 *
 * Memory (imported, shared): crc32c's tables at 0 (crc32c-wasm.ts), the parameter words at
 * PARAM, then the row writer's constants from DIR_LIST_RESERVED; each list() lays its arrays out
 * from the heap address it is given.
 *
 * Functions (parameter words P[·] below):
 *   0 crc(seed, ptr, len) → crc32c (crc32c-wasm.ts)
 *   1 scan(blocksAt, nblocks, maxEntries) → live entries (without "." and "..") or -1: walkEntries'
 *     checks on every entry and the checksum tail (of an indexed directory: of the blocks that are
 *     not dx root or node blocks by htree.ts classifyDirBlock, as readEntryTable reads it),
 *     ino/addr/len arrays at P[INO]/P[ADDR]/P[LEN];
 *     P[NAMES] = their name bytes
 *   2 sort(n) → the address of the entries' indexes in name-byte order (stable: a radix sort on
 *     each name's first 8 bytes, then 6 sortRange(lo, hi, a, tmp) on each run of equal keys)
 *   3 cmp(a, b) → <0, 0, >0: names a and b as bytes
 *   4 locate(k0, k1) → runs, or -1, or -2 - g (group g's table is not known: P[GROUPS][g] = -1)
 *     for sorted entries [k0, k1): each inode's table block, the distinct blocks coalesced into
 *     runs as readInodeBatch coalesces them ({first, count} pairs at P[RUNS]; read one after the
 *     other into P[SCRATCH]), each inode's byte offset there at P[SLOT] and its number at P[SINO]
 *   5 prep(k0, k1) → 0 or -1: the summaries at P[SUM] (inode-summary-wasm.ts words) as row
 *     records at P[RECS]: {entry, ino, mode, size, nlink, uid, gid, mtime}
 */
import { crc32cPortable, crc32cTables } from '../codec/crc.js';
import { inodeSeed } from './checksum.js';
import { DIR_LIST_WASM } from './dir-list-wasm-bytes.js';
import type { FileMap } from './file-map.js';
import { inodeTableBlocks } from './geometry.js';
import type { GroupDesc } from './group-desc.js';
import { INODE_FLAGS, type Inode } from './inode.js';
import { SUMMARY_WORDS, inodeSummaryWasmBytes } from './inode-summary-wasm.js';
import { INCOMPAT, type Superblock } from './superblock.js';

/** Where the parameter words are (after crc32c's 8 KiB of tables). */
export const PARAM = 8192;
/** Bytes at the bottom of the memory this module uses: the row writer's constants go after. */
export const DIR_LIST_RESERVED = PARAM + 256;

// Parameter words.
export const P_BS = 0, P_FLAGS = 1, P_INODES = 2, P_SEED = 3, P_IPG = 4, P_ISZ = 5, P_TABLE_BLOCKS = 6, P_GROUPS = 7, P_GROUP_COUNT = 8;
export const P_INO = 9, P_ADDR = 10, P_LEN = 11, P_ORDER = 12, P_BLK = 13, P_SLOT = 14, P_SINO = 15, P_RUNS = 16, P_MAP = 17, P_MAP_CAP = 18;
export const P_SCRATCH = 19, P_SCRATCH_CAP = 20, P_GAP = 21, P_MAX_RUN = 22, P_SUM = 23, P_RECS = 24, P_KEYS = 25, P_TMP = 26, P_NAMES = 27, P_KEYS2 = 28, P_COUNT = 29;
export const F_FILETYPE = 1, F_CSUM = 2, F_FT_DIR_BAILS = 4, F_RECURSIVE = 8, F_INDEXED = 16;

/** Words per row record (ls-json-wasm.ts REC_WORDS). */
export const DIR_LIST_REC_WORDS = 8;

interface Exports {
  crc(seed: number, ptr: number, len: number): number;
  scan(blocksAt: number, nblocks: number, maxEntries: number): number;
  sort(n: number): number;
  cmp(a: number, b: number): number;
  locate(k0: number, k1: number): number;
  prep(k0: number, k1: number): number;
}

/** The module, compiled once per process (null: no WebAssembly, or its check failed). */
let compiled: WebAssembly.Module | null | undefined;

/** What list() reads through (a DiskReader, a Filesystem). */
export interface DirListSource {
  readonly sb: Superblock;
  readonly blockSize: number;
  readonly fsSeed: number;
  readonly verify: boolean;
  fileMap(inode: Inode): Promise<FileMap>;
  group(g: number): Promise<GroupDesc>;
  readDataBlocksInto(n: number, count: number, target: Uint8Array): Promise<void>;
}

/** A batch of rows ready for the row writer: n records at recsAt, names by entry index at addrsAt/lensAt, its bytes to go at outAt. */
export interface DirListBatch {
  n: number;
  recsAt: number;
  addrsAt: number;
  lensAt: number;
  outAt: number;
}

/** Entries whose inodes are read and summarised at once (inspect.ts LIST_BATCH). */
const BATCH = 1024;
/** readInodeBatch's coalescing: gap blocks a run may span, and its largest read. */
const GAP_BLOCKS = 16;
const RUN_BYTES = 4 << 20;
/** Reads of at most this much (the CLI's devices read up to 256 KiB synchronously). */
const READ_BYTES = 256 * 1024;
/** The most table blocks a batch's inodes may span (its map), and the bytes of their runs. */
const MAP_CAP = 1 << 16;
const SCRATCH_CAP = 8 << 20;
/** Larger directories, more groups, wider inode tables, longer listings: left to the JS walk. */
const MAX_DIR_BYTES = 64 << 20;
const MAX_GROUPS = 1 << 20;
const MEMORY_MAX = 1 << 30;

/** One directory lister on a memory shared with the row writer. */
export class DirListWasm {
  private constructor(
    private readonly k: Exports,
    private readonly memory: WebAssembly.Memory,
    private readonly heapAt: number,
  ) {}

  /**
   * A lister on `memory` (which holds crc32c's tables from here on), using it from `heapAt`; null
   * where WebAssembly is missing or forbidden, or the module's crc disagrees with the JS one.
   */
  static create(memory: WebAssembly.Memory, heapAt: number): DirListWasm | null {
    try {
      if (compiled === undefined) compiled = typeof WebAssembly === 'object' && new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? new WebAssembly.Module(wasmBytes(DIR_LIST_WASM)) : null;
      if (compiled === null) return null;
      const inst = new WebAssembly.Instance(compiled, { env: { mem: memory } });
      new Int32Array(memory.buffer, 0, 2048).set(crc32cTables().subarray(0, 2048));
      const k = inst.exports as unknown as Exports;
      // The crc inside, checked against the JS loop (crc.ts's portable one: the wasm one is a module
      // of its own this process need not build) on bytes past the tables.
      const probe = new Uint8Array(memory.buffer, heapAt, 96);
      for (let i = 0; i < probe.length; i++) probe[i] = (i * 167 + 13) & 0xff;
      if (k.crc(0x1234567, heapAt, probe.length) >>> 0 !== crc32cPortable(0x1234567, probe) >>> 0) {
        compiled = null;
        return null;
      }
      return new DirListWasm(k, memory, heapAt);
    } catch {
      compiled = null;
      return null;
    }
  }

  /**
   * List directory `dir`: its entries in name order, a batch at a time — `write` gets each batch's
   * records and where to write its bytes, and answers where they end (-1: it could not); the
   * whole directory's bytes have `outBytes(entries, namesBytes)` bytes from the first batch's
   * outAt on, and stay there until the memory is used again. False when anything is not certain
   * (see above): the caller lists the directory itself, and drops what `write` wrote for it.
   */
  async list(src: DirListSource, dir: Inode, recursive: boolean, outBytes: (entries: number, namesBytes: number) => number, write: (b: DirListBatch) => number): Promise<boolean> {
    try {
      return await this.listOrFail(src, dir, recursive, outBytes, write);
    } catch {
      return false;
    }
  }

  private async listOrFail(src: DirListSource, dir: Inode, recursive: boolean, outBytes: (entries: number, namesBytes: number) => number, write: (b: DirListBatch) => number): Promise<boolean> {
    const sb = src.sb, bs = src.blockSize;
    const ipg = sb.s_inodes_per_group, isz = sb.s_inode_size;
    if (dir.type !== 'dir' || dir.flags & INODE_FLAGS.ENCRYPT) return false;
    if (bs < 1024 || bs >= 65536 || dir.size % bs !== 0 || dir.size > MAX_DIR_BYTES) return false;
    if (sb.groupCount > MAX_GROUPS || ipg * isz >= 2 ** 31 || sb.s_inodes_count >= 2 ** 31 || !(isz >= 128 && isz <= bs)) return false;
    const map = await src.fileMap(dir);
    if (map.kind === 'inline') return false;
    // The blocks readEntryTable reads, in its order: written extents below i_size.
    const nblocks = dir.size / bs;
    const pieces: number[] = [];
    let total = 0;
    for (const e of map.extents) {
      if (e.logical >= nblocks) break;
      if (e.unwritten) continue;
      const n = Math.min(e.length, nblocks - e.logical);
      if (!(e.physical >= 0 && e.physical + n <= sb.blocksCount)) return false;
      pieces.push(e.physical, n);
      total += n;
    }
    const hasFiletype = (sb.s_feature_incompat & INCOMPAT.FILETYPE) !== 0;
    const csum = sb.hasMetadataCsum && src.verify;
    // Layout, part 1: the blocks, the entry arrays (an entry with a name takes ≥ 12 bytes), the
    // groups' tables, a batch's arrays. Grown once here and once after the scan (fresh memory
    // costs page faults, so what is reserved but not needed is never touched).
    const maxEnt = Math.floor((total * bs) / 12) + 1;
    const blocksAt = align(this.heapAt);
    const inoAt = align(blocksAt + total * bs), addrAt = inoAt + 4 * maxEnt, lenAt = addrAt + 4 * maxEnt;
    const orderAt = lenAt + 4 * maxEnt, tmpAt = orderAt + 4 * maxEnt, keysAt = align(tmpAt + 4 * maxEnt), keys2At = keysAt + 8 * maxEnt;
    const countAt = keys2At + 8 * maxEnt, groupsAt = countAt + 8 * 1024;
    const blkAt = align(groupsAt + 4 * sb.groupCount), slotAt = blkAt + 4 * BATCH, sinoAt = slotAt + 4 * BATCH, runsAt = sinoAt + 4 * BATCH;
    const mapAt = runsAt + 8 * BATCH, sumAt = mapAt + 4 * MAP_CAP, recsAt = sumAt + 4 * SUMMARY_WORDS * BATCH;
    const outAt = align(recsAt + 4 * DIR_LIST_REC_WORDS * BATCH);
    this.ensure(outAt);
    const u8 = new Uint8Array(this.memory.buffer);
    const per = Math.max(1, Math.floor(READ_BYTES / bs));
    for (let p = 0, at = blocksAt; p < pieces.length; p += 2) {
      for (let r = 0; r < pieces[p + 1]!; r += per) {
        const count = Math.min(per, pieces[p + 1]! - r);
        await src.readDataBlocksInto(pieces[p]! + r, count, u8.subarray(at, at + count * bs));
        at += count * bs;
      }
    }
    let w = new Int32Array(this.memory.buffer);
    const set = (p: number, v: number) => (w[(PARAM >> 2) + p] = v);
    set(P_BS, bs);
    // An indexed directory's dx root and node blocks are passed over as readEntryTable passes them (the
    // inode's flag alone decides, as there).
    const indexed = (dir.flags & INODE_FLAGS.INDEX) !== 0;
    set(P_FLAGS, (hasFiletype ? F_FILETYPE : 0) | (csum ? F_CSUM : 0) | (recursive && hasFiletype ? F_FT_DIR_BAILS : 0) | (recursive ? F_RECURSIVE : 0) | (indexed ? F_INDEXED : 0));
    set(P_INODES, sb.s_inodes_count);
    set(P_SEED, csum ? inodeSeed(src.fsSeed, dir.ino, dir.generation) | 0 : 0);
    set(P_INO, inoAt);
    set(P_ADDR, addrAt);
    set(P_LEN, lenAt);
    const n = this.k.scan(blocksAt, total, maxEnt);
    if (n < 0) return false;
    set(P_ORDER, orderAt);
    set(P_TMP, tmpAt);
    set(P_KEYS, keysAt);
    set(P_KEYS2, keys2At);
    set(P_COUNT, countAt);
    set(P_ORDER, this.k.sort(n));
    // Layout, part 2: the writer's bytes for the whole directory.
    const end = outAt + outBytes(n, w[(PARAM >> 2) + P_NAMES]!);
    if (end > MEMORY_MAX) return false;
    this.ensure(end);
    w = new Int32Array(this.memory.buffer);
    const tableBlocks = inodeTableBlocks(sb);
    const kernel = this.kernel ?? (this.kernel = summaryKernel());
    const verifyInodes = src.verify && sb.hasMetadataCsum ? 1 : 0;
    set(P_IPG, ipg);
    set(P_ISZ, isz);
    set(P_TABLE_BLOCKS, tableBlocks);
    set(P_GROUPS, groupsAt);
    set(P_GROUP_COUNT, sb.groupCount);
    set(P_BLK, blkAt);
    set(P_SLOT, slotAt);
    set(P_SINO, sinoAt);
    set(P_RUNS, runsAt);
    set(P_MAP, mapAt);
    set(P_MAP_CAP, MAP_CAP);
    set(P_SCRATCH, 0); // slots as offsets in the kernel's run bytes
    set(P_SCRATCH_CAP, SCRATCH_CAP);
    set(P_GAP, GAP_BLOCKS);
    set(P_MAX_RUN, Math.max(1, Math.floor(RUN_BYTES / bs)));
    set(P_SUM, sumAt);
    set(P_RECS, recsAt);
    w.fill(-1, groupsAt >> 2, (groupsAt >> 2) + sb.groupCount);
    let out = outAt;
    for (let k0 = 0; k0 < n; k0 += BATCH) {
      const k1 = Math.min(n, k0 + BATCH);
      let runs: number;
      while ((runs = this.k.locate(k0, k1)) < -1) {
        // Group g's descriptor, checked as a read checks it (its errors are the JS walk's to throw).
        const g = -2 - runs;
        const t = (await src.group(g)).inodeTable;
        if (!(Number.isInteger(t) && t >= 0 && t + tableBlocks < 2 ** 31)) return false;
        w[(groupsAt >> 2) + g] = t;
      }
      if (runs < 0) return false;
      let scratchBytes = 0;
      for (let r = 0; r < runs; r++) scratchBytes += w[(runsAt >> 2) + 2 * r + 1]! * bs;
      // The runs, back to back, straight into the summary kernel's memory (inode-summary-wasm.ts:
      // one run for the batch, each inode's slot in it from locate), then its checks and fields.
      const m = k1 - k0;
      const km = kernel.memory;
      if (K_BYTES + scratchBytes > km.buffer.byteLength) km.grow(Math.ceil((K_BYTES + scratchBytes - km.buffer.byteLength) / 65536));
      const kb = new Uint8Array(km.buffer), kw = new Int32Array(km.buffer);
      for (let r = 0, at = K_BYTES; r < runs; r++) {
        const first = w[(runsAt >> 2) + 2 * r]!, count = w[(runsAt >> 2) + 2 * r + 1]!;
        for (let c = 0; c < count; c += per) {
          const q = Math.min(per, count - c);
          await src.readDataBlocksInto(first + c, q, kb.subarray(at, at + q * bs));
          at += q * bs;
        }
      }
      kw.fill(0, K_RUNS >> 2, (K_RUNS >> 2) + m);
      kw.set(w.subarray(slotAt >> 2, (slotAt >> 2) + m), K_SLOTS >> 2);
      kw.set(w.subarray(sinoAt >> 2, (sinoAt >> 2) + m), K_INOS >> 2);
      kw[K_BASES >> 2] = K_BYTES;
      kernel.sum(m, K_RUNS, K_SLOTS, K_INOS, K_BASES, K_OUT, src.fsSeed | 0, isz, verifyInodes);
      w.set(kw.subarray(K_OUT >> 2, (K_OUT >> 2) + SUMMARY_WORDS * m), sumAt >> 2);
      if (this.k.prep(k0, k1) < 0) return false;
      out = write({ n: m, recsAt, addrsAt: addrAt, lensAt: lenAt, outAt: out });
      if (out < 0) return false;
    }
    return true;
  }

  /** inode-summary-wasm.ts's module, instantiated at the first batch. */
  private kernel: SummaryKernel | null = null;

  /** Memory for [0, end). */
  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / 65536));
  }
}

const align = (n: number) => (n + 63) & ~63;

/** inode-summary-wasm.ts's kernel: `sum` over slots in its own memory (crc32c's tables at 0). */
interface SummaryKernel {
  sum(n: number, runs: number, slots: number, inos: number, bases: number, out: number, fsSeed: number, inodeSize: number, verify: number): void;
  memory: WebAssembly.Memory;
}

/** Its memory as used here: its tables and scratch word below K_RUNS, a batch's arrays, then the table runs. */
const K_RUNS = 16384, K_SLOTS = K_RUNS + 4 * BATCH, K_INOS = K_SLOTS + 4 * BATCH, K_BASES = K_INOS + 4 * BATCH, K_OUT = K_BASES + 64;
const K_BYTES = align(K_OUT + 4 * SUMMARY_WORDS * BATCH);

let summaryModule: WebAssembly.Module | undefined;

/**
 * A kernel of our own (summarizeInodes would copy each batch's runs into its instance and its
 * answers out again, through a loop over the batch in JS): its module's crc is DirListWasm's
 * (crc32c-wasm.ts CRC32C_FUNC), checked in create().
 */
function summaryKernel(): SummaryKernel {
  const inst = new WebAssembly.Instance((summaryModule ??= new WebAssembly.Module(inodeSummaryWasmBytes())), {});
  const memory = inst.exports.mem as WebAssembly.Memory;
  new Int32Array(memory.buffer, 0, 2048).set(crc32cTables().subarray(0, 2048));
  return { sum: inst.exports.sum as SummaryKernel['sum'], memory };
}

/**
 * The module's bytes from their base64 text (dir-list-wasm-bytes.ts, what dirListWasmBytes in
 * dir-list-wasm-code.ts assembles: building them from the opcodes in every fresh process cost
 * ~16 M instructions, a tenth of a whole listing's — callgrind).
 */
function wasmBytes(base64: string): Uint8Array<ArrayBuffer> {
  const text = atob(base64);
  const b = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) b[i] = text.charCodeAt(i);
  return b;
}
