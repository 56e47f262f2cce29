/**
 * Entry point of the `ext4kit` binary (bundled to dist/cli.js by
 * scripts/bundle-cli.mjs; in a checkout: `node --import tsx lib/cli/main.ts`).
 * The program itself is built in program.ts so tests can run it in-process.
 *
 * A fresh process is mostly start-up, so this file loads next to nothing: the bundle is split
 * (scripts/bundle-cli.mjs) and everything else is imported dynamically — `--version` runs
 * here; `info`, `ls`, `free` and `movedata` (fast-path.ts) run without commander — in the
 * bundle `ls`, `free` and `movedata` from their own script with a V8 code cache (code-cache.ts);
 * the other commands load commander and their own module. process.stdout is created only by a
 * command that streams (output.ts).
 */
import module from 'node:module';
import { fileURLToPath } from 'node:url';
import { packageVersion } from './version.js';
import { parseFast, runFastModule } from './fast-path.js';
import { runCached } from './code-cache.js';
import { loadFastModule } from './fast-modules.js';
import { processIO, writeStdoutSync } from './output.js';

/**
 * Set by scripts/bundle-cli.mjs: JSON of {command: its script, relative to this file} (a string:
 * an object define would become a module of its own for every run to load); undefined from source.
 */
declare const __EXT4KIT_FAST_SCRIPTS__: string | undefined;

// Node ≥ 22.1 can keep V8's compiled code on disk (in the OS temp dir) for the next process, as
// tsc and npm do; NODE_DISABLE_COMPILE_CACHE=1 turns it off. Node 20 has no such cache for ES
// modules (the fast commands' scripts have their own: code-cache.ts).
(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();

const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
  // What commander prints for .version(): the version and a newline.
  writeStdoutSync(packageVersion() + '\n');
} else {
  const fast = parseFast(argv);
  // `import IMAGE DIR`: the directory's reader thread and xattr helper start before the import's
  // script loads (host-read-start.ts; its first listing and python3's first answer no longer wait
  // for the script, the image's open does).
  if (fast?.command === 'import') (await import('./commands/import-early.js')).startImportEarly(fast);
  const script = fast && typeof __EXT4KIT_FAST_SCRIPTS__ === 'string' ? (JSON.parse(__EXT4KIT_FAST_SCRIPTS__) as Partial<Record<string, string>>)[fast.command] : undefined;
  let status: number | null = null;
  if (fast && script !== undefined) status = await runCached<typeof fast, number | null>(fileURLToPath(new URL(script, import.meta.url)), fast);
  else if (fast) status = await runFastModule(fast, await loadFastModule(fast.command));
  // (null: not a fast command, or a value commander refuses — it prints the usage error)
  if (status === null) {
    const { run } = await import('./program.js');
    status = await run(argv, processIO());
  }
  process.exitCode = status;
}
