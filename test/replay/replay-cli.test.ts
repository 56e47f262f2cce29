/**
 * `ext4kit replay IMAGE` against `e2fsck -p -E journal_only` on copies of the
 * same kernel image (copied while mounted, journal needing recovery): the two
 * results are byte-identical except the superblock's s_wtime(_hi), s_checksum
 * and s_kbytes_written (e2fsck counts its cache's physical writes).
 */
import { describe, it, expect } from 'vitest';
import { copyFileSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { needsRecoveryImage, kernelSkipReason } from '../helpers/kernel-images.js';
import { e2fsckClean, e2fsckJournalOnly } from '../helpers/tools.js';
import { tmpPath } from '../helpers/tmp.js';
import { SuperblockLayout } from '../../lib/ext4/superblock.js';

const reason = kernelSkipReason();
if (reason) console.log(`replay CLI test skipped: ${reason}`);

describe.skipIf(reason !== null)('ext4kit replay (CLI) vs e2fsck -p -E journal_only', () => {
  it('leaves the same bytes, says what it replayed, and the result is e2fsck-clean', () => {
    const k = needsRecoveryImage()!;
    const ours = tmpPath('replay-ours.img');
    const theirs = tmpPath('replay-e2fsck.img');
    copyFileSync(k.image, ours);
    copyFileSync(k.image, theirs);
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'lib/cli/main.ts', 'replay', ours, '--json'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.replayed).toBe(true);
    expect(summary.transactions).toBeGreaterThan(0);
    expect(summary.replayBlocks).toBeGreaterThan(0);
    e2fsckJournalOnly(theirs);
    const a = readFileSync(ours), b = readFileSync(theirs);
    expect(a.length).toBe(b.length);
    // Bytes allowed to differ: s_wtime, s_wtime_hi, s_kbytes_written, s_checksum (superblock at byte 1024).
    const allowed = new Set<number>();
    const field = (name: Parameters<typeof SuperblockLayout.offsetOf>[0]) => {
      for (let i = 0; i < SuperblockLayout.sizeOf(name); i++) allowed.add(1024 + SuperblockLayout.offsetOf(name) + i);
    };
    for (const f of ['s_wtime', 's_wtime_hi', 's_kbytes_written', 's_checksum'] as const) field(f);
    const diffs: number[] = [];
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !allowed.has(i)) diffs.push(i);
    expect(diffs.slice(0, 20)).toEqual([]);
    // Like e2fsck's journal-only replay, ours leaves the kernel's lazily kept superblock free totals
    // as the log had them (ext4-format.md §2.1); nothing else may be wrong.
    const after = e2fsckClean(ours);
    expect(after.problems.filter((p) => !/Free (blocks|inodes) count wrong|^Fix\? no$|^\s*$/.test(p.trim()))).toEqual([]);
    // Running it again finds a clean journal.
    const again = spawnSync(process.execPath, ['--import', 'tsx', 'lib/cli/main.ts', 'replay', ours], { encoding: 'utf8' });
    expect(again.stdout).toMatch(/nothing to replay/);
  }, 120_000);
});
