/**
 * Run a bundled CommonJS script with a V8 code cache. Most of a short command's CPU in a fresh
 * process is V8 compiling its code (parsing a few hundred KB, then compiling each function on its
 * first call); Node ≥ 22.1 keeps compiled ES modules on disk (module.enableCompileCache, launch.ts),
 * Node 20 only for scripts run through vm.Script with `cachedData`. So the bundle
 * (scripts/bundle-cli.mjs) builds each fast command (fast-path.ts) as one self-contained CommonJS script,
 * and this module runs it: with the cache of an earlier run when there is one, else compiling,
 * and then — after the command, so the cache holds every function the run compiled, not only the
 * top level — writing the cache for the next run.
 *
 * The cache lives in $XDG_CACHE_HOME/ext4kit, else in os.tmpdir()/ext4kit-cache-<uid>, one file
 * per script and Node version (the script's name carries a hash of its text, so each build has
 * its own; V8 itself rejects data made by another V8 or with other flags), a few per command. Cached data is code: a directory another user
 * could write to is not used (nor one not owned by us). Nothing here may fail a command: an
 * unreadable, unwritable or rejected cache only means compiling. EXT4KIT_CODE_CACHE=0 turns it off.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';

// launch.ts imports this module statically, and `--version` must not pay for it: node:fs and
// node:path are loaded at start-up, node:module by launch.ts; node:vm (and node:os, on Windows
// only) are required here only when used. (In the CommonJS launcher, bin.ts, import.meta is empty:
// any module's require loads a built-in.)
const builtin = createRequire(typeof __filename === 'string' ? __filename : import.meta.url);

/** The directory for cached data, created private; null when it cannot be trusted or made. */
function cacheDir(): string | null {
  if (process.env.EXT4KIT_CODE_CACHE === '0') return null;
  const uid = process.getuid?.();
  const xdg = process.env.XDG_CACHE_HOME;
  const tmpdir = () => {
    // os.tmpdir() on POSIX, without loading node:os (and its binding) into every fast command.
    if (process.platform === 'win32') return (builtin('node:os') as typeof import('node:os')).tmpdir();
    const t = process.env.TMPDIR || process.env.TMP || process.env.TEMP || '/tmp';
    return t.length > 1 && t.endsWith('/') ? t.slice(0, -1) : t;
  };
  const dir = xdg && xdg.startsWith('/') ? join(xdg, 'ext4kit') : join(tmpdir(), `ext4kit-cache-${uid ?? 'user'}`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = statSync(dir);
    if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0) return null;
    return dir;
  } catch {
    return null;
  }
}

function readCache(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch {
    return undefined;
  }
}

/** Write atomically (a reader sees the old file or the whole new one); errors ignored. */
function writeCache(file: string, data: Buffer): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, data, { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    try {
      unlinkSync(tmp);
    } catch {
      // nothing was written
    }
  }
}

/** What a bundled fast-command script exports. */
interface ScriptExports<A, R> {
  run(args: A): Promise<R>;
}

/**
 * Load the CommonJS script `file` (cached compiled code when there is some), call its exported
 * `run(args)`, and keep the compiled code for the next process when there was none.
 */
export async function runCached<A, R>(file: string, args: A): Promise<R> {
  // esbuild writes ASCII (its default charset): read as latin1, a one-byte string made without UTF-8 decoding.
  const source = readFileSync(file, 'latin1');
  const dir = cacheDir();
  const cacheFile = dir === null ? null : join(dir, `${basename(file)}-${process.version}-${process.arch}.v8`);
  const cachedData = cacheFile === null ? undefined : readCache(cacheFile);
  // The wrapper Node puts around a CommonJS module (same line numbers: it is on the first line).
  const { Script } = builtin('node:vm') as typeof import('node:vm');
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, cachedData });
  const fn = script.runInThisContext() as (exports: object, require: NodeJS.Require, module: { exports: object }, filename: string, dirname: string) => void;
  const mod = { exports: {} as ScriptExports<A, R> };
  fn.call(mod.exports, mod.exports, createRequire(file), mod, file, dirname(file));
  const result = await mod.exports.run(args);
  if (cacheFile !== null && (cachedData === undefined || script.cachedDataRejected === true)) {
    writeCache(cacheFile, script.createCachedData());
    dropOldBuilds(cacheFile);
  }
  return result;
}

/**
 * Caches kept per command: the newest few builds' (by mtime). Two installs sharing one cache
 * directory (a global one and a project's, two checkouts) each keep theirs — keeping only the
 * newest made them evict each other, so every run of either recompiled — while every upgrade's
 * few hundred KB still go eventually.
 */
export const CACHES_PER_COMMAND = 4;

/**
 * Remove the caches of the same command's builds (`fast-ls-<other hash>…`, another Node) beyond
 * the CACHES_PER_COMMAND newest. Only when a cache was written.
 */
function dropOldBuilds(cacheFile: string): void {
  const dir = dirname(cacheFile);
  const name = basename(cacheFile);
  const prefix = name.replace(/-[0-9a-f]{16}\.cjs-.*$/, '-');
  if (prefix === name) return;
  try {
    const others: { f: string; mtime: number }[] = [];
    for (const f of readdirSync(dir)) {
      if (f === name || !f.startsWith(prefix) || !f.endsWith('.v8')) continue;
      try {
        others.push({ f, mtime: statSync(join(dir, f)).mtimeMs });
      } catch {
        // gone meanwhile
      }
    }
    others.sort((a, b) => b.mtime - a.mtime);
    for (const { f } of others.slice(CACHES_PER_COMMAND - 1)) unlinkSync(join(dir, f));
  } catch {
    // a cache left behind costs only disk
  }
}
