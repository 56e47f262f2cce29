/**
 * Lookups in casefolded directories (issue 8 item 10) against e2fsprogs 1.47,
 * whose utf8-12.1 tables are the kernel's (this kernel has no CONFIG_UNICODE,
 * so no casefold image mounts here).
 *
 * The main image (1 KiB blocks, casefold feature) has
 *   /cf      casefold flag, ~380 names: an htree that e2fsck -fD indexed by the hash of the folded names,
 *   /cfsmall casefold flag, the hand-picked names: one block, linear,
 *   /raw     casefold flag, names that are not UTF-8 (flag set after e2fsck -D, which cannot hash them),
 *   /plain   no casefold flag, the same names as /cf (an htree hashed by the raw names).
 * Which spellings are "the same name" is not taken from our code: an oracle
 * image holds small casefolded directories — a stored name with one other
 * spelling, or a "different" spelling with the names it must differ from —
 * and e2fsck -fyD renames an entry whose fold equals its hash-order
 * predecessor's ("has a non-unique filename"). Inode numbers come from debugfs.
 * Lookups are checked with Filesystem.lookup/resolve: the same inode for every
 * same-name spelling (and the name reported as stored), ENOENT for the others.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Filesystem } from '../../lib/node.js';
import { INODE_FLAGS } from '../../lib/ext4/inode.js';
import { isExt4Error } from '../../lib/errors.js';
import { kernelReaddir } from '../../lib/ops/report.js';
import { mkfs, debugfs, debugfsStats, e2fsckFix, expectE2fsckClean, quoteDebugfs, which } from '../helpers/tools.js';
import { prng, tempDir } from './helpers.js';

const u8 = (s: string) => Buffer.from(s, 'utf8');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const show = (b: Uint8Array) => JSON.stringify(Buffer.from(b).toString('utf8')) + ` <${hex(b)}>`;

interface Named {
  stored: Buffer;
  /** Other spellings meant to be the same name (confirmed by the oracle). */
  same: Buffer[];
  /** Spellings meant to be a different name (confirmed by the oracle). */
  different: Buffer[];
}

/** Hand-picked names: case, ß/ss, composed/decomposed accents, and the kernel's own rules. */
const SPECIAL: { stored: string; same: string[]; different: string[] }[] = [
  { stored: 'MixedCase.Bin', same: ['mixedcase.bin', 'MIXEDCASE.BIN', 'mIXEDcASE.bIN', 'MixedCase\u200B.Bin', 'MixedCase.Bin\u00AD'], different: ['MixedCase.Bin ', 'MixedCase.Bim'] },
  // ß folds to ss (CaseFolding status F), as do ẞ (U+1E9E) and ss written with long s (U+017F → s).
  { stored: 'straße', same: ['STRASSE', 'strasse', 'Straße', 'STRAẞE', 'ſtraſſe'], different: ['strase', 'straβe', 'strasze'] },
  // é stored composed, looked up decomposed and the other way round.
  { stored: 'caf\u00e9', same: ['cafe\u0301', 'CAF\u00c9', 'CAFE\u0301'], different: ['cafe', 'caf\u00e8', 'cafe\u0300'] },
  { stored: 'nai\u0308ve', same: ['na\u00efve', 'NA\u00cfVE', 'NAI\u0308VE'], different: ['naive', 'nai\u0302ve'] },
  { stored: '\u01c4emal', same: ['\u01c5emal', '\u01c6emal', '\u01c4EMAL'], different: ['dzemal', 'd\u017eemal'] },
  { stored: 'ΣΊΣΥΦΟΣ', same: ['σίσυφος', 'Σίσυφος', 'ΣΙ\u0301ΣΥΦΟΣ', 'σίσυφοσ'], different: ['σισυφος'] },
  // ﬁ has a full case folding to "fi" (even though its compatibility decomposition is not applied).
  { stored: '\ufb01le', same: ['file', 'FILE', '\ufb01LE'], different: ['\ufb02le'] },
  { stored: '\u212aelvin', same: ['kelvin', 'KELVIN'], different: ['\u0138elvin'] },
  { stored: '\u212bngstr\u00f6m', same: ['\u00c5ngstr\u00f6m', 'A\u030angstro\u0308m', '\u00c5NGSTR\u00d6M'], different: ['Angstrom', '\u00c4ngstr\u00f6m'] },
  // İ folds to i + U+0307 (status F; the Turkic T mapping is not used): plain i or dotless ı differ.
  { stored: '\u0130stanbul', same: ['i\u0307stanbul', 'I\u0307STANBUL'], different: ['istanbul', 'ISTANBUL', '\u0131stanbul'] },
  { stored: '한국어', same: ['한국어'.normalize('NFD')], different: ['한국'] },
  { stored: 'ᏣᎳᎩ', same: ['ᏣᎳᎩ'.toLowerCase()], different: ['ᏣᎳ'] },
  // Canonical decomposition only: fullwidth letters fold among themselves, circled digits stay.
  { stored: '\uff21\uff22\uff23', same: ['\uff41\uff42\uff43'], different: ['abc', 'ABC'] },
  { stored: '\u2460\u2461', same: [], different: ['12'] },
  { stored: 'q\u0301\u0328', same: ['Q\u0328\u0301'], different: ['q\u0301', 'q\u0328'] },
  // Default_Ignorable_Code_Points fold to nothing (the kernel's rule, still in force in 6.18).
  { stored: 'zero\u200bwidth', same: ['zerowidth', 'ZERO\u2060WIDTH'], different: ['zero width'] },
  // Unicode 12.1, not the runtime's: Ꟈ (U+A7C7, Unicode 13) has no folding there, and U+1AC1
  // (Unicode 13) is a class-0 character that stops the reordering of the marks around it.
  { stored: '\ua7c7x', same: [], different: ['\ua7c7x'.toLowerCase()] },
  { stored: 'a\u0301\u1ac1\u0316x', same: [], different: ['a\u0316\u0301\u1ac1x'] },
  // A stray continuation byte after a complete character is passed through by the kernel's cursor.
  { stored: 'x\x80y', same: ['X\x80Y'], different: ['x\x81y'] },
];

