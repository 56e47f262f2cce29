/**
 * Hostile input for the write side (issue 8): seeded damaged images — byte flips in the
 * superblock, descriptors, bitmaps, inode tables, extent-tree, directory and journal blocks — and
 * every write call on each (allocate, movedata, pwrite, truncate, defrag, replay), plus the
 * read-only reports (frag, freefrag, check, free, fsmap, ls -R). For every case:
 *  - a call that fails throws an Ext4Error and leaves the image byte-for-byte unchanged;
 *  - a call that succeeds leaves an image on which `e2fsck -fn` reports no KIND of problem it did
 *    not report before (numbers normalised away: "Inode N …" is one kind);
 *  - nothing hangs (a watchdog kills the worker) and nothing throws an untyped exception.
 * Base images are 4 MiB, made by mkfs -d and then written by ext4kit so /frag is fragmented and
 * /space holds space for movedata; one base carries an unreplayed journal transaction.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as nodefs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { Prng } from '../../lib/io/prng.js';
import { allocate } from '../../lib/ops/allocate.js';
import { openFile } from '../../lib/ops/file.js';
import { descBlockCount, descriptorBlockLocation, inodeTableBlocks } from '../../lib/ext4/geometry.js';
import { e2fsckProblems, expectE2fsckClean, mkfs, run } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { ToolShell } from '../helpers/tool-shell.js';
import { prngBytes } from '../helpers/tree.js';
import { NOW, WRITE_OPS, type WriteCase, type WriteOp, type WriteOutcome } from './write-worker.js';

/** Damaged images per base (every one gets every write call and the reports); EXT4KIT_WRITE_FUZZ=N runs more (1,040 images were run by hand). */
const IMAGES_PER_BASE = Number(process.env.EXT4KIT_WRITE_FUZZ ?? 75);
const CASE_MS = 60_000;
/** Debugging: run only these images, e.g. EXT4KIT_WRITE_FUZZ_ONLY='nojournal#48,nocsum#119'. */
const ONLY = process.env.EXT4KIT_WRITE_FUZZ_ONLY?.split(',');

interface Base {
  name: string;
  path: string;
  blockSize: number;
  /** Damage targets: [label, first byte, length]. */
  regions: [string, number, number][];
  kinds: Set<string>;
}

