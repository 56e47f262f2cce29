/**
 * What a crash can leave when writeFile or appendFile CREATES the file (lib/ops/write-file.ts):
 * no name, or the name with its whole content — never an empty or partial file. Through the
 * one-transaction path (a content that fits) and through the temporary inode (a stream longer
 * than the buffer: several transactions build it, one names it), on ext4 (extents) and ext3
 * (indirect blocks). Every crash point (torn 1 KiB writes, seeded lost subsets) through ext4kit's
 * replay; a sample through e2fsck's and the kernel's (namespace-points.ts).
 */
import { describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { appendFile, writeFile } from '../../lib/ops/write-file.js';
import { mkfsBytes, type FsKind } from '../helpers/tools.js';
import { HAVE_E2FSPROGS, chunksOf, pattern } from '../ops/helpers.js';
import { runNsCrashCase, type NsCrashCase } from './namespace-points.js';

const K = 1024;
const NOW = { sec: 1_750_000_000, nsec: 0 };

function baseImage(kind: FsKind): Uint8Array {
  return mkfsBytes(kind, 4 * 1024 * 1024, ['-b', String(K)], (src) => {
    nodefs.mkdirSync(path.join(src, 'd'));
    for (let i = 0; i < 5; i++) nodefs.writeFileSync(path.join(src, 'd', `old-${i}`), pattern(700 * i, 40 + i));
  });
}

describe.skipIf(!HAVE_E2FSPROGS)('crash points of a writeFile that creates the file', () => {
  it('every point shows no name or the whole content (ext4kit, e2fsck, Linux)', async () => {
    const streamed = pattern(30 * K + 9, 4), small = pattern(12 * K + 5, 5), appended = pattern(9 * K + 1, 6);
    const view = { dirs: ['/d'], contents: ['/d/new'] };
    const cases: [FsKind, Omit<NsCrashCase, 'base' | 'granularity' | 'subsetsPerEpoch' | 'maxPoints' | 'e2fsckSample' | 'linuxSample'>, number][] = [
      ['ext4', { name: 'ext4: a stream through a temporary inode', seed: 81, view, now: NOW, ops: [{ name: 'writeFile /d/new (stream)', run: (f) => writeFile(f, '/d/new', chunksOf(streamed, 3001), { bufferBytes: 8 * K }) }] }, 4],
      ['ext4', { name: 'ext4: one transaction', seed: 82, view, now: NOW, ops: [{ name: 'writeFile /d/new', run: (f) => writeFile(f, '/d/new', small) }] }, 1],
      ['ext4', { name: 'ext4: appendFile creating the file', seed: 83, view, now: NOW, ops: [{ name: 'appendFile /d/new', run: (f) => appendFile(f, '/d/new', appended) }] }, 1],
      ['ext3', { name: 'ext3: a stream through a temporary inode', seed: 84, view, now: NOW, ops: [{ name: 'writeFile /d/new (stream)', run: (f) => writeFile(f, '/d/new', chunksOf(streamed, 3001), { bufferBytes: 8 * K }) }] }, 4],
    ];
    const bases = new Map<FsKind, Uint8Array>();
    const bad: string[] = [], lines: string[] = [];
    for (const [kind, c, minCommits] of cases) {
      if (!bases.has(kind)) bases.set(kind, baseImage(kind));
      const r = await runNsCrashCase({ ...c, base: bases.get(kind)!, granularity: K, subsetsPerEpoch: 1, maxPoints: 160, e2fsckSample: 3, linuxSample: 1 });
      lines.push(`${c.name}: ${r.checked} of ${r.all} points: absent ${r.perState[0]}, whole ${r.perState[1]}; ${r.commitsPerOp[0]} transactions; e2fsck ${r.fscked}, Linux ${r.linux}`);
      // The stream really goes through several transactions (the temporary inode), the rest through one.
      if (r.commitsPerOp[0]! < minCommits) bad.push(`${c.name}: ${r.commitsPerOp[0]} transactions, expected at least ${minCommits}`);
      bad.push(...r.bad);
    }
    console.log(lines.join('\n'));
    expect(bad, bad.slice(0, 10).join('\n')).toEqual([]);
  }, 120_000);
});
