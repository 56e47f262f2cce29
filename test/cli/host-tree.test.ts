/**
 * readHostTree's reader thread (lib/cli/host-reader.ts): files read ahead into slabs, a bounded
 * window, slabs reused only once importTree's `released` covers every piece in them (never the
 * held one), errors carrying the path in stream order (a file replaced after the walk included),
 * and no file descriptor or thread left behind when the consumer stops early or throws.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readHostTree } from '../../lib/cli/host-tree.js';
import { SLAB_BYTES } from '../../lib/cli/host-read-start.js';
import type { TreeEntry } from '../../lib/ops/tree-entry.js';
import { tmpDir } from '../helpers/tmp.js';
import { prngBytes } from '../helpers/tree.js';

const MiB = 1024 * 1024;

/** File descriptors of this process that point into `dir`. */
function fdsInto(dir: string): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const t = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (t.startsWith(dir + '/')) out.push(t);
    } catch {
      // closed while listing
    }
  }
  return out;
}

/** Child processes of this process (the xattr reader's python3 while it runs). */
function children(): string[] {
  const out: string[] = [];
  for (const t of fs.readdirSync('/proc/self/task')) out.push(...fs.readFileSync(`/proc/self/task/${t}/children`, 'utf8').split(' ').filter(Boolean));
  return out;
}

/** Threads of this process (the reader's worker is one while it runs). */
const threads = (): number => fs.readdirSync('/proc/self/task').length;

/** An eighth of a slab (512 KiB with 4 MiB slabs): c (more than WHOLE_FILE_BYTES, one piece) leaves room in the first slab; f, g and h take one each. */
const S = SLAB_BYTES / 8;
const sizes: Record<string, number> = { a: 100, b: 5000, c: 3 * S, d: 10, e: 7000, f: 6 * S, g: 6 * S, h: 6 * S, i: 100 };

let src = '';
beforeAll(() => {
  src = tmpDir('host-tree-src');
  for (const [n, size] of Object.entries(sizes)) fs.writeFileSync(path.join(src, n), prngBytes(n, size));
});
afterAll(() => {
  if (src) fs.rmSync(src, { recursive: true, force: true });
});

/**
 * A directory holding `big` (1.5 slabs, so the one-slab reader stops inside it) and small files
 * named after it, read with one slab: the tree's entry iterator, positioned on big.
 */
async function treeStoppedInBig(dir: string, small: readonly string[]): Promise<{ it: AsyncIterator<TreeEntry>; big: TreeEntry }> {
  fs.writeFileSync(path.join(dir, 'big'), prngBytes('big', 1.5 * SLAB_BYTES));
  for (const n of small) fs.writeFileSync(path.join(dir, n), prngBytes(n, 10));
  const t = await readHostTree(dir, { xattrs: false, readAheadSlabs: 1 });
  const it = t.entries[Symbol.asyncIterator]();
  expect(((await it.next()).value as TreeEntry).type).toBe('dir');
  const big = (await it.next()).value as TreeEntry;
  expect(big.path).toBe('big');
  return { it, big };
}

