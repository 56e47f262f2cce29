/**
 * Issue 11 items 7 and 8: `ext4kit import` / `export` of whole trees, as a
 * host directory and as tar. Oracles: e2fsck -fn after every write; the
 * kernel (loop mount) reading the imported tree, compared with the source
 * tree on the host (types, content, modes, owners, ns mtimes, xattrs, link
 * counts, device numbers, symlink targets, sparse files' allocation);
 * GNU tar making the archive we import and reading the one we export;
 * reproducibility (the same import into two copies of an image, with a fixed
 * clock, gives the same bytes).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { expectE2fsckClean, mkfs, oracleGate, run, skipReason, withLoopMount } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { prngBytes, snapshotTree, type Entry } from '../helpers/tree.js';
import { cliInProcess as cli } from './helpers.js';

const skip = oracleGate(skipReason('loop'));

/** mtimes with nanoseconds, some before 1970 and past 2038 (ns times need 256-byte inodes: both images have them). */
const PY_TIMES = String.raw`
import json, os, sys
for p, ns in json.load(sys.stdin):
    os.utime(p, ns=(int(ns), int(ns)), follow_symlinks=False)
`;
const PY_XATTRS = String.raw`
import json, os, sys
for p, n, v in json.load(sys.stdin):
    os.setxattr(p, n, bytes.fromhex(v), follow_symlinks=False)
`;

function py(script: string, input: unknown): void {
  const r = spawnSync(fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3', ['-c', script], { input: JSON.stringify(input), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python3: ${r.stderr}`);
}

/** The host tree: every type, hard links, xattrs, a sparse file, nested dirs, a 1,000-entry dir; seeded. */
function buildSource(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'a/b/c/d'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'big'));
  fs.mkdirSync(path.join(dir, 'empty'));
  for (const [i, n] of [0, 1, 59, 60, 4095, 4096, 4097, 65537, 300_000, 3_000_001].entries()) fs.writeFileSync(path.join(dir, `a/f${i}`), prngBytes(`f${i}`, n));
  fs.writeFileSync(path.join(dir, 'a/b/c/d/deep.txt'), 'deep\n');
  for (let i = 0; i < 1000; i++) fs.writeFileSync(path.join(dir, `big/e${String(i).padStart(4, '0')}`), i % 7 === 0 ? `entry ${i}\n` : '');
  // hard links: three names of one file, one across directories
  fs.writeFileSync(path.join(dir, 'a/h1'), 'linked\n');
  fs.linkSync(path.join(dir, 'a/h1'), path.join(dir, 'a/h2'));
  fs.linkSync(path.join(dir, 'a/h1'), path.join(dir, 'a/b/h3'));
  fs.symlinkSync('f1', path.join(dir, 'a/fast'));
  fs.symlinkSync('x'.repeat(200), path.join(dir, 'a/slow'));
  // sparse: data, a 1 MiB hole, data, a hole to the end
  const fd = fs.openSync(path.join(dir, 'sparse'), 'w');
  fs.writeSync(fd, prngBytes('s1', 5000), 0, 5000, 0);
  fs.writeSync(fd, prngBytes('s2', 3000), 0, 3000, 1 << 20);
  fs.ftruncateSync(fd, 4 << 20);
  fs.closeSync(fd);
  run('mkfifo', [path.join(dir, 'fifo')]);
  run('mknod', [path.join(dir, 'cdev'), 'c', '1', '7']);
  run('mknod', [path.join(dir, 'bdev'), 'b', '300', '70000']);
  fs.chmodSync(path.join(dir, 'a/f2'), 0o4755);
  fs.chmodSync(path.join(dir, 'a/f3'), 0o2750);
  fs.chmodSync(path.join(dir, 'empty'), 0o1777);
  fs.lchownSync(path.join(dir, 'a/f4'), 1000, 100);
  fs.lchownSync(path.join(dir, 'a/fast'), 70000, 70001);
  fs.lchownSync(path.join(dir, 'a/b'), 4242, 4343);
  py(PY_XATTRS, [
    [path.join(dir, 'a/f1'), 'user.comment', Buffer.from('a comment').toString('hex')],
    [path.join(dir, 'a/f1'), 'trusted.bin', '00ff10'],
    [path.join(dir, 'a/b'), 'user.dir', Buffer.from('on a dir').toString('hex')],
    [path.join(dir, 'a/f5'), 'user.big', prngBytes('xb', 800).toString('hex')],
    [path.join(dir, 'a/slow'), 'trusted.onlink', '0102'],
  ]);
  const times: [string, string][] = [];
  const all = snapshotTree(dir).map((e) => e.path);
  all.forEach((p, i) => times.push([path.join(dir, p), String(1_600_000_000n * 1_000_000_000n + BigInt(i) * 1_000_003_007n + 123_456_789n)]));
  times.push([path.join(dir, 'a/f0'), String(-86_400n * 1_000_000_000n - 5n)]); // 1969-12-30, ns
  times.push([path.join(dir, 'a/f6'), String(4_102_444_800n * 1_000_000_000n + 42n)]); // 2100
  times.reverse(); // children before parents (dirs last)
  py(PY_TIMES, times);
}

