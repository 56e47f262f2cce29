/**
 * The 2007 linux-ext4 proposal (shared/seed), sentence by sentence, plus the
 * contract of semantics.md §1–§3. Every sentence about the three calls is
 * quoted in a describe/it name. After every mutating call the image is
 * closed and checked against real oracles: e2fsck -fn clean, debugfs dump
 * and ex (content and physical layout), and the kernel reading the files
 * through a read-only loop mount. Failed calls must leave the image
 * byte-identical (sha256).
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import { createHash } from 'node:crypto';
import { Filesystem } from '../../lib/node.js';
import { FileDevice } from '../../lib/io/file-device.js';
import type { Extent } from '../../lib/ext4/extents.js';
import { allocate, ALLOC_CONTIGUOUS, ALLOC_FIXED_LEN, ALLOC_FIXED_START } from '../../lib/ops/allocate.js';
import { exchangeData, movedata, startExchange } from '../../lib/ops/movedata.js';
import { getFreeBlocks, type FreeExtent } from '../../lib/ops/free.js';
import { openFile } from '../../lib/ops/file.js';
import { debugfsFull, dumpe2fsGroups } from '../helpers/tools.js';
import {
  CAN_MOUNT,
  cleanupImages,
  clipRuns,
  codeOf,
  copyImage,
  CountingDevice,
  debugfsTestBlocks,
  dumpe2fsFreeRuns,
  extentsOf,
  HAVE_E2FSPROGS,
  LOOP_SKIP,
  makeImage,
  mergeExtents,
  pattern,
  rawBlocks,
  readAll,
  sameBytes,
  sha256File,
  verify,
} from './helpers.js';

if (!HAVE_E2FSPROGS) console.log('skipping test/ops/proposal.test.ts: e2fsprogs not installed');
if (LOOP_SKIP) console.log(`test/ops/proposal.test.ts: kernel read-back checks skipped: ${LOOP_SKIP}`);

const B = 4096;
const N = 16; // blocks in the test files

/** Block-level map: index = logical block, value = physical/unwritten or null (hole). */
type BlockMap = ({ physical: number; unwritten: boolean } | null)[];
function toBlocks(list: readonly Extent[], n: number): BlockMap {
  const out: BlockMap = Array.from({ length: n }, () => null);
  for (const e of list) for (let i = 0; i < e.length; i++) if (e.logical + i < n) out[e.logical + i] = { physical: e.physical + i, unwritten: e.unwritten };
  return out;
}
function fromBlocks(m: BlockMap): Extent[] {
  const out: Extent[] = [];
  m.forEach((b, lb) => {
    if (!b) return;
    const l = out[out.length - 1];
    if (l && l.unwritten === b.unwritten && l.logical + l.length === lb && l.physical + l.length === b.physical) l.length++;
    else out.push({ logical: lb, physical: b.physical, length: 1, unwritten: b.unwritten });
  });
  return out;
}

/**
 * The reference model of movedata (semantics.md §1), block by block,
 * independent of lib/ops/movedata.ts: expected extents and contents.
 */
function modelMove(
  data: { extents: Extent[]; content: Uint8Array },
  space: { extents: Extent[]; content: Uint8Array },
  from: number,
  len: number,
): { data: { extents: Extent[]; content: Uint8Array }; space: { extents: Extent[]; content: Uint8Array } } {
  const nb = Math.max(Math.ceil(data.content.length / B), Math.ceil(space.content.length / B), (from + len) / B) + 64;
  const dm = toBlocks(data.extents, nb), sm = toBlocks(space.extents, nb);
  const dc = data.content.slice(), sc = space.content.slice();
  for (let lb = from / B; lb < (from + len) / B; lb++) {
    const s = sm[lb], d = dm[lb];
    if (!s) {
      dm[lb] = null; // a hole in space makes a hole in data: data's bytes there are discarded
      dc.fill(0, lb * B, Math.min(dc.length, (lb + 1) * B));
    } else dm[lb] = { physical: s.physical, unwritten: !d || d.unwritten };
    sm[lb] = null;
    sc.fill(0, lb * B, Math.min(sc.length, (lb + 1) * B));
  }
  return { data: { extents: fromBlocks(dm), content: dc }, space: { extents: fromBlocks(sm), content: sc } };
}

async function state(img: string, paths: string[]): Promise<Record<string, { extents: Extent[]; content: Uint8Array; size: number }>> {
  const f = await Filesystem.open(img);
  try {
    const out: Record<string, { extents: Extent[]; content: Uint8Array; size: number }> = {};
    for (const p of paths) {
      const content = await readAll(f, p);
      out[p] = { extents: await extentsOf(f, p), content, size: content.length };
    }
    return out;
  } finally {
    await f.close();
  }
}

async function withWrite<T>(img: string, fn: (f: Filesystem) => Promise<T>): Promise<T> {
  const f = await Filesystem.open(img, { write: true });
  try {
    return await fn(f);
  } finally {
    await f.close();
  }
}

/**
 * Failing calls: each rejects with its expected code and issues no write at
 * all, and afterwards the image is byte-identical (sha256; the superblock's
 * write time and checksum aside) to one that went through a session doing
 * nothing. One session for the whole list.
 */
async function expectRefused(img: string, code: string, fn: (f: Filesystem) => Promise<unknown>): Promise<void> {
  return expectAllRefused(img, [[code, fn]]);
}
async function expectAllRefused(img: string, calls: [string, (f: Filesystem) => Promise<unknown>][]): Promise<void> {
  await withWrite(img, async () => undefined);
  const idle = normalisedSha(img);
  const dev = new CountingDevice(await FileDevice.open(img, { write: true }));
  const f = await Filesystem.open(dev, { write: true });
  try {
    for (const [k, [code, fn]] of calls.entries()) {
      const w0 = dev.writes.length;
      expect(await codeOf(fn(f)), `call ${k}`).toBe(code);
      expect(dev.writes.length - w0, `writes issued by refused call ${k} (${code})`).toBe(0);
    }
  } finally {
    await f.close();
    await dev.close();
  }
  expect(normalisedSha(img), 'image after the refused calls').toBe(idle);
}

/** sha256 of an image with the primary superblock's s_wtime, s_wtime_hi and s_checksum zeroed. */
function normalisedSha(img: string): string {
  const bytes = nodefs.readFileSync(img);
  for (const [off, len] of [[0x30, 4], [0x274, 1], [0x3fc, 4]] as const) bytes.fill(0, 1024 + off, 1024 + off + len);
  return createHash('sha256').update(bytes).digest('hex');
}

let base = '';
const FILES = {
  data: pattern(N * B, 1),
  space: pattern(N * B, 2),
  holeySpace: (() => {
    const b = pattern(N * B, 3);
    b.fill(0, 4 * B, 8 * B); // blocks 4..7: a hole
    return b;
  })(),
  holeyData: (() => {
    const b = pattern(N * B, 4);
    b.fill(0, 8 * B, 12 * B); // blocks 8..11: a hole
    return b;
  })(),
  small: pattern(1000, 5),
  donor: new Uint8Array(0),
};

beforeAll(() => {
  if (!HAVE_E2FSPROGS) return;
  base = makeImage('proposal', {
    data: FILES.data,
    space: FILES.space,
    'holey-space': FILES.holeySpace,
    'holey-data': FILES.holeyData,
    small: FILES.small,
    donor: FILES.donor,
    dir: new Uint8Array(0), // replaced by a directory below
  });
  debugfsFull(base, ['rm /dir', 'mkdir /d'], { write: true });
});

afterEach(() => cleanupImages([base]));

function img(name: string): string {
  return copyImage(base, name);
}

/** movedata through the model, then every oracle. */
async function checkedMove(image: string, dataPath: string, spacePath: string, from: number, len: number, what: string, opts: { stepExtents?: number } = {}) {
  const before = await state(image, [dataPath, spacePath]);
  const want = modelMove(before[dataPath]!, before[spacePath]!, from, len);
  const r = await withWrite(image, (f) => movedata(f, dataPath, spacePath, { from, len, ...opts }));
  expect(r).toBeUndefined();
  await verify(image, { [dataPath]: want.data, [spacePath]: want.space }, what);
  return { before, want };
}

