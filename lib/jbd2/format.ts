/**
 * jbd2 on-disk format (spec: shared/spec/jbd2.md §2–§8). Every structure is
 * declared once with defineStruct; all fields are big-endian. Every journal
 * checksum (superblock, descriptor/revoke tail, commit block, data-block tags,
 * and the legacy v1 crc32 transaction checksum) is computed in this module and
 * nowhere else.
 *
 * Conventions: a "journal block n" is logical block n of the journal inode;
 * block 0 holds the journal superblock (first 1024 bytes of the block).
 */
import { defineStruct, type Decoded } from '../codec/layout.js';
import { crc32c } from '../codec/crc.js';
import { Ext4Error, type Location } from '../errors.js';

export const JBD2_MAGIC = 0xc03b3998;
export const JSB_SIZE = 1024;
/** e2fsck/kernel JBD2_MIN_JOURNAL_BLOCKS. */
export const JBD2_MIN_JOURNAL_BLOCKS = 1024;
export const JBD2_DEFAULT_FAST_COMMIT_BLOCKS = 256;

export const BLOCKTYPE = {
  DESCRIPTOR: 1,
  COMMIT: 2,
  SUPERBLOCK_V1: 3,
  SUPERBLOCK_V2: 4,
  REVOKE: 5,
  FAST_COMMIT: 6,
} as const;

export const JCOMPAT = { CHECKSUM: 0x1 } as const;
export const JINCOMPAT = {
  REVOKE: 0x1,
  '64BIT': 0x2,
  ASYNC_COMMIT: 0x4,
  CSUM_V2: 0x8,
  CSUM_V3: 0x10,
  FAST_COMMIT: 0x20,
} as const;
export const JINCOMPAT_KNOWN = 0x3f;
/** No ro_compat journal feature is defined; e2fsck refuses any. */
export const JRO_COMPAT_KNOWN = 0;

export const TAG_FLAG = { ESCAPE: 0x1, SAME_UUID: 0x2, DELETED: 0x4, LAST_TAG: 0x8 } as const;

/** Commit-block checksum types (v1 transactional checksum only). */
export const CHKSUM_TYPE = { CRC32: 1, MD5: 2, SHA1: 3, CRC32C: 4 } as const;
export const CRC32_CHKSUM_SIZE = 4;

// ---------------------------------------------------------------------------
// Layouts (spec tables §2–§6)
// ---------------------------------------------------------------------------

/** §2 common 12-byte header of every journal metadata block. */
export const JournalHeaderLayout = defineStruct('journal block header', 12, [
  ['h_magic', 0x0, 'u32be'],
  ['h_blocktype', 0x4, 'u32be'],
  ['h_sequence', 0x8, 'u32be'],
] as const);
export type JournalHeader = ReturnType<typeof JournalHeaderLayout.decode>;

/** §3 journal superblock (the header at 0x0 is JournalHeaderLayout). */
const JSB_ROWS = [
  ['s_blocksize', 0x00c, 'u32be'],
  ['s_maxlen', 0x010, 'u32be'],
  ['s_first', 0x014, 'u32be'],
  ['s_sequence', 0x018, 'u32be'],
  ['s_start', 0x01c, 'u32be'],
  ['s_errno', 0x020, 'u32be'], // __s32 on disk; JournalSuperblock.errno gives the signed value
  ['s_feature_compat', 0x024, 'u32be'],
  ['s_feature_incompat', 0x028, 'u32be'],
  ['s_feature_ro_compat', 0x02c, 'u32be'],
  ['s_uuid', 0x030, 'bytes', 16],
  ['s_nr_users', 0x040, 'u32be'],
  ['s_dynsuper', 0x044, 'u32be'],
  ['s_max_transaction', 0x048, 'u32be'],
  ['s_max_trans_data', 0x04c, 'u32be'],
  ['s_checksum_type', 0x050, 'u8'],
  ['s_num_fc_blks', 0x054, 'u32be'],
  ['s_head', 0x058, 'u32be'],
  ['s_checksum', 0x0fc, 'u32be'],
  ['s_users', 0x100, 'bytes', 768],
] as const;
export const JournalSuperblockLayout = defineStruct('journal superblock', JSB_SIZE, JSB_ROWS);
export type JournalSuperblockFields = Decoded<typeof JSB_ROWS>;
/** A v1 superblock has no valid field after s_errno. */
export const JSB_V1_SIZE = 0x24;

