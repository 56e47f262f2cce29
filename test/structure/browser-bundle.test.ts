/**
 * The core (`ext4kit`, lib/index.ts) runs in a browser given a BlockDevice (issue 9 item 5):
 *
 *  1. esbuild bundles it for platform 'browser' and no module of the bundle imports a Node
 *     built-in (`node:*` or a bare 'fs', 'os', 'crypto', ...) — unless the bare name resolves to
 *     an npm package the project depends on (the `buffer` package is Buffer's browser build);
 *  2. the bundle runs where Node does not exist: a vm context with only what browsers give
 *     (TextEncoder/TextDecoder, crypto.getRandomValues, timers; no require, process, Buffer,
 *     module) and `codeGeneration: { strings: false }`, which forbids eval/new Function the way
 *     a strict Content-Security-Policy does. There, a BlockDevice written for the sandbox opens
 *     an mkfs -d image, reads files (compared with the tree fed to mkfs), an xattr (set with debugfs)
 *     and runs the checker, then writes through an
 *     MMP write open (e2fsck -fn on the result, the written bytes and the MMP node name compared
 *     with debugfs).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { build, type Plugin } from 'esbuild';
import { builtinModules } from 'node:module';
import { webcrypto } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vm from 'node:vm';
import { debugfs, debugfsDump, expectE2fsckClean, mkfs, missingTools, oracleGate } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';
import { prngBytes } from '../helpers/tree.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BUILTINS = new Set(builtinModules.filter((m) => !m.startsWith('_')).map((m) => m.replace(/^node:/, '')));

/** The bare module name of a specifier: 'fs/promises' → 'fs', '@a/b/c' → '@a/b'. */
function packageOf(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/** Built-in imports found while bundling: "importer → specifier". */
function builtinGuard(found: string[]): Plugin {
  const again = Symbol('resolving');
  return {
    name: 'no-node-builtins',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.pluginData === again) return undefined;
        const importer = path.relative(ROOT, args.importer) || args.importer;
        if (args.path.startsWith('node:')) {
          found.push(`${importer} → ${args.path}`);
          return { path: args.path, external: true };
        }
        if (!BUILTINS.has(packageOf(args.path))) return undefined;
        // A bare built-in name is fine only if it resolves to a real npm package file (the
        // browser build of it), not to Node's module or to an empty browser-field stub.
        const r = await b.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: again });
        const inPackage = r.errors.length === 0 && !r.external && r.path.includes(`${path.sep}node_modules${path.sep}${packageOf(args.path)}${path.sep}`);
        if (inPackage) return r;
        found.push(`${importer} → ${args.path}`);
        return { path: args.path, external: true };
      });
    },
  };
}

async function bundleCore(entry: { file: string } | { contents: string } = { file: path.join(ROOT, 'lib', 'index.ts') }): Promise<{ code: string; builtins: string[]; errors: string[] }> {
  const builtins: string[] = [];
  const result = await build({
    absWorkingDir: ROOT,
    ...('file' in entry ? { entryPoints: [entry.file] } : { stdin: { contents: entry.contents, resolveDir: path.join(ROOT, 'lib'), sourcefile: 'probe.ts', loader: 'ts' as const } }),
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'iife',
    globalName: 'ext4kit',
    target: 'es2022',
    logLevel: 'silent',
    plugins: [builtinGuard(builtins)],
  }).catch((e: { errors?: { text: string }[] }) => ({ errors: e.errors ?? [{ text: String(e) }], outputFiles: [] as { text: string }[] }));
  return { code: result.outputFiles?.[0]?.text ?? '', builtins, errors: result.errors.map((e) => e.text) };
}

/** What a browser page has, and nothing of Node. */
function browserLikeContext(): vm.Context {
  const sandbox = {
    TextEncoder,
    TextDecoder,
    crypto: { getRandomValues: <T extends ArrayBufferView>(a: T): T => webcrypto.getRandomValues(a as never) as T },
    setTimeout,
    clearTimeout,
    setInterval,
    clearInterval,
    queueMicrotask,
    performance: { now: () => performance.now() },
  };
  return vm.createContext(sandbox, { codeGeneration: { strings: false, wasm: false } });
}

