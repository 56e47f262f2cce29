/**
 * The Filesystem object: opens a device, validates the superblock and
 * features, and gives typed, validated access to every structure — groups,
 * bitmaps, inodes, file maps, file data, directories, symlinks, xattrs.
 * Metadata goes through a block cache with read-ahead; file data is read in
 * large direct reads. A journal that needs recovery is replayed into an
 * in-memory overlay on read-only opens, so reads see what the kernel would.
 */
import type { BlockDevice } from '../io/device.js';
import { BlockCache } from '../io/cache.js';
import { Ext4Error } from '../errors.js';
import { INCOMPAT, COMPAT, S_FLAGS, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, parseSuperblock, type Superblock } from './superblock.js';
import { assertOpenable, judgeFeatures } from './features.js';
import { fsSeed as computeFsSeed, inodeSeed } from './checksum.js';
import { descPerBlock, descBlockCount, descriptorBlockLocation, groupOfInode, inodeTableBlocks, blocksInGroup } from './geometry.js';
import { BG_FLAGS, checkGroupDesc, parseGroupDesc, uninitFlagsHonoured, type GroupDesc } from './group-desc.js';
import { parseInode, INODE_FLAGS, type Inode, type FileType, hasInlineData, isExtentMapped } from './inode.js';
import { walkExtentTree, findExtent, type Extent } from './extents.js';
import { walkBlockMap } from './blockmap.js';
import { parseInodeXattrs, parseXattrBlock, type XattrEntry } from './xattr.js';
import { bitmapChecksumMatches, blockBitmapChecksum, computeUninitBlockBitmap, computeUninitInodeBitmap, inodeBitmapChecksum } from './bitmap.js';
import { parseDirBlock, parseInlineDir, type DirEntry as RawDirEntry } from './directory.js';
import { htreeLookup, classifyDirBlock } from './htree.js';
import { ciLookupName } from './casefold.js';
import { DirEntryLayout } from './directory.js';
import { bytesEqual, concatBytes, decodeName } from './bytes.js';
import { Transaction } from './transaction.js';
import { applyPendingFrees } from './alloc.js';
import { JournalState, checkpoint, commitJournaled, commitUnjournaled, type CommitHooks, type CommitStats } from './commit.js';
import { JINCOMPAT, JCOMPAT, parseJournalSuperblock, refreshJournalSuperblock } from '../jbd2/format.js';
import { planReplay, replayJournal, replayIntoOverlay, type ReplaySummary } from './journal-replay.js';
import { STATE, serializeSuperblock } from './superblock.js';
import { MMP_SEQ_MAX, MmpSession, type MmpOptions } from './mmp.js';
import { processOrphans } from './orphan.js';
import { makeClock, isReproducible, type Clock, type NowOption } from './clock.js';
import { errorInfoOf, isCorruption, readOnlyAfterError, saveErrorInfo, type FsErrorInfo } from './error-state.js';
import { randomBelow } from './random.js';
export { bytesEqual, decodeName };

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
}

/** How a file's logical blocks map to the disk. */
export interface FileMap {
  extents: Extent[];
  /** Blocks owned for bookkeeping: extent-tree nodes or indirect blocks. */
  metadataBlocks: number[];
  /** Extent tree depth (0 = all in the inode), or -1 for block-mapped/inline. */
  depth: number;
  kind: 'extents' | 'blockmap' | 'inline' | 'none';
}

export interface DirEntry {
  name: Uint8Array;
  ino: number;
  /** dirent file_type (0 if the fs lacks the filetype feature). */
  fileType: number;
}

const MAX_SYMLINK_HOPS = 40; // the kernel's MAXSYMLINKS
/**
 * Largest single device read for file data, and `stream`'s default chunk. Not larger: every read
 * gets a fresh buffer, and glibc hands buffers above ~4 MiB back to the kernel when they are freed,
 * so each new one page-faults in (measured: 8 MiB chunks read a cached 256 MiB file 10x slower
 * than 1 MiB chunks, nearly all of it in the kernel).
 */
const DATA_READ_CHUNK = 1024 * 1024;

export class Filesystem {
  readonly device: BlockDevice;
  readonly sb: Superblock;
  readonly blockSize: number;
  readonly fsSeed: number;
  readonly verify: boolean;
  readonly readOnly: boolean;
  /** Why the fs is read-only when opened for writing was refused (feature policy). */
  readonly readOnlyReasons: string[];
  readonly cache: BlockCache;
  /** Blocks replayed from the journal into memory (read-only opens of a fs that needs recovery). */
  overlay: Map<number, Uint8Array> | null = null;
  private readonly groupDescs = new Map<number, GroupDesc>();
  private readonly ownsDevice: boolean;
  /** Journal state while open for writing (null without a journal or read-only). */
  journal: JournalState | null = null;
  /** Warnings for the caller (the format layer never prints). */
  readonly warnings: string[] = [];
  /** Test hooks called at each commit step (crash injection). */
  commitHooks: CommitHooks = {};
  /** Statistics of the write session. */
  readonly writeStats = { transactions: 0, bytesWritten: 0, metadataBlocks: 0, revokes: 0 };
  /** The held MMP block while open for writing an INCOMPAT_MMP fs (mmp.ts). */
  mmp: MmpSession | null = null;
  /** Current time for everything this session writes (OpenOptions.now, SOURCE_DATE_EPOCH, or the clock). */
  readonly now: Clock;
  /** True when the clock is fixed (option or SOURCE_DATE_EPOCH): random values written are then derived deterministically. */
  readonly reproducible: boolean;
  /**
   * The first corruption (EFSCORRUPTED / EFSBADCRC) a write call found on this open: later
   * writes fail with EROFS naming it, like the kernel's errors=remount-ro (error-state.ts).
   */
  errorState: FsErrorInfo | null = null;
  private readonly recordErrors: boolean;
  /**
   * True once the write session has begun on disk: the first commit writes the journal
   * superblock and needs_recovery (or clears VALID_FS) before its own blocks; until then an
   * open for writing has written nothing and close writes nothing either.
   */
  private sessionStarted = false;
  /** Whether this open wrote anything outside transactions (journal replay at open, an error record). */
  private wroteOutsideSession = false;
  /** What the first commit overwrote to begin the session, to put back if that commit is refused (E2BIG). */
  private sessionUndo: { sb: Uint8Array; jsb: Uint8Array | null; state: number; incompat: number } | null = null;
  private opQueue: Promise<unknown> = Promise.resolve();
  private broken: Error | null = null;
  private closed = false;

