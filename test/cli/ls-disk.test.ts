/**
 * `ls`'s fast script reads through a DiskReader (lib/ext4/disk-reader.ts, commands/ls-run.ts), not
 * a Filesystem. Where it answers, it must print the Filesystem path's bytes (JSON and human,
 * recursive or not, linear and htree directories, blockmap and extent maps, symlinks, devices);
 * where it cannot be sure — inline directories, a lookup in an htree, a symlink to follow, a
 * journal to recover, any error — it answers null and the Filesystem path does the listing, so a
 * damaged image still reports what it always reported.
 */
import { spawnSync } from 'node:child_process';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { list, type ListEntry } from '../../lib/ops/inspect.js';
import { listJson } from '../../lib/cli/commands/ls.js';
import { formatList } from '../../lib/cli/commands/ls-text.js';
import { lsOnDisk } from '../../lib/cli/commands/ls-run.js';
import { getImage } from '../helpers/images.js';
import { tmpDir } from '../helpers/tmp.js';
import { cli, cliInProcess } from './helpers.js';

async function viaFilesystem(image: string, p: string, recursive: boolean, json: boolean): Promise<string> {
  const fs = await Filesystem.open(image);
  try {
    return json ? Buffer.from(await listJson(fs, p, recursive)).toString('latin1') : formatList(await list(fs, p, { recursive }), recursive);
  } finally {
    await fs.close();
  }
}

const text = (out: string | Uint8Array | Uint8Array[] | null) =>
  out === null ? null : typeof out === 'string' ? out : Buffer.concat(Array.isArray(out) ? out : [out]).toString('latin1');

describe('ls through a DiskReader', () => {
  it.each(['ext4-4k', 'ext2'])('%s: answers with the Filesystem path’s bytes', async (name) => {
    const image = getImage(name).image;
    // The whole tree once (bigdir: 10,000 entries, an htree on ext4-4k, linear blockmap on ext2), the rest both ways.
    const cases = [['/', true, [true]], ['/names', false, [true, false]], ['/special', false, [true, false]], ['/symlinks', true, [true, false]], ['/symlinks/to-dir', false, [false]], ['/sizes/one', false, [true]]] as const;
    for (const [p, recursive, forms] of cases) {
      for (const json of forms) {
        const got = text(await lsOnDisk(image, p, { recursive, json, verify: true }));
        expect(got, `${name} ${p} ${recursive ? '-R' : ''} ${json ? '--json' : ''} answered`).not.toBeNull();
        expect(got === (await viaFilesystem(image, p, recursive, json)), `${name} ${p}`).toBe(true);
      }
    }
  });

  it('leaves to the Filesystem: inline directories, an htree lookup, a symlink to follow, a missing path', async () => {
    const inline = getImage('ext4-inline').image;
    expect(await lsOnDisk(inline, '/', { recursive: true, json: true, verify: true })).toBeNull();
    const image = getImage('ext4-4k').image;
    const fs = await Filesystem.open(image);
    const inBig = (await list(fs, '/bigdir')).find((e: ListEntry) => e.type !== 'dir')!;
    await fs.close();
    for (const p of [inBig.path, '/symlinks/to-dir/', '/no/such']) expect(await lsOnDisk(image, p, { recursive: false, json: true, verify: true }), p).toBeNull();
  });

  describe('on damaged copies', () => {
    let dir: string;
    beforeAll(() => {
      dir = tmpDir('ls-disk');
    });
    afterAll(() => nodefs.rmSync(dir, { recursive: true, force: true }));

    /** A copy of ext4-4k with `edit` applied by debugfs -w. */
    function copyWith(file: string, edit: string[]): string {
      const img = path.join(dir, file);
      nodefs.copyFileSync(getImage('ext4-4k').image, img);
      for (const cmd of edit) {
        const r = spawnSync('debugfs', ['-w', '-R', cmd, img], { encoding: 'utf8' });
        expect(r.status, `${cmd}: ${r.stderr}`).toBe(0);
      }
      return img;
    }

    it('a journal that needs recovery: null, and the Filesystem (replaying) lists it', async () => {
      const img = copyWith('recover.img', ['feature needs_recovery']);
      expect(await lsOnDisk(img, '/', { recursive: true, json: true, verify: true })).toBeNull();
      const fast = await cli(['ls', img, '/names', '--json']);
      const slow = await cliInProcess(['ls', img, '/names', '--json']);
      expect({ status: fast.status, stderr: fast.stderr }).toEqual({ status: slow.status, stderr: slow.stderr });
      expect(fast.stdout.equals(slow.stdout)).toBe(true);
    });

    it('a directory block with a bad checksum: null, and the CLI reports what commander reports', async () => {
      const fs = await Filesystem.open(getImage('ext4-4k').image);
      const names = await fs.resolve('/names');
      const block = (await fs.fileMap(names)).extents[0]!.physical;
      const bs = fs.blockSize;
      await fs.close();
      const img = path.join(dir, 'badcrc.img');
      nodefs.copyFileSync(getImage('ext4-4k').image, img);
      const fd = nodefs.openSync(img, 'r+');
      const b = Buffer.alloc(1);
      nodefs.readSync(fd, b, 0, 1, block * bs + 20);
      b.writeUInt8(b.readUInt8(0) ^ 0x01, 0);
      nodefs.writeSync(fd, b, 0, 1, block * bs + 20);
      nodefs.closeSync(fd);
      for (const args of [['/', '-R', '--json'], ['/names']]) {
        expect(await lsOnDisk(img, args[0]!, { recursive: args.includes('-R'), json: args.includes('--json'), verify: true })).toBeNull();
        const fast = await cli(['ls', img, ...args]);
        const slow = await cliInProcess(['ls', img, ...args]);
        expect(fast.status).toBe(1);
        expect(fast.stderr).toMatch(/^ext4kit: EFS(BADCRC|CORRUPTED): /);
        expect({ status: fast.status, stderr: fast.stderr, out: fast.stdout.length }).toEqual({ status: slow.status, stderr: slow.stderr, out: 0 });
      }
      // --no-verify reads past the checksum on both paths alike.
      const got = text(await lsOnDisk(img, '/names', { recursive: false, json: true, verify: false }));
      const fs2 = await Filesystem.open(img, { verifyChecksums: false });
      try {
        expect(got).toBe(Buffer.from(await listJson(fs2, '/names', false)).toString('latin1'));
      } finally {
        await fs2.close();
      }
    });
  });
});
