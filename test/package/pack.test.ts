/**
 * The npm package as a user gets it (issue 8 item 1): `npm pack` (which builds through `prepack`),
 * install the tarball into a fresh project, then use it the three ways users do — a plain Node
 * ESM `.mjs` (no bundler, no tsx, no vitest resolver), a strict TypeScript consumer type-checked
 * against the shipped `.d.ts`, and the `ext4kit` binary through `npx`.
 *
 * Network-free and cache-free on purpose: the package's runtime dependencies are packed from the
 * checkout's node_modules (exactly the versions package-lock.json pins, the ones `npm ci` just
 * installed) and installed with `--offline` and a private, empty npm cache. A registry install
 * would make `npm test` depend on the network and the registry's state; a shared-cache install
 * would depend on what earlier runs left in ~/.npm. Only the closure of `dependencies` is
 * offered, so a module that lib/ imports but package.json does not list fails to resolve here.
 *
 * The package is built from a copy of the working tree (node_modules symlinked), so the test
 * neither needs nor touches the checkout's `dist/`, and stale files there cannot leak in.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { tmpDir } from '../helpers/tmp.js';
import { dumpe2fsHeader, expectE2fsckClean, mkfs } from '../helpers/tools.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
};
const HELLO = 'hello from an ext4 image\n';

/** The environment of a fresh shell: drop what `npm test` exports to its children (npm_config_*, …). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'INIT_CWD') env[k] = v;
  return { ...env, LANG: 'C', LC_ALL: 'C', NO_COLOR: '1' };
}

function sh(cmd: string, args: string[], cwd: string, extraEnv: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, { cwd, env: { ...cleanEnv(), ...extraEnv }, encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) exited ${r.status ?? r.signal}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`);
  }
  return r.stdout;
}

const npm = (args: string[], cwd: string, cache: string): string =>
  sh('npm', [...args, '--cache', cache, '--no-audit', '--no-fund', '--no-update-notifier', '--loglevel=error'], cwd);

/**
 * The lockfile entries (paths like node_modules/a or node_modules/a/node_modules/b) of the
 * closure of the package's runtime dependencies, found with Node's lookup rule (nearest
 * node_modules first, then the parents).
 */
function runtimeClosure(): string[] {
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { version?: string; dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> }>;
  };
  const out = new Set<string>();
  const visit = (from: string, name: string): void => {
    for (let base = from; ; ) {
      const at = `${base ? `${base}/` : ''}node_modules/${name}`;
      const entry = lock.packages[at];
      if (entry) {
        if (out.has(at)) return;
        out.add(at);
        for (const d of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies })) visit(at, d);
        return;
      }
      if (!base) throw new Error(`${name} (needed by ${from || PKG.name}) is not in package-lock.json: run npm install`);
      const i = base.lastIndexOf('/node_modules/');
      base = i < 0 ? '' : base.slice(0, i);
    }
  };
  for (const d of Object.keys({ ...PKG.dependencies, ...PKG.optionalDependencies })) visit('', d);
  return [...out];
}

let project = '';
let image = '';
let tarballFiles: string[] = [];

beforeAll(() => {
  const work = tmpDir('package');
  const cache = path.join(work, 'npm-cache');

  // 1. A copy of the working tree, built and packed as `npm publish` would (prepack → build).
  const src = path.join(work, 'src');
  const skip = new Set(['node_modules', '.git', 'dist', 'coverage', '.tmp', 'tmp', 'demo-out']);
  fs.cpSync(ROOT, src, {
    recursive: true,
    filter: (p) => {
      const rel = path.relative(ROOT, p);
      return rel === '' || !rel.split(path.sep).some((seg, i) => (i === 0 ? skip.has(seg) : seg === 'node_modules'));
    },
  });
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(src, 'node_modules'), 'dir');
  const packs = path.join(work, 'packs');
  fs.mkdirSync(packs);
  sh('npm', ['pack', '--pack-destination', packs, '--loglevel=error'], src);
  const tarball = path.join(packs, `${PKG.name}-${PKG.version}.tgz`);
  expect(fs.existsSync(tarball), `npm pack made ${tarball}`).toBe(true);
  tarballFiles = sh('tar', ['-tzf', tarball], work).split('\n').filter(Boolean);

  // 2. The runtime dependencies, packed from the checkout's node_modules (no network, no cache).
  const closure = runtimeClosure();
  const names = closure.map((p) => p.slice(p.lastIndexOf('node_modules/') + 13));
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new Error(`two versions of ${dup} in the runtime closure: install them as nested deps here`);
  const deps = path.join(work, 'deps');
  fs.mkdirSync(deps);
  const packed = JSON.parse(
    npm(['pack', '--json', '--ignore-scripts', '--pack-destination', deps, ...closure.map((p) => path.join(ROOT, p))], work, cache),
  ) as { filename: string }[];

  // 3. A fresh project outside the checkout (no node_modules above it) installing the tarball.
  project = path.join(work, 'consumer');
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }, null, 2));
  npm(['install', '--offline', tarball, ...packed.map((p) => path.join(deps, p.filename))], project, cache);
  // npm ls exits non-zero on a missing or invalid dependency of anything installed.
  npm(['ls', '--all', '--offline'], project, cache);

  // 4. A small image made by mkfs from a known tree (the source of truth for what we read back).
  const tree = path.join(work, 'tree');
  fs.mkdirSync(tree);
  fs.writeFileSync(path.join(tree, 'hello.txt'), HELLO);
  image = path.join(work, 'small.img');
  mkfs('ext4', image, 8 << 20, ['-b', '4096'], tree);
  expectE2fsckClean(image, 'fresh mkfs');
}, 240_000);

