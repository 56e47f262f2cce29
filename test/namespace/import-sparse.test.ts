/**
 * Sparse tar members import without their holes (TreeEntry.sparse): readTar hands the member's
 * map over, importTree skips the holes (no zero bytes read, no transaction filled by them).
 *  - GNU tar archives (pax 1.0 and old GNU 'S') of a file with a 4 GiB hole: one data
 *    transaction, fast, only the data blocks allocated; the kernel reads the host file's size,
 *    data map and bytes; e2fsck clean.
 *  - an image's tree exported (ExportedEntry.sparse) into the same image: same fast path, same bytes.
 *  - a member claiming an 8 TiB size imports in one transaction too; one past the filesystem's
 *    maximum file size is EFBIG before any block is taken.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { readTar, writeTar } from '../../lib/cli/tar-tree.js';
import { importTree } from '../../lib/ops/import-tree.js';
import { exportTree, type ExportedEntry } from '../../lib/ops/export-tree.js';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { FileDevice } from '../../lib/io/file-device.js';
import { expectE2fsckClean, hostDataMaps, mkfs, oracleGate, skipReason, which, withLoopMount } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { prngBytes } from '../helpers/tree.js';

const skip = oracleGate(skipReason('loop') ?? (which('tar') ? null : 'GNU tar not installed'));
const BS = 4096;
const GiB = 2 ** 30;

/** A 4 GiB hole between data at the start, in the middle and at the end (not block-sized pieces). */
const HOLEY = { size: 4 * GiB + 12345, data: [[0, 5000], [2 * GiB + 8192, 9000], [4 * GiB + 12345 - 3000, 3000]] as [number, number][] };

let src = '';
let img = '';

beforeAll(() => {
  if (skip) return;
  src = tmpDir('import-sparse-src');
  fs.rmSync(src, { recursive: true, force: true });
  fs.mkdirSync(src);
  const fd = fs.openSync(path.join(src, 'holey'), 'w');
  for (const [off, len] of HOLEY.data) fs.writeSync(fd, prngBytes(`holey@${off}`, len), 0, len, off);
  fs.ftruncateSync(fd, HOLEY.size);
  fs.closeSync(fd);
  fs.writeFileSync(path.join(src, 'plain'), prngBytes('plain', 20000));
  img = tmpPath('import-sparse.img');
  mkfs('ext4', img, 64 << 20, ['-b', String(BS)]);
});

afterAll(() => {
  if (src) fs.rmSync(src, { recursive: true, force: true });
  if (img) fs.rmSync(img, { force: true });
});

async function importArchive(tarFile: string, at: string) {
  const fsys = await Filesystem.open(await FileDevice.open(img, { write: true }), { write: true, closeDevice: true });
  try {
    const t0 = performance.now();
    const summary = await importTree(fsys, readTar(fs.createReadStream(tarFile)), { at });
    return { summary, ms: performance.now() - t0 };
  } finally {
    await fsys.close();
  }
}

