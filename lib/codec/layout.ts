/**
 * Declarative on-disk struct layouts. Each structure is declared once as a
 * table of (field, offset, type) rows, mirroring the spec tables; parsing,
 * serialising and field offsets (for checksum exclusion) are derived from it.
 * The byte codec is buffer-layout; this module adds explicit offsets (gaps
 * become opaque padding, overlaps are rejected when the module loads) and
 * Uint8Array in/out.
 */
import { Buffer } from 'buffer'; // Node's built-in under Node; the npm package in a browser bundle
import lo, { type Layout } from 'buffer-layout';

export type ScalarType = 'u8' | 'u16' | 'u32' | 'u64' | 'u16be' | 'u32be' | 'u64be';
export type FieldRow =
  | readonly [name: string, offset: number, type: ScalarType]
  | readonly [name: string, offset: number, type: 'bytes', length: number];

export type Decoded<R extends readonly FieldRow[]> = {
  [K in R[number] as K[0]]: K[2] extends 'bytes' ? Uint8Array : number;
};

const SIZES: Record<ScalarType, number> = { u8: 1, u16: 2, u32: 4, u64: 8, u16be: 2, u32be: 4, u64be: 8 };

export interface Struct<T> {
  readonly name: string;
  /** Total size in bytes (declared). */
  readonly size: number;
  decode(bytes: Uint8Array, offset?: number): T;
  /** Write every declared field of `value` into `bytes` at `offset`; padding bytes are left untouched. */
  encode(value: T, bytes: Uint8Array, offset?: number): void;
  offsetOf(field: keyof T & string): number;
  sizeOf(field: keyof T & string): number;
  /** One field of the struct at `offset`, without decoding the rest (only that field's bytes need to be there). */
  get<K extends keyof T & string>(bytes: Uint8Array, field: K, offset?: number): T[K];
  /** Write one field (a checksum, a count) in place. */
  set<K extends keyof T & string>(bytes: Uint8Array, field: K, value: T[K], offset?: number): void;
}

/** A copy of `len` bytes (small copies stay on the JS heap: no ArrayBuffer of their own). */
function copyBytes(b: Uint8Array, at: number, len: number): Uint8Array {
  const o = new Uint8Array(len);
  for (let i = 0; i < len; i++) o[i] = b[at + i]!;
  return o;
}

