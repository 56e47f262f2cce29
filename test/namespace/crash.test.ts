/**
 * Crash points of namespace operations: creates that turn a one-block
 * directory into an htree (make_indexed_dir) and split its leaves, a rename
 * of a file and of a directory across parents, an exchange of a directory
 * and a file across parents, an unlink, an rmdir, a slow and a fast
 * symlink, a fifo — recorded on one open (1 KiB blocks,
 * metadata_csum, writes torn at 1 KiB).
 * Every operation is one transaction, so every crash point (each write
 * prefix, plus seeded sets of lost unflushed writes) must replay (ext4kit's
 * write open) to the namespace after some whole number of operations; a
 * deterministic sample is also checked by e2fsck -fn after ext4kit's replay
 * and after e2fsck's own journal replay.
 */
import { describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { memoryDeviceFromFile } from '../../lib/io/file-device.js';
import { RecordingDevice, crashPoints, materialise } from '../../lib/io/recording-device.js';
import { Prng } from '../../lib/io/prng.js';
import { createFile, mkdir, mknod, rename, rmdir, symlink, unlink } from '../../lib/ops/namespace.js';
import { e2fsckJournalOnly, expectE2fsckClean } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';
import { HAVE_E2FSPROGS, cleanupImages, makeImage } from '../ops/helpers.js';

const NOW = { sec: 1_750_000_000, nsec: 0 };

async function namespaceOf(f: Filesystem): Promise<string> {
  const out: string[] = [];
  for (const dir of ['/h', '/y']) {
    for await (const e of f.readdir(dir)) if (e.name !== '.' && e.name !== '..') out.push(`${dir}/${e.name}:${e.type}`);
  }
  return out.sort().join('\n');
}

const name = (i: number) => `entry-${String(i).padStart(3, '0')}-${'x'.repeat(40 + (i % 13))}`;

describe.skipIf(!HAVE_E2FSPROGS)('namespace crash points', () => {
  it('every crash point replays to the namespace after a whole number of operations', async () => {
    const img = makeImage('ns-crash', {}, { blockSize: 1024, sizeMiB: 4 });
    const mem = await memoryDeviceFromFile(img);
    cleanupImages();
    {
      const f = await Filesystem.open(mem, { write: true, now: NOW });
      await mkdir(f, '/h');
      await mkdir(f, '/y');
      for (let i = 0; i < 8; i++) await createFile(f, `/h/${name(i)}`);
      await f.close();
    }
    const base = mem.data.slice();
    const rec = new RecordingDevice(new MemoryDevice(base.slice()), { granularity: 1024 });
    const states: string[] = [];
    const f = await Filesystem.open(rec, { write: true, now: NOW });
    try {
      states.push(await namespaceOf(f));
      const ops: (() => Promise<unknown>)[] = [];
      for (let i = 8; i < 40; i++) ops.push(() => createFile(f, `/h/${name(i)}`));
      ops.push(() => rename(f, `/h/${name(3)}`, '/y/moved'));
      ops.push(() => mkdir(f, '/h/sub'));
      ops.push(() => rename(f, '/h/sub', '/y/sub'));
      ops.push(() => mkdir(f, '/h/xd'));
      ops.push(() => rename(f, '/h/xd', '/y/moved', { exchange: true })); // a directory and a file swap parents
      ops.push(() => unlink(f, `/h/${name(5)}`));
      ops.push(() => rmdir(f, '/y/sub'));
      ops.push(() => symlink(f, `${'t/'.repeat(100)}end`, '/y/slow-link'));
      ops.push(() => symlink(f, 'short', '/h/fast-link'));
      ops.push(() => mknod(f, '/y/fifo', 'fifo'));
      ops.push(() => unlink(f, '/y/slow-link'));
      for (const op of ops) {
        await op();
        states.push(await namespaceOf(f));
      }
      expect((await f.resolve('/h')).size).toBeGreaterThan(3 * 1024); // indexed, several leaves
    } finally {
      await f.close();
    }
    const all = crashPoints(rec.log, { random: new Prng(17), subsetsPerEpoch: 2 });
    const step = Math.max(1, Math.floor(all.length / 200));
    const points = all.filter((_, i) => i % step === 0 || i === all.length - 1);
    const seen = new Set<number>();
    let checked = 0;
    for (let k = 0; k < points.length; k++) {
      const p = points[k]!;
      const image = materialise(base, rec.log, p);
      const fsckSample = k % Math.max(1, Math.floor(points.length / 5)) === 0;
      if (fsckSample) {
        // e2fsck's own replay of the raw crash image
        const raw = tmpPath('ns-crash-raw.img');
        nodefs.writeFileSync(raw, image);
        e2fsckJournalOnly(raw);
        expectE2fsckClean(raw, `crash point ${p.writes} (e2fsck replay)`);
        nodefs.rmSync(raw, { force: true });
      }
      const dev = new MemoryDevice(image);
      const g = await Filesystem.open(dev, { write: true, now: NOW });
      let ns: string;
      try {
        ns = await namespaceOf(g);
      } finally {
        await g.close();
      }
      const at = states.indexOf(ns);
      expect(at, `crash point ${p.writes} (lost ${[...(p.lose ?? [])].join(',')}): namespace is no operation's result`).toBeGreaterThanOrEqual(0);
      seen.add(at);
      if (fsckSample) {
        const out = tmpPath('ns-crash.img');
        nodefs.writeFileSync(out, dev.data);
        expectE2fsckClean(out, `crash point ${p.writes} (ext4kit replay)`);
        nodefs.rmSync(out, { force: true });
      }
      checked++;
    }
    // The sample spans the workload: the first and the last state, and many between.
    expect(seen.has(0)).toBe(true);
    expect(seen.has(states.length - 1)).toBe(true);
    expect(seen.size).toBeGreaterThan(states.length / 2);
    expect(checked).toBe(points.length);
  });
});