/** One "kind" of e2fsck problem: the line with numbers and names normalised away. */
function kindsOf(output: string): Set<string> {
  const kinds = new Set<string>();
  for (const l of e2fsckProblems(output)) {
    // "Block bitmap differences:  -(1--3) +7 -9": one kind per sign (blocks in use but unowned,
    // owned but free), however many ranges the line lists.
    const diff = /^(Block|Inode) bitmap differences:((?:\s+[-+]\(?\d+(?:--\d+)?\)?)+)\s*$/.exec(l.trim());
    if (diff) {
      for (const sign of new Set(diff[2]!.trim().split(/\s+/).map((t) => t[0]))) kinds.add(`${diff[1]} bitmap differences: ${sign}N`);
      continue;
    }
    kinds.add(l.replace(/\/tmp\/\S+/g, 'IMG').replace(/'[^']*'|"[^"]*"|<[^>]*>/g, 'Q').replace(/0x[0-9a-f]+|\d+/gi, 'N').trim());
  }
  return kinds;
}

function fsckKinds(img: string): Set<string> {
  const r = run('e2fsck', ['-fn', img], { okStatus: true, env: { LANG: 'C', LC_ALL: 'C' } });
  return kindsOf(r.stdout + r.stderr);
}

/** The same, through the tool shell (the cases' e2fsck runs overlap the workers' calls). */
async function fsckKindsVia(sh: ToolShell, img: string): Promise<Set<string>> {
  const r = await sh.run('e2fsck', ['-fn', img]);
  return kindsOf(r.stdout + r.stderr);
}

async function buildBase(name: string, mkfsOpts: string[], pendingJournal = false): Promise<Base> {
  const src = tmpDir(`wfuzz-src-${name}`);
  nodefs.mkdirSync(`${src}/d`);
  for (let i = 0; i < 40; i++) nodefs.writeFileSync(`${src}/d/file-with-a-long-name-${i}`, prngBytes(`${name}-d${i}`, 100 + i * 37));
  nodefs.writeFileSync(`${src}/small`, prngBytes(`${name}-small`, 5000));
  nodefs.writeFileSync(`${src}/frag`, '');
  nodefs.writeFileSync(`${src}/other`, '');
  nodefs.writeFileSync(`${src}/space`, '');
  const path = tmpPath(`wfuzz-${name}.img`);
  mkfs('ext4', path, 4 * 1024 * 1024, ['-b', '1024', ...mkfsOpts], src);
  const bytes = new Uint8Array(nodefs.readFileSync(path));
  const dev = new MemoryDevice(bytes, { name });
  let fs = await Filesystem.open(dev, { write: true, now: NOW });
  const bs = fs.blockSize;
  const frag = await openFile(fs, '/frag');
  const other = await openFile(fs, '/other');
  // /frag: 24 blocks written back to front, interleaved with /other: one extent per block.
  for (let k = 23; k >= 0; k--) {
    await frag.pwrite(prngBytes(`${name}-frag-${k}`, bs), k * bs);
    await other.pwrite(prngBytes(`${name}-other-${k}`, bs), (23 - k) * bs);
  }
  await allocate(fs, '/space', { offset: 0, len: 24 * bs });
  await fs.close();
  let image = bytes;
  if (pendingJournal) {
    // A committed but unreplayed transaction: snapshot the device before close checkpoints it.
    fs = await Filesystem.open(dev, { write: true, now: NOW });
    await (await openFile(fs, '/small')).truncate(1000);
    image = bytes.slice();
    await fs.close();
  }
  nodefs.writeFileSync(path, image);
  if (!pendingJournal) expectE2fsckClean(path, `base ${name}`);

  // Where to damage, located on the clean image.
  const ro = await Filesystem.open(new MemoryDevice(image.slice(), { readOnly: true }), { journalRecovery: 'ignore' });
  const regions: [string, number, number][] = [['superblock', 1024, 1024]];
  const sb = ro.sb;
  for (let i = 0; i < descBlockCount(sb); i++) regions.push([`descriptor block ${i}`, descriptorBlockLocation(sb, i) * bs, bs]);
  for (let g = 0; g < sb.groupCount; g++) {
    const gd = await ro.group(g);
    regions.push([`group ${g} block bitmap`, gd.blockBitmap * bs, bs]);
    regions.push([`group ${g} inode bitmap`, gd.inodeBitmap * bs, bs]);
    if (g === 0) regions.push(['group 0 inode table (first blocks)', gd.inodeTable * bs, Math.min(inodeTableBlocks(sb), 16) * bs]);
  }
  for (const p of ['/', '/d', '/frag', '/space']) {
    const map = await ro.fileMap(await ro.resolve(p));
    for (const b of map.metadataBlocks) regions.push([`${p} extent tree block ${b}`, b * bs, bs]);
    if (p === '/' || p === '/d') for (const e of map.extents) regions.push([`${p} directory blocks at ${e.physical}`, e.physical * bs, e.length * bs]);
  }
  if (sb.s_journal_inum) {
    const jmap = await ro.fileMap(await ro.readInode(sb.s_journal_inum));
    const j0 = jmap.extents[0]!;
    regions.push(['journal superblock', j0.physical * bs, bs]);
    if (pendingJournal) regions.push(['journal log', (j0.physical + 1) * bs, 8 * bs]);
  }
  await ro.close();
  return { name, path, blockSize: bs, regions, kinds: fsckKinds(path) };
}

function makeCases(bases: Base[]): { cases: WriteCase[]; images: Map<string, WriteCase[]> } {
  const cases: WriteCase[] = [];
  const images = new Map<string, WriteCase[]>();
  let id = 0;
  for (const base of bases) {
    const rnd = new Prng(`write-fuzz-${base.name}`);
    for (let i = 0; i < IMAGES_PER_BASE; i++) {
      const flips: [number, number][] = [];
      const labels: string[] = [];
      const n = 1 + rnd.int(3);
      for (let k = 0; k < n; k++) {
        const [label, start, len] = base.regions[rnd.int(base.regions.length)]!;
        const off = start + rnd.int(len);
        flips.push([off, rnd.chance(0.5) ? 1 << rnd.int(8) : 1 + rnd.int(255)]);
        labels.push(`${label} +${off - start}`);
      }
      const key = `${base.name}#${i}`;
      if (ONLY && !ONLY.includes(key)) continue;
      const group: WriteCase[] = [];
      for (const op of [...WRITE_OPS, 'reports'] as WriteOp[]) group.push({ id: id++, base: base.name, op, label: `${key} ${labels.join(', ')}`, flips });
      images.set(key, group);
      cases.push(...group);
    }
  }
  return { cases, images };
}

type Result = { outcome: WriteOutcome | { kind: 'hang' }; afterPath?: string };

async function runCases(bases: Base[], cases: WriteCase[], scratch: string, onDone: (c: WriteCase, r: Result, checked: () => void) => void): Promise<void> {
  const boot = fileURLToPath(new URL('../read/fuzz-worker-boot.mjs', import.meta.url));
  const entry = fileURLToPath(new URL('./write-worker.ts', import.meta.url));
  const byId = new Map(cases.map((c) => [c.id, c]));
  const done = new Set<number>();
  let remaining = cases;
  while (remaining.length) {
    await new Promise<void>((resolve, reject) => {
      const w = new Worker(boot, {
        workerData: {
          entry,
          writeFuzz: true,
          base: Object.fromEntries(bases.map((b) => [b.name, b.path])),
          blockSize: Object.fromEntries(bases.map((b) => [b.name, b.blockSize])),
          cases: remaining,
          scratch,
        },
      });
      let current: number | null = null;
      let timer: NodeJS.Timeout | null = null;
      let startup: NodeJS.Timeout | null = setTimeout(() => {
        void w.terminate();
        reject(new Error('the write-fuzz worker did not start within 60 s'));
      }, 60_000);
      const clear = () => {
        if (timer) clearTimeout(timer);
        if (startup) clearTimeout(startup);
        startup = null;
      };
      w.on('message', (m: { kind: string; id: number; outcome?: WriteOutcome; afterPath?: string }) => {
        if (startup) clearTimeout(startup);
        startup = null;
        if (m.kind === 'start') {
          current = m.id;
          if (timer) clearTimeout(timer);
          timer = setTimeout(() => {
            if (current !== null) {
              done.add(current);
              onDone(byId.get(current)!, { outcome: { kind: 'hang' } }, () => undefined);
            }
            void w.terminate();
          }, CASE_MS);
        } else {
          if (timer) clearTimeout(timer);
          current = null;
          done.add(m.id);
          onDone(byId.get(m.id)!, { outcome: m.outcome!, afterPath: m.afterPath }, () => w.postMessage({ kind: 'checked' }));
        }
      });
      w.on('error', (e) => {
        clear();
        if (current !== null) {
          done.add(current);
          onDone(byId.get(current)!, { outcome: { kind: 'other-error', name: 'WorkerError', message: String((e as Error)?.stack ?? e) } }, () => undefined);
        }
        resolve();
      });
      w.on('exit', () => {
        clear();
        resolve();
      });
    });
    const before = remaining.length;
    remaining = remaining.filter((c) => !done.has(c.id));
    if (remaining.length === before) throw new Error('the write-fuzz worker made no progress');
  }
}

describe('hostile input, write side', () => {
  let bases: Base[];
  beforeAll(async () => {
    bases = [
      await buildBase('csum', []),
      await buildBase('nocsum', ['-O', '^metadata_csum']),
      await buildBase('nojournal', ['-O', '^has_journal,^metadata_csum']),
      await buildBase('pending', [], true),
    ];
  }, 120_000);

  it('every write call on every damaged image: typed error and unchanged, or no new kind of e2fsck problem; no hang', async () => {
    const { cases, images } = makeCases(bases);
    const imageOf = new Map<number, string>();
    for (const [key, group] of images) for (const c of group) imageOf.set(c.id, key);
    const kindsBefore = new Map<string, Promise<Set<string>>>();
    const bad: string[] = [];
    const counts: Record<string, number> = {};
    // e2fsck runs in one long-lived shell, overlapping the two workers' calls (see tool-shell.ts).
    const sh = new ToolShell({ LANG: 'C', LC_ALL: 'C' });
    const checks: Promise<void>[] = [];
    const damagedImage = (c: WriteCase) => {
      const damaged = new Uint8Array(nodefs.readFileSync(bases.find((b) => b.name === c.base)!.path));
      for (const [off, x] of c.flips) damaged[off]! ^= x;
      return damaged;
    };
    const beforeKinds = async (c: WriteCase): Promise<Set<string>> => {
      const scratch = tmpPath('wfuzz-before.img');
      const damaged = damagedImage(c);
      nodefs.writeFileSync(scratch, damaged);
      try {
        // e2fsck -n does not replay a journal: compare with the state e2fsck's own replay gives.
        if (new DataView(damaged.buffer).getUint32(1024 + 0x60, true) & 0x4) await sh.run('e2fsck', ['-p', '-E', 'journal_only', scratch]);
        return await fsckKindsVia(sh, scratch);
      } finally {
        nodefs.rmSync(scratch, { force: true });
      }
    };
    const checkAfter = async (c: WriteCase, where: string, afterPath: string) => {
      const img = imageOf.get(c.id)!;
      let beforeP = kindsBefore.get(img);
      if (!beforeP) kindsBefore.set(img, (beforeP = beforeKinds(c)));
      const [before, after] = await Promise.all([beforeP, fsckKindsVia(sh, afterPath)]);
      const added = [...after].filter((k) => !before.has(k));
      if (added.length && process.env.EXT4KIT_WRITE_FUZZ_KEEP) {
        const keep = `${process.env.EXT4KIT_WRITE_FUZZ_KEEP}/${img.replace('#', '-')}-${c.op}`;
        nodefs.copyFileSync(afterPath, `${keep}-after.img`);
        nodefs.writeFileSync(`${keep}-before.img`, damagedImage(c));
      }
      if (added.length) bad.push(`${where}: succeeded, and e2fsck -fn now also reports:\n    ${added.join('\n    ')}`);
    };
    const onDone = (c: WriteCase, r: Result, checked: () => void) => {
      const o = r.outcome;
      const key = `${c.op}:${o.kind === 'ext4error' ? o.code : o.kind}`;
      counts[key] = (counts[key] ?? 0) + 1;
      const where = `${c.op} on ${c.label}`;
      if (o.kind === 'hang') bad.push(`${where}: HANG (> ${CASE_MS} ms)`);
      else if (o.kind === 'other-error') bad.push(`${where}: untyped ${o.name}: ${o.message}\n${o.stack ?? ''}`);
      else if (o.kind === 'ext4error' && o.changed) bad.push(`${where}: failed with ${o.code} (${o.message}) but changed the image`);
      const afterPath = r.afterPath;
      if (!afterPath) return;
      const release = () => {
        nodefs.rmSync(afterPath, { force: true });
        checked();
      };
      if (o.kind === 'ok-changed') checks.push(checkAfter(c, where, afterPath).finally(release));
      else release();
    };
    const half = (k: number) => cases.filter((c) => Number(imageOf.get(c.id)!.split('#')[1]) % 2 === k);
    const dir = tmpDir('wfuzz-after');
    try {
      await Promise.all([runCases(bases, half(0), dir, onDone), runCases(bases, half(1), dir, onDone)]);
      await Promise.all(checks);
    } finally {
      sh.close();
    }
    expect(bad.slice(0, 40).join('\n')).toBe('');
    // The fuzz must reach the code under test: some calls succeed on damaged images, some fail.
    expect(Object.keys(counts).some((k) => k.endsWith(':ok-changed'))).toBe(true);
    expect(Object.keys(counts).some((k) => /:E[A-Z]+$/.test(k))).toBe(true);
  }, 600_000);
});
