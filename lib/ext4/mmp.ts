/**
 * Multi-mount protection (INCOMPAT_MMP): the MMP block (ext4-format.md §10)
 * and the protocol a userspace writer follows (semantics.md §12), mirroring
 * e2fsprogs' ext2fs_mmp_start / ext2fs_mmp_update2 / ext2fs_mmp_stop:
 *
 *   start    read the block bypassing caches; interval = max(s_mmp_update_interval, 5),
 *            or the block's mmp_check_interval if larger; CLEAN → go on; FSCK → refuse
 *            (a tool has it, or one died holding it); > FSCK → refuse (unknown); any other
 *            (live) sequence → sleep min(2·interval+1, interval+60) s, re-read, refuse if
 *            it changed; then write a fresh random sequence (with our node and device
 *            names), sleep the same delay, re-read, refuse if it is no longer ours; then
 *            write seq = FSCK, which keeps kernel mounts and other tools out.
 *   hold     an unref'd timer re-reads the block at least every 60 s (default 30 s),
 *            compares all 1024 bytes with what we last wrote — any difference means
 *            somebody else took the filesystem: the session is marked lost and every
 *            later transaction is refused — then rewrites it with a new mmp_time.
 *   release  compare once more and write seq = CLEAN — or, when the session wrote nothing
 *            else to the filesystem and the block was CLEAN when we found it, put back the
 *            exact bytes we found, so that an open whose calls all failed leaves the image
 *            byte-for-byte as it was (any CLEAN block lets the next holder in alike).
 *
 * A process that dies while holding the block leaves seq = FSCK. The kernel
 * refuses to mount it ("fsck is running on the filesystem"), e2fsck refuses to
 * check it and tells the user to run `tune2fs -f -E clear_mmp`; ext4kit does
 * the same (EBUSY naming the holder) unless opened with `{ mmp: { force: true } }`,
 * the equivalent of that tune2fs command: the stale FSCK (or unknown) sequence
 * is overwritten and the rest of the protocol runs as usual — so a live kernel
 * mount elsewhere, which rewrites its sequence every interval, is still detected.
 *
 * All sleeps and the clock are injectable so tests can shorten them; the
 * defaults are the real protocol timings.
 */
import { Ext4Error, type Location } from '../errors.js';
import type { BlockDevice } from '../io/device.js';
import { defineStruct } from '../codec/layout.js';
import { crc32c } from './checksum.js';
import type { Superblock } from './superblock.js';
import { cryptoBelow } from './random.js';
import { bytesEqual } from './bytes.js';
import { defaultPlatform, type Platform } from './platform.js';

export const MMP_MAGIC = 0x004d4d50;
/** Cleanly unmounted / released. */
export const MMP_SEQ_CLEAN = 0xff4d4d50;
/** Held by e2fsck, tune2fs, debugfs -w, ext4kit... (blocks mounts for the whole session). */
export const MMP_SEQ_FSCK = 0xe24d4d50;
/** Largest sequence a live holder (kernel kmmpd, or a tool while starting) writes. */
export const MMP_SEQ_MAX = 0xe24d4d4f;
/** Seconds: floor of the check interval (EXT4_MMP_MIN_CHECK_INTERVAL). */
export const MMP_MIN_CHECK_INTERVAL = 5;
/** Seconds: no kernel or e2fsprogs tool writes a larger interval (EXT4_MMP_MAX_CHECK_INTERVAL, mke2fs limit). */
export const MMP_MAX_CHECK_INTERVAL = 300;
/** The structure's size; the rest of the MMP block is zero and never written. */
export const MMP_STRUCT_SIZE = 1024;
/** Default refresh period while held (must stay ≤ 60 s, e2fsprogs' EXT2_MIN_MMP_UPDATE_INTERVAL). */
export const MMP_DEFAULT_REFRESH_MS = 30_000;

export const MmpLayout = defineStruct('MMP block', MMP_STRUCT_SIZE, [
  ['mmp_magic', 0x000, 'u32'],
  ['mmp_seq', 0x004, 'u32'],
  ['mmp_time', 0x008, 'u64'],
  ['mmp_nodename', 0x010, 'bytes', 64],
  ['mmp_bdevname', 0x050, 'bytes', 32],
  ['mmp_check_interval', 0x070, 'u16'],
  ['mmp_pad1', 0x072, 'u16'],
  ['mmp_pad2', 0x074, 'bytes', 904],
  ['mmp_checksum', 0x3fc, 'u32'],
] as const);

