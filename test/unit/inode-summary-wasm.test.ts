/**
 * lib/ext4/inode-summary-wasm.ts: a batch's inode checks and listing fields in one wasm call, behind
 * readInodeBatch's summary(). On random slots — checksums right and wrong, every i_extra_isize
 * case, large sizes, times with epoch bits, all-zero slots, 128/256/512-byte inodes, checksums on
 * and off, a failed run, a slot given twice — whatever the kernel answers must be what
 * inodeSummary answers, and whatever it leaves must be a case inodeSummary rejects or makes a
 * double of. The clean cases must be answered (a kernel that answered nothing would pass as JS).
 */
import { describe, expect, it } from 'vitest';
import { crc32cPortable } from '../../lib/codec/crc.js';
import { inodeSeed } from '../../lib/ext4/checksum.js';
import { InodeBaseLayout, InodeExtraLayout, inodeSummary, type InodeSummary } from '../../lib/ext4/inode.js';
import { inodeSummaryWasmBytes, summarizeInodes, SUMMARY_DONE, SUMMARY_GID, SUMMARY_LINKS, SUMMARY_MODE, SUMMARY_MTIME, SUMMARY_SIZE, SUMMARY_UID, SUMMARY_WORDS } from '../../lib/ext4/inode-summary-wasm.js';
import type { Superblock } from '../../lib/ext4/superblock.js';
import { mulberry32 } from '../../lib/io/prng.js';

const rand = mulberry32(0x1d5e);
const int = (n: number) => Math.floor(rand() * n);

/** A slot of `isz` random bytes, shaped by `kind`, its checksum right unless the kind says otherwise. */
function makeSlot(isz: number, kind: number, ino: number, fsSeed: number): Uint8Array {
  const s = new Uint8Array(isz);
  if (kind === 9) return s; // all zero: no checksum to match
  for (let i = 0; i < isz; i++) s[i] = int(256);
  const set = (layout: typeof InodeBaseLayout | typeof InodeExtraLayout, f: string, v: number) => (layout as typeof InodeBaseLayout).set(s, f as 'i_mode', v);
  if (kind !== 3) set(InodeBaseLayout, 'i_size_high', 0);
  if (isz > 128) {
    const fits = [0, 4, 8, 12, 28, 32, isz - 128][int(7)]!;
    set(InodeExtraLayout, 'i_extra_isize', kind === 2 ? [2, isz - 124, 0xfffc][int(3)]! : fits);
    if (kind !== 4) set(InodeExtraLayout, 'i_mtime_extra', (InodeExtraLayout.get(s, 'i_mtime_extra') & ~3) >>> 0);
  }
  if (kind === 1) return s; // random checksum: (almost surely) wrong
  const extra = isz > 128 ? InodeExtraLayout.get(s, 'i_extra_isize') : 0;
  const hasHi = extra >= 4 && extra <= isz - 128 && extra % 4 === 0;
  const z = s.slice();
  InodeBaseLayout.set(z, 'i_checksum_lo', 0);
  if (hasHi) InodeExtraLayout.set(z, 'i_checksum_hi', 0);
  const c = crc32cPortable(inodeSeed(fsSeed, ino, InodeBaseLayout.get(s, 'i_generation')), z);
  InodeBaseLayout.set(s, 'i_checksum_lo', c & 0xffff);
  if (hasHi) InodeExtraLayout.set(s, 'i_checksum_hi', c >>> 16);
  if (kind === 5) s[int(isz)]! ^= 1 << int(8); // one bit off
  return s;
}

