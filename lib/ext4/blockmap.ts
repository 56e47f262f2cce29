/**
 * Block-mapped files (ext2/ext3, and ext4 inodes without EXTENTS_FL):
 * 12 direct pointers, then single, double and triple indirect blocks.
 * The walk turns the map into the same Extent list extent trees give.
 */
import { Ext4Error, type Location } from '../errors.js';
import { le32 } from '../codec/layout.js';
import type { Extent } from './extents.js';

export const NDIR_BLOCKS = 12;

export interface BlockMapContext {
  ino: number;
  blockSize: number;
  firstDataBlock: number;
  blocksCount: number;
  readBlock(n: number): Promise<Uint8Array>;
}

export interface BlockMapInfo {
  extents: Extent[];
  /** Indirect blocks owned by the inode. */
  indirectBlocks: number[];
}

export async function walkBlockMap(iblock: Uint8Array, ctx: BlockMapContext): Promise<BlockMapInfo> {
  const structure = `inode ${ctx.ino} block map`;
  const per = ctx.blockSize / 4;
  const extents: Extent[] = [];
  const indirect: number[] = [];
  const seen = new Set<number>();

  const check = (p: number, loc: Location) => {
    if (p < ctx.firstDataBlock || p >= ctx.blocksCount) throw new Ext4Error('EFSCORRUPTED', `block pointer ${p} outside the filesystem`, { structure, location: loc });
  };
  const add = (logical: number, physical: number) => {
    const last = extents[extents.length - 1];
    if (last && last.logical + last.length === logical && last.physical + last.length === physical && last.length < 32768) last.length++;
    else extents.push({ logical, physical, length: 1, unwritten: false });
  };

  async function walk(block: number, level: number, base: number, loc: Location): Promise<void> {
    check(block, loc);
    if (seen.has(block)) throw new Ext4Error('EFSCORRUPTED', `indirect block ${block} referenced twice`, { structure, location: loc });
    seen.add(block);
    indirect.push(block);
    const data = await ctx.readBlock(block);
    const span = per ** (level - 1);
    for (let i = 0; i < per; i++) {
      const p = le32.get(data, i);
      if (p === 0) continue;
      const lb = base + i * span;
      if (level === 1) {
        check(p, { kind: 'part', of: loc, part: 'slot', index: i });
        add(lb, p);
      } else await walk(p, level - 1, lb, { kind: 'block', block: p, level: level - 1 });
    }
  }

  for (let i = 0; i < NDIR_BLOCKS; i++) {
    const p = le32.get(iblock, i);
    if (p === 0) continue;
    check(p, { kind: 'field', field: 'i_block', index: i });
    add(i, p);
  }
  let base = NDIR_BLOCKS;
  for (let level = 1; level <= 3; level++) {
    const p = le32.get(iblock, NDIR_BLOCKS + level - 1);
    if (p !== 0) await walk(p, level, base, { kind: 'field', field: 'i_block', index: NDIR_BLOCKS + level - 1 });
    base += per ** level;
  }
  return { extents, indirectBlocks: indirect };
}
