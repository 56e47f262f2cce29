/**
 * Errors as scripts see them: `code`, `structure` and a typed `location` ({ kind: 'block', block },
 * { kind: 'group', group }, …) on real damaged images, the message naming the same place in words
 * (what the CLI prints, unchanged), and the words ↔ typed mapping exact both ways.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { Ext4Error, describeLocation, isExt4Error, type Location, type LocationKind } from '../../lib/index.js';
import { parseLocation } from '../../lib/errors.js';
import { Filesystem } from '../../lib/node.js';
import { extents, list, stat } from '../../lib/ops/inspect.js';
import { baseImage, cleanImages, ImageEditor } from '../helpers/damage.js';

/** The words every kind of location has been written as in lib (one or more per kind). */
const WORDS: [string, Location][] = [
  ['block 4711', { kind: 'block', block: 4711 }],
  ['blocks 10..13', { kind: 'block', block: 10, count: 4 }],
  ['block 99 (level 2)', { kind: 'block', block: 99, level: 2 }],
  ['byte 1024', { kind: 'byte', offset: 1024 }],
  ['bytes 4096..8191', { kind: 'byte', offset: 4096, length: 4096 }],
  ['byte 77 (empty range)', { kind: 'byte', offset: 77, length: 0 }],
  ['group 3', { kind: 'group', group: 3 }],
  ['group 0 block 35', { kind: 'group', group: 0, block: 35 }],
  ['inode 12', { kind: 'inode', ino: 12 }],
  ['s_state', { kind: 'field', field: 's_state' }],
  ['i_block[12]', { kind: 'field', field: 'i_block', index: 12 }],
  ['i_dtime (next orphan)', { kind: 'field', field: 'i_dtime', note: 'next orphan' }],
  ['logical block 7', { kind: 'logical-block', block: 7 }],
  ['logical block 2 (block 900)', { kind: 'logical-block', block: 2, physical: 900 }],
  ['journal block 0', { kind: 'journal-block', block: 0 }],
  ['journal block 17 (descriptor, tid 5)', { kind: 'journal-block', block: 17, role: 'descriptor', tid: 5 }],
  ['journal block 18 (data for fs block 1234, tid 5)', { kind: 'journal-block', block: 18, role: 'data for fs block 1234', tid: 5 }],
  ['journal block 9 (revoke)', { kind: 'journal-block', block: 9, role: 'revoke' }],
  ['tid 42', { kind: 'transaction', tid: 42 }],
  ['tids 3..9', { kind: 'transaction', tid: 3, lastTid: 9 }],
  ['directory 12 block 0 (physical 4711)', { kind: 'directory-block', dir: 12, block: 0, physical: 4711 }],
  ['directory 12 block 3', { kind: 'directory-block', dir: 12, block: 3 }],
  ['directory 12 inline data', { kind: 'inline-data', dir: 12 }],
  ['directory 12 inline data system.data', { kind: 'inline-data', dir: 12, area: 'system.data' }],
  ['block 4711 entry 3', { kind: 'part', of: { kind: 'block', block: 4711 }, part: 'entry', index: 3 }],
  ['i_block index 1', { kind: 'part', of: { kind: 'field', field: 'i_block' }, part: 'index', index: 1 }],
  ['logical block 3 slot 9', { kind: 'part', of: { kind: 'logical-block', block: 3 }, part: 'slot', index: 9 }],
  [
    'directory 12 block 0 (physical 4711) offset 24',
    { kind: 'part', of: { kind: 'directory-block', dir: 12, block: 0, physical: 4711 }, part: 'offset', index: 24 },
  ],
  ['fast-commit area', { kind: 'text', text: 'fast-commit area' }],
];

describe('typed locations', () => {
  it.each(WORDS)('%s', (words, typed) => {
    expect(parseLocation(words)).toEqual(typed);
    expect(describeLocation(typed)).toBe(words);
  });

  it('every kind is covered above, and words no kind describes stay word for word', () => {
    const kinds = new Set<LocationKind>(WORDS.map(([, t]) => t.kind));
    const all: Record<LocationKind, true> = {
      block: true, byte: true, group: true, inode: true, field: true, 'logical-block': true, 'journal-block': true,
      transaction: true, 'directory-block': true, 'inline-data': true, part: true, text: true,
    };
    expect([...kinds].sort()).toEqual(Object.keys(all).sort());
    for (const w of ['/a/b', 'block -1', 'group 1e3', 'block 99999999999999999999', '']) expect(describeLocation(parseLocation(w))).toBe(w);
  });

  it('the message names the structure and location in words; JSON keeps them typed', () => {
    const e = new Ext4Error('EFSCORRUPTED', 'bad extent header magic', { structure: 'inode 12 extent tree', location: { kind: 'block', block: 4711 } });
    expect(e.message).toBe('bad extent header magic (inode 12 extent tree at block 4711)');
    expect(e.location).toEqual({ kind: 'block', block: 4711 });
    // words (the transition) give the same error
    const w = new Ext4Error('EFSCORRUPTED', 'bad extent header magic', { structure: 'inode 12 extent tree', location: { kind: 'block', block: 4711 } });
    expect(w.message).toBe(e.message);
    expect(w.location).toEqual(e.location);
    expect(JSON.parse(JSON.stringify(e))).toEqual({ name: 'Ext4Error', code: 'EFSCORRUPTED', message: e.message, structure: 'inode 12 extent tree', location: { kind: 'block', block: 4711 } });
    expect(new Ext4Error('EINVAL', 'plain').message).toBe('plain');
  });

  it('types: location is a discriminated union a script can switch on', () => {
    expectTypeOf<Ext4Error['location']>().toEqualTypeOf<Location | undefined>();
    expectTypeOf<Ext4Error['code']>().toBeString();
    const blockOf = (l: Location): number | null => (l.kind === 'block' || l.kind === 'directory-block' ? l.block : null);
    expect(blockOf({ kind: 'block', block: 5 })).toBe(5);
    // @ts-expect-error -- a group location has no `block` number required… but `group` is required
    const bad: Location = { kind: 'group' };
    expect(bad.kind).toBe('group');
  });
});

