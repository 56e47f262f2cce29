/**
 * Who owns a committed block image. A transaction's final images are handed over at its commit:
 * the journal logs those very arrays and keeps them (`pending`) until the checkpoint, and the block
 * cache takes them as they are (BlockCache.adopt) — no copy per logged block. That is only safe if
 * nothing writes into a handed-over image afterwards:
 * - the log writer escapes a block that starts with the jbd2 magic on a copy, never in place;
 * - a later transaction changes a block through tx.block(), which copies the committed image;
 * - a whole workload (mkdir, writeFile, rename, rm -r over several transactions, lazy
 *   checkpoints) never changes an image after its commit: every committed array is compared with
 *   a snapshot taken at its commit, at every later commit step and at the end.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { journalOnDevice } from '../../lib/jbd2/device.js';
import { Journal } from '../../lib/jbd2/journal.js';
import { JBD2_MAGIC, JINCOMPAT } from '../../lib/jbd2/format.js';
import { recoverJournal } from '../../lib/jbd2/recovery.js';
import { Filesystem } from '../../lib/node.js';
import { internals } from '../../lib/ext4/internals.js';
import { mkdir, removeTree, rename } from '../../lib/ops/namespace.js';
import { writeFile } from '../../lib/ops/write-file.js';
import { importTree } from '../../lib/ops/import-tree.js';
import { readHostTree } from '../../lib/cli/host-tree.js';
import { expectE2fsckClean, mkfs } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import { HAVE_E2FSPROGS, cleanupImages, pattern, scratchPath } from '../ops/helpers.js';
import { makeJsbBlock } from './memjournal.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_760_000_000, nsec: 5 };

describe('jbd2: the logged images are the caller\'s arrays, escaped on a copy', () => {
  it('a block starting with the jbd2 magic is logged escaped, its image untouched; recovery restores the magic', async () => {
    const BS = 1024, HOME = 64, maxlen = 256;
    const image = new Uint8Array((HOME + maxlen) * BS);
    image.set(makeJsbBlock({ bs: BS, maxlen, incompat: JINCOMPAT.CSUM_V3, sequence: 7, start: 0 }), HOME * BS);
    const dev = new MemoryDevice(image);
    const io = journalOnDevice(dev, { blockSize: BS, physical: (n) => HOME + n, blockCount: maxlen });
    const journal = await Journal.load(io, { writeBlock: (b, d) => dev.write(b * BS, d), writeBlocks: (b, d) => dev.write(b * BS, d) });
    const magic = pattern(BS, 3);
    new DataView(magic.buffer).setUint32(0, JBD2_MAGIC, false);
    const plain = pattern(BS, 4);
    const keep = [magic.slice(), plain.slice()];
    // blocks 10, 11, 12 in a row: one packed run in the log
    const third = pattern(BS, 5);
    await journal.commit({ blocks: new Map([[10, magic], [11, plain], [12, third]]), now: NOW });
    expect(magic).toEqual(keep[0]); // the escape did not zero the caller's first word
    expect(plain).toEqual(keep[1]);
    expect(journal.pending.get(10)).toBe(magic); // kept as handed over, no copy
    expect(journal.pending.get(11)).toBe(plain);
    // crash now: recovery gives the unescaped image
    const rec = await recoverJournal(journalOnDevice(new MemoryDevice(await dev.read(0, image.length)), { blockSize: BS, physical: (n) => HOME + n, blockCount: maxlen }));
    expect(rec.blocks.get(10)).toEqual(keep[0]);
    expect(rec.blocks.get(11)).toEqual(keep[1]);
    expect(rec.blocks.get(12)).toEqual(third);
    // the checkpoint writes the same bytes home and hands the same arrays on
    let handed: ReadonlyMap<number, Uint8Array> | null = null;
    journal.onCheckpointed = (m) => (handed = new Map(m));
    await journal.checkpoint();
    expect(handed!.get(10)).toBe(magic);
    expect(await dev.read(10 * BS, 3 * BS)).toEqual(new Uint8Array([...keep[0]!, ...keep[1]!, ...third]));
  });
});

describe.skipIf(!HAVE_E2FSPROGS)('ext4: a committed image is never written again', () => {
  function sourceTree(name: string): string {
    const src = tmpDir(`${name}-src`);
    nodefs.mkdirSync(path.join(src, 'd/e'), { recursive: true });
    for (let i = 0; i < 40; i++) nodefs.writeFileSync(path.join(src, 'd', `f${i}`), pattern(100 + i * 300, i));
    return src;
  }

  function freshImage(name: string): string {
    const img = scratchPath(`${name}.img`);
    mkfs('ext4', img, 16 * 1024 * 1024, ['-b', '1024'], sourceTree(name));
    return img;
  }

  it('a later transaction copies before it changes: an aborted change leaves the cache and the pending image as committed', async () => {
    const img = freshImage('own-abort');
    const fs = await Filesystem.open(img, { write: true, now: NOW });
    const { cache, journal } = internals(fs);
    await mkdir(fs, '/x');
    const sbBlock = 1; // 1 KiB blocks: the superblock is block 1, changed by every transaction
    const committed = journal!.pending.get(sbBlock)!;
    expect(committed).toBeDefined();
    expect(cache.has(sbBlock)).toBe(true);
    expect(await cache.getBlock(sbBlock)).toBe(committed); // adopted, not copied
    const snapshot = committed.slice();
    let mine: Uint8Array | null = null;
    await expect(
      fs.transact(async (tx) => {
        mine = await tx.block(sbBlock);
        mine.fill(0xee);
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect(mine).not.toBe(committed);
    expect(committed).toEqual(snapshot);
    expect(await cache.getBlock(sbBlock)).toEqual(snapshot);
    expect(await fs.readBlock(sbBlock)).toEqual(snapshot);
    // a committed later change replaces the image; the one handed over before stays as it was
    await mkdir(fs, '/y');
    expect(journal!.pending.get(sbBlock)).not.toBe(committed);
    expect(committed).toEqual(snapshot);
    await fs.close();
    expectE2fsckClean(img, 'after the aborted change');
  });

  it('mkdir, writeFile, import, rename, rm -r with lazy checkpoints: no committed image changes after its commit', async () => {
    const img = freshImage('own-workload');
    const fs = await Filesystem.open(img, { write: true, now: NOW, cacheBytes: 256 * 1024 });
    const { journal } = internals(fs);
    journal!.maxPendingBytes = 96 * 1024; // several checkpoints in the workload
    const handed: { block: number; image: Uint8Array; copy: Uint8Array }[] = [];
    let checks = 0;
    const verify = () => {
      checks++;
      for (const h of handed) if (!h.image.every((x, k) => x === h.copy[k])) throw new Error(`block ${h.block}: its committed image changed after the commit`);
    };
    let seen = new Set<Uint8Array>();
    internals(fs).commitHooks = {
      onStep: (step) => {
        verify();
        if (step !== 'commit') return;
        for (const [block, image] of journal!.pending) if (!seen.has(image)) handed.push({ block, image, copy: image.slice() });
        seen = new Set(journal!.pending.values());
      },
    };
    for (let i = 0; i < 6; i++) await mkdir(fs, `/n${i}`);
    for (let i = 0; i < 30; i++) await writeFile(fs, `/n${i % 6}/g${i}`, pattern(500 + 700 * i, 100 + i));
    const host = await readHostTree(sourceTree('own-import'));
    await importTree(fs, host.entries, { at: '/imp', batchBytes: 4096 }); // many small transactions
    await rename(fs, '/n1', '/n0/moved');
    await removeTree(fs, '/d');
    await removeTree(fs, '/n0');
    verify();
    expect(handed.length).toBeGreaterThan(50);
    expect(checks).toBeGreaterThan(100);
    await fs.close();
    verify();
    expectE2fsckClean(img, 'after the workload');
    const again = await Filesystem.open(img);
    const names: string[] = [];
    for await (const d of again.readdir('/')) if (d.name !== '.' && d.name !== '..') names.push(d.name);
    expect(names.sort()).toEqual(['imp', 'lost+found', 'n2', 'n3', 'n4', 'n5']);
    await again.close();
  });
});
