/**
 * bench/defrag — ext4kit whole-filesystem defrag vs e4defrag, side by side on
 * the same kernel-fragmented image (deterministic content), in one run.
 * Needs root + loop devices (e4defrag works only on a mounted filesystem).
 *
 *   npx tsx bench/defrag.ts [--size-mib 1024] [--files 160]
 *
 * Prints wall time, bytes moved (blocks whose physical place changed), total
 * extents after (filefrag's count), e4defrag's score after (`e4defrag -c`),
 * free extents and largest free extent after (e2freefrag), peak RSS.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Filesystem } from '../lib/node.js';
import { fragmentCount } from '../lib/ext4/extent-map.js';
import { decodeName } from '../lib/ext4/bytes.js';

const args = process.argv.slice(2);
const arg = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const SIZE_MIB = arg('size-mib', 1024);
const FILES = arg('files', 160);

function sh(cmd: string, a: string[], input?: string): string {
  const r = spawnSync(cmd, a, { encoding: 'utf8', input, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} ${a.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

const work = mkdtempSync(join(tmpdir(), 'ext4kit-bench-defrag-'));
const mnt = join(work, 'mnt');
mkdirSync(mnt);
const base = join(work, 'base.img');

function mount(img: string, ro = false): void {
  sh('mount', ['-o', ro ? 'loop,ro' : 'loop', img, mnt]);
}
function umount(): void {
  sh('umount', [mnt]);
}

/** A kernel-made fragmented image: interleaved appends with fsync, then deletions. */
function makeImage(): void {
  sh('truncate', ['-s', `${SIZE_MIB}M`, base]);
  sh('mkfs.ext4', ['-q', '-F', '-U', '5b0ab1d1-0000-4000-8000-00000000beef', '-E', 'hash_seed=5b0ab1d1-0000-4000-8000-00000000cafe', base]);
  mount(base);
  try {
    const script = `
import os, random
random.seed(42)
root = ${JSON.stringify(mnt)}
os.makedirs(root + '/a', exist_ok=True); os.makedirs(root + '/b/c', exist_ok=True)
dirs = ['', '/a', '/b', '/b/c']
paths = [root + dirs[i % 4] + '/file%03d' % i for i in range(${FILES})]
fds = [os.open(p, os.O_WRONLY | os.O_CREAT, 0o644) for p in paths]
budget = int(${SIZE_MIB} * 1024 * 1024 * 0.55)
written = 0
rnd = 0
while written < budget:
  for i, fd in enumerate(fds):
    n = 4096 * random.randint(1, 48)
    os.write(fd, bytes([(rnd * 31 + i) & 0xff]) * n)
    written += n
    if random.random() < 0.5: os.fsync(fd)
  rnd += 1
for fd in fds: os.close(fd)
for i, p in enumerate(paths):
  if i % 5 == 4: os.unlink(p)
os.sync()
`;
    sh('python3', ['-c', script]);
  } finally {
    umount();
  }
}

interface Layout { blockSize: number; files: Map<string, { blocks: Set<number>; extents: number }>; }

async function layout(img: string): Promise<Layout> {
  const fs = await Filesystem.open(img);
  const files = new Map<string, { blocks: Set<number>; extents: number }>();
  const walk = async (path: string, ino: number) => {
    const inode = await fs.readInode(ino);
    if (inode.type === 'dir') {
      for (const e of await fs.readdirRaw(inode)) {
        const n = decodeName(e.name);
        if (n !== '.' && n !== '..') await walk(`${path}/${n}`, e.ino);
      }
    } else if (inode.type === 'file') {
      const ex = (await fs.fileMap(inode)).extents;
      const blocks = new Set<number>();
      for (const e of ex) for (let i = 0; i < e.length; i++) blocks.add(e.physical + i);
      files.set(path, { blocks, extents: fragmentCount(ex) });
    }
  };
  await walk('', 2);
  await fs.close();
  return { blockSize: fs.blockSize, files };
}

function bytesMoved(a: Layout, b: Layout, bs: number): number {
  let moved = 0;
  for (const [p, f] of a.files) {
    const g = b.files.get(p);
    if (!g) continue;
    for (const blk of g.blocks) if (!f.blocks.has(blk)) moved++;
  }
  return moved * bs;
}

