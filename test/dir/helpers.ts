/** Shared helpers for test/dir: real images made by mkfs/e2fsck/the kernel, read back byte-exact. */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fsSeed, inodeSeed } from '../../lib/ext4/checksum.js';
import { isExt4Error } from '../../lib/errors.js';
import { oracleGate } from '../helpers/tools.js';
import { xorshift32 } from '../../lib/io/prng.js';

export function tempDir(prefix = 'ext4kit-dir-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 << 20 });
}

/** Why root/loop-mount tests cannot run here, or undefined if they can. */
export function loopSkipReason(): string | undefined {
  // Under CI a reason throws (oracleGate): a missing loop device or root fails the run.
  return oracleGate(probeLoopSkipReason());
}

function probeLoopSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  if (!existsSync('/dev/loop-control')) return 'no /dev/loop-control';
  for (const tool of ['mount', 'umount', 'losetup']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} not installed`;
    }
  }
  return undefined;
}

/** Deterministic xorshift32 generator (raw 32-bit values). */
export function prng(seed: number): () => number {
  const r = xorshift32(seed);
  return () => r() * 2 ** 32;
}

export interface SbInfo {
  blockSize: number;
  inodesCount: number;
  hashSeed: Uint32Array;
  defHashVersion: number;
  sFlags: number;
  signed: boolean;
  metadataCsum: boolean;
  largeDir: boolean;
  hasFiletype: boolean;
  fsSeed: number;
}

export function readBytes(img: string, pos: number, len: number): Uint8Array {
  const fd = openSync(img, 'r');
  try {
    const b = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const n = readSync(fd, b, done, len - done, pos + done);
      if (n <= 0) throw new Error(`short read at ${pos + done} in ${img}`);
      done += n;
    }
    return b;
  } finally {
    closeSync(fd);
  }
}

/** The superblock fields directory code needs, decoded by hand (offsets from ext4-format.md §2). */
export function readSb(img: string): SbInfo {
  const sb = readBytes(img, 1024, 1024);
  const d = new DataView(sb.buffer);
  const incompat = d.getUint32(0x60, true);
  const roCompat = d.getUint32(0x64, true);
  const sFlags = d.getUint32(0x160, true);
  const metadataCsum = (roCompat & 0x400) !== 0;
  const uuid = sb.slice(0x68, 0x78);
  return {
    blockSize: 1024 << d.getUint32(0x18, true),
    inodesCount: d.getUint32(0, true),
    hashSeed: Uint32Array.from([0, 1, 2, 3], (i) => d.getUint32(0xec + 4 * i, true)),
    defHashVersion: sb[0xfc]!,
    sFlags,
    signed: (sFlags & 2) === 0,
    metadataCsum,
    largeDir: (incompat & 0x4000) !== 0,
    hasFiletype: (incompat & 0x2) !== 0,
    fsSeed: fsSeed(uuid, incompat & 0x2000 ? d.getUint32(0x270, true) : undefined),
  };
}

export interface DirInfo {
  ino: number;
  generation: number;
  /** Physical block of each logical block. */
  blocks: number[];
  /** inodeSeed for METADATA_CSUM, else null. */
  csumSeed: number | null;
  size: number;
}

/** Inode number, generation, size and block list of a directory, from debugfs. */
export function dirInfo(img: string, path: string, sb: SbInfo): DirInfo {
  const stat = run('debugfs', ['-R', `stat ${path}`, img]);
  const ino = Number(/Inode:\s+(\d+)/.exec(stat)?.[1]);
  const generation = Number(/Generation:\s+(\d+)/.exec(stat)?.[1]);
  const size = Number(/Size:\s+(\d+)/.exec(stat)?.[1]);
  if (!Number.isInteger(ino) || !Number.isInteger(generation)) throw new Error(`cannot parse debugfs stat of ${path}:\n${stat}`);
  const blocks = run('debugfs', ['-R', `blocks ${path}`, img]).trim().split(/\s+/).filter(Boolean).map(Number);
  return { ino, generation, blocks, size, csumSeed: sb.metadataCsum ? inodeSeed(sb.fsSeed, ino, generation) : null };
}

export function readDirBlocks(img: string, sb: SbInfo, info: DirInfo): Uint8Array[] {
  return info.blocks.map((p) => readBytes(img, p * sb.blockSize, sb.blockSize));
}

/**
 * Varied, unique file names: short ASCII, long (up to 255 bytes), UTF-8 with
 * non-ASCII letters, and raw bytes >= 0x80 that are not valid UTF-8. Never
 * contains '/', NUL, or is '.'/'..'. `shellSafe` also avoids whitespace,
 * '"' and a leading '-' (for debugfs command lines).
 */
export function makeNames(count: number, seed: number, shellSafe = false): Buffer[] {
  const r = prng(seed);
  const seen = new Set<string>();
  const out: Buffer[] = [];
  const ascii = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+=,~';
  const utf = ['é', 'ß', 'Ω', '日本', 'ж', '€', '😀', 'ñ'];
  const badByte = (b: number) => b === 0 || b === 0x2f || (shellSafe && (b <= 0x20 || b === 0x22 || b === 0x7f));
  for (let i = 0; out.length < count; i++) {
    const kind = i % 6;
    let b: Buffer;
    const tag = `${i}`;
    if (kind === 0) b = Buffer.from(`file_${tag}`);
    else if (kind === 1) {
      const len = 20 + (r() % 236);
      let s = `L${tag}_`;
      while (s.length < len) s += ascii[r() % ascii.length];
      b = Buffer.from(s.slice(0, len));
    } else if (kind === 2) {
      let s = `u${tag}`;
      const n = 1 + (r() % 6);
      for (let k = 0; k < n; k++) s += utf[r() % utf.length]! + ascii[r() % ascii.length];
      b = Buffer.from(s);
    } else if (kind === 3) {
      const bytes = [...Buffer.from(`r${tag}`)];
      const n = 1 + (r() % 40);
      for (let k = 0; k < n; k++) {
        let c = 0x80 + (r() % 0x80);
        if (r() % 3 === 0) c = 0x21 + (r() % 0xde);
        if (!badByte(c)) bytes.push(c);
      }
      b = Buffer.from(bytes.slice(0, 255));
    } else if (kind === 4) {
      // Lengths around the hash chunk sizes (16 and 32) and their multiples.
      const lens = [15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 127, 128, 129, 254, 255];
      const len = lens[r() % lens.length]!;
      let s = `c${tag}x`;
      while (s.length < len) s += ascii[r() % ascii.length];
      b = Buffer.from(s.slice(0, len));
    } else {
      b = Buffer.from(`${tag.padStart(6, '0')}${'é'.repeat(r() % 4)}`);
    }
    if (b.length === 0 || b.length > 255) continue;
    if (b.some(badByte)) continue;
    if (shellSafe && b[0] === 0x2d) continue;
    const key = b.toString('latin1');
    if (key === '.' || key === '..' || seen.has(key)) continue;
    seen.add(key);
    out.push(b);
  }
  return out;
}

/** Run fn and describe how it ended: 'ok', an Ext4Error code, or 'OTHER: …' for anything else. */
export async function outcome(fn: () => unknown): Promise<string> {
  try {
    await fn();
    return 'ok';
  } catch (e) {
    return isExt4Error(e) ? e.code : `OTHER: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
  }
}