describe.skipIf(!HAVE_E2FSPROGS)('the proposal, sentence by sentence', () => {
  describe('"int sys_movedata(int datafd, int spacefd, loff_t from, size_t len)"', () => {
    it('movedata(fs, data, space, {from, len}) takes files by path, inode number or {ino}', async () => {
      const i = img('sig');
      const ino = await (async () => {
        const f = await Filesystem.open(i);
        try {
          return [(await f.resolve('/data')).ino, (await f.resolve('/space')).ino];
        } finally {
          await f.close();
        }
      })();
      await checkedMove(i, '/data', '/space', 0, 2 * B, 'movedata by path');
      const before = await state(i, ['/data', '/space']);
      const want = modelMove(before['/data']!, before['/space']!, 2 * B, 2 * B);
      expect(await withWrite(i, (f) => movedata(f, ino[0]!, { ino: ino[1]! }, { from: 2 * B, len: 2 * B }))).toBeUndefined();
      await verify(i, { '/data': want.data, '/space': want.space }, 'movedata by inode number');
    });
  });

  describe('"The call takes blocks used to carry data starting at offset @from of length @len in @spacefd and places them instead of corresponding blocks in @datafd."', () => {
    it('data maps [from, from+len) to exactly the physical blocks space had there; the rest of data is untouched', async () => {
      const i = img('takes');
      const { before } = await checkedMove(i, '/data', '/space', 4 * B, 8 * B, 'movedata [4,12)');
      const after = await state(i, ['/data']);
      const dm = toBlocks(after['/data']!.extents, N), sOld = toBlocks(before['/space']!.extents, N), dOld = toBlocks(before['/data']!.extents, N);
      for (let lb = 0; lb < N; lb++) {
        if (lb >= 4 && lb < 12) expect(dm[lb]!.physical, `block ${lb}`).toBe(sOld[lb]!.physical);
        else expect(dm[lb], `block ${lb}`).toEqual(dOld[lb]);
      }
    });
  });

  describe('"Data is copied from @datafd to newly spliced data blocks."', () => {
    it('the spliced blocks hold data\'s bytes on disk, written (not unwritten) extents', async () => {
      const i = img('copied');
      const { want } = await checkedMove(i, '/data', '/space', 0, N * B, 'movedata whole file');
      const ext = want.data.extents;
      expect(ext.every((e) => !e.unwritten)).toBe(true);
      for (const e of ext) expect(sameBytes(rawBlocks(i, e.physical, e.length, B), FILES.data.subarray(e.logical * B, (e.logical + e.length) * B))).toBe(true);
    });
  });

  describe('"If @spacefd contains a hole in the specified interval, a hole is created also in @datafd in the corresponding place."', () => {
    it('space\'s hole at blocks 4..7 becomes a hole in data (data\'s bytes there are discarded and read as zeros)', async () => {
      const i = img('hole');
      await checkedMove(i, '/data', '/holey-space', 0, N * B, 'movedata from a hole-y space');
      const after = await state(i, ['/data']);
      const dm = toBlocks(after['/data']!.extents, N);
      expect(dm.slice(4, 8)).toEqual([null, null, null, null]);
      expect(after['/data']!.content.subarray(4 * B, 8 * B).every((x) => x === 0)).toBe(true);
      expect(sameBytes(after['/data']!.content.subarray(0, 4 * B), FILES.data.subarray(0, 4 * B))).toBe(true);
    });
  });

  describe('"A data block from @spacefd and also replace a hole in @datafd - zeros are copied to such data block."', () => {
    it('space\'s blocks over data\'s hole (blocks 8..11) are mapped unwritten: they read as zeros without zeros being written', async () => {
      const i = img('fillhole');
      const { before } = await checkedMove(i, '/holey-data', '/space', 0, N * B, 'movedata into a hole-y data file');
      const after = await state(i, ['/holey-data']);
      const dm = toBlocks(after['/holey-data']!.extents, N), sOld = toBlocks(before['/space']!.extents, N);
      for (let lb = 8; lb < 12; lb++) expect(dm[lb]).toEqual({ physical: sOld[lb]!.physical, unwritten: true });
      expect(after['/holey-data']!.content.subarray(8 * B, 12 * B).every((x) => x === 0)).toBe(true);
      // the old bytes of space are still in those blocks: unwritten is what hides them
      expect(rawBlocks(i, sOld[8]!.physical, 1, B).some((x) => x !== 0)).toBe(true);
    });
    it('the same for data\'s unwritten (allocated, never written) blocks', async () => {
      const i = img('fillunwritten');
      expect(await withWrite(i, (f) => allocate(f, '/small', { offset: 4 * B, len: 4 * B }))).toBe(4 * B);
      const before = await state(i, ['/small', '/space']);
      expect(before['/small']!.size).toBe(8 * B);
      await checkedMove(i, '/small', '/space', 0, 8 * B, 'movedata over unwritten blocks');
      const after = await state(i, ['/small']);
      expect(toBlocks(after['/small']!.extents, 8).slice(4).every((b) => b?.unwritten)).toBe(true);
      expect(toBlocks(after['/small']!.extents, 8)[0]!.unwritten).toBe(false);
    });
  });

  describe('"@from and @len should be multiples of filesystem block size (otherwise EINVAL is returned)."', () => {
    it('from=1, len=B+1, from=len=B/2, len=1, from=513: EINVAL, no write, image unchanged', async () => {
      const cases = [[1, B], [B, B + 1], [B / 2, B / 2], [0, 1], [513, 0]] as const;
      await expectAllRefused(img('einval'), cases.map(([from, len]) => ['EINVAL', (f: Filesystem) => movedata(f, '/data', '/space', { from, len })]));
    });
    it('on a 1 KiB-block filesystem 1024-byte multiples are accepted and 512 is not', async () => {
      const i = makeImage('mv1k', { a: pattern(8 * 1024, 9), b: pattern(8 * 1024, 10) }, { blockSize: 1024, sizeMiB: 16 });
      await expectRefused(i, 'EINVAL', (f) => movedata(f, '/a', '/b', { from: 512, len: 1024 }));
      const before = await state(i, ['/a', '/b']);
      const bs1 = 1024;
      const r = await withWrite(i, (f) => movedata(f, '/a', '/b', { from: bs1, len: 3 * bs1 }));
      expect(r).toBeUndefined();
      const after = await state(i, ['/a', '/b']);
      expect(sameBytes(after['/a']!.content, before['/a']!.content)).toBe(true);
      expect(after['/b']!.content.subarray(bs1, 4 * bs1).every((x) => x === 0)).toBe(true);
      await verify(i, { '/a': { content: before['/a']!.content }, '/b': { content: after['/b']!.content } }, 'movedata on 1 KiB blocks');
    });
  });

  describe('"Data blocks from @datafd in the interval are released, a hole is created in @spacefd."', () => {
    it('data\'s old blocks are free in the bitmap afterwards; space has no mapping there, keeps its size and reads zeros', async () => {
      const i = img('released');
      const before = await state(i, ['/data', '/space']);
      const old = toBlocks(before['/data']!.extents, N).slice(2, 10).map((b) => b!.physical);
      expect([...debugfsTestBlocks(i, old).values()].every((u) => u)).toBe(true);
      await checkedMove(i, '/data', '/space', 2 * B, 8 * B, 'movedata [2,10)');
      expect([...debugfsTestBlocks(i, old).values()]).toEqual(old.map(() => false));
      const after = await state(i, ['/space']);
      expect(after['/space']!.size).toBe(N * B);
      expect(toBlocks(after['/space']!.extents, N).slice(2, 10)).toEqual(Array(8).fill(null));
      expect(after['/space']!.content.subarray(2 * B, 10 * B).every((x) => x === 0)).toBe(true);
      // the free-space answer agrees: each released block is inside a returned free extent
      const free = await (async () => {
        const f = await Filesystem.open(i);
        try {
          return await getFreeBlocks(f);
        } finally {
          await f.close();
        }
      })();
      for (const b of old) expect(free.some((e) => e.start <= b * B && b * B < e.start + e.len), `block ${b}`).toBe(true);
    });
  });

  describe('"The call returns either 0 (success) or an error code."', () => {
    it('0 on success', async () => {
      const i = img('ret0');
      await checkedMove(i, '/data', '/space', 0, B, 'movedata one block');
    });
    it('errors are thrown as Ext4Error codes and change nothing: same file, missing file, a directory, past data\'s EOF, EFBIG', async () => {
      const i = img('reterr');
      await expectAllRefused(i, [
        ['EINVAL', (f) => movedata(f, '/data', '/data', { from: 0, len: B })],
        ['ENOENT', (f) => movedata(f, '/nope', '/space', { from: 0, len: B })],
        ['EINVAL', (f) => movedata(f, '/d', '/space', { from: 0, len: B })],
        ['EINVAL', (f) => movedata(f, '/data', '/d', { from: 0, len: B })],
        ['EINVAL', (f) => movedata(f, '/data', '/space', { from: N * B, len: B })],
        ['EINVAL', (f) => movedata(f, '/data', '/space', { from: (N - 1) * B, len: 2 * B })],
        ['EFBIG', (f) => movedata(f, '/data', '/space', { from: (2 ** 32 - 2) * B, len: 2 * B })],
        ['EINVAL', (f) => movedata(f, 8, '/space', { from: 0, len: B })], // the journal: a reserved inode
      ]);
      const ro = await Filesystem.open(i);
      try {
        expect(await codeOf(movedata(ro, '/data', '/space', { from: 0, len: B }))).toBe('EROFS');
      } finally {
        await ro.close();
      }
    });
    it('len = 0 returns 0 and writes nothing (unlike the kernel quirk of moving to EOF)', async () => {
      const i = img('len0');
      await expectRefused(i, 'resolved', (f) => movedata(f, '/data', '/space', { from: 0, len: 0 }));
    });
    it('a range inside the last partial block of data is accepted (EOF rounds up to a block)', async () => {
      const i = img('partial');
      const before = await state(i, ['/small', '/space']);
      expect(await withWrite(i, (f) => movedata(f, '/small', '/space', { from: 0, len: B }))).toBeUndefined();
      const after = await state(i, ['/small', '/space']);
      expect(sameBytes(after['/small']!.content, FILES.small)).toBe(true);
      expect(after['/small']!.extents[0]!.physical).toBe(before['/space']!.extents[0]!.physical);
      await verify(i, { '/small': { content: FILES.small }, '/space': { content: after['/space']!.content } }, 'movedata of a partial block');
    });
  });

  describe('"Another possibility would be to just replace data blocks without any copying of data (that would have to be done by the caller to before calling sys_movedata())."', () => {
    it('exchangeData: the caller copies data into space itself, then only the mappings are swapped (no data bytes written by the call)', async () => {
      const i = img('nocopy');
      const f = await Filesystem.open(i, { write: true });
      let spaceBlocks: Extent[] = [];
      try {
        const token = await startExchange(f, '/data');
        const sp = await openFile(f, '/space');
        await sp.pwrite(await readAll(f, '/data'), 0); // "done by the caller"
        spaceBlocks = await extentsOf(f, '/space');
        const w0 = { ...f.writeStats };
        expect(await exchangeData(f, '/data', '/space', { from: 0, len: N * B, token })).toBeUndefined();
        // bytesWritten = data bytes + metadata blocks (twice: journal + checkpoint): no data bytes at all
        const meta = (f.writeStats.metadataBlocks - w0.metadataBlocks) * B * 2;
        expect(f.writeStats.transactions - w0.transactions).toBe(1);
        expect(f.writeStats.bytesWritten - w0.bytesWritten - meta).toBe(0);
      } finally {
        await f.close();
      }
      const after = await state(i, ['/data', '/space']);
      expect(mergeExtents(after['/data']!.extents)).toEqual(mergeExtents(spaceBlocks));
      expect(after['/space']!.extents).toEqual([]);
      await verify(i, { '/data': { content: FILES.data, extents: spaceBlocks }, '/space': { content: new Uint8Array(N * B) } }, 'exchangeData');
    });
  });

  describe('"The problem here is how to avoid data loss if someone writes to the file after userspace has copied the data and before sys_movedata() is called."', () => {
    it('exchangeData refuses with ESTALE (and changes nothing) when data was written after the freshness token was taken', async () => {
      const i = img('stale');
      const newBytes = pattern(100, 77);
      const f = await Filesystem.open(i, { write: true });
      let spaceMap: Extent[] = [];
      try {
        const token = await startExchange(f, '/data');
        await (await openFile(f, '/space')).pwrite(await readAll(f, '/data'), 0);
        await (await openFile(f, '/data')).pwrite(newBytes, 5 * B + 7); // the racing writer
        spaceMap = await extentsOf(f, '/space');
        const dataMap = await extentsOf(f, '/data');
        const stats = { ...f.writeStats };
        expect(await codeOf(exchangeData(f, '/data', '/space', { from: 0, len: N * B, token }))).toBe('ESTALE');
        expect(f.writeStats).toEqual(stats); // nothing committed
        expect(await extentsOf(f, '/data')).toEqual(dataMap);
        // a fresh token succeeds
        const token2 = await startExchange(f, '/data');
        await (await openFile(f, '/space')).pwrite(await readAll(f, '/data'), 0);
        expect(await exchangeData(f, '/data', '/space', { from: 0, len: N * B, token: token2 })).toBeUndefined();
      } finally {
        await f.close();
      }
      const want = FILES.data.slice();
      want.set(newBytes, 5 * B + 7);
      await verify(i, { '/data': { content: want, extents: spaceMap }, '/space': { content: new Uint8Array(N * B) } }, 'exchangeData after ESTALE');
    });
    it('the copying movedata cannot lose a concurrent write: copy and remap happen under the writer lock', async () => {
      const i = img('race');
      const f = await Filesystem.open(i, { write: true });
      const w = pattern(3 * B, 78);
      try {
        const h = await openFile(f, '/data');
        await Promise.all([movedata(f, '/data', '/space', { from: 0, len: N * B, stepExtents: 1 }), h.pwrite(w, 6 * B), h.pwrite(w, 0)]);
      } finally {
        await f.close();
      }
      const want = FILES.data.slice();
      want.set(w, 6 * B);
      want.set(w, 0);
      await verify(i, { '/data': { content: want } }, 'movedata racing pwrite');
    });
  });

  describe('"ssize_t sys_allocate(int fd, int mode, loff_t goal, ssize_t len)"', () => {
    it('allocate(fs, file, {offset, len, goal, flags}) returns the number of bytes allocated', async () => {
      const i = img('asig');
      const n = await withWrite(i, (f) => allocate(f, '/small', { offset: 2 * B, len: 3 * B, goal: 6000 * B, flags: 0 }));
      expect(n).toBe(3 * B);
      const want = new Uint8Array(5 * B);
      want.set(FILES.small);
      const after = await state(i, ['/small']);
      expect(after['/small']!.extents.slice(1)).toEqual([{ logical: 2, physical: 6000, length: 3, unwritten: true }]);
      await verify(i, { '/small': { content: want } }, 'allocate');
    });
  });

  describe('"Allocate new space to file @fd at offset defined by file position."', () => {
    it('the new blocks are mapped at logical offset/B (a hole in the middle of a file)', async () => {
      const i = img('apos');
      expect(await withWrite(i, (f) => allocate(f, '/holey-data', { offset: 9 * B, len: 2 * B }))).toBe(2 * B);
      const after = await state(i, ['/holey-data']);
      const m = toBlocks(after['/holey-data']!.extents, N);
      expect(m[8]).toBe(null);
      expect(m[9]!.unwritten && m[10]!.unwritten).toBe(true);
      expect(m[11]).toBe(null);
      await verify(i, { '/holey-data': { content: FILES.holeyData } }, 'allocate into a hole');
    });
  });

  describe('"Both file offset and @len should be a multiple of filesystem block size."', () => {
    it('offset 1, len B-1, len 0, offset B+512, negative len: EINVAL, no write, image unchanged', async () => {
      const cases = [[1, B], [B, B - 1], [B, 0], [B + 512, B], [0, -B], [0.5, B]] as const;
      await expectAllRefused(img('aeinval'), cases.map(([offset, len]) => ['EINVAL', (f: Filesystem) => allocate(f, '/small', { offset, len })]));
    });
  });

  describe('"The whole interval must not contain any allocated blocks."', () => {
    it('written blocks anywhere in the interval: EEXIST, nothing changed', async () => {
      const i = img('aexist');
      await expectAllRefused(i, [
        ['EEXIST', (f) => allocate(f, '/holey-data', { offset: 6 * B, len: 3 * B })], // 6,7 written
        ['EEXIST', (f) => allocate(f, '/holey-data', { offset: 10 * B, len: 3 * B })], // 12 written
        ['EEXIST', (f) => allocate(f, '/data', { offset: 0, len: 100 * B })],
      ]);
    });
    it('unwritten (already allocated) blocks too', async () => {
      const i = img('aexist2');
      await withWrite(i, (f) => allocate(f, '/holey-data', { offset: 9 * B, len: B }));
      await expectRefused(i, 'EEXIST', (f) => allocate(f, '/holey-data', { offset: 8 * B, len: 4 * B }));
      expect(await withWrite(i, (f) => allocate(f, '/holey-data', { offset: 10 * B, len: 2 * B }))).toBe(2 * B);
      await verify(i, { '/holey-data': { content: FILES.holeyData } }, 'allocate next to unwritten blocks');
    });
  });

  describe('"If the interval extends past EOF, the file size is changed accordingly."', () => {
    it('past EOF: i_size = offset + bytes; inside the file: size unchanged', async () => {
      const i = img('asize');
      expect(await withWrite(i, (f) => allocate(f, '/small', { offset: 10 * B, len: 2 * B }))).toBe(2 * B);
      const want = new Uint8Array(12 * B);
      want.set(FILES.small);
      await verify(i, { '/small': { content: want } }, 'allocate past EOF');
      expect(await withWrite(i, (f) => allocate(f, '/small', { offset: 4 * B, len: 2 * B }))).toBe(2 * B);
      await verify(i, { '/small': { content: want } }, 'allocate inside EOF');
      if (CAN_MOUNT) {
        const { withLoopMount } = await import('../helpers/tools.js');
        await withLoopMount(i, (mp) => expect(nodefs.statSync(`${mp}/small`).size).toBe(12 * B), { readOnly: true });
      }
    });
    it('a file growing past 2 GiB: size set, large_file present, e2fsck clean', async () => {
      const i = img('abig');
      expect(await withWrite(i, (f) => allocate(f, '/small', { offset: 3 * 2 ** 30, len: B }))).toBe(B);
      const f = await Filesystem.open(i);
      try {
        expect((await f.resolve('/small')).size).toBe(3 * 2 ** 30 + B);
        expect(f.sb.s_feature_ro_compat & 0x2).toBe(0x2);
      } finally {
        await f.close();
      }
      const { expectClean } = await import('./helpers.js');
      expectClean(i, 'allocate at 3 GiB');
      // no 3 GiB dump: debugfs ex shows the one unwritten block, the kernel the size and the bytes around it
      const ex = debugfsFull(i, ['ex /small', 'stat /small']).stdout;
      const { parseEx } = await import('./helpers.js');
      expect(parseEx(ex).slice(1)).toEqual([{ logical: (3 * 2 ** 30) / B, physical: expect.any(Number), length: 1, unwritten: true }]);
      expect(/Size:\s*(\d+)/.exec(ex)?.[1]).toBe(String(3 * 2 ** 30 + B));
      if (CAN_MOUNT) {
        const { withLoopMount } = await import('../helpers/tools.js');
        await withLoopMount(
          i,
          (mp) => {
            expect(nodefs.statSync(`${mp}/small`).size).toBe(3 * 2 ** 30 + B);
            const fd = nodefs.openSync(`${mp}/small`, 'r');
            try {
              const head = Buffer.alloc(1000), tail = Buffer.alloc(B);
              nodefs.readSync(fd, head, 0, 1000, 0);
              nodefs.readSync(fd, tail, 0, B, 3 * 2 ** 30);
              expect(sameBytes(head, FILES.small)).toBe(true);
              expect(tail.every((x) => x === 0)).toBe(true);
            } finally {
              nodefs.closeSync(fd);
            }
          },
          { readOnly: true },
        );
      }
    });
  });

  describe('"@mode defines a way the filesystem will search for blocks."', () => {
    it('without flags the search starts at the goal (a hint) and the blocks found there are used', async () => {
      const i = img('amode');
      expect(await withWrite(i, (f) => allocate(f, '/small', { offset: B, len: 4 * B, goal: 7000 * B }))).toBe(4 * B);
      const after = await state(i, ['/small']);
      expect(after['/small']!.extents[1]).toEqual({ logical: 1, physical: 7000, length: 4, unwritten: true });
      const want = new Uint8Array(5 * B);
      want.set(FILES.small);
      await verify(i, { '/small': { content: want } }, 'allocate with a goal');
    });
    it('an unknown mode bit is EINVAL', async () => {
      await expectRefused(img('amodeinval'), 'EINVAL', (f) => allocate(f, '/small', { offset: B, len: B, flags: 8 }));
    });
  });

  describe('"@mode is a bitwise OR of the following flags: ALLOC_FIXED_START - allocation must start at @goal; if not specified, @goal is just a hint where to start an allocation ALLOC_FIXED_LEN - allocate exactly space for @len; if not specified, upto @len bytes may be allocated."', () => {
    it('the flags are distinct bits and combine with OR', () => {
      expect([ALLOC_FIXED_START, ALLOC_FIXED_LEN, ALLOC_CONTIGUOUS]).toEqual([1, 2, 4]);
      expect(ALLOC_FIXED_START | ALLOC_FIXED_LEN | ALLOC_CONTIGUOUS).toBe(7);
    });
    it('ALLOC_FIXED_START: the allocation starts exactly at goal', async () => {
      const i = img('afs');
      expect(await withWrite(i, (f) => allocate(f, '/small', { offset: B, len: 3 * B, goal: 5000 * B, flags: ALLOC_FIXED_START }))).toBe(3 * B);
      expect((await state(i, ['/small']))['/small']!.extents[1]).toEqual({ logical: 1, physical: 5000, length: 3, unwritten: true });
      const want = new Uint8Array(4 * B);
      want.set(FILES.small);
      await verify(i, { '/small': { content: want } }, 'FIXED_START');
    });
    it('ALLOC_FIXED_START at a block in use: ENOSPC, nothing changed; unaligned goal or one outside the fs: EINVAL', async () => {
      const i = img('afsbad');
      const used = (await state(i, ['/data']))['/data']!.extents[0]!.physical;
      await expectAllRefused(i, [
        ['ENOSPC', (f) => allocate(f, '/small', { offset: B, len: B, goal: used * B, flags: ALLOC_FIXED_START })],
        ['EINVAL', (f) => allocate(f, '/small', { offset: B, len: B, goal: 5000 * B + 1, flags: ALLOC_FIXED_START })],
        ['EINVAL', (f) => allocate(f, '/small', { offset: B, len: B, flags: ALLOC_FIXED_START })],
        ['EINVAL', (f) => allocate(f, '/small', { offset: B, len: B, goal: 10 ** 6 * B, flags: ALLOC_FIXED_START })],
      ]);
    });
    it('"if not specified, @goal is just a hint": a goal inside a used run allocates the first free blocks after it; an unaligned or out-of-range hint is rounded and clamped', async () => {
      const i = img('ahint');
      const before = await state(i, ['/data']);
      const used = before['/data']!.extents[0]!;
      expect(await withWrite(i, (f) => allocate(f, '/small', { offset: B, len: B, goal: used.physical * B + 5 }))).toBe(B);
      const got = (await state(i, ['/small']))['/small']!.extents[1]!;
      expect(got.physical).toBeGreaterThanOrEqual(used.physical + used.length);
      expect(await withWrite(i, (f) => allocate(f, '/small', { offset: 2 * B, len: B, goal: 2 ** 40 }))).toBe(B);
      const want = new Uint8Array(3 * B);
      want.set(FILES.small);
      await verify(i, { '/small': { content: want } }, 'allocate with a hint');
    });
    it('ALLOC_FIXED_LEN: exactly len (in several runs if needed) — or ENOSPC with the image unchanged', async () => {
      const i = img('afl');
      const f0 = await Filesystem.open(i);
      const freeBytes = (await getFreeBlocks(f0)).reduce((a, e) => a + e.len, 0);
      await f0.close();
      await expectRefused(i, 'ENOSPC', (f) => allocate(f, '/small', { offset: B, len: freeBytes + B, flags: ALLOC_FIXED_LEN }));
      const n = await withWrite(i, (f) => allocate(f, '/small', { offset: B, len: 40 * B, flags: ALLOC_FIXED_LEN }));
      expect(n).toBe(40 * B);
      const want = new Uint8Array(41 * B);
      want.set(FILES.small);
      await verify(i, { '/small': { content: want } }, 'FIXED_LEN');
    });
    it('"if not specified, upto @len bytes may be allocated": on a nearly full filesystem a prefix is allocated and its size returned', async () => {
      const i = img('aupto');
      const f0 = await Filesystem.open(i);
      const freeBytes = (await getFreeBlocks(f0)).reduce((a, e) => a + e.len, 0);
      await f0.close();
      // leave ~10 blocks (extent-tree blocks come from the same pool)
      expect(await withWrite(i, (f) => allocate(f, '/data', { offset: N * B, len: freeBytes - 10 * B, flags: ALLOC_FIXED_LEN }))).toBe(freeBytes - 10 * B);
      {
        // oracles without reading ~25 MiB of zeros back: e2fsck, and debugfs ex agreeing with ext4kit
        const { expectClean, debugfsFiles } = await import('./helpers.js');
        expectClean(i, 'filling the filesystem');
        const ex = debugfsFiles(i, ['/data']).get('/data')!;
        expect(ex.size).toBe(N * B + freeBytes - 10 * B);
        expect(mergeExtents(ex.extents)).toEqual(mergeExtents((await state(i, ['/data']))['/data']!.extents));
      }
      const n = await withWrite(i, (f) => allocate(f, '/small', { offset: B, len: 100 * B }));
      expect(n).toBeGreaterThan(0);
      expect(n).toBeLessThanOrEqual(10 * B);
      const small = (await state(i, ['/small']))['/small']!;
      expect(small.size).toBe(B + n);
      expect(small.extents.slice(1).reduce((a, e) => a + e.length, 0) * B).toBe(n);
      const want = new Uint8Array(B + n);
      want.set(FILES.small);
      await verify(i, { '/small': { content: want } }, 'partial allocation');
      // now the filesystem is full: ENOSPC, nothing changed
      await expectRefused(i, 'ENOSPC', (f) => allocate(f, '/small', { offset: 1000 * B, len: 100 * B }));
    });
  });

  describe('"ALLOC_CONTINGUOUS - allocation must be one continguous run of blocks If the allocation succeeds, number of allocated bytes is returned."', () => {
    /** A comb of free space: 1-block holes every other block in [5000, 5120). */
    async function comb(i: string): Promise<void> {
      await withWrite(i, async (f) => {
        for (let b = 5000; b < 5120; b += 2) await allocate(f, '/holey-space', { offset: (100 + b) * B, len: B, goal: b * B, flags: ALLOC_FIXED_START });
      });
    }
    it('CONTIGUOUS: one physical run even when the goal sits in fragmented free space', async () => {
      const i = img('acont');
      await comb(i);
      const n = await withWrite(i, (f) => allocate(f, '/small', { offset: B, len: 50 * B, goal: 5001 * B, flags: ALLOC_CONTIGUOUS }));
      expect(n).toBe(50 * B);
      const e = (await state(i, ['/small']))['/small']!.extents.slice(1);
      expect(mergeExtents(e)).toHaveLength(1);
      const want = new Uint8Array(51 * B);
      want.set(FILES.small);
      await verify(i, { '/small': { content: want } }, 'CONTIGUOUS');
    });
    it('CONTIGUOUS|FIXED_START: the run at goal, up to len (it ends where the free run ends)', async () => {
      const i = img('acontfs');
      await comb(i);
      const n = await withWrite(i, (f) => allocate(f, '/small', { offset: B, len: 10 * B, goal: 5001 * B, flags: ALLOC_CONTIGUOUS | ALLOC_FIXED_START }));
      expect(n).toBe(B); // the comb's holes are one block long
      await expectRefused(i, 'ENOSPC', (f) => allocate(f, '/small', { offset: 2 * B, len: 10 * B, goal: 5003 * B, flags: ALLOC_CONTIGUOUS | ALLOC_FIXED_START | ALLOC_FIXED_LEN }));
      const want = new Uint8Array(2 * B);
      want.set(FILES.small);
      await verify(i, { '/small': { content: want, extents: [{ ...(await state(i, ['/small']))['/small']!.extents[0]!}, { logical: 1, physical: 5001, length: 1, unwritten: true }] } }, 'CONTIGUOUS|FIXED_START');
    });
    it('CONTIGUOUS|FIXED_LEN longer than the longest free run: ENOSPC, image unchanged; without FIXED_LEN: the longest run', async () => {
      const i = img('acontfl');
      const f0 = await Filesystem.open(i);
      const longest = Math.max(...(await getFreeBlocks(f0)).map((e) => e.len));
      await f0.close();
      await expectRefused(i, 'ENOSPC', (f) => allocate(f, '/small', { offset: B, len: longest + B, flags: ALLOC_CONTIGUOUS | ALLOC_FIXED_LEN }));
      const n = await withWrite(i, (f) => allocate(f, '/small', { offset: B, len: longest + B, flags: ALLOC_CONTIGUOUS }));
      expect(n).toBe(longest);
      const e = mergeExtents((await state(i, ['/small']))['/small']!.extents.slice(1));
      expect(e).toHaveLength(1);
      const want = new Uint8Array(B + n);
      want.set(FILES.small);
      await verify(i, { '/small': { content: want } }, 'CONTIGUOUS longest run');
    });
    it('the returned byte count equals the blocks mapped (also when a run is longer than one extent: 32767-block unwritten limit)', async () => {
      // 1 KiB blocks: groups 10–15 form a 49152-block free run (no backups, no flex_bg metadata)
      const i = makeImage('along', { f: new Uint8Array(0) }, { sizeMiB: 160, blockSize: 1024 });
      const K = 1024;
      const n = await withWrite(i, (f) => allocate(f, '/f', { offset: 0, len: 34000 * K, flags: ALLOC_CONTIGUOUS | ALLOC_FIXED_LEN }));
      expect(n).toBe(34000 * K);
      const { debugfsFiles } = await import('./helpers.js');
      const ex = debugfsFiles(i, ['/f']).get('/f')!.extents;
      expect(ex.length).toBe(2);
      expect(ex.every((e) => e.unwritten && e.length <= 32767)).toBe(true);
      expect(ex.reduce((a, e) => a + e.length, 0) * K).toBe(n);
      expect(ex[1]!.physical).toBe(ex[0]!.physical + ex[0]!.length);
      await verify(i, { '/f': { content: new Uint8Array(n) } }, 'allocate 34000 blocks');
    });
  });

  describe('"Otherwise an error code is returned."', () => {
    it('EISDIR/EINVAL for a directory, ENOENT for a missing file, EPERM for an immutable one, EEXIST over a block-mapped file\'s blocks (block-mapped files are allocated: test/write/blockmap.test.ts), EROFS read-only', async () => {
      const i = img('aerr');
      await expectAllRefused(i, [
        ['EINVAL', (f) => allocate(f, '/d', { offset: 0, len: B })],
        ['ENOENT', (f) => allocate(f, '/missing', { offset: 0, len: B })],
      ]);
      debugfsFull(i, ['sif /small flags 0x80010'], { write: true }); // EXTENTS | IMMUTABLE
      await expectRefused(i, 'EPERM', (f) => allocate(f, '/small', { offset: B, len: B }));
      debugfsFull(i, ['sif /small flags 0x80000'], { write: true });
      const ro = await Filesystem.open(i);
      try {
        expect(await codeOf(allocate(ro, '/small', { offset: B, len: B }))).toBe('EROFS');
      } finally {
        await ro.close();
      }
      const i2 = makeImage('anoext', { f: pattern(3 * B, 1) }, { mkfsOpts: ['-O', '^extent,^64bit'] });
      await expectRefused(i2, 'EEXIST', (f) => allocate(f, '/f', { offset: 2 * B, len: 2 * B }));
    });
  });

  describe('"The following syscall may be also useful - although I\'m not completely convinced this is the right way to go."', () => {
    it('getFreeBlocks is a pure query: it works on a read-only open and leaves the image byte-identical', async () => {
      const i = img('gro');
      const h = sha256File(i);
      const f = await Filesystem.open(i);
      try {
        expect((await getFreeBlocks(f)).length).toBeGreaterThan(0);
      } finally {
        await f.close();
      }
      expect(sha256File(i)).toBe(h);
    });
  });

  describe('"But on the other hand, disk optimizer should have a way to find out about free space so that he can decide what and where is beneficial to move. int sys_get_free_blocks(const char *fs, loff_t start, loff_t end, int count, struct alloc_extent *space)"', () => {
    it('a defragmenter built on the three calls: find a free run, allocate a donor there, movedata — one extent, same bytes', async () => {
      const i = img('defrag');
      // fragment /small: 24 one-block writes, each followed by stealing the next physical block
      const content = pattern(24 * B, 99);
      await withWrite(i, async (f) => {
        const a = await openFile(f, '/small');
        for (let k = 0; k < 24; k++) {
          await a.pwrite(content.subarray(k * B, (k + 1) * B), k * B);
          const e = await extentsOf(f, '/small');
          const next = e[e.length - 1]!.physical + e[e.length - 1]!.length;
          await allocate(f, '/holey-space', { offset: (100 + k) * B, len: B, goal: next * B }); // first free block after it
        }
      });
      const before = await state(i, ['/small']);
      expect(mergeExtents(before['/small']!.extents).length).toBeGreaterThan(12);
      const need = 24 * B;
      const target = await withWrite(i, async (f) => {
        const run = (await getFreeBlocks(f)).find((e) => e.len >= need)!;
        expect(run).toBeDefined();
        expect(await allocate(f, '/donor', { offset: 0, len: need, goal: run.start, flags: ALLOC_FIXED_START | ALLOC_FIXED_LEN | ALLOC_CONTIGUOUS })).toBe(need);
        expect(await movedata(f, '/small', '/donor', { from: 0, len: need })).toBeUndefined();
        return run.start / B;
      });
      await verify(i, { '/small': { content, extents: [{ logical: 0, physical: target, length: 24, unwritten: false }] }, '/donor': { content: new Uint8Array(need) } }, 'defrag');
    });
  });

  describe('"Get a description of free space on a filesystem between @start and @end (in bytes, should be blocksize aligned)."', () => {
    it('the records are the free space in [start, end), clipped, compared with dumpe2fs\'s free ranges', async () => {
      const i = img('gdesc');
      const runs = dumpe2fsFreeRuns(i);
      const f = await Filesystem.open(i);
      try {
        for (const [s, e] of [[0, 8192], [3, 5000], [2000, 2001], [4100, 8192], [7000, 9999]] as const) {
          const got = (await getFreeBlocks(f, { start: s * B, end: e * B })).map((r) => [r.start / B, (r.start + r.len) / B]);
          expect(got, `[${s}, ${e})`).toEqual(clipRuns(runs, s, Math.min(e, f.sb.blocksCount)));
        }
      } finally {
        await f.close();
      }
    });
    it('unaligned start or end, or end ≤ start: EINVAL; count < 0: EINVAL', async () => {
      const f = await Filesystem.open(img('gbad'));
      try {
        expect(await codeOf(getFreeBlocks(f, { start: 1 }))).toBe('EINVAL');
        expect(await codeOf(getFreeBlocks(f, { start: 0, end: B + 1 }))).toBe('EINVAL');
        expect(await codeOf(getFreeBlocks(f, { start: 2 * B, end: 2 * B }))).toBe('EINVAL');
        expect(await codeOf(getFreeBlocks(f, { start: 2 * B, end: B }))).toBe('EINVAL');
        expect(await codeOf(getFreeBlocks(f, { count: -1 }))).toBe('EINVAL');
        expect(await codeOf(getFreeBlocks(f, { count: 1.5 }))).toBe('EINVAL');
        // end beyond the filesystem is clipped
        const all = await getFreeBlocks(f);
        expect(await getFreeBlocks(f, { end: 2 ** 40 })).toEqual(all);
        expect(all[all.length - 1]!.start + all[all.length - 1]!.len).toBeLessThanOrEqual(f.sb.blocksCount * B);
      } finally {
        await f.close();
      }
    });
  });

  describe('"@fs is a path where the filesystem is mounted (I guess it\'s better than dev_t, isn\'t it?)."', () => {
    it('the library names the filesystem by the path of its image (or an open device): both give the same answer', async () => {
      const i = img('gpath');
      const a = await Filesystem.open(i);
      const dev = await FileDevice.open(i, { write: false });
      const b = await Filesystem.open(dev);
      try {
        expect(await getFreeBlocks(a)).toEqual(await getFreeBlocks(b));
      } finally {
        await a.close();
        await b.close();
        await dev.close();
      }
    });
  });

  describe('"@space is a pointer to an array of \'struct alloc_extent\'."', () => {
    it('the result is an array', async () => {
      const f = await Filesystem.open(img('garr'));
      try {
        expect(Array.isArray(await getFreeBlocks(f))).toBe(true);
      } finally {
        await f.close();
      }
    });
  });

  describe('"In each struct alloc_extent is stored description of one extent of free space."', () => {
    it('each record is one maximal free run (the blocks just outside it are in use), ascending and non-overlapping', async () => {
      const i = img('gone');
      const f = await Filesystem.open(i);
      let list: FreeExtent[] = [];
      try {
        list = await getFreeBlocks(f);
      } finally {
        await f.close();
      }
      for (let k = 1; k < list.length; k++) expect(list[k]!.start).toBeGreaterThan(list[k - 1]!.start + list[k - 1]!.len);
      const edges = list.flatMap((e) => [e.start / B - 1, (e.start + e.len) / B]).filter((b) => b >= 0 && b < 8192);
      const used = debugfsTestBlocks(i, edges);
      for (const b of edges) expect(used.get(b), `block ${b} next to a free run`).toBe(true);
      const inside = list.flatMap((e) => [e.start / B, (e.start + e.len) / B - 1]);
      const t = debugfsTestBlocks(i, inside);
      for (const b of inside) expect(t.get(b), `block ${b} inside a free run`).toBe(false);
    });
    it('runs crossing block-group boundaries are merged (4 MiB groups, BLOCK_UNINIT groups) — equal to dumpe2fs merged across groups', async () => {
      const i = makeImage('ggroups', { a: pattern(B, 1) }, { sizeMiB: 64, mkfsOpts: ['-g', '1024'] });
      const groups = dumpe2fsGroups(i);
      expect(groups.length).toBe(16);
      expect(groups.some((g) => g.flags.includes('BLOCK_UNINIT'))).toBe(true);
      const f = await Filesystem.open(i);
      try {
        const got = (await getFreeBlocks(f)).map((r): [number, number] => [r.start / B, (r.start + r.len) / B]);
        expect(got).toEqual(dumpe2fsFreeRuns(i));
        expect(got.some(([s, e]) => Math.floor(s / 1024) !== Math.floor((e - 1) / 1024))).toBe(true);
      } finally {
        await f.close();
      }
    });
  });

  describe('"Upto @count extents are stored."', () => {
    it('count limits the answer; count 0 gives none; calling again from the end of the last record resumes exactly', async () => {
      const i = makeImage('gcount', { a: pattern(B, 1) }, { sizeMiB: 64, mkfsOpts: ['-g', '1024'] });
      const f = await Filesystem.open(i);
      try {
        const all = await getFreeBlocks(f);
        expect(all.length).toBeGreaterThan(3);
        expect(await getFreeBlocks(f, { count: 0 })).toEqual([]);
        expect(await getFreeBlocks(f, { count: 2 })).toEqual(all.slice(0, 2));
        const pieces: FreeExtent[] = [];
        let start = 0;
        for (;;) {
          const got = await getFreeBlocks(f, { start, count: 1 });
          if (!got.length) break;
          pieces.push(...got);
          start = got[0]!.start + got[0]!.len;
          if (start >= f.sb.blocksCount * B) break;
        }
        expect(pieces).toEqual(all);
      } finally {
        await f.close();
      }
    });
  });

  describe('"struct alloc_extent { loff_t start; size_t len; }; Function returns a number of extents stored."', () => {
    it('records are exactly {start, len} in bytes, block-aligned; the array length is the number stored (≤ count)', async () => {
      const f = await Filesystem.open(img('gstruct'));
      try {
        const list = await getFreeBlocks(f, { count: 3 });
        expect(list.length).toBeLessThanOrEqual(3);
        for (const e of list) {
          expect(Object.keys(e).sort()).toEqual(['len', 'start']);
          expect(e.start % B).toBe(0);
          expect(e.len % B).toBe(0);
          expect(e.len).toBeGreaterThan(0);
        }
      } finally {
        await f.close();
      }
    });
  });

  describe('"Note that the result of the function is unreliable as the space can be already allocated by the time system call returns."', () => {
    it('an answer goes stale after an allocation; a new call reflects it; concurrent with a writer the answer is one committed state', async () => {
      const i = img('gstale');
      const f = await Filesystem.open(i, { write: true });
      try {
        const old = await getFreeBlocks(f);
        const target = old[old.length - 1]!;
        expect(await allocate(f, '/small', { offset: B, len: 2 * B, goal: target.start, flags: ALLOC_FIXED_START | ALLOC_FIXED_LEN })).toBe(2 * B);
        const now = await getFreeBlocks(f);
        expect(now).not.toEqual(old);
        expect(now.some((e) => e.start === target.start + 2 * B && e.len === target.len - 2 * B)).toBe(true);
        // racing: the answer is either before or after the allocation, never a mix
        const before = await getFreeBlocks(f);
        const [, during] = await Promise.all([allocate(f, '/small', { offset: 10 * B, len: 5 * B, goal: target.start + 4 * B, flags: ALLOC_FIXED_START }), getFreeBlocks(f)]);
        const after = await getFreeBlocks(f);
        expect([JSON.stringify(before), JSON.stringify(after)]).toContain(JSON.stringify(during));
      } finally {
        await f.close();
      }
      const want = new Uint8Array(15 * B);
      want.set(FILES.small);
      await verify(i, { '/small': { content: want } }, 'allocations after getFreeBlocks');
    });
  });

  describe('"Hello, I\'ve finally got to writing up some proposal how could look system calls allowing for online filesystem defragmentation and generally moving file blocks around for improving performance."', () => {
    it('online: readers keep reading the right bytes while a file is moved to a contiguous donor in many steps', async () => {
      const i = img('online');
      const f = await Filesystem.open(i, { write: true });
      let target = 0;
      try {
        const h = await openFile(f, '/data');
        const run = (await getFreeBlocks(f)).filter((e) => e.len >= N * B).pop()!;
        target = (run.start + run.len) / B - N;
        await allocate(f, '/donor', { offset: 0, len: N * B, goal: target * B, flags: ALLOC_FIXED_START | ALLOC_FIXED_LEN | ALLOC_CONTIGUOUS });
        const t0 = f.writeStats.transactions;
        const reads: Promise<boolean>[] = [];
        const mv = movedata(f, '/data', '/donor', { from: 0, len: N * B, stepExtents: 1, stepBytes: 2 * B });
        for (let k = 0; k < 20; k++) reads.push(h.pread(k * 2000, 3 * B).then((got) => sameBytes(got, FILES.data.subarray(k * 2000, k * 2000 + 3 * B))));
        await mv;
        expect(f.writeStats.transactions - t0).toBe(8);
        expect(await Promise.all(reads)).toEqual(Array(20).fill(true));
      } finally {
        await f.close();
      }
      await verify(i, { '/data': { content: FILES.data, extents: [{ logical: 0, physical: target, length: N, unwritten: false }] } }, 'online move');
    });
  });
});

