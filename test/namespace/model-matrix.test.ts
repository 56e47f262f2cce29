/**
 * Model-based random sequences across feature sets the fixed scripts (feature-matrix.test.ts) and
 * the namespace-only model (model.test.ts) leave out together: casefold with inline_data and with
 * htrees, inline_data with large_dir, 64 KiB blocks with an htree. A seeded sequence of node:fs
 * calls (mkdir, writeFile, appendFile, truncate, rename, unlink, rmdir, rm -r, link, symlink, and
 * bursts of creates that grow a directory into an index) runs through a Volume on the image and
 * through node:fs/promises on a host directory, which is the model: every call's error code must
 * match; after each batch (one open), e2fsck -fn is clean and the image's tree (names, types,
 * modes, link counts, sizes, content, targets) equals the host's; at the end the kernel mounts the
 * image and reads the same tree where it can (no 64 KiB pages, no CONFIG_UNICODE here).
 *
 * Casefolded sets run everything under /cf, made +F before the first write (so every directory
 * below it is casefolded too): the host stores each name there folded (ASCII lower case, ß → ss —
 * the kernel's fold of every name the sequence uses), the image keeps the spelling it was created
 * with and is compared folded.
 *
 * EXT4KIT_MODEL_MATRIX=all runs every set of issue 11's matrix (exploration; the default is the
 * lean combinations above), EXT4KIT_MODEL_STEPS the number of calls per set, EXT4KIT_MODEL_SEED
 * the first set's seed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { Volume } from '../../lib/node.js';
import { INODE_FLAGS } from '../../lib/ext4/inode.js';
import { mulberry32 } from '../../lib/io/prng.js';
import { debugfs, debugfsStats, expectE2fsckClean, mkfs, oracleGate, withLoopMount, type FsKind } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import { recipe } from '../helpers/images.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, cleanupImages, pattern, scratchPath } from '../ops/helpers.js';
import { snapshot, type FsApi, type Node } from '../volume/drivers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_760_000_000, nsec: 5 };

interface Config {
  name: string;
  kind: FsKind;
  blockSize: number;
  sizeMiB: number;
  mkfsOpts: string[];
  casefold?: boolean;
  /** Burst names this long: long enough that a burst or two fills a block. */
  burstNameLen: number;
  /** Names per burst at least (up to twice as many); 30 unless said. */
  burstSize?: number;
  /** Calls in the lean run, when not STEPS. */
  steps?: number;
}

const mountable = (c: Config) => c.blockSize <= 4096 && !c.casefold;

const LEAN: Config[] = [
  { name: 'casefold-inline-1k', kind: 'ext4', blockSize: 1024, sizeMiB: 16, mkfsOpts: ['-O', 'casefold,inline_data'], casefold: true, burstNameLen: 40 },
  { name: 'inline-large_dir-1k', kind: 'ext4', blockSize: 1024, sizeMiB: 16, mkfsOpts: ['-O', 'inline_data,large_dir'], burstNameLen: 40 },
  { name: 'ext4-64k-htree', kind: 'ext4', blockSize: 65536, sizeMiB: 256, mkfsOpts: [], burstNameLen: 245, burstSize: 150, steps: 60 },
];

const fromRecipe = (name: string, sizeMiB = 16): Config => {
  const r = recipe(name);
  return { name, kind: r.kind, blockSize: r.blockSize, sizeMiB: r.blockSize === 65536 ? 256 : sizeMiB, mkfsOpts: r.mkfsOpts, burstNameLen: Math.min(240, r.blockSize / 32) };
};

