/**
 * bench/extent-insert — extent trees at scale (issue 9, Measure).
 *
 *   npx tsx bench/extent-insert.ts [--extents 100000] [--move-extents 50000] [--block-size 4096]
 *
 * 1. One insert into a 100,000-extent depth-2 file: `allocate` of one block
 *    into a hole in the middle of the file (the ordinary call, one
 *    transaction), on a RecordingDevice; every block written — journal and
 *    checkpoint — is classified (extent-tree block of the file, inode table,
 *    block bitmap, group descriptors, superblock, journal). Target: the
 *    file's tree blocks written in place plus the inode (which holds the
 *    root) ≤ depth + 2.
 * 2. movedata of a 50,000-extent file (one-block extents, no holes) onto a
 *    contiguous donor in ONE call: time, transactions, transactions the
 *    journal refused (E2BIG, each halving the step) and the most blocks one
 *    transaction logged. Target: no E2BIG.
 * Both images are built by bench/extent-scale.ts (mkfs -d, then one
 * transaction of ours) in a temporary directory; e2fsck -fn checks them after.
 * Both are also timed as users run them: a FRESH `ext4kit allocate` /
 * `ext4kit movedata` process (the CLI of this tree, bundled into the work
 * dir) on a fresh copy of the image each run, medians of --runs (≥ 5), node's
 * start-up (`node -e 0`, same rounds) subtracted; the insert next to
 * `debugfs -w -R "fallocate"` of the same block (e2fsprogs, no journal).
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Filesystem as CoreFilesystem } from '../lib/ext4/filesystem.js';
import { FileDevice } from '../lib/io/file-device.js';
import { RecordingDevice } from '../lib/io/recording-device.js';
import { Ext4Error } from '../lib/errors.js';
import type { Transaction } from '../lib/ext4/transaction.js';
import { allocate } from '../lib/ops/allocate.js';
import { movedata } from '../lib/ops/movedata.js';
import { buildScaleImage, patternBlock, sh } from './extent-scale.js';
import { bundleThisCli, freshRounds, loadavg, NODE_START, type FreshJob } from './fresh.js';

const args = process.argv.slice(2);
const num = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};

export interface InsertCount {
  depth: number;
  treeBlocks: number;
  inodeTable: number;
  bitmaps: number;
  descriptors: number;
  superblock: number;
  journal: number;
  other: number;
  ms: number;
}

/** Insert one block into the middle of `file` (an `allocate` into a hole) and classify every block written. */
export async function measureInsert(img: string, ino: number): Promise<InsertCount> {
  const rec = new RecordingDevice(await FileDevice.open(img, { write: true }));
  const f = await CoreFilesystem.open(rec, { write: true, closeDevice: true });
  const bs = f.blockSize;
  const before = await f.fileMap(await f.readInode(ino));
  const mid = before.extents[before.extents.length >> 1]!;
  const hole = mid.logical + mid.length;
  if (before.extents[(before.extents.length >> 1) + 1]!.logical === hole) throw new Error('no hole after the middle extent');
  const journalMap = (await f.fileMap(await f.readInode(8))).extents;
  const { block: itable } = await f.inodeLocation(ino);
  const bitmaps = new Set<number>(), descTables = new Set<number>();
  const gdPerBlock = bs / f.sb.descSize;
  for (let g = 0; g < f.sb.groupCount; g++) {
    bitmaps.add((await f.group(g)).blockBitmap);
    bitmaps.add((await f.group(g)).inodeBitmap);
  }
  const gdtFirst = f.sb.s_first_data_block + 1;
  for (let b = 0; b < Math.ceil(f.sb.groupCount / gdPerBlock); b++) descTables.add(gdtFirst + b);
  rec.clearLog();
  const t0 = performance.now();
  await allocate(f, ino, { offset: hole * bs, len: bs });
  const after = await f.fileMap(await f.readInode(ino));
  await f.close();
  const ms = performance.now() - t0;
  const tree = new Set([...before.metadataBlocks, ...after.metadataBlocks]);
  const inJournal = (b: number) => journalMap.some((e) => b >= e.physical && b < e.physical + e.length);
  const c: InsertCount = { depth: after.depth, treeBlocks: 0, inodeTable: 0, bitmaps: 0, descriptors: 0, superblock: 0, journal: 0, other: 0, ms };
  for (const r of rec.log) {
    if (r.kind !== 'write') continue;
    for (let b = Math.floor(r.position / bs); b < Math.ceil((r.position + r.data.length) / bs); b++) {
      if (inJournal(b)) c.journal++;
      else if (tree.has(b)) c.treeBlocks++;
      else if (b === itable) c.inodeTable++;
      else if (bitmaps.has(b)) c.bitmaps++;
      else if (descTables.has(b)) c.descriptors++;
      else if (b * bs <= 1024 && (b + 1) * bs > 1024) c.superblock++;
      else c.other++;
    }
  }
  if (after.extents.length !== before.extents.length + 1) throw new Error(`the insert left ${after.extents.length} extents (was ${before.extents.length})`);
  return c;
}

