/**
 * What the core needs from the machine it runs on, injected so that lib/ext4, lib/jbd2 and
 * lib/ops import no `node:*` module and run unchanged in a browser:
 *
 *   hostname      the node name MMP writes into the block it holds (e2fsprogs: gethostname),
 *                 so that another host's refusal names us;
 *   randomValues  a CSPRNG (new MMP sequences, i_generation of new inodes).
 *
 * The clock is `OpenOptions.now` (clock.ts); uncached reads for MMP are
 * `BlockDevice.readUncached`. The defaults use only what browsers and Node ≥ 20 both have
 * (`crypto.getRandomValues`) and a fixed node name; `ext4kit/node` passes `os.hostname()`.
 */
import { Ext4Error } from '../errors.js';

export interface Platform {
  /** Node name written into the MMP block (at most 64 bytes are kept). */
  hostname(): string;
  /** Fill `out` with cryptographically strong random values and return it (Web Crypto's contract). */
  randomValues(out: Uint32Array): Uint32Array;
}

/** The node name a platform without one writes into the MMP block. */
export const DEFAULT_HOSTNAME = 'ext4kit';

type WebCrypto = { getRandomValues?: <T extends ArrayBufferView>(a: T) => T };

function webRandomValues(out: Uint32Array): Uint32Array {
  const c = (globalThis as { crypto?: WebCrypto }).crypto;
  if (!c?.getRandomValues)
    throw new Ext4Error('EOPNOTSUPP', 'no crypto.getRandomValues on this platform: pass OpenOptions.platform.randomValues, or open with a fixed `now` for deterministic values');
  return c.getRandomValues(out);
}

/** Works wherever Web Crypto does (browsers, workers, Node ≥ 20, Deno, Bun). */
export const defaultPlatform: Platform = Object.freeze({
  hostname: () => DEFAULT_HOSTNAME,
  randomValues: webRandomValues,
});

/** `p` with the defaults filled in. */
export function resolvePlatform(p?: Partial<Platform>): Platform {
  if (!p) return defaultPlatform;
  return { hostname: p.hostname ?? defaultPlatform.hostname, randomValues: p.randomValues ?? defaultPlatform.randomValues };
}
