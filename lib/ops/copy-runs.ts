/**
 * The data copy of a move: runs of blocks old → new, as large sequential
 * reads and writes. movedata and moveFiles both copy through it, as ordered
 * data inside their transaction (the commit flushes once, with the log).
 */
import type { Filesystem } from '../ext4/filesystem.js';
import { alignedArrays } from '../io/aligned.js';

/**
 * Largest write of a copy (bytes): one target-contiguous chunk. dd's bs=1M: larger chunks save
 * syscalls that cost little next to the bytes, but every fresh page of a buffer faults once per
 * process, and faults are dear here (a fresh `ext4kit movedata` of 256 MiB took 12,500 minor
 * faults with three 8 MiB buffers, 7,400 with four of 1 MiB).
 */
export const COPY_CHUNK = 1024 * 1024;
/**
 * Chunk buffers per copy: up to this many chunks are read ahead of the one being written. The
 * first ones are read as soon as the copy is planned (startCopy), while the commit that writes
 * it finalises its metadata and begins the session (a fresh `ext4kit movedata` of 256 MiB spent
 * ~40–60 ms there, strace on a loaded machine, with the device idle). 8 buffers (more read
 * early, 1,024 more page faults) made no difference within the noise of a loaded box.
 */
export const COPY_DEPTH = 4;
/**
 * Reads in flight at once: as many as libuv's pool has threads (4). With 3 (one thread kept for
 * the writes) a fresh 256 MiB move was no faster (bench medians within the noise of a loaded box).
 */
const READS_IN_FLIGHT = 4;
/**
 * Reads in flight before `run`: the caller is still preparing the transaction, and its metadata
 * reads (bitmaps, inode tables, tree blocks: a fresh process reads them cold, one after the other)
 * queue in the same pool behind the copy's 1 MiB reads; two threads are left to them.
 */
const READS_BEFORE_RUN = 2;
/**
 * Bytes written between writeback kicks: a flush started (not awaited) once
 * that much of a copy is written, so the device writes it back while the rest
 * is read, and the commit's flush finds little left (Node has no
 * sync_file_range; a flush only makes writes durable sooner, which no crash
 * rule forbids). A copy under this size never kicks: its commit flushes once.
 */
const WRITEBACK_KICK = 64 * 1024 * 1024;

/** Copy `length` blocks from block `from` to block `to`. */
export interface Copy {
  from: number;
  to: number;
  length: number;
}

/**
 * The chunk buffers, kept per open filesystem (freed with it): a defrag
 * copies once per transaction, and fresh multi-MiB arrays page-fault on
 * first touch (an 8 MiB read into a new array took ~24 ms, into a reused one
 * the time of the copy from the page cache).
 */
const pools = new WeakMap<Filesystem, Uint8Array[]>();

function takeBuffers(fs: Filesystem, n: number): Uint8Array[] {
  let pool = pools.get(fs);
  if (!pool) pools.set(fs, (pool = []));
  const out = pool.splice(0, n);
  // page-aligned: the kernel copies into a misaligned buffer at half speed (lib/io/aligned.ts)
  if (out.length < n) out.push(...alignedArrays(n - out.length, COPY_CHUNK));
  return out;
}

function giveBuffers(fs: Filesystem, bufs: Uint8Array[]): void {
  const pool = pools.get(fs);
  if (pool) for (const b of bufs) if (pool.length < COPY_DEPTH) pool.push(b);
}

interface Chunk {
  /** First target block. */
  to: number;
  /** Blocks. */
  n: number;
  pieces: Copy[];
}

/**
 * Cut the copies into target-contiguous chunks of at most `chunkBlocks`:
 * sorted by target, runs contiguous on both sides merged, split at the chunk
 * size (many one-block files packed together cost one write).
 */
export function copyChunks(copies: readonly Copy[], chunkBlocks: number): Chunk[] {
  // (indexed loops, slice and literals for spreads: interpreted in a fresh process, for-of
  // allocates an iterator result per element)
  const sorted = copies.slice().sort((a, b) => a.to - b.to);
  const merged: Copy[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const c = sorted[i]!;
    if (c.length <= 0) continue;
    const last = merged[merged.length - 1];
    if (last && last.to + last.length === c.to && last.from + last.length === c.from) last.length += c.length;
    else merged.push({ from: c.from, to: c.to, length: c.length });
  }
  const chunks: Chunk[] = [];
  for (let i = 0; i < merged.length; i++) {
    const c0 = merged[i]!;
    for (let off = 0; off < c0.length; ) {
      let cur = chunks[chunks.length - 1];
      const to = c0.to + off;
      if (!cur || cur.to + cur.n !== to || cur.n === chunkBlocks) chunks.push((cur = { to, n: 0, pieces: [] }));
      const k = Math.min(c0.length - off, chunkBlocks - cur.n);
      cur.pieces.push({ from: c0.from + off, to, length: k });
      cur.n += k;
      off += k;
    }
  }
  return chunks;
}

