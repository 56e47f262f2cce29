/**
 * Orphan processing (lib/ext4/orphan.ts) on write open, against three
 * oracles on copies of the same image: e2fsck -fy (release_orphan_inodes),
 * a kernel mount (ext4_orphan_cleanup) and e2fsck -fn on our result.
 * Orphans come from the kernel (a file unlinked while held open, the image
 * copied while mounted: after `sync` — needs recovery — and while frozen),
 * from debugfs (truncations in progress, deletions, chained through i_dtime),
 * and from createTempFile followed by a simulated crash.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { copyFileSync, mkdirSync, writeFileSync, openSync, closeSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Filesystem } from '../../lib/node.js';
import { FileDevice } from '../../lib/io/file-device.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { isExt4Error } from '../../lib/errors.js';
import { RO_COMPAT } from '../../lib/ext4/superblock.js';
import { addOrphan, listOrphans, processOrphans, removeOrphan, inodesPerOrphanBlock } from '../../lib/ext4/orphan.js';
import { createTempFile, releaseTempFile } from '../../lib/ext4/temp-file.js';
import { allocate, ALLOC_FIXED_LEN, ALLOC_FIXED_START } from '../../lib/ops/allocate.js';
import {
  debugfsR, debugfsW, e2fsckClean, e2fsckFix, features, freeCounts, header, inodeOf, loopSkipReason, mkfs, must, readAt, removeDir, run, tempDir, withLoopMount, writeAt,
} from './helpers.js';
import { internals } from '../../lib/ext4/internals.js';

const loopWhy = loopSkipReason();
if (loopWhy) console.log(`test/safety/orphan.test.ts: skipping kernel-made orphan tests: ${loopWhy}`);

let dir = '';
beforeAll(() => {
  dir = tempDir('orphan');
});
afterAll(() => removeDir(dir));

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return isExt4Error(e) ? e.code : `not an Ext4Error: ${String(e)}`;
  }
  return 'resolved';
}

/** Open for writing and close (orphan processing happens in between); returns the warnings. */
async function openClose(img: string): Promise<string[]> {
  const fs = await Filesystem.open(img, { write: true });
  const w = [...fs.warnings];
  await fs.close();
  return w;
}

function expectClean(img: string, what: string): void {
  const r = e2fsckClean(img);
  expect(r.problems, `${what}:\n${r.out}`).toEqual([]);
  expect(r.ok, what).toBe(true);
}

/**
 * Three copies of `img`: ext4kit write open+close, e2fsck -fy, and (when
 * loop mounts work) a kernel mount+umount. All must agree on the free
 * counts, ours must be e2fsck -fn clean. Returns ours and the counts.
 */
async function againstOracles(img: string, tag: string): Promise<{ ours: string; warnings: string[]; counts: { blocks: number; inodes: number } }> {
  const ours = join(dir, `${tag}.ours.img`), fsck = join(dir, `${tag}.fsck.img`), kern = join(dir, `${tag}.kernel.img`);
  copyFileSync(img, ours);
  copyFileSync(img, fsck);
  const warnings = await openClose(ours);
  expectClean(ours, `${tag}: ext4kit`);
  e2fsckFix(fsck);
  expectClean(fsck, `${tag}: after e2fsck -fy`);
  const counts = freeCounts(ours);
  expect(counts, `${tag}: free counts vs e2fsck -fy`).toEqual(freeCounts(fsck));
  if (!loopWhy) {
    copyFileSync(img, kern);
    await withLoopMount(kern, () => undefined);
    expectClean(kern, `${tag}: after a kernel mount`);
    expect(counts, `${tag}: free counts vs the kernel`).toEqual(freeCounts(kern));
  }
  return { ours, warnings, counts };
}

