/**
 * s_hash_seed as the directory hash uses it. The kernel declares it `__le32 s_hash_seed[4]` and
 * copies it with le32_to_cpu (ext4_fill_super), so the words are little-endian on every host —
 * never a Uint32Array over the raw bytes, which would be platform-endian.
 */
import { le32 } from '../codec/layout.js';

export function hashSeedWords(seed: Uint8Array): number[] {
  return le32.words(seed, 4);
}
