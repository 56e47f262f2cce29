/**
 * Inodes of a volume: where inode n lives in its group's inode table, reading and validating
 * it, and the per-inode checksum seed (extent, directory and xattr blocks are checksummed with it).
 */
import { Ext4Error } from '../errors.js';
import { inodeSeed } from './checksum.js';
import { groupOfInode, inodeTableBlocks } from './geometry.js';
import { parseInode, type Inode } from './inode.js';
import type { Volume } from './volume.js';

export class InodeStore {
  constructor(private readonly vol: Volume) {}

  /** Where inode `ino` lives: block and byte offset within it. */
  async inodeLocation(ino: number): Promise<{ block: number; offset: number }> {
    const sb = this.vol.sb;
    if (!Number.isInteger(ino) || ino < 1 || ino > sb.s_inodes_count) throw new Ext4Error('EINVAL', `inode ${ino} does not exist (inodes count ${sb.s_inodes_count})`);
    const gd = await this.vol.group(groupOfInode(sb, ino));
    const index = (ino - 1) % sb.s_inodes_per_group;
    const byte = index * sb.s_inode_size;
    const bs = this.vol.blockSize;
    const block = gd.inodeTable + Math.floor(byte / bs);
    if (block >= gd.inodeTable + inodeTableBlocks(sb)) throw new Ext4Error('EFSCORRUPTED', `inode ${ino} outside its table`);
    return { block, offset: byte % bs };
  }

  async readInode(ino: number): Promise<Inode> {
    const { block, offset } = await this.inodeLocation(ino);
    const data = await this.vol.readBlock(block);
    const sb = this.vol.sb;
    return parseInode(sb, ino, data.subarray(offset, offset + sb.s_inode_size), { fsSeed: this.vol.fsSeed, verifyChecksum: this.vol.verify });
  }

  /** Seed of per-inode checksums (extent, directory blocks), or null without metadata_csum. */
  inodeCsumSeed(inode: Inode): number | null {
    return this.vol.sb.hasMetadataCsum ? inodeSeed(this.vol.fsSeed, inode.ino, inode.generation) : null;
  }
}