describe('orphans made by the kernel (loop mount, unlink while open, copy while mounted)', () => {
  const images: Record<string, string> = {};
  beforeAll(async () => {
    if (loopWhy) return;
    for (const variant of ['list', 'orphan_file'] as const) {
      const img = join(dir, `k-${variant}.img`);
      mkfs(img, 64, variant === 'orphan_file' ? ['-O', 'orphan_file'] : ['-O', '^orphan_file']);
      await withLoopMount(img, async (mnt) => {
        writeFileSync(join(mnt, 'big'), randomBytes(3_000_000));
        writeFileSync(join(mnt, 'small'), randomBytes(5000));
        mkdirSync(join(mnt, 'd'));
        writeFileSync(join(mnt, 'd', 'keep'), 'kept\n');
        must('sync', []);
        const fds = [openSync(join(mnt, 'big'), 'r'), openSync(join(mnt, 'small'), 'r')];
        try {
          must('rm', [join(mnt, 'big'), join(mnt, 'small')]);
          must('sync', []);
          // a crash image: the unlinks are only in the journal → needs recovery
          copyFileSync(img, `${img}.crash`);
          // a frozen image: journal checkpointed, orphans still listed
          must('fsfreeze', ['-f', mnt]);
          try {
            copyFileSync(img, `${img}.frozen`);
          } finally {
            must('fsfreeze', ['-u', mnt]);
          }
        } finally {
          for (const fd of fds) closeSync(fd);
        }
      });
      images[`${variant}.crash`] = `${img}.crash`;
      images[`${variant}.frozen`] = `${img}.frozen`;
    }
  });

  for (const name of ['list.crash', 'list.frozen', 'orphan_file.crash', 'orphan_file.frozen']) {
    it.skipIf(!!loopWhy)(`${name}: write open releases both orphans; same result as e2fsck -fy and a kernel mount`, async () => {
      const img = images[name]!;
      const h = header(img);
      if (name.endsWith('crash')) expect(features(img)).toContain('needs_recovery');
      else expect(features(img)).not.toContain('needs_recovery');
      if (name === 'list.frozen') expect(Number(h['First orphan inode'])).toBeGreaterThan(0);
      if (name.startsWith('orphan_file')) expect(features(img)).toContain('orphan_present');
      const { ours, warnings } = await againstOracles(img, name);
      expect(warnings).toContain('orphan cleanup: 2 orphan inodes deleted, 0 truncates cleaned up');
      expect(features(ours)).not.toContain('orphan_present');
      expect(header(ours)['First orphan inode']).toBeUndefined();
      const fs = await Filesystem.open(ours);
      try {
        const keep = await fs.resolve('/d/keep');
        expect(new TextDecoder().decode(await fs.read(keep, 0, 100))).toBe('kept\n');
        expect(await codeOf(fs.resolve('/big'))).toBe('ENOENT');
        expect(await listOrphans(fs)).toEqual({ list: [], file: [] });
      } finally {
        await fs.close();
      }
      // a second write open has nothing to do and writes nothing but the close
      expect(await openClose(ours)).toEqual([]);
    });
  }
});

