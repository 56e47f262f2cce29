/**
 * The crash harness's OverlayDevice.matches (the in-place comparison every crash point makes
 * against its reference state) agrees with reading the range and comparing the copy: written
 * pages, base runs between them, ranges starting and ending inside pages, one byte off anywhere.
 */
import { describe, expect, it } from 'vitest';
import { OverlayDevice, pattern, sameBytes } from './harness.js';
import { Prng } from '../../lib/io/prng.js';

describe('OverlayDevice.matches', () => {
  it('agrees with read + compare on random ranges, equal and one byte off', async () => {
    const rng = new Prng(31);
    const base = pattern(64 * 1024, 5);
    const dev = new OverlayDevice(base);
    for (let i = 0; i < 12; i++) dev.writeSync(rng.int(base.length - 300), pattern(1 + rng.int(300), 100 + i));
    let equal = 0, differ = 0;
    for (let i = 0; i < 400; i++) {
      const pos = rng.int(base.length - 1);
      const len = 1 + rng.int(Math.min(base.length - pos, 20_000));
      const ref = await dev.read(pos, len);
      expect(dev.matches(pos, ref)).toBe(true);
      equal++;
      const off = rng.int(len);
      ref[off] = ref[off]! ^ 0x40;
      expect(dev.matches(pos, ref), `range ${pos}+${len}, byte ${off} changed`).toBe(sameBytes(await dev.read(pos, len), ref));
      differ++;
    }
    expect([equal, differ]).toEqual([400, 400]);
  });
});
