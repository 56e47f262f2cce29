/**
 * random.ts's reproducible draws hash their seed string in pieces (the uuid/time prefix once) and
 * take the purpose lazily: the values must stay exactly those of `new Prng(seed string)` — images
 * written with SOURCE_DATE_EPOCH depend on them (i_generation of every new inode).
 */
import { describe, expect, it } from 'vitest';
import { randomBelow, randomU32, type RandomSource } from '../../lib/ext4/random.js';
import { Prng } from '../../lib/io/prng.js';

const hex = (u: Uint8Array): string => Array.from(u, (b) => b.toString(16).padStart(2, '0')).join('');

function source(uuid: Uint8Array, sec: number, nsec: number): RandomSource {
  return { reproducible: true, now: () => ({ sec, nsec }), sb: { s_uuid: uuid }, platform: { randomValues: () => { throw new Error('no CSPRNG in reproducible mode'); } } };
}

describe('reproducible draws', () => {
  it('equal new Prng(`${uuid}/${sec}.${nsec}/${purpose}/${k}`) over uuids, times, purposes, bounds and draw numbers', () => {
    const r = new Prng(5);
    let checked = 0;
    for (let c = 0; c < 60; c++) {
      const uuid = new Uint8Array(16).map(() => r.int(256));
      const sec = c % 3 === 0 ? 1_700_000_000 : r.int(2 ** 32) + (c % 5 === 0 ? 2 ** 33 : 0);
      const nsec = c % 2 ? 0 : r.int(1e9);
      const src = source(uuid, sec, nsec);
      for (let k = 1; k <= 25; k++) {
        const purpose = k % 4 === 0 ? `mkdtemp tmp-XXXXXX ${k}.${c}` : k % 7 === 0 ? 'é ü 漢 \u{1F600}' : `i_generation of inode ${r.int(1 << 20)}`;
        const n = k % 3 === 0 ? 62 : k % 3 === 1 ? 2 ** 32 : 1 + r.int(1000);
        const want = new Prng(`${hex(uuid)}/${sec}.${nsec}/${purpose}/${k}`).int(n);
        const got = k % 2 ? randomBelow(src, n, purpose) : n === 2 ** 32 ? randomU32(src, () => purpose) : randomBelow(src, n, () => purpose);
        expect(got, `case ${c} draw ${k}`).toBe(want);
        checked++;
      }
      // the same bytes changed in place: the new uuid's values
      uuid[3] = (uuid[3]! + 1) & 0xff;
      expect(randomBelow(src, 2 ** 32, 'after')).toBe(new Prng(`${hex(uuid)}/${sec}.${nsec}/after/26`).int(2 ** 32));
    }
    expect(checked).toBe(1500);
  });

  it('a purpose given as a function is not called outside reproducible mode', () => {
    const src: RandomSource = { reproducible: false, now: () => ({ sec: 0, nsec: 0 }), sb: { s_uuid: new Uint8Array(16) }, platform: { randomValues: <T extends ArrayBufferView>(a: T) => a } };
    let called = 0;
    randomU32(src, () => `x ${called++}`);
    expect(called).toBe(0);
  });
});