describe.skipIf(!HAVE_E2FSPROGS)('the contract (semantics.md §1–§3) beyond the sentences', () => {
  it('movedata: space unwritten over data written — data\'s bytes are copied and the blocks become written', async () => {
    const i = img('unwspace');
    await withWrite(i, (f) => allocate(f, '/space', { offset: N * B, len: N * B }));
    await withWrite(i, async (f) => (await openFile(f, '/data')).truncate(2 * N * B));
    const want = new Uint8Array(2 * N * B);
    want.set(FILES.data);
    await withWrite(i, (f) => movedata(f, '/data', '/space', { from: 0, len: 2 * N * B }));
    const after = await state(i, ['/data', '/space']);
    expect(after['/data']!.extents.every((e) => !e.unwritten || e.logical >= N)).toBe(true);
    await verify(i, { '/data': { content: want }, '/space': { content: new Uint8Array(2 * N * B) } }, 'movedata from unwritten space');
  });

  it('movedata that needs a new extent-tree block on a full filesystem: ENOSPC, no write at all (space\'s blocks untouched too)', async () => {
    const i = img('mvenospc');
    // space: 8 one-block extents (a depth-1 tree), then fill every free block
    await withWrite(i, async (f) => {
      const run = (await getFreeBlocks(f)).find((e) => e.len >= 40 * B)!;
      for (let k = 0; k < 8; k++) await allocate(f, '/donor', { offset: k * B, len: B, goal: run.start + 2 * k * B, flags: ALLOC_FIXED_START });
      await (await openFile(f, '/donor')).pwrite(pattern(8 * B, 31), 0);
      // fill: "up to len" allocations until nothing is left (tree blocks come from the same pool)
      for (let off = 100 * B, k = 0; (await getFreeBlocks(f, { count: 1 })).length && k < 50; k++) off += await allocate(f, '/holey-space', { offset: off, len: 100000 * B });
      expect(await getFreeBlocks(f)).toEqual([]);
    });
    // data's 8 contiguous blocks would become 8 extents: its tree needs a block the full fs does not have
    await expectAllRefused(i, [['ENOSPC', (f) => movedata(f, '/data', '/donor', { from: 0, len: 8 * B })]]);
    const { expectClean } = await import('./helpers.js');
    expectClean(i, 'refused movedata on a full fs');
  });

  it('movedata: data\'s size and mtime unchanged, ctime of both files updated; space\'s size unchanged', async () => {
    const i = img('times');
    const stat = async () => {
      const f = await Filesystem.open(i);
      try {
        const d = await f.resolve('/data'), s = await f.resolve('/space');
        return { d: { size: d.size, mtime: d.mtime, ctime: d.ctime }, s: { size: s.size, ctime: s.ctime } };
      } finally {
        await f.close();
      }
    };
    const a = await stat();
    await new Promise((r) => setTimeout(r, 20));
    await withWrite(i, (f) => movedata(f, '/data', '/space', { from: 0, len: 4 * B }));
    const b = await stat();
    expect(b.d.size).toBe(a.d.size);
    expect(b.d.mtime).toEqual(a.d.mtime);
    expect(b.s.size).toBe(a.s.size);
    expect(b.d.ctime).not.toEqual(a.d.ctime);
    expect(b.s.ctime).not.toEqual(a.s.ctime);
    const sp = FILES.space.slice();
    sp.fill(0, 0, 4 * B);
    await verify(i, { '/data': { content: FILES.data }, '/space': { content: sp } }, 'movedata [0,4)');
  });

  it('a large movedata is cut into several transactions; every step leaves data\'s content intact (checked between steps by the crash tests)', async () => {
    const i = makeImage('bigmove', { data: pattern(300 * B, 5), space: pattern(300 * B, 6) }, { sizeMiB: 64 });
    const f = await Filesystem.open(i, { write: true });
    let txs = 0;
    try {
      const t0 = f.writeStats.transactions;
      // fragment space: every other block of a donor range
      expect(await movedata(f, '/data', '/space', { from: 0, len: 300 * B, stepExtents: 64, stepBytes: 32 * B })).toBeUndefined();
      txs = f.writeStats.transactions - t0;
    } finally {
      await f.close();
    }
    expect(txs).toBeGreaterThanOrEqual(10);
    await verify(i, { '/data': { content: pattern(300 * B, 5) }, '/space': { content: new Uint8Array(300 * B) } }, 'chunked movedata');
  });

  it('allocate: new blocks are unwritten and read as zeros even where a deleted file left its bytes (no stale data)', async () => {
    const i = img('stalebytes');
    const old = (await state(i, ['/space']))['/space']!.extents[0]!;
    debugfsFull(i, ['rm /space'], { write: true });
    expect(rawBlocks(i, old.physical, 1, B).some((x) => x !== 0)).toBe(true);
    expect(await withWrite(i, (f) => allocate(f, '/small', { offset: B, len: N * B, goal: old.physical * B, flags: ALLOC_FIXED_START | ALLOC_FIXED_LEN }))).toBe(N * B);
    const after = await state(i, ['/small']);
    expect(after['/small']!.extents[1]).toEqual({ logical: 1, physical: old.physical, length: N, unwritten: true });
    const want = new Uint8Array((N + 1) * B);
    want.set(FILES.small);
    await verify(i, { '/small': { content: want } }, 'allocate over a deleted file\'s blocks');
  });

  it('allocate into a BLOCK_UNINIT group initialises it (flag cleared, e2fsck clean)', async () => {
    const i = makeImage('uninit', { a: pattern(B, 1) }, { sizeMiB: 64, mkfsOpts: ['-g', '1024'] });
    const g = dumpe2fsGroups(i).find((x) => x.group > 0 && x.flags.includes('BLOCK_UNINIT'))!;
    expect(g).toBeDefined();
    const goal = g.firstBlock + 300;
    expect(await withWrite(i, (f) => allocate(f, '/a', { offset: B, len: 8 * B, goal: goal * B, flags: ALLOC_FIXED_START | ALLOC_FIXED_LEN }))).toBe(8 * B);
    expect(dumpe2fsGroups(i)[g.group]!.flags).not.toContain('BLOCK_UNINIT');
    const want = new Uint8Array(9 * B);
    want.set(pattern(B, 1));
    await verify(i, { '/a': { content: want, extents: [{ ...(await state(i, ['/a']))['/a']!.extents[0]! }, { logical: 1, physical: goal, length: 8, unwritten: true }] } }, 'allocate in a BLOCK_UNINIT group');
  });

  it('getFreeBlocks never reads a BLOCK_UNINIT group\'s bitmap (a wrapped device counts the reads)', async () => {
    const i = makeImage('noread', { a: pattern(B, 1) }, { sizeMiB: 128, mkfsOpts: ['-g', '1024'] });
    const groups = dumpe2fsGroups(i);
    const uninit = groups.filter((g) => g.flags.includes('BLOCK_UNINIT'));
    expect(uninit.length).toBeGreaterThan(5);
    const dev = new CountingDevice(await FileDevice.open(i, { write: false }));
    const f = await Filesystem.open(dev);
    try {
      dev.reads.length = 0;
      const got = (await getFreeBlocks(f)).map((r) => [r.start / B, (r.start + r.len) / B]);
      expect(got).toEqual(dumpe2fsFreeRuns(i));
      for (const g of uninit) expect(dev.readBlock(g.blockBitmap, B), `group ${g.group} bitmap ${g.blockBitmap}`).toBe(false);
      // and the initialised ones were read, neighbours together: a read that touches bitmaps reads
      // nothing but initialised groups' bitmaps (no read-ahead past them)
      const init = groups.filter((g) => !g.flags.includes('BLOCK_UNINIT') && g.freeBlocks > 0 && g.freeBlocks < g.lastBlock - g.firstBlock + 1);
      for (const g of init) expect(dev.readBlock(g.blockBitmap, B), `group ${g.group}`).toBe(true);
      const bitmaps = new Set(groups.map((g) => g.blockBitmap));
      const initBitmaps = new Set(groups.filter((g) => !g.flags.includes('BLOCK_UNINIT')).map((g) => g.blockBitmap));
      for (const r of dev.reads) {
        const blocks = Array.from({ length: Math.ceil(r.length / B) }, (_, k) => Math.floor(r.position / B) + k);
        if (blocks.some((b) => bitmaps.has(b))) expect(blocks.filter((b) => !initBitmaps.has(b)), `read ${r.position}+${r.length}`).toEqual([]);
      }
    } finally {
      await f.close();
      await dev.close();
    }
  });

  it('getFreeBlocks equals dumpe2fs on 1 KiB, 2 KiB, meta_bg, no-flex_bg, gdt_csum and no-checksum images; block 0 of a 1 KiB fs is never free', async () => {
    const images: [string, string][] = [
      ['1k', makeImage('g1k', { a: pattern(5000, 1) }, { blockSize: 1024, sizeMiB: 24 })],
      ['2k', makeImage('g2k', { a: pattern(5000, 1) }, { blockSize: 2048, sizeMiB: 48 })],
      ['metabg', makeImage('gmeta', { a: pattern(5000, 1) }, { sizeMiB: 80, mkfsOpts: ['-O', 'meta_bg,^resize_inode', '-g', '256'] })],
      ['noflex', makeImage('gnoflex', { a: pattern(5000, 1) }, { sizeMiB: 64, mkfsOpts: ['-O', '^flex_bg', '-g', '4096'] })],
      ['gdtcsum', makeImage('ggdt', { a: pattern(5000, 1) }, { sizeMiB: 64, mkfsOpts: ['-O', '^metadata_csum,uninit_bg', '-g', '2048'] })],
      ['nocsum', makeImage('gnocsum', { a: pattern(5000, 1) }, { sizeMiB: 64, mkfsOpts: ['-O', '^metadata_csum,^uninit_bg', '-g', '2048'] })],
    ];
    for (const [label, i] of images) {
      const f = await Filesystem.open(i);
      try {
        const bs = f.blockSize;
        const got = (await getFreeBlocks(f)).map((r) => [r.start / bs, (r.start + r.len) / bs]);
        expect(got, label).toEqual(dumpe2fsFreeRuns(i));
        if (bs === 1024) expect(got[0]![0]).toBeGreaterThan(0);
        expect(await getFreeBlocks(f, { start: 0, end: bs })).toEqual([]);
      } finally {
        await f.close();
      }
    }
  });
});
