/**
 * The package version, kept apart from util.ts so that `ext4kit --version`
 * (launch.ts) imports nothing of the filesystem code.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Set by scripts/bundle-cli.mjs (esbuild define) in dist/cli.js; undefined when run from source. */
declare const __EXT4KIT_VERSION__: string | undefined;

/** ext4kit's version: baked into the bundle, else read from the package.json above this module. */
export function packageVersion(): string {
  if (typeof __EXT4KIT_VERSION__ === 'string') return __EXT4KIT_VERSION__;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      try {
        const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'ext4kit' && pkg.version) return pkg.version;
      } catch {
        // not ours
      }
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return 'unknown';
}
