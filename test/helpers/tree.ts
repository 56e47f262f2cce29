/**
 * The source tree every image is populated from (`mkfs -d`), and `snapshotTree`, the source of
 * truth tests compare an image against.
 *
 * What `mkfs.ext4 -d` (e2fsprogs 1.47.0) does and does not carry over — checked by building
 * images and reading them back with debugfs `stat`/`ea_list`/`dump` (see `MKFS_D_FIDELITY` and
 * `test/helpers.test.ts`):
 *   preserved:  file type (regular, dir, symlink, char/block device incl. major/minor > 255,
 *               fifo, socket), permission bits incl. setuid/setgid/sticky and 0o000, uid/gid
 *               (32-bit), size, contents, holes, symlink targets (fast < 60 bytes, slow ≥ 60),
 *               hard links (one inode, correct link count), every xattr (user.*, trusted.*; small
 *               ones in the inode, big ones in an external block), atime/mtime/ctime SECONDS when
 *               they fit in a signed 32-bit number (so pre-1970 mtimes are kept).
 *   NOT kept:   nanoseconds (all *_extra fields are 0), timestamps ≥ 2^31 (2038-01-19): only the
 *               low 32 bits are written with epoch bits 0, so 2100-01-01 reads back as 1963 —
 *               use `expectedImageMtime()`; crtime is mkfs's clock (FAKE_TIME); all-zero data
 *               blocks become holes (contents identical, allocation differs); the root directory's
 *               mode/owner/times/xattrs (mkfs makes root 0755 root:root) — the root is therefore
 *               not part of a snapshot; directory sizes (the image's are its own). The image also
 *               has /lost+found, which the source does not.
 *   inline_data: files ending in a hole or in zero blocks get a size that ends at their last data
 *               block (an mkfs bug; images.ts restores the sizes and reports `sizeFixups`), and
 *               inline inodes carry an extra `system.data` xattr.
 *   ordering:   mkfs adds entries in the source's readdir order (linear directories only); the
 *               images in images.ts are re-indexed with `e2fsck -fD` where stated.
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FAKE_TIME, hasRoot, which } from './tools.js';

// ---------------------------------------------------------------------------------------------
// Deterministic data

/** Deterministic pseudo-random bytes (AES-256-CTR keystream keyed by sha256(seed)). */
export function prngBytes(seed: string, length: number): Buffer {
  const key = crypto.createHash('sha256').update(seed).digest();
  const c = crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([c.update(Buffer.alloc(length)), c.final()]);
}

// ---------------------------------------------------------------------------------------------
// Python helper (Node has no mkfifo/mknod/xattr/lutimes-with-ns/AF_UNIX bind-to-path API)

const PY_APPLY = String.raw`
import json, os, socket, stat, sys
os.umask(0)
plan = json.load(sys.stdin)
for op in plan:
    k = op['op']; p = op['path']
    if k == 'mkfifo':
        os.mkfifo(p, op['mode'])
    elif k == 'mknod':
        kind = stat.S_IFCHR if op['kind'] == 'c' else stat.S_IFBLK
        os.mknod(p, kind | op['mode'], os.makedev(op['major'], op['minor']))
    elif k == 'socket':
        cwd = os.getcwd(); os.chdir(os.path.dirname(p) or '.')
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(os.path.basename(p)); s.close()
        os.chdir(cwd)
    elif k == 'setxattr':
        os.setxattr(p, op['name'], bytes.fromhex(op['value']), follow_symlinks=False)
    elif k == 'chmod':
        os.chmod(p, op['mode'])
    elif k == 'lchown':
        os.lchown(p, op['uid'], op['gid'])
    elif k == 'utime':
        ns = int(op['mtimeNs'])
        os.utime(p, ns=(ns, ns), follow_symlinks=False)
    elif k == 'fifos':
        ns = int(op['mtimeNs'])
        for n in op['names']:
            q = os.path.join(p, n)
            os.mkfifo(q, op['mode'])
            os.utime(q, ns=(ns, ns), follow_symlinks=False)
        os.utime(p, ns=(int(op['dirMtimeNs']),) * 2, follow_symlinks=False)
    else:
        raise SystemExit('unknown op ' + k)
`;

