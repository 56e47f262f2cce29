/**
 * Directories an import makes are written whole before each commit (lib/ext4/dir-build.ts), not
 * name by name (issue 11, Measure: import speed):
 * - one block: linear, as inserts would leave it; past one block with dir_index: an htree as
 *   `e2fsck -D` builds it — leaves in hash order at logical blocks 1.. (inserts with splits leave
 *   them in split order), an index level once the root is full; without dir_index: linear blocks;
 * - e2fsck (pass 2 checks the htree) is clean over 1k/4k blocks, metadata_csum on/off, large_dir;
 *   debugfs lists every name; the kernel finds every name through a loop mount;
 * - the same input gives the same bytes.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { importInto } from './helpers.js';
import type { TreeEntry } from '../../lib/ops/tree-entry.js';
import { debugfs, expectE2fsckClean, mkfs, oracleGate, skipReason, withLoopMount } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';
import { HAVE_E2FSPROGS } from '../ops/helpers.js';

const NOW = { sec: 1_700_000_000, nsec: 0 };
const skipLoop = oracleGate(skipReason('loop'));
const made: string[] = [];
afterAll(() => {
  for (const p of made) fs.rmSync(p, { force: true });
});

const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(5, '0')}`);

/** Directories `small` (20 names), `wide` (`wide` names: several leaves), and `deep` when given; empty files, a few subdirectories and symlinks. */
function tree(wide: number, deep = 0): { entries: TreeEntry[]; dirs: Map<string, string[]> } {
  const dirs = new Map<string, string[]>([['small', names('s', 20)], ['wide', names('entry', wide)]]);
  if (deep) dirs.set('deep', names('n', deep));
  const entries: TreeEntry[] = [];
  for (const [d, list] of dirs) {
    entries.push({ path: d, type: 'dir', mode: 0o755, uid: 0, gid: 0 });
    list.forEach((n, i) => {
      const p = `${d}/${n}`;
      if (i % 97 === 5) entries.push({ path: p, type: 'dir', mode: 0o755, uid: 0, gid: 0 });
      else if (i % 89 === 7) entries.push({ path: p, type: 'symlink', mode: 0o777, uid: 0, gid: 0, target: '../small' });
      else entries.push({ path: p, type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, data: new Uint8Array(0) });
    });
  }
  return { entries, dirs };
}

/** debugfs's listing of a directory: names without '.' and '..'. */
function listed(img: string, dir: string): string[] {
  return debugfs(img, [`ls -p /${dir}`]).split('\n').map((l) => l.split('/')[5]).filter((n): n is string => !!n && n !== '.' && n !== '..').sort();
}

