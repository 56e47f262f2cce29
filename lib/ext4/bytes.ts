/** Small byte helpers shared by the format modules. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Whether b[start, end) is all zeros (end clipped to b). Data blocks rarely start or end with a
 * zero, so those are answered first; then 4 bytes at a time from the first aligned byte.
 */
export function isZeroRange(b: Uint8Array, start: number, end: number): boolean {
  if (end > b.length) end = b.length;
  if (end > start && (b[start] !== 0 || b[end - 1] !== 0)) return false;
  let i = start;
  while (i < end && ((b.byteOffset + i) & 3) !== 0) if (b[i++] !== 0) return false;
  const words = new Uint32Array(b.buffer, b.byteOffset + i, Math.max(0, end - i) >>> 2);
  for (let w = 0; w < words.length; w++) if (words[w] !== 0) return false;
  for (i += words.length * 4; i < end; i++) if (b[i] !== 0) return false;
  return true;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const o = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    o.set(p, off);
    off += p.length;
  }
  return o;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });
export function decodeName(b: Uint8Array): string {
  return utf8.decode(b);
}
