/**
 * The error state (issue 8 item 4 / the kernel's errors=remount-ro): when a
 * write call finds the filesystem corrupt, the open remembers the first
 * error and refuses every later write with EROFS naming it. By default
 * nothing is written (the failed call leaves the image unchanged); with
 * `recordErrors: true` the superblock gets ERROR_FS and the kernel's error
 * record (s_error_count, s_first_error_*, s_last_error_*), which dumpe2fs
 * shows and which makes e2fsck check the filesystem.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { Filesystem } from '../../lib/node.js';
import { isExt4Error } from '../../lib/errors.js';
import { allocate } from '../../lib/ops/allocate.js';
import { openFile } from '../../lib/ops/file.js';
import { copySparse, e2fsckClean, expectE2fsckClean, run } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';
import { buildImage, CONFIGS, HAVE_E2FSPROGS, sha256File } from './helpers.js';

if (!HAVE_E2FSPROGS) console.log('skipping error-state tests: e2fsprogs not installed');

const NOW = 1_750_000_000; // 2025-06-15T15:06:40Z

async function codeAndMessage(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isExt4Error(e)) return { code: e.code, message: e.message };
    throw e;
  }
  return { code: 'no error', message: '' };
}

/** dumpe2fs -h in UTC, as key → value. */
function header(img: string): Record<string, string> {
  const r = run('dumpe2fs', ['-h', img], { env: { LANG: 'C', LC_ALL: 'C', TZ: 'UTC' } });
  const out: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (m && !(m[1]!.trim() in out)) out[m[1]!.trim()] = m[2]!.trim();
  }
  return out;
}

