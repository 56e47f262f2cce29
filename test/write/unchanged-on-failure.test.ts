/**
 * A failed call leaves the image byte-for-byte unchanged (issue 8 item 4).
 * Every write call is driven through its error paths — EINVAL, EEXIST,
 * ENOSPC, ENOENT, EOPNOTSUPP, EROFS, ESTALE — each time with a fresh open for
 * writing, the failing call and a close, and the sha256 of the whole image
 * must be what it was before: no s_wtime stamp, no needs_recovery / VALID_FS
 * round trip, no journal-superblock rewrite, no free-count correction is
 * written unless a transaction actually commits.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Filesystem, type OpenOptions } from '../../lib/node.js';
import { isExt4Error } from '../../lib/errors.js';
import { allocate, ALLOC_FIXED_LEN } from '../../lib/ops/allocate.js';
import { movedata, exchangeData, startExchange } from '../../lib/ops/movedata.js';
import { openFile } from '../../lib/ops/file.js';
import { defrag } from '../../lib/ops/defrag.js';
import { copySparse, debugfs, dumpe2fsHeader, expectE2fsckClean, mkfs, sha256File } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { bytes, HAVE_E2FSPROGS } from './helpers.js';

if (!HAVE_E2FSPROGS) console.log('skipping unchanged-on-failure tests: e2fsprogs not installed');

interface Case {
  name: string;
  /** Expected error code(s). */
  code: string | string[];
  /** Open options (default: write). */
  open?: OpenOptions;
  call: (f: Filesystem) => Promise<unknown>;
}

function buildSource(): string {
  const src = tmpDir('unchanged-src');
  fs.writeFileSync(path.join(src, 'a'), bytes(5000, 1));
  fs.writeFileSync(path.join(src, 'space'), bytes(64 * 1024, 2));
  fs.writeFileSync(path.join(src, 'empty'), new Uint8Array(0));
  fs.mkdirSync(path.join(src, 'd'));
  fs.writeFileSync(path.join(src, 'd', 'x'), bytes(100, 3));
  return src;
}

/**
 * Run each case on `img` (open, call, close) and return the cases that
 * changed the image or failed with another code; a changed image is put back
 * from `pristine` so that the cases stay independent.
 */
async function runCases(img: string, cases: Case[]): Promise<string[]> {
  const pristine = tmpPath('pristine.img');
  copySparse(img, pristine);
  const want = sha256File(img);
  const bad: string[] = [];
  for (const c of cases) {
    let got = 'no error';
    const f = await Filesystem.open(img, c.open ?? { write: true });
    try {
      await c.call(f);
    } catch (e) {
      got = isExt4Error(e) ? e.code : `untyped ${String(e)}`;
    } finally {
      await f.close();
    }
    const codes = Array.isArray(c.code) ? c.code : [c.code];
    if (!codes.includes(got)) bad.push(`${c.name}: expected ${codes.join('|')}, got ${got}`);
    if (sha256File(img) !== want) {
      bad.push(`${c.name}: the image changed`);
      copySparse(pristine, img);
    }
  }
  return bad;
}

const pw = (p: string, data: Uint8Array, pos: number) => async (f: Filesystem) => (await openFile(f, p)).pwrite(data, pos);
const tr = (p: string, size: number) => async (f: Filesystem) => (await openFile(f, p)).truncate(size);

