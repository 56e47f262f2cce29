/**
 * Growing an htree's index (lib/ext4/dir-edit.ts) to its last level: on
 * 1 KiB blocks with 250-byte names (3 to a leaf, 2 or 3 after splits) a
 * root of 123 slots over nodes of 125 fills after some 11,000 leaves
 * (~29,000 names). With large_dir the root is
 * pushed down a second time (indirect_levels 2, three index levels); without
 * it the insert that would need that fails with ENOSPC and changes nothing.
 * The entries are hard links to one file, added straight through
 * addDirEntry in batches per transaction (the namespace layer's one
 * transaction per create would take minutes). Oracles: e2fsck -fn (pass 2
 * walks and checks the whole index) and the kernel's hash lookups.
 */
import { describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { Filesystem } from '../../lib/node.js';
import type { Filesystem as CoreFilesystem } from '../../lib/ext4/filesystem.js';
import { addDirEntry, findDirEntry } from '../../lib/ext4/dir-edit.js';
import { DxRootInfoLayout, DX_ROOT_INFO_OFFSET } from '../../lib/ext4/htree.js';
import { createFile, mkdir } from '../../lib/ops/namespace.js';
import { expectE2fsckClean, mkfs, oracleGate, withLoopMount } from '../helpers/tools.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, cleanupImages, codeOf, scratchPath } from '../ops/helpers.js';

const NOW = { sec: 1_750_000_000, nsec: 0 };
const enc = new TextEncoder();
const nameOf = (i: number) => `${String(i).padStart(6, '0')}-${'q'.repeat(243)}`;

async function levels(fs: CoreFilesystem, p: string): Promise<number> {
  const map = await fs.fileMap(await fs.resolve(p));
  return DxRootInfoLayout.get(await fs.readBlock(map.extents[0]!.physical), 'indirect_levels', DX_ROOT_INFO_OFFSET);
}

/** Add `count` links named nameOf(from..) to /t in /h, `batch` per transaction; stops at the first error and returns it. */
async function addLinks(fs: CoreFilesystem, from: number, count: number, batch: number): Promise<{ added: number; error: unknown }> {
  const t = await fs.resolve('/t');
  const h = await fs.resolve('/h');
  let added = 0;
  try {
    for (let i = from; i < from + count; i += batch) {
      const n = Math.min(batch, from + count - i);
      await fs.transact(async (tx) => {
        const dir = await tx.readInode(h.ino);
        for (let k = 0; k < n; k++) await addDirEntry(tx, dir, enc.encode(nameOf(i + k)), t.ino, 1);
        const target = await tx.readInode(t.ino);
        target.base.i_links_count += n;
        target.linksCount += n;
        await tx.writeInode(target);
      });
      added += n;
    }
  } catch (e) {
    return { added, error: e };
  }
  return { added, error: null };
}

describe.skipIf(!HAVE_E2FSPROGS)('htree index levels', () => {
  it('large_dir: the root is pushed down twice (three index levels); the kernel finds every name', async () => {
    const img = scratchPath('ns-levels-largedir.img');
    mkfs('ext4', img, 48 * 1024 * 1024, ['-b', '1024', '-N', '2048', '-O', 'large_dir']);
    let N = 0;
    await (async () => {
      const fs = await Filesystem.open(img, { write: true, now: NOW });
      try {
        await mkdir(fs, '/h');
        await createFile(fs, '/t');
        // Until the root is pushed down the second time, then a few hundred more.
        while ((await levels(fs, '/h').catch(() => 0)) < 2 && N < 60_000) {
          const r = await addLinks(fs, N, 500, 250);
          expect(r.error).toBeNull();
          N += r.added;
        }
        expect(await levels(fs, '/h')).toBe(2);
        expect((await addLinks(fs, N, 500, 250)).error).toBeNull();
        N += 500;
        const h = await fs.resolve('/h');
        for (let i = 0; i < N; i += 97) expect((await fs.lookup(h, enc.encode(nameOf(i))))?.ino).toBe((await fs.resolve('/t')).ino);
      } finally {
        await fs.close();
      }
    })();
    expectE2fsckClean(img, 'three index levels');
    if (!CAN_MOUNT) {
      oracleGate(LOOP_SKIP);
    } else {
      await withLoopMount(img, (mp) => {
        const t = nodefs.statSync(path.join(mp, 't'));
        expect(t.nlink).toBe(N + 1);
        for (let i = 0; i < N; i += 37) expect(nodefs.lstatSync(path.join(mp, 'h', nameOf(i))).ino).toBe(t.ino);
        expect(nodefs.readdirSync(path.join(mp, 'h')).length).toBe(N);
      }, { readOnly: true });
    }
    cleanupImages();
  }, 300_000);

  it('without large_dir: the insert that needs a third level fails with ENOSPC, nothing changed', async () => {
    const img = scratchPath('ns-levels-full.img');
    mkfs('ext4', img, 48 * 1024 * 1024, ['-b', '1024', '-N', '2048']);
    const fs = await Filesystem.open(img, { write: true, now: NOW });
    let added = 0;
    try {
      await mkdir(fs, '/h');
      await createFile(fs, '/t');
      const r = await addLinks(fs, 0, 60_000, 250);
      expect((r.error as { code?: string } | null)?.code).toBe('ENOSPC');
      // The batch that failed was rolled back whole; find the exact entry that no longer fits.
      const one = await addLinks(fs, r.added, 250, 1);
      added = r.added + one.added;
      expect((one.error as { code?: string } | null)?.code).toBe('ENOSPC');
      expect(await levels(fs, '/h')).toBe(1);
      expect(await codeOf(fs.transact(async (tx) => findDirEntry(tx, await tx.readInode((await fs.resolve('/h')).ino), enc.encode(nameOf(added)))))).toBe('resolved');
      expect(await fs.lookup(await fs.resolve('/h'), enc.encode(nameOf(added)))).toBeNull();
    } finally {
      await fs.close();
    }
    expectE2fsckClean(img, 'full two-level index');
    expect(added).toBeGreaterThan(15_000);
    cleanupImages();
  }, 300_000);
});
