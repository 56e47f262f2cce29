/** printJsonArray writes exactly what printJson (JSON.stringify(v, null, 2)) would, slice by slice. */
import { describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { printJsonArray, type CliContext } from '../../lib/cli/util.js';

async function printed(list: unknown[]): Promise<string> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const ctx: CliContext = { io: { stdout: out, stderr: new PassThrough() } };
  await printJsonArray(ctx, list);
  out.end();
  return Buffer.concat(chunks).toString('utf8');
}

describe('printJsonArray', () => {
  it('matches JSON.stringify(list, null, 2) for lengths around the slice size, nested values included', async () => {
    const list: unknown[] = [];
    for (let i = 0; i < 9000; i++) list.push(i % 3 === 0 ? { start: i * 4096, len: Number.MAX_SAFE_INTEGER - i } : i % 3 === 1 ? [i, 'x\n"', null] : `s${i}`);
    for (const n of [0, 1, 2, 4095, 4096, 4097, 8192, 8193, 9000]) {
      const l = list.slice(0, n);
      expect(await printed(l)).toBe(JSON.stringify(l, null, 2) + '\n');
    }
  });
});
