/**
 * The Volume from ext4kit/node: opened by path with `await using`, Node streams (createReadStream
 * with start/end, createWriteStream, pipeline from and to host files), the core's async-iterable
 * readStream, and the errors' errno and descriptions against Node's own table
 * (util.getSystemErrorMap). Oracles: e2fsck -fn after the writes; the kernel (loop mount) reads
 * the streamed files byte for byte.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import * as util from 'node:util';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Volume, VolumeError, type ErrorCode } from '../../lib/node.js';
import { expectE2fsckClean, oracleGate, withLoopMount } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, cleanupImages, makeImage, pattern } from '../ops/helpers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_760_000_000, nsec: 0 };
const skipAll = oracleGate(HAVE_E2FSPROGS ? null : 'e2fsprogs missing');

describe('errors as Node reports them', () => {
  it('errno and description per code are Node’s (util.getSystemErrorMap)', () => {
    const byName = new Map([...util.getSystemErrorMap()].map(([errno, [name, text]]) => [name, { errno, text }]));
    const codes: [ErrorCode | 'EBADF', string][] = [
      ['ENOENT', 'ENOENT'], ['EEXIST', 'EEXIST'], ['ENOTDIR', 'ENOTDIR'], ['EISDIR', 'EISDIR'], ['ENOTEMPTY', 'ENOTEMPTY'],
      ['ENAMETOOLONG', 'ENAMETOOLONG'], ['EMLINK', 'EMLINK'], ['ENOSPC', 'ENOSPC'], ['EINVAL', 'EINVAL'], ['EPERM', 'EPERM'],
      ['EXDEV', 'EXDEV'], ['ENODATA', 'ENODATA'], ['E2BIG', 'E2BIG'], ['EBADF', 'EBADF'], ['ELOOP', 'ELOOP'], ['EBUSY', 'EBUSY'],
      ['EROFS', 'EROFS'], ['EIO', 'EIO'], ['EFBIG', 'EFBIG'], ['EACCES', 'EACCES'], ['ERANGE', 'ERANGE'], ['ENOMEM', 'ENOMEM'],
      ['EOPNOTSUPP', 'ENOTSUP'],
    ];
    for (const [code, linux] of codes) {
      const want = byName.get(linux)!;
      expect(want, linux).toBeDefined();
      const e = new VolumeError(code, 'rename', '/a', '/b');
      expect([e.code, e.errno, e.message], code).toEqual([code, want.errno, `${code}: ${want.text}, rename '/a' -> '/b'`]);
    }
  });
});

describe.skipIf(skipAll)('Volume from ext4kit/node: by path, streams', () => {
  let img: string;
  let host: string;
  const big = pattern(300_000, 11);

  beforeAll(() => {
    img = makeImage('vol-streams', {}, { sizeMiB: 16, blockSize: 4096 });
    host = tmpDir('vol-streams');
    nodefs.writeFileSync(path.join(host, 'big.bin'), big);
  });

  it('write streams, read streams, pipelines; e2fsck clean; the kernel reads the same bytes', async () => {
    {
      await using vol = await Volume.open(img, { write: true, now: NOW });
      await vol.promises.mkdir('/s');
      // Three chunks through a Writable: one write each, in order.
      const ws = vol.createWriteStream('/s/chunks.txt');
      await pipeline(Readable.from(['alpha ', 'beta ', 'gamma']), ws);
      expect(await vol.promises.readFile('/s/chunks.txt', 'utf8')).toBe('alpha beta gamma');
      // Host file → image, then image → host.
      await pipeline(nodefs.createReadStream(path.join(host, 'big.bin')), vol.createWriteStream('/s/big.bin', { mode: 0o600 }));
      await pipeline(vol.createReadStream('/s/big.bin', { highWaterMark: 8192 }), nodefs.createWriteStream(path.join(host, 'back.bin')));
      expect(Buffer.compare(nodefs.readFileSync(path.join(host, 'back.bin')), Buffer.from(big))).toBe(0);
      // start/end inclusive, as node:fs counts.
      const part: Buffer[] = [];
      for await (const c of vol.createReadStream('/s/big.bin', { start: 1000, end: 70_999 })) part.push(c as Buffer);
      expect(Buffer.compare(Buffer.concat(part), Buffer.from(big.subarray(1000, 71_000)))).toBe(0);
      // The core's async iterable.
      let n = 0;
      for await (const c of vol.readStream('/s/big.bin', { start: 299_990 })) n += c.length;
      expect(n).toBe(10);
      // 'a' appends; r+ at `start` overwrites in place.
      await pipeline(Readable.from([' delta']), vol.createWriteStream('/s/chunks.txt', { flags: 'a' }));
      await pipeline(Readable.from(['ALPHA']), vol.createWriteStream('/s/chunks.txt', { flags: 'r+', start: 0 }));
      expect(await vol.promises.readFile('/s/chunks.txt', 'utf8')).toBe('ALPHA beta gamma delta');
      expect(((await vol.promises.stat('/s/big.bin')).mode & 0o777).toString(8)).toBe('600');
      // Errors arrive on the stream as node:fs's do.
      const err = await pipeline(vol.createReadStream('/s/missing'), nodefs.createWriteStream(path.join(host, 'x'))).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ENOENT', syscall: 'open', path: '/s/missing', errno: -2 });
      const werr = await pipeline(Readable.from(['x']), vol.createWriteStream('/s/chunks.txt', { flags: 'wx' })).catch((e: unknown) => e);
      expect(werr).toMatchObject({ code: 'EEXIST', syscall: 'open', path: '/s/chunks.txt' });
    }
    expectE2fsckClean(img, 'after the streams');
    if (oracleGate(CAN_MOUNT ? null : (LOOP_SKIP ?? 'loop mounts unavailable'))) return;
    await withLoopMount(
      img,
      (mp) => {
        expect(nodefs.readFileSync(path.join(mp, 's/chunks.txt'), 'utf8')).toBe('ALPHA beta gamma delta');
        expect(Buffer.compare(nodefs.readFileSync(path.join(mp, 's/big.bin')), Buffer.from(big))).toBe(0);
      },
      { readOnly: true },
    );
  });

  it('a read-only Volume refuses writes with EROFS naming the call', async () => {
    await using vol = await Volume.open(img);
    await expect(vol.promises.writeFile('/s/new', 'x')).rejects.toMatchObject({ code: 'EROFS', syscall: 'open', path: '/s/new' });
    await expect(vol.promises.access('/s/big.bin', vol.constants.W_OK)).rejects.toMatchObject({ code: 'EROFS', syscall: 'access' });
    expect((await vol.promises.readdir('/s')).sort()).toEqual(['big.bin', 'chunks.txt']);
  });
});