/** A copy whose reads have begun (startCopy); `run` writes it. */
export interface StartedCopy {
  /** Write every chunk in target order (reading the rest meanwhile); resolves with the bytes written. */
  run(): Promise<number>;
}

/**
 * Begin a copy of runs old → new (movedata's copy too): cut into chunks (copyChunks), the first
 * COPY_DEPTH chunks read at once, READS_BEFORE_RUN at a time (READS_IN_FLIGHT once `run` is
 * called), into buffers reused across calls
 * (takeBuffers). Nothing is written until `run`: the caller starts the copy while it still
 * prepares the transaction that orders it, and a transaction that never commits (E2BIG, an
 * error) has only read. A chunk's pieces are read concurrently (reading them one after the
 * other lost the read/write overlap: 92 % → 67 % of a raw copy on bench/ops).
 */
export function startCopy(fs: Filesystem, copies: readonly Copy[]): StartedCopy {
  const bs = fs.blockSize;
  const chunks = copyChunks(copies, Math.max(1, Math.floor(COPY_CHUNK / bs)));
  if (!chunks.length) return { run: async () => 0 };
  const depth = Math.min(COPY_DEPTH, chunks.length);
  const bufs = takeBuffers(fs, depth);
  const reads: Promise<void>[] = [];
  let next = 0, inFlight = 0, written = 0, failed = false, maxInFlight = READS_BEFORE_RUN;
  const startRead = (i: number): Promise<void> => {
    const c = chunks[i]!;
    const buf = bufs[i % depth]!;
    inFlight++;
    next = i + 1;
    const p = Promise.all(c.pieces.map((p) => fs.readDataBlocksInto(p.from, p.length, buf.subarray((p.to - c.to) * bs, (p.to - c.to + p.length) * bs)))).then(() => undefined);
    p.then(
      () => {
        inFlight--;
        pump();
      },
      () => {
        inFlight--;
        failed = true; // (run rejects when it reaches this chunk; no more reads are started)
      },
    );
    return (reads[i] = p);
  };
  // Read ahead while buffers are free (a buffer is free once its chunk is written).
  const pump = (): void => {
    while (!failed && inFlight < maxInFlight && next < chunks.length && next < written + depth) startRead(next);
  };
  pump();
  return {
    async run(): Promise<number> {
      maxInFlight = READS_IN_FLIGHT;
      pump();
      let bytes = 0;
      let kick: Promise<void> | null = null, kicked = true, since = 0;
      for (let i = 0; i < chunks.length; i++) {
        await (reads[i] ?? startRead(i));
        const c = chunks[i]!;
        const w = fs.device.write(c.to * bs, bufs[i % depth]!.subarray(0, c.n * bs));
        // Read ahead once the write is issued, into the buffers of the chunks before i (free): a
        // source read synchronously (a device with syncReadMax: defrag's small pieces) then runs
        // while the write is in flight, not between two writes. (Asynchronous reads also pump as
        // each completes.)
        written = i;
        pump();
        await w;
        bytes += c.n * bs;
        since += c.n * bs;
        written = i + 1;
        if (since >= WRITEBACK_KICK && kicked && i + 1 < chunks.length) {
          since = 0;
          kicked = false;
          kick = fs.device.flush().then(() => void (kicked = true));
          kick.catch(() => undefined); // awaited below
        }
      }
      if (kick) await kick;
      // (only after a whole copy: after an error, reads still in flight fill these buffers)
      giveBuffers(fs, bufs);
      return bytes;
    },
  };
}

/**
 * Copy runs old → new now (startCopy, then run): one write at a time, in target order (the
 * kernel serialises buffered writes to one file anyway). No barrier of its own (the commit
 * flushes once, with the log); past WRITEBACK_KICK bytes it starts flushes as writeback hints,
 * all finished when it returns. Returns the bytes written.
 */
export function copyRuns(fs: Filesystem, copies: readonly Copy[]): Promise<number> {
  return startCopy(fs, copies).run();
}
