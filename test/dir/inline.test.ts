/**
 * parseInlineDir against kernel-written inline-data directories (loop mount,
 * needs root): entries in i_block after the parent inode, continued in the
 * system.data xattr (read with debugfs ea_get), checked against debugfs ls -p.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseInlineDir, liveEntries, INLINE_IBLOCK_SIZE } from '../../lib/ext4/directory.js';
import { loopSkipReason, readBytes, readSb, run, tempDir, outcome } from './helpers.js';
import { assertClean, detachAll } from './images.js';

const skipReason = loopSkipReason();
if (skipReason) console.log(`test/dir/inline.test.ts: skipping kernel inline-directory tests: ${skipReason}`);

let work = '';
let img = '';
const DIRS: Record<string, string[]> = {
  empty: [],
  two: ['f1', 'f2'],
  spill: ['name_111', 'name_222', 'name_333', 'name_444', 'name_555'],
  mixed: ['é', 'x'.repeat(20), 'ab'],
};

beforeAll(() => {
  if (skipReason) return;
  work = tempDir('ext4kit-inline-');
  img = join(work, 'inline.img');
  const mnt = join(work, 'mnt');
  mkdirSync(mnt);
  run('mkfs.ext4', ['-q', '-F', '-O', 'inline_data', '-b', '4096', img, '32M']);
  run('mount', ['-o', 'loop', img, mnt]);
  try {
    for (const [d, names] of Object.entries(DIRS)) {
      mkdirSync(join(mnt, d));
      for (const n of names) writeFileSync(join(mnt, d, n), '');
    }
  } finally {
    try {
      run('umount', [mnt]);
    } finally {
      detachAll(img);
    }
  }
  assertClean(img);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function inlineAreas(dir: string): { ino: number; iblock: Uint8Array; xattr: Uint8Array } {
  const sb = readSb(img);
  const imap = run('debugfs', ['-R', `imap /${dir}`, img]);
  const m = /Inode (\d+) is part of block group \d+\s+located at block (\d+), offset 0x([0-9a-f]+)/.exec(imap);
  if (!m) throw new Error(`cannot parse imap: ${imap}`);
  const pos = Number(m[2]) * sb.blockSize + parseInt(m[3]!, 16);
  const iblock = readBytes(img, pos + 0x28, INLINE_IBLOCK_SIZE);
  const out = join(work, `${dir}.xattr`);
  run('debugfs', ['-R', `ea_get -f ${out} /${dir} system.data`, img]);
  return { ino: Number(m[1]), iblock, xattr: new Uint8Array(readFileSync(out)) };
}

/** debugfs ls -p: name → inode. */
function debugfsLs(dir: string): Map<string, number> {
  const out = run('debugfs', ['-R', `ls -p /${dir}`, img]);
  const m = new Map<string, number>();
  for (const line of out.split('\n')) {
    const f = line.split('/');
    if (f.length >= 7 && f[1] !== '0') m.set(f[5]!, Number(f[1]));
  }
  return m;
}

describe.skipIf(!!skipReason)('inline-data directories written by the kernel', () => {
  for (const dir of Object.keys(DIRS)) {
    it(`/${dir}: '.', '..' and every name match debugfs ls`, () => {
      const { ino, iblock, xattr } = inlineAreas(dir);
      if (dir === 'spill') expect(xattr.length).toBeGreaterThan(0);
      if (dir === 'empty') expect(xattr.length).toBe(0);
      const entries = parseInlineDir(iblock, xattr, { kind: 'text', text: `inline directory ${ino}` }, { dirIno: ino, inodesCount: readSb(img).inodesCount });
      const got = new Map([...liveEntries(entries)].map((e) => [Buffer.from(e.name).toString('utf8'), e.inode]));
      expect(got).toEqual(debugfsLs(dir));
      expect(got.get('..')).toBe(2);
      expect(got.size).toBe(DIRS[dir]!.length + 2);
      if (dir === 'spill') expect(entries.some((e) => e.area === 'xattr' && e.inode !== 0)).toBe(true);
      for (const e of liveEntries(entries)) if (e.area !== 'synthetic') expect(e.fileType).toBe(1);
    });
  }

  it('a corrupted rec_len in i_block or in system.data gives EFSCORRUPTED', async () => {
    const { ino, iblock, xattr } = inlineAreas('spill');
    const b = iblock.slice();
    b[4 + 4] = 6; // first entry's rec_len
    expect(await outcome(() => parseInlineDir(b, xattr, { kind: 'text', text: `inline directory ${ino}` }))).toBe('EFSCORRUPTED');
    const x = xattr.slice();
    x[4] = 0xff;
    expect(await outcome(() => parseInlineDir(iblock, x, { kind: 'text', text: `inline directory ${ino}` }))).toBe('EFSCORRUPTED');
    expect(await outcome(() => parseInlineDir(iblock, xattr.subarray(0, xattr.length - 4), { kind: 'field', field: 'x' }))).toBe('EFSCORRUPTED');
  });
});
