/**
 * BlockDevice.readUncached (lib/io/device.ts): the read MMP uses so that another host's writes
 * to shared storage are seen. FileDevice does it with a second O_DIRECT descriptor on a block
 * device (plain reads on an image file), MemoryDevice trivially, RecordingDevice forwards it.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, fsyncSync } from 'node:fs';
import { join } from 'node:path';
import { FileDevice } from '../../lib/io/file-device.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { RecordingDevice } from '../../lib/io/recording-device.js';
import type { BlockDevice } from '../../lib/io/device.js';
import { loopSkipReason, pattern, rejectionCode, tempDir } from './helpers.js';

const loopWhy = loopSkipReason();
if (loopWhy) console.log(`test/io/uncached-read.test.ts: skipping the block-device case: ${loopWhy}`);

let dir: string;
beforeAll(() => {
  dir = tempDir();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('readUncached', () => {
  it('MemoryDevice: the same bytes as read (a copy), and the same errors', async () => {
    const data = pattern(8192);
    const dev = new MemoryDevice(data);
    const got = await dev.readUncached(1000, 3000);
    expect(got).toEqual(data.subarray(1000, 4000));
    got[0] = got[0]! ^ 0xff;
    expect(data[1000]).not.toBe(got[0]);
    expect(await rejectionCode(dev.readUncached(8000, 200))).toBe('EIO');
    await dev.close();
    expect(await rejectionCode(dev.readUncached(0, 1))).toBe('EINVAL');
  });

  it('FileDevice on an image file: plain positional reads, range checked', async () => {
    const path = join(dir, 'plain.img');
    const content = pattern(64 * 1024, 3);
    writeFileSync(path, content);
    const dev = await FileDevice.open(path);
    try {
      expect(await dev.readUncached(4096 + 17, 1024)).toEqual(content.subarray(4096 + 17, 4096 + 17 + 1024));
      expect(await rejectionCode(dev.readUncached(64 * 1024 - 10, 11))).toBe('EIO');
      expect(await rejectionCode(dev.readUncached(-1, 1))).toBe('EINVAL');
    } finally {
      await dev.close();
    }
    expect(await rejectionCode(dev.readUncached(0, 1))).toBe('EINVAL');
  });

  it('RecordingDevice forwards it to the inner device (and falls back to read without one)', async () => {
    const inner = new MemoryDevice(pattern(4096, 5));
    const calls: string[] = [];
    const spy: BlockDevice = {
      size: inner.size,
      readOnly: false,
      name: 'spy',
      read: (p, l) => (calls.push('read'), inner.read(p, l)),
      readUncached: (p, l) => (calls.push('uncached'), inner.readUncached(p, l)),
      write: (p, d) => inner.write(p, d),
      flush: () => inner.flush(),
      close: () => inner.close(),
    };
    expect(await new RecordingDevice(spy).readUncached(100, 10)).toEqual(inner.data.subarray(100, 110));
    const plain: BlockDevice = { ...spy, readUncached: undefined };
    expect(await new RecordingDevice(plain).readUncached(200, 10)).toEqual(inner.data.subarray(200, 210));
    expect(calls).toEqual(['uncached', 'read']);
  });

  it.skipIf(!!loopWhy)('FileDevice on a block device: sees a write made behind its page cache (O_DIRECT), where read() does not', async () => {
    const img = join(dir, 'behind.img');
    const size = 4 << 20;
    writeFileSync(img, pattern(size, 7));
    const loop = execFileSync('losetup', ['-f', '--show', img], { encoding: 'utf8' }).trim();
    try {
      const dev = await FileDevice.open(loop, { exclusive: false });
      try {
        expect(dev.isBlockDevice).toBe(true);
        const pos = 3 * 4096 + 1024; // not aligned to the O_DIRECT unit
        const before = await dev.read(pos, 1024); // now in the loop device's page cache
        expect(await dev.readUncached(pos, 1024)).toEqual(before);
        // "Another host" writes the backing file directly: the loop device's page cache keeps the old bytes.
        const fresh = new Uint8Array(1024).fill(0x5a);
        const fd = openSync(img, 'r+');
        try {
          writeSync(fd, fresh, 0, fresh.length, pos);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        expect(await dev.read(pos, 1024), 'a buffered read still sees the page cache').toEqual(before);
        expect(await dev.readUncached(pos, 1024)).toEqual(fresh);
        // Spans of several O_DIRECT units and a read larger than the first buffer.
        const wide = await dev.readUncached(4096 - 1, 64 * 1024 + 2);
        expect(wide.length).toBe(64 * 1024 + 2);
        expect(wide.subarray(pos - 4095, pos - 4095 + 1024)).toEqual(fresh);
        expect(await rejectionCode(dev.readUncached(size - 10, 11))).toBe('EIO');
        // Concurrent calls share one O_DIRECT buffer: each still gets its own bytes.
        const current = readFileSync(img);
        const spots = [0, 5000, 70_000, 200_001, size - 4096];
        const many = await Promise.all(spots.map((p) => dev.readUncached(p, 3000 < size - p ? 3000 : size - p)));
        spots.forEach((p, i) => expect(many[i]).toEqual(new Uint8Array(current.subarray(p, p + many[i]!.length))));
      } finally {
        await dev.close();
      }
    } finally {
      execFileSync('losetup', ['-d', loop]);
    }
  });
});
