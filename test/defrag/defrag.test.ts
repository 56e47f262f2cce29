/**
 * The defragmenter against real oracles: e2fsck -fn clean after every run,
 * every file's bytes unchanged (read back by debugfs, and by Linux when loop
 * mounts work), extent counts (filefrag's rule) and free fragments improved,
 * dry runs change nothing, crash points during defrag leave a consistent fs
 * with all data, and a concurrent writer loses nothing.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Filesystem } from '../../lib/node.js';
import { defrag } from '../../lib/ops/defrag.js';
import { openFile } from '../../lib/ops/file.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { RecordingDevice, materialise, crashPoints } from '../../lib/io/recording-device.js';
import { Prng } from '../../lib/io/prng.js';
import { fragmentCount } from '../../lib/ext4/extent-map.js';
import { e2fsckClean, debugfsDump, mkfs, run, canLoopMount, skipReason, withLoopMount, sha256File } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Deterministic content for file i, block k. */
function blockOf(i: number, k: number, bs: number): Uint8Array {
  const b = new Uint8Array(bs);
  let x = (i * 2654435761 + k * 40503 + 1) >>> 0;
  for (let j = 0; j < bs; j += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[j] = x & 0xff; b[j + 1] = (x >>> 8) & 0xff; b[j + 2] = (x >>> 16) & 0xff; b[j + 3] = x >>> 24;
  }
  return b;
}

/**
 * An image fragmented by ext4kit itself: mkfs -d makes N empty files, then
 * interleaved one-block appends (each its own transaction) scatter their
 * blocks; a few files are then truncated to leave holes in the free space.
 */
async function makeFragmentedImage(opts: { files: number; blocks: number; sizeMiB: number; blockSize: number }): Promise<{ img: string; expected: Map<string, string> }> {
  const src = tmpDir('defrag-src');
  mkdirSync(join(src, 'dir'), { recursive: true });
  for (let i = 0; i < opts.files; i++) writeFileSync(join(src, i % 2 ? `dir/f${i}` : `f${i}`), '');
  const img = tmpPath('frag.img');
  mkfs('ext4', img, opts.sizeMiB * 1024 * 1024, ['-b', String(opts.blockSize)], src);
  const fs = await Filesystem.open(img, { write: true });
  const bs = fs.blockSize;
  const path = (i: number) => (i % 2 ? `/dir/f${i}` : `/f${i}`);
  const handles = await Promise.all(Array.from({ length: opts.files }, (_, i) => openFile(fs, path(i))));
  const content = Array.from({ length: opts.files }, () => [] as Uint8Array[]);
  for (let k = 0; k < opts.blocks; k++)
    for (let i = 0; i < opts.files; i++) {
      const blk = blockOf(i, k, bs);
      await handles[i]!.pwrite(blk, k * bs);
      content[i]!.push(blk);
    }
  // Delete (truncate) every third file to punch holes into the free space.
  const expected = new Map<string, string>();
  for (let i = 0; i < opts.files; i++) {
    if (i % 3 === 2) {
      await handles[i]!.truncate(0);
      expected.set(path(i), sha(new Uint8Array(0)));
    } else {
      const all = new Uint8Array(opts.blocks * bs);
      content[i]!.forEach((b, k) => all.set(b, k * bs));
      expected.set(path(i), sha(all));
    }
  }
  await fs.close();
  return { img, expected };
}

async function extentCounts(img: string, paths: Iterable<string>): Promise<number> {
  const fs = await Filesystem.open(img);
  let n = 0;
  for (const p of paths) n += fragmentCount((await fs.fileMap(await fs.resolve(p))).extents);
  await fs.close();
  return n;
}

function expectContentByDebugfs(img: string, expected: Map<string, string>): void {
  for (const [p, h] of expected) expect(sha(debugfsDump(img, p)), p).toBe(h);
}