const ALL: Config[] = [
  ...LEAN,
  { name: 'casefold-4k', kind: 'ext4', blockSize: 4096, sizeMiB: 16, mkfsOpts: ['-O', 'casefold'], casefold: true, burstNameLen: 120 },
  ...['ext4-4k', 'ext4-1k', 'ext4-2k', 'ext4-no64bit', 'ext4-gdtcsum', 'ext4-nocsum', 'ext4-noflexbg', 'ext4-nojournal', 'ext4-inline', 'ext4-inode128', 'ext2', 'ext3-1k'].map((n) => fromRecipe(n)),
  fromRecipe('ext4-metabg', 80),
  { name: 'ext4-1k-large_dir', kind: 'ext4', blockSize: 1024, sizeMiB: 16, mkfsOpts: ['-O', 'large_dir'], burstNameLen: 40 },
  { name: 'ext4-orphan_file', kind: 'ext4', blockSize: 4096, sizeMiB: 16, mkfsOpts: ['-O', 'orphan_file'], burstNameLen: 120 },
  { name: 'casefold-inline-4k-strict', kind: 'ext4', blockSize: 4096, sizeMiB: 16, mkfsOpts: ['-O', 'casefold,inline_data', '-E', 'encoding=utf8,encoding_flags=strict'], casefold: true, burstNameLen: 120 },
];

const CONFIGS = process.env.EXT4KIT_MODEL_MATRIX === 'all' ? ALL : LEAN;
const ALL_STEPS = Number(process.env.EXT4KIT_MODEL_STEPS ?? 120);
const SEED = Number(process.env.EXT4KIT_MODEL_SEED ?? 1);
const BATCH = Number(process.env.EXT4KIT_MODEL_BATCH ?? 40);
const DEBUG = process.env.EXT4KIT_MODEL_DEBUG === '1';

/** The kernel's casefold of every name below (utf8-12.1 full folding): ASCII lower case, ß → ss. */
const fold = (s: string) => s.toLowerCase().replace(/ß/g, 'ss');

/** Folds the components under /cf of a script path (the host side of a casefolded set). */
const foldPath = (p: string) => (p === '/cf' || !p.startsWith('/cf/') ? p : '/cf/' + p.slice(4).split('/').map(fold).join('/'));

function emptyImage(c: Config): string {
  const img = scratchPath(`ns-model-matrix-${c.name}.img`);
  mkfs(c.kind, img, c.sizeMiB * 1024 * 1024, ['-b', String(c.blockSize), ...c.mkfsOpts]);
  debugfs(img, ['mkdir cf', 'sif cf mode 040755'], { write: true });
  if (c.casefold) {
    // chattr +F on the empty directory: its flags with EXT4_CASEFOLD_FL (inline kept, if it is).
    const f = debugfsStats(img, ['/cf']).get('/cf')!.flags;
    debugfs(img, [`set_inode_field /cf flags 0x${((f | INODE_FLAGS.CASEFOLD) >>> 0).toString(16)}`], { write: true });
  }
  return img;
}

type Op = { what: string; run: (p: FsApi, at: (rel: string) => string) => Promise<unknown> };

