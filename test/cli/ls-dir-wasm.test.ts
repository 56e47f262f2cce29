/**
 * `ls --json`'s whole-directory path (lib/ext4/dir-list-wasm.ts with ls-json-wasm.ts's row
 * writer): a plain directory's rows made by WebAssembly must be the bytes the row-by-row walk
 * writes, and the Filesystem path's (listJson) — on images of every shape (4 KiB and 1 KiB blocks,
 * with and without metadata_csum, ext2, inodes over many groups, deleted entries, htrees made by
 * e2fsck -D with 4 KiB and 1 KiB blocks, with and without metadata_csum, and one of two index
 * levels, hostile ASCII names, hard links, fifos, times before 1970 and after 2038, ids past
 * 16 bits), recursive or not. What it must leave to the walk (symlinks, devices, non-ASCII names,
 * subdirectories to descend, inline directories) it leaves, and the tests check it answered where
 * it should, so they fail if the path is silently never taken. On randomly damaged copies (plain
 * and indexed directories, the dx root and node blocks' shape bytes among the targets) both
 * writers must agree: the same bytes or the same error.
 */
import { spawnSync } from 'node:child_process';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { openDiskSource } from '../../lib/ext4/disk-source.js';
import { DiskReader } from '../../lib/ext4/disk-reader.js';
import { walkList } from '../../lib/ops/inspect.js';
import { LsJson } from '../../lib/cli/commands/ls-json.js';
import { listJson } from '../../lib/cli/commands/ls.js';
import { lsOnDisk } from '../../lib/cli/commands/ls-run.js';
import { dirListWasmBytes } from '../../lib/ext4/dir-list-wasm-code.js';
import { classifyDirBlock } from '../../lib/ext4/htree.js';
import { DIR_LIST_WASM } from '../../lib/ext4/dir-list-wasm-bytes.js';
import { xorshift32 } from '../../lib/io/prng.js';
import { mkfs, type FsKind } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

/** ASCII names JSON escapes, names sharing their first 8 bytes (the sort's key), the longest name. */
const HOSTILE = ['a"b', 'back\\slash', 'tab\tname', 'nl\nname', 'ctl\x01\x1f', 'del\x7f', ' lead', 'x'.repeat(255), 'abcdefgh', 'abcdefgh0', 'abcdefg', 'abcdefgh\x01', 'abcdefgg\x7f', '~', '-', '0', 'A', 'a', 'Z9'];

/** The host tree every image is made from. */
function fillTree(src: string): void {
  const flat = path.join(src, 'flat');
  nodefs.mkdirSync(flat, { recursive: true });
  for (let i = 0; i < 300; i++) nodefs.writeFileSync(path.join(flat, `f${((i * 7919) % 300).toString().padStart(i % 3, '0')}-${i}`), '');
  for (const n of HOSTILE) nodefs.writeFileSync(path.join(flat, n), n);
  nodefs.writeFileSync(path.join(flat, 'size1'), 'x');
  nodefs.writeFileSync(path.join(flat, 'size12289'), Buffer.alloc(12289, 7));
  nodefs.linkSync(path.join(flat, 'size1'), path.join(flat, 'hardlink-size1'));
  for (const [n, mode] of [['suid', 0o4755], ['sticky', 0o1777], ['none', 0o000], ['rw', 0o640]] as const) {
    nodefs.writeFileSync(path.join(flat, n), '');
    nodefs.chmodSync(path.join(flat, n), mode);
  }
  for (const [n, uid, gid] of [['nobody', 65534, 65534], ['bigids', 1_000_000, 3_000_000_000]] as const) {
    nodefs.writeFileSync(path.join(flat, n), '');
    nodefs.chownSync(path.join(flat, n), uid, gid);
  }
  for (const [n, t] of [['epoch', 0], ['before1970', -86_400 * 365], ['y2037', 2_100_000_000]] as const) {
    nodefs.writeFileSync(path.join(flat, n), '');
    nodefs.utimesSync(path.join(flat, n), t, t);
  }
  expect(spawnSync('mkfifo', [path.join(flat, 'fifo')]).status).toBe(0);
  nodefs.mkdirSync(path.join(flat, 'subdir')); // a row; the reason -R leaves /flat to the walk
  // Leaves for -R, an empty directory, one with a time after 2038 (its row is the walk's: epoch bits, set below).
  for (const d of ['tree/a', 'tree/b', 'tree/c/d', 'empty', 'late']) nodefs.mkdirSync(path.join(src, d), { recursive: true });
  for (const f of ['tree/a/x', 'tree/a/y', 'tree/c/d/e', 'tree/c/f']) nodefs.writeFileSync(path.join(src, f), f);
  nodefs.writeFileSync(path.join(src, 'late', 'f'), '');
  nodefs.utimesSync(path.join(src, 'late', 'f'), 2 ** 31 + 100, 2 ** 31 + 100);
  // What the walk keeps: a symlink, a non-ASCII name.
  nodefs.mkdirSync(path.join(src, 'mixed'));
  nodefs.writeFileSync(path.join(src, 'mixed', 'plain'), '');
  nodefs.symlinkSync('plain', path.join(src, 'mixed', 'link'));
  nodefs.mkdirSync(path.join(src, 'utf8'));
  nodefs.writeFileSync(path.join(src, 'utf8', 'caf\u00e9'), '');
}

