/**
 * Real images with big indexed directories for test/dir, built once per test
 * file: mkfs.ext4 -d populates linear directories, e2fsck -fyD indexes them
 * (libext2fs rehash.c writes the htree); a kernel-built image comes from a
 * loop mount (skipped without root).
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dirInfo, loopSkipReason, readDirBlocks, readSb, run, type DirInfo, type SbInfo } from './helpers.js';
import { oracleGate } from '../helpers/tools.js';

export interface TestImage {
  label: string;
  path: string;
  sb: SbInfo;
  big: DirInfo;
  bigBlocks: Uint8Array[];
  small: DirInfo;
  smallBlocks: Uint8Array[];
  /** Inode number of '/' (the parent of big and small). */
  rootIno: number;
  /** The names in /big. */
  names: Buffer[];
}

/** e2fsck with an exit status check: `allowed` lists the acceptable statuses. */
export function e2fsck(args: string[], allowed: number[]): { status: number; out: string } {
  try {
    const out = execFileSync('e2fsck', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    if (!allowed.includes(0)) throw new Error(`e2fsck ${args.join(' ')} exited 0, expected ${allowed}`);
    return { status: 0, out };
  } catch (e) {
    const err = e as { status?: number; stdout?: string; stderr?: string };
    if (err.status !== undefined && err.status !== null && allowed.includes(err.status)) return { status: err.status, out: String(err.stdout ?? '') };
    throw new Error(`e2fsck ${args.join(' ')} failed (status ${err.status}):\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  }
}

/** e2fsck -fn must find nothing to say. */
export function assertClean(img: string): void {
  const { out } = e2fsck(['-fn', img], [0]);
  const problems = out.split('\n').filter((l) => l && !/^(Pass \d|e2fsck \d|.*: \d+\/\d+ files)/.test(l));
  if (problems.length) throw new Error(`e2fsck -fn ${img} reported:\n${problems.join('\n')}`);
}

export function writeSource(src: string, bigNames: Buffer[], smallNames: Buffer[]): void {
  const big = join(src, 'big');
  const small = join(src, 'small');
  mkdirSync(big, { recursive: true });
  mkdirSync(small, { recursive: true });
  for (const n of bigNames) writeFileSync(Buffer.concat([Buffer.from(big + '/'), n]), '');
  for (const n of smallNames) writeFileSync(Buffer.concat([Buffer.from(small + '/'), n]), 'x');
  mkdirSync(join(small, 'subdir'));
}

function load(label: string, path: string, names: Buffer[]): TestImage {
  const sb = readSb(path);
  const big = dirInfo(path, '/big', sb);
  const small = dirInfo(path, '/small', sb);
  return { label, path, sb, big, small, bigBlocks: readDirBlocks(path, sb, big), smallBlocks: readDirBlocks(path, sb, small), rootIno: 2, names };
}

/** mkfs.ext4 -d SRC, then e2fsck -fyD to index the directories; e2fsck -fn must be clean afterwards. */
export async function mkfsImage(label: string, path: string, src: string, names: Buffer[], mkfsArgs: string[]): Promise<TestImage> {
  // Async so that several images (and the kernel one) can be built at once.
  await promisify(execFile)('mkfs.ext4', ['-q', '-F', ...mkfsArgs, '-d', src, path, '64M'], { maxBuffer: 16 << 20 });
  e2fsck(['-fyD', path], [0, 1]);
  assertClean(path);
  return load(label, path, names);
}

/**
 * A copy of `from` with metadata_csum turned off by tune2fs and every
 * directory re-indexed by e2fsck -fyD (so index limits have no tail).
 * Quicker than another mkfs -d of a 12,000-entry directory.
 */
export function noCsumCopy(label: string, from: TestImage, path: string): TestImage {
  copyFileSync(from.path, path);
  run('tune2fs', ['-O', '^metadata_csum', path]);
  e2fsck(['-fyD', path], [0, 1]);
  assertClean(path);
  return load(label, path, from.names);
}

/**
 * A kernel-populated image: mkfs, set the default hash to tea and the
 * unsigned-hash flag with debugfs, then create the files through a loop
 * mount. Returns null (with the reason) when loop mounts are unavailable.
 */
export function kernelImage(label: string, path: string, mnt: string, bigNames: Buffer[], smallNames: Buffer[], mkfsArgs: string[]): TestImage | string {
  const why = loopSkipReason();
  if (why) return why;
  run('mkfs.ext4', ['-q', '-F', ...mkfsArgs, path, '64M']);
  run('debugfs', ['-w', '-R', 'ssv def_hash_version tea', path]);
  run('debugfs', ['-w', '-R', 'ssv flags 2', path]);
  mkdirSync(mnt, { recursive: true });
  try {
    run('mount', ['-o', 'loop', path, mnt]);
  } catch (e) {
    return oracleGate(`mount -o loop failed: ${(e as Error).message.split('\n')[0]}`); // under CI: a failure, not a skip
  }
  try {
    writeSource(mnt, bigNames, smallNames);
  } finally {
    try {
      run('umount', [mnt]);
    } finally {
      detachAll(path);
    }
  }
  assertClean(path);
  return load(label, path, bigNames);
}

/** Detach any loop device still backed by `file` (mount -o loop normally autoclears). */
export function detachAll(file: string): void {
  let out = '';
  try {
    out = run('losetup', ['-j', file]);
  } catch {
    return;
  }
  for (const line of out.split('\n')) {
    const dev = line.split(':')[0];
    if (dev) {
      try {
        run('losetup', ['-d', dev]);
      } catch {
        // already gone
      }
    }
  }
}
