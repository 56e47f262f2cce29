/**
 * The Filesystem facade: opens a device, validates the superblock and features, and gives
 * typed, validated access to every structure through its parts —
 *   volume.ts         superblock, group descriptors, bitmaps, the block view stack
 *   inode-store.ts    inode locations and inodes
 *   file-reader.ts    file maps, data, streams, inline data, symlinks, xattrs
 *   dir-reader.ts     directory entries, lookup, path resolution
 *   write-session.ts  the writer queue, transactions, commits, journal, MMP, error state
 * A journal that needs recovery is replayed into an in-memory overlay on read-only opens, so
 * reads see what the kernel would. Internals (cache, journal, overlay, MMP, commit hooks) are
 * reached through internals.ts, not this class's public type.
 */
import type { BlockDevice } from '../io/device.js';
import { Ext4Error } from '../errors.js';
import { INCOMPAT, COMPAT, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, parseSuperblock, type Superblock } from './superblock.js';
import { assertOpenable, judgeFeatures } from './features.js';
import type { GroupDesc } from './group-desc.js';
import type { Inode, FileType } from './inode.js';
import type { XattrEntry } from './xattr.js';
import { bytesEqual, decodeName } from './bytes.js';
import type { Transaction, FsWriter } from './transaction.js';
import type { MmpOptions } from './mmp.js';
import { internalJournal, replayIntoOverlay, type ReplaySummary } from './journal-replay.js';
import { makeClock, isReproducible, type Clock, type NowOption } from './clock.js';
import type { FsErrorInfo } from './error-state.js';
import { resolvePlatform, type Platform } from './platform.js';
import { registerInternals } from './internals.js';
import { Volume } from './volume.js';
import { InodeStore } from './inode-store.js';
import { isFastSymlink, type FileMap } from './file-map.js';
import { FileReader, DATA_READ_CHUNK } from './file-reader.js';
import { DirReader, type DirEntry, type Dirent } from './dir-reader.js';
import { WriteSession, type WriteStats } from './write-session.js';
import { summariseSuperblock, type SuperblockSummary } from './superblock-summary.js';
export { bytesEqual, decodeName };
export type { FileMap, DirEntry, Dirent, FileType, SuperblockSummary, WriteStats };

export interface OpenOptions {
  /** Open read-write (default false). */
  write?: boolean;
  /** Verify metadata checksums (default true). With false, mismatches are ignored ("read anyway"). */
  verifyChecksums?: boolean;
  /** Metadata cache size in bytes (default 64 MiB). */
  cacheBytes?: number;
  /**
   * What to do when the journal needs recovery on a read-only open:
   * 'overlay' (default) replays it into memory; 'refuse' throws EBUSY-like EFSCORRUPTED;
   * 'ignore' reads the stale on-disk state (for forensic tools only).
   */
  journalRecovery?: 'overlay' | 'refuse' | 'ignore';
  /** Multi-mount protection on write opens of an INCOMPAT_MMP fs (mmp.ts): `force` takes over a stale FSCK sequence; sleeps are injectable. */
  mmp?: MmpOptions;
  /**
   * When committed transactions are written home: 'lazy' (default) batches them
   * until the log fills up or the fs is closed, like the kernel; 'each' checkpoints
   * after every commit (the log is empty between operations).
   */
  checkpoint?: 'lazy' | 'each';
  /**
   * The time written into inodes and the superblock: a Date, ms since the epoch or {sec, nsec}.
   * Default: SOURCE_DATE_EPOCH when set, else the system clock. Fix it to build reproducible images.
   */
  now?: NowOption;
  /**
   * When a write call finds the filesystem corrupt, also record it on disk as the kernel does
   * (s_state ERROR_FS, s_error_count, s_first_error_* / s_last_error_*), so that e2fsck checks it.
   * Default false: the failed call leaves the image unchanged; the error is kept in memory only
   * (`fs.errorState`) and later write calls on this open fail with EROFS.
   */
  recordErrors?: boolean;
  /** Close the device when the filesystem is closed or the open fails (default false; true for paths opened by ext4kit/node). */
  closeDevice?: boolean;
  /** Hostname (for MMP) and randomness (platform.ts). Default: Web Crypto and the node name "ext4kit"; ext4kit/node passes os.hostname(). */
  platform?: Partial<Platform>;
}

