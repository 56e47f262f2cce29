/**
 * FileDevice against the real kernel: loop block devices, sysfs size, and
 * EBUSY for mounted devices/images. Needs root and /dev/loop-control.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileDevice } from '../../lib/io/file-device.js';
import { imageInUse } from '../../lib/io/in-use.js';
import { loopSkipReason, pattern, rejection, sameBytes, tempDir } from './helpers.js';

const skipReason = loopSkipReason();
if (skipReason) console.log(`test/io/loop.test.ts: skipping kernel loop-device tests: ${skipReason}`);
const skip = skipReason !== undefined;

const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

let dir = '';
beforeAll(() => {
  if (!skip) dir = tempDir('ext4kit-loop-');
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Detach every loop device still backed by `file` (mount -o loop normally autoclears). */
function detachAll(file: string): void {
  let out = '';
  try {
    out = run('losetup', ['-j', file]);
  } catch {
    return;
  }
  for (const line of out.split('\n')) {
    const dev = line.split(':')[0];
    if (dev) {
      try {
        run('losetup', ['-d', dev]);
      } catch {
        // already gone
      }
    }
  }
}

function tryUmount(mnt: string): void {
  try {
    run('umount', [mnt]);
  } catch {
    // not mounted
  }
}

describe('FileDevice on a real loop block device', () => {
  it.skipIf(skip)('gets the size from sysfs, reads and writes through the device', async () => {
    const img = join(dir, 'blk.img');
    const content = pattern(40 << 20, 11);
    writeFileSync(img, content);
    let loop = '';
    try {
      loop = run('losetup', ['-f', '--show', img]);
      const dev = await FileDevice.open(loop, { write: true });
      try {
        expect(dev.isBlockDevice).toBe(true);
        expect(dev.size).toBe(40 << 20);
        expect(sameBytes(await dev.read(0, 1 << 20), content.subarray(0, 1 << 20))).toBe(true);
        expect(sameBytes(await dev.read((40 << 20) - 4096, 4096), content.subarray((40 << 20) - 4096))).toBe(true);
        expect((await rejection(dev.read((40 << 20) - 512, 1024))).code).toBe('EIO');
        expect((await rejection(dev.write(40 << 20, new Uint8Array(512)))).code).toBe('ENOSPC');
        await dev.write(8192, new Uint8Array(4096).fill(0x5a));
        await dev.flush();
      } finally {
        await dev.close();
      }
      // Without sysfs, the size is found by probing.
      const probed = await FileDevice.open(loop, { roots: { sys: join(dir, 'no-sysfs'), proc: '/proc' } });
      try {
        expect(probed.size).toBe(40 << 20);
      } finally {
        await probed.close();
      }
    } finally {
      if (loop) run('losetup', ['-d', loop]);
    }
    const onDisk = readFileSync(img);
    expect(onDisk.subarray(8192, 12288).every((b) => b === 0x5a)).toBe(true);
  });

  it.skipIf(skip)('size of a loop device over a file that is not a multiple of 512 is rounded down', async () => {
    const img = join(dir, 'odd.img');
    writeFileSync(img, new Uint8Array(0));
    truncateSync(img, (1 << 20) + 700);
    let loop = '';
    try {
      loop = run('losetup', ['-f', '--show', img]);
      const dev = await FileDevice.open(loop);
      try {
        expect(dev.size).toBe((1 << 20) + 512);
      } finally {
        await dev.close();
      }
    } finally {
      if (loop) run('losetup', ['-d', loop]);
    }
  });
});

describe('EBUSY for mounted filesystems', () => {
  it.skipIf(skip)('opening a mounted loop block device for writing → EBUSY; read-only (non-exclusive) works', async () => {
    const img = join(dir, 'mounted-blk.img');
    writeFileSync(img, new Uint8Array(0));
    truncateSync(img, 32 << 20);
    run('mkfs.ext4', ['-q', '-F', img]);
    const mnt = join(dir, 'mnt-blk');
    mkdirSync(mnt);
    let loop = '';
    try {
      loop = run('losetup', ['-f', '--show', img]);
      // Not mounted yet: the exclusive write open succeeds.
      const free = await FileDevice.open(loop, { write: true });
      await free.close();
      run('mount', [loop, mnt]);
      const e = await rejection(FileDevice.open(loop, { write: true }));
      expect(e.code).toBe('EBUSY');
      expect(e.message).toMatch(/mounted or in use/);
      const ro = await FileDevice.open(loop);
      try {
        expect(ro.readOnly).toBe(true);
        expect(ro.size).toBe(32 << 20);
        const sb = await ro.read(1024 + 56, 2);
        expect([...sb]).toEqual([0x53, 0xef]); // ext4 magic
      } finally {
        await ro.close();
      }
    } finally {
      tryUmount(mnt);
      if (loop) run('losetup', ['-d', loop]);
    }
  });

  it.skipIf(skip)('opening the image file of a mount -o loop for writing → EBUSY', async () => {
    const img = join(dir, 'mounted-file.img');
    writeFileSync(img, new Uint8Array(0));
    truncateSync(img, 32 << 20);
    run('mkfs.ext4', ['-q', '-F', img]);
    const mnt = join(dir, 'mnt-file');
    mkdirSync(mnt);
    try {
      run('mount', ['-o', 'loop', img, mnt]);
      const report = await imageInUse(img);
      expect(report.inUse).toBe(true);
      const e = await rejection(FileDevice.open(img, { write: true }));
      expect(e.code).toBe('EBUSY');
      expect(e.message).toMatch(/in use: it backs \/dev\/loop\d+, mounted on /);
      expect(e.message).toContain(mnt);
      // Via another path spelling (symlink-free, but with ..): still refused.
      const e2 = await rejection(FileDevice.open(join(mnt, '..', 'mounted-file.img'), { write: true }));
      expect(e2.code).toBe('EBUSY');
      // Read-only open of a mounted image is allowed (it is not exclusive).
      const ro = await FileDevice.open(img);
      await ro.close();
    } finally {
      tryUmount(mnt);
      detachAll(img);
    }
    // Unmounted again: writable.
    const rw = await FileDevice.open(img, { write: true });
    await rw.close();
  });

  it.skipIf(skip)('an image attached to a loop device but not mounted is writable (documented choice)', async () => {
    const img = join(dir, 'attached.img');
    writeFileSync(img, new Uint8Array(1 << 20));
    let loop = '';
    try {
      loop = run('losetup', ['-f', '--show', img]);
      const report = await imageInUse(img);
      expect(report.inUse).toBe(false);
      expect(report.attachments.map((a) => `/dev/${a.loop}`)).toContain(loop);
      const dev = await FileDevice.open(img, { write: true });
      await dev.close();
    } finally {
      if (loop) run('losetup', ['-d', loop]);
    }
  });
});