describe.skipIf(!!skip)('sparse tar members', () => {
  it('import a 4 GiB hole without reading it: one data transaction, holes kept, the kernel reads the source', async () => {
    for (const [at, opts] of [['pax10', ['--format=posix', '--sparse']], ['gnu', ['--format=gnu', '--sparse']]] as const) {
      const tarFile = tmpPath(`import-sparse-${at}.tar`);
      const t = spawnSync('tar', [...opts, '--numeric-owner', '-C', src, '-cf', tarFile, '.'], { encoding: 'utf8' });
      expect(t.status, t.stderr).toBe(0);
      const { summary, ms } = await importArchive(tarFile, `/${at}`);
      fs.rmSync(tarFile, { force: true });
      // Before: the holes came as zero chunks, 64 MiB per transaction (66 of them, ~11 s).
      expect(summary.files, at).toBe(2);
      expect(summary.transactions, at).toBeLessThanOrEqual(2); // the batch + the directories' times
      expect(ms, `${at}: import took ${ms.toFixed(0)} ms`).toBeLessThan(5000); // generous for a loaded box (the zero-filling path took ~11 s)
      expectE2fsckClean(img, `after import of ${at}`);
    }
    const host = hostDataMaps([path.join(src, 'holey'), path.join(src, 'plain')]);
    await withLoopMount(img, (mp) => {
      for (const at of ['pax10', 'gnu']) {
        const view = hostDataMaps([path.join(mp, at, 'holey'), path.join(mp, at, 'plain')]);
        expect(view[path.join(mp, at, 'holey')], `${at}/holey`).toEqual(host[path.join(src, 'holey')]);
        expect(view[path.join(mp, at, 'plain')], `${at}/plain`).toEqual(host[path.join(src, 'plain')]);
      }
    }, { readOnly: true });
  }, 60_000);

  it('an exported tree with holes imports the same way (image to image)', async () => {
    const fsys = await Filesystem.open(await FileDevice.open(img, { write: true }), { write: true, closeDevice: true });
    let summary;
    try {
      summary = await importTree(fsys, exportTree(fsys, '/pax10'), { at: '/copy' });
    } finally {
      await fsys.close();
    }
    expect(summary.files).toBe(2);
    expect(summary.transactions).toBeLessThanOrEqual(2);
    expectE2fsckClean(img, 'after the image-to-image copy');
    const host = hostDataMaps([path.join(src, 'holey')])[path.join(src, 'holey')];
    await withLoopMount(img, (mp) => {
      expect(hostDataMaps([path.join(mp, 'copy/holey')])[path.join(mp, 'copy/holey')]).toEqual(host);
    }, { readOnly: true });
  }, 60_000);

  it('take a member claiming 8 TiB in one transaction; past the maximum file size is EFBIG', async () => {
    const tail = prngBytes('tail', 4096);
    const archive = async (size: number) => {
      const file = tmpPath(`import-sparse-${size}.tar`);
      const out = fs.createWriteStream(file);
      const entries = async function* (): AsyncGenerator<ExportedEntry> {
        yield { path: '', type: 'dir', mode: 0o755, uid: 0, gid: 0 };
        yield {
          path: 'huge', type: 'file', mode: 0o644, uid: 0, gid: 0, size,
          sparse: { runs: [{ offset: size - 4096, length: 4096 }], data: async function* () { yield tail; } },
        };
      };
      const closed = new Promise((res) => out.on('close', res));
      await writeTar(entries(), out);
      await closed;
      return file;
    };
    const eight = await archive(8 * 1024 * GiB);
    const { summary, ms } = await importArchive(eight, '/huge8');
    fs.rmSync(eight, { force: true });
    expect(summary.transactions).toBeLessThanOrEqual(2);
    expect(ms, `import took ${ms.toFixed(0)} ms`).toBeLessThan(5000); // generous for a loaded box (the zero-filling path took ~11 s)
    expectE2fsckClean(img, 'after the 8 TiB member');
    await withLoopMount(img, (mp) => {
      const v = hostDataMaps([path.join(mp, 'huge8/huge')])[path.join(mp, 'huge8/huge')]!;
      expect(v.size).toBe(8 * 1024 * GiB);
      expect(v.runs).toEqual([[8 * 1024 * GiB - 4096, 8 * 1024 * GiB]]);
      expect(v.sha).toBe(kernelShaOf(tail));
    }, { readOnly: true });

    const tooBig = await archive(2 ** 50);
    await expect(importArchive(tooBig, '/huge50')).rejects.toMatchObject({ code: 'EFBIG' });
    fs.rmSync(tooBig, { force: true });
    expectE2fsckClean(img, 'after the refused member');
  }, 60_000);
});

function kernelShaOf(b: Uint8Array): string {
  const r = spawnSync('sha256sum', [], { input: b, encoding: 'utf8' });
  return r.stdout.split(' ')[0]!;
}
