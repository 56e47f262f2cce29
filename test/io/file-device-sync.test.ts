/**
 * FileDevice's syncReadMax (what the CLI opens with): reads up to that size are served by a
 * synchronous pread, larger ones by the thread pool; both give the same bytes and the same errors.
 * Likewise syncWriteMax (defrag's writes): a write up to it is in the file before write() returns.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { closeSync, constants as fsc, openSync, promises as fsp, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileDevice } from '../../lib/io/file-device.js';
import { tmpDir } from '../helpers/tmp.js';
import { prngBytes } from '../helpers/tree.js';

describe('FileDevice syncReadMax', () => {
  const dir = tmpDir('file-device-sync');
  const file = join(dir, 'img');
  const data = prngBytes('sync-read', 1 << 20);
  writeFileSync(file, data);

  it('returns the same bytes as asynchronous reads, below and above the threshold', async () => {
    const a = await FileDevice.open(file);
    const s = await FileDevice.open(file, { syncReadMax: 64 * 1024 });
    try {
      for (const [pos, len] of [[0, 4096], [12_345, 777], [4096 * 9, 64 * 1024], [100_000, 64 * 1024 + 1], [0, 1 << 20]] as const) {
        const want = data.subarray(pos, pos + len);
        expect(Buffer.from(await s.read(pos, len)).equals(want)).toBe(true);
        expect(Buffer.from(await a.read(pos, len)).equals(want)).toBe(true);
        const into = new Uint8Array(len);
        await s.readInto(pos, into);
        expect(Buffer.from(into).equals(want)).toBe(true);
      }
    } finally {
      await a.close();
      await s.close();
    }
  });

  it('a synchronous read past the end rejects with EIO (never throws synchronously), a closed device with EINVAL', async () => {
    const s = await FileDevice.open(file, { syncReadMax: 64 * 1024 });
    let p: Promise<Uint8Array> | undefined;
    expect(() => (p = s.read((1 << 20) - 100, 4096))).not.toThrow();
    await expect(p).rejects.toMatchObject({ code: 'EIO' });
    await s.close();
    await expect(s.read(0, 4096)).rejects.toMatchObject({ code: 'EINVAL' });
  });
});

describe('FileDevice syncWriteMax', () => {
  const dir = tmpDir('file-device-sync-write');
  const file = join(dir, 'img');

  it('writes up to the threshold before write() returns, larger ones through the pool, the same bytes either way', async () => {
    writeFileSync(file, new Uint8Array(1 << 20));
    const want = new Uint8Array(1 << 20);
    const s = await FileDevice.open(file, { write: true, exclusive: false, syncWriteMax: 64 * 1024 });
    try {
      // Every thread of libuv's pool held by an open() of a fifo without a writer: a write that
      // went through the pool could not have run yet, so bytes in the file prove the sync pwrite.
      const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
      const fifos = Array.from({ length: threads }, (_, i) => join(dir, `fifo${i}`));
      for (const f of fifos) execFileSync('mkfifo', [f]);
      const held = fifos.map((f) => fsp.open(f, 'r'));
      const small = prngBytes('sync-write-small', 64 * 1024);
      const p = s.write(8192, small);
      want.set(small, 8192);
      try {
        expect(Buffer.from(readFileSync(file)).equals(want)).toBe(true);
      } finally {
        // (an open of the write end releases each held open: O_RDWR, which on Linux neither blocks
        // nor fails with ENXIO where a held open has not reached the kernel yet — a loaded machine
        // ran the cleanup first once, O_WRONLY|O_NONBLOCK failed — and, kept open until every held
        // open is back, lets a late one through)
        const writers = fifos.map((f) => openSync(f, fsc.O_RDWR));
        try {
          for (const h of held) await (await h).close();
        } finally {
          for (const w of writers) closeSync(w);
        }
      }
      await p;
      const big = prngBytes('sync-write-big', 64 * 1024 + 1);
      await s.write(300_000, big);
      want.set(big, 300_000);
      expect(Buffer.from(readFileSync(file)).equals(want)).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('a synchronous write past the end rejects with ENOSPC and writes nothing; a read-only device rejects with EROFS', async () => {
    writeFileSync(file, new Uint8Array(1 << 20));
    const s = await FileDevice.open(file, { write: true, exclusive: false, syncWriteMax: 64 * 1024 });
    let p: Promise<void> | undefined;
    expect(() => (p = s.write((1 << 20) - 100, new Uint8Array(4096).fill(7)))).not.toThrow();
    await expect(p).rejects.toMatchObject({ code: 'ENOSPC' });
    await s.close();
    expect(readFileSync(file).every((b) => b === 0)).toBe(true);
    const r = await FileDevice.open(file, { syncWriteMax: 64 * 1024 });
    await expect(r.write(0, new Uint8Array(16))).rejects.toMatchObject({ code: 'EROFS' });
    await r.close();
  });
});
