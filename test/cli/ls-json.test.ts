/**
 * `ls --json` writes its rows straight to bytes (lib/cli/commands/ls-json.ts): the output must be
 * exactly the UTF-8 of JSON.stringify(rows, null, 2) + '\n' — for hostile names (quotes,
 * backslashes, every control character, DEL, '/', invalid UTF-8, U+2028, a lone surrogate in a
 * user's path), every field's extremes, symlink targets and device numbers, any number of rows
 * (the buffer grows), and on real images against list()'s rows. The plain rows of an ASCII
 * directory are written by WebAssembly (ls-json-wasm.ts): the same bytes as the JS writer.
 */
import { describe, expect, it } from 'vitest';
import { Filesystem } from '../../lib/node.js';
import { decodeName } from '../../lib/ext4/bytes.js';
import type { EntryTable } from '../../lib/ext4/dir-reader.js';
import type { FileType, InodeSummary } from '../../lib/ext4/inode.js';
import { list, type ListDir, type ListEntry, type ListExtra } from '../../lib/ops/inspect.js';
import { LsJson } from '../../lib/cli/commands/ls-json.js';
import { WasmRows } from '../../lib/cli/commands/ls-json-wasm.js';
import { listJson } from '../../lib/cli/commands/ls.js';
import { getImage } from '../helpers/images.js';

/** An EntryTable over names given as bytes, each in a block of its own at an offset (as readEntryTable leaves them). */
function table(names: number[][]): EntryTable {
  const chunks = names.map((b) => Uint8Array.from([0xaa, 0xbb, 0x22, ...b, 0x5c]));
  const nameStart = names.map(() => 3);
  const nameLen = names.map((b) => b.length);
  const decoded = names.map((b) => decodeName(Uint8Array.from(b)));
  return {
    length: names.length,
    ino: names.map((_, i) => 11 + i),
    fileType: names.map(() => 1),
    names: () => decoded,
    ascii: names.every((b) => b.every((c) => c < 0x80)),
    nameBytes: (i) => chunks[i]!.subarray(3, 3 + nameLen[i]!),
    chunks,
    chunk: names.map((_, i) => i),
    nameStart,
    nameLen,
  };
}

const bytes = (s: string) => [...Buffer.from(s, 'utf8')];
const summary = (type: FileType, k: number): InodeSummary => ({
  type,
  mode: [0o100644, 0o40755, 0o177777, 0o120777][k % 4]!,
  uid: [0, 4294967295, 1000][k % 3]!,
  gid: [65536, 0, 7][k % 3]!,
  size: [0, 2 ** 53 - 1, 4096, 99999999, 100000000][k % 5]!,
  linksCount: [1, 65535, 2][k % 3]!,
  mtime: [-1, -2147483648, 0, 1700000000, 2 ** 31 + 3 * 2 ** 32 - 1][k % 5]!,
});
const TYPES: FileType[] = ['file', 'dir', 'symlink', 'chardev', 'blockdev', 'fifo', 'socket'];

/** Feed rows of (dir, entry) to LsJson and, alongside, build the rows list() would make. */
function both(dirs: { path: string; names: number[][] }[], extras: (ListExtra | null)[] = [], singles: ListEntry[] = []): { got: string; want: string } {
  const out = new LsJson();
  const rows: ListEntry[] = [];
  let k = 0;
  for (const s of singles) {
    out.single(s);
    rows.push(s);
  }
  for (const d of dirs) {
    const dir: ListDir = { path: d.path, ino: 2, table: table(d.names) };
    for (let i = 0; i < dir.table.length; i++, k++) {
      const type = TYPES[k % TYPES.length]!;
      const s = summary(type, k);
      const extra = extras[k % Math.max(1, extras.length)] ?? null;
      out.entry(dir, i, s, extra);
      const name = dir.table.names()[i]!;
      const path = d.path === '/' ? `/${name}` : `${d.path}/${name}`;
      const row: ListEntry = { path, name: name.includes('/') ? path.slice(path.lastIndexOf('/') + 1) : name, ino: dir.table.ino[i]!, type, mode: s.mode & 0o7777, size: s.size, nlink: s.linksCount, uid: s.uid, gid: s.gid, mtime: s.mtime };
      if (extra?.rdev) row.rdev = extra.rdev;
      else if (extra?.target !== undefined) row.target = extra.target;
      rows.push(row);
    }
  }
  return { got: Buffer.from(out.finish()).toString('latin1'), want: Buffer.from(JSON.stringify(rows, null, 2) + '\n', 'utf8').toString('latin1') };
}

