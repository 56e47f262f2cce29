/**
 * Directory and htree code on hand-built blocks: rec_len encodings, tails,
 * serialisers, hash-collision continuation across leaves and index nodes,
 * depth limits, and random garbage (which must only ever give Ext4Errors).
 */
import { describe, it, expect } from 'vitest';
import {
  DirEntryLayout,
  decodeRecLen,
  encodeRecLen,
  dirRecLen,
  findDirTail,
  iterateDirBlock,
  liveEntries,
  makeDirBlock,
  parseDirBlock,
  parseInlineDir,
  readDirBlock,
  setDirBlockChecksum,
  dirBlockChecksum,
  type NewDirEntry,
} from '../../lib/ext4/directory.js';
import {
  classifyDirBlock,
  dxCountOffset,
  dxNodeLimit,
  dxRootLimit,
  htreeLookup,
  parseDxNode,
  parseDxRoot,
  setDxChecksum,
  DxCountLimitLayout,
  DxEntryLayout,
  DxRootInfoLayout,
  DxTailLayout,
  DX_ROOT_COUNT_OFFSET,
  DX_ROOT_INFO_OFFSET,
  type HtreeContext,
} from '../../lib/ext4/htree.js';
import { dirHash } from '../../lib/ext4/dirhash.js';
import { outcome, prng } from './helpers.js';

const enc = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);
const SEED = [0x11223344, 0x55667788, 0x99aabbcc, 0xddeeff00];

describe('rec_len encoding', () => {
  it('plain below 64 KiB; 65535/0 mean a whole 64 KiB block; larger blocks fold the high bits', () => {
    expect(decodeRecLen(4096, 4096)).toBe(4096);
    expect(decodeRecLen(0, 4096)).toBe(0);
    expect(decodeRecLen(65535, 65536)).toBe(65536);
    expect(decodeRecLen(0, 65536)).toBe(65536);
    expect(encodeRecLen(65536, 65536)).toBe(65535);
    expect(encodeRecLen(65524, 65536)).toBe(65524);
    for (const len of [12, 4096, 65532, 65536, 65540, 131068, 196604]) {
      expect(decodeRecLen(encodeRecLen(len, 262144), 262144)).toBe(len);
    }
    expect(encodeRecLen(262144, 262144)).toBe(0);
    expect(() => encodeRecLen(14, 4096)).toThrow();
    expect(dirRecLen(1)).toBe(12);
    expect(dirRecLen(4)).toBe(12);
    expect(dirRecLen(5)).toBe(16);
    expect(dirRecLen(255)).toBe(264);
  });
});