describe('orphans being truncated or deleted (made with debugfs), chained through i_dtime', () => {
  it('extent files: truncate to i_size (tail zeroed), delete unlinked ones; agrees with e2fsck -fy and the kernel', async () => {
    const src = join(dir, 'src-ext4');
    mkdirSync(src, { recursive: true });
    const t1 = randomBytes(300_000), t2 = randomBytes(50_000), t3 = randomBytes(20_000);
    writeFileSync(join(src, 't1'), t1);
    writeFileSync(join(src, 't2'), t2);
    writeFileSync(join(src, 't3'), t3);
    const img = join(dir, 'trunc-ext4.img');
    mkfs(img, 32, ['-b', '4096', '-d', src]);
    const base = freeCounts(img);
    const [i1, i2, i3] = ['/t1', '/t2', '/t3'].map((p) => inodeOf(img, p)) as [number, number, number];
    debugfsW(img, [
      `sif <${i1}> size 100000`, // a truncate that did not finish: blocks past 100000 still owned
      `unlink /t2`,
      `sif <${i2}> links_count 0`, // unlinked while open
      `sif <${i3}> size 0`,
      `sif <${i1}> dtime ${i2}`,
      `sif <${i2}> dtime ${i3}`,
      `sif <${i3}> dtime 0`,
      `ssv last_orphan ${i1}`,
    ]);
    const { ours, warnings, counts } = await againstOracles(img, 'trunc-ext4');
    expect(warnings).toContain('orphan cleanup: 1 orphan inode deleted, 2 truncates cleaned up');
    // 50000 bytes = 13 blocks freed by the deletion, 74 − 25 + 5 by the truncations, one inode
    expect(counts.blocks - base.blocks).toBe(13 + (74 - 25) + 5);
    expect(counts.inodes - base.inodes).toBe(1);
    const fs = await Filesystem.open(ours);
    try {
      const a = await fs.resolve('/t1');
      expect(a.size).toBe(100_000);
      expect(a.dtime).toBe(0);
      expect(Buffer.compare(Buffer.from(await fs.read(a, 0, 100_000)), t1.subarray(0, 100_000))).toBe(0);
      const map = await fs.fileMap(a);
      expect(map.extents.reduce((n, e) => n + e.length, 0)).toBe(25);
      const last = map.extents[map.extents.length - 1]!;
      const tail = readAt(ours, (last.physical + last.length - 1) * fs.blockSize, fs.blockSize);
      expect(tail.subarray(100_000 % fs.blockSize).every((b) => b === 0)).toBe(true); // bytes past EOF zeroed
      const c = await fs.resolve('/t3');
      expect(c.size).toBe(0);
      expect((await fs.fileMap(c)).extents).toEqual([]);
      const d2 = await fs.readInode(i2);
      expect(d2.linksCount).toBe(0);
      expect(d2.dtime).toBeGreaterThan(1_600_000_000); // deletion time, as e2fsck sets it
    } finally {
      await fs.close();
    }
  });

  it('block-mapped files (ext3, 1 KiB blocks): indirect blocks kept while they map something, freed once empty', async () => {
    const src = join(dir, 'src-ext3');
    mkdirSync(src, { recursive: true });
    const b1 = randomBytes(1 << 20), b2 = randomBytes(200_000), b3 = randomBytes(400_000);
    writeFileSync(join(src, 'b1'), b1);
    writeFileSync(join(src, 'b2'), b2);
    writeFileSync(join(src, 'b3'), b3);
    const img = join(dir, 'trunc-ext3.img');
    mkfs(img, 16, ['-b', '1024', '-d', src], 'ext3');
    const [i1, i2, i3] = ['/b1', '/b2', '/b3'].map((p) => inodeOf(img, p)) as [number, number, number];
    debugfsW(img, [
      `sif <${i1}> size 300000`, // ends inside the double-indirect range: DIND and its first IND partly kept
      `sif <${i2}> size 10000`, // ends in the direct blocks: IND freed
      `unlink /b3`,
      `sif <${i3}> links_count 0`, // deleted: data, IND, DIND and its INDs all freed
      `sif <${i1}> dtime ${i2}`,
      `sif <${i2}> dtime ${i3}`,
      `ssv last_orphan ${i1}`,
    ]);
    const { ours, warnings } = await againstOracles(img, 'trunc-ext3');
    expect(warnings).toContain('orphan cleanup: 1 orphan inode deleted, 2 truncates cleaned up');
    const fs = await Filesystem.open(ours);
    try {
      const a = await fs.resolve('/b1');
      const m = await fs.fileMap(a);
      expect(m.kind).toBe('blockmap');
      expect(m.extents.reduce((n, e) => n + e.length, 0)).toBe(Math.ceil(300_000 / 1024));
      expect(m.metadataBlocks.length).toBe(3); // IND, DIND, one IND below it
      expect(Buffer.compare(Buffer.from(await fs.read(a, 0, 300_000)), b1.subarray(0, 300_000))).toBe(0);
      const b = await fs.resolve('/b2');
      const mb = await fs.fileMap(b);
      expect(mb.metadataBlocks).toEqual([]);
      expect(mb.extents.reduce((n, e) => n + e.length, 0)).toBe(10);
      expect(b.blocks512).toBe(20);
    } finally {
      await fs.close();
    }
  });

  it('orphan-file entries added with addOrphan are truncated the same way (and ORPHAN_PRESENT is cleared)', async () => {
    const src = join(dir, 'src-of');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'f'), randomBytes(200_000));
    const img = join(dir, 'of.img');
    mkfs(img, 32, ['-b', '4096', '-O', 'orphan_file', '-d', src]);
    const ino = inodeOf(img, '/f');
    debugfsW(img, [`sif <${ino}> size 4096`]);
    const dev = await FileDevice.open(img, { write: true });
    const fs = await Filesystem.open(dev, { write: true });
    await fs.transact((tx) => addOrphan(tx, ino));
    expect(fs.sb.s_feature_ro_compat & RO_COMPAT.ORPHAN_PRESENT).toBeTruthy();
    expect((await listOrphans(fs)).file.map((e) => e.ino)).toEqual([ino]);
    await dev.close(); // crash: no close
    const ro = await Filesystem.open(img); // the flag is in the journal (lazy checkpoint) or home: read through the replay
    expect(ro.sb.s_feature_ro_compat & RO_COMPAT.ORPHAN_PRESENT).toBeTruthy();
    await ro.close();
    const { ours } = await againstOracles(img, 'of');
    expect(features(ours)).not.toContain('orphan_present');
    const r = await Filesystem.open(ours);
    expect((await r.fileMap(await r.resolve('/f'))).extents.reduce((n, e) => n + e.length, 0)).toBe(1);
    await r.close();
  });

  it('refuses corrupt lists with EFSCORRUPTED before writing anything (cycle, out of range, free inode) and leaves no needs_recovery behind', async () => {
    const src = join(dir, 'src-bad');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'x'), 'x');
    writeFileSync(join(src, 'y'), 'y');
    const good = join(dir, 'bad-base.img');
    mkfs(good, 16, ['-d', src]);
    const x = inodeOf(good, '/x'), y = inodeOf(good, '/y');
    const cases: [string, string[]][] = [
      ['cycle', [`sif <${x}> dtime ${y}`, `sif <${y}> dtime ${x}`, `ssv last_orphan ${x}`]],
      ['self', [`sif <${x}> dtime ${x}`, `ssv last_orphan ${x}`]],
      ['out of range', [`sif <${x}> dtime 999999`, `ssv last_orphan ${x}`]],
      ['reserved', [`ssv last_orphan 7`]],
      ['free inode', [`ssv last_orphan 200`]],
    ];
    for (const [what, cmds] of cases) {
      const img = join(dir, `bad-${what.replace(/ /g, '_')}.img`);
      copyFileSync(good, img);
      debugfsW(img, cmds);
      expect(await codeOf(Filesystem.open(img, { write: true })), what).toBe('EFSCORRUPTED');
      // nothing but the superblock's times and the journal superblock were written: no needs_recovery left behind
      expect(features(img), what).not.toContain('needs_recovery');
      expect(header(img)['First orphan inode'], what).toBeDefined();
      // reading still works
      const ro = await Filesystem.open(img);
      expect(await codeOf(listOrphans(ro))).toBe('EFSCORRUPTED');
      await ro.close();
    }
 
    // orphan-file blocks: a slot written without its checksum, a destroyed magic
    const of = join(dir, 'bad-of.img');
    mkfs(of, 16, ['-b', '4096', '-O', 'orphan_file', '-d', src]);
    const ob = parseInt(debugfsR(of, 'bmap <12> 0'), 10);
    expect(ob).toBeGreaterThan(0);
    const badCsum = join(dir, 'bad-of-csum.img');
    copyFileSync(of, badCsum);
    writeAt(badCsum, ob * 4096, Buffer.from(new Uint32Array([x]).buffer));
    expect(await codeOf(Filesystem.open(badCsum, { write: true }))).toBe('EFSBADCRC');
    const badMagic = join(dir, 'bad-of-magic.img');
    copyFileSync(of, badMagic);
    writeAt(badMagic, ob * 4096 + 4096 - 8, new Uint8Array(4));
    expect(await codeOf(Filesystem.open(badMagic, { write: true }))).toBe('EFSCORRUPTED');
    expect(features(badMagic)).not.toContain('needs_recovery');
  });
});

