/**
 * The Volume (lib/ops/fs-volume.ts) against node:fs/promises on a real directory: the same scripted
 * cases, then a model-based random sequence (fixed seeds) of create/write/append/mkdir/rename/
 * unlink/rmdir/link/symlink/chmod/chown/lchown/truncate/rm/copyFile, writes through handles
 * opened with Node's flags, and reads, applied to a host
 * directory (the oracle: Linux's own ext4) and to an image. Every step's outcome (value, or
 * error code, errno, syscall, path, dest and message) must match, and the whole tree (types,
 * modes, owners, link counts, sizes, contents, link targets) after every step. At the end:
 * e2fsck -fn clean, and the kernel's view of the image (loop mount) equal to the host directory
 * and to the Volume's Stats (ino, size, blocks, nlink, mode, the four times).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { Volume } from '../../lib/node.js';
import { Prng } from '../../lib/testing.js';
import { expectE2fsckClean, mkfs, oracleGate, withLoopMount } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, cleanupImages, makeImage, scratchPath } from '../ops/helpers.js';
import { hostDriver, outcome, snapshot, volumeDriver, type Driver, type FsApi } from './drivers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_760_000_000, nsec: 5 };
const UMASK = 0o022;

/** A host directory laid out as a fresh image's root (mode 0755, lost+found). */
function hostRoot(name: string): string {
  const root = tmpDir(name);
  nodefs.chmodSync(root, 0o755);
  nodefs.mkdirSync(path.join(root, 'lost+found'), { mode: 0o700 });
  return root;
}

async function expectSameTree(host: Driver, image: Driver, what: string): Promise<void> {
  const [a, b] = await Promise.all([snapshot(host.p, host.abs), snapshot(image.p, image.abs)]);
  expect(b, what).toEqual(a);
}

type Step = [string, (p: FsApi, abs: (rel: string) => string) => Promise<unknown>];

