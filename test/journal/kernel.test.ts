/**
 * The kernel as oracle, through loop mounts (root + loop devices; skipped with
 * a printed reason otherwise):
 *  1. images copied while mounted (live kernel-written journals, ordered and
 *     data=journal with blocks that must be escaped) replay identically with
 *     e2fsck -p -E journal_only and ext4kit;
 *  2. logs built by ext4kit's log writer are replayed by a Linux mount exactly
 *     as ext4kit's recovery predicts (home blocks read back after umount).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { mkdirSync, writeFileSync, openSync, fsyncSync, closeSync, copyFileSync } from 'node:fs';
import {
  HAVE_E2FSPROGS, debugfsR, e2fsckClean, freeBlocks, ImageFile, installLog, loopSupport, mkfs, must, prng, readSb, removeDir, run, tempDir, withLoopMount,
} from './helpers.js';
import { compareReplay, kbytesWithinBounds } from './oracle.js';
import { recoverJournal } from '../../lib/jbd2/recovery.js';
import { JBD2_MAGIC, parseJournalSuperblock } from '../../lib/jbd2/format.js';
import { INCOMPAT } from '../../lib/ext4/superblock.js';

const loop = HAVE_E2FSPROGS ? loopSupport() : { ok: false, why: 'e2fsprogs missing' };
if (!loop.ok) console.log(`journal kernel tests skipped: ${loop.why}`);

let dir: string;

function writeFileSynced(path: string, data: Uint8Array): void {
  writeFileSync(path, data);
  const fd = openSync(path, 'r');
  fsyncSync(fd);
  closeSync(fd);
}

/** e2fsck -fn output with the image path replaced, for comparing two images' verdicts. */
function verdict(img: string): { status: number; out: string } {
  const r = run('e2fsck', ['-fn', img]);
  return { status: r.status, out: (r.stdout + r.stderr).split(img).join('IMG').replace(/^e2fsck [^\n]*\n/, '') };
}

describe.skipIf(!loop.ok)('kernel-written journals (images copied while mounted)', () => {
  beforeAll(() => {
    dir = tempDir('jkernel');
  });
  afterAll(() => removeDir(dir));

  const CASES: { name: string; mkfs: string[]; mount: string[] }[] = [
    { name: 'mkfs defaults (csum v3, 64bit), data=ordered, 4 KiB blocks', mkfs: ['-b', '4096'], mount: [] },
    { name: 'mkfs defaults, data=journal (file blocks logged, some escaped), 1 KiB blocks', mkfs: ['-b', '1024'], mount: ['data=journal'] },
    { name: '^metadata_csum,^64bit (no journal checksums, 32-bit tags), data=journal', mkfs: ['-b', '4096', '-O', '^metadata_csum,^64bit'], mount: ['data=journal'] },
  ];

  for (const c of CASES)
    it(c.name, async () => {
      const d = join(dir, c.name.replace(/[^\w]+/g, '_'));
      mkdirSync(d, { recursive: true });
      const img = join(d, 'fs.img');
      const copy = join(d, 'copy.img');
      mkfs(img, 64, c.mkfs);
      const bs = readSb(img).blockSize;
      const rnd = prng(c.mount.length * 31 + bs);
      await withLoopMount(img, join(d, 'mnt'), c.mount, (mnt) => {
        // Several transactions: files written and fsync'ed one by one; some blocks start with the jbd2 magic.
        for (let i = 0; i < 12; i++) {
          const data = rnd(bs * (1 + (i % 5)));
          if (i % 3 === 0) for (let k = 0; k < data.length; k += bs) new DataView(data.buffer).setUint32(k, JBD2_MAGIC, false);
          mkdirSync(join(mnt, `dir${i % 3}`), { recursive: true });
          writeFileSynced(join(mnt, `dir${i % 3}`, `f${i}`), data);
        }
        // Deletions of logged blocks make the kernel write revoke records; then reuse the space.
        must('rm', ['-rf', join(mnt, 'dir1')]);
        for (const x of ['dir0', 'dir2', '.']) {
          const fd = openSync(join(mnt, x), 'r');
          fsyncSync(fd);
          closeSync(fd);
        }
        must('sync', ['-f', mnt]); // commit the transaction that freed (and revoked) the blocks
        for (let i = 0; i < 4; i++) writeFileSynced(join(mnt, 'dir2', `g${i}`), rnd(bs * 3));
        // Copy the image while it is mounted: a live journal with needs_recovery.
        copyFileSync(img, copy);
      });
      const sb = readSb(copy);
      expect(sb.s_feature_incompat & INCOMPAT.RECOVER, 'the copy should need recovery').toBeTruthy();
      const f = new ImageFile(copy);
      const jsb = parseJournalSuperblock(f.readJournal(0), { kind: 'field', field: 'jsb' });
      const rec = await recoverJournal(f.journalAccess());
      f.close();
      expect(jsb.s_start).not.toBe(0);
      expect(rec.error).toBeNull();
      expect(rec.transactions).toBeGreaterThan(0);
      if (c.mount.includes('data=journal')) expect(rec.escapedBlocks, 'file blocks starting with the jbd2 magic are logged escaped').toBeGreaterThan(0);
      // Linux 6.18 revokes the freed directory/metadata blocks of dir1 in data=ordered (not the data blocks in data=journal).
      else expect(rec.revokes, 'freed journaled metadata blocks are revoked').toBeGreaterThan(0);
      const cmp = await compareReplay(copy, d);
      expect(cmp.e2fsck.status, cmp.e2fsck.out).toBe(0);
      expect(cmp.diffs, cmp.report).toEqual([]);
      expect(kbytesWithinBounds(cmp), JSON.stringify(cmp.kbytes)).toBe(true);
      // Same fsck verdict on both replayed images (a copy of a mounted fs may have stale summary counts; e2fsck -p leaves them too).
      const theirs = verdict(cmp.theirs), mine = verdict(cmp.mine);
      expect(mine).toEqual(theirs);
      expect(mine.status).toBe(0);
      // And the kernel mounts ours and reads the files back.
      await withLoopMount(cmp.mine, join(d, 'mnt2'), ['ro'], (mnt) => {
        expect(must('ls', [join(mnt, 'dir0')]).trim().split(/\s+/).length).toBeGreaterThan(0);
      });
    }, 120_000);
});