/** Letters of Unicode ≤ 11 with case (and a few without), by script. */
const POOLS: [number, number][] = [
  [0x41, 0x5a], [0xc0, 0xd6], [0xd8, 0xdf], [0x100, 0x17f], [0x391, 0x3a9], [0x386, 0x38f], [0x390, 0x390], [0x3b0, 0x3b0],
  [0x400, 0x42f], [0x531, 0x556], [0x587, 0x587], [0x10a0, 0x10c5], [0x1c90, 0x1cba], [0x13a0, 0x13f5], [0x1e00, 0x1eff],
  [0x1f00, 0x1f7d], [0xff21, 0xff3a], [0x10400, 0x10427], [0x104b0, 0x104d3], [0x10c80, 0x10cb2], [0x1e900, 0x1e921],
  [0x16e40, 0x16e5f], [0xac00, 0xd7a3], [0x5d0, 0x5ea], [0x4e00, 0x4e40],
];
// Combining marks, except U+0345: it folds to ι, a class-0 letter, so a name and its NFD can fold
// apart (ᾡ̐ is ὡι̐ but its NFD ᾡ̐ is ὡ̐ι) — Linux and e2fsprogs compare them as different names.
const MARKS: [number, number] = [0x300, 0x344];

function generated(n: number): Named[] {
  const rnd = prng(0xcaf01d);
  const pick = ([a, b]: [number, number]) => a + (rnd() % (b - a + 1));
  const out: Named[] = [];
  while (out.length < n) {
    let word = '';
    const len = 3 + (rnd() % 8);
    while ([...word].length < len) {
      const cp = pick(POOLS[rnd() % POOLS.length]!);
      const ch = String.fromCodePoint(cp);
      if (!/\p{L}/u.test(ch)) continue; // holes in the ranges
      word += ch;
      if (rnd() % 5 === 0) word += String.fromCodePoint(pick(MARKS));
    }
    const tag = `${out.length}_`;
    const stored = tag + word.normalize(rnd() % 2 ? 'NFC' : 'NFD');
    const same = new Set([tag + word.toUpperCase(), tag + word.toLowerCase(), tag + word.normalize('NFD'), tag + word.normalize('NFC'), tag + word.toUpperCase().normalize('NFD')]);
    const cps = [...word];
    const different = [tag + cps.slice(0, -1).join('')];
    out.push({ stored: u8(stored), same: [...same].map(u8), different: different.map(u8) });
  }
  return out;
}

function prepare(): Named[] {
  const all: Named[] = [
    ...SPECIAL.map((s) => ({ stored: rawOrUtf8(s.stored), same: s.same.map(rawOrUtf8), different: s.different.map(rawOrUtf8) })),
    ...generated(360),
  ];
  // Byte-distinct spellings only; none may be byte-equal to another stored name.
  const stored = new Set(all.map((n) => hex(n.stored)));
  if (stored.size !== all.length) throw new Error('test data: duplicate stored names');
  for (const n of all) {
    n.same = dedupe(n.same.filter((v) => !v.equals(n.stored)));
    n.different = dedupe(n.different);
    for (const v of [...n.same, ...n.different]) {
      if (v.length > 255) throw new Error(`test data: name too long ${show(v)}`);
      if (stored.has(hex(v))) throw new Error(`test data: spelling ${show(v)} is another stored name`);
    }
  }
  return all;
}