/** §4.1 tag formats. Flags are always readable as the u16 at offset 6. */
export const Tag3Layout = defineStruct('journal tag (csum v3)', 16, [
  ['t_blocknr', 0x0, 'u32be'],
  ['t_flags', 0x4, 'u32be'],
  ['t_blocknr_high', 0x8, 'u32be'],
  ['t_checksum', 0xc, 'u32be'],
] as const);
export const TagCsum2x64Layout = defineStruct('journal tag (csum v2, 64bit)', 14, [
  ['t_blocknr', 0x0, 'u32be'],
  ['t_checksum', 0x4, 'u16be'],
  ['t_flags', 0x6, 'u16be'],
  ['t_blocknr_high', 0x8, 'u32be'],
] as const);
export const TagCsum2x32Layout = defineStruct('journal tag (csum v2, 32bit)', 10, [
  ['t_blocknr', 0x0, 'u32be'],
  ['t_checksum', 0x4, 'u16be'],
  ['t_flags', 0x6, 'u16be'],
] as const);
export const Tag64Layout = defineStruct('journal tag (64bit)', 12, [
  ['t_blocknr', 0x0, 'u32be'],
  ['t_flags', 0x6, 'u16be'],
  ['t_blocknr_high', 0x8, 'u32be'],
] as const);
export const Tag32Layout = defineStruct('journal tag (32bit)', 8, [
  ['t_blocknr', 0x0, 'u32be'],
  ['t_flags', 0x6, 'u16be'],
] as const);

/** §5 revoke block header after the common header. */
export const RevokeHeaderLayout = defineStruct('journal revoke header', 16, [['r_count', 0xc, 'u32be']] as const);
/** §5 revoke records after the header: a be32 block number, or a be64 one with 64BIT (two exact halves). */
export const RevokeRecord32Layout = defineStruct('journal revoke record (32bit)', 4, [['r_blocknr', 0x0, 'u32be']] as const);
export const RevokeRecord64Layout = defineStruct('journal revoke record (64bit)', 8, [
  ['r_blocknr_high', 0x0, 'u32be'],
  ['r_blocknr', 0x4, 'u32be'],
] as const);

/** Revoke record size for a feature set. */
export function revokeRecordSize(incompat: number): 4 | 8 {
  return incompat & JINCOMPAT['64BIT'] ? 8 : 4;
}

/** Decode the revoke record at `off` (exact, as a bigint). */
export function decodeRevokeRecord(incompat: number, block: Uint8Array, off: number): bigint {
  if (revokeRecordSize(incompat) === 4) return BigInt(RevokeRecord32Layout.decode(block, off).r_blocknr);
  const r = RevokeRecord64Layout.decode(block, off);
  return (BigInt(r.r_blocknr_high) << 32n) | BigInt(r.r_blocknr);
}

/** Encode a revoke record for fs block `fsBlock` at `off`. */
export function encodeRevokeRecord(incompat: number, block: Uint8Array, off: number, fsBlock: number): void {
  if (revokeRecordSize(incompat) === 4) RevokeRecord32Layout.encode({ r_blocknr: fsBlock >>> 0 }, block, off);
  else RevokeRecord64Layout.encode({ r_blocknr_high: Math.floor(fsBlock / 2 ** 32), r_blocknr: fsBlock % 2 ** 32 }, block, off);
}

/**
 * The head of the fast-commit area (ext4's struct ext4_fc_tl + ext4_fc_head,
 * little-endian: written by ext4, not jbd2). Recovery only looks whether one
 * is there for the transaction that follows the log.
 */