/** Runs inside the sandbox: a BlockDevice over an in-memory image, as a browser app would write one. */
const SANDBOX_DEVICE = `
class ArrayDevice {
  constructor(bytes, name) { this.bytes = bytes; this.size = bytes.length; this.readOnly = false; this.name = name; }
  async read(position, length) {
    if (position + length > this.size) throw new Error('read past the end');
    return this.bytes.slice(position, position + length);
  }
  async write(position, data) {
    if (position + data.length > this.size) throw new Error('write past the end');
    this.bytes.set(data, position);
  }
  async flush() {}
  async close() {}
}
globalThis.makeDevice = (size, name) => new ArrayDevice(new Uint8Array(size), name);
`;

const SANDBOX_READ = `(async (device, paths) => {
  const fs = await ext4kit.Filesystem.open(device);
  try {
    const files = [];
    for (const p of paths) {
      const h = await ext4kit.openFile(fs, p);
      const { size } = await h.stat();
      files.push(await h.pread(0, size));
    }
    const xattrs = (await ext4kit.stat(fs, paths[0])).xattrs;
    const check = await ext4kit.checkFilesystem(fs);
    return { files, xattrs: JSON.stringify(xattrs), problems: JSON.stringify(check.problems) };
  } finally {
    await fs.close();
  }
})`;

const SANDBOX_WRITE = `(async (device, edits) => {
  // No fixed 'now': random values (the MMP sequence) come from crypto.getRandomValues, the clock from Date.
  const fs = await ext4kit.Filesystem.open(device, { write: true, mmp: { sleep: async () => {} } });
  try {
    for (const e of edits) {
      const h = await ext4kit.openFile(fs, e.path);
      await h.pwrite(new TextEncoder().encode(e.text), e.at === 'end' ? (await h.stat()).size : e.at);
    }
  } finally {
    await fs.close();
  }
})`;

const toolsWhy = oracleGate(missingTools(['mkfs.ext4', 'e2fsck', 'debugfs']));
if (toolsWhy) console.log(`test/structure/browser-bundle.test.ts: skipping the image checks: ${toolsWhy}`);

