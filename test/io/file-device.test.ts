import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileDevice, memoryDeviceFromFile } from '../../lib/io/file-device.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { pattern, rejection, rejectionCode, sameBytes, tempDir } from './helpers.js';

let dir: string;
beforeAll(() => {
  dir = tempDir();
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('FileDevice on an image file', () => {
  it('reads, writes, flushes and reports its size', async () => {
    const path = join(dir, 'rw.img');
    const content = pattern(1 << 20);
    writeFileSync(path, content);
    const dev = await FileDevice.open(path, { write: true });
    try {
      expect(dev.size).toBe(1 << 20);
      expect(dev.readOnly).toBe(false);
      expect(dev.isBlockDevice).toBe(false);
      expect(dev.name).toBe(path);
      expect(await dev.read(4096, 100)).toEqual(content.subarray(4096, 4196));
      expect(sameBytes(await dev.read(0, 1 << 20), content)).toBe(true);
      expect((await dev.read(17, 0)).length).toBe(0);
      const data = new Uint8Array(5000).fill(0xab);
      await dev.write(12345, data);
      await dev.flush();
      expect(await dev.read(12345, 5000)).toEqual(data);
      // The last byte is writable; one past it is not (no silent growth).
      await dev.write((1 << 20) - 1, new Uint8Array([7]));
      expect(await rejectionCode(dev.write(1 << 20, new Uint8Array([1])))).toBe('ENOSPC');
    } finally {
      await dev.close();
    }
    const onDisk = readFileSync(path);
    expect(onDisk.length).toBe(1 << 20);
    expect(onDisk.subarray(12345, 17345).every((b) => b === 0xab)).toBe(true);
    expect(onDisk[(1 << 20) - 1]).toBe(7);
    expect(sameBytes(onDisk.subarray(0, 12345), content.subarray(0, 12345))).toBe(true);
  });

  it('a read past the end throws EIO naming the range, never zero-fills', async () => {
    const path = join(dir, 'short.img');
    writeFileSync(path, pattern(10000));
    const dev = await FileDevice.open(path);
    try {
      const e = await rejection(dev.read(9000, 2000));
      expect(e.code).toBe('EIO');
      expect(e.message).toContain('bytes 9000..10999');
      expect(e.message).toContain('10000');
      expect(await rejectionCode(dev.read(20000, 1))).toBe('EIO');
      expect((await dev.read(9000, 1000)).length).toBe(1000);
    } finally {
      await dev.close();
    }
  });

  it('read-only: readOnly is true and write() throws EROFS', async () => {
    const path = join(dir, 'ro.img');
    writeFileSync(path, new Uint8Array(4096));
    const dev = await FileDevice.open(path);
    try {
      expect(dev.readOnly).toBe(true);
      expect(await rejectionCode(dev.write(0, new Uint8Array([1])))).toBe('EROFS');
      await dev.flush(); // a no-op, not an error
    } finally {
      await dev.close();
    }
    expect(readFileSync(path)[0]).toBe(0);
  });

  it('invalid ranges are EINVAL, not RangeError', async () => {
    const path = join(dir, 'inval.img');
    writeFileSync(path, new Uint8Array(4096));
    const dev = await FileDevice.open(path, { write: true });
    try {
      expect(await rejectionCode(dev.read(-1, 1))).toBe('EINVAL');
      expect(await rejectionCode(dev.read(1.5, 1))).toBe('EINVAL');
      expect(await rejectionCode(dev.read(0, NaN))).toBe('EINVAL');
      expect(await rejectionCode(dev.write(-4, new Uint8Array(1)))).toBe('EINVAL');
    } finally {
      await dev.close();
    }
  });

  it('nonexistent path → ENOENT; directory → EISDIR; FIFO → EINVAL', async () => {
    expect(await rejectionCode(FileDevice.open(join(dir, 'nope.img')))).toBe('ENOENT');
    expect(await rejectionCode(FileDevice.open(join(dir, 'nope.img'), { write: true }))).toBe('ENOENT');
    const sub = join(dir, 'subdir');
    mkdirSync(sub);
    expect(await rejectionCode(FileDevice.open(sub))).toBe('EISDIR');
    expect(await rejectionCode(FileDevice.open('/dev/null'))).toBe('EINVAL');
  });

  it('follows symlinks to the image', async () => {
    const path = join(dir, 'target.img');
    writeFileSync(path, pattern(8192, 3));
    const link = join(dir, 'link.img');
    symlinkSync(path, link);
    const dev = await FileDevice.open(link);
    try {
      expect(dev.size).toBe(8192);
      expect(await dev.read(0, 8192)).toEqual(pattern(8192, 3));
    } finally {
      await dev.close();
    }
  });

  it('close is idempotent and later I/O fails with an Ext4Error', async () => {
    const path = join(dir, 'closed.img');
    writeFileSync(path, new Uint8Array(4096));
    const dev = await FileDevice.open(path);
    await dev.close();
    await dev.close();
    expect(await rejectionCode(dev.read(0, 1))).toBe('EINVAL');
  });

  it('empty image has size 0', async () => {
    const path = join(dir, 'empty.img');
    writeFileSync(path, new Uint8Array(0));
    const dev = await FileDevice.open(path);
    try {
      expect(dev.size).toBe(0);
      expect(await rejectionCode(dev.read(0, 1))).toBe('EIO');
    } finally {
      await dev.close();
    }
  });

  it('sparse image: size is the apparent size, holes read as zeros', async () => {
    const path = join(dir, 'sparse.img');
    writeFileSync(path, new Uint8Array(0));
    const { truncateSync } = await import('node:fs');
    truncateSync(path, 64 << 20);
    const dev = await FileDevice.open(path);
    try {
      expect(dev.size).toBe(64 << 20);
      expect(statSync(path).size).toBe(64 << 20);
      expect((await dev.read((64 << 20) - 4096, 4096)).every((b) => b === 0)).toBe(true);
    } finally {
      await dev.close();
    }
  });
});

describe('FileDevice beyond 4 GiB', () => {
  it('positions above 2^32 work (sparse 6 GiB image)', async () => {
    const path = join(dir, 'big.img');
    writeFileSync(path, new Uint8Array(0));
    const { truncateSync } = await import('node:fs');
    truncateSync(path, 6 * 2 ** 30);
    const dev = await FileDevice.open(path, { write: true });
    try {
      expect(dev.size).toBe(6 * 2 ** 30);
      const pos = 5 * 2 ** 30 + 123;
      await dev.write(pos, new Uint8Array([1, 2, 3, 4]));
      expect([...(await dev.read(pos - 1, 6))]).toEqual([0, 1, 2, 3, 4, 0]);
      expect((await rejection(dev.read(6 * 2 ** 30 - 2, 4))).message).toContain(`bytes ${6 * 2 ** 30 - 2}..${6 * 2 ** 30 + 1}`);
    } finally {
      await dev.close();
      rmSync(path);
    }
  });
});

describe('MemoryDevice', () => {
  it('reads copies, writes in place, fixed size', async () => {
    const data = pattern(8192);
    const dev = new MemoryDevice(data);
    expect(dev.size).toBe(8192);
    const r = await dev.read(100, 10);
    r.fill(0);
    expect(data[100]).toBe(pattern(8192)[100]); // read() returned a copy
    await dev.write(0, new Uint8Array([1, 2, 3]));
    expect([...dev.data.subarray(0, 3)]).toEqual([1, 2, 3]);
    expect(dev.data).toBe(data);
    expect(await rejectionCode(dev.read(8000, 500))).toBe('EIO');
    expect(await rejectionCode(dev.write(8190, new Uint8Array(3)))).toBe('ENOSPC');
    expect(await rejectionCode(dev.read(-1, 2))).toBe('EINVAL');
    await dev.flush();
    await dev.close();
    expect(await rejectionCode(dev.read(0, 1))).toBe('EINVAL');
  });

  it('readOnly → EROFS', async () => {
    const dev = new MemoryDevice(new Uint8Array(16), { readOnly: true, name: 'ro' });
    expect(dev.readOnly).toBe(true);
    expect(dev.name).toBe('ro');
    expect(await rejectionCode(dev.write(0, new Uint8Array(1)))).toBe('EROFS');
  });

  it('create() is zero-filled', async () => {
    const dev = MemoryDevice.create(4096);
    expect((await dev.read(0, 4096)).every((b) => b === 0)).toBe(true);
  });

  it('fromFile loads an image, and does not write back', async () => {
    const path = join(dir, 'mem.img');
    const content = pattern(65536, 5);
    writeFileSync(path, content);
    const dev = await memoryDeviceFromFile(path);
    expect(dev.name).toBe(path);
    expect(dev.size).toBe(65536);
    expect(sameBytes(await dev.read(0, 65536), content)).toBe(true);
    await dev.write(0, new Uint8Array(100).fill(9));
    expect(readFileSync(path).subarray(0, 100)).toEqual(Buffer.from(content.subarray(0, 100)));
    expect(await rejectionCode(memoryDeviceFromFile(join(dir, 'missing.img')))).toBe('ENOENT');
  });
});
