/**
 * The host reader's zero map (lib/cli/host-reader-worker.ts markZeros, lib/ops/tree-entry.ts
 * ZeroUnits): the worker says which 4 KiB units of what it read are all zeros, and importTree
 * makes holes from that map instead of reading the bytes.
 *  - the map of every chunk matches its bytes, unit by unit (a map off by one unit fails: the
 *    files alternate zero and non-zero units, partial last units included);
 *  - imported from the host directory, the kernel (loop mount, SEEK_DATA/SEEK_HOLE) sees a hole
 *    exactly where a 4 KiB block of the source is zeros, and the source's bytes; e2fsck clean;
 *  - importTree follows a producer's map (a map that calls a non-zero unit zero makes a hole
 *    there): the hole test no longer scans the bytes when there is a map.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readHostTree } from '../../lib/cli/host-tree.js';
import { importTree } from '../../lib/ops/import-tree.js';
import { setZeroUnits, zeroUnitsOf, type TreeEntry } from '../../lib/ops/tree-entry.js';
import { Filesystem } from '../../lib/ext4/filesystem.js';
import { FileDevice } from '../../lib/io/file-device.js';
import { expectE2fsckClean, hostDataMaps, mkfs, skipReason, withLoopMount } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { prngBytes } from '../helpers/tree.js';

const U = 4096;
const skip = skipReason('loop');

/** A file of units: 'z' all zeros, 'd' data; a last partial unit of `tail` bytes ('z' or 'd'). */
function file(name: string, units: string, tail = 0, tailKind = 'd'): Buffer {
  const b = Buffer.alloc(units.length * U + tail);
  const data = prngBytes(name, b.length);
  const kinds = units + (tail ? tailKind : '');
  for (let k = 0; k < kinds.length; k++) {
    if (kinds[k] !== 'd') continue;
    const end = Math.min(b.length, (k + 1) * U);
    b.set(data.subarray(k * U, end), k * U);
    // A data unit that starts and ends with zeros (only its middle is data): the worker's fast test does not decide it.
    if (k % 3 === 2) { b[k * U] = 0; b[end - 1] = 0; }
  }
  return b;
}

// Whole-file reads (≤ 1 MiB) and a chunked one (> 1 MiB) with zeros at the chunk's edges.
const FILES: Record<string, Buffer> = {
  a: file('a', 'dzdzzd', 100),
  b: file('b', 'zzd'),
  c: file('c', 'z'.repeat(2) + 'dzd'.repeat(100) + 'd'.repeat(200) + 'zz', 1000, 'z'),
  e: file('e', '', 10),
  z: file('z', 'zz', 808, 'z'),
};

/** Expected data runs (SEEK_DATA/SEEK_HOLE of the imported file): maximal runs of non-zero 4 KiB blocks. */
function dataRuns(b: Buffer): [number, number][] {
  const runs: [number, number][] = [];
  for (let k = 0; k * U < b.length; k++) {
    const end = Math.min(b.length, (k + 1) * U);
    if (b.subarray(k * U, end).every((x) => x === 0)) continue;
    const last = runs[runs.length - 1];
    if (last && last[1] === k * U) last[1] = end;
    else runs.push([k * U, end]);
  }
  return runs;
}


let src = '';
let img = '';
beforeAll(() => {
  src = tmpDir('host-zero-map-src');
  for (const [n, b] of Object.entries(FILES)) fs.writeFileSync(path.join(src, n), b);
  if (skip) return;
  img = tmpPath('host-zero-map.img');
  mkfs('ext4', img, 16 << 20, ['-b', '4096']);
});
afterAll(() => {
  if (src) fs.rmSync(src, { recursive: true, force: true });
  if (img) fs.rmSync(img, { force: true });
});

describe('the host reader zero map', () => {
  it('says, unit by unit, which 4 KiB of every chunk are zeros', async () => {
    const t = await readHostTree(src, { xattrs: false, readAheadSlabs: 1 });
    let checked = 0;
    try {
      for await (const e of t.entries) {
        if (e.type !== 'file') continue;
        const want = FILES[e.path]!;
        const chunks = e.data instanceof Uint8Array ? [e.data] : [];
        if (!(e.data instanceof Uint8Array)) for await (const c of e.data!) chunks.push(c);
        let pos = 0;
        for (const c of chunks) {
          const z = zeroUnitsOf(c.buffer);
          expect(z?.unit, e.path).toBe(U);
          expect(c.byteOffset % U, e.path).toBe(0);
          for (let k = 0; k * U < c.length; k++) {
            const bytes = want.subarray(pos + k * U, pos + Math.min(c.length, (k + 1) * U));
            expect(z!.zero[c.byteOffset / U + k] !== 0, `${e.path} unit ${pos / U + k}`).toBe(bytes.every((x) => x === 0));
            checked++;
          }
          pos += c.length;
        }
        expect(pos, e.path).toBe(want.length);
      }
    } finally {
      await t.close();
    }
    expect(checked).toBe(Object.values(FILES).reduce((s, b) => s + Math.ceil(b.length / U), 0));
  });

  it.skipIf(!!skip)('imported, a zero block is a hole and a non-zero one is not (the kernel reads it back)', async () => {
    const fsys = await Filesystem.open(await FileDevice.open(img, { write: true }), { write: true, closeDevice: true });
    const t = await readHostTree(src, { xattrs: false, reuse: true, readAheadSlabs: 1 });
    try {
      await importTree(fsys, t.entries, { at: '/host', released: t.recycle });
      // A producer's map is followed: unit 0 is called zero (it is not), unit 1 data (it is zeros).
      const lie = new Uint8Array(3 * U);
      lie.set(prngBytes('lie', U), 0);
      lie.set(prngBytes('lie2', U), 2 * U);
      setZeroUnits(lie.buffer, { unit: U, zero: Uint8Array.of(1, 0, 0) });
      const entry: TreeEntry = { path: 'lie', type: 'file', mode: 0o644, uid: 0, gid: 0, size: lie.length, data: lie };
      await importTree(fsys, [entry], { at: '/map' });
    } finally {
      await t.close();
      await fsys.close();
    }
    expectE2fsckClean(img, 'after the import');
    await withLoopMount(img, (mp) => {
      const names = Object.keys(FILES);
      const maps = hostDataMaps([...names.map((n) => path.join(mp, 'host', n)), path.join(mp, 'map/lie')]);
      for (const n of names) {
        expect(maps[path.join(mp, 'host', n)]!.runs, n).toEqual(dataRuns(FILES[n]!));
        expect(fs.readFileSync(path.join(mp, 'host', n)).equals(FILES[n]!), `${n} bytes`).toBe(true);
      }
      expect(maps[path.join(mp, 'map/lie')]!.runs).toEqual([[U, 3 * U]]);
    }, { readOnly: true });
  }, 60_000);
});