async function bytesOf(e: TreeEntry): Promise<Buffer> {
  if (e.data instanceof Uint8Array) return Buffer.from(e.data);
  const parts: Buffer[] = [];
  for await (const c of e.data as AsyncIterable<Uint8Array>) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/** One piece of each file (c..i are read whole or as one chunk): its view into the slab. */
async function piece(e: TreeEntry): Promise<Uint8Array> {
  if (e.data instanceof Uint8Array) return e.data;
  const it = (e.data as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  const c = (await it.next()).value as Uint8Array;
  expect((await it.next()).done).toBe(true);
  return c;
}

describe('host tree slabs (read-ahead of one slab)', () => {
  it('lay files block after block with zero tails, and reuse a slab only after a release covering it', async () => {
    const t = await readHostTree(src, { xattrs: false, reuse: true, readAheadSlabs: 1 });
    const it = t.entries[Symbol.asyncIterator]();
    const next = async () => (await it.next()).value as TreeEntry;
    expect((await next()).type).toBe('dir');
    const v: Record<string, Uint8Array> = {};
    for (const n of ['a', 'b', 'c', 'd', 'e']) {
      const e = await next();
      expect(e.path).toBe(n);
      v[n] = await piece(e);
      expect(Buffer.from(v[n]!).equals(prngBytes(n, sizes[n]!)), n).toBe(true);
    }
    // one slab, block after block; zeros up to the next 4 KiB
    expect(v.b!.buffer).toBe(v.a!.buffer);
    expect(v.b!.byteOffset - v.a!.byteOffset).toBe(4096);
    expect(new Uint8Array(v.a!.buffer, v.a!.byteOffset + 100, 4096 - 100).every((x) => x === 0)).toBe(true);
    expect(v.c!.buffer).toBe(v.a!.buffer); // 3/8 of a slab: still room in the first slab
    // Released with nothing held before f is handed out: the first slab is free again, and the
    // worker gets it back once f's slab is finished — g goes over a..e.
    t.recycle(null);
    v.f = await piece(await next());
    expect(v.f.buffer).not.toBe(v.a!.buffer);
    v.g = await piece(await next());
    expect(v.g.buffer).toBe(v.a!.buffer);
    expect(Buffer.from(v.g).equals(prngBytes('g', sizes.g!))).toBe(true);
    for (const n of ['h', 'i']) expect((await bytesOf(await next())).equals(prngBytes(n, sizes[n]!)), n).toBe(true);
    expect((await it.next()).done).toBe(true);
  });

  it('never reuse the held slab, nor one with pieces not yet handed out', async () => {
    const t = await readHostTree(src, { xattrs: false, reuse: true, readAheadSlabs: 1 });
    const it = t.entries[Symbol.asyncIterator]();
    const next = async () => (await it.next()).value as TreeEntry;
    await next();
    const a = await piece(await next());
    // Released while b..e (same slab) are not handed out yet: the slab stays out of the pool.
    t.recycle(null);
    for (const n of ['b', 'c', 'd']) expect(Buffer.from(await piece(await next())).equals(prngBytes(n, sizes[n]!)), n).toBe(true);
    const e = await piece(await next());
    expect(e.buffer).toBe(a.buffer);
    // e still held (a file being written across commits): its slab is kept however the rest goes.
    t.recycle(e);
    for (const n of ['f', 'g', 'h', 'i']) {
      const p = await piece(await next());
      expect(p.buffer, n).not.toBe(e.buffer);
      expect(Buffer.from(p).equals(prngBytes(n, sizes[n]!)), n).toBe(true);
    }
    expect(Buffer.from(e).equals(prngBytes('e', sizes.e!))).toBe(true);
    expect((await it.next()).done).toBe(true);
  });

  it('without reuse, never overwrite a piece handed out', async () => {
    const t = await readHostTree(src, { xattrs: false, readAheadSlabs: 1 });
    const kept: [string, Uint8Array][] = [];
    for await (const e of t.entries) if (e.type === 'file') kept.push([e.path, await piece(e)]);
    t.recycle(null); // a no-op without reuse
    expect(new Set(kept.map(([, b]) => b.buffer)).size).toBe(4); // a..e | f | g | h, i
    for (const [n, b] of kept) expect(Buffer.from(b).equals(prngBytes(n, sizes[n]!)), n).toBe(true);
  });
});

describe('host tree reader: stops and errors', () => {
  it('leaves no descriptor, thread nor xattr reader when the consumer breaks in the middle of a large file', async () => {
    const before = threads();
    const kids = children();
    const t = await readHostTree(src, { reuse: true, readAheadSlabs: 1 });
    expect(threads()).toBeGreaterThan(before);
    expect(children().length).toBeGreaterThan(kids.length);
    for await (const e of t.entries) {
      if (e.path === 'f') {
        // the worker holds g open while waiting for a slab (f's is the window)
        await (e.data as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]().next();
        break;
      }
    }
    expect(fdsInto(src)).toEqual([]);
    expect(threads()).toBe(before);
    expect(children()).toEqual(kids);
  });

  it('leaves nothing behind when the consumer throws, or closes without reading', async () => {
    const before = threads();
    const t = await readHostTree(src, { xattrs: false, readAheadSlabs: 1 });
    await expect((async () => {
      for await (const e of t.entries) if (e.path === 'c') throw new Error('consumer failed');
    })()).rejects.toThrow('consumer failed');
    expect(fdsInto(src)).toEqual([]);
    const u = await readHostTree(src, { xattrs: false, readAheadSlabs: 1 });
    await u.close();
    expect(fdsInto(src)).toEqual([]);
    expect(threads()).toBe(before);
  });

  it('a file that shrank or vanished after the walk fails at its entry, with its path', async () => {
    const dir = tmpDir('host-tree-errors');
    try {
      const { it, big } = await treeStoppedInBig(dir, ['gone', 'last']);
      expect(big.size).toBe(1.5 * SLAB_BYTES);
      // The worker read big's first slab-full into the one slab; it reads on once that is handed out.
      fs.truncateSync(path.join(dir, 'big'), SLAB_BYTES + MiB);
      fs.rmSync(path.join(dir, 'gone'));
      const chunks = (big.data as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
      expect(((await chunks.next()).value as Uint8Array).length).toBe(SLAB_BYTES);
      await expect(chunks.next()).rejects.toThrow(`${path.join(dir, 'big')}: shrank while being read`);
      const gone = await it.next().catch((e: NodeJS.ErrnoException) => e);
      expect(gone).toBeInstanceOf(Error);
      expect((gone as NodeJS.ErrnoException).code).toBe('ENOENT');
      expect((gone as NodeJS.ErrnoException).path).toBe(path.join(dir, 'gone'));
      expect(fdsInto(dir)).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a listed file replaced by a symlink or a FIFO before its read fails at its entry: not followed, not waited for', async () => {
    // The worker lists x from its directory entry and opens it only when it reads it (after big's first slab-full).
    for (const kind of ['symlink', 'fifo'] as const) {
      const dir = tmpDir(`host-tree-changed-${kind}`);
      try {
        const { it, big } = await treeStoppedInBig(dir, ['target', 'x']);
        fs.rmSync(path.join(dir, 'x'));
        if (kind === 'symlink') fs.symlinkSync('target', path.join(dir, 'x'));
        else expect(spawnSync('mkfifo', [path.join(dir, 'x')]).status).toBe(0);
        expect((await bytesOf(big)).equals(prngBytes('big', 1.5 * SLAB_BYTES))).toBe(true);
        expect(((await it.next()).value as TreeEntry).path).toBe('target');
        const x = await it.next().catch((e: NodeJS.ErrnoException) => e);
        expect(x, kind).toBeInstanceOf(Error);
        expect((x as NodeJS.ErrnoException).message).toBe(`${path.join(dir, 'x')}: changed while being read (no longer a regular file)`);
        expect((x as NodeJS.ErrnoException).code).toBe('EIO');
        expect(fdsInto(dir)).toEqual([]);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  it('a missing root fails before any entry, with its path', async () => {
    const missing = path.join(src, 'no-such-dir');
    await expect(readHostTree(missing, { xattrs: false })).rejects.toMatchObject({ code: 'ENOENT', path: missing });
  });
});
