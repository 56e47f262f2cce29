/**
 * The defragmenter's executor: moves share transactions by dependency (lib/ops/move-schedule.ts),
 * so a run costs a flush pair per transaction — far fewer transactions than moves — on the demo
 * fixture (fixtures/fragmented.ext4.img.gz: ~1,500 small files) and on a kernel-built 64 MiB
 * image at 90 % (test/helpers/frag-images.ts), whose plan is chains (evictions into holes the
 * previous eviction made: in list order about one transaction per move, 839 flushes for 544
 * moves). Every file still reads the bytes it was written with (the fixture's manifest and
 * debugfs; the frag image's plan through the kernel), e2fsck clean.
 */
import { describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { RecordingDevice } from '../../lib/io/recording-device.js';
import { defrag } from '../../lib/ops/defrag.js';
import { Filesystem as NodeFilesystem } from '../../lib/node.js';
import { debugfsFiles, expectClean, HAVE_E2FSPROGS, scratchPath } from '../ops/helpers.js';
import { fragImage, fragImageSkipReason, measureFragImage } from '../helpers/frag-images.js';
import { oracleGate } from '../helpers/tools.js';

const why = oracleGate(fragImageSkipReason());
if (why) console.log(`defrag executor on a kernel-built image skipped: ${why}`);

const here = path.dirname(new URL(import.meta.url).pathname);
const fixture = path.resolve(here, '../../fixtures/fragmented.ext4.img.gz');
const manifest = path.resolve(here, '../../fixtures/fragmented.manifest.json');

describe.skipIf(!HAVE_E2FSPROGS)('defrag executor on the demo fixture', () => {
  it('many moves per transaction, one flush pair each; every byte kept; e2fsck clean', async () => {
    const files = (JSON.parse(nodefs.readFileSync(manifest, 'utf8')) as { path: string; type: string; sha256?: string }[]).filter((e) => e.type === 'file');
    const mem = new MemoryDevice(new Uint8Array(zlib.gunzipSync(nodefs.readFileSync(fixture))));
    const rec = new RecordingDevice(mem);
    const fs = await Filesystem.open(rec, { write: true });
    let s;
    let flushes = 0;
    try {
      const before = rec.log.filter((r) => r.kind === 'flush').length;
      s = await defrag(fs);
      flushes = rec.log.filter((r) => r.kind === 'flush').length - before;
      expect(s.errors).toEqual([]);
      expect(s.moves).toBeGreaterThan(200);
      // one flush pair per transaction (and the write session's)
      expect(flushes).toBeLessThanOrEqual(2 * s.transactions + 4);
      // by dependency, not one per move: the plan's chains made ~1 transaction per 8 moves in list order
      expect(s.transactions, `${s.transactions} transactions for ${s.moves} moves`).toBeLessThanOrEqual(Math.ceil(s.moves / 32));
      for (const f of files) {
        const ino = await fs.resolve(`/${f.path}`);
        const got = createHash('sha256').update(await fs.read(ino, 0, ino.size)).digest('hex');
        expect(got, f.path).toBe(f.sha256);
      }
    } finally {
      await fs.close();
    }
    rec.log.length = 0;
    const img = scratchPath('executor-demo.img');
    nodefs.writeFileSync(img, mem.data);
    try {
      expectClean(img, 'defrag of the demo fixture');
      const sample = files.filter((_, k) => k % 97 === 0).map((f) => `/${f.path}`);
      const dumped = debugfsFiles(img, sample);
      for (const p of sample) expect(createHash('sha256').update(dumped.get(p)!.dump).digest('hex'), `debugfs ${p}`).toBe(files.find((f) => `/${f.path}` === p)!.sha256);
    } finally {
      nodefs.rmSync(img, { force: true });
    }
  }, 120_000);
});

describe.skipIf(why !== null)('defrag executor on a kernel-built 64 MiB image at 90 %', () => {
  it('chained plans run in waves: several moves per transaction; content as written, e2fsck clean', async () => {
    const img = fragImage({ sizeMiB: 64, fill: 0.9 })!;
    const fs = await NodeFilesystem.open(img.image, { write: true });
    let s;
    try {
      s = await defrag(fs);
    } finally {
      await fs.close();
    }
    expectClean(img.image, 'defrag of the 64 MiB 90 % image');
    expect(s.moves).toBeGreaterThan(100);
    // in list order about 1.3 moves per transaction; in waves about 3 (the planner already groups a
    // file's consecutive pieces into one move, so the ratio is bounded loosely)
    expect(s.transactions, `${s.transactions} transactions for ${s.moves} moves`).toBeLessThanOrEqual(Math.ceil(s.moves / 2));
    const after = measureFragImage(img.image, { hash: true });
    expect(Object.fromEntries(after.perFile.map((f) => [f.path, f.sha256]))).toEqual(img.expectedSha256);
  }, 300_000);
});
