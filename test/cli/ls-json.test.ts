/**
 * `ls --json` writes its array in pieces (writeJsonArray) instead of one JSON.stringify of the whole
 * listing: the bytes must be exactly JSON.stringify(rows, null, 2) + '\n', and no single write may
 * carry the whole of a large listing.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { writeJsonArray } from '../../lib/cli/commands/ls.js';

async function capture(rows: unknown[], sliceRows?: number): Promise<{ text: string; writes: number[] }> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  const writes: number[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const write = out.write.bind(out);
  out.write = ((c: string | Uint8Array, ...rest: never[]) => {
    writes.push(c.length);
    return write(c, ...rest);
  }) as typeof out.write;
  await writeJsonArray(out, rows, sliceRows);
  out.end();
  await new Promise((r) => out.on('end', r));
  return { text: Buffer.concat(chunks).toString('utf8'), writes };
}

describe('writeJsonArray', () => {
  it('is byte-identical to JSON.stringify(rows, null, 2) + newline', async () => {
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
      for (const slice of [1, 2, 256]) expect((await capture(rows, slice)).text, `slices of ${slice}`).toBe(JSON.stringify(rows, null, 2) + '\n');
  });

  it('writes a large listing in bounded pieces', async () => {
    const rows = Array.from({ length: 20000 }, (_, i) => ({ path: `/d/f${i}`, name: `f${i}`, ino: 100 + i, type: 'file', mode: 0o644, size: i, nlink: 1, uid: 0, gid: 0, mtime: 1_700_000_000 + i }));
    const { text, writes } = await capture(rows);
    expect(text).toBe(JSON.stringify(rows, null, 2) + '\n');
    expect(writes.length).toBeGreaterThan(10);
    expect(Math.max(...writes)).toBeLessThan(text.length / 20);
  });
});
