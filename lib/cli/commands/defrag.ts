/**
 * `ext4kit defrag IMAGE [PATH…]`: defragment files (PATH…) or the whole
 * filesystem, using only getFreeBlocks, allocate and movedata.
 */
import type { Command } from 'commander';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SingleBar } from 'cli-progress';
import type { Filesystem } from '../../ext4/filesystem.js';
import { defrag, type DefragSummary } from '../../ops/defrag.js';
import { printJson, write, type CliContext } from '../util.js';
import { withWritable } from '../write-open.js';

/**
 * A block-map picture (--draw): loaded only when asked for. The image opens through
 * withWritable, not ext4kit/node (the whole library), and the progress bar's module loads only
 * on a terminal: a fresh `ext4kit defrag` process loads what it runs (module loading is a large
 * share of a small image's wall time).
 */
async function drawTo(fs: Filesystem, dir: string, file: string, title: string): Promise<void> {
  const { drawMap } = await import('../../ops/draw.js');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, file), await drawMap(fs, { title }));
}

interface Opts {
  dryRun?: boolean;
  json?: boolean;
  maxSeconds?: string;
  maxBytes?: string;
  draw?: string;
  compact?: boolean;
  progress?: boolean;
}

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw Object.assign(new Error(`--${name} must be a non-negative number`), { code: 'EINVAL' });
  return n;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('defrag')
    .description('defragment files, or the whole filesystem when no PATH is given (plans globally, consolidates free space); journaled, crash-safe and resumable')
    .argument('<image>', 'filesystem image or block device (must not be mounted)')
    .argument('[paths...]', 'files or directories inside the image (default: everything)')
    .option('--dry-run', 'print the plan, change nothing')
    .option('--json', 'print the summary (and with --dry-run the plan) as JSON')
    .option('--max-seconds <s>', 'stop starting new moves after this many seconds')
    .option('--max-bytes <n>', 'stop starting new moves after moving this many bytes')
    .option('--no-compact', 'skip the free-space compaction pass')
    .option('--draw <dir>', 'write before.svg and after.svg block-map pictures into DIR')
    .option('--no-progress', 'no progress bar even on a terminal')
    .action(async (image: string, paths: string[], opts: Opts, cmd: Command) => {
      let bar: SingleBar | null = null;
      const summary: DefragSummary = await withWritable(image, cmd, ctx, async (fs) => {
        try {
          if (opts.draw) await drawTo(fs, opts.draw, 'before.svg', `${image} before defrag`);
          const tty = (ctx.io.stderr as NodeJS.WriteStream).isTTY && opts.progress !== false && !opts.json;
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
          if (opts.draw && !opts.dryRun) await drawTo(fs, opts.draw, 'after.svg', `${image} after defrag`);
          return s;
        } finally {
          (bar as SingleBar | null)?.stop();
        }
      }, undefined, { readOnly: opts.dryRun });
      if (opts.json) {
        const { plan, ...rest } = summary;
        return printJson(ctx, opts.dryRun ? { ...rest, plan } : rest);
      }
      const lines: string[] = [];
      if (opts.dryRun) for (const p of summary.plan) lines.push(`${p.phase.padEnd(7)} ${p.path}: ${p.fragmentsBefore} -> ${p.fragmentsAfter} extent(s), ${p.blocks} block(s) to ${p.target.map((t) => `${t.start}+${t.length}`).join(',')}`);
      lines.push(
        `files: ${summary.files} (${opts.dryRun ? `${summary.plan.length} move(s) planned` : `${summary.filesMoved} moved in ${summary.moves} move(s)`}, ${summary.filesSkipped} could not be improved)`,
        `extents: ${summary.extentsBefore} -> ${summary.extentsAfter}`,
        `free extents: ${summary.freeExtentsBefore} -> ${summary.freeExtentsAfter}; largest free extent: ${summary.largestFreeBefore} -> ${summary.largestFreeAfter} blocks`,
        `moved ${summary.bytesMoved} bytes in ${summary.seconds.toFixed(2)} s${summary.stoppedBy !== 'done' ? ` (stopped by ${summary.stoppedBy}; run again to continue)` : ''}`,
      );
      if (opts.dryRun) lines.push(`predicted result: ${summary.predicted.extents} extent(s), ${summary.predicted.freeExtents} free extent(s), largest free extent ${summary.predicted.largestFree} blocks`);
      for (const e of summary.errors) lines.push(`skipped ${e.path}: ${e.code}: ${e.message}`);
      await write(ctx.io.stdout, lines.join('\n') + '\n');
    });
}
