/**
 * "The current block" is read one way (issue 9 item 1): through the block view stack
 * (lib/ext4/block-view.ts) or a Transaction's readBlock — never by consulting a layer's map by
 * hand (`tx.blocks.get(n) ?? fs.readBlock(n)`, `journal.pending.get(n)`, the replay overlay).
 * Only the modules that own a layer touch its map.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { LIB, listTs } from '../helpers/lib-sources.js';

const OWNERS = new Set(['ext4/block-view.ts', 'ext4/volume.ts', 'ext4/write-session.ts', 'ext4/filesystem.ts', 'ext4/internals.ts', 'ext4/commit.ts', 'ext4/transaction.ts']);
const PATTERNS: [RegExp, string][] = [
  [/\.blocks\.get\([^)]*\)\s*\?\?/, 'a transaction image or the fs by hand (use tx.readBlock)'],
  [/journal\??\.pending\.(get|has)\(/, "the journal's pending map by hand (use the block view)"],
  [/\.overlay\??\.(get|has)\(/, 'the replay overlay by hand (use the block view)'],
];


export function layerBypasses(files: { rel: string; text: string }[]): string[] {
  const bad: string[] = [];
  for (const { rel, text } of files) {
    if (OWNERS.has(rel) || rel.startsWith('jbd2/') || rel.startsWith('io/')) continue;
    text.split('\n').forEach((line, i) => {
      for (const [re, what] of PATTERNS) if (re.test(line)) bad.push(`${rel}:${i + 1}: reads ${what}`);
    });
  }
  return bad;
}

describe('one way to read a block', () => {
  it('the check finds a bypass', () => {
    expect(layerBypasses([{ rel: 'ext4/x.ts', text: 'const d = tx.blocks.get(n) ?? (await fs.readBlock(n));' }])).toHaveLength(1);
    expect(layerBypasses([{ rel: 'ops/y.ts', text: 'const p = fs.journal?.pending.get(b);' }])).toHaveLength(1);
  });

  it('no module outside the view stack consults a layer by hand', () => {
    const files = listTs(LIB).map((f) => ({ rel: path.relative(LIB, f).split(path.sep).join('/'), text: readFileSync(f, 'utf8') }));
    expect(layerBypasses(files)).toEqual([]);
  });
});