/** A seeded sequence of calls, chosen against the host tree as it is (so most of them can succeed). */
function opMaker(c: Config, seed: number) {
  const rnd = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const names = c.casefold
    ? ['a', 'A', 'b', 'Dir', 'DIR', 'dir', 'Straße', 'STRASSE', 'x' + 'Y'.repeat(60)]
    : ['a', 'b', 'c', 'dir', 'e', 'x' + 'y'.repeat(60)];
  const sizes = [0, 1, 40, 3000, 20_000, 70_000];
  let burst = 0;
  return (tree: Map<string, string>): Op => {
    const all = [...tree.keys()];
    const dirs = ['/cf', ...all.filter((p) => tree.get(p) === 'dir')];
    const files = all.filter((p) => tree.get(p) === 'file');
    const fresh = () => `${pick(dirs)}/${pick(names)}`;
    const any = () => (all.length && rnd() < 0.8 ? pick(all) : fresh());
    /** Another spelling below /cf (the root does not casefold). */
    const spell = (p: string) => (c.casefold && rnd() < 0.5 && p.startsWith('/cf/') ? '/cf/' + p.slice(4).replace(/[a-z]/g, (ch) => (rnd() < 0.5 ? ch.toUpperCase() : ch)) : p);
    const r = rnd();
    if (r < 0.14) {
      const p = fresh();
      return { what: `mkdir ${p}`, run: (f, at) => f.mkdir(at(p)) };
    }
    if (r < 0.3) {
      const p = rnd() < 0.7 ? fresh() : any(), n = pick(sizes), seedN = Math.floor(rnd() * 1000);
      return { what: `writeFile ${p} ${n}`, run: (f, at) => f.writeFile(at(spell(p)), pattern(n, seedN)) };
    }
    if (r < 0.38) {
      const p = files.length ? pick(files) : fresh(), n = pick(sizes), seedN = Math.floor(rnd() * 1000);
      return { what: `appendFile ${p} ${n}`, run: (f, at) => f.appendFile(at(spell(p)), pattern(n, seedN)) };
    }
    if (r < 0.44) {
      const p = files.length ? pick(files) : fresh(), n = pick([0, 1, 100, 5000, 90_000]);
      return { what: `truncate ${p} ${n}`, run: (f, at) => f.truncate(at(spell(p)), n) };
    }
    if (r < 0.56) {
      const a = any(), b = rnd() < 0.3 ? any() : fresh();
      return { what: `rename ${a} ${b}`, run: (f, at) => f.rename(at(spell(a)), at(spell(b))) };
    }
    if (r < 0.64) {
      const p = any();
      return { what: `unlink ${p}`, run: (f, at) => f.unlink(at(spell(p))) };
    }
    if (r < 0.68) {
      const p = any();
      return { what: `rmdir ${p}`, run: (f, at) => f.rmdir(at(spell(p))) };
    }
    if (r < 0.72) {
      const p = pick(dirs.length > 1 ? dirs.slice(1) : ['/cf/none']);
      return { what: `rm -r ${p}`, run: (f, at) => f.rm(at(spell(p)), { recursive: true }) };
    }
    if (r < 0.8) {
      const a = files.length && rnd() < 0.7 ? pick(files) : any(), b = fresh();
      return { what: `link ${a} ${b}`, run: (f, at) => f.link(at(spell(a)), at(b)) };
    }
    if (r < 0.86) {
      const p = fresh(), t = pick(['a', '../b', 'q'.repeat(70), 't'.repeat(300)]);
      return { what: `symlink ${p} → ${t.length}`, run: (f, at) => f.symlink(t, at(p)) };
    }
    // A burst of creates in one directory, /cf more often than not: grows it past a block, into an htree.
    const d = rnd() < 0.6 ? '/cf' : pick(dirs), k = burst++, n = Math.floor((c.burstSize ?? 30) * (1 + rnd()));
    const burstName = (i: number) => `B${k}-${i}-${(c.casefold ? 'Mixed' : 'mixed').padEnd(c.burstNameLen, 'z')}`;
    return {
      what: `burst ${d} ${n}`,
      run: async (f, at) => {
        for (let i = 0; i < n; i++) await f.writeFile(at(`${d}/${burstName(i)}`), i % 7 === 0 ? pattern(500, i) : '');
      },
    };
  };
}

/** The call's error code ('ok' when none) and message. */
async function outcomeOf(fn: () => Promise<unknown>): Promise<[string, string]> {
  try {
    await fn();
    return ['ok', ''];
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (!code) throw e;
    return [code, (e as Error).message];
  }
}

/** Script path → type ('dir', 'file', 'symlink') of everything under the host's /cf: what the next call is chosen from. */
function hostPaths(hostDir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const e of nodefs.readdirSync(hostDir + rel, { withFileTypes: true })) {
      const p = `${rel}/${e.name}`;
      out.set(p, e.isDirectory() ? 'dir' : e.isFile() ? 'file' : 'symlink');
      if (e.isDirectory()) walk(p);
    }
  };
  walk('/cf');
  return out;
}

/** The inode flags of /cf and every directory below it. */
async function dirFlags(vol: Volume): Promise<number[]> {
  const flags = [(await vol.fs.resolve('/cf')).flags];
  const walk = async (p: string): Promise<void> => {
    const names: string[] = [];
    for await (const e of vol.fs.readdir(p)) if (e.name !== '.' && e.name !== '..') names.push(e.name);
    for (const n of names) {
      const ino = await vol.fs.resolve(`${p}/${n}`, { followLast: false });
      if (ino.type !== 'dir') continue;
      flags.push(ino.flags);
      await walk(`${p}/${n}`);
    }
  };
  await walk('/cf');
  return flags;
}

