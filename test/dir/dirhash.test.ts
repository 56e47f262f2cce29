/**
 * dirHash against debugfs 1.47.0's `dx_hash` (libext2fs ext2fs_dirhash2):
 * legacy, half_md4 and tea, signed and unsigned, default and explicit seeds,
 * names from 1 to 255 bytes including bytes >= 0x80. All commands go through
 * one `debugfs -f cmdfile` run per seed.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dirHash, effectiveHashVersion, signedHashFromFlags } from '../../lib/ext4/dirhash.js';
import { makeNames, outcome, tempDir } from './helpers.js';

const SEEDS: Array<{ uuid: string | null }> = [
  { uuid: null },
  { uuid: '2268009c-b80e-4b33-acb1-fdbacb1fad4b' },
  { uuid: 'a43dd0da-3d74-420c-8848-59f01ad67b59' },
];

/** debugfs's seed words: the UUID's 16 bytes in order, read as host (little-endian) u32s. */
function seedWords(uuid: string | null): Uint32Array | null {
  if (!uuid) return null;
  const b = Buffer.from(uuid.replace(/-/g, ''), 'hex');
  return Uint32Array.from([0, 1, 2, 3], (i) => b.readUInt32LE(4 * i));
}

interface Row {
  name: Buffer;
  version: number;
  hash: number;
  minor: number;
}

let dir = '';
const rows = new Map<string | null, Row[]>();
const names = makeNames(700, 0xd1a5, true);

