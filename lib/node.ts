/**
 * ext4kit for Node: everything in the platform-free core (`ext4kit`), plus image files and block
 * devices opened by path.
 *
 *   import { Filesystem } from 'ext4kit/node';
 *   await using fs = await Filesystem.open('disk.img', { write: true });
 *   await using vol = await Volume.open('disk.img', { write: true });
 *   vol.createReadStream('/etc/passwd').pipe(process.stdout);
 */
import { hostname } from 'node:os';
import { Readable, Writable } from 'node:stream';
import type { BlockDevice } from './io/device.js';
import { FileDevice } from './io/file-device.js';
import { Filesystem as CoreFilesystem, type OpenOptions } from './ext4/filesystem.js';
import { replayImage as replayDevice } from './ops/replay.js';
import type { ReplaySummary } from './ext4/journal-replay.js';
import { defaultPlatform, type Platform } from './ext4/platform.js';
import { Volume as CoreVolume, type VolumeOptions } from './ops/fs-volume.js';
import type { PathArg } from './ops/fs-errors.js';
import type { OpenFlags, VolumeFileHandle } from './ops/fs-handle.js';

export * from './index.js';
export { FileDevice, memoryDeviceFromFile } from './io/file-device.js';

/** The platform under Node: os.hostname() for the MMP block; Web Crypto (global in Node ≥ 20) for randomness. */
export const nodePlatform: Platform = Object.freeze({ hostname: () => hostname(), randomValues: defaultPlatform.randomValues });

/** The core Filesystem, whose `open` also takes the path of an image file or block device. */
export class Filesystem extends CoreFilesystem {
  static override async open(target: string | BlockDevice, options: OpenOptions = {}): Promise<CoreFilesystem> {
    const opts: OpenOptions = { ...options, platform: { ...nodePlatform, ...options.platform } };
    if (typeof target !== 'string') return super.open(target, opts);
    const device = await FileDevice.open(target, { write: !!opts.write });
    return super.open(device, { ...opts, closeDevice: true });
  }
}

/** Replay the journal of an image file, block device or BlockDevice in place (`ext4kit replay`). */
export async function replayImage(target: string | BlockDevice): Promise<ReplaySummary> {
  if (typeof target !== 'string') return replayDevice(target);
  const device = await FileDevice.open(target, { write: true });
  try {
    return await replayDevice(device);
  } finally {
    await device.close();
  }
}

export interface ReadStreamOptions {
  flags?: OpenFlags;
  /** First byte (default 0) and last byte, inclusive, as node:fs counts. */
  start?: number;
  end?: number;
  highWaterMark?: number;
}

export interface WriteStreamOptions {
  /** Default 'w' (create or truncate); 'a' appends, 'r+' overwrites in place. */
  flags?: OpenFlags;
  mode?: number;
  /** Byte where writing starts (default: 0, or the end with 'a'). */
  start?: number;
}

/** The core Volume, whose `open` also takes a path, with node:fs's read and write streams. */
export class Volume extends CoreVolume {
  static override async open(target: string | BlockDevice, options: VolumeOptions = {}): Promise<Volume> {
    const { umask, ...open } = options;
    return new Volume(await Filesystem.open(target, open), { umask, ownsFs: true });
  }

  /** A Node Readable of the file's bytes; open errors arrive as the stream's 'error', as with node:fs. */
  createReadStream(path: PathArg, opts: ReadStreamOptions = {}): Readable {
    return Readable.from(this.readStream(path, opts), { objectMode: false, highWaterMark: opts.highWaterMark });
  }

  /** A Node Writable into the file: each chunk is a write (one transaction) at the stream's position. */
  createWriteStream(path: PathArg, opts: WriteStreamOptions = {}): Writable {
    let handle: VolumeFileHandle | null = null;
    let position = opts.start;
    return new Writable({
      construct: (cb) => {
        this.promises.open(path, opts.flags ?? 'w', opts.mode).then(
          (h) => ((handle = h), cb()),
          (e: Error) => cb(e),
        );
      },
      write: (chunk: Uint8Array, _enc, cb) => {
        handle!.write(chunk, 0, chunk.length, position ?? null).then(
          (r) => {
            if (position !== undefined) position += r.bytesWritten;
            cb();
          },
          (e: Error) => cb(e),
        );
      },
      final: (cb) => {
        handle!.close().then(() => cb(), (e: Error) => cb(e));
      },
      destroy: (err, cb) => {
        if (!handle) return cb(err);
        handle.close().then(() => cb(err), (e: Error) => cb(err ?? e));
      },
    });
  }
}