export interface MoveCount {
  ms: number;
  transactions: number;
  e2big: number;
  worstLogged: number;
  extentsAfter: number;
}

/** movedata of the whole of `data` onto `space` in one call, counting transactions and E2BIG refusals. */
export async function measureMove(img: string, dataIno: number, spaceIno: number, blocks: number, move: typeof movedata = movedata): Promise<MoveCount> {
  const f = await CoreFilesystem.open(await FileDevice.open(img, { write: true }), { write: true, closeDevice: true });
  const c: MoveCount = { ms: 0, transactions: 0, e2big: 0, worstLogged: 0, extentsAfter: 0 };
  const orig = f.transact.bind(f);
  f.transact = async <T>(fn: (tx: Transaction) => Promise<T>): Promise<T> => {
    let seen: Transaction | null = null;
    try {
      const r = await orig(async (tx) => {
        seen = tx;
        return fn(tx);
      });
      c.transactions++;
      c.worstLogged = Math.max(c.worstLogged, (seen as Transaction | null)?.blocks.size ?? 0);
      return r;
    } catch (e) {
      if (e instanceof Ext4Error && e.code === 'E2BIG') c.e2big++;
      throw e;
    }
  };
  const t0 = performance.now();
  try {
    await move(f, dataIno, spaceIno, { from: 0, len: blocks * f.blockSize });
  } finally {
    f.transact = orig;
  }
  c.ms = performance.now() - t0;
  c.extentsAfter = (await f.fileMap(await f.readInode(dataIno))).extents.length;
  await f.close();
  return c;
}

/** Every block of `ino` reads its pattern (our reader; the test adds debugfs). */
export async function checkPattern(img: string, ino: number, blocks: number): Promise<void> {
  const f = await CoreFilesystem.open(await FileDevice.open(img), { closeDevice: true });
  try {
    const bs = f.blockSize;
    const inode = await f.readInode(ino);
    const all = await f.read(inode, 0, blocks * bs);
    for (let lb = 0; lb < blocks; lb++) {
      const want = patternBlock(lb, bs), got = all.subarray(lb * bs, (lb + 1) * bs);
      for (let i = 0; i < bs; i += 4) if (got[i] !== want[i] || got[i + 1] !== want[i + 1]) throw new Error(`block ${lb} lost its bytes`);
    }
  } finally {
    await f.close();
  }
}

/** The middle hole of `path` (logical block), as measureInsert picks it. */
async function middleHole(img: string, path: string): Promise<number> {
  const f = await CoreFilesystem.open(await FileDevice.open(img), { closeDevice: true });
  try {
    const ex = (await f.fileMap(await f.resolve(path))).extents;
    const mid = ex[ex.length >> 1]!;
    return mid.logical + mid.length;
  } finally {
    await f.close();
  }
}

/** Fresh-process rounds of `jobs` (each with a fresh copy of `template` made before it, untimed), printed. */
function freshTable(title: string, jobs: FreshJob[], runs: number): void {
  const r = freshRounds([NODE_START, ...jobs], runs);
  console.log(`  ${title} — fresh processes, medians of ${runs}, node start-up ${r.nodeStart.toFixed(1)} ms subtracted from ext4kit's (load ${loadavg()}):`);
  for (const j of jobs) console.log(`    ${j.name.padEnd(48)} ${r.work(j.name).toFixed(1).padStart(8)} ms${j.node ? ` (whole process ${r.wall[j.name]!.toFixed(1)} ms)` : ' (whole process)'}`);
}