export const FastCommitHeadLayout = defineStruct('fast commit head', 12, [
  ['fc_tag', 0x0, 'u16'],
  ['fc_len', 0x2, 'u16'],
  ['fc_features', 0x4, 'u32'],
  ['fc_tid', 0x8, 'u32'],
] as const);
/** EXT4_FC_TAG_HEAD. */
export const FC_TAG_HEAD = 9;

/** §6 commit block after the common header. h_commit_sec is a u64 split in two u32 halves (exact compare). */
export const CommitHeaderLayout = defineStruct('journal commit block', 0x3c, [
  ['h_chksum_type', 0x0c, 'u8'],
  ['h_chksum_size', 0x0d, 'u8'],
  ['h_chksum0', 0x10, 'u32be'],
  ['h_commit_sec_hi', 0x30, 'u32be'],
  ['h_commit_sec_lo', 0x34, 'u32be'],
  ['h_commit_nsec', 0x38, 'u32be'],
] as const);

/** §4/§5 checksum tail of descriptor and revoke blocks (at block_size − 4). */
export const BlockTailLayout = defineStruct('journal block tail', 4, [['t_checksum', 0x0, 'u32be']] as const);
export const BLOCK_TAIL_SIZE = BlockTailLayout.size;
export const UUID_SIZE = 16;

// ---------------------------------------------------------------------------
// Tag formats
// ---------------------------------------------------------------------------

export type TagFormatName = 'tag3' | 'csum2-64' | 'csum2-32' | 'plain-64' | 'plain-32';

export interface TagFormat {
  name: TagFormatName;
  /** journal_tag_bytes(): bytes per tag (without the optional UUID). */
  size: number;
  /** Width of the per-tag data checksum: 32 (v3), 16 (v2), 0 (none). */
  csumBits: 0 | 16 | 32;
  /** Tags carry t_blocknr_high. */
  is64: boolean;
}

const TAG_FORMATS: Record<TagFormatName, TagFormat> = {
  tag3: { name: 'tag3', size: Tag3Layout.size, csumBits: 32, is64: true },
  'csum2-64': { name: 'csum2-64', size: TagCsum2x64Layout.size, csumBits: 16, is64: true },
  'csum2-32': { name: 'csum2-32', size: TagCsum2x32Layout.size, csumBits: 16, is64: false },
  'plain-64': { name: 'plain-64', size: Tag64Layout.size, csumBits: 0, is64: true },
  'plain-32': { name: 'plain-32', size: Tag32Layout.size, csumBits: 0, is64: false },
};

/** journal_tag_bytes() for a feature set. With CSUM_V3 the tag is 16 bytes whether or not 64BIT is set. */
export function tagFormatFor(incompat: number): TagFormat {
  const is64 = (incompat & JINCOMPAT['64BIT']) !== 0;
  if (incompat & JINCOMPAT.CSUM_V3) return { ...TAG_FORMATS.tag3, is64 };
  if (incompat & JINCOMPAT.CSUM_V2) return is64 ? TAG_FORMATS['csum2-64'] : TAG_FORMATS['csum2-32'];
  return is64 ? TAG_FORMATS['plain-64'] : TAG_FORMATS['plain-32'];
}

export interface Tag {
  /** Target fs block (t_blocknr | t_blocknr_high << 32 when 64BIT), exact as a bigint. */
  block: bigint;
  /** The 16 flag bits at offset 6 (what recovery looks at). */
  flags: number;
  /** Stored data checksum (0 when the format has none). */
  checksum: number;
}

