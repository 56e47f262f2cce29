/**
 * A host directory's listing and file bytes, read ahead on a worker thread (host-reader-worker.ts):
 * the lstat/open/read/close of 20,000 source files cost the main thread ~1.2 s of a 5 s import when
 * they were synchronous; on the worker they overlap the image work on the other core. The listing
 * comes in batches, each before its files' bytes, so the consumer starts before the walk ends (the
 * walk goes on while the reads wait for a slab).
 *
 * Bytes land in slabs (SharedArrayBuffers) that this side grants the worker. The read-ahead is
 * bounded: the worker holds, or has filled with bytes not yet handed out, at most `windowSlabs`
 * slabs. A slab goes back to the worker only when (1) the worker sealed it, (2) every file piece in
 * it was handed to the consumer and (3) the consumer's `recycle(held)` (importTree's `released`
 * and `dataWritten`) came after that and the slab finished before `held`'s (`held`: the oldest
 * piece the consumer still needs). Without `reuse` a finished slab is dropped (a new one is
 * allocated for each grant), so pieces handed out are never overwritten.
 */
import type { Worker } from 'node:worker_threads';
import { setZeroUnits } from '../ops/tree-entry.js';
import { ENTRY_FIELDS, ENTRY_STRIDE, ENTRY_TYPES, PENDING, type WorkerError } from './host-reader-worker.js';
import { SLAB_ALIGN, SLAB_BYTES, slabBuffer, startReaderThread, WHOLE_FILE_BYTES, type StartedThread } from './host-read-start.js';

export { ENTRY_FIELDS, ENTRY_STRIDE, ENTRY_TYPES };

/** One listed entry: its tree path and its fields at `o` in `num` (ENTRY_FIELDS). */
export interface ListedEntry {
  rel: string;
  num: Float64Array;
  o: number;
}

interface Slab {
  id: number;
  sab: SharedArrayBuffer;
  /** The worker's zero map of the slab, by SLAB_ALIGN unit (registered with setZeroUnits for the importer). */
  zeros: SharedArrayBuffer;
  view: Uint8Array;
  /** Granted and not yet finished (sealed and every piece handed out): counts against the window. */
  active: boolean;
  sealed: boolean;
  /** Pieces posted by the worker and not yet handed out. */
  unconsumed: number;
  /** The worker has its view (sent with the first grant, or in workerData). */
  posted: boolean;
}

interface Piece {
  index: number;
  slab: Slab | null;
  off: number;
  len: number;
  last: boolean;
  error: Error | null;
}

/** The worker's error as a Node-like error (code, syscall, path kept: the message names the file). */
function toError(w: WorkerError): Error {
  const e = new Error(w.message) as NodeJS.ErrnoException;
  if (w.code !== undefined) e.code = w.code;
  if (w.errno !== undefined) e.errno = w.errno;
  if (w.syscall !== undefined) e.syscall = w.syscall;
  if (w.path !== undefined) e.path = w.path;
  return e;
}

export interface HostReaderOptions {
  reuse?: boolean;
  /** Called with each listing batch's absolute paths, NUL-terminated, in order (host-tree.ts feeds them to its xattr reader). */
  onList?(paths: Uint8Array): void;
  /** Called once the walk is complete. */
  onListed?(count: number): void;
  /** Read-ahead in slabs (tests make it small). */
  windowSlabs?: number;
  /** The thread's source text (default HOST_READER_WORKER; tests wrap it in one that dies part-way). */
  workerSource?: string;
  /** The thread, started already (host-read-start.ts: with `reuse`, `windowSlabs` and onList as given here). */
  started?: StartedThread;
}

