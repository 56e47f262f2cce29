/**
 * Logs built by ext4kit's log writer, installed in real images with
 * needs_recovery set, replayed by `e2fsck -p -E journal_only` and by ext4kit:
 * both images must be identical except s_wtime(+_hi)/s_checksum, and hold what
 * we expect (read back home blocks). Covers every tag format the writer
 * produces (csum v3/v2/none × 64/32-bit), escapes, revokes, several
 * descriptors per transaction, wrap at the end of the log, tid wrap-around,
 * and every recovery stop condition (each checked against e2fsck).
 *
 * Lean: each mkfs image (block size, features) is made once, with its free-block list and journal
 * superblock, and copied per case; everything lives on tmpfs (memDir) and a case's files go when
 * it ends; home blocks are read straight from the image file; e2fsck -fn runs in one ToolShell.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { join } from 'node:path';
import { closeSync, copyFileSync, mkdirSync, openSync, readSync } from 'node:fs';
import {
  HAVE_E2FSPROGS, corruptJournal, freeBlocks, ImageFile, installLog, mkfs, patchJournal, patchJsb, prng, readSb, removeDir, type LogSpec,
} from './helpers.js';
import { compareReplay, kbytesWithinBounds, type Comparison } from './oracle.js';
import { memDir } from '../helpers/tmp.js';
import { ToolShell, e2fsckCleanVia } from '../helpers/tool-shell.js';
import { BLOCKTYPE, CommitHeaderLayout, JBD2_MAGIC, JournalHeaderLayout, parseJournalSuperblock, type JournalSuperblock } from '../../lib/jbd2/format.js';
import { INCOMPAT, STATE } from '../../lib/ext4/superblock.js';
import { logSpaceNeeded } from '../../lib/jbd2/log-writer.js';

const skip = !HAVE_E2FSPROGS;
if (skip) console.log('journal writer round-trip tests skipped: mkfs.ext4/debugfs/e2fsck not found');

let dir: string;
let counter = 0;
let sh: ToolShell;
/** Case directories made since the last afterEach (tmpfs: removed when the case ends). */
const caseDirs: string[] = [];

interface Setup {
  img: string;
  d: string;
  bs: number;
  free: number[];
  rnd: (n: number) => Uint8Array;
  /** The journal superblock as mkfs made it. */
  jsb: JournalSuperblock;
}

/** One mkfs image per parameter set, with its free-block lists (by count) and journal superblock. */
interface Base {
  img: string;
  blocksCount: number;
  free: Map<number, number[]>;
  jsb: JournalSuperblock;
}
const bases = new Map<string, Base>();

function baseImage(bs: number, sizeMiB: number, opts: string[]): Base {
  const key = `${bs}/${sizeMiB}/${opts.join(' ')}`;
  let b = bases.get(key);
  if (!b) {
    const img = join(dir, `base${bases.size}.img`);
    mkfs(img, sizeMiB, ['-b', String(bs), ...opts]);
    const jf = new ImageFile(img);
    try {
      b = { img, blocksCount: readSb(img).blocksCount, free: new Map(), jsb: parseJournalSuperblock(jf.readJournal(0), { kind: 'field', field: 'jsb' }) };
    } finally {
      jf.close();
    }
    bases.set(key, b);
  }
  return b;
}

function setup(opts: { bs?: number; mkfs?: string[]; sizeMiB?: number; free?: number } = {}): Setup {
  const bs = opts.bs ?? 1024;
  // 16 MiB at 1 KiB blocks, 32 MiB at 4 KiB: mkfs gives both a 1024-block journal, which holds the
  // largest case (a 600-block transaction with its descriptors, wrapping), and 700 free blocks past
  // the middle. (Every case copies the image twice and compares whole images: size is most of its cost.)
  const base = baseImage(bs, opts.sizeMiB ?? (bs === 1024 ? 16 : 32), opts.mkfs ?? []);
  const d = join(dir, `s${counter++}`);
  mkdirSync(d, { recursive: true });
  caseDirs.push(d);
  const img = join(d, 'fs.img');
  copyFileSync(base.img, img);
  const count = opts.free ?? 400;
  let free = base.free.get(count);
  if (!free) base.free.set(count, (free = freeBlocks(base.img, count, Math.floor(base.blocksCount / 2))));
  return { img, d, bs, free, rnd: prng(counter * 7919), jsb: base.jsb };
}

function magic(b: Uint8Array): Uint8Array {
  new DataView(b.buffer, b.byteOffset).setUint32(0, JBD2_MAGIC, false);
  return b;
}

