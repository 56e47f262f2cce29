/**
 * The journal's writes come in runs (lib/jbd2/journal.ts): a transaction's log — descriptor and
 * logged blocks, consecutive journal blocks — goes out as one device write per physically
 * contiguous stretch, and a checkpoint writes the pending blocks home sorted, adjacent blocks in
 * one write, instead of one awaited write per block (a defrag of the demo fixture logs hundreds of
 * inode-table and bitmap blocks per transaction). Every byte of every file kept; e2fsck clean.
 */
import { describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { RecordingDevice } from '../../lib/io/recording-device.js';
import { internals } from '../../lib/ext4/internals.js';
import { defrag } from '../../lib/ops/defrag.js';
import { expectClean, HAVE_E2FSPROGS, scratchPath } from '../ops/helpers.js';

const here = path.dirname(new URL(import.meta.url).pathname);
const fixture = path.resolve(here, '../../fixtures/fragmented.ext4.img.gz');
const manifest = path.resolve(here, '../../fixtures/fragmented.manifest.json');

describe.skipIf(!HAVE_E2FSPROGS)('journal writes in runs', () => {
  it('a few device writes per commit and per checkpoint, not one per block; every byte kept; e2fsck clean', async () => {
    const files = (JSON.parse(nodefs.readFileSync(manifest, 'utf8')) as { path: string; type: string; sha256?: string }[]).filter((e) => e.type === 'file');
    const mem = new MemoryDevice(new Uint8Array(zlib.gunzipSync(nodefs.readFileSync(fixture))));
    const rec = new RecordingDevice(mem);
    const fs = await Filesystem.open(rec, { write: true });
    const bs = fs.blockSize;
    const journal = internals(fs).journal!;
    expect(journal).toBeTruthy();
    // the journal's device byte ranges (its inode's extents)
    const inJournal = (pos: number): boolean => journal.map.some((e) => pos >= e.physical * bs && pos < (e.physical + e.length) * bs);
    // where each commit and checkpoint step ends in the device log
    const marks: { step: string; at: number }[] = [];
    internals(fs).commitHooks = { onStep: (step) => void marks.push({ step, at: rec.log.length }) };
    let logged = 0;
    try {
      const s = await defrag(fs);
      expect(s.errors).toEqual([]);
      expect(s.transactions).toBeGreaterThan(0);
      logged = s.transactions;
      for (const f of files) {
        const ino = await fs.resolve(`/${f.path}`);
        expect(createHash('sha256').update(await fs.read(ino, 0, ino.size)).digest('hex'), f.path).toBe(f.sha256);
      }
    } finally {
      await fs.close();
    }
    const writesIn = (from: number, to: number) => rec.log.slice(from, to).filter((r) => r.kind === 'write') as { position: number; data: Uint8Array }[];
    // each commit: its log between the 'data' and 'log' steps — one write per contiguous stretch of
    // the journal (the jsb, when written, and the log run), though it logged many blocks
    let commits = 0, logBlocks = 0;
    for (let i = 0; i < marks.length; i++) {
      if (marks[i]!.step !== 'log') continue;
      const data = marks.slice(0, i).reverse().find((m) => m.step === 'data')!;
      const w = writesIn(data.at, marks[i]!.at).filter((r) => inJournal(r.position));
      commits++;
      logBlocks += w.reduce((a, r) => a + r.data.length / bs, 0);
      expect(w.length, `commit ${commits}: ${w.length} journal writes`).toBeLessThanOrEqual(2 + journal.map.length);
    }
    expect(commits).toBe(logged);
    // the runs were worth it: many blocks per commit on this image
    expect(logBlocks / commits).toBeGreaterThan(8);
    // each checkpoint: the home writes (between the step before it and 'checkpoint') touch no
    // neighbour of one another: adjacent blocks went out in one write
    const checkpoints = marks.filter((m) => m.step === 'checkpoint');
    expect(checkpoints.length).toBeGreaterThan(0);
    let homeBlocks = 0, homeWrites = 0;
    for (const c of checkpoints) {
      const k = marks.indexOf(c);
      const w = writesIn(k > 0 ? marks[k - 1]!.at : 0, c.at).sort((a, b) => a.position - b.position);
      for (let j = 1; j < w.length; j++) {
        const prevEnd = w[j - 1]!.position + w[j - 1]!.data.length;
        // (a run is cut at 256 blocks)
        if (w[j - 1]!.data.length < 256 * bs) expect(w[j]!.position, `checkpoint writes at ${w[j - 1]!.position} and ${w[j]!.position} are adjacent`).not.toBe(prevEnd);
      }
      homeWrites += w.length;
      homeBlocks += w.reduce((a, r) => a + r.data.length / bs, 0);
    }
    expect(homeWrites).toBeLessThan(homeBlocks);
    const img = scratchPath('log-writes-demo.img');
    nodefs.writeFileSync(img, mem.data);
    try {
      expectClean(img, "defrag of the demo fixture, journal writes in runs");
    } finally {
      nodefs.rmSync(img, { force: true });
    }
  }, 120_000);
});
