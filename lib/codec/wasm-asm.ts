/**
 * The few pieces of the WebAssembly binary format (core spec §5) the hand-assembled modules here
 * use — crc32c-wasm.ts (the crc loop) and lib/ext4/inode-summary-wasm.ts (inode listing fields) —
 * named, so each module reads as its opcodes. Nothing here runs anything.
 */

// Value and block types.
export const I32 = 0x7f, VOID = 0x40;
// Control.
export const BLOCK = 0x02, LOOP = 0x03, IF = 0x04, ELSE = 0x05, BR = 0x0c, BR_IF = 0x0d, END = 0x0b, CALL = 0x10, RETURN = 0x0f;
// Locals and constants.
export const GET = 0x20, SET = 0x21, TEE = 0x22, CONST = 0x41;
// Memory (each followed by its memarg: alignment log2, then offset as uleb).
export const LOAD = 0x28, LOAD8_U = 0x2d, LOAD16_U = 0x2f, STORE = 0x36, STORE16 = 0x3b;
// i32 arithmetic and comparisons.
export const EQZ = 0x45, EQ = 0x46, NE = 0x47, LT_S = 0x48, LT_U = 0x49, GT_U = 0x4b, GE_U = 0x4f;
export const ADD = 0x6a, SUB = 0x6b, MUL = 0x6c, AND = 0x71, OR = 0x72, XOR = 0x73, SHL = 0x74, SHR_U = 0x76;

/** Unsigned LEB128 (sizes, indexes, memarg offsets). */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

/** Signed LEB128 for i32.const. */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
}

/** Signed LEB128 of a 64-bit value, for i64.const. */
export function sleb64(v: bigint): number[] {
  const out: number[] = [];
  for (;;) {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && !(b & 0x40)) || (v === -1n && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
}

/** i32.const n. */
export const i32c = (n: number) => [CONST, ...sleb(n)];

/** A section: its id, then its content's size, then the content. */
export const section = (id: number, content: number[]) => [id, ...uleb(content.length), ...content];

/** A module's bytes: the magic and version 1, then its sections. */
export const wasmModule = (sections: number[]): Uint8Array<ArrayBuffer> => Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...sections]);

/** A name (exports): its length, then its ASCII bytes. */
export const wasmName = (s: string) => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];

/** A function's code entry: `locals` extra i32 locals, then the body (which ends with END). */
export const funcCode = (locals: number, body: number[]) => {
  const code = [...(locals ? [1, ...uleb(locals), I32] : [0]), ...body];
  return [...uleb(code.length), ...code];
};
