/**
 * layOut (lib/ops/move-batch.ts) against its definition: the range's mapped parts laid onto the
 * targets in logical order, the range punched out of the map and the parts inserted
 * (extent-map.ts punch + insert, which normalises the whole list). layOut keeps the parts outside
 * the range as they are when the list is already in normal form; random maps in and out of normal
 * form (neighbours normalise merges, extents at the length limit, unwritten ones), targets beside
 * the range's neighbours (seams that merge), fixed seed.
 */
import { describe, expect, it } from 'vitest';
import { layOut, mappedRange } from '../../lib/ops/move-batch.js';
import { insert, mappedIn, punch } from '../../lib/ext4/extent-map.js';
import { EXT_INIT_MAX_LEN, EXT_UNWRITTEN_MAX_LEN, type Extent } from '../../lib/ext4/extents.js';
import type { Copy } from '../../lib/ops/copy-runs.js';
import { mulberry32 } from '../../lib/io/prng.js';

type Run = { start: number; length: number };

function reference(extents: readonly Extent[], lb: number, n: number, target: readonly Run[]): { newExtents: Extent[]; freed: Extent[]; copies: Copy[] } {
  const placed: Extent[] = [];
  const copies: Copy[] = [];
  let ti = 0, toff = 0;
  for (const p of mappedIn(extents, lb, n)) {
    for (let done = 0; done < p.length; ) {
      const t = target[ti]!;
      const k = Math.min(p.length - done, t.length - toff);
      placed.push({ logical: p.logical + done, physical: t.start + toff, length: k, unwritten: p.unwritten });
      if (!p.unwritten) copies.push({ from: p.physical + done, to: t.start + toff, length: k });
      done += k;
      toff += k;
      if (toff === t.length) (ti++, (toff = 0));
    }
  }
  const { list, removed } = punch(extents, lb, n);
  return { newExtents: insert(list, placed), freed: removed, copies };
}

/** Values only (a shared input object and a copy compare alike). */
const plain = (l: readonly Extent[]) => l.map((e) => [e.logical, e.physical, e.length, e.unwritten]);