/** Decode one tag at `off`. The caller guarantees off + fmt.size ≤ block.length. */
export function decodeTag(fmt: TagFormat, block: Uint8Array, off: number): Tag {
  let lo: number, hi = 0, flags: number, checksum = 0;
  switch (fmt.name) {
    case 'tag3': {
      const t = Tag3Layout.decode(block, off);
      lo = t.t_blocknr; hi = t.t_blocknr_high; flags = t.t_flags & 0xffff; checksum = t.t_checksum;
      break;
    }
    case 'csum2-64': {
      const t = TagCsum2x64Layout.decode(block, off);
      lo = t.t_blocknr; hi = t.t_blocknr_high; flags = t.t_flags; checksum = t.t_checksum;
      break;
    }
    case 'csum2-32': {
      const t = TagCsum2x32Layout.decode(block, off);
      lo = t.t_blocknr; flags = t.t_flags; checksum = t.t_checksum;
      break;
    }
    case 'plain-64': {
      const t = Tag64Layout.decode(block, off);
      lo = t.t_blocknr; hi = t.t_blocknr_high; flags = t.t_flags;
      break;
    }
    case 'plain-32': {
      const t = Tag32Layout.decode(block, off);
      lo = t.t_blocknr; flags = t.t_flags;
      break;
    }
  }
  const block64 = fmt.is64 ? (BigInt(hi) << 32n) | BigInt(lo) : BigInt(lo);
  return { block: block64, flags, checksum };
}

/** Encode one tag at `off` (bytes of the tag slot not covered by the layout are left as they are). */
export function encodeTag(fmt: TagFormat, block: Uint8Array, off: number, fsBlock: number, flags: number, checksum: number): void {
  const lo = fsBlock % 2 ** 32;
  const hi = fmt.is64 ? Math.floor(fsBlock / 2 ** 32) : 0;
  switch (fmt.name) {
    case 'tag3':
      Tag3Layout.encode({ t_blocknr: lo, t_flags: flags, t_blocknr_high: hi, t_checksum: checksum >>> 0 }, block, off);
      break;
    case 'csum2-64':
      TagCsum2x64Layout.encode({ t_blocknr: lo, t_checksum: checksum & 0xffff, t_flags: flags, t_blocknr_high: hi }, block, off);
      break;
    case 'csum2-32':
      TagCsum2x32Layout.encode({ t_blocknr: lo, t_checksum: checksum & 0xffff, t_flags: flags }, block, off);
      break;
    case 'plain-64':
      Tag64Layout.encode({ t_blocknr: lo, t_flags: flags, t_blocknr_high: hi }, block, off);
      break;
    case 'plain-32':
      Tag32Layout.encode({ t_blocknr: lo, t_flags: flags }, block, off);
      break;
  }
}

/** §4 a logged block that starts with the jbd2 magic is stored escaped (magic zeroed, ESCAPE flag in its tag). */
export function needsEscape(block: Uint8Array): boolean {
  return JournalHeaderLayout.decode(block).h_magic === JBD2_MAGIC;
}

/** Zero the magic of a logged block (in place) or put it back on replay; the rest of the block is untouched. */
export function setLoggedMagic(block: Uint8Array, escaped: boolean): void {
  const h = JournalHeaderLayout.decode(block);
  JournalHeaderLayout.encode({ ...h, h_magic: escaped ? 0 : JBD2_MAGIC }, block);
}

// ---------------------------------------------------------------------------
// Checksums (§7) — the only place journal checksums are computed
// ---------------------------------------------------------------------------

const ZERO4 = new Uint8Array(4);

/** The transaction id as the tag checksum hashes it (cpu_to_be32(sequence)). */
const TagSequenceLayout = defineStruct('journal tag checksum sequence', 4, [['sequence', 0x0, 'u32be']] as const);

function be32bytes(n: number): Uint8Array {
  const b = new Uint8Array(4);
  TagSequenceLayout.encode({ sequence: n >>> 0 }, b);
  return b;
}

/** crc32c over `data` with the 4 bytes at `at` taken as zero. */
function crc32cHole(seed: number, data: Uint8Array, at: number): number {
  let c = crc32c(seed, data, 0, at);
  c = crc32c(c, ZERO4);
  return crc32c(c, data, at + 4, data.length);
}

/** j_csum_seed = crc32c(~0, s_uuid). */
export function journalSeed(uuid: Uint8Array): number {
  return crc32c(0xffffffff, uuid);
}

