/**
 * ext4kit for Node: everything in the platform-free core (`ext4kit`), plus image files and block
 * devices opened by path.
 *
 *   import { Filesystem } from 'ext4kit/node';
 *   await using fs = await Filesystem.open('disk.img', { write: true });
 */
import type { BlockDevice } from './io/device.js';
import { FileDevice } from './io/file-device.js';
import { Filesystem as CoreFilesystem, type OpenOptions } from './ext4/filesystem.js';
import { replayImage as replayDevice } from './ops/replay.js';
import type { ReplaySummary } from './ext4/journal-replay.js';

export * from './index.js';
export { FileDevice } from './io/file-device.js';

/** The core Filesystem, whose `open` also takes the path of an image file or block device. */
export class Filesystem extends CoreFilesystem {
  static override async open(target: string | BlockDevice, opts: OpenOptions = {}): Promise<CoreFilesystem> {
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