describe('makeDirBlock / parseDirBlock', () => {
  const entries: NewDirEntry[] = [
    { inode: 12, name: enc('.'), fileType: 2 },
    { inode: 2, name: enc('..'), fileType: 2 },
    { inode: 13, name: enc('hello'), fileType: 1 },
    { inode: 14, name: new Uint8Array([0xff, 0x80, 0x41]), fileType: 7 },
    { inode: 0, name: enc('deleted'), fileType: 1 },
    { inode: 15, name: enc('z'.repeat(255)), fileType: 2 },
  ];
  for (const bs of [1024, 4096, 65536]) {
    for (const seed of [null, 0xdeadbeef]) {
      it(`round-trips in ${bs}-byte blocks ${seed === null ? 'without' : 'with'} a checksum tail`, () => {
        const csum = seed === null ? null : { seed };
        const b = makeDirBlock(entries, { blockSize: bs, hasFiletype: true, csum });
        const r = readDirBlock(b, { blockSize: bs, hasFiletype: true, csum, where: { kind: 'field', field: 'test' } });
        expect(r.entries.map((e) => [e.inode, str(e.name), e.fileType])).toEqual(entries.map((e) => [e.inode, str(e.name), e.fileType]));
        const last = r.entries.at(-1)!;
        expect(last.offset + last.recLen).toBe(bs - (seed === null ? 0 : 12));
        expect(r.tail?.checksum ?? null).toBe(seed === null ? null : dirBlockChecksum(b, seed));
        expect([...iterateDirBlock(b, { blockSize: bs, hasFiletype: true, csum, where: { kind: 'field', field: 't' } })].map((e) => e.inode)).toEqual([12, 2, 13, 14, 15]);
        if (bs === 65536 && seed === null) expect(new DataView(b.buffer).getUint16(last.offset + 4, true)).toBe(bs - last.offset);
      });
    }
  }

  it('an empty block is one unused entry spanning it (65535 on disk for a whole 64 KiB block)', () => {
    const b = makeDirBlock([], { blockSize: 65536, hasFiletype: true, csum: null });
    expect(new DataView(b.buffer).getUint16(4, true)).toBe(65535);
    const e = parseDirBlock(b, { blockSize: 65536, hasFiletype: true, csum: null, where: { kind: 'field', field: 't' } });
    expect(e).toHaveLength(1);
    expect(e[0]).toMatchObject({ inode: 0, recLen: 65536 });
    // rec_len 0 is also read as the whole 64 KiB block.
    new DataView(b.buffer).setUint16(4, 0, true);
    expect(parseDirBlock(b, { blockSize: 65536, hasFiletype: true, csum: null, where: { kind: 'field', field: 't' } })[0]!.recLen).toBe(65536);
  });

  it('ENOSPC when entries do not fit, ENAMETOOLONG for names over 255 bytes', async () => {
    const many = Array.from({ length: 100 }, (_, i) => ({ inode: 20 + i, name: enc(`name-${i}`), fileType: 1 }));
    expect(await outcome(() => makeDirBlock(many, { blockSize: 1024, hasFiletype: true, csum: null }))).toBe('ENOSPC');
    expect(await outcome(() => makeDirBlock([{ inode: 5, name: new Uint8Array(256), fileType: 1 }], { blockSize: 1024, hasFiletype: true, csum: null }))).toBe('ENAMETOOLONG');
  });

  it('without FILETYPE the type byte is ignored on read and zero on write', () => {
    const b = makeDirBlock(entries, { blockSize: 1024, hasFiletype: false, csum: null });
    expect(parseDirBlock(b, { blockSize: 1024, hasFiletype: false, csum: null, where: { kind: 'field', field: 't' } }).every((e) => e.fileType === 0)).toBe(true);
    const b2 = makeDirBlock(entries, { blockSize: 1024, hasFiletype: true, csum: null });
    expect(parseDirBlock(b2, { blockSize: 1024, hasFiletype: false, csum: null, where: { kind: 'field', field: 't' } }).every((e) => e.fileType === 0)).toBe(true);
  });

  it('checksum tail: missing → EFSBADCRC unless verify is off; mismatch → EFSBADCRC; setDirBlockChecksum repairs', async () => {
    const noTail = makeDirBlock(entries, { blockSize: 1024, hasFiletype: true, csum: null });
    expect(await outcome(() => parseDirBlock(noTail, { blockSize: 1024, hasFiletype: true, csum: { seed: 1 }, where: { kind: 'field', field: 't' } }))).toBe('EFSBADCRC');
    expect(readDirBlock(noTail, { blockSize: 1024, hasFiletype: true, csum: { seed: 1 }, verify: false, where: { kind: 'field', field: 't' } }).tail).toBeNull();
    const b = makeDirBlock(entries, { blockSize: 1024, hasFiletype: true, csum: { seed: 7 } });
    expect(await outcome(() => parseDirBlock(b, { blockSize: 1024, hasFiletype: true, csum: { seed: 8 }, where: { kind: 'field', field: 't' } }))).toBe('EFSBADCRC');
    b[33] = b[33]! ^ 0x20; // a byte of "hello"
    expect(await outcome(() => parseDirBlock(b, { blockSize: 1024, hasFiletype: true, csum: { seed: 7 }, where: { kind: 'field', field: 't' } }))).toBe('EFSBADCRC');
    setDirBlockChecksum(b, 7);
    expect(await outcome(() => parseDirBlock(b, { blockSize: 1024, hasFiletype: true, csum: { seed: 7 }, where: { kind: 'field', field: 't' } }))).toBe('ok');
    // Without metadata_csum a tail is still recognised and not reported as an entry.
    expect(parseDirBlock(b, { blockSize: 1024, hasFiletype: true, csum: null, where: { kind: 'field', field: 't' } })).toHaveLength(entries.length);
    expect(await outcome(() => setDirBlockChecksum(noTail, 1))).toBe('EINVAL');
  });

  it('validates unused entries too, and bounds inode numbers', async () => {
    const b = makeDirBlock(entries, { blockSize: 1024, hasFiletype: true, csum: null });
    const all = parseDirBlock(b, { blockSize: 1024, hasFiletype: true, csum: null, where: { kind: 'field', field: 't' } });
    const del = all.find((e) => e.inode === 0)!;
    const broken = b.slice();
    new DataView(broken.buffer).setUint16(del.offset + 4, 10, true); // not a multiple of 4
    expect(await outcome(() => parseDirBlock(broken, { blockSize: 1024, hasFiletype: true, csum: null, where: { kind: 'field', field: 't' } }))).toBe('EFSCORRUPTED');
    expect(await outcome(() => parseDirBlock(b, { blockSize: 1024, hasFiletype: true, csum: null, where: { kind: 'field', field: 't' }, inodesCount: 14 }))).toBe('EFSCORRUPTED');
    // An in-use entry with an empty name.
    const empty = b.slice();
    empty[all[2]!.offset + 6] = 0;
    expect(await outcome(() => parseDirBlock(empty, { blockSize: 1024, hasFiletype: true, csum: null, where: { kind: 'field', field: 't' } }))).toBe('EFSCORRUPTED');
    // Entries that stop short of the block end.
    const short = b.slice();
    const last = all.at(-1)!;
    new DataView(short.buffer).setUint16(last.offset + 4, last.recLen - 4, true);
    expect(await outcome(() => parseDirBlock(short, { blockSize: 1024, hasFiletype: true, csum: null, where: { kind: 'field', field: 't' } }))).toBe('EFSCORRUPTED');
    expect([...liveEntries(all)].length).toBe(5);
  });

  it('a wrong-sized buffer is EINVAL', async () => {
    expect(await outcome(() => parseDirBlock(new Uint8Array(1000), { blockSize: 1024, hasFiletype: true, csum: null, where: { kind: 'field', field: 't' } }))).toBe('EINVAL');
  });
});

