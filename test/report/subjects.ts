/**
 * The images test/report checks besides its own kernel-written ones: a few
 * of the shared mkfs -d images (test/helpers/images.ts) and every committed
 * fixture (fixtures/*.img.gz). Every check gets a private copy.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { tmpPath } from '../helpers/tmp.js';
import { getImage } from '../helpers/images.js';

const FIXTURES = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../fixtures');
export const fixtures = fs.existsSync(FIXTURES) ? fs.readdirSync(FIXTURES).filter((n) => n.endsWith('.img.gz')).sort() : [];

export function fixtureCopy(name: string): string {
  const out = tmpPath(name.replace(/\.gz$/, ''));
  fs.writeFileSync(out, zlib.gunzipSync(fs.readFileSync(path.join(FIXTURES, name))));
  return out;
}

export interface Subject {
  name: string;
  copy: () => string;
  /** mount -t (ext2/ext3 images are mounted by the ext4 driver so e4defrag accepts them). */
  type: string;
  mountable: boolean;
}

/** [recipe, mount it for filefrag/e4defrag]: 1 KiB blocks with a 2-level htree, 8 groups with flex_bg, block-mapped ext3, inline data, 64 KiB blocks. */
const RECIPES: [string, boolean][] = [
  ['ext4-1k', true],
  ['ext4-4k-groups', false],
  ['ext3-1k', true],
  ['ext4-inline', true],
  ['ext4-64k', false], // 64 KiB blocks: not mountable on 4 KiB-page kernels
];

export const subjects: Subject[] = [
  ...RECIPES.map(([name, mountable]) => ({ name, copy: () => getImage(name).copy(), type: 'ext4', mountable })),
  ...fixtures.map((n) => ({ name: `fixture ${n}`, copy: () => fixtureCopy(n), type: 'ext4', mountable: true })),
];
