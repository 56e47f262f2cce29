/**
 * The bundled `ext4kit free` (fast path: its own code-cached script, lib/cli/code-cache.ts) raises
 * V8's interrupt budget for its scan (interrupt-budget.ts) and puts the default back before the
 * script's cache is written: a cache written under the raised flag would be rejected by every
 * later run (another flag hash), each fresh `free` compiling the whole script again and writing a
 * new cache at exit. Two runs with one cache directory: the second uses the first's cache as is,
 * and both print the free extents dumpe2fs lists.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { dumpe2fsFreeBytes, mkfs } from '../helpers/tools.js';
import { HAVE_E2FSPROGS } from '../ops/helpers.js';
import { cliBundle, codeCacheStamp } from './helpers.js';


describe.skipIf(!HAVE_E2FSPROGS)('free code cache', () => {
  it('the next free uses the code cache the first one wrote (not rejected, not rewritten), and both list dumpe2fs\'s free extents', async () => {
    const bin = await cliBundle();
    const home = tmpDir('free-code-cache');
    const img = tmpPath('free-code-cache.img');
    mkfs('ext4', img, 64 * 1024 * 1024, ['-b', '4096', '-g', '8192']);
    const want = dumpe2fsFreeBytes(img, 4096);
    expect(want.length, 'several groups, several free extents').toBeGreaterThan(1);
    const once = (): string => {
      const r = spawnSync(process.execPath, [bin, 'free', img, '--json'], { env: { ...process.env, XDG_CACHE_HOME: home, EXT4KIT_CODE_CACHE: '' }, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual(want);
      return codeCacheStamp(home, 'free');
    };
    const first = once();
    expect(once(), 'the cache was rewritten: V8 rejected it').toBe(first);
  });
});