/** Handles are opened and closed inside one step, so both sides see the same sequence. */
const CASES: Step[] = [
  ['setup', async (p, a) => {
    await p.mkdir(a('/d'));
    await p.mkdir(a('/d/sub'));
    await p.writeFile(a('/f'), 'hello');
    await p.writeFile(a('/d/g'), 'gee');
    await p.symlink('f', a('/lf'));
    await p.symlink('nope', a('/dangle'));
    await p.symlink('d', a('/ld'));
    await p.symlink('loop', a('/loop'));
  }],
  ['readFile', (p, a) => p.readFile(a('/f'))],
  ['readFile utf8', (p, a) => p.readFile(a('/f'), 'utf8')],
  ['readFile via symlink', (p, a) => p.readFile(a('/lf'), { encoding: 'utf8' })],
  ['readFile missing', (p, a) => p.readFile(a('/nope'))],
  ['readFile dir', (p, a) => p.readFile(a('/d'))],
  ['readFile dangling', (p, a) => p.readFile(a('/dangle'))],
  ['readFile loop', (p, a) => p.readFile(a('/loop'))],
  ['readFile under a file', (p, a) => p.readFile(a('/f/x'))],
  ['readFile trailing slash on file', (p, a) => p.readFile(a('/f/'))],
  ['writeFile into dir', (p, a) => p.writeFile(a('/d'), 'x')],
  ['writeFile missing parent', (p, a) => p.writeFile(a('/nope/x'), 'x')],
  ['writeFile under a file', (p, a) => p.writeFile(a('/f/x'), 'x')],
  ['writeFile trailing slash', (p, a) => p.writeFile(a('/newfile/'), 'x')],
  ['writeFile wx existing', (p, a) => p.writeFile(a('/f'), 'x', { flag: 'wx' })],
  ['writeFile wx new', (p, a) => p.writeFile(a('/wx'), 'new', { flag: 'wx', mode: 0o600 })],
  ['writeFile through dangling symlink', async (p, a) => [await p.writeFile(a('/dangle'), 'made'), await p.readFile(a('/nope'), 'utf8'), await p.lstat(a('/nope'))]],
  ['writeFile replace', async (p, a) => [await p.writeFile(a('/f'), 'hello world, longer'), await p.readFile(a('/f'), 'utf8')]],
  ['writeFile utf8 mode', async (p, a) => [await p.writeFile(a('/u'), 'é€😀', { mode: 0o640 }), await p.readFile(a('/u')), await p.stat(a('/u'))]],
  ['writeFile iterable', async (p, a) => [await p.writeFile(a('/it'), ['ab', Buffer.from('cd'), 'ef']), await p.readFile(a('/it'), 'utf8')]],
  ['appendFile', async (p, a) => [await p.appendFile(a('/f'), '+more'), await p.appendFile(a('/newappend'), 'first'), await p.readFile(a('/f'), 'utf8'), await p.readFile(a('/newappend'), 'utf8')]],
  ['appendFile to dir', (p, a) => p.appendFile(a('/d'), 'x')],
  ['mkdir exists', (p, a) => p.mkdir(a('/d'))],
  ['mkdir on file', (p, a) => p.mkdir(a('/f'))],
  ['mkdir missing parent', (p, a) => p.mkdir(a('/nope2/x'))],
  ['mkdir under file', (p, a) => p.mkdir(a('/f/x'))],
  ['mkdir name too long', (p, a) => p.mkdir(a('/' + 'x'.repeat(256)))],
  ['mkdir mode', async (p, a) => [await p.mkdir(a('/m'), { mode: 0o750 }), await p.stat(a('/m'))]],
  ['mkdir -p new', (p, a) => p.mkdir(a('/p1/p2/p3'), { recursive: true })],
  ['mkdir -p exists', (p, a) => p.mkdir(a('/p1/p2'), { recursive: true })],
  ['mkdir -p on file', (p, a) => p.mkdir(a('/f'), { recursive: true })],
  ['mkdir -p through file', (p, a) => p.mkdir(a('/f/a/b'), { recursive: true })],
  ['mkdir -p through symlink', (p, a) => p.mkdir(a('/ld/q/r'), { recursive: true })],
  ['readdir', (p, a) => p.readdir(a('/d'))],
  ['readdir withFileTypes', (p, a) => p.readdir(a('/'), { withFileTypes: true })],
  ['readdir via symlink', (p, a) => p.readdir(a('/ld'))],
  ['readdir file', (p, a) => p.readdir(a('/f'))],
  ['readdir missing', (p, a) => p.readdir(a('/nope3'))],
  ['readdir recursive', (p, a) => p.readdir(a('/p1'), { recursive: true })],
  ['stat', (p, a) => p.stat(a('/f'))],
  ['stat symlink', (p, a) => p.stat(a('/lf'))],
  ['lstat symlink', (p, a) => p.lstat(a('/lf'))],
  ['stat dangling', (p, a) => p.stat(a('/loop'))],
  ['lstat missing with slash', (p, a) => p.lstat(a('/nope4/'))],
  ['stat file with slash', (p, a) => p.stat(a('/f/'))],
  ['stat dir with slash', (p, a) => p.stat(a('/d/'))],
  ['stat dotdot', (p, a) => p.stat(a('/d/sub/../g'))],
  ['readlink', (p, a) => p.readlink(a('/lf'))],
  ['readlink file', (p, a) => p.readlink(a('/f'))],
  ['readlink missing', (p, a) => p.readlink(a('/nope5'))],
  ['symlink exists', (p, a) => p.symlink('whatever', a('/f'))],
  ['symlink missing parent', (p, a) => p.symlink('whatever', a('/nope6/s'))],
  ['link', async (p, a) => [await p.link(a('/f'), a('/hard')), await p.stat(a('/f')), await p.readFile(a('/hard'), 'utf8')]],
  ['link exists', (p, a) => p.link(a('/f'), a('/d/g'))],
  ['link dir', (p, a) => p.link(a('/d'), a('/dl'))],
  ['link missing', (p, a) => p.link(a('/nope7'), a('/x'))],
  ['link symlink itself', async (p, a) => [await p.link(a('/lf'), a('/lf2')), await p.lstat(a('/lf2'))]],
  ['unlink', async (p, a) => [await p.unlink(a('/hard')), await p.stat(a('/f'))]],
  ['unlink dir', (p, a) => p.unlink(a('/d'))],
  ['unlink missing', (p, a) => p.unlink(a('/nope8'))],
  ['unlink symlink', (p, a) => p.unlink(a('/lf2'))],
  ['rmdir file', (p, a) => p.rmdir(a('/f'))],
  ['rmdir nonempty', (p, a) => p.rmdir(a('/d'))],
  ['rmdir symlink to dir', (p, a) => p.rmdir(a('/ld'))],
  ['rmdir missing', (p, a) => p.rmdir(a('/nope9'))],
  ['rmdir', (p, a) => p.rmdir(a('/m'))],
  ['rm missing', (p, a) => p.rm(a('/nope10'))],
  ['rm missing force', (p, a) => p.rm(a('/nope10'), { force: true })],
  ['rm dir', (p, a) => p.rm(a('/d'))],
  ['rm under file', (p, a) => p.rm(a('/f/x'), { force: true })],
  ['rm file', (p, a) => p.rm(a('/it'))],
  ['rm -r', (p, a) => p.rm(a('/p1'), { recursive: true })],
  ['rm -r symlink to dir', async (p, a) => [await p.rm(a('/ld'), { recursive: true }), await p.readdir(a('/d'))]],
  ['rename missing', (p, a) => p.rename(a('/nope11'), a('/x'))],
  ['rename dir into itself', (p, a) => p.rename(a('/d'), a('/d/sub/x'))],
  ['rename file over dir', (p, a) => p.rename(a('/f'), a('/d'))],
  ['rename dir over file', (p, a) => p.rename(a('/d'), a('/f'))],
  ['rename dir over nonempty dir', async (p, a) => [await p.mkdir(a('/e')), await p.rename(a('/e'), a('/d')).catch((e: { code: string }) => e.code), await p.rmdir(a('/e'))]],
  ['rename to missing parent', (p, a) => p.rename(a('/f'), a('/nope12/x'))],
  ['rename file', async (p, a) => [await p.rename(a('/u'), a('/d/u2')), await p.readdir(a('/d'))]],
  ['rename dir across', async (p, a) => [await p.rename(a('/d/sub'), a('/sub')), await p.stat(a('/d')), await p.stat(a('/sub'))]],
  ['rename over file', async (p, a) => [await p.rename(a('/d/u2'), a('/wx')), await p.readFile(a('/wx'))]],
  ['rename hard links of one inode', async (p, a) => [await p.link(a('/wx'), a('/wx2')), await p.rename(a('/wx'), a('/wx2')), await p.readdir(a('/'))]],
  ['copyFile', async (p, a) => [await p.copyFile(a('/f'), a('/copy')), await p.readFile(a('/copy'), 'utf8'), await p.stat(a('/copy'))]],
  ['copyFile excl', (p, a) => p.copyFile(a('/f'), a('/copy'), 1)],
  ['copyFile missing', (p, a) => p.copyFile(a('/nope13'), a('/copy2'))],
  ['copyFile to missing dir', (p, a) => p.copyFile(a('/f'), a('/nope14/c'))],
  ['chmod', async (p, a) => [await p.chmod(a('/copy'), 0o4711), await p.stat(a('/copy'))]],
  ['chmod via symlink', async (p, a) => [await p.symlink('copy', a('/lc')), await p.chmod(a('/lc'), 0o600), await p.stat(a('/copy')), await p.lstat(a('/lc'))]],
  ['chmod missing', (p, a) => p.chmod(a('/nope15'), 0o600)],
  // inode_init_owner: in a set-group-ID directory new inodes take its group, new directories the bit.
  ['set-group-ID directory', async (p, a) => {
    await p.mkdir(a('/sg'));
    await p.chown(a('/sg'), 0, 1234);
    await p.chmod(a('/sg'), 0o2775);
    await p.writeFile(a('/sg/f'), 'x');
    await p.mkdir(a('/sg/d'));
    await p.symlink('f', a('/sg/l'));
    return [await p.stat(a('/sg/f')), await p.stat(a('/sg/d')), await p.lstat(a('/sg/l'))].map((s) => [s.gid, s.mode]);
  }],
  ['chown', async (p, a) => [await p.chown(a('/copy'), 1234, 5678), await p.stat(a('/copy'))]],
  ['lchown', async (p, a) => [await p.lchown(a('/lc'), 42, 43), await p.lstat(a('/lc')), await p.stat(a('/lc'))]],
  ['chown missing', (p, a) => p.chown(a('/nope16'), 1, 1)],
  ['lchown missing', (p, a) => p.lchown(a('/nope16'), 1, 1)],
  ['utimes', async (p, a) => {
    await p.utimes(a('/copy'), 1_600_000_000.5, new Date(1_650_000_000_250));
    const s = await p.stat(a('/copy'), { bigint: true });
    return [Number((await p.stat(a('/copy'))).atimeMs), (await p.stat(a('/copy'))).mtime.toISOString(), String(s.atimeNs), String(s.mtimeNs)];
  }],
  ['lutimes', async (p, a) => {
    await p.lutimes(a('/lc'), 1_500_000_000, 1_500_000_001);
    return [(await p.lstat(a('/lc'))).mtimeMs, (await p.stat(a('/lc'))).mtimeMs];
  }],
  ['utimes missing', (p, a) => p.utimes(a('/nope17'), 1, 1)],
  ['lutimes missing', (p, a) => p.lutimes(a('/nope17'), 1, 1)],
  ['access', (p, a) => p.access(a('/copy'))],
  ['access missing', (p, a) => p.access(a('/nope18'))],
  ['access X_OK', (p, a) => p.access(a('/f'), 1)],
  ['realpath', (p, a) => p.realpath(a('/lc'))],
  ['realpath dotdot through symlink', async (p, a) => [await p.symlink('d/../f', a('/lff')), await p.realpath(a('/lff')), await p.realpath(a('/d/../lf'))]],
  ['realpath missing', (p, a) => p.realpath(a('/nope19'))],
  ['realpath loop', (p, a) => p.realpath(a('/loop'))],
  ['truncate', async (p, a) => [await p.truncate(a('/f'), 3), await p.readFile(a('/f'), 'utf8'), await p.truncate(a('/f'), 6), await p.readFile(a('/f'))]],
  ['truncate dir', (p, a) => p.truncate(a('/d'))],
  ['truncate missing', (p, a) => p.truncate(a('/nope20'))],
  ['open r: read, write refused', async (p, a) => {
    const h = await p.open(a('/copy'), 'r');
    try {
      const r = await h.read(Buffer.alloc(4), 0, 4, null);
      const r2 = await h.read(Buffer.alloc(10), 0, 10, null);
      const w = await h.write('zz').catch((e: { code: string; syscall: string }) => [e.code, e.syscall]);
      return [r.bytesRead, r.buffer, r2.bytesRead, r2.buffer.subarray(0, r2.bytesRead), w, await h.stat()];
    } finally {
      await h.close();
    }
  }],
  ['open missing', (p, a) => p.open(a('/nope21'), 'r')],
  ['open wx existing', (p, a) => p.open(a('/copy'), 'wx')],
  ['open dir for writing', (p, a) => p.open(a('/d'), 'r+')],
  ['open dir r: read fails', async (p, a) => {
    const h = await p.open(a('/d'), 'r');
    try {
      return await h.read(Buffer.alloc(4), 0, 4, 0);
    } finally {
      await h.close();
    }
  }],
  ['open bad flag', (p, a) => p.open(a('/copy'), 'q').catch((e: { code: string }) => (e.code === 'ERR_INVALID_ARG_VALUE' || e.code === 'EINVAL' ? 'refused' : e))],
  ['open r+: positional and sequential writes', async (p, a) => {
    const h = await p.open(a('/copy'), 'r+');
    try {
      await h.write(Buffer.from('ABCDEFGH'), 2, 3, 1);
      await h.write('xy');
      await h.write('z', null, 'utf8');
      return [await h.readFile('utf8'), await p.readFile(a('/copy'), 'utf8'), (await h.stat()).size];
    } finally {
      await h.close();
    }
  }],
  ['open a: writes append whatever the position', async (p, a) => {
    const h = await p.open(a('/copy'), 'a');
    try {
      await h.write('1', 0);
      await h.write(Buffer.from('23'), 0, 2, 0);
      return await p.readFile(a('/copy'), 'utf8');
    } finally {
      await h.close();
    }
  }],
  ['open a+: read from the start, write at the end', async (p, a) => {
    const h = await p.open(a('/copy'), 'a+');
    try {
      const r = await h.read(Buffer.alloc(3), 0, 3, null);
      await h.write('!');
      return [r.buffer, await h.readFile('utf8'), await p.readFile(a('/copy'), 'utf8')];
    } finally {
      await h.close();
    }
  }],
  ['open w truncates, w+ reads back', async (p, a) => {
    const h = await p.open(a('/copy'), 'w+');
    try {
      const before = (await h.stat()).size;
      await h.write('fresh');
      return [before, await h.read(Buffer.alloc(8), 0, 8, 0), await h.truncate(2), await p.readFile(a('/copy'), 'utf8')];
    } finally {
      await h.close();
    }
  }],
  ['open creates with mode', async (p, a) => {
    const h = await p.open(a('/made'), 'wx', 0o751);
    await h.close();
    return p.stat(a('/made'));
  }],
  ['handle after close', async (p, a) => {
    const h = await p.open(a('/made'), 'r');
    await h.close();
    return [await h.read(Buffer.alloc(1), 0, 1, 0).catch((e: { code: string }) => e.code), await h.stat().catch((e: { code: string }) => e.code)];
  }],
  ['unlink while open', async (p, a) => {
    await p.writeFile(a('/open'), 'still here');
    const h = await p.open(a('/open'), 'r+');
    try {
      await p.unlink(a('/open'));
      await h.write('STILL', 0);
      const st = await h.stat();
      return [await h.readFile('utf8'), st.nlink, st.size, await p.readdir(a('/'))];
    } finally {
      await h.close();
    }
  }],
  ['filehandle writeFile/readFile', async (p, a) => {
    const h = await p.open(a('/fh'), 'w+');
    try {
      await h.writeFile('one two');
      await h.appendFile(' three');
      return [await h.readFile('utf8'), await p.readFile(a('/fh'), 'utf8')];
    } finally {
      await h.close();
    }
  }],
  ['readFile through a handle', async (p, a) => {
    const h = await p.open(a('/fh'), 'r');
    try {
      return await p.readFile(h, 'utf8');
    } finally {
      await h.close();
    }
  }],
];

