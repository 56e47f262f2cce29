/**
 * xattr-reader.ts: the lean python3 helper that answers one line per path, in order, with the
 * entry's extended attributes in hex. Oracle: python3's os.listxattr/os.getxattr through a plain
 * JSON script (the form the reader had before), on names and values that need escaping in any
 * text form (`=`, spaces, a newline in a file name, empty and binary values, a symlink's own
 * attribute) and answers long enough to arrive split across pipe reads.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { python, XattrReader } from '../../lib/cli/xattr-reader.js';
import { tmpDir } from '../helpers/tmp.js';
import { prngBytes } from '../helpers/tree.js';
import { oracleGate } from '../helpers/tools.js';

const PY = python();
const skip = oracleGate(PY === null ? 'python3 not found' : null);

const PY_SET = String.raw`
import json, os, sys
for p, n, v in json.load(sys.stdin):
    os.setxattr(p, n, bytes.fromhex(v), follow_symlinks=False)
`;
const PY_ORACLE = String.raw`
import json, os, sys
out = []
for p in json.load(sys.stdin):
    try:
        xs = sorted([n, os.getxattr(p, n, follow_symlinks=False).hex()] for n in os.listxattr(p, follow_symlinks=False))
    except OSError:
        xs = []
    out.append(xs)
print(json.dumps(out))
`;

function py(script: string, input: unknown): string {
  const r = spawnSync(PY!, ['-c', script], { input: JSON.stringify(input), encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`python3: ${r.stderr}`);
  return r.stdout;
}

let dir = '';
const paths: string[] = [];
beforeAll(() => {
  if (skip) return;
  dir = tmpDir('xattr-reader');
  const set: [string, string, string][] = [];
  const add = (name: string, make: (p: string) => void): string => {
    const p = path.join(dir, name);
    make(p);
    paths.push(p);
    return p;
  };
  const f = add('plain', (p) => fs.writeFileSync(p, 'x'));
  set.push([f, 'user.empty', ''], [f, 'user.bin', '00ff0a0d20'], [f, 'trusted.t', '7476'], [f, 'security.s', '7376']);
  set.push([add('we=ird name', (p) => fs.writeFileSync(p, '')), 'user.x=y z', '3d20']);
  set.push([add('new\nline', (p) => fs.writeFileSync(p, '')), 'user.n', '31']);
  add('none', (p) => fs.writeFileSync(p, ''));
  set.push([add('sl', (p) => fs.symlinkSync('plain', p)), 'trusted.onlink', '0102']);
  set.push([add('d', (p) => fs.mkdirSync(p)), 'user.dir', '6f6e']);
  add('vanished', () => undefined);
  // Lines of ~2,000 hex digits among empty ones: the answers come in many pipe reads, cut anywhere.
  for (let i = 0; i < 300; i++) {
    const p = add(`f${i}`, (q) => fs.writeFileSync(q, ''));
    if (i % 3 === 0) set.push([p, `user.v${i}`, prngBytes(`v${i}`, 1000 + i).toString('hex')]);
  }
  py(PY_SET, set);
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(skip)('XattrReader (python3 -I -S, hex lines)', () => {
  it('answers each path with what os.listxattr/getxattr give, sorted by name, in order', async () => {
    const want = JSON.parse(py(PY_ORACLE, paths)) as [string, string][][];
    expect(want.filter((xs) => xs.length > 0)).toHaveLength(5 + 100);
    const x = new XattrReader();
    // fed in three parts, one cut inside a path (the helper waits for its NUL)
    const all = Buffer.from(paths.map((p) => p + '\0').join(''));
    x.ask(all.subarray(0, 10));
    x.ask(all.subarray(10, 5000));
    x.ask(all.subarray(5000));
    x.finish();
    const got: [string, string][][] = [];
    for (let i = 0; i < paths.length; i++) got.push(((await x.get(i)) ?? []).map((a) => [a.name, Buffer.from(a.value).toString('hex')]));
    await x.close();
    expect(got).toEqual(want);
    expect(x.now(paths.length - 1)).not.toBeUndefined();
  });

  it('a helper that cannot start, or that fails, is an error at the first answer waited for', async () => {
    const missing = new XattrReader(path.join(dir, 'no-such-python'));
    missing.ask(Buffer.from(paths[0] + '\0'));
    await expect(missing.get(0)).rejects.toMatchObject({ code: 'ENOENT' });
    await missing.close();
    const failing = new XattrReader(PY!, 'import sys; sys.stderr.write("broken"); sys.exit(3)');
    failing.finish();
    await expect(failing.get(0)).rejects.toMatchObject({ code: 'EIO', message: expect.stringMatching(/exit 3.*broken/) });
    await failing.close();
  });
});
