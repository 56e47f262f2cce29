/**
 * The Volume's opendir (Dir), mkdtemp, FileHandle readv/writev and access against node:fs/promises
 * on a host directory (drivers.ts, as test/volume/against-host does: the same script, values and
 * whole errors compared, then the trees), and statfs against the kernel's statfs of the image
 * through a loop mount (ext4_statfs: blocks less the overhead, bavail less both reserves).
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { Volume } from '../../lib/node.js';
import { expectE2fsckClean, oracleGate, withLoopMount } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, cleanupImages, copyImage, makeImage } from '../ops/helpers.js';
import { makeNsImage } from '../namespace/helpers.js';
import { hostDriver, outcome, snapshot, volumeDriver, type FsApi } from './drivers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_760_000_000, nsec: 5 };

type Step = [string, (p: FsApi, abs: (rel: string) => string) => Promise<unknown>];

/** A Dir read to its end, entry by entry, then read again after close. */
async function drain(p: FsApi, dirPath: string, opts?: object): Promise<unknown[]> {
  const dir = await p.opendir(dirPath, opts);
  const got: unknown[] = [];
  for (let d = await dir.read(); d; d = await dir.read()) got.push(d);
  got.push(await dir.read());
  await dir.close();
  let after: unknown;
  try {
    after = dir.read();
  } catch (e) {
    after = ['thrown at once', (e as { code: string }).code, (e as Error).message];
  }
  const closeTwice = await dir.close().catch((e: { code: string }) => e.code);
  return [got, after, closeTwice];
}

