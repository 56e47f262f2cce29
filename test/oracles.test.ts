/**
 * Oracles are never silently skipped in CI (issue 8): with CI=true a missing e2fsprogs program,
 * loop device or root fails the run; on a developer machine the same test skips with a reason.
 *
 * Every skip in test/ goes through `oracleGate` (test/helpers/tools.ts) — directly, or through
 * `skipReason`, `canLoopMount`, `haveTools` and the per-directory `loopSkipReason` helpers. The
 * unit part pins the rule; the end-to-end part runs real test files in a child vitest with a tool
 * hidden (`EXT4KIT_TEST_HIDE_TOOLS`, honoured by `which`) and checks skip vs failure.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MissingOracleError, missingTools, oracleGate, oraclesRequired } from './helpers/tools.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

describe('the rule', () => {
  it('CI set to a true value requires oracles; unset, empty, 0 or false does not', () => {
    expect(oraclesRequired({ CI: 'true' })).toBe(true);
    expect(oraclesRequired({ CI: '1' })).toBe(true);
    expect(oraclesRequired({ CI: 'TRUE' })).toBe(true);
    expect(oraclesRequired({})).toBe(false);
    expect(oraclesRequired({ CI: '' })).toBe(false);
    expect(oraclesRequired({ CI: '0' })).toBe(false);
    expect(oraclesRequired({ CI: 'false' })).toBe(false);
  });

  it('oracleGate: a reason is returned (skip) outside CI and thrown (failure) under CI=true', () => {
    const why = missingTools(['ext4kit-no-such-oracle']);
    expect(why).toBe('ext4kit-no-such-oracle not installed');
    expect(oracleGate(why, {})).toBe(why);
    expect(() => oracleGate(why, { CI: 'true' })).toThrow(MissingOracleError);
    expect(() => oracleGate(why, { CI: 'true' })).toThrow(/ext4kit-no-such-oracle not installed/);
    // available: nothing to skip, nothing thrown
    expect(oracleGate(null, { CI: 'true' })).toBe(null);
    expect(oracleGate(undefined, { CI: 'true' })).toBe(undefined);
    expect(missingTools(['sh'])).toBe(null);
  });
});

/** `vitest run FILES` in a child with `hide` missing from PATH lookups; CI as given (undefined: unset). */
function childVitest(files: string[], hide: string, ci: string | undefined): { status: number; out: string } {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(VITEST|CI$|NODE_OPTIONS$)/.test(k)) env[k] = v;
  env.EXT4KIT_TEST_HIDE_TOOLS = hide;
  if (ci !== undefined) env.CI = ci;
  const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...files, '--reporter=verbose', '--no-color'], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.error) throw r.error;
  return { status: r.status ?? 128, out: `${r.stdout}\n${r.stderr}` };
}

// Both need e2fsprogs (refuse) or a loop mount (write/kernel, read/matrix) and check for it when
// the file is loaded, so hiding a tool makes them skip or fail before any image is built.
describe('end to end: real test files with debugfs and losetup hidden', () => {
  it('without CI they skip (nothing runs, nothing fails)', () => {
    const r = childVitest(['test/write/refuse.test.ts', 'test/write/kernel.test.ts'], 'debugfs,losetup', undefined);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/Test Files\s+2 skipped/);
    expect(r.out).not.toMatch(/\d+ (passed|failed)/);
  });

  it('with CI=true a missing e2fsprogs program and a missing loop device each fail their file', () => {
    const r = childVitest(['test/write/refuse.test.ts', 'test/read/matrix.test.ts'], 'debugfs,losetup', 'true');
    expect(r.status, r.out).not.toBe(0);
    expect(r.out).toMatch(/Test Files\s+2 failed/);
    expect(r.out).toMatch(/MissingOracleError: CI=true: a test oracle is missing \(failing instead of skipping\): debugfs not installed/);
    expect(r.out).toMatch(/MissingOracleError: CI=true: a test oracle is missing \(failing instead of skipping\): losetup is not installed/);
  });
});
