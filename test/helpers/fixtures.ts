/**
 * The committed fixture images in fixtures/ (made by fixtures/make-fixtures.sh, described in
 * fixtures/README.md).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { tmpPath } from './tmp.js';

export const FIXTURES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures');

export const FIXTURES = ['basic', 'fragmented'] as const;
export type FixtureName = (typeof FIXTURES)[number];

export interface FixtureManifestEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  /** st_mode & 0o7777 in the source tree (basic) or as the kernel saw it (fragmented). */
  mode: number;
  nlink: number;
  size?: number;
  sha256?: string;
  target?: string;
  /** Extent count reported by filefrag when the image was made (fragmented only). */
  extents?: number;
}

function gzPath(name: string): string {
  const base = name.replace(/\.ext4\.img(\.gz)?$/, '');
  const p = path.join(FIXTURES_DIR, `${base}.ext4.img.gz`);
  if (!fs.existsSync(p)) throw new Error(`fixture ${name}: ${p} does not exist (run fixtures/make-fixtures.sh)`);
  return p;
}

/**
 * Gunzip fixture `name` ("basic", "fragmented", or "basic.ext4.img.gz") into a fresh private
 * temp file and return its path. All-zero 64 KiB runs are left as holes.
 */
export function fixtureCopy(name: string): string {
  const data = zlib.gunzipSync(fs.readFileSync(gzPath(name)));
  const out = tmpPath(`${path.basename(name).replace(/\.gz$/, '')}.img`);
  const fd = fs.openSync(out, 'w');
  try {
    const CH = 64 * 1024;
    for (let off = 0; off < data.length; off += CH) {
      const chunk = data.subarray(off, Math.min(off + CH, data.length));
      let zero = true;
      for (let i = 0; i < chunk.length; i += 8) {
        if (chunk.readBigUInt64LE(Math.min(i, chunk.length - 8)) !== 0n) {
          zero = false;
          break;
        }
      }
      if (!zero) fs.writeSync(fd, chunk, 0, chunk.length, off);
    }
    fs.ftruncateSync(fd, data.length);
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

/** The manifest written next to a fixture (every path, sorted by bytes; lost+found omitted). */
export function fixtureManifest(name: string): FixtureManifestEntry[] {
  const base = name.replace(/\.ext4\.img(\.gz)?$/, '');
  return JSON.parse(fs.readFileSync(path.join(FIXTURES_DIR, `${base}.manifest.json`), 'utf8')) as FixtureManifestEntry[];
}