function asBuffer(u8: Uint8Array): Buffer {
  return Buffer.isBuffer(u8) ? u8 : Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

export function defineStruct<const R extends readonly FieldRow[]>(name: string, size: number, rows: R): Struct<Decoded<R>> {
  const struct = buildStruct(name, size, rows);
  registry.push({ name, size, rows, struct: struct as Struct<unknown> });
  return struct;
}

/** Every struct declared so far (those of the modules loaded), with its declaration: the codec tests decode each one both ways. */
export interface Declaration {
  readonly name: string;
  readonly size: number;
  readonly rows: readonly FieldRow[];
  readonly struct: Struct<unknown>;
}
const registry: Declaration[] = [];
export function declaredStructs(): readonly Declaration[] {
  return registry;
}

/** How the decoders of this realm were built: 'generated' (new Function) or 'closures' (code generation forbidden, e.g. a strict CSP). */
export let decoderKind: 'generated' | 'closures' | undefined;

type FieldDecoder = (b: Uint8Array, o: number) => number | Uint8Array;
type RecordDecoder = (b: Uint8Array, o: number, copy: typeof copyBytes) => Record<string, number | Uint8Array>;

function readU16le(b: Uint8Array, o: number): number { return b[o]! | (b[o + 1]! << 8); }
function readU32le(b: Uint8Array, o: number): number { return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0; }
function readU16be(b: Uint8Array, o: number): number { return (b[o]! << 8) | b[o + 1]!; }
function readU32be(b: Uint8Array, o: number): number { return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0; }

/** The same field read as the generated code, as a closure (the fallback when code generation is forbidden). */
function closureField(row: FieldRow, len: number): [string, FieldDecoder] {
  const [field, offset, type] = row;
  const at = (f: (b: Uint8Array, o: number) => number): FieldDecoder => (b, o) => f(b, o + offset);
  switch (type) {
    case 'bytes': return [field, (b, o) => copyBytes(b, o + offset, len)];
    case 'u8': return [field, (b, o) => b[o + offset]!];
    case 'u16': return [field, at(readU16le)];
    case 'u32': return [field, at(readU32le)];
    case 'u64': return [field, (b, o) => readU32le(b, o + offset + 4) * 4294967296 + readU32le(b, o + offset)];
    case 'u16be': return [field, at(readU16be)];
    case 'u32be': return [field, at(readU32be)];
    case 'u64be': return [field, (b, o) => readU32be(b, o + offset) * 4294967296 + readU32be(b, o + offset + 4)];
  }
}

/**
 * A generated decoder when the realm allows `new Function`; under a strict Content-Security-Policy
 * (no 'unsafe-eval') it throws an EvalError, and the decoder becomes a loop over closures — slower,
 * same values, same property order.
 */
function compileDecoder(name: string, props: string[], fields: [string, FieldDecoder][]): RecordDecoder {
  if (decoderKind !== 'closures') {
    try {
      // eslint-disable-next-line @typescript-eslint/no-implied-eval
      const f = new Function('b', 'o', 'copy', `return { ${props.join(', ')} };`) as RecordDecoder;
      decoderKind = 'generated';
      return f;
    } catch (e) {
      if ((e as { name?: unknown } | null)?.name !== 'EvalError') throw new Error(`layout ${name}: cannot build the decoder: ${String(e)}`);
      decoderKind = 'closures';
    }
  }
  return (b, o) => {
    const out: Record<string, number | Uint8Array> = {};
    for (const [field, read] of fields) out[field] = read(b, o);
    return out;
  };
}

function buildStruct<const R extends readonly FieldRow[]>(name: string, size: number, rows: R): Struct<Decoded<R>> {
  const sorted = [...rows].sort((a, b) => a[1] - b[1]);
  const offsets = new Map<string, number>();
  const sizes = new Map<string, number>();
  // Encode walks fields individually so that padding (undeclared bytes) is preserved as-is.
  const fieldLayouts: { name: string; offset: number; layout: Layout; bytes: boolean }[] = [];
  let pos = 0;
  for (const row of sorted) {
    const [field, offset, type] = row;
    const len = type === 'bytes' ? (row as readonly [string, number, 'bytes', number])[3] : SIZES[type];
    if (offset < pos) throw new Error(`layout ${name}: field ${field} at ${offset} overlaps the previous field`);
    if (offsets.has(field)) throw new Error(`layout ${name}: duplicate field ${field}`);
    const layout = type === 'bytes' ? lo.blob(len, field) : (lo as any)[type === 'u64' ? 'nu64' : type === 'u64be' ? 'nu64be' : type](field);
    fieldLayouts.push({ name: field, offset, layout, bytes: type === 'bytes' });
    offsets.set(field, offset);
    sizes.set(field, len);
    pos = offset + len;
  }
  if (pos > size) throw new Error(`layout ${name}: fields end at ${pos}, beyond the declared size ${size}`);
  // Decoding is on every metadata read's hot path (inodes, directory entries, extents): a decoder
  // is generated per struct that reads the fields straight from the bytes into an object literal
  // (one fixed shape, no DataView, no buffer-layout calls; same values — ~10x faster).
  const at = (o: number) => (o === 0 ? 'o' : `o + ${o}`);
  const u8 = (o: number) => `b[${at(o)}]`;
  const u16le = (o: number) => `(${u8(o)} | (${u8(o + 1)} << 8))`;
  const u32le = (o: number) => `((${u8(o)} | (${u8(o + 1)} << 8) | (${u8(o + 2)} << 16) | (${u8(o + 3)} << 24)) >>> 0)`;
  const u16be = (o: number) => `((${u8(o)} << 8) | ${u8(o + 1)})`;
  const u32be = (o: number) => `(((${u8(o)} << 24) | (${u8(o + 1)} << 16) | (${u8(o + 2)} << 8) | ${u8(o + 3)}) >>> 0)`;
  const props = sorted.map((row) => {
    const [field, offset, type] = row;
    if (!/^[A-Za-z_$][\w$]*$/.test(field)) throw new Error(`layout ${name}: field name ${field} is not an identifier`);
    const expr =
      type === 'bytes' ? `copy(b, ${at(offset)}, ${sizes.get(field)!})`
      : type === 'u8' ? u8(offset)
      : type === 'u16' ? u16le(offset)
      : type === 'u32' ? u32le(offset)
      : type === 'u64' ? `(${u32le(offset + 4)} * 4294967296 + ${u32le(offset)})`
      : type === 'u16be' ? u16be(offset)
      : type === 'u32be' ? u32be(offset)
      : `(${u32be(offset)} * 4294967296 + ${u32be(offset + 4)})`;
    return `${field}: ${expr}`;
  });
  const readers = sorted.map((row) => closureField(row, sizes.get(row[0])!));
  const readerOf = new Map(readers);
  const layoutOf = new Map(fieldLayouts.map((f) => [f.name, f]));
  const decodeFields = compileDecoder(name, props, readers);
  const fieldAt = (field: string, bytes: Uint8Array, offset: number) => {
    const o = offsets.get(field);
    if (o === undefined) throw new Error(`layout ${name}: no field ${field}`);
    if (offset < 0 || offset + o + sizes.get(field)! > bytes.length) throw new RangeError(`layout ${name}: field ${field} at ${offset + o} exceeds a ${bytes.length}-byte buffer`);
    return o;
  };
  return {
    name,
    size,
    decode(bytes: Uint8Array, offset = 0) {
      if (offset < 0 || offset + size > bytes.length) throw new RangeError(`layout ${name}: ${size} bytes at ${offset} exceed a ${bytes.length}-byte buffer`);
      return decodeFields(bytes, offset, copyBytes) as Decoded<R>;
    },
    encode(value: Decoded<R>, bytes: Uint8Array, offset = 0) {
      if (offset < 0 || offset + size > bytes.length) throw new RangeError(`layout ${name}: ${size} bytes at ${offset} exceed a ${bytes.length}-byte buffer`);
      const b = asBuffer(bytes);
      const v = value as Record<string, unknown>;
      for (const f of fieldLayouts) {
        const x = v[f.name];
        if (f.bytes) b.set(x as Uint8Array, offset + f.offset);
        else f.layout.encode(x, b, offset + f.offset);
      }
    },
    offsetOf(field) {
      const o = offsets.get(field);
      if (o === undefined) throw new Error(`layout ${name}: no field ${field}`);
      return o;
    },
    sizeOf(field) {
      return sizes.get(field)!;
    },
    get(bytes, field, offset = 0) {
      fieldAt(field, bytes, offset);
      return readerOf.get(field)!(bytes, offset) as never;
    },
    set(bytes, field, value, offset = 0) {
      const o = fieldAt(field, bytes, offset);
      const f = layoutOf.get(field)!;
      if (f.bytes) bytes.set(value as Uint8Array, offset + o);
      else f.layout.encode(value, asBuffer(bytes), offset + o);
    },
  };
}

/**
 * Arrays of little-endian 32-bit words: block-pointer blocks and a block-mapped inode's i_block
 * (__le32[]), s_hash_seed (__le32[4]), the orphan file's inode slots. Declared here once so no
 * module reads words at hand-computed byte offsets.
 */
export const le32 = {
  get(bytes: Uint8Array, index: number): number {
    const o = index * 4;
    if (index < 0 || o + 4 > bytes.length) throw new RangeError(`le32 word ${index} outside a ${bytes.length}-byte buffer`);
    return readU32le(bytes, o);
  },
  set(bytes: Uint8Array, index: number, value: number): void {
    const o = index * 4;
    if (index < 0 || o + 4 > bytes.length) throw new RangeError(`le32 word ${index} outside a ${bytes.length}-byte buffer`);
    bytes[o] = value & 0xff;
    bytes[o + 1] = (value >>> 8) & 0xff;
    bytes[o + 2] = (value >>> 16) & 0xff;
    bytes[o + 3] = (value >>> 24) & 0xff;
  },
  /** The first `count` words (all of them by default). */
  words(bytes: Uint8Array, count = bytes.length >>> 2): number[] {
    const out: number[] = [];
    for (let i = 0; i < count; i++) out.push(le32.get(bytes, i));
    return out;
  },
};
