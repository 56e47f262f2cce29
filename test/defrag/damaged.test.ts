/**
 * The defragmenter never trusts a bitmap it can check: a file block whose bitmap bit is clear
 * would be handed out to another file by the first move (issue 8, "the reverse map and the
 * allocator must agree"). defrag audits the space first and refuses with EFSCORRUPTED, and the
 * image stays byte-for-byte unchanged.
 */
import { describe, it, expect } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Filesystem } from '../../lib/node.js';
import { defrag } from '../../lib/ops/defrag.js';
import { debugfs, debugfsDump, e2fsckProblems, mkfs, run, sha256File } from '../helpers/tools.js';
import { tmpDir, tmpPath } from '../helpers/tmp.js';
import { prngBytes } from '../helpers/tree.js';

describe('defrag on damaged space bookkeeping', () => {
  it('a file block marked free in its bitmap: EFSCORRUPTED before any move, image unchanged', async () => {
    const src = tmpDir('damaged-src');
    mkdirSync(`${src}/d`);
    for (let i = 0; i < 8; i++) writeFileSync(`${src}/d/f${i}`, prngBytes(`f${i}`, 3 * 4096 + i));
    const img = tmpPath('damaged.img');
    mkfs('ext4', img, 16 * 1024 * 1024, ['-b', '4096', '-O', '^metadata_csum'], src);
    const blocks = run('debugfs', ['-R', 'blocks /d/f3', img]).stdout.trim().split(/\s+/).map(Number);
    expect(blocks.length).toBe(4); // 3 blocks + 3 bytes
    debugfs(img, [`freeb ${blocks[1]}`], { write: true });
    // The oracle sees the damage the way we must.
    expect(e2fsckProblems(run('e2fsck', ['-fn', img], { okStatus: true }).stdout).join('\n')).toMatch(/[Bb]lock bitmap differences/);
    const before = sha256File(img);
    const fs = await Filesystem.open(img, { write: true });
    let err: unknown = null;
    try {
      await defrag(fs);
    } catch (e) {
      err = e;
    } finally {
      await fs.close();
    }
    expect(err).toMatchObject({ code: 'EFSCORRUPTED' });
    expect(String((err as Error).message)).toContain(`block ${blocks[1]}`);
    expect(sha256File(img)).toBe(before);
    expect(Buffer.compare(debugfsDump(img, '/d/f3'), prngBytes('f3', 3 * 4096 + 3))).toBe(0);
  });
});
