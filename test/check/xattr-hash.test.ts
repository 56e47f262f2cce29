/**
 * The xattr entry hash (lib/ext4/xattr-hash.ts) against e2fsprogs: the hashes mkfs -d writes for
 * names with bytes ≥ 0x80 (in the inode and in an xattr block) are accepted by checkFilesystem;
 * an entry rewritten with the legacy signed-char hash is accepted by e2fsck -fn and by check
 * alike; an entry with any other hash is reported by both.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { debugfs, e2fsckClean, expectE2fsckClean, mkfs } from '../helpers/tools.js';
import { Filesystem } from '../../lib/node.js';
import { checkFilesystem } from '../../lib/ops/check.js';
import { xattrEntryHash } from '../../lib/ext4/xattr-hash.js';

const BS = 1024;
const SMALL = Buffer.from('user.caf\u00e9-\u00fc', 'utf8'); // in the inode
const BIG = Buffer.from('user.gro\u00df-\u00e5-big', 'utf8'); // in the xattr block (its value does not fit the inode)

let image = '';
let inodeOffset = 0;
let xattrBlock = 0;

async function check(img: string) {
  const fs = await Filesystem.open(img);
  try {
    return await checkFilesystem(fs);
  } finally {
    await fs.close();
  }
}

/** Offset of the entry whose name (after the prefix) is `suffix`, scanning entries from `start`. */
function findEntry(b: Uint8Array, start: number, end: number, suffix: Buffer): number {
  for (let off = start; off + 16 <= end && (b[off]! | b[off + 1]! | b[off + 2]! | b[off + 3]!) !== 0; off += (16 + b[off]! + 3) & ~3) {
    if (Buffer.from(b.subarray(off + 16, off + 16 + b[off]!)).equals(suffix)) return off;
  }
  throw new Error(`entry ${suffix} not found`);
}

/** A copy of the image with the e_hash of an entry replaced by `hashOf(name, value)`. */
function withHash(where: 'inode' | 'block', hashOf: (name: Uint8Array, value: Uint8Array, size: number) => number): string {
  const b = new Uint8Array(nodefs.readFileSync(image));
  const dv = new DataView(b.buffer);
  let off: number, valueBase: number;
  if (where === 'inode') {
    const header = inodeOffset + 0x80 + dv.getUint16(inodeOffset + 0x80, true);
    off = findEntry(b, header + 4, inodeOffset + 256, SMALL.subarray(5));
    valueBase = header + 4;
  } else {
    off = findEntry(b, xattrBlock * BS + 32, (xattrBlock + 1) * BS, BIG.subarray(5));
    valueBase = xattrBlock * BS;
  }
  const nameLen = b[off]!;
  const size = dv.getUint32(off + 8, true);
  const v = valueBase + dv.getUint16(off + 2, true);
  dv.setUint32(off + 12, hashOf(b.subarray(off + 16, off + 16 + nameLen), b.subarray(v, v + ((size + 3) & ~3)), size), true);
  const p = tmpPath(`xattr-hash-${where}.img`);
  nodefs.writeFileSync(p, b);
  return p;
}

beforeAll(() => {
  const dir = tmpDir('xattr-hash');
  const src = path.join(dir, 'src');
  nodefs.mkdirSync(src);
  const f = path.join(src, 'f');
  nodefs.writeFileSync(f, 'x\n');
  const py = spawnSync('python3', ['-c', 'import os,sys\nos.setxattr(sys.argv[1], sys.argv[2].encode(), b"tiny")\nos.setxattr(sys.argv[1], sys.argv[3].encode(), bytes(range(256))*2)', f, SMALL.toString('utf8'), BIG.toString('utf8')], { encoding: 'utf8' });
  if (py.status !== 0) throw new Error(`setxattr failed: ${py.stderr}`);
  image = path.join(dir, 'x.img');
  // no metadata_csum: the edited entries need no resealing
  mkfs('ext4', image, 4 * 1024 * 1024, ['-b', String(BS), '-I', '256', '-O', '^metadata_csum', '-N', '64'], src);
  expectE2fsckClean(image, 'xattr-hash base');
  const imap = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(debugfs(image, ['imap /f']));
  const acl = /File ACL: (\d+)/.exec(debugfs(image, ['stat /f']));
  if (!imap || !acl || acl[1] === '0') throw new Error('cannot locate /f or its xattr block');
  inodeOffset = Number(imap[1]) * BS + parseInt(imap[2]!, 16);
  xattrBlock = Number(acl[1]);
});

describe('xattr entry hashes (unsigned, legacy signed-char) agree with e2fsck', () => {
  it('the hashes mkfs -d wrote for non-ASCII names: check clean', async () => {
    const r = await check(image);
    expect(r.problems).toEqual([]);
    // and they are the unsigned hash (they differ from the signed one for these names)
    const again = withHash('block', (n, v, s) => xattrEntryHash(n, v, s, false));
    expect(nodefs.readFileSync(again).equals(nodefs.readFileSync(image))).toBe(true);
    expect(xattrEntryHash(BIG.subarray(5), new Uint8Array(512), 512, true)).not.toBe(xattrEntryHash(BIG.subarray(5), new Uint8Array(512), 512, false));
  });

  for (const where of ['inode', 'block'] as const) {
    it(`${where}: the signed-char hash is accepted by e2fsck and check; a wrong one is reported by both`, async () => {
      const signed = withHash(where, (n, v, s) => xattrEntryHash(n, v, s, true));
      expect(e2fsckClean(signed).problems).toEqual([]);
      expect((await check(signed)).problems).toEqual([]);
      const wrong = withHash(where, (n, v, s) => (xattrEntryHash(n, v, s, false) ^ 0x40) >>> 0);
      const e = e2fsckClean(wrong);
      expect(e.problems.join('\n')).toMatch(/has a hash \(\d+\) which is invalid/);
      const r = await check(wrong);
      expect(r.ok).toBe(false);
      expect(r.problems.map((p) => p.message).join('\n')).toMatch(/has a hash \(\d+\) which is invalid/);
    });
  }
});
