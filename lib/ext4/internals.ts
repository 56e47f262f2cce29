/**
 * The parts of an open Filesystem that are not its public API — the block cache, the block view
 * stack, the replay overlay, the live journal, the MMP session, the crash-test commit hooks —
 * for lib/ modules and tests that need them. Not exported from lib/index.ts.
 *
 *   internals(fs).commitHooks = { onStep: … };   // crash injection
 *   internals(fs).journal?.pending               // committed, not yet checkpointed
 */
import { Ext4Error } from '../errors.js';
import type { BlockCache } from '../io/cache.js';
import type { BlockView } from './block-view.js';
import type { CommitHooks, JournalState } from './commit.js';
import type { MmpSession } from './mmp.js';

export interface FsInternals {
  readonly cache: BlockCache;
  /** disk + cache ← journal pending checkpoint ← replay overlay (block-view.ts). */
  readonly view: BlockView;
  /** Blocks replayed from the journal into memory, or null. */
  readonly overlay: ReadonlyMap<number, Uint8Array> | null;
  /** The live journal while open for writing (null without a journal or read-only). */
  readonly journal: JournalState | null;
  /** The held MMP block while open for writing an INCOMPAT_MMP fs. */
  readonly mmp: MmpSession | null;
  /** Called at each commit step (crash injection). */
  commitHooks: CommitHooks;
}

const registry = new WeakMap<object, FsInternals>();

/** Called once by each Filesystem it constructs. */
export function registerInternals(fs: object, parts: FsInternals): void {
  registry.set(fs, parts);
}

export function internals(fs: object): FsInternals {
  const parts = registry.get(fs);
  if (!parts) throw new Ext4Error('EINVAL', 'internals(): not an open Filesystem');
  return parts;
}