// `await using fs = …` needs Symbol.asyncDispose: Node ≥ 18.18 defines it, older runtimes and some
// browsers do not. Create the well-known symbol there (as the TC39 proposal's polyfills do) before
// the class below uses it as a method key.
(Symbol as { asyncDispose?: symbol }).asyncDispose ??= Symbol.for('Symbol.asyncDispose');

export class Filesystem implements FsWriter {
  readonly device: BlockDevice;
  /** The superblock as the format layer reads it (raw s_* fields); `superblock` is the summary for users. */
  readonly sb: Readonly<Superblock>;
  readonly blockSize: number;
  readonly fsSeed: number;
  readonly verify: boolean;
  readonly readOnly: boolean;
  /** Why the fs is read-only when opened for writing was refused (feature policy). */
  readonly readOnlyReasons: string[];
  /** Warnings for the caller (the format layer never prints). */
  readonly warnings: string[] = [];
  /** Current time for everything this session writes (OpenOptions.now, SOURCE_DATE_EPOCH, or the clock). */
  readonly now: Clock;
  /** True when the clock is fixed (option or SOURCE_DATE_EPOCH): random values written are then derived deterministically. */
  readonly reproducible: boolean;
  /** Hostname and CSPRNG of this open (OpenOptions.platform with defaults; random.ts reads it as the RandomSource's). */
  readonly platform: Platform;
  readonly #vol: Volume;
  readonly #inodes: InodeStore;
  readonly #files: FileReader;
  readonly #dirs: DirReader;
  readonly #session: WriteSession;
  readonly #ownsDevice: boolean;
  #closed = false;

  protected constructor(device: BlockDevice, sb: Superblock, opts: OpenOptions, ownsDevice: boolean, roReasons: string[]) {
    const vol = new Volume(device, sb, { verify: opts.verifyChecksums !== false, cacheBytes: opts.cacheBytes });
    this.#vol = vol;
    this.device = device;
    this.sb = sb;
    this.blockSize = vol.blockSize;
    this.fsSeed = vol.fsSeed;
    this.verify = vol.verify;
    this.readOnly = !opts.write;
    this.readOnlyReasons = roReasons;
    this.#ownsDevice = ownsDevice;
    this.now = makeClock(opts.now);
    this.reproducible = isReproducible(opts.now);
    this.platform = resolvePlatform(opts.platform);
    this.#inodes = new InodeStore(vol);
    this.#files = new FileReader(vol, this.#inodes);
    this.#dirs = new DirReader(vol, this.#inodes, this.#files);
    const session = new WriteSession(this, vol, { readOnly: this.readOnly, recordErrors: opts.recordErrors === true, checkpoint: opts.checkpoint, mmp: opts.mmp });
    this.#session = session;
    registerInternals(this, {
      cache: vol.cache,
      view: vol.view,
      get overlay() { return vol.overlay; },
      get journal() { return session.journal; },
      get mmp() { return session.mmp; },
      get commitHooks() { return session.commitHooks; },
      set commitHooks(h) { session.commitHooks = h; },
    });
  }

