/**
 * Import a whole tree (a stream of TreeEntry: a host directory, a tar
 * archive, another image) into an image under `at`.
 *
 * Batching: entries are applied inside one transaction until it holds about
 * half of what the journal takes in one commit (a quarter of the log, the
 * kernel's limit: jbd2 refuses bigger ones with E2BIG), or 64 MiB of file
 * data, so a 20,000-file tree costs tens of commits, not 20,000. The
 * source is read inside the transaction (nothing reaches the disk before
 * the commit). A large file continues into the next transactions, 64 MiB
 * at a time; its blocks are asked for where its last extent ended, so a
 * file written in one go is one extent whenever a free run allows it.
 *
 * Content: all-zero blocks become holes (as `mkfs.ext4 -d` does), so sparse
 * files stay sparse; an entry's `sparse` map (a sparse tar member) is
 * followed: its holes are never read, zero-filled nor counted against a
 * transaction's data. Times: atime and mtime as given (nanoseconds where the
 * inode has room), directories' at the end (their entries would move
 * mtime); ctime and crtime are the filesystem clock (SOURCE_DATE_EPOCH /
 * `now`): with a fixed clock the same tree gives the same image bytes.
 * Directories the import makes get their names written whole before each
 * commit (lib/ext4/dir-build.ts: one linear block as inserts would leave it,
 * else an htree laid out as `e2fsck -D` does), not insert by insert; hard links
 * to files the import made are held the same way, and a directory starting
 * near the end of a transaction's budget waits for the next one (Budget.nearlyFull).
 *
 * A crash leaves a consistent filesystem with a prefix of the tree (the
 * committed batches): the import is not one atomic operation.
 */
import { Ext4Error } from '../errors.js';
import type { Filesystem } from '../ext4/filesystem.js';
import type { Transaction } from '../ext4/transaction.js';
import type { Inode, Timestamp } from '../ext4/inode.js';
import { EXT_INIT_MAX_LEN, writeHeader, writeLeafEntry, type Extent } from '../ext4/extents.js';
import { internals } from '../ext4/internals.js';
import { isZeroRange } from '../ext4/bytes.js';
import { allocateAtGoalNow, allocateBlocks } from '../ext4/alloc.js';
import { blockMapExclude, remapInode, setIBlocks, setSize, txFileMap } from '../ext4/remap.js';
import { INODE_FLAGS, hasInlineData, isExtentMapped } from '../ext4/inode.js';
import type { FileMap } from '../ext4/file-map.js';
import { findDirEntry } from '../ext4/dir-edit.js';
import { DirBatch } from '../ext4/dir-build.js';
import { blockGoal, createFileInodeTx, firstBlockGoal, linkInodeTx, linkTx, lookupTx, mkdirTx, mknodTx, symlinkTx } from './namespace.js';
import { chmodTx, chownTx, setTimes, setXattrTx, utimesTx } from './attrs.js';
import { maxFileSize } from '../ext4/inode-lifecycle.js';
import { countEntry, emptySummary, zeroUnitsOf, type DataRun, type SparseFile, type TreeEntry, type TreeSummary, type ZeroUnits } from './tree-entry.js';

export interface ImportOptions {
  /** Directory of the image the tree's root becomes (default '/'; created with its parents when missing). */
  at?: string;
  /** Owner of every entry instead of the tree's own. */
  owner?: { uid: number; gid: number };
  /** Permission bits of every entry but symlinks instead of the tree's own (directories also get x where r is set). */
  mode?: number;
  /** ctime of everything written (default: the filesystem clock). */
  now?: Timestamp;
  /** Called after each entry. */
  onProgress?(s: Readonly<TreeSummary>): void;
  /** File data one transaction carries at most, held in memory until its commit (default 64 MiB). */
  batchBytes?: number;
  /**
   * Called after each commit: the file data chunks handed over so far are no longer held, except
   * `held` (the rest of a file still being written, or null), so the producer may reuse their
   * buffers (a host directory's slabs).
   */
  released?(held: Uint8Array | null): void;
  /**
   * Called as file data is written, within a transaction (once the import writes its data early,
   * from its second transaction on): the chunks handed over before `held` (the oldest one still
   * needed, or null: none) are no longer held, so the producer may reuse their buffers sooner than
   * at the commit (`released`).
   */
  dataWritten?(held: Uint8Array | null): void;
}

const ROOT_INO = 2;
/** File data one transaction carries at most by default (held in memory until its commit). */
const BATCH_DATA_BYTES = 64 * 1024 * 1024;
/** Entries one transaction takes at most without a journal (bounds memory and the commit's work). */
const BATCH_ENTRIES_NO_JOURNAL = 8192;

/**
 * Import `entries` under `opts.at`. Existing directories are merged into;
 * any other existing name is EEXIST. Returns what was imported.
 */