/** Compare a tree (kernel mount or export) with the source. */
function expectSameTree(got: Entry[], want: Entry[], what: string): void {
  const drop = (l: Entry[]) => l.filter((e) => e.path !== 'lost+found' && !e.path.startsWith('lost+found/'));
  const norm = (l: Entry[]) => drop(l).map((e) => ({ ...e, size: e.type === 'dir' ? 0 : e.size, nlink: e.type === 'dir' ? 0 : e.nlink }));
  const g = norm(got), w = norm(want);
  expect(g.map((e) => e.path), what).toEqual(w.map((e) => e.path));
  for (let i = 0; i < w.length; i++) expect(g[i], `${what}: ${w[i]!.path}`).toEqual(w[i]);
}

function allocatedBytes(p: string): number {
  return fs.statSync(p).blocks * 512;
}

let src = '';
let srcSnap: Entry[] = [];

beforeAll(() => {
  if (skip) return;
  src = tmpDir('import-src');
  buildSource(src);
  srcSnap = snapshotTree(src);
}, 120_000);

afterAll(() => {
  if (src) fs.rmSync(src, { recursive: true, force: true });
});

describe.skipIf(!!skip)('ext4kit import / export', () => {
  for (const kind of ['ext4', 'ext2'] as const) {
    it(`imports a host tree into an empty ${kind} image: e2fsck clean, the kernel reads the source tree; export gives it back`, async () => {
      const img = tmpPath(`import-${kind}.img`);
      mkfs(kind, img, 64 << 20, ['-b', '4096']);
      const r = await cli(['import', img, src, '--json']);
      expect(r.stderr).toBe(kind === 'ext2' ? 'ext4kit: warning: this filesystem has no journal: writes are ordered carefully, but a crash may need e2fsck to reclaim leaked blocks\n' : '');
      expect(r.status).toBe(0);
      const summary = JSON.parse(r.stdout.toString()) as { entries: number; hardlinks: number; transactions: number };
      expect(summary.entries).toBe(srcSnap.length + 1);
      expect(summary.hardlinks).toBe(2);
      // batched: far fewer transactions than entries
      expect(summary.transactions).toBeLessThan(srcSnap.length / 20);
      expectE2fsckClean(img, `${kind} after import`);
      await withLoopMount(img, (mp) => {
        expectSameTree(snapshotTree(mp), srcSnap, `${kind} kernel view`);
        // holes stay holes (1 data block + 1 data block, not 4 MiB)
        expect(allocatedBytes(path.join(mp, 'sparse'))).toBeLessThan(64 << 10);
      }, { readOnly: true });
      const out = tmpDir(`export-${kind}`);
      fs.rmSync(out, { recursive: true, force: true });
      const x = await cli(['export', img, '/', out]);
      expect(x.stderr).not.toMatch(/EXT4|E[A-Z]+:/);
      expect(x.status).toBe(0);
      expectSameTree(snapshotTree(out), srcSnap, `${kind} export`);
      expect(allocatedBytes(path.join(out, 'sparse'))).toBeLessThan(64 << 10);
      fs.rmSync(out, { recursive: true, force: true });
      fs.rmSync(img, { force: true });
    }, 180_000);
  }

  it('imports a GNU tar archive (pax, xattrs) and exports one GNU tar extracts to the same tree', async () => {
    const tarFile = tmpPath('src.tar');
    fs.rmSync(tarFile, { force: true });
    run('tar', ['--format=pax', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', src, '-cf', tarFile, '.']);
    const img = tmpPath('import-tar.img');
    mkfs('ext4', img, 64 << 20, ['-b', '1024']);
    const r = await cli(['import', img, tarFile, '--at', '/srv/root']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expectE2fsckClean(img, 'after tar import');
    await withLoopMount(img, (mp) => expectSameTree(snapshotTree(path.join(mp, 'srv/root')), srcSnap, 'tar import, kernel view'), { readOnly: true });
    const outTar = tmpPath('out.tar');
    fs.rmSync(outTar, { force: true });
    const x = await cli(['export', img, '/srv/root', outTar]);
    expect(x.status, x.stderr).toBe(0);
    const dir = tmpDir('tar-extract');
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir);
    run('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-p', '--same-owner', '-C', dir, '-xf', outTar]);
    // GNU tar restores ns mtimes from pax and binary xattr values from SCHILY.xattr records.
    expectSameTree(snapshotTree(dir), srcSnap, 'GNU tar of our export');
    const img2 = tmpPath('import-tar2.img');
    mkfs('ext4', img2, 64 << 20, ['-b', '4096']);
    const r2 = await cli(['import', img2, outTar]);
    expect(r2.status, r2.stderr).toBe(0);
    expectE2fsckClean(img2, 'after import of our tar');
    await withLoopMount(img2, (mp) => expectSameTree(snapshotTree(mp), srcSnap, 'our tar, kernel view'), { readOnly: true });
    for (const f of [tarFile, outTar, img, img2]) fs.rmSync(f, { force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  }, 180_000);

  it('is reproducible: the same import into two copies of an image with a fixed clock gives the same bytes', async () => {
    const a = tmpPath('repro-a.img'), b = tmpPath('repro-b.img');
    mkfs('ext4', a, 32 << 20, ['-b', '4096']);
    fs.copyFileSync(a, b);
    for (const img of [a, b]) {
      const r = await cli(['import', img, path.join(src, 'a'), '--at', '/x', '--now', '1700000000.5']);
      expect(r.status, r.stderr).toBe(0);
    }
    expectE2fsckClean(a, 'reproducible import');
    expect(Buffer.compare(fs.readFileSync(a), fs.readFileSync(b))).toBe(0);
    // --owner / --mode override the tree's own (directories get x where r is set; symlinks keep 0777)
    const o = await cli(['import', a, path.join(src, 'a/b'), '--at', '/y', '--owner', '5:6', '--mode', '640', '--json']);
    expect(o.status, o.stderr).toBe(0);
    expectE2fsckClean(a, 'import --owner --mode');
    await withLoopMount(a, (mp) => {
      for (const [p, mode] of [['y', 0o750], ['y/c', 0o750], ['y/h3', 0o640], ['y/c/d/deep.txt', 0o640]] as const) {
        const st = fs.lstatSync(path.join(mp, p));
        expect([p, st.uid, st.gid, st.mode & 0o7777]).toEqual([p, 5, 6, mode]);
      }
    }, { readOnly: true });
    // and the clock did matter: another --now gives other bytes
    const c = tmpPath('repro-c.img');
    mkfs('ext4', c, 32 << 20, ['-b', '4096']);
    fs.copyFileSync(c, b);
    await cli(['import', b, path.join(src, 'a'), '--at', '/x', '--now', '1700000001']);
    expect(Buffer.compare(fs.readFileSync(a), fs.readFileSync(b))).not.toBe(0);
    for (const f of [a, b, c]) fs.rmSync(f, { force: true });
  }, 120_000);
});
