/**
 * Feature names (as dumpe2fs / lib/e2p print them) and ext4kit's policy for
 * each bit: what we can read, what we can write, what we refuse
 * (ext4-format.md §3). Unknown INCOMPAT → refuse; unknown RO_COMPAT or COMPAT
 * → read-only.
 */
import { COMPAT, INCOMPAT, RO_COMPAT, type Superblock } from './superblock.js';
import { Ext4Error } from '../errors.js';

type Kind = 'compat' | 'incompat' | 'ro_compat';
interface FeatureDef {
  kind: Kind;
  bit: number;
  name: string;
  /**
   * 'rw': read and write; 'ro': read only (writing is EROFS: the image says
   * so, or writing would break what we do not maintain); 'read': we read it
   * but our writer does not implement it (writing is EOPNOTSUPP); 'refuse':
   * cannot open.
   */
  policy: 'rw' | 'ro' | 'read' | 'refuse';
  why?: string;
}

const F = (kind: Kind, bit: number, name: string, policy: FeatureDef['policy'], why?: string): FeatureDef => ({ kind, bit, name, policy, why });

export const FEATURES: readonly FeatureDef[] = [
  F('compat', COMPAT.DIR_PREALLOC, 'dir_prealloc', 'rw'),
  F('compat', COMPAT.IMAGIC_INODES, 'imagic_inodes', 'rw'),
  F('compat', COMPAT.HAS_JOURNAL, 'has_journal', 'rw'),
  F('compat', COMPAT.EXT_ATTR, 'ext_attr', 'rw'),
  F('compat', COMPAT.RESIZE_INODE, 'resize_inode', 'rw'),
  F('compat', COMPAT.DIR_INDEX, 'dir_index', 'rw'),
  F('compat', COMPAT.LAZY_BG, 'lazy_bg', 'refuse', 'obsolete lazy_bg layout'),
  F('compat', COMPAT.EXCLUDE_BITMAP, 'snapshot_bitmap', 'refuse', 'out-of-tree snapshot format'),
  F('compat', COMPAT.SPARSE_SUPER2, 'sparse_super2', 'rw'),
  F('compat', COMPAT.FAST_COMMIT, 'fast_commit', 'ro', 'fast-commit area is not written by ext4kit'),
  F('compat', COMPAT.STABLE_INODES, 'stable_inodes', 'rw'),
  F('compat', COMPAT.ORPHAN_FILE, 'orphan_file', 'rw'),
  F('incompat', INCOMPAT.COMPRESSION, 'compression', 'refuse', 'compression was never part of ext4'),
  F('incompat', INCOMPAT.FILETYPE, 'filetype', 'rw'),
  F('incompat', INCOMPAT.RECOVER, 'needs_recovery', 'rw'),
  F('incompat', INCOMPAT.JOURNAL_DEV, 'journal_dev', 'refuse', 'this is an external journal device, not a filesystem'),
  F('incompat', INCOMPAT.META_BG, 'meta_bg', 'rw'),
  F('incompat', INCOMPAT.EXTENTS, 'extent', 'rw'),
  F('incompat', INCOMPAT['64BIT'], '64bit', 'rw'),
  F('incompat', INCOMPAT.MMP, 'mmp', 'rw'),
  F('incompat', INCOMPAT.FLEX_BG, 'flex_bg', 'rw'),
  F('incompat', INCOMPAT.EA_INODE, 'ea_inode', 'rw'),
  F('incompat', INCOMPAT.DIRDATA, 'dirdata', 'refuse', 'Lustre dirdata entries are not supported'),
  F('incompat', INCOMPAT.CSUM_SEED, 'metadata_csum_seed', 'rw'),
  F('incompat', INCOMPAT.LARGEDIR, 'large_dir', 'rw'),
  F('incompat', INCOMPAT.INLINE_DATA, 'inline_data', 'rw'),
  F('incompat', INCOMPAT.ENCRYPT, 'encrypt', 'rw'),
  F('incompat', INCOMPAT.CASEFOLD, 'casefold', 'rw'),
  F('ro_compat', RO_COMPAT.SPARSE_SUPER, 'sparse_super', 'rw'),
  F('ro_compat', RO_COMPAT.LARGE_FILE, 'large_file', 'rw'),
  F('ro_compat', RO_COMPAT.BTREE_DIR, 'btree_dir', 'refuse', 'never-implemented btree directories'),
  F('ro_compat', RO_COMPAT.HUGE_FILE, 'huge_file', 'rw'),
  F('ro_compat', RO_COMPAT.GDT_CSUM, 'uninit_bg', 'rw'),
  F('ro_compat', RO_COMPAT.DIR_NLINK, 'dir_nlink', 'rw'),
  F('ro_compat', RO_COMPAT.EXTRA_ISIZE, 'extra_isize', 'rw'),
  F('ro_compat', RO_COMPAT.HAS_SNAPSHOT, 'snapshot', 'refuse', 'out-of-tree snapshot format'),
  F('ro_compat', RO_COMPAT.QUOTA, 'quota', 'ro', 'quota files would need updating when block counts change'),
  F('ro_compat', RO_COMPAT.BIGALLOC, 'bigalloc', 'read', 'writing bigalloc (cluster allocation) filesystems is not supported'),
  F('ro_compat', RO_COMPAT.METADATA_CSUM, 'metadata_csum', 'rw'),
  F('ro_compat', RO_COMPAT.REPLICA, 'replica', 'refuse', 'out-of-tree replica format'),
  F('ro_compat', RO_COMPAT.READONLY, 'read-only', 'ro', 'the filesystem is marked read-only'),
  F('ro_compat', RO_COMPAT.PROJECT, 'project', 'ro', 'project quota would need updating when block counts change'),
  F('ro_compat', RO_COMPAT.SHARED_BLOCKS, 'shared_blocks', 'ro', 'blocks may be shared between files'),
  F('ro_compat', RO_COMPAT.VERITY, 'verity', 'rw'),
  F('ro_compat', RO_COMPAT.ORPHAN_PRESENT, 'orphan_present', 'rw'),
];

