/**
 * checkFilesystem (fsck-like, read-only) against e2fsck: clean where e2fsck -fn
 * is clean, and a problem of the right pass wherever debugfs damages an image
 * in a way e2fsck also reports.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Filesystem } from '../../lib/node.js';
import { checkFilesystem, type CheckReport } from '../../lib/ops/check.js';
import { e2fsckClean, debugfs, mkfs } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';

async function check(img: string): Promise<CheckReport> {
  const fs = await Filesystem.open(img);
  try {
    return await checkFilesystem(fs);
  } finally {
    await fs.close();
  }
}

function blockOf(img: string, path: string): number {
  const out = debugfs(img, [`blocks ${path}`]);
  const b = Number(out.trim().split(/\s+/).pop());
  if (!Number.isInteger(b) || b <= 0) throw new Error(`no blocks for ${path}: ${out}`);
  return b;
}

describe('checkFilesystem', () => {
  const images: Record<string, string> = {};
  beforeAll(() => {
    const src = tmpDir('check-src');
    mkdirSync(join(src, 'd/e'), { recursive: true });
    writeFileSync(join(src, 'a'), Buffer.alloc(50_000, 7));
    writeFileSync(join(src, 'd/b'), Buffer.alloc(5_000, 8));
    writeFileSync(join(src, 'd/e/c'), 'c');
    for (const [name, opts] of [['ext4', []], ['1k', ['-b', '1024']], ['gdtcsum', ['-O', '^metadata_csum,uninit_bg']], ['metabg', ['-O', 'meta_bg,^resize_inode']], ['mmp', ['-O', 'mmp']]] as const) {
      const img = tmpPath(`check-${name}.img`);
      mkfs('ext4', img, 16 * 1024 * 1024, [...opts], src);
      images[name] = img;
    }
    const e2 = tmpPath('check-ext2.img');
    mkfs('ext2', e2, 16 * 1024 * 1024, [], src);
    images.ext2 = e2;
  });

  it('finds nothing on clean mkfs images (ext4 default, 1k, gdt_csum, meta_bg, mmp, ext2), like e2fsck', async () => {
    for (const [name, img] of Object.entries(images)) {
      expect(e2fsckClean(img).ok, name).toBe(true);
      const r = await check(img);
      expect(r.problems, name).toEqual([]);
      expect(r.stats.inodesInUse).toBeGreaterThan(3);
    }
  });

  const damage: [string, (img: string) => string[], number][] = [
    ['a file block marked free (freeb)', (img) => [`freeb ${blockOf(img, '/a')}`], 5],
    ['an unowned block marked in use (setb)', (img) => [`setb ${Number(debugfs(img, ['ffb 1 4000']).match(/(\d+)\s*$/)?.[1])}`], 5],
    ['a wrong links count (sif links_count)', () => ['sif /d/b links_count 3'], 4],
    ['a wrong group free count (set_bg)', () => ['set_bg 0 free_blocks_count 7', 'set_bg 0 checksum calc'], 5],
    ['a wrong superblock free count (ssv)', () => ['ssv free_blocks_count 12'], 5],
    ['an unattached inode (unlink without freeing)', () => ['unlink /d/e/c'], 3],
  ];
  it('reports a descriptor checksum error instead of throwing', async () => {
    const img = tmpPath('damaged-gd.img');
    copyFileSync(images.ext4!, img);
    debugfs(img, ['set_bg 0 free_blocks_count 7'], { write: true });
    const r = await check(img);
    expect(r.ok).toBe(false);
    expect(r.problems[0]!.code).toBe('EFSBADCRC');
  });

  for (const [what, cmds, pass] of damage) {
    it(`reports ${what} in pass ${pass}, as e2fsck does`, async () => {
      const img = tmpPath('damaged.img');
      copyFileSync(images.ext4!, img);
      debugfs(img, cmds(img), { write: true });
      expect(e2fsckClean(img).ok).toBe(false);
      const r = await check(img);
      expect(r.ok).toBe(false);
      expect(r.problems.map((p) => p.pass)).toContain(pass);
    });
  }
});
