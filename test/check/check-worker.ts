/**
 * Worker for test/check/parity.test.ts: runs checkFilesystem on each image path it is given and
 * says what happened. A case that never ends — even a synchronous loop — is caught by the
 * parent's watchdog, which terminates this worker and starts another for the remaining cases.
 *
 * Protocol: workerData = { entry, check: true, cases: {id, path}[] }; per case the worker posts
 * { kind: 'start', id } then { kind: 'done', id, outcome }.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Filesystem } from '../../lib/node.js';
import { checkFilesystem } from '../../lib/ops/check.js';
import { Ext4Error } from '../../lib/errors.js';

export type CheckOutcome =
  | { kind: 'ok' }
  | { kind: 'problems'; count: number; first: string[] }
  | { kind: 'ext4error'; code: string; message: string }
  | { kind: 'untyped'; name: string; message: string; stack?: string };

export async function checkOne(path: string): Promise<CheckOutcome> {
  try {
    const fs = await Filesystem.open(path);
    try {
      const r = await checkFilesystem(fs);
      if (r.ok) return { kind: 'ok' };
      return { kind: 'problems', count: r.problems.length, first: r.problems.slice(0, 3).map((p) => `pass ${p.pass} ${p.code}: ${p.message} (${p.structure} at ${p.location})`) };
    } finally {
      await fs.close();
    }
  } catch (e) {
    if (e instanceof Ext4Error) return { kind: 'ext4error', code: e.code, message: e.message };
    const err = e as Error;
    return { kind: 'untyped', name: err?.name ?? typeof e, message: String(err?.message ?? e), stack: err?.stack };
  }
}

if (!isMainThread && parentPort && (workerData as { check?: boolean } | null)?.check) {
  const { cases } = workerData as { cases: { id: number; path: string }[] };
  const port = parentPort;
  void (async () => {
    for (const c of cases) {
      port.postMessage({ kind: 'start', id: c.id });
      port.postMessage({ kind: 'done', id: c.id, outcome: await checkOne(c.path) });
    }
    port.postMessage({ kind: 'finished' });
  })();
}
