/**
 * Write the prebuilt WebAssembly modules: each `*-wasm-bytes.ts` file holds, as base64, the bytes
 * its module's opcodes assemble (the module compiles those at run time: assembling them in every
 * fresh process cost 0.2–2.6 ms a module, interpreted). test/unit/wasm-prebuilt.test.ts checks
 * that every file is current; after a change to a module's opcodes:
 *
 *   npx tsx scripts/wasm-bytes.ts
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PREBUILT_WASM } from '../test/helpers/wasm-prebuilt.js';

for (const m of PREBUILT_WASM) {
  const file = fileURLToPath(new URL(`../${m.file}`, import.meta.url));
  const text = Buffer.from(m.assemble()).toString('base64');
  writeFileSync(file, [`/** ${m.what} (${m.from}, base64), written by scripts/wasm-bytes.ts. */`, `export const ${m.constant} =\n  '${text}';`, ''].join('\n'));
  console.log(`wrote ${m.file} (${text.length} characters)`);
}
