/**
 * The public surface, at run time and in the types: what `ext4kit`, `ext4kit/node` and
 * `ext4kit/testing` export, what they must not (crash tooling in the core, Node in the core,
 * the Filesystem's internals), and the shapes scripts rely on (movedata resolves to void,
 * errors carry typed locations, `await using` closes).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, expectTypeOf, it } from 'vitest';
import * as core from '../../lib/index.js';
import * as node from '../../lib/node.js';
import * as testing from '../../lib/testing.js';
import type {
  Dirent,
  Ext4Error,
  Extent,
  FileMap,
  FileStat,
  Filesystem,
  Location,
  MoveDataOptions,
  SuperblockSummary,
  ErrorCode,
  OpenOptions,
  StatResult,
  Transaction,
} from '../../lib/index.js';
import { cleanImages } from '../helpers/damage.js';

/** Every value `ext4kit` exports (types are checked below, by tsc). Adding one is a decision: list it here. */
const CORE_VALUES = [
  'ALLOC_CONTIGUOUS',
  'ALLOC_FIXED_LEN',
  'ALLOC_FIXED_START',
  'Ext4Error',
  'FileHandle',
  'Filesystem',
  'MemoryDevice',
  'allocate',
  'allocateRanges',
  'buildReverseMap',
  'checkFilesystem',
  'defrag',
  'describeLocation',
  'drawMap',
  'exchangeData',
  'extents',
  'featureNames',
  'fileFrag',
  'formatFileFrag',
  'formatFragReport',
  'formatFreeFrag',
  'fragReport',
  'freeFrag',
  'freshnessOf',
  'fsmap',
  'getFreeBlocks',
  'info',
  'isExt4Error',
  'list',
  'movedata',
  'moveFiles',
  'openFile',
  'replayImage',
  'startExchange',
  'stat',
  // issue 11: namespace writes, attributes, whole files, trees, and the node:fs-shaped Volume
  'appendFile',
  'BigIntStats',
  'chmod',
  'chmodTx',
  'chown',
  'chownTx',
  'createFile',
  'createFileTx',
  'exportTree',
  'getXattr',
  'getXattrTx',
  'holdInode',
  'importTree',
  'link',
  'linkTx',
  'listXattrs',
  'listXattrsTx',
  'lookupTx',
  'mkdir',
  'mkdirTx',
  'mknod',
  'mknodTx',
  'removeTree',
  'removeXattr',
  'removeXattrTx',
  'rename',
  'renameTx',
  'rmdir',
  'rmdirTx',
  'setXattr',
  'setXattrTx',
  'StatFs',
  'Stats',
  'symlink',
  'symlinkTx',
  'unlink',
  'unlinkTx',
  'utimes',
  'utimesTx',
  'Volume',
  'VolumeDir',
  'VolumeDirent',
  'VolumeError',
  'VolumeFileHandle',
  'VolumePromises',
  'writeFile',
  'writeFileTx',
];

describe('what each entry point exports', () => {
  it('ext4kit: exactly the listed values', () => {
    expect(Object.keys(core).sort()).toEqual([...CORE_VALUES].sort());
  });

  it('crash-test tooling lives in ext4kit/testing, not in the core', () => {
    for (const name of ['RecordingDevice', 'materialise', 'crashPoints', 'losableWrites']) {
      expect(core, name).not.toHaveProperty(name);
      expect(node, name).not.toHaveProperty(name);
      expect(testing, name).toHaveProperty(name);
    }
    expect(Object.keys(testing).sort()).toEqual(['Prng', 'RecordingDevice', 'crashPoints', 'losableWrites', 'materialise', 'mulberry32']);
  });

  it('package.json maps each entry point to its built module and declarations', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { exports: Record<string, { types: string; import: string }> };
    for (const [entry, src] of [['.', 'index'], ['./node', 'node'], ['./testing', 'testing']] as const) {
      expect(pkg.exports[entry], entry).toMatchObject({ types: `./dist/${src}.d.ts`, import: `./dist/${src}.js` });
    }
  });

  it('ext4kit/node: the core plus what needs Node (files, block devices)', () => {
    for (const name of CORE_VALUES) expect(node, name).toHaveProperty(name);
    expect(node).toHaveProperty('FileDevice');
    expect(core).not.toHaveProperty('FileDevice');
    // opening by path is Node's; the core takes a BlockDevice
    expect(node.Filesystem.prototype).toBeInstanceOf(core.Filesystem);
    // the same for the Volume, which adds Node streams
    expect(node.Volume.prototype).toBeInstanceOf(core.Volume);
    expect(node.Volume.prototype).toHaveProperty('createReadStream');
    expect(core.Volume.prototype).not.toHaveProperty('createReadStream');
  });
});