export interface MmpBlock {
  magic: number;
  seq: number;
  /** mmp_time, seconds since the epoch (informational). */
  time: number;
  /** mmp_nodename up to the first NUL. */
  nodename: string;
  /** mmp_bdevname up to the first NUL. */
  bdevname: string;
  checkInterval: number;
  checksum: number;
  /** The exact 1024 bytes. */
  raw: Uint8Array;
}

export type MmpState = 'clean' | 'fsck' | 'live' | 'unknown';

export function mmpState(seq: number): MmpState {
  if (seq === MMP_SEQ_CLEAN) return 'clean';
  if (seq === MMP_SEQ_FSCK) return 'fsck';
  if (seq > MMP_SEQ_FSCK) return 'unknown';
  return 'live';
}

/** crc32c(fs_seed, bytes 0..0x3FB). */
export function mmpChecksum(raw: Uint8Array, fsSeed: number): number {
  return crc32c(fsSeed, raw, 0, MmpLayout.offsetOf('mmp_checksum'));
}

const latin = new TextDecoder('latin1');
function cString(b: Uint8Array): string {
  const z = b.indexOf(0);
  return latin.decode(z < 0 ? b : b.subarray(0, z));
}

function fixedBytes(s: string, n: number): Uint8Array {
  const out = new Uint8Array(n);
  out.set(new TextEncoder().encode(s).subarray(0, n));
  return out;
}

export interface ParseMmpOptions {
  /** fs seed when the fs has metadata_csum (the checksum is only defined then), else null. */
  csumSeed: number | null;
  verify: boolean;
  /** Block number, for error messages. */
  block: number;
}

/** Parse the MMP structure; bad magic → EFSCORRUPTED, checksum mismatch → EFSBADCRC. */
export function parseMmp(bytes: Uint8Array, opts: ParseMmpOptions): MmpBlock {
  const where = { structure: 'MMP block', location: { kind: 'block', block: opts.block } satisfies Location };
  if (bytes.length < MMP_STRUCT_SIZE) throw new Ext4Error('EFSCORRUPTED', `short MMP block (${bytes.length} bytes)`, where);
  const raw = bytes.slice(0, MMP_STRUCT_SIZE);
  const f = MmpLayout.decode(raw);
  if (f.mmp_magic !== MMP_MAGIC)
    throw new Ext4Error('EFSCORRUPTED', `bad MMP magic 0x${f.mmp_magic.toString(16)} (e2fsck -f can reset the MMP block)`, where);
  if (opts.verify && opts.csumSeed !== null) {
    const want = mmpChecksum(raw, opts.csumSeed);
    if (want !== f.mmp_checksum)
      throw new Ext4Error('EFSBADCRC', `MMP checksum 0x${f.mmp_checksum.toString(16)} != computed 0x${want.toString(16)} (e2fsck -f can reset the MMP block)`, where);
  }
  return {
    magic: f.mmp_magic,
    seq: f.mmp_seq,
    time: f.mmp_time,
    nodename: cString(f.mmp_nodename),
    bdevname: cString(f.mmp_bdevname),
    checkInterval: f.mmp_check_interval,
    checksum: f.mmp_checksum,
    raw,
  };
}

/** A copy of `base` with the given fields replaced and the checksum refreshed (metadata_csum only). */
export function buildMmp(
  base: Uint8Array,
  edit: { seq?: number; time?: number; nodename?: string; bdevname?: string; checkInterval?: number },
  csumSeed: number | null,
): Uint8Array {
  const raw = base.slice(0, MMP_STRUCT_SIZE);
  const f = MmpLayout.decode(raw);
  f.mmp_magic = MMP_MAGIC;
  if (edit.seq !== undefined) f.mmp_seq = edit.seq >>> 0;
  if (edit.time !== undefined) f.mmp_time = edit.time;
  if (edit.nodename !== undefined) f.mmp_nodename = fixedBytes(edit.nodename, 64);
  if (edit.bdevname !== undefined) f.mmp_bdevname = fixedBytes(edit.bdevname, 32);
  if (edit.checkInterval !== undefined) f.mmp_check_interval = edit.checkInterval;
  MmpLayout.encode(f, raw);
  if (csumSeed !== null) MmpLayout.set(raw, 'mmp_checksum', mmpChecksum(raw, csumSeed));
  return raw;
}

// ---------------------------------------------------------------------------------------------- I/O

