/** `ext4kit info IMAGE [--json]`: the superblock summary (like `dumpe2fs -h`, abridged). */
import type { Command } from 'commander';
import { probeSuperblock } from '../../ext4/superblock-probe.js';
import { fsInfo, type FsInfo } from '../../ops/fs-info.js';
import { globalOptions, jsonText, openDevice, table, write, type CliContext, type GlobalOptions } from '../context.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('info')
    .description('show the superblock summary: sizes, counts, features, UUID, label, state')
    .argument('<image>', 'filesystem image or block device')
    .option('--json', 'print JSON: {blockSize, blocksCount, freeBlocks, reservedBlocks, firstBlock, blocksPerGroup, inodesPerGroup, groups, clusterSize?, clustersPerGroup? (bigalloc), inodeSize, inodesCount, freeInodes, features[], uuid, label, state}')
    .action(async (image: string, opts: { json?: boolean }, cmd: Command) => write(ctx.io.stdout, await infoText(image, opts, cmd, ctx)));
}

/** fast-path.ts: `info IMAGE [--json]` without commander (the same text, the same errors). */
export function runFast(positionals: readonly string[], flags: ReadonlySet<string>, globals: GlobalOptions, ctx: CliContext): Promise<string> {
  return infoText(positionals[0]!, { json: flags.has('--json') }, globals, ctx);
}

/**
 * The superblock is all `info` reads: it is probed (read and checked as an open would) without
 * building a Filesystem, unless the journal needs recovery — then the full open replays it.
 */
async function infoText(image: string, opts: { json?: boolean }, globals: Command | GlobalOptions, ctx: CliContext): Promise<string> {
  const device = await openDevice(image);
  let probed;
  try {
    probed = await probeSuperblock(device, globalOptions(globals));
  } catch (e) {
    await device.close();
    throw e;
  }
  let v: FsInfo;
  if (probed.journaled) {
    const { withFs } = await import('../util.js'); // the filesystem code: only here
    v = await withFs(device, globals, ctx, async (fs) => fsInfo(fs.sb));
  } else {
    await device.close();
    v = fsInfo(probed.sb);
  }
  if (opts.json) return jsonText(v);
  return table([
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
  ]);
}
