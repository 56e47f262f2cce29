/**
 * The prebuilt WebAssembly modules (the `*-wasm-bytes.ts` files the library compiles at run time)
 * are the bytes their opcodes assemble now: after a change to a module, `npx tsx
 * scripts/wasm-bytes.ts` writes them again. Each also compiles.
 */
import { describe, expect, it } from 'vitest';
import { wasmFromBase64 } from '../../lib/codec/wasm-asm.js';
import { PREBUILT_WASM } from '../helpers/wasm-prebuilt.js';

describe('prebuilt WebAssembly modules', () => {
  for (const m of PREBUILT_WASM) {
    it(`${m.file} holds what ${m.from} assembles`, () => {
      const bytes = m.assemble();
      expect(m.current, `${m.file} is stale: npx tsx scripts/wasm-bytes.ts`).toBe(Buffer.from(bytes).toString('base64'));
      // and the decoder the library uses gives back those bytes
      expect(Buffer.from(wasmFromBase64(m.current)).equals(Buffer.from(bytes))).toBe(true);
      expect(WebAssembly.validate(wasmFromBase64(m.current))).toBe(true);
    });
  }
});
