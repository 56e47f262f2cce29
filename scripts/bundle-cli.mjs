#!/usr/bin/env node
/**
 * Bundle the CLI (lib/cli/main.ts and everything it imports, including
 * commander, buffer-layout and crc-32) into one self-contained ESM file,
 * dist/cli.js, runnable by Node 20+ with no node_modules.
 *
 *   node scripts/bundle-cli.mjs [--outfile PATH] [--sourcemap]
 *
 * Also importable: `bundleCli({ outfile })` (the CLI tests bundle once into a
 * temporary directory and spawn the result).
 *
 * commander and cli-progress are devDependencies: only this bundle uses them, so
 * installing the library does not pull them in.
 *
 * commander, buffer-layout and crc-32 are CommonJS; esbuild wraps them.
 * commander require()s Node built-ins (node:events, node:fs, …), which an
 * ESM bundle cannot do without a real `require`: the banner creates one
 * with createRequire (without it the bundle dies with "Dynamic require of
 * "node:events" is not supported"). Nothing is marked external.
 * The package version is baked in (__EXT4KIT_VERSION__).
 */
import { build } from 'esbuild';
import { chmod, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export async function bundleCli({ outfile = join(root, 'dist', 'cli.js'), sourcemap = false, logLevel = 'warning' } = {}) {
  const { version } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
  const result = await build({
    absWorkingDir: root,
    entryPoints: [join(root, 'lib', 'cli', 'main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap,
    legalComments: 'none',
    define: { __EXT4KIT_VERSION__: JSON.stringify(version) },
    logLevel,
    banner: {
      js: [
        '#!/usr/bin/env node',
        "import { createRequire as __ext4kitCreateRequire } from 'node:module';",
        'const require = __ext4kitCreateRequire(import.meta.url);',
      ].join('\n'),
    },
  });
  if (result.errors.length) throw new Error(`esbuild failed: ${result.errors.map((e) => e.text).join('; ')}`);
  await chmod(outfile, 0o755);
  return outfile;
}

if (process.argv[1] && pathToFileURL(resolve(process.argv[1])).href === import.meta.url) {
  const args = process.argv.slice(2);
  const i = args.indexOf('--outfile');
  const outfile = i >= 0 ? resolve(args[i + 1] ?? '') : undefined;
  const out = await bundleCli({ outfile, sourcemap: args.includes('--sourcemap'), logLevel: 'info' });
  console.log(`bundled ${out}`);
}
