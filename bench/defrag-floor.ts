/**
 * The least a defragmenter meeting issue 10's targets must do on an image, whatever its planner,
 * and what that costs here: shared by bench/defrag (a "floor" row beside the tools' walls) and
 * bench/defrag-plan (the planner's bytes and waves against it).
 *
 *  - bytes: every file that is not ideal ends in its ideal number of runs, so all its blocks but
 *    its largest pieces (as many as its ideal count) are copied — less the largest other pieces
 *    of any files that the targets' slack lets stay (extents ≤ 1.1 × ideal: each piece kept costs
 *    one extent over the ideal);
 *  - waves: a crash-safe move copies only into blocks free before its commit (freed blocks are
 *    reused only once the commit that freed them is on disk), so a wave copies at most the free
 *    space plus the tree blocks that collapse: the bytes need at least bytes / that many waves,
 *    each ended by a commit — two cache flushes (data, then the commit record);
 *  - the raw copy: those bytes read and written with 1 MiB page-aligned preads/pwrites inside a
 *    scratch copy of the image, two fdatasyncs per wave — no planning, no metadata, no journal.
 */
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Filesystem } from '../lib/node.js';
import { nodeCapacity, type Extent } from '../lib/ext4/extents.js';
import { fragmentCount, mappedBlocks, mergeAdjacent } from '../lib/ext4/extent-map.js';
import { collectFiles, freeRuns } from '../lib/ops/defrag.js';
import { idealCount as planIdealCount, type PlanFile, type Run } from '../lib/ops/defrag-plan.js';
import { alignedArrays } from '../lib/io/aligned.js';
import { copySparse, run } from '../test/helpers/tools.js';
import { median } from './fresh.js';

/** The planner's input as defrag() collects it (whole filesystem). */
export interface PlanInput {
  files: PlanFile[];
  free: Run[];
  bounds: { first: number; end: number };
  blockSize: number;
  idealExtentBlocks: number;
  leafExtents: number;
}

/** Read the planner's input from an image (read-only), as defrag() does. */
export async function collectPlanInput(image: string): Promise<PlanInput> {
  const fs = await Filesystem.open(image);
  try {
    const files: PlanFile[] = (await collectFiles(fs, ['/'])).map((f) => ({ ino: f.ino, path: f.path, extents: f.extents, treeBlocks: f.treeBlocks, blockMapped: f.blockMapped }));
    const bs = fs.blockSize;
    return { files, free: await freeRuns(fs), bounds: { first: fs.sb.s_first_data_block, end: fs.sb.blocksCount }, blockSize: bs, idealExtentBlocks: Math.floor((128 << 20) / bs), leafExtents: nodeCapacity(bs) - 1 };
  } finally {
    await fs.close();
  }
}

/** A file's ideal extent count: one per started 128 MiB. */
export const idealCount = (inp: PlanInput, x: readonly Extent[]): number => planIdealCount(x, inp.idealExtentBlocks);

export interface DefragFloor {
  /** Blocks any plan meeting the targets copies at least. */
  blocks: number;
  /** Blocks any one wave can copy into at most (free space plus tree blocks of files that move). */
  perWave: number;
  /** Waves the floor's blocks need at least. */
  waves: number;
  /** Blocks of the files that are not ideal (a plan rewriting each of them once, whole). */
  notIdeal: number;
}

export function defragFloor(inp: PlanInput): DefragFloor {
  let blocks = 0, trees = 0, notIdeal = 0, idealTotal = 0, extents = 0;
  const spare: number[] = [];
  for (const f of inp.files) {
    const ideal = idealCount(inp, f.extents);
    idealTotal += ideal;
    const n = fragmentCount(f.extents);
    extents += Math.min(n, ideal);
    if (n <= ideal) continue;
    const size = mappedBlocks(f.extents);
    notIdeal += size;
    // (pieces: physically contiguous runs in logical order — what fragmentCount counts)
    const pieces = mergeAdjacent([...f.extents].sort((a, b) => a.logical - b.logical)).map((e) => e.length).sort((a, b) => b - a);
    blocks += size - pieces.slice(0, ideal).reduce((a, b) => a + b, 0);
    spare.push(...pieces.slice(ideal));
    trees += f.treeBlocks.length;
  }
  // the targets' slack: the largest other pieces may stay, one extent over the ideal each
  const slack = Math.max(0, Math.floor(1.1 * idealTotal) - extents);
  blocks -= spare.sort((a, b) => b - a).slice(0, slack).reduce((a, b) => a + b, 0);
  const perWave = inp.free.reduce((a, r) => a + r.length, 0) + trees;
  return { blocks, perWave, waves: Math.max(1, Math.ceil(blocks / perWave)), notIdeal };
}

/**
 * Wall seconds of a raw copy of `blocks` blocks in `waves` waves inside `scratch`, a copy of an
 * image that this overwrites (see the top): from the first half of it to the second, wrapping,
 * since at 90 % the image holds fewer free bytes than the copy.
 */
export function rawCopyInto(scratch: string, blockSize: number, blocks: number, waves: number): number {
  // (page-aligned: the kernel copies into a buffer 16 bytes off a page at half speed, lib/io/aligned.ts)
  const [buf] = alignedArrays(1, 1 << 20);
  const size = nodeFs.statSync(scratch).size;
  const bytes = blocks * blockSize, half = Math.floor(size / 2 / (1 << 20)) * (1 << 20);
  const fd = nodeFs.openSync(scratch, 'r+');
  try {
    const t0 = performance.now();
    const per = Math.ceil(bytes / waves);
    for (let done = 0; done < bytes; ) {
      const end = Math.min(bytes, done + per);
      while (done < end) {
        const n = Math.min(buf!.length, end - done);
        nodeFs.readSync(fd, buf!, 0, n, done % half);
        nodeFs.writeSync(fd, buf!, 0, n, half + (done % half));
        done += n;
      }
      nodeFs.fdatasyncSync(fd);
      nodeFs.fdatasyncSync(fd);
    }
    return (performance.now() - t0) / 1000;
  } finally {
    nodeFs.closeSync(fd);
  }
}

/** rawCopyInto on a fresh, synced copy of the image each run (as bench/defrag gives each tool): the median of `runs`. */
export function rawCopySeconds(image: string, blockSize: number, blocks: number, waves: number, runs: number): number {
  const scratch = path.join(os.tmpdir(), `ext4kit-bench-floor-${process.pid}.img`);
  const walls: number[] = [];
  try {
    for (let r = 0; r < runs; r++) {
      copySparse(image, scratch);
      // (synced: no flush of the copy's own writes counts)
      run('sync', []);
      walls.push(rawCopyInto(scratch, blockSize, blocks, waves));
    }
  } finally {
    nodeFs.rmSync(scratch, { force: true });
  }
  return median(walls);
}
