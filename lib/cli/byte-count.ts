/**
 * The byte counts the CLI takes (`--from 64M`, `--len 0x1000`): decimal or 0x hex, optionally
 * with a binary suffix K, M, G, T (`k`, `KiB`, `kb` alike). Without commander, so the fast path
 * (fast-path.ts) validates a value exactly as commander's parser (free.ts parseBytes) does.
 */

/** The count `value` names, or the reason it names none (commander's InvalidArgumentError text). */
export function readByteCount(value: string): number | string {
  const m = /^(0x[0-9a-f]+|\d+)([kmgt]i?b?)?$/i.exec(value.trim());
  if (!m) return `"${value}" is not a byte count (e.g. 4096, 0x1000, 64M, 4G)`;
  const base = Number(m[1]);
  const unit = m[2] ? 1024 ** ('kmgt'.indexOf(m[2][0]!.toLowerCase()) + 1) : 1;
  const v = base * unit;
  if (!Number.isSafeInteger(v)) return `"${value}" is too large`;
  return v;
}

