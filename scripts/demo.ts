/**
 * `npm run demo`: the main job on a fixture. Copies the fragmented image
 * shipped in fixtures/ to a temporary file, reports fragmentation (e4defrag
 * score) and free space (e2freefrag), defragments the whole filesystem with
 * getFreeBlocks/allocate/movedata, reports again, runs `e2fsck -fn` when
 * e2fsprogs is installed, and writes before/after block-map pictures.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { Filesystem } from '../lib/node.js';
import { defrag } from '../lib/ops/defrag.js';
import { fragReport, freeFrag } from '../lib/ops/report.js';
import { drawMap } from '../lib/ops/draw.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const fixture = join(root, 'fixtures', 'fragmented.ext4.img.gz');
const work = mkdtempSync(join(tmpdir(), 'ext4kit-demo-'));
// The 32 MiB working copy goes with the process, however it ends (each run used to leave one behind).
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const img = join(work, 'fragmented.img');
writeFileSync(img, gunzipSync(readFileSync(fixture)));
const outDir = join(root, 'demo-out');
mkdirSync(outDir, { recursive: true });

async function report(label: string): Promise<void> {
  const fs = await Filesystem.open(img);
  try {
    const frag = await fragReport(fs);
    const t = frag.targets[0]?.totals;
    const free = await freeFrag(fs);
    console.log(`\n== ${label}`);
    if (t) console.log(`files: ${frag.targets[0]!.files.length}   extents now/best: ${t.now}/${t.best}   e4defrag score: ${t.scoreText} ${t.needsDefrag ? '(needs defragmentation)' : '(does not need defragmentation)'}`);
    console.log(`free: ${free.freeBlocks} blocks in ${free.freeExtents} free extents; largest ${free.maxKB} KB, average ${free.avgKB} KB`);
    writeFileSync(join(outDir, `${label}.svg`), await drawMap(fs, { title: `fixtures/fragmented.ext4.img ${label} defrag` }));
  } finally {
    await fs.close();
  }
}

console.log(`ext4kit demo on a copy of ${fixture}\n(working copy: ${img}, removed at the end)`);
await report('before');
const fs = await Filesystem.open(img, { write: true });
const s = await defrag(fs);
await fs.close();
console.log(`\n== defrag: moved ${s.filesMoved} file(s), ${(s.bytesMoved / 1048576).toFixed(1)} MiB in ${s.seconds.toFixed(2)} s; extents ${s.extentsBefore} -> ${s.extentsAfter}; free extents ${s.freeExtentsBefore} -> ${s.freeExtentsAfter}`);
await report('after');
const fsck = spawnSync('e2fsck', ['-fn', img], { encoding: 'utf8' });
if (fsck.error) console.log('\ne2fsck not installed: skipping the consistency check');
else {
  console.log(`\n== e2fsck -fn (exit ${fsck.status})\n${(fsck.stdout + fsck.stderr).trim()}`);
  if (fsck.status !== 0) process.exitCode = 1;
}
console.log(`\npictures: ${join(outDir, 'before.svg')} and ${join(outDir, 'after.svg')}`);
