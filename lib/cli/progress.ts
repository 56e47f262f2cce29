/**
 * Progress and summaries of the tree commands (import, export, cp -r): a bar on stderr when it is a
 * terminal, and the one-line summary.
 */
import cliProgress from 'cli-progress';
import type { TreeSummary } from '../ops/tree-entry.js';
import type { CliContext } from './util.js';

/** A progress bar on stderr when it is a terminal (null otherwise, or with --json / --no-progress). */
export function progressBar(ctx: CliContext, enabled: boolean, total: number, unit: string): { update(s: Readonly<TreeSummary>): void; stop(): void } | null {
  const err = ctx.io.stderr as NodeJS.WriteStream;
  if (!enabled || !err.isTTY) return null;
  const bar = new cliProgress.SingleBar({ stream: err, format: `{bar} {value}/{total} ${unit} {bytes}`, hideCursor: true }, cliProgress.Presets.shades_classic);
  bar.start(Math.max(1, total), 0, { bytes: '' });
  let last = 0;
  return {
    update(s) {
      const t = Date.now();
      if (t - last < 100) return;
      last = t;
      bar.update(s.entries, { bytes: `${(s.bytes / 1048576).toFixed(0)} MiB` });
    },
    stop() {
      bar.stop();
    },
  };
}

// (in a module of its own: import's fast script prints it without loading cli-progress)
export { summaryLine } from './tree-summary.js';