const skipAll = oracleGate(HAVE_E2FSPROGS ? null : 'e2fsprogs missing');

describe.skipIf(skipAll)('Volume against node:fs on a host directory', () => {
  let img: string;
  let hostDir: string;

  beforeAll(() => {
    img = makeImage('vol-cases', {}, { sizeMiB: 16, blockSize: 1024 });
    hostDir = hostRoot('vol-cases');
  });

  it('scripted cases: same values and errors (code, errno, syscall, path, dest, message)', async () => {
    await using vol = await Volume.open(img, { write: true, now: NOW, umask: UMASK });
    await vol.promises.chmod('/', 0o755); // mkfs -d gave the root its source directory's mode
    const host = hostDriver(hostDir);
    const image = volumeDriver(vol.promises);
    for (const [name, fn] of CASES) {
      const want = await outcome(host, fn);
      const got = await outcome(image, fn);
      expect(got, name).toEqual(want);
      await expectSameTree(host, image, `tree after ${name}`);
    }
    await vol.close();
    expectE2fsckClean(img, 'after the scripted cases');
  });
});

// ---------------------------------------------------------------------------------------------- model-based

const NAMES = ['a', 'b', 'c', 'd'];
const SYMLINK_TARGETS = ['a', 'b', '../a', '../c/d', 'c/b', '.', '..', 'nothing'];

