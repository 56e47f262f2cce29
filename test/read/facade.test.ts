/**
 * The Filesystem facade's own surface (issue 9 items 1 and 6): one block view stack that every
 * reader goes through, readdir as an async iterable of decoded names with types (checked against
 * what node:fs reads from the tree fed to mkfs), the superblock summary (against dumpe2fs),
 * `await using`, and internals kept off the public type.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, writeFileSync, symlinkSync, readdirSync, readFileSync, rmSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Filesystem } from '../../lib/node.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { BlockCache } from '../../lib/io/cache.js';
import { DiskView, ImageLayer } from '../../lib/ext4/block-view.js';
import { internals } from '../../lib/ext4/internals.js';
import { allocate } from '../../lib/ops/allocate.js';
import { dumpe2fsHeader, expectE2fsckClean, haveTools, mkfs } from '../helpers/tools.js';
import { build } from 'esbuild';
import * as vm from 'node:vm';

const tools = haveTools(['mkfs.ext4', 'dumpe2fs', 'e2fsck']);

describe('block view stack (pure)', () => {
  const bs = 1024;
  const block = (v: number) => new Uint8Array(bs).fill(v);
  function stack() {
    const dev = MemoryDevice.create(16 * bs);
    for (let b = 0; b < 16; b++) void dev.write(b * bs, block(b));
    const cache = new BlockCache(dev, bs);
    const pending = new Map<number, Uint8Array>([[3, block(103)], [4, block(104)]]);
    let overlay: Map<number, Uint8Array> | null = new Map([[4, block(204)], [5, block(205)]]);
    const view = new ImageLayer(new ImageLayer(new DiskView(dev, cache), () => pending), () => overlay);
    return { view, cache, pending, setOverlay: (o: typeof overlay) => (overlay = o) };
  }

  it('single blocks, runs and runs-into agree, upper layers win', async () => {
    const { view, setOverlay } = stack();
    const want = (b: number) => (b === 3 ? 103 : b === 4 ? 204 : b === 5 ? 205 : b);
    for (let b = 0; b < 16; b++) expect((await view.readBlock(b))[0], `block ${b}`).toBe(want(b));
    const run = await view.readBlocks(0, 16);
    const into = new Uint8Array(16 * bs);
    await view.readBlocksInto(0, into);
    for (let b = 0; b < 16; b++) {
      expect(run[b * bs], `run block ${b}`).toBe(want(b));
      expect(into[b * bs + bs - 1], `into block ${b}`).toBe(want(b));
    }
    // A run that starts inside the layers' set (the walk over the run, not over the set).
    expect([...(await view.readBlocks(4, 1))].every((x) => x === 204)).toBe(true);
    setOverlay(null); // the overlay goes away (replay written home): the journal layer shows again
    expect((await view.readBlock(4))[0]).toBe(104);
  });

  it('inMemory: a block held by any layer or the cache costs no device read', async () => {
    const { view } = stack();
    expect(view.inMemory(3)).toBe(true); // journal layer
    expect(view.inMemory(5)).toBe(true); // overlay
    expect(view.inMemory(9)).toBe(false);
    await view.readBlock(9);
    expect(view.inMemory(9)).toBe(true); // now cached
  });
});

describe('Symbol.asyncDispose', () => {
  it('is created where the runtime lacks it (a fresh realm has none), so the class has the method', async () => {
    const out = await build({ entryPoints: [path.resolve(import.meta.dirname, '../../lib/ext4/filesystem.ts')], bundle: true, write: false, platform: 'browser', format: 'iife', globalName: 'core', target: 'es2022', logLevel: 'silent' });
    const ctx = vm.createContext({ TextDecoder, TextEncoder });
    expect(vm.runInContext('typeof Symbol.asyncDispose', ctx)).toBe('undefined'); // V8 alone does not have it
    vm.runInContext(out.outputFiles[0]!.text, ctx);
    expect(vm.runInContext('typeof Symbol.asyncDispose', ctx)).toBe('symbol');
    expect(vm.runInContext('typeof core.Filesystem.prototype[Symbol.asyncDispose]', ctx)).toBe('function');
    expect(vm.runInContext("Symbol.asyncDispose === Symbol.for('Symbol.asyncDispose')", ctx)).toBe(true);
  });
});

describe.skipIf(!tools)('Filesystem facade on a mkfs -d image', () => {
  let work = '';
  let src = '';
  let img = '';
  let img2 = '';

  beforeAll(() => {
    work = mkdtempSync(path.join(os.tmpdir(), 'ext4kit-facade-'));
    src = path.join(work, 'src');
    mkdirSync(path.join(src, 'sub'), { recursive: true });
    writeFileSync(path.join(src, 'a.txt'), 'hello');
    writeFileSync(path.join(src, 'sub', 'b.bin'), new Uint8Array(5000).fill(7));
    writeFileSync(path.join(src, 'größe.txt'), 'x');
    writeFileSync(Buffer.concat([Buffer.from(path.join(src, 'bad-')), Buffer.from([0xff, 0xfe])]), 'y'); // not UTF-8
    symlinkSync('a.txt', path.join(src, 'link'));
    img = path.join(work, 'fs.img');
    mkfs('ext4', img, 8 << 20, ['-L', 'facade-lbl'], src);
    img2 = path.join(work, 'nofiletype.img');
    mkfs('ext2', img2, 8 << 20, ['-O', '^filetype'], src);
  });
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  async function listed(fs: Filesystem, dir: string | number) {
    const out: { name: string; nameBytes: number[]; ino: number; type: string }[] = [];
    for await (const e of fs.readdir(dir)) out.push({ name: e.name, nameBytes: [...e.nameBytes], ino: e.ino, type: e.type });
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  function fromTree(dir: string) {
    const ents = readdirSync(Buffer.from(dir), { withFileTypes: true, encoding: 'buffer' });
    const typeOf = (d: (typeof ents)[number]) => (d.isDirectory() ? 'dir' : d.isSymbolicLink() ? 'symlink' : d.isFile() ? 'file' : 'other');
    return [
      { name: '.', nameBytes: [0x2e], type: 'dir' },
      { name: '..', nameBytes: [0x2e, 0x2e], type: 'dir' },
      ...(dir === src ? [{ name: 'lost+found', nameBytes: [...Buffer.from('lost+found')], type: 'dir' }] : []),
      ...ents.map((d) => ({ name: new TextDecoder().decode(d.name), nameBytes: [...d.name], type: typeOf(d) })),
    ].sort((a, b) => a.name.localeCompare(b.name));
  }

  for (const which of ['ext4', 'ext2 without filetype'] as const) {
    it(`readdir is an async iterable of decoded names and types (${which}), by path, inode number or Inode`, async () => {
      const fs = await Filesystem.open(which === 'ext4' ? img : img2);
      try {
        const root = await listed(fs, '/');
        expect(root.map(({ name, nameBytes, type }) => ({ name, nameBytes, type }))).toEqual(fromTree(src));
        expect(root.find((e) => e.name === '.')!.ino).toBe(2);
        const sub = root.find((e) => e.name === 'sub')!;
        expect(await listed(fs, sub.ino)).toEqual(await listed(fs, '/sub'));
        const viaInode: string[] = [];
        for await (const e of fs.readdir(await fs.resolve('/sub'))) viaInode.push(e.name);
        expect(viaInode.sort()).toEqual(['.', '..', 'b.bin']);
        // The invalid UTF-8 name: U+FFFD in `name` (as node:fs decodes it), the stored bytes in `nameBytes`.
        const bad = root.find((e) => e.nameBytes.includes(0xff))!;
        expect(bad.name).toBe('bad-\ufffd\ufffd');
        expect(Buffer.from(await fs.read(await fs.readInode(bad.ino), 0, 10)).toString()).toBe('y');
      } finally {
        await fs.close();
      }
    });
  }

  it('superblock summary matches dumpe2fs', async () => {
    const fs = await Filesystem.open(img);
    try {
      const s = fs.superblock;
      const h = dumpe2fsHeader(img);
      expect(s.blockSizeBytes).toBe(Number(h['Block size']));
      expect(s.blocksCount).toBe(Number(h['Block count']));
      expect(s.freeBlocks).toBe(Number(h['Free blocks']));
      expect(s.inodesCount).toBe(Number(h['Inode count']));
      expect(s.freeInodes).toBe(Number(h['Free inodes']));
      expect(s.uuid).toBe(h['Filesystem UUID']);
      expect(s.label).toBe('facade-lbl');
      expect([...s.features].sort()).toEqual(h['Filesystem features']!.split(/\s+/).sort());
      expect(s.state).toBe('clean');
      expect(Object.isFrozen(s)).toBe(true);
    } finally {
      await fs.close();
    }
  });

  it('await using closes the filesystem at the end of the scope', async () => {
    let kept: Filesystem;
    {
      await using fs = await Filesystem.open(img);
      kept = fs;
      expect((await fs.readInode(2)).type).toBe('dir');
    }
    await expect(kept.transact(async () => undefined)).rejects.toMatchObject({ code: 'EROFS' });
    // Closed: the path-opened device is closed with it.
    await expect(kept.device.read(0, 512)).rejects.toThrow();
  });

  it('internals are not on the public object; internals(fs) reaches them', async () => {
    const fs = await Filesystem.open(img);
    try {
      for (const k of ['journal', 'cache', 'overlay', 'mmp', 'commitHooks']) expect(k in fs, k).toBe(false);
      expect(internals(fs).cache.blockSize).toBe(fs.blockSize);
      expect(internals(fs).journal).toBeNull(); // read-only open
      expect(() => internals({})).toThrow(/not an open Filesystem/);
    } finally {
      await fs.close();
    }
  });

  it('bulk reads see committed, not yet checkpointed metadata (the journal layer of the view)', async () => {
    const copy = path.join(work, 'lazy.img');
    writeFileSync(copy, readFileSync(img));
    const fs = await Filesystem.open(copy, { write: true, checkpoint: 'lazy' });
    try {
      await allocate(fs, '/a.txt', { offset: 1 << 20, len: 64 * 1024 });
      const pending = internals(fs).journal!.pending;
      expect(pending.size).toBeGreaterThan(0);
      for (const [b, img] of pending) {
        expect(await fs.readBlock(b)).toEqual(img);
        expect(await fs.readDataBlocks(b, 1)).toEqual(img); // the device still has the old bytes
        const into = new Uint8Array(fs.blockSize);
        await fs.readDataBlocksInto(b, 1, into);
        expect(into).toEqual(img);
      }
    } finally {
      await fs.close();
    }
    expectE2fsckClean(copy, 'after lazy allocate');
  });
});
