/**
 * Write lib/ext4/dir-list-wasm-bytes.ts: the bytes lib/ext4/dir-list-wasm-code.ts assembles, as
 * base64 (dir-list-wasm.ts compiles them; test/cli/ls-dir-wasm.test.ts checks they are current).
 *
 *   npx tsx scripts/dir-list-wasm-bytes.ts
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirListWasmBytes } from '../lib/ext4/dir-list-wasm-code.js';

const file = fileURLToPath(new URL('../lib/ext4/dir-list-wasm-bytes.ts', import.meta.url));
const text = Buffer.from(dirListWasmBytes()).toString('base64');
writeFileSync(
  file,
  [
    '/** dir-list-wasm.ts\'s module (dir-list-wasm-code.ts dirListWasmBytes, base64), written by scripts/dir-list-wasm-bytes.ts. */',
    `export const DIR_LIST_WASM =\n  '${text}';`,
    '',
  ].join('\n'),
);
console.log(`wrote ${file} (${text.length} characters)`);
