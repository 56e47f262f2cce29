/**
 * Issue 11 item 7, tar: GNU tar on both sides of `ext4kit import` / `export`.
 * A host tree with sparse files (holes first, in the middle, at the end, all
 * hole, 40 runs: old GNU extension blocks), text and binary xattrs (NUL,
 * 0xff, newline bytes; security.capability; one in a block), hard links,
 * fifos, devices, long and non-ASCII names and symlink targets, ns times
 * (one before 1970), uids and gids past ustar's range, and a socket.
 * - GNU tar archives of it in every sparse form GNU tar writes (pax 1.0, 0.1,
 *   0.0, the gnu format's 'S' members) → ext4kit import → e2fsck clean → the
 *   kernel's view (loop mount) equals the host tree, and each sparse file's
 *   data map (SEEK_DATA/SEEK_HOLE) is exactly its data blocks;
 * - ext4kit export → GNU tar -x → the same tree, xattrs included, holes
 *   included (sparse members; an unwritten extent is a hole too); the socket
 *   is skipped with a warning;
 * - bsdtar both ways (an oracle like GNU tar: .ci/run installs libarchive-tools).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Filesystem } from '../../lib/node.js';
import { mknod } from '../../lib/ops/namespace.js';
import { expectE2fsckClean, mkfs, oracleGate, skipReason, which, withLoopMount } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { prngBytes, snapshotTree, type Entry } from '../helpers/tree.js';
import { cliInProcess as cli } from './helpers.js';

const skip = oracleGate(skipReason('loop') ?? (which('tar') ? null : 'GNU tar not installed'));
/** bsdtar is an oracle too: CI installs it (libarchive-tools, .ci/run); with CI=true its absence fails. */
const noBsdtar = oracleGate(which('bsdtar') ? null : 'bsdtar (libarchive-tools) not installed');
const BS = 4096;

const PY = String.raw`
import json, os, socket, sys
req = json.load(sys.stdin)
out = {}
for op in req:
    k, p = op[0], op[1]
    if k == 'xattr':
        os.setxattr(p, op[2], bytes.fromhex(op[3]), follow_symlinks=False)
    elif k == 'utime':
        os.utime(p, ns=(int(op[2]), int(op[2])), follow_symlinks=False)
    elif k == 'socket':
        s = socket.socket(socket.AF_UNIX); s.bind(p); s.close()
    elif k == 'map':
        fd = os.open(p, os.O_RDONLY); size = os.fstat(fd).st_size; runs = []; at = 0
        while at < size:
            try:
                d = os.lseek(fd, at, os.SEEK_DATA)
            except OSError:
                break
            h = os.lseek(fd, d, os.SEEK_HOLE); runs.append([d, h]); at = h
        os.close(fd); out[p] = runs
json.dump(out, sys.stdout)
`;