interface Outcome {
  out?: string;
  error?: string;
  /** The directories the WebAssembly path listed. */
  answered: string[];
}

/** `ls --json` through a DiskReader on `bytes`, with the whole-directory path or without. */
async function viaReader(bytes: Uint8Array, p: string, recursive: boolean, wasmDirs: boolean, verify = true): Promise<Outcome> {
  const dev = new MemoryDevice(bytes, { readOnly: true });
  const answered: string[] = [];
  try {
    const src = await openDiskSource(dev, { verify });
    if (src === null) return { error: 'journal', answered };
    const reader = new DiskReader(src);
    const out = new LsJson(wasmDirs ? { source: reader } : {});
    const directory = out.directory.bind(out);
    out.directory = async (dp, dir, r) => {
      const ok = await directory(dp, dir, r);
      if (ok) answered.push(dp);
      return ok;
    };
    for await (const _ of walkList(reader, p, { recursive }, out));
    return { out: Buffer.from(out.finish()).toString('latin1'), answered };
  } catch (e) {
    return { error: `${(e as { code?: string }).code}: ${(e as Error).message}`, answered };
  }
}

async function viaFilesystem(img: string, p: string, recursive: boolean): Promise<string> {
  const fs = await Filesystem.open(img);
  try {
    return Buffer.from(await listJson(fs, p, recursive)).toString('latin1');
  } finally {
    await fs.close();
  }
}

