/**
 * Codecs written into the CLI bundle (lib/codec/layout.ts prebuiltSource → usePrebuilt, by
 * scripts/bundle-cli.mjs): ordinary functions V8's code cache keeps, instead of `new Function`
 * code it cannot. They must be the declarations' own codecs:
 * - every declared struct of lib, given its prebuilt codec, decodes random bytes exactly as the
 *   generated decoder does (values and property order), and its prebuilt readers read what get()
 *   reads and throw the same RangeError past the buffer;
 * - every declared struct encodes, generated and prebuilt, exactly as its fields' writers write
 *   (bytes, untouched padding, the RangeError of a value outside its field and what was written
 *   before it);
 * - a prebuilt codec made from another declaration under the same name is not used (its key
 *   differs): the struct decodes from its own rows;
 * - the bundle's fast scripts register the codecs of the structs they declare, and `ls` through
 *   the bundle prints the same with code generation from strings forbidden (node
 *   --disallow-code-generation-from-strings: no decoder or reader may need `new Function`).
 */
import { readdirSync } from 'node:fs';
import * as fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { declaredStructs, defineStruct, prebuiltSource, usePrebuilt, type PrebuiltCodec } from '../../lib/codec/layout.js';
import { mulberry32 } from '../../lib/io/prng.js';
import { getImage } from '../helpers/images.js';
import { cliBundle } from '../cli/helpers.js';

const root = path.resolve(import.meta.dirname, '../..');

beforeAll(async () => {
  // Every lib module that may declare a struct, so the registry holds them all.
  for (const dir of ['lib/ext4', 'lib/jbd2', 'lib/ops', 'lib/cli']) {
    for (const f of readdirSync(path.join(root, dir))) {
      if (f.endsWith('.ts') && !f.endsWith('.d.ts') && fs.readFileSync(path.join(root, dir, f), 'utf8').includes('defineStruct(')) await import(path.join(root, dir, f));
    }
  }
}, 60_000);

/** What these tests call on a struct (its field types erased). */
interface Struct {
  decode(b: Uint8Array, o: number): Record<string, unknown>;
  encode(v: Record<string, unknown>, b: Uint8Array, o: number): void;
  set(b: Uint8Array, f: string, v: unknown, o: number): void;
}

/** The prebuilt codec as the bundle holds it: the source evaluated as ordinary code. */
function evaluate(source: string): PrebuiltCodec {
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  return new Function(`return ${source};`)() as PrebuiltCodec;
}

/**
 * A twin of declaration d under a fresh name (`prefix` + its name), given the prebuilt codec made
 * from d itself: what the bundle's usePrebuilt does for the real one.
 */
function prebuiltTwin<T>(d: ReturnType<typeof declaredStructs>[number], prefix: string): T {
  const name = `${prefix} ${d.name}`;
  usePrebuilt({ [name]: evaluate(prebuiltSource(d, new Set(d.rows.map((r) => r[0])))) });
  return defineStruct(name, d.size, d.rows) as unknown as T;
}

function randomBytes(rand: () => number, size: number, rows: readonly (readonly [string, number, string, ...unknown[]])[], at: number): Uint8Array {
  const bytes = new Uint8Array(size + at);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rand() * 256);
  // 64-bit fields stay exact below 2^53: clear the top bits of each u64's high word.
  for (const row of rows) {
    const hi = row[2] === 'u64' ? at + row[1] + 6 : row[2] === 'u64be' ? at + row[1] : -1;
    if (hi < 0) continue;
    bytes[hi] = row[2] === 'u64' ? bytes[hi]! & 0x1f : 0;
    bytes[hi + 1] = row[2] === 'u64' ? 0 : bytes[hi + 1]! & 0x1f;
  }
  return bytes;
}

