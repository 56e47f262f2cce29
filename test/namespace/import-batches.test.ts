/**
 * importTree across many transactions (issue 11, Measure: the fast import path):
 *  - (a host directory's slabs, reused once importTree says the data is released: test/cli/host-tree.test.ts);
 *  - slabs handed back as their early writes complete (dataWritten), inside a transaction: reused
 *    before its commit, and every file's bytes still right (debugfs), e2fsck clean;
 *  - a batched import (small batches: many commits, data written early from the second one on,
 *    runs of small files written straight from the slabs, a large file carried across commits)
 *    reads back through the kernel exactly as the source; e2fsck clean;
 *  - crash points of such an import (every write prefix, sampled): ext4kit's replay always holds
 *    a prefix of the tree with every file's bytes right (a file being written may be shorter);
 *    e2fsck clean on a sample.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readHostTree } from '../../lib/cli/host-tree.js';
import { importTree } from '../../lib/ops/import-tree.js';
import type { TreeEntry } from '../../lib/ops/tree-entry.js';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { FileDevice } from '../../lib/io/file-device.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { RecordingDevice, materialise } from '../../lib/io/recording-device.js';
import { expectE2fsckClean, mkfs, oracleGate, skipReason, withLoopMount } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { prngBytes, snapshotTree } from '../helpers/tree.js';
import { HAVE_E2FSPROGS, debugfsFiles } from '../ops/helpers.js';
import { xorshift32 } from '../../lib/io/prng.js';
import { checkImportCrashPoint } from './import-crash-check.js';

const skipLoop = oracleGate(skipReason('loop'));

/** 300 small files in 6 directories, a 3 MiB file, a file with zero blocks inside, empty files, a hard link, a symlink. */
function buildSource(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  const r = xorshift32(5);
  for (let d = 0; d < 6; d++) fs.mkdirSync(path.join(dir, `d${d}`), { recursive: true });
  for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(dir, `d${i % 6}`, `f${i}`), prngBytes(`s${i}`, i % 17 === 0 ? 0 : Math.floor(r() * 20000)));
  fs.writeFileSync(path.join(dir, 'big'), prngBytes('big', 3 * 1024 * 1024 + 5));
  const holey = Buffer.alloc(80 * 1024 + 100);
  prngBytes('h1', 8192).copy(holey, 0);
  prngBytes('h2', 4096).copy(holey, 72 * 1024);
  prngBytes('h3', 100).copy(holey, 80 * 1024);
  fs.writeFileSync(path.join(dir, 'd0/holey'), holey);
  fs.linkSync(path.join(dir, 'd1/f1'), path.join(dir, 'd2/hard'));
  fs.symlinkSync('../d1/f1', path.join(dir, 'd3/sym'));
}

let src = '';
beforeAll(() => {
  src = tmpDir('import-batches-src');
  buildSource(src);
});
afterAll(() => {
  if (src) fs.rmSync(src, { recursive: true, force: true });
});

describe.skipIf(!!skipLoop)('batched import of a host tree', () => {
  it('many small batches (early data, slab runs, a file across commits): the kernel reads the source; e2fsck clean', async () => {
    const img = tmpPath('import-batches.img');
    mkfs('ext4', img, 64 << 20, ['-b', '4096']);
    const t = await readHostTree(src, { xattrs: false, reuse: true });
    const f = await Filesystem.open(await FileDevice.open(img, { write: true }), { write: true, closeDevice: true });
    let summary;
    try {
      summary = await importTree(f, t.entries, { batchBytes: 256 * 1024, released: t.recycle, now: { sec: 1_700_000_000, nsec: 0 } });
    } finally {
      await f.close();
    }
    // ~9 MiB of data at 256 KiB per transaction
    expect(summary.transactions).toBeGreaterThan(20);
    expect(summary.files).toBe(302);
    expectE2fsckClean(img, 'after a batched import');
    const want = snapshotTree(src);
    await withLoopMount(img, (mp) => {
      const got = snapshotTree(mp).filter((e) => e.path !== 'lost+found');
      expect(got.map((e) => e.path)).toEqual(want.map((e) => e.path));
      for (let i = 0; i < want.length; i++) {
        const { sha256, size, type, target, mode, mtime, mtimeNs } = want[i]!;
        expect({ sha256, size, type, target, mode, mtime, mtimeNs }, want[i]!.path).toEqual({ sha256: got[i]!.sha256, size: got[i]!.size, type: got[i]!.type, target: got[i]!.target, mode: got[i]!.mode, mtime: got[i]!.mtime, mtimeNs: got[i]!.mtimeNs });
      }
      // holes stay holes
      expect(fs.statSync(path.join(mp, 'd0/holey')).blocks * 512).toBeLessThan(80 * 1024);
    }, { readOnly: true });
    fs.rmSync(img, { force: true });
  }, 120_000);
});