/** Strings with C1-range code units (\x80..\x9f) stand for raw bytes (the x\x80y case); others are UTF-8. */
function rawOrUtf8(s: string): Buffer {
  return /[\x80-\x9f]/.test(s) ? Buffer.from(s, 'latin1') : u8(s);
}

function dedupe(list: Buffer[]): Buffer[] {
  const seen = new Set<string>();
  return list.filter((b) => (seen.has(hex(b)) ? false : (seen.add(hex(b)), true)));
}

function writeFiles(dir: Buffer | string, names: Buffer[], content: (i: number) => string = () => ''): void {
  mkdirSync(dir, { recursive: true });
  names.forEach((n, i) => writeFileSync(Buffer.concat([Buffer.from(typeof dir === 'string' ? dir : dir), Buffer.from('/'), n]), content(i)));
}

/** `debugfs -R "ls -p DIR"` read as bytes: name (hex) → inode. */
function debugfsLs(img: string, dir: string): Map<string, number> {
  const prog = which('debugfs');
  if (!prog) throw new Error('debugfs is not installed (the oracle of this test)');
  const r = spawnSync(prog, ['-R', `ls -p ${dir}`, img], { encoding: 'buffer', env: { ...process.env, LANG: 'C', LC_ALL: 'C' } });
  if (r.status !== 0) throw new Error(`debugfs ls ${dir} failed: ${r.stderr.toString()}`);
  const out = new Map<string, number>();
  let start = 0;
  const buf = r.stdout;
  for (let i = 0; i <= buf.length; i++) {
    if (i < buf.length && buf[i] !== 0x0a) continue;
    const line = buf.subarray(start, i);
    start = i + 1;
    // /ino/mode/uid/gid/name/size/ — a name cannot hold '/'.
    const parts: Buffer[] = [];
    let s = 0;
    for (let k = 0; k <= line.length; k++) if (k === line.length || line[k] === 0x2f) (parts.push(line.subarray(s, k)), (s = k + 1));
    if (parts.length < 7 || parts[0]!.length !== 0) continue;
    const name = parts[5]!;
    if (name.length === 0 || (name.length <= 2 && name.every((c) => c === 0x2e))) continue;
    out.set(hex(name), Number(parts[1]!.toString()));
  }
  return out;
}

/** Set EXT4_CASEFOLD_FL on directories, keeping their other flags (read back with debugfs stat). */
function setCasefold(img: string, dirs: string[]): void {
  const stats = debugfsStats(img, dirs);
  const cmds = dirs.map((d) => {
    const st = stats.get(d);
    if (!st) throw new Error(`debugfs stat ${d} failed`);
    return `set_inode_field ${quoteDebugfs(d)} flags 0x${((st.flags | INODE_FLAGS.CASEFOLD) >>> 0).toString(16)}`;
  });
  debugfs(img, cmds, { write: true });
}

/** Directory paths e2fsck -fyD reported a duplicate (equal after folding) in, with counts. */
function duplicatesByDir(output: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of output.split('\n')) {
    const r = / in (\/[A-Za-z0-9_/]*) \(\d+\) has a non-unique filename\.$/.exec(line);
    if (r) m.set(r[1]!, (m.get(r[1]!) ?? 0) + 1);
  }
  return m;
}

let work = '';
let names: Named[] = [];
let mainImg = '';
let strictImg = '';
const dbg: Record<string, Map<string, number>> = {};
const RAW_NAMES = [Buffer.from('ab\xff', 'latin1'), Buffer.from('Valid-Name'), Buffer.from('x\x80y', 'latin1')];

