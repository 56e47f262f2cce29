/**
 * The struct codec (lib/codec/layout.ts) in both realms it must run in:
 * - Node / a permissive page: decoders generated with `new Function`;
 * - a strict Content-Security-Policy (no 'unsafe-eval'): `new Function` throws EvalError and the
 *   decoders fall back to closures. Simulated with a vm context whose code generation from strings
 *   is off, running the codec bundled by esbuild for the browser (so `buffer` is the npm package).
 * Every declared struct of lib is decoded both ways on random bytes (fixed seed) and must agree;
 * encoding in the sandbox must give the same bytes as under Node.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { Buffer as ImportedBuffer } from 'buffer';
import { build } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';
import { declaredStructs, decoderKind, le32, type FieldRow } from '../../lib/codec/layout.js';
import { mulberry32 } from '../../lib/io/prng.js';

const root = path.resolve(import.meta.dirname, '../..');

interface SandboxCodec {
  defineStruct(name: string, size: number, rows: readonly FieldRow[]): {
    decode(b: Uint8Array, o?: number): Record<string, unknown>;
    encode(v: Record<string, unknown>, b: Uint8Array, o?: number): void;
  };
  readonly decoderKind: string | undefined;
}

let sandbox: SandboxCodec;
let sandboxU8: Uint8ArrayConstructor;

beforeAll(async () => {
  // Load every lib module that may declare a struct, so the registry holds them all.
  for (const dir of ['lib/ext4', 'lib/jbd2', 'lib/ops']) {
    for (const f of readdirSync(path.join(root, dir))) {
      if (f.endsWith('.ts') && !f.endsWith('.d.ts')) await import(path.join(root, dir, f));
    }
  }
  const out = await build({
    entryPoints: [path.join(root, 'lib/codec/layout.ts')],
    bundle: true,
    platform: 'browser',
    format: 'iife',
    globalName: 'codec',
    write: false,
    logLevel: 'silent',
  });
  const code = out.outputFiles[0]!.text;
  const ctx = vm.createContext({}, { codeGeneration: { strings: false, wasm: false } });
  vm.runInContext(code, ctx);
  sandbox = vm.runInContext('codec', ctx) as SandboxCodec;
  sandboxU8 = vm.runInContext('Uint8Array', ctx) as Uint8ArrayConstructor;
}, 60_000);

/** Plain data for comparing values across realms. */
function plain(v: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, typeof x === 'number' ? x : Array.from(x as Uint8Array)]));
}

