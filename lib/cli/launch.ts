/**
 * What both entries of the `ext4kit` binary do first (main.ts, the ES module entry, run from
 * source and as dist/cli.js; bin.ts, the CommonJS launcher the package's `bin` names,
 * dist/cli.cjs): `--version`, and the fast commands that have a script of their own with a V8
 * code cache (code-cache.ts) — everything else goes to the slow path (slow-path.ts: a fast
 * command's module when run from source, or commander), which the entry loads its own way.
 *
 * Why two entries: a CommonJS main script spares node its ES module loader. Starting that loader
 * and linking the entry's modules cost a fresh `movedata` ~16 ms before its first read (strace
 * timestamps, cold; node 20), a tenth of what separated it from dd; the fast commands' scripts are
 * CommonJS already, so the launcher reaches them without ever starting the ES module loader.
 */
import module from 'node:module';
import { join } from 'node:path';
import { packageVersion } from './version.js';
import { parseFast, type FastArgs } from './fast-path.js';
import { runCached } from './code-cache.js';
import { writeStdoutSync } from './output.js';

export interface LaunchOptions {
  /** {command: its script, relative to `base`}, or undefined (from source: no scripts). */
  scripts: Partial<Record<string, string>> | undefined;
  /** The directory the scripts' paths are relative to: the entry's own. */
  base: string;
  /** `import IMAGE DIR`: start the directory's reader before the script loads (import-early.ts). */
  importEarly(): Promise<{ startImportEarly(args: FastArgs): void }>;
  /** Everything else: slow-path.ts's runSlow, loaded by the entry. */
  slow(): Promise<{ runSlow(argv: readonly string[], fast: FastArgs | null): Promise<number> }>;
}

/** Run the command line; resolves to the exit status. */
export async function launch(argv: readonly string[], opts: LaunchOptions): Promise<number> {
  // Node ≥ 22.1 can keep V8's compiled code on disk (in the OS temp dir) for the next process, as
  // tsc and npm do; NODE_DISABLE_COMPILE_CACHE=1 turns it off. Node 20 has no such cache for ES
  // modules (the fast commands' scripts have their own: code-cache.ts).
  (module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
    // What commander prints for .version(): the version and a newline.
    writeStdoutSync(packageVersion() + '\n');
    return 0;
  }
  const fast = parseFast(argv);
  // `import IMAGE DIR`: the directory's reader thread and xattr helper start before the import's
  // script loads (host-read-start.ts; its first listing and python3's first answer no longer wait
  // for the script, the image's open does).
  if (fast?.command === 'import') (await opts.importEarly()).startImportEarly(fast);
  const script = fast ? opts.scripts?.[fast.command] : undefined;
  if (fast && script !== undefined) {
    const status = await runCached<FastArgs, number | null>(join(opts.base, script), fast);
    if (status !== null) return status;
  }
  // (null: not a fast command, or a value commander refuses — it prints the usage error; a
  // script that handed its case to commander is not run again as a module)
  return (await opts.slow()).runSlow(argv, script === undefined ? fast : null);
}
