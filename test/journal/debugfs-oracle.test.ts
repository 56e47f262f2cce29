/**
 * Journals written by debugfs (e2fsprogs 1.47 `jo`/`jw`/`jc`) in every tag
 * format, replayed by `e2fsck -p -E journal_only` and by ext4kit: the two
 * images must be identical except the superblock's s_wtime(+_hi) and
 * s_checksum. Then `e2fsck -fn` must be clean on ours.
 *
 * Each transaction gets its own `jo`/`jc`: within one open journal, debugfs
 * 1.47 places the next transaction at its *estimate* of the previous one's end
 * (journal_close_trans: j_head = trans->end + 1), which overlaps or leaves a
 * gap whenever the estimate is wrong (always with revoke blocks); reopening
 * makes it find the real head.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { HAVE_E2FSPROGS, debugfsW, debugfsR, e2fsckClean, freeBlocks, ImageFile, mkfs, prng, readSb, removeDir, tempDir } from './helpers.js';
import { compareReplay, kbytesWithinBounds } from './oracle.js';
import { JBD2_MAGIC, parseJournalSuperblock, tagFormatFor } from '../../lib/jbd2/format.js';
import { INCOMPAT, STATE } from '../../lib/ext4/superblock.js';

interface Config {
  name: string;
  mkfs: string[];
  jo: string;
  /** Expected journal tag format / checksum version after `jo`. */
  tag: string;
  csum: 0 | 1 | 2 | 3;
}

const CONFIGS: Config[] = [
  { name: 'csum v3 + 64bit (mkfs defaults, jo -c)', mkfs: [], jo: 'jo -c', tag: 'tag3', csum: 3 },
  { name: 'csum v2 + 64bit', mkfs: [], jo: 'jo -c -v 2', tag: 'csum2-64', csum: 2 },
  { name: 'no csum + 64bit', mkfs: [], jo: 'jo', tag: 'plain-64', csum: 0 },
  { name: 'csum v3, 32-bit', mkfs: ['-O', '^64bit'], jo: 'jo -c', tag: 'tag3', csum: 3 },
  { name: 'csum v2, 32-bit', mkfs: ['-O', '^64bit'], jo: 'jo -c -v 2', tag: 'csum2-32', csum: 2 },
  { name: 'no csum, 32-bit', mkfs: ['-O', '^64bit'], jo: 'jo', tag: 'plain-32', csum: 0 },
  { name: 'legacy v1 crc32 (COMPAT_CHECKSUM) + 64bit', mkfs: ['-O', '^metadata_csum'], jo: 'jo -c', tag: 'plain-64', csum: 1 },
  { name: 'no csum, 32-bit, no metadata_csum', mkfs: ['-O', '^metadata_csum,^64bit'], jo: 'jo', tag: 'plain-32', csum: 0 },
];

const BLOCK_SIZES = [1024, 4096];

const skip = !HAVE_E2FSPROGS;
if (skip) console.log('journal debugfs oracle tests skipped: mkfs.ext4/debugfs/e2fsck not found');