describe.skipIf(!HAVE_E2FSPROGS)('error state after a corruption found by a write call', () => {
  let base: string;
  let sparseIno = 0;
  let leaf = 0;
  // ^metadata_csum, 4 KiB blocks, journal: /sparse has a depth-1 extent tree whose leaf's magic is zeroed.
  beforeAll(async () => {
    const c = CONFIGS.find((x) => x.label === '1k no checksums (^metadata_csum)')!;
    base = buildImage({ ...c, label: 'error-state', blockSize: 4096, sizeMiB: 16 });
    const ro = await Filesystem.open(base);
    try {
      const inode = await ro.resolve('/sparse');
      sparseIno = inode.ino;
      const map = await ro.fileMap(inode);
      expect(map.depth).toBe(1);
      leaf = map.metadataBlocks[0]!;
    } finally {
      await ro.close();
    }
    const fd = fs.openSync(base, 'r+');
    fs.writeSync(fd, new Uint8Array(2), 0, 2, leaf * 4096); // eh_magic 0xF30A → 0
    fs.closeSync(fd);
  });

  it('later writes fail with EROFS naming the first error; by default the image is unchanged', async () => {
    const img = tmpPath('errstate-default.img');
    copySparse(base, img);
    const sha = sha256File(img);
    const f = await Filesystem.open(img, { write: true, now: { sec: NOW, nsec: 0 } });
    try {
      const first = await codeAndMessage(allocate(f, '/sparse', { offset: 100 * 4096, len: 4096 }));
      expect(first.code).toBe('EFSCORRUPTED');
      expect(f.errorState).toMatchObject({ code: 'EFSCORRUPTED', time: { sec: NOW, nsec: 0 } });
      // A healthy file, a different call: refused all the same, naming the first error.
      const later = await codeAndMessage(allocate(f, '/empty', { offset: 0, len: 4096 }));
      expect(later.code).toBe('EROFS');
      expect(later.message).toContain('EFSCORRUPTED');
      expect(later.message).toContain(f.errorState!.message);
      const pw = await codeAndMessage((async () => (await openFile(f, '/a')).pwrite(new Uint8Array([1]), 0))());
      expect(pw.code).toBe('EROFS');
      expect(f.errorState!.code).toBe('EFSCORRUPTED'); // still the first one
    } finally {
      await f.close();
    }
    expect(sha256File(img)).toBe(sha);
  });

  it('with recordErrors: ERROR_FS and the error record as the kernel writes them (dumpe2fs, e2fsck)', async () => {
    const img = tmpPath('errstate-record.img');
    copySparse(base, img);
    const f = await Filesystem.open(img, { write: true, now: { sec: NOW, nsec: 0 }, recordErrors: true });
    try {
      // One good transaction first: the session is live (journal in use) when the error comes.
      expect(await allocate(f, '/empty', { offset: 0, len: 4096 })).toBe(4096);
      expect((await codeAndMessage(allocate(f, '/sparse', { offset: 100 * 4096, len: 4096 }))).code).toBe('EFSCORRUPTED');
      expect((await codeAndMessage(allocate(f, '/empty', { offset: 4096, len: 4096 }))).code).toBe('EROFS');
    } finally {
      await f.close();
    }
    const h = header(img);
    expect(h['Filesystem state']).toBe('clean with errors');
    expect(h['Filesystem features']).not.toContain('needs_recovery');
    expect(h['FS Error count']).toBe('1');
    const when = new Date(NOW * 1000).toUTCString().replace(/^(\w+), (\d+) (\w+) (\d+) ([\d:]+) GMT$/, '$1 $3 $2 $5 $4');
    expect(h['First error time']).toBe(when);
    expect(h['Last error time']).toBe(when);
    expect(h['First error function']).toBe(`inode ${sparseIno} extent tree`); // the structure, where the kernel names its C function
    expect(h['First error inode #']).toBe(String(sparseIno));
    expect(h['First error block #']).toBe(String(leaf));
    expect(h['First error err']).toBe('EFSCORRUPTED');
    expect(h['Last error err']).toBe('EFSCORRUPTED');
    // Without -f, e2fsck checks the filesystem because of ERROR_FS (a clean one it would skip)...
    const r = run('e2fsck', ['-n', img], { okStatus: true, env: { LANG: 'C', LC_ALL: 'C' } });
    expect(r.stdout).toContain('contains a file system with errors, check forced');
    // ...and finds the corrupt leaf that the error was about.
    expect(e2fsckClean(img).problems.join('\n')).toContain(`Inode ${sparseIno}`);
    // A write open refuses a filesystem with errors.
    expect((await codeAndMessage(Filesystem.open(img, { write: true }))).code).toBe('EROFS');
  });

  it('with recordErrors and nothing committed yet: only the superblock is written', async () => {
    const img = tmpPath('errstate-record-first.img');
    copySparse(base, img);
    const before = fs.readFileSync(img);
    const f = await Filesystem.open(img, { write: true, now: { sec: NOW, nsec: 0 }, recordErrors: true });
    try {
      expect((await codeAndMessage(allocate(f, '/sparse', { offset: 100 * 4096, len: 4096 }))).code).toBe('EFSCORRUPTED');
    } finally {
      await f.close();
    }
    const after = fs.readFileSync(img);
    const changed: number[] = [];
    for (let b = 0; b < before.length / 4096; b++) if (!before.subarray(b * 4096, (b + 1) * 4096).equals(after.subarray(b * 4096, (b + 1) * 4096))) changed.push(b);
    expect(changed).toEqual([0]); // the primary superblock's block
    const h = header(img);
    expect(h['Filesystem state']).toBe('clean with errors');
    expect(h['FS Error count']).toBe('1');
  });

  it('a healthy image with recordErrors on behaves as usual', async () => {
    const img = buildImage({ ...CONFIGS[0]!, label: 'error-state-healthy', sizeMiB: 16 });
    const f = await Filesystem.open(img, { write: true, now: { sec: NOW, nsec: 0 }, recordErrors: true });
    try {
      expect(await allocate(f, '/empty', { offset: 0, len: 4096 })).toBe(4096);
      expect(f.errorState).toBeNull();
    } finally {
      await f.close();
    }
    expectE2fsckClean(img);
    expect(header(img)['FS Error count']).toBeUndefined();
  });
});