// ---- hand-built hash trees ----

function buildRoot(bs: number, seed: number | null, hv: number, levels: number, slots: Array<{ hash: number; block: number }>, dirIno = 50): Uint8Array {
  const b = new Uint8Array(bs);
  DirEntryLayout.encode({ inode: dirIno, rec_len: 12, name_len: 1, file_type: 2 }, b, 0);
  b[8] = 0x2e;
  DirEntryLayout.encode({ inode: 2, rec_len: bs - 12, name_len: 2, file_type: 2 }, b, 12);
  b[20] = 0x2e;
  b[21] = 0x2e;
  DxRootInfoLayout.encode({ reserved_zero: 0, hash_version: hv, info_length: 8, indirect_levels: levels, unused_flags: 0 }, b, DX_ROOT_INFO_OFFSET);
  writeSlots(b, DX_ROOT_COUNT_OFFSET, dxRootLimit(bs, seed !== null), slots);
  if (seed !== null) setDxChecksum(b, seed);
  return b;
}

function buildNode(bs: number, seed: number | null, slots: Array<{ hash: number; block: number }>): Uint8Array {
  const b = new Uint8Array(bs);
  DirEntryLayout.encode({ inode: 0, rec_len: encodeRecLen(bs, bs), name_len: 0, file_type: 0 }, b, 0);
  writeSlots(b, 8, dxNodeLimit(bs, seed !== null), slots);
  if (seed !== null) setDxChecksum(b, seed);
  return b;
}

