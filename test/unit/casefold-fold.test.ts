/**
 * The casefold function (lib/ext4/casefold.ts) on tricky code points. Each
 * expectation is written out from the Unicode 12.1 data files it comes from
 * (quoted), or from the kernel's documented rules (fs/unicode/mkutf8data.c,
 * utf8-norm.c, fs/unicode/tests/utf8_kunit.c) — never computed by our code.
 */
import { describe, it, expect } from 'vitest';
import { utf8Casefold, ciLookupName, ciHashName, EXT4_ENC_STRICT_MODE_FL, EXT4_ENC_UTF8_12_1 } from '../../lib/ext4/casefold.js';
import { isExt4Error } from '../../lib/errors.js';

const cps = (...c: number[]) => Buffer.from(String.fromCodePoint(...c), 'utf8');
const fold = (b: Uint8Array) => {
  const r = utf8Casefold(b);
  return r === null ? null : Buffer.from(r).toString('hex');
};
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

// [input code points, expected code points, source]
const CASES: [number[], number[], string][] = [
  [[0x41, 0x42, 0x62, 0x61], [0x61, 0x62, 0x62, 0x61], 'CaseFolding.txt 0041; C; 0061 / 0042; C; 0062'],
  [[0xdf], [0x73, 0x73], 'CaseFolding.txt 00DF; F; 0073 0073'],
  [[0x1e9e], [0x73, 0x73], 'CaseFolding.txt 1E9E; F; 0073 0073 (S 00DF not used)'],
  [[0x17f], [0x73], 'CaseFolding.txt 017F; C; 0073'],
  [[0xc5], [0x61, 0x30a], 'CaseFolding.txt 00C5; C; 00E5 + UnicodeData 00E5 decomposition 0061 030A'],
  [[0x212b], [0x61, 0x30a], 'CaseFolding.txt 212B; C; 00E5 (ANGSTROM SIGN)'],
  [[0x212a], [0x6b], 'CaseFolding.txt 212A; C; 006B (KELVIN SIGN)'],
  [[0xe9], [0x65, 0x301], 'UnicodeData 00E9 decomposition 0065 0301'],
  [[0x65, 0x301], [0x65, 0x301], 'already NFD'],
  [[0x130], [0x69, 0x307], 'CaseFolding.txt 0130; F; 0069 0307 (T 0069 not used)'],
  [[0x49], [0x69], 'CaseFolding.txt 0049; C; 0069 (T 0131 not used)'],
  [[0x131], [0x131], 'CaseFolding.txt has no C/F entry for 0131'],
  [[0x3a3], [0x3c3], 'CaseFolding.txt 03A3; C; 03C3'],
  [[0x3c2], [0x3c3], 'CaseFolding.txt 03C2; C; 03C3'],
  [[0x390], [0x3b9, 0x308, 0x301], 'CaseFolding.txt 0390; F; 03B9 0308 0301'],
  [[0x1f88], [0x3b1, 0x313, 0x3b9], 'CaseFolding.txt 1F88; F; 1F00 03B9 + UnicodeData 1F00 decomposition 03B1 0313'],
  [[0x345], [0x3b9], 'CaseFolding.txt 0345; C; 03B9 (a class-0 letter)'],
  [[0x149], [0x2bc, 0x6e], 'CaseFolding.txt 0149; F; 02BC 006E'],
  [[0x587], [0x565, 0x582], 'CaseFolding.txt 0587; F; 0565 0582'],
  [[0xfb00], [0x66, 0x66], 'CaseFolding.txt FB00; F; 0066 0066'],
  [[0xfb01], [0x66, 0x69], 'CaseFolding.txt FB01; F; 0066 0069'],
  [[0x1c4], [0x1c6], 'CaseFolding.txt 01C4; C; 01C6 (its <compat> decomposition is not used)'],
  [[0x1c5], [0x1c6], 'CaseFolding.txt 01C5; C; 01C6'],
  [[0xbd], [0xbd], 'UnicodeData 00BD decomposition is <fraction>: not used (NFD, not NFKD)'],
  [[0x2460], [0x2460], 'UnicodeData 2460 decomposition is <circle>: not used'],
  [[0xff21], [0xff41], 'CaseFolding.txt FF21; C; FF41 (its <wide> decomposition is not used)'],
  [[0xbc], [0xbc], 'UnicodeData 00BC decomposition is <fraction> (utf8_kunit.c: ONE QUARTER does not decompose)'],
  [[0x387], [0xb7], 'UnicodeData 0387 decomposition 00B7 (utf8_kunit.c GREEK ANO TELEIA)'],
  [[0xab70], [0x13a0], 'CaseFolding.txt AB70; C; 13A0 (Cherokee folds to upper case)'],
  [[0x13f8], [0x13f0], 'CaseFolding.txt 13F8; C; 13F0'],
  [[0x10c83], [0x10cc3], 'CaseFolding.txt 10C83; C; 10CC3'],
  [[0x104b5], [0x104dd], 'CaseFolding.txt 104B5; C; 104DD'],
  [[0xa7ae], [0x26a], 'CaseFolding.txt A7AE; C; 026A'],
  [[0x1c90], [0x10d0], 'CaseFolding.txt 1C90; C; 10D0 (Unicode 11)'],
  [[0xac00], [0x1100, 0x1161], 'Hangul syllable decomposition (Unicode §3.12): LV'],
  [[0xac01], [0x1100, 0x1161, 0x11a8], 'Hangul syllable decomposition: LVT'],
  [[0xd7a3], [0x1112, 0x1175, 0x11c2], 'Hangul syllable decomposition: last syllable'],
  // Canonical ordering by DerivedCombiningClass: 0301 is 230, 0328 is 202, 0316 is 220, 0345 is 240.
  [[0x41, 0x301, 0x328], [0x61, 0x328, 0x301], 'utf8_kunit.c: A + 0301 + 0328 → a + 0328 + 0301'],
  [[0xe4, 0x328], [0x61, 0x328, 0x308], 'utf8_kunit.c: 00E4 + 0328 → a + 0328 + 0308'],
  [[0x61, 0x301, 0x316, 0x328], [0x61, 0x328, 0x316, 0x301], 'classes 230, 220, 202 sorted ascending'],
  [[0x61, 0x301, 0x300, 0x316], [0x61, 0x316, 0x301, 0x300], 'equal classes (0301, 0300: 230) keep their order'],
  // Default_Ignorable_Code_Point (DerivedCoreProperties.txt) folds to nothing.
  [[0x61, 0x200b, 0x62], [0x61, 0x62], 'DerivedCoreProperties 200B..200F Default_Ignorable_Code_Point'],
  [[0x61, 0xad, 0x62], [0x61, 0x62], 'DerivedCoreProperties 00AD Default_Ignorable_Code_Point'],
  [[0x61, 0xfe0f], [0x61], 'DerivedCoreProperties FE00..FE0F Default_Ignorable_Code_Point'],
  [[0x61, 0xe0001, 0xe0fff], [0x61], 'DerivedCoreProperties E0001, E01F0..E0FFF (unassigned, still ignorable)'],
  [[0x115f, 0x1160, 0x3164], [], 'DerivedCoreProperties 115F..1160, 3164 (Hangul fillers)'],
  // utf8byte: an ignorable has an empty decomposition, which "implies CCC 0": it stops reordering.
  [[0x61, 0x301, 0x200b, 0x316], [0x61, 0x301, 0x316], 'utf8-norm.c: empty decomposition is a stopper'],
  // Unicode 12.1, not later versions: characters added later have no mapping and class 0.
  [[0xa7c7], [0xa7c7], 'U+A7C7 is unassigned in DerivedAge 12.1 (Unicode 13 adds A7C7; C; A7C8)'],
  [[0x10570], [0x10570], 'U+10570 is unassigned in 12.1 (Unicode 14 Vithkuqi)'],
  [[0x61, 0x301, 0x1ac1, 0x316], [0x61, 0x301, 0x1ac1, 0x316], 'U+1AC1 is unassigned in 12.1 (class 230 from 13): class 0 stops reordering'],
  [[0x61, 0x301, 0x316], [0x61, 0x316, 0x301], 'the same marks without it are reordered'],
];

