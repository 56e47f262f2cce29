/**
 * lib/ext4/inode-store.ts readInodeBatch locates inodes group by group (a descriptor is looked up
 * again only when the group changes): a group whose descriptor cannot be read fails its own inodes
 * with that error, in any order, and no others; inodes of the other groups still read as readInode
 * reads them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { Ext4Error, isExt4Error } from '../../lib/errors.js';
import { readInodeBatch } from '../../lib/ext4/inode-store.js';
import { getImage } from '../helpers/images.js';
import { inodeBatchSource } from '../helpers/batch-source.js';

describe('readInodeBatch with an unreadable group descriptor', () => {
  let fs: Filesystem;
  beforeAll(async () => {
    fs = await Filesystem.open(getImage('ext4-noflexbg').image);
  });
  afterAll(async () => {
    await fs?.close();
  });

  it('fails that group’s inodes with the descriptor’s error, the others read as readInode', async () => {
    expect(fs.sb.groupCount).toBeGreaterThan(1);
    const ipg = fs.sb.s_inodes_per_group;
    const bad = new Ext4Error('EFSBADCRC', 'group 1 descriptor checksum mismatch');
    let asked1 = 0;
    const src = inodeBatchSource(fs, {
      group: (g) => {
        if (g !== 1) return fs.group(g);
        asked1++;
        return Promise.reject(bad);
      },
    });
    // Groups interleaved (0, 1, 0, 1, …), then a run of group 1, then group 0 again, and numbers that do not exist.
    const inos: number[] = [];
    for (let i = 1; i <= 40; i++) inos.push(i, ipg + i);
    for (let i = 41; i <= 60; i++) inos.push(ipg + i);
    inos.push(2, 0, fs.sb.s_inodes_count + 1, ipg + 1, 11);
    const batch = await readInodeBatch(src, inos);
    expect(asked1).toBe(1); // one failed lookup, remembered
    for (let i = 0; i < inos.length; i++) {
      const ino = inos[i]!;
      let got: string;
      try {
        got = Buffer.from(batch.get(i).raw).toString('hex');
      } catch (e) {
        if (!isExt4Error(e)) throw e;
        got = e === bad ? 'bad group' : e.code;
      }
      let want: string;
      if (ino >= 1 && ino <= fs.sb.s_inodes_count && Math.floor((ino - 1) / ipg) === 1) want = 'bad group';
      else {
        try {
          want = Buffer.from((await fs.readInode(ino)).raw).toString('hex');
        } catch (e) {
          if (!isExt4Error(e)) throw e;
          want = e.code;
        }
      }
      expect(got, `inode ${ino} (position ${i})`).toBe(want);
    }
  });
});
