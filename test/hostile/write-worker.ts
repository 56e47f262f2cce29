/**
 * Worker for test/hostile/writes.test.ts: runs one write call (or the read-only reports) on a
 * damaged in-memory image and says what happened. A case that never ends — even a synchronous
 * loop — is caught by the parent's watchdog, which terminates this worker.
 *
 * Protocol: workerData = { entry, base: {name → image path}, cases }; per case the worker posts
 * { kind: 'start', id } then { kind: 'done', id, outcome, afterPath? } where `afterPath` (a file in
 * workerData.scratch holding the image) comes only when a successful call changed the image: the
 * parent runs e2fsck on it, deletes it and posts { kind: 'checked' } (no image bytes cross the
 * thread boundary; at most MAX_UNCHECKED such files wait at a time).
 */
import { Buffer } from 'node:buffer';
import * as nodefs from 'node:fs';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { isExt4Error } from '../../lib/errors.js';
import { allocate } from '../../lib/ops/allocate.js';
import { movedata } from '../../lib/ops/movedata.js';
import { openFile } from '../../lib/ops/file.js';
import { defrag } from '../../lib/ops/defrag.js';
import { replayImage } from '../../lib/ops/replay.js';
import { fragReport, freeFrag } from '../../lib/ops/report.js';
import { checkFilesystem } from '../../lib/ops/check.js';
import { getFreeBlocks } from '../../lib/ops/free.js';
import { fsmap } from '../../lib/ops/fsmap.js';
import { list } from '../../lib/ops/inspect.js';

export const WRITE_OPS = ['allocate', 'movedata', 'pwrite', 'truncate', 'defrag', 'replay'] as const;
export type WriteOp = (typeof WRITE_OPS)[number] | 'reports';

export interface WriteCase {
  id: number;
  base: string;
  op: WriteOp;
  label: string;
  /** Absolute byte offsets and the value XORed into each. */
  flips: [offset: number, xor: number][];
}

export type WriteOutcome =
  | { kind: 'ok-unchanged' }
  | { kind: 'ok-changed' }
  | { kind: 'ext4error'; code: string; message: string; changed: boolean }
  | { kind: 'other-error'; name: string; message: string; stack?: string };

/** The fixed time every case writes with (reproducible images, and no clock noise in diffs). */
export const NOW = new Date('2026-01-02T03:04:05Z');

/**
 * Scratch images, reused from case to case: a fresh 4 MiB array per case costs page faults and
 * GC, and hashing each state costs more than the call under test. `changed` compares bytes.
 */
const scratchImages = new Map<string, Uint8Array>();
function scratchImage(key: string, src: Uint8Array): Uint8Array {
  let b = scratchImages.get(key);
  if (b?.length !== src.length) scratchImages.set(key, (b = new Uint8Array(src.length)));
  b.set(src);
  return b;
}
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);

async function withFs<T>(bytes: Uint8Array, write: boolean, fn: (fs: Filesystem) => Promise<T>): Promise<T> {
  const fs = await Filesystem.open(new MemoryDevice(bytes, { name: 'damaged' }), { write, now: NOW });
  try {
    return await fn(fs);
  } finally {
    await fs.close();
  }
}