/** The root's index slots (hash, logical block) and its indirect levels, from debugfs's htree dump. */
function rootIndex(img: string, dir: string): { levels: number; blocks: number[] } {
  const out = debugfs(img, [`htree /${dir}`]);
  const levels = Number(/Indirect levels: (\d+)/.exec(out)?.[1] ?? -1);
  const count = Number(/Number of entries \(count\): (\d+)/.exec(out)?.[1] ?? 0);
  const blocks = [...out.matchAll(/Entry #\d+: Hash 0x[0-9a-f]+, block (\d+)/g)].slice(0, count).map((m) => Number(m[1]));
  return { levels, blocks };
}

// Journals big enough for the whole tree in one transaction (else `wide` is built from the names of
// the first and takes the rest by insert: the last case).
const cases: { tag: string; bs: number; opts: string[]; wide: number; spans?: boolean }[] = [
  { tag: '4k', bs: 4096, opts: ['-I', '128'], wide: 1500 },
  { tag: '4k-nocsum', bs: 4096, opts: ['-I', '128', '-O', '^metadata_csum'], wide: 1500 },
  { tag: '1k', bs: 1024, opts: ['-J', 'size=4'], wide: 400 },
  { tag: '1k-nocsum-large_dir', bs: 1024, opts: ['-J', 'size=4', '-O', '^metadata_csum,large_dir'], wide: 400 },
  { tag: '1k-no-dir_index', bs: 1024, opts: ['-J', 'size=4', '-O', '^dir_index'], wide: 400 },
  { tag: '4k-across-transactions', bs: 4096, opts: [], wide: 1500, spans: true },
];

describe.skipIf(!HAVE_E2FSPROGS)('directories an import makes, built whole', () => {
  for (const c of cases) {
    it(`${c.tag}: e2fsck clean, debugfs lists every name${c.spans ? '' : ', leaves in hash order'}`, async () => {
      const img = tmpPath(`dir-build-${c.tag}.img`);
      made.push(img);
      mkfs('ext4', img, 16 << 20, ['-b', String(c.bs), '-N', '4096', ...c.opts]);
      const { entries, dirs } = tree(c.wide);
      await importInto(img, entries, NOW);
      expectE2fsckClean(img, c.tag);
      for (const [d, list] of dirs) expect(listed(img, d), `${c.tag} ${d}`).toEqual([...list].sort());
      const indexed = !c.opts.join().includes('^dir_index');
      const stat = debugfs(img, ['stat /wide', 'stat /small']);
      expect(stat.match(/Flags: 0x([0-9a-f]+)/g)!.map((f) => (parseInt(f.slice(9), 16) & 0x1000) !== 0), c.tag).toEqual([indexed, false]);
      if (indexed && !c.spans) {
        const r = rootIndex(img, 'wide');
        expect(r.levels).toBe(0);
        // e2fsck -D's order: leaf i at logical block i + 1 (inserts with splits scatter them)
        expect(r.blocks, c.tag).toEqual(r.blocks.map((_, i) => i + 1));
        expect(r.blocks.length).toBeGreaterThan(2);
      }
    }, 60_000);
  }

  it('the same input gives the same bytes', async () => {
    const a = tmpPath('dir-build-same-a.img'), b = tmpPath('dir-build-same-b.img');
    made.push(a, b);
    mkfs('ext4', a, 16 << 20, ['-b', '1024', '-N', '4096']);
    fs.copyFileSync(a, b);
    await importInto(a, tree(400).entries, NOW);
    await importInto(b, tree(400).entries, NOW);
    expect(Buffer.compare(fs.readFileSync(a), fs.readFileSync(b))).toBe(0);
  }, 60_000);
});

describe.skipIf(!!skipLoop)('built htree directories through the kernel', () => {
  it('two index levels (1k blocks, 7,000 names in one transaction) and one (4k): e2fsck clean, the kernel finds every name', async () => {
    for (const c of [{ tag: '1k-two-levels', bs: 1024, wide: 400, deep: 7000, opts: ['-I', '128', '-J', 'size=16'] }, { tag: '4k', bs: 4096, wide: 1500, deep: 0, opts: [] }]) {
      const img = tmpPath(`dir-build-kernel-${c.tag}.img`);
      made.push(img);
      mkfs('ext4', img, 64 << 20, ['-b', String(c.bs), '-N', '12000', ...c.opts]);
      const { entries, dirs } = tree(c.wide, c.deep);
      await importInto(img, entries, NOW);
      expectE2fsckClean(img, c.tag);
      if (c.deep) {
        const r = rootIndex(img, 'deep');
        expect(r.levels, c.tag).toBe(1);
        expect(r.blocks.length).toBeGreaterThan(1);
      }
      await withLoopMount(img, (mp) => {
        for (const [d, list] of dirs) {
          expect(fs.readdirSync(path.join(mp, d)).sort(), `${c.tag} ${d}`).toEqual([...list].sort());
          // each name looked up by the kernel (dx_probe through the index)
          for (const n of list) expect(fs.lstatSync(path.join(mp, d, n)).ino, `${c.tag} ${d}/${n}`).toBeGreaterThan(11);
        }
      }, { readOnly: true });
    }
  }, 120_000);
});
