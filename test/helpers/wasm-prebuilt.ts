/**
 * The prebuilt WebAssembly modules: where each one's base64 bytes live and the function that
 * assembles them from its opcodes (scripts/wasm-bytes.ts writes the files from this list;
 * test/unit/wasm-prebuilt.test.ts checks them).
 */
import { crc32cWasmBytes } from '../../lib/codec/crc32c-wasm.js';
import { CRC32C_WASM } from '../../lib/codec/crc32c-wasm-bytes.js';
import { lsRowsWasmBytes } from '../../lib/cli/commands/ls-json-wasm.js';
import { LS_ROWS_WASM } from '../../lib/cli/commands/ls-json-wasm-bytes.js';
import { dirListWasmBytes } from '../../lib/ext4/dir-list-wasm-code.js';
import { DIR_LIST_WASM } from '../../lib/ext4/dir-list-wasm-bytes.js';
import { groupDescWasmBytes } from '../../lib/ext4/group-desc-wasm.js';
import { GROUP_DESC_WASM } from '../../lib/ext4/group-desc-wasm-bytes.js';
import { inodeSummaryWasmBytes } from '../../lib/ext4/inode-summary-wasm.js';
import { INODE_SUMMARY_WASM } from '../../lib/ext4/inode-summary-wasm-bytes.js';

export interface PrebuiltWasm {
  /** The generated file, from the repository's root. */
  file: string;
  /** Its exported constant. */
  constant: string;
  /** What the module is, and where its opcodes are (the file's comment). */
  what: string;
  from: string;
  /** The constant as the file holds it now. */
  current: string;
  assemble(): Uint8Array;
}

export const PREBUILT_WASM: readonly PrebuiltWasm[] = [
  { file: 'lib/codec/crc32c-wasm-bytes.ts', constant: 'CRC32C_WASM', what: "crc.ts's crc32c module", from: 'crc32c-wasm.ts crc32cWasmBytes', current: CRC32C_WASM, assemble: crc32cWasmBytes },
  { file: 'lib/ext4/dir-list-wasm-bytes.ts', constant: 'DIR_LIST_WASM', what: "dir-list-wasm.ts's module", from: 'dir-list-wasm-code.ts dirListWasmBytes', current: DIR_LIST_WASM, assemble: dirListWasmBytes },
  { file: 'lib/ext4/group-desc-wasm-bytes.ts', constant: 'GROUP_DESC_WASM', what: "group-desc-wasm.ts's module", from: 'group-desc-wasm.ts groupDescWasmBytes', current: GROUP_DESC_WASM, assemble: groupDescWasmBytes },
  { file: 'lib/ext4/inode-summary-wasm-bytes.ts', constant: 'INODE_SUMMARY_WASM', what: "inode-summary-wasm.ts's module (dir-list-wasm.ts's summary kernel too)", from: 'inode-summary-wasm.ts inodeSummaryWasmBytes', current: INODE_SUMMARY_WASM, assemble: inodeSummaryWasmBytes },
  { file: 'lib/cli/commands/ls-json-wasm-bytes.ts', constant: 'LS_ROWS_WASM', what: "ls-json-wasm.ts's rows module", from: 'ls-json-wasm.ts lsRowsWasmBytes', current: LS_ROWS_WASM, assemble: lsRowsWasmBytes },
];