export async function importTree(fs: Filesystem, entries: AsyncIterable<TreeEntry> | Iterable<TreeEntry>, opts: ImportOptions = {}): Promise<TreeSummary> {
  if (fs.readOnly) throw new Ext4Error('EROFS', 'the filesystem is open read-only');
  const at = normalizeDir(opts.at ?? '/');
  const run = new ImportRun(fs, at, opts);
  await run.ensureAt();
  const it = (Symbol.asyncIterator in entries ? (entries as AsyncIterable<TreeEntry>)[Symbol.asyncIterator]() : toAsync(entries as Iterable<TreeEntry>));
  let done = false;
  /** A directory entry that starts the next transaction (see Budget.nearlyFull). */
  let pending: TreeEntry | null = null;
  const journal = internals(fs).journal;
  try {
    while (!done || run.file) {
      try {
        await fs.transact(async (tx) => {
          const budget = new Budget(tx, opts.batchBytes, run.dirs);
          const fill = async () => {
            if (run.file) {
              await run.resumeFile(tx, budget);
              if (run.file) return;
            }
            while (!budget.full()) {
              let entry = pending;
              pending = null;
              if (!entry) {
                const r = await it.next();
                if (r.done) {
                  done = true;
                  return;
                }
                entry = r.value;
              }
              // Near the end of the budget (nearlyFull) a new directory waits for the next transaction: the ones
              // before it (a walk lists a directory's names together) are then built whole here, not
              // built with part of their names and the rest inserted one by one after the commit.
              if (entry.type === 'dir' && budget.entries > 0 && budget.nearlyFull()) {
                pending = entry;
                return;
              }
              await run.apply(tx, entry, budget);
              if (run.file) return;
            }
          };
          try {
            await fill();
            // The directories made in this transaction, each written whole (their names were held).
            await run.dirs.flushAll(tx);
          } catch (e) {
            run.dirs.clear();
            // No early write may still be running when the caller gets the error (and closes the device).
            await run.data.abandon();
            throw e;
          }
          await run.data.finish(tx);
          // The commit may return once its log is written (jbd2 deferNext): its flush, commit block
          // and flush run while the next transaction is filled. Only when it frees nothing — then no
          // block the next transaction (or any other caller) writes early can be one that this commit
          // still owns in the state a crash before its commit block leaves: a block free in this
          // commit's result and not freed by it was free before it too. Import frees only when it
          // rewrites something that was there (an existing directory's xattr block, say): rare, and
          // those commits stay synchronous. The file data is all on the device before the log
          // (early writes drained above, or ordered data), so `released` may hand the slabs back.
          if (journal && !tx.isEmpty()) journal.deferNext = tx.pendingFree.length === 0;
        });
      } finally {
        // (a transaction that failed before its commit consumed the flag: nothing else's commit may defer)
        if (journal) journal.deferNext = false;
      }
      // The session is under way (superblock, journal replay): later transactions write their data early.
      // (an early write completes inside the gatherer's emit, called from continueFile or the end of
      // a fill: the chunks still needed are then the gathered and in-flight ones and the open file's
      // carry, which came after them)
      if (run.summary.transactions++ === 0) run.data.writeEarly(fs, opts.dataWritten ? () => opts.dataWritten!(run.data.oldest() ?? run.file?.carry ?? null) : null);
      opts.released?.(run.file?.carry ?? null);
    }
    await run.finishDirectories();
    // The last commit durable before the import is done (and its tail's failure reported).
    await journal?.settle();
  } catch (e) {
    // No deferred tail may still be running when the caller gets the error (and closes the device).
    await journal?.settle().catch(() => undefined);
    throw e;
  }
  return run.summary;
}

function toAsync<T>(it: Iterable<T>): AsyncIterator<T> {
  const i = it[Symbol.iterator]();
  return { next: async () => i.next() };
}

/** '/a/b' from 'a/b/', '/a//b' …; '/' for the root. */
function normalizeDir(p: string): string {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.includes('..')) throw new Ext4Error('EINVAL', `${p}: '..' is not allowed in the target path`);
  return '/' + parts.join('/');
}

/** A path that needs no cleaning: names separated by single slashes, none of them '.' or '..'. */
const CLEAN_PATH = /^(?:(?!\.\.?(?:\/|$))[^/]+(?:\/(?!\.\.?(?:\/|$))[^/]+)*)?$/;

/** An entry's tree path checked ('', or names without '.', '..' or empty parts). */
function checkTreePath(p: string): string {
  if (CLEAN_PATH.test(p)) return p;
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.includes('..')) throw new Ext4Error('EINVAL', `${p}: '..' in a tree path (refused: it would leave the import directory)`);
  return parts.join('/');
}

/** How full the current transaction is. */
class Budget {
  readonly tx: Transaction;
  readonly limit: number;
  readonly maxData: number;
  readonly dirs: DirBatch | null;
  dataBytes = 0;
  entries = 0;
  constructor(tx: Transaction, maxData = BATCH_DATA_BYTES, dirs: DirBatch | null = null) {
    this.tx = tx;
    this.dirs = dirs;
    // At least a block: a file must progress in every transaction.
    this.maxData = Math.max(maxData, tx.fs.blockSize);
    const journal = internals(tx.fs).journal;
    // Half of the commit limit (descriptor and revoke blocks, the superblock and the GDT blocks
    // come on top of tx.blocks); room left for one more entry's worst case (an htree split at
    // three levels, an xattr block, extent tree blocks).
    this.limit = journal ? Math.max(16, Math.floor(journal.maxTransactionBlocks() / 2) - 48) : Infinity;
  }
  metadataBlocks(): number {
    // (the directory blocks the held names will take are written only at the end)
    return this.tx.blocks.size + this.tx.groups.size + (this.dirs?.extraBlocks(this.tx.fs.blockSize) ?? 0);
  }
  full(): boolean {
    if (this.dataBytes >= this.maxData) return true;
    if (this.limit === Infinity) return this.entries >= BATCH_ENTRIES_NO_JOURNAL;
    return this.metadataBlocks() >= this.limit;
  }
  /**
   * Past seven eighths of any limit: where importTree ends a transaction before a new directory
   * rather than split one. bench/namespace's tree: still 20 transactions, and 217 names inserted
   * one by one instead of 3,125 (with hard links held too, see apply), as measured.
   */
  nearlyFull(): boolean {
    if (this.dataBytes * 8 >= this.maxData * 7) return true;
    if (this.limit === Infinity) return this.entries * 8 >= BATCH_ENTRIES_NO_JOURNAL * 7;
    return this.metadataBlocks() * 8 >= this.limit * 7;
  }
  /** Data bytes this transaction may still take. */
  dataRoom(): number {
    return Math.max(0, this.maxData - this.dataBytes);
  }
}

/** Largest ordered-data write the gatherer builds. */
const GATHER_MAX_BYTES = 8 * 1024 * 1024;
/** Pieces from this size up are written as they are. */
const GATHER_PIECE_BYTES = 256 * 1024;

/**
 * A transaction's file data, coalesced: files written one after the other get
 * neighbouring blocks, and one device write per run of them (not one per
 * file) is what makes thousands of small files cheap. A run whose pieces also
 * lie one after the other in one buffer, with zeros up to each block's end
 * (a host directory's slab, see lib/cli/host-tree.ts), is written as a view
 * of that buffer: no copy.
 *
 * Early writes: once the write session has begun (the import's first commit
 * went through), the data goes to the device while the transaction is still
 * being filled, a few writes in flight, instead of all of it inside the
 * commit. The blocks are new (free in the committed bitmaps, never freed by
 * this transaction), so this is still ordered data: complete before the
 * commit's flush and commit block; a crash or a failed transaction leaves
 * bytes in free blocks only.
 */
