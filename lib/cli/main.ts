/**
 * The ES module entry of the `ext4kit` binary: run from source (`node --import tsx
 * lib/cli/main.ts`) and bundled as dist/cli.js; the package's `bin` is the CommonJS launcher
 * (bin.ts, dist/cli.cjs), which does the same without node's ES module loader. Both run
 * launch.ts. The program itself is built in program.ts so tests can run it in-process.
 *
 * A fresh process is mostly start-up, so this file loads next to nothing: the bundle is split
 * (scripts/bundle-cli.mjs) and everything else is imported dynamically — `--version` runs
 * in launch.ts; `info`, `ls`, `free`, `movedata`, `defrag` and `import` (fast-path.ts) run
 * without commander — in the bundle each from its own script with a V8 code cache
 * (code-cache.ts); the other commands load commander and their own module. process.stdout is
 * created only by a command that streams (output.ts).
 */
import { fileURLToPath } from 'node:url';
import { launch } from './launch.js';

/**
 * Set by scripts/bundle-cli.mjs: JSON of {command: its script, relative to this file} (a string:
 * an object define would become a module of its own for every run to load); undefined from source.
 */
declare const __EXT4KIT_FAST_SCRIPTS__: string | undefined;

process.exitCode = await launch(process.argv.slice(2), {
  scripts: typeof __EXT4KIT_FAST_SCRIPTS__ === 'string' ? (JSON.parse(__EXT4KIT_FAST_SCRIPTS__) as Partial<Record<string, string>>) : undefined,
  base: fileURLToPath(new URL('.', import.meta.url)),
  importEarly: () => import('./commands/import-early.js'),
  slow: () => import('./slow-path.js'),
});
