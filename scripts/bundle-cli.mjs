#!/usr/bin/env node
/**
 * Bundle the CLI (lib/cli/main.ts and everything it imports, including
 * commander and crc-32) into dist/cli.js plus its chunks in dist/cli-chunks/,
 * runnable by Node 20+ with no node_modules, and its CommonJS launcher
 * dist/cli.cjs (lib/cli/bin.ts, the package's `bin`: the same commands without
 * node's ES module loader for the fast ones).
 *
 *   node scripts/bundle-cli.mjs [--outfile PATH] [--sourcemap] [--no-minify]
 *
 * Also importable: `bundleCli({ outfile })` (the CLI tests bundle once into a
 * temporary directory and spawn the result); it returns the launcher's path
 * (`<outfile without .js>.cjs`, what the package's bin runs) and
 * writes the chunks to `<outfile without .js>-chunks/` beside it (replacing
 * that directory).
 *
 * Start-up is most of what a short command costs, so the bundle is split and
 * minified: main.ts imports every command dynamically, and esbuild puts each
 * behind its own chunk — `--version` parses the 2 KB entry, `info` its command
 * and the superblock code, never commander or the defragmenter. Whitespace and
 * syntax are minified (a third less for V8 to scan); identifiers are not, so
 * stack traces (EXT4KIT_DEBUG=1) still name functions, without esbuild's
 * keepNames (which costs a defineProperty per function at load).
 *
 * commander and cli-progress are devDependencies: only this bundle uses them, so
 * installing the library does not pull them in.
 *
 * commander and crc-32 are CommonJS; esbuild wraps them. commander
 * require()s Node built-ins (node:events, node:fs, …), which an ESM bundle
 * cannot do without a real `require`: the banner creates one with
 * createRequire in every output file (without it the bundle dies with
 * "Dynamic require of "node:events" is not supported"). Nothing is marked
 * external. The package version is baked in (__EXT4KIT_VERSION__).
 */
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { builtinModules, createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const BUILTINS = new Set(builtinModules);

/**
 * Node built-ins imported as ESM (`import { readFileSync } from 'node:fs'`) are served through
 * the banner's require() instead: an ESM import of a built-in makes node build its module
 * facade, which reads every export — node:fs's getters load fs/promises, readline and the
 * stream modules — about a tenth of what `ext4kit info` costs. esbuild reads a CommonJS
 * module's properties when they are used.
 */
const builtinsViaRequire = {
  name: 'node-builtins-via-require',
  setup(b) {
    b.onResolve({ filter: /^[a-z_:/]+$/ }, (a) => {
      if (a.kind === 'require-call' || !BUILTINS.has(a.path.replace(/^node:/, ''))) return undefined;
      // One wrapper per importing module (`node:fs|<importer>`), so it lands in its importer's
      // chunk: a wrapper shared by several chunks would be a chunk of its own, one more file for
      // every command to load (require() of a built-in is cached, so the copies cost nothing).
      return { path: `${a.path}|${a.importer}`, namespace: 'node-builtin' };
    });
    // esbuild hands an ES module importing this CommonJS wrapper its exports through __toESM, which
    // copies every own property of module.exports as a getter: node:fs's hundred, twice, on every
    // run (callgrind: 2.2 M instructions of `ext4kit --version`'s 29 M). The wrapper's exports own
    // only `__esModule` and `default`; the built-in is their prototype, and __toESM's object
    // inherits from that prototype, so every named import still reads the built-in's own property.
    b.onLoad({ filter: /.*/, namespace: 'node-builtin' }, (a) => ({
      contents: `var m = require(${JSON.stringify(a.path.slice(0, a.path.indexOf('|')))}); module.exports = Object.create(m, { __esModule: { value: true }, default: { value: m, enumerable: true } });`,
      loader: 'js',
    }));
  },
};

const LAYOUT = join(root, 'lib', 'codec', 'layout.ts');
/** A struct declaration with its name as a literal: what the prebuilt-codec plugin finds in a module's text. */
const DECLARATION = /\bdefineStruct\(\s*(['"])(.*?)\1/g;
/** A field reader asked for by name (Struct.reader): the readers worth writing into the bundle. */
const READER = /\.reader\(\s*(['"])(\w+)\1\s*\)/g;

/**
 * The codecs of every struct declared in lib, as source (lib/codec/layout.ts prebuiltSource), by
 * struct name: the declaring modules are bundled together and run here, so the generated code
 * comes from the declarations themselves — the same text `new Function` compiles from source.
 */
async function evaluateCodecs(version) {
  const declaring = [];
  const literal = new Set();
  const readers = new Set();
  let sites = 0;
  for (const f of await readdir(join(root, 'lib'), { recursive: true })) {
    const file = join(root, 'lib', f);
    if (!f.endsWith('.ts') || f.endsWith('.d.ts') || file === LAYOUT) continue;
    const text = await readFile(file, 'utf8');
    for (const [, , field] of text.matchAll(READER)) readers.add(field);
    if (!text.includes('defineStruct(')) continue;
    declaring.push(file);
    for (const [, , name] of text.matchAll(DECLARATION)) {
      literal.add(name);
      sites++;
    }
  }
  const result = await build({
    absWorkingDir: root,
    stdin: {
      resolveDir: root,
      loader: 'js',
      contents: [
        `import { declaredStructs, prebuiltSource } from ${JSON.stringify(LAYOUT)};`,
        ...declaring.sort().map((f) => `import ${JSON.stringify(f)};`),
        `const readers = new Set(${JSON.stringify([...readers])});`,
        'export const codecs = declaredStructs().map((d) => [d.name, prebuiltSource(d, readers), prebuiltSource(d, readers, { encoder: false })]);',
      ].join('\n'),
    },
    bundle: true,
    write: false,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    packages: 'external',
    define: { __EXT4KIT_VERSION__: JSON.stringify(version) },
    logLevel: 'silent',
  });
  const mod = { exports: {} };
  // eslint-disable-next-line no-new-func
  new Function('module', 'exports', 'require', result.outputFiles[0].text)(mod, mod.exports, createRequire(join(root, 'package.json')));
  const codecs = new Map();
  const decodeOnly = new Map();
  for (const [name, source, readOnlySource] of mod.exports.codecs) {
    if (codecs.has(name)) throw new Error(`bundle-cli: two structs are declared as ${JSON.stringify(name)}: prebuilt codecs go by name`);
    // A declaration whose name is not a literal would silently fall back to new Function.
    if (!literal.has(name)) throw new Error(`bundle-cli: struct ${JSON.stringify(name)} is not declared with a literal name: no prebuilt codec`);
    codecs.set(name, source);
    decodeOnly.set(name, readOnlySource);
  }
  // Every call site ran when its module loaded (none waits inside a function for a later call, where
  // it could declare a name twice unseen): the codecs by name are the declarations' own.
  if (sites !== codecs.size) throw new Error(`bundle-cli: ${sites} defineStruct calls with a literal name, ${codecs.size} structs declared when their modules load`);
  return { codecs, decodeOnly, declaring: new Set(declaring) };
}

/**
 * Every module that declares structs gets their codecs written ahead of its text, as ordinary
 * functions registered with layout.ts usePrebuilt: V8's code cache (code-cache.ts) holds them,
 * which it cannot for code made with `new Function` (a fresh `ls` compiled ~20 decoders and
 * readers each time). Each module carries its own structs' codecs, so a script holds only those
 * of the modules it imports. Prepended on the first line: line numbers stay as they are.
 */
function prebuiltCodecs({ codecs, decodeOnly, declaring }, readOnly = false) {
  return {
    name: 'ext4kit-prebuilt-codecs',
    setup(b) {
      b.onLoad({ filter: /\.ts$/ }, async (a) => {
        if (!declaring.has(a.path)) return undefined;
        const text = await readFile(a.path, 'utf8');
        const entries = [];
        for (const [, , name] of text.matchAll(DECLARATION)) {
          const source = readOnly ? decodeOnly.get(name) : codecs.get(name);
          if (source === undefined) throw new Error(`bundle-cli: ${a.path} declares ${JSON.stringify(name)}, which the evaluated declarations lack`);
          entries.push(`${JSON.stringify(name)}: ${source}`);
        }
        const head = `import { usePrebuilt as __ext4kitUsePrebuilt } from ${JSON.stringify(LAYOUT)}; __ext4kitUsePrebuilt({ ${entries.join(', ')} }); `;
        return { contents: head + text, loader: 'ts' };
      });
    },
  };
}

/** The commands launch.ts runs without commander (lib/cli/fast-path.ts), and their modules. */
// `info` is one: as a script it carries the Filesystem code its journal-recovery case imports
// (355 KB, of which a run compiles and caches ~160 KB), but under the CommonJS launcher (bin.ts) it
// never starts node's ES module loader: a fresh `info` 95 → 77 ms wall (hyperfine, node's own
// start-up ~54 ms), 102 → 91 ms with no code cache.
// `movedata` is one: its start-up (commander, then the write path's modules compiled from
// scratch) was most of what a fresh 256 MiB move cost beyond the copy.
// `import` is one: a fresh import compiled commander and the write path from scratch, ~0.2 s of CPU
// before the first entry.
const FAST_COMMANDS = { info: 'commands/info.ts', ls: 'commands/ls-run.ts', free: 'commands/free-output.ts', movedata: 'commands/movedata-run.ts', defrag: 'commands/defrag-run.ts', import: 'commands/import-run.ts' };
/** The fast commands that never encode a struct: their scripts get decoders only (~30 KB less each). */
const READ_ONLY_FAST = new Set(['ls', 'free']);

/**
 * Each fast command as one self-contained CommonJS script, `<entry>-chunks/fast-<cmd>-<hash>.cjs`,
 * exporting `run(args)` (fast-path.ts runFastModule with the command's module): main.ts runs it
 * through lib/cli/code-cache.ts, which keeps V8's compiled code for the next process (Node 20
 * has no compile cache for ES modules). One script per command, so each caches just its own
 * code. The name's hash (of the text) keys the cache. Returns {command: path relative to outdir}.
 */
async function bundleFastScripts({ outdir, entry, version, minify, logLevel, codecs }) {
  const scripts = {};
  for (const readOnly of [true, false]) {
    const commands = Object.keys(FAST_COMMANDS).filter((c) => READ_ONLY_FAST.has(c) === readOnly);
    Object.assign(scripts, await bundleFastGroup({ outdir, entry, version, minify, logLevel, codecs, commands, readOnly }));
  }
  return scripts;
}

/** bundleFastScripts for some of the commands, with read-only codecs or the full ones. */
async function bundleFastGroup({ outdir, entry, version, minify, logLevel, codecs, commands, readOnly }) {
  const cli = join(root, 'lib', 'cli');
  const result = await build({
    absWorkingDir: root,
    entryPoints: commands.map((c) => ({ in: `ext4kit-fast:${c}`, out: `fast-${c}` })),
    outdir: join(outdir, `${entry}-chunks`),
    bundle: true,
    write: false,
    minifyWhitespace: minify,
    minifySyntax: minify,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // code-cache.ts reads the script as latin1 (no UTF-8 decoding): ASCII only, checked below.
    charset: 'ascii',
    legalComments: 'none',
    define: { __EXT4KIT_VERSION__: JSON.stringify(version) },
    logLevel,
    // version.ts reads import.meta.url only when __EXT4KIT_VERSION__ is not defined (from source).
    logOverride: { 'empty-import-meta': 'silent' },
    plugins: [
      prebuiltCodecs(codecs, readOnly),
      {
        name: 'ext4kit-fast-entries',
        setup(b) {
          b.onResolve({ filter: /^ext4kit-fast:/ }, (a) => ({ path: a.path.slice('ext4kit-fast:'.length), namespace: 'ext4kit-fast' }));
          b.onLoad({ filter: /.*/, namespace: 'ext4kit-fast' }, (a) => ({
            resolveDir: cli,
            loader: 'js',
            contents: [
              `import * as mod from ${JSON.stringify(join(cli, FAST_COMMANDS[a.path]))};`,
              `import { runFastModule } from ${JSON.stringify(join(cli, 'fast-path.ts'))};`,
              'export function run(args) { return runFastModule(args, mod); }',
            ].join('\n'),
          }));
        },
      },
    ],
  });
  if (result.errors.length) throw new Error(`esbuild failed: ${result.errors.map((e) => e.text).join('; ')}`);
  const scripts = {};
  for (const f of result.outputFiles) {
    const command = basename(f.path).replace(/^fast-/, '').replace(/\.js$/, '');
    // Unminified output keeps comments, with their non-ASCII characters (charset only escapes
    // strings and identifiers): written as \u escapes, which inside a comment are plain text.
    const contents = minify ? f.contents : Buffer.from(f.text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`), 'latin1');
    // code-cache.ts runs the script through vm.Script, which has no dynamic import().
    if (/\bimport\(/.test(f.text)) throw new Error(`bundle-cli: the fast script of ${command} still has a dynamic import()`);
    if (contents.some((b) => b > 0x7f)) throw new Error(`bundle-cli: the fast script of ${command} is not ASCII`);
    const name = `fast-${command}-${createHash('sha256').update(contents).digest('hex').slice(0, 16)}.cjs`;
    await writeFile(join(outdir, `${entry}-chunks`, name), contents);
    scripts[command] = `./${entry}-chunks/${name}`;
  }
  return scripts;
}

export async function bundleCli({ outfile = join(root, 'dist', 'cli.js'), sourcemap = false, minify = true, logLevel = 'warning' } = {}) {
  const { version } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
  const outdir = dirname(outfile);
  const entry = basename(outfile).replace(/\.c?js$/, '');
  // Chunk names carry a content hash: drop the previous build's so none is left stale.
  await rm(join(outdir, `${entry}-chunks`), { recursive: true, force: true });
  await mkdir(join(outdir, `${entry}-chunks`), { recursive: true });
  const codecs = await evaluateCodecs(version);
  const fastScripts = await bundleFastScripts({ outdir, entry, version, minify, logLevel, codecs });
  const result = await build({
    absWorkingDir: root,
    entryPoints: { [entry]: join(root, 'lib', 'cli', 'main.ts'), [SLOW_ENTRY(entry)]: join(root, 'lib', 'cli', 'slow-path.ts') },
    outdir,
    chunkNames: `${entry}-chunks/[name]-[hash]`,
    bundle: true,
    splitting: true,
    minifyWhitespace: minify,
    minifySyntax: minify,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap,
    legalComments: 'none',
    plugins: [builtinsViaRequire, prebuiltCodecs(codecs)],
    define: { __EXT4KIT_VERSION__: JSON.stringify(version), __EXT4KIT_FAST_SCRIPTS__: JSON.stringify(JSON.stringify(fastScripts)) },
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
  await chmod(join(outdir, `${entry}.js`), 0o755);
  return bundleLauncher({ outdir, entry, version, minify, logLevel, fastScripts });
}

/** The slow path's ES module entry (lib/cli/slow-path.ts), relative to the output directory. */
const SLOW_ENTRY = (entry) => `${entry}-chunks/slow`;

/**
 * The CommonJS launcher, `<entry>.cjs` (lib/cli/bin.ts; the package's `bin`): launch.ts without
 * node's ES module loader, which it starts only for the slow path (`<entry>-chunks/slow.js`, an
 * entry of the ES module build). The import's early start (import-early.ts) is a CommonJS script
 * of its own beside the fast scripts: every other command would parse it in the launcher.
 * Returns the launcher's path.
 */
async function bundleLauncher({ outdir, entry, version, minify, logLevel, fastScripts }) {
  const early = `./${entry}-chunks/import-early.cjs`;
  const common = {
    absWorkingDir: root,
    bundle: true,
    minifyWhitespace: minify,
    minifySyntax: minify,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    legalComments: 'none',
    plugins: [builtinsViaRequire],
    logLevel,
    // version.ts and code-cache.ts read import.meta.url only from source (in CommonJS: __filename).
    logOverride: { 'empty-import-meta': 'silent' },
    define: { __EXT4KIT_VERSION__: JSON.stringify(version) },
  };
  const earlyBuild = await build({ ...common, entryPoints: [join(root, 'lib', 'cli', 'commands', 'import-early.ts')], outfile: join(outdir, early) });
  const out = join(outdir, `${entry}.cjs`);
  const launcher = await build({
    ...common,
    entryPoints: [join(root, 'lib', 'cli', 'bin.ts')],
    outfile: out,
    banner: { js: '#!/usr/bin/env node' },
    define: {
      ...common.define,
      __EXT4KIT_FAST_SCRIPTS__: JSON.stringify(JSON.stringify(fastScripts)),
      __EXT4KIT_SLOW_ENTRY__: JSON.stringify(`./${SLOW_ENTRY(entry)}.js`),
      __EXT4KIT_IMPORT_EARLY__: JSON.stringify(early),
    },
  });
  const errors = [...earlyBuild.errors, ...launcher.errors];
  if (errors.length) throw new Error(`esbuild failed: ${errors.map((e) => e.text).join('; ')}`);
  await chmod(out, 0o755);
  return out;
}

if (process.argv[1] && pathToFileURL(resolve(process.argv[1])).href === import.meta.url) {
  const args = process.argv.slice(2);
  const i = args.indexOf('--outfile');
  const outfile = i >= 0 ? resolve(args[i + 1] ?? '') : undefined;
  const out = await bundleCli({ outfile, sourcemap: args.includes('--sourcemap'), minify: !args.includes('--no-minify'), logLevel: 'info' });
  console.log(`bundled ${out}`);
}
