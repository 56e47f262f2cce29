/**
 * check ⇔ e2fsck parity on a corpus of damaged images (test/helpers/damage.ts): every targeted
 * damage kind on every base it applies to, plus a few hundred seeded random metadata flips.
 * For each image `e2fsck -fn` (the oracle) and `checkFilesystem` run; whenever e2fsck reports a
 * problem (a nonzero exit or any problem line), check must say so too — ok:false, or a typed
 * Ext4Error (EFSCORRUPTED, EFSBADCRC, …) from the open — never ok:true. On the clean bases check
 * must say ok:true. check never hangs (a watchdog kills the worker running a case that takes too
 * long) and never throws anything but an Ext4Error.
 *
 * Images where check finds a problem e2fsck does not report are allowed (check is stricter in a few
 * documented places: the journal's s_first, which the kernel refuses and e2fsck does not look at;
 * ERROR_FS, which e2fsck -n leaves for a repair run) and only counted.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { cleanImages, damagedImages, targetedImages, TARGETED_KINDS, type DamagedImage } from '../helpers/damage.js';
import { e2fsckProblems } from '../helpers/tools.js';
import { ToolShell } from '../helpers/tool-shell.js';
import type { CheckOutcome } from './check-worker.js';

/** Seeded flips (deterministic); CHECK_PARITY_SEED / CHECK_PARITY_FLIPS explore other samples by hand. */
const FLIPS = Number(process.env.CHECK_PARITY_FLIPS ?? 300);
const SEED = process.env.CHECK_PARITY_SEED ?? 'check-parity';
const CASE_MS = 15_000;

/**
 * e2fsck reports that check may leave unreported, with why. Empty: every kind in the corpus is
 * covered. Keep it small and explain each entry.
 */
const ALLOWED_MISSES: readonly { name: RegExp; why: string }[] = [];

interface Verdict {
  image: DamagedImage;
  e2fsck: { exit: number; problems: string[] };
  check: CheckOutcome | { kind: 'hang' };
}

/**
 * `e2fsck -fn` on many images, `parallel` at a time, each stream in its own tool shell (forking
 * this process for each of 581 runs costs more CPU than e2fsck: see tool-shell.ts). A run past
 * 60 s is killed (exit 137).
 */
async function e2fsckAll(paths: string[], parallel: number): Promise<{ exit: number; problems: string[] }[]> {
  const out: { exit: number; problems: string[] }[] = new Array(paths.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      const sh = new ToolShell({ LANG: 'C', LC_ALL: 'C' });
      try {
        while (next < paths.length) {
          const i = next++;
          // stdout and stderr apart (the banner goes to stderr): interleaved chunks would split lines
          const r = await sh.run('timeout', ['-s', 'KILL', '60', 'e2fsck', '-fn', paths[i]!]);
          out[i] = { exit: r.status, problems: e2fsckProblems(`${r.stdout}\n${r.stderr}`) };
        }
      } finally {
        sh.close();
      }
    }),
  );
  return out;
}

/** checkFilesystem on each image in a worker; a case running longer than `caseMs` is a hang. */
async function checkAll(paths: string[], caseMs: number): Promise<(CheckOutcome | { kind: 'hang' })[]> {
  const outcomes = new Map<number, CheckOutcome | { kind: 'hang' }>();
  const boot = fileURLToPath(new URL('./check-worker-boot.mjs', import.meta.url));
  const entry = fileURLToPath(new URL('./check-worker.ts', import.meta.url));
  let remaining = paths.map((path, id) => ({ id, path }));
  while (remaining.length) {
    await new Promise<void>((resolve, reject) => {
      const w = new Worker(boot, { workerData: { entry, check: true, cases: remaining } });
      let current: number | null = null;
      let timer: NodeJS.Timeout | null = null;
      let startup: NodeJS.Timeout | null = setTimeout(() => {
        void w.terminate();
        reject(new Error('the check worker did not start within 60 s'));
      }, 60_000);
      w.on('message', (m: { kind: string; id?: number; outcome?: CheckOutcome }) => {
        if (startup) clearTimeout(startup), (startup = null);
        if (m.kind === 'start') {
          current = m.id!;
          if (timer) clearTimeout(timer);
          timer = setTimeout(() => {
            if (current !== null) outcomes.set(current, { kind: 'hang' });
            void w.terminate();
          }, caseMs);
        } else if (m.kind === 'done') {
          outcomes.set(m.id!, m.outcome!);
          current = null;
          if (timer) clearTimeout(timer);
        }
      });
      w.on('error', (e) => {
        if (current !== null) outcomes.set(current, { kind: 'untyped', name: 'WorkerError', message: String((e as Error)?.stack ?? e) });
      });
      w.on('exit', () => {
        if (timer) clearTimeout(timer);
        if (startup) clearTimeout(startup);
        resolve();
      });
    });
    const before = remaining.length;
    remaining = remaining.filter((c) => !outcomes.has(c.id));
    if (remaining.length === before) throw new Error('the check worker made no progress');
  }
  return paths.map((_, i) => outcomes.get(i)!);
}

