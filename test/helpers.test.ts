/**
 * Self-test of the shared test infrastructure in test/helpers/: the oracles' parsers, the image
 * MATRIX, the source-tree snapshot, what mkfs -d really preserves, kernel images and fixtures.
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixtureCopy, fixtureManifest } from './helpers/fixtures.js';
import { getImage, MATRIX } from './helpers/images.js';
import { bigSparseImage, fallocImage, kernelSkipReason, manyExtentsImage, needsRecoveryImage } from './helpers/kernel-images.js';
import { tmpPath } from './helpers/tmp.js';
import {
  canLoopMount,
  debugfs,
  debugfsDump,
  debugfsStats,
  debugfsXattrs,
  dumpe2fsGroups,
  dumpe2fsHeader,
  e2fsckClean,
  e2fsckJournalOnly,
  e2fsckProblems,
  expectE2fsckClean,
  featuresOf,
  freeCountsFromSummary,
  mkfs,
  run,
  skipReason,
  withLoopMount,
} from './helpers/tools.js';
import { expectedImageMtime, symlinkLengths, type Entry } from './helpers/tree.js';

const loopWhy = skipReason('loop');
if (loopWhy) console.log(`helpers.test: kernel/loop-mount tests skipped: ${loopWhy}`);

describe('e2fsck oracle', () => {
  it('a fresh image is clean and the summary parses', () => {
    const img = tmpPath('fresh.img');
    mkfs('ext4', img, 8 * 1024 * 1024, ['-b', '4096']);
    const r = expectE2fsckClean(img);
    expect(r.exitCode).toBe(0);
    expect(r.summary).not.toBeNull();
    expect(r.summary!.totalBlocks).toBe(2048);
    expect(freeCountsFromSummary(r.output)).toEqual(r.summary);
  });

  it('flags a wrong free blocks count even though e2fsck -n exits 0', () => {
    const img = tmpPath('broken.img');
    mkfs('ext4', img, 8 * 1024 * 1024, ['-b', '4096']);
    debugfs(img, ['ssv free_blocks_count 1'], { write: true });
    const r = e2fsckClean(img);
    expect(r.exitCode).toBe(0);
    expect(r.ok).toBe(false);
    expect(r.problems.join('\n')).toMatch(/Free blocks count wrong/);
    expect(() => expectE2fsckClean(img)).toThrow(/Free blocks count wrong/);
  });

  it('treats any other line as a problem', () => {
    const out = [
      'e2fsck 1.47.0 (5-Feb-2023)',
      'Pass 1: Checking inodes, blocks, and sizes',
      'Pass 2: Checking directory structure',
      'Pass 3: Checking directory connectivity',
      'Pass 4: Checking reference counts',
      'Pass 5: Checking group summary information',
      'Padding at end of inode bitmap is not set. Fix? no',
      'Warning: skipping journal recovery because doing a read-only filesystem check.',
      'x.img: 11/2048 files (0.0% non-contiguous), 1000/8192 blocks',
      '',
    ].join('\n');
    expect(e2fsckProblems(out)).toEqual([
      'Padding at end of inode bitmap is not set. Fix? no',
      'Warning: skipping journal recovery because doing a read-only filesystem check.',
    ]);
    expect(freeCountsFromSummary(out)).toMatchObject({ usedBlocks: 1000, totalBlocks: 8192, freeBlocks: 7192, freeInodes: 2037 });
  });
});

describe('dumpe2fs parsers', () => {
  it('groups add up to the header totals (ext4-1k, 8 groups)', () => {
    const b = getImage('ext4-1k');
    const h = dumpe2fsHeader(b.image);
    const groups = dumpe2fsGroups(b.image);
    expect(groups.length).toBe(8);
    expect(groups.reduce((s, g) => s + g.freeBlocks, 0)).toBe(Number(h['Free blocks']));
    expect(groups.reduce((s, g) => s + g.freeInodes, 0)).toBe(Number(h['Free inodes']));
    expect(groups[0]!.superblock).toEqual({ kind: 'primary', block: 1 });
    for (const g of groups) {
      const free = g.freeBlockRanges.reduce((s, [a, z]) => s + z - a + 1, 0);
      expect(free).toBe(g.freeBlocks);
    }
  });
});

// per recipe: features that must / must not be there
const FEATURES: Record<string, { has?: string[]; not?: string[]; inodeSize?: number }> = {
  'ext4-4k': { has: ['metadata_csum', '64bit', 'flex_bg', 'has_journal', 'extent'] },
  'ext4-no64bit': { not: ['64bit'] },
  'ext4-gdtcsum': { has: ['uninit_bg'], not: ['metadata_csum'] },
  'ext4-nocsum': { not: ['metadata_csum', 'uninit_bg'] },
  'ext4-noflexbg': { not: ['flex_bg'] },
  'ext4-nojournal': { not: ['has_journal'] },
  'ext4-inline': { has: ['inline_data'] },
  'ext4-metabg': { has: ['meta_bg'], not: ['resize_inode'] },
  'ext4-inode128': { inodeSize: 128 },
  ext2: { not: ['has_journal', 'extent'] },
  'ext3-1k': { has: ['has_journal'], not: ['extent'] },
};

describe('MATRIX images', () => {
  for (const rc of MATRIX) {
    it(`${rc.name}: builds, is e2fsck-clean, has its features and a 10,000-entry bigdir`, () => {
      const b = getImage(rc.name);
      const r = e2fsckClean(b.image);
      expect(r.ok, r.output).toBe(true);
      // only inline_data makes mkfs -d get sizes wrong (see images.ts)
      if (rc.name !== 'ext4-inline') expect(b.sizeFixups).toEqual([]);
      const h = dumpe2fsHeader(b.image);
      expect(h['Block size']).toBe(String(rc.blockSize));
      const f = featuresOf(h);
      const want = FEATURES[rc.name] ?? {};
      for (const x of want.has ?? []) expect(f.has(x), `${rc.name} should have ${x}`).toBe(true);
      for (const x of want.not ?? []) expect(f.has(x), `${rc.name} should not have ${x}`).toBe(false);
      if (want.inodeSize) expect(h['Inode size']).toBe(String(want.inodeSize));
      // bigdir: 10,000 entries (+ . and ..), an htree unless the recipe keeps directories linear
      const ls = debugfs(b.image, ['ls -p /bigdir']);
      // ls -p rows are /ino/mode/uid/gid/name/size/; htree index blocks show up as inode-0 rows
      const rows = ls.split('\n').filter((l) => l.startsWith('/')).map((l) => l.split('/'));
      const names = rows.filter((f) => f[1] !== '0' && f[5] !== '.' && f[5] !== '..').map((f) => f[5]);
      expect(names.length).toBe(b.tree.bigDir.entries);
      const ht = debugfs(b.image, ['htree_dump /bigdir']);
      if (rc.indexDirs) expect(ht).toMatch(/Root node dump/);
      else expect(ht).toMatch(/Not a hash-indexed directory/);
      expect(b.entries.filter((e) => e.path.startsWith('bigdir/')).length).toBe(b.tree.bigDir.entries);
    });
  }

  it('ext3-1k: the sparse triple-indirect file really uses the TIND block', () => {
    const b = getImage('ext3-1k');
    const st = debugfs(b.image, ['stat /sparse/triple-indirect']);
    expect(st).toMatch(/\(TIND\):/);
    const e = b.entries.find((x) => x.path === 'sparse/triple-indirect')!;
    expect(e.size).toBeGreaterThan((12 + 256 + 256 * 256) * 1024);
  });
});

describe('source tree snapshot (ext4-4k)', () => {
  const b = getImage('ext4-4k');
  const by = new Map(b.entries.map((e) => [e.path, e]));
  const get = (p: string): Entry => {
    const e = by.get(p);
    if (!e) throw new Error(`no entry ${p}`);
    return e;
  };

  it('is sorted, relative, and contains every kind of entry', () => {
    const paths = b.entries.map((e) => e.path);
    expect([...paths].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))).toEqual(paths);
    const types = new Set(b.entries.map((e) => e.type));
    for (const t of ['file', 'dir', 'symlink', 'chardev', 'blockdev', 'fifo', 'socket']) expect(types.has(t as Entry['type']), t).toBe(true);
  });

  it('has the size matrix, big files and sparse files', () => {
    const bs = 4096;
    expect(get('sizes/empty').size).toBe(0);
    expect(get('sizes/one').size).toBe(1);
    expect(get('sizes/bs-minus-1').size).toBe(bs - 1);
    expect(get('sizes/bs').size).toBe(bs);
    expect(get('sizes/bs-plus-1').size).toBe(bs + 1);
    expect(get('big/random-5m').size).toBe(5 * 1024 * 1024);
    for (const p of ['sparse/hole-start', 'sparse/hole-middle', 'sparse/hole-end', 'sparse/all-hole']) {
      const st = fs.statSync(path.join(b.srcDir, p));
      expect(st.blocks * 512, p).toBeLessThan(st.size);
    }
  });

  it('has long and UTF-8 names, a deep path, a 10,000-entry directory', () => {
    const names = b.entries.map((e) => e.name);
    expect(names.some((n) => Buffer.byteLength(n) === 255 && /^[\x20-\x7e]+$/.test(n))).toBe(true);
    expect(names.some((n) => Buffer.byteLength(n) === 255 && !/^[\x20-\x7e]+$/.test(n))).toBe(true);
    expect(Math.max(...b.entries.map((e) => e.path.split('/').length))).toBeGreaterThanOrEqual(40);
    expect(b.entries.filter((e) => e.path.startsWith('bigdir/')).length).toBeGreaterThanOrEqual(10_000);
  });

  it('has fast/slow boundary, relative and absolute symlinks', () => {
    const lens = b.entries.filter((e) => e.type === 'symlink').map((e) => e.target!.length);
    for (const n of [59, 60, 61]) expect(lens).toContain(n);
    expect(Math.max(...lens)).toBeGreaterThan(61);
    expect(symlinkLengths(4096)).toContain(4095);
    expect(get('symlinks/relative').target).toBe('../sizes/one');
    expect(get('symlinks/absolute').target!.startsWith('/')).toBe(true);
  });

  it('has hard links, xattrs, devices, odd modes, owners and times', () => {
    const a = get('links/a');
    expect(a.nlink).toBe(3);
    expect(b.entries.filter((e) => e.linkGroup === 'links/a').map((e) => e.path)).toEqual(['links/a', 'links/b', 'links/sub/c']);
    expect(get('xattr/small').xattrs['user.small']).toBe(Buffer.from('hello').toString('hex'));
    expect(get('xattr/large').xattrs['user.large']!.length / 2).toBeGreaterThan(1024);
    expect(get('special/chardev-big').rdev).toEqual({ major: 300, minor: 70_000 });
    expect(get('special/blockdev').rdev).toEqual({ major: 7, minor: 3 });
    expect(get('modes/all-7777').mode).toBe(0o7777);
    expect(get('modes/none').mode).toBe(0);
    expect(get('modes/dir-000').mode).toBe(0);
    expect(get('owners/uid-1234567').uid).toBe(1_234_567);
    expect(get('owners/nobody').gid).toBe(65_534);
    expect(get('times/pre-1970').mtime).toBeLessThan(0);
    expect(get('times/pre-1970').mtimeNs).toBeGreaterThan(0);
    expect(get('times/y2100').mtime).toBe(4_102_444_800);
    expect(get('times/y2100').mtimeNs).toBe(123_456_789);
    expect(get('times/minus-one').mtime).toBe(-1);
  });
});

describe('mkfs -d fidelity: the image holds what MKFS_D_FIDELITY says', () => {
  for (const name of ['ext4-4k', 'ext4-inode128', 'ext2', 'ext4-inline']) {
    it(`${name}: type, mode, owner, size, links, mtime (low 32 bits, no ns), rdev, symlinks, xattrs, contents`, () => {
      const b = getImage(name);
      const sample = b.entries.filter((e) => !e.path.startsWith('bigdir/') || /[pf]0(0000|0599|0600|9999)/.test(e.name));
      const stats = debugfsStats(b.image, sample.map((e) => `/${e.path}`));
      const typeWord: Record<Entry['type'], string> = {
        file: 'regular',
        dir: 'directory',
        symlink: 'symlink',
        chardev: 'character special',
        blockdev: 'block special',
        fifo: 'FIFO',
        socket: 'socket',
      };
      const bad: string[] = [];
      for (const e of sample) {
        const s = stats.get(`/${e.path}`);
        if (!s) {
          bad.push(`${e.path}: missing`);
          continue;
        }
        const diffs: string[] = [];
        if (s.type !== typeWord[e.type]) diffs.push(`type ${s.type}`);
        if (s.mode !== e.mode) diffs.push(`mode ${s.mode.toString(8)} vs ${e.mode.toString(8)}`);
        if (s.uid !== e.uid || s.gid !== e.gid) diffs.push(`owner ${s.uid}:${s.gid} vs ${e.uid}:${e.gid}`);
        if (e.type !== 'dir' && s.size !== e.size) diffs.push(`size ${s.size} vs ${e.size}`);
        if (e.type !== 'dir' && s.links !== e.nlink) diffs.push(`links ${s.links} vs ${e.nlink}`);
        if (s.mtime !== expectedImageMtime(e)) diffs.push(`mtime ${s.mtime} vs ${expectedImageMtime(e)} (source ${e.mtime})`);
        if (s.mtimeNs !== 0) diffs.push(`mtime ns ${s.mtimeNs}`);
        if (e.rdev && (s.device?.major !== e.rdev.major || s.device?.minor !== e.rdev.minor)) diffs.push(`rdev ${JSON.stringify(s.device)}`);
        if (e.type === 'symlink' && e.target!.length < 60 && name !== 'ext4-inline' && s.fastLinkDest !== e.target) diffs.push(`fast link ${s.fastLinkDest}`);
        if (diffs.length) bad.push(`${e.path}: ${diffs.join(', ')}`);
      }
      expect(bad).toEqual([]);
      // xattrs: same names and value lengths (and values where debugfs prints them)
      const withX = sample.filter((e) => Object.keys(e.xattrs).length);
      expect(withX.length).toBeGreaterThan(3);
      const xs = debugfsXattrs(b.image, withX.map((e) => e.path));
      for (const e of withX) {
        const got = xs.get(e.path)!;
        // inline_data keeps the in-inode data in a system.data xattr that the source has not
        expect([...got.keys()].filter((k) => k !== 'system.data').sort(), e.path).toEqual(Object.keys(e.xattrs).sort());
        for (const [k, v] of Object.entries(e.xattrs)) expect(got.get(k)!.length, `${e.path} ${k}`).toBe(v.length / 2);
      }
      // contents of a few files, read back by debugfs
      for (const p of ['big/random-3m', 'sparse/hole-middle', 'sparse/hole-end', 'sparse/zero-blocks', 'links/x', `names/${'日'.repeat(85)}`]) {
        const e = by(b.entries, p);
        expect(crypto.createHash('sha256').update(debugfsDump(b.image, `/${p}`)).digest('hex'), p).toBe(e.sha256);
      }
    });
  }
});

function by(entries: Entry[], p: string): Entry {
  const e = entries.find((x) => x.path === p);
  if (!e) throw new Error(`no entry ${p}`);
  return e;
}

describe('loop mounts', () => {
  it.skipIf(!canLoopMount())('withLoopMount mounts, runs, and always unmounts and detaches', async () => {
    const img = getImage('ext4-4k').copy();
    const seen = await withLoopMount(img, (mp) => fs.readdirSync(mp), { readOnly: true });
    expect(seen).toContain('bigdir');
    await expect(withLoopMount(img, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(run('losetup', ['-j', img]).stdout.trim()).toBe('');
    expectE2fsckClean(img);
  });
});

describe('kernel images', () => {
  const why = kernelSkipReason();
  it.skipIf(why !== null)('(a) 3,200 extents, depth ≥ 2', () => {
    const k = manyExtentsImage()!;
    expect(k.depth).toBeGreaterThanOrEqual(2);
    expect(k.leafExtents).toBeGreaterThanOrEqual(3000);
    expect(k.file.extents.length).toBe(k.leafExtents);
    expectE2fsckClean(k.image);
  });

  it.skipIf(why !== null)('(b) unwritten extents, past EOF, punched holes', () => {
    const k = fallocImage()!;
    const pre = k.files.prealloc;
    expect(pre.extents.some((e) => e.flags.includes('unwritten'))).toBe(true);
    expect(pre.extents.some((e) => e.logical * k.blockSize >= pre.size)).toBe(true);
    expect(k.files.punched.allocatedBlocks).toBeLessThan(k.files.punched.size / k.blockSize);
    expectE2fsckClean(k.image);
  });

  it.skipIf(why !== null)('(c) data beyond 4 GiB', () => {
    const k = bigSparseImage()!;
    expect(k.file.size).toBeGreaterThan(2 ** 32);
    expect(k.chunks.some((c) => c.offset > 2 ** 32)).toBe(true);
    expectE2fsckClean(k.image);
  });

  it.skipIf(why !== null)('(d) journal needing recovery, and e2fsckJournalOnly replays it', () => {
    const k = needsRecoveryImage()!;
    expect(k.transactions).toBeGreaterThan(0);
    expect(k.expected.map((e) => e.path)).toContain('late-dir/last.txt');
    const r = e2fsckClean(k.image);
    expect(r.ok).toBe(false);
    expect(r.problems.join('\n')).toMatch(/journal recovery/);
    const j = e2fsckJournalOnly(k.image);
    expect(j.exitCode).toBeLessThan(4);
    // The kernel updates the superblock's free totals lazily (ext4-format.md §2.1): after a
    // journal-only replay those two may be stale; nothing else may be wrong.
    const after = e2fsckClean(k.image);
    expect(after.problems.filter((p) => !/Free (blocks|inodes) count wrong|^Fix\? no$|^\s*$/.test(p.trim()))).toEqual([]);
    const stats = debugfsStats(k.image, k.expected.map((e) => `/${e.path}`));
    for (const e of k.expected) expect(stats.get(`/${e.path}`)?.size, e.path).toBe(e.size);
    expect(debugfsDump(k.image, '/late-dir/last.txt').toString()).toBe('the last committed transaction\n');
  });
});

describe('fixtures', () => {
  it('basic: clean, and contents match the manifest', () => {
    const img = fixtureCopy('basic');
    expectE2fsckClean(img);
    for (const e of fixtureManifest('basic').filter((x) => x.type === 'file')) {
      const got = crypto.createHash('sha256').update(debugfsDump(img, `/${e.path}`)).digest('hex');
      expect(got, e.path).toBe(e.sha256);
    }
  });

  it('fragmented: clean, several files with many extents', () => {
    const img = fixtureCopy('fragmented');
    expectE2fsckClean(img);
    const m = fixtureManifest('fragmented');
    expect(m.filter((e) => (e.extents ?? 0) >= 50).length).toBeGreaterThanOrEqual(4);
    const f0 = m.find((e) => e.path === 'frag/file0')!;
    expect(crypto.createHash('sha256').update(debugfsDump(img, '/frag/file0')).digest('hex')).toBe(f0.sha256);
  });
});

describe.skipIf(!fs.existsSync('/dev/shm'))('scratch space on tmpfs', () => {
  it("a process's first shmDir removes what dead processes left in /dev/shm, not what live ones hold", () => {
    // A pid that is certainly not running: a child that has exited.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const left = fs.mkdtempSync(`/dev/shm/ext4kit-test-${dead}-`);
    fs.writeFileSync(path.join(left, 'image.img'), new Uint8Array(4096));
    const alive = fs.mkdtempSync(`/dev/shm/ext4kit-test-${process.pid}-`);
    try {
      const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', "import('./test/helpers/tmp.ts').then((m) => console.log(m.shmDir()))"], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.trim()).toMatch(/^\/dev\/shm\/ext4kit-test-\d+-/);
      expect(fs.existsSync(left)).toBe(false);
      expect(fs.existsSync(alive)).toBe(true);
      expect(fs.existsSync(r.stdout.trim())).toBe(false); // its own, removed at its exit
    } finally {
      fs.rmSync(left, { recursive: true, force: true });
      fs.rmSync(alive, { recursive: true, force: true });
    }
  });
});