async function main(): Promise<void> {
  const RUNS = Math.max(5, num('runs', 5));
  const N = num('extents', 100_000);
  const M = num('move-extents', 50_000);
  const BS = num('block-size', 4096);
  const work = fs.mkdtempSync(join(tmpdir(), 'ext4kit-bench-extent-'));
  try {
    console.log(`bench/extent-insert: ${BS}-byte blocks, work dir ${work}`);
    const a = join(work, 'insert.img');
    let t = performance.now();
    const inos = await buildScaleImage(a, { sizeMiB: Math.ceil((2.2 * N * BS) / 2 ** 20) + 64, blockSize: BS, files: [{ name: 'big', extents: N, layout: 'sparse' }] });
    console.log(`  built a ${N}-extent file in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    const cli = await bundleThisCli(work);
    {
      const tpl = join(work, 'insert-template.img'), run = join(work, 'insert-run.img');
      sh('cp', ['--sparse=always', a, tpl]);
      const hole = await middleHole(tpl, '/big');
      const copy = () => void sh('cp', ['--sparse=always', tpl, run]);
      freshTable(`one insert into the ${N}-extent file`, [
        { name: 'ext4kit allocate 1 block into the middle hole', cmd: process.execPath, args: [cli, 'allocate', run, '/big', '--offset', String(hole * BS), '--len', String(BS)], node: true, before: copy },
        { name: 'debugfs -w fallocate of the same block', cmd: 'debugfs', args: ['-w', '-R', `fallocate /big ${hole} ${hole}`, run], before: copy },
      ], RUNS);
      fs.rmSync(tpl);
      fs.rmSync(run, { force: true });
    }
    const c = await measureInsert(a, inos.get('big')!);
    console.log(`  one insert (allocate 1 block into a hole mid-file), depth ${c.depth}, ${c.ms.toFixed(0)} ms:`);
    console.log(`    in place: ${c.treeBlocks} extent-tree block(s) + ${c.inodeTable} inode-table block = ${c.treeBlocks + c.inodeTable} (target ≤ depth + 2 = ${c.depth + 2}) ${c.treeBlocks + c.inodeTable <= c.depth + 2 ? 'MET' : 'MISS'}`);
    console.log(`    also: ${c.bitmaps} bitmap, ${c.descriptors} descriptor, ${c.superblock} superblock, ${c.other} other; ${c.journal} journal block(s) (descriptor + logged + commit + journal superblock)`);
    sh('e2fsck', ['-fn', a]);
    console.log('    e2fsck -fn: clean');
    fs.rmSync(a);

    const b = join(work, 'move.img');
    t = performance.now();
    const mi = await buildScaleImage(b, {
      sizeMiB: Math.ceil((2.2 * M * BS) / 2 ** 20) + 64, blockSize: BS,
      files: [{ name: 'data', extents: M, layout: 'dense', pattern: true }, { name: 'space', extents: M, layout: 'contiguous' }],
    });
    console.log(`  built a ${M}-extent data file and a contiguous donor in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    {
      const tpl = join(work, 'move-template.img'), run = join(work, 'move-run.img');
      sh('cp', ['--sparse=always', b, tpl]);
      freshTable(`movedata of the ${M}-extent file`, [
        { name: `ext4kit movedata (${M} extents, one call)`, cmd: process.execPath, args: [cli, 'movedata', run, '/data', '/space', '--from', '0', '--len', String(M * BS)], node: true, before: () => void sh('cp', ['--sparse=always', tpl, run]) },
      ], RUNS);
      fs.rmSync(tpl);
      fs.rmSync(run, { force: true });
    }
    const m = await measureMove(b, mi.get('data')!, mi.get('space')!, M);
    console.log(`  movedata of the ${M}-extent file in one call: ${(m.ms / 1000).toFixed(2)} s, ${m.transactions} transactions, ${m.e2big} E2BIG retries (target 0) ${m.e2big === 0 ? 'MET' : 'MISS'}, worst ${m.worstLogged} blocks logged, ${m.extentsAfter} extent(s) after`);
    await checkPattern(b, mi.get('data')!, M);
    sh('e2fsck', ['-fn', b]);
    console.log('    data reads its bytes; e2fsck -fn: clean');
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