describe('npm package (pack → install → use)', () => {
  it('ships dist (.js and .d.ts) and nothing from test/, bench/ or lib/ sources', () => {
    expect(tarballFiles).toContain('package/package.json');
    expect(tarballFiles).toContain('package/dist/index.js');
    expect(tarballFiles).toContain('package/dist/index.d.ts');
    expect(tarballFiles).toContain('package/dist/cli.js');
    // the binary: the CommonJS launcher (lib/cli/bin.ts), and the ES module entry it falls back to
    expect(tarballFiles).toContain('package/dist/cli.cjs');
    expect(tarballFiles).toContain('package/dist/cli-chunks/slow.js');
    const stray = tarballFiles.filter(
      (f) =>
        !/^package\/(package\.json|README\.md|LICENSE)$/.test(f) &&
        !/^package\/dist\/.+\.(js|d\.ts)$/.test(f) &&
        // The launcher, and the fast commands' CommonJS scripts (lib/cli/code-cache.ts) and the import's early start.
        !/^package\/dist\/(cli\.cjs|cli-chunks\/(fast-(info|ls|free|movedata|defrag|import)-[0-9a-f]{16}|import-early)\.cjs)$/.test(f),
    );
    expect(stray, 'files in the tarball besides dist/*.js, dist/*.d.ts, the launcher and the CommonJS scripts, package.json, README').toEqual([]);
    expect(tarballFiles.filter((f) => f.endsWith('.cjs'))).toHaveLength(8);
    // Every emitted module has its declaration file (the cli bundle and its chunks excepted).
    const js = tarballFiles.filter((f) => f.startsWith('package/dist/') && f.endsWith('.js') && f !== 'package/dist/cli.js' && !f.startsWith('package/dist/cli-chunks/'));
    expect(js.length).toBeGreaterThan(10);
    expect(js.filter((f) => !tarballFiles.includes(f.replace(/\.js$/, '.d.ts')))).toEqual([]);
  });

  it('imports from a plain .mjs under Node ESM and reads the image', () => {
    fs.writeFileSync(
      path.join(project, 'plain.mjs'),
      `import { Filesystem, getFreeBlocks, movedata } from 'ext4kit/node';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const fs = await Filesystem.open(process.argv[2]);
const ino = await fs.resolve('/hello.txt');
const hello = Buffer.from(await fs.read(ino, 0, ino.size)).toString('utf8');
const free = await getFreeBlocks(fs);
const freeBlocks = free.reduce((a, e) => a + e.len, 0) / fs.blockSize;
await fs.close();

// Every module in dist must resolve under plain Node, not only those index.js reaches.
const dist = dirname(fileURLToPath(import.meta.resolve('ext4kit')));
let modules = 0;
const walk = async (d) => {
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) { if (p !== join(dist, 'cli-chunks')) await walk(p); }
    else if (e.name.endsWith('.js') && p !== join(dist, 'cli.js')) { await import(pathToFileURL(p).href); modules++; }
  }
};
await walk(dist);
console.log(JSON.stringify({ hello, freeBlocks, movedata: typeof movedata, modules }));
`,
    );
    const out = JSON.parse(sh(process.execPath, ['plain.mjs', image], project)) as { hello: string; freeBlocks: number; movedata: string; modules: number };
    const fsck = expectE2fsckClean(image, 'after the read-only open');
    expect(out).toEqual({ hello: HELLO, freeBlocks: fsck.summary!.freeBlocks, movedata: 'function', modules: expect.any(Number) });
    expect(out.modules).toBeGreaterThan(10);
  });

  it('type-checks a strict NodeNext consumer against the shipped .d.ts', () => {
    fs.writeFileSync(
      path.join(project, 'tsconfig.json'),
      JSON.stringify(
        {
          compilerOptions: {
            target: 'ES2022',
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            strict: true,
            noUncheckedIndexedAccess: true,
            exactOptionalPropertyTypes: true,
            noEmit: true,
            // Check the package's declarations too: an unresolved import in a .d.ts must fail.
            skipLibCheck: false,
            types: ['node'],
            typeRoots: [path.join(ROOT, 'node_modules', '@types')],
          },
          files: ['consumer.ts'],
        },
        null,
        2,
      ),
    );
    fs.writeFileSync(
      path.join(project, 'consumer.ts'),
      `import { Filesystem, getFreeBlocks, movedata, isExt4Error, type FreeExtent, type Inode, type MoveDataOptions } from 'ext4kit/node';

const img = process.argv[2];
if (img === undefined) throw new Error('usage: consumer IMG');
const fs: Filesystem = await Filesystem.open(img);
try {
  const free: FreeExtent[] = await getFreeBlocks(fs, { count: 4 });
  const first: FreeExtent | undefined = free[0];
  // @ts-expect-error -- possibly undefined under noUncheckedIndexedAccess: proves FreeExtent[] is a real type, not any
  const len: number = free[0].len;
  const ino: Inode = await fs.resolve('/hello.txt');
  const size: number = ino.size;
  // @ts-expect-error -- a count is a number
  await getFreeBlocks(fs, { count: 'four' });
  const opts: MoveDataOptions = { from: 0, len: fs.blockSize };
  const mv: (...a: Parameters<typeof movedata>) => Promise<unknown> = movedata;
  console.log(first?.start, len, size, opts, typeof mv);
} catch (e) {
  if (isExt4Error(e)) console.log(e.code);
  throw e;
} finally {
  await fs.close();
}
`,
    );
    sh(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], project);
  });

  it('npx ext4kit --version prints package.json version', () => {
    expect(sh('npx', ['--offline', 'ext4kit', '--version'], project).trim()).toBe(PKG.version);
  });

  it('npx ext4kit cat IMG /hello.txt prints the file (a command loading the filesystem chunks)', () => {
    expect(sh('npx', ['--offline', 'ext4kit', 'cat', image, '/hello.txt'], project)).toBe(HELLO);
  });

  it('npx ext4kit ls IMG --json lists the image, with and without its code cache', () => {
    const cacheHome = tmpDir('package-xdg-cache');
    const first = sh('npx', ['--offline', 'ext4kit', 'ls', image, '--json'], project, { XDG_CACHE_HOME: cacheHome });
    expect((JSON.parse(first) as { name: string }[]).map((e) => e.name)).toContain('hello.txt');
    // The first run kept V8's code of the ls script for the next one, which prints the same.
    expect(fs.readdirSync(path.join(cacheHome, 'ext4kit'))).toEqual([expect.stringMatching(/^fast-ls-[0-9a-f]{16}\.cjs-v.+\.v8$/)]);
    expect(sh('npx', ['--offline', 'ext4kit', 'ls', image, '--json'], project, { XDG_CACHE_HOME: cacheHome })).toBe(first);
  });

  it('npx ext4kit import IMG DIR (the source is read on a worker thread started from the bundle): e2fsck clean, bytes back', () => {
    const src = path.join(tmpDir('pack-import-src'), 'tree');
    fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(src, 'sub', 'a.txt'), HELLO);
    fs.writeFileSync(path.join(src, 'big'), Buffer.alloc(3 << 20, 7)); // read in chunks
    const img = path.join(tmpDir('pack-import-img'), 'import.img');
    mkfs('ext4', img, 16 << 20);
    sh('npx', ['--offline', 'ext4kit', 'import', img, src, '--at', '/t'], project);
    expectE2fsckClean(img, 'after npx ext4kit import');
    expect(sh('npx', ['--offline', 'ext4kit', 'cat', img, '/t/sub/a.txt'], project)).toBe(HELLO);
  });

  it('npx ext4kit info IMG --json matches dumpe2fs', () => {
    const info = JSON.parse(sh('npx', ['--offline', 'ext4kit', 'info', image, '--json'], project)) as Record<string, unknown>;
    const h = dumpe2fsHeader(image);
    expect({ blockSize: info.blockSize, blocksCount: info.blocksCount, freeBlocks: info.freeBlocks, uuid: info.uuid }).toEqual({
      blockSize: Number(h['Block size']),
      blocksCount: Number(h['Block count']),
      freeBlocks: Number(h['Free blocks']),
      uuid: h['Filesystem UUID'],
    });
  });
});
