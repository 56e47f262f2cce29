/**
 * Images with very fragmented files, built fast and deterministically for
 * bench/extent-insert.ts and test/write/extent-scale.test.ts: `mkfs.ext4 -d`
 * makes the (empty) files, then ONE transaction of ours maps each file as
 * `extents` one-block extents at even logical blocks over consecutive
 * physical blocks (logically apart, so nothing merges) — the whole-tree
 * layout a file of that many extents gets. Optionally each block gets a
 * pattern (its logical number in every 4-byte word) so moves can be checked.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Filesystem } from '../lib/node.js';
import type { Filesystem as CoreFilesystem } from '../lib/ext4/filesystem.js';
import { allocateBlocks } from '../lib/ext4/alloc.js';
import { remapInode, setSize, txFileMap } from '../lib/ext4/remap.js';
import type { Extent } from '../lib/ext4/extents.js';
import { resolveTarget } from '../lib/ops/target.js';

export interface ScaleFile {
  name: string;
  /** One-block extents (0: an empty file), or the blocks of one contiguous extent. */
  extents: number;
  /**
   * sparse: logical 2i → consecutive physical blocks (holes between, nothing merges);
   * dense: logical i → physical blocks in descending order (no holes, nothing merges);
   * contiguous: one run of `extents` blocks at logical 0 (a donor).
   */
  layout: 'sparse' | 'dense' | 'contiguous';
  /** Fill each block with its logical block number. */
  pattern?: boolean;
}

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, LANG: 'C', LC_ALL: 'C', E2FSPROGS_FAKE_TIME: '1700000000' } });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}${r.stdout}`);
  return r.stdout + r.stderr;
}

/** The pattern of logical block `lb`. */
export function patternBlock(lb: number, blockSize: number): Uint8Array {
  const b = new Uint8Array(blockSize);
  new Uint32Array(b.buffer).fill(lb + 1);
  return b;
}

/** Build `img` (sparse file) with `files`; returns their inode numbers by name. */
export async function buildScaleImage(img: string, opts: { sizeMiB: number; blockSize: number; mkfsOpts?: string[]; files: ScaleFile[] }): Promise<Map<string, number>> {
  const src = `${img}.d`;
  fs.rmSync(src, { recursive: true, force: true });
  fs.mkdirSync(src);
  for (const f of opts.files) fs.writeFileSync(join(src, f.name), '');
  fs.rmSync(img, { force: true });
  fs.writeFileSync(img, '');
  fs.truncateSync(img, opts.sizeMiB * 1024 * 1024);
  sh('mkfs.ext4', ['-q', '-F', '-b', String(opts.blockSize), '-E', 'root_owner=0:0', '-U', 'clear', ...(opts.mkfsOpts ?? []), '-d', src, img]);
  fs.rmSync(src, { recursive: true, force: true });
  const f = await Filesystem.open(img, { write: true });
  const inos = new Map<string, number>();
  try {
    for (const file of opts.files) {
      const ino = await resolveTarget(f, `/${file.name}`);
      inos.set(file.name, ino);
      if (!file.extents) continue;
      const placed = await mapFile(f, ino, file);
      if (file.pattern) await writePattern(img, f.blockSize, placed);
    }
  } finally {
    await f.close();
  }
  return inos;
}

/** Map the file in one transaction; returns its extents. */
async function mapFile(f: CoreFilesystem, ino: number, file: ScaleFile): Promise<Extent[]> {
  return f.transact(async (tx) => {
    const inode = await tx.readInode(ino);
    const map = await txFileMap(tx, inode);
    const n = file.extents;
    const list: Extent[] = [];
    if (file.layout === 'contiguous') {
      // (split at 32768 by remapInode's normalise; a run may cross groups, so take what comes)
      let l = 0;
      for (const r of await allocateBlocks(tx, { goal: 0, length: n })) {
        list.push({ logical: l, physical: r.start, length: r.length, unwritten: false });
        l += r.length;
      }
      setSize(tx, inode, n * f.blockSize);
    } else {
      const blocks: number[] = [];
      for (const r of await allocateBlocks(tx, { goal: 0, length: n })) for (let b = r.start; b < r.start + r.length; b++) blocks.push(b);
      if (file.layout === 'dense') blocks.reverse();
      const step = file.layout === 'sparse' ? 2 : 1;
      blocks.forEach((physical, i) => list.push({ logical: step * i, physical, length: 1, unwritten: false }));
      setSize(tx, inode, (step * (n - 1) + 1) * f.blockSize);
    }
    await remapInode(tx, inode, map, list);
    return list;
  });
}

async function writePattern(img: string, bs: number, list: readonly Extent[]): Promise<void> {
  const fd = fs.openSync(img, 'r+');
  try {
    for (const e of list) for (let i = 0; i < e.length; i++) fs.writeSync(fd, patternBlock(e.logical + i, bs), 0, bs, (e.physical + i) * bs);
  } finally {
    fs.closeSync(fd);
  }
}

export { sh };