describe.skipIf(skip)('debugfs-written journals replay exactly like e2fsck -E journal_only', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('jdebugfs');
  });
  afterAll(() => { if (!process.env.KEEP) removeDir(dir); else console.log("kept", dir); });

  for (const bs of BLOCK_SIZES)
    for (const cfg of CONFIGS) {
      it(`${cfg.name}, ${bs}-byte blocks`, async () => {
        const d = join(dir, `${cfg.tag}-${cfg.csum}-${bs}-${cfg.mkfs.join('')}`.replace(/[^\w-]/g, '_'));
        await import('node:fs').then((fs) => fs.mkdirSync(d, { recursive: true }));
        const img = join(d, 'fs.img');
        mkfs(img, bs === 1024 ? 64 : 128, ['-b', String(bs), ...cfg.mkfs]);
        const rnd = prng(bs + cfg.csum * 7 + cfg.mkfs.length);
        const sb = readSb(img);
        // Many blocks: more tags than fit in one descriptor block in every format.
        const many = bs === 1024 ? 150 : 560;
        const free = freeBlocks(img, many + 10, Math.floor(sb.blocksCount / 2));
        const [a, b, c, dd, e] = free as [number, number, number, number, number];
        const manyBlocks = free.slice(5, 5 + many);

        const file = (name: string, blocks: Uint8Array[]) => {
          const p = join(d, name);
          const buf = new Uint8Array(blocks.length * bs);
          blocks.forEach((x, i) => buf.set(x, i * bs));
          writeFileSync(p, buf);
          return p;
        };
        const magicBlock = rnd(bs);
        new DataView(magicBlock.buffer).setUint32(0, JBD2_MAGIC, false); // must be escaped in the log
        const t1 = [rnd(bs), magicBlock, rnd(bs)];
        const t2 = [rnd(bs), ...manyBlocks.map(() => rnd(bs))];
        const t3 = [rnd(bs)];
        const t5 = [rnd(bs), rnd(bs)];
        for (const x of [t2[4]!, t5[1]!]) new DataView(x.buffer).setUint32(0, JBD2_MAGIC, false); // more escapes
        const f1 = file('t1', t1), f2 = file('t2', t2), f3 = file('t3', t3), f5 = file('t5', t5);
        const before = new ImageFile(img);
        const orig = { b: before.readFs(b), c: before.readFs(c) };
        before.close();

        const tx = (cmd: string) => [cfg.jo, cmd, 'jc'];
        debugfsW(img, [
          ...tx(`jw -b ${a},${b},${c} ${f1}`), // T1: b is escaped
          ...tx(`jw -b ${[a, ...manyBlocks].join(',')} ${f2}`), // T2: several descriptors, a again
          ...tx(`jw -b ${dd} -r ${b} ${f3}`), // T3: revokes b (logged in T1)
          ...tx(`jw -r ${c}`), // T4: revoke-only transaction
          ...tx(`jw -b ${c},${e} ${f5}`), // T5: c again after its revoke: replayed
        ]);
        const fsb = readSb(img);
        expect(fsb.s_feature_incompat & INCOMPAT.RECOVER).toBeTruthy();
        const f = new ImageFile(img);
        const jsb = parseJournalSuperblock(f.readJournal(0), { kind: 'field', field: 'jsb' }, { fsBlockSize: bs });
        f.close();
        expect(jsb.tagFormat.name).toBe(cfg.tag);
        expect(tagFormatFor(jsb.incompat).name).toBe(cfg.tag);
        expect(jsb.csumVersion).toBe(cfg.csum);
        const logdump = debugfsR(img, 'logdump');
        expect(logdump).toMatch(/type 5 \(revoke table\)/);

        const cmp = await compareReplay(img, d);
        expect(cmp.e2fsck.status, cmp.e2fsck.out).toBe(0);
        expect(cmp.diffs, cmp.report).toEqual([]);
        expect(kbytesWithinBounds(cmp), JSON.stringify(cmp.kbytes)).toBe(true);

        const r = cmp.recovery;
        const mine = new ImageFile(cmp.mine);
        try {
          if (cfg.csum === 1) {
            // debugfs's v1 crc32 covers its revoke blocks too, recovery's does not: T3 is a failed commit in both.
            expect(cmp.e2fsck.out).toMatch(/Journal transaction \d+ was corrupt, replay was aborted/);
            expect(r.failedCommit).toBe(r.firstTid + 2);
            expect(r.transactions).toBe(2);
            expect(cmp.ours.errorFs).toBe(true);
            expect(mine.readSuperblock().s_state & STATE.ERROR_FS).toBeTruthy();
            expect(mine.readFs(a)).toEqual(t2[0]);
            expect(mine.readFs(b)).toEqual(magicBlock);
          } else {
            expect(r.error).toBeNull();
            expect(r.transactions).toBe(5);
            expect(r.endTid).toBe((r.firstTid + 5) >>> 0);
            expect(r.nextSequence).toBe((r.firstTid + 6) >>> 0);
            expect(r.revokes).toBe(2);
            // T1: a only (b revoked by T3, c by T4); T2: all; T3: dd; T5: c, e.
            expect(r.replayBlocks).toBe(1 + (1 + many) + 1 + 2);
            expect(r.revokeHits).toBe(2); // b in T1; c in T1 (revoked by T4)
            expect(mine.readFs(a)).toEqual(t2[0]);
            expect(mine.readFs(b)).toEqual(orig.b); // revoked: never replayed
            expect(mine.readFs(c)).toEqual(t5[0]);
            expect(mine.readFs(dd)).toEqual(t3[0]);
            expect(mine.readFs(e)).toEqual(t5[1]);
            expect(mine.readFs(manyBlocks[many - 1]!)).toEqual(t2[many]);
            expect(mine.readFs(manyBlocks[3]!)).toEqual(t2[4]); // escaped in the log, magic restored
            expect(new DataView(mine.readFs(e).buffer).getUint32(0, false)).toBe(JBD2_MAGIC);
            expect(cmp.ours.needsFsck || cmp.ours.errorFs).toBe(false);
            void orig.c;
          }
          const sb2 = mine.readSuperblock();
          expect(sb2.s_feature_incompat & INCOMPAT.RECOVER).toBe(0);
          const jsb2 = parseJournalSuperblock(mine.readJournal(0), { kind: 'field', field: 'jsb' }, { fsBlockSize: bs });
          expect(jsb2.s_start).toBe(0);
          expect(jsb2.s_sequence).toBe(r.nextSequence);
        } finally {
          mine.close();
        }
        const clean = e2fsckClean(cmp.mine);
        expect(clean.ok, clean.out).toBe(true);
      }, 60_000);
    }
});
