/**
 * `ext4kit extents --json` against debugfs: `ex -l` (the leaf extents,
 * exactly) for a fragmented file with a depth-1 tree, sparse files,
 * unwritten (fallocated) extents; `stat`'s BLOCKS list (runs) for
 * block-mapped ext2/ext3 files including triple-indirect data.
 */
import { describe, expect, it } from 'vitest';
import { getImage } from '../helpers/images.js';
import type { StatResult } from '../../lib/ops/inspect.js';
import { buildExtentImage, cli, cliJson, debugfsLeafExtents, debugfsStatRuns, mergeRuns, type OracleExtent } from './helpers.js';

describe('extents --json equals debugfs ex -l', () => {
  const cases = ['fragmented', 'sparse', 'unwritten', 'mixed', 'contiguous'] as const;
  it.each(cases)('%s', async (which) => {
    const x = buildExtentImage();
    const p = x[which];
    const want = debugfsLeafExtents(x.image, p);
    const got = await cliJson<OracleExtent[]>(['extents', '--json', x.image, p]);
    expect(got).toEqual(want);
    const st = await cliJson<StatResult>(['stat', '--json', x.image, p]);
    expect(st.mapping).toBe('extents');
    expect(st.extents).toBe(want.length);
    if (which === 'fragmented') {
      expect(want.length).toBeGreaterThan(100);
      expect(st.depth).toBe(1);
    }
    if (which === 'unwritten') expect(got.length > 0 && got.every((e) => e.unwritten)).toBe(true);
    if (which === 'mixed') expect(got.some((e) => e.unwritten) && got.some((e) => !e.unwritten)).toBe(true);
    if (which === 'sparse') expect(got.length).toBeGreaterThanOrEqual(4);
  });

  it.each(['ext4-4k', 'ext4-1k'])('every file under /sparse and /big of %s', async (name) => {
    const im = getImage(name);
    for (const e of im.entries.filter((x) => x.type === 'file' && /^(sparse|big)\//.test(x.path))) {
      const got = await cliJson<OracleExtent[]>(['extents', '--json', im.image, '/' + e.path]);
      expect(got, e.path).toEqual(debugfsLeafExtents(im.image, '/' + e.path));
    }
  });
});

describe('block-mapped files: runs equal debugfs stat BLOCKS', () => {
  const cases: [string, string][] = [
    ['ext2', '/blockmap/direct-12'],
    ['ext2', '/blockmap/direct-12-plus-1'],
    ['ext2', '/blockmap/ind-end'],
    ['ext2', '/blockmap/dind-start'],
    ['ext2', '/sparse/hole-middle'],
    ['ext2', '/big/random-5m'],
    ['ext3-1k', '/sparse/triple-indirect'],
  ];
  it.each(cases)('%s %s', async (name, p) => {
    const img = getImage(name).image;
    const got = await cliJson<OracleExtent[]>(['extents', '--json', img, p]);
    expect(got.length).toBeGreaterThan(0);
    expect(mergeRuns(got)).toEqual(mergeRuns(debugfsStatRuns(img, p)));
    const st = await cliJson<StatResult>(['stat', '--json', img, p]);
    expect(st.mapping).toBe('blockmap');
    expect(st.extents).toBeUndefined();
  });
});

describe('extents forms', () => {
  it('inline data, fast symlinks and devices map nothing; a final symlink is not followed', async () => {
    const inline = getImage('ext4-inline').image;
    expect(await cliJson(['extents', '--json', inline, '/sizes/sixty'])).toEqual([]);
    const img = getImage('ext4-4k').image;
    expect(await cliJson(['extents', '--json', img, '/symlinks/len-1'])).toEqual([]);
    expect(await cliJson(['extents', '--json', img, '/special/fifo'])).toEqual([]);
    const slow = await cliJson<OracleExtent[]>(['extents', '--json', img, '/symlinks/len-1000']);
    expect(slow).toEqual(debugfsLeafExtents(img, '/symlinks/len-1000'));
    expect(slow).toHaveLength(1);
  });

  it('human table', async () => {
    const x = buildExtentImage();
    const r = await cli(['extents', x.image, x.mixed]);
    expect(r.status).toBe(0);
    const lines = r.stdout.toString('utf8').trimEnd().split('\n');
    expect(lines[0]).toMatch(/^logical +physical +length flags$/);
    const want = debugfsLeafExtents(x.image, x.mixed);
    expect(lines).toHaveLength(want.length + 1);
    want.forEach((e, i) => {
      const f = lines[i + 1]!.trim().split(/\s+/);
      const range = (a: number) => (e.length === 1 ? String(a) : `${a}-${a + e.length - 1}`);
      expect(f.slice(0, 3)).toEqual([range(e.logical), range(e.physical), String(e.length)]);
      expect(f[3]).toBe(e.unwritten ? 'unwritten' : undefined);
    });
    const none = await cli(['extents', getImage('ext4-4k').image, '/sizes/empty']);
    expect(none.stdout.toString()).toBe('no extents\n');
  });
});
