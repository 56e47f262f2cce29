/**
 * The injected platform (lib/ext4/platform.ts): hostname and randomness reach MMP and random.ts
 * through OpenOptions.platform; the core's defaults are browser-safe ('ext4kit', Web Crypto) and
 * ext4kit/node supplies os.hostname().
 */
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import { hostname } from 'node:os';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_HOSTNAME, defaultPlatform, resolvePlatform, type Platform } from '../../lib/ext4/platform.js';
import { cryptoBelow, randomU32 } from '../../lib/ext4/random.js';
import { Filesystem as CoreFilesystem } from '../../lib/ext4/filesystem.js';
import { Filesystem as NodeFilesystem, nodePlatform } from '../../lib/node.js';
import { MemoryDevice } from '../../lib/io/memory-device.js';
import { MMP_SEQ_CLEAN, MMP_SEQ_FSCK, parseMmp } from '../../lib/ext4/mmp.js';
import { SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, parseSuperblock } from '../../lib/ext4/superblock.js';
import { expectE2fsckClean, missingTools, mkfs, oracleGate } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

/** randomValues that hands out `values` in order (then zeros), counting calls. */
function scripted(values: number[]): Pick<Platform, 'randomValues'> & { calls: number } {
  const p = {
    calls: 0,
    randomValues(out: Uint32Array): Uint32Array {
      p.calls++;
      for (let i = 0; i < out.length; i++) out[i] = values.shift() ?? 0;
      return out;
    },
  };
  return p;
}

describe('platform defaults', () => {
  it('are browser-safe: a fixed node name, Web Crypto randomness', () => {
    expect(defaultPlatform.hostname()).toBe(DEFAULT_HOSTNAME);
    const a = defaultPlatform.randomValues(new Uint32Array(64));
    expect(new Set(a).size).toBeGreaterThan(60);
    expect(resolvePlatform()).toBe(defaultPlatform);
    const p = resolvePlatform({ hostname: () => 'tab-7' });
    expect(p.hostname()).toBe('tab-7');
    expect(p.randomValues).toBe(defaultPlatform.randomValues);
    expect(nodePlatform.hostname()).toBe(hostname());
  });

  it('without Web Crypto, randomness is EOPNOTSUPP (not a TypeError)', () => {
    vi.stubGlobal('crypto', undefined);
    try {
      expect(() => defaultPlatform.randomValues(new Uint32Array(1))).toThrow(expect.objectContaining({ code: 'EOPNOTSUPP' }));
    } finally {
      vi.unstubAllGlobals();
    }
  });
});

describe('random.ts draws from the injected platform', () => {
  it('cryptoBelow: rejection sampling over the platform values', () => {
    // n = 3: 2^32 - 1 is in the biased tail (limit 2^32 - 1), so it is rejected; 7 % 3 = 1.
    const p = scripted([0xffffffff, 7]);
    expect(cryptoBelow(3, p)).toBe(1);
    expect(p.calls).toBe(2);
  });

  it('randomU32 uses the source platform unless the session is reproducible', () => {
    const p = scripted([0xdeadbeef]);
    const src = { reproducible: false, now: () => ({ sec: 1, nsec: 0 }), sb: { s_uuid: new Uint8Array(16) }, platform: p };
    expect(randomU32(src, 'x')).toBe(0xdeadbeef);
    const q = scripted([1]);
    const fixed = { ...src, reproducible: true, platform: q };
    // Reproducible: seeded by (uuid, time, purpose, draw number), the platform is not asked.
    expect(randomU32({ ...fixed }, 'x')).toBe(randomU32({ ...fixed }, 'x'));
    expect(q.calls).toBe(0);
  });
});

const toolsWhy = oracleGate(missingTools(['mkfs.ext4', 'e2fsck']));
if (toolsWhy) console.log(`test/unit/platform.test.ts: skipping the MMP image cases: ${toolsWhy}`);

describe.skipIf(!!toolsWhy)('OpenOptions.platform reaches the MMP block', () => {
  let dir = '';
  let image: Uint8Array;
  beforeAll(() => {
    dir = tmpDir('platform');
    const img = join(dir, 'mmp.img');
    mkfs('ext4', img, 8 << 20, ['-O', 'mmp']);
    image = new Uint8Array(readFileSync(img)); // a Uint8Array: Buffer#slice would be a view, not a copy
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Open for writing on a copy; report the MMP block as another node sees it during the claim wait. */
  async function claim(open: (dev: MemoryDevice, sleep: () => Promise<void>) => Promise<{ close(): Promise<void> }>): Promise<{ seq: number; nodename: string; after: number }> {
    const dev = new MemoryDevice(image.slice());
    const sb = parseSuperblock(dev.data.subarray(SUPERBLOCK_OFFSET, SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE));
    const pos = sb.s_mmp_block * sb.blockSize;
    const seen = () => parseMmp(dev.data.subarray(pos, pos + 1024), { csumSeed: null, verify: false, block: sb.s_mmp_block });
    let during: { seq: number; nodename: string } | null = null;
    const fs = await open(dev, async () => {
      const b = seen();
      during = { seq: b.seq, nodename: b.nodename };
    });
    expect(seen().seq).toBe(MMP_SEQ_FSCK);
    await fs.close();
    const out = join(dir, 'after.img');
    writeFileSync(out, dev.data);
    expectE2fsckClean(out, 'after an MMP open and close');
    expect(during).not.toBeNull();
    return { ...during!, after: seen().seq };
  }

  it('core: the injected hostname and random sequence; without one, "ext4kit"', async () => {
    vi.stubEnv('SOURCE_DATE_EPOCH', ''); // not reproducible: the sequence comes from the platform
    try {
      const p = scripted([12345]);
      const got = await claim((dev, sleep) => CoreFilesystem.open(dev, { write: true, platform: { hostname: () => 'tab-7', randomValues: p.randomValues }, mmp: { sleep } }));
      expect(got).toEqual({ seq: 12345, nodename: 'tab-7', after: MMP_SEQ_CLEAN });
      expect(p.calls).toBe(1);
      const plain = await claim((dev, sleep) => CoreFilesystem.open(dev, { write: true, mmp: { sleep } }));
      expect(plain.nodename).toBe(DEFAULT_HOSTNAME);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('ext4kit/node: os.hostname(), also for a BlockDevice; an explicit platform still wins', async () => {
    const viaNode = await claim((dev, sleep) => NodeFilesystem.open(dev, { write: true, mmp: { sleep } }));
    expect(viaNode.nodename).toBe(hostname().slice(0, 64));
    const own = await claim((dev, sleep) => NodeFilesystem.open(dev, { write: true, platform: { hostname: () => 'vm-3' }, mmp: { sleep } }));
    expect(own.nodename).toBe('vm-3');
  });
});
