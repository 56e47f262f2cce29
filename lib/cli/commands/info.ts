/** `ext4kit info IMAGE [--json]`: the superblock summary (like `dumpe2fs -h`, abridged). */
import type { Command } from 'commander';
import { info } from '../../ops/inspect.js';
import { printJson, table, withFs, write, type CliContext } from '../util.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('info')
    .description('show the superblock summary: sizes, counts, features, UUID, label, state')
    .argument('<image>', 'filesystem image or block device')
    .option('--json', 'print JSON: {blockSize, blocksCount, freeBlocks, reservedBlocks, firstBlock, blocksPerGroup, inodesPerGroup, groups, clusterSize?, clustersPerGroup? (bigalloc), inodeSize, inodesCount, freeInodes, features[], uuid, label, state}')
    .action(async (image: string, opts: { json?: boolean }, cmd: Command) => {
      const v = await withFs(image, cmd, ctx, async (fs) => info(fs));
      if (opts.json) return printJson(ctx, v);
      await write(
        ctx.io.stdout,
        table([
          ['Block size:', String(v.blockSize)],
          ...(v.clusterSize !== undefined ? [['Cluster size:', String(v.clusterSize)] as [string, string]] : []),
          ['Blocks count:', String(v.blocksCount)],
          ['Free blocks:', String(v.freeBlocks)],
          ['Reserved blocks:', String(v.reservedBlocks)],
          ['First block:', String(v.firstBlock)],
          ['Blocks per group:', String(v.blocksPerGroup)],
          ...(v.clustersPerGroup !== undefined ? [['Clusters per group:', String(v.clustersPerGroup)] as [string, string]] : []),
          ['Groups:', String(v.groups)],
          ['Inode size:', String(v.inodeSize)],
          ['Inodes count:', String(v.inodesCount)],
          ['Free inodes:', String(v.freeInodes)],
          ['Inodes per group:', String(v.inodesPerGroup)],
          ['Features:', v.features.join(' ')],
          ['UUID:', v.uuid],
          ['Label:', v.label === '' ? '<none>' : JSON.stringify(v.label)],
          ['State:', v.state],
        ]),
      );
    });
}