/** Journal superblock checksum: crc32c(~0, first 1024 bytes with s_checksum = 0) — not seeded with the uuid. */
export function jsbChecksum(jsb1024: Uint8Array): number {
  return crc32cHole(0xffffffff, jsb1024.subarray(0, JSB_SIZE), JournalSuperblockLayout.offsetOf('s_checksum'));
}

/** Descriptor / revoke block tail checksum: crc32c(seed, whole block with the tail zeroed). */
export function blockTailChecksum(seed: number, block: Uint8Array): number {
  return crc32cHole(seed, block, block.length - BLOCK_TAIL_SIZE);
}

export function readBlockTail(block: Uint8Array): number {
  return BlockTailLayout.decode(block, block.length - BLOCK_TAIL_SIZE).t_checksum;
}

export function setBlockTail(seed: number, block: Uint8Array): void {
  BlockTailLayout.encode({ t_checksum: blockTailChecksum(seed, block) }, block, block.length - BLOCK_TAIL_SIZE);
}

/** Commit block checksum: crc32c(seed, whole block with h_chksum[0] zeroed). */
export function commitChecksum(seed: number, block: Uint8Array): number {
  return crc32cHole(seed, block, CommitHeaderLayout.offsetOf('h_chksum0'));
}

/** Data-block tag checksum (v2 stores the low 16 bits): crc32c(crc32c(seed, be32(tid)), logged bytes). */
export function tagChecksum(seed: number, tid: number, logged: Uint8Array): number {
  return crc32c(crc32c(seed, be32bytes(tid)), logged);
}

// Legacy COMPAT_CHECKSUM (v1): the kernel's crc32_be (poly 0x04C11DB7, MSB first, no inversions).
const CRC32_BE_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32Be(seed: number, data: Uint8Array): number {
  let c = seed >>> 0;
  for (let i = 0; i < data.length; i++) c = ((c << 8) ^ CRC32_BE_TABLE[((c >>> 24) ^ data[i]!) & 0xff]!) >>> 0;
  return c >>> 0;
}

// ---------------------------------------------------------------------------
// Journal superblock
// ---------------------------------------------------------------------------

export interface JournalSuperblock extends JournalSuperblockFields {
  /** The whole journal block 0 as read (≥ 1024 bytes); unknown bytes survive a rewrite. */
  raw: Uint8Array;
  /** 1 (blocktype 3) or 2 (blocktype 4). */
  version: 1 | 2;
  /** Signed s_errno. */
  errno: number;
  /** Effective feature words: all 0 for a v1 superblock. */
  compat: number;
  incompat: number;
  roCompat: number;
  /** 0 none, 1 legacy COMPAT_CHECKSUM (crc32 in the commit block), 2 / 3 per-block crc32c. */
  csumVersion: 0 | 1 | 2 | 3;
  /** j_csum_seed (0 unless csum v2/v3). */
  seed: number;
  tagFormat: TagFormat;
  /** End of the regular log area: s_maxlen, or s_maxlen − fast-commit blocks with FAST_COMMIT. */
  last: number;
  /** Fast-commit blocks (0 without FAST_COMMIT). */
  numFcBlocks: number;
  /** Where recovery wraps: e2fsck/kernel wrap() uses j_fc_last = s_maxlen with FAST_COMMIT, else j_last = s_maxlen. */
  recoveryWrap: number;
}

export interface ParseJsbOptions {
  /** The filesystem block size; s_blocksize must equal it. */
  fsBlockSize?: number;
  /** Journal inode size in blocks; s_maxlen may not exceed it ("journal too short"). */
  journalBlocks?: number;
  /** Verify the superblock checksum (csum v2/v3). Default true. */
  verifyChecksum?: boolean;
}

/**
 * Parse and validate journal block 0 the way e2fsck_journal_load (and the
 * kernel's journal_load) do. `where` names the location for errors, e.g.
 * "journal block 0 (inode 8)". Throws EFSCORRUPTED / EFSBADCRC / EOPNOTSUPP.
 */
