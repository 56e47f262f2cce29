/**
 * `ext4kit info --json` against `dumpe2fs -h` (and the group count against
 * the groups dumpe2fs lists), on the images of the CLI tests, plus a label
 * and every "Filesystem state" wording.
 */
import { describe, expect, it } from 'vitest';
import { getImage } from '../helpers/images.js';
import { tmpPath } from '../helpers/tmp.js';
import { debugfsFull, dumpe2fsGroups, dumpe2fsHeader, mkfs } from '../helpers/tools.js';
import type { FsInfo } from '../../lib/ops/inspect.js';
import { cli, cliJson } from './helpers.js';

function expectMatchesDumpe2fs(got: FsInfo, h: Record<string, string>, img: string): void {
  const n = (k: string) => {
    if (!(k in h)) throw new Error(`dumpe2fs -h printed no "${k}"`);
    return Number(h[k]);
  };
  expect(got.blockSize).toBe(n('Block size'));
  expect(got.blocksCount).toBe(n('Block count'));
  expect(got.freeBlocks).toBe(n('Free blocks'));
  expect(got.reservedBlocks).toBe(n('Reserved block count'));
  expect(got.firstBlock).toBe(n('First block'));
  expect(got.blocksPerGroup).toBe(n('Blocks per group'));
  expect(got.inodesPerGroup).toBe(n('Inodes per group'));
  expect(got.inodeSize).toBe(n('Inode size'));
  expect(got.inodesCount).toBe(n('Inode count'));
  expect(got.freeInodes).toBe(n('Free inodes'));
  expect(got.features.join(' ')).toBe(h['Filesystem features']);
  expect(got.uuid).toBe(h['Filesystem UUID']);
  expect(got.label === '' ? '<none>' : got.label).toBe(h['Filesystem volume name']);
  expect(got.state).toBe(h['Filesystem state']);
  expect(got.groups).toBe(dumpe2fsGroups(img).length);
}

const RECIPES = ['ext4-4k', 'ext4-1k', 'ext2', 'ext3-1k', 'ext4-inline', 'ext4-metabg', 'ext4-no64bit'];

describe('info --json equals dumpe2fs -h', () => {
  it.each(RECIPES)('%s', async (name) => {
    const im = getImage(name);
    const got = await cliJson<FsInfo>(['info', '--json', im.image]);
    expectMatchesDumpe2fs(got, dumpe2fsHeader(im.image), im.image);
    expect(got.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  it('label, and every state wording (clean / not clean / with errors)', async () => {
    const img = tmpPath('info.img');
    mkfs('ext4', img, 16 * 1024 * 1024, ['-b', '4096', '-L', 'ünï-label'], undefined, { uuid: 'A1B2C3D4-0000-4000-8000-00000000000F' });
    const states: [number, string][] = [[1, 'clean'], [0, 'not clean'], [3, 'clean with errors'], [2, 'not clean with errors']];
    for (const [v, words] of states) {
      debugfsFull(img, [`ssv state ${v}`], { write: true });
      const got = await cliJson<FsInfo>(['info', '--json', img]);
      expect(got.state).toBe(words);
      expect(got.label).toBe('ünï-label');
      expect(got.uuid).toBe('a1b2c3d4-0000-4000-8000-00000000000f');
      expectMatchesDumpe2fs(got, dumpe2fsHeader(img), img);
    }
  });

  it('human output names the same values', async () => {
    const im = getImage('ext4-4k');
    const r = await cli(['info', im.image]);
    expect(r.status).toBe(0);
    const text = r.stdout.toString('utf8');
    const h = dumpe2fsHeader(im.image);
    expect(text).toMatch(new RegExp(`^Block size: +${h['Block size']}$`, 'm'));
    expect(text).toMatch(new RegExp(`^Features: +${h['Filesystem features']}$`, 'm'));
    expect(text).toMatch(new RegExp(`^UUID: +${h['Filesystem UUID']}$`, 'm'));
    expect(text).toMatch(/^Label: +<none>$/m);
    expect(text).toMatch(/^State: +clean$/m);
  });
});