function freefrag(img: string): { freeExtents: number; largestKB: number } {
  const out = sh('e2freefrag', [img]);
  return {
    freeExtents: Number(/Num\. free extent: (\d+)/.exec(out)?.[1]),
    largestKB: Number(/Max\. free extent: (\d+) KB/.exec(out)?.[1]),
  };
}

function e4score(img: string): string {
  mount(img, true);
  try {
    const out = spawnSync('e4defrag', ['-c', mnt], { encoding: 'utf8' }).stdout;
    return /Fragmentation score\s+(\d+)/.exec(out)?.[1] ?? '?';
  } finally {
    umount();
  }
}

function sha(img: string): string {
  mount(img, true);
  try {
    return sh('sh', ['-c', `cd ${mnt} && find . -type f | sort | xargs sha256sum | sha256sum`]).split(' ')[0]!;
  } finally {
    umount();
  }
}

async function main(): Promise<void> {
  console.log(`building a ${SIZE_MIB} MiB kernel-fragmented image with ${FILES} files in ${work} …`);
  makeImage();
  const before = await layout(base);
  const bs = before.blockSize;
  const contentBefore = sha(base);
  const ffBefore = freefrag(base);
  const extentsBefore = [...before.files.values()].reduce((a, f) => a + f.extents, 0);
  const rows: Record<string, string | number>[] = [];
  rows.push({ tool: 'before', seconds: '-', movedMiB: '-', extents: extentsBefore, score: e4score(base), freeExtents: ffBefore.freeExtents, largestFreeMiB: (ffBefore.largestKB / 1024).toFixed(1), peakRssMiB: '-', contentSame: 'yes' });

  // ext4kit, in a child process so that its peak RSS is its own.
  const a = join(work, 'ext4kit.img');
  copyFileSync(base, a);
  sh('sync', []);
  const t0 = Date.now();
  const child = spawnSync(process.execPath, ['--import', 'tsx', '-e', `
    const { Filesystem } = await import(${JSON.stringify(new URL('../lib/ext4/filesystem.ts', import.meta.url).pathname)});
    const { defrag } = await import(${JSON.stringify(new URL('../lib/ops/defrag.ts', import.meta.url).pathname)});
    const fs = await Filesystem.open(${JSON.stringify(a)}, { write: true });
    const s = await defrag(fs);
    await fs.close();
    console.log(JSON.stringify({ rss: process.resourceUsage().maxRSS, moved: s.bytesMoved, files: s.filesMoved }));
  `], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const tA = (Date.now() - t0) / 1000;
  if (child.status !== 0) throw new Error(child.stderr);
  const res = JSON.parse(child.stdout.trim().split('\n').pop()!);
  const afterA = await layout(a);
  const ffA = freefrag(a);
  const fsck = spawnSync('e2fsck', ['-fn', a], { encoding: 'utf8' });
  rows.push({ tool: 'ext4kit defrag', seconds: tA.toFixed(2), movedMiB: (bytesMoved(before, afterA, bs) / 1048576).toFixed(1), extents: [...afterA.files.values()].reduce((x, f) => x + f.extents, 0), score: e4score(a), freeExtents: ffA.freeExtents, largestFreeMiB: (ffA.largestKB / 1024).toFixed(1), peakRssMiB: (res.rss / 1024).toFixed(0), contentSame: sha(a) === contentBefore ? 'yes' : 'NO', e2fsck: fsck.status === 0 ? 'clean' : `exit ${fsck.status}` });

  // e4defrag on the loop-mounted copy.
  const b = join(work, 'e4defrag.img');
  copyFileSync(base, b);
  mount(b);
  let tB = 0;
  try {
    const t1 = Date.now();
    spawnSync('e4defrag', [mnt], { encoding: 'utf8' });
    sh('sync', []);
    tB = (Date.now() - t1) / 1000;
  } finally {
    umount();
  }
  const afterB = await layout(b);
  const ffB = freefrag(b);
  rows.push({ tool: 'e4defrag', seconds: tB.toFixed(2), movedMiB: (bytesMoved(before, afterB, bs) / 1048576).toFixed(1), extents: [...afterB.files.values()].reduce((x, f) => x + f.extents, 0), score: e4score(b), freeExtents: ffB.freeExtents, largestFreeMiB: (ffB.largestKB / 1024).toFixed(1), peakRssMiB: '(kernel)', contentSame: sha(b) === contentBefore ? 'yes' : 'NO' });
  console.table(rows);
  rmSync(work, { recursive: true, force: true });
}

await main();
