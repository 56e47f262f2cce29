/**
 * Where written times come from: an explicit `now` option, else the
 * SOURCE_DATE_EPOCH environment variable (reproducible-builds.org), else the
 * system clock. Golden-image builds depend on this: the same calls on the same
 * image give the same bytes.
 */
import { Ext4Error } from '../errors.js';

export interface Timestamp {
  sec: number;
  nsec: number;
}

/** A clock returns the current time; fixed clocks always return the same instant. */
export type Clock = () => Timestamp;

/** What callers may pass as `now`: a Date, milliseconds since the epoch, or a Timestamp. */
export type NowOption = Date | number | Timestamp;

function fromMs(ms: number): Timestamp {
  const sec = Math.floor(ms / 1000);
  return { sec, nsec: Math.round((ms - sec * 1000) * 1e6) };
}

function sourceDateEpoch(): string | undefined {
  // Read without importing node:process, so the core stays platform-free.
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const v = env?.SOURCE_DATE_EPOCH;
  return v === undefined || v === '' ? undefined : v;
}

/** Build the clock for an open: `now` option, else SOURCE_DATE_EPOCH, else Date.now. */
export function makeClock(now?: NowOption): Clock {
  if (now !== undefined) {
    const t = now instanceof Date ? fromMs(now.getTime()) : typeof now === 'number' ? fromMs(now) : { sec: now.sec, nsec: now.nsec };
    if (!Number.isSafeInteger(t.sec) || !Number.isInteger(t.nsec) || t.nsec < 0 || t.nsec >= 1e9)
      throw new Ext4Error('EINVAL', `now: not a valid time`);
    return () => ({ ...t });
  }
  const env = sourceDateEpoch();
  if (env !== undefined) {
    if (!/^\d+$/.test(env)) throw new Ext4Error('EINVAL', `SOURCE_DATE_EPOCH=${env} is not a number of seconds`);
    const sec = Number(env);
    return () => ({ sec, nsec: 0 });
  }
  return () => fromMs(Date.now());
}

/** Whether the clock was fixed by the caller or the environment (then random values are seeded too). */
export function isReproducible(now?: NowOption): boolean {
  return now !== undefined || sourceDateEpoch() !== undefined;
}