  protected constructor(device: BlockDevice, sb: Superblock, opts: OpenOptions, ownsDevice: boolean, roReasons: string[]) {
    this.device = device;
    this.sb = sb;
    this.blockSize = sb.blockSize;
    this.fsSeed = computeFsSeed(sb.s_uuid, sb.s_feature_incompat & INCOMPAT.CSUM_SEED ? sb.s_checksum_seed : undefined);
    this.verify = opts.verifyChecksums !== false;
    this.readOnly = !opts.write;
    this.readOnlyReasons = roReasons;
    this.ownsDevice = ownsDevice;
    this.cache = new BlockCache(device, sb.blockSize, { maxBytes: opts.cacheBytes ?? 64 * 1024 * 1024 });
    this.now = makeClock(opts.now);
    this.reproducible = isReproducible(opts.now);
    this.recordErrors = opts.recordErrors === true;
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
        throw new Ext4Error('EINVAL', `cannot read a superblock from ${device.name}: image too small or unreadable`, { structure: 'superblock', location: 'byte 1024', cause: e });
      });
      const sb = parseSuperblock(sbBytes, { deviceSize: device.size, verifyChecksum: opts.verifyChecksums !== false });
      assertOpenable(sb, { write: !!opts.write });
      const verdict = judgeFeatures(sb);
      if (opts.write && verdict.readOnly.length)
        throw new Ext4Error('EROFS', `cannot open for writing: ${verdict.readOnly.join('; ')}`, { structure: 'superblock', location: 'features' });
      if (opts.write && device.readOnly) throw new Ext4Error('EROFS', `${device.name} is read-only`);
      const fs = new this(device, sb, opts, owns, verdict.readOnly);
      await fs.init(opts);
      return fs;
    } catch (e) {
      if (owns) await device.close();
      throw e;
    }
  }

  protected async init(opts: OpenOptions): Promise<void> {
    // Classic GDT: one contiguous read at open (fast even for 1 TiB: 128 blocks). meta_bg: on demand.
    if (!(this.sb.s_feature_incompat & INCOMPAT.META_BG)) {
      const n = descBlockCount(this.sb);
      await this.cache.getBlocks(descriptorBlockLocation(this.sb, 0), n);
    }
    if (!this.readOnly) {
      // MMP before anything is written; orphans released after journal replay (mmp.ts, orphan.ts).
      if (this.sb.s_feature_incompat & INCOMPAT.MMP) {
        const ms = () => {
          const t = this.now();
          return t.sec * 1000 + Math.floor(t.nsec / 1e6);
        };
        const newSeq = () => randomBelow(this, MMP_SEQ_MAX + 1, 'mmp sequence');
        this.mmp = await MmpSession.start(this.device, this.sb, this.fsSeed, { verify: this.verify, now: ms, newSeq, ...opts.mmp });
      }
      try {
        await this.prepareWriteSession(opts);
        await processOrphans(this);
      } catch (e) {
        if (this.sessionStarted && !this.broken) await this.endWriteSession().catch(() => undefined); // checkpoint, clear needs_recovery again
        await this.mmp?.release({ restore: this.wroteNothing() }).catch(() => undefined);
        throw e;
      }
      return;
    }
    if (this.sb.s_feature_incompat & INCOMPAT.RECOVER && this.sb.s_feature_compat & COMPAT.HAS_JOURNAL) {
      const mode = opts.journalRecovery ?? 'overlay';
      if (this.readOnly && mode === 'overlay') await this.loadJournalOverlay();
      else if (mode === 'refuse' || !this.readOnly)
        throw new Ext4Error('EBUSY', 'the journal needs recovery (the filesystem is mounted elsewhere or was not cleanly unmounted); open read-only to see the replayed state, or run `ext4kit replay`', { structure: 'superblock', location: 'needs_recovery' });
    }
  }

  private async loadJournalOverlay(): Promise<void> {
    const jino = this.sb.s_journal_inum;
    if (!jino) throw new Ext4Error('EOPNOTSUPP', 'external journals are not supported', { structure: 'superblock', location: 's_journal_inum' });
    const ji = await this.readInode(jino);
    const map = await this.fileMap(ji);
    const { blocks } = await replayIntoOverlay({
      blockSize: this.blockSize,
      readBlock: async (jb: number) => {
        const { extent } = findExtent(map.extents, jb);
        if (!extent) throw new Ext4Error('EFSCORRUPTED', `journal block ${jb} is not mapped`, { structure: `inode ${jino} (journal)`, location: `logical block ${jb}` });
        return this.device.read((extent.physical + jb - extent.logical) * this.blockSize, this.blockSize);
      },
    }, this.sb.blocksCount);
    this.adoptOverlay(blocks);
  }

  /** Read through replayed journal blocks from now on; the superblock itself may have been journaled. */
  private adoptOverlay(blocks: Map<number, Uint8Array>): void {
    const overlay = new Map(blocks);
    this.overlay = overlay;
    this.cache.invalidate();
    this.groupDescs.clear();
    const sbBlock = Math.floor(SUPERBLOCK_OFFSET / this.blockSize);
    const blk = overlay.get(sbBlock);
    if (blk) {
      const off = SUPERBLOCK_OFFSET - sbBlock * this.blockSize;
      Object.assign(this.sb, parseSuperblock(blk.subarray(off, off + SUPERBLOCK_SIZE), { deviceSize: this.device.size, verifyChecksum: this.verify }));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.opQueue.catch(() => undefined);
      if (!this.readOnly && !this.broken) {
        await this.mmp?.check();
        await this.applyPendingReplay();
        await this.endWriteSession();
      }
      await this.mmp?.release({ restore: this.wroteNothing() });
    } finally {
      this.mmp?.stop();
      this.closed = true;
      if (this.ownsDevice) await this.device.close();
    }
  }

  // ---------------------------------------------------------------- write session

  /** Nothing of this open reached the filesystem (the MMP block is then put back as found). */
  private wroteNothing(): boolean {
    return !this.sessionStarted && !this.wroteOutsideSession && !this.broken;
  }

  private async journalMap(): Promise<Extent[]> {
    const jino = this.sb.s_journal_inum;
    if (!jino) throw new Ext4Error('EOPNOTSUPP', 'external journals are not supported', { structure: 'superblock', location: 's_journal_inum' });
    const ji = await this.readInode(jino);
    return (await this.fileMap(ji)).extents;
  }

  /** Write the primary superblock in place (outside any transaction) and flush. */
  private async writeSuperblockInPlace(): Promise<void> {
    const bytes = serializeSuperblock(this.sb);
    await this.device.write(SUPERBLOCK_OFFSET, bytes);
    await this.device.flush();
    const sbBlock = Math.floor(SUPERBLOCK_OFFSET / this.blockSize);
    this.cache.invalidate(sbBlock);
  }

  /**
   * Open for writing: refuse a fs with errors, replay a journal that needs
   * it (as the kernel does at mount) and make the journal's features match
   * what we write — in memory: nothing else is written until the first
   * commit (startWriteSession), so an open whose calls all fail leaves the
   * image as it was.
   */
  private async prepareWriteSession(opts: OpenOptions = {}): Promise<void> {
    if (this.sb.s_state & STATE.ERROR_FS) throw new Ext4Error('EROFS', 'the filesystem has errors (ERROR_FS is set): run e2fsck before writing', { structure: 'superblock', location: 's_state' });
    if (this.sb.s_feature_compat & COMPAT.HAS_JOURNAL) {
      const map = await this.journalMap();
      const journal = await JournalState.load(this.device, this.blockSize, map);
      if (journal.jsb.s_errno) throw new Ext4Error('EROFS', `the journal was aborted (errno ${journal.jsb.s_errno}): run e2fsck`, { structure: 'journal superblock', location: 's_errno' });
      if (this.sb.s_feature_incompat & INCOMPAT.RECOVER) {
        // Replay as the kernel does at mount, but lazily: the replayed blocks are laid over the
        // device (every read sees the recovered state) and written home right before the first
        // commit (startWriteSession). An open whose calls all fail leaves the image as it was.
        const plan = await planReplay({ blockSize: this.blockSize, readBlock: (n: number) => journal.readBlock(n) }, this.sb.blocksCount);
        this.replayed = plan.summary;
        if (plan.summary.errorFs) throw new Ext4Error('EROFS', `the journal replay found a corrupt transaction (${plan.summary.errors.join('; ')}); run e2fsck before writing`, { structure: 'journal' });
        this.adoptOverlay(plan.blocks);
        this.pendingReplay = plan.blocks;
        // The superblock as recovery leaves it: needs_recovery cleared (the session sets it again).
        this.sb.s_feature_incompat &= ~INCOMPAT.RECOVER;
        if (plan.clearValidFs) this.sb.s_state &= ~STATE.VALID_FS;
        journal.jsb = parseJournalSuperblock(plan.jsbBlock);
      } else if (journal.jsb.s_start !== 0) {
        // The kernel discards such a log ("Clearing recovery information on journal"); the first
        // commit starts a new log cycle over it.
        journal.jsb.s_start = 0;
      }
      const jsb = journal.jsb;
      if (jsb.version < 2) throw new Ext4Error('EROFS', 'journal superblock v1 cannot be written', { structure: 'journal superblock' });
      if (this.sb.hasMetadataCsum) {
        jsb.s_feature_incompat = (jsb.s_feature_incompat | JINCOMPAT.CSUM_V3) & ~JINCOMPAT.CSUM_V2;
        jsb.s_feature_compat &= ~JCOMPAT.CHECKSUM;
        jsb.s_checksum_type = 4;
      }
      if (this.sb.is64) jsb.s_feature_incompat |= JINCOMPAT['64BIT'];
      journal.jsb = refreshJournalSuperblock(jsb); // written by startWriteSession
      journal.policy = opts.checkpoint ?? 'lazy';
      journal.onCheckpointed = (blocks) => {
        for (const [n, data] of blocks) this.cache.put(n, data);
      };
      this.journal = journal;
    } else {
      this.warnings.push('this filesystem has no journal: writes are ordered carefully, but a crash may need e2fsck to reclaim leaked blocks');
    }
  }

  /**
   * The on-disk flags of a write session, set in memory before the first commit is finalised
   * (so that its superblock image carries them) and undone if that commit never happens:
   * needs_recovery with a journal; without one, VALID_FS off — like a journal-less kernel
   * mount, "not clean" while writing, so that after a crash e2fsck -p checks the filesystem.
   */
  private markSessionFlags(): { state: number; incompat: number } {
    const saved = { state: this.sb.s_state, incompat: this.sb.s_feature_incompat };
    if (this.journal) this.sb.s_feature_incompat |= INCOMPAT.RECOVER;
    else this.sb.s_state &= ~STATE.VALID_FS;
    return saved;
  }

  /**
   * Begin the write session on disk, right before the first commit: the journal superblock
   * as we write it (features, checksum type), then the superblock with needs_recovery (or
   * VALID_FS off), flushed — jbd2 needs needs_recovery durable before any commit block
   * (jbd2.md §9.1). What is overwritten is kept to put back if that commit is refused.
   */
  private async startWriteSession(saved: { state: number; incompat: number }): Promise<void> {
    await this.applyPendingReplay();
    const sbBefore = await this.device.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE);
    const jsbBefore = this.journal ? await this.journal.readBlock(0) : null;
    this.sessionUndo = { sb: sbBefore, jsb: jsbBefore, ...saved };
    this.sessionStarted = true;
    if (this.journal) {
      await this.journal.writeSuperblock();
      await this.device.flush();
    }
    await this.writeSuperblockInPlace();
  }

  /** The first commit was refused before writing anything of its own: put back what startWriteSession wrote. */
  private async undoWriteSession(): Promise<void> {
    const u = this.sessionUndo;
    if (!u) return;
    if (u.jsb && this.journal) await this.journal.writeBlock(0, u.jsb);
    await this.device.write(SUPERBLOCK_OFFSET, u.sb);
    await this.device.flush();
    this.cache.invalidate(Math.floor(SUPERBLOCK_OFFSET / this.blockSize));
    this.sb.s_state = u.state;
    this.sb.s_feature_incompat = u.incompat;
    this.sessionUndo = null;
    this.sessionStarted = false;
  }

  /** Write every committed transaction home and empty the journal (also done when the log fills and at close). */
  async checkpoint(): Promise<void> {
    await this.exclusive(async () => {
      if (this.journal && !this.broken) await checkpoint(this.device, this.journal, this.blockSize, this.commitHooks);
    });
  }

  /** Close the write session: checkpoint, clear needs_recovery (or set VALID_FS), stamp. Nothing when nothing was committed. */
  private async endWriteSession(): Promise<void> {
    if (!this.sessionStarted) return;
    if (this.journal) await checkpoint(this.device, this.journal, this.blockSize, this.commitHooks);
    const now = this.now().sec;
    if (this.journal) this.sb.s_feature_incompat &= ~INCOMPAT.RECOVER;
    else this.sb.s_state |= STATE.VALID_FS;
    this.sb.s_wtime = now % 2 ** 32;
    this.sb.s_wtime_hi = Math.floor(now / 2 ** 32) & 0xff;
    this.sb.s_kbytes_written += Math.floor(this.writeStats.bytesWritten / 1024);
    await this.writeSuperblockInPlace();
  }

  /** Result of the journal replay done when this fs was opened for writing, if any. */
  replayed: ReplaySummary | null = null;
  /** Replayed blocks not yet written home (write opens replay lazily; see prepareWriteSession). */
  private pendingReplay: Map<number, Uint8Array> | null = null;

  /**
   * Write a deferred journal replay home, exactly as `ext4kit replay` / e2fsck -E journal_only
   * would (blocks, flush, journal superblock, superblock without needs_recovery): before the first
   * commit, or at close — a write open that commits nothing still completes recovery, like a
   * kernel mount and unmount. A call that fails on such an image thus leaves it as open + close.
   */
  private async applyPendingReplay(): Promise<void> {
    const replay = this.pendingReplay;
    const journal = this.journal;
    if (!replay || !journal) return;
    this.pendingReplay = null;
    this.wroteOutsideSession = true;
    await replayJournal({
      journal: { blockSize: this.blockSize, readBlock: (n: number) => journal.readBlock(n), writeBlock: (n: number, d: Uint8Array) => journal.writeBlock(n, d) },
      device: {
        writeBlock: async (n: number, d: Uint8Array) => {
          await this.device.write(n * this.blockSize, d);
        },
        flush: () => this.device.flush(),
      },
      superblock: {
        read: async () => parseSuperblock(await this.device.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE), { deviceSize: this.device.size, verifyChecksum: false }),
        write: async (bytes: Uint8Array) => { await this.device.write(SUPERBLOCK_OFFSET, bytes); },
      },
      now: this.now().sec,
    });
    for (const [n, d] of replay) this.cache.put(n, d);
    this.cache.invalidate(Math.floor(SUPERBLOCK_OFFSET / this.blockSize));
    this.overlay = null;
  }

  /**
   * Run `fn` as one atomic transaction: operations are serialised (one
   * writer at a time; concurrent callers queue), the transaction's blocks are
   * committed through the journal and checkpointed before this resolves.
   * If `fn` throws, nothing is written.
   */
  async transact<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.readOnly) throw new Ext4Error('EROFS', 'the filesystem is open read-only');
      if (this.closed) throw new Ext4Error('EINVAL', 'the filesystem is closed');
      if (this.broken) throw new Ext4Error('EIO', `an earlier commit failed; reopen the filesystem (${this.broken.message})`);
      if (this.errorState) throw readOnlyAfterError(this.errorState);
      this.mmp?.assertHeld();
      const tx = new Transaction(this);
      try {
        const result = await fn(tx);
        if (!tx.isEmpty()) await this.commit(tx);
        return result;
      } catch (e) {
        if (isCorruption(e)) await this.noteError(e);
        throw e;
      }
    };
    const p = this.opQueue.then(run, run);
    this.opQueue = p.catch(() => undefined);
    return p;
  }

  /** Serialise an operation with the writers without starting a transaction (e.g. a consistent read). */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.opQueue.then(fn, fn);
    this.opQueue = p.catch(() => undefined);
    return p;
  }

  /**
   * Remember the first corruption found by a write call (later writes: EROFS); with
   * `recordErrors`, also write it into the superblock as the kernel does — after a checkpoint,
   * so that no logged superblock image is written home over it later.
   */
  private async noteError(e: Ext4Error): Promise<void> {
    if (this.errorState) return;
    this.errorState = errorInfoOf(e, this.now());
    if (!this.recordErrors || this.broken) return;
    try {
      if (this.journal) await checkpoint(this.device, this.journal, this.blockSize, this.commitHooks);
      saveErrorInfo(this.sb, this.errorState);
      this.wroteOutsideSession = true;
      await this.writeSuperblockInPlace();
    } catch (w) {
      this.broken = w as Error;
    }
  }

  private async commit(tx: Transaction): Promise<CommitStats> {
    const first = !this.sessionStarted;
    const saved = first ? this.markSessionFlags() : null;
    const interim = new Map<number, Uint8Array>();
    let newSb: Superblock;
    try {
      newSb = await tx.finalise(async (t) => {
        if (!this.journal) for (const gd of t.groups.values()) { const b = t.blocks.get(gd.blockBitmap); if (b) interim.set(gd.blockBitmap, b.slice()); }
        await applyPendingFrees(t);
      });
    } catch (e) {
      if (saved) Object.assign(this.sb, { s_state: saved.state, s_feature_incompat: saved.incompat });
      throw e;
    }
    let stats: CommitStats;
    try {
      if (saved) await this.startWriteSession(saved);
      stats = this.journal ? await commitJournaled(this.device, this.journal, tx, this.commitHooks) : await commitUnjournaled(this.device, tx, interim, this.commitHooks);
    } catch (e) {
      // E2BIG: refused before anything of the transaction was written.
      if (e instanceof Ext4Error && e.code === 'E2BIG') {
        if (first) await this.undoWriteSession().catch((u: unknown) => { this.broken = u as Error; });
      } else this.broken = e as Error;
      throw e;
    }
    this.sessionUndo = null;
    // The transaction is durable and checkpointed: publish its state.
    for (const [n, data] of tx.blocks) this.cache.put(n, data);
    for (const gd of tx.groups.values()) this.setGroupDesc(gd);
    Object.assign(this.sb, newSb);
    this.writeStats.transactions++;
    this.writeStats.metadataBlocks += stats.metadataBlocks;
    this.writeStats.revokes += stats.revokes;
    this.writeStats.bytesWritten += stats.dataBytes + stats.metadataBlocks * this.blockSize * (this.journal ? 2 : 1);
    return stats;
  }

  // ---------------------------------------------------------------- blocks

  /** A metadata block (cached; treat as read-only). */
  async readBlock(n: number): Promise<Uint8Array> {
    if (!Number.isInteger(n) || n < 0 || n >= this.sb.blocksCount)
      throw new Ext4Error('EFSCORRUPTED', `block ${n} is outside the filesystem (${this.sb.blocksCount} blocks)`, { structure: 'block pointer', location: `block ${n}` });
    const o = this.overlay?.get(n) ?? this.journal?.pending.get(n);
    if (o) return o;
    return this.cache.getBlock(n);
  }

  /** Raw data blocks [n, n+count) read directly (not cached), overlay applied. */
  async readDataBlocks(n: number, count: number): Promise<Uint8Array> {
    if (n < 0 || n + count > this.sb.blocksCount) throw new Ext4Error('EFSCORRUPTED', `blocks ${n}+${count} are outside the filesystem`);
    const data = await this.device.read(n * this.blockSize, count * this.blockSize);
    if (this.overlay && this.overlay.size) {
      for (const [b, bytes] of this.overlay) if (b >= n && b < n + count) data.set(bytes, (b - n) * this.blockSize);
    }
    return data;
  }

  /**
   * Raw data blocks [n, n+count) read into `target` (count × blockSize bytes),
   * overlay applied: the allocation-free variant of readDataBlocks for bulk
   * copies (the device's readInto when it has one).
   */
  async readDataBlocksInto(n: number, count: number, target: Uint8Array): Promise<void> {
    if (n < 0 || n + count > this.sb.blocksCount) throw new Ext4Error('EFSCORRUPTED', `blocks ${n}+${count} are outside the filesystem`);
    if (target.length !== count * this.blockSize) throw new Ext4Error('EINVAL', `readDataBlocksInto: ${target.length}-byte buffer for ${count} blocks`);
    if (this.device.readInto) await this.device.readInto(n * this.blockSize, target);
    else target.set(await this.device.read(n * this.blockSize, count * this.blockSize));
    if (this.overlay && this.overlay.size) {
      for (const [b, bytes] of this.overlay) if (b >= n && b < n + count) target.set(bytes, (b - n) * this.blockSize);
    }
  }

  // ---------------------------------------------------------------- groups

  async group(g: number): Promise<GroupDesc> {
    if (!Number.isInteger(g) || g < 0 || g >= this.sb.groupCount) throw new Ext4Error('EINVAL', `group ${g} does not exist`);
    const cached = this.groupDescs.get(g);
    if (cached) return cached;
    const per = descPerBlock(this.sb);
    const block = await this.readBlock(descriptorBlockLocation(this.sb, Math.floor(g / per)));
    const off = (g % per) * this.sb.descSize;
    const gd = parseGroupDesc(this.sb, g, block.subarray(off, off + this.sb.descSize));
    checkGroupDesc(this.sb, gd, this.fsSeed, this.verify);
    this.groupDescs.set(g, gd);
    return gd;
  }

  /**
   * Decode the descriptors of groups [first, end) in one pass per descriptor
   * block (same validation as group()): bulk scans over thousands of groups
   * (getFreeBlocks, fsmap) otherwise pay an async block lookup per group.
   */
  async loadGroups(first = 0, end = this.sb.groupCount): Promise<void> {
    const per = descPerBlock(this.sb);
    const size = this.sb.descSize;
    first = Math.max(0, first);
    end = Math.min(this.sb.groupCount, end);
    for (let g = first; g < end; ) {
      const bi = Math.floor(g / per);
      const stop = Math.min(end, (bi + 1) * per);
      let h = g;
      while (h < stop && this.groupDescs.has(h)) h++;
      if (h < stop) {
        const block = await this.readBlock(descriptorBlockLocation(this.sb, bi));
        for (; h < stop; h++) {
          if (this.groupDescs.has(h)) continue;
          const off = (h % per) * size;
          const gd = parseGroupDesc(this.sb, h, block.subarray(off, off + size));
          checkGroupDesc(this.sb, gd, this.fsSeed, this.verify);
          this.groupDescs.set(h, gd);
        }
      }
      g = stop;
    }
  }

  /** Replace the cached descriptor (used by the write path after it changes one). */
  protected setGroupDesc(gd: GroupDesc): void {
    this.groupDescs.set(gd.group, gd);
  }

  /** The block bitmap of group g; computed (not read) for BLOCK_UNINIT groups. */
  async blockBitmap(g: number): Promise<Uint8Array> {
    const gd = await this.group(g);
    if (uninitFlagsHonoured(this.sb) && gd.flags & BG_FLAGS.BLOCK_UNINIT) return computeUninitBlockBitmap(this.sb, gd);
    const bm = await this.readBlock(gd.blockBitmap);
    if (this.verify && this.sb.hasMetadataCsum) {
      const c = blockBitmapChecksum(bm, this.fsSeed, this.sb.s_clusters_per_group);
      if (!bitmapChecksumMatches(c, gd.blockBitmapCsum, this.sb.descSize, this.sb.descSize >= 0x3a))
        throw new Ext4Error('EFSBADCRC', `block bitmap checksum mismatch`, { structure: 'block bitmap', location: `group ${g} block ${gd.blockBitmap}` });
    }
    return bm;
  }

  async inodeBitmap(g: number): Promise<Uint8Array> {
    const gd = await this.group(g);
    if (uninitFlagsHonoured(this.sb) && gd.flags & BG_FLAGS.INODE_UNINIT) return computeUninitInodeBitmap(this.sb);
    const bm = await this.readBlock(gd.inodeBitmap);
    if (this.verify && this.sb.hasMetadataCsum) {
      const c = inodeBitmapChecksum(bm, this.fsSeed, this.sb.s_inodes_per_group);
      if (!bitmapChecksumMatches(c, gd.inodeBitmapCsum, this.sb.descSize, this.sb.descSize >= 0x3c))
        throw new Ext4Error('EFSBADCRC', `inode bitmap checksum mismatch`, { structure: 'inode bitmap', location: `group ${g} block ${gd.inodeBitmap}` });
    }
    return bm;
  }

  // ---------------------------------------------------------------- inodes

  /** Where inode `ino` lives: block and byte offset within it. */
  async inodeLocation(ino: number): Promise<{ block: number; offset: number }> {
    if (!Number.isInteger(ino) || ino < 1 || ino > this.sb.s_inodes_count) throw new Ext4Error('EINVAL', `inode ${ino} does not exist (inodes count ${this.sb.s_inodes_count})`);
    const g = groupOfInode(this.sb, ino);
    const gd = await this.group(g);
    const index = (ino - 1) % this.sb.s_inodes_per_group;
    const byte = index * this.sb.s_inode_size;
    const block = gd.inodeTable + Math.floor(byte / this.blockSize);
    if (block >= gd.inodeTable + inodeTableBlocks(this.sb)) throw new Ext4Error('EFSCORRUPTED', `inode ${ino} outside its table`);
    return { block, offset: byte % this.blockSize };
  }

  async readInode(ino: number): Promise<Inode> {
    const { block, offset } = await this.inodeLocation(ino);
    const data = await this.readBlock(block);
    return parseInode(this.sb, ino, data.subarray(offset, offset + this.sb.s_inode_size), { fsSeed: this.fsSeed, verifyChecksum: this.verify });
  }

  /** Seed of per-inode checksums (extent, directory blocks), or null without metadata_csum. */
  inodeCsumSeed(inode: Inode): number | null {
    return this.sb.hasMetadataCsum ? inodeSeed(this.fsSeed, inode.ino, inode.generation) : null;
  }

  // ---------------------------------------------------------------- file maps and data

  /** How the inode's logical blocks map to the disk; `readBlock` lets a transaction supply its own view of tree blocks. */
  async fileMap(inode: Inode, readBlock: (n: number) => Promise<Uint8Array> = (n) => this.readBlock(n)): Promise<FileMap> {
    if (hasInlineData(inode)) return { extents: [], metadataBlocks: [], depth: -1, kind: 'inline' };
    const t = inode.type;
    // Fast symlinks and device nodes keep other data in i_block.
    if (t === 'chardev' || t === 'blockdev' || t === 'fifo' || t === 'socket') return { extents: [], metadataBlocks: [], depth: -1, kind: 'none' };
    if (t === 'symlink' && this.isFastSymlink(inode)) return { extents: [], metadataBlocks: [], depth: -1, kind: 'none' };
    const ctx = {
      ino: inode.ino,
      blockSize: this.blockSize,
      firstDataBlock: this.sb.s_first_data_block,
      blocksCount: this.sb.blocksCount,
      readBlock,
    };
    if (isExtentMapped(inode)) {
      const info = await walkExtentTree(inode.base.i_block, { ...ctx, csumSeed: this.inodeCsumSeed(inode), verify: this.verify });
      return { extents: info.extents, metadataBlocks: info.treeBlocks.map((b) => b.block), depth: info.depth, kind: 'extents' };
    }
    const info = await walkBlockMap(inode.base.i_block, ctx);
    return { extents: info.extents, metadataBlocks: info.indirectBlocks, depth: -1, kind: 'blockmap' };
  }

  isFastSymlink(inode: Inode): boolean {
    // kernel ext4_inode_is_fast_symlink: no data blocks besides the xattr block (and not inline data).
    if (inode.type !== 'symlink' || hasInlineData(inode)) return false;
    if (inode.flags & INODE_FLAGS.EA_INODE) return inode.size > 0 && inode.size < 60;
    const eaSectors = inode.fileAcl ? this.blockSize / 512 : 0;
    return inode.blocks512 - eaSectors === 0;
  }

  /**
   * Read `length` bytes of the file at `position` (clipped to i_size). Holes and
   * unwritten extents read as zeros. Pass a FileMap to avoid re-walking the tree.
   */
  async read(inode: Inode, position: number, length: number, map?: FileMap): Promise<Uint8Array> {
    if (position < 0 || length < 0) throw new Ext4Error('EINVAL', 'negative position or length');
    const end = Math.min(inode.size, position + length);
    if (end <= position) return new Uint8Array(0);
    const m = map ?? (await this.fileMap(inode));
    if (m.kind === 'inline') {
      const out = new Uint8Array(end - position);
      const data = await this.inlineData(inode);
      out.set(data.subarray(Math.min(position, data.length), Math.min(end, data.length)));
      return out;
    }
    const bs = this.blockSize;
    let lb = Math.floor(position / bs);
    const lastLb = Math.floor((end - 1) / bs);
    let { index, extent: first } = findExtent(m.extents, lb);
    // The whole range in one written extent and one device read (every chunk of `stream` over a
    // contiguous file): return the device's buffer itself — no second allocation, no copy.
    if (first && !first.unwritten && first.logical + first.length > lastLb && (lastLb - lb + 1) * bs <= DATA_READ_CHUNK) {
      const data = await this.readDataBlocks(first.physical + (lb - first.logical), lastLb - lb + 1);
      const s = position - lb * bs;
      return data.subarray(s, s + (end - position));
    }
    const out = new Uint8Array(end - position);
    while (lb <= lastLb) {
      const e = m.extents[index];
      if (!e || e.logical > lastLb) break;
      if (e.logical + e.length <= lb) { index++; continue; }
      const from = Math.max(lb, e.logical);
      const to = Math.min(lastLb + 1, e.logical + e.length);
      if (!e.unwritten) {
        for (let b = from; b < to; ) {
          const n = Math.min(to - b, DATA_READ_CHUNK / bs);
          const data = await this.readDataBlocks(e.physical + (b - e.logical), n);
          const fileOff = b * bs;
          const s = Math.max(position, fileOff), t = Math.min(end, fileOff + n * bs);
          out.set(data.subarray(s - fileOff, t - fileOff), s - position);
          b += n;
        }
      }
      lb = to;
      index++;
    }
    return out;
  }

  /**
   * Read the file's bytes at `position` into `dest` (at most dest.length, clipped to i_size) and
   * return how many were read. Holes and unwritten extents are zero-filled; whole blocks go from
   * the device straight into `dest` (no allocation), so a caller can reuse one buffer.
   */
  async readInto(inode: Inode, position: number, dest: Uint8Array, map?: FileMap): Promise<number> {
    if (position < 0 || !Number.isSafeInteger(position)) throw new Ext4Error('EINVAL', 'bad position');
    const end = Math.min(inode.size, position + dest.length);
    if (end <= position) return 0;
    const m = map ?? (await this.fileMap(inode));
    if (m.kind === 'inline') {
      dest.set(await this.read(inode, position, end - position, m));
      return end - position;
    }
    const bs = this.blockSize;
    // A partial first and last block go through read() (a block each at most).
    const headEnd = Math.min(end, Math.ceil(position / bs) * bs);
    if (headEnd > position) dest.set(await this.read(inode, position, headEnd - position, m), 0);
    const alignedEnd = Math.max(headEnd, Math.floor(end / bs) * bs);
    const at = (lb: number) => lb * bs - position;
    let lb = headEnd / bs;
    const stop = alignedEnd / bs;
    let { index } = findExtent(m.extents, lb);
    while (lb < stop) {
      const e = m.extents[index];
      if (!e || e.logical >= stop) {
        dest.fill(0, at(lb), at(stop));
        break;
      }
      if (e.logical + e.length <= lb) {
        index++;
        continue;
      }
      if (e.logical > lb) {
        dest.fill(0, at(lb), at(e.logical)); // hole
        lb = e.logical;
        continue;
      }
      const to = Math.min(stop, e.logical + e.length);
      if (e.unwritten) dest.fill(0, at(lb), at(to));
      else await this.readDataBlocksInto(e.physical + (lb - e.logical), to - lb, dest.subarray(at(lb), at(to)));
      lb = to;
      index++;
    }
    if (end > alignedEnd) dest.set(await this.read(inode, alignedEnd, end - alignedEnd, m), alignedEnd - position);
    return end - position;
  }

  /**
   * Stream a file's bytes in chunks (bounded memory). Each chunk is a fresh array, unless
   * `reuseBuffer` is set: then every chunk is a view of ONE buffer that the next iteration
   * overwrites (consume or copy it before asking for the next) — no allocation per chunk, which
   * is what makes bulk reads run at the speed of the device.
   */
  async *stream(inode: Inode, chunkBytes = DATA_READ_CHUNK, opts: { reuseBuffer?: boolean } = {}): AsyncGenerator<Uint8Array> {
    const map = await this.fileMap(inode);
    const chunk = Math.max(this.blockSize, Math.floor(chunkBytes / this.blockSize) * this.blockSize);
    if (opts.reuseBuffer) {
      const buf = new Uint8Array(Math.min(chunk, inode.size));
      for (let pos = 0; pos < inode.size; pos += chunk) {
        const n = await this.readInto(inode, pos, buf.subarray(0, Math.min(chunk, inode.size - pos)), map);
        yield buf.subarray(0, n);
      }
      return;
    }
    for (let pos = 0; pos < inode.size; pos += chunk) yield await this.read(inode, pos, Math.min(chunk, inode.size - pos), map);
  }

  /** Inline data: i_block (60 bytes) followed by the system.data xattr value. */
  async inlineData(inode: Inode): Promise<Uint8Array> {
    const data = inode.base.i_block;
    const ent = parseInodeXattrs(inode.raw, inode.extraIsize, inode.ino).find((x) => x.index === 7 && x.name === 'system.data');
    const extra = ent?.value ?? new Uint8Array(0);
    const all = new Uint8Array(60 + extra.length);
    all.set(data);
    all.set(extra, 60);
    return all.subarray(0, Math.min(all.length, inode.type === 'dir' ? all.length : inode.size));
  }

  // ---------------------------------------------------------------- symlinks, xattrs

  async readlink(inode: Inode): Promise<Uint8Array> {
    if (inode.type !== 'symlink') throw new Ext4Error('EINVAL', `inode ${inode.ino} is not a symlink`);
    if (inode.size > 4096 || inode.size === 0) throw new Ext4Error('EFSCORRUPTED', `symlink size ${inode.size} is invalid`, { structure: `inode ${inode.ino}` });
    if (inode.flags & INODE_FLAGS.ENCRYPT) throw new Ext4Error('EOPNOTSUPP', `symlink ${inode.ino} is encrypted`);
    if (this.isFastSymlink(inode)) return inode.base.i_block.slice(0, inode.size);
    return this.read(inode, 0, inode.size);
  }

  /** All xattrs (in-inode first, then the external block); EA-inode values are read. */
  async xattrs(inode: Inode): Promise<XattrEntry[]> {
    const list = parseInodeXattrs(inode.raw, inode.extraIsize, inode.ino);
    if (inode.fileAcl) {
      if (inode.fileAcl < this.sb.s_first_data_block || inode.fileAcl >= this.sb.blocksCount)
        throw new Ext4Error('EFSCORRUPTED', `xattr block ${inode.fileAcl} is outside the filesystem (${this.sb.blocksCount} blocks)`, { structure: `inode ${inode.ino}`, location: 'i_file_acl' });
      const blk = await this.readBlock(inode.fileAcl);
      list.push(...parseXattrBlock(blk, inode.fileAcl, { fsSeed: this.sb.hasMetadataCsum ? this.fsSeed : null, verify: this.verify }));
    }
    for (const x of list) {
      if (x.value === null && x.valueInode) {
        const vi = await this.readInode(x.valueInode);
        if (!(vi.flags & INODE_FLAGS.EA_INODE)) throw new Ext4Error('EFSCORRUPTED', `xattr ${x.name} points at inode ${x.valueInode} which is not an EA inode`, { structure: `inode ${inode.ino} xattrs` });
        x.value = await this.read(vi, 0, x.valueSize);
      }
    }
    return list;
  }

  // ---------------------------------------------------------------- directories

  private dirOpts(dir: Inode, where: string) {
    return {
      blockSize: this.blockSize,
      hasFiletype: (this.sb.s_feature_incompat & INCOMPAT.FILETYPE) !== 0,
      csum: this.sb.hasMetadataCsum ? { seed: inodeSeed(this.fsSeed, dir.ino, dir.generation) } : null,
      verify: this.verify,
      where,
    };
  }

  /** Every live entry of a directory, including "." and "..". */
  async readdir(dir: Inode): Promise<DirEntry[]> {
    const out: DirEntry[] = [];
    await this.scanDir(dir, (e) => {
      out.push({ name: e.name.slice(), ino: e.ino, fileType: e.fileType });
      return false;
    });
    return out;
  }

  /**
   * Visit the live entries of a directory in on-disk order (for an htree: "." and ".." from the
   * root, then the leaves in logical order); stops as soon as `visit` returns true. The entry
   * passed to `visit` is only valid during the call (its name may be shared with a cache).
   */
  private async scanDir(dir: Inode, visit: (e: DirEntry) => boolean): Promise<void> {
    if (dir.type !== 'dir') throw new Ext4Error('ENOTDIR', `inode ${dir.ino} is not a directory`);
    if (dir.flags & INODE_FLAGS.ENCRYPT) throw new Ext4Error('EOPNOTSUPP', `directory ${dir.ino} is encrypted`);
    const map = await this.fileMap(dir);
    if (map.kind === 'inline') {
      const xa = parseInodeXattrs(dir.raw, dir.extraIsize, dir.ino).find((x) => x.name === 'system.data');
      for (const e of parseInlineDir(dir.base.i_block, xa?.value ?? null, `directory ${dir.ino} inline data`, { hasFiletype: this.dirOpts(dir, '').hasFiletype, inodesCount: this.sb.s_inodes_count, dirIno: dir.ino }))
        if (e.inode !== 0 && visit({ name: e.name, ino: e.inode, fileType: e.fileType })) return;
      return;
    }
    if (dir.size % this.blockSize !== 0) throw new Ext4Error('EFSCORRUPTED', `directory size ${dir.size} is not a multiple of the block size`, { structure: `inode ${dir.ino}` });
    const nblocks = dir.size / this.blockSize;
    const indexed = (dir.flags & INODE_FLAGS.INDEX) !== 0;
    for (const e of map.extents) {
      if (e.logical >= nblocks) break;
      if (e.unwritten) continue;
      const n = Math.min(e.length, nblocks - e.logical);
      for (let i = 0; i < n; i++) {
        const phys = e.physical + i;
        const blk = await this.readBlock(phys);
        const where = `directory ${dir.ino} block ${e.logical + i} (physical ${phys})`;
        if (indexed) {
          const kind = classifyDirBlock(blk, this.blockSize);
          if (kind === 'dx-node') continue;
          if (kind === 'dx-root') {
            for (const d of dxRootDots(blk)) if (visit(d)) return;
            continue;
          }
        }
        for (const d of this.parseDirBlockCached(dir, blk, where)) if (d.inode !== 0 && visit({ name: d.name, ino: d.inode, fileType: d.fileType })) return;
      }
    }
  }

  /**
   * Parsed (validated, checksum-verified) entries of a cached directory block, memoised per block
   * buffer and directory: linear lookups rescan the same blocks for every name (a 10,000-entry
   * linear directory would otherwise be re-parsed 10,000 times to resolve each of its names).
   * Cached blocks are never mutated (writers copy them and put() new arrays), so a block buffer
   * that was parsed once for this directory parses the same again.
   */
  private parseDirBlockCached(dir: Inode, blk: Uint8Array, where: string): readonly RawDirEntry[] {
    const key = `${dir.ino}:${dir.generation}`;
    const hit = this.parsedDirBlocks.get(blk);
    if (hit && hit.key === key) return hit.entries;
    const entries = parseDirBlock(blk, { ...this.dirOpts(dir, where), inodesCount: this.sb.s_inodes_count });
    this.parsedDirBlocks.set(blk, { key, entries });
    return entries;
  }
  private readonly parsedDirBlocks = new WeakMap<Uint8Array, { key: string; entries: readonly RawDirEntry[] }>();

  /** Look a name up in a directory: htree hash lookup when indexed, else a linear scan. */
  async lookup(dir: Inode, name: Uint8Array): Promise<DirEntry | null> {
    if (dir.type !== 'dir') throw new Ext4Error('ENOTDIR', `inode ${dir.ino} is not a directory`);
    if (name.length === 0 || name.length > 255) throw new Ext4Error(name.length ? 'ENAMETOOLONG' : 'ENOENT', 'bad name length');
    // Casefolded directory: names match the kernel's way (lib/ext4/casefold.ts), the htree is hashed
    // by the folded name. Kernel rules: the flag without the feature is corruption (__ext4_iget); an
    // encrypted one is read without its key, so names compare as stored bytes and its siphash index
    // cannot be used (scanned linearly instead).
    const casefolded = (dir.flags & INODE_FLAGS.CASEFOLD) !== 0;
    if (casefolded && !(this.sb.s_feature_incompat & INCOMPAT.CASEFOLD)) {
      throw new Ext4Error('EFSCORRUPTED', 'casefold flag without casefold feature', { structure: `inode ${dir.ino}`, location: 'i_flags' });
    }
    const encrypted = (dir.flags & INODE_FLAGS.ENCRYPT) !== 0;
    const ci = casefolded && !encrypted ? ciLookupName(name, this.sb) : null;
    const indexed = dir.flags & INODE_FLAGS.INDEX && this.sb.s_feature_compat & COMPAT.DIR_INDEX && !(casefolded && encrypted) && !hasInlineData(dir);
    if (indexed && name.length <= 2 && name.every((c) => c === 0x2e)) {
      const map = await this.fileMap(dir);
      const first = map.extents[0];
      if (!first || first.logical !== 0) throw new Ext4Error('EFSCORRUPTED', 'htree directory has no block 0', { structure: `directory ${dir.ino}` });
      const blk = await this.readBlock(first.physical);
      if (classifyDirBlock(blk, this.blockSize) === 'dx-root') return dxRootDots(blk)[name.length - 1] ?? null;
    }
    if (indexed) {
      const map = await this.fileMap(dir);
      const nblocks = dir.size / this.blockSize;
      const readLogical = async (lb: number) => {
        const { extent } = findExtent(map.extents, lb);
        if (!extent || extent.unwritten || lb >= nblocks) throw new Ext4Error('EFSCORRUPTED', `htree points at unmapped block ${lb}`, { structure: `directory ${dir.ino}` });
        return this.readBlock(extent.physical + lb - extent.logical);
      };
      const seed = this.sb.s_hash_seed;
      const hit = await htreeLookup(name, {
        readBlock: readLogical,
        blockSize: this.blockSize,
        blockCount: nblocks,
        hashSeed: new Uint32Array(seed.buffer.slice(seed.byteOffset, seed.byteOffset + 16)),
        signed: !(this.sb.s_flags & S_FLAGS.UNSIGNED_HASH),
        hasFiletype: (this.sb.s_feature_incompat & INCOMPAT.FILETYPE) !== 0,
        largeDir: (this.sb.s_feature_incompat & INCOMPAT.LARGEDIR) !== 0,
        csumSeed: this.sb.hasMetadataCsum ? inodeSeed(this.fsSeed, dir.ino, dir.generation) : null,
        dirIno: dir.ino,
        verify: this.verify,
        inodesCount: this.sb.s_inodes_count,
        parseLeaf: (lb, blk) => this.parseDirBlockCached(dir, blk, `directory ${dir.ino} block ${lb}`),
        ...(ci ? { casefold: ci } : {}),
      });
      // A casefolded match reports the name as stored, not as asked for.
      return hit ? { name: ci ? hit.name.slice() : name, ino: hit.inode, fileType: hit.fileType } : null;
    }
    let hit: DirEntry | null = null;
    await this.scanDir(dir, (e) => {
      if (!(ci ? ci.matches(e.name) : bytesEqual(e.name, name))) return false;
      hit = { name: e.name.slice(), ino: e.ino, fileType: e.fileType };
      return true;
    });
    return hit;
  }

  /**
   * Resolve an absolute path (relative to the root) to an inode, following
   * symlinks in every component and (if followLast) in the last one; at most
   * 40 symlinks (ELOOP), like the kernel.
   */
  async resolve(path: string | Uint8Array, opts: { followLast?: boolean } = {}): Promise<Inode> {
    const enc = typeof path === 'string' ? new TextEncoder().encode(path) : path;
    let hops = 0;
    const walk = async (start: Inode, p: Uint8Array, followLast: boolean): Promise<Inode> => {
      let cur = p[0] === 0x2f ? await this.readInode(2) : start;
      const parts = splitPath(p);
      for (let i = 0; i < parts.length; i++) {
        const part = parts[i]!;
        if (cur.type !== 'dir') throw new Ext4Error('ENOTDIR', `${decodeName(part)}: a path component is not a directory`);
        const ent = await this.lookup(cur, part);
        if (!ent) throw new Ext4Error('ENOENT', `${decodeName(p)}: no such file or directory`);
        const next = await this.readInode(ent.ino);
        if (next.mode === 0 || next.type === null) throw new Ext4Error('EFSCORRUPTED', `directory entry ${decodeName(part)} points at inode ${ent.ino}, which is not in use`, { structure: `directory ${cur.ino}` });
        const isLast = i === parts.length - 1;
        if (next.type === 'symlink' && (!isLast || followLast)) {
          if (++hops > MAX_SYMLINK_HOPS) throw new Ext4Error('ELOOP', `${decodeName(p)}: too many levels of symbolic links`);
          const target = await this.readlink(next);
          cur = await walk(cur, target, true);
        } else cur = next;
      }
      return cur;
    };
    return walk(await this.readInode(2), enc[0] === 0x2f ? enc : concatBytes(new Uint8Array([0x2f]), enc), opts.followLast !== false);
  }

  /** Total blocks in group g (the last may be short). */
  blocksInGroup(g: number): number {
    return blocksInGroup(this.sb, g);
  }
}

/** "." and ".." of a dx root block (they sit at fixed offsets 0 and 12). */
function dxRootDots(blk: Uint8Array): DirEntry[] {
  const dot = DirEntryLayout.decode(blk, 0);
  const dotdot = DirEntryLayout.decode(blk, 12);
  return [
    { name: new Uint8Array([0x2e]), ino: dot.inode, fileType: 2 },
    { name: new Uint8Array([0x2e, 0x2e]), ino: dotdot.inode, fileType: 2 },
  ];
}

function splitPath(p: Uint8Array): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let s = 0;
  for (let i = 0; i <= p.length; i++) {
    if (i === p.length || p[i] === 0x2f) {
      if (i > s) {
        const part = p.subarray(s, i);
        if (!(part.length === 1 && part[0] === 0x2e)) parts.push(part);
      }
      s = i + 1;
    }
  }
  return parts;
}

export type { FileType };
