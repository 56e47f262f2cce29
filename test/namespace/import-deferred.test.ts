/**
 * importTree's commits return once their log is written (lib/jbd2/journal.ts deferNext): the next
 * transaction is filled — and its file data written early — while the flushes and the commit block
 * of the one before are in flight. On a device whose flushes take a few milliseconds (a
 * MemoryDevice flushes at once and would hide any ordering fault):
 *  - data writes of a later transaction really are issued while a commit is in flight;
 *  - at every sampled crash point (every write prefix, plus seeded sets of lost un-flushed writes),
 *    after ext4kit's replay the image holds a prefix of the tree with every file's bytes right (a
 *    file being written may be shorter); e2fsck -fn clean on a sample;
 *  - the import's result is durable when it returns (no tail in flight);
 *  - a transaction that frees blocks (an existing directory's xattr block given up) is not
 *    deferred: early writes of the next one could land on a block it still owns before it is durable.
 */
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { importTree } from '../../lib/ops/import-tree.js';
import type { TreeEntry } from '../../lib/ops/tree-entry.js';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { internals } from '../../lib/ext4/internals.js';
import { SlowFlushDevice } from '../helpers/slow-flush-device.js';
import { RecordingDevice, crashPoints, materialise } from '../../lib/io/recording-device.js';
import { Prng, xorshift32 } from '../../lib/io/prng.js';
import { setXattr } from '../../lib/ops/attrs.js';
import { mkdir } from '../../lib/ops/namespace.js';
import { debugfsDump, expectE2fsckClean, mkfs } from '../helpers/tools.js';
import { checkImportCrashPoint } from './import-crash-check.js';
import { tmpPath } from '../helpers/tmp.js';
import { prngBytes } from '../helpers/tree.js';
import { HAVE_E2FSPROGS } from '../ops/helpers.js';

const NOW = { sec: 1_700_000_000, nsec: 0 };

