/**
 * Declarative on-disk struct layouts. Each structure is declared once as a
 * table of (field, offset, type) rows, mirroring the spec tables; parsing,
 * serialising and field offsets (for checksum exclusion) are derived from it.
 * Explicit offsets: gaps are opaque padding (left untouched by encode),
 * overlaps are rejected when the module loads. Uint8Array in and out.
 *
 * The codecs are built on first use, not at declaration: a process loads
 * dozens of declarations (journal, MMP, xattr, htree, …) and a short command
 * (`ext4kit info`) uses two of them.
 *
 * The decoders and field readers are generated source (decoderSource, readerSource). From source
 * they are compiled with `new Function`, which V8's code cache cannot hold: every fresh process
 * would compile them again. The CLI bundle (scripts/bundle-cli.mjs) therefore writes the same
 * generated source into the script, as ordinary functions, ahead of each declaring module
 * (prebuiltSource → usePrebuilt): they land in the fast scripts' code cache.
 */

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
  /**
   * A reader of one field, resolved once: same value and same RangeError as get(bytes, field,
   * offset), without the by-name lookup per call (per-inode loops: a listing reads ~12 fields of
   * every inode).
   */
  reader<K extends keyof T & string>(field: K): (bytes: Uint8Array, offset: number) => T[K];
}

