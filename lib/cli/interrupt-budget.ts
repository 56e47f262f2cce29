/**
 * V8's interrupt budget — how much a function runs before V8 considers optimising it — raised 4–8×
 * for a one-shot process whose work is long enough to warm up (the fast paths of `import` and
 * `defrag`). TurboFan's background compiles were most of a fresh import's CPU besides the main
 * thread (callgrind of a 2,778-entry tree: 4.0 G instructions of 6.6 G; 1.6 G with this), and on
 * two cores they take the time the main thread needs; a fresh defrag of a 256 MiB image spent
 * 0.63 s of user CPU at 50 % and 1.35 s at 90 %, 0.42 s and 0.90 s with this. Only the hottest
 * functions are optimised; the rest run a little longer in bytecode. `free` raises it 4× for its
 * scan: a TurboFan compile it started was still running when it had printed, and node's exit
 * waited for it (bench/cold, 1 TiB images, 9 interleaved rounds: 1,312 free runs 81 → 59 ms of
 * work, 27 → 0.3 ms from the last write to 'exit'; 244,508 runs 98 → 91 ms; CPU 108 → 72 ms and
 * 145 → 105 ms). `ls` (no better: 85 against 94 ms in the same rounds) and `movedata` (its main
 * thread mostly waits for I/O) keep V8's default. The flag is process-wide: set only on a fast path, never where the
 * library may run inside a longer-lived process (commander's path, the API).
 *
 * Every V8 flag that differs from its default changes V8's flag hash, and V8 rejects code compiled
 * under another hash. So the budget must be back at its default whenever code is cached or
 * loaded from a cache: (1) before code-cache.ts writes the fast script's cache after the command
 * (raised, the cache was rejected by every next run: the whole script compiled again each time, and
 * its cache written again at exit); (2) while a worker thread boots (Node's own modules, compiled
 * into the binary, are otherwise compiled from source in it: 261 M instructions instead of 112 M
 * for an empty worker), and while a Node module is first loaded.
 */
import { setFlagsFromString } from 'node:v8';

/** V8's default (66 KiB in the V8 of Node 20–22; the cache test in test/cli/fast-path-import checks it). */
const DEFAULT_BUDGET = 67_584;
/**
 * The factor over V8's default: 4× for import (8× and 16× took TurboFan's time onto the main thread:
 * the same CPU in all). defrag asks for 8×: a fresh defrag of the 256 MiB bench images, 7
 * interleaved rounds each, quiet: 90 % 486 → 460 ms (every 8× run but one under every 4× run),
 * 50 % and 70 % the same within noise (250 / 260 ms, 309 / 299 ms); 1× and 2× were 150–250 ms slower
 * at 90 %, 16× no better than 8×.
 */
const DEFAULT_FACTOR = 4;

/** V8's default for TurboFan's inlining per compile (bytecode bytes, Node 20). */
const DEFAULT_INLINE_CUMULATIVE = 920;
/**
 * Import's: half of it. TurboFan's compiles of import's large functions (continueFile, allocateInode,
 * walkBatch, …) were most of its platform threads' CPU; with less inlined into each they cost less
 * (a fresh import of bench/namespace's 20,563-entry tree under callgrind, V8 single-threaded so that
 * the compiles are counted: 12.52 → 9.81 G instructions, main thread 11.04 → 8.41 G; per-thread CPU
 * of 6 interleaved fresh runs at load ~10: 2.96 → 2.79 s in all). defrag keeps the default: not measured.
 */
const LEAN_INLINE_CUMULATIVE = 460;

/** Raise the budget (`factor` × V8's default, 4 unless given; with `leanInlining`, inline less); the function returned puts V8's defaults back. */
export function raiseInterruptBudget(opts: { factor?: number; leanInlining?: boolean } = {}): () => void {
  setFlagsFromString(`--interrupt-budget=${Math.round((opts.factor ?? DEFAULT_FACTOR) * DEFAULT_BUDGET)}`);
  if (opts.leanInlining) setFlagsFromString(`--max-inlined-bytecode-size-cumulative=${LEAN_INLINE_CUMULATIVE}`);
  return () => {
    if (opts.leanInlining) setFlagsFromString(`--max-inlined-bytecode-size-cumulative=${DEFAULT_INLINE_CUMULATIVE}`);
    setFlagsFromString(`--interrupt-budget=${DEFAULT_BUDGET}`);
  };
}

/** Run `work` with the budget raised, V8's default back once it settles (before the cache is written). */
export async function withRaisedInterruptBudget<T>(work: () => Promise<T>, opts: { factor?: number } = {}): Promise<T> {
  const restore = raiseInterruptBudget(opts);
  try {
    return await work();
  } finally {
    restore();
  }
}
