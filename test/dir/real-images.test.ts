/**
 * Directory blocks and htree lookups against real images:
 *  - A: 4 KiB blocks, metadata_csum, populated by mkfs.ext4 -d, indexed by e2fsck -fyD
 *  - B: the same without metadata_csum
 *  - C: 1 KiB blocks, metadata_csum (two index levels)
 *  - K: 1 KiB blocks, tea hash with the unsigned-hash flag, populated by the kernel
 *       through a loop mount (needs root; skipped with a printed reason otherwise)
 * Each has /big (12,000 names: long, UTF-8, raw bytes >= 0x80) and /small.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { openSync, rmSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { classifyDirBlock, dxChecksum, htreeLookup, parseDxNode, parseDxRoot, setDxChecksum, DxRootInfoLayout, DX_ROOT_INFO_OFFSET, DX_ROOT_COUNT_OFFSET, type DxIndexBlock, type HtreeContext } from '../../lib/ext4/htree.js';
import { makeDirBlock, parseDirBlock, readDirBlock, liveEntries, DirEntryLayout, type DirEntry } from '../../lib/ext4/directory.js';
import { dirHash } from '../../lib/ext4/dirhash.js';
import { isExt4Error, type Location, describeLocation } from '../../lib/errors.js';
import { makeNames, outcome, prng, tempDir, readBytes } from './helpers.js';
import { assertClean, kernelImage, mkfsImage, noCsumCopy, writeSource, type TestImage } from './images.js';

const BIG = makeNames(12000, 0xb16d1);
const SMALL = [Buffer.from('a'), Buffer.from('hello world'), Buffer.from([0xc3, 0xa9, 0x74, 0xc3, 0xa9]), Buffer.from([0x80, 0xfe, 0x41]), Buffer.from('x'.repeat(255))];
const ABSENT = makeNames(12500, 0xb16d1).slice(12000).map((n) => Buffer.concat([n, Buffer.from('~absent')]).subarray(0, 255));

let work = '';
const images: TestImage[] = [];
let kernelSkip: string | undefined;

beforeAll(async () => {
  work = tempDir('ext4kit-dirimg-');
  // mkfs -d links names one by one into a linear directory (quadratic), so
  // the 1 KiB image gets the first 4,000 names: still two index levels.
  const src = join(work, 'src');
  writeSource(src, BIG, SMALL);
  const src4k = join(work, 'src4k');
  writeSource(src4k, BIG.slice(0, 4000), SMALL);
  const pa = mkfsImage('A (4K, csum, e2fsck -D)', join(work, 'a.img'), src, BIG, ['-b', '4096']);
  const pc = mkfsImage('C (1K, csum, e2fsck -D)', join(work, 'c.img'), src4k, BIG.slice(0, 4000), ['-b', '1024']);
  // Built synchronously while the two mkfs processes run.
  const k = kernelImage('K (1K, csum, tea unsigned, kernel)', join(work, 'k.img'), join(work, 'mnt'), BIG, SMALL, ['-b', '1024']);
  const a = await pa;
  images.push(a, noCsumCopy('B (4K, no csum, tune2fs + e2fsck -D)', a, join(work, 'b.img')), await pc);
  if (typeof k === 'string') {
    kernelSkip = k;
    console.log(`test/dir/real-images.test.ts: skipping the kernel-built image: ${k}`);
  } else images.push(k);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function ctxFor(img: TestImage, blocks = img.bigBlocks, info = img.big, extra: Partial<HtreeContext> = {}): HtreeContext {
  return {
    readBlock: async (logical) => {
      const b = blocks[logical];
      if (!b) throw new Error(`test readBlock: no block ${logical}`);
      return b;
    },
    blockSize: img.sb.blockSize,
    hashSeed: img.sb.hashSeed,
    signed: img.sb.signed,
    hasFiletype: img.sb.hasFiletype,
    largeDir: img.sb.largeDir,
    csumSeed: info.csumSeed,
    dirIno: info.ino,
    blockCount: blocks.length,
    inodesCount: img.sb.inodesCount,
    physicalBlock: (l) => info.blocks[l]!,
    ...extra,
  };
}

function dxOpts(img: TestImage, where: Location) {
  return { blockSize: img.sb.blockSize, csum: img.big.csumSeed === null ? null : { seed: img.big.csumSeed }, largeDir: img.sb.largeDir, where };
}

/** Index blocks of /big by walking from the root: logical block → parsed index. */
function indexBlocks(img: TestImage): Map<number, DxIndexBlock> {
  const m = new Map<number, DxIndexBlock>();
  const root = parseDxRoot(img.bigBlocks[0]!, dxOpts(img, { kind: 'field', field: 'root' }));
  m.set(0, root);
  let level: DxIndexBlock[] = [root];
  for (let l = 0; l < root.indirectLevels; l++) {
    const next: DxIndexBlock[] = [];
    for (const ix of level) {
      for (const s of ix.slots) {
        const n = parseDxNode(img.bigBlocks[s.block]!, dxOpts(img, { kind: 'text', text: `node ${s.block}` }));
        m.set(s.block, n);
        next.push(n);
      }
    }
    level = next;
  }
  return m;
}

