/**
 * Page-aligned byte arrays for the large reads and writes of a copy.
 *
 * The kernel copies a read into user memory with `rep movsb`, which runs at a fraction of its
 * speed when the destination does not start on a cache line. A plain `new Uint8Array(1 MiB)` is
 * malloc'd through mmap and starts 16 bytes past a page boundary (glibc's chunk header), so every
 * 1 MiB read paid that: a fresh 256 MiB copy through such a buffer spent 0.26 s of system time,
 * through an aligned one 0.12 s, dd's figure (bench/ops' raw copy, caches dropped). WebAssembly
 * memory is mapped by V8 itself, page-aligned; where WebAssembly is missing (or refused), plain
 * arrays do the same work more slowly.
 */

/** WebAssembly's page: the unit its memory grows by. */
const WASM_PAGE = 64 * 1024;

/**
 * `count` arrays of `bytes` each, carved from one page-aligned region (each starts on a 4 KiB
 * boundary when `bytes` is a multiple of 4096). Zeroed, as `new Uint8Array` is.
 */
export function alignedArrays(count: number, bytes: number): Uint8Array[] {
  const total = count * bytes;
  let buffer: ArrayBuffer | null = null;
  if (total > 0 && typeof WebAssembly === 'object') {
    const pages = Math.ceil(total / WASM_PAGE);
    try {
      buffer = new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer;
    } catch {
      buffer = null; // (no address space for another memory, or a policy against WebAssembly)
    }
  }
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) out.push(buffer ? new Uint8Array(buffer, i * bytes, bytes) : new Uint8Array(bytes));
  return out;
}