/** The cases every extent-mapped image (journaled or not) goes through. */
function extentCases(bs: number): Case[] {
  const ro: OpenOptions = {};
  return [
    { name: 'allocate: unaligned offset', code: 'EINVAL', call: (f) => allocate(f, '/empty', { offset: 1, len: bs }) },
    { name: 'allocate: unaligned len', code: 'EINVAL', call: (f) => allocate(f, '/empty', { offset: 0, len: bs + 1 }) },
    { name: 'allocate: unknown flags', code: 'EINVAL', call: (f) => allocate(f, '/empty', { offset: 0, len: bs, flags: 64 }) },
    { name: 'allocate: over existing blocks', code: 'EEXIST', call: (f) => allocate(f, '/a', { offset: 0, len: bs }) },
    { name: 'allocate: more than is free (FIXED_LEN)', code: 'ENOSPC', call: (f) => allocate(f, '/empty', { offset: 0, len: f.sb.blocksCount * bs, flags: ALLOC_FIXED_LEN }) },
    { name: 'allocate: missing path', code: 'ENOENT', call: (f) => allocate(f, '/nope', { offset: 0, len: bs }) },
    { name: 'allocate: a directory', code: ['EISDIR', 'EINVAL'], call: (f) => allocate(f, '/d', { offset: 0, len: bs }) },
    { name: 'allocate: read-only open', code: 'EROFS', open: ro, call: (f) => allocate(f, '/empty', { offset: 0, len: bs }) },
    { name: 'movedata: range past the end of the data file', code: 'EINVAL', call: (f) => movedata(f, '/a', '/space', { from: 0, len: 8 * bs }) },
    { name: 'movedata: unaligned range', code: 'EINVAL', call: (f) => movedata(f, '/a', '/space', { from: 1, len: bs }) },
    { name: 'movedata: missing data file', code: 'ENOENT', call: (f) => movedata(f, '/nope', '/space', { from: 0, len: bs }) },
    { name: 'movedata: data is a directory', code: ['EINVAL', 'EISDIR'], call: (f) => movedata(f, '/d', '/space', { from: 0, len: bs }) },
    { name: 'movedata: read-only open', code: 'EROFS', open: ro, call: (f) => movedata(f, '/a', '/space', { from: 0, len: bs }) },
    {
      name: 'exchangeData: stale token',
      code: 'ESTALE',
      call: async (f) => {
        const token = await startExchange(f, '/a');
        return exchangeData(f, '/a', '/space', { from: 0, len: bs, token: { ...token, mtimeNsec: token.mtimeNsec + 1 } });
      },
    },
    { name: 'pwrite: negative position', code: 'EINVAL', call: pw('/a', new Uint8Array(10), -1) },
    { name: 'pwrite: position past 2^53', code: 'EINVAL', call: pw('/a', new Uint8Array(10), 2 ** 53) },
    { name: 'pwrite: past the largest file size', code: 'EFBIG', call: pw('/a', new Uint8Array(10), 2 ** 32 * bs) },
    { name: 'pwrite: read-only open', code: 'EROFS', open: ro, call: pw('/a', new Uint8Array(10), 0) },
    { name: 'openFile: missing path', code: 'ENOENT', call: pw('/nope', new Uint8Array(10), 0) },
    { name: 'openFile: a directory', code: 'EISDIR', call: tr('/d', 0) },
    { name: 'truncate: negative size', code: 'EINVAL', call: tr('/a', -1) },
    { name: 'truncate: read-only open', code: 'EROFS', open: ro, call: tr('/a', 0) },
    { name: 'defrag: read-only open', code: 'EROFS', open: ro, call: (f) => defrag(f) },
    { name: 'transact: read-only open', code: 'EROFS', open: ro, call: (f) => f.transact(async () => 1) },
  ];
}