describe('utf8Casefold (utf8-12.1 nfdicf)', () => {
  it('folds tricky code points as the Unicode 12.1 data files say', () => {
    const wrong: string[] = [];
    for (const [input, want, source] of CASES) {
      const got = fold(cps(...input));
      if (got !== hex(cps(...want))) wrong.push(`${input.map((c) => c.toString(16)).join(' ')}: got ${got}, want ${hex(cps(...want))} (${source})`);
    }
    expect(wrong).toEqual([]);
  });

  it('treats bytes as the kernel cursor does', () => {
    const b = (...x: number[]) => Uint8Array.from(x);
    expect(fold(b())).toBe('');
    expect(fold(b(0x80))).toBeNull(); // a continuation byte first (utf8ncursor)
    expect(fold(b(0x61, 0xff))).toBeNull(); // not UTF-8
    expect(fold(b(0x61, 0xc3))).toBeNull(); // truncated
    expect(fold(b(0xc0, 0x80))).toBeNull(); // overlong
    expect(fold(b(0xe0, 0x80, 0x80))).toBeNull(); // overlong
    expect(fold(b(0xed, 0xa0, 0x80))).toBeNull(); // surrogate
    expect(fold(b(0xf4, 0x90, 0x80, 0x80))).toBeNull(); // above U+10FFFF
    expect(fold(b(0x41, 0x80, 0x42))).toBe('618062'); // a stray continuation byte passes through
    expect(fold(b(0x41, 0x00, 0x42))).toBe('61'); // the name ends at NUL
    // Inside a run of marks the stray byte comes out in the scan and again in each class pass.
    expect(fold(b(0x61, 0xcc, 0x81, 0x80, 0xcc, 0x96))).toBe('61' + '80' + '80cc96' + 'cc8180');
  });

  it('matches like generic_ci_match and hashes the fold (ext4fs_dirhash)', () => {
    const sb = { s_encoding: EXT4_ENC_UTF8_12_1, s_encoding_flags: 0 };
    const ci = ciLookupName(Buffer.from('STRASSE'), sb);
    expect(hex(ci.hashName)).toBe(hex(Buffer.from('strasse')));
    expect(ci.matches(Buffer.from('straße'))).toBe(true);
    expect(ci.matches(Buffer.from('strase'))).toBe(false);
    expect(ci.matches(Uint8Array.from([0x73, 0xff]))).toBe(false);
    // Not UTF-8: the raw bytes are hashed and only an identical name matches.
    const bad = Uint8Array.from([0x41, 0xff]);
    const cb = ciLookupName(bad, sb);
    expect(hex(cb.hashName)).toBe('41ff');
    expect(cb.matches(bad)).toBe(true);
    expect(cb.matches(Uint8Array.from([0x61, 0xff]))).toBe(false);
    expect(hex(ciHashName(Buffer.from('MixedCase')))).toBe(hex(Buffer.from('mixedcase')));
    expect(hex(ciHashName(bad))).toBe('41ff');
    const code = (f: () => unknown) => {
      try {
        f();
        return 'ok';
      } catch (e) {
        return isExt4Error(e) ? e.code : String(e);
      }
    };
    expect(code(() => ciLookupName(bad, { s_encoding: EXT4_ENC_UTF8_12_1, s_encoding_flags: EXT4_ENC_STRICT_MODE_FL }))).toBe('EINVAL');
    expect(code(() => ciLookupName(Buffer.from('ok'), { s_encoding: EXT4_ENC_UTF8_12_1, s_encoding_flags: EXT4_ENC_STRICT_MODE_FL }))).toBe('ok');
    expect(code(() => ciLookupName(Buffer.from('ok'), { s_encoding: 2, s_encoding_flags: 0 }))).toBe('EOPNOTSUPP');
  });
});
