/**
 * bench/namespace-creates — creates in one directory (lib/ops/namespace.ts createFile, one
 * journaled transaction each) on a fresh ext4 image on tmpfs: time per window of creates, so
 * that the last window can be compared with the first (issue 11: the last 10,000 of 100,000 no
 * slower than 1.5× the first 10,000), with the directory's index depth and e2fsck's verdict.
 *
 *   npx tsx bench/namespace-creates.ts [--count 100000] [--window 10000] [--block-size 4096]
 *
 * Prints one JSON object: windows (wall and CPU ms each), ratios last/first, µs per create, the
 * load average.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { Filesystem } from '../lib/node.js';
import { createFile, mkdir } from '../lib/ops/namespace.js';
import { DxRootInfoLayout, DX_ROOT_INFO_OFFSET } from '../lib/ext4/htree.js';

const args = process.argv.slice(2);
const opt = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : def;
};
const COUNT = opt('count', 100_000);
const WINDOW = opt('window', 10_000);
const BS = opt('block-size', 4096);

const dir = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
const img = join(dir, `ext4kit-bench-creates-${process.pid}.img`);
fs.writeFileSync(img, '');
fs.truncateSync(img, Math.max(256, Math.ceil((COUNT * 600) / 2 ** 20)) * 2 ** 20);
const mk = spawnSync('mkfs.ext4', ['-q', '-F', '-b', String(BS), '-N', String(COUNT + 1000), img], { encoding: 'utf8' });
if (mk.status !== 0) throw new Error(`mkfs.ext4 failed: ${mk.stderr}`);
try {
  const f = await Filesystem.open(img, { write: true, now: { sec: 1_750_000_000, nsec: 0 } });
  const windows: number[] = [];
  const cpu: number[] = []; // main-thread CPU (user + system) per window: steadier than wall time on a loaded machine
  let levels = -1;
  try {
    await mkdir(f, '/d');
    let t0 = performance.now();
    let c0 = process.cpuUsage();
    for (let i = 0; i < COUNT; i++) {
      await createFile(f, `/d/file-${i.toString(36)}-${'x'.repeat(i % 24)}`);
      if ((i + 1) % WINDOW === 0) {
        const t = performance.now();
        windows.push(t - t0);
        t0 = t;
        const c = process.cpuUsage(c0);
        cpu.push((c.user + c.system) / 1000);
        c0 = process.cpuUsage();
      }
    }
    const map = await f.fileMap(await f.resolve('/d'));
    levels = DxRootInfoLayout.get(await f.readBlock(map.extents[0]!.physical), 'indirect_levels', DX_ROOT_INFO_OFFSET);
  } finally {
    await f.close();
  }
  const fsck = spawnSync('e2fsck', ['-fn', img], { encoding: 'utf8' });
  const first = windows[0] ?? NaN, last = windows[windows.length - 1] ?? NaN;
  console.log(JSON.stringify({
    count: COUNT, window: WINDOW, blockSize: BS, indirectLevels: levels,
    windowsMs: windows.map((w) => Math.round(w)), lastOverFirst: Number((last / first).toFixed(2)),
    cpuMs: cpu.map((w) => Math.round(w)), cpuLastOverFirst: Number(((cpu[cpu.length - 1] ?? NaN) / (cpu[0] ?? NaN)).toFixed(2)),
    usPerCreate: Math.round((windows.reduce((a, b) => a + b, 0) / (windows.length * WINDOW)) * 1000),
    e2fsckClean: fsck.status === 0 && !/fix\?|warning/i.test(fsck.stdout + fsck.stderr),
    loadavg: os.loadavg().map((x) => Number(x.toFixed(2))),
  }));
} finally {
  fs.rmSync(img, { force: true });
}
