/**
 * Crash points of htree level growth (lib/ext4/dir-edit.ts insertSlot pushing a full root down),
 * shared by test/crash/namespace-htree*.test.ts. The directory /h is built next to the growth
 * with 250-byte names (3 to a 1 KiB leaf), added as links to one file in batches (the image made
 * by mkfs -d holds /h, /y/a and /t), probed on a copy for the exact name whose insert grows the
 * index. The recorded operations around it: creates that split leaves, the growing insert done
 * by a rename ACROSS directories (/y/a into /h), one more create, a rename out of /h and an
 * unlink; with `moreOps` also a directory renamed across parents, a directory and a file
 * exchanged across parents, a slow symlink, a fifo and an rmdir. A large directory can be
 * thinned after it is built (thinOut) so that its listings stay short. Every crash point (torn
 * 1 KiB writes, seeded lost subsets, thinned evenly, or only around chosen operations) replays
 * through ext4kit to the namespace after a whole number of operations — the directories listed,
 * /y/a's bytes under either name; a sample through e2fsck -E journal_only (then e2fsck -fn on
 * both replays) and through Linux (loop mount of the unreplayed image: the kernel's listing and
 * bytes) — namespace-points.ts.
 */
import { expect } from 'vitest';
import * as nodefs from 'node:fs';
import type { Filesystem } from '../../lib/ext4/filesystem.js';
import { Filesystem as NodeFilesystem } from '../../lib/node.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { addDirEntry, removeDirEntry } from '../../lib/ext4/dir-edit.js';
import { dirHash } from '../../lib/ext4/dirhash.js';
import { hashSeedWords } from '../../lib/ext4/hash-seed.js';
import { S_FLAGS } from '../../lib/ext4/superblock.js';
import { DxCountLimitLayout, DxRootInfoLayout, DX_ROOT_COUNT_OFFSET, DX_ROOT_INFO_OFFSET } from '../../lib/ext4/htree.js';
import { INODE_FLAGS } from '../../lib/ext4/inode.js';
import { createFile, mkdir, mknod, rename, rmdir, symlink, unlink } from '../../lib/ops/namespace.js';
import { expectE2fsckClean } from '../helpers/tools.js';
import { cleanupImages, pattern, scratchPath } from '../ops/helpers.js';
import { makeNsImage } from '../namespace/helpers.js';
import { runNsCrashCase } from './namespace-points.js';

const NOW = { sec: 1_750_000_000, nsec: 0 };
const enc = new TextEncoder();
const nameOf = (i: number) => `${String(i).padStart(6, '0')}-${'q'.repeat(243)}`;
const A = pattern(3000, 91);

/** The index of /h: levels below the root (-1: not indexed) and the root's count and limit. */
async function indexOf(f: Filesystem): Promise<{ levels: number; count: number; limit: number }> {
  const h = await f.resolve('/h');
  if (!(h.flags & INODE_FLAGS.INDEX)) return { levels: -1, count: 0, limit: 1 };
  const root = await f.readBlock((await f.fileMap(h)).extents[0]!.physical);
  return { levels: DxRootInfoLayout.get(root, 'indirect_levels', DX_ROOT_INFO_OFFSET), ...DxCountLimitLayout.decode(root, DX_ROOT_COUNT_OFFSET) };
}

/** Links nameOf(from..to-1) → /t in /h, 250 per transaction (the namespace layer's transaction per create would take minutes). */
async function addLinks(f: Filesystem, from: number, to: number): Promise<void> {
  const t = await f.resolve('/t'), h = await f.resolve('/h');
  for (let a = from; a < to; a += 250) {
    const b = Math.min(to, a + 250);
    await f.transact(async (tx) => {
      const dir = await tx.readInode(h.ino);
      for (let i = a; i < b; i++) await addDirEntry(tx, dir, enc.encode(nameOf(i)), t.ino, 1);
      const target = await tx.readInode(t.ino);
      target.base.i_links_count += b - a;
      target.linksCount += b - a;
      await tx.writeInode(target);
    });
  }
}

/**
 * Remove the names 0..to-1 whose hash is more than 1/800 of the hash space away from nameOf(g)'s
 * (the kernel does not merge emptied leaves, nor do we): the index keeps its shape — root and
 * nodes full, g's leaf full — while the listings every crash point compares shrink from
 * ~20,000 names to a few dozen. Returns the names kept.
 */
