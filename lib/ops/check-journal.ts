/**
 * The journal part of the check (e2fsck_check_ext3_journal): the journal inode
 * must be a regular file with links, at least JBD2_MIN_JOURNAL_BLOCKS long and
 * mapped to its end; its superblock must parse the way e2fsck_journal_load and
 * the kernel's journal_load accept it (magic, block type, features, checksum,
 * block size, s_maxlen within the inode, s_first inside the log); and a log
 * with data (s_start ≠ 0) or an error (s_errno) needs the needs_recovery flag.
 */
import type { Filesystem } from '../ext4/filesystem.js';
import { describeLocation, isExt4Error } from '../errors.js';
import { COMPAT, INCOMPAT } from '../ext4/superblock.js';
import { INODE_FLAGS } from '../ext4/inode.js';
import { JBD2_MIN_JOURNAL_BLOCKS, parseJournalSuperblock } from '../jbd2/format.js';
import type { CheckProblem } from './check-problem.js';

export async function checkJournal(fs: Filesystem): Promise<CheckProblem[]> {
  const sb = fs.sb;
  const out: CheckProblem[] = [];
  const has = (sb.s_feature_compat & COMPAT.HAS_JOURNAL) !== 0;
  const recover = (sb.s_feature_incompat & INCOMPAT.RECOVER) !== 0;
  const jino = sb.s_journal_inum;
  const external = sb.s_journal_uuid.some((b) => b !== 0);
  const structure = `inode ${jino} (journal)`;
  const bad = (location: string, message: string, code: CheckProblem['code'] = 'EFSCORRUPTED', s = structure) => out.push({ pass: 0, code, structure: s, location, message });
  if (!has) {
    if (jino) bad('superblock', `s_journal_inum ${jino} is set but the has_journal feature is not`, 'EFSCORRUPTED', 'superblock');
    if (recover) bad('superblock', 'needs_recovery is set without a journal', 'EFSCORRUPTED', 'superblock');
    return out;
  }
  if (external) {
    // An external journal (s_journal_uuid) has no journal inode; both set is a damaged superblock,
    // and e2fsck goes looking for a device that is not there.
    if (jino) bad('superblock', `both an external journal (s_journal_uuid) and a journal inode (${jino}) are set`, 'EFSCORRUPTED', 'superblock');
    return out; // the journal device is not ours to read
  }
  if (!jino || jino > sb.s_inodes_count) {
    bad('superblock', `journal inode number ${jino} is invalid`, 'EFSCORRUPTED', 'superblock');
    return out;
  }
  let inode;
  try {
    inode = await fs.readInode(jino);
  } catch (e) {
    if (!isExt4Error(e)) throw e;
    bad(describeLocation(e.location) ?? 'inode', e.message, e.code);
    return out;
  }
  if (!inode.linksCount || inode.type !== 'file' || inode.flags & INODE_FLAGS.ENCRYPT) {
    bad('i_mode', `the journal inode is not a regular file with links (mode 0${inode.mode.toString(8)}, links ${inode.linksCount})`);
    return out;
  }
  const bs = fs.blockSize;
  const blocks = Math.floor(inode.size / bs);
  if (blocks < JBD2_MIN_JOURNAL_BLOCKS) bad('i_size', `journal of ${blocks} blocks is smaller than the minimum ${JBD2_MIN_JOURNAL_BLOCKS}`);
  let map;
  try {
    map = await fs.fileMap(inode);
  } catch (e) {
    if (!isExt4Error(e)) throw e;
    bad(describeLocation(e.location) ?? 'block map', e.message, e.code);
    return out;
  }
  let mapped = 0;
  for (const e of map.extents) mapped = Math.max(mapped, e.logical + e.length);
  if (mapped * bs < inode.size) bad('block map', `the journal maps ${mapped} blocks, i_size needs ${Math.ceil(inode.size / bs)}`);
  const first = map.extents.find((e) => e.logical === 0);
  if (!first) {
    bad('block map', 'journal block 0 is not mapped');
    return out;
  }
  let jsb;
  try {
    const block0 = await fs.readBlock(first.physical);
    jsb = parseJournalSuperblock(block0, { kind: 'journal-block', block: 0, role: `block ${first.physical}` }, { fsBlockSize: bs, journalBlocks: Math.min(blocks, mapped) });
  } catch (e) {
    if (!isExt4Error(e)) throw e;
    out.push({ pass: 0, code: e.code, structure: e.structure ?? 'journal superblock', location: describeLocation(e.location) ?? 'journal block 0', message: e.message });
    return out;
  }
  if (!recover && jsb.s_start !== 0) bad('journal superblock', `needs_recovery is clear, but the journal has data (s_start ${jsb.s_start})`, 'EFSCORRUPTED', 'journal superblock');
  if (!recover && jsb.errno !== 0) bad('journal superblock', `the journal was aborted (s_errno ${jsb.errno})`, 'EFSCORRUPTED', 'journal superblock');
  return out;
}