function randomPath(r: Prng, existing: string[]): string {
  if (existing.length > 0 && r.int(10) < 6) {
    const base = existing[r.int(existing.length)]!;
    if (r.int(4) === 0 && base !== '/') return `${base}/${NAMES[r.int(NAMES.length)]}`;
    return base;
  }
  const depth = 1 + r.int(3);
  let p = '';
  for (let i = 0; i < depth; i++) p += `/${NAMES[r.int(NAMES.length)]}`;
  return p;
}

function randomData(r: Prng): Buffer {
  const n = r.int(8) === 0 ? 20_000 + r.int(60_000) : r.int(3000);
  const b = Buffer.alloc(n);
  const seed = r.int(256);
  for (let i = 0; i < n; i++) b[i] = (seed + i * 31 + (i >> 7)) & 0xff;
  return b;
}

/** One random operation as a step both sides run; the model is the host tree's current paths. */
function randomStep(r: Prng, existing: string[]): Step {
  const p1 = randomPath(r, existing);
  const p2 = randomPath(r, existing);
  switch (r.int(18)) {
    case 16: {
      const uid = r.int(3) * 1000, gid = r.int(3) * 1000;
      return r.int(2) ? [`chown ${p1} ${uid} ${gid}`, (p, a) => p.chown(a(p1), uid, gid)] : [`lchown ${p1} ${uid} ${gid}`, (p, a) => p.lchown(a(p1), uid, gid)];
    }
    case 17: {
      const data = randomData(r).subarray(0, 1 + r.int(5000));
      const pos = r.int(2) ? r.int(100) : r.int(50_000);
      const flags = ['r+', 'a', 'w', 'a+'][r.int(4)]!;
      return [`open ${p1} ${flags}; write ${data.length} at ${pos}`, async (p, a) => {
        const h = await p.open(a(p1), flags);
        try {
          const w = await h.write(data, 0, data.length, pos);
          return [w.bytesWritten, (await h.stat()).size];
        } finally {
          await h.close();
        }
      }];
    }
    case 0:
    case 1: {
      const data = randomData(r);
      return [`writeFile ${p1} (${data.length})`, (p, a) => p.writeFile(a(p1), data)];
    }
    case 2: {
      const data = randomData(r).subarray(0, 1 + r.int(500));
      return [`appendFile ${p1}`, (p, a) => p.appendFile(a(p1), data)];
    }
    case 3:
      return [`mkdir ${p1}`, (p, a) => p.mkdir(a(p1))];
    case 4:
      return [`mkdir -p ${p1}`, (p, a) => p.mkdir(a(p1), { recursive: true })];
    case 5:
    case 6:
      return [`rename ${p1} ${p2}`, (p, a) => p.rename(a(p1), a(p2))];
    case 7:
      return [`unlink ${p1}`, (p, a) => p.unlink(a(p1))];
    case 8:
      return [`rmdir ${p1}`, (p, a) => p.rmdir(a(p1))];
    case 9:
      return [`link ${p1} ${p2}`, (p, a) => p.link(a(p1), a(p2))];
    case 10: {
      const t = SYMLINK_TARGETS[r.int(SYMLINK_TARGETS.length)]!;
      return [`symlink ${t} ${p1}`, (p, a) => p.symlink(t, a(p1))];
    }
    case 11: {
      const mode = r.int(0o10000);
      return [`chmod ${p1} ${mode.toString(8)}`, (p, a) => p.chmod(a(p1), mode)];
    }
    case 12: {
      const len = r.int(2) ? r.int(100) : r.int(40_000);
      return [`truncate ${p1} ${len}`, (p, a) => p.truncate(a(p1), len)];
    }
    case 13:
      return r.int(3) === 0 ? [`rm -rf ${p1}`, (p, a) => p.rm(a(p1), { recursive: true, force: true })] : [`rm ${p1}`, (p, a) => p.rm(a(p1))];
    case 14:
      return [`copyFile ${p1} ${p2}`, (p, a) => p.copyFile(a(p1), a(p2))];
    default:
      switch (r.int(4)) {
        case 0:
          return [`readFile ${p1}`, (p, a) => p.readFile(a(p1))];
        case 1:
          return [`readdir ${p1}`, (p, a) => p.readdir(a(p1), { withFileTypes: true })];
        case 2:
          return [`stat ${p1}`, (p, a) => p.stat(a(p1))];
        default:
          return [`realpath ${p1}`, (p, a) => p.realpath(a(p1))];
      }
  }
}