/** The call under test, on the files every base image has (see writes.test.ts). */
async function runOp(op: WriteOp, bytes: Uint8Array, bs: number): Promise<void> {
  switch (op) {
    case 'allocate':
      return withFs(bytes, true, async (fs) => {
        const st = await fs.resolve('/frag');
        await allocate(fs, '/frag', { offset: Math.ceil(st.size / bs) * bs + 4 * bs, len: 8 * bs });
      });
    case 'movedata':
      return withFs(bytes, true, async (fs) => {
        const st = await fs.resolve('/frag');
        await movedata(fs, '/frag', '/space', { from: 0, len: Math.floor(st.size / bs) * bs });
      });
    case 'pwrite':
      return withFs(bytes, true, async (fs) => {
        const h = await openFile(fs, '/small');
        await h.pwrite(new Uint8Array(3 * bs).fill(0x5a), 700);
      });
    case 'truncate':
      return withFs(bytes, true, async (fs) => {
        const h = await openFile(fs, '/frag');
        const st = await h.stat();
        await h.truncate(Math.floor(st.size / 2) + 123);
      });
    case 'defrag':
      return withFs(bytes, true, async (fs) => {
        await defrag(fs);
      });
    case 'replay':
      await replayImage(new MemoryDevice(bytes, { name: 'damaged' }));
      return;
    case 'reports':
      // Read-only commands: they must end with a typed error or a result, never hang or crash.
      return withFs(bytes, false, async (fs) => {
        const attempt = async (f: () => Promise<unknown>) => {
          try {
            await f();
          } catch (e) {
            if (!isExt4Error(e)) throw e;
          }
        };
        await attempt(() => fragReport(fs));
        await attempt(() => freeFrag(fs));
        await attempt(() => checkFilesystem(fs));
        await attempt(() => getFreeBlocks(fs));
        await attempt(() => fsmap(fs));
        await attempt(() => list(fs, '/', { recursive: true }));
      });
  }
}

export async function runWriteCase(image: Uint8Array, c: WriteCase, bs: number): Promise<{ outcome: WriteOutcome; after?: Uint8Array }> {
  const bytes = scratchImage('bytes', image);
  for (const [off, x] of c.flips) bytes[off]! ^= x;
  // The damaged image before the call is `image` with the flips applied in place (undone below).
  for (const [off, x] of c.flips) image[off]! ^= x;
  try {
    let before = image;
    // An image whose journal needs recovery: a write open that commits nothing still completes the
    // recovery at close (mount + unmount). A failed call must leave it as a plain open + close does.
    if (c.op !== 'replay' && c.op !== 'reports' && new DataView(bytes.buffer).getUint32(1024 + 0x60, true) & 0x4) {
      const probe = scratchImage('probe', bytes);
      try {
        await withFs(probe, true, async () => undefined);
        before = probe;
      } catch {
        // open refused: nothing may change
      }
    }
    try {
      await runOp(c.op, bytes, bs);
    } catch (e) {
      const changed = !same(bytes, before);
      if (isExt4Error(e)) return { outcome: { kind: 'ext4error', code: e.code, message: e.message, changed } };
      const err = e as Error;
      return { outcome: { kind: 'other-error', name: err?.name ?? typeof e, message: String(err?.message ?? e), stack: err?.stack } };
    }
    if (same(bytes, before)) return { outcome: { kind: 'ok-unchanged' } };
    return { outcome: { kind: 'ok-changed' }, after: bytes };
  } finally {
    for (const [off, x] of c.flips) image[off]! ^= x;
  }
}

/** Images the parent has not yet checked and deleted; the worker waits rather than pile them up. */
const MAX_UNCHECKED = 4;

if (!isMainThread && workerData?.writeFuzz) {
  const { base, cases, blockSize, scratch } = workerData as { base: Record<string, string>; cases: WriteCase[]; blockSize: Record<string, number>; scratch: string };
  const images = new Map<string, Uint8Array>();
  for (const [name, p] of Object.entries(base)) images.set(name, new Uint8Array(nodefs.readFileSync(p)));
  let unchecked = 0;
  let wake: (() => void) | null = null;
  const onAck = (m: { kind: string }) => {
    if (m.kind !== 'checked') return;
    unchecked--;
    wake?.();
    wake = null;
  };
  parentPort!.on('message', onAck);
  for (const c of cases) {
    while (unchecked >= MAX_UNCHECKED) await new Promise<void>((r) => (wake = r));
    parentPort!.postMessage({ kind: 'start', id: c.id });
    const { outcome, after } = await runWriteCase(images.get(c.base)!, c, blockSize[c.base]!);
    let afterPath: string | undefined;
    if (after) {
      afterPath = `${scratch}/case-${c.id}.img`;
      nodefs.writeFileSync(afterPath, after);
      unchecked++;
    }
    parentPort!.postMessage({ kind: 'done', id: c.id, outcome, afterPath });
  }
  parentPort!.off('message', onAck);
}