describe('the core bundled for a browser', () => {
  let dir = '';
  let bundle: Awaited<ReturnType<typeof bundleCore>>;
  beforeAll(async () => {
    dir = tmpPath('browser-bundle');
    fs.mkdirSync(dir, { recursive: true });
    bundle = await bundleCore();
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the built-in guard names node:* and bare built-ins, and lets the npm buffer package through', async () => {
    const probe = await bundleCore({
      contents: "import { readFileSync } from 'fs';\nimport { randomBytes } from 'node:crypto';\nimport { hostname } from 'os';\nimport { Buffer } from 'buffer';\nexport const x = [readFileSync, randomBytes, hostname, Buffer.alloc(1)];\n",
    });
    expect(probe.builtins.sort()).toEqual(['lib/probe.ts → fs', 'lib/probe.ts → node:crypto', 'lib/probe.ts → os']);
  });

  it('esbuild (platform browser) bundles lib/index.ts with no Node built-in', () => {
    expect(bundle.builtins, 'modules importing Node built-ins').toEqual([]);
    expect(bundle.errors).toEqual([]);
    expect(bundle.code.length).toBeGreaterThan(0);
  });

  it('ext4kit/testing (crash-test tooling) is platform-free too', async () => {
    const testing = await bundleCore({ file: path.join(ROOT, 'lib', 'testing.ts') });
    expect(testing.builtins).toEqual([]);
    expect(testing.errors).toEqual([]);
  });

  it('the sandbox is browser-like: no Node globals, no code generation from strings', () => {
    const ctx = browserLikeContext();
    expect(vm.runInContext('[typeof require, typeof process, typeof Buffer, typeof module, typeof global].join()', ctx)).toBe('undefined,undefined,undefined,undefined,undefined');
    expect(() => vm.runInContext('new Function("return 1")()', ctx)).toThrow(/Code generation from strings disallowed/);
  });

  it.skipIf(!!toolsWhy)('opens an mkfs -d image in the sandbox, reads files as fed to mkfs, writes through MMP (e2fsck clean, debugfs agrees)', async () => {
    expect(bundle.errors).toEqual([]);
    // The source of truth: the tree fed to mkfs.
    const src = path.join(dir, 'src');
    const files: Record<string, Uint8Array> = {
      'hello.txt': new TextEncoder().encode('hello from the sandbox test\n'),
      'data.bin': prngBytes('browser-bundle/data', 300 * 1024 + 123),
      'dir/nested/deep.txt': new TextEncoder().encode('deep\n'.repeat(500)),
    };
    for (const [p, bytes] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(src, p)), { recursive: true });
      fs.writeFileSync(path.join(src, p), bytes);
    }
    // Two images of the tree: a plain one to read and check, one with MMP to write.
    const plainImg = path.join(dir, 'plain.img');
    mkfs('ext4', plainImg, 8 << 20, ['-b', '1024'], src);
    debugfs(plainImg, ['ea_set /hello.txt user.origin sandbox'], { write: true });
    expect(debugfs(plainImg, ['ea_list /hello.txt'])).toMatch(/user\.origin.*sandbox/);
    const mmpImg = path.join(dir, 'mmp.img');
    mkfs('ext4', mmpImg, 8 << 20, ['-b', '1024', '-O', 'mmp', '-E', 'mmp_update_interval=5'], src);

    const ctx = browserLikeContext();
    vm.runInContext(bundle.code, ctx, { filename: 'ext4kit-browser.js' });
    vm.runInContext(SANDBOX_DEVICE, ctx);
    const load = (img: string) => {
      const image = fs.readFileSync(img);
      const dev = vm.runInContext('makeDevice', ctx)(image.length, 'browser-image') as { bytes: Uint8Array };
      dev.bytes.set(image);
      return dev;
    };

    const paths = Object.keys(files);
    const read = vm.runInContext(SANDBOX_READ, ctx) as (d: unknown, p: string[]) => Promise<{ files: Uint8Array[]; xattrs: string; problems: string }>;
    const got = await read(load(plainImg), paths.map((p) => `/${p}`));
    expect(got.files.length).toBe(paths.length);
    paths.forEach((p, i) => expect(Buffer.from(Uint8Array.from(got.files[i]!)).equals(Buffer.from(files[p]!)), p).toBe(true));
    expect(JSON.parse(got.xattrs)).toEqual([{ name: 'user.origin', value: Buffer.from('sandbox').toString('base64') }]);
    expect(JSON.parse(got.problems)).toEqual([]);

    const dev = load(mmpImg);
    const edits = [
      { path: '/hello.txt', at: 6, text: 'FROM' },
      { path: '/data.bin', at: 'end', text: 'appended in a browser-like realm\n'.repeat(100) },
    ];
    const write = vm.runInContext(SANDBOX_WRITE, ctx) as (d: unknown, e: unknown) => Promise<void>;
    await write(dev, edits);
    const out = path.join(dir, 'written.img');
    fs.writeFileSync(out, Uint8Array.from(dev.bytes));
    expectE2fsckClean(out, 'after the sandbox wrote');
    const hello = Buffer.from(files['hello.txt']!);
    hello.write('FROM', 6);
    expect(debugfsDump(out, '/hello.txt').equals(hello)).toBe(true);
    const data = Buffer.concat([files['data.bin']!, Buffer.from(edits[1]!.text)]);
    expect(debugfsDump(out, '/data.bin').equals(data)).toBe(true);
    // MMP: released (CLEAN) and stamped with the default platform's node name.
    const mmp = debugfs(out, ['dump_mmp']);
    expect(mmp).toMatch(/^node_name:\s*ext4kit$/m);
    expect(mmp).toMatch(/^sequence:\s*ff4d4d50/m);
  });
});
