/**
 * xattr values kept in EA inodes (the ea_inode feature), checked as e2fsck does:
 *   pass 1 (check_large_ea_inode) — each entry naming an EA inode: the entry's e_hash is the
 *           name hash over the EA inode's stored value hash (i_atime), the named inode carries
 *           EXT4_EA_INODE_FL, and the owner's i_blocks counts the value's size in whole clusters
 *           (ea quota; an xattr block's charge counts for every inode sharing the block);
 *           every entry is one reference to its EA inode (inc_ea_inode_refs), a shared xattr
 *           block's entries once;
 *   pass 4 (check_ea_inode) — an EA inode that entries reference is attached through them
 *           (one link), and its stored reference count must equal the references found.
 */
import { isExt4Error } from '../errors.js';
import type { Filesystem } from '../ext4/filesystem.js';
import { INODE_FLAGS, type Inode } from '../ext4/inode.js';
import type { XattrEntry } from '../ext4/xattr.js';
import { eaInodeCharge, eaInodeRefs } from '../ext4/ea-inode.js';
import { xattrHashMatches } from '../ext4/xattr-hash.js';
import { le32 } from '../codec/layout.js';
import type { CheckProblem } from './check-problem.js';

/** One entry's verdict: the problem e2fsck -n reports (null: none) and the blocks it charges to the owner. */
interface EaEntryVerdict {
  problem: string | null;
  charge: number;
}

/** check_large_ea_inode for one entry of `owner` whose value lives in inode entry.valueInode. */
async function checkLargeEaInode(fs: Filesystem, owner: Inode, entry: XattrEntry): Promise<EaEntryVerdict> {
  const sb = fs.sb, inum = entry.valueInode;
  // out of range: reported by the xattr area rules (xattr-check.ts)
  if (inum < sb.s_first_ino || inum > sb.s_inodes_count) return { problem: null, charge: 0 };
  let ea: Inode;
  try {
    ea = await fs.readInode(inum);
  } catch (e) {
    // an unreadable slot (bad checksum, unreadable table) is reported where the scan meets it
    if (isExt4Error(e)) return { problem: null, charge: eaInodeCharge(sb, fs.blockSize, [entry]) };
    throw e;
  }
  const valueHash = ea.base.i_atime >>> 0; // ext2fs_get_ea_inode_hash
  const word = new Uint8Array(4);
  le32.set(word, 0, valueHash);
  // the name hash over the value hash as one word (ext2fs_ext_attr_hash_entry3), unsigned or signed-char
  const hashOk = xattrHashMatches(entry.hash, entry.suffix, word, 4);
  const isEa = (ea.flags & INODE_FLAGS.EA_INODE) !== 0;
  if (!hashOk) {
    // an old Lustre-style reference: the EA inode names its owner in i_mtime (no quota charge)
    if (ea.base.i_mtime === owner.ino && ea.base.i_generation === owner.base.i_generation) return { problem: null, charge: 0 };
    return { problem: isEa ? `has a hash (${entry.hash}) which is invalid` : `has an illegal extended attribute value inode ${inum}`, charge: 0 };
  }
  const charge = eaInodeCharge(sb, fs.blockSize, [entry]);
  if (!isEa) return { problem: `EA inode ${inum} missing EA_INODE flag`, charge };
  return { problem: null, charge };
}

/** References to EA inodes found in pass 1, and the pass-4 rules over them. */
export class EaInodeTally {
  private readonly refs = new Map<number, number>();

  /** inc_ea_inode_refs: one reference per entry naming an EA inode. */
  count(entries: readonly XattrEntry[]): void {
    for (const e of entries) if (e.valueInode) this.refs.set(e.valueInode, (this.refs.get(e.valueInode) ?? 0) + 1);
  }

  /**
   * The in-inode entries of `owner`: problems, and the blocks they charge to its i_blocks
   * (check_ea_in_inode stops adding at the first bad entry; every entry is still a reference).
   */
  async body(fs: Filesystem, owner: Inode, entries: readonly XattrEntry[], report: (p: CheckProblem) => void): Promise<number> {
    this.count(entries);
    let charge = 0;
    for (const e of entries) {
      if (!e.valueInode) continue;
      const v = await checkLargeEaInode(fs, owner, e);
      if (v.problem) {
        report({ pass: 1, code: 'EFSCORRUPTED', structure: `inode ${owner.ino}`, location: 'in-inode xattrs', message: `extended attribute ${e.name}: ${v.problem}` });
        break;
      }
      charge += v.charge;
    }
    return charge;
  }

  /** The entries of an xattr block, the first time an inode names it: problems and the block's charge. */
  async block(fs: Filesystem, owner: Inode, blk: number, entries: readonly XattrEntry[], report: (p: CheckProblem) => void): Promise<number> {
    this.count(entries);
    let charge = 0;
    for (const e of entries) {
      if (!e.valueInode) continue;
      const v = await checkLargeEaInode(fs, owner, e);
      if (v.problem) report({ pass: 1, code: 'EFSCORRUPTED', structure: 'xattr block', location: `block ${blk}`, message: `extended attribute ${e.name}: ${v.problem}` });
      charge += v.charge;
    }
    return charge;
  }

  /** References found to inode `ino` (0: none). */
  refsOf(ino: number): number {
    return this.refs.get(ino) ?? 0;
  }

  /**
   * check_ea_inode for an inode in use that no directory names: true when entries reference it
   * as an EA inode (it counts one link then); reports a stored refcount that disagrees.
   */
  attached(inode: EaInodeFacts | null, ino: number, report: (p: CheckProblem) => void): boolean {
    const found = this.refsOf(ino);
    if (!inode || found === 0) return false;
    // old Lustre EA inodes keep no refcount; their i_ctime equals i_atime
    if (inode.storedRefs !== found && !inode.ctimeIsAtime)
      report({ pass: 4, code: 'EFSCORRUPTED', structure: `inode ${ino}`, location: 'EA inode refcount', message: `extended attribute inode ${ino} ref count is ${inode.storedRefs}, should be ${found}` });
    return true;
  }
}

/** What pass 4 needs of an EA inode (kept from pass 1). */
export interface EaInodeFacts {
  storedRefs: number;
  ctimeIsAtime: boolean;
}

export function eaInodeFacts(inode: Inode): EaInodeFacts | null {
  if (!(inode.flags & INODE_FLAGS.EA_INODE)) return null;
  return { storedRefs: eaInodeRefs(inode), ctimeIsAtime: inode.base.i_ctime === inode.base.i_atime };
}
