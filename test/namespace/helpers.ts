/**
 * What the namespace tests share: a small image made by mkfs (any kind) from a few files and empty
 * directories, a write open at a fixed time, and a directory's names as ext4kit reads them.
 */
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { Filesystem } from '../../lib/node.js';
import type { Filesystem as CoreFilesystem } from '../../lib/ext4/filesystem.js';
import type { Timestamp } from '../../lib/ext4/inode.js';
import { mkfs, type FsKind } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import { scratchPath } from '../ops/helpers.js';
import { parseInodeXattrs } from '../../lib/ext4/xattr.js';
import { importTree } from '../../lib/ops/import-tree.js';
import type { TreeEntry } from '../../lib/ops/tree-entry.js';

export interface NsImage {
  /** Image file name (made unique by the caller). */
  name: string;
  kind: FsKind;
  blockSize: number;
  sizeMiB: number;
  mkfsOpts?: string[];
  /** Files (path → bytes) and empty directories (path ending in '/') fed to mkfs -d. */
  tree: Record<string, Uint8Array | null>;
}

export function makeNsImage(c: NsImage): string {
  const src = tmpDir(`${c.name}-src`);
  for (const [p, data] of Object.entries(c.tree)) {
    const abs = path.join(src, p);
    if (p.endsWith('/')) nodefs.mkdirSync(abs, { recursive: true });
    else {
      nodefs.mkdirSync(path.dirname(abs), { recursive: true });
      nodefs.writeFileSync(abs, data ?? new Uint8Array(0));
    }
  }
  const img = scratchPath(`${c.name}.img`);
  mkfs(c.kind, img, c.sizeMiB * 1024 * 1024, ['-b', String(c.blockSize), ...(c.mkfsOpts ?? [])], src);
  nodefs.rmSync(src, { recursive: true, force: true });
  return img;
}

/** Open `img` for writing with every time written fixed at `now`, run fn, always close. */
export async function withWritableAt<T>(img: string, now: Timestamp, fn: (fs: CoreFilesystem) => Promise<T>): Promise<T> {
  const fs = await Filesystem.open(img, { write: true, now });
  try {
    return await fn(fs);
  } finally {
    await fs.close();
  }
}

/** Names (without '.' and '..') of a directory through ext4kit, sorted. */
export async function entryNames(fs: CoreFilesystem, dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of fs.readdir(dir)) if (e.name !== '.' && e.name !== '..') out.push(e.name);
  return out.sort();
}

/** Each name's inode: its i_extra_isize and the names of the xattrs in its body (read at `prefix + name`, keyed by name). */
export async function extraIsizes(img: string, names: readonly string[], prefix = ''): Promise<Record<string, { extra: number; ibody: string[] }>> {
  const fs = await Filesystem.open(img);
  try {
    const out: Record<string, { extra: number; ibody: string[] }> = {};
    for (const n of names) {
      const i = await fs.resolve(prefix + n);
      out[n] = { extra: i.extraIsize, ibody: i.extraIsize ? parseInodeXattrs(i.raw, i.extraIsize, i.ino).map((e) => e.name) : [] };
    }
    return out;
  } finally {
    await fs.close();
  }
}

/** Import `entries` into the image file `img` in one write open at time `now` (clock of the open and the import). */
export async function importInto(img: string, entries: TreeEntry[], now: Timestamp): Promise<void> {
  const f = await Filesystem.open(img, { write: true, now });
  try {
    await importTree(f, entries, { now });
  } finally {
    await f.close();
  }
}
