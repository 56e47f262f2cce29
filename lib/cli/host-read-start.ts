/**
 * The start of a host directory's read (host-tree.ts readHostTree): the reader thread with its
 * first slabs (host-reader-worker.ts) and the xattr helper (xattr-reader.ts), each buffering what
 * it says until its consumer (HostReader, XattrReader) listens.
 *
 * Why a start of its own: `ext4kit import IMAGE DIR` starts both from launch.ts as soon as argv says
 * so (commands/import-early.ts), before the import's script and its code cache load, and
 * readHostTree takes them over (takeStartedRead). Timestamps of a fresh import of the bench tree:
 * the thread was made at 75–86 ms, its first listing came 15–25 ms after the image was open, and
 * python3's first answer 11–14 ms after that; the main thread waited for both. Started early
 * (fresh imports of a 257-entry tree, 28 interleaved rounds, load 15–18): the time to the first
 * entry less the main thread's run-queue wait went from 169 to 124 ms (median), the main thread's
 * CPU to that point from 102 to 107 ms (the early chunk), and callgrind counts 1,066 M
 * instructions for the whole process instead of 1,076 M. The thread also boots with V8's default
 * flags this way (interrupt-budget.ts), and python3 is forked from a process that has not yet
 * loaded the write path.
 *
 * The handover goes through a global slot (Symbol.for): in the bundle the launcher (or main.ts's chunk) and the
 * import's script each carry their own copy of this module.
 */
import { Worker } from 'node:worker_threads';
import { HOST_READER_WORKER, type WorkerConfig } from './host-reader-worker.js';
import { python, startXattrHelper, type StartedHelper } from './xattr-reader.js';
import { alignedShared } from '../io/aligned.js';

/** Files up to this size are read whole into a slab slice; larger ones in chunks of a slab each. */
export const WHOLE_FILE_BYTES = 1024 * 1024;
/**
 * Small files are read into slices of slabs this size (one allocation per slab, not per file).
 * Every slab page costs a page fault the first time the thread reads into it (~2 µs with its
 * zeroing), and an import holds a commit's worth of them (importTree's `released`) besides the
 * read-ahead: a fresh import of the bench tree made 18 slabs of 8 MiB; with 4 MiB slabs and the
 * read-ahead 32 MiB instead of 48, it faults ~10,000 pages less (minflt 79.6 → 70.0 k, median of
 * 8 interleaved runs; maxrss 308 → 277 MB), images identical.
 */
export const SLAB_BYTES = 4 * 1024 * 1024;
/**
 * Where a file starts in a slab: files of one slab laid out block after block (4 KiB blocks, the
 * tails zero) are what the importer's blocks look like, so a run of them is written without a copy.
 */
export const SLAB_ALIGN = 4096;
/** Read-ahead: slabs the worker fills ahead of the consumer (32 MiB). */
export const WINDOW_SLABS = 8;

/** What a reader thread said before its HostReader listened, replayed in order. */
type ThreadEvent = { kind: 'message'; m: unknown } | { kind: 'error'; e: Error } | { kind: 'exit' };

export interface ThreadListener {
  message(m: unknown): void;
  error(e: Error): void;
  exit(): void;
}

/** A reader thread started with its first window of slabs. */
export interface StartedThread {
  readonly worker: Worker;
  readonly config: WorkerConfig;
  /**
   * From now on `l` hears the thread: what it said so far first, in order, on a microtask (the
   * caller finishes its own set-up first: host-tree.ts wires the xattr reader after the HostReader).
   */
  listen(l: ThreadListener): void;
}

export interface ThreadOptions {
  reuse: boolean;
  listPaths: boolean;
  windowSlabs?: number;
  /** The thread's source text (default HOST_READER_WORKER; tests wrap it). */
  workerSource?: string;
}

/**
 * A slab's bytes. Kept slabs are page-aligned (the kernel copies a read into a misaligned one at
 * half speed, lib/io/aligned.ts); slabs used once stay plain (a memory mapped for each would pile up).
 */