function writeSlots(b: Uint8Array, off: number, limit: number, slots: Array<{ hash: number; block: number }>): void {
  slots.forEach((s, i) => DxEntryLayout.encode({ hash: s.hash >>> 0, block: s.block }, b, off + 8 * i));
  DxCountLimitLayout.encode({ limit, count: slots.length }, b, off);
}

function leaf(bs: number, seed: number | null, names: Array<[string, number]>): Uint8Array {
  return makeDirBlock(names.map(([n, ino]) => ({ inode: ino, name: enc(n), fileType: 1 })), { blockSize: bs, hasFiletype: true, csum: seed === null ? null : { seed } });
}

function ctx(blocks: Uint8Array[], bs: number, seed: number | null, extra: Partial<HtreeContext> = {}): HtreeContext {
  return {
    readBlock: async (l) => blocks[l]!,
    blockSize: bs,
    hashSeed: SEED,
    signed: true,
    hasFiletype: true,
    largeDir: false,
    csumSeed: seed,
    dirIno: 50,
    blockCount: blocks.length,
    ...extra,
  };
}

const HV = 1;
const h = (n: string) => dirHash(enc(n), HV, SEED, true).hash;
// A target whose hash is comfortably inside the range, and others on each side of it.
const POOL = Array.from({ length: 200 }, (_, i) => `n${i}`);
const TARGET = POOL.find((n) => h(n) > 0x40000000 && h(n) < 0xc0000000)!;
const H = h(TARGET);
const BELOW = POOL.filter((n) => n !== TARGET && h(n) <= H).slice(0, 8);
const ABOVE = POOL.filter((n) => h(n) > H).slice(0, 8);