  /**
   * Open a filesystem on a BlockDevice (a browser or memory device, or one from ext4kit/node —
   * whose own `Filesystem.open` also takes a path). With `closeDevice`, closing the filesystem
   * (or a failed open) closes the device too.
   */
  static async open(device: BlockDevice, opts: OpenOptions = {}): Promise<Filesystem> {
    const owns = opts.closeDevice === true;
    try {
      const sbBytes = await device.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE).catch((e: unknown) => {
        throw new Ext4Error('EINVAL', `cannot read a superblock from ${device.name}: image too small or unreadable`, { structure: 'superblock', location: { kind: 'byte', offset: 1024 }, cause: e });
      });
      const sb = parseSuperblock(sbBytes, { deviceSize: device.size, verifyChecksum: opts.verifyChecksums !== false });
      assertOpenable(sb, { write: !!opts.write });
      const verdict = judgeFeatures(sb);
      if (opts.write && verdict.readOnly.length)
        throw new Ext4Error('EROFS', `cannot open for writing: ${verdict.readOnly.join('; ')}`, { structure: 'superblock', location: { kind: 'field', field: 'features' } });
      if (opts.write && device.readOnly) throw new Ext4Error('EROFS', `${device.name} is read-only`);
      const fs = new this(device, sb, opts, owns, verdict.readOnly);
      await fs.#init(opts);
      return fs;
    } catch (e) {
      if (owns) await device.close();
      throw e;
    }
  }

  async #init(opts: OpenOptions): Promise<void> {
    await this.#vol.loadDescriptorBlocks();
    if (!this.readOnly) return this.#session.open();
    if (this.sb.s_feature_incompat & INCOMPAT.RECOVER && this.sb.s_feature_compat & COMPAT.HAS_JOURNAL) {
      const mode = opts.journalRecovery ?? 'overlay';
      if (mode === 'overlay') {
        const { blocks } = await replayIntoOverlay(await internalJournal(this, this.device), this.sb.blocksCount);
        this.#vol.adoptOverlay(blocks);
      } else if (mode === 'refuse')
        throw new Ext4Error('EBUSY', 'the journal needs recovery (the filesystem is mounted elsewhere or was not cleanly unmounted); open read-only to see the replayed state, or run `ext4kit replay`', { structure: 'superblock', location: { kind: 'field', field: 'needs_recovery' } });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#session.close();
    } finally {
      this.#closed = true;
      if (this.#ownsDevice) await this.device.close();
    }
  }

  /** `await using fs = await Filesystem.open(…)` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** The superblock for users: sizes, counts, features, UUID, label, state (a snapshot). */
  get superblock(): SuperblockSummary {
    return summariseSuperblock(this.sb);
  }

  // ---------------------------------------------------------------- write session

  /** Statistics of the write session. */
  get writeStats(): Readonly<WriteStats> {
    return this.#session.writeStats;
  }

  /**
   * The first corruption (EFSCORRUPTED / EFSBADCRC) a write call found on this open: later
   * writes fail with EROFS naming it, like the kernel's errors=remount-ro (error-state.ts).
   */
  get errorState(): FsErrorInfo | null {
    return this.#session.errorState;
  }

  /** Result of the journal replay done when this fs was opened for writing, if any. */
  get replayed(): ReplaySummary | null {
    return this.#session.replayed;
  }

  /**
   * Run `fn` as one atomic transaction: operations are serialised (one
   * writer at a time; concurrent callers queue), the transaction's blocks are
   * committed through the journal and checkpointed before this resolves.
   * If `fn` throws, nothing is written.
   */
  transact<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
    return this.#session.transact(fn);
  }

  /** Serialise an operation with the writers without starting a transaction (e.g. a consistent read). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.#session.exclusive(fn);
  }

  /** Write every committed transaction home and empty the journal (also done when the log fills and at close). */
  checkpoint(): Promise<void> {
    return this.#session.checkpoint();
  }

  // ---------------------------------------------------------------- blocks, groups, inodes

  /** A metadata block as the filesystem currently sees it (cached; treat as read-only). */
  readBlock(n: number): Promise<Uint8Array> {
    return this.#vol.readBlock(n);
  }

  /** Blocks [n, n+count) read directly (not cached), as the filesystem currently sees them. */
  readDataBlocks(n: number, count: number): Promise<Uint8Array> {
    return this.#vol.readBlocks(n, count);
  }

  /** The allocation-free variant of readDataBlocks for bulk copies (`target` is count × blockSize bytes). */
  readDataBlocksInto(n: number, count: number, target: Uint8Array): Promise<void> {
    return this.#vol.readBlocksInto(n, count, target);
  }

  group(g: number): Promise<GroupDesc> {
    return this.#vol.group(g);
  }

  /** Decode the descriptors of groups [first, end) in one pass per descriptor block. */
  loadGroups(first?: number, end?: number): Promise<void> {
    return this.#vol.loadGroups(first, end);
  }

  /** The block bitmap of group g; computed (not read) for BLOCK_UNINIT groups. */
  blockBitmap(g: number): Promise<Uint8Array> {
    return this.#vol.blockBitmap(g);
  }

  inodeBitmap(g: number): Promise<Uint8Array> {
    return this.#vol.inodeBitmap(g);
  }

  /** Total blocks in group g (the last may be short). */
  blocksInGroup(g: number): number {
    return this.#vol.blocksInGroup(g);
  }

  /** Where inode `ino` lives: block and byte offset within it. */
  inodeLocation(ino: number): Promise<{ block: number; offset: number }> {
    return this.#inodes.inodeLocation(ino);
  }

  readInode(ino: number): Promise<Inode> {
    return this.#inodes.readInode(ino);
  }

  /** Seed of per-inode checksums (extent, directory blocks), or null without metadata_csum. */
  inodeCsumSeed(inode: Inode): number | null {
    return this.#inodes.inodeCsumSeed(inode);
  }

  // ---------------------------------------------------------------- files

  /** How the inode's logical blocks map to the disk (in blocks); `readBlock` lets a transaction supply its own view of tree blocks. */
  fileMap(inode: Inode, readBlock?: (n: number) => Promise<Uint8Array>): Promise<FileMap> {
    return this.#files.fileMap(inode, readBlock);
  }

  isFastSymlink(inode: Inode): boolean {
    return isFastSymlink(inode, this.blockSize);
  }

  /** Read `lengthBytes` bytes of the file at byte `position` (clipped to i_size); holes read as zeros. */
  read(inode: Inode, position: number, lengthBytes: number, map?: FileMap): Promise<Uint8Array> {
    return this.#files.read(inode, position, lengthBytes, map);
  }

  /** Read the file's bytes at `position` into `dest`; returns how many were read. */
  readInto(inode: Inode, position: number, dest: Uint8Array, map?: FileMap): Promise<number> {
    return this.#files.readInto(inode, position, dest, map);
  }

  /** Stream a file's bytes in chunks (see FileReader.stream for `reuseBuffer`). */
  stream(inode: Inode, chunkBytes = DATA_READ_CHUNK, opts: { reuseBuffer?: boolean } = {}): AsyncGenerator<Uint8Array> {
    return this.#files.stream(inode, chunkBytes, opts);
  }

  /** Inline data: i_block (60 bytes) followed by the system.data xattr value. */
  inlineData(inode: Inode): Promise<Uint8Array> {
    return this.#files.inlineData(inode);
  }

  readlink(inode: Inode): Promise<Uint8Array> {
    return this.#files.readlink(inode);
  }

  /** All xattrs (in-inode first, then the external block); EA-inode values are read. */
  xattrs(inode: Inode): Promise<XattrEntry[]> {
    return this.#files.xattrs(inode);
  }

  // ---------------------------------------------------------------- directories

  /**
   * The entries of a directory (a path, an inode number or an Inode), "." and ".." included:
   *   for await (const e of fs.readdir('/etc')) console.log(e.name, e.type);
   */
  async *readdir(dir: string | Uint8Array | number | Inode): AsyncGenerator<Dirent> {
    const inode = typeof dir === 'number' ? await this.readInode(dir) : typeof dir === 'string' || dir instanceof Uint8Array ? await this.resolve(dir) : dir;
    yield* this.#dirs.entries(inode);
  }

  /** Every live entry of a directory as stored (name bytes, dirent file type), including "." and "..". */
  readdirRaw(dir: Inode): Promise<DirEntry[]> {
    return this.#dirs.readdir(dir);
  }

  /** Look a name up in a directory: htree hash lookup when indexed, else a linear scan. */
  lookup(dir: Inode, name: Uint8Array): Promise<DirEntry | null> {
    return this.#dirs.lookup(dir, name);
  }

  /**
   * Resolve an absolute path (relative to the root) to an inode, following
   * symlinks in every component and (if followLast) in the last one; at most
   * 40 symlinks (ELOOP), like the kernel.
   */
  resolve(path: string | Uint8Array, opts: { followLast?: boolean } = {}): Promise<Inode> {
    return this.#dirs.resolve(path, opts);
  }
}