describe('prebuilt codecs', () => {
  it('decode and read every declared struct as the generated code does', () => {
    const decls = declaredStructs().filter((d) => !d.name.startsWith('prebuilt test'));
    expect(decls.length).toBeGreaterThanOrEqual(40);
    const rand = mulberry32(0xb0b);
    let readers = 0;
    for (const d of decls) {
      const twin = prebuiltTwin<{
        decode(b: Uint8Array, o: number): Record<string, unknown>;
        get(b: Uint8Array, f: string, o: number): unknown;
        reader(f: string): (b: Uint8Array, o: number) => unknown;
      }>(d, 'prebuilt test');
      for (let round = 0; round < 8; round++) {
        const at = round % 3;
        const bytes = randomBytes(rand, d.size, d.rows, at);
        const want = d.struct.decode(bytes, at) as Record<string, unknown>;
        const got = twin.decode(bytes, at);
        expect(got, `${d.name} round ${round}`).toEqual(want);
        expect(Object.keys(got)).toEqual(Object.keys(want));
        for (const row of d.rows) {
          if (row[2] === 'bytes') continue;
          const read = twin.reader(row[0]);
          expect(read(bytes, at), `${d.name}.${row[0]}`).toBe(twin.get(bytes, row[0], at));
          readers++;
        }
      }
      // Past the buffer: the RangeError get() throws.
      const last = d.rows.filter((r) => r[2] !== 'bytes').at(-1);
      if (last) {
        const small = new Uint8Array(last[1]);
        expect(() => twin.reader(last[0])(small, 0)).toThrow(RangeError);
        expect(() => twin.get(small, last[0], 0)).toThrow(RangeError);
      }
    }
    expect(readers).toBeGreaterThan(1000);
  });

  it('encode every declared struct as the fields\' writers do (generated and prebuilt): bytes, padding, RangeErrors', () => {
    const decls = declaredStructs().filter((d) => !d.name.startsWith('prebuilt test') && !d.name.startsWith('encode test'));
    const rand = mulberry32(0xe4c);
    let checked = 0;
    for (const d of decls) {
      const twin = prebuiltTwin<Struct>(d, 'encode test');
      const own = d.struct as unknown as Struct;
      // The reference: each field's writer in offset order (set() writes one field as encode's loop over writers did).
      const byFields = (b: Uint8Array, v: Record<string, unknown>, at: number) => {
        for (const row of [...d.rows].sort((x, y) => x[1] - y[1])) own.set(b, row[0], v[row[0]], at);
      };
      for (let round = 0; round < 6; round++) {
        const at = round % 3;
        const value = own.decode(randomBytes(rand, d.size, d.rows, at), at);
        // Into bytes already holding something: padding must stay as it was.
        const base = randomBytes(rand, d.size, d.rows, at);
        const want = base.slice(), a = base.slice(), b = base.slice();
        byFields(want, value, at);
        own.encode(value, a, at);
        twin.encode(value, b, at);
        expect(a, `${d.name} round ${round}`).toEqual(want);
        expect(b, `${d.name} prebuilt round ${round}`).toEqual(want);
        // A value outside its field: the same RangeError, after the same fields were written.
        const row = d.rows.filter((r) => r[2] !== 'bytes')[round % Math.max(1, d.rows.filter((r) => r[2] !== 'bytes').length)];
        if (!row) continue;
        const bad = { ...value, [row[0]]: round % 2 ? -1 : 2 ** 64 };
        const outcome = (f: (x: Uint8Array) => void) => {
          const x = base.slice();
          try {
            f(x);
            return { x, error: null as string | null };
          } catch (e) {
            expect(e).toBeInstanceOf(RangeError);
            return { x, error: (e as Error).message };
          }
        };
        const w = outcome((x) => byFields(x, bad, at));
        expect(w.error, `${d.name}.${row[0]}`).not.toBeNull();
        expect(outcome((x) => own.encode(bad, x, at)), `${d.name}.${row[0]}`).toEqual(w);
        expect(outcome((x) => twin.encode(bad, x, at)), `${d.name}.${row[0]} prebuilt`).toEqual(w);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(200);
  });

  it('a prebuilt codec of another declaration under the same name is not used', () => {
    const rows = [['a', 0, 'u32'], ['b', 4, 'u16']] as const;
    const other = declaredStructs().find((d) => d.name === 'superblock')!;
    // Made from the superblock's rows, registered under this struct's name.
    usePrebuilt({ 'prebuilt test mismatch': evaluate(prebuiltSource(other, new Set(['s_magic', 'a']))) });
    const s = defineStruct('prebuilt test mismatch', 8, rows);
    const bytes = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(s.decode(bytes)).toEqual({ a: 0x04030201, b: 0x0605 });
    expect(Object.keys(s.decode(bytes))).toEqual(['a', 'b']);
    expect(s.reader('a')(bytes, 0)).toBe(0x04030201);
  });

  it('the bundle registers them in the fast scripts, and ls needs no code generation from strings', async () => {
    const bin = await cliBundle();
    const dir = path.join(path.dirname(bin), 'cli-chunks');
    const ls = readdirSync(dir).find((f) => /^fast-ls-[0-9a-f]{16}\.cjs$/.test(f))!;
    const text = fs.readFileSync(path.join(dir, ls), 'latin1');
    for (const name of ['superblock', 'inode', 'ext4_dir_entry_2', 'extent header']) {
      // (the minifier leaves a key that is an identifier unquoted)
      const key = /^\w+$/.test(name) ? `(?:${name}|"${name}")` : JSON.stringify(name);
      expect(new RegExp(`usePrebuilt\\(\\{[^;]*${key}:\\{key:\\d+,decode:function`).test(text), name).toBe(true);
    }
    const args = [bin, 'ls', getImage('ext4-4k').image, '/', '-R', '--json'];
    const env = { ...process.env, LANG: 'C', EXT4KIT_CODE_CACHE: '0' };
    const plain = spawnSync(process.execPath, args, { env, maxBuffer: 1 << 28 });
    const strict = spawnSync(process.execPath, ['--disallow-code-generation-from-strings', ...args], { env, maxBuffer: 1 << 28 });
    expect(plain.status, plain.stderr.toString()).toBe(0);
    expect(strict.status, strict.stderr.toString()).toBe(0);
    expect(strict.stdout.length).toBeGreaterThan(1000);
    expect(strict.stdout.equals(plain.stdout)).toBe(true);
  });
});
