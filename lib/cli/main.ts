/**
 * Entry point of the `ext4kit` binary (bundled to dist/cli.js by
 * scripts/bundle-cli.mjs; in a checkout: `node --import tsx lib/cli/main.ts`).
 * The program itself is built in program.ts so tests can run it in-process.
 */
import { run } from './program.js';

// A closed pipe on stdout (`ext4kit cat … | head`) is not an error: stop quietly.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

process.exitCode = await run(process.argv.slice(2));
