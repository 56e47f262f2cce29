/**
 * Issue 8 item 6: a directory cycle (a directory hard-linked into its own
 * subtree — e2fsck pass 3 fixes it) must end every tree walk with a typed
 * error, never loop: `frag` (fragReport, over the whole filesystem and over a
 * path) and the walk under it, the same as `ls -R` (list) already did. The
 * image is made by debugfs `link /d1 /d1/d2/loop`; e2fsck confirms it is damaged.
 *
 * A walk that loops forever is stopped by closing the filesystem (reads then
 * fail), so a regression fails here by timeout, not by hanging the suite.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { mkfs, debugfsFull, e2fsckProblems, run } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { prngBytes } from '../helpers/tree.js';
import { cliBundle } from '../cli/helpers.js';
import { Filesystem } from '../../lib/node.js';
import { fragReport, walkTree } from '../../lib/ops/report.js';
import { list } from '../../lib/ops/inspect.js';
import { Ext4Error } from '../../lib/errors.js';

const LIMIT_MS = 10_000;

let img = '';
beforeAll(() => {
  const src = tmpDir('cycle-src');
  fs.mkdirSync(path.join(src, 'd1', 'd2'), { recursive: true });
  fs.writeFileSync(path.join(src, 'd1', 'd2', 'f'), prngBytes('cycle-f', 20_000));
  fs.writeFileSync(path.join(src, 'd1', 'g'), prngBytes('cycle-g', 9_000));
  fs.writeFileSync(path.join(src, 'top'), prngBytes('cycle-top', 30_000));
  img = tmpPath('cycle.img');
  mkfs('ext4', img, 8 << 20, ['-b', '4096'], src);
  const r = debugfsFull(img, ['link /d1 /d1/d2/loop'], { write: true });
  if (r.stderr.trim()) throw new Error(`debugfs link: ${r.stderr}`);
  // The oracle agrees the image is damaged (a directory with two parents).
  const fsck = run('e2fsck', ['-fn', img], { okStatus: true, env: { LANG: 'C', LC_ALL: 'C' } });
  expect(fsck.status).not.toBe(0);
  expect(e2fsckProblems(fsck.stdout + fsck.stderr).length).toBeGreaterThan(0);
});

/** Run `fn` on the image; if it has not settled within LIMIT_MS, close the filesystem (so a runaway walk stops) and fail. */
async function bounded<T>(fn: (f: Filesystem) => Promise<T>): Promise<{ value?: T; error?: unknown; ms: number }> {
  const f = await Filesystem.open(img);
  const t0 = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), LIMIT_MS)));
  const work = fn(f).then((value) => ({ value }), (error: unknown) => ({ error }));
  const r = await Promise.race([work, timeout]);
  clearTimeout(timer);
  await f.close().catch(() => undefined);
  if (r === 'timeout') {
    await work; // the closed filesystem makes the runaway walk fail soon
    throw new Error(`did not finish within ${LIMIT_MS} ms (walks the cycle forever)`);
  }
  return { ...r, ms: Date.now() - t0 };
}

function expectCycleError(error: unknown): void {
  expect(error).toBeInstanceOf(Ext4Error);
  const e = error as Ext4Error;
  expect(e.code).toBe('EFSCORRUPTED');
  expect(e.message).toMatch(/reachable twice/);
}

describe('directory cycle: every walk ends with EFSCORRUPTED', () => {
  it('list -R (the reference behaviour)', async () => {
    const r = await bounded((f) => list(f, '/', { recursive: true }));
    expectCycleError(r.error);
  });

  it('walkTree', async () => {
    const r = await bounded(async (f) => {
      let n = 0;
      for await (const e of walkTree(f, '/', await f.readInode(2))) if (++n > 1000) throw new Error(`still walking at ${e.path}`);
      return n;
    });
    expectCycleError(r.error);
  });

  it('fragReport over the whole filesystem', async () => {
    const r = await bounded((f) => fragReport(f));
    expectCycleError(r.error);
  });

  it('fragReport over the directory that holds the cycle', async () => {
    const r = await bounded((f) => fragReport(f, ['/d1']));
    expectCycleError(r.error);
  });

  it('fragReport of a path outside the cycle still works', async () => {
    const r = await bounded((f) => fragReport(f, ['/top']));
    expect(r.error).toBeUndefined();
    expect(r.value!.targets[0]!.files.map((x) => x.path)).toEqual(['/top']);
  });

  it('the CLI: `ext4kit frag IMG` exits 1 promptly with EFSCORRUPTED on stderr', async () => {
    const bin = await cliBundle();
    const child = spawn(process.execPath, [bin, 'frag', img], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.stdout.resume();
    const killer = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS);
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
    clearTimeout(killer);
    expect(signal, `killed after ${LIMIT_MS} ms: the walk did not end`).toBeNull();
    expect(code).toBe(1);
    expect(stderr).toMatch(/^ext4kit: EFSCORRUPTED: .*reachable twice/m);
  });
});