async function thinOut(f: Filesystem, g: number, to: number): Promise<number[]> {
  const h = await f.resolve('/h');
  const root = await f.readBlock((await f.fileMap(h)).extents[0]!.physical);
  const version = DxRootInfoLayout.get(root, 'hash_version', DX_ROOT_INFO_OFFSET);
  const words = hashSeedWords(f.sb.s_hash_seed), signed = !(f.sb.s_flags & S_FLAGS.UNSIGNED_HASH);
  const hashOf = (i: number) => dirHash(enc.encode(nameOf(i)), version, words, signed).hash;
  const near = hashOf(g), window = 2 ** 32 / 800;
  const kept: number[] = [], gone: number[] = [];
  for (let i = 0; i < to; i++) (Math.abs(hashOf(i) - near) <= window ? kept : gone).push(i);
  const t = await f.resolve('/t');
  for (let a = 0; a < gone.length; a += 250) {
    const part = gone.slice(a, a + 250);
    await f.transact(async (tx) => {
      const dir = await tx.readInode(h.ino);
      for (const i of part) await removeDirEntry(tx, dir, enc.encode(nameOf(i)));
      const target = await tx.readInode(t.ino);
      target.base.i_links_count -= part.length;
      target.linksCount -= part.length;
      await tx.writeInode(target);
    });
  }
  return kept;
}

/** Open `bytes` for writing, run fn, close; the image after the close. */
async function withOpen<T>(bytes: Uint8Array, fn: (f: Filesystem, mem: MemoryDevice) => Promise<T>): Promise<{ out: T; bytes: Uint8Array }> {
  const mem = new MemoryDevice(bytes);
  const f = await NodeFilesystem.open(mem, { write: true, now: NOW });
  try {
    return { out: await fn(f, mem), bytes: mem.data };
  } finally {
    await f.close();
  }
}

/**
 * An image whose /h holds names 0..g-before-1, its index `levels` deep below the root, where
 * inserting nameOf(g) after the names up to g-1 grows it to levels + 1: batches of `batch`
 * until the root is three slots from full, then batches of 50 — the device copied before each
 * (a copy between transactions is a committed state: opening it replays the log) — until one
 * grows the index, then one name per transaction from the copy before it; the base is the last
 * copy without name g-before, with the names up to g-before-1 added.
 */
async function nearGrowth(label: string, mkfsOpts: string[], sizeMiB: number, batch: number, levels: number, before: number, thin: boolean): Promise<{ base: Uint8Array; g: number; names: number[] }> {
  const img = makeNsImage({ name: label, kind: 'ext4', blockSize: 1024, sizeMiB, mkfsOpts, tree: { 'h/': null, 'y/a': A, t: new Uint8Array(10) } });
  const made = new Uint8Array(nodefs.readFileSync(img));
  nodefs.rmSync(img, { force: true });
  const t0 = Date.now();
  const copies = await withOpen(made, async (f, dev) => {
    let n = 0;
    for (let ix = await indexOf(f); ix.levels < levels || ix.count < ix.limit - 3; ix = await indexOf(f)) {
      await addLinks(f, n, (n += batch));
      if ((await indexOf(f)).levels > levels) throw new Error(`${label}: the index grew past ${levels} levels inside a batch; use smaller batches`);
    }
    const out = [{ at: n, bytes: dev.data.slice() }];
    for (;; n += 50) {
      await addLinks(f, n, n + 50);
      if ((await indexOf(f)).levels > levels) return out.slice(-2);
      out.push({ at: n + 50, bytes: dev.data.slice() });
      if (out.length > 2) out.shift();
    }
  });
  const first = copies.out[0]!, last = copies.out[copies.out.length - 1]!, t1 = Date.now();
  const probe = await withOpen(last.bytes.slice(), async (f) => {
    for (let i = last.at; ; i++) {
      await addLinks(f, i, i + 1);
      if ((await indexOf(f)).levels > levels) return i;
    }
  });
  const g = probe.out, t2 = Date.now();
  const start = g - before >= last.at ? last : first;
  if (g - before < start.at) throw new Error(`${label}: the index grew at name ${g}, too soon after the batches (${first.at})`);
  const base = await withOpen(start.bytes.slice(), async (f) => {
    await addLinks(f, start.at, g - before);
    return thin ? thinOut(f, g, g - before) : Array.from({ length: g - before }, (_, i) => i);
  });
  console.log(`${label}: growth at name ${g} (ms: batches ${t1 - t0}, singles ${t2 - t1}, base ${Date.now() - t2})`);
  return { base: base.bytes, g, names: base.out };
}

