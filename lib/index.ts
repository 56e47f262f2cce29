/**
 * ext4kit public API: the platform-free core (runs wherever a `BlockDevice` can be given;
 * `ext4kit/node` adds image files and block devices opened by path, `ext4kit/testing` the
 * crash-test tooling).
 *
 *   await using fs = await Filesystem.open(device, { write: true });
 *   await allocate(fs, '/big', { offset: 0, len: 1 << 30, flags: ALLOC_CONTIGUOUS });
 *   await movedata(fs, '/data', '/space', { from: 0, len: 1 << 20 });
 *   const free = await getFreeBlocks(fs, { count: 10 });
 *
 * Units: the calls take and return bytes (offsets, lengths, goals); the views of the on-disk
 * layout (`Extent`, `FileMap`, `fsmap`, reports) count filesystem blocks, and say so.
 */

// Errors: a code, the structure and a typed location.
export { Ext4Error, isExt4Error, describeLocation, type ErrorCode, type ErrorDetail, type Location, type LocationKind } from './errors.js';

// Devices and the filesystem
export type { BlockDevice } from './io/device.js';
export { MemoryDevice, type MemoryDeviceOptions } from './io/memory-device.js';
export { Filesystem, type OpenOptions, type FileMap, type DirEntry, type Dirent, type SuperblockSummary, type WriteStats } from './ext4/filesystem.js';
export type { Transaction } from './ext4/transaction.js';
export type { Superblock } from './ext4/superblock.js';
export type { GroupDesc } from './ext4/group-desc.js';
export type { XattrEntry } from './ext4/xattr.js';
export type { Platform } from './ext4/platform.js';
export type { MmpOptions } from './ext4/mmp.js';
export type { FsErrorInfo } from './ext4/error-state.js';
export type { NowOption } from './ext4/clock.js';
export type { Inode, FileType, Timestamp } from './ext4/inode.js';
export type { Extent } from './ext4/extents.js';
export type { ReplaySummary } from './ext4/journal-replay.js';
export { featureNames } from './ext4/features.js';

// The proposal's three calls (and the no-copy variant)
export { getFreeBlocks, type FreeExtent, type GetFreeBlocksOptions } from './ops/free.js';
export { allocate, allocateRanges, ALLOC_FIXED_START, ALLOC_FIXED_LEN, ALLOC_CONTIGUOUS, type AllocateOptions } from './ops/allocate.js';
export { movedata, exchangeData, startExchange, freshnessOf, type MoveDataOptions, type FreshnessToken } from './ops/movedata.js';
export type { FileRef } from './ops/target.js';

// Built on them
export { openFile, FileHandle, type FileStat, type PwriteOptions } from './ops/file.js';
export { defrag, type DefragOptions, type DefragProgress, type DefragSummary, type PlannedMove } from './ops/defrag.js';
export { moveFiles, type FileMove, type BlockRange, type MoveResult, type MoveFilesOptions } from './ops/move-batch.js';
export {
  fragReport,
  formatFragReport,
  freeFrag,
  formatFreeFrag,
  fileFrag,
  formatFileFrag,
  type FragReport,
  type FragReportOptions,
  type FormatFragOptions,
  type FragFile,
  type FragSkip,
  type FragSkipReason,
  type FragTotals,
  type FragTarget,
  type FreeFragReport,
  type FreeFragOptions,
  type FreeFragBucket,
  type FreeFragChunks,
  type FileFrag,
  type FileFragRow,
  type FormatFileFragOptions,
} from './ops/report.js';
export { drawMap, type DrawMapOptions, type BlockMapOptions } from './ops/draw.js';
export {
  buildReverseMap,
  fsmap,
  type FsmapOptions,
  type FsmapRecord,
  type FsmapOwner,
  type InodeOwner,
  type SpecialOwner,
  type InodeBlockKind,
  type ReverseMap,
  type BuildReverseMapOptions,
  type OwnedRun,
  type ReverseMapStats,
} from './ops/fsmap.js';
export { info, list, stat, extents, type FsInfo, type ListEntry, type ListOptions, type StatResult, type XattrView, type DeviceNumber, type MappingKind } from './ops/inspect.js';
export { replayImage } from './ops/replay.js';
export { checkFilesystem, type CheckReport, type CheckProblem } from './ops/check.js';

// Namespace writes (one transaction each; the …Tx forms batch many in one fs.transact), attributes, whole files
export {
  createFile, mkdir, symlink, mknod, unlink, rmdir, link, rename, removeTree, holdInode,
  createFileTx, mkdirTx, symlinkTx, mknodTx, unlinkTx, rmdirTx, linkTx, renameTx, lookupTx,
  type CreateOptions, type CreateFileOptions, type MknodOptions, type SpecialType, type RenameOptions, type RemoveTreeOptions, type RemoveTreeProgress,
} from './ops/namespace.js';
export {
  chmod, chown, utimes, getXattr, listXattrs, setXattr, removeXattr,
  chmodTx, chownTx, utimesTx, getXattrTx, listXattrsTx, setXattrTx, removeXattrTx,
  type AttrOptions, type TimeArg, type SetXattrOptions,
} from './ops/attrs.js';
export { writeFile, appendFile, writeFileTx, type WriteFileOptions, type WriteFileData } from './ops/write-file.js';
export { importTree, type ImportOptions } from './ops/import-tree.js';
export { exportTree, type ExportedEntry, type SparseFile, type DataRun } from './ops/export-tree.js';
export type { TreeEntry, TreeEntryType, TreeXattr, TreeSummary } from './ops/tree-entry.js';

// node:fs/promises over an image
export {
  Volume, VolumePromises, VolumeFileHandle, VolumeError, Stats, BigIntStats, Dirent as VolumeDirent, Dir as VolumeDir, StatFs,
  type VolumeOptions, type WriteData, type PathArg, type OpenFlags, type Encoding,
} from './ops/fs-volume.js';