const PY_XATTRS = String.raw`
import json, os, sys
out = {}
for p in json.load(sys.stdin):
    try:
        names = os.listxattr(p, follow_symlinks=False)
    except OSError:
        continue
    if names:
        out[p] = {n: os.getxattr(p, n, follow_symlinks=False).hex() for n in sorted(names)}
json.dump(out, sys.stdout)
`;

type PlanOp =
  | { op: 'mkfifo'; path: string; mode: number }
  | { op: 'mknod'; path: string; kind: 'c' | 'b'; mode: number; major: number; minor: number }
  | { op: 'socket'; path: string }
  | { op: 'setxattr'; path: string; name: string; value: string }
  | { op: 'chmod'; path: string; mode: number }
  | { op: 'lchown'; path: string; uid: number; gid: number }
  | { op: 'utime'; path: string; mtimeNs: string }
  | { op: 'fifos'; path: string; names: string[]; mode: number; mtimeNs: string; dirMtimeNs: string };

let pythonPath: string | null = null;
/** The real python3 binary (pyenv-style shims cost seconds per start, so resolve them once). */
function python(): string {
  if (pythonPath) return pythonPath;
  for (const c of ['/usr/bin/python3', '/usr/local/bin/python3']) {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return (pythonPath = c);
    } catch {
      /* next */
    }
  }
  const p = which('python3');
  if (!p) throw new Error('python3 is required by test/helpers/tree.ts (fifos, device nodes, sockets, xattrs, ns timestamps)');
  const r = spawnSync(p, ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' });
  pythonPath = r.status === 0 && r.stdout.trim() ? r.stdout.trim() : p;
  return pythonPath;
}

