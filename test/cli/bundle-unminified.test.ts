/**
 * `node scripts/bundle-cli.mjs --no-minify` (for profiling with readable line numbers): its fast
 * scripts keep comments, some with non-ASCII characters, while code-cache.ts reads a script as
 * latin1 — the bundler writes those characters as \u escapes. The unminified CLI must give the
 * minified one's output, through its fast scripts.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundleCli } from '../../scripts/bundle-cli.mjs';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { mkfs } from '../helpers/tools.js';
import { cli } from './helpers.js';

describe('the unminified bundle', () => {
  it('has ASCII fast scripts and lists an image as the minified bundle does', async () => {
    const bin = await bundleCli({ outfile: path.join(tmpDir('cli-bundle-unminified'), 'cli.js'), minify: false });
    const chunks = path.join(path.dirname(bin), 'cli-chunks');
    const scripts = fs.readdirSync(chunks).filter((f) => f.startsWith('fast-'));
    expect(scripts.length).toBeGreaterThanOrEqual(5);
    for (const f of scripts) {
      const bytes = fs.readFileSync(path.join(chunks, f));
      expect(bytes.some((b) => b > 0x7f), f).toBe(false);
      // (unminified: comments and line breaks kept)
      expect(bytes.toString('latin1').split('\n').length, f).toBeGreaterThan(1000);
    }
    const src = tmpPath('unminified-src');
    fs.mkdirSync(path.join(src, 'dir'), { recursive: true });
    fs.writeFileSync(path.join(src, 'dir', 'caf\u00e9 \u2192 \u00fc.txt'), 'x'.repeat(5000));
    const img = tmpPath('unminified.img');
    mkfs('ext4', img, 8 * 1024 * 1024, [], src);
    const run = spawnSync(process.execPath, [bin, 'ls', '-R', '--json', img, '/'], { env: { ...process.env, LANG: 'C' } });
    expect(run.stderr.toString('utf8')).toBe('');
    expect(run.status).toBe(0);
    const minified = await cli(['ls', '-R', '--json', img, '/']);
    expect(minified.status).toBe(0);
    expect(run.stdout.toString('utf8')).toBe(minified.stdout.toString('utf8'));
    // the source of truth, the tree given to mkfs: its one file, name and size, under /dir
    const files = (JSON.parse(run.stdout.toString('utf8')) as { path: string; type: string; size: number }[]).filter((e) => e.type === 'file');
    expect(files.map((e) => [e.path, e.size])).toEqual([['/dir/caf\u00e9 \u2192 \u00fc.txt', 5000]]);
  });
});