/** Leaf blocks of /big with the hash range [lo, hi) their index slot covers. */
function leafRanges(img: TestImage): Array<{ block: number; lo: number; hi: number }> {
  const idx = indexBlocks(img);
  const root = idx.get(0)! as ReturnType<typeof parseDxRoot>;
  const out: Array<{ block: number; lo: number; hi: number }> = [];
  const visit = (ix: DxIndexBlock, lo: number, hi: number, depth: number) => {
    ix.slots.forEach((s, i) => {
      const sLo = i === 0 ? lo : (s.hash & ~1) >>> 0;
      const sHi = i + 1 < ix.count ? (ix.slots[i + 1]!.hash & ~1) >>> 0 : hi;
      if (depth === root.indirectLevels) out.push({ block: s.block, lo: sLo, hi: sHi });
      else visit(idx.get(s.block)!, sLo, sHi, depth + 1);
    });
  };
  visit(root, 0, 0x100000000, 0);
  return out;
}

const key = (b: Uint8Array) => Buffer.from(b).toString('latin1');

describe.each([0, 1, 2, 3])('real image #%i', (n) => {
  const img = () => images[n];
  const skipMe = () => !img();

  it('has an htree root of the expected shape (hash version, levels, capacity)', (ctx) => {
    if (skipMe()) return ctx.skip(kernelSkip);
    const im = img()!;
    const root = parseDxRoot(im.bigBlocks[0]!, dxOpts(im, { kind: 'field', field: 'root' }));
    expect(root.hashVersion).toBe(im.sb.defHashVersion);
    if (n === 3) expect(root.hashVersion).toBe(2); // tea, set with debugfs before the kernel populated it
    expect(root.indirectLevels).toBe(im.sb.blockSize === 1024 ? 1 : 0);
    const csum = im.sb.metadataCsum;
    expect(root.limit).toBe(im.sb.blockSize === 4096 ? (csum ? 507 : 508) : csum ? 123 : 124);
    expect(root.dot.inode).toBe(im.big.ino);
    expect(root.dotdot.inode).toBe(im.rootIno);
    if (csum) expect(root.tail).not.toBeNull();
  });

  it('every leaf parses, verifies, and together they hold exactly the source names', (ctx) => {
    if (skipMe()) return ctx.skip(kernelSkip);
    const im = img()!;
    const idx = indexBlocks(im);
    const names = new Map<string, DirEntry>();
    let leaves = 0;
    im.bigBlocks.forEach((b, logical) => {
      if (im.sb.metadataCsum) expect(classifyDirBlock(b)).toBe(logical === 0 ? 'dx-root' : idx.has(logical) ? 'dx-node' : 'leaf');
      if (idx.has(logical)) return;
      leaves++;
      const r = readDirBlock(b, { blockSize: im.sb.blockSize, hasFiletype: true, csum: im.big.csumSeed === null ? null : { seed: im.big.csumSeed }, where: { kind: 'text', text: `leaf ${logical}` }, inodesCount: im.sb.inodesCount });
      expect(r.tail !== null).toBe(im.sb.metadataCsum);
      for (const e of liveEntries(r.entries)) {
        expect(names.has(key(e.name))).toBe(false);
        expect(e.fileType).toBe(1);
        names.set(key(e.name), e);
      }
    });
    expect(leaves).toBeGreaterThan(50);
    expect(names.size).toBe(im.names.length);
    for (const nm of im.names) expect(names.has(key(nm))).toBe(true);
  });

  it('every name sits in the leaf whose index range covers its hash (hash function oracle)', (ctx) => {
    if (skipMe()) return ctx.skip(kernelSkip);
    const im = img()!;
    const root = parseDxRoot(im.bigBlocks[0]!, dxOpts(im, { kind: 'field', field: 'root' }));
    let checked = 0;
    for (const { block, lo, hi } of leafRanges(im)) {
      const entries = parseDirBlock(im.bigBlocks[block]!, { blockSize: im.sb.blockSize, hasFiletype: true, csum: null, verify: false, where: { kind: 'text', text: `leaf ${block}` } });
      for (const e of liveEntries(entries)) {
        const h = dirHash(e.name, root.hashVersion, im.sb.hashSeed, im.sb.signed).hash;
        expect(h >= lo && h < hi, `${key(e.name)} hash ${h.toString(16)} in [${lo.toString(16)}, ${hi.toString(16)})`).toBe(true);
        checked++;
      }
    }
    expect(checked).toBe(im.names.length);
  });

  it('htreeLookup finds every name (same entry as the linear parse) and no absent one', async (ctx) => {
    if (skipMe()) return ctx.skip(kernelSkip);
    const im = img()!;
    const c = ctxFor(im);
    const linear = new Map<string, { inode: number; block: number; offset: number }>();
    const idx = indexBlocks(im);
    im.bigBlocks.forEach((b, logical) => {
      if (idx.has(logical)) return;
      for (const e of liveEntries(parseDirBlock(b, { blockSize: im.sb.blockSize, hasFiletype: true, csum: null, verify: false, where: { kind: 'text', text: '' } }))) {
        linear.set(key(e.name), { inode: e.inode, block: logical, offset: e.offset });
      }
    });
    let found = 0;
    for (const nm of im.names) {
      const hit = await htreeLookup(nm, c);
      expect(hit, key(nm)).not.toBeNull();
      expect({ inode: hit!.inode, block: hit!.block, offset: hit!.offset }).toEqual(linear.get(key(nm)));
      expect(Buffer.from(hit!.name).equals(nm)).toBe(true);
      found++;
    }
    expect(found).toBe(im.names.length);
    for (const nm of ABSENT) expect(await htreeLookup(nm, c)).toBeNull();
    const dot = await htreeLookup(Buffer.from('.'), c);
    const dotdot = await htreeLookup(Buffer.from('..'), c);
    expect(dot?.inode).toBe(im.big.ino);
    expect(dotdot?.inode).toBe(im.rootIno);
  });

  it('the small linear directory parses to its names, "." and ".."', (ctx) => {
    if (skipMe()) return ctx.skip(kernelSkip);
    const im = img()!;
    expect(im.smallBlocks.length).toBe(1);
    const entries = parseDirBlock(im.smallBlocks[0]!, {
      blockSize: im.sb.blockSize,
      hasFiletype: true,
      csum: im.small.csumSeed === null ? null : { seed: im.small.csumSeed },
      where: { kind: 'directory-block', dir: im.small.ino, block: 0 },
    });
    const live = [...liveEntries(entries)];
    const byName = new Map(live.map((e) => [key(e.name), e]));
    expect(byName.get('.')?.inode).toBe(im.small.ino);
    expect(byName.get('..')?.inode).toBe(im.rootIno);
    expect(byName.get('subdir')?.fileType).toBe(2);
    for (const nm of SMALL) expect(byName.get(key(nm))?.fileType).toBe(1);
    expect(live.length).toBe(SMALL.length + 3);
    // Entries tile the block (up to the tail).
    const end = entries.at(-1)!.offset + entries.at(-1)!.recLen;
    expect(end).toBe(im.sb.blockSize - (im.sb.metadataCsum ? 12 : 0));
  });

  it('a flipped byte in a leaf gives EFSBADCRC (metadata_csum) and is accepted with verify: false', async (ctx) => {
    if (skipMe()) return ctx.skip(kernelSkip);
    const im = img()!;
    if (!im.sb.metadataCsum) return ctx.skip('no metadata_csum on this image');
    const target = im.names[777]!;
    const hit = (await htreeLookup(target, ctxFor(im)))!;
    const blocks = im.bigBlocks.map((b) => b.slice());
    const lb = blocks[hit.block]!;
    lb[hit.offset + 8] = lb[hit.offset + 8]! ^ 0x01; // first name byte: still well-formed, checksum now wrong
    const opts = { blockSize: im.sb.blockSize, hasFiletype: true, csum: { seed: im.big.csumSeed! }, where: { kind: 'field', field: 'leaf' } satisfies Location };
    expect(await outcome(() => parseDirBlock(blocks[hit.block]!, opts))).toBe('EFSBADCRC');
    expect(await outcome(() => htreeLookup(target, ctxFor(im, blocks)))).toBe('EFSBADCRC');
    expect(await outcome(() => parseDirBlock(blocks[hit.block]!, { ...opts, verify: false }))).toBe('ok');
    // With verification off the renamed entry is simply not found.
    expect(await htreeLookup(target, ctxFor(im, blocks, im.big, { verify: false }))).toBeNull();
    let err: unknown;
    try {
      parseDirBlock(blocks[hit.block]!, opts);
    } catch (e) {
      err = e;
    }
    expect(isExt4Error(err) && err.structure).toBe('directory block');
    expect(isExt4Error(err) && err.location).toEqual({ kind: 'field', field: 'leaf' });
  });

  it('a bad rec_len gives EFSCORRUPTED naming the block and offset', async (ctx) => {
    if (skipMe()) return ctx.skip(kernelSkip);
    const im = img()!;
    const target = im.names[3210]!;
    const hit = (await htreeLookup(target, ctxFor(im)))!;
    const bs = im.sb.blockSize;
    const csum = im.big.csumSeed === null ? null : { seed: im.big.csumSeed };
    for (const bad of [0, 7, 13, hit.recLen + 4 * bs, 2]) {
      const blocks = im.bigBlocks.map((b) => b.slice());
      const leaf = blocks[hit.block]!;
      new DataView(leaf.buffer, leaf.byteOffset).setUint16(hit.offset + DirEntryLayout.offsetOf('rec_len'), bad & 0xffff, true);
      const where: Location = { kind: 'directory-block', dir: im.big.ino, block: hit.block, physical: im.big.blocks[hit.block]! };
      let err: unknown;
      try {
        parseDirBlock(leaf, { blockSize: bs, hasFiletype: true, csum, where });
      } catch (e) {
        err = e;
      }
      expect(isExt4Error(err, 'EFSCORRUPTED'), String(err)).toBe(true);
      expect((err as Error).message).toContain(`${describeLocation(where)} offset ${hit.offset}`);
      expect(await outcome(() => htreeLookup(target, ctxFor(im, blocks)))).toBe('EFSCORRUPTED');
    }
    // name_len larger than the record.
    const blocks = im.bigBlocks.map((b) => b.slice());
    blocks[hit.block]![hit.offset + 6] = 255;
    if (hit.recLen < 263) expect(await outcome(() => parseDirBlock(blocks[hit.block]!, { blockSize: bs, hasFiletype: true, csum, where: { kind: 'field', field: 'x' } }))).toBe('EFSCORRUPTED');
  });

  it('an htree root with indirect_levels 5 gives EFSCORRUPTED (and EFSBADCRC if its checksum is stale)', async (ctx) => {
    if (skipMe()) return ctx.skip(kernelSkip);
    const im = img()!;
    const blocks = im.bigBlocks.map((b) => b.slice());
    const root = blocks[0]!;
    root[DX_ROOT_INFO_OFFSET + DxRootInfoLayout.offsetOf('indirect_levels')] = 5;
    if (im.sb.metadataCsum) {
      expect(await outcome(() => htreeLookup(BIG[1]!, ctxFor(im, blocks)))).toBe('EFSBADCRC');
      setDxChecksum(root, im.big.csumSeed!);
    }
    expect(await outcome(() => htreeLookup(BIG[1]!, ctxFor(im, blocks)))).toBe('EFSCORRUPTED');
    expect(await outcome(() => parseDxRoot(root, dxOpts(im, { kind: 'field', field: 'root' })))).toBe('EFSCORRUPTED');
    // 2 is fine only with LARGEDIR.
    root[DX_ROOT_INFO_OFFSET + DxRootInfoLayout.offsetOf('indirect_levels')] = 2;
    if (im.sb.metadataCsum) setDxChecksum(root, im.big.csumSeed!);
    expect(await outcome(() => parseDxRoot(root, dxOpts(im, { kind: 'field', field: 'root' })))).toBe('EFSCORRUPTED');
    expect(await outcome(() => parseDxRoot(root, { ...dxOpts(im, { kind: 'field', field: 'root' }), largeDir: true }))).toBe('ok');
  });

  it('index slots pointing outside the directory, bad hash versions and bad limits give EFSCORRUPTED', async (ctx) => {
    if (skipMe()) return ctx.skip(kernelSkip);
    const im = img()!;
    const seed = im.big.csumSeed;
    const mutate = (f: (root: Uint8Array, dv: DataView) => void) => {
      const blocks = im.bigBlocks.map((b) => b.slice());
      const r = blocks[0]!;
      f(r, new DataView(r.buffer, r.byteOffset));
      if (seed !== null) setDxChecksum(r, seed);
      return blocks;
    };
    const slot1Block = DX_ROOT_COUNT_OFFSET + 8 + 4;
    expect(parseDxRoot(im.bigBlocks[0]!, dxOpts(im, { kind: 'field', field: 'root' })).count).toBeGreaterThanOrEqual(3);
    const cases: Array<[string, (r: Uint8Array, d: DataView) => void]> = [
      ['slot beyond blockCount', (_r, d) => d.setUint32(DX_ROOT_COUNT_OFFSET + 4, im.bigBlocks.length + 3, true)],
      ['slot pointing at block 0', (_r, d) => d.setUint32(slot1Block, 0, true)],
      ['hash version 9', (r) => (r[DX_ROOT_INFO_OFFSET + 4] = 9)],
      ['unused_flags bit 0', (r) => (r[DX_ROOT_INFO_OFFSET + 7] = 1)],
      ['limit off by one', (_r, d) => d.setUint16(DX_ROOT_COUNT_OFFSET, d.getUint16(DX_ROOT_COUNT_OFFSET, true) - 1, true)],
      ['count 0', (_r, d) => d.setUint16(DX_ROOT_COUNT_OFFSET + 2, 0, true)],
      ['slots out of order', (_r, d) => d.setUint32(DX_ROOT_COUNT_OFFSET + 8, 0xfffffff0, true)],
    ];
    // Names routed through slot 0 and slot 1 of the root, plus a sample of the rest.
    const root = parseDxRoot(im.bigBlocks[0]!, dxOpts(im, { kind: 'field', field: 'root' }));
    const h = (nm: Buffer) => dirHash(nm, root.hashVersion, im.sb.hashSeed, im.sb.signed).hash;
    const s1 = root.slots[1]!.hash, s2 = root.slots[2]!.hash;
    const probe = [
      ...im.names.filter((nm) => h(nm) < s1).slice(0, 20),
      ...im.names.filter((nm) => h(nm) >= s1 && h(nm) < s2).slice(0, 20),
      ...im.names.filter((_nm, i) => i % 97 === 0),
    ];
    expect(probe.length).toBeGreaterThan(40);
    for (const [label, f] of cases) {
      const blocks = mutate(f);
      const codes = new Set<string>();
      for (const nm of probe) codes.add(await outcome(() => htreeLookup(nm, ctxFor(im, blocks))));
      expect([...codes].filter((c) => c !== 'ok'), label).toEqual(['EFSCORRUPTED']);
    }
  });

  it('random byte flips in index and leaf blocks only ever produce Ext4Errors', async (ctx) => {
    if (skipMe()) return ctx.skip(kernelSkip);
    const im = img()!;
    const r = prng(0xf11b + n);
    const idx = indexBlocks(im);
    const indexNos = [...idx.keys()];
    const bad: string[] = [];
    const seen = new Set<string>();
    for (let iter = 0; iter < 400; iter++) {
      const blocks = im.bigBlocks.map((b) => b);
      // Half the time damage an index block, otherwise a leaf.
      const victim = iter % 2 === 0 ? indexNos[r() % indexNos.length]! : r() % blocks.length;
      const b = blocks[victim]!.slice();
      const flips = 1 + (r() % 8);
      for (let k = 0; k < flips; k++) {
        // Bias towards headers: the first 64 bytes of index blocks hold all the structure.
        const pos = iter % 4 === 0 ? r() % 64 : r() % b.length;
        b[pos] = r() & 0xff;
      }
      blocks[victim] = b;
      for (const verify of [true, false]) {
        const c = ctxFor(im, blocks, im.big, { verify });
        for (let q = 0; q < 3; q++) {
          const name = im.names[r() % im.names.length]!;
          const o = await outcome(() => htreeLookup(name, c));
          seen.add(o);
          if (o.startsWith('OTHER')) bad.push(`iter ${iter} block ${victim}: ${o}`);
        }
        const o2 = await outcome(() => parseDirBlock(b, { blockSize: im.sb.blockSize, hasFiletype: true, csum: im.big.csumSeed === null ? null : { seed: im.big.csumSeed }, verify, where: { kind: 'field', field: 'fuzz' } }));
        if (o2.startsWith('OTHER')) bad.push(`parseDirBlock iter ${iter}: ${o2}`);
        const o3 = await outcome(() => parseDxRoot(b, dxOpts(im, { kind: 'field', field: 'fuzz' })));
        if (o3.startsWith('OTHER')) bad.push(`parseDxRoot iter ${iter}: ${o3}`);
        const o4 = await outcome(() => parseDxNode(b, dxOpts(im, { kind: 'field', field: 'fuzz' })));
        if (o4.startsWith('OTHER')) bad.push(`parseDxNode iter ${iter}: ${o4}`);
        classifyDirBlock(b);
      }
    }
    expect(bad).toEqual([]);
    expect(seen.has('ok')).toBe(true);
    expect(seen.has('EFSCORRUPTED') || seen.has('EFSBADCRC')).toBe(true);
  });

  it('setDxChecksum / dxChecksum reproduce the stored index checksums', (ctx) => {
    if (skipMe()) return ctx.skip(kernelSkip);
    const im = img()!;
    if (!im.sb.metadataCsum) return ctx.skip('no metadata_csum on this image');
    for (const [logical, ix] of indexBlocks(im)) {
      const b = im.bigBlocks[logical]!;
      expect(dxChecksum(b, ix.countOffset, ix.count, ix.limit, im.big.csumSeed!)).toBe(ix.tail!.checksum);
      const copy = b.slice();
      new DataView(copy.buffer).setUint32(ix.countOffset + 8 * ix.limit + 4, 0, true);
      setDxChecksum(copy, im.big.csumSeed!);
      expect(Buffer.from(copy).equals(Buffer.from(b))).toBe(true);
    }
  });
});