describe.skipIf(!HAVE_E2FSPROGS)('slabs handed back within a transaction (dataWritten)', () => {
  it('a slab is reused before its transaction commits, after its early writes; every file reads back right (debugfs); e2fsck clean', async () => {
    const MiB = 1024 * 1024;
    // 96 files of ~1 MiB (each read whole into a slab), 32 MiB per transaction: from the second
    // transaction on its data is written early, many more than EARLY_IN_FLIGHT writes per transaction.
    const dir = tmpDir('import-slab-return');
    const want = new Map<string, Buffer>();
    for (let i = 0; i < 96; i++) {
      const data = prngBytes(`r${i}`, MiB - 4096 + i);
      want.set(`f${String(i).padStart(2, '0')}`, data);
      fs.writeFileSync(path.join(dir, `f${String(i).padStart(2, '0')}`), data);
    }
    const img = tmpPath('import-slab-return.img');
    mkfs('ext4', img, 160 << 20, ['-b', '4096']);
    const t = await readHostTree(dir, { xattrs: false, reuse: true, readAheadSlabs: 2 });
    // Per transaction (between two `released` calls): the slabs its files' bytes came in.
    // (a slab holds several files: only a slab met again after another one counts)
    let seen = new Set<ArrayBufferLike>();
    let last: ArrayBufferLike | null = null;
    let reusedInTx = 0, returns = 0;
    async function* watch(): AsyncGenerator<TreeEntry> {
      for await (const e of t.entries) {
        if (e.data instanceof Uint8Array && e.data.buffer !== last) {
          if (seen.has(e.data.buffer)) reusedInTx++;
          seen.add((last = e.data.buffer));
        }
        yield e;
      }
    }
    const f = await Filesystem.open(await FileDevice.open(img, { write: true }), { write: true, closeDevice: true });
    let summary;
    try {
      summary = await importTree(f, watch(), {
        batchBytes: 32 * MiB, now: { sec: 1_700_000_000, nsec: 0 },
        released: (held) => { t.recycle(held); seen = new Set(); last = null; },
        dataWritten: (held) => { returns++; t.recycle(held); },
      });
    } finally {
      await f.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(summary.transactions).toBeGreaterThanOrEqual(3);
    expect(returns).toBeGreaterThan(0);
    // A transaction's files came in a slab it had used already: handed back before the commit.
    expect(reusedInTx).toBeGreaterThan(0);
    expectE2fsckClean(img, 'after slabs were reused within transactions');
    const got = debugfsFiles(img, [...want.keys()].map((n) => `/${n}`));
    for (const [name, data] of want) expect(got.get(`/${name}`)!.dump.equals(data), name).toBe(true);
    fs.rmSync(img, { force: true });
  }, 120_000);
});

describe.skipIf(!HAVE_E2FSPROGS)('crash points of a batched import', () => {
  it('every sampled point holds a prefix of the tree with right bytes; e2fsck clean on a sample', async () => {
    const img = tmpPath('import-crash.img');
    mkfs('ext4', img, 16 << 20, ['-b', '4096']);
    const base = new Uint8Array(fs.readFileSync(img));
    // In memory: files of 0..12 KiB and one of 200 KiB, in 3 directories, 32 KiB per transaction.
    const r = xorshift32(9);
    const entries: TreeEntry[] = [{ path: '', type: 'dir', mode: 0o755, uid: 0, gid: 0 }];
    const want = new Map<string, Uint8Array>();
    for (let d = 0; d < 3; d++) entries.push({ path: `d${d}`, type: 'dir', mode: 0o755, uid: 0, gid: 0 });
    for (let i = 0; i < 60; i++) {
      const p = i === 30 ? 'd1/large' : `d${i % 3}/f${i}`;
      const data = new Uint8Array(prngBytes(p, i === 30 ? 200 * 1024 : Math.floor(r() * 12 * 1024)));
      want.set(p, data);
      entries.push({ path: p, type: 'file', mode: 0o644, uid: 0, gid: 0, size: data.length, data });
    }
    const rec = new RecordingDevice(new MemoryDevice(base.slice()));
    const f = await Filesystem.open(rec, { write: true });
    let summary;
    try {
      summary = await importTree(f, entries, { batchBytes: 32 * 1024, now: { sec: 1_700_000_000, nsec: 0 } });
    } finally {
      await f.close();
    }
    expect(summary.transactions).toBeGreaterThan(10);
    const log = rec.log;
    const total = log.filter((x) => x.kind === 'write').length;
    const order = entries.slice(1).map((e) => e.path);
    const bad: string[] = [];
    let fscked = 0;
    const points = 24;
    for (let k = 0; k <= points; k++) {
      const writes = Math.round((k * total) / points);
      const bytes = materialise(base, log, { writes, lose: new Set() });
      const oracles = k % 6 === 3 || k === points;
      bad.push(...(await checkImportCrashPoint(bytes, order, want, `${writes} writes`, oracles)));
      if (oracles) fscked++;
    }
    expect(fscked).toBeGreaterThan(3);
    expect(bad, bad.slice(0, 10).join('\n')).toEqual([]);
    fs.rmSync(img, { force: true });
  }, 120_000);

  it('an entry failing in a later batch (early writes under way) leaves the committed batches, e2fsck clean', async () => {
    const img = tmpPath('import-fail.img');
    mkfs('ext4', img, 16 << 20, ['-b', '4096']);
    const mem = new MemoryDevice(new Uint8Array(fs.readFileSync(img)));
    const entries: TreeEntry[] = [{ path: '', type: 'dir', mode: 0o755, uid: 0, gid: 0 }];
    for (let i = 0; i < 40; i++) {
      const data = new Uint8Array(prngBytes(`x${i}`, 9000 + i));
      entries.push({ path: `f${i}`, type: 'file', mode: 0o644, uid: 0, gid: 0, size: data.length, data });
    }
    entries.push({ path: 'bad', type: 'hardlink', mode: 0o644, uid: 0, gid: 0, target: 'missing' });
    const f = await Filesystem.open(mem, { write: true });
    let code = '';
    try {
      await importTree(f, entries, { batchBytes: 32 * 1024, now: { sec: 1_700_000_000, nsec: 0 } }).catch((e: { code?: string }) => { code = e.code ?? String(e); });
    } finally {
      await f.close();
    }
    expect(code).toBe('ENOENT');
    fs.writeFileSync(img, mem.data);
    expectE2fsckClean(img, 'after a failed batch');
    const g = await Filesystem.open(mem);
    try {
      let present = 0;
      for (let i = 0; i < 40; i++) {
        const ino = await g.resolve(`/f${i}`).catch(() => null);
        if (!ino) break;
        present++;
        expect(Buffer.from(await g.read(ino, 0, ino.size)).equals(prngBytes(`x${i}`, 9000 + i)), `f${i}`).toBe(true);
      }
      expect(present).toBeGreaterThan(30);
    } finally {
      await g.close();
    }
    fs.rmSync(img, { force: true });
  }, 60_000);
});