export function parseJournalSuperblock(bytes: Uint8Array, where: Location = { kind: 'journal-block', block: 0 }, opts: ParseJsbOptions = {}): JournalSuperblock {
  const structure = 'journal superblock';
  const bad = (msg: string) => new Ext4Error('EFSCORRUPTED', msg, { structure, location: where });
  if (bytes.length < JSB_SIZE) throw bad(`only ${bytes.length} bytes, need ${JSB_SIZE}`);
  const raw = bytes.slice();
  const h = JournalHeaderLayout.decode(raw);
  if (h.h_magic !== JBD2_MAGIC) throw bad(`bad magic 0x${h.h_magic.toString(16)} (not a jbd2 journal)`);
  let version: 1 | 2;
  switch (h.h_blocktype) {
    case BLOCKTYPE.SUPERBLOCK_V1: version = 1; break;
    case BLOCKTYPE.SUPERBLOCK_V2: version = 2; break;
    case BLOCKTYPE.DESCRIPTOR:
    case BLOCKTYPE.COMMIT:
    case BLOCKTYPE.REVOKE:
      throw bad(`block type ${h.h_blocktype} where the superblock should be`);
    default:
      throw new Ext4Error('EOPNOTSUPP', `unknown journal superblock version (block type ${h.h_blocktype})`, { structure, location: where });
  }
  const f = JournalSuperblockLayout.decode(raw);
  const compat = version === 2 ? f.s_feature_compat : 0;
  const incompat = version === 2 ? f.s_feature_incompat : 0;
  const roCompat = version === 2 ? f.s_feature_ro_compat : 0;
  if (version === 2 && f.s_nr_users > 1)
    throw new Ext4Error('EOPNOTSUPP', `journal shared by ${f.s_nr_users} filesystems is not supported`, { structure, location: where });
  if (incompat & ~JINCOMPAT_KNOWN)
    throw new Ext4Error('EOPNOTSUPP', `unknown journal incompat features 0x${((incompat & ~JINCOMPAT_KNOWN) >>> 0).toString(16)}`, { structure, location: where });
  if (roCompat & ~JRO_COMPAT_KNOWN)
    throw new Ext4Error('EOPNOTSUPP', `unknown journal ro_compat features 0x${(roCompat >>> 0).toString(16)}`, { structure, location: where });
  const v2 = (incompat & JINCOMPAT.CSUM_V2) !== 0;
  const v3 = (incompat & JINCOMPAT.CSUM_V3) !== 0;
  if (v2 && v3) throw bad('journal checksum v2 and v3 both set');
  if ((v2 || v3) && compat & JCOMPAT.CHECKSUM) throw bad('journal checksum v1 and v2/v3 both set');
  let seed = 0;
  if (v2 || v3) {
    if (f.s_checksum_type !== CHKSUM_TYPE.CRC32C) throw bad(`checksum type ${f.s_checksum_type} is not crc32c (4)`);
    if (opts.verifyChecksum !== false) {
      const want = jsbChecksum(raw);
      if (want !== f.s_checksum)
        throw new Ext4Error('EFSBADCRC', `journal superblock checksum 0x${f.s_checksum.toString(16)} != computed 0x${want.toString(16)}`, { structure, location: where });
    }
    seed = journalSeed(f.s_uuid);
  }
  if (opts.fsBlockSize !== undefined && f.s_blocksize !== opts.fsBlockSize)
    throw bad(`journal block size ${f.s_blocksize} != filesystem block size ${opts.fsBlockSize}`);
  if (f.s_blocksize < 1024 || f.s_blocksize > 65536 || (f.s_blocksize & (f.s_blocksize - 1)) !== 0)
    throw bad(`journal block size ${f.s_blocksize} is invalid`);
  if (raw.length !== JSB_SIZE && raw.length !== f.s_blocksize)
    throw bad(`journal block 0 is ${raw.length} bytes, block size is ${f.s_blocksize}`);
  if (opts.journalBlocks !== undefined && f.s_maxlen > opts.journalBlocks)
    throw bad(`journal too short: s_maxlen ${f.s_maxlen} > ${opts.journalBlocks} blocks in the journal inode`);
  if (f.s_maxlen < 2) throw bad(`s_maxlen ${f.s_maxlen} is too small`);
  // Kernel journal_load: "JBD2: Invalid start block of journal".
  if (f.s_first === 0 || f.s_first >= f.s_maxlen) throw bad(`s_first ${f.s_first} is outside the journal (s_maxlen ${f.s_maxlen})`);
  let numFcBlocks = 0;
  let last = f.s_maxlen;
  if (incompat & JINCOMPAT.FAST_COMMIT) {
    numFcBlocks = f.s_num_fc_blks !== 0 ? f.s_num_fc_blks : JBD2_DEFAULT_FAST_COMMIT_BLOCKS;
    if (f.s_maxlen - numFcBlocks < JBD2_MIN_JOURNAL_BLOCKS) throw bad(`incorrect fast commit blocks (${numFcBlocks} of ${f.s_maxlen})`);
    last = f.s_maxlen - numFcBlocks;
    if (f.s_first >= last) throw bad(`s_first ${f.s_first} is inside the fast-commit area`);
  }
  const csumVersion: 0 | 1 | 2 | 3 = v3 ? 3 : v2 ? 2 : compat & JCOMPAT.CHECKSUM ? 1 : 0;
  return {
    ...f,
    raw,
    version,
    errno: f.s_errno | 0,
    compat,
    incompat,
    roCompat,
    csumVersion,
    seed,
    tagFormat: tagFormatFor(incompat),
    last,
    numFcBlocks,
    recoveryWrap: f.s_maxlen,
  };
}