describe.skipIf(!HAVE_E2FSPROGS)('import with deferred commits on a device with slow flushes', () => {
  it('data written under a commit in flight; every sampled crash point holds a prefix with right bytes; e2fsck clean', async () => {
    const img = tmpPath('import-deferred.img');
    mkfs('ext4', img, 16 << 20, ['-b', '4096']);
    const base = new Uint8Array(fs.readFileSync(img));
    fs.rmSync(img, { force: true });
    const r = xorshift32(23);
    const entries: TreeEntry[] = [{ path: '', type: 'dir', mode: 0o755, uid: 0, gid: 0 }];
    const want = new Map<string, Uint8Array>();
    for (let d = 0; d < 3; d++) entries.push({ path: `d${d}`, type: 'dir', mode: 0o755, uid: 0, gid: 0 });
    for (let i = 0; i < 48; i++) {
      const p = i === 20 ? 'd2/large' : `d${i % 3}/f${i}`;
      const data = new Uint8Array(prngBytes(`deferred ${p}`, i === 20 ? 150 * 1024 : 1 + Math.floor(r() * 12 * 1024)));
      want.set(p, data);
      entries.push({ path: p, type: 'file', mode: 0o644, uid: 0, gid: 0, size: data.length, data });
    }
    const rec = new RecordingDevice(new SlowFlushDevice(base.slice(), 3), { granularity: 4096 });
    const f = await Filesystem.open(rec, { write: true });
    const journal = internals(f).journal!;
    const jmap = (await f.fileMap(await f.readInode(8))).extents;
    const inJournal = (pos: number): boolean => jmap.some((e) => pos >= e.physical * 4096 && pos < (e.physical + e.length) * 4096);
    // Writes outside the journal issued while a commit is in flight: the next transaction's early data.
    let underTail = 0;
    const write = rec.write.bind(rec);
    rec.write = (pos: number, data: Uint8Array) => {
      if (journal.committing && !inJournal(pos)) underTail++;
      return write(pos, data);
    };
    const deferred: boolean[] = [];
    let summary;
    try {
      summary = await importTree(f, entries, { batchBytes: 32 * 1024, now: NOW, released: () => void deferred.push(journal.committing) });
      expect(journal.committing, 'durable when importTree returns').toBe(false);
    } finally {
      await f.close();
    }
    expect(summary.transactions).toBeGreaterThan(8);
    // (the test means something only if the commits did return early and data went out under them)
    expect(deferred.filter((d) => d).length).toBeGreaterThan(summary.transactions / 2);
    expect(underTail).toBeGreaterThan(0);

    const order = entries.slice(1).map((e) => e.path);
    const points = crashPoints(rec.log, { random: new Prng(31), subsetsPerEpoch: 1 });
    expect(points.length).toBeGreaterThan(50);
    // every point would take minutes; a deterministic sample of a few hundred covers each epoch
    const step = Math.max(1, Math.floor(points.length / 300));
    const bad: string[] = [];
    let fscked = 0, checked = 0;
    const fsckEvery = step * 40;
    for (let i = 0; i < points.length; i += step) {
      const cp = points[i]!;
      const where = `crash after ${cp.writes} writes, lost [${[...(cp.lose ?? [])].join(',')}]`;
      const oracles = i % fsckEvery === 0 || i + step >= points.length;
      bad.push(...(await checkImportCrashPoint(materialise(base, rec.log, cp), order, want, where, oracles)));
      checked++;
      if (oracles) fscked++;
      if (bad.length) break;
    }
    expect(bad, bad.slice(0, 10).join('\n')).toEqual([]);
    expect(checked).toBeGreaterThan(50);
    expect(fscked).toBeGreaterThan(3);
  }, 240_000);

  it('a transaction that frees blocks is not deferred', async () => {
    const img = tmpPath('import-deferred-free.img');
    mkfs('ext4', img, 16 << 20, ['-b', '4096', '-I', '256']);
    const mem = new SlowFlushDevice(new Uint8Array(fs.readFileSync(img)), 2);
    fs.rmSync(img, { force: true });
    // /d holds a value too large for the inode body: it lives in an xattr block
    const setup = await Filesystem.open(mem, { write: true });
    let xblock = 0;
    try {
      await mkdir(setup, '/d', { mode: 0o755 });
      await setXattr(setup, '/d', 'user.big', new Uint8Array(2000).fill(7));
      xblock = (await setup.resolve('/d')).fileAcl;
    } finally {
      await setup.close();
    }
    expect(xblock).toBeGreaterThan(0);
    // the import gives /d a small value of the same name (into the inode body, the block freed)
    // and then enough files for several more transactions
    const entries: TreeEntry[] = [
      { path: '', type: 'dir', mode: 0o755, uid: 0, gid: 0 },
      { path: 'd', type: 'dir', mode: 0o755, uid: 0, gid: 0, xattrs: [{ name: 'user.big', value: new Uint8Array([1]) }] },
    ];
    for (let i = 0; i < 12; i++) entries.push({ path: `d/f${i}`, type: 'file', mode: 0o644, uid: 0, gid: 0, size: 9000, data: new Uint8Array(prngBytes(`free ${i}`, 9000)) });
    const f = await Filesystem.open(mem, { write: true });
    const journal = internals(f).journal!;
    const deferred: boolean[] = [];
    try {
      await importTree(f, entries, {
        batchBytes: 16 * 1024,
        now: NOW,
        released: () => void deferred.push(journal.committing),
      });
      expect(journal.committing).toBe(false);
      const d = await f.resolve('/d');
      // (the case this test is about: the import did give the block up)
      expect(d.fileAcl).toBe(0);
    } finally {
      await f.close();
    }
    // the first transaction freed the xattr block: its commit was durable when it returned;
    // later ones (nothing freed) were deferred
    expect(deferred.length).toBeGreaterThan(3);
    expect(deferred[0]).toBe(false);
    expect(deferred.slice(1).some((d) => d)).toBe(true);
    const out = tmpPath('import-deferred-free-out.img');
    fs.writeFileSync(out, mem.data);
    try {
      expectE2fsckClean(out, 'after an import that freed an xattr block');
      for (const e of entries) if (e.type === 'file') expect(debugfsDump(out, '/' + e.path).equals(Buffer.from(e.data as Uint8Array)), e.path).toBe(true);
    } finally {
      fs.rmSync(out, { force: true });
    }
  }, 60_000);
});
