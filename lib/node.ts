/**
 * ext4kit for Node: everything in the platform-free core (`ext4kit`), plus image files and block
 * devices opened by path.
 *
 *   import { Filesystem } from 'ext4kit/node';
 *   await using fs = await Filesystem.open('disk.img', { write: true });
 */
import { hostname } from 'node:os';
import type { BlockDevice } from './io/device.js';
import { FileDevice } from './io/file-device.js';
import { Filesystem as CoreFilesystem, type OpenOptions } from './ext4/filesystem.js';
import { replayImage as replayDevice } from './ops/replay.js';
import type { ReplaySummary } from './ext4/journal-replay.js';
import { defaultPlatform, type Platform } from './ext4/platform.js';

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