/** Raw access to the MMP structure. read() must bypass every cache. */
export interface MmpIo {
  read(): Promise<Uint8Array>;
  /** Write the 1024 bytes and make them durable (flush). */
  write(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/**
 * The default MmpIo: the MMP structure at byte `position` of the device, read past every
 * cache (`BlockDevice.readUncached`: O_DIRECT on a block device, as e2fsprogs'
 * ext2fs_mmp_read), written and flushed through the device.
 */
export function deviceMmpIo(device: BlockDevice, position: number): MmpIo {
  return {
    read: () => (device.readUncached ? device.readUncached(position, MMP_STRUCT_SIZE) : device.read(position, MMP_STRUCT_SIZE)),
    async write(bytes: Uint8Array) {
      await device.write(position, bytes.subarray(0, MMP_STRUCT_SIZE));
      await device.flush();
    },
    async close() {},
  };
}

// ---------------------------------------------------------------------------------------------- session

export interface MmpOptions {
  /**
   * Take over an MMP block left in the FSCK state (a tool or an ext4kit
   * process died holding it) or with an unknown sequence — like
   * `tune2fs -f -E clear_mmp`. Only when you are sure nothing else uses the
   * filesystem. A live sequence (a kernel mount) is still refused.
   */
  force?: boolean;
  /** Sleep for `ms` milliseconds (default: a real timer). Tests pass a shortened sleep. */
  sleep?: (ms: number) => Promise<void>;
  /** Clock in milliseconds since the epoch (default Date.now). */
  now?: () => number;
  /** Refresh period while held, ms (default 30 s; values above 60 s are clamped to 60 s). */
  refreshMs?: number;
  /** Node name written into the block (default: `platform.hostname()`). */
  nodename?: string;
  /** Hostname and randomness (default: platform.ts `defaultPlatform`; ext4kit/node passes os.hostname()). */
  platform?: Partial<Platform>;
  /** Device name written into the block (default: the device's name, its basename if longer than 32 bytes). */
  bdevname?: string;
  /** New random sequence (default: `platform.randomValues`, uniform in [0, MMP_SEQ_MAX]). */
  newSeq?: () => number;
  /** Replace the block I/O (tests). */
  io?: MmpIo;
  /** Called before each protocol sleep with its length and why. */
  onWait?: (ms: number, why: string) => void;
  /** Verify the MMP checksum (default true). */
  verify?: boolean;
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function holderText(b: MmpBlock): string {
  const when = b.time ? new Date(b.time * 1000).toISOString() : 'never';
  return `node "${b.nodename || '?'}", device "${b.bdevname || '?'}", last update ${when}`;
}

function defaultBdevname(name: string): string {
  if (new TextEncoder().encode(name).length <= 32) return name;
  const base = name.split('/').filter(Boolean).pop() ?? name;
  return base;
}

/** The MMP parameters a superblock implies; throws EFSCORRUPTED on an unusable block number or interval. */
export function mmpGeometry(sb: Superblock): { block: number; position: number; updateInterval: number } {
  const where = { structure: 'superblock', location: { kind: 'field', field: 's_mmp_block' } satisfies Location };
  const block = sb.s_mmp_block;
  if (!Number.isSafeInteger(block) || block <= sb.s_first_data_block || block >= sb.blocksCount)
    throw new Ext4Error('EFSCORRUPTED', `MMP block ${block} is outside the filesystem (e2fsck -f can fix it)`, where);
  if (sb.s_mmp_update_interval > MMP_MAX_CHECK_INTERVAL)
    throw new Ext4Error('EFSCORRUPTED', `s_mmp_update_interval ${sb.s_mmp_update_interval} s exceeds ${MMP_MAX_CHECK_INTERVAL} s (tune2fs -E mmp_update_interval= can fix it)`, { structure: 'superblock', location: { kind: 'field', field: 's_mmp_update_interval' } });
  return { block, position: block * sb.blockSize, updateInterval: sb.s_mmp_update_interval };
}

/** Read and parse the MMP block (no protocol, no writes): for reports and tests. */
export async function readMmp(device: BlockDevice, sb: Superblock, fsSeed: number, opts: { verify?: boolean } = {}): Promise<MmpBlock> {
  const g = mmpGeometry(sb);
  const io = deviceMmpIo(device, g.position);
  try {
    return parseMmp(await io.read(), { csumSeed: sb.hasMetadataCsum ? fsSeed : null, verify: opts.verify !== false, block: g.block });
  } finally {
    await io.close();
  }
}

/** A held MMP block: created by MmpSession.start, released by release(). */
export class MmpSession {
  /** Set when the block changed under us (or could not be checked): writes must stop. */
  lost: Ext4Error | null = null;
  /** Protocol sequence we wrote while starting (informational). */
  readonly startSeq: number;
  private last: Uint8Array;
  private readonly io: MmpIo;
  private readonly csumSeed: number | null;
  private readonly verify: boolean;
  private readonly block: number;
  private readonly now: () => number;
  /** The block as found at start when it was CLEAN (what release({ restore }) puts back). */
  private readonly foundClean: Uint8Array | null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private released = false;

  private constructor(io: MmpIo, last: Uint8Array, startSeq: number, p: { csumSeed: number | null; verify: boolean; block: number; now: () => number; refreshMs: number; foundClean: Uint8Array | null }) {
    this.io = io;
    this.foundClean = p.foundClean;
    this.last = last;
    this.startSeq = startSeq;
    this.csumSeed = p.csumSeed;
    this.verify = p.verify;
    this.block = p.block;
    this.now = p.now;
    const t = setInterval(() => void this.refresh().catch(() => undefined), p.refreshMs);
    t.unref?.();
    this.timer = t;
  }

  /**
   * Run the start protocol (semantics.md §12 steps 1–6) on `device`. Resolves
   * with the held session, or throws EBUSY naming the holder's node and device.
   */
  static async start(device: BlockDevice, sb: Superblock, fsSeed: number, opts: MmpOptions = {}): Promise<MmpSession> {
    const g = mmpGeometry(sb);
    const io = opts.io ?? deviceMmpIo(device, g.position);
    try {
      return await MmpSession.run(device, sb, fsSeed, g, io, opts);
    } catch (e) {
      await io.close().catch(() => undefined);
      throw e;
    }
  }

  private static async run(device: BlockDevice, sb: Superblock, fsSeed: number, g: { block: number }, io: MmpIo, opts: MmpOptions): Promise<MmpSession> {
    const sleep = opts.sleep ?? realSleep;
    const now = opts.now ?? Date.now;
    const csumSeed = sb.hasMetadataCsum ? fsSeed : null;
    const verify = opts.verify !== false;
    const where = { structure: 'MMP block', location: { kind: 'block', block: g.block } satisfies Location };
    const read = async () => parseMmp(await io.read(), { csumSeed, verify, block: g.block });
    const seconds = () => Math.floor(now() / 1000);

    let cur = await read();
    const foundClean = mmpState(cur.seq) === 'clean' ? new Uint8Array(cur.raw) : null;
    let interval = Math.max(sb.s_mmp_update_interval, MMP_MIN_CHECK_INTERVAL);
    if (cur.checkInterval > interval) interval = cur.checkInterval;
    if (interval > MMP_MAX_CHECK_INTERVAL)
      throw new Ext4Error('EFSCORRUPTED', `MMP check interval ${interval} s exceeds ${MMP_MAX_CHECK_INTERVAL} s (tune2fs -f -E clear_mmp resets it)`, where);
    const waitMs = Math.min(2 * interval + 1, interval + 60) * 1000;

    const state = mmpState(cur.seq);
    if (state === 'fsck' || state === 'unknown') {
      if (!opts.force) {
        const what = state === 'fsck'
          ? `is being checked or modified by a tool (MMP sequence 0x${cur.seq.toString(16)}), or such a tool died holding it`
          : `has an unknown MMP sequence 0x${cur.seq.toString(16)}`;
        throw new Ext4Error(
          'EBUSY',
          `${device.name} ${what}: ${holderText(cur)}. If you are sure nothing uses the filesystem on any node, ` +
            `open it with { mmp: { force: true } } (or run 'tune2fs -f -E clear_mmp ${device.name}')`,
          where,
        );
      }
    } else if (state === 'live') {
      // Possibly mounted elsewhere: a live holder rewrites its sequence every interval.
      opts.onWait?.(waitMs, 'checking whether the MMP sequence is live');
      await sleep(waitMs);
      const again = await read();
      if (again.seq !== cur.seq)
        throw new Ext4Error('EBUSY', `${device.name} is in use (mounted) on ${holderText(again)}: its MMP sequence changed while we waited`, where);
      cur = again;
    }

    // Step 5: claim with a fresh random sequence, wait, and make sure nobody raced us.
    const mine = opts.newSeq ? opts.newSeq() >>> 0 : cryptoBelow(MMP_SEQ_MAX + 1, { randomValues: opts.platform?.randomValues ?? defaultPlatform.randomValues });
    if (mine > MMP_SEQ_MAX) throw new Ext4Error('EINVAL', `MMP sequence 0x${mine.toString(16)} is above the live range`);
    const claim = buildMmp(cur.raw, { seq: mine, time: seconds(), nodename: opts.nodename ?? (opts.platform?.hostname ?? defaultPlatform.hostname)(), bdevname: opts.bdevname ?? defaultBdevname(device.name) }, csumSeed);
    await io.write(claim);
    opts.onWait?.(waitMs, 'waiting for other nodes to notice our MMP sequence');
    await sleep(waitMs);
    const after = await read();
    if (after.seq !== mine)
      throw new Ext4Error('EBUSY', `${device.name} was claimed by another node while we took it (${holderText(after)})`, where);

    // Step 6: hold with seq = FSCK for the whole session.
    const held = buildMmp(after.raw, { seq: MMP_SEQ_FSCK, time: seconds() }, csumSeed);
    await io.write(held);
    const refreshMs = Math.min(Math.max(opts.refreshMs ?? MMP_DEFAULT_REFRESH_MS, 1), 60_000);
    return new MmpSession(io, held, mine, { csumSeed, verify, block: g.block, now, refreshMs, foundClean });
  }

  /** The bytes we last wrote (a copy). */
  lastWritten(): Uint8Array {
    return this.last.slice();
  }

  /** Throws if the session was lost; call before every write. */
  assertHeld(): void {
    if (this.lost) throw this.lost;
    if (this.released) throw new Ext4Error('EINVAL', 'the MMP block has been released');
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn, fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Re-read and compare with what we last wrote; marks the session lost on any difference or error. */
  private async verifyUnchanged(): Promise<MmpBlock> {
    const where = { structure: 'MMP block', location: { kind: 'block', block: this.block } satisfies Location };
    let cur: MmpBlock;
    try {
      cur = parseMmp(await this.io.read(), { csumSeed: this.csumSeed, verify: this.verify, block: this.block });
    } catch (e) {
      this.lost = new Ext4Error('EBUSY', `cannot verify the MMP block any more, so writes stop: ${(e as Error).message}`, { ...where, cause: e });
      this.stopTimer();
      throw this.lost;
    }
    if (!bytesEqual(cur.raw, this.last)) {
      this.lost = new Ext4Error(
        'EBUSY',
        `the MMP block was changed by someone else (now sequence 0x${cur.seq.toString(16)}, ${holderText(cur)}): the filesystem may be in use elsewhere, writes stop`,
        where,
      );
      this.stopTimer();
      throw this.lost;
    }
    return cur;
  }

  /** Check now that nobody else has touched the block (throws EBUSY and marks the session lost if so). */
  check(): Promise<void> {
    return this.serial(async () => {
      this.assertHeld();
      await this.verifyUnchanged();
    });
  }

  /** The periodic update: verify, then rewrite with a new mmp_time (seq stays FSCK). */
  refresh(): Promise<void> {
    return this.serial(async () => {
      if (this.lost || this.released) return;
      const cur = await this.verifyUnchanged();
      const next = buildMmp(cur.raw, { seq: MMP_SEQ_FSCK, time: Math.floor(this.now() / 1000) }, this.csumSeed);
      try {
        await this.io.write(next);
      } catch (e) {
        this.lost = new Ext4Error('EBUSY', `cannot update the MMP block, so writes stop: ${(e as Error).message}`, { structure: 'MMP block', location: { kind: 'block', block: this.block }, cause: e });
        this.stopTimer();
        throw this.lost;
      }
      this.last = next;
    });
  }

  /**
   * Release: verify the block is as we left it, then write seq = CLEAN (with `restore`, and
   * if the block was CLEAN when we took it: the exact bytes we found). Throws (writing
   * nothing) if the session was lost. Idempotent.
   */
  release(opts: { restore?: boolean } = {}): Promise<void> {
    return this.serial(async () => {
      if (this.released) return;
      this.stopTimer();
      try {
        if (this.lost) throw this.lost;
        const cur = await this.verifyUnchanged();
        const clean = opts.restore && this.foundClean ? this.foundClean : buildMmp(cur.raw, { seq: MMP_SEQ_CLEAN, time: Math.floor(this.now() / 1000) }, this.csumSeed);
        await this.io.write(clean);
        this.last = clean;
        this.released = true;
      } finally {
        await this.io.close().catch(() => undefined);
      }
    });
  }

  /** Stop the refresh timer and close the block I/O without writing anything (the block keeps whatever it holds). */
  stop(): void {
    this.stopTimer();
    void this.serial(() => this.io.close()).catch(() => undefined);
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
