/**
 * truncate(2) and pwrite(2) of inline_data files, which were EOPNOTSUPP.
 *
 * truncate as ext4_setattr does it: shrinking keeps the file inline, cut
 * (ext4_inline_data_truncate); growing within the inline area the file has (60 bytes of i_block
 * plus its system.data value) keeps it inline; growing past that moves it to a block first
 * (ext4_convert_inline_data), even when the new size would fit an inode with a longer value.
 * pwrite as ext4_write_begin does it: a write ending within the most the inode can hold inline
 * stays inline (system.data grown), else the content moves to block 0 first, then the write.
 *
 * Oracles: the kernel truncating the same inline files on a loop mount of the same image (size,
 * inline or extent-mapped, blocks: debugfs), e2fsck -fn, and the content as the kernel reads it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { Volume } from '../../lib/node.js';
import { INODE_FLAGS } from '../../lib/ext4/inode.js';
import { debugfs, debugfsStats, expectE2fsckClean, oracleGate, withLoopMount } from '../helpers/tools.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, cleanupImages, copyImage, makeImage, pattern } from '../ops/helpers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_760_000_000, nsec: 0 };

/** name → [content written, size truncated to]. */
const CASES: Record<string, [Uint8Array, number]> = {
  grow: [pattern(11, 1), 5000], // past a block: block 0 holds the content
  growInIblock: [pattern(11, 2), 40], // within i_block: stays inline
  growToIblock: [pattern(11, 7), 60],
  growPastIblock: [pattern(11, 8), 61], // would fit a longer system.data: converted all the same
  growPastValue: [pattern(70, 9), 72],
  growEmpty: [new Uint8Array(0), 3],
  growEmptyFar: [new Uint8Array(0), 3000],
  shrinkIblock: [pattern(50, 3), 7], // within i_block
  shrinkValue: [pattern(100, 4), 70], // system.data cut, not dropped
  shrinkToZero: [pattern(90, 5), 0],
  same: [pattern(30, 6), 30],
};

/** name → [content written, position, bytes written there]. */
const WRITES: Record<string, [Uint8Array, number, Uint8Array]> = {
  wInside: [pattern(30, 11), 10, pattern(5, 12)],
  wExtend: [pattern(11, 13), 50, pattern(20, 14)], // system.data grows
  wEmpty: [new Uint8Array(0), 0, pattern(60, 15)],
  wBlock0: [pattern(11, 16), 300, pattern(10, 17)], // past the inode: one block
  wOverlap: [pattern(50, 18), 20, pattern(2000, 19)], // block 0 and on
  wFar: [pattern(11, 20), 5000, pattern(3000, 21)], // block 0 (the old content), a hole, blocks
};

/** Size, inline or not, and the number of 512-byte sectors of each file (debugfs). */
function shapes(img: string, names = Object.keys(CASES)): Record<string, string> {
  const st = debugfsStats(img, names.map((n) => `/${n}`));
  return Object.fromEntries(names.map((n) => {
    const s = st.get(`/${n}`)!;
    return [n, `${s.size} ${s.flags & INODE_FLAGS.INLINE_DATA ? 'inline' : s.flags & INODE_FLAGS.EXTENTS ? 'extents' : '?'} ${s.blockcount}`];
  }));
}

describe.skipIf(!HAVE_E2FSPROGS)('truncate of inline_data files', () => {
  it('shrinking cuts it in the inode, growing moves it to a block: as the kernel does', async () => {
    const base = makeImage('inline-truncate', {}, { sizeMiB: 8, blockSize: 1024, mkfsOpts: ['-O', 'inline_data'] });
    {
      await using vol = await Volume.open(base, { write: true, now: NOW, umask: 0o022 });
      for (const [n, [data]] of Object.entries(CASES)) await vol.promises.writeFile(`/${n}`, data);
    }
    const before = shapes(base);
    for (const n of Object.keys(CASES)) expect(before[n], n).toMatch(/ inline 0$/);
    const ours = copyImage(base, 'inline-truncate-ours');
    {
      await using vol = await Volume.open(ours, { write: true, now: NOW, umask: 0o022 });
      for (const [n, [, size]] of Object.entries(CASES)) await vol.promises.truncate(`/${n}`, size);
    }
    expectE2fsckClean(ours, 'after truncating inline files');
    const got = shapes(ours);
    expect(got).toEqual({
      grow: '5000 extents 2', growInIblock: '40 inline 0', growToIblock: '60 inline 0', growPastIblock: '61 extents 2', growPastValue: '72 extents 2',
      growEmpty: '3 inline 0', growEmptyFar: '3000 extents 2',
      shrinkIblock: '7 inline 0', shrinkValue: '70 inline 0', shrinkToZero: '0 inline 0', same: '30 inline 0',
    });
    if (oracleGate(CAN_MOUNT ? null : (LOOP_SKIP ?? 'loop mounts unavailable'))) return;
    // The kernel on the same image: the same shapes; and it reads our content.
    const kernel = copyImage(base, 'inline-truncate-kernel');
    await withLoopMount(kernel, (mp) => {
      for (const [n, [, size]] of Object.entries(CASES)) nodefs.truncateSync(path.join(mp, n), size);
    });
    expectE2fsckClean(kernel, 'kernel truncates');
    expect(shapes(kernel)).toEqual(got);
    await withLoopMount(ours, (mp) => {
      for (const [n, [data, size]] of Object.entries(CASES)) {
        const want = new Uint8Array(size);
        want.set(data.subarray(0, size));
        expect(new Uint8Array(nodefs.readFileSync(path.join(mp, n))), n).toEqual(want);
      }
    }, { readOnly: true });
  }, 60_000);
});