class DataGather {
  #pieces: { block: number; data: Uint8Array }[] = [];
  #bytes = 0;
  #early: EarlyWrites | null = null;
  /** `data` from `block` on; a last partial block is written zero-filled. */
  add(block: number, data: Uint8Array): void {
    this.#pieces.push({ block, data });
    this.#bytes += data.length;
  }
  /** From now on write data as it comes (see above); `written` is called each time one of those writes is complete. */
  writeEarly(fs: Filesystem, written: (() => void) | null): void {
    this.#early = new EarlyWrites(fs, written);
  }
  /** The oldest chunk this gatherer still needs (gathered, or in a write not known complete), or null. */
  oldest(): Uint8Array | null {
    return this.#early?.oldest() ?? this.#pieces[0]?.data ?? null;
  }
  /**
   * Write what is gathered when it is enough for large writes (early mode only); null when there
   * is nothing to write yet (the caller awaits nothing: an async call and its promises per piece).
   */
  maybeFlush(tx: Transaction): Promise<void> | null {
    return this.#early && this.#bytes >= EARLY_FLUSH_BYTES ? this.#emit(tx) : null;
  }
  /** The rest of the transaction's data: written (early mode) or handed to the transaction as ordered data. */
  async finish(tx: Transaction): Promise<void> {
    await this.#emit(tx);
    await this.#early?.drain();
  }
  /** Drop what is gathered and wait for the writes in flight (their errors ignored: the transaction failed anyway). */
  async abandon(): Promise<void> {
    this.#pieces = [];
    this.#bytes = 0;
    await this.#early?.drain().catch(() => undefined);
  }
  async #emit(tx: Transaction): Promise<void> {
    const early = this.#early;
    // The oldest chunk of these writes: the first piece gathered (#pieces is in the order the
    // chunks were handed over until #runs sorts it by block).
    const first = this.#pieces.length !== 0 ? this.#pieces[0]!.data : null;
    for (const w of this.#runs(tx.fs.blockSize)) {
      if (early) await early.write(w.block, w.data, first);
      else tx.writeData(w.block, w.data);
    }
  }
  #runs(bs: number): { block: number; data: Uint8Array }[] {
    const list = this.#pieces.sort((a, b) => a.block - b.block);
    this.#pieces = [];
    this.#bytes = 0;
    const out: { block: number; data: Uint8Array }[] = [];
    const span = (k: number) => Math.ceil(list[k]!.data.length / bs) * bs;
    const small = (k: number) => list[k]!.data.length < GATHER_PIECE_BYTES;
    for (let i = 0; i < list.length; ) {
      let j = i, bytes = 0;
      while (j < list.length && (j === i || followsInMemory(list[j - 1]!.data, span(j - 1), list[j]!.data)) && (j === i || list[j]!.block === list[j - 1]!.block + span(j - 1) / bs) && zeroTail(list[j]!.data, span(j), bs)) bytes += span(j++);
      if (j > i) {
        const d = list[i]!.data;
        out.push({ block: list[i]!.block, data: d.length === bytes ? d : new Uint8Array(d.buffer, d.byteOffset, bytes) });
        i = j;
        continue;
      }
      j = i + 1;
      bytes = span(i);
      // Only small pieces are copied together; a large one is a write of its own already.
      if (small(i)) while (j < list.length && small(j) && list[j]!.block === list[j - 1]!.block + span(j - 1) / bs && bytes + span(j) <= GATHER_MAX_BYTES) bytes += span(j++);
      const buf = new Uint8Array(bytes); // zeroed: the tails of partial blocks
      let off = 0;
      for (let k = i; k < j; k++) {
        buf.set(list[k]!.data, off);
        off += span(k);
      }
      out.push({ block: list[i]!.block, data: buf });
      i = j;
    }
    return out;
  }
}

/** Gathered data written early once it reaches this much. */
const EARLY_FLUSH_BYTES = 4 * 1024 * 1024;
/** Early writes in flight at most. */
const EARLY_IN_FLIGHT = 4;