export class HostReader {
  readonly #worker: Worker;
  readonly #reuse: boolean;
  readonly #window: number;
  readonly #slabs = new Map<number, Slab>();
  #nextId = 0;
  #active = 0;
  /** Finished slabs not yet covered by a recycle (reuse only). */
  #finished: Slab[] = [];
  #free: Slab[] = [];
  #queue: Piece[] = [];
  #head = 0;
  #wakers: (() => void)[] = [];
  /** Tree paths of the entries listed so far, by index. */
  readonly rels: string[] = [];
  /** Symlink targets by entry index. */
  readonly targets = new Map<number, Uint8Array>();
  /** Entries whose readlink failed (thrown when the consumer reaches them). */
  readonly errors = new Map<number, Error>();
  /** Listing batches: entry `from + k` has its fields at k × ENTRY_STRIDE of `num`. */
  readonly #batches: { from: number; num: Float64Array }[] = [];
  #batch = 0;
  /** The batch the next PENDING entry's fields go to (they come in entry order). */
  #statBatch = 0;
  /** Entries in the tree, once the walk is complete. */
  #count: number | null = null;
  readonly #onList: ((paths: Uint8Array) => void) | undefined;
  readonly #onListed: ((count: number) => void) | undefined;
  #ended = false;
  #exited = false;
  #failure: Error | null = null;
  readonly #exit: Promise<void>;

  constructor(root: string, opts: HostReaderOptions = {}) {
    this.#reuse = opts.reuse === true;
    this.#onList = opts.onList;
    this.#onListed = opts.onListed;
    // The process does not wait for the reader (the thread is unref'd); a consumer waiting for it refs it (#wait).
    const t = opts.started ?? startReaderThread(root, { reuse: this.#reuse, listPaths: this.#onList !== undefined, windowSlabs: opts.windowSlabs, workerSource: opts.workerSource });
    this.#worker = t.worker;
    // The thread's first slabs, granted with its start.
    this.#window = t.config.slabs.length;
    for (const s of t.config.slabs) {
      const slab = this.#addSlab(s.id, s.sab, s.zeros);
      slab.active = true;
      slab.posted = true;
      this.#active++;
    }
    this.#nextId = this.#window;
    this.#exit = new Promise<void>((resolve) => {
      t.listen({
        message: (m) => this.#onMessage(m as { t: string } & Record<string, unknown>),
        error: (e) => this.#fail(e),
        exit: () => {
          this.#exited = true;
          if (!this.#ended) this.#fail(new Error('the host reader thread stopped before the end of the tree'));
          resolve();
        },
      });
    });
  }

  #fail(e: Error): void {
    this.#failure ??= e;
    this.#notify();
  }

