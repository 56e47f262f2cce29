/**
 * The bundled `ext4kit defrag` (fast path: its own code-cached script, lib/cli/code-cache.ts) uses
 * the V8 code cache a first run wrote, as is: defrag raises V8's interrupt budget for its run, and
 * with the budget still raised when the cache was written, V8 rejected it in every later run
 * (another flag hash): each fresh defrag compiled the whole script again and wrote a new cache at
 * exit. The demo fixture, defragmented twice from the same copy; e2fsck clean after each, and
 * every file (debugfs rdump) as the manifest of the tree the fixture was made from says.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { fixtureManifest } from '../helpers/fixtures.js';
import { debugfs } from '../helpers/tools.js';
import { expectClean, HAVE_E2FSPROGS } from '../ops/helpers.js';
import { cliBundle, codeCacheStamp } from '../cli/helpers.js';

const fixture = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../fixtures/fragmented.ext4.img.gz');

describe.skipIf(!HAVE_E2FSPROGS)('defrag code cache', () => {
  it('the next defrag uses the code cache the first one wrote (not rejected, not rewritten)', async () => {
    const bin = await cliBundle();
    const home = tmpDir('defrag-code-cache');
    const image = zlib.gunzipSync(fs.readFileSync(fixture));
    const run = (): string => {
      const img = tmpPath('defrag-code-cache.img');
      fs.writeFileSync(img, image);
      const r = spawnSync(process.execPath, [bin, 'defrag', img, '--json'], { env: { ...process.env, XDG_CACHE_HOME: home, EXT4KIT_CODE_CACHE: '' }, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect((JSON.parse(r.stdout) as { moves: number }).moves).toBeGreaterThan(0);
      expectClean(img, 'defrag (cached script)');
      const out = tmpDir('defrag-code-cache-rdump');
      debugfs(img, [`rdump /fill ${out}`, `rdump /frag ${out}`]);
      const files = fixtureManifest('fragmented').filter((e) => e.type === 'file');
      expect(files.length).toBeGreaterThan(1000);
      for (const e of files) expect(createHash('sha256').update(fs.readFileSync(path.join(out, e.path))).digest('hex'), e.path).toBe(e.sha256);
      return codeCacheStamp(home, 'defrag');
    };
    const first = run();
    expect(run(), 'the cache was rewritten: V8 rejected it').toBe(first);
  });
});
