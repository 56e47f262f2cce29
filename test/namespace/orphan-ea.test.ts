/**
 * An EA inode on the orphan list (ea_inode): the kernel puts one there when its refcount drops to 0
 * (ext4_xattr_inode_update_ref) and frees it when it evicts it; a crash in between leaves it
 * listed. The state is made here from a kernel-written value with debugfs: the owner's xattr block
 * detached and freed, the EA inode at links 0 / refcount 0 at the head of s_last_orphan, followed by
 * an ordinary unlinked orphan. Oracles: e2fsck -p (release_orphan_inodes frees it like any orphan)
 * on one copy, the kernel's own mount on another, and after our write open: the same bitmaps as
 * e2fsck's, e2fsck -fn clean, the kernel mounting it without errors and reading a new value.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { Filesystem } from '../../lib/node.js';
import { setXattr } from '../../lib/ops/attrs.js';
import { INODE_FLAGS } from '../../lib/ext4/inode.js';
import { groupOfBlock } from '../../lib/ext4/geometry.js';
import { parseXattrBlock } from '../../lib/ext4/xattr.js';
import { addOrphan, listOrphans } from '../../lib/ext4/orphan.js';
import { expectE2fsckClean, oracleGate, run, withLoopMount } from '../helpers/tools.js';
import { CAN_MOUNT, LOOP_SKIP, cleanupImages, codeOf, copyImage, pattern, sha256File } from '../ops/helpers.js';
import { makeNsImage, withWritableAt } from './helpers.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_760_000_000, nsec: 0 };
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function debugfs(img: string, script: string[]): void {
  run('debugfs', ['-w', '-f', '-', img], { input: script.join('\n') + '\n' });
}
/** Per group: free blocks and inodes, the bitmaps' free ranges (dumpe2fs), and the fs state. */
function summary(img: string): { groups: string[]; state: string } {
  const out = run('dumpe2fs', [img]).stdout;
  // bg_itable_unused left out: a hint that freeing never lowers in the kernel either, e2fsck recomputes it.
  const groups = out.split('\n').filter((l) => /free (blocks|inodes)|Free (blocks|inodes):/.test(l)).map((l) => l.trim().replace(/, \d+ unused inodes/, ''));
  const state = /Filesystem state:\s*(.*)/.exec(out)?.[1]?.trim() ?? '';
  return { groups, state };
}
function inUse(img: string, ino: number): boolean {
  const r = run('debugfs', ['-R', `testi <${ino}>`, img]);
  return /marked in use/.test(r.stdout + r.stderr);
}

