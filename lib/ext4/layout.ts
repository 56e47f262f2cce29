/**
 * Declarative on-disk struct layouts. Each structure is declared once as a
 * table of (field, offset, type) rows, mirroring the spec tables; parsing,
 * serialising and field offsets (for checksum exclusion) are derived from it.
 * The byte codec is buffer-layout; this module adds explicit offsets (gaps
 * become opaque padding, overlaps are rejected when the module loads) and
 * Uint8Array in/out.
 */
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
}

function asBuffer(u8: Uint8Array): Buffer {
  return Buffer.isBuffer(u8) ? u8 : Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

export function defineStruct<const R extends readonly FieldRow[]>(name: string, size: number, rows: R): Struct<Decoded<R>> {
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
  // Decoding is on every metadata read's hot path (inodes, directory entries): read the fields
  // straight from a DataView rather than through buffer-layout (same values, ~10x faster).
  const readers = sorted.map((row) => {
    const [field, offset, type] = row;
    const len = sizes.get(field)!;
    const read: (d: DataView, at: number, b: Uint8Array) => unknown =
      type === 'bytes' ? (_d, at, b) => {
        const o = new Uint8Array(len); // small copies stay on the JS heap (no ArrayBuffer of their own)
        o.set(b.subarray(at, at + len));
        return o;
      }
      : type === 'u8' ? (d, at) => d.getUint8(at)
      : type === 'u16' ? (d, at) => d.getUint16(at, true)
      : type === 'u32' ? (d, at) => d.getUint32(at, true)
      : type === 'u64' ? (d, at) => d.getUint32(at + 4, true) * 0x100000000 + d.getUint32(at, true)
      : type === 'u16be' ? (d, at) => d.getUint16(at, false)
      : type === 'u32be' ? (d, at) => d.getUint32(at, false)
      : (d, at) => d.getUint32(at, false) * 0x100000000 + d.getUint32(at + 4, false);
    return { field, offset, read };
  });
  return {
    name,
    size,
    decode(bytes: Uint8Array, offset = 0) {
      if (offset < 0 || offset + size > bytes.length) throw new RangeError(`layout ${name}: ${size} bytes at ${offset} exceed a ${bytes.length}-byte buffer`);
      const d = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const out: Record<string, unknown> = {};
      for (const f of readers) out[f.field] = f.read(d, offset + f.offset, bytes);
      return out as Decoded<R>;
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
  };
}

/** Little-endian u64 from a DataView as a number; throws if it cannot be exact. */
export function getU64(dv: DataView, off: number): number {
  const lo32 = dv.getUint32(off, true);
  const hi32 = dv.getUint32(off + 4, true);
  if (hi32 >= 0x200000) throw new RangeError('64-bit value exceeds 2^53');
  return hi32 * 0x100000000 + lo32;
}

export function setU64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v >>> 0, true);
  dv.setUint32(off + 4, Math.floor(v / 0x100000000), true);
}

export function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}