beforeAll(() => {
  dir = tempDir('ext4kit-dirhash-');
  for (const { uuid } of SEEDS) {
    const lines: Buffer[] = [];
    const order: Array<{ name: Buffer; version: number }> = [];
    for (const name of names) {
      for (let v = 0; v <= 5; v++) {
        const args = `dx_hash -h ${v}${uuid ? ` -s ${uuid}` : ''} `;
        lines.push(Buffer.concat([Buffer.from(args), name, Buffer.from('\n')]));
        order.push({ name, version: v });
      }
    }
    const cmdFile = join(dir, `cmds-${uuid ?? 'none'}`);
    writeFileSync(cmdFile, Buffer.concat(lines));
    const out = execFileSync('debugfs', ['-f', cmdFile], { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
    const results: Row[] = [];
    const marker = Buffer.from('Hash of ');
    for (const line of splitLines(out)) {
      if (!line.subarray(0, marker.length).equals(marker)) continue;
      const m = /is 0x([0-9a-f]+) \(minor 0x([0-9a-f]+)\)$/.exec(line.toString('latin1'));
      if (!m) throw new Error(`unparsable debugfs line ${line.toString('latin1')}`);
      const o = order[results.length]!;
      // The echoed name must be ours, byte for byte.
      const echoed = line.subarray(marker.length, line.length - m[0].length - 1);
      if (!echoed.equals(o.name)) throw new Error(`debugfs line ${results.length} is for ${echoed.toString('latin1')}, expected ${o.name.toString('latin1')}`);
      results.push({ name: o.name, version: o.version, hash: parseInt(m[1]!, 16), minor: parseInt(m[2]!, 16) });
    }
    if (results.length !== order.length) throw new Error(`debugfs answered ${results.length} of ${order.length} dx_hash commands`);
    rows.set(uuid, results);
  }
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function splitLines(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0x0a) {
      out.push(b.subarray(start, i));
      start = i + 1;
    }
  }
  if (start < b.length) out.push(b.subarray(start));
  return out;
}

describe('dirHash vs debugfs dx_hash', () => {
  it('the name set covers the interesting cases', () => {
    expect(names.length).toBe(700);
    expect(names.some((n) => n.length === 255)).toBe(true);
    expect(names.some((n) => n.length > 32 && n.length < 64)).toBe(true);
    expect(names.some((n) => n.length === 16 || n.length === 32)).toBe(true);
    expect(names.filter((n) => n.some((c) => c >= 0x80)).length).toBeGreaterThan(200);
  });

  for (const { uuid } of SEEDS) {
    it(`matches every name, versions 0-5, seed ${uuid ?? '(none: default)'}`, () => {
      const seed = seedWords(uuid);
      const list = rows.get(uuid)!;
      expect(list.length).toBe(names.length * 6);
      let mismatches = 0;
      const firstBad: string[] = [];
      for (const r of list) {
        // Versions 0-2 as signed; 3-5 are unsigned whatever `signed` says.
        const got = dirHash(r.name, r.version, seed, true, { compat: 'e2fsprogs' });
        if (got.hash !== r.hash || got.minor !== r.minor) {
          mismatches++;
          if (firstBad.length < 5) firstBad.push(`v${r.version} ${r.name.toString('hex')}: got ${got.hash.toString(16)}/${got.minor.toString(16)} want ${r.hash.toString(16)}/${r.minor.toString(16)}`);
        }
        // The unsigned variant of 0-2 reached through signed=false.
        if (r.version >= 3) {
          const viaFlag = dirHash(r.name, r.version - 3, seed, false, { compat: 'e2fsprogs' });
          if (viaFlag.hash !== r.hash || viaFlag.minor !== r.minor) mismatches++;
        }
      }
      expect(firstBad).toEqual([]);
      expect(mismatches).toBe(0);
    });
  }

  it('signed and unsigned differ exactly when a byte >= 0x80 is present', () => {
    const list = rows.get(null)!;
    const byKey = new Map(list.map((r) => [`${r.version}:${r.name.toString('hex')}`, r]));
    let differing = 0;
    for (const name of names) {
      const high = name.some((c) => c >= 0x80);
      for (let v = 0; v <= 2; v++) {
        const s = byKey.get(`${v}:${name.toString('hex')}`)!;
        const u = byKey.get(`${v + 3}:${name.toString('hex')}`)!;
        if (!high) expect([s.hash, s.minor]).toEqual([u.hash, u.minor]);
        else if (s.hash !== u.hash) differing++;
      }
    }
    expect(differing).toBeGreaterThan(100);
  });

  it('an all-zero seed means the default seed; the major hash always has bit 0 clear', () => {
    for (const name of names.slice(0, 100)) {
      for (let v = 0; v <= 5; v++) {
        const a = dirHash(name, v, [0, 0, 0, 0], true);
        expect(a).toEqual(dirHash(name, v, null, true));
        expect(a).toEqual(dirHash(name, v, new Uint32Array(4), true));
        expect(a.hash & 1).toBe(0);
      }
    }
  });

  it('spec worked example: half_md4 of file_with_a_longish_name_1', () => {
    const r = dirHash(Buffer.from('file_with_a_longish_name_1'), 1, seedWords('2268009c-b80e-4b33-acb1-fdbacb1fad4b'), true);
    expect(r).toEqual({ hash: 0xe67a0cda, minor: 0x7ed11731 });
  });

  it('empty name hashes to the seed-derived state; legacy minor is 0', () => {
    expect(dirHash(new Uint8Array(0), 1, null, true)).toEqual({ hash: 0xefcdab88, minor: 0x98badcfe });
    expect(dirHash(new Uint8Array(0), 2, null, true)).toEqual({ hash: 0x67452300, minor: 0xefcdab89 });
    expect(dirHash(Buffer.from('abc'), 0, null, true).minor).toBe(0);
  });

  it('version helpers follow the effective-version rule', () => {
    expect(effectiveHashVersion(1, false)).toBe(4);
    expect(effectiveHashVersion(1, true)).toBe(1);
    expect(effectiveHashVersion(4, true)).toBe(4);
    expect(effectiveHashVersion(6, false)).toBe(6);
    expect(signedHashFromFlags(1)).toBe(true);
    expect(signedHashFromFlags(2)).toBe(false);
    expect(signedHashFromFlags(0)).toBe(true);
  });

  it('siphash is refused with EOPNOTSUPP, unknown versions with EINVAL', async () => {
    expect(await outcome(() => dirHash(Buffer.from('x'), 6, null, true))).toBe('EOPNOTSUPP');
    expect(await outcome(() => dirHash(Buffer.from('x'), 7, null, true))).toBe('EINVAL');
    expect(await outcome(() => dirHash(Buffer.from('x'), 1, [1, 2], true))).toBe('EINVAL');
  });
});
