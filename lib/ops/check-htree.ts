/**
 * The htree rules of e2fsck pass 2 (parse_int_node and the dx_dir checks at the
 * end of the pass): every index slot points inside the directory, slot hashes
 * ascend, each block is referenced exactly once, leaves sit at the depth the
 * root declares, and every name in a block hashes into the range its parent
 * slot gives it ([slot hash, next slot hash]; the first and the root exempt
 * from the lower / upper bound as e2fsck exempts them).
 */
import type { Filesystem, FileMap } from '../ext4/filesystem.js';
import { describeLocation, isExt4Error, type Location } from '../errors.js';
import { INCOMPAT, S_FLAGS } from '../ext4/superblock.js';
import { INODE_FLAGS, type Inode } from '../ext4/inode.js';
import { findExtent } from '../ext4/extents.js';
import { parseDxNode, parseDxRoot, type DxIndexBlock } from '../ext4/htree.js';
import { parseDirBlock } from '../ext4/directory.js';
import { dirHash } from '../ext4/dirhash.js';
import { hashSeedWords } from '../ext4/hash-seed.js';
import type { CheckProblem } from './check-problem.js';

interface BlockInfo {
  parent: number;
  refs: number;
  first: boolean;
  /** Range the parent slot gives this block. */
  nodeMin: number;
  nodeMax: number;
  /** Hashes found beneath it. */
  min: number;
  max: number;
  leaf: boolean;
  depth: number;
}

/** Problems of an indexed (INDEX_FL) directory's tree; none for linear, inline or casefolded ones. */
export async function checkHtree(fs: Filesystem, dir: Inode, map: FileMap, path: string): Promise<CheckProblem[]> {
  const out: CheckProblem[] = [];
  const sb = fs.sb;
  if (!(dir.flags & INODE_FLAGS.INDEX) || map.kind === 'inline' || dir.flags & (INODE_FLAGS.CASEFOLD | INODE_FLAGS.ENCRYPT)) return out;
  const bs = fs.blockSize;
  const bad = (message: string) => out.push({ pass: 2, code: 'EFSCORRUPTED', structure: `htree directory ${dir.ino}`, location: path, message });
  const numBlocks = Math.floor(dir.size / bs);
  const csum = sb.hasMetadataCsum ? { seed: fs.inodeCsumSeed(dir)! } : null;
  const opts = (lb: number) => ({ blockSize: bs, csum, verify: fs.verify, largeDir: (sb.s_feature_incompat & INCOMPAT.LARGEDIR) !== 0, where: { kind: 'directory-block', dir: dir.ino, block: lb } satisfies Location });
  const read = async (lb: number): Promise<Uint8Array | null> => {
    const { extent } = findExtent(map.extents, lb);
    if (!extent || extent.unwritten) return null;
    return fs.readBlock(extent.physical + lb - extent.logical);
  };
  const info = new Map<number, BlockInfo>();
  let root;
  try {
    const b = await read(0);
    if (!b) return bad('block 0 (the htree root) is not mapped'), out;
    root = parseDxRoot(b, opts(0));
  } catch (e) {
    if (!isExt4Error(e)) throw e;
    out.push({ pass: 2, code: e.code, structure: e.structure ?? `htree directory ${dir.ino}`, location: describeLocation(e.location) ?? path, message: e.message });
    return out;
  }
  info.set(0, { parent: -1, refs: 1, first: true, nodeMin: 0, nodeMax: 0xfffffffe, min: 0xffffffff, max: 0, leaf: false, depth: 0 });
  const seed = hashSeedWords(sb.s_hash_seed);
  const signed = !(sb.s_flags & S_FLAGS.UNSIGNED_HASH);
  const levels = root.indirectLevels;
  // Breadth-first over the index; every block is expanded once (refs), so a cycle ends.
  let frontier: { lb: number; index: DxIndexBlock; depth: number }[] = [{ lb: 0, index: root, depth: 0 }];
  for (let depth = 0; depth <= levels && frontier.length; depth++) {
    const next: { lb: number; depth: number }[] = [];
    for (const { lb, index } of frontier) {
      let prev = 0;
      index.slots.forEach((slot, i) => {
        const hash = i ? (slot.hash & ~1) >>> 0 : 0;
        if (slot.block >= numBlocks) return void bad(`block ${lb} slot ${i} points at block ${slot.block}, past the directory's ${numBlocks} blocks`);
        if (hash < prev) bad(`block ${lb} slot ${i}: hashes not in order`);
        prev = hash;
        const known = info.get(slot.block);
        if (known) {
          known.refs++;
          return;
        }
        const nodeMax = i + 1 < index.slots.length ? (index.slots[i + 1]!.hash & ~1) >>> 0 : info.get(lb)!.nodeMax;
        info.set(slot.block, { parent: lb, refs: 1, first: i === 0, nodeMin: i === 0 ? info.get(lb)!.nodeMin : hash, nodeMax, min: 0xffffffff, max: 0, leaf: depth === levels, depth: depth + 1 });
        if (depth < levels) next.push({ lb: slot.block, depth: depth + 1 });
      });
    }
    // read the next level's index nodes
    frontier = [];
    for (const n of next) {
      try {
        const b = await read(n.lb);
        if (!b) {
          bad(`index block ${n.lb} is not mapped`);
          continue;
        }
        frontier.push({ lb: n.lb, index: parseDxNode(b, opts(n.lb)), depth: n.depth });
      } catch (e) {
        if (!isExt4Error(e)) throw e;
        out.push({ pass: 2, code: e.code, structure: e.structure ?? `htree directory ${dir.ino}`, location: describeLocation(e.location) ?? path, message: e.message });
      }
    }
  }
  // leaves: the hashes of their names, propagated up to their ancestors
  for (const [lb, bi] of info) {
    if (!bi.leaf) continue;
    let entries;
    try {
      const b = await read(lb);
      if (!b) {
        bad(`leaf block ${lb} is not mapped`);
        continue;
      }
      entries = parseDirBlock(b, { ...opts(lb), hasFiletype: (sb.s_feature_incompat & INCOMPAT.FILETYPE) !== 0, inodesCount: sb.s_inodes_count });
    } catch (e) {
      if (!isExt4Error(e)) throw e;
      continue; // the directory walk reports unreadable blocks
    }
    for (const e of entries) {
      if (e.inode === 0) continue;
      const h = dirHash(e.name, root.hashVersion, seed, signed, { compat: 'e2fsprogs' }).hash;
      // bounded: at most `levels + 1` ancestors
      for (let p: BlockInfo | undefined = bi, k = 0; p && k <= levels + 1; p = info.get(p.parent), k++) {
        if (h < p.min) p.min = h;
        if (h > p.max) p.max = h;
      }
    }
  }
  for (const [lb, bi] of info) {
    if (lb === 0) continue;
    if (!bi.first && bi.min < bi.nodeMin) bad(`block ${lb} has bad min hash`);
    if (bi.max > bi.nodeMax) bad(`block ${lb} has bad max hash`);
    if (bi.refs > 1) bad(`block ${lb} is referenced more than once`);
  }
  // every block of the directory must be reached from the index
  for (const e of map.extents) {
    for (let lb = e.logical; lb < Math.min(e.logical + e.length, numBlocks); lb++) {
      if (!info.has(lb)) {
        bad(`block ${lb} is not referenced by the index`);
        return out;
      }
    }
  }
  return out;
}