beforeAll(() => {
  work = tempDir('ext4kit-casefold-');
  names = prepare();
  const special = names.slice(0, SPECIAL.length);

  // Oracle: which spellings does e2fsprogs fold to the same name?
  const osrc = join(work, 'oracle-src');
  // One directory per (stored, same) pair: e2fsck compares each entry with its hash-order
  // predecessor only, and a renamed entry no longer matches the next one.
  const pairs: string[] = [];
  names.forEach((n, j) =>
    n.same.forEach((v, k) => {
      writeFiles(join(osrc, 'pos', `${j}_${k}`), [n.stored, v]);
      pairs.push(`/pos/${j}_${k}`);
    }),
  );
  // A "different" spelling with every hand-picked name (they are mutually distinct, so an equal fold
  // would sit next to its twin in hash order) or, for a generated one, with its own stored name
  // (generated names carry a unique "<index>_" prefix, which folding keeps).
  const negs: string[] = [];
  names.forEach((n, j) =>
    n.different.forEach((v, k) => {
      writeFiles(join(osrc, 'neg', `${j}_${k}`), [v, ...(j < SPECIAL.length ? special.map((x) => x.stored) : [n.stored])]);
      negs.push(`/neg/${j}_${k}`);
    }),
  );
  const oracle = join(work, 'oracle.img');
  mkfs('ext4', oracle, 32 << 20, ['-O', 'casefold', '-b', '1024', '-N', '12288'], osrc);
  setCasefold(oracle, [...pairs, ...negs]);
  const dups = duplicatesByDir(e2fsckFix(oracle, ['-D']).output);
  const wrong: string[] = [];
  names.forEach((n, j) => {
    n.same.forEach((v, k) => {
      if (dups.get(`/pos/${j}_${k}`) !== 1) wrong.push(`e2fsck does not fold ${show(v)} to ${show(n.stored)}`);
    });
    n.different.forEach((v, k) => {
      if (dups.get(`/neg/${j}_${k}`)) wrong.push(`e2fsck folds ${show(v)} like a stored name`);
    });
  });
  if (wrong.length) throw new Error(`oracle disagrees with the test data:\n${wrong.join('\n')}`);

  // The image under test.
  const src = join(work, 'src');
  const stored = names.map((n) => n.stored);
  writeFiles(join(src, 'cf'), stored, (i) => `cf ${i}\n`);
  writeFiles(join(src, 'plain'), stored, (i) => `plain ${i}\n`);
  writeFiles(join(src, 'cfsmall'), special.map((n) => n.stored), (i) => `small ${i}\n`);
  writeFiles(join(src, 'raw'), RAW_NAMES);
  mainImg = join(work, 'main.img');
  mkfs('ext4', mainImg, 8 << 20, ['-O', 'casefold', '-b', '1024', '-N', '2048'], src);
  setCasefold(mainImg, ['/cf', '/cfsmall']);
  const fix = e2fsckFix(mainImg, ['-D']);
  if (duplicatesByDir(fix.output).size) throw new Error(`e2fsck -D found duplicates:\n${fix.output}`);
  setCasefold(mainImg, ['/raw']); // after -D: e2fsprogs cannot hash names that are not UTF-8
  expectE2fsckClean(mainImg, 'casefold image');
  const flags = debugfsStats(mainImg, ['/cf', '/cfsmall', '/plain']);
  if (!(flags.get('/cf')!.flags & INODE_FLAGS.INDEX) || !(flags.get('/plain')!.flags & INODE_FLAGS.INDEX)) throw new Error('/cf and /plain should be htrees');
  if (flags.get('/cfsmall')!.flags & INODE_FLAGS.INDEX) throw new Error('/cfsmall should be linear');
  for (const d of ['/cf', '/cfsmall', '/plain', '/raw']) dbg[d] = debugfsLs(mainImg, d);

  // Strict encoding: invalid UTF-8 lookups are refused.
  const ssrc = join(work, 'strict-src');
  writeFiles(join(ssrc, 'cf'), [u8('MixedCase.Bin')]);
  strictImg = join(work, 'strict.img');
  mkfs('ext4', strictImg, 4 << 20, ['-O', 'casefold', '-E', 'encoding=utf8,encoding_flags=strict', '-b', '1024'], ssrc);
  setCasefold(strictImg, ['/cf']);
  expectE2fsckClean(strictImg, 'strict casefold image');
}, 120_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

async function withFs<T>(img: string, fn: (fs: Filesystem) => Promise<T>): Promise<T> {
  const fs = await Filesystem.open(img);
  try {
    return await fn(fs);
  } finally {
    await fs.close();
  }
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (isExt4Error(e)) return e.code;
    throw e;
  }
}

