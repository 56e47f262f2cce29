/**
 * s_hash_seed is __le32[4]: the words must come out little-endian on every host. On this
 * (little-endian) machine a platform-endian reading (a Uint32Array over the bytes) gives the same
 * words, so the check runs the module bundled in a vm context that simulates a big-endian host:
 * its Uint32Array/DataView default to big-endian word order over an ArrayBuffer.
 */
import path from 'node:path';
import { readdirSync, readFileSync } from 'node:fs';
import vm from 'node:vm';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { hashSeedWords } from '../../lib/ext4/hash-seed.js';
import { dirHash } from '../../lib/ext4/dirhash.js';

const root = path.resolve(import.meta.dirname, '../..');
// Words that differ from each other and from their byte-swapped selves.
const SEED = Uint8Array.from([0x01, 0x02, 0x03, 0x04, 0x10, 0x32, 0x54, 0x76, 0xff, 0x00, 0x00, 0x80, 0x0d, 0xf0, 0xad, 0x8b]);
const WANT = [0x04030201, 0x76543210, 0x800000ff, 0x8badf00d];

/** A big-endian host's Uint32Array as far as the seed conversion can tell. */
const BIG_ENDIAN_PRELUDE = `
  const NativeU32 = Uint32Array;
  globalThis.Uint32Array = function (a, off = 0, len) {
    if (!(a instanceof ArrayBuffer)) return new NativeU32(a);
    const b = new Uint8Array(a, off);
    const n = len ?? (b.length >>> 2);
    const out = new NativeU32(n);
    for (let i = 0; i < n; i++) out[i] = ((b[4 * i] << 24) | (b[4 * i + 1] << 16) | (b[4 * i + 2] << 8) | b[4 * i + 3]) >>> 0;
    return out;
  };
  const nativeGet = DataView.prototype.getUint32;
  DataView.prototype.getUint32 = function (o, le) { return nativeGet.call(this, o, !!le); };
`;

describe('s_hash_seed words', () => {
  it('are little-endian', () => {
    expect(hashSeedWords(SEED)).toEqual(WANT);
  });

  it('are little-endian on a (simulated) big-endian host too', async () => {
    const out = await build({
      entryPoints: [path.join(root, 'lib/ext4/hash-seed.ts')],
      bundle: true, platform: 'browser', format: 'iife', globalName: 'hs', write: false, logLevel: 'silent',
    });
    const ctx = vm.createContext({});
    vm.runInContext(BIG_ENDIAN_PRELUDE, ctx);
    // The simulation is real: a platform-endian reading gives byte-swapped words there.
    expect(Array.from(vm.runInContext('new Uint32Array(new Uint8Array([1,2,3,4]).buffer)', ctx) as ArrayLike<number>)).toEqual([0x01020304]);
    vm.runInContext(out.outputFiles[0]!.text, ctx);
    ctx.seed = vm.runInContext(`new Uint8Array([${Array.from(SEED).join(',')}])`, ctx);
    expect(Array.from(vm.runInContext('hs.hashSeedWords(seed)', ctx) as number[])).toEqual(WANT);
  });

  it('word order matters to the hash (a byte-swapped seed hashes differently)', () => {
    const name = new TextEncoder().encode('hello-world.txt');
    const withSeed = dirHash(name, 1, hashSeedWords(SEED), false);
    const swapped = dirHash(name, 1, WANT.map((w) => (((w & 0xff) << 24) | ((w & 0xff00) << 8) | ((w >>> 8) & 0xff00) | (w >>> 24)) >>> 0), false);
    expect(withSeed.hash).not.toBe(swapped.hash);
  });

  it('is the only conversion of s_hash_seed in lib', () => {
    const users: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith('.ts') && /\.s_hash_seed\b/.test(readFileSync(p, 'utf8'))) users.push(path.relative(root, p));
      }
    };
    walk(path.join(root, 'lib'));
    // Every reader of the field hands it straight to hashSeedWords.
    for (const f of users) {
      const src = readFileSync(path.join(root, f), 'utf8');
      for (const m of src.matchAll(/.*\.s_hash_seed\b.*/g)) expect(m[0], f).toMatch(/hashSeedWords\([\w.]*\.s_hash_seed\)/);
    }
  });
});