/** The Ext4Error a call throws (fails the test when it does not throw one). */
async function errorOf(p: Promise<unknown>): Promise<Ext4Error> {
  try {
    await p;
  } catch (e) {
    if (isExt4Error(e)) return e;
    throw e;
  }
  throw new Error('expected an Ext4Error');
}

function expectNamed(e: Ext4Error, structure: string | RegExp, location: Location): void {
  expect(e.location).toEqual(location);
  if (typeof structure === 'string') expect(e.structure).toBe(structure);
  else expect(e.structure).toMatch(structure);
  expect(e.message.endsWith(`(${e.structure} at ${describeLocation(location)})`), e.message).toBe(true);
}

describe('typed locations on damaged images', () => {
  const damaged = async (edit: (ed: ImageEditor) => void): Promise<string> => {
    const base = await baseImage('ext4-4k');
    const [copy] = await cleanImages(['ext4-4k']);
    edit(new ImageEditor(copy!.path, base));
    return copy!.path;
  };

  it('superblock magic → byte 1024', async () => {
    const img = await damaged((ed) => ed.superblock((_b, dv) => dv.setUint16(0x38, 0x1234, true)));
    const e = await errorOf(Filesystem.open(img));
    expect(e.code).toBe('EINVAL');
    expectNamed(e, 'superblock', { kind: 'byte', offset: 1024 });
  });

  it('xattr block magic → that block', async () => {
    const base = await baseImage('ext4-4k');
    const img = await damaged((ed) => ed.xattrBlock((_b, dv) => dv.setUint32(0, 0xea010000, true)));
    const fs = await Filesystem.open(img);
    try {
      const e = await errorOf(stat(fs, '/xa'));
      expect(e.code).toBe('EFSCORRUPTED');
      expectNamed(e, 'xattr block', { kind: 'block', block: base.xattrBlock });
    } finally {
      await fs.close();
    }
  });

  it('extent tree node magic → the node block', async () => {
    const base = await baseImage('ext4-4k');
    const node = base.treeBlocks.get('/frag.bin')![0]!;
    const img = await damaged((ed) => ed.extentBlock('/frag.bin', (_b, dv) => dv.setUint16(0, 0xbeef, true)));
    const fs = await Filesystem.open(img);
    try {
      const e = await errorOf(extents(fs, '/frag.bin'));
      expect(e.code).toBe('EFSCORRUPTED');
      expectNamed(e, /^inode \d+ extent tree$/, { kind: 'block', block: node });
    } finally {
      await fs.close();
    }
  });

  it('inode checksum → the inode, at its group', async () => {
    const base = await baseImage('ext4-4k');
    const info = base.inodes.get('/small.txt')!;
    const img = await damaged((ed) => {
      const b = ed.read(info.offset + 0x08, 1); // i_atime, not resealed
      ed.write(info.offset + 0x08, Uint8Array.of(b[0]! ^ 0x5a));
    });
    const fs = await Filesystem.open(img);
    try {
      const e = await errorOf(stat(fs, '/small.txt'));
      expect(e.code).toBe('EFSBADCRC');
      expectNamed(e, `inode ${info.ino}`, { kind: 'group', group: Math.floor((info.ino - 1) / base.inodesPerGroup) });
    } finally {
      await fs.close();
    }
  });

  it('directory entry rec_len → the entry offset in the directory block', async () => {
    const base = await baseImage('ext4-4k');
    const dir = base.inodes.get('/deep')!;
    const phys = base.dirBlocks.get('/deep')![0]!;
    const img = await damaged((ed) => ed.dirBlock('/deep', 0, (_b, dv) => dv.setUint16(12 + 4, 6, true))); // '..' rec_len 6
    const fs = await Filesystem.open(img);
    try {
      const e = await errorOf(list(fs, '/deep'));
      expect(e.code).toBe('EFSCORRUPTED');
      expectNamed(e, 'directory entry', { kind: 'part', of: { kind: 'directory-block', dir: dir.ino, block: 0, physical: phys }, part: 'offset', index: 12 });
    } finally {
      await fs.close();
    }
  });

  it('journal superblock magic → journal block 0', async () => {
    const img = await damaged((ed) => ed.journalSuperblock((_b, dv) => dv.setUint32(0, 0xc03b3999, false)));
    const e = await errorOf(Filesystem.open(img, { write: true }).then((fs) => fs.close()));
    expect(['EFSCORRUPTED', 'EINVAL']).toContain(e.code);
    expect(e.location?.kind).toBe('journal-block');
    expect(e.location).toMatchObject({ kind: 'journal-block', block: 0 });
  });
});