/** A copy of `len` bytes (small copies stay on the JS heap: no ArrayBuffer of their own). */
function copyBytes(b: Uint8Array, at: number, len: number): Uint8Array {
  const o = new Uint8Array(len);
  for (let i = 0; i < len; i++) o[i] = b[at + i]!;
  return o;
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

/**
 * Codecs written into the CLI bundle from the declarations (scripts/bundle-cli.mjs): by struct
 * name, each with the fingerprint of the declaration it was made from (declarationKey), so a
 * struct declared differently under the same name never takes another's code.
 */
export interface PrebuiltCodec {
  readonly key: number;
  readonly decode: RecordDecoder;
  /** Absent in a read-only script's codecs (prebuiltSource's `encoder: false`). */
  readonly encode?: RecordEncoder;
  /** The reader of a non-bytes field, given the error maker (what readerSource's function makes). */
  readonly reader: (field: string, outside: (b: Uint8Array, o: number) => RangeError) => ((b: Uint8Array, o: number) => number) | undefined;
}
const prebuilt = new Map<string, PrebuiltCodec>();

/** Register bundled codecs (called by the code scripts/bundle-cli.mjs puts ahead of a declaring module). */
export function usePrebuilt(codecs: Readonly<Record<string, PrebuiltCodec>>): void {
  for (const name in codecs) prebuilt.set(name, codecs[name]!);
}

/**
 * A fingerprint of the declaration for PrebuiltCodec.key: its size and each field's offset, type
 * and length, in offset order (numbers only: a loop over the rows' text got hot enough for V8 to
 * optimise it in every fresh process). Field names are checked where the codecs are made: the
 * bundle refuses two structs of one name.
 */
function declarationKey(size: number, fields: Iterable<Field>): number {
  let h = Math.imul(0x811c9dc5 ^ size, 0x01000193);
  for (const f of fields) h = Math.imul(h ^ (f.offset * 64 + TYPE_CODES[f.row[2]]) ^ (f.size << 20), 0x01000193);
  return h >>> 0;
}
const TYPE_CODES: Record<FieldRow[2], number> = { u8: 1, u16: 2, u32: 3, u64: 4, u16be: 5, u32be: 6, u64be: 7, bytes: 8 };

/**
 * The JavaScript source of a declaration's PrebuiltCodec (an object literal): its decoder and the
 * readers of the fields named in `readers` (those a module asks reader() for: a reader for every
 * field would double the superblock's text, 23 KB, for fields nobody reads one at a time), the
 * very text new Function would compile at run time. A reader not prebuilt is generated as before.
 * Its encoder too, unless `encoder` is false (a read-only script: ~30 KB it would never run).
 */
export function prebuiltSource(d: Declaration, readers: ReadonlySet<string>, opts: { encoder?: boolean } = {}): string {
  const list = fieldsOf(d.name, d.size, d.rows);
  const cases = list.filter((f) => f.row[2] !== 'bytes' && readers.has(f.row[0])).map((f) => `case ${JSON.stringify(f.row[0])}: ${readerSource(f)}`);
  const reader = cases.length === 0 ? 'function () { return undefined; }' : `function (field, outside) { switch (field) { ${cases.join(' ')} } }`;
  const encode = opts.encoder === false ? '' : ` encode: function (${ENCODER_PARAMS.join(', ')}) { ${encoderSource(list)} },`;
  return `{ key: ${declarationKey(d.size, list)}, decode: function (b, o, copy) { ${decoderSource(list)} },${encode} reader: ${reader} }`;
}

/**
 * How the decoders of this realm are built: 'generated' (new Function) or 'closures' (code
 * generation forbidden, e.g. a strict CSP). Probed once when the module loads (a one-line function).
 */
export let decoderKind: 'generated' | 'closures' = probeCodeGeneration();

function probeCodeGeneration(): 'generated' | 'closures' {
  try {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    new Function('return 0');
    return 'generated';
  } catch (e) {
    if ((e as { name?: unknown } | null)?.name !== 'EvalError') throw e;
    return 'closures';
  }
}

type FieldDecoder = (b: Uint8Array, o: number) => number | Uint8Array;
type FieldEncoder = (b: Uint8Array, o: number, v: unknown) => void;
type RecordDecoder = (b: Uint8Array, o: number, copy: typeof copyBytes) => Record<string, number | Uint8Array>;
/** An encoder `(b, o, v, unsigned, split64) => void` (the helpers passed in: a prebuilt one is code of another module). */
type RecordEncoder = (b: Uint8Array, o: number, v: Record<string, unknown>, u: typeof unsigned, s: typeof split64) => void;

function readU16le(b: Uint8Array, o: number): number { return b[o]! | (b[o + 1]! << 8); }
function readU32le(b: Uint8Array, o: number): number { return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0; }
function readU16be(b: Uint8Array, o: number): number { return (b[o]! << 8) | b[o + 1]!; }
function readU32be(b: Uint8Array, o: number): number { return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0; }

/**
 * An unsigned integer to write: a RangeError outside [0, max], as Node's Buffer#writeUInt* (what
 * encoding used before) — a count that no longer fits its field is a bug, not a value to wrap.
 */
function unsigned(v: unknown, max: number, field: string): number {
  const n = +(v as number);
  if (n < 0 || n > max) throw new RangeError(`value ${String(v)} of ${field} is outside [0, ${max}]`);
  return n;
}
function writeU16le(b: Uint8Array, o: number, n: number): void { b[o] = n; b[o + 1] = n >>> 8; }
function writeU32le(b: Uint8Array, o: number, n: number): void { b[o] = n; b[o + 1] = n >>> 8; b[o + 2] = n >>> 16; b[o + 3] = n >>> 24; }
function writeU16be(b: Uint8Array, o: number, n: number): void { b[o] = n >>> 8; b[o + 1] = n; }
function writeU32be(b: Uint8Array, o: number, n: number): void { b[o] = n >>> 24; b[o + 1] = n >>> 16; b[o + 2] = n >>> 8; b[o + 3] = n; }
/** A 64-bit field from a number (exact below 2^53): the high and low 32-bit words. */
function split64(v: unknown, field: string): [hi: number, lo: number] {
  const n = +(v as number);
  const hi = Math.floor(n / 4294967296);
  return [unsigned(hi, 0xffffffff, field), unsigned(n - hi * 4294967296, 0xffffffff, field)];
}

/** The reader and the writer of one field, `offset` bytes into the struct. */
function fieldCodec(row: FieldRow, len: number): [FieldDecoder, FieldEncoder] {
  const [field, offset, type] = row;
  switch (type) {
    case 'bytes': return [(b, o) => copyBytes(b, o + offset, len), (b, o, v) => b.set(v as Uint8Array, o + offset)];
    case 'u8': return [(b, o) => b[o + offset]!, (b, o, v) => { b[o + offset] = unsigned(v, 0xff, field); }];
    case 'u16': return [(b, o) => readU16le(b, o + offset), (b, o, v) => writeU16le(b, o + offset, unsigned(v, 0xffff, field))];
    case 'u32': return [(b, o) => readU32le(b, o + offset), (b, o, v) => writeU32le(b, o + offset, unsigned(v, 0xffffffff, field))];
    case 'u64': return [
      (b, o) => readU32le(b, o + offset + 4) * 4294967296 + readU32le(b, o + offset),
      (b, o, v) => { const [hi, lo] = split64(v, field); writeU32le(b, o + offset, lo); writeU32le(b, o + offset + 4, hi); },
    ];
    case 'u16be': return [(b, o) => readU16be(b, o + offset), (b, o, v) => writeU16be(b, o + offset, unsigned(v, 0xffff, field))];
    case 'u32be': return [(b, o) => readU32be(b, o + offset), (b, o, v) => writeU32be(b, o + offset, unsigned(v, 0xffffffff, field))];
    case 'u64be': return [
      (b, o) => readU32be(b, o + offset) * 4294967296 + readU32be(b, o + offset + 4),
      (b, o, v) => { const [hi, lo] = split64(v, field); writeU32be(b, o + offset, hi); writeU32be(b, o + offset + 4, lo); },
    ];
  }
}

/**
 * A generated decoder when the realm allows `new Function`; under a strict Content-Security-Policy
 * (no 'unsafe-eval') it throws an EvalError, and the decoder becomes a loop over closures — slower,
 * same values, same property order.
 */
function compileDecoder(name: string, list: readonly Field[], fields: readonly (readonly [string, FieldDecoder])[]): RecordDecoder {
  if (decoderKind !== 'closures') {
    try {
      // eslint-disable-next-line @typescript-eslint/no-implied-eval
      const f = new Function('b', 'o', 'copy', decoderSource(list)) as RecordDecoder;
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

/**
 * The source of one property of the generated decoder: the field read straight from the bytes
 * (one fixed object shape, no DataView; ~10x faster than going through a codec library).
 */
function fieldSource(row: FieldRow, len: number): string {
  const [field, offset, type] = row;
  const at = (o: number) => (o === 0 ? 'o' : `o + ${o}`);
  const u8 = (o: number) => `b[${at(o)}]`;
  const u16le = (o: number) => `(${u8(o)} | (${u8(o + 1)} << 8))`;
  const u32le = (o: number) => `((${u8(o)} | (${u8(o + 1)} << 8) | (${u8(o + 2)} << 16) | (${u8(o + 3)} << 24)) >>> 0)`;
  const u16be = (o: number) => `((${u8(o)} << 8) | ${u8(o + 1)})`;
  const u32be = (o: number) => `(((${u8(o)} << 24) | (${u8(o + 1)} << 16) | (${u8(o + 2)} << 8) | ${u8(o + 3)}) >>> 0)`;
  const expr =
    type === 'bytes' ? `copy(b, ${at(offset)}, ${len})`
    : type === 'u8' ? u8(offset)
    : type === 'u16' ? u16le(offset)
    : type === 'u32' ? u32le(offset)
    : type === 'u64' ? `(${u32le(offset + 4)} * 4294967296 + ${u32le(offset)})`
    : type === 'u16be' ? u16be(offset)
    : type === 'u32be' ? u32be(offset)
    : `(${u32be(offset)} * 4294967296 + ${u32be(offset + 4)})`;
  return `${field}: ${expr}`;
}

/** The body of a decoder `(b, o, copy) => record`: one object literal, fields in offset order. */
function decoderSource(list: readonly Field[]): string {
  return `return { ${list.map((f) => fieldSource(f.row, f.size)).join(', ')} };`;
}

/** The generated encoder's parameters: RecordEncoder's, then two scratch variables. */
const ENCODER_PARAMS = ['b', 'o', 'v', 'unsigned', 'split64', 'n', 'h'] as const;

/**
 * The body of an encoder (ENCODER_PARAMS): each field read by name and written as fieldCodec's
 * writer writes it (same bytes, same RangeError, same order: offset order), in one expression (no
 * statement separators in the bundle's registration, which the prebuilt test reads). Generated per
 * declaration, so each struct's field reads see one object shape — the loop over closures every
 * struct shared saw all of them (megamorphic keyed reads, and a "wrong map" deoptimisation each
 * time a struct met late came through; a fresh import: 9.6 MB allocated and ~55 ms of main thread).
 */
function encoderSource(list: readonly Field[]): string {
  const parts: string[] = [];
  for (const f of list) {
    const [field, offset, type] = f.row;
    const at = (k: number) => `b[${offset + k === 0 ? 'o' : `o + ${offset + k}`}]`;
    const name = JSON.stringify(field);
    const le32 = (k: number) => `${at(k)} = n, ${at(k + 1)} = n >>> 8, ${at(k + 2)} = n >>> 16, ${at(k + 3)} = n >>> 24`;
    const be32 = (k: number) => `${at(k)} = n >>> 24, ${at(k + 1)} = n >>> 16, ${at(k + 2)} = n >>> 8, ${at(k + 3)} = n`;
    switch (type) {
      case 'bytes': parts.push(`b.set(v.${field}, ${offset === 0 ? 'o' : `o + ${offset}`})`); break;
      case 'u8': parts.push(`${at(0)} = unsigned(v.${field}, 255, ${name})`); break;
      case 'u16': parts.push(`n = unsigned(v.${field}, 65535, ${name}), ${at(0)} = n, ${at(1)} = n >>> 8`); break;
      case 'u32': parts.push(`n = unsigned(v.${field}, 4294967295, ${name}), ${le32(0)}`); break;
      case 'u64': parts.push(`h = split64(v.${field}, ${name}), n = h[1], ${le32(0)}, n = h[0], ${le32(4)}`); break;
      case 'u16be': parts.push(`n = unsigned(v.${field}, 65535, ${name}), ${at(0)} = n >>> 8, ${at(1)} = n`); break;
      case 'u32be': parts.push(`n = unsigned(v.${field}, 4294967295, ${name}), ${be32(0)}`); break;
      case 'u64be': parts.push(`h = split64(v.${field}, ${name}), n = h[0], ${be32(0)}, n = h[1], ${be32(4)}`); break;
    }
  }
  return `return void (${parts.join(', ')});`;
}

/** A generated encoder where `new Function` is allowed, else the loop over the fields' writers (same bytes). */
function compileEncoder(name: string, list: readonly Field[], writers: readonly (readonly [string, FieldEncoder])[]): RecordEncoder {
  if (decoderKind !== 'closures') {
    try {
      // eslint-disable-next-line @typescript-eslint/no-implied-eval
      return new Function(...ENCODER_PARAMS, encoderSource(list)) as RecordEncoder;
    } catch (e) {
      if ((e as { name?: unknown } | null)?.name !== 'EvalError') throw new Error(`layout ${name}: cannot build the encoder: ${String(e)}`);
      decoderKind = 'closures';
    }
  }
  return (b, o, v) => {
    for (const [field, write] of writers) write(b, o, v[field]);
  };
}

/**
 * The body of a reader maker `(outside) => (b, o) => value` for a non-bytes field: the bounds
 * check and the byte reads in one small function (one call per field read instead of two; it is
 * inlined into the per-inode loop sooner).
 */
function readerSource(f: Field): string {
  const expr = fieldSource(f.row, f.size).slice(f.row[0].length + 2);
  return `return function (b, o) { if (o < 0 || o + ${f.offset + f.size} > b.length) throw outside(b, o); return ${expr}; };`;
}

interface Codec {
  decode: RecordDecoder;
}

/** One declared field: where it is, and its reader/writer once built (first get/set of it). */
interface Field {
  readonly row: FieldRow;
  readonly offset: number;
  readonly size: number;
  read: FieldDecoder | null;
  write: FieldEncoder | null;
}

function codecOf(f: Field): [FieldDecoder, FieldEncoder] {
  const [read, write] = fieldCodec(f.row, f.size);
  f.read = read;
  f.write = write;
  return [read, write];
}

/** The declared fields in offset order, checked (on first use, buildStruct): overlaps, duplicates, names the generated decoder can use. */
function fieldsOf(name: string, size: number, rows: readonly FieldRow[]): Field[] {
  const sorted = [...rows].sort((a, b) => a[1] - b[1]);
  const list: Field[] = [];
  const names = new Set<string>();
  let pos = 0;
  for (const row of sorted) {
    const [field, offset, type] = row;
    const len = type === 'bytes' ? (row as readonly [string, number, 'bytes', number])[3] : SIZES[type];
    if (offset < pos) throw new Error(`layout ${name}: field ${field} at ${offset} overlaps the previous field`);
    if (names.has(field)) throw new Error(`layout ${name}: duplicate field ${field}`);
    if (!/^[A-Za-z_$][\w$]*$/.test(field)) throw new Error(`layout ${name}: field name ${field} is not an identifier`);
    names.add(field);
    list.push({ row, offset, size: len, read: null, write: null });
    pos = offset + len;
  }
  if (pos > size) throw new Error(`layout ${name}: fields end at ${pos}, beyond the declared size ${size}`);
  return list;
}

function buildStruct<const R extends readonly FieldRow[]>(name: string, size: number, rows: R): Struct<Decoded<R>> {
  // The fields by name, laid out and checked on first use: a fresh process declares every struct
  // of its script when the script loads (~400 fields in movedata's), and most are never touched
  // one by one; the bundle lays out each declaration when it builds its codecs, the declaration
  // tests on their first decode, so a malformed one still fails before it ships.
  let byName: Map<string, Field> | undefined;
  const fields = (): Map<string, Field> => {
    if (byName) return byName;
    const map = new Map<string, Field>();
    for (const f of fieldsOf(name, size, rows)) map.set(f.row[0], f);
    return (byName = map);
  };
  /** This declaration's bundled codec, if any (looked up once, on first use). */
  let pre: PrebuiltCodec | null | undefined;
  const prebuiltCodec = (): PrebuiltCodec | null => {
    if (pre !== undefined) return pre;
    const p = prebuilt.get(name);
    return (pre = p !== undefined && p.key === declarationKey(size, fields().values()) ? p : null);
  };
  // Built on first use (see the module comment).
  let built: Codec | undefined;
  const codec = (): Codec => {
    if (built) return built;
    const list = [...fields().values()];
    const codecs = list.map((f) => (f.read && f.write ? ([f.read, f.write] as const) : codecOf(f)));
    const decode = prebuiltCodec()?.decode ?? compileDecoder(name, list, list.map((f, i) => [f.row[0], codecs[i]![0]] as const));
    return (built = { decode });
  };
  // Built on first encode, apart from the decoder: a read-only command never encodes, and its
  // bundled script carries no prebuilt encoders (scripts/bundle-cli.mjs READ_ONLY_FAST).
  let encoder: RecordEncoder | undefined;
  const encodeAll = (): RecordEncoder => {
    if (encoder) return encoder;
    const list = [...fields().values()];
    return (encoder = prebuiltCodec()?.encode ?? compileEncoder(name, list, list.map((f) => [f.row[0], f.read && f.write ? f.write : codecOf(f)[1]] as const)));
  };
  /** The field, checked against the buffer: one lookup per get/set (they run per inode, per entry). */
  const fieldAt = (field: string, bytes: Uint8Array, offset: number): Field => {
    const f = fields().get(field);
    if (f === undefined) throw new Error(`layout ${name}: no field ${field}`);
    if (offset < 0 || offset + f.offset + f.size > bytes.length) throw new RangeError(`layout ${name}: field ${field} at ${offset + f.offset} exceeds a ${bytes.length}-byte buffer`);
    return f;
  };
  return {
    name,
    size,
    decode(bytes: Uint8Array, offset = 0) {
      if (offset < 0 || offset + size > bytes.length) throw new RangeError(`layout ${name}: ${size} bytes at ${offset} exceed a ${bytes.length}-byte buffer`);
      return codec().decode(bytes, offset, copyBytes) as Decoded<R>;
    },
    encode(value: Decoded<R>, bytes: Uint8Array, offset = 0) {
      if (offset < 0 || offset + size > bytes.length) throw new RangeError(`layout ${name}: ${size} bytes at ${offset} exceed a ${bytes.length}-byte buffer`);
      encodeAll()(bytes, offset, value as Record<string, unknown>, unsigned, split64);
    },
    offsetOf(field) {
      const f = fields().get(field);
      if (f === undefined) throw new Error(`layout ${name}: no field ${field}`);
      return f.offset;
    },
    sizeOf(field) {
      return fields().get(field)!.size;
    },
    get(bytes, field, offset = 0) {
      const f = fieldAt(field, bytes, offset);
      return (f.read ?? codecOf(f)[0])(bytes, offset) as never;
    },
    set(bytes, field, value, offset = 0) {
      const f = fieldAt(field, bytes, offset);
      (f.write ?? codecOf(f)[1])(bytes, offset, value);
    },
    reader(field) {
      const f = fields().get(field);
      if (f === undefined) throw new Error(`layout ${name}: no field ${field}`);
      const end = f.offset + f.size;
      const outside = (bytes: Uint8Array, offset: number) => new RangeError(`layout ${name}: field ${field} at ${offset + f.offset} exceeds a ${bytes.length}-byte buffer`);
      if (f.row[2] !== 'bytes') {
        const made = prebuiltCodec()?.reader(field, outside);
        if (made !== undefined) return made as never;
      }
      // Generated where allowed (readerSource).
      if (decoderKind !== 'closures' && f.row[2] !== 'bytes') {
        try {
          // eslint-disable-next-line @typescript-eslint/no-implied-eval
          const make = new Function('outside', readerSource(f)) as (o: typeof outside) => (b: Uint8Array, o: number) => never;
          return make(outside);
        } catch (e) {
          if ((e as { name?: unknown } | null)?.name !== 'EvalError') throw e;
        }
      }
      const read = f.read ?? codecOf(f)[0];
      return (bytes, offset) => {
        if (offset < 0 || offset + end > bytes.length) throw outside(bytes, offset);
        return read(bytes, offset) as never;
      };
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
