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

/** WebAssembly's page: the unit its memory grows by; less than that is not worth a memory. */
const WASM_PAGE = 64 * 1024;

/**
 * `count` arrays of `bytes` each, carved from one page-aligned region (each starts on a 4 KiB
 * boundary when `bytes` is a multiple of 4096). Zeroed, as `new Uint8Array` is. Each call maps a
 * memory of its own (V8 reserves address space for each until it is collected): take buffers
 * that live long (a filesystem's copy pool), or through `takeAligned`.
 */
export function alignedArrays(count: number, bytes: number): Uint8Array[] {
  const total = count * bytes;
  let buffer: ArrayBuffer | null = null;
  if (total >= WASM_PAGE && typeof WebAssembly === 'object') {
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

/**
 * A SharedArrayBuffer of `bytes` (a multiple of 64 KiB) that starts on a page boundary: a shared
 * WebAssembly memory, for the slabs a reader thread reads files into (`new SharedArrayBuffer`
 * comes from malloc, 16 bytes past a page). Each maps a memory of its own: for buffers that are
 * kept and reused. A plain one where shared WebAssembly memory is missing.
 */
export function alignedShared(bytes: number): SharedArrayBuffer {
  if (bytes >= WASM_PAGE && bytes % WASM_PAGE === 0 && typeof WebAssembly === 'object') {
    const pages = bytes / WASM_PAGE;
    try {
      return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true }).buffer as unknown as SharedArrayBuffer;
    } catch {
      // (no address space for another memory, or no shared memory here)
    }
  }
  return new SharedArrayBuffer(bytes);
}

/** Idle arrays by length, for takeAligned. */
const idle = new Map<number, Uint8Array[]>();
/** Idle arrays kept per length (4 MiB of 1 MiB chunks). */
const MAX_IDLE = 4;

/**
 * `count` aligned arrays of `bytes` from the idle ones, else new (contents not cleared): for a
 * copy that runs and ends (cat), so that copying many files maps no memory per file.
 */
export function takeAligned(count: number, bytes: number): Uint8Array[] {
  const out = idle.get(bytes)?.splice(0, count) ?? [];
  if (out.length < count) out.push(...alignedArrays(count - out.length, bytes));
  return out;
}

/** Hand arrays back for takeAligned once nothing uses them any more. */
export function giveAligned(arrays: readonly Uint8Array[]): void {
  for (const a of arrays) {
    let list = idle.get(a.length);
    if (!list) idle.set(a.length, (list = []));
    if (list.length < MAX_IDLE && !list.includes(a)) list.push(a);
  }
}
