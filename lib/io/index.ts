/** The device layer: storage access, caching and crash simulation. Knows nothing about ext4. */
export type { BlockDevice } from './device.js';
export { FileDevice, fromSystemError, memoryDeviceFromFile, type FileDeviceOptions } from './file-device.js';
export { MemoryDevice, type MemoryDeviceOptions } from './memory-device.js';
export { BlockCache, type BlockCacheOptions, type BlockCacheStats } from './cache.js';
export {
  RecordingDevice,
  materialise,
  crashPoints,
  losableWrites,
  type LogRecord,
  type CrashPoint,
  type CrashPointOptions,
  type RandomSource,
  type RecordingDeviceOptions,
} from './recording-device.js';
export { Prng, mulberry32 } from './prng.js';
export {
  imageInUse,
  findLoopAttachments,
  mountedDevices,
  parseMountInfo,
  blockDeviceSizeFromSysfs,
  devMajor,
  devMinor,
  devNumberString,
  DEFAULT_ROOTS,
  type SystemRoots,
  type MountEntry,
  type LoopAttachment,
  type InUseReport,
  type FileIdentity,
} from './in-use.js';