describe('inode summaries in WebAssembly', () => {
  it('leaves a batch whose slot is not inside its run to inodeSummary (no read past a run)', () => {
    const run = new Uint8Array(256);
    InodeBaseLayout.set(run, 'i_mode', 0o100644, 0);
    InodeBaseLayout.set(run, 'i_links_count', 1, 0);
    // slot 0 of a 256-byte run is answered; slot 128 of 256-byte inodes would run 128 bytes past it
    expect(summarizeInodes([run], Int32Array.of(0), Float64Array.of(0), [12], 0, 256, false)?.[SUMMARY_DONE]).toBe(0);
    expect(summarizeInodes([run], Int32Array.of(0), Float64Array.of(128), [12], 0, 256, false)).toBeNull();
    expect(summarizeInodes([run], Int32Array.of(1), Float64Array.of(0), [12], 0, 256, false)).toBeNull();
  });

  it('is a valid module, and the path taken under Node', () => {
    expect(WebAssembly.validate(inodeSummaryWasmBytes())).toBe(true);
    expect(summarizeInodes([new Uint8Array(128)], Int32Array.of(0), Float64Array.of(0), [1], 0, 128, false)).not.toBeNull();
  });

  for (const isz of [128, 256, 512])
    for (const verify of [true, false])
      it(`answers as inodeSummary does: ${isz}-byte inodes, checksums ${verify ? 'on' : 'off'}`, () => {
        const sb = { s_inode_size: isz, s_inodes_per_group: 8192, hasMetadataCsum: true } as Superblock;
        const fsSeed = int(2 ** 32);
        const n = 600;
        // Slots in three runs (the middle one failed to read), at mixed offsets, one slot given twice.
        const runs = [new Uint8Array(isz * 300), new Uint8Array(0), new Uint8Array(isz * 300)];
        const run = new Int32Array(n), slot = new Float64Array(n), inos: number[] = [];
        for (let i = 0; i < n; i++) {
          const r = i === 7 ? 1 : i < 300 ? 0 : 2;
          const k = i === 8 ? 7 : i % 300;
          const ino = i === 8 ? inos[7]! : 1 + int(2 ** 31);
          run[i] = r;
          slot[i] = k * isz;
          inos.push(ino);
          // Mostly clean slots; the rest one of each hostile kind.
          if (r !== 1 && i !== 8) runs[r]!.set(makeSlot(isz, rand() < 0.5 ? 0 : int(10), ino, fsSeed), k * isz);
        }
        inos[8] = inos[7]!; // the same inode twice (a hard link): the same slot, answered the same
        slot[8] = slot[7]!;
        run[8] = 0;
        runs[0]!.set(makeSlot(isz, 0, inos[8], fsSeed), slot[8]);
        const out = summarizeInodes(runs.map((b, r) => (r === 1 ? null : b)), run, slot, inos, fsSeed, isz, verify)!;
        expect(out.length).toBe(n * SUMMARY_WORDS);
        let answered = 0;
        for (let i = 0; i < n; i++) {
          const w = i * SUMMARY_WORDS;
          let want: InodeSummary | string;
          try {
            if (run[i] === 1) throw new Error('read failed');
            want = { ...inodeSummary(sb, inos[i]!, runs[run[i]!]!, slot[i]!, { fsSeed, verifyChecksum: verify }) };
          } catch (e) {
            want = (e as Error).message;
          }
          if (out[w + SUMMARY_DONE] !== 0) {
            // Left to inodeSummary: it must throw, or give a value beyond 32 bits (size, time).
            if (typeof want !== 'string') {
              const b = runs[run[i]!]!, o = slot[i]!;
              const extra = isz > 128 ? InodeExtraLayout.get(b, 'i_extra_isize', o) : 0;
              const wide = InodeBaseLayout.get(b, 'i_size_high', o) !== 0 || (extra >= 12 && (InodeExtraLayout.get(b, 'i_mtime_extra', o) & 3) !== 0);
              expect(wide || isZero(b, o, isz), `slot ${i}: left, but inodeSummary gives 32-bit values`).toBe(true);
            }
            continue;
          }
          answered++;
          expect(typeof want, `slot ${i}: answered, but inodeSummary throws ${String(want)}`).toBe('object');
          const s = want as InodeSummary;
          expect([out[w + SUMMARY_MODE], out[w + SUMMARY_UID]! >>> 0, out[w + SUMMARY_GID]! >>> 0, out[w + SUMMARY_SIZE]! >>> 0, out[w + SUMMARY_LINKS], out[w + SUMMARY_MTIME]], `slot ${i}`).toEqual([s.mode, s.uid, s.gid, s.size, s.linksCount, s.mtime]);
        }
        expect(out[8 * SUMMARY_WORDS + SUMMARY_DONE]).toBe(out[7 * SUMMARY_WORDS + SUMMARY_DONE] === 0 ? 0 : out[8 * SUMMARY_WORDS + SUMMARY_DONE]);
        expect(out[7 * SUMMARY_WORDS + SUMMARY_DONE]).toBe(1); // the failed run
        // About half the slots are clean: those at least.
        expect(answered).toBeGreaterThan(n * 0.45);
      });
});

function isZero(b: Uint8Array, off: number, n: number): boolean {
  for (let i = off; i < off + n; i++) if (b[i] !== 0) return false;
  return true;
}
