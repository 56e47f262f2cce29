/**
 * ext4kit public API.
 *
 *   const fs = await Filesystem.open('disk.img', { write: true });
 *   await allocate(fs, '/big', { offset: 0, len: 1 << 30, flags: ALLOC_CONTIGUOUS });
 *   await movedata(fs, '/data', '/space', { from: 0, len: 1 << 20 });
 *   const free = await getFreeBlocks(fs, { count: 10 });
 *   await fs.close();
 */
export { Ext4Error, isExt4Error, type ErrorCode } from './errors.js';
export type { BlockDevice } from './io/device.js';
export { MemoryDevice } from './io/memory-device.js';
export { RecordingDevice, materialise, crashPoints } from './io/recording-device.js';
export { Filesystem, type OpenOptions, type FileMap, type DirEntry } from './ext4/filesystem.js';
export type { FsErrorInfo } from './ext4/error-state.js';
export type { NowOption } from './ext4/clock.js';
export type { Inode, FileType, Timestamp } from './ext4/inode.js';
export type { Extent } from './ext4/extents.js';
export { featureNames } from './ext4/features.js';

// The proposal's three calls (and the no-copy variant)
export { getFreeBlocks, type FreeExtent, type GetFreeBlocksOptions } from './ops/free.js';
export { allocate, ALLOC_FIXED_START, ALLOC_FIXED_LEN, ALLOC_CONTIGUOUS, type AllocateOptions } from './ops/allocate.js';
export { movedata, exchangeData, startExchange, freshnessOf, type MoveDataOptions, type FreshnessToken } from './ops/movedata.js';
export type { FileRef } from './ops/target.js';

// Built on them
export { openFile, FileHandle, type FileStat, type PwriteOptions } from './ops/file.js';
export { defrag, type DefragOptions, type DefragSummary, type PlannedMove } from './ops/defrag.js';
export { fragReport, formatFragReport, freeFrag, formatFreeFrag, fileFrag, formatFileFrag } from './ops/report.js';
export { drawMap } from './ops/draw.js';
export { buildReverseMap, fsmap } from './ops/fsmap.js';
export { info, list, stat, extents } from './ops/inspect.js';
export { replayImage } from './ops/replay.js';
export { checkFilesystem, type CheckReport, type CheckProblem } from './ops/check.js';
export { allocateRanges } from './ops/allocate.js';