function runPython(script: string, input: unknown): string {
  const r = spawnSync(python(), ['-c', script], { input: JSON.stringify(input), encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`python helper failed (exit ${r.status}):\n${r.stderr}`);
  return r.stdout;
}

// ---------------------------------------------------------------------------------------------
// Tree construction

export interface TreeOptions {
  blockSize: number;
  /** Entries in `bigdir/` (default 10,000). */
  bigDirEntries?: number;
  /**
   * How many of them are empty regular files f00000… (default 600; 107-byte names f00000-rrr… for
   * blocks ≥ 16 KiB so they span two blocks); the rest are fifos
   * pNNNNN (mode 0644, uid/gid 0, mtime FAKE_TIME, ns 0) so that images.ts can add them to an
   * image quickly with `debugfs mknod` after indexing the directory (mkfs -d inserts linearly:
   * 10,000 entries would cost 5–10 s per image).
   */
  bigDirRegular?: number;
  /** Do not create the fifos now; call `addBigDirFifos(info)` later (default false). */
  deferBigDirFifos?: boolean;
  /** Several-MiB random files (default true). */
  bigFiles?: boolean;
  /** A sparse file with data in the triple-indirect region of a 1 KiB-block blockmap (default false). */
  tripleIndirect?: boolean;
}

export interface TreeInfo {
  dir: string;
  blockSize: number;
  bigDir: {
    /** Relative path of the big directory. */
    path: string;
    entries: number;
    regular: string[];
    fifos: string[];
    fifoMode: number;
    fifoMtime: number;
    /** Planned mtime of the directory itself (ns since epoch, decimal string). */
    dirMtimeNs: string;
    fifosCreated: boolean;
  };
  /** Size of the big xattr value (> 1 KiB where the block size allows it). */
  largeXattrSize: number;
  /** Path of the triple-indirect sparse file, if built. */
  tripleIndirect: string | null;
  /** Parts of the matrix that could not be built here (e.g. device nodes without root). */
  skipped: string[];
}

/** Base of the deterministic mtimes given to ordinary entries (2020-09-13T12:26:40Z). */
const MTIME_BASE = 1_600_000_000n;

/** Symlink target lengths built for a block size (59/60/61 straddle the fast-symlink limit). */
export function symlinkLengths(blockSize: number): number[] {
  const max = Math.min(blockSize, 4096) - 1;
  return [...new Set([1, 59, 60, 61, 120, 1000, max])].filter((n) => n <= max).sort((a, b) => a - b);
}

/** Size of the large xattr value: > 1 KiB unless the block (external xattr block) is too small. */
export function largeXattrSize(blockSize: number): number {
  if (blockSize >= 4096) return 2000;
  if (blockSize >= 2048) return 1500;
  return 700;
}

/** Odd timestamps used under times/ (ns since the epoch). */
export const ODD_TIMES: Record<string, bigint> = {
  'pre-1970': -123_456_789_987_654_321n, // 1966-02-02, with ns
  epoch: 0n,
  'minus-one': -1_000_000_000n,
  'int32-max': 2_147_483_647_000_000_000n, // 2038-01-19T03:14:07Z
  'int32-max-plus-1': 2_147_483_648_000_000_000n, // first second needing epoch bits
  y2100: 4_102_444_800_123_456_789n, // 2100-01-01 + ns
  y2200: 7_258_118_400_000_000_001n,
};

/**
 * Build the full test matrix under `dir` (which must not exist or be empty). Deterministic: same
 * options → same names, contents, modes, owners and mtimes (inode numbers and ctimes differ).
 */
export function buildSourceTree(dir: string, opts: TreeOptions): TreeInfo {
  const bs = opts.blockSize;
  if (![1024, 2048, 4096, 8192, 16384, 32768, 65536].includes(bs)) throw new Error(`buildSourceTree: bad block size ${bs}`);
  const root = hasRoot();
  fs.mkdirSync(dir, { recursive: true });
  if (fs.readdirSync(dir).length) throw new Error(`buildSourceTree: ${dir} is not empty`);
  const skipped: string[] = [];
  const plan: PlanOp[] = [];
  const late: PlanOp[] = []; // after everything else (modes that block access, owners)
  const times = new Map<string, bigint>(); // rel path → mtime ns (applied last, deepest first)
  const abs = (rel: string) => path.join(dir, rel);
  const mkdir = (rel: string) => fs.mkdirSync(abs(rel), { recursive: true });
  const write = (rel: string, data: Buffer | string) => fs.writeFileSync(abs(rel), data);
  const rand = (rel: string, n: number) => write(rel, prngBytes(`${rel}|${n}`, n));
  /** A sparse file: `chunks` written at offsets, then truncated to `size`. */
  const sparse = (rel: string, size: number, chunks: [offset: number, length: number][] = []) => {
    const fd = fs.openSync(abs(rel), 'w');
    try {
      for (const [off, len] of chunks) {
        const data = prngBytes(`${rel}@${off}`, len);
        fs.writeSync(fd, data, 0, len, off);
      }
      fs.ftruncateSync(fd, size);
    } finally {
      fs.closeSync(fd);
    }
  };

  // sizes/ ------------------------------------------------------------------------------------
  mkdir('sizes');
  const sizes: Record<string, number> = {
    empty: 0,
    one: 1,
    'fifty-nine': 59,
    sixty: 60,
    'bs-minus-1': bs - 1,
    bs: bs,
    'bs-plus-1': bs + 1,
    'two-bs-plus-7': 2 * bs + 7,
  };
  for (const [name, n] of Object.entries(sizes)) rand(`sizes/${name}`, n);
  write('sizes/text', 'hello, ext4kit\n'.repeat(100));

  // big/ (several MiB) ------------------------------------------------------------------------
  if (opts.bigFiles !== false) {
    mkdir('big');
    rand('big/random-3m', 3 * 1024 * 1024 + 17);
    rand('big/random-5m', 5 * 1024 * 1024);
  }

  // blockmap/ (direct / indirect / double-indirect boundaries) --------------------------------
  mkdir('blockmap');
  const apb = bs / 4;
  rand('blockmap/direct-12', 12 * bs);
  rand('blockmap/direct-12-plus-1', 12 * bs + 1);
  const indEnd = (12 + apb) * bs;
  if (indEnd <= 8 * 1024 * 1024) {
    rand('blockmap/ind-end', indEnd);
    rand('blockmap/dind-start', indEnd + 1);
  } else {
    skipped.push(`blockmap/ind-end, blockmap/dind-start (${indEnd} bytes at this block size)`);
  }

  // sparse/ -----------------------------------------------------------------------------------
  mkdir('sparse');
  const MiB = 1024 * 1024;
  sparse('sparse/hole-start', 2 * MiB + 100, [[2 * MiB - 3 * bs, 3 * bs + 100]]);
  sparse('sparse/hole-middle', MiB + 64 * 1024 + 5, [[0, 64 * 1024], [MiB, 64 * 1024 + 5]]);
  sparse('sparse/hole-end', 2 * MiB, [[0, 70_000]]);
  sparse('sparse/all-hole', 3 * MiB + 1);
  sparse('sparse/unaligned', 5 * bs + 333, [[100, 10], [3 * bs - 5, 10], [5 * bs + 300, 33]]);
  {
    // real zero blocks written to disk: mkfs -d turns them into holes
    const fd = fs.openSync(abs('sparse/zero-blocks'), 'w');
    fs.writeSync(fd, Buffer.alloc(4 * bs), 0, 4 * bs, 0);
    fs.writeSync(fd, prngBytes('zero-blocks', bs), 0, bs, 4 * bs);
    fs.writeSync(fd, Buffer.alloc(3 * bs), 0, 3 * bs, 5 * bs);
    fs.closeSync(fd);
  }
  let tripleIndirect: string | null = null;
  if (opts.tripleIndirect) {
    // Data in every mapping tier of a blockmap file; tiers computed for this block size.
    const direct = 12 * bs;
    const ind = direct + apb * bs;
    const dind = ind + apb * apb * bs;
    tripleIndirect = 'sparse/triple-indirect';
    sparse(tripleIndirect, dind + 8 * MiB + 123, [
      [0, bs],
      [direct, bs],
      [ind, bs],
      [ind + 37 * bs, 2 * bs],
      [dind - bs, 2 * bs + 10], // straddles the double→triple boundary
      [dind + 3 * MiB, 64 * 1024],
      [dind + 8 * MiB, 123],
    ]);
  }

  // names/ ------------------------------------------------------------------------------------
  mkdir('names');
  const longAscii = 'long-ascii-' + 'x'.repeat(255 - 'long-ascii-'.length);
  const utf8two = 'é'.repeat(127) + 'z'; // 255 bytes
  const utf8three = '日'.repeat(85); // 255 bytes
  const emoji = '😀'.repeat(63) + 'end'; // 255 bytes
  const names = [longAscii, utf8two, utf8three, emoji, '日本語のファイル.txt', 'Ünïcödé ñame', 'with space', "quote'name", '-leading-dash', '.hidden', 'a', '#hash%percent&amp'];
  for (const n of names) {
    if (Buffer.byteLength(n) > 255) throw new Error(`name too long: ${n}`);
    write(`names/${n}`, `name: ${n}\n`);
  }
  mkdir(`names/${'d'.repeat(255)}`);
  write(`names/${'d'.repeat(255)}/inside`, 'inside a 255-byte directory name\n');

  // bigdir/ -----------------------------------------------------------------------------------
  const bigEntries = opts.bigDirEntries ?? 10_000;
  const bigRegular = Math.min(opts.bigDirRegular ?? 600, bigEntries);
  mkdir('bigdir');
  const regular: string[] = [];
  const fifos: string[] = [];
  for (let i = 0; i < bigEntries; i++) {
    const id = String(i).padStart(5, '0');
    if (i < bigRegular) {
      // long names so the regular part spans ≥ 2 blocks even with 64 KiB blocks (e2fsck -D only
      // indexes multi-block directories, and debugfs adds the fifos fast only to an htree)
      const n = bs >= 16384 ? `f${id}-${'r'.repeat(100)}` : `f${id}`;
      regular.push(n);
      fs.closeSync(fs.openSync(abs(`bigdir/${n}`), 'w'));
    } else {
      fifos.push(`p${id}`);
    }
  }
  const fifoMode = 0o644;

  // deep/ (45 levels) -------------------------------------------------------------------------
  let deep = 'deep';
  for (let i = 1; i <= 45; i++) deep += `/l${String(i).padStart(2, '0')}`;
  mkdir(deep);
  write(`${deep}/leaf.txt`, 'at the bottom\n');

  // symlinks/ ---------------------------------------------------------------------------------
  mkdir('symlinks');
  for (const n of symlinkLengths(bs)) {
    // targets that look like paths, deterministic, exactly n bytes
    let t = '';
    let k = 0;
    while (t.length < n) t += `seg${k++}/`;
    t = t.slice(0, n);
    fs.symlinkSync(t, abs(`symlinks/len-${n}`));
  }
  fs.symlinkSync('../sizes/one', abs('symlinks/relative'));
  fs.symlinkSync('/etc/hostname', abs('symlinks/absolute'));
  fs.symlinkSync('../deep', abs('symlinks/to-dir'));
  fs.symlinkSync('does/not/exist', abs('symlinks/dangling'));

  // links/ (hard links) -----------------------------------------------------------------------
  mkdir('links/sub');
  write('links/a', 'three names, one inode\n');
  fs.linkSync(abs('links/a'), abs('links/b'));
  fs.linkSync(abs('links/a'), abs('links/sub/c'));
  rand('links/x', 3 * bs + 5);
  fs.linkSync(abs('links/x'), abs('links/y'));
  plan.push({ op: 'setxattr', path: abs('links/a'), name: 'user.linked', value: Buffer.from('shared').toString('hex') });

  // xattr/ ------------------------------------------------------------------------------------
  mkdir('xattr/dir');
  const big = largeXattrSize(bs);
  const hex = (s: string | Buffer) => Buffer.from(s).toString('hex');
  write('xattr/small', 'small xattr\n');
  plan.push({ op: 'setxattr', path: abs('xattr/small'), name: 'user.small', value: hex('hello') });
  write('xattr/large', 'large xattr\n');
  plan.push({ op: 'setxattr', path: abs('xattr/large'), name: 'user.large', value: hex(prngBytes('xattr-large', big)) });
  write('xattr/mixed', 'several xattrs\n');
  plan.push({ op: 'setxattr', path: abs('xattr/mixed'), name: 'user.a', value: hex('1') });
  plan.push({ op: 'setxattr', path: abs('xattr/mixed'), name: 'user.empty', value: '' });
  plan.push({ op: 'setxattr', path: abs('xattr/mixed'), name: 'user.text', value: hex('some text value') });
  plan.push({ op: 'setxattr', path: abs('xattr/mixed'), name: 'user.big', value: hex(prngBytes('xattr-mixed-big', big)) });
  plan.push({ op: 'setxattr', path: abs('xattr/dir'), name: 'user.on-dir', value: hex('directory attr') });
  if (root) {
    write('xattr/trusted', 'trusted xattr\n');
    plan.push({ op: 'setxattr', path: abs('xattr/trusted'), name: 'trusted.secret', value: hex('only root sees this') });
  } else skipped.push('xattr/trusted (needs root)');

  // special/ ----------------------------------------------------------------------------------
  mkdir('special');
  plan.push({ op: 'mkfifo', path: abs('special/fifo'), mode: 0o640 });
  plan.push({ op: 'socket', path: abs('special/socket') });
  plan.push({ op: 'chmod', path: abs('special/socket'), mode: 0o770 });
  if (root) {
    plan.push({ op: 'mknod', path: abs('special/chardev'), kind: 'c', mode: 0o620, major: 4, minor: 65 });
    plan.push({ op: 'mknod', path: abs('special/chardev-big'), kind: 'c', mode: 0o600, major: 300, minor: 70_000 });
    plan.push({ op: 'mknod', path: abs('special/blockdev'), kind: 'b', mode: 0o660, major: 7, minor: 3 });
    plan.push({ op: 'mknod', path: abs('special/blockdev-big'), kind: 'b', mode: 0o640, major: 259, minor: 1_048_575 });
  } else skipped.push('special/chardev*, special/blockdev* (mknod needs root)');

  // modes/ ------------------------------------------------------------------------------------
  mkdir('modes/sticky-dir');
  mkdir('modes/dir-000');
  write('modes/dir-000/inside', 'in a mode-000 directory\n');
  const modeFiles: Record<string, number> = { 'all-7777': 0o7777, setuid: 0o4755, setgid: 0o2755, sticky: 0o1644, none: 0o000, 'write-only': 0o222 };
  for (const [n, m] of Object.entries(modeFiles)) {
    write(`modes/${n}`, `mode ${m.toString(8)}\n`);
    late.push({ op: 'chmod', path: abs(`modes/${n}`), mode: m });
  }
  late.push({ op: 'chmod', path: abs('modes/sticky-dir'), mode: 0o1777 });
  late.push({ op: 'chmod', path: abs('modes/dir-000'), mode: 0o000 });

  // owners/ -----------------------------------------------------------------------------------
  mkdir('owners');
  const owners: Record<string, [number, number]> = {
    'uid-1234567': [1_234_567, 7_654_321],
    nobody: [65_534, 65_534],
    'uid-65536': [65_536, 65_537],
    'uid-max-1': [4_294_967_294, 4_294_967_294],
  };
  for (const [n, [u, g]] of Object.entries(owners)) {
    write(`owners/${n}`, `${u}:${g}\n`);
    if (root) late.push({ op: 'lchown', path: abs(`owners/${n}`), uid: u, gid: g });
  }
  fs.symlinkSync('uid-1234567', abs('owners/symlink'));
  mkdir('owners/dir');
  if (root) {
    late.push({ op: 'lchown', path: abs('owners/symlink'), uid: 4242, gid: 4343 });
    late.push({ op: 'lchown', path: abs('owners/dir'), uid: 1000, gid: 100 });
  } else skipped.push('owners/* (chown needs root)');

  // times/ ------------------------------------------------------------------------------------
  mkdir('times/dir');
  for (const [n, t] of Object.entries(ODD_TIMES)) {
    write(`times/${n}`, `${t}\n`);
    times.set(`times/${n}`, t);
  }
  times.set('times/dir', ODD_TIMES['pre-1970']! + 5n);
  fs.symlinkSync('y2100', abs('times/symlink'));
  times.set('times/symlink', ODD_TIMES.y2100! + 1n);

  mkdir('empty-dir');

  // special entries first (they must exist before times/modes/owners are applied)
  runPython(PY_APPLY, plan);

  // deterministic mtimes for everything, then the odd ones; directories last (children first).
  const all = walk(dir);
  const ops: PlanOp[] = [];
  all.forEach((rel, i) => {
    let t = times.get(rel);
    if (t === undefined) {
      t = (MTIME_BASE + BigInt(i) * 61n) * 1_000_000_000n + BigInt((i * 7_654_321) % 1_000_000_000);
      times.set(rel, t);
    }
  });
  const bigDirMtime = times.get('bigdir')!;
  // deepest paths first so that setting a child's time never disturbs a parent's (it doesn't on
  // Linux anyway, but creating nothing in between keeps it obviously right)
  const byDepth = [...times.keys()].sort((a, b) => b.split('/').length - a.split('/').length || (a < b ? -1 : 1));
  for (const rel of byDepth) ops.push({ op: 'utime', path: abs(rel), mtimeNs: times.get(rel)!.toString() });
  runPython(PY_APPLY, [...late, ...ops]);

  const info: TreeInfo = {
    dir,
    blockSize: bs,
    bigDir: {
      path: 'bigdir',
      entries: bigEntries,
      regular,
      fifos,
      fifoMode,
      fifoMtime: FAKE_TIME,
      dirMtimeNs: bigDirMtime.toString(),
      fifosCreated: false,
    },
    largeXattrSize: big,
    tripleIndirect,
    skipped,
  };
  if (!opts.deferBigDirFifos) addBigDirFifos(info);
  return info;
}

/**
 * Create the big directory's fifos in the source tree (mode 0644, uid/gid 0, mtime FAKE_TIME with
 * 0 ns — exactly what `bigDirDebugfsCommands` gives them in an image) and restore the directory's
 * planned mtime.
 */
export function addBigDirFifos(info: TreeInfo): void {
  if (info.bigDir.fifosCreated) return;
  const d = path.join(info.dir, info.bigDir.path);
  const mtimeNs = (BigInt(info.bigDir.fifoMtime) * 1_000_000_000n).toString();
  const ops: PlanOp[] = [{ op: 'fifos', path: d, names: info.bigDir.fifos, mode: info.bigDir.fifoMode, mtimeNs, dirMtimeNs: info.bigDir.dirMtimeNs }];
  // created by root they are already root:root; otherwise they belong to the caller (and so
  // would the image's, if the caller could run debugfs on it)
  runPython(PY_APPLY, ops);
  info.bigDir.fifosCreated = true;
}

/**
 * The snapshot entries of the big directory's fifos without creating them on disk (images.ts
 * keeps one shared source tree per block size for mkfs -d and adds the fifos only to images).
 */
export function bigDirFifoEntries(info: TreeInfo): Entry[] {
  const uid = hasRoot() ? 0 : (process.getuid?.() ?? 0);
  const gid = hasRoot() ? 0 : (process.getgid?.() ?? 0);
  return info.bigDir.fifos.map((n) => {
    const p = `${info.bigDir.path}/${n}`;
    return { path: p, name: n, type: 'fifo', mode: info.bigDir.fifoMode, uid, gid, size: 0, mtime: info.bigDir.fifoMtime, mtimeNs: 0, nlink: 1, linkGroup: p, xattrs: {} };
  });
}

/**
 * debugfs commands that add the big directory's fifos to an image (run with
 * `{write: true, fakeTime: FAKE_TIME}`). `debugfs mknod` creates mode-0000 fifos; the mode is set
 * by a second batch built from the allocated inode numbers by `bigDirModeCommands`.
 */
export function bigDirDebugfsCommands(info: TreeInfo): string[] {
  return [`cd /${info.bigDir.path}`, ...info.bigDir.fifos.map((n) => `mknod ${n} p`)];
}

/** Second batch: set the mode of the inodes reported as "Allocated inode: N" by the first. */
export function bigDirModeCommands(info: TreeInfo, mknodOutput: string): string[] {
  const inos = [...mknodOutput.matchAll(/^Allocated inode: (\d+)$/gm)].map((m) => Number(m[1]));
  if (inos.length !== info.bigDir.fifos.length) {
    throw new Error(`debugfs allocated ${inos.length} inodes for ${info.bigDir.fifos.length} fifos:\n${mknodOutput.slice(-2000)}`);
  }
  const mode = '0' + (0o010000 | info.bigDir.fifoMode).toString(8);
  return inos.map((i) => `sif <${i}> mode ${mode}`);
}

// ---------------------------------------------------------------------------------------------
// Snapshot

export type EntryType = 'file' | 'dir' | 'symlink' | 'chardev' | 'blockdev' | 'fifo' | 'socket';

export interface Entry {
  /** Relative path, '/'-separated, no leading slash. The root itself is not included. */
  path: string;
  name: string;
  type: EntryType;
  /** st_mode & 0o7777. */
  mode: number;
  uid: number;
  gid: number;
  /** st_size (a directory's size is the source filesystem's and not comparable). */
  size: number;
  /** mtime in whole seconds (floor, so -1.5 s → -2), exact from a bigint lstat. */
  mtime: number;
  /** Nanoseconds within `mtime` (0 … 999,999,999). */
  mtimeNs: number;
  nlink: number;
  /** Hard-link group: the sorted-first path of all entries sharing this inode (own path if alone; null for dirs). */
  linkGroup: string | null;
  /** Symlink target. */
  target?: string;
  /** Device numbers of char/block devices. */
  rdev?: { major: number; minor: number };
  /** sha256 (hex) of a regular file's contents. */
  sha256?: string;
  /** Extended attributes: name → hex value (all namespaces listed by llistxattr). */
  xattrs: Record<string, string>;
}

/** Paths under `dir` (relative, byte-wise sorted), not including the root. */
function walk(dir: string): string[] {
  const out: string[] = [];
  const rec = (rel: string) => {
    const absDir = rel ? path.join(dir, rel) : dir;
    for (const d of fs.readdirSync(absDir, { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      out.push(r);
      if (d.isDirectory()) rec(r);
    }
  };
  rec('');
  return out.sort(compareBytes);
}

/** Byte-wise (UTF-8) comparison, the order used for snapshots. */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function typeOf(st: fs.BigIntStats): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isBlockDevice()) return 'blockdev';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  throw new Error('unknown file type');
}

/** Linux dev_t → major/minor (glibc's gnu_dev_major/minor). */
export function splitDev(dev: bigint): { major: number; minor: number } {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return { major, minor };
}

/** Every entry under `dir` (sorted by path bytes): the ground truth an image is compared with. */
export function snapshotTree(dir: string): Entry[] {
  const rels = walk(dir);
  const stats = rels.map((r) => fs.lstatSync(path.join(dir, r), { bigint: true }));
  const groups = new Map<string, string>();
  rels.forEach((r, i) => {
    const st = stats[i]!;
    if (st.isDirectory()) return;
    const key = `${st.dev}:${st.ino}`;
    if (!groups.has(key)) groups.set(key, r); // rels sorted → first is the smallest
  });
  const xattrs = JSON.parse(runPython(PY_XATTRS, rels.map((r) => path.join(dir, r)))) as Record<string, Record<string, string>>;
  return rels.map((rel, i) => {
    const st = stats[i]!;
    const type = typeOf(st);
    const p = path.join(dir, rel);
    const sec = st.mtimeNs >= 0n ? st.mtimeNs / 1_000_000_000n : -((-st.mtimeNs + 999_999_999n) / 1_000_000_000n);
    const e: Entry = {
      path: rel,
      name: path.posix.basename(rel),
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: Number(st.size),
      mtime: Number(sec),
      mtimeNs: Number(st.mtimeNs - sec * 1_000_000_000n),
      nlink: Number(st.nlink),
      linkGroup: type === 'dir' ? null : groups.get(`${st.dev}:${st.ino}`)!,
      xattrs: xattrs[p] ?? {},
    };
    if (type === 'symlink') e.target = fs.readlinkSync(p);
    if (type === 'chardev' || type === 'blockdev') e.rdev = splitDev(st.rdev);
    if (type === 'file') e.sha256 = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    return e;
  });
}

// ---------------------------------------------------------------------------------------------
// What an image made by mkfs -d holds for a source entry

/** The mtime (seconds) `mkfs -d` stores: the low 32 bits, read back as a signed number. */
export function expectedImageMtime(e: Pick<Entry, 'mtime'>): number {
  return Number(BigInt.asIntN(32, BigInt(e.mtime)));
}

/** Facts about `mkfs.ext4 -d` (1.47.0) fidelity, for tests that compare images with snapshots. */
export const MKFS_D_FIDELITY = {
  type: true,
  mode: true,
  uid: true,
  gid: true,
  size: true,
  contents: true,
  symlinkTarget: true,
  rdev: true,
  hardLinks: true,
  xattrs: true,
  /** Seconds only, and only when −2^31 ≤ t < 2^31 (see expectedImageMtime). */
  mtimeSeconds: 'low 32 bits, signed',
  mtimeNanoseconds: false,
  /** The root directory's attributes are mkfs's own (0755 root:root, FAKE_TIME). */
  rootAttributes: false,
  /** All-zero blocks of a source file become holes. */
  zeroBlocksAllocated: false,
  directorySize: false,
  /** inline_data images show an extra `system.data` xattr (ext4's in-inode data) on inline inodes. */
  inlineDataXattr: 'system.data',
  /**
   * With inline_data, mkfs -d sets the size of a file ending in a hole / zero blocks to the end of
   * its last data block; images.ts restores the sizes (BuiltImage.sizeFixups).
   */
  inlineDataTrailingHoleSize: false,
} as const;