describe('codec', () => {
  it('takes Buffer from the buffer package, which is Node\'s own under Node', () => {
    expect(ImportedBuffer).toBe(globalThis.Buffer);
  });

  it('generates decoders under Node', () => {
    expect(decoderKind).toBe('generated');
  });

  it('the sandbox really forbids code generation and the codec falls back to closures', () => {
    expect(() => vm.runInContext('new Function("return 1")', vm.createContext({}, { codeGeneration: { strings: false } }))).toThrow(/Code generation from strings disallowed/);
    sandbox.defineStruct('probe', 4, [['x', 0, 'u32']]);
    expect(sandbox.decoderKind).toBe('closures');
  });

  it('every declared struct decodes and encodes the same with generated code and with closures', () => {
    const decls = declaredStructs();
    // The superblock, inode, group descriptor, extent, directory, xattr, jbd2 and MMP layouts at least.
    expect(decls.length).toBeGreaterThanOrEqual(20);
    const rand = mulberry32(0x5eed);
    for (const d of decls) {
      const s = sandbox.defineStruct(d.name, d.size, d.rows);
      for (let round = 0; round < 20; round++) {
        const at = round % 3;
        const bytes = new Uint8Array(d.size + at);
        for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rand() * 256);
        // 64-bit fields must stay exact below 2^53: clear the top bits of each u64's high word.
        for (const row of d.rows) {
          const hi = row[2] === 'u64' ? at + row[1] + 6 : row[2] === 'u64be' ? at + row[1] : -1;
          if (hi < 0) continue;
          bytes[hi] = row[2] === 'u64' ? bytes[hi]! & 0x1f : 0;
          bytes[hi + 1] = row[2] === 'u64' ? 0 : bytes[hi + 1]! & 0x1f;
        }
        const fast = d.struct.decode(bytes, at) as Record<string, unknown>;
        const inBox = sandboxU8.from(bytes);
        const slow = s.decode(inBox, at);
        expect(plain(slow), `${d.name} round ${round}`).toEqual(plain(fast));
        expect(Object.keys(slow)).toEqual(Object.keys(fast));

        const enc = new Uint8Array(d.size + at);
        d.struct.encode(fast, enc, at);
        const encBox = new sandboxU8(d.size + at);
        s.encode(slow, encBox, at);
        expect(Array.from(encBox), `${d.name} encode`).toEqual(Array.from(enc));
        // Declared bytes round-trip exactly (padding is left untouched: zero here).
        const back = d.struct.decode(enc, at) as Record<string, unknown>;
        expect(plain(back)).toEqual(plain(fast));
        // One field at a time (get/set) agrees with the whole-struct decode/encode.
        const one = new Uint8Array(d.size + at);
        const s1 = d.struct as unknown as { get(b: Uint8Array, f: string, o: number): unknown; set(b: Uint8Array, f: string, v: unknown, o: number): void };
        for (const row of d.rows) {
          expect(plain({ v: s1.get(bytes, row[0], at) }), `${d.name}.${row[0]}`).toEqual(plain({ v: fast[row[0]] }));
          s1.set(one, row[0], fast[row[0]], at);
        }
        expect(Array.from(one), `${d.name} set`).toEqual(Array.from(enc));
      }
    }
  });

  it('encodes every declared struct as Node\'s Buffer writers would, and refuses values that do not fit', () => {
    // An independent reference: each field written with Buffer#writeUInt*LE/BE (64-bit as two words).
    const rand = mulberry32(0xc0de);
    for (const d of declaredStructs()) {
      const value: Record<string, unknown> = {};
      const want = Buffer.alloc(d.size + 1);
      for (const row of d.rows) {
        const [field, off, type] = row;
        const at = off + 1;
        const u32 = () => Math.floor(rand() * 2 ** 32);
        if (type === 'bytes') {
          const v = Uint8Array.from({ length: row[3] }, () => Math.floor(rand() * 256));
          value[field] = v;
          want.set(v, at);
        } else if (type === 'u64' || type === 'u64be') {
          const hi = Math.floor(rand() * 2 ** 21), lo = u32();
          value[field] = hi * 2 ** 32 + lo;
          if (type === 'u64') { want.writeUInt32LE(lo, at); want.writeUInt32LE(hi, at + 4); } else { want.writeUInt32BE(hi, at); want.writeUInt32BE(lo, at + 4); }
        } else {
          const bits = { u8: 8, u16: 16, u32: 32, u16be: 16, u32be: 32 }[type];
          const v = Math.floor(rand() * 2 ** bits);
          value[field] = v;
          if (type === 'u8') want.writeUInt8(v, at);
          else if (type === 'u16') want.writeUInt16LE(v, at);
          else if (type === 'u32') want.writeUInt32LE(v, at);
          else if (type === 'u16be') want.writeUInt16BE(v, at);
          else want.writeUInt32BE(v, at);
        }
      }
      const got = new Uint8Array(d.size + 1);
      d.struct.encode(value, got, 1);
      expect(Array.from(got), d.name).toEqual(Array.from(want));
      expect(plain(d.struct.decode(got, 1) as Record<string, unknown>), d.name).toEqual(plain(value));
    }
    const s = declaredStructs().find((d) => d.name === 'inode extra')!.struct as unknown as { set(b: Uint8Array, f: string, v: unknown): void };
    const slot = new Uint8Array(0x100);
    expect(() => s.set(slot, 'i_extra_isize', 0x10000)).toThrow(RangeError);
    expect(() => s.set(slot, 'i_extra_isize', -1)).toThrow(RangeError);
    expect(Array.from(slot.subarray(0x80, 0x82)), 'a refused value writes nothing').toEqual([0, 0]);
  });

  it('get/set check the field against the buffer, not the whole struct', () => {
    const decl = declaredStructs().find((d) => d.name === 'inode extra')!;
    const slot = new Uint8Array(0x82);
    const s1 = decl.struct as unknown as { get(b: Uint8Array, f: string): unknown; set(b: Uint8Array, f: string, v: unknown): void };
    s1.set(slot, 'i_extra_isize', 32);
    expect(s1.get(slot, 'i_extra_isize')).toBe(32);
    expect(() => s1.get(slot, 'i_checksum_hi')).toThrow(RangeError);
    expect(() => s1.get(slot, 'no_such_field')).toThrow(/no field/);
  });

  it('le32 words are little-endian and bounded', () => {
    const b = new Uint8Array([1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff]);
    expect(le32.get(b, 0)).toBe(0x04030201);
    expect(le32.get(b, 1)).toBe(0xffffffff);
    expect(le32.words(b)).toEqual([0x04030201, 0xffffffff]);
    le32.set(b, 0, 0xa1b2c3d4);
    expect(Array.from(b.subarray(0, 4))).toEqual([0xd4, 0xc3, 0xb2, 0xa1]);
    expect(() => le32.get(b, 2)).toThrow(RangeError);
    expect(() => le32.set(b, -1, 0)).toThrow(RangeError);
  });
});