describe('defrag (whole filesystem) on an image fragmented by ext4kit', () => {
  let base: { img: string; expected: Map<string, string> };
  beforeAll(async () => {
    base = await makeFragmentedImage({ files: 9, blocks: 24, sizeMiB: 8, blockSize: 1024 });
  });

  it('starts fragmented and clean', async () => {
    expect(e2fsckClean(base.img).ok).toBe(true);
    expect(await extentCounts(base.img, base.expected.keys())).toBeGreaterThan(base.expected.size * 5);
  });

  it('--dry-run changes nothing (image sha256 unchanged) and returns a plan', async () => {
    const img = tmpPath('dry.img');
    copyFileSync(base.img, img);
    const before = sha256File(img);
    const fs = await Filesystem.open(img);
    const s = await defrag(fs, { dryRun: true });
    await fs.close();
    expect(s.plan.length).toBeGreaterThan(0);
    expect(s.bytesMoved).toBe(0);
    expect(sha256File(img)).toBe(before);
  });

  it('makes every file contiguous, keeps every byte, consolidates free space; e2fsck clean', async () => {
    const img = tmpPath('defragged.img');
    copyFileSync(base.img, img);
    const fs = await Filesystem.open(img, { write: true });
    const s = await defrag(fs);
    await fs.close();
    const r = e2fsckClean(img);
    expect(r.ok, r.output).toBe(true);
    expectContentByDebugfs(img, base.expected);
    const nonEmpty = [...base.expected.keys()].filter((_, i) => i % 3 !== 2);
    expect(await extentCounts(img, nonEmpty)).toBe(nonEmpty.length);
    expect(s.extentsAfter).toBeLessThan(s.extentsBefore);
    expect(s.freeExtentsAfter).toBeLessThan(s.freeExtentsBefore);
    expect(s.largestFreeAfter).toBeGreaterThanOrEqual(s.largestFreeBefore);
    // A second run finds nothing to do (resumable: it plans from the current state).
    const fs2 = await Filesystem.open(img, { write: true });
    const again = await defrag(fs2, { compact: false });
    await fs2.close();
    expect(again.filesMoved).toBe(0);
  });

  it('per-file mode only touches the named files', async () => {
    const img = tmpPath('perfile.img');
    copyFileSync(base.img, img);
    const fs = await Filesystem.open(img, { write: true });
    const s = await defrag(fs, { paths: ['/f0'] });
    await fs.close();
    expect(s.files).toBe(1);
    expect(e2fsckClean(img).ok).toBe(true);
    expect(await extentCounts(img, ['/f0'])).toBe(1);
    expect(await extentCounts(img, ['/dir/f1'])).toBeGreaterThan(1);
    expectContentByDebugfs(img, base.expected);
  });

  it('--max-bytes stops early and a rerun continues', async () => {
    const img = tmpPath('budget.img');
    copyFileSync(base.img, img);
    let fs = await Filesystem.open(img, { write: true });
    const s1 = await defrag(fs, { maxBytes: 1 });
    await fs.close();
    expect(s1.stoppedBy).toBe('maxBytes');
    expect(s1.moves).toBe(1);
    expect(e2fsckClean(img).ok).toBe(true);
    fs = await Filesystem.open(img, { write: true });
    await defrag(fs);
    await fs.close();
    expect(e2fsckClean(img).ok).toBe(true);
    expectContentByDebugfs(img, base.expected);
  });

  it('a concurrent writer on the same Filesystem loses nothing', async () => {
    const img = tmpPath('concurrent.img');
    copyFileSync(base.img, img);
    const fs = await Filesystem.open(img, { write: true });
    const bs = fs.blockSize;
    const h = await openFile(fs, '/f0');
    const model = new Uint8Array(await h.pread(0, 24 * bs));
    const rng = new Prng(7);
    const writes: Promise<unknown>[] = [];
    const d = defrag(fs);
    for (let n = 0; n < 40; n++) {
      const off = rng.int(24 * bs - 100);
      const data = new Uint8Array(1 + rng.int(99)).fill(n + 1);
      model.set(data, off);
      writes.push(h.pwrite(data, off));
      if (n % 5 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all([d, ...writes]);
    expect(sha(await h.pread(0, 24 * bs))).toBe(sha(model));
    await fs.close();
    expect(e2fsckClean(img).ok).toBe(true);
    expect(sha(debugfsDump(img, '/f0'))).toBe(sha(model));
  });
});

describe('crash points during defrag', () => {
  it('every sampled crash point replays to a consistent filesystem with all data intact', async () => {
    const { img, expected } = await makeFragmentedImage({ files: 4, blocks: 10, sizeMiB: 4, blockSize: 1024 });
    const baseBytes = new Uint8Array(readFileSync(img));
    const mem = new MemoryDevice(baseBytes.slice(), { name: 'mem' });
    const rec = new RecordingDevice(mem);
    const fs = await Filesystem.open(rec, { write: true });
    await defrag(fs, { paths: ['/f0', '/dir/f1'] });
    await fs.close();
    const points = crashPoints(rec.log, { random: new Prng(11), subsetsPerEpoch: 2 });
    // Deterministic sample within the time budget: about 30 evenly spaced points plus the last ones
    // (batched moves write less, so a fixed stride would sample too few).
    const stride = Math.max(1, Math.floor(points.length / 30));
    const sample = points.filter((_, i) => i % stride === 0 || i >= points.length - 3);
    let checked = 0;
    for (const cp of sample) {
      const bytes = materialise(baseBytes, rec.log, cp);
      const p = tmpPath('crash.img');
      writeFileSync(p, bytes);
      // Our replay + orphan processing on open for writing.
      const f2 = await Filesystem.open(p, { write: true });
      await f2.close();
      const r = e2fsckClean(p);
      expect(r.ok, `crash point ${JSON.stringify({ writes: cp.writes, lose: [...(cp.lose ?? [])] })}:\n${r.output}`).toBe(true);
      const f3 = await Filesystem.open(p);
      for (const [path, h] of expected) {
        const ino = await f3.resolve(path);
        expect(sha(await f3.read(ino, 0, ino.size)), `${path} at crash point ${cp.writes}`).toBe(h);
      }
      await f3.close();
      checked++;
    }
    expect(checked).toBeGreaterThan(20);
  });
});

describe.skipIf(!canLoopMount())('defrag on an image fragmented by the Linux kernel', () => {
  it('Linux reads every file unchanged after defrag; filefrag agrees; e2fsck clean', async () => {
    const img = tmpPath('kfrag.img');
    run('truncate', ['-s', '32M', img]);
    mkfs('ext4', img, 32 * 1024 * 1024, ['-b', '4096']);
    const sums = new Map<string, string>();
    await withLoopMount(img, async (mnt) => {
      const script = `import os\nfds=[os.open('${mnt}/k%02d'%i, os.O_WRONLY|os.O_CREAT, 0o644) for i in range(8)]\nfor r in range(40):\n  for i,fd in enumerate(fds):\n    os.write(fd, bytes([(r*7+i)&0xff])*4096*(1+(r+i)%3)); os.fsync(fd)\nfor fd in fds: os.close(fd)\nfor i in (1,4): os.unlink('${mnt}/k%02d'%i)\nos.sync()\n`;
      run('python3', ['-c', script]);
    });
    await withLoopMount(img, async (mnt) => {
      for (const n of ['k00', 'k02', 'k03', 'k05', 'k06', 'k07']) sums.set(`/${n}`, sha(readFileSync(join(mnt, n))));
    }, { readOnly: true });
    const before = await extentCounts(img, sums.keys());
    const fs = await Filesystem.open(img, { write: true });
    await defrag(fs);
    await fs.close();
    expect(e2fsckClean(img).ok).toBe(true);
    await withLoopMount(img, async (mnt) => {
      for (const [p, h] of sums) {
        expect(sha(readFileSync(join(mnt, p))), p).toBe(h);
        const out = run('filefrag', [join(mnt, p)]).stdout;
        expect(out, p).toMatch(/: 1 extent found/);
      }
    }, { readOnly: true });
    expect(before).toBeGreaterThan(sums.size);
  }, 120_000);
});

if (!canLoopMount()) console.log(`defrag kernel test skipped: ${skipReason('loop')}`);
