/**
 * A host directory's read started before its reader (lib/cli/host-read-start.ts: `ext4kit import
 * IMAGE DIR` starts the reader thread and the xattr helper from main.ts, before the import's
 * script loads): readHostTree takes the started thread and python3 over — no second thread or
 * process — and gives the same entries, bytes and xattrs as a read it starts itself, messages
 * the thread sent before anyone listened included; a read started for other options is stopped,
 * not leaked. (A process that never takes its early read still exits: fast-path-import.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startReadEarly, takeStartedRead } from '../../lib/cli/host-read-start.js';
import { readHostTree } from '../../lib/cli/host-tree.js';
import { python } from '../../lib/cli/xattr-reader.js';
import type { TreeEntry } from '../../lib/ops/tree-entry.js';
import { tmpDir } from '../helpers/tmp.js';
import { prngBytes } from '../helpers/tree.js';
import { oracleGate } from '../helpers/tools.js';

const threads = (): number => fs.readdirSync('/proc/self/task').length;

/** The thread count once the threads of an earlier read are gone (a worker's OS thread ends a little after its 'exit'). */
async function settledThreads(): Promise<number> {
  let n = threads();
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 40));
    const m = threads();
    if (m === n) return n;
    n = m;
  }
  return n;
}

/** Child processes of this process (the xattr helper's python3 while it runs). */
function children(): string[] {
  const out: string[] = [];
  for (const t of fs.readdirSync('/proc/self/task')) out.push(...fs.readFileSync(`/proc/self/task/${t}/children`, 'utf8').split(' ').filter(Boolean));
  return out;
}

const PY = python();
const skipXattrs = oracleGate(PY === null ? 'python3 not found' : null);

let src = '';
beforeAll(() => {
  src = tmpDir('host-read-start');
  // more than one listing batch (1,024 entries), tiny files and one read in pieces (> 1 MiB)
  for (let d = 0; d < 3; d++) {
    fs.mkdirSync(path.join(src, `d${d}`));
    for (let i = 0; i < 500; i++) fs.writeFileSync(path.join(src, `d${d}`, `f${i}`), prngBytes(`${d}/${i}`, (i * 131) % 9000));
  }
  fs.writeFileSync(path.join(src, 'big'), prngBytes('big', 3_000_000));
  // more than the read-ahead (SLAB_BYTES × WINDOW_SLABS: 32 MiB): the thread is still there, waiting for a slab, when the read takes it
  const block = prngBytes('block', 1 << 20);
  const fd = fs.openSync(path.join(src, 'huge'), 'w');
  for (let i = 0; i < 56; i++) fs.writeSync(fd, block.map((b) => b ^ i));
  fs.closeSync(fd);
  if (PY) {
    // (tmpfs takes user.* xattrs; node has no setxattr)
    const r = spawnSync(PY, ['-c', `import os; os.setxattr(${JSON.stringify(path.join(src, 'd1', 'f7'))}, 'user.k', b'v\\x00w')`]);
    if (r.status !== 0) throw new Error(String(r.stderr));
  }
});
beforeAll(async () => {
  // A first read moves the atimes relatime moves (files and directories read the first time since
  // their mtime or ctime): every read below then sees the same ones.
  await readAll(await readHostTree(src, { reuse: true }));
});
afterAll(() => {
  if (src) fs.rmSync(src, { recursive: true, force: true });
});

/** Every entry as text: path, type, mode, times, size, target, xattrs and bytes. */
async function readAll(t: Awaited<ReturnType<typeof readHostTree>>): Promise<string[]> {
  const out: string[] = [];
  for await (const e of t.entries) {
    let bytes = '';
    if (e.type === 'file') {
      const parts: Buffer[] = [];
      if (e.data instanceof Uint8Array) parts.push(Buffer.from(e.data));
      else for await (const c of e.data as AsyncIterable<Uint8Array>) parts.push(Buffer.from(c));
      const b = Buffer.concat(parts);
      bytes = `${b.length}:${createHash('sha256').update(b).digest('hex')}`;
    }
    const xs = (e.xattrs ?? []).map((x) => `${x.name}=${Buffer.from(x.value).toString('hex')}`).join(',');
    out.push(JSON.stringify([e.path, e.type, e.mode, e.mtime, e.atime, e.size, (e as TreeEntry).target && Buffer.from(e.target as Uint8Array).toString(), xs, bytes]));
  }
  return out;
}

describe('a host read started early', () => {
  it.skipIf(skipXattrs)('is taken over by readHostTree: no second thread or python3, the same entries, bytes and xattrs', async () => {
    const expected = await readAll(await readHostTree(src, { reuse: true }));
    expect(expected.some((l) => l.includes('user.k=760077'))).toBe(true);

    const t0 = await settledThreads();
    const k0 = children();
    startReadEarly(src, { reuse: true, xattrs: true });
    const t1 = threads();
    const k1 = children();
    expect(t1).toBe(t0 + 1);
    expect(k1.length).toBe(k0.length + 1);
    // the thread lists and reads ahead before anyone listens (until the window is full): those messages are kept
    await new Promise((r) => setTimeout(r, 300));
    const t = await readHostTree(src, { reuse: true });
    expect(threads()).toBe(t1);
    expect(children()).toEqual(k1);
    expect(await readAll(t)).toEqual(expected);
    expect(await settledThreads()).toBe(t0);
    expect(children()).toEqual(k0);
    expect(takeStartedRead(src, { reuse: true, listPaths: true })).toBeNull();
  });

  it('without xattrs: taken without a helper', async () => {
    const expected = await readAll(await readHostTree(src, { xattrs: false, reuse: true }));
    const t0 = await settledThreads();
    const k0 = children();
    startReadEarly(src, { reuse: true, xattrs: false });
    expect(children()).toEqual(k0);
    const t = await readHostTree(src, { xattrs: false, reuse: true });
    expect(threads()).toBe(t0 + 1);
    expect(await readAll(t)).toEqual(expected);
    expect(await settledThreads()).toBe(t0);
  });

  it('for another root or other options: stopped, and the read starts its own', async () => {
    const expected = await readAll(await readHostTree(src, { xattrs: false }));
    const t0 = await settledThreads();
    for (const early of [{ root: src, reuse: true }, { root: path.join(src, 'd0'), reuse: false }]) {
      startReadEarly(early.root, { reuse: early.reuse, xattrs: false });
      const t = await readHostTree(src, { xattrs: false });
      expect(await readAll(t)).toEqual(expected);
      // the early thread ends on its own once stopped
      expect(await settledThreads()).toBe(t0);
    }
  });
});
