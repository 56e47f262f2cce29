/**
 * What `ext4kit import` does once its arguments are parsed, without commander: the commander
 * command (import.ts) and the fast path (fast-path.ts; in the bundle a script of its own with a
 * V8 code cache, code-cache.ts) both run it, so both print the same. A fresh import otherwise
 * compiled commander and the whole write path from scratch (Node 20 has no compile cache for ES
 * modules). The tar reader and the progress bar's module load only when used.
 */
import * as nodeFs from 'node:fs';
import { raiseInterruptBudget } from '../interrupt-budget.js';
import type { Timestamp } from '../../ext4/inode.js';
import { importTree } from '../../ops/import-tree.js';
import type { TreeEntry, TreeSummary } from '../../ops/tree-entry.js';
import { jsonText, type CliContext, type GlobalOptions } from '../context.js';
import { readHostTree } from '../host-tree.js';
import { IMPORT_READ } from './import-early.js';
import { withWritable } from '../open-writable.js';
import { readMode, readOwner, readTime } from '../option-values.js';
import { summaryLine } from '../tree-summary.js';

export interface ImportArgs {
  at?: string;
  owner?: { uid: number; gid: number };
  mode?: number;
  now?: Timestamp;
  xattrs?: boolean;
  progress?: boolean;
  json?: boolean;
  /**
   * Raise V8's interrupt budget for the work (a fresh process: the fast path; interrupt-budget.ts):
   * once the reader thread runs and the tar reader is loaded, back to the default at the end.
   */
  raiseBudget?: boolean;
}

/** Import `source` (a directory, a tar file, or - for tar on stdin) into `image`; the whole output. */
export async function importText(image: string, source: string, opts: ImportArgs, globals: GlobalOptions, ctx: CliContext): Promise<string> {
  const warn = (m: string) => ctx.io.stderr.write(`ext4kit: warning: ${m}\n`);
  const isDir = source !== '-' && nodeFs.statSync(source).isDirectory();
  // A directory's walk and reads start now, on their own thread, while the image opens.
  // (started already when launch.ts saw `import IMAGE DIR`: import-early.ts, with these options)
  const tree = isDir ? readHostTree(source, { xattrs: opts.xattrs !== false, warn, reuse: IMPORT_READ.reuse }) : null;
  // Rejections are taken where the tree is awaited (or dropped when the image failed to open).
  tree?.catch(() => undefined);
  const owner = opts.owner && { uid: opts.owner.uid === -1 ? 0 : opts.owner.uid, gid: opts.owner.gid === -1 ? 0 : opts.owner.gid };
  let bar: { update(s: Readonly<TreeSummary>): void; stop(): void } | null = null;
  let stopped = false;
  let summary: TreeSummary;
  let restoreBudget = null as (() => void) | null;
  try {
    summary = await withWritable(image, globals, ctx, async (fs) => {
      let entries: AsyncIterable<TreeEntry>;
      let released: ((held: Uint8Array | null) => void) | undefined;
      // (--json and --no-progress first: stderr is created only when it may be a terminal)
      const showBar = opts.progress !== false && !opts.json && (ctx.io.stderr as NodeJS.WriteStream).isTTY === true;
      let onProgress: ((s: Readonly<TreeSummary>) => void) | undefined;
      if (tree) {
        const t = await tree;
        // (the thread has listed the root: it booted with V8's default flags, see interrupt-budget.ts)
        if (opts.raiseBudget) restoreBudget = raiseForImport();
        entries = t.entries;
        released = t.recycle;
        // The bar appears once the walk (ahead of the import) has counted the entries.
        if (showBar) {
          Promise.all([t.counted(), import('../progress.js')]).then(([n, { progressBar }]) => { if (!stopped) bar = progressBar(ctx, n > 0, n, 'entries'); }, () => undefined);
          onProgress = (s) => bar?.update(s);
        }
      } else {
        const { readTar } = await import('../tar-tree.js');
        entries = readTar(source === '-' ? process.stdin : nodeFs.createReadStream(source, { highWaterMark: 1024 * 1024 }));
        if (opts.raiseBudget) restoreBudget = raiseForImport();
      }
      return importTree(fs, opts.xattrs === false ? stripXattrs(entries) : entries, {
        at: opts.at, owner, mode: opts.mode, now: opts.now, onProgress, released, dataWritten: released,
      });
    }, opts.now);
  } finally {
    stopped = true;
    (bar as { stop(): void } | null)?.stop();
    // No reader thread is left behind (importTree stopped early, or the image did not open).
    await tree?.then((t) => t.close(), () => undefined);
    restoreBudget?.();
  }
  return opts.json ? jsonText(summary) : summaryLine('imported', summary);
}

/**
 * The raised budget for the import's work. Node's modules that load on first use would be compiled
 * from source under it (interrupt-budget.ts): webcrypto, which new inodes' random generation
 * numbers load (~14 M instructions more), is loaded first. TurboFan inlines half as much
 * (interrupt-budget.ts: a fresh import of the bench tree, V8 single-threaded under callgrind, 12.5 →
 * 9.8 G instructions, images identical).
 */
function raiseForImport(): () => void {
  void globalThis.crypto;
  return raiseInterruptBudget({ leanInlining: true });
}

async function* stripXattrs<T extends { xattrs?: unknown }>(it: AsyncIterable<T>): AsyncGenerator<T> {
  for await (const e of it) yield { ...e, xattrs: [] };
}

/** fast-path.ts: whether commander's parsers (write-open.ts) take each valued option (else commander prints the usage error). */
export function fastValuesValid(values: ReadonlyMap<string, string>): boolean {
  const read = { '--owner': readOwner, '--mode': readMode, '--now': readTime } as Partial<Record<string, (v: string) => unknown>>;
  for (const [name, v] of values) if (typeof read[name]?.(v) === 'string') return false;
  return true;
}

/** fast-path.ts: `import IMAGE SOURCE [--at P] [--owner U:G] [--mode M] [--now T] [--no-xattrs] [--no-progress] [--json]` (values checked by fastValuesValid). */
export function runFast(positionals: readonly string[], flags: ReadonlySet<string>, globals: GlobalOptions, ctx: CliContext, values: ReadonlyMap<string, string>): Promise<string> {
  const get = <T>(name: string, read: (v: string) => T | string): T | undefined => {
    const v = values.get(name);
    return v === undefined ? undefined : (read(v) as T);
  };
  return importText(positionals[0]!, positionals[1]!, {
    // commander's default for --at
    at: values.get('--at') ?? '/',
    owner: get('--owner', readOwner),
    mode: get('--mode', readMode),
    now: get('--now', readTime),
    xattrs: !flags.has('--no-xattrs'),
    progress: !flags.has('--no-progress'),
    json: flags.has('--json'),
    raiseBudget: true,
  }, globals, ctx);
}