export interface HtreeGrowthCase {
  label: string;
  mkfsOpts: string[];
  sizeMiB: number;
  /** Names per transaction while the root fills. */
  batch: number;
  /** Index levels below the root before the growth (0: one level of index). */
  levels: number;
  thin: boolean;
  moreOps: boolean;
  /** Only the crash points inside these operations (2: the growing rename). */
  focusOps?: number[];
  maxPoints: number;
  e2fsckSample: number;
  linuxSample: number;
  seed: number;
}

/** Build, record and check one case (throws through expect). */
export async function checkHtreeGrowth(k: HtreeGrowthCase): Promise<void> {
  const t0 = Date.now();
  const { base, g, names } = await nearGrowth(`ns-htree-${k.seed}`, k.mkfsOpts, k.sizeMiB, k.batch, k.levels, 2, k.thin);
  const tBuild = Date.now() - t0;
  const grew: string[] = [];
  const step = (name: string, run: (f: Filesystem) => Promise<unknown>, growth = false) => ({
    name,
    run: async (f: Filesystem) => {
      const before = await indexOf(f);
      await run(f);
      const after = await indexOf(f);
      if ((after.levels > before.levels) !== growth) grew.push(`${name}: levels ${before.levels} → ${after.levels}`);
    },
  });
  const r = await runNsCrashCase({
    name: k.label,
    base,
    now: NOW,
    view: { dirs: ['/h', '/y', '/y/sub', '/y/moved'], contents: ['/y/a', `/h/${nameOf(g)}`, '/y/moved', '/h/xd'] },
    ops: [
      step('create g-2', (f) => createFile(f, `/h/${nameOf(g - 2)}`)),
      step('create g-1', (f) => createFile(f, `/h/${nameOf(g - 1)}`)),
      step('rename /y/a into /h (the index grows)', (f) => rename(f, '/y/a', `/h/${nameOf(g)}`), true),
      step('create g+1', (f) => createFile(f, `/h/${nameOf(g + 1)}`)),
      step('rename out of /h', (f) => rename(f, `/h/${nameOf(names[0]!)}`, '/y/moved')),
      step('unlink in /h', (f) => unlink(f, `/h/${nameOf(names[1]!)}`)),
      ...(k.moreOps
        ? [
            step('mkdir in /h', (f) => mkdir(f, '/h/sub')),
            step('rename a directory out of /h', (f) => rename(f, '/h/sub', '/y/sub')),
            step('mkdir another', (f) => mkdir(f, '/h/xd')),
            step('exchange a directory in /h and a file in /y', (f) => rename(f, '/h/xd', '/y/moved', { exchange: true })),
            step('slow symlink in /y', (f) => symlink(f, `${'t/'.repeat(100)}end`, '/y/slow-link')),
            step('fifo in /h', (f) => mknod(f, '/h/fifo', 'fifo')),
            step('rmdir in /y', (f) => rmdir(f, '/y/sub')),
          ]
        : []),
    ],
    granularity: 1024,
    seed: k.seed,
    subsetsPerEpoch: 1,
    maxPoints: k.maxPoints,
    focusOps: k.focusOps,
    e2fsckSample: k.e2fsckSample,
    linuxSample: k.linuxSample,
  });
  console.log(`${k.label}: ${g - 2} names (${names.length} kept), index levels ${k.levels} → ${k.levels + 1} at name ${g}; ${r.checked} of ${r.all} points, per state ${r.perState.join('/')}; e2fsck ${r.fscked}, Linux ${r.linux}; build ${tBuild} ms, ${JSON.stringify(r.ms)}`);
  expect(grew, 'only the rename grows the index').toEqual([]);
  expect(r.commitsPerOp).toEqual(new Array(k.moreOps ? 13 : 6).fill(1));
  expect(r.bad, r.bad.slice(0, 10).join('\n')).toEqual([]);
  // The sample spans the operations: every state is some crash point's.
  // (with focusOps: the first and the last state, and both sides of the growth)
  const need = k.focusOps ? [0, 2, 3, 6] : r.perState.map((_, s) => s);
  expect(need.filter((s) => !r.perState[s]), `states no crash point reached (points per state ${r.perState.join('/')})`).toEqual([]);
  // The directory ext4kit built for the test is clean to begin with.
  const img = scratchPath('ns-htree-base.img');
  nodefs.writeFileSync(img, base);
  expectE2fsckClean(img, 'base image');
  cleanupImages();
}