describe('casefolded directories (e2fsprogs 1.47 utf8-12.1 as the oracle)', () => {
  for (const dir of ['/cf', '/cfsmall'] as const) {
    const kind = dir === '/cf' ? 'htree' : 'linear';
    it(`${kind} ${dir}: spellings e2fsck folds to a stored name find that entry's inode, the others are ENOENT`, async () => {
      await withFs(mainImg, async (fs) => {
        const d = await fs.resolve(dir);
        expect(d.flags & INODE_FLAGS.CASEFOLD).toBeTruthy();
        const list = dir === '/cf' ? names : names.slice(0, SPECIAL.length);
        const failures: string[] = [];
        let same = 0;
        for (const n of list) {
          const ino = dbg[dir]!.get(hex(n.stored));
          if (!ino) throw new Error(`debugfs does not list ${show(n.stored)} in ${dir}`);
          for (const v of [n.stored, ...n.same]) {
            const e = await fs.lookup(d, v);
            same++;
            if (e?.ino !== ino) failures.push(`${show(v)} → ${e ? e.ino : 'ENOENT'}, want ${ino} (${show(n.stored)})`);
            else if (!Buffer.from(e.name).equals(n.stored)) failures.push(`${show(v)} reported as ${show(e.name)}, stored ${show(n.stored)}`);
          }
          for (const v of n.different) {
            const e = await fs.lookup(d, v);
            if (e) failures.push(`${show(v)} → inode ${e.ino} ${show(e.name)}, want ENOENT`);
          }
        }
        expect(failures.slice(0, 20)).toEqual([]);
        expect(same).toBeGreaterThan(list.length * 2);
      });
    });
  }

  it('casefolding is per directory: paths resolve through /cf, not through /plain or the root; readdir lists names as stored', async () => {
    await withFs(mainImg, async (fs) => {
      const want = dbg['/cf']!.get(hex(u8('MixedCase.Bin')))!;
      const i = await fs.resolve('/cf/mixedcase.bin');
      expect(i.ino).toBe(want);
      expect(Buffer.from(await fs.read(i, 0, i.size)).toString()).toBe('cf 0\n');
      expect((await fs.resolve('/cf/STRASSE')).ino).toBe(dbg['/cf']!.get(hex(u8('straße'))));
      expect(await code(fs.resolve('/cf/strase'))).toBe('ENOENT');
      expect(await code(fs.resolve('/CF/mixedcase.bin'))).toBe('ENOENT'); // the root is not casefolded

      const plain = await fs.resolve('/plain');
      expect(plain.flags & INODE_FLAGS.CASEFOLD).toBe(0);
      const wrong: string[] = [];
      for (const n of names) {
        const e = await fs.lookup(plain, n.stored);
        if (e?.ino !== dbg['/plain']!.get(hex(n.stored))) wrong.push(`stored ${show(n.stored)} → ${e?.ino}`);
        for (const v of n.same) if (await fs.lookup(plain, v)) wrong.push(`${show(v)} found in /plain`);
      }
      expect(wrong.slice(0, 20)).toEqual([]);

      for (const dir of ['/cf', '/cfsmall', '/raw']) {
        const got = (await fs.readdirRaw(await fs.resolve(dir))).filter((e) => !(e.name.length <= 2 && e.name.every((c) => c === 0x2e)));
        expect(new Map(got.map((e) => [hex(e.name), e.ino]))).toEqual(dbg[dir]);
      }
    });
  });

  it('hash-order readdir (frag/nftw order) of a casefolded htree hashes the folded names: the order e2fsck -D wrote', async () => {
    // e2fsck -D rebuilds an htree with its entries sorted by (hash, minor hash) of the folded name,
    // the order Linux's readdir returns them in; debugfs ls lists the on-disk order.
    await withFs(mainImg, async (fs) => {
      const got = (await kernelReaddir(fs, await fs.resolve('/cf'))).map((e) => hex(e.name));
      expect(got).toEqual([...dbg['/cf']!.keys()]);
    });
  });

  it('names that are not UTF-8 match byte for byte only; strict encoding refuses them', async () => {
    await withFs(mainImg, async (fs) => {
      const d = await fs.resolve('/raw');
      expect(d.flags & INODE_FLAGS.CASEFOLD).toBeTruthy();
      const ino = (b: Buffer) => dbg['/raw']!.get(hex(b));
      expect((await fs.lookup(d, Buffer.from('ab\xff', 'latin1')))?.ino).toBe(ino(Buffer.from('ab\xff', 'latin1')));
      expect(await fs.lookup(d, Buffer.from('AB\xff', 'latin1'))).toBeNull();
      expect((await fs.lookup(d, u8('VALID-NAME')))?.ino).toBe(ino(u8('Valid-Name')));
      expect((await fs.lookup(d, Buffer.from('X\x80Y', 'latin1')))?.ino).toBe(ino(Buffer.from('x\x80y', 'latin1')));
    });
    await withFs(strictImg, async (fs) => {
      const d = await fs.resolve('/cf');
      expect(await fs.lookup(d, u8('MIXEDCASE.BIN'))).not.toBeNull();
      expect(await code(fs.lookup(d, Buffer.from('ab\xff', 'latin1')))).toBe('EINVAL');
      expect(await code(fs.lookup(d, Buffer.from([0x80, 0x41])))).toBe('EINVAL');
    });
  });
});
