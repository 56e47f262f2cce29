/**
 * ext4kit/testing: crash-test tooling, kept out of the core API.
 *
 *   const rec = new RecordingDevice(new MemoryDevice(base.slice()));
 *   const fs = await Filesystem.open(rec, { write: true });
 *   … write …
 *   for (const p of crashPoints(rec.log, { random: mulberry32(1) }))
 *     await check(materialise(base, rec.log, p));   // the image a crash at p leaves
 *
 * `RecordingDevice` logs every write and flush in issue order; `crashPoints` enumerates the
 * crash states worth checking (writes after the last completed flush may each be lost);
 * `materialise` builds the image such a crash leaves (lib/io/recording-device.ts); `Prng` and
 * `mulberry32` are the seeded randomness that keeps the enumeration reproducible.
 */
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
} from './io/recording-device.js';
export { Prng, mulberry32 } from './io/prng.js';