async function check(s: Setup, extraIgnore: string[] = []): Promise<Comparison> {
  const cmp = await compareReplay(s.img, s.d, extraIgnore);
  expect(cmp.diffs, cmp.report + '\n' + cmp.e2fsck.out).toEqual([]);
  expect(kbytesWithinBounds(cmp), JSON.stringify(cmp.kbytes)).toBe(true);
  return cmp;
}

/** Filesystem blocks of an image file (no journal mapping needed, so no debugfs). */
function readHome(path: string, bs: number, blocks: number[]): Uint8Array[] {
  const fd = openSync(path, 'r');
  try {
    return blocks.map((b) => {
      const buf = new Uint8Array(bs);
      if (readSync(fd, buf, 0, bs, b * bs) !== bs) throw new Error(`short read of block ${b} of ${path}`);
      return buf;
    });
  } finally {
    closeSync(fd);
  }
}

describe.skipIf(skip)('log writer → e2fsck -E journal_only and ext4kit replay agree', () => {
  beforeAll(() => {
    dir = memDir('jwriter');
    sh = new ToolShell();
  });
  afterEach(() => {
    for (const d of caseDirs.splice(0)) removeDir(d);
  });
  afterAll(() => {
    sh?.close();
    removeDir(dir);
  });

  const FORMATS: { name: string; csum: 0 | 2 | 3; is64: boolean; mkfs: string[] }[] = [
    { name: 'csum v3 + 64bit', csum: 3, is64: true, mkfs: [] },
    { name: 'csum v3, 32-bit', csum: 3, is64: false, mkfs: ['-O', '^64bit'] },
    { name: 'csum v2 + 64bit', csum: 2, is64: true, mkfs: [] },
    { name: 'csum v2, 32-bit', csum: 2, is64: false, mkfs: ['-O', '^64bit'] },
    { name: 'no csum + 64bit', csum: 0, is64: true, mkfs: ['-O', '^metadata_csum'] },
    { name: 'no csum, 32-bit', csum: 0, is64: false, mkfs: ['-O', '^metadata_csum,^64bit'] },
  ];

  for (const fmt of FORMATS)
    for (const bs of [1024, 4096])
      it(`${fmt.name}, ${bs}-byte blocks: escapes, revokes, multiple descriptors, wrap at the log end`, async () => {
        const s = setup({ bs, mkfs: fmt.mkfs, free: 700 });
        const { rnd, free, jsb: jsbNow } = s;
        const many = bs === 1024 ? 130 : 600; // > one descriptor in every format
        const blocksOf = (list: number[], esc: number[] = []) => list.map((fsBlock, i) => ({ fsBlock, data: esc.includes(i) ? magic(rnd(bs)) : rnd(bs) }));
        const t1 = blocksOf(free.slice(0, 4), [1]);
        const t2 = blocksOf(free.slice(4, 4 + many), [0, 7, many - 1]);
        const t3 = blocksOf([free[0]!, free[2]!, free[many + 10]!], [2]);
        const t4 = blocksOf([free[1]!]);
        const spec: LogSpec = {
          csum: fmt.csum,
          is64: fmt.is64,
          firstTid: 1000,
          txs: [
            { blocks: t1 },
            { blocks: t2 },
            { blocks: t3, revokes: [free[1]!, free[3]!, free[5]!] }, // revoke T1's free[1], free[3] and T2's free[5]
            { blocks: t4 }, // free[1] again after its revoke: replayed
          ],
        };
        // Start so that the second (large) transaction wraps from the last log block to s_first.
        const need1 = logSpaceNeeded(jsbNow, t1.length);
        spec.start = jsbNow.s_maxlen - need1 - 5;
        const inst = installLog(s.img, spec);
        const starts = inst.built.map((b) => (b.writes[0] ?? b.commitBlock).journalBlock);
        expect(inst.built[1]!.nextBlock).toBeLessThan(starts[1]!); // wrapped
        const cmp = await check(s);
        const r = cmp.recovery;
        expect(r.error).toBeNull();
        expect(r.transactions).toBe(4);
        expect(r.firstTid).toBe(1000);
        expect(r.nextSequence).toBe(1005);
        expect(r.revokes).toBe(3);
        const home = (b: number) => readHome(cmp.mine, bs, [b])[0]!;
        const orig = (b: number) => readHome(s.img, bs, [b])[0]!;
        expect(home(free[0]!)).toEqual(t3[0]!.data);
        expect(home(free[1]!)).toEqual(t4[0]!.data);
        expect(home(free[2]!)).toEqual(t3[1]!.data);
        expect(home(free[3]!)).toEqual(orig(free[3]!)); // revoked
        expect(home(free[5]!)).toEqual(orig(free[5]!)); // T2's copy revoked by T3
        expect(home(free[4]!)).toEqual(t2[0]!.data); // escaped
        expect(home(free[4 + many - 1]!)).toEqual(t2[many - 1]!.data); // escaped
        expect(home(free[many + 10]!)).toEqual(t3[2]!.data); // escaped
        const clean = await e2fsckCleanVia(sh, cmp.mine);
        expect(clean.problems, clean.output).toEqual([]);
        expect(clean.ok, clean.output).toBe(true);
      }, 60_000);

  it('tid wrap-around: transactions 0xfffffffe, 0xffffffff, 0, 1', async () => {
    const s = setup();
    const b = s.free;
    installLog(s.img, {
      csum: 3, is64: true, firstTid: 0xfffffffe,
      txs: [
        { blocks: [{ fsBlock: b[0]!, data: s.rnd(s.bs) }] },
        { blocks: [{ fsBlock: b[1]!, data: s.rnd(s.bs) }] },
        { blocks: [{ fsBlock: b[2]!, data: s.rnd(s.bs) }], revokes: [b[0]!] },
        { blocks: [{ fsBlock: b[3]!, data: s.rnd(s.bs) }] },
      ],
    });
    const cmp = await check(s);
    expect(cmp.recovery.transactions).toBe(4);
    expect(cmp.recovery.endTid).toBe(2);
    expect(cmp.recovery.nextSequence).toBe(3);
    expect(cmp.recovery.revokeHits).toBe(1); // tid 0 revokes a block of tid 0xfffffffe (modular compare)
  });

  it('needs_recovery with an empty log (s_start = 0): s_sequence bumped by one, like e2fsck', async () => {
    const s = setup();
    patchJsb(s.img, (j) => { j.s_sequence = 77; j.s_start = 0; });
    installLog(s.img, { csum: 3, is64: true, firstTid: 77, txs: [] });
    patchJsb(s.img, (j) => { j.s_start = 0; });
    const cmp = await check(s);
    expect(cmp.recovery.needed).toBe(false);
    expect(cmp.recovery.nextSequence).toBe(78);
  });

  // Stop conditions, each against e2fsck.
  const three = (s: Setup, extra: Partial<LogSpec> = {}) =>
    installLog(s.img, {
      csum: 3, is64: true, firstTid: 50,
      txs: [0, 1, 2].map((i) => ({ blocks: [{ fsBlock: s.free[2 * i]!, data: s.rnd(s.bs) }, { fsBlock: s.free[2 * i + 1]!, data: s.rnd(s.bs) }], revokes: i === 1 ? [s.free[40]!] : [] })),
      ...extra,
    });
  const blockOfType = (inst: ReturnType<typeof installLog>, tx: number, type: number) => {
    const b = inst.built[tx]!;
    for (const w of [...b.writes, b.commitBlock]) if (JournalHeaderLayout.decode(w.data).h_blocktype === type) return w.journalBlock;
    throw new Error('no such block');
  };

  it('bad magic in the middle ends the log (later transactions ignored)', async () => {
    const s = setup();
    const inst = three(s);
    corruptJournal(s.img, blockOfType(inst, 1, BLOCKTYPE.DESCRIPTOR), 0);
    const cmp = await check(s);
    expect(cmp.recovery.transactions).toBe(1);
    expect(cmp.recovery.error).toBeNull();
  });

  it('sequence mismatch ends the log', async () => {
    const s = setup();
    const inst = three(s);
    patchJournal(s.img, blockOfType(inst, 2, BLOCKTYPE.DESCRIPTOR), (b) => { b[11] = b[11]! ^ 1; });
    const cmp = await check(s);
    expect(cmp.recovery.transactions).toBe(2);
  });

  it('unknown block type ends the log', async () => {
    const s = setup();
    const inst = three(s);
    patchJournal(s.img, blockOfType(inst, 1, BLOCKTYPE.REVOKE), (b) => { b[7] = 9; });
    const cmp = await check(s);
    expect(cmp.recovery.transactions).toBe(1);
  });

  it('commit checksum failure in the last transaction: failed commit, "Journal transaction N was corrupt", ERROR_FS', async () => {
    const s = setup();
    const inst = three(s);
    corruptJournal(s.img, inst.built[2]!.commitBlock.journalBlock, 0x40);
    const cmp = await check(s);
    expect(cmp.e2fsck.out).toMatch(/Journal transaction 52 was corrupt, replay was aborted/);
    expect(cmp.recovery.failedCommit).toBe(52);
    expect(cmp.recovery.errors.join('\n')).toMatch(/Journal transaction 52 was corrupt/);
    expect(cmp.recovery.transactions).toBe(2);
    expect(cmp.ours.errorFs).toBe(true);
    expect(readSb(cmp.mine).s_state & STATE.ERROR_FS).toBeTruthy();
  });

  it('commit checksum failure with an older commit time: stale block, recovery ends quietly', async () => {
    const s = setup();
    const inst = three(s);
    patchJournal(s.img, inst.built[2]!.commitBlock.journalBlock, (b) => {
      const c = CommitHeaderLayout.decode(b);
      CommitHeaderLayout.encode({ ...c, h_commit_sec_lo: c.h_commit_sec_lo - 100 }, b); // checksum now wrong, time older
    });
    const cmp = await check(s);
    expect(cmp.recovery.failedCommit).toBeNull();
    expect(cmp.recovery.transactions).toBe(2);
    expect(cmp.ours.errorFs).toBe(false);
  });

  it('async_commit: a bad commit checksum ends replay there without a failed commit', async () => {
    const s = setup();
    const inst = three(s, { asyncCommit: true });
    corruptJournal(s.img, inst.built[1]!.commitBlock.journalBlock, 0x40);
    const cmp = await check(s);
    expect(cmp.recovery.failedCommit).toBeNull();
    expect(cmp.recovery.transactions).toBe(1);
  });

  it('descriptor checksum failure followed by a newer commit: recovery fails (EFSBADCRC), nothing replayed, VALID_FS cleared, s_sequence kept', async () => {
    const s = setup();
    const inst = three(s);
    corruptJournal(s.img, blockOfType(inst, 1, BLOCKTYPE.DESCRIPTOR), 100);
    const cmp = await check(s);
    expect(cmp.e2fsck.out).toMatch(/Journal checksum error found/);
    expect(cmp.recovery.error?.code).toBe('EFSBADCRC');
    expect(cmp.recovery.writes).toEqual([]);
    expect(cmp.recovery.nextSequence).toBe(50);
    expect(readSb(cmp.mine).s_state & STATE.VALID_FS).toBe(0);
  });

  it('revoke checksum failure followed by an older commit: stale tail, recovery stops successfully', async () => {
    const s = setup();
    const inst = three(s);
    corruptJournal(s.img, blockOfType(inst, 1, BLOCKTYPE.REVOKE), 100);
    patchJournal(s.img, inst.built[1]!.commitBlock.journalBlock, (b) => {
      const c = CommitHeaderLayout.decode(b);
      CommitHeaderLayout.encode({ ...c, h_commit_sec_lo: c.h_commit_sec_lo - 100 }, b);
    });
    const cmp = await check(s);
    expect(cmp.recovery.error).toBeNull();
    expect(cmp.recovery.transactions).toBe(1);
  });

  it('data block tag checksum failure: that block skipped, the rest replayed, error remembered', async () => {
    const s = setup();
    const inst = three(s);
    const d = inst.built[1]!.writes.find((w) => JournalHeaderLayout.decode(w.data).h_blocktype === BLOCKTYPE.DESCRIPTOR)!;
    corruptJournal(s.img, d.journalBlock + 1, 500);
    const cmp = await check(s);
    expect(cmp.e2fsck.out).toMatch(/Journal checksum error found/);
    expect(cmp.recovery.error?.code).toBe('EFSBADCRC');
    expect(cmp.recovery.transactions).toBe(3);
    expect(cmp.recovery.replayBlocks).toBe(5);
    expect(cmp.recovery.errors.join('\n')).toMatch(/Invalid checksum recovering data block/);
    expect(cmp.ours.needsFsck).toBe(true);
  });

  it('aborted journal (s_errno set): replayed, then ERROR_FS set and s_errno cleared', async () => {
    const s = setup();
    three(s);
    patchJsb(s.img, (j) => { j.errno = -5; });
    const cmp = await check(s);
    expect(cmp.ours.errorFs).toBe(true);
    const f = new ImageFile(cmp.mine);
    try {
      expect(parseJournalSuperblock(f.readJournal(0), { kind: 'field', field: 'jsb' }).errno).toBe(0);
      expect(f.readSuperblock().s_feature_incompat & INCOMPAT.RECOVER).toBe(0);
    } finally {
      f.close();
    }
  });
});
