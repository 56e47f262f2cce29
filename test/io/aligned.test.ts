/**
 * lib/io/aligned.ts: the copy buffers start on page boundaries. The kernel is the oracle: a read
 * with O_DIRECT into memory that is not aligned to the device's logical block fails with EINVAL,
 * so every buffer is read into that way (and a view 16 bytes in, where malloc puts a plain
 * array's data, is refused, which shows the check is real here).
 */
import { describe, it, expect, afterAll } from 'vitest';
import { closeSync, constants, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { alignedArrays, alignedShared, giveAligned, takeAligned } from '../../lib/io/aligned.js';
import { pattern, tempDir } from './helpers.js';

const dir = tempDir();
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('alignedArrays', () => {
  it('gives zeroed, disjoint arrays of the size asked, from one region', () => {
    const a = alignedArrays(4, 1 << 20);
    expect(a.map((x) => x.length)).toEqual([1 << 20, 1 << 20, 1 << 20, 1 << 20]);
    expect(new Set(a.map((x) => x.buffer)).size).toBe(1);
    expect(a.every((x) => x.every((b) => b === 0))).toBe(true);
    a.forEach((x, i) => x.fill(i + 1));
    a.forEach((x, i) => expect(x[0] === i + 1 && x[x.length - 1] === i + 1).toBe(true));
    expect(alignedArrays(0, 4096)).toEqual([]);
  });

  it('every array takes an O_DIRECT read (aligned), a view 16 bytes in does not', () => {
    const path = join(dir, 'direct.bin');
    const content = pattern(8 * 4096);
    writeFileSync(path, content);
    const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECT);
    try {
      const bufs = alignedArrays(3, 8 * 4096);
      for (const b of bufs) {
        expect(readSync(fd, b, 0, b.length, 0)).toBe(b.length);
        expect(Buffer.compare(b, content)).toBe(0);
      }
      expect(() => readSync(fd, bufs[0]!.subarray(16), 0, 4096, 0)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      // the reader thread's slabs: shared, aligned alike
      const sab = alignedShared(4 << 20);
      expect(sab).toBeInstanceOf(SharedArrayBuffer);
      expect(sab.byteLength).toBe(4 << 20);
      const view = new Uint8Array(sab, 8192, content.length);
      expect(readSync(fd, view, 0, view.length, 0)).toBe(view.length);
      expect(Buffer.compare(view, content)).toBe(0);
      // (a size WebAssembly's 64 KiB pages cannot make exactly: a plain one)
      expect(alignedShared(5000).byteLength).toBe(5000);
    } finally {
      closeSync(fd);
    }
  });

  it('takeAligned hands back what giveAligned kept (at most four per length), else new arrays', () => {
    const bytes = 3 * 65536; // (a length no other test here pools)
    const a = takeAligned(2, bytes);
    giveAligned(a);
    const b = takeAligned(3, bytes);
    expect(b.slice(0, 2)).toEqual(a);
    expect(b[0]).toBe(a[0]);
    expect(b[1]).toBe(a[1]);
    expect(b[2]).not.toBe(a[0]);
    expect(b[2]).not.toBe(a[1]);
    const many = takeAligned(6, bytes);
    giveAligned([...b, ...many]);
    const again = takeAligned(6, bytes);
    expect(again.filter((x) => b.includes(x) || many.includes(x)).length).toBe(4);
  });

  it('works without WebAssembly (plain arrays)', () => {
    const saved = globalThis.WebAssembly;
    try {
      // (as under a content policy that forbids it)
      (globalThis as { WebAssembly?: unknown }).WebAssembly = undefined;
      const a = alignedArrays(2, 4096);
      expect(a.map((x) => x.length)).toEqual([4096, 4096]);
      expect(a[0]!.buffer).not.toBe(a[1]!.buffer);
    } finally {
      globalThis.WebAssembly = saved;
    }
  });
});
