/**
 * "Every on-disk structure is declared once" (DEVELOPERS.md): lib decodes and encodes bytes through
 * the defineStruct declarations and the le32 word arrays of lib/codec/layout.ts, never through a
 * DataView, Buffer integer methods, hand-assembled bytes or hex slice offsets. Checked on the source
 * text; the allowlist is short and says why each entry is not a structure.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { LIB, ROOT, listTs } from '../helpers/lib-sources.js';
import { describe, expect, it } from 'vitest';


/** Raw byte-offset decoding, each with what it looks like in code. */
export const RAW_DECODING: readonly { name: string; re: RegExp }[] = [
  { name: 'DataView', re: /\bnew DataView\s*\(/ },
  { name: 'DataView accessor', re: /\.(?:get|set)(?:Uint|Int|Float|BigUint|BigInt)(?:8|16|32|64)\s*\(/ },
  { name: 'Buffer integer accessor', re: /\.(?:read|write)U?Int(?:8|16LE|16BE|32LE|32BE|BE|LE)\s*\(/ },
  { name: 'bytes assembled by hand', re: /\[[^\]\n]+\]!?\s*\|\s*\(\s*[\w.]+\[[^\]\n]+\]!?\s*<<\s*(?:8|16|24)\s*\)/ },
  { name: 'hex offset slice', re: /\.(?:subarray|slice)\(\s*0x[0-9a-fA-F]+/ },
];

/** Not structures: each entry names the file, the line it allows and why. */
const ALLOWED: readonly { file: string; line: RegExp; why: string }[] = [
  {
    file: 'lib/ext4/bitmap.ts',
    line: /new DataView\(bm\.buffer|dv\.getUint32\(w << 2, true\)/,
    why: 'a bitmap is a bit array, not a structure; forEachFreeRun scans it 32 bits at a time (the hot path of every free-space scan)',
  },
  {
    file: 'lib/ops/report.ts',
    line: /new DataView\(new ArrayBuffer\(8\)\)|dv\.setFloat64\(0, a\)|dv\.getUint32\(0\), lo = dv\.getUint32\(4\)/,
    why: "cFixed splits a double into its bits to print it as glibc's printf does: no on-disk bytes",
  },
];


/** Code without comments (a comment may quote an offset). */
function stripComments(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, (m) => m.replace(/[^\n]/g, ' ')).replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

export function rawDecodingIn(src: string): { line: number; text: string; rule: string }[] {
  const lines = stripComments(src).split('\n');
  const raw = src.split('\n');
  const out: { line: number; text: string; rule: string }[] = [];
  lines.forEach((l, i) => {
    for (const r of RAW_DECODING) if (r.re.test(l)) out.push({ line: i + 1, text: raw[i]!.trim(), rule: r.name });
  });
  return out;
}

describe('every on-disk structure is declared once', () => {
  it('the scanner sees each kind of hand decoding (lines as they were in lib before issue 9)', () => {
    const samples = [
      "  if (d.getUint16(0, true) !== EXTENT_MAGIC) throw new Ext4Error('EFSCORRUPTED', 'bad extent header magic');",
      '    const extraIsize = raw[0x80]! | (raw[0x81]! << 8);',
      '  const dv = new DataView(seed.buffer, seed.byteOffset, 16);',
      "    raw.set(full.subarray(0x80, 0x80 + Math.min(inode.extraIsize, 0x20)), 0x80);",
      '  return b[off]! | (b[off + 1]! << 8);',
      '  const len = inode.flags & INODE_FLAGS.ENCRYPT ? (buf[0]! | (buf[1]! << 8)) + 2 : strnlen(buf);',
      '    const magic = buf.readUInt16LE(0);',
    ];
    for (const s of samples) expect(rawDecodingIn(s), s).not.toEqual([]);
    expect(rawDecodingIn('  // raw[0x80] | (raw[0x81] << 8) in a comment\n  const h = ExtentHeaderLayout.decode(node);')).toEqual([]);
  });

  it('lib decodes through the declarations (outside lib/codec and the allowlist)', () => {
    const found: string[] = [];
    const used = new Set<number>();
    for (const file of listTs(LIB)) {
      const rel = path.relative(ROOT, file).split(path.sep).join('/');
      if (rel.startsWith('lib/codec/')) continue;
      for (const hit of rawDecodingIn(readFileSync(file, 'utf8'))) {
        const allow = ALLOWED.findIndex((a) => a.file === rel && a.line.test(hit.text));
        if (allow >= 0) used.add(allow);
        else found.push(`${rel}:${hit.line}: ${hit.rule}: ${hit.text}`);
      }
    }
    expect(found, 'decode with defineStruct (Struct.decode/get/set) or le32 from lib/codec/layout.ts').toEqual([]);
    // An allowlist entry that no longer matches anything goes.
    expect(ALLOWED.filter((_, i) => !used.has(i)).map((a) => a.file)).toEqual([]);
  });
});
