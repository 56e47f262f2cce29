/**
 * Entry point of the `ext4kit` binary (bundled to dist/cli.js by
 * scripts/bundle-cli.mjs; in a checkout: `node --import tsx lib/cli/main.ts`).
 * The program itself is built in program.ts so tests can run it in-process.
 *
 * program.ts is imported dynamically: in the bundle, esbuild then evaluates the
 * commands, the filesystem code and commander only when a command runs, so a
 * bare `--version` costs node's start-up and the parse of the file, nothing more.
 */
import { packageVersion } from './version.js';

// A closed pipe on stdout (`ext4kit cat … | head`) is not an error: stop quietly.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
  // What commander prints for .version(): the version and a newline.
  process.stdout.write(packageVersion() + '\n');
} else {
  const { run } = await import('./program.js');
  process.exitCode = await run(argv);
}
