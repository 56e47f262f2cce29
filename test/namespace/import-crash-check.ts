/**
 * One crash point of an import (test/namespace/import-batches, import-deferred): what must hold
 * after a crash anywhere — the image replays (ext4kit), the tree's entries present are a prefix of
 * the import's order, and each file present holds a prefix of its bytes (the file being written may
 * be shorter). With `oracles`, e2fsck -fn must be clean on the replayed image and debugfs must
 * read the same bytes out of every file present (content not only through our own reader).
 */
import * as fs from 'node:fs';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { debugfsDump, expectE2fsckClean } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';

const prefixOf = (got: Uint8Array, w: Uint8Array): boolean => got.length <= w.length && Buffer.from(got).equals(Buffer.from(w.subarray(0, got.length)));

/** The problems at one crash point (empty: fine); `bytes` is the crashed image, replayed in place. */
export async function checkImportCrashPoint(bytes: Uint8Array, order: readonly string[], want: ReadonlyMap<string, Uint8Array>, where: string, oracles: boolean): Promise<string[]> {
  const bad: string[] = [];
  const mem = new MemoryDevice(bytes);
  await (await Filesystem.open(mem, { write: true })).close(); // ext4kit's replay
  const g = await Filesystem.open(mem);
  const present: string[] = [];
  const files: string[] = [];
  try {
    for (const p of order) {
      const ino = await g.resolve('/' + p).catch(() => null);
      if (!ino) continue;
      present.push(p);
      if (ino.type !== 'file') continue;
      files.push(p);
      if (!prefixOf(await g.read(ino, 0, ino.size), want.get(p)!)) bad.push(`${where}: ${p} has wrong bytes`);
    }
  } finally {
    await g.close();
  }
  if (present.join('\n') !== order.slice(0, present.length).join('\n')) bad.push(`${where}: not a prefix of the tree`);
  if (oracles) {
    const copy = tmpPath('import-crash-point.img');
    fs.writeFileSync(copy, mem.data);
    try {
      expectE2fsckClean(copy, `import crash point: ${where}`);
      for (const p of files) if (!prefixOf(debugfsDump(copy, '/' + p), want.get(p)!)) bad.push(`${where}: debugfs reads other bytes in ${p}`);
    } finally {
      fs.rmSync(copy, { force: true });
    }
  }
  return bad;
}