describe('htree lookup on hand-built trees', () => {
  for (const seed of [null, 0x5eed]) {
    const tag = seed === null ? 'no csum' : 'csum';
    it(`follows a collision continuation into the next leaf (one level, ${tag})`, async () => {
      const bs = 1024;
      // Slot 1 starts at H|1: "continues hash H from the previous leaf". The target is in leaf 2.
      const blocks = [
        buildRoot(bs, seed, HV, 0, [{ hash: 0, block: 1 }, { hash: H | 1, block: 2 }]),
        leaf(bs, seed, BELOW.map((n, i) => [n, 100 + i])),
        leaf(bs, seed, [[TARGET, 99], ...ABOVE.map((n, i): [string, number] => [n, 200 + i])]),
      ];
      expect((await htreeLookup(enc(TARGET), ctx(blocks, bs, seed)))).toMatchObject({ inode: 99, block: 2 });
      for (const [i, n] of BELOW.entries()) expect((await htreeLookup(enc(n), ctx(blocks, bs, seed)))?.inode).toBe(100 + i);
      for (const [i, n] of ABOVE.entries()) expect((await htreeLookup(enc(n), ctx(blocks, bs, seed)))?.inode).toBe(200 + i);
      // Without the collision relation the search stops after the first leaf.
      const noCont = [buildRoot(bs, seed, HV, 0, [{ hash: 0, block: 1 }, { hash: (H + 2) | 1, block: 2 }]), blocks[1]!, blocks[2]!];
      expect(await htreeLookup(enc(TARGET), ctx(noCont, bs, seed))).toBeNull();
    });

    it(`follows a continuation across index nodes (two levels, ${tag})`, async () => {
      const bs = 1024;
      const blocks = [
        buildRoot(bs, seed, HV, 1, [{ hash: 0, block: 1 }, { hash: H | 1, block: 2 }]),
        buildNode(bs, seed, [{ hash: 0, block: 3 }]),
        buildNode(bs, seed, [{ hash: 0, block: 4 }, { hash: 0xf0000000, block: 5 }]),
        leaf(bs, seed, BELOW.map((n, i) => [n, 100 + i])),
        leaf(bs, seed, [[TARGET, 99], ...ABOVE.filter((n) => h(n) < 0xf0000000).map((n, i): [string, number] => [n, 200 + i])]),
        leaf(bs, seed, []),
      ];
      expect(await htreeLookup(enc(TARGET), ctx(blocks, bs, seed))).toMatchObject({ inode: 99, block: 4 });
      expect(await htreeLookup(enc(BELOW[0]!), ctx(blocks, bs, seed))).toMatchObject({ inode: 100, block: 3 });
      expect(await htreeLookup(enc('absent-name'), ctx(blocks, bs, seed))).toBeNull();
      expect(await htreeLookup(enc('.'), ctx(blocks, bs, seed))).toMatchObject({ inode: 50, block: 0 });
      expect(await htreeLookup(enc('..'), ctx(blocks, bs, seed))).toMatchObject({ inode: 2, block: 0 });
      if (seed !== null) {
        expect(classifyDirBlock(blocks[0]!)).toBe('dx-root');
        expect(classifyDirBlock(blocks[1]!)).toBe('dx-node');
        expect(classifyDirBlock(blocks[3]!)).toBe('leaf');
      }
    });

    it(`three index levels need LARGEDIR (${tag})`, async () => {
      const bs = 1024;
      const blocks = [
        buildRoot(bs, seed, HV, 2, [{ hash: 0, block: 1 }]),
        buildNode(bs, seed, [{ hash: 0, block: 2 }]),
        buildNode(bs, seed, [{ hash: 0, block: 3 }]),
        leaf(bs, seed, [[TARGET, 99]]),
      ];
      expect(await outcome(() => htreeLookup(enc(TARGET), ctx(blocks, bs, seed)))).toBe('EFSCORRUPTED');
      expect(await htreeLookup(enc(TARGET), ctx(blocks, bs, seed, { largeDir: true }))).toMatchObject({ inode: 99, block: 3 });
    });
  }

  it('a dx root whose last 12 bytes look like a dirent tail is still a dx root (no pattern matching)', () => {
    const bs = 1024;
    const seed = 0x77;
    const b = buildRoot(bs, seed, HV, 0, [{ hash: 0, block: 1 }]);
    const limit = dxRootLimit(bs, true);
    const tailOff = DX_ROOT_COUNT_OFFSET + 8 * limit;
    expect(tailOff).toBe(bs - 8);
    // dt_reserved = 0xDE00000C makes bytes bs-12..bs read as {inode 0, rec_len 12, name_len 0, type 0xDE}.
    DxTailLayout.encode({ dt_reserved: 0xde00000c, dt_checksum: 0 }, b, tailOff);
    setDxChecksum(b, seed);
    expect(findDirTail(b)).toBe(-1);
    expect(dxCountOffset(b)).toBe(DX_ROOT_COUNT_OFFSET);
    expect(classifyDirBlock(b)).toBe('dx-root');
    expect(parseDxRoot(b, { blockSize: bs, csum: { seed }, where: { kind: 'field', field: 't' } }).tail).toEqual({ reserved: 0xde00000c, checksum: expect.any(Number) });
  });

  it('bounds: name length, block count, hash order, node limit, siphash, readBlock size', async () => {
    const bs = 1024;
    const blocks = [buildRoot(bs, null, HV, 0, [{ hash: 0, block: 1 }, { hash: H | 1, block: 2 }]), leaf(bs, null, []), leaf(bs, null, [[TARGET, 9]])];
    expect(await outcome(() => htreeLookup(new Uint8Array(256), ctx(blocks, bs, null)))).toBe('ENAMETOOLONG');
    expect(await htreeLookup(new Uint8Array(0), ctx(blocks, bs, null))).toBeNull();
    expect(await outcome(() => htreeLookup(enc(TARGET), ctx(blocks, bs, null, { blockCount: 2 })))).toBe('EFSCORRUPTED');
    const disordered = [buildRoot(bs, null, HV, 0, [{ hash: 0, block: 1 }, { hash: 0x90000000, block: 2 }, { hash: 0x80000000, block: 1 }]), blocks[1]!, blocks[2]!];
    expect(await outcome(() => htreeLookup(enc(TARGET), ctx(disordered, bs, null)))).toBe('EFSCORRUPTED');
    const badNode = [buildRoot(bs, null, HV, 1, [{ hash: 0, block: 1 }]), buildNode(bs, null, [{ hash: 0, block: 2 }]), blocks[2]!];
    DxCountLimitLayout.encode({ limit: 5, count: 1 }, badNode[1]!, 8);
    expect(await outcome(() => htreeLookup(enc(TARGET), ctx(badNode, bs, null)))).toBe('EFSCORRUPTED');
    const sip = [buildRoot(bs, null, 6, 0, [{ hash: 0, block: 1 }]), blocks[1]!];
    expect(await outcome(() => htreeLookup(enc(TARGET), ctx(sip, bs, null)))).toBe('EOPNOTSUPP');
    expect(await outcome(() => htreeLookup(enc(TARGET), ctx(blocks, bs, null, { readBlock: async () => new Uint8Array(10) })))).toBe('EIO');
    // A leaf slot that points back at an index node is caught by the leaf parser (no tail / bad entries) or the block check.
    const loop = [buildRoot(bs, null, HV, 1, [{ hash: 0, block: 1 }]), buildNode(bs, null, [{ hash: 0, block: 1 }])];
    expect(['ok', 'EFSCORRUPTED']).toContain(await outcome(() => htreeLookup(enc(TARGET), ctx(loop, bs, null))));
    expect(await outcome(() => parseDxNode(blocks[0]!, { blockSize: bs, csum: null, where: { kind: 'field', field: 't' } }))).toBe('EFSCORRUPTED');
    expect(await outcome(() => parseDxRoot(blocks[1]!, { blockSize: bs, csum: null, where: { kind: 'field', field: 't' } }))).toBe('EFSCORRUPTED');
  });

  it("long collision runs terminate (all slots carry the same hash)", async () => {
    const bs = 1024;
    const n = 60;
    const slots = [{ hash: 0, block: 1 }, ...Array.from({ length: n }, (_, i) => ({ hash: H | 1, block: 1 + (i % 3) }))];
    const blocks = [buildRoot(bs, null, HV, 0, slots), leaf(bs, null, []), leaf(bs, null, []), leaf(bs, null, [])];
    // Slots revisit the same three leaves: more leaves than the directory has blocks.
    expect(await outcome(() => htreeLookup(enc(TARGET), ctx(blocks, bs, null)))).toBe('EFSCORRUPTED');
    const distinct = [buildRoot(bs, null, HV, 0, slots.slice(0, 3)), leaf(bs, null, []), leaf(bs, null, []), leaf(bs, null, [])];
    expect(await htreeLookup(enc(TARGET), ctx(distinct, bs, null))).toBeNull();
  });
});