/**
 * Serialise the superblock fields over its raw block (bytes the layout does
 * not declare are preserved) and refresh s_checksum when csum v2/v3 is on.
 * A v1 superblock only gets its first 0x24 bytes rewritten. Returns the whole
 * block (as long as `raw`), ready to be written to journal block 0.
 */
export function serializeJournalSuperblock(jsb: JournalSuperblock): Uint8Array {
  const out = jsb.raw.slice();
  const f: JournalSuperblockFields = { ...jsb, s_errno: jsb.errno >>> 0 };
  if (jsb.version === 1) {
    const tmp = out.slice(0, JSB_SIZE);
    JournalSuperblockLayout.encode(f, tmp);
    out.set(tmp.subarray(0, JSB_V1_SIZE), 0);
  } else {
    JournalSuperblockLayout.encode(f, out);
  }
  JournalHeaderLayout.encode(
    { h_magic: JBD2_MAGIC, h_blocktype: jsb.version === 1 ? BLOCKTYPE.SUPERBLOCK_V1 : BLOCKTYPE.SUPERBLOCK_V2, h_sequence: 0 },
    out,
  );
  if (jsb.version === 2 && jsb.csumVersion >= 2) {
    const c = jsbChecksum(out);
    JournalSuperblockLayout.encode({ ...f, s_checksum: c }, out);
    jsb.s_checksum = c;
  }
  jsb.raw = out;
  return out;
}

/** Re-derive the computed fields after changing feature words of a parsed superblock (e.g. setting REVOKE). */
export function refreshJournalSuperblock(jsb: JournalSuperblock): JournalSuperblock {
  const bytes = serializeJournalSuperblock(jsb);
  return parseJournalSuperblock(bytes, { kind: 'journal-block', block: 0, role: 'in memory' }, { verifyChecksum: false });
}

/** u32 sequence arithmetic (tid_gt / tid_geq in jbd2). */
export function tidGt(x: number, y: number): boolean {
  return ((x - y) | 0) > 0;
}
export function tidGeq(x: number, y: number): boolean {
  return ((x - y) | 0) >= 0;
}
export function tidAdd(x: number, n: number): number {
  return (x + n) >>> 0;
}