describe('layOut', () => {
  it('equals punch + insert on 8,000 random maps, in normal form or not', () => {
    const rnd = mulberry32(20261206);
    const int = (a: number, b: number) => a + Math.floor(rnd() * (b - a + 1));
    let normalCases = 0, seams = 0, compared = 0;
    for (let c = 0; c < 8000; c++) {
      const extents: Extent[] = [];
      let logical = int(0, 3), physical = int(100, 200);
      const count = int(0, 30);
      for (let i = 0; i < count; i++) {
        const unwritten = rnd() < 0.2;
        const max = unwritten ? EXT_UNWRITTEN_MAX_LEN : EXT_INIT_MAX_LEN;
        const length = rnd() < 0.05 ? max - int(0, 3) : int(1, 8);
        // mostly a gap somewhere (normal form); sometimes adjacent on both sides (normalise merges it)
        const adjacent = rnd() < 0.1;
        const gapL = adjacent ? 0 : int(0, 2);
        const gapP = adjacent ? 0 : gapL === 0 ? int(1, 50) : int(0, 50);
        logical += gapL;
        physical += gapP;
        extents.push({ logical, physical, length, unwritten });
        logical += length;
        physical += length;
      }
      const endL = logical + 4;
      const lb = int(0, endL), n = int(0, endL - lb + 2);
      const need = mappedIn(extents, lb, n).reduce((a, e) => a + e.length, 0);
      const owned = (b: number) => extents.some((e) => b >= e.physical && b < e.physical + e.length);
      // targets: after the file's blocks, or right after the extent before the range / ending at the one after it
      const target: Run[] = [];
      let left = need, at = physical + int(1, 100);
      const before = [...extents].reverse().find((e) => e.logical + e.length <= lb);
      if (left && before && rnd() < 0.4 && !owned(before.physical + before.length)) {
        let k = 0;
        while (k < left && k < 6 && !owned(before.physical + before.length + k)) k++;
        target.push({ start: before.physical + before.length, length: k });
        left -= k;
        seams++;
      }
      while (left > 0) {
        const k = Math.min(left, int(1, left));
        target.push({ start: at, length: k });
        at += k + int(1, 5);
        left -= k;
      }
      const after = extents.find((e) => e.logical >= lb + n);
      if (after && target.length && rnd() < 0.3) {
        const last = target[target.length - 1]!;
        if (after.physical - last.length > physical) target[target.length - 1] = { start: after.physical - last.length, length: last.length };
      }
      let got: ReturnType<typeof layOut> | Error, want: ReturnType<typeof layOut> | Error;
      try {
        got = layOut(extents, lb, n, target);
      } catch (e) {
        got = e as Error;
      }
      try {
        want = reference(extents, lb, n, target);
      } catch (e) {
        want = e as Error;
      }
      if (want instanceof Error) {
        expect(got, `case ${c}`).toBeInstanceOf(Error);
        continue;
      }
      if (got instanceof Error) throw new Error(`case ${c}: ${got.message} (${JSON.stringify({ extents, lb, n, target })})`);
      if (!extents.some((e, i) => i > 0 && extents[i - 1]!.logical + extents[i - 1]!.length === e.logical && extents[i - 1]!.physical + extents[i - 1]!.length === e.physical)) normalCases++;
      // (compared as strings: expect() per case was most of the test's time)
      const g = JSON.stringify([plain(got.newExtents), plain(got.freed), got.copies]);
      const w = JSON.stringify([plain(want.newExtents), plain(want.freed), want.copies]);
      if (g !== w) expect(g, `case ${c} ${JSON.stringify({ extents, lb, n, target })}`).toBe(w);
      compared++;
    }
    // both forms and the seams were exercised
    expect(compared).toBeGreaterThan(6000);
    expect(normalCases).toBeGreaterThan(800);
    expect(seams).toBeGreaterThan(400);
  });

  it('on its own results (known normal: only the range is read) equals punch + insert, 1,500 chains of 6', () => {
    const rnd = mulberry32(20261207);
    const int = (a: number, b: number) => a + Math.floor(rnd() * (b - a + 1));
    let compared = 0, cached = 0;
    for (let c = 0; c < 1500; c++) {
      let extents: Extent[] = [];
      let logical = int(0, 3), physical = int(100, 200);
      for (let i = int(1, 25); i > 0; i--) {
        logical += int(0, 2);
        physical += int(1, 40);
        const length = int(1, 8);
        extents.push({ logical, physical, length, unwritten: rnd() < 0.15 });
        logical += length;
        physical += length;
      }
      // (normalise once: the first call scans, the next ones start from a list layOut made)
      extents = layOut(extents, 0, 0, []).newExtents;
      let top = physical + 10;
      for (let step = 0; step < 6; step++) {
        const endL = logical + 2;
        const lb = int(0, endL), n = int(0, endL - lb);
        const need = mappedIn(extents, lb, n).reduce((a, e) => a + e.length, 0);
        if (step > 0) {
          // (the range search on a known list: what mappedIn's scan finds)
          const w = n + int(0, 3);
          expect(plain(mappedRange(extents, lb, w))).toEqual(plain(mappedIn(extents, lb, w)));
        }
        const target: Run[] = [];
        for (let left = need; left > 0; ) {
          const k = int(1, left);
          // sometimes right after the previous target (parts that merge), else with a gap
          top += rnd() < 0.3 ? 0 : int(1, 5);
          target.push({ start: top, length: k });
          top += k;
          left -= k;
        }
        const got = layOut(extents, lb, n, target);
        const want = reference(extents.map((e) => ({ ...e })), lb, n, target);
        const g = JSON.stringify([plain(got.newExtents), plain(got.freed), got.copies]);
        const w = JSON.stringify([plain(want.newExtents), plain(want.freed), want.copies]);
        if (g !== w) expect(g, `chain ${c} step ${step} ${JSON.stringify({ extents, lb, n, target })}`).toBe(w);
        // the same list as a fresh array (scanned): the same result
        const scanned = layOut([...extents], lb, n, target);
        expect(JSON.stringify([plain(scanned.newExtents), plain(scanned.freed), scanned.copies])).toBe(g);
        if (step > 0) cached++;
        compared++;
        extents = got.newExtents;
      }
    }
    expect(compared).toBe(9000);
    expect(cached).toBe(7500);
  });

  it('keeps the input list untouched', () => {
    const extents: Extent[] = [
      { logical: 0, physical: 100, length: 4, unwritten: false },
      { logical: 4, physical: 200, length: 4, unwritten: false },
      { logical: 8, physical: 300, length: 4, unwritten: false },
    ];
    const copy = JSON.stringify(extents);
    // the moved middle extent lands right after the first one: the seam merges into a new object
    const r = layOut(extents, 4, 4, [{ start: 104, length: 4 }]);
    expect(plain(r.newExtents)).toEqual([[0, 100, 8, false], [8, 300, 4, false]]);
    expect(JSON.stringify(extents)).toBe(copy);
  });
});