/** mkdtemp's errors name the path tried: its six random characters put back as XXXXXX. */
function templated(e: { path: string; message: string }): never {
  e.path = e.path.replace(/[A-Za-z0-9]{6}$/, 'XXXXXX');
  e.message = e.message.replace(/[A-Za-z0-9]{6}'$/, "XXXXXX'");
  throw e;
}

const CASES: Step[] = [
  ['setup', async (p, a) => {
    await p.mkdir(a('/d'));
    await p.mkdir(a('/d/sub'));
    await p.writeFile(a('/d/f'), 'hello');
    await p.writeFile(a('/d/sub/g'), 'gee');
    await p.symlink('f', a('/d/lf'));
  }],
  ['opendir read() to the end, read after close', (p, a) => drain(p, a('/d'))],
  ['opendir async iterator (closes at the end)', async (p, a) => {
    const dir = await p.opendir(a('/d'));
    const got = [];
    for await (const e of dir) got.push(e);
    return [got, await dir.close().catch((e: { code: string }) => e.code)];
  }],
  ['opendir recursive', (p, a) => drain(p, a('/d'), { recursive: true })],
  ['opendir through a symlink to a dir', async (p, a) => [await p.symlink('d', a('/ld')), await drain(p, a('/ld'))]],
  ['opendir missing', (p, a) => p.opendir(a('/nope'))],
  ['opendir file', (p, a) => p.opendir(a('/d/f'))],
  ['mkdtemp', async (p, a) => {
    const made: string = await p.mkdtemp(a('/d/tmp-'));
    const suffix = made.slice(a('/d/tmp-').length);
    return [/^[A-Za-z0-9]{6}$/.test(suffix), await p.stat(made), await p.rmdir(made)];
  }],
  ['mkdtemp missing parent', (p, a) => p.mkdtemp(a('/nope/x')).catch(templated)],
  ['mkdtemp under a file', (p, a) => p.mkdtemp(a('/d/f/x')).catch(templated)],
  ['writev then readv', async (p, a) => {
    const h = await p.open(a('/v'), 'w+');
    try {
      const w1 = await h.writev([Buffer.from('ab'), Buffer.from('cde'), Buffer.alloc(0)]);
      const w2 = await h.writev([Buffer.from('XY')], 1);
      const w3 = await h.writev([Buffer.from('tail')]);
      const r1 = await h.readv([Buffer.alloc(2), Buffer.alloc(3), Buffer.alloc(10)], 0);
      const r2 = await h.readv([Buffer.alloc(4)], 100);
      return [w1.bytesWritten, w2.bytesWritten, w3.bytesWritten, r1.bytesRead, r1.buffers, r2.bytesRead, await p.readFile(a('/v'), 'utf8')];
    } finally {
      await h.close();
    }
  }],
  ['readv at the file position', async (p, a) => {
    const h = await p.open(a('/v'), 'r');
    try {
      const r1 = await h.readv([Buffer.alloc(3)]);
      const r2 = await h.readv([Buffer.alloc(2), Buffer.alloc(2)]);
      return [r1, r2];
    } finally {
      await h.close();
    }
  }],
  ['writev on a read-only handle', async (p, a) => {
    const h = await p.open(a('/v'), 'r');
    try {
      return await h.writev([Buffer.from('x')]);
    } finally {
      await h.close();
    }
  }],
  ['access', async (p, a) => [await p.access(a('/d/f')), await p.access(a('/d'), p.constants.X_OK)]],
  ['access missing', (p, a) => p.access(a('/d/none'))],
  ['access X_OK on a 0644 file', (p, a) => p.access(a('/d/f'), p.constants.X_OK)],
  ['statfs missing', (p, a) => p.statfs(a('/nope'))],
];

const skipAll = oracleGate(HAVE_E2FSPROGS ? null : 'e2fsprogs missing');

describe.skipIf(skipAll)('Volume: opendir, mkdtemp, readv/writev, access against node:fs; statfs against the kernel', () => {
  it('scripted cases: same values and errors as node:fs on a host directory', async () => {
    const img = makeImage('vol-dir', {}, { sizeMiB: 16, blockSize: 1024 });
    const hostDir = tmpDir('vol-dir');
    nodefs.chmodSync(hostDir, 0o755);
    nodefs.mkdirSync(path.join(hostDir, 'lost+found'), { mode: 0o700 });
    {
      await using vol = await Volume.open(img, { write: true, now: NOW, umask: 0o022 });
      await vol.promises.chmod('/', 0o755);
      const host = hostDriver(hostDir), image = volumeDriver(vol.promises);
      for (const [name, fn] of CASES) {
        const want = await outcome(host, fn);
        const got = await outcome(image, fn);
        expect(got, name).toEqual(want);
      }
      expect(await snapshot(image.p, image.abs)).toEqual(await snapshot(host.p, host.abs));
    }
    expectE2fsckClean(img, 'after the scripted cases');
  });

  it('mkdtemp names come from the filesystem random source: the same with a fixed clock, else not', async () => {
    const img = makeImage('vol-mkdtemp', {}, { sizeMiB: 8, blockSize: 1024 });
    const names = async (copy: string, now?: { sec: number; nsec: number }) => {
      await using vol = await Volume.open(copy, { write: true, ...(now ? { now } : {}) });
      return [await vol.promises.mkdtemp('/t-'), await vol.promises.mkdtemp('/t-')];
    };
    const a = await names(copyImage(img, 'a'), NOW), b = await names(copyImage(img, 'b'), NOW);
    expect(a).toEqual(b);
    expect(a[0]).not.toBe(a[1]);
    const c = await names(copyImage(img, 'c'), { sec: NOW.sec + 1, nsec: 0 });
    expect(c).not.toEqual(a);
    const d = await names(copyImage(img, 'd'));
    expect(d).not.toEqual(a);
  });

  for (const c of [
    { label: 'ext4 1k', kind: 'ext4', bs: 1024, opts: [] as string[], write: true },
    { label: 'ext4 4k with 5% reserved', kind: 'ext4', bs: 4096, opts: ['-m', '5'], write: true },
    { label: 'ext2 (no extents: no kernel reserve)', kind: 'ext2', bs: 1024, opts: ['-m', '1'], write: true },
    // Read-only: ext4kit does not write bigalloc.
    { label: 'ext4 4k bigalloc 16k clusters, read-only', kind: 'ext4', bs: 4096, opts: ['-O', 'bigalloc', '-C', '16384'], write: false },
  ] as const) {
    it(`statfs equals the kernel's (${c.label})`, async (ctx) => {
      if (!CAN_MOUNT) {
        oracleGate(LOOP_SKIP);
        ctx.skip();
      }
      const img = makeNsImage({ name: `vol-statfs-${c.kind}-${c.bs}`, kind: c.kind, blockSize: c.bs, sizeMiB: 32, mkfsOpts: [...c.opts], tree: { 'a/b': new Uint8Array(50_000) } });
      let ours: Record<string, number> = {};
      {
        await using vol = await Volume.open(img, { write: c.write, now: NOW });
        if (c.write) {
          await vol.promises.writeFile('/big', new Uint8Array(300_000));
          await vol.promises.mkdir('/x/y', { recursive: true });
        }
        const s = await vol.promises.statfs('/a');
        ours = { type: s.type, bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree };
        const big = await vol.promises.statfs('/', { bigint: true });
        expect(big.blocks).toBe(BigInt(s.blocks));
      }
      expectE2fsckClean(img, c.label);
      await withLoopMount(img, (mp) => {
        const k = nodefs.statfsSync(mp);
        expect(ours).toEqual({ type: k.type, bsize: k.bsize, blocks: k.blocks, bfree: k.bfree, bavail: k.bavail, files: k.files, ffree: k.ffree });
      });
    });
  }
});
