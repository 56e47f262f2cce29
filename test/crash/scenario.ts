/**
 * One crash scenario end to end (used by crash.test.ts and formats.test.ts):
 * build the comb image, record the workload, check the journal format and the
 * final image, then evaluate every crash point (harness.ts) with a sample
 * replayed by e2fsck as well. The oracle commands run in one ToolShell per
 * scenario (no fork of the test process per e2fsck) on images in tmpfs.
 */
import { expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { materialise } from '../../lib/io/recording-device.js';
import { dumpe2fsHeader, E2FSPROGS_TOOLS, haveTools } from '../helpers/tools.js';
import { ToolShell, debugfsVia, e2fsckCleanVia, e2fsckJournalOnlyVia } from '../helpers/tool-shell.js';
import { memDir } from '../helpers/tmp.js';
import { buildBaseImage, evaluateCrashPoints, indexWrites, record, sameBytes, type SampleCase, type Step } from './harness.js';
import { allocate } from '../../lib/ops/allocate.js';
import { movedata } from '../../lib/ops/movedata.js';

/** Under CI a missing tool throws (oracleGate) instead of skipping. */
export const HAVE_TOOLS = haveTools(E2FSPROGS_TOOLS);

export interface Scenario {
  label: string;
  mkfsOpts: string[];
  /** dumpe2fs "Journal features" expected after ext4kit wrote the journal. */
  journalFeatures: string[];
  subsetsPerEpoch: number;
  checkpoint: 'lazy' | 'each';
  /** Force checkpoints (new log cycles) when this many committed blocks are pending. */
  maxPendingBlocks?: number;
  /** Steps instead of the default workload (and no depth expectations). */
  steps?: (bs: number, holes: number[]) => Step[];
  /** Only crash points within this many writes before/after a checkpoint. */
  nearCheckpoints?: [number, number];
  /** Crash points also replayed by e2fsck. */
  e2fsckSample: number;
  seed: number;
  /** mkfs flavour (default ext4); ext3: block-mapped files, journal without 64-bit tags or checksums. */
  fsKind?: 'ext3';
}

export const SCENARIOS: Scenario[] = [
  {
    label: 'metadata_csum,64bit (csum v3 tags, revokes), lazy checkpoint at close',
    mkfsOpts: [], journalFeatures: ['journal_64bit', 'journal_checksum_v3', 'journal_incompat_revoke'],
    checkpoint: 'lazy', subsetsPerEpoch: 2, e2fsckSample: 20, seed: 1,
  },
  {
    label: '^metadata_csum,^64bit (32-bit tags and revokes, no checksums), lazy with forced checkpoints',
    mkfsOpts: ['-O', '^metadata_csum,^64bit'], journalFeatures: ['journal_incompat_revoke'],
    checkpoint: 'lazy', maxPendingBlocks: 8, subsetsPerEpoch: 1, e2fsckSample: 12, seed: 2,
  },
  {
    label: '^metadata_csum,64bit (64-bit tags, no checksums), checkpoint after each commit',
    mkfsOpts: ['-O', '^metadata_csum'], journalFeatures: ['journal_64bit'],
    checkpoint: 'each', subsetsPerEpoch: 0, e2fsckSample: 8, seed: 3,
  },
  {
    label: 'metadata_csum, lazy: 420 small transactions fill the 1024-block log twice (checkpoint, new log cycle)',
    mkfsOpts: [], journalFeatures: ['journal_64bit', 'journal_checksum_v3'],
    checkpoint: 'lazy', subsetsPerEpoch: 2, e2fsckSample: 8, seed: 4,
    steps: (bs) => Array.from({ length: 420 }, (_, i): Step => ({
      name: `append block ${i} to /f`,
      run: (f) => allocate(f, '/f', { offset: i * bs, len: bs }),
      apply: (m) => m.files.set('/f', new Uint8Array((i + 1) * bs)),
    })),
    nearCheckpoints: [16, 24],
  },
  {
    // Block maps (H5): allocate writes zeros as ordered data; movedata edits indirect blocks of both
    // files (IND and DIND at 1 KiB blocks) in journaled steps; the data never changes.
    label: 'ext3 (block-mapped files): allocate with zeroing, movedata through IND/DIND, checkpoint after each commit',
    fsKind: 'ext3', mkfsOpts: [], journalFeatures: [],
    checkpoint: 'each', subsetsPerEpoch: 0, e2fsckSample: 6, seed: 5,
    steps: (bs, holes) => {
      const B = (n: number) => n * bs;
      const gBlocks = Math.ceil(24000 / bs);
      return [
        { name: 'allocate /f [0,290) in the comb (IND, DIND)', run: (f) => allocate(f, '/f', { offset: 0, len: B(290), goal: holes[0]! * bs }), apply: (m) => m.files.set('/f', new Uint8Array(B(290))) },
        { name: 'allocate /space [0,24) contiguous', run: (f) => allocate(f, '/space', { offset: 0, len: B(gBlocks), flags: 4 }), apply: () => undefined },
        { name: 'movedata /g onto /space (copy; content unchanged)', run: (f) => movedata(f, '/g', '/space', { from: 0, len: B(gBlocks) }), apply: () => undefined },
        { name: 'allocate /space [0,290) contiguous', run: (f) => allocate(f, '/space', { offset: 0, len: B(290), flags: 4 }), apply: () => undefined },
        {
          name: 'movedata /f [0,290) onto /space, 32 extents per step (several transactions)',
          run: (f) => movedata(f, '/f', '/space', { from: 0, len: B(290), stepExtents: 32 }),
          apply: () => undefined,
          multi: true,
        },
      ];
    },
  },
];

async function checkWithE2fsck(sh: ToolShell, dir: string, s: SampleCase): Promise<void> {
  const img = path.join(dir, 'crash-e2fsck.img');
  const oursImg = path.join(dir, 'crash-ours.img');
  const outs = [...s.expected.keys()].map((p, i) => [p, path.join(dir, `dump${i}`)] as const);
  try {
    fs.writeFileSync(img, s.crashImage);
    const j = await e2fsckJournalOnlyVia(sh, img);
    expect(j.exitCode, `${s.where}: e2fsck -E journal_only exit status\n${j.output}`).toBeLessThanOrEqual(1);
    const clean = await e2fsckCleanVia(sh, img);
    expect(clean.problems, `${s.where}: e2fsck-replayed copy\n${clean.output}`).toEqual([]);
    expect(clean.ok, `${s.where}: e2fsck-replayed copy\n${clean.output}`).toBe(true);
    fs.writeFileSync(oursImg, s.ours);
    const clean2 = await e2fsckCleanVia(sh, oursImg);
    expect(clean2.problems, `${s.where}: ext4kit-replayed image\n${clean2.output}`).toEqual([]);
    expect(clean2.ok, `${s.where}: ext4kit-replayed image\n${clean2.output}`).toBe(true);
    await debugfsVia(sh, img, outs.map(([p, o]) => `dump ${p} ${o}`));
    for (const [p, o] of outs) {
      const dumped = new Uint8Array(fs.readFileSync(o));
      if (!sameBytes(dumped, s.expected.get(p)!)) throw new Error(`${s.where}: debugfs dump ${p} of the e2fsck-replayed copy differs from the model`);
      if (!sameBytes(dumped, s.oursFiles.get(p)!)) throw new Error(`${s.where}: debugfs dump ${p} differs from what ext4kit read after its own replay`);
    }
  } finally {
    for (const f of [img, oursImg, ...outs.map(([, o]) => o)]) fs.rmSync(f, { force: true });
  }
}

export async function checkScenario(sc: Scenario): Promise<void> {
  const dir = memDir(`crash-${sc.seed}`);
  const sh = new ToolShell();
  try {
    await runScenario(sc, sh, dir);
  } finally {
    sh.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function runScenario(sc: Scenario, sh: ToolShell, dir: string): Promise<void> {
  const base = buildBaseImage(`crash-${sc.seed}`, 12 * 1024 * 1024, sc.mkfsOpts, 1024, sc.fsKind ?? 'ext4');
  const rec = await record(base, { checkpoint: sc.checkpoint, maxPendingBlocks: sc.maxPendingBlocks, steps: sc.steps });
  const T = rec.commits.length;
  expect(T).toBeGreaterThanOrEqual(rec.steps.length);
  if (!sc.steps) {
    // The workload did what it claims: depth 2 reached, back to depth 0, one transaction per step.
    expect(Math.max(...rec.steps.map((s) => s.depthF))).toBe(2);
    expect(rec.steps[2]!.extentsF).toBeGreaterThan(4 * 84);
    expect(rec.steps.at(-1)!.depthF).toBe(0);
  }
  // The checkpoint policy did what it says: 'each' empties the log after every commit (on disk,
  // s_start = 0 once the checkpoint is done), 'lazy' keeps several transactions in the live log.
  if (sc.checkpoint === 'each') expect(rec.checkpoints).toBe(T);
  else {
    expect(rec.startAfterCommit.every((x) => x !== 0)).toBe(true);
    expect(rec.checkpoints).toBeLessThan(T);
    if (sc.steps) expect(rec.checkpoints, 'the log filled up and was reused').toBeGreaterThan(2);
    else if (sc.maxPendingBlocks === undefined) expect(rec.checkpoints).toBe(1); // at close only
    else expect(rec.checkpoints).toBeGreaterThan(2);
    if (!sc.steps) expect(rec.revokes, 'blocks freed while in the live log were revoked').toBeGreaterThan(0);
  }

  const { writes } = indexWrites(rec.log);
  // The journal format ext4kit wrote (dumpe2fs's view) and a clean final image.
  const finalImg = path.join(dir, 'crash-final.img');
  try {
    fs.writeFileSync(finalImg, materialise(rec.base, rec.log, { writes: writes.length }));
    const jf = (dumpe2fsHeader(finalImg)['Journal features'] ?? '').split(/\s+/).filter((x) => x && x !== '(none)');
    expect(jf.sort()).toEqual([...sc.journalFeatures].sort());
    const clean = await e2fsckCleanVia(sh, finalImg);
    expect(clean.ok, clean.output).toBe(true);
  } finally {
    fs.rmSync(finalImg, { force: true });
  }

  await evaluateCrashPoints(rec, {
    label: sc.label,
    seed: sc.seed,
    subsetsPerEpoch: sc.subsetsPerEpoch,
    sampleSize: sc.e2fsckSample,
    checkDataFiles: ['/f', '/g', '/space'],
    onSample: (s) => checkWithE2fsck(sh, dir, s),
    ...(sc.nearCheckpoints ? { only: (w: number) => rec.checkpointWrites.some((cw) => w >= cw - sc.nearCheckpoints![0] && w <= cw + sc.nearCheckpoints![1]) } : {}),
  });
}

