/**
 * lib/ext4/inode-store.ts readInodeBatch (what `ls` reads a directory's inodes with): the same
 * inodes, the same errors at the same positions as one readInode per number, in few large
 * coalesced reads; a corrupt slot fails only when asked for.
 */
import { copyFileSync, openSync, readSync, writeSync, closeSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { isExt4Error } from '../../lib/errors.js';
import { readInodeBatch, type InodeBatchSource } from '../../lib/ext4/inode-store.js';
import type { Inode, InodeSummary } from '../../lib/ext4/inode.js';
import { getImage } from '../helpers/images.js';
import { inodeBatchSource } from '../helpers/batch-source.js';
import { tmpPath } from '../helpers/tmp.js';

function counting(fs: Filesystem): { src: InodeBatchSource; reads: { n: number; count: number }[] } {
  const reads: { n: number; count: number }[] = [];
  return { src: inodeBatchSource(fs, { onRead: (n, count) => reads.push({ n, count }) }), reads };
}

function outcome(f: () => Inode): { raw: string } | { code: string } {
  try {
    return { raw: Buffer.from(f().raw).toString('hex') };
  } catch (e) {
    if (!isExt4Error(e)) throw e;
    return { code: e.code };
  }
}

describe.each(['ext4-4k', 'ext2', 'ext4-noflexbg', 'ext4-inode128'])('readInodeBatch on %s', (name) => {
  let fs: Filesystem;
  beforeAll(async () => {
    fs = await Filesystem.open(getImage(name).image);
  });
  afterAll(async () => {
    await fs?.close();
  });

  it('gives what readInode gives, inode by inode, whatever the order (errors included)', async () => {
    const count = fs.sb.s_inodes_count;
    // Every inode in a scrambled order, some twice, plus numbers that do not exist.
    const inos: number[] = [];
    for (let i = 0; i < count; i++) inos.push(1 + ((i * 7919) % count));
    inos.push(2, 2, 0, count + 1, -3, 1.5, 11);
    const batch = await readInodeBatch(fs, inos);
    expect(batch.length).toBe(inos.length);
    for (let i = 0; i < inos.length; i++) {
      let want: ReturnType<typeof outcome>;
      try {
        want = { raw: Buffer.from((await fs.readInode(inos[i]!)).raw).toString('hex') };
      } catch (e) {
        if (!isExt4Error(e)) throw e;
        want = { code: e.code };
      }
      expect(outcome(() => batch.get(i)), `inode ${inos[i]}`).toEqual(want);
    }
    expect(outcome(() => batch.get(inos.length - 5))).toEqual({ code: 'EINVAL' }); // ino 0
  });

  it('summary(i) gives the fields get(i) parses (in place, into a reused object), or the same error', async () => {
    const count = fs.sb.s_inodes_count;
    const inos: number[] = [];
    for (let i = 0; i < count; i++) inos.push(1 + ((i * 7919) % count));
    inos.push(0, count + 1);
    const batch = await readInodeBatch(fs, inos);
    const reused = { mode: -1, type: null, uid: -1, gid: -1, size: -1, linksCount: -1, mtime: -1 } as InodeSummary;
    let used = 0;
    for (let i = 0; i < inos.length; i++) {
      let want: object;
      try {
        const x = batch.get(i);
        want = { mode: x.mode, type: x.type, uid: x.uid, gid: x.gid, size: x.size, linksCount: x.linksCount, mtime: x.mtime.sec };
        if (x.mode !== 0) used++;
      } catch (e) {
        if (!isExt4Error(e)) throw e;
        want = { code: e.code };
      }
      let got: object;
      try {
        const s = batch.summary(i, reused);
        expect(s).toBe(reused);
        got = { ...s };
      } catch (e) {
        if (!isExt4Error(e)) throw e;
        got = { code: e.code };
      }
      expect(got, `inode ${inos[i]}`).toEqual(want);
    }
    expect(used).toBeGreaterThan(100);
  });

  it('reads the table blocks in a few coalesced runs, never one read per inode', async () => {
    const { src, reads } = counting(fs);
    const ipg = fs.sb.s_inodes_per_group;
    const inos = Array.from({ length: Math.min(ipg, 2000) }, (_, i) => i + 1).reverse();
    const batch = await readInodeBatch(src, inos);
    for (let i = 0; i < inos.length; i++) expect(batch.get(i).ino).toBe(inos[i]);
    // One group's slots are one contiguous table: one read for all of them.
    expect(reads.length).toBe(1);
    expect(reads[0]!.count).toBe(Math.ceil((inos.length * fs.sb.s_inode_size) / fs.blockSize));
    // With a small read limit, the same blocks in reads of at most that size, none read twice.
    const small = counting(fs);
    await readInodeBatch(small.src, inos, { readBytes: 4 * fs.blockSize });
    expect(small.reads.every((r) => r.count <= 4)).toBe(true);
    expect(small.reads.reduce((s, r) => s + r.count, 0)).toBe(reads[0]!.count);
    // Far-apart inodes (other groups) are separate reads, not one read spanning the gap.
    if (fs.sb.groupCount > 1) {
      const far = counting(fs);
      await readInodeBatch(far.src, [1, ipg + 1, 2, ipg + 2]);
      if (!(await adjacentTables(fs))) expect(far.reads).toHaveLength(2);
      else expect(far.reads.reduce((s, r) => s + r.count, 0)).toBeLessThanOrEqual(2 + 16);
    }
  });
});

/** flex_bg puts the tables of a flex group next to each other (then a gap-bridging read is fine). */
async function adjacentTables(fs: Filesystem): Promise<boolean> {
  const a = await fs.group(0);
  const b = await fs.group(1);
  return Math.abs(b.inodeTable - a.inodeTable) <= 16 + Math.ceil((fs.sb.s_inodes_per_group * fs.sb.s_inode_size) / fs.blockSize);
}

describe('readInodeBatch with a corrupt inode', () => {
  it('reports the bad checksum for that inode only, when it is asked for', async () => {
    const img = tmpPath('batch-bad.img');
    copyFileSync(getImage('ext4-4k').image, img);
    let victim = 0;
    {
      const fs = await Filesystem.open(img);
      try {
        const root = await fs.readInode(2);
        const ents = (await fs.readdirRaw(root)).filter((e) => e.ino > 11);
        victim = ents[0]!.ino;
        const { block, offset } = await fs.inodeLocation(victim);
        const fd = openSync(img, 'r+');
        const b = Buffer.alloc(1);
        const at = block * fs.blockSize + offset + 0x10; // i_links_count: covered by the checksum
        readSync(fd, b, 0, 1, at);
        b[0] = b[0]! ^ 0x40;
        writeSync(fd, b, 0, 1, at);
        closeSync(fd);
      } finally {
        await fs.close();
      }
    }
    const fs = await Filesystem.open(img);
    try {
      const batch = await readInodeBatch(fs, [2, victim, victim + 1]);
      expect(batch.get(0).ino).toBe(2);
      expect(batch.get(2).ino).toBe(victim + 1);
      expect(outcome(() => batch.get(1))).toEqual({ code: 'EFSBADCRC' });
      expect(() => batch.summary(1)).toThrow(expect.objectContaining({ code: 'EFSBADCRC' }));
      expect(batch.summary(2).linksCount).toBe(batch.get(2).linksCount);
      await expect(fs.readInode(victim)).rejects.toMatchObject({ code: 'EFSBADCRC' });
    } finally {
      await fs.close();
    }
  });
});