export function slabBuffer(reuse: boolean): SharedArrayBuffer {
  return reuse ? alignedShared(SLAB_BYTES) : new SharedArrayBuffer(SLAB_BYTES);
}

/** The thread and its first slabs; it is unref'd (a consumer waiting for it refs it). */
export function startReaderThread(root: string, opts: ThreadOptions): StartedThread {
  const window = Math.max(1, opts.windowSlabs ?? WINDOW_SLABS);
  const slabs: WorkerConfig['slabs'] = [];
  for (let id = 0; id < window; id++) slabs.push({ id, sab: slabBuffer(opts.reuse), zeros: new SharedArrayBuffer(SLAB_BYTES / SLAB_ALIGN) });
  const config: WorkerConfig = { root, slabBytes: SLAB_BYTES, wholeFileBytes: WHOLE_FILE_BYTES, align: SLAB_ALIGN, postFiles: 32, postBytes: 1024 * 1024, keepSlabs: opts.reuse, listPaths: opts.listPaths, slabs };
  // execArgv []: the source is plain CommonJS; no loader or --input-type of the parent applies.
  const worker = new Worker(opts.workerSource ?? HOST_READER_WORKER, { eval: true, workerData: config, execArgv: [] });
  worker.unref();
  // A Worker drops messages nobody listens to: kept until listen().
  const early: ThreadEvent[] = [];
  let to: ThreadListener | null = null;
  const hear = (ev: ThreadEvent) => {
    if (!to) early.push(ev);
    else if (ev.kind === 'message') to.message(ev.m);
    else if (ev.kind === 'error') to.error(ev.e);
    else to.exit();
  };
  worker.on('message', (m: unknown) => hear({ kind: 'message', m }));
  worker.on('error', (e: unknown) => hear({ kind: 'error', e: e instanceof Error ? e : new Error(String(e)) }));
  worker.on('exit', () => hear({ kind: 'exit' }));
  return {
    worker, config,
    listen(l) {
      queueMicrotask(() => {
        to = l;
        for (const ev of early.splice(0)) hear(ev);
      });
    },
  };
}

/** What readHostTree needs started: the thread, and the helper when xattrs are read. */
export interface StartedRead {
  root: string;
  options: Required<Omit<ThreadOptions, 'workerSource'>>;
  thread: StartedThread;
  helper: StartedHelper | null;
}

const SLOT = Symbol.for('ext4kit.startedHostRead');
type Slot = { [SLOT]?: StartedRead };

/**
 * Start reading `root` now (with the xattr helper unless `xattrs` is false or there is no python3)
 * and leave it for readHostTree (takeStartedRead) to take over.
 */
export function startReadEarly(root: string, opts: { reuse: boolean; xattrs: boolean }): void {
  const withHelper = opts.xattrs && python() !== null;
  const thread = startReaderThread(root, { reuse: opts.reuse, listPaths: withHelper });
  let helper: StartedHelper | null = null;
  try {
    if (withHelper) helper = startXattrHelper();
  } catch {
    // (readHostTree starts its own, and reports what fails)
    thread.worker.postMessage({ t: 'stop' });
    return;
  }
  (globalThis as Slot)[SLOT] = { root, options: { reuse: opts.reuse, listPaths: withHelper, windowSlabs: WINDOW_SLABS }, thread, helper };
}

/**
 * The read started early for `root` with these options, or null. One that does not match (another
 * root, other options) is stopped: nobody else will take it.
 */
export function takeStartedRead(root: string, opts: { reuse: boolean; listPaths: boolean; windowSlabs?: number }): StartedRead | null {
  const slot = globalThis as Slot;
  const s = slot[SLOT];
  if (!s) return null;
  delete slot[SLOT];
  if (s.root === root && s.options.reuse === opts.reuse && s.options.listPaths === opts.listPaths && s.options.windowSlabs === Math.max(1, opts.windowSlabs ?? WINDOW_SLABS)) return s;
  s.thread.worker.postMessage({ t: 'stop' });
  s.helper?.child.stdin!.end();
  return null;
}
