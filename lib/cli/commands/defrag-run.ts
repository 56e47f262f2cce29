/**
 * What `ext4kit defrag` does once its arguments are parsed, without commander: the commander
 * command (defrag.ts, which adds --draw) and the fast path (fast-path.ts; in the bundle a script
 * of its own with a V8 code cache) both run it, so both print the same. The progress bar's module
 * loads only on a terminal, and stderr is not even looked at with --json or --no-progress: a
 * fresh process loads what it runs.
 */
import type { SingleBar } from 'cli-progress';
import type { Filesystem } from '../../ext4/filesystem.js';
import { defrag, type DefragSummary } from '../../ops/defrag.js';
import { jsonText, type CliContext, type GlobalOptions } from '../context.js';
import { withWritable } from '../open-writable.js';
import { withRaisedInterruptBudget } from '../interrupt-budget.js';

export interface DefragArgs {
  dryRun?: boolean;
  json?: boolean;
  /** As typed (checked once the image is open, as the commander path always did). */
  maxSeconds?: string;
  maxBytes?: string;
  compact?: boolean;
  progress?: boolean;
  /** Called with the open filesystem before and after the run (--draw). */
  around?(fs: Filesystem, when: 'before' | 'after'): Promise<void>;
}

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw Object.assign(new Error(`--${name} must be a non-negative number`), { code: 'EINVAL' });
  return n;
}

/**
 * Defrag's writes up to this size go straight from the main thread (FileDevice syncWriteMax): its
 * copy awaits each 1 MiB chunk before the next and its commits await their log writes, so the
 * pool's round trip only added latency (fresh 256 MiB 90 % run, 15 interleaved rounds at load 3:
 * fastest quarter 500 → 453 ms, images identical). Flushes stay asynchronous: the next wave is
 * prepared under them.
 */
const DEFRAG_SYNC_WRITE_MAX = 4 * 1024 * 1024;

/** Defragment, then the whole output (made after the run and the close succeeded). */
export async function defragText(image: string, paths: string[], opts: DefragArgs, globals: GlobalOptions, ctx: CliContext): Promise<string> {
  let bar: SingleBar | null = null;
  const summary: DefragSummary = await withWritable(image, globals, ctx, async (fs) => {
    try {
      await opts.around?.(fs, 'before');
      // (--json and --no-progress first: stderr is created only when it may be a terminal)
      const tty = !opts.json && opts.progress !== false && (ctx.io.stderr as NodeJS.WriteStream).isTTY;
      if (tty) {
        const cliProgress = (await import('cli-progress')).default;
        bar = new cliProgress.SingleBar({ stream: ctx.io.stderr as NodeJS.WriteStream, format: '{phase} [{bar}] {value}/{total} {path}', hideCursor: true }, cliProgress.Presets.shades_classic);
        bar.start(1, 0, { phase: 'defrag', path: '' });
      }
      const s = await defrag(fs, {
        paths,
        dryRun: opts.dryRun,
        maxSeconds: num(opts.maxSeconds, 'max-seconds'),
        maxBytes: num(opts.maxBytes, 'max-bytes'),
        compact: opts.compact,
        onProgress: (p) => {
          if (!bar) return;
          bar.setTotal(Math.max(1, p.total));
          bar.update(p.done, { phase: p.phase, path: p.path });
        },
      });
      (bar as SingleBar | null)?.stop();
      if (!opts.dryRun) await opts.around?.(fs, 'after');
      return s;
    } finally {
      (bar as SingleBar | null)?.stop();
    }
  }, undefined, { readOnly: opts.dryRun, syncWriteMax: DEFRAG_SYNC_WRITE_MAX });
  if (opts.json) {
    const { plan, ...rest } = summary;
    return jsonText(opts.dryRun ? { ...rest, plan } : rest);
  }
  return summaryText(summary, !!opts.dryRun);
}

/** The text report of a run (`dryRun`: the plan, its predicted result, and whether a real run may plan again). */
export function summaryText(summary: DefragSummary, dryRun: boolean): string {
  const lines: string[] = [];
  if (dryRun) for (const p of summary.plan) lines.push(`${p.phase.padEnd(7)} ${p.path}: ${p.fragmentsBefore} -> ${p.fragmentsAfter} extent(s), ${p.blocks} block(s) to ${p.target.map((t) => `${t.start}+${t.length}`).join(',')}`);
  lines.push(
    `files: ${summary.files} (${dryRun ? `${summary.plan.length} move(s) planned` : `${summary.filesMoved} moved in ${summary.moves} move(s)`}, ${summary.filesSkipped} could not be improved)`,
    `extents: ${summary.extentsBefore} -> ${summary.extentsAfter}`,
    `free extents: ${summary.freeExtentsBefore} -> ${summary.freeExtentsAfter}; largest free extent: ${summary.largestFreeBefore} -> ${summary.largestFreeAfter} blocks${summary.largestFreePossible === undefined ? '' : ` (at most ${summary.largestFreePossible} possible: blocks that never move cut the rest)`}`,
    `moved ${summary.bytesMoved} bytes in ${summary.seconds.toFixed(2)} s${summary.stoppedBy !== 'done' ? ` (stopped by ${summary.stoppedBy}; run again to continue)` : ''}`,
  );
  if (dryRun) {
    lines.push(`predicted result: ${summary.predicted.extents} extent(s), ${summary.predicted.freeExtents} free extent(s), largest free extent ${summary.predicted.largestFree} blocks`);
    if (!summary.predictionExact) lines.push('(provisional: a planned move needs an extent-tree block whose place the plan does not predict; the real run plans the rest again from there, so its later moves and result can differ)');
  }
  for (const e of summary.errors) lines.push(`skipped ${e.path}: ${e.code}: ${e.message}`);
  return lines.join('\n') + '\n';
}

/** fast-path.ts: `defrag IMAGE [PATH…] [--dry-run] [--json] [--no-compact] [--no-progress] [--max-seconds S] [--max-bytes N]` (commander takes any value for both: checked after the open, as there). */
export function runFast(positionals: readonly string[], flags: ReadonlySet<string>, globals: GlobalOptions, ctx: CliContext, values: ReadonlyMap<string, string>): Promise<string> {
  // (8× V8's default interrupt budget: see interrupt-budget.ts. V8's default is back before
  // code-cache.ts writes the script's cache: raised, every next run rejected the cache, compiled
  // the whole script again and wrote a new cache at exit)
  return withRaisedInterruptBudget(() => defragText(
    positionals[0]!,
    positionals.slice(1),
    { dryRun: flags.has('--dry-run'), json: flags.has('--json'), compact: !flags.has('--no-compact'), progress: !flags.has('--no-progress'), maxSeconds: values.get('--max-seconds'), maxBytes: values.get('--max-bytes') },
    globals,
    ctx,
  ), { factor: 8 });
}