describe('ls --json: whole plain directories by WebAssembly', () => {
  let dir: string;
  let src: string;
  const images: Record<string, string> = {};
  beforeAll(() => {
    dir = tmpDir('ls-dir-wasm');
    src = path.join(dir, 'src');
    fillTree(src);
    const make = (name: string, kind: FsKind, size: number, opts: string[]) => {
      const img = path.join(dir, `${name}.img`);
      mkfs(kind, img, size, opts, src);
      // A time past 2038 as the kernel stores it (epoch bits in i_mtime_extra; mkfs -d keeps 32 bits).
      const r = spawnSync('debugfs', ['-w', '-R', 'sif /late/f mtime_extra 1', img], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      images[name] = img;
    };
    make('ext4-4k', 'ext4', 64 << 20, ['-b', '4096']);
    make('ext4-1k-nocsum', 'ext4', 32 << 20, ['-b', '1024', '-O', '^metadata_csum']);
    make('ext2', 'ext2', 32 << 20, ['-b', '1024']);
    // 128 inodes per group: /flat's inodes span several groups and table runs.
    make('ext4-groups', 'ext4', 16 << 20, ['-b', '1024', '-g', '1024', '-N', '2048']);
    // Indexed directories (e2fsck -D), and deleted entries (debugfs rm) in a copy each.
    for (const [name, from, cmd] of [['htree', 'ext4-4k', ['e2fsck', '-fyD']], ['htree-1k-nocsum', 'ext4-1k-nocsum', ['e2fsck', '-fyD']], ['deleted', 'ext4-4k', null]] as const) {
      const img = path.join(dir, `${name}.img`);
      nodefs.copyFileSync(images[from]!, img);
      if (cmd) spawnSync(cmd[0], [...cmd.slice(1), img]);
      else for (const f of ['f0-0', 'f3-1', 'abcdefgh', 'size12289', 'f299-9'].map((n) => `/flat/${n}`)) expect(spawnSync('debugfs', ['-w', '-R', `rm ${f}`, img]).status).toBe(0);
      images[name] = img;
    }
    // Two index levels (indirect_levels 1): 4,000 names of 30 bytes fill ~170 1 KiB leaves, more than a root's 123 slots.
    const bigSrc = path.join(dir, 'big-src');
    nodefs.mkdirSync(path.join(bigSrc, 'big'), { recursive: true });
    for (let i = 0; i < 4000; i++) nodefs.writeFileSync(path.join(bigSrc, 'big', `a-name-of-thirty-bytes-${String((i * 2654435761) % 4000).padStart(5, '0')}-${i}`), '');
    for (const [name, opts] of [['twolevel', ['-b', '1024']], ['twolevel-nocsum', ['-b', '1024', '-O', '^metadata_csum']]] as const) {
      const img = path.join(dir, `${name}.img`);
      mkfs('ext4', img, 32 << 20, [...opts], bigSrc);
      spawnSync('e2fsck', ['-fyD', img]);
      images[name] = img;
    }
  });

  /** The dx root's indirect_levels of directory `p` (debugfs htree), -1 when not indexed. */
  const levels = (img: string, p: string): number => {
    const m = /Indirect levels: (\d+)/.exec(spawnSync('debugfs', ['-R', `htree ${p}`, img], { encoding: 'utf8' }).stdout);
    return m ? Number(m[1]) : -1;
  };
  afterAll(() => nodefs.rmSync(dir, { recursive: true, force: true }));

  it('runs the module its opcodes assemble (after a change: npx tsx scripts/dir-list-wasm-bytes.ts)', () => {
    expect(DIR_LIST_WASM).toBe(Buffer.from(dirListWasmBytes()).toString('base64'));
  });

  const CASES: [string, boolean, string[]][] = [
    ['/flat', false, ['/flat']],
    ['/flat', true, ['/flat/subdir']], // a subdirectory to descend: the walk's (the empty subdirectory is plain)
    ['/tree', true, ['/tree/a', '/tree/b', '/tree/c/d']],
    ['/tree/c', false, ['/tree/c']],
    ['/empty', true, ['/empty']],
    ['/late', false, []],
    ['/mixed', false, []],
    ['/utf8', false, []],
    ['/', false, ['/']],
    ['/', true, ['/flat/subdir', '/tree/a', '/tree/b', '/tree/c/d', '/empty', '/lost+found']],
  ];

  it.each(['ext4-4k', 'ext4-1k-nocsum', 'ext2', 'ext4-groups', 'deleted', 'htree', 'htree-1k-nocsum'])('%s: the walk’s bytes and the Filesystem’s, answered where plain', async (name) => {
    const img = images[name]!;
    // The htree images' /flat is indexed (e2fsck -D indexes a directory of more than a block), the others' not.
    expect(levels(img, '/flat')).toBe(name.startsWith('htree') ? 0 : -1);
    const bytes = new Uint8Array(nodefs.readFileSync(img));
    for (const [p, recursive, plain] of CASES) {
      const what = `${name} ${p}${recursive ? ' -R' : ''}`;
      const fast = await viaReader(bytes, p, recursive, true);
      const walk = await viaReader(bytes, p, recursive, false);
      expect(fast.error, what).toBeUndefined();
      expect(fast.out === walk.out, what).toBe(true);
      expect(fast.out === (await viaFilesystem(img, p, recursive)), what).toBe(true);
      // Every plain directory, indexed or not, was listed whole.
      expect(fast.answered.sort(), what).toEqual([...plain].sort());
      expect(walk.answered).toEqual([]);
      // The CLI's fast script (ls-run.ts) answers with the same bytes.
      const cli = await lsOnDisk(img, p, { recursive, json: true, verify: true });
      expect(cli === null ? null : Buffer.concat(Array.isArray(cli) ? cli : [Buffer.from(cli as Uint8Array)]).toString('latin1'), what).toBe(fast.out);
    }
  });

  it.each(['twolevel', 'twolevel-nocsum'])('%s: a directory of two index levels, the walk’s bytes, listed whole', async (name) => {
    const img = images[name]!;
    expect(levels(img, '/big')).toBe(1);
    const bytes = new Uint8Array(nodefs.readFileSync(img));
    for (const [p, recursive, plain] of [['/big', false, ['/big']], ['/big', true, ['/big']], ['/', false, ['/']], ['/', true, ['/big', '/lost+found']]] as const) {
      const what = `${name} ${p}${recursive ? ' -R' : ''}`;
      const fast = await viaReader(bytes, p, recursive, true);
      const walk = await viaReader(bytes, p, recursive, false);
      expect(fast.error, what).toBeUndefined();
      expect(fast.out === walk.out, what).toBe(true);
      expect(fast.answered.sort(), what).toEqual([...plain].sort());
    }
  });

  /**
   * Damage `rounds` copies of `img` (1–3 bytes each, a bit flipped or zeroed, in `targets`: [offset,
   * length] pairs) and list `p` both ways, verifying or not: the same bytes or the same error.
   */
  async function fuzz(img: string, p: string, targets: [number, number][], rounds: number, seed: number): Promise<{ answered: number; errors: number }> {
    const base = new Uint8Array(nodefs.readFileSync(img));
    const next = xorshift32(seed);
    const rand = (n: number) => Math.floor(next() * n);
    let answered = 0, errors = 0;
    // One copy, damaged and restored each round (both readers open it read-only): copying the
    // whole image per round was most of the test's time.
    const bytes = base.slice();
    for (let round = 0; round < rounds; round++) {
      const touched: number[] = [];
      for (let k = 1 + rand(3); k > 0; k--) {
        const [at, len] = targets[rand(targets.length)]!;
        const off = at + rand(len);
        touched.push(off);
        bytes[off] = rand(4) === 0 ? 0 : bytes[off]! ^ (1 << rand(8));
      }
      for (const verify of [true, false]) {
        const fast = await viaReader(bytes, p, false, true, verify);
        const walk = await viaReader(bytes, p, false, false, verify);
        expect({ out: fast.out, error: fast.error }, `${img} round ${round} verify ${verify}`).toEqual({ out: walk.out, error: walk.error });
        if (fast.answered.length) answered++;
        if (fast.error) errors++;
      }
      for (const off of touched) bytes[off] = base[off]!;
    }
    return { answered, errors };
  }

  /** Directory `p`'s blocks as [physical offset, block size] pairs, logical order. */
  async function dirBlocks(img: string, p: string): Promise<[number, number][]> {
    const reader = new DiskReader((await openDiskSource(new MemoryDevice(new Uint8Array(nodefs.readFileSync(img)), { readOnly: true }), { verify: true }))!);
    const bs = reader.blockSize;
    const out: [number, number][] = [];
    for (const e of (await reader.fileMap(await reader.resolve(p))).extents) for (let i = 0; i < e.length; i++) out.push([(e.physical + i) * bs, bs]);
    return out;
  }

  // The bytes that make a block a dx root, a dx node or a leaf (htree.ts classifyDirBlock): the
  // first entries and dx_root_info / count-limit (0–48), and the last 12 (a leaf's checksum tail).
  it.each([['htree', '/flat'], ['htree-1k-nocsum', '/flat'], ['twolevel-nocsum', '/big']] as const)('%s %s damaged where dx blocks differ from leaves: the same bytes or the same error as the walk', async (name, p) => {
    const targets: [number, number][] = [];
    for (const [at, bs] of await dirBlocks(images[name]!, p)) targets.push([at, 48], [at + bs - 12, 12]);
    const { answered, errors } = await fuzz(images[name]!, p, targets, 40, 0x1b873593);
    expect(answered).toBeGreaterThan(10);
    expect(errors).toBeGreaterThan(2);
  });

  // Every shape byte of a dx root (its dirents, dx_root_info and count/limit: 0x24 bytes) and of a
  // dx node (0x0c), and the last 12 (where a leaf's tail would be), changed in turn: where the block
  // stops being an index block by classifyDirBlock (limit or count past the slots it has room for, a
  // rec_len, info_length…) the walk scans it as a leaf (with metadata_csum: no tail, an error).
  it.each([['htree', '/flat', 'dx-root', 0x24, [0, 0x80]], ['twolevel', '/big', 'dx-node', 0x0c, [0, 0x02]]] as const)('%s %s: each byte of a %s’s shape changed, the same bytes or the same error as the walk', async (name, p, kind, head, values) => {
    const base = new Uint8Array(nodefs.readFileSync(images[name]!));
    const blocks = await dirBlocks(images[name]!, p);
    const hit = blocks.find(([at, bs]) => classifyDirBlock(base.subarray(at, at + bs), bs) === kind);
    expect(hit).toBeDefined();
    const [at, bs] = hit!;
    let answered = 0, errors = 0, listings = 0;
    const bytes = base.slice(); // one copy, each byte changed and restored (both readers open it read-only)
    for (const off of [...Array(head).keys(), ...Array.from({ length: 12 }, (_, i) => bs - 12 + i)]) {
      for (const v of values) {
        bytes[at + off] = v === 0 ? 0 : base[at + off]! ^ v;
        for (const verify of [true, false]) {
          const fast = await viaReader(bytes, p, false, true, verify);
          const walk = await viaReader(bytes, p, false, false, verify);
          expect({ out: fast.out, error: fast.error }, `${name} byte ${off} ${v} verify ${verify}`).toEqual({ out: walk.out, error: walk.error });
          listings++;
          if (fast.answered.length) answered++;
          if (fast.error) errors++;
        }
        bytes[at + off] = base[at + off]!;
      }
    }
    // Most changes leave the block an index block (or, unverified, a leaf the module reads); some make it an error.
    expect(answered).toBeGreaterThan(listings / 2);
    expect(errors).toBeGreaterThan(5);
  });

  it('on damaged copies, the same bytes or the same error as the walk (fixed seed)', async () => {
    const img = images['ext4-groups']!;
    const base = new Uint8Array(nodefs.readFileSync(img));
    // Where /flat's entries and inodes are: its blocks and the first groups' inode tables.
    const reader = new DiskReader((await openDiskSource(new MemoryDevice(base, { readOnly: true }), { verify: true }))!);
    const flat = await reader.resolve('/flat');
    const bs = reader.blockSize;
    const targets: [number, number][] = (await reader.fileMap(flat)).extents.map((e) => [e.physical * bs, e.length * bs]);
    for (let g = 0; g < 4; g++) targets.push([(await reader.group(g)).inodeTable * bs, reader.sb.s_inodes_per_group * reader.sb.s_inode_size]);
    const next = xorshift32(0x2545f491);
    const rand = (n: number) => Math.floor(next() * n);
    let answered = 0, errors = 0;
    for (let round = 0; round < 120; round++) {
      const bytes = base.slice();
      for (let k = 1 + rand(3); k > 0; k--) {
        const [at, len] = targets[rand(targets.length)]!;
        const off = at + rand(len);
        bytes[off] = rand(4) === 0 ? 0 : bytes[off]! ^ (1 << rand(8));
      }
      for (const verify of [true, false]) {
        const fast = await viaReader(bytes, '/flat', false, true, verify);
        const walk = await viaReader(bytes.slice(), '/flat', false, false, verify);
        expect({ out: fast.out, error: fast.error }, `round ${round} verify ${verify}`).toEqual({ out: walk.out, error: walk.error });
        if (fast.answered.length) answered++;
        if (fast.error) errors++;
      }
    }
    // Both kinds happened: damage the module answered past (names, times, unchecked bytes) and damage it left to the walk.
    expect(answered).toBeGreaterThan(10);
    expect(errors).toBeGreaterThan(10);
  });
});
