/**
 * `ls --json` stringifies its rows piece by piece as the walk yields them (JsonArrayText) instead of
 * one JSON.stringify of the whole listing, encoding each piece into one byte buffer as it comes: the
 * bytes must be exactly the UTF-8 of JSON.stringify(rows, null, 2) + '\n' however the rows are cut
 * into pieces (and however often the buffer grows).
 */
import { describe, expect, it } from 'vitest';
import { JsonArrayText } from '../../lib/cli/commands/ls.js';

function inPieces(rows: unknown[], per: number, emptyPieces = false): string {
  const t = new JsonArrayText();
  for (let i = 0; i < rows.length; i += per) {
    if (emptyPieces) t.add([]);
    t.add(rows.slice(i, i + per));
  }
  if (emptyPieces) t.add([]);
  return new TextDecoder().decode(t.finish());
}

describe('JsonArrayText', () => {
  it('is byte-identical to JSON.stringify(rows, null, 2) + newline', () => {
    const cases: unknown[][] = [
      [],
      [{ path: '/a', name: 'a', ino: 12, type: 'file', mode: 0o644, size: 0, nlink: 1, uid: 0, gid: 0, mtime: -5 }],
      [
        { path: '/dev/x', name: 'x', ino: 13, type: 'chardev', rdev: { major: 1, minor: 3 } },
        { path: '/l', name: 'l', target: 'a\nb "q" \\ \u2028 \ud800 \ufffd é', type: 'symlink' },
        { path: '/e', nested: [[], {}, [1, [2, { x: null }]]] },
      ],
    ];
    for (const rows of cases)
      for (const per of [1, 2, 256])
        for (const empty of [false, true]) expect(inPieces(rows, per, empty), `pieces of ${per}${empty ? ' and empty ones' : ''}`).toBe(JSON.stringify(rows, null, 2) + '\n');
  });

  it('a large listing in pieces of any size', () => {
    const rows = Array.from({ length: 20000 }, (_, i) => ({ path: `/d/f${i}`, name: `f${i}`, ino: 100 + i, type: 'file', mode: 0o644, size: i, nlink: 1, uid: 0, gid: 0, mtime: 1_700_000_000 + i }));
    const whole = JSON.stringify(rows, null, 2) + '\n';
    for (const per of [1024, 777, 20000]) expect(inPieces(rows, per) === whole, `pieces of ${per}`).toBe(true);
  });
});