const SEEDS = (process.env.EXT4KIT_VOLUME_SEEDS ?? '1,2,3').split(',').map(Number);
const STEPS = Number(process.env.EXT4KIT_VOLUME_STEPS ?? 700);

/** The filesystem a seed runs on: ext4 1k (seed 1), ext2 1k (block-mapped, no journal: seed 3), ext4 4k (the rest). */
function imageFor(seed: number): string {
  const name = `vol-model-${seed}`;
  if (seed % 3 === 0) {
    const img = scratchPath(`${name}.img`);
    mkfs('ext2', img, 24 * 1024 * 1024, ['-b', '1024'], tmpDir(`${name}-empty`));
    return img;
  }
  return makeImage(name, {}, { sizeMiB: 24, blockSize: seed % 3 === 1 ? 1024 : 4096 });
}

describe.skipIf(skipAll)('Volume against node:fs: model-based random sequences', () => {
  for (const seed of SEEDS) {
    it(`seed ${seed}: ${STEPS} operations, the trees equal after each; e2fsck clean; the kernel reads what the host has`, async () => {
      const img = imageFor(seed);
      // The script runs two levels down on both sides (/t/u): a relative symlink climbing out of
      // the script's root ('..' from /a) then lands on the same (empty-but-'t') directory on both
      // sides instead of the image root's '..' (itself) versus the host directory's parent.
      const hostDir = hostRoot(`vol-model-${seed}`);
      nodefs.mkdirSync(path.join(hostDir, 't/u'), { recursive: true });
      const host = hostDriver(hostDir, '/t/u');
      const r = new Prng(seed);
      const log: string[] = [];
      {
        await using vol = await Volume.open(img, { write: true, now: NOW, umask: UMASK });
        await vol.promises.chmod('/', 0o755);
        await vol.promises.mkdir('/t/u', { recursive: true });
        const image = volumeDriver(vol.promises, '/t/u');
        let tree = await snapshot(host.p, host.abs);
        for (let i = 0; i < STEPS; i++) {
          // Not the root itself: the host's is a subdirectory (rename or rmdir of it differ from a real root's).
          const [name, fn] = randomStep(r, Object.keys(tree).filter((k) => k !== '/'));
          log.push(name);
          const want = await outcome(host, fn);
          const got = await outcome(image, fn);
          const before = Object.entries(tree).map(([k, v]) => `${k}:${v.type}${v.target ? `->${v.target}` : ''}`).join(' ');
          expect(got, `step ${i}: ${name}\n${log.slice(-8).join('\n')}\ntree before: ${before}`).toEqual(want);
          tree = await snapshot(host.p, host.abs);
          expect(await snapshot(image.p, image.abs), `tree after step ${i}: ${name}\n${log.slice(-12).join('\n')}`).toEqual(tree);
        }
      }
      expectE2fsckClean(img, `after seed ${seed}`);
      const mountSkip = oracleGate(CAN_MOUNT ? null : (LOOP_SKIP ?? 'loop mounts unavailable'));
      if (mountSkip) return;
      await using vol = await Volume.open(img, { umask: UMASK });
      await withLoopMount(
        img,
        async (mp) => {
          const kernel = hostDriver(mp);
          const hostAll = hostDriver(hostDir);
          expect(await snapshot(kernel.p, kernel.abs), 'the kernel mount equals the host directory').toEqual(await snapshot(hostAll.p, hostAll.abs));
          // Stats as the kernel gives them, field by field, for every entry.
          for (const rel of Object.keys(await snapshot(kernel.p, kernel.abs))) {
            const k = await nodefs.promises.lstat(kernel.abs(rel), { bigint: true });
            const v = await vol.promises.lstat(rel, { bigint: true });
            for (const f of ['ino', 'mode', 'nlink', 'uid', 'gid', 'size', 'blocks', 'rdev', 'atimeNs', 'mtimeNs', 'ctimeNs', 'birthtimeNs'] as const) {
              expect(v[f], `${rel}: ${f}`).toBe(k[f]);
            }
          }
        },
        { readOnly: true },
      );
    });
  }
});