describe.skipIf(oracleGate(CAN_MOUNT ? null : LOOP_SKIP))('an EA inode on the orphan list', () => {
  it.each(['list', 'orphan_file'] as const)('%s: freed at our write open as e2fsck frees it; the kernel then mounts without errors', async (where) => {
    // 128-byte inodes: the entry naming the EA inode lives in the xattr block, so detaching the
    // value from its owner is one file_acl edit.
    const features = where === 'list' ? 'ea_inode' : 'ea_inode,orphan_file';
    const base = makeNsImage({ name: `orphan-ea-${where}`, kind: 'ext4', blockSize: 1024, sizeMiB: 16, mkfsOpts: ['-I', '128', '-O', features], tree: { f: pattern(100, 1), g: pattern(300, 2) } });
    const big = pattern(20_000, 3);
    await withLoopMount(base, (mp) => {
      run('python3', ['-c', 'import os,sys; os.setxattr(sys.argv[1], "user.big", bytes.fromhex(sys.argv[2]))', path.join(mp, 'f'), hex(big)]);
    });
    const fx = await (async () => {
      const fs = await Filesystem.open(base);
      try {
        const f = await fs.resolve('/f'), g = await fs.resolve('/g');
        const entries = parseXattrBlock(await fs.readBlock(f.fileAcl), f.fileAcl, { fsSeed: fs.fsSeed, verify: true });
        const ea = entries.find((e) => e.name === 'user.big')!.valueInode;
        expect((await fs.readInode(ea)).flags & INODE_FLAGS.EA_INODE).toBeTruthy();
        const group = groupOfBlock(fs.sb, f.fileAcl);
        return { xblock: f.fileAcl, ea, g: g.ino, group, groupFree: (await fs.group(group)).freeBlocks, dataSectors: (fs.blockSize / 512) * Math.ceil(f.size / fs.blockSize) };
      } finally {
        await fs.close();
      }
    })();
    // What a crash right after the last reference went leaves (ext4_xattr_set_entry → update_ref →
    // ext4_orphan_add), plus an ordinary unlinked-but-open orphan behind it on the list.
    debugfs(base, [
      'sif /f file_acl 0', `sif /f blocks ${fx.dataSectors}`, `freeb ${fx.xblock}`,
      `set_bg ${fx.group} free_blocks_count ${fx.groupFree + 1}`, `set_bg ${fx.group} checksum calc`,
      `sif <${fx.ea}> links_count 0`, `sif <${fx.ea}> version 0`, 'unlink /g', `sif <${fx.g}> links_count 0`,
      ...(where === 'list' ? [`sif <${fx.ea}> dtime ${fx.g}`, `ssv last_orphan ${fx.ea}`] : []),
    ]);
    if (where === 'orphan_file') {
      // debugfs cannot fill orphan-file slots: ours does (the slots and ORPHAN_PRESENT; e2fsck -p
      // below accepts and releases them, which checks them).
      const fs = await Filesystem.open(base, { write: true, now: NOW });
      try {
        await fs.transact(async (tx) => {
          await addOrphan(tx, fx.ea);
          await addOrphan(tx, fx.g);
        });
      } finally {
        await fs.close();
      }
    }
    {
      const fs = await Filesystem.open(base);
      try {
        const l = await listOrphans(fs);
        expect(where === 'list' ? l.list : l.file.map((e) => e.ino)).toEqual([fx.ea, fx.g]);
      } finally {
        await fs.close();
      }
    }

    // Still counting a reference, it is named by some entry: refused before anything is written.
    const counted = copyImage(base, `orphan-ea-${where}-counted`);
    debugfs(counted, [`sif <${fx.ea}> version 1`]);
    const before = sha256File(counted);
    expect(await codeOf(withWritableAt(counted, NOW, async () => undefined))).toBe('EFSCORRUPTED');
    expect(sha256File(counted)).toBe(before);

    // e2fsck's release_orphan_inodes: the reference result (and proof the fixture is otherwise sound).
    const fsck = copyImage(base, `orphan-ea-${where}-fsck`);
    run('e2fsck', ['-p', fsck], { okStatus: [0, 1] });
    expectE2fsckClean(fsck, 'e2fsck -p released the orphans');
    expect(inUse(fsck, fx.ea)).toBe(false);

    // The kernel's own mount: Linux 6.18 refuses the EA inode (ext4_orphan_get: "unexpected
    // EA_INODE flag"), zeroes s_last_orphan and flags the fs with errors, leaking it. Should a
    // kernel free it instead, its result must be e2fsck's.
    const kernel = copyImage(base, `orphan-ea-${where}-kernel`);
    await withLoopMount(kernel, () => undefined);
    if (inUse(kernel, fx.ea)) expect(summary(kernel).state).toMatch(/error/);
    else expect(summary(kernel).groups).toEqual(summary(fsck).groups);

    // Ours: the write open processes the list.
    const ours = copyImage(base, `orphan-ea-${where}-ours`);
    const warnings = await withWritableAt(ours, NOW, async (fs) => [...fs.warnings]);
    expect(warnings.join('\n')).toMatch(/2 orphan inodes deleted/);
    expectE2fsckClean(ours, 'after our orphan cleanup');
    expect(inUse(ours, fx.ea)).toBe(false);
    expect(inUse(ours, fx.g)).toBe(false);
    expect(summary(ours).groups).toEqual(summary(fsck).groups);

    // A new large value afterwards, then the kernel: no error recorded, the value read back.
    const big2 = pattern(15_000, 4);
    await withWritableAt(ours, NOW, async (fs) => {
      await setXattr(fs, '/f', 'user.big', big2);
    });
    expectE2fsckClean(ours, 'after a new EA-inode value');
    const got = await withLoopMount(ours, (mp) =>
      run('python3', ['-c', 'import os,sys; print(os.getxattr(sys.argv[1], "user.big").hex())', path.join(mp, 'f')]).stdout.trim(),
    );
    expect(got).toBe(hex(big2));
    expect(summary(ours).state).toBe('clean');
    expectE2fsckClean(ours, 'after the kernel mount');
  });
});