describe.skipIf(!HAVE_E2FSPROGS)('a failed call leaves the image byte-for-byte unchanged', () => {
  let src: string;
  beforeAll(() => {
    src = buildSource();
  });

  for (const v of [
    { label: 'ext4 4k, journal, metadata_csum', opts: ['-b', '4096'] },
    { label: 'ext4 1k, journal, ^metadata_csum', opts: ['-b', '1024', '-O', '^metadata_csum'] },
    { label: 'ext4 4k, no journal', opts: ['-b', '4096', '-O', '^has_journal'] },
  ]) {
    it(`${v.label}: every error path`, async () => {
      const img = tmpPath('unchanged.img');
      mkfs('ext4', img, 8 * 1024 * 1024, v.opts, src);
      const bs = Number(dumpe2fsHeader(img)['Block size']);
      expect(await runCases(img, extentCases(bs))).toEqual([]);
      expectE2fsckClean(img, v.label);
    });
  }

  it('ext3 (block-mapped files): allocate, pwrite and movedata refuse with EOPNOTSUPP', async () => {
    const img = tmpPath('unchanged-ext3.img');
    mkfs('ext3', img, 8 * 1024 * 1024, ['-b', '1024'], src);
    const bad = await runCases(img, [
      { name: 'allocate: past the largest block-mapped file', code: 'EFBIG', call: (f) => allocate(f, '/empty', { offset: (12 + 256 + 256 ** 2 + 256 ** 3) * 1024 - 1024, len: 2048 }) },
      { name: 'allocate: block-mapped file, over existing blocks', code: 'EEXIST', call: (f) => allocate(f, '/a', { offset: 0, len: 1024 }) },
      // 1 KiB blocks: 12 direct + 256 + 256² + 256³ logical blocks is the largest block-mapped file.
      { name: 'pwrite: past the largest block-mapped file', code: 'EFBIG', call: pw('/a', new Uint8Array(10), (12 + 256 + 256 ** 2 + 256 ** 3) * 1024 - 5) },
      { name: 'truncate: past the largest block-mapped file', code: 'EFBIG', call: tr('/a', (12 + 256 + 256 ** 2 + 256 ** 3) * 1024 + 1) },
      { name: 'movedata: block-mapped files, range past data\'s EOF', code: 'EINVAL', call: (f) => movedata(f, '/a', '/space', { from: 0, len: 1024 * 1024 }) },
    ]);
    expect(bad).toEqual([]);
  });

  it('MMP: the MMP block taken for the session is put back as found when nothing was written', async () => {
    const img = tmpPath('unchanged-mmp.img');
    mkfs('ext4', img, 8 * 1024 * 1024, ['-b', '4096', '-O', 'mmp'], src);
    const open: OpenOptions = { write: true, mmp: { sleep: async () => undefined } };
    const bad = await runCases(img, [
      { name: 'allocate: over existing blocks', code: 'EEXIST', open, call: (f) => allocate(f, '/a', { offset: 0, len: 4096 }) },
      { name: 'movedata: missing data file', code: 'ENOENT', open, call: (f) => movedata(f, '/nope', '/space', { from: 0, len: 4096 }) },
    ]);
    expect(bad).toEqual([]);
    expectE2fsckClean(img, 'mmp');
  });

  it('a wrong free-inode count is not corrected on disk by an open whose only call fails; the first commit corrects it', async () => {
    const img = tmpPath('unchanged-counts.img');
    mkfs('ext4', img, 8 * 1024 * 1024, ['-b', '4096'], src);
    const right = Number(dumpe2fsHeader(img)['Free inodes']);
    debugfs(img, [`ssv free_inodes_count ${right - 7}`], { write: true });
    expect(Number(dumpe2fsHeader(img)['Free inodes'])).toBe(right - 7);
    const bad = await runCases(img, [
      { name: 'allocate: over existing blocks', code: 'EEXIST', call: (f) => allocate(f, '/a', { offset: 0, len: 4096 }) },
      { name: 'movedata: missing data file', code: 'ENOENT', call: (f) => movedata(f, '/nope', '/space', { from: 0, len: 4096 }) },
      { name: 'open and close only', code: 'no error', call: async () => undefined },
    ]);
    expect(bad).toEqual([]);
    // The correction rides with the first transaction that commits.
    const f = await Filesystem.open(img, { write: true });
    try {
      expect(await allocate(f, '/empty', { offset: 0, len: 4096 })).toBe(4096);
    } finally {
      await f.close();
    }
    expect(f.writeStats.transactions).toBe(1);
    expect(Number(dumpe2fsHeader(img)['Free inodes'])).toBe(right);
    expectE2fsckClean(img, 'after the first commit');
  });
});