describe('inline directories (synthetic)', () => {
  const iblock = (parent: number, entries: NewDirEntry[]) => {
    const b = new Uint8Array(60);
    new DataView(b.buffer).setUint32(0, parent, true);
    let off = 4;
    entries.forEach((e, i) => {
      const rl = i === entries.length - 1 ? 60 - off : dirRecLen(e.name.length);
      DirEntryLayout.encode({ inode: e.inode, rec_len: rl, name_len: e.name.length, file_type: e.fileType }, b, off);
      b.set(e.name, off + 8);
      off += rl;
    });
    return b;
  };

  it("synthesizes '..' (and '.' when asked), reads i_block then system.data", () => {
    const ib = iblock(2, [{ inode: 20, name: enc('ab'), fileType: 1 }, { inode: 0, name: new Uint8Array(0), fileType: 0 }]);
    const xa = new Uint8Array(24);
    DirEntryLayout.encode({ inode: 21, rec_len: 24, name_len: 2, file_type: 2 }, xa, 0);
    xa.set(enc('cd'), 8);
    const got = parseInlineDir(ib, xa, { kind: 'text', text: 'inline 30' }, { dirIno: 30 });
    expect([...liveEntries(got)].map((e) => [str(e.name), e.inode, e.area])).toEqual([
      ['.', 30, 'synthetic'],
      ['..', 2, 'synthetic'],
      ['ab', 20, 'iblock'],
      ['cd', 21, 'xattr'],
    ]);
    expect(parseInlineDir(ib, null, { kind: 'text', text: 'inline 30' }).map((e) => str(e.name))).toEqual(['..', 'ab', '']);
  });

  it('rejects a zero parent, short i_block, and entries that do not tile', async () => {
    expect(await outcome(() => parseInlineDir(iblock(0, [{ inode: 0, name: new Uint8Array(0), fileType: 0 }]), null, { kind: 'field', field: 'i' }))).toBe('EFSCORRUPTED');
    expect(await outcome(() => parseInlineDir(new Uint8Array(10), null, { kind: 'field', field: 'i' }))).toBe('EFSCORRUPTED');
    const ib = iblock(2, [{ inode: 20, name: enc('ab'), fileType: 1 }]);
    new DataView(ib.buffer).setUint16(8, 52, true);
    expect(await outcome(() => parseInlineDir(ib, null, { kind: 'field', field: 'i' }))).toBe('EFSCORRUPTED');
  });
});

