/**
 * FileDevice's syncReadMax (what the CLI opens with): reads up to that size are served by a
 * synchronous pread, larger ones by the thread pool; both give the same bytes and the same errors.
 */
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
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