function py(ops: unknown[]): Record<string, [number, number][]> {
  const bin = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const r = spawnSync(bin, ['-c', PY], { input: JSON.stringify(ops), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python3: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, [number, number][]>;
}

function tool(cmd: string, args: string[], cwd?: string): { stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

/** Sparse files: size and data pieces [offset, length]; data is pseudo-random (no zero blocks). */
const SPARSE: Record<string, { size: number; data: [number, number][] }> = {
  'sparse/mid': { size: 3 << 20, data: [[0, BS + 100], [1 << 20, 2 * BS]] },
  'sparse/lead': { size: (2 << 20) + 5000, data: [[2 << 20, 5000]] },
  'sparse/tail': { size: 5 << 20, data: [[0, 10]] },
  'sparse/none': { size: 1 << 20, data: [] },
  'sparse/many': { size: 80 * BS, data: Array.from({ length: 40 }, (_, i): [number, number] => [2 * i * BS + BS, BS]) },
};

/** The data map the kernel reports for a sparse file whose all-zero blocks are holes: the blocks its data touches, merged. */
function expectedMap(spec: { size: number; data: [number, number][] }): [number, number][] {
  const runs: [number, number][] = [];
  for (const [off, len] of spec.data) {
    const a = Math.floor(off / BS) * BS, b = Math.min(spec.size, Math.ceil((off + len) / BS) * BS);
    const last = runs[runs.length - 1];
    if (last && last[1] >= a) last[1] = Math.max(last[1], b);
    else runs.push([a, b]);
  }
  return runs;
}

const LONG = 'L'.repeat(120);

function buildSource(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'sparse'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'links/sub'), { recursive: true });
  fs.mkdirSync(path.join(dir, `names/${LONG}`), { recursive: true });
  for (const [p, spec] of Object.entries(SPARSE)) {
    const fd = fs.openSync(path.join(dir, p), 'w');
    for (const [off, len] of spec.data) fs.writeSync(fd, prngBytes(`${p}@${off}`, len), 0, len, off);
    fs.ftruncateSync(fd, spec.size);
    fs.closeSync(fd);
  }
  fs.writeFileSync(path.join(dir, 'plain'), prngBytes('plain', 10_000));
  fs.writeFileSync(path.join(dir, 'links/a'), 'linked\n');
  fs.linkSync(path.join(dir, 'links/a'), path.join(dir, 'links/b'));
  fs.linkSync(path.join(dir, 'links/a'), path.join(dir, 'links/sub/c'));
  fs.writeFileSync(path.join(dir, `names/${LONG}/${LONG}`), 'deep and long\n'); // path > 240 bytes
  fs.writeFileSync(path.join(dir, 'names/' + 'n'.repeat(100)), '100\n');
  fs.writeFileSync(path.join(dir, 'names/' + 'n'.repeat(101)), '101\n');
  fs.writeFileSync(path.join(dir, 'names/été ünïcødé'), 'utf-8 name\n');
  fs.symlinkSync(`${LONG}/${LONG}`, path.join(dir, 'names/longtarget'));
  fs.symlinkSync('été', path.join(dir, 'names/utf8target'));
  spawnSync('mkfifo', [path.join(dir, 'fifo')]);
  spawnSync('mknod', [path.join(dir, 'cdev'), 'c', '1', '7']);
  spawnSync('mknod', [path.join(dir, 'bdev'), 'b', '300', '70000']);
  spawnSync('mknod', [path.join(dir, 'bigdev'), 'c', '4000', '1000000']); // minor past 6 octal digits
  fs.chmodSync(path.join(dir, 'plain'), 0o4755);
  fs.lchownSync(path.join(dir, 'plain'), 3_000_000, 4_000_000); // past ustar's 7 octal digits: pax uid/gid
  fs.lchownSync(path.join(dir, 'links/a'), 70_000, 70_001);
  fs.lchownSync(path.join(dir, 'names/longtarget'), 5_000_000, 5);
  const ops: unknown[][] = [
    ['xattr', path.join(dir, 'plain'), 'user.text', Buffer.from('a comment').toString('hex')],
    ['xattr', path.join(dir, 'plain'), 'user.bin', '00ff100a0d00'],
    ['xattr', path.join(dir, 'plain'), 'trusted.nl', '0a'],
    ['xattr', path.join(dir, 'sparse/mid'), 'user.big', prngBytes('big', 900).toString('hex')],
    ['xattr', path.join(dir, 'links/a'), 'security.capability', '0100000200200000000000000000000000000000'],
    ['xattr', path.join(dir, 'links'), 'user.dir', 'ff'],
    ['xattr', path.join(dir, 'names/longtarget'), 'trusted.onlink', '0001'],
    ['socket', path.join(dir, 'sock')],
  ];
  const all = fs.readdirSync(dir, { recursive: true }).map(String).sort().reverse(); // children before parents
  all.forEach((p, i) => ops.push(['utime', path.join(dir, p), String(1_700_000_000n * 1_000_000_000n + BigInt(i) * 1_000_003_007n + 123_456_789n)]));
  ops.push(['utime', path.join(dir, 'links/sub/c'), String(-86_400n * 1_000_000_000n - 5n)]); // 1969, ns
  for (const d of ['links/sub', 'links', `names/${LONG}`, 'names', 'sparse']) ops.push(['utime', path.join(dir, d), String(1_600_000_000_987_654_321n)]);
  py(ops);
}

const withoutSockets = (l: Entry[]) => l.filter((e) => e.type !== 'socket');

/** Compare trees (kernel mount, tar extraction) with the source, lost+found and sockets aside. */
function expectSameTree(got: Entry[], want: Entry[], what: string, adjust: (e: Entry) => Entry = (e) => e): void {
  const norm = (l: Entry[]) =>
    withoutSockets(l)
      .filter((e) => e.path !== 'lost+found' && !e.path.startsWith('lost+found/'))
      .map((e) => adjust({ ...e, size: e.type === 'dir' ? 0 : e.size, nlink: e.type === 'dir' ? 0 : e.nlink }));
  const g = norm(got), w = norm(want);
  expect(g.map((e) => e.path), what).toEqual(w.map((e) => e.path));
  for (let i = 0; i < w.length; i++) expect(g[i], `${what}: ${w[i]!.path}`).toEqual(w[i]);
}

/** Every sparse file under `root` has exactly its data blocks allocated. */
function expectHoles(root: string, what: string): void {
  const maps = py(Object.keys(SPARSE).map((p) => ['map', path.join(root, p)]));
  for (const [p, spec] of Object.entries(SPARSE)) expect(maps[path.join(root, p)], `${what}: ${p} data map`).toEqual(expectedMap(spec));
}

let src = '';
let srcSnap: Entry[] = [];
let img = '';

beforeAll(() => {
  if (skip) return;
  src = tmpDir('tar-src');
  buildSource(src);
  srcSnap = snapshotTree(src);
  img = tmpPath('tar-roundtrip.img');
  mkfs('ext4', img, 64 << 20, ['-b', String(BS)]);
}, 60_000);

afterAll(() => {
  if (src) fs.rmSync(src, { recursive: true, force: true });
  if (img) fs.rmSync(img, { force: true });
});

/** GNU tar archives of the source: [name in the image, tar options]. */
const GNU_ARCHIVES: [string, string[]][] = [
  ['pax10', ['--format=posix', '--sparse', '--xattrs', '--xattrs-include=*']],
  ['pax01', ['--format=posix', '--sparse', '--sparse-version=0.1', '--xattrs', '--xattrs-include=*']],
  ['pax00', ['--format=posix', '--sparse', '--sparse-version=0.0', '--xattrs', '--xattrs-include=*']],
  ['gnu', ['--format=gnu', '--sparse']],
];

/**
 * libarchive writes and reads a negative time with a fraction as "sec.nsec" of the split
 * (1969-12-30 23:59:59.999999995 → "-86401.999999995"); pax and GNU tar read it as the decimal
 * number (-86400.000000005 here), and so do we: such times do not cross between the two.
 */
const libarchiveTimes = (e: Entry): Entry => (e.mtime < 0 && e.mtimeNs ? { ...e, mtime: 0, mtimeNs: 0 } : e);

/** What the gnu format keeps: no xattrs, whole-second times. */
const gnuFormat = (e: Entry): Entry => ({ ...e, xattrs: {}, mtimeNs: 0 });

describe.skipIf(!!skip)('tar round trips with GNU tar', () => {
  it('imports GNU tar archives in every sparse form: the kernel reads the host tree, holes kept', async () => {
    for (const [at, opts] of GNU_ARCHIVES) {
      const tarFile = tmpPath(`${at}.tar`);
      fs.rmSync(tarFile, { force: true });
      const t = tool('tar', [...opts, '--numeric-owner', '-C', src, '-cf', tarFile, '.']);
      expect(t.stderr).toContain('socket ignored');
      const r = await cli(['import', img, tarFile, '--at', `/${at}`]);
      expect(r.stderr, at).toBe('');
      expect(r.status, at).toBe(0);
      expectE2fsckClean(img, `after import of ${at}`);
      fs.rmSync(tarFile, { force: true });
    }
    await withLoopMount(img, (mp) => {
      for (const [at] of GNU_ARCHIVES) {
        const root = path.join(mp, at);
        expectSameTree(snapshotTree(root), srcSnap, `${at}, kernel view`, at === 'gnu' ? gnuFormat : undefined);
        expectHoles(root, `${at}, kernel view`);
      }
    }, { readOnly: true });
  }, 120_000);

  it('exports an archive GNU tar extracts to the same tree: binary xattrs, holes, long names; sockets skipped with a warning', async () => {
    // A socket in the image (tar cannot hold one).
    const f = await Filesystem.open(img, { write: true });
    try {
      await mknod(f, '/pax10/sock', 'socket');
    } finally {
      await f.close();
    }
    expectE2fsckClean(img, 'after mknod');
    // An unwritten extent (fallocate) reads as zeros: a hole in the archive, as SEEK_DATA says.
    const a = await cli(['allocate', img, '/pax10/sparse/tail', '--offset', String(1 << 20), '--len', String(64 << 10)]);
    expect(a.status, a.stderr).toBe(0);
    expectE2fsckClean(img, 'after allocate');
    const outTar = tmpPath('export.tar');
    fs.rmSync(outTar, { force: true });
    const x = await cli(['export', img, '/pax10', outTar]);
    expect(x.status, x.stderr).toBe(0);
    expect(x.stderr).toBe('ext4kit: warning: sock: socket ignored (tar cannot hold a socket)\n');
    const kernel = await withLoopMount(img, (mp) => snapshotTree(path.join(mp, 'pax10')), { readOnly: true });
    const dir = tmpDir('gnu-extract');
    tool('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-p', '--same-owner', '-C', dir, '-xf', outTar]);
    expectSameTree(snapshotTree(dir), kernel, 'GNU tar -x of our export');
    expectHoles(dir, 'GNU tar -x of our export');
    // what GNU tar lists: sparse members under their real names, real sizes
    const list = tool('tar', ['--numeric-owner', '-tvf', outTar]).stdout;
    expect(list).toMatch(/ 3145728 .* sparse\/mid\n/);
    expect(list).not.toContain('GNUSparseFile');
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(outTar, { force: true });
  }, 120_000);

  it.skipIf(!!noBsdtar)('bsdtar both ways', async () => {
    const tarFile = tmpPath('bsd.tar');
    fs.rmSync(tarFile, { force: true });
    spawnSync('bsdtar', ['--format=pax', '--xattrs', '--numeric-owner', '-C', src, '-cf', tarFile, '.']); // exit 1: "cannot archive sockets"
    const r = await cli(['import', img, tarFile, '--at', '/bsd']);
    expect(r.status, r.stderr).toBe(0);
    expectE2fsckClean(img, 'after import of the bsdtar archive');
    await withLoopMount(img, (mp) => {
      expectSameTree(snapshotTree(path.join(mp, 'bsd')), srcSnap, 'bsdtar archive, kernel view', libarchiveTimes);
      expectHoles(path.join(mp, 'bsd'), 'bsdtar archive, kernel view');
    }, { readOnly: true });
    const outTar = tmpPath('bsd-export.tar');
    fs.rmSync(outTar, { force: true });
    const x = await cli(['export', img, '/bsd', outTar]);
    expect(x.status, x.stderr).toBe(0);
    const dir = tmpDir('bsd-extract');
    tool('bsdtar', ['--xattrs', '--numeric-owner', '-xpf', outTar, '-C', dir]);
    expectSameTree(snapshotTree(dir), srcSnap, 'bsdtar -x of our export', libarchiveTimes);
    expectHoles(dir, 'bsdtar -x of our export');
    fs.rmSync(dir, { recursive: true, force: true });
    for (const p of [tarFile, outTar]) fs.rmSync(p, { force: true });
  }, 120_000);
});
