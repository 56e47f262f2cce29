/**
 * The CommonJS launcher of the `ext4kit` binary, dist/cli.cjs (the package's `bin`): launch.ts,
 * as main.ts runs it, without node's ES module loader — the fast commands' scripts are CommonJS
 * (code-cache.ts), so a fresh `movedata`, `ls`, `free`, `defrag` or `import` never starts it. The
 * rest (slow-path.ts) is an ES module of the bundle, imported only when needed. Bundle-only:
 * scripts/bundle-cli.mjs defines where the scripts, the slow path and the import's early start are.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { launch, type LaunchOptions } from './launch.js';

/** Set by scripts/bundle-cli.mjs: JSON of {command: its script, relative to this file}. */
declare const __EXT4KIT_FAST_SCRIPTS__: string;
/** Set by scripts/bundle-cli.mjs: the slow path's ES module (slow-path.ts), relative to this file. */
declare const __EXT4KIT_SLOW_ENTRY__: string;
/** Set by scripts/bundle-cli.mjs: import-early.ts as a CommonJS script, relative to this file. */
declare const __EXT4KIT_IMPORT_EARLY__: string;

const load = createRequire(__filename);
void launch(process.argv.slice(2), {
  scripts: JSON.parse(__EXT4KIT_FAST_SCRIPTS__) as Partial<Record<string, string>>,
  base: __dirname,
  importEarly: async () => load(join(__dirname, __EXT4KIT_IMPORT_EARLY__)) as Awaited<ReturnType<LaunchOptions['importEarly']>>,
  slow: () => import(pathToFileURL(join(__dirname, __EXT4KIT_SLOW_ENTRY__)).href) as ReturnType<LaunchOptions['slow']>,
}).then((status) => {
  process.exitCode = status;
});