describe.skipIf(!HAVE_E2FSPROGS)('pwrite to inline_data files', () => {
  it('a write that fits stays inline, a longer one moves the file to blocks: as the kernel does', async () => {
    const base = makeImage('inline-pwrite', {}, { sizeMiB: 8, blockSize: 1024, mkfsOpts: ['-O', 'inline_data'] });
    {
      await using vol = await Volume.open(base, { write: true, now: NOW, umask: 0o022 });
      for (const [n, [data]] of Object.entries(WRITES)) await vol.promises.writeFile(`/${n}`, data);
    }
    const names = Object.keys(WRITES);
    for (const [n, s] of Object.entries(shapes(base, names))) expect(s, n).toMatch(/ inline 0$/);
    const ours = copyImage(base, 'inline-pwrite-ours');
    {
      await using vol = await Volume.open(ours, { write: true, now: NOW, umask: 0o022 });
      for (const [n, [, at, bytes]] of Object.entries(WRITES)) {
        await using h = await vol.promises.open(`/${n}`, 'r+');
        expect((await h.write(bytes, 0, bytes.length, at)).bytesWritten).toBe(bytes.length);
      }
    }
    expectE2fsckClean(ours, 'after writes to inline files');
    const got = shapes(ours, names);
    expect(got).toEqual({
      wInside: '30 inline 0', wExtend: '70 inline 0', wEmpty: '60 inline 0',
      wBlock0: '310 extents 2', wOverlap: '2020 extents 4', wFar: '8000 extents 10',
    });
    const want = (n: string) => {
      const [data, at, bytes] = WRITES[n]!;
      const w = new Uint8Array(Math.max(data.length, at + bytes.length));
      w.set(data);
      w.set(bytes, at);
      return w;
    };
    {
      await using ro = await Volume.open(ours);
      for (const n of names) expect(new Uint8Array((await ro.promises.readFile(`/${n}`)) as Buffer), n).toEqual(want(n));
    }
    if (oracleGate(CAN_MOUNT ? null : (LOOP_SKIP ?? 'loop mounts unavailable'))) return;
    const kernel = copyImage(base, 'inline-pwrite-kernel');
    await withLoopMount(kernel, (mp) => {
      for (const [n, [, at, bytes]] of Object.entries(WRITES)) {
        const fd = nodefs.openSync(path.join(mp, n), 'r+');
        try {
          nodefs.writeSync(fd, bytes, 0, bytes.length, at);
        } finally {
          nodefs.closeSync(fd);
        }
      }
    });
    expectE2fsckClean(kernel, 'kernel writes');
    expect(shapes(kernel, names)).toEqual(got);
    await withLoopMount(ours, (mp) => {
      for (const n of names) expect(new Uint8Array(nodefs.readFileSync(path.join(mp, n))), n).toEqual(want(n));
    }, { readOnly: true });
  }, 60_000);
});

describe.skipIf(!HAVE_E2FSPROGS)('inline_data files the write path refuses', () => {
  it('immutable, append-only, data-journaled or verity: EPERM / EOPNOTSUPP, the image unchanged', async () => {
    const img = makeImage('inline-refuse', {}, { sizeMiB: 8, blockSize: 1024, mkfsOpts: ['-O', 'inline_data'] });
    const FLAGS = { immutable: [INODE_FLAGS.IMMUTABLE, 'EPERM'], append: [INODE_FLAGS.APPEND, 'EPERM'], journaled: [INODE_FLAGS.JOURNAL_DATA, 'EOPNOTSUPP'], verity: [INODE_FLAGS.VERITY, 'EOPNOTSUPP'] } as const;
    {
      await using vol = await Volume.open(img, { write: true, now: NOW, umask: 0o022 });
      for (const n of Object.keys(FLAGS)) await vol.promises.writeFile(`/${n}`, pattern(20, 1));
    }
    // debugfs sets each flag (and the inode checksum) beside INLINE_DATA.
    debugfs(img, Object.entries(FLAGS).map(([n, [f]]) => `set_inode_field /${n} flags 0x${(INODE_FLAGS.INLINE_DATA | f).toString(16)}`), { write: true });
    expectE2fsckClean(img, 'flags set');
    const before = nodefs.readFileSync(img);
    {
      await using vol = await Volume.open(img, { write: true, now: NOW, umask: 0o022 });
      for (const [n, [, code]] of Object.entries(FLAGS)) {
        await expect(vol.promises.truncate(`/${n}`, 5000), n).rejects.toMatchObject({ code });
        await expect(vol.promises.truncate(`/${n}`, 3), n).rejects.toMatchObject({ code });
        // (the open may refuse first, as Linux's does for immutable and append-only files)
        const pwrite = async () => {
          await using h = await vol.promises.open(`/${n}`, 'r+');
          await h.write(pattern(10, 2), 0, 10, 5);
        };
        await expect(pwrite(), n).rejects.toMatchObject({ code });
      }
    }
    expect(nodefs.readFileSync(img).equals(before)).toBe(true);
  }, 60_000);
});
