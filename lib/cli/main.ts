/**
 * Entry point of the `ext4kit` binary (bundled to dist/cli.js by
 * scripts/bundle-cli.mjs; in a checkout: `node --import tsx lib/cli/main.ts`).
 * The program itself is built in program.ts so tests can run it in-process.
 *
 * A fresh process is mostly start-up, so this file loads next to nothing: the bundle is split
 * (scripts/bundle-cli.mjs) and everything else is imported dynamically — `--version` runs
 * here, `info` and `ls` (fast-path.ts) load their command and the filesystem code but not
 * commander, and the other commands commander and their own module. process.stdout is created only by a
 * command that streams (output.ts).
 */
import module from 'node:module';
import { packageVersion } from './version.js';
import { fastCommand } from './fast-path.js';
import { processIO, writeStdoutSync } from './output.js';

// Node ≥ 22.1 can keep V8's compiled code on disk (in the OS temp dir) for the next process, as
// tsc and npm do; NODE_DISABLE_COMPILE_CACHE=1 turns it off. Node 20 has no such cache.
(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();

const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
  // What commander prints for .version(): the version and a newline.
  writeStdoutSync(packageVersion() + '\n');
} else {
  const fast = fastCommand(argv);
  if (fast) process.exitCode = await fast();
  else {
    const { run } = await import('./program.js');
    process.exitCode = await run(argv, processIO());
  }
}
