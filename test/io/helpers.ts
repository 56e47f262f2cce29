/** Shared helpers for test/io. */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { isExt4Error, type ErrorCode } from '../../lib/errors.js';
import type { BlockDevice } from '../../lib/io/device.js';
import { oracleGate } from '../helpers/tools.js';

export function tempDir(prefix = 'ext4kit-io-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** The Ext4Error code a promise rejects with ('resolved' / 'not an Ext4Error: …' otherwise). */
export async function rejectionCode(p: Promise<unknown> | (() => Promise<unknown>)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return isExt4Error(e) ? e.code : `not an Ext4Error: ${String(e)}`;
  }
  return 'resolved';
}

export async function rejection(p: Promise<unknown>): Promise<Error & { code?: ErrorCode }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: ErrorCode };
  }
  throw new Error('expected a rejection');
}

/** Deterministic test pattern: byte i = hash of i. */
export function pattern(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Why root/loop tests cannot run here, or undefined if they can. */
export function loopSkipReason(): string | undefined {
  // Under CI a reason throws (oracleGate): a missing loop device or root fails the run.
  return oracleGate(probeLoopSkipReason());
}

function probeLoopSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  if (!existsSync('/dev/loop-control')) return 'no /dev/loop-control';
  for (const tool of ['losetup', 'mkfs.ext4', 'mount', 'umount']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} not installed`;
    }
  }
  return undefined;
}

/** Wraps a device and counts reads (and their sizes). */
export class CountingDevice implements BlockDevice {
  reads: Array<{ position: number; length: number }> = [];
  constructor(readonly inner: BlockDevice) {}
  get size() {
    return this.inner.size;
  }
  get readOnly() {
    return this.inner.readOnly;
  }
  get name() {
    return this.inner.name;
  }
  read(position: number, length: number) {
    this.reads.push({ position, length });
    return this.inner.read(position, length);
  }
  write(position: number, data: Uint8Array) {
    return this.inner.write(position, data);
  }
  flush() {
    return this.inner.flush();
  }
  close() {
    return this.inner.close();
  }
}

/** Byte equality, fast for large arrays (expect().toEqual is slow on megabytes). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}
