/**
 * Device safety at the Filesystem level: a mounted loop block device and the
 * image file behind a mounted loop device are refused for writing (EBUSY)
 * but readable; a writer process SIGKILLed mid-session leaves an image that
 * the next write open (journal replay + orphan processing) and e2fsck
 * accept — and, with MMP, one that is refused until forced, as e2fsck does.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import { Filesystem } from '../../lib/node.js';
import { isExt4Error } from '../../lib/errors.js';
import { MMP_SEQ_CLEAN, MMP_SEQ_FSCK } from '../../lib/ext4/mmp.js';
import { listOrphans } from '../../lib/ext4/orphan.js';
import {
  NO_WAIT, removeMountDir, attachLoop, dumpMmp, e2fsckClean, e2fsckFix, features, freeCounts, loopSkipReason, mkfs, removeDir, run, tempDir, withLoopMount,
} from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const loopWhy = loopSkipReason();
if (loopWhy) console.log(`test/safety/device.test.ts: skipping kernel loop-device tests: ${loopWhy}`);

let dir = '';
beforeAll(() => {
  dir = tempDir('device');
});
afterAll(() => removeDir(dir));

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return { code: isExt4Error(e) ? e.code : `not an Ext4Error: ${String(e)}`, message: (e as Error).message };
  }
  return { code: 'resolved', message: '' };
}

function expectClean(img: string, what: string): void {
  const r = e2fsckClean(img);
  expect(r.problems, `${what}:\n${r.out}`).toEqual([]);
  expect(r.ok, what).toBe(true);
}

function srcTree(name: string): string {
  const src = join(dir, name);
  mkdirSync(join(src, 'sub'), { recursive: true });
  writeFileSync(join(src, 'grow'), randomBytes(100_000));
  writeFileSync(join(src, 'sub', 'data'), randomBytes(300_000));
  return src;
}

describe('write opens of devices in use by the kernel', () => {
  it.skipIf(!!loopWhy)('a mounted loop block device and the image behind it: write open → EBUSY, read-only open works', async () => {
    const img = join(dir, 'mounted.img');
    mkfs(img, 32, ['-d', srcTree('src-mounted')]);
    await withLoopMount(img, async (mnt, loop) => {
      writeFileSync(join(mnt, 'written-by-kernel'), 'hello\n');
      run('sync', []);
      const dev = await failure(Filesystem.open(loop, { write: true }));
      expect(dev.code).toBe('EBUSY');
      expect(dev.message).toMatch(/mounted or in use/);
      const file = await failure(Filesystem.open(img, { write: true }));
      expect(file.code).toBe('EBUSY');
      expect(file.message).toContain(loop);
      expect(file.message).toContain(mnt);
      for (const target of [loop, img]) {
        const fs = await Filesystem.open(target); // replays the live journal into memory
        try {
          expect(fs.readOnly).toBe(true);
          const f = await fs.resolve('/written-by-kernel');
          expect(new TextDecoder().decode(await fs.read(f, 0, 100))).toBe('hello\n');
          expect((await fs.resolve('/sub/data')).size).toBe(300_000);
        } finally {
          await fs.close();
        }
      }
    });
    expectClean(img, 'after the kernel unmounted it');
  });

  it.skipIf(!!loopWhy)('an attached but unmounted loop device is usable (documented policy) and its image is then refused by the kernel O_EXCL claim only for the device', async () => {
    const img = join(dir, 'attached.img');
    mkfs(img, 16);
    const loop = attachLoop(img);
    try {
      const fs = await Filesystem.open(loop.dev, { write: true });
      try {
        // our O_EXCL claim keeps the kernel from mounting the device meanwhile
        const mnt = tempDir('mnt');
        try {
          expect(run('mount', [loop.dev, mnt]).status).not.toBe(0);
        } finally {
          removeMountDir(mnt);
        }
      } finally {
        await fs.close();
      }
    } finally {
      loop.detach();
    }
    expectClean(img, 'after a write session on the loop device');
  });
});

interface Child {
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  ready: Promise<void>;
  kill(): void;
}

function startWriter(img: string, mode: string): Child {
  const p = spawn(process.execPath, ['--import', 'tsx', join(here, 'child-writer.ts'), img, mode], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  let onReady: () => void = () => undefined;
  let onFail: (e: Error) => void = () => undefined;
  const ready = new Promise<void>((res, rej) => {
    onReady = res;
    onFail = rej;
  });
  p.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('ready\n')) onReady();
  });
  p.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((res) => {
    p.on('exit', (code, signal) => {
      onFail(new Error(`writer exited early (code ${code}, signal ${signal}):\n${err}`));
      res({ code, signal, stderr: err });
    });
  });
  return { exited, ready, kill: () => p.kill('SIGKILL') };
}

describe('a writer SIGKILLed mid-session', () => {
  const cases: { name: string; opts: string[]; mode: string; delayMs: number }[] = [
    { name: 'old orphan list', opts: ['-O', '^orphan_file'], mode: 'release', delayMs: 120 },
    { name: 'orphan file, temp files kept', opts: ['-O', 'orphan_file'], mode: 'keep', delayMs: 250 },
    { name: 'no journal', opts: ['-O', '^has_journal,^orphan_file'], mode: 'release', delayMs: 60 },
  ];
  for (const c of cases) {
    it(`${c.name}: the next write open (replay + orphans) and e2fsck -fy accept the image and agree`, async () => {
      const img = join(dir, `kill-${c.name.replace(/\W+/g, '_')}.img`);
      mkfs(img, 32, ['-b', '4096', ...c.opts, '-d', srcTree(`src-kill-${c.mode}-${c.delayMs}`)]);
      const w = startWriter(img, c.mode);
      await w.ready;
      await new Promise((r) => setTimeout(r, c.delayMs));
      w.kill();
      const ex = await w.exited;
      expect(ex.signal).toBe('SIGKILL');
      const journaled = !c.opts.join(',').includes('^has_journal');
      if (journaled) expect(features(img)).toContain('needs_recovery');
      const fsck = join(dir, 'kill-fsck.img');
      copyFileSync(img, fsck);
      if (c.mode === 'keep') {
        // the crash left temp files on the orphan list (seen through the replayed journal)
        const ro = await Filesystem.open(img);
        try {
          const l = await listOrphans(ro);
          expect(l.file.length + l.list.length).toBeGreaterThan(0);
        } finally {
          await ro.close();
        }
      }
      // Without a journal a kill between a bitmap block and its descriptor (which holds the
      // bitmap's checksum) leaves the two disagreeing: the next write open then refuses to
      // allocate from an unverifiable bitmap (EFSBADCRC naming it), as the kernel refuses that
      // group, and e2fsck -fy below repairs it. Any other error fails.
      let refused = false;
      try {
        const fs = await Filesystem.open(img, { write: true });
        try {
          expect(await listOrphans(fs)).toEqual({ list: [], file: [] });
          expect((await fs.resolve('/sub/data')).size).toBe(300_000);
        } finally {
          await fs.close();
        }
      } catch (e) {
        if (journaled || !isExt4Error(e) || e.code !== 'EFSBADCRC' || e.location?.kind !== 'group') throw e;
        refused = true;
      }
      if (refused) expect(readFileSync(img).equals(readFileSync(fsck)), 'a refused open leaves the image unchanged').toBe(true);
      if (journaled) {
        expectClean(img, `${c.name}: after our reopen + close`);
        e2fsckFix(fsck);
        expectClean(fsck, `${c.name}: after e2fsck -fy`);
        expect(freeCounts(img)).toEqual(freeCounts(fsck));
      } else {
        // Without a journal a crash may leak blocks between ordered writes (never double-owned
        // ones); e2fsck -fy reclaims them. The orphan list itself was processed by our open.
        const r = e2fsckFix(img);
        expect(r.status).toBeLessThanOrEqual(1);
        expectClean(img, `${c.name}: after e2fsck -fy`);
      }
      if (!loopWhy) {
        // and the kernel is happy to mount what we left
        await withLoopMount(img, () => undefined);
        expectClean(img, `${c.name}: after a kernel mount`);
      }
    });
  }

  it('with MMP the killed holder leaves seq = FSCK: refused (EBUSY) until forced, then replayed and clean', async () => {
    const img = join(dir, 'kill-mmp.img');
    mkfs(img, 32, ['-b', '4096', '-O', 'mmp,orphan_file', '-d', srcTree('src-kill-mmp')]);
    const w = startWriter(img, 'keep');
    await w.ready;
    await new Promise((r) => setTimeout(r, 100));
    w.kill();
    await w.exited;
    expect(dumpMmp(img).sequence).toBe(MMP_SEQ_FSCK);
    const r = await failure(Filesystem.open(img, { write: true, mmp: NO_WAIT }));
    expect(r.code).toBe('EBUSY');
    expect(run('e2fsck', ['-fn', img]).out).toMatch(/clear_mmp/);
    const fs = await Filesystem.open(img, { write: true, mmp: { ...NO_WAIT, force: true } });
    await fs.close();
    expect(dumpMmp(img).sequence).toBe(MMP_SEQ_CLEAN);
    expectClean(img, 'after a forced reopen');
  });
});