describe.skipIf(!loop.ok)('Linux replays logs built by the log writer', () => {
  beforeAll(() => {
    dir = tempDir('jkernel2');
  });
  afterAll(() => removeDir(dir));

  const FORMATS: { name: string; csum: 0 | 2 | 3; is64: boolean; mkfs: string[] }[] = [
    { name: 'csum v3 + 64bit', csum: 3, is64: true, mkfs: ['-b', '4096'] },
    { name: 'csum v2 + 64bit', csum: 2, is64: true, mkfs: ['-b', '1024'] },
    { name: 'csum v3, 32-bit', csum: 3, is64: false, mkfs: ['-b', '4096', '-O', '^64bit'] },
    { name: 'no csum, 32-bit', csum: 0, is64: false, mkfs: ['-b', '1024', '-O', '^metadata_csum,^64bit'] },
    { name: 'no csum + 64bit', csum: 0, is64: true, mkfs: ['-b', '4096', '-O', '^metadata_csum'] },
  ];

  for (const fmt of FORMATS)
    it(fmt.name, async () => {
      const d = join(dir, fmt.name.replace(/[^\w]+/g, '_'));
      mkdirSync(d, { recursive: true });
      const img = join(d, 'fs.img');
      mkfs(img, 64, fmt.mkfs);
      const sb = readSb(img);
      const bs = sb.blockSize;
      const rnd = prng(bs + fmt.csum);
      const many = bs === 1024 ? 130 : 520;
      const free = freeBlocks(img, many + 20, Math.floor(sb.blocksCount / 2));
      const mk = (list: number[], esc: number[] = []) =>
        list.map((fsBlock, i) => {
          const data = rnd(bs);
          if (esc.includes(i)) new DataView(data.buffer).setUint32(0, JBD2_MAGIC, false);
          return { fsBlock, data };
        });
      const f0 = new ImageFile(img);
      const jsb0 = parseJournalSuperblock(f0.readJournal(0), { kind: 'field', field: 'jsb' });
      f0.close();
      const inst = installLog(img, {
        csum: fmt.csum, is64: fmt.is64, firstTid: 0xfffffff0,
        start: jsb0.s_maxlen - 8, // the large transaction wraps at the end of the log
        time: Math.floor(Date.now() / 1000) - 60,
        txs: [
          { blocks: mk(free.slice(0, 3), [1]) },
          { blocks: mk(free.slice(3, 3 + many), [0, 5]) },
          { blocks: mk([free[0]!, free[many + 5]!], [1]), revokes: [free[1]!, free[4]!] },
        ],
      });
      expect(inst.built[1]!.nextBlock).toBeLessThan(inst.built[1]!.writes[0]!.journalBlock);
      // What ext4kit's recovery predicts.
      const f = new ImageFile(img);
      const rec = await recoverJournal(f.journalAccess());
      const before = new Map(free.map((b) => [b, f.readFs(b)] as const));
      f.close();
      expect(rec.error).toBeNull();
      expect(rec.transactions).toBe(3);
      expect(rec.revokeHits).toBe(2);
      // Linux replays at mount.
      await withLoopMount(img, join(d, 'mnt'), [], () => {});
      const dmesg = run('dmesg', []).stdout.split('\n').slice(-30).join('\n');
      const after = new ImageFile(img);
      try {
        expect(after.readSuperblock().s_feature_incompat & INCOMPAT.RECOVER).toBe(0);
        for (const b of free) {
          const want = rec.blocks.get(b) ?? before.get(b)!;
          expect(after.readFs(b), `fs block ${b}\n${dmesg}`).toEqual(want);
        }
      } finally {
        after.close();
      }
      const clean = e2fsckClean(img);
      expect(clean.ok, clean.out).toBe(true);
      void debugfsR;
    }, 120_000);
});