describe('makeDirBlock output accepted by e2fsck', () => {
  it('repacked small-directory and htree-leaf blocks written back into the images pass e2fsck -fn', (ctx) => {
    let done = 0;
    for (const im of images) {
      const bs = im.sb.blockSize;
      const rewrite = (physical: number, info: typeof im.small, block: Uint8Array, stretchFirst: boolean) => {
        const csum = info.csumSeed === null ? null : { seed: info.csumSeed };
        const entries = parseDirBlock(block, { blockSize: bs, hasFiletype: true, csum, where: { kind: 'field', field: 'rewrite' } });
        const live = [...liveEntries(entries)].map((e) => ({ inode: e.inode, name: e.name, fileType: e.fileType }));
        // Repack: reverse the order after '.' and '..' (the small dir) and leave slack after the first name.
        const ordered: Array<{ inode: number; name: Uint8Array; fileType: number; recLen?: number }> = stretchFirst ? [live[0]!, live[1]!, ...live.slice(2).reverse()] : live.reverse();
        if (stretchFirst) ordered[2]!.recLen = 64 + ((8 + ordered[2]!.name.length + 3) & ~3);
        const fresh = makeDirBlock(ordered, { blockSize: bs, hasFiletype: true, csum });
        const back = parseDirBlock(fresh, { blockSize: bs, hasFiletype: true, csum, where: { kind: 'field', field: 'fresh' } });
        expect([...liveEntries(back)].map((e) => key(e.name)).sort()).toEqual(live.map((e) => key(e.name)).sort());
        const fd = openSync(im.path, 'r+');
        try {
          writeSync(fd, fresh, 0, bs, physical * bs);
        } finally {
          closeSync(fd);
        }
        expect(Buffer.from(readBytes(im.path, physical * bs, bs)).equals(Buffer.from(fresh))).toBe(true);
      };
      rewrite(im.small.blocks[0]!, im.small, im.smallBlocks[0]!, true);
      const idx = indexBlocks(im);
      const leafNo = [...im.bigBlocks.keys()].find((l) => !idx.has(l))!;
      rewrite(im.big.blocks[leafNo]!, im.big, im.bigBlocks[leafNo]!, false);
      assertClean(im.path);
      done++;
    }
    if (!done) ctx.skip('no images');
  });
});