/** Keys (paths) folded under /cf, for a casefolded set's image. */
function folded(t: Record<string, Node>): Record<string, Node> {
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [foldPath(k), v]));
}

describe.skipIf(!HAVE_E2FSPROGS)('random node:fs sequences across feature sets, against the host', () => {
  for (const [i, c] of CONFIGS.entries()) {
    const STEPS = process.env.EXT4KIT_MODEL_STEPS ? ALL_STEPS : (c.steps ?? ALL_STEPS);
    it(`${c.name}: ${STEPS} calls, seed ${SEED + i}`, async () => {
      const img = emptyImage(c);
      const hostDir = tmpDir(`ns-model-matrix-${c.name}`);
      nodefs.chmodSync(hostDir, 0o755);
      nodefs.mkdirSync(path.join(hostDir, 'cf'), { mode: 0o755 });
      nodefs.mkdirSync(path.join(hostDir, 'lost+found'), { mode: 0o700 });
      const hostAt = (rel: string) => hostDir + (c.casefold ? foldPath(rel) : rel);
      const hostTree = () => snapshot(nodefs.promises, (rel) => (rel === '/' ? hostDir : hostDir + rel));
      const next = opMaker(c, SEED + i);
      const counts: Record<string, number> = {};
      const seen: number[] = [];
      for (let step = 0; step < STEPS; ) {
        {
          await using vol = await Volume.open(img, { write: true, now: NOW, umask: 0o022 });
          for (const end = Math.min(STEPS, step + BATCH); step < end; step++) {
            const op = next(hostPaths(hostDir));
            let [hc] = await outcomeOf(() => op.run(nodefs.promises, hostAt));
            const [ic, message] = await outcomeOf(() => op.run(vol.promises, (rel) => rel));
            if (DEBUG) console.log(`${step} ${op.what}: host ${hc}, image ${ic} ${message}`);
            // rename(2) over a non-empty directory: Linux says EEXIST or ENOTEMPTY.
            if (hc === 'EEXIST' && ic === 'ENOTEMPTY' && op.what.startsWith('rename')) hc = 'ENOTEMPTY';
            expect(ic, `${c.name} step ${step}: ${op.what} (host ${hc}; ${message})`).toBe(hc);
            const key = `${op.what.split(' ')[0]} ${hc}`;
            counts[key] = (counts[key] ?? 0) + 1;
          }
        }
        expectE2fsckClean(img, `${c.name} after step ${step}`);
        await using ro = await Volume.open(img, { umask: 0o022 });
        seen.push(...(await dirFlags(ro)));
        const mine = await snapshot(ro.promises, (rel) => rel);
        expect(c.casefold ? folded(mine) : mine, `${c.name}: tree after step ${step}`).toEqual(await hostTree());
      }
      for (const op of ['mkdir', 'writeFile', 'rename', 'unlink', 'link', 'symlink', 'burst']) expect(counts[`${op} ok`] ?? 0, `${op} ok`).toBeGreaterThan(0);
      // The sequence reached the shapes the set is about: an htree (with dir_index), an inline directory (inline_data), casefolded ones.
      const any = (f: number) => seen.some((x) => (x & f) === f);
      if (LEAN.includes(c)) expect(any(INODE_FLAGS.INDEX | (c.casefold ? INODE_FLAGS.CASEFOLD : 0)), 'an htree directory').toBe(true);
      if (LEAN.includes(c) && c.mkfsOpts.join(',').includes('inline_data')) expect(any(INODE_FLAGS.INLINE_DATA | (c.casefold ? INODE_FLAGS.CASEFOLD : 0)), 'an inline directory').toBe(true);
      if (!mountable(c)) return;
      if (oracleGate(CAN_MOUNT ? null : (LOOP_SKIP ?? 'loop mounts unavailable'))) return;
      const want = await hostTree();
      await withLoopMount(img, async (mp) => {
        expect(await snapshot(nodefs.promises, (rel) => (rel === '/' ? mp : mp + rel)), `${c.name}: the kernel's view`).toEqual(want);
      }, { readOnly: true });
      nodefs.rmSync(hostDir, { recursive: true, force: true });
    }, 120_000);
  }
});