  #notify(): void {
    const w = this.#wakers;
    this.#wakers = [];
    for (const f of w) f();
  }

  #onMessage(m: { t: string } & Record<string, unknown>): void {
    switch (m.t) {
      case 'list': {
        const rels = m.rels as string[];
        for (const r of rels) this.rels.push(r);
        this.#batches.push({ from: m.from as number, num: m.num as Float64Array });
        for (const [i, t] of m.targets as [number, Uint8Array][]) this.targets.set(i, t);
        for (const [i, e] of m.errors as [number, WorkerError][]) this.errors.set(i, toError(e));
        if (m.paths) this.#onList?.(m.paths as Uint8Array);
        break;
      }
      case 'listed':
        this.#count = m.count as number;
        this.#onListed?.(this.#count);
        break;
      case 's':
        this.#fields(m.stats as Float64Array);
        break;
      case 'd': {
        if (m.stats) this.#fields(m.stats as Float64Array);
        const slab = this.#slabs.get(m.id as number)!;
        const items = m.items as Float64Array;
        for (let k = 0; k < items.length; k += 4) this.#queue.push({ index: items[k]!, slab, off: items[k + 1]!, len: items[k + 2]!, last: items[k + 3] === 1, error: null });
        slab.unconsumed += items.length / 4;
        if (m.sealed) {
          slab.sealed = true;
          this.#maybeFinish(slab);
        }
        break;
      }
      case 'e':
        this.#queue.push({ index: m.index as number, slab: null, off: 0, len: 0, last: true, error: toError(m.error as WorkerError) });
        break;
      case 'end':
        this.#ended = true;
        break;
      case 'fatal':
        this.#ended = true; // not a premature exit: the walk's own error says why
        this.#fail(toError(m.error as WorkerError));
        break;
    }
    this.#notify();
  }

  /** The fields of PENDING entries, read with their files: [entry, ENTRY_FIELDS] × n, in entry order. */
  #fields(stats: Float64Array): void {
    for (let k = 0; k < stats.length; k += ENTRY_STRIDE + 1) {
      const index = stats[k]!;
      let b = this.#batches[this.#statBatch]!;
      while (index >= b.from + b.num.length / ENTRY_STRIDE) b = this.#batches[++this.#statBatch]!;
      b.num.set(stats.subarray(k + 1, k + 1 + ENTRY_STRIDE), (index - b.from) * ENTRY_STRIDE);
    }
  }

  /** A sealed slab whose pieces were all handed out leaves the window. */
  #maybeFinish(slab: Slab): void {
    if (!slab.active || !slab.sealed || slab.unconsumed > 0) return;
    slab.active = false;
    this.#active--;
    if (this.#reuse) this.#finished.push(slab);
    else this.#slabs.delete(slab.id);
    this.#topUp();
  }

  #topUp(): void {
    while (this.#active < this.#window && !this.#ended && !this.#exited) {
      const slab = this.#free.pop() ?? this.#newSlab();
      slab.active = true;
      slab.sealed = false;
      slab.unconsumed = 0;
      this.#active++;
      // The worker keeps each slab's view: a slab goes over once (posting a SharedArrayBuffer
      // costs ms on a loaded machine), later grants name it.
      this.#worker.postMessage(slab.posted ? { t: 'grant', id: slab.id } : { t: 'grant', id: slab.id, sab: slab.sab, zeros: slab.zeros });
      slab.posted = true;
    }
  }

  #newSlab(): Slab {
    return this.#addSlab(this.#nextId++, slabBuffer(this.#reuse), new SharedArrayBuffer(SLAB_BYTES / SLAB_ALIGN));
  }

  #addSlab(id: number, sab: SharedArrayBuffer, zeros: SharedArrayBuffer): Slab {
    // The worker fills the map before it posts a piece's bytes (its message orders the writes before our reads).
    setZeroUnits(sab, { unit: SLAB_ALIGN, zero: new Uint8Array(zeros) });
    const slab: Slab = { id, sab, zeros, view: new Uint8Array(sab), active: false, sealed: false, unconsumed: 0, posted: false };
    this.#slabs.set(id, slab);
    return slab;
  }

  async #wait(): Promise<void> {
    if (this.#failure) throw this.#failure;
    if (this.#exited) throw new Error('the host reader is closed');
    // Waiting for the worker keeps the process alive (it is unref'd otherwise).
    this.#worker.ref();
    try {
      await new Promise<void>((resolve) => this.#wakers.push(resolve));
    } finally {
      this.#worker.unref();
    }
  }

  /**
   * Entry `index` if it is listed already (entries are asked for in order), null past the last
   * one, undefined when it must be waited for (entry()): not listed yet, or a regular file whose
   * fields come with its bytes (PENDING). The consumer takes most entries this way: the listing
   * runs ahead, and an await per entry is a promise and a microtask for nothing.
   */
  listed(index: number): ListedEntry | null | undefined {
    while (this.#batch < this.#batches.length) {
      const b = this.#batches[this.#batch]!;
      const k = index - b.from;
      if (k * ENTRY_STRIDE < b.num.length) {
        if (k < 0) return null;
        if (b.num[k * ENTRY_STRIDE + ENTRY_FIELDS.type] !== PENDING) return { rel: this.rels[index]!, num: b.num, o: k * ENTRY_STRIDE };
        break;
      }
      this.#batch++;
    }
    if (this.#count !== null && index >= this.#count) return null;
    if (this.#failure) throw this.#failure;
    return undefined;
  }

  /** Entry `index` once listed (entries are asked for in order), or null past the last one. */
  async entry(index: number): Promise<ListedEntry | null> {
    for (;;) {
      const l = this.listed(index);
      if (l !== undefined) return l;
      await this.#wait();
    }
  }

  /** The number of entries, once the walk is complete (null before). */
  get count(): number | null {
    return this.#count;
  }

  /** Waits for the walk to complete: the number of entries. */
  async counted(): Promise<number> {
    while (this.#count === null) await this.#wait();
    return this.#count;
  }

  /** The next piece of entry `index`'s bytes if it came already (pieces of earlier entries nobody read are dropped), else undefined. */
  #pieceNow(index: number): Piece | undefined {
    while (this.#head < this.#queue.length) {
      const p = this.#queue[this.#head]!;
      if (p.index > index) throw new Error(`host reader: no bytes for entry ${index}`);
      this.#queue[this.#head++] = undefined as unknown as Piece;
      if (this.#head > 4096 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      if (p.slab) {
        p.slab.unconsumed--;
        this.#maybeFinish(p.slab);
      }
      if (p.index === index) {
        if (p.error) throw p.error;
        return p;
      }
    }
    if (this.#failure) throw this.#failure;
    if (this.#ended) throw new Error(`host reader: no bytes for entry ${index}`);
    return undefined;
  }

  /** The next piece of entry `index`'s bytes. */
  async #piece(index: number): Promise<Piece> {
    for (;;) {
      const p = this.#pieceNow(index);
      if (p) return p;
      await this.#wait();
    }
  }

  /** A file read whole (≤ 1 MiB), if its bytes came already (one slab slice), else undefined (whole()). */
  wholeNow(index: number): Uint8Array | undefined {
    const p = this.#pieceNow(index);
    return p && p.slab!.view.subarray(p.off, p.off + p.len);
  }

  /** A file read whole (≤ 1 MiB): one slab slice. */
  async whole(index: number): Promise<Uint8Array> {
    const p = await this.#piece(index);
    return p.slab!.view.subarray(p.off, p.off + p.len);
  }

  /** A file's pieces in order. */
  async *chunks(index: number): AsyncGenerator<Uint8Array> {
    for (;;) {
      const p = await this.#piece(index);
      yield p.slab!.view.subarray(p.off, p.off + p.len);
      if (p.last) return;
    }
  }

  /** Whether entry `index` is read whole (see whole()) rather than in chunks. */
  static isWhole(size: number): boolean {
    return size <= WHOLE_FILE_BYTES;
  }

  /**
   * Every piece handed out before `held` (the oldest one the consumer still needs; null: none) is
   * free again: the finished slabs before `held`'s. Pieces are handed out in slab order (the worker
   * fills one slab at a time, and a slab finishes when its last piece is handed out), so #finished
   * is in that order, and a slab finished after `held`'s holds only later pieces; if `held`'s slab
   * is still being handed out, every finished slab is older.
   */
  recycle(held: Uint8Array | null): void {
    if (!this.#reuse) return;
    const keep = held?.buffer;
    let n = 0;
    while (n < this.#finished.length && this.#finished[n]!.sab !== keep) n++;
    if (n === 0) return;
    for (let k = 0; k < n; k++) this.#free.push(this.#finished[k]!);
    this.#finished = this.#finished.slice(n);
    this.#topUp();
  }

  /** Stop the worker (it closes the file it holds open) and wait for it to exit. */
  async close(): Promise<void> {
    if (!this.#exited) {
      this.#ended = true; // no more grants; its exit is not a failure
      this.#worker.ref();
      this.#worker.postMessage({ t: 'stop' });
    }
    await this.#exit;
  }
}