/** Device writes issued without waiting for each, drained before the commit. */
class EarlyWrites {
  readonly #fs: Filesystem;
  readonly #written: (() => void) | null;
  #inFlight: Promise<void>[] = [];
  /** Per write in flight, the oldest chunk of the gather it came from (DataGather.#emit). */
  #firsts: (Uint8Array | null)[] = [];
  #error: unknown = null;
  constructor(fs: Filesystem, written: (() => void) | null) {
    this.#fs = fs;
    this.#written = written;
  }
  async write(block: number, data: Uint8Array, first: Uint8Array | null): Promise<void> {
    // The error is kept for drain(): a rejection nobody awaits yet must not go unhandled.
    this.#inFlight.push(this.#fs.device.write(block * this.#fs.blockSize, data).catch((e: unknown) => { this.#error ??= e; }));
    this.#firsts.push(first);
    if (this.#inFlight.length >= EARLY_IN_FLIGHT) {
      await this.#inFlight.shift();
      this.#firsts.shift();
      if (this.#error) throw this.#error;
      // (the producer's buffers go back as their bytes are written: a transaction's 64 MiB were
      // all held until its commit, new slabs taken meanwhile — ~1,000 page faults each)
      this.#written?.();
    }
    if (this.#error) throw this.#error;
  }
  /** The oldest chunk a write in flight may still read, or null. */
  oldest(): Uint8Array | null {
    for (const f of this.#firsts) if (f) return f;
    return null;
  }
  async drain(): Promise<void> {
    await Promise.all(this.#inFlight);
    this.#inFlight = [];
    this.#firsts = [];
    const e = this.#error;
    this.#error = null;
    if (e) throw e;
  }
}

/** Whether `b` starts where `a`'s `span` bytes end, in the same buffer. */
function followsInMemory(a: Uint8Array, span: number, b: Uint8Array): boolean {
  return a.buffer === b.buffer && a.byteOffset + span === b.byteOffset;
}

/** Whether `d`'s buffer goes on to `span` bytes past its start with zeros after `d` (its last block can be written as it lies). */
function zeroTail(d: Uint8Array, span: number, bs: number): boolean {
  if (d.length === span) return true;
  if (d.byteOffset + span > d.buffer.byteLength) return false;
  // A chunk with a zero map has zeros after it to its last unit's end (ZeroUnits): enough when the span ends there.
  const z = usableZeroUnits(d, bs);
  if (z && span <= Math.ceil(d.length / z.unit) * z.unit) return true;
  return isZeroRange(new Uint8Array(d.buffer, d.byteOffset, span), d.length, span);
}

/** A regular file being written across transactions. */
interface OpenFile {
  ino: number;
  /** Its tree path (error messages give its image path: ImportRun.imagePath). */
  rel: string;
  entry: TreeEntry;
  size: number;
  /** File offset reached (bytes consumed, holes skipped). */
  offset: number;
  /** Block-aligned data runs of a sparse entry (the source yields only their bytes), or null: the source is the whole file. */
  runs: readonly DataRun[] | null;
  /** The run `offset` is in or before. */
  run: number;
  extents: Extent[];
  source: AsyncIterator<Uint8Array> | null;
  /** Bytes of the source not yet written: the rest of a chunk taken, or a one-chunk `data` whole (the source is then null). */
  carry: Uint8Array | null;
  /** The file's Inode as last written in the current transaction (null: read it). */
  inode: Inode | null;
  /** Its map so far is all in i_block, written by mapIntoRoot (no tree block). */
  rooted: boolean;
}

class ImportRun {
  readonly fs: Filesystem;
  readonly at: string;
  readonly opts: ImportOptions;
  readonly summary = emptySummary();
  file: OpenFile | null = null;
  readonly data = new DataGather();
  /**
   * Tree paths of the directories made or met so far, with their inodes (a tar may name a file
   * before, or without, its directory): entries are created by (directory inode, name), not by
   * walking their path from the root again.
   */
  readonly knownDirs = new Map<string, number>();
  /** Directory times, applied once nothing more is added to them. */
  readonly dirTimes: { ino: number; atime: Timestamp; mtime: Timestamp }[] = [];
  /**
   * Directories this import made (by inode) with the ASCII names it put in them: a new name
   * there needs no lookup before its insert (see claim).
   */
  readonly madeDirs = new Map<number, Set<string>>();
  /**
   * Names created in directories made in the current transaction, held until it ends and then
   * written once per directory (dir-build.ts): no insert, split or leaf parse per name. A lookup
   * in such a directory writes its names first (DirBatch.flush; flushAll before a walk from the root).
   */
  readonly dirs = new DirBatch();

  constructor(fs: Filesystem, at: string, opts: ImportOptions) {
    this.fs = fs;
    this.at = at;
    this.opts = opts;
    this.nowOpts = opts.now ? { now: opts.now } : {};
  }

  imagePath(rel: string): string {
    return rel === '' ? this.at : this.at === '/' ? `/${rel}` : `${this.at}/${rel}`;
  }

  /** Create `at` and its parents (mode 0755) when missing. */
  async ensureAt(): Promise<void> {
    if (this.at === '/') {
      this.knownDirs.set('', ROOT_INO);
      return;
    }
    await this.fs.transact(async (tx) => {
      let p = '';
      let ino = ROOT_INO;
      for (const name of this.at.slice(1).split('/')) {
        p += '/' + name;
        ino = (await this.mkdirOrReuse(tx, p, { mode: 0o755, now: this.opts.now })).ino;
      }
      this.knownDirs.set('', ino);
    });
  }

  /**
   * Whether `name` is known not to be in directory `dir` (one this import made, the name not added
   * before), noting it as added. Only ASCII names: two strings name the same entry exactly when
   * they are equal (a lone surrogate and U+FFFD would not), and none of them equals another name's bytes.
   * Exact comparison needs a directory that does not casefold: one made in a casefolded directory
   * is casefolded too (inheritedFlags), so it is never noted in madeDirs (mkdirOrReuseIn).
   */
  claim(dir: number, name: string): boolean {
    const names = this.madeDirs.get(dir);
    if (!names || !ASCII.test(name) || names.has(name)) return false;
    names.add(name);
    return true;
  }

  /** `{now}` for the calls that take it: the import's fixed time, or none (the filesystem clock). Made once. */
  readonly nowOpts: { now?: Timestamp };

  /** Create options for a claimed name (see claim): no lookup, the name held when its directory is (entrySink). */
  readonly knownNew = { knownNew: true, entrySink: this.dirs };

  /** Create options for a name not claimed in `dir`: the directory's held names written first, for the create's lookup. */
  async unclaimed(tx: Transaction, dir: number): Promise<{ knownNew: boolean }> {
    await this.dirs.flush(tx, dir);
    return NOT_KNOWN;
  }

  /** The tree's root entry: the import directory (a walk from the root: nothing held on the way). */
  async importRoot(tx: Transaction, path: string): Promise<{ ino: number; created: boolean }> {
    await this.dirs.flushAll(tx);
    return { ino: (await lookupTx(tx, path, { followLast: true })).ino, created: false };
  }

  /** mkdirOrReuse for `name` in directory `parent` (`path` is its image path, for a symlink to follow). */
  async mkdirOrReuseIn(tx: Transaction, parent: number, name: string, path: string, o: { mode?: number; uid?: number; gid?: number; now?: Timestamp }): Promise<{ ino: number; created: boolean }> {
    const knownNew = this.claim(parent, name);
    if (!knownNew) await this.dirs.flush(tx, parent);
    const dir = knownNew ? null : await tx.readInode(parent);
    const hit = dir ? await findDirEntry(tx, dir, new TextEncoder().encode(name)) : null;
    if (!hit) {
      const ino = await mkdirTx(tx, { dir: parent, name }, knownNew ? { ...o, knownNew, entrySink: this.dirs } : o);
      // (a claimed parent is in madeDirs, so it does not casefold, nor does its new subdirectory)
      if (!dir || !(dir.flags & INODE_FLAGS.CASEFOLD)) this.madeDirs.set(ino, new Set());
      this.dirs.open(ino);
      return { ino, created: true };
    }
    const old = await tx.readInode(hit.ino);
    // A symlink to a directory is merged into, as mkdir -p / tar do: resolved by path.
    if (old.type === 'symlink') return this.mkdirOrReuse(tx, path, o);
    if (old.type !== 'dir') throw new Ext4Error('ENOTDIR', `${path}: exists and is not a directory`);
    return { ino: old.ino, created: false };
  }

  /** mkdir, or the existing directory (ENOTDIR when the name is something else). */
  async mkdirOrReuse(tx: Transaction, path: string, o: { mode?: number; uid?: number; gid?: number; now?: Timestamp }): Promise<{ ino: number; created: boolean }> {
    await this.dirs.flushAll(tx); // (a walk from the root: any held directory may be on the way)
    const old = await lookupTx(tx, path, { followLast: true }).catch((e: unknown) => {
      if ((e as { code?: string }).code === 'ENOENT') return null;
      throw e;
    });
    if (old) {
      if (old.type !== 'dir') throw new Ext4Error('ENOTDIR', `${path}: exists and is not a directory`);
      return { ino: old.ino, created: false };
    }
    return { ino: await mkdirTx(tx, path, o), created: true };
  }

  mode(e: TreeEntry): number {
    const m = this.opts.mode;
    if (m === undefined || e.type === 'symlink') return e.mode & 0o7777;
    if (e.type === 'dir') return (m | ((m & 0o444) >> 2)) & 0o7777;
    return m & 0o7777;
  }

  async apply(tx: Transaction, raw: TreeEntry, budget: Budget): Promise<void> {
    const rel = checkTreePath(raw.path);
    budget.entries++;
    countEntry(this.summary, raw);
    const slash = rel.lastIndexOf('/');
    const parent = slash < 0 ? '' : rel.slice(0, slash);
    if (!this.knownDirs.has(parent)) await this.ensureParents(tx, rel);
    const at = { dir: this.knownDirs.get(parent)!, name: rel.slice(slash + 1) };
    // Files (nearly all entries) on a path of their own: what TurboFan compiles for them carries
    // no other type's arm, and a rare arm met late deoptimises only applyOther.
    return raw.type === 'file' ? this.applyFile(tx, raw, rel, at, budget) : this.applyOther(tx, raw, rel, at);
  }

  /** apply for a regular file: created (its name held when claimed), then its data (continueFile). */
  async applyFile(tx: Transaction, e: TreeEntry, rel: string, at: { dir: number; name: string }, budget: Budget): Promise<void> {
    const claimed = this.claim(at.dir, at.name);
    if (!claimed) await this.unclaimed(tx, at.dir);
    // (one options object of one shape per file, no spreads)
    const created = await createFileInodeTx(tx, at, {
      mode: this.mode(e), uid: this.opts.owner?.uid ?? e.uid, gid: this.opts.owner?.gid ?? e.gid, now: this.opts.now,
      exclusive: true, knownNew: claimed, entrySink: claimed ? this.dirs : undefined,
    });
    const ino = created.ino;
    if (e.xattrs?.length) await this.xattrs(tx, ino, e);
    const size = e.size ?? (e.data instanceof Uint8Array ? e.data.length : 0);
    const bs = this.fs.blockSize;
    // The created Inode goes on to the data path unless an xattr write made it stale.
    const inode = e.xattrs?.length ? await tx.readInode(ino) : created;
    // Checked before any block is taken: a sparse member may claim any size at no cost.
    if (size > maxFileSize(inode, bs)) throw new Ext4Error('EFBIG', `${this.imagePath(rel)}: ${size} bytes is past the maximum file size`);
    const sparse = e.sparse ? alignedRuns(e.sparse, size, bs, this.imagePath(rel)) : null;
    this.file = {
      // Data in one chunk starts as the carry (no iterator and its promises per file; held across commits like any carry).
      // (an empty chunk is no carry: continueFile's end check then takes the path every file takes)
      ino, rel, entry: e, size, offset: 0, extents: [], carry: !sparse && e.data instanceof Uint8Array && e.data.length !== 0 ? e.data : null, runs: sparse?.runs ?? null, run: 0, inode, rooted: false,
      source: sparse ? sparse.data[Symbol.asyncIterator]() : e.data === undefined || e.data instanceof Uint8Array ? null : e.data[Symbol.asyncIterator](),
    };
    await this.continueFile(tx, budget);
  }

  /** apply for anything but a regular file. */
  async applyOther(tx: Transaction, e: TreeEntry, rel: string, at: { dir: number; name: string }): Promise<void> {
    const path = this.imagePath(rel);
    const uid = this.opts.owner?.uid ?? e.uid;
    const gid = this.opts.owner?.gid ?? e.gid;
    const create = { mode: this.mode(e), uid, gid, now: this.opts.now };
    const tnow = this.nowOpts;
    let ino: number;
    switch (e.type) {
      case 'dir': {
        const r = rel === '' ? await this.importRoot(tx, path) : await this.mkdirOrReuseIn(tx, at.dir, at.name, path, create);
        ino = r.ino;
        this.knownDirs.set(rel, ino);
        if (!r.created) await this.adopt(tx, ino, create);
        if (e.xattrs?.length) await this.xattrs(tx, ino, e);
        if (e.mtime) this.dirTimes.push({ ino, atime: e.atime ?? e.mtime, mtime: e.mtime });
        this.progress();
        return;
      }
      case 'symlink': {
        if (e.target === undefined) throw new Ext4Error('EINVAL', `${rel}: symlink without a target`);
        ino = await symlinkTx(tx, e.target, at, { ...create, ...(this.claim(at.dir, at.name) ? this.knownNew : await this.unclaimed(tx, at.dir)) });
        break;
      }
      case 'hardlink': {
        if (e.target === undefined) throw new Ext4Error('EINVAL', `${rel}: hard link without a target`);
        const target = checkTreePath(typeof e.target === 'string' ? e.target : new TextDecoder().decode(e.target));
        // A new name in a directory this import made, to a file it made: the name held with the
        // directory's others (no flush of every held directory, then inserts for the names after).
        const known = this.claim(at.dir, at.name) ? await this.importedInode(tx, target) : null;
        if (known) {
          await linkInodeTx(tx, known, at, { ...tnow, ...this.knownNew });
          this.progress();
          return;
        }
        // linkTx walks the target's path from the root and inserts into at.dir: nothing held on the way.
        // (the name, when claimed above, stays noted so that no later create skips its lookup)
        await this.dirs.flushAll(tx);
        await linkTx(tx, this.imagePath(target), at, tnow);
        this.progress();
        return;
      }
      case 'fifo': case 'socket': case 'chardev': case 'blockdev':
        ino = await mknodTx(tx, at, e.type, { ...create, rdev: e.rdev, ...(this.claim(at.dir, at.name) ? this.knownNew : await this.unclaimed(tx, at.dir)) });
        break;
      default:
        throw new Ext4Error('EINVAL', `${rel}: unknown entry type ${String(e.type)}`);
    }
    if (e.xattrs?.length) await this.xattrs(tx, ino, e);
    if (e.mtime) await utimesTx(tx, ino, e.atime ?? e.mtime, e.mtime, tnow);
    this.progress();
  }

  /**
   * The inode at tree path `rel` when its directory is one this import made (non-casefolded: names
   * compare as bytes) and the name is in it, else null (a linkTx by path decides, errors included).
   */
  async importedInode(tx: Transaction, rel: string): Promise<Inode | null> {
    const slash = rel.lastIndexOf('/');
    const dir = this.knownDirs.get(slash < 0 ? '' : rel.slice(0, slash));
    if (rel === '' || dir === undefined || !this.madeDirs.has(dir)) return null;
    const name = new TextEncoder().encode(rel.slice(slash + 1));
    let ino = this.dirs.find(dir, name);
    if (ino === undefined) ino = (await findDirEntry(tx, tx.writtenInode(dir) ?? (await tx.readInode(dir)), name))?.ino ?? null;
    return ino === null ? null : tx.readInode(ino);
  }

  /** Make the missing directories above `rel` (mode 0755, root-owned unless --owner), as tar does. */
  async ensureParents(tx: Transaction, rel: string): Promise<void> {
    const slash = rel.lastIndexOf('/');
    const parent = slash < 0 ? '' : rel.slice(0, slash);
    if (this.knownDirs.has(parent)) return;
    await this.ensureParents(tx, parent);
    const up = parent.lastIndexOf('/');
    const r = await this.mkdirOrReuseIn(tx, this.knownDirs.get(up < 0 ? '' : parent.slice(0, up))!, parent.slice(up + 1), this.imagePath(parent), {
      mode: 0o755, uid: this.opts.owner?.uid ?? 0, gid: this.opts.owner?.gid ?? 0, now: this.opts.now,
    });
    this.knownDirs.set(parent, r.ino);
  }

  /** An existing directory (the import root, or one merged into) takes the entry's mode and owner. */
  async adopt(tx: Transaction, ino: number, c: { mode: number; uid: number; gid: number }): Promise<void> {
    const now = this.nowOpts;
    await chownTx(tx, ino, c.uid, c.gid, now);
    await chmodTx(tx, ino, c.mode, now);
  }

  async xattrs(tx: Transaction, ino: number, e: TreeEntry): Promise<void> {
    for (const x of e.xattrs ?? []) await setXattrTx(tx, ino, x.name, x.value, this.nowOpts);
  }

  progress(): void {
    this.opts.onProgress?.(this.summary);
  }

  /**
   * The open file in a new transaction: its Inode read again, then continued. (Here, not in
   * continueFile, which runs per file: a read met first after TurboFan compiled it deoptimised it.)
   */
  async resumeFile(tx: Transaction, budget: Budget): Promise<void> {
    const f = this.file!;
    f.inode = await tx.readInode(f.ino);
    await this.continueFile(tx, budget);
  }

  /**
   * Write as much of the open file as this transaction takes: block-aligned
   * pieces from the source, all-zero blocks skipped (holes), the rest
   * allocated from where the file's last extent ends.
   */
  async continueFile(tx: Transaction, budget: Budget): Promise<void> {
    const f = this.file!;
    const bs = this.fs.blockSize;
    const inode = f.inode!;
    f.inode = null; // the next transaction reads it again (resumeFile)
    const extents = f.extents;
    const started = f.offset;
    let wrote = false;
    while (f.offset < f.size) {
      // A sparse entry: skip to the next data run (a hole costs nothing), or to the end.
      let end = f.size;
      if (f.runs) {
        while (f.run < f.runs.length && f.offset >= f.runs[f.run]!.offset + f.runs[f.run]!.length) f.run++;
        const r = f.runs[f.run];
        if (!r) {
          f.offset = f.size;
          break;
        }
        f.offset = Math.max(f.offset, r.offset);
        end = r.offset + r.length;
      }
      const room = budget.dataRoom();
      if (room < bs || (wrote && budget.full())) break;
      const max = Math.min(Math.floor(room / bs) * bs, 8 * 1024 * 1024);
      const piece = this.takeCarry(f, max, end) ?? (await this.take(f, max, end));
      const blocks = Math.ceil(piece.length / bs);
      const firstLogical = f.offset / bs;
      // Runs of non-zero blocks of this piece (by the producer's zero map when it has one).
      const z = usableZeroUnits(piece, bs);
      let b = 0;
      while (b < blocks) {
        if (blockIsZero(piece, b, bs, z)) { b++; continue; }
        let end = b + 1;
        while (end < blocks && !blockIsZero(piece, end, bs, z)) end++;
        if (!this.placeNow(tx, inode, extents, piece, b, end, firstLogical)) await this.place(tx, inode, extents, piece, b, end, firstLogical);
        b = end;
      }
      budget.dataBytes += blocks * bs;
      f.offset += piece.length;
      wrote = true;
      const flushed = this.data.maybeFlush(tx);
      if (flushed) await flushed;
    }
    const finished = f.offset >= f.size;
    if (finished && (f.carry?.length || (f.source !== null && (await hasMore(f.source))))) throw new Ext4Error('EINVAL', `${this.imagePath(f.rel)}: the source has more than ${f.size} bytes`);
    // A file finished here gets its times in the same inode write as its map and size (utimes folded in).
    const e = f.entry;
    const timed = finished && !!e.mtime;
    // (one writeInode call for a map in i_block and for a file that wrote nothing here — an empty
    // file: a rare arm of its own deoptimised this function when met after TurboFan compiled it)
    const wroteHere = f.offset !== started;
    // The size rides on the inode write remapInode does.
    if (wroteHere) setSize(tx, inode, f.offset);
    if (timed) setTimes(tx, inode, e.atime ?? e.mtime!, e.mtime!, this.nowOpts);
    // A map that fits i_block goes there, also for a file resumed in a new transaction whose root
    // was written so before (f.rooted): what remapInode would write, without its arm.
    if (wroteHere) f.rooted = (started === 0 || f.rooted) && mapIntoRoot(tx, inode, extents, started !== 0);
    if (!wroteHere || f.rooted) {
      if (wroteHere || timed) await tx.writeInode(inode);
    } else await remapInode(tx, inode, blockless(inode) ?? (await txFileMap(tx, inode)), extents);
    if (finished) {
      this.file = null;
      this.progress();
    }
  }

  /** Allocate blocks for piece blocks [from, to) and queue their data (ordered: written before the commit). */
  async place(tx: Transaction, inode: Inode, extents: Extent[], piece: Uint8Array, from: number, to: number, firstLogical: number): Promise<void> {
    let b = from;
    while (b < to) {
      const last = extents[extents.length - 1];
      const goal = last ? last.physical + last.length : await blockGoal(tx, inode);
      const exclude = isExtentMapped(inode) ? undefined : blockMapExclude(this.fs.sb);
      const runs = await allocateBlocks(tx, { goal, length: to - b, partial: true, ...(exclude ? { exclude } : {}) });
      for (const r of runs) b = this.addRun(extents, piece, b, r, firstLogical);
    }
  }

  /**
   * place without an await when its first allocation takes all of [from, to) at once
   * (allocateAtGoalNow: the goal's group and bitmap already in the transaction, as for all but a
   * transaction's first files); false: nothing done, for place.
   */
  placeNow(tx: Transaction, inode: Inode, extents: Extent[], piece: Uint8Array, from: number, to: number, firstLogical: number): boolean {
    // (block-mapped files pass an exclusion to the allocator: place's way)
    if (!isExtentMapped(inode)) return false;
    const last = extents[extents.length - 1];
    const goal = last ? last.physical + last.length : firstBlockGoal(tx, inode);
    if (goal === null) return false;
    const run = allocateAtGoalNow(tx, { goal, length: to - from });
    if (!run) return false;
    this.addRun(extents, piece, from, run, firstLogical);
    return true;
  }

  /** Piece blocks from `b` on placed at run `r`: its data queued, the file's extents extended. Returns the block after it. */
  addRun(extents: Extent[], piece: Uint8Array, b: number, r: { start: number; length: number }, firstLogical: number): number {
    const bs = this.fs.blockSize;
    const logical = firstLogical + b;
    this.data.add(r.start, piece.subarray(b * bs, (b + r.length) * bs));
    const prev = extents[extents.length - 1];
    if (prev && prev.logical + prev.length === logical && prev.physical + prev.length === r.start) prev.length += r.length;
    else extents.push({ logical, physical: r.start, length: r.length, unwritten: false });
    return b + r.length;
  }

  /**
   * take's answer when the carry alone gives it (a file whose data came in one chunk: most files),
   * without an await; else null. (take's async call, its closure's and their promises: 30 of the
   * 580 MB a fresh import of the bench tree allocated on its main thread, V8's allocation sampling.)
   */
  takeCarry(f: OpenFile, max: number, end: number): Uint8Array | null {
    const c = f.carry;
    if (c === null) return null;
    const want = Math.min(max, end - f.offset);
    if (c.length < want && c.length < this.fs.blockSize) return null;
    const n = c.length >= want ? want : Math.floor(c.length / this.fs.blockSize) * this.fs.blockSize;
    f.carry = c.length > n ? c.subarray(n) : null;
    return c.length === n ? c : c.subarray(0, n);
  }

  /**
   * The next piece of the open file's source, at most `max` bytes: whole blocks, or the file's
   * last bytes. A source chunk of a block or more is used as it is (no copy: TreeEntry.data
   * chunks are not reused); smaller or misaligned ones are gathered into up to 1 MiB.
   */
  async take(f: OpenFile, max: number, end: number): Promise<Uint8Array> {
    const bs = this.fs.blockSize;
    const left = end - f.offset;
    const next = async (): Promise<Uint8Array> => {
      if (f.carry) {
        const c = f.carry;
        f.carry = null;
        return c;
      }
      for (;;) {
        const r = f.source ? await f.source.next() : { done: true as const, value: undefined };
        if (r.done) throw new Ext4Error('EINVAL', `${this.imagePath(f.rel)}: the source ended after ${f.offset} of ${f.size} bytes`);
        if (r.value.length) return r.value;
      }
    };
    const first = await next();
    if (first.length >= Math.min(max, left) || first.length >= bs) {
      const n = first.length >= Math.min(max, left) ? Math.min(max, left) : Math.floor(first.length / bs) * bs;
      if (first.length > n) f.carry = first.subarray(n);
      return first.subarray(0, n);
    }
    const n = Math.min(max, left, 1024 * 1024);
    const out = new Uint8Array(n);
    let got = 0;
    for (let c: Uint8Array | null = first; ; c = null) {
      const chunk = c ?? (await next());
      const k = Math.min(chunk.length, n - got);
      out.set(chunk.subarray(0, k), got);
      got += k;
      if (k < chunk.length) f.carry = chunk.subarray(k);
      if (got === n) return out;
    }
  }

  /** Directory times, last (adding entries set their mtime), in journal-sized transactions. */
  async finishDirectories(): Promise<void> {
    let i = 0;
    const list = this.dirTimes;
    while (i < list.length) {
      await this.fs.transact(async (tx) => {
        const budget = new Budget(tx, this.opts.batchBytes);
        for (; i < list.length && !budget.full(); i++, budget.entries++) {
          const d = list[i]!;
          await utimesTx(tx, d.ino, d.atime, d.mtime, this.nowOpts);
        }
      });
      this.summary.transactions++;
    }
  }
}

const NOT_KNOWN = { knownNew: false };

/** Names of ASCII characters only. */
const ASCII = /^[\x00-\x7f]*$/;

/**
 * A new extent-mapped file (no block yet) whose extents fit in i_block: the root written in place,
 * as remapInode's rebuild writes it (depth 0, eh_max 4), without loading the empty tree. `extents`
 * come from place(): in order, every mergeable neighbour merged. `resumed`: the file's blocks so
 * far are `extents`' first ones, in a root this wrote (ImportRun's OpenFile.rooted). False when it
 * does not apply.
 */
function mapIntoRoot(tx: Transaction, inode: Inode, extents: readonly Extent[], resumed: boolean): boolean {
  if (extents.length > 4 || !isExtentMapped(inode) || (inode.blocks512 !== 0 && !resumed) || hasInlineData(inode)) return false;
  let blocks = 0;
  for (const e of extents) {
    if (e.length > EXT_INIT_MAX_LEN || e.unwritten) return false;
    blocks += e.length;
  }
  const root = new Uint8Array(60);
  writeHeader(root, { entries: extents.length, max: 4, depth: 0 });
  for (let i = 0; i < extents.length; i++) writeLeafEntry(root, i, extents[i]!);
  inode.base.i_block = root;
  // e2fsck counts the data blocks and the xattr block.
  setIBlocks(tx, inode, blocks + (inode.fileAcl ? 1 : 0));
  return true;
}

/** The map of a file that owns no block yet (just created: no walk of its empty tree), else null. */
function blockless(inode: Inode): FileMap | null {
  if (inode.blocks512 !== 0 || hasInlineData(inode)) return null;
  return isExtentMapped(inode) ? { extents: [], metadataBlocks: [], depth: 0, kind: 'extents' } : { extents: [], metadataBlocks: [], depth: -1, kind: 'blockmap' };
}

/**
 * A sparse entry's runs widened to whole blocks (merged where they meet; the
 * last one may end at the file's end) and its data as their bytes: the
 * sub-block gaps inside a widened run are zeros, whole-block holes are not
 * in it at all. The source map is checked (in order, inside the size).
 */
function alignedRuns(sparse: SparseFile, size: number, bs: number, path: string): { runs: DataRun[]; data: AsyncIterable<Uint8Array> } {
  const runs: DataRun[] = [];
  let last = 0;
  for (const r of sparse.runs) {
    if (!Number.isSafeInteger(r.offset) || !Number.isSafeInteger(r.length) || r.offset < last || r.length < 0 || r.offset + r.length > size) {
      throw new Ext4Error('EINVAL', `${path}: sparse map entry ${r.offset}+${r.length} out of order or past the size ${size}`);
    }
    last = r.offset + r.length;
    if (r.length === 0) continue;
    const start = Math.floor(r.offset / bs) * bs, stop = Math.min(size, Math.ceil(last / bs) * bs);
    const prev = runs[runs.length - 1];
    if (prev && start <= prev.offset + prev.length) prev.length = stop - prev.offset;
    else runs.push({ offset: start, length: stop - start });
  }
  return { runs, data: alignedData(sparse, runs, path) };
}

async function* alignedData(sparse: SparseFile, aligned: readonly DataRun[], path: string): AsyncGenerator<Uint8Array> {
  const src = sparse.data()[Symbol.asyncIterator]();
  let buf: Uint8Array = new Uint8Array(0);
  const some = async (max: number): Promise<Uint8Array> => {
    while (buf.length === 0) {
      const r = await src.next();
      if (r.done) throw new Ext4Error('EINVAL', `${path}: the sparse data ended before its map's runs`);
      buf = r.value;
    }
    const out = buf.subarray(0, Math.min(max, buf.length));
    buf = buf.subarray(out.length);
    return out;
  };
  let i = 0;
  const runs = sparse.runs;
  for (const a of aligned) {
    let pos = a.offset;
    const aEnd = a.offset + a.length;
    for (; i < runs.length && runs[i]!.offset < aEnd; i++) {
      const r = runs[i]!;
      if (r.length === 0) continue;
      if (r.offset > pos) yield new Uint8Array(r.offset - pos); // under two blocks
      for (let left = r.length; left > 0; ) {
        const b = await some(left);
        yield b;
        left -= b.length;
      }
      pos = r.offset + r.length;
    }
    if (aEnd > pos) yield new Uint8Array(aEnd - pos);
  }
  if (buf.length) throw new Ext4Error('EINVAL', `${path}: the sparse data is longer than its map's runs`);
  // Any more is an error too (importTree's hasMore asks this generator, which has stopped).
  for (;;) {
    const r = await src.next();
    if (r.done) return;
    if (r.value.length) throw new Ext4Error('EINVAL', `${path}: the sparse data is longer than its map's runs`);
  }
}

/** Whether a source yields any more bytes (empty chunks skipped). */
async function hasMore(source: AsyncIterator<Uint8Array> | null): Promise<boolean> {
  if (!source) return false;
  for (;;) {
    const r = await source.next();
    if (r.done) return false;
    if (r.value.length) return true;
  }
}

/**
 * The producer's zero map of `piece`'s buffer when it answers for whole blocks of it: the piece
 * starts on a unit boundary and a block is whole units (1k/2k blocks smaller than the unit are
 * scanned).
 */
function usableZeroUnits(piece: Uint8Array, bs: number): ZeroUnits | null {
  const z = zeroUnitsOf(piece.buffer);
  return z !== undefined && bs % z.unit === 0 && piece.byteOffset % z.unit === 0 ? z : null;
}

/** Whether block `b` of `piece` (clipped to the piece) is all zeros: every unit of it in the zero map, else by scanning. */
function blockIsZero(piece: Uint8Array, b: number, bs: number, z: ZeroUnits | null): boolean {
  if (z === null) return isZeroRange(piece, b * bs, (b + 1) * bs);
  const u = z.unit, zero = z.zero;
  const stop = Math.ceil((piece.byteOffset + Math.min(piece.length, (b + 1) * bs)) / u);
  for (let k = (piece.byteOffset + b * bs) / u; k < stop; k++) if (zero[k] === 0) return false;
  return true;
}