describe('random garbage', () => {
  it('parsers only ever throw Ext4Errors', async () => {
    const r = prng(0x6a7b);
    const bad: string[] = [];
    const codes = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const bs = i % 3 === 0 ? 1024 : i % 3 === 1 ? 4096 : 65536;
      const b = new Uint8Array(bs);
      // Mostly-plausible garbage: small rec_len-ish values at 4-byte boundaries, random elsewhere.
      for (let k = 0; k < Math.min(bs, 512); k++) b[k] = r() & 0xff;
      if (i % 2 === 0) for (let k = 4; k < Math.min(bs, 512); k += 16) new DataView(b.buffer).setUint16(k, (r() % 64) * 4, true);
      if (i % 5 === 0) {
        new DataView(b.buffer).setUint16(4, 12, true);
        new DataView(b.buffer).setUint16(16, bs - 12, true);
        b[DX_ROOT_INFO_OFFSET + 5] = 8;
        b[DX_ROOT_INFO_OFFSET + 6] = r() % 4;
        b[DX_ROOT_INFO_OFFSET + 4] = r() % 3;
        new DataView(b.buffer).setUint32(DX_ROOT_INFO_OFFSET, 0, true);
        DxCountLimitLayout.encode({ limit: dxRootLimit(bs, false), count: 1 + (r() % 20) }, b, DX_ROOT_COUNT_OFFSET);
      }
      const seed = i % 4 === 0 ? null : 0x1234;
      const csum = seed === null ? null : { seed };
      for (const fn of [
        () => parseDirBlock(b, { blockSize: bs, hasFiletype: true, csum, where: { kind: 'field', field: 'g' } }),
        () => parseDirBlock(b, { blockSize: bs, hasFiletype: true, csum, verify: false, where: { kind: 'field', field: 'g' } }),
        () => parseDxRoot(b, { blockSize: bs, csum, verify: false, where: { kind: 'field', field: 'g' } }),
        () => parseDxNode(b, { blockSize: bs, csum, where: { kind: 'field', field: 'g' } }),
        () => parseInlineDir(b.subarray(0, 60), b.subarray(60, 60 + (r() % 200)), { kind: 'field', field: 'g' }),
        () => classifyDirBlock(b),
        () => {
          if (seed !== null) setDxChecksum(b, seed);
        },
        () => htreeLookup(enc(TARGET), ctx([b, b.slice(), b.slice()], bs, seed, { verify: false })),
      ]) {
        const o = await outcome(fn);
        codes.add(o);
        if (o.startsWith('OTHER')) bad.push(`iter ${i}: ${o}`);
      }
    }
    expect(bad.slice(0, 5)).toEqual([]);
    expect(codes.has('EFSCORRUPTED')).toBe(true);
  });
});
