/**
 * The namespace writes across the feature matrix the read path covers (test/helpers/images.ts
 * MATRIX: 1k/2k/4k/64k blocks, ^64bit, gdt_csum, no checksums, ^flex_bg, no journal, inline_data,
 * meta_bg, 128-byte inodes, ext2, ext3) plus large_dir and orphan_file: one fixed script (mkdir -p,
 * files written whole, appends, truncates, symlinks fast and slow, hard links, renames of files
 * and directories across parents, a directory grown past several blocks, unlinks, rm -r) runs
 * through the Volume on an empty image and through node:fs/promises on a host directory (Linux's
 * own ext4 is the oracle). Each step is its own open and close, then `e2fsck -fn` must be clean
 * and the image's tree equal the host's; at the end the kernel mounts the image and reads the
 * same tree (not 64 KiB blocks: this kernel's pages are 4 KiB).
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { Volume } from '../../lib/node.js';
import { expectE2fsckClean, mkfs, oracleGate, withLoopMount, type FsKind } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import { recipe } from '../helpers/images.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, cleanupImages, pattern, scratchPath } from '../ops/helpers.js';
import { hostDriver, snapshot, volumeDriver, type FsApi } from '../volume/drivers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_760_000_000, nsec: 5 };

interface Config {
  name: string;
  kind: FsKind;
  blockSize: number;
  sizeMiB: number;
  mkfsOpts: string[];
  mountable: boolean;
}

const fromRecipe = (name: string, sizeMiB = 16): Config => {
  const r = recipe(name);
  return { name, kind: r.kind, blockSize: r.blockSize, sizeMiB, mkfsOpts: r.mkfsOpts, mountable: r.blockSize <= 4096 };
};

const CONFIGS: Config[] = [
  fromRecipe('ext4-4k'),
  fromRecipe('ext4-1k'),
  fromRecipe('ext4-2k'),
  fromRecipe('ext4-64k', 64),
  fromRecipe('ext4-no64bit'),
  fromRecipe('ext4-gdtcsum'),
  fromRecipe('ext4-nocsum'),
  fromRecipe('ext4-noflexbg'),
  fromRecipe('ext4-nojournal'),
  fromRecipe('ext4-inline'),
  fromRecipe('ext4-metabg', 80),
  fromRecipe('ext4-inode128'),
  fromRecipe('ext2'),
  fromRecipe('ext3-1k'),
  { name: 'ext4-1k-large_dir', kind: 'ext4', blockSize: 1024, sizeMiB: 16, mkfsOpts: ['-O', 'large_dir'], mountable: true },
  { name: 'ext4-orphan_file', kind: 'ext4', blockSize: 4096, sizeMiB: 16, mkfsOpts: ['-O', 'orphan_file'], mountable: true },
];

type Step = [string, (p: FsApi, a: (rel: string) => string) => Promise<unknown>];

const name = (i: number) => `entry-${String(i).padStart(3, '0')}-${'n'.repeat(20 + (i % 17))}`;

const STEPS: Step[] = [
  ['mkdir -p', (p, a) => p.mkdir(a('/a/b/c'), { recursive: true })],
  ['writeFile 20 KiB', (p, a) => p.writeFile(a('/a/b/c/f'), pattern(20_000, 1))],
  ['writeFile small', (p, a) => p.writeFile(a('/small'), 'x')],
  ['symlinks', async (p, a) => {
    await p.symlink('a/b/c/f', a('/s'));
    await p.symlink(`${'long/'.repeat(30)}target`, a('/ls'));
  }],
  ['hard link', (p, a) => p.link(a('/a/b/c/f'), a('/a/h'))],
  ['rename across directories', (p, a) => p.rename(a('/a/b/c/f'), a('/a/g'))],
  ['grow a directory past several blocks', async (p, a) => {
    await p.mkdir(a('/a/big'));
    for (let i = 0; i < 120; i++) await p.writeFile(a(`/a/big/${name(i)}`), i % 10 === 0 ? pattern(3000, i) : '');
  }],
  ['rename out of the big directory', (p, a) => p.rename(a(`/a/big/${name(7)}`), a(`/a/b/${name(7)}`))],
  ['unlink every third', async (p, a) => {
    for (let i = 0; i < 120; i += 3) if (i !== 6) await p.unlink(a(`/a/big/${name(i)}`)).catch((e: { code?: string }) => { if (e.code !== 'ENOENT') throw e; });
  }],
  ['append, truncate, chmod', async (p, a) => {
    await p.appendFile(a('/small'), pattern(9000, 2));
    await p.truncate(a('/a/g'), 5000);
    await p.chmod(a('/a/g'), 0o600);
  }],
  ['rename a directory across parents', (p, a) => p.rename(a('/a/b'), a('/z'))],
  ['replace a file by rename', async (p, a) => {
    await p.writeFile(a('/z/new'), 'replacement');
    await p.rename(a('/z/new'), a('/small'));
  }],
  ['rm -r', (p, a) => p.rm(a('/a/big'), { recursive: true })],
  ['rmdir', (p, a) => p.rmdir(a('/z/c'))],
];

function emptyImage(c: Config): string {
  const img = scratchPath(`ns-matrix-${c.name}.img`);
  mkfs(c.kind, img, c.sizeMiB * 1024 * 1024, ['-b', String(c.blockSize), ...c.mkfsOpts]);
  return img;
}

/** A host directory laid out as a fresh image's root (mode 0755, lost+found). */
function hostRoot(label: string): string {
  const root = tmpDir(label);
  nodefs.chmodSync(root, 0o755);
  nodefs.mkdirSync(path.join(root, 'lost+found'), { mode: 0o700 });
  return root;
}

describe.skipIf(!HAVE_E2FSPROGS)('namespace writes across the feature matrix', () => {
  for (const c of CONFIGS) {
    it(`${c.name}: every step e2fsck-clean and equal to the host directory; the kernel reads the same tree`, async () => {
      const img = emptyImage(c);
      const hostDir = hostRoot(`ns-matrix-${c.name}`);
      const host = hostDriver(hostDir);
      for (const [what, fn] of STEPS) {
        await fn(host.p, host.abs);
        {
          await using vol = await Volume.open(img, { write: true, now: NOW, umask: 0o022 });
          await fn(vol.promises, volumeDriver(vol.promises).abs);
        }
        expectE2fsckClean(img, `${c.name} after ${what}`);
        await using ro = await Volume.open(img, { umask: 0o022 });
        const image = volumeDriver(ro.promises);
        expect(await snapshot(image.p, image.abs), `${c.name}: tree after ${what}`).toEqual(await snapshot(host.p, host.abs));
      }
      if (!c.mountable) return;
      if (oracleGate(CAN_MOUNT ? null : (LOOP_SKIP ?? 'loop mounts unavailable'))) return;
      await withLoopMount(
        img,
        async (mp) => {
          const kernel = hostDriver(mp);
          expect(await snapshot(kernel.p, kernel.abs), `${c.name}: the kernel's view`).toEqual(await snapshot(host.p, host.abs));
        },
        { readOnly: true },
      );
    });
  }
});
