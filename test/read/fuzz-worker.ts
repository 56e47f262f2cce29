/**
 * The tree walk used by the hostile-input tests, and the worker that runs corrupted-image cases
 * for them (started from hostile.test.ts through fuzz-worker-boot.mjs; a case that loops forever — even
 * synchronously — is caught by the parent's watchdog, which terminates this worker).
 *
 * Protocol: workerData = { fuzz: true, image, verify, cases, original }; for each case the worker posts
 * { kind: 'start', id } and then { kind: 'done', id, outcome }.
 */
import * as crypto from 'node:crypto';
import * as nodefs from 'node:fs';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { list } from '../../lib/ops/inspect.js';
import { describeLocation, Ext4Error } from '../../lib/errors.js';

export interface FuzzCase {
  id: number;
  /** What was hit, e.g. "inode table block 37". */
  label: string;
  /** Absolute byte offsets in the image and the value XORed into each. */
  flips: [offset: number, xor: number][];
}

export type FuzzOutcome =
  | { kind: 'same' }
  | { kind: 'different'; detail: string }
  | { kind: 'ext4error'; code: string; structure?: string; location?: string; message: string }
  | { kind: 'other-error'; name: string; message: string; stack?: string };

/**
 * Everything a reader can observe, as one canonical string: list -R (type, mode, owner, size,
 * nlink, mtime s+ns, symlink target, device), every path resolved again (htree/linear lookups),
 * xattrs, and the sha256 of every regular file's bytes.
 */
/** Files larger than this are not read (no fixture file comes close). */
const HASH_LIMIT = 64 * 1024 * 1024;

export async function canonicalWalk(fs: Filesystem): Promise<string> {
  const rows = await list(fs, '/', { recursive: true });
  const out: unknown[] = [];
  for (const r of rows) {
    const inode = await fs.readInode(r.ino);
    const resolved = (await fs.resolve(r.path, { followLast: false })).ino;
    const xattrs = (await fs.xattrs(inode)).map((x) => `${x.name}=${Buffer.from(x.value ?? new Uint8Array(0)).toString('hex')}`).sort();
    let sha256: string | undefined;
    if (r.type === 'file' && r.size > HASH_LIMIT) {
      // A flipped i_size_high makes a 2-byte file hundreds of GiB of holes: reading it all is
      // correct (the kernel would too) but takes minutes. It differs from the original anyway.
      sha256 = `not hashed: ${r.size} bytes`;
    } else if (r.type === 'file') {
      const h = crypto.createHash('sha256');
      for await (const c of fs.stream(inode)) h.update(c);
      sha256 = h.digest('hex');
    }
    out.push({ ...r, resolved, mtimeNs: inode.mtime.nsec, xattrs, sha256 });
  }
  return JSON.stringify(out);
}

export async function runCase(image: Uint8Array, c: FuzzCase, verify: boolean, original: string): Promise<FuzzOutcome> {
  const bytes = image.slice();
  for (const [off, x] of c.flips) bytes[off]! ^= x;
  try {
    const fs = await Filesystem.open(new MemoryDevice(bytes, { readOnly: true, name: 'fuzz' }), { verifyChecksums: verify });
    try {
      const got = await canonicalWalk(fs);
      if (got === original) return { kind: 'same' };
      const a = JSON.parse(got) as { path: string }[];
      const b = JSON.parse(original) as { path: string }[];
      let detail = `${a.length} entries vs ${b.length}`;
      for (let i = 0; i < Math.max(a.length, b.length); i++) {
        if (JSON.stringify(a[i]) !== JSON.stringify(b[i])) {
          detail = `first difference: ${JSON.stringify(a[i])?.slice(0, 400)} vs ${JSON.stringify(b[i])?.slice(0, 400)}`;
          break;
        }
      }
      return { kind: 'different', detail };
    } finally {
      await fs.close();
    }
  } catch (e) {
    if (e instanceof Ext4Error) return { kind: 'ext4error', code: e.code, structure: e.structure, location: describeLocation(e.location), message: e.message };
    const err = e as Error;
    return { kind: 'other-error', name: err?.name ?? typeof e, message: String(err?.message ?? e), stack: err?.stack };
  }
}

if (!isMainThread && parentPort && (workerData as { fuzz?: boolean } | null)?.fuzz) {
  const { image, verify, cases, original } = workerData as { image: string; verify: boolean; cases: FuzzCase[]; original: string };
  const port = parentPort;
  const bytes = new Uint8Array(nodefs.readFileSync(image));
  void (async () => {
    for (const c of cases) {
      port.postMessage({ kind: 'start', id: c.id });
      const outcome = await runCase(bytes, c, verify, original);
      port.postMessage({ kind: 'done', id: c.id, outcome });
    }
    port.postMessage({ kind: 'finished' });
  })();
}