function fieldOf(sb: Superblock, kind: Kind): number {
  return kind === 'compat' ? sb.s_feature_compat : kind === 'incompat' ? sb.s_feature_incompat : sb.s_feature_ro_compat;
}

const LETTER: Record<Kind, string> = { compat: 'C', incompat: 'I', ro_compat: 'R' };

/** Every set bit of the three feature words, with its definition (undefined when unknown). */
function* setFeatureBits(sb: Superblock): Generator<{ kind: Kind; bit: number; def: FeatureDef | undefined; name: string }> {
  for (const kind of ['compat', 'incompat', 'ro_compat'] as const) {
    const v = fieldOf(sb, kind);
    for (let bit = 0; bit < 32; bit++) {
      const mask = 2 ** bit;
      if ((v & mask) === 0) continue;
      const def = FEATURES.find((d) => d.kind === kind && d.bit === mask);
      yield { kind, bit, def, name: def ? def.name : `FEATURE_${LETTER[kind]}${bit}` };
    }
  }
}

/** Feature names in dumpe2fs order (compat, incompat, ro_compat; by bit), unknown bits as FEATURE_Xn. */
export function featureNames(sb: Superblock): string[] {
  return [...setFeatureBits(sb)].map((f) => f.name);
}

export function hasFeature(sb: Superblock, name: string): boolean {
  const def = FEATURES.find((d) => d.name === name);
  if (!def) throw new Ext4Error('EINVAL', `unknown feature name ${name}`);
  return (fieldOf(sb, def.kind) & def.bit) !== 0;
}

export interface FeatureVerdict {
  /** Reasons the filesystem cannot be opened at all (empty if it can). */
  refuse: string[];
  /** Reasons it can only be opened read-only (every 'ro' and 'read' feature). */
  readOnly: string[];
  /** The subset of readOnly that our writer does not implement: opening for write is EOPNOTSUPP. */
  unsupportedWrite: string[];
}

export function judgeFeatures(sb: Superblock): FeatureVerdict {
  const refuse: string[] = [];
  const readOnly: string[] = [];
  const unsupportedWrite: string[] = [];
  for (const { kind, def, name } of setFeatureBits(sb)) {
    if (!def) (kind === 'incompat' ? refuse : readOnly).push(`unknown ${kind} feature ${name}`);
    else if (def.policy === 'refuse') refuse.push(`${def.name}: ${def.why}`);
    else if (def.policy === 'ro') readOnly.push(`${def.name}: ${def.why}`);
    else if (def.policy === 'read') {
      readOnly.push(`${def.name}: ${def.why}`);
      unsupportedWrite.push(`${def.name}: ${def.why}`);
    }
  }
  if (sb.s_creator_os === 1) refuse.push('created by the Hurd (different inode layout)');
  return { refuse, readOnly, unsupportedWrite };
}

/**
 * Throws EOPNOTSUPP naming every feature that prevents opening — and, when
 * opening for write, every feature our writer does not implement (bigalloc),
 * before anything is written.
 */
export function assertOpenable(sb: Superblock, opts: { write?: boolean } = {}): void {
  const { refuse, unsupportedWrite } = judgeFeatures(sb);
  if (refuse.length) throw new Ext4Error('EOPNOTSUPP', `cannot open: ${refuse.join('; ')}`, { structure: 'superblock', location: { kind: 'field', field: 'features' } });
  if (opts.write && unsupportedWrite.length)
    throw new Ext4Error('EOPNOTSUPP', `cannot open for writing: ${unsupportedWrite.join('; ')}`, { structure: 'superblock', location: { kind: 'field', field: 'features' } });
}