describe('LsJson', () => {
  it('no rows: []', () => {
    expect(Buffer.from(new LsJson().finish()).toString()).toBe('[]\n');
  });

  it('hostile names, paths, targets and every field extreme: the bytes of JSON.stringify', () => {
    const controls = Array.from({ length: 32 }, (_, c) => [0x61, c, 0x62]);
    const ascii = [...controls, bytes('q"uote'), bytes('back\\slash'), [0x7f], bytes('a/b/c'), bytes('/lead'), bytes('trail/'), bytes('x'.repeat(255)), bytes('\\"\\')];
    const other = [[0x61, 0xff, 0x62], [0xc3], bytes('é'), bytes('line\u2028sep\u2029'), [0xed, 0xa0, 0x80], [0x01, 0xe6, 0x97, 0xa5, 0x22, 0x2f, 0x7a], bytes('😀/x')];
    const dirs = [
      { path: '/', names: ascii },
      { path: '/d"ir\\\u0001', names: ascii },
      { path: '/', names: other },
      { path: '/l\ud800ne/\u2028', names: [...other, ...ascii] },
    ];
    const extras: (ListExtra | null)[] = [null, { rdev: { major: 4095, minor: 1048575 } }, { target: 'a\nb "q" \\ \u2028 \ud800 \ufffd é \u0000/\u007f' }, { rdev: { major: 0, minor: 0 } }, { target: '' }];
    const singles: ListEntry[] = [
      { path: '/s"p\ud801', name: 's"p\ud801', ino: 4294967295, type: 'symlink', mode: 0o7777, size: 2 ** 53 - 1, nlink: 0, uid: 1, gid: 2, mtime: -12345678901, target: '\t\r\n\b\f' },
      { path: '/dev/x', name: 'x', ino: 13, type: 'chardev', mode: 0o600, size: 0, nlink: 1, uid: 0, gid: 0, mtime: 5, rdev: { major: 1, minor: 3 } },
    ];
    for (const ds of [dirs, dirs.slice(2)]) {
      const { got, want } = both(ds, extras, singles);
      expect(got).toBe(want);
    }
    const { got, want } = both(dirs.slice(0, 1));
    expect(got).toBe(want);
  });

  it('many rows (the buffer grows many times)', () => {
    const names = Array.from({ length: 20000 }, (_, i) => bytes(`f${String(i).padStart(5, '0')}${i % 97 === 0 ? '\u0007"' : ''}`));
    const { got, want } = both([{ path: '/dir10k', names }]);
    expect(got.length).toBeGreaterThan(3_000_000);
    expect(got === want).toBe(true);
  });
});

describe('LsJson: the WebAssembly rows and the JS rows', () => {
  it('write the same bytes for random directories (fixed seed)', () => {
    expect(WasmRows.create(), 'WebAssembly is available here').not.toBeNull();
    let seed = 0x2545f491;
    // mulberry32
    const rnd = (n: number) => {
      let t = (seed = (seed + 0x6d2b79f5) | 0);
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * n | 0;
    };
    const pick = <T,>(xs: readonly T[]) => xs[rnd(xs.length)]!;
    for (let round = 0; round < 40; round++) {
      const names = Array.from({ length: 1 + rnd(300) }, () => Array.from({ length: 1 + (rnd(4) === 0 ? rnd(255) : rnd(12)) }, () => (rnd(8) === 0 ? rnd(128) : 0x61 + rnd(26))));
      const path = pick(['/', '/a', '/d"ir\\\u0001', `/${'p'.repeat(rnd(600))}`]);
      const dir: ListDir = { path, ino: 2, table: table(names) };
      const outs = [new LsJson(), new LsJson({ wasm: false })];
      for (let i = 0; i < names.length; i++) {
        const mode = pick([0o100644, 0o40755, 0o20600, 0o60600, 0o10644, 0o140777, 0o120777, 0o170000]) | rnd(0o10000);
        const type = pick<FileType>(['file', 'dir', 'chardev', 'blockdev', 'fifo', 'socket', 'symlink']);
        const s: InodeSummary = {
          type: rnd(4) ? (['fifo', 'chardev', null, 'dir', null, 'blockdev', null, 'file', null, 'symlink', null, 'socket'][(mode >>> 12) - 1] as FileType) ?? type : type,
          mode,
          uid: pick([0, 1000, 4294967295, rnd(2 ** 31)]),
          gid: pick([0, 65536, 4294967295]),
          size: pick([0, 1, 9, 10, 99, 4294967295, 4294967296, 2 ** 53 - 1, rnd(1e9)]),
          linksCount: pick([0, 1, 65535]),
          mtime: pick([0, -1, 2147483647, -2147483648, 2147483648, -2147483649, 1700000000 + rnd(1e6)]),
        };
        const extra: ListExtra | null = rnd(20) === 0 ? { target: 'x' } : rnd(20) === 0 ? { rdev: { major: 8, minor: 1 } } : null;
        for (const o of outs) o.entry(dir, i, s, extra);
      }
      const [w, j] = outs.map((o) => Buffer.from(o.finish()).toString('latin1'));
      expect(w === j, `round ${round}`).toBe(true);
    }
  });
});

describe('listJson on images: the bytes of JSON.stringify(list(), null, 2)', () => {
  it.each(['ext4-4k', 'ext4-inline'])('%s', async (name) => {
    const fs = await Filesystem.open(getImage(name).image);
    try {
      for (const [path, recursive] of [['/', true], ['/names', false], ['/special', false], ['/symlinks/to-dir', false], ['/symlinks/to-dir/', true], ['/sizes/one', true]] as const) {
        const want = JSON.stringify(await list(fs, path, { recursive }), null, 2) + '\n';
        const got = Buffer.from(await listJson(fs, path, recursive)).toString('utf8');
        expect(got === want, `${path} ${recursive ? '-R' : ''}`).toBe(true);
      }
    } finally {
      await fs.close();
    }
  });
});
