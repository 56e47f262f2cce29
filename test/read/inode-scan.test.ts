/**
 * lib/ext4/inode-scan.ts against dumpe2fs on images with many groups: which groups are skipped
 * (INODE_UNINIT with group checksums; nothing in use), which slots are visited (the in-use ones
 * for 'marked'; everything before bg_itable_unused for 'all'), and that each table is read in few
 * large runs. The inodes themselves are compared with debugfs stat.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { scanInodeTables, type InodeScanStats, type ScannedGroup, type ScannedInode } from '../../lib/ext4/inode-scan.js';
import { debugfsFull, splitDebugfsOutput, dumpe2fsGroups, dumpe2fsHeader, mkfs, type FsKind } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';

function tree(): string {
  const dir = tmpPath('scan-src');
  for (let d = 0; d < 12; d++) {
    mkdirSync(path.join(dir, `d${d}`), { recursive: true });
    for (let f = 0; f < 9; f++) writeFileSync(path.join(dir, `d${d}`, `f${f}`), `file ${d}/${f}\n`.repeat(f * 40));
  }
  return dir;
}

async function scan(img: string, which: 'marked' | 'all', readBytes?: number) {
  const fs = await Filesystem.open(img);
  try {
    const stats: InodeScanStats = { groupsSkipped: 0, tableBytes: 0, tableReads: 0 };
    const groups: ScannedGroup[] = [];
    const inodes: ScannedInode[] = [];
    for await (const x of scanInodeTables(fs, { which, stats, ...(readBytes ? { readBytes } : {}) })) (x.kind === 'group' ? groups : inodes).push(x as never);
    return { groups, inodes, stats, ipg: fs.sb.s_inodes_per_group, isz: fs.sb.s_inode_size, bs: fs.blockSize };
  } finally {
    await fs.close();
  }
}

const LAYOUTS: { name: string; kind: FsKind; opts: string[] }[] = [
  { name: 'ext4 1k, small groups (INODE_UNINIT honoured)', kind: 'ext4', opts: ['-b', '1024', '-g', '2048', '-N', '2048'] },
  { name: 'ext4 ^metadata_csum,^uninit_bg (flags not trusted: every slot)', kind: 'ext4', opts: ['-b', '1024', '-g', '2048', '-N', '2048', '-O', '^metadata_csum,^uninit_bg'] },
  { name: 'ext2', kind: 'ext2', opts: ['-b', '1024', '-g', '2048', '-N', '2048'] },
];

describe('inode table scan', () => {
  const src = tree();
  for (const l of LAYOUTS) {
    it(l.name, async () => {
      const img = tmpPath('scan.img');
      mkfs(l.kind, img, 16 * 1024 * 1024, l.opts, src);
      const dg = dumpe2fsGroups(img);
      const features = (dumpe2fsHeader(img)['Filesystem features'] ?? '').split(/\s+/);
      const honoured = features.includes('metadata_csum') || features.includes('uninit_bg');

      const marked = await scan(img, 'marked', 4096);
      const { ipg, isz, bs } = marked;
      expect(marked.groups.length).toBe(dg.length);
      for (const g of dg) {
        const got = marked.groups[g.group]!;
        const inUse = ipg - g.freeInodes;
        if (honoured && g.flags.includes('INODE_UNINIT')) expect(got.skipped, `group ${g.group}`).toBe('inode-uninit');
        else if (inUse === 0) expect(got.skipped, `group ${g.group}`).toBe('unused');
        else expect(got.skipped, `group ${g.group}`).toBeNull();
        // The slots marked in use are exactly the ones dumpe2fs does not list as free.
        const free = new Set<number>();
        for (const [a, b] of g.freeInodeRanges) for (let i = a; i <= b; i++) free.add(i);
        const want = Array.from({ length: ipg }, (_, i) => g.group * ipg + i + 1).filter((ino) => !free.has(ino));
        expect(marked.inodes.filter((x) => x.group === g.group).map((x) => x.ino), `group ${g.group}`).toEqual(want);
      }
      expect(marked.stats.groupsSkipped).toBe(marked.groups.filter((g) => g.skipped).length);
      // The layouts exercise both kinds of groups (and INODE_UNINIT where it is honoured).
      expect(marked.groups.some((g) => g.skipped === null)).toBe(true);
      expect(marked.groups.some((g) => g.skipped === (honoured ? 'inode-uninit' : 'unused'))).toBe(true);
      // Large runs: at most one read per 4 KiB of table here, and never more table than the slots need.
      expect(marked.stats.tableReads).toBeLessThanOrEqual(Math.ceil(marked.stats.tableBytes / 4096));
      expect(marked.stats.tableBytes).toBeLessThanOrEqual((dg.length - marked.stats.groupsSkipped) * Math.ceil((ipg * isz) / bs) * bs);
      for (const x of marked.inodes) expect(x.error, `inode ${x.ino}`).toBeNull();

      // 'all': every slot before bg_itable_unused, set or not.
      const all = await scan(img, 'all');
      for (const g of dg) {
        const slots = !honoured ? ipg : g.flags.includes('INODE_UNINIT') ? 0 : ipg - (g.unusedInodes ?? 0);
        expect(all.inodes.filter((x) => x.group === g.group).length, `group ${g.group}`).toBe(slots);
      }
      expect(all.inodes.filter((x) => x.marked).map((x) => x.ino)).toEqual(marked.inodes.map((x) => x.ino));

      // The decoded inodes are the ones debugfs reads (a sample: the root and every tenth in use).
      const sample = marked.inodes.filter((_, i) => i % 10 === 0 || _.ino === 2);
      const outs = splitDebugfsOutput(debugfsFull(img, sample.map((x) => `stat <${x.ino}>`)).stdout);
      expect(outs.length).toBe(sample.length);
      sample.forEach((x, i) => {
        const out = outs[i]!.output;
        const links = Number(/Links: (\d+)/.exec(out)?.[1]);
        const size = Number(/Size: (\d+)/.exec(out)?.[1]);
        expect({ ino: x.ino, links: x.inode!.linksCount, size: x.inode!.size }).toEqual({ ino: x.ino, links, size });
      });
    });
  }
});