describe('types scripts rely on', () => {
  it('movedata and exchangeData resolve to void; allocate to the bytes allocated', () => {
    expectTypeOf(core.movedata).returns.resolves.toBeVoid();
    expectTypeOf(core.exchangeData).returns.resolves.toBeVoid();
    expectTypeOf(core.allocate).returns.resolves.toBeNumber();
    expectTypeOf<MoveDataOptions>().toHaveProperty('stepBytes');
  });

  it('errors: code, structure, a typed location', () => {
    expectTypeOf<Ext4Error['code']>().toEqualTypeOf<ErrorCode>();
    expectTypeOf<Ext4Error['structure']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<Ext4Error['location']>().toEqualTypeOf<Location | undefined>();
    expectTypeOf<Extract<Location, { kind: 'inode' }>>().toEqualTypeOf<{ kind: 'inode'; ino: number }>();
  });

  it("the Filesystem's internals are not on its type", () => {
    for (const internal of ['overlay', 'journal', 'commitHooks', 'cache', 'mmp', 'session'] as const) {
      expectTypeOf<Filesystem>().not.toHaveProperty(internal);
      // and not reachable at run time by name either
      expect(Object.getOwnPropertyNames(core.Filesystem.prototype)).not.toContain(internal);
    }
    expectTypeOf<Filesystem>().toHaveProperty('superblock').toEqualTypeOf<SuperblockSummary>();
    expectTypeOf<Filesystem['transact']>().parameter(0).parameter(0).toEqualTypeOf<Transaction>();
  });

  it('readdir is an async iterable of names with a type; stat and maps are typed', () => {
    expectTypeOf<ReturnType<Filesystem['readdir']>>().toMatchTypeOf<AsyncIterable<Dirent>>();
    expectTypeOf<Dirent['name']>().toBeString();
    expectTypeOf<Dirent['nameBytes']>().toEqualTypeOf<Uint8Array>();
    expectTypeOf<FileMap['extents']>().toEqualTypeOf<Extent[]>();
    expectTypeOf<StatResult>().toHaveProperty('size').toBeNumber();
    expectTypeOf<FileStat>().toHaveProperty('size').toBeNumber();
    expectTypeOf<OpenOptions>().toHaveProperty('platform');
  });
});

describe('the Volume: node:fs/promises shapes', () => {
  it('stat overloads, errors with errno/syscall/path, handles', () => {
    type P = core.VolumePromises;
    const plain = (p: P) => p.stat('/x');
    const big = (p: P) => p.lstat('/x', { bigint: true });
    expectTypeOf<Awaited<ReturnType<typeof plain>>>().toEqualTypeOf<core.Stats>();
    expectTypeOf<Awaited<ReturnType<typeof big>>>().toEqualTypeOf<core.BigIntStats>();
    expectTypeOf<core.BigIntStats['mtimeNs']>().toEqualTypeOf<bigint>();
    expectTypeOf<core.VolumeError['errno']>().toBeNumber();
    expectTypeOf<core.VolumeError['syscall']>().toBeString();
    expectTypeOf<core.VolumeError>().toMatchTypeOf<Ext4Error>();
    expectTypeOf<Awaited<ReturnType<P['open']>>>().toEqualTypeOf<core.VolumeFileHandle>();
    expectTypeOf<core.VolumeFileHandle>().toHaveProperty(Symbol.asyncDispose);
    expectTypeOf<core.Volume>().toHaveProperty(Symbol.asyncDispose);
  });
});

describe('using it', () => {
  it('`await using` closes the filesystem; errors are Ext4Errors with a typed location', async () => {
    const [img] = await cleanImages(['ext4-4k']);
    let closed = 0;
    class Device extends core.MemoryDevice {
      override async close(): Promise<void> {
        closed++;
        await super.close();
      }
    }
    {
      await using fs = await core.Filesystem.open(new Device(new Uint8Array(readFileSync(img!.path))), { closeDevice: true });
      expect(fs.superblock.blockSizeBytes).toBe(fs.blockSize);
      const names: string[] = [];
      for await (const e of fs.readdir('/')) names.push(e.name);
      expect(names).toContain('lost+found');
      expect(closed).toBe(0);
    }
    expect(closed).toBe(1);
    const err = await core.Filesystem.open(new core.MemoryDevice(new Uint8Array(64 * 1024))).catch((e: unknown) => e);
    expect(core.isExt4Error(err)).toBe(true);
    expect((err as Ext4Error).location).toEqual({ kind: 'byte', offset: 1024 });
    expect(core.describeLocation({ kind: 'group', group: 2, block: 99 })).toBe('group 2 block 99');
  });
});