describe('temporary files (createTempFile / releaseTempFile) and crashes', () => {
  for (const variant of ['list', 'orphan_file'] as const) {
    it(`${variant}: a crash while temp files exist is cleaned up by our next write open, e2fsck -fy and the kernel alike`, async () => {
      const img = join(dir, `tmp-${variant}.img`);
      mkfs(img, 32, variant === 'orphan_file' ? ['-O', 'orphan_file'] : ['-O', '^orphan_file']);
      const base = freeCounts(img);
      const dev = await FileDevice.open(img, { write: true });
      const fs = await Filesystem.open(dev, { write: true });
      const bs = fs.blockSize;
      const a = await createTempFile(fs, { goalGroup: 0 });
      // a: 40 one-block extents (a depth-1 tree)
      const start = fs.sb.blocksCount - 200;
      for (let i = 0; i < 40; i++) await allocate(fs, { ino: a }, { offset: i * 2 * bs, len: bs, goal: (start + i * 2) * bs, flags: ALLOC_FIXED_START | ALLOC_FIXED_LEN });
      expect((await fs.fileMap(await fs.readInode(a))).depth).toBe(1);
      const b = await createTempFile(fs, {});
      // b: one big unwritten extent. (On the old list b's i_dtime points at a, and the ops layer
      // treats "links 0, dtime ≠ 0" as deleted, so only the orphan file variant can grow it.)
      if (variant === 'orphan_file') await allocate(fs, { ino: b }, { offset: 0, len: 2 << 20, flags: ALLOC_FIXED_LEN });
      const listed = await listOrphans(fs);
      expect([...listed.list, ...listed.file.map((e) => e.ino)].sort()).toEqual([a, b].sort());
      if (variant === 'orphan_file') expect(listed.file.length).toBe(2);
      else expect(listed.list).toEqual([b, a]); // added at the head, as the kernel does
      await dev.close(); // crash
      const { counts } = await againstOracles(img, `tmp-${variant}`);
      expect(counts).toEqual(base);
    });
  }

  it('releaseTempFile takes a file off the list wherever it is; the orphan file falls back to the list when full', async () => {
    const img = join(dir, 'tmp-full.img');
    mkfs(img, 16, ['-b', '1024', '-O', 'orphan_file', '-E', 'orphan_file_size=1']);
    const base = freeCounts(img);
    // ~520 transactions: in memory (no fdatasync), written back for e2fsck afterwards
    const mem = new MemoryDevice(new Uint8Array(readFileSync(img)), { name: img });
    const fs = await Filesystem.open(mem, { write: true });
    try {
      const per = inodesPerOrphanBlock(fs.blockSize);
      expect(per).toBe(254);
      const made: number[] = [];
      for (let i = 0; i < per + 2; i++) made.push(await createTempFile(fs, { goalGroup: i % fs.sb.groupCount }));
      const l = await listOrphans(fs);
      expect(l.file.length).toBe(per);
      expect(l.list).toEqual([made[per + 1], made[per]]);
      // remove the second list entry (not the head), then some file entries
      await releaseTempFile(fs, made[per]!);
      expect((await listOrphans(fs)).list).toEqual([made[per + 1]]);
      expect(await codeOf(fs.transact((tx) => addOrphan(tx, made[0]!)))).toBe('EEXIST');
      expect(await codeOf(fs.transact((tx) => removeOrphan(tx, 11)))).toBe('EINVAL');
      expect(await codeOf(releaseTempFile(fs, 2))).toBe('EINVAL'); // the root has links
      for (const ino of made.slice(0, per)) await releaseTempFile(fs, ino);
      expect(fs.sb.s_feature_ro_compat & RO_COMPAT.ORPHAN_PRESENT).toBe(0);
      await releaseTempFile(fs, made[per + 1]!);
      expect(await listOrphans(fs)).toEqual({ list: [], file: [] });
      expect(fs.sb.s_last_orphan).toBe(0);
    } finally {
      await fs.close();
      writeFileSync(img, mem.data);
    }
    expectClean(img, 'after releasing every temp file');
    expect(freeCounts(img)).toEqual(base);
  });

  it('a temp file whose frees do not fit one transaction is released in several, staying an orphan until the last', async () => {
    const img = join(dir, 'tmp-steps.img');
    mkfs(img, 48, ['-b', '1024', '-g', '1024', '-O', '^resize_inode']);
    const base = freeCounts(img);
    const fs = await Filesystem.open(img, { write: true });
    try {
      const t = await createTempFile(fs, {});
      const bs = fs.blockSize;
      await allocate(fs, { ino: t }, { offset: 0, len: 20 << 20, flags: ALLOC_FIXED_LEN });
      internals(fs).journal!.logCapacity = () => 300; // pretend the journal is tiny: 4 groups per transaction
      const before = fs.writeStats.transactions;
      await releaseTempFile(fs, t);
      expect(fs.writeStats.transactions - before).toBeGreaterThanOrEqual(5);
      void bs;
      // a linked file with blocks past EOF, put on the list by hand, truncated in steps too
      const u = await createTempFile(fs, {});
      await allocate(fs, { ino: u }, { offset: 0, len: 12 << 20, flags: ALLOC_FIXED_LEN });
      await fs.transact(async (tx) => {
        await removeOrphan(tx, u);
        const inode = await tx.readInode(u);
        inode.base.i_links_count = 1; // pretend it is linked (e2fsck would reconnect it; we only count blocks)
        inode.base.i_size_lo = 1 << 20;
        inode.base.i_size_high = 0;
        await tx.writeInode(inode);
        await addOrphan(tx, u);
      });
      const b2 = fs.writeStats.transactions;
      const report = await processOrphans(fs);
      expect(report.truncated).toEqual([u]);
      expect(fs.writeStats.transactions - b2).toBeGreaterThanOrEqual(3);
      expect((await fs.fileMap(await fs.readInode(u))).extents.reduce((n, e) => n + e.length, 0)).toBe(1024);
      // give it back
      await fs.transact(async (tx) => {
        const inode = await tx.readInode(u);
        inode.base.i_links_count = 0;
        await tx.writeInode(inode);
        await addOrphan(tx, u);
      });
      await releaseTempFile(fs, u);
    } finally {
      await fs.close();
    }
    expectClean(img, 'after stepwise releases');
    expect(freeCounts(img)).toEqual(base);
  });
});

void run;