const e2fsckFound = (v: Verdict) => v.e2fsck.exit !== 0 || v.e2fsck.problems.length > 0;
const checkFound = (v: Verdict) => v.check.kind === 'problems' || v.check.kind === 'ext4error';
const show = (v: Verdict) =>
  `${v.image.name} [${v.image.describe}]\n    e2fsck (exit ${v.e2fsck.exit}): ${v.e2fsck.problems.slice(0, 3).join(' / ')}\n    check: ${JSON.stringify(v.check).slice(0, 400)}`;

describe('check finds a problem whenever e2fsck -fn does (damaged-image corpus)', () => {
  let verdicts: Verdict[] = [];
  let clean: Verdict[] = [];

  beforeAll(async () => {
    const t0 = Date.now();
    const cleanImgs = await cleanImages();
    const images = [...(await targetedImages()), ...(await damagedImages(SEED, FLIPS))];
    const all = [...cleanImgs, ...images];
    const tBuild = Date.now();
    const [fsck, checks] = await Promise.all([e2fsckAll(all.map((i) => i.path), 2), checkAll(all.map((i) => i.path), CASE_MS)]);
    const vs = all.map((image, i) => ({ image, e2fsck: fsck[i]!, check: checks[i]! }));
    clean = vs.slice(0, cleanImgs.length);
    verdicts = vs.slice(cleanImgs.length);
    const targeted = verdicts.filter((v) => v.image.kind !== 'flip');
    const flips = verdicts.filter((v) => v.image.kind === 'flip');
    const stricter = verdicts.filter((v) => !e2fsckFound(v) && checkFound(v));
    const silentKinds = TARGETED_KINDS.map((k) => k.name).filter((k) => targeted.some((v) => v.image.kind === k) && !targeted.some((v) => v.image.kind === k && e2fsckFound(v)));
    console.log(
      `check parity: ${all.length} images (${cleanImgs.length} clean, ${targeted.length} targeted over ${TARGETED_KINDS.length} kinds, ${flips.length} seeded flips "${SEED}"); ` +
        `e2fsck found problems in ${targeted.filter(e2fsckFound).length} targeted + ${flips.filter(e2fsckFound).length} flipped, ` +
        `check in ${targeted.filter(checkFound).length} + ${flips.filter(checkFound).length}; ` +
        `check stricter than e2fsck on ${stricter.length} (${[...new Set(stricter.map((v) => v.image.kind))].join(', ')}); ` +
        `kinds e2fsck -n does not report: ${silentKinds.join(', ') || 'none'}; ` +
        `built in ${tBuild - t0} ms, checked in ${Date.now() - tBuild} ms`,
    );
    for (const v of stricter.filter((x) => x.image.kind === 'flip').slice(0, 10)) console.log(`  stricter: ${show(v)}`);
    if (ALLOWED_MISSES.length) console.log(`allowed misses: ${ALLOWED_MISSES.map((a) => `${a.name} (${a.why})`).join('; ')}`);
  }, 600_000);

  it('the clean bases: e2fsck clean and check ok', () => {
    expect(clean.length).toBe(4);
    for (const v of clean) {
      expect(e2fsckFound(v), show(v)).toBe(false);
      expect(v.check, show(v)).toEqual({ kind: 'ok' });
    }
  });

  it('never a hang or an untyped error', () => {
    const bad = verdicts.filter((v) => v.check.kind === 'hang' || v.check.kind === 'untyped').map(show);
    expect(bad).toEqual([]);
  });

  it('every targeted kind: e2fsck reports it ⇒ check reports it', () => {
    const missed = verdicts.filter((v) => v.image.kind !== 'flip' && e2fsckFound(v) && !checkFound(v) && !ALLOWED_MISSES.some((a) => a.name.test(v.image.name)));
    expect(missed.map(show)).toEqual([]);
    // the corpus exercises what it claims: most targeted kinds are problems e2fsck sees
    expect(verdicts.filter((v) => v.image.kind !== 'flip' && e2fsckFound(v)).length).toBeGreaterThan(150);
  });

  it('every seeded flip: e2fsck reports it ⇒ check reports it', () => {
    const flips = verdicts.filter((v) => v.image.kind === 'flip');
    expect(flips.length).toBe(FLIPS);
    const missed = flips.filter((v) => e2fsckFound(v) && !checkFound(v) && !ALLOWED_MISSES.some((a) => a.name.test(v.image.name)));
    expect(missed.map(show)).toEqual([]);
    expect(flips.filter(e2fsckFound).length, 'flips that e2fsck notices').toBeGreaterThan(FLIPS / 3);
  });
});
