/**
 * POSIX ACLs as ext4 stores them (fs/ext4/acl.h: version 1, 4-byte entries
 * for the owner, group, mask and other, 8-byte ones with an id for named
 * users and groups) and as the xattr interface carries them
 * (include/uapi/linux/posix_acl_xattr.h: version 2, every entry 8 bytes).
 * system.posix_acl_access / _default values cross between the two here, as
 * ext4_acl_to_disk / ext4_acl_from_disk and the VFS do; plus what chmod and
 * setting an access ACL do to each other (posix_acl_chmod, posix_acl_equiv_mode).
 */
import { defineStruct } from '../codec/layout.js';
import { Ext4Error } from '../errors.js';

export const ACL_USER_OBJ = 0x01, ACL_USER = 0x02, ACL_GROUP_OBJ = 0x04, ACL_GROUP = 0x08, ACL_MASK = 0x10, ACL_OTHER = 0x20;
const EXT4_ACL_VERSION = 1;
const XATTR_ACL_VERSION = 2;
const ACL_UNDEFINED_ID = 0xffffffff;

const AclHeaderLayout = defineStruct('acl header', 4, [['a_version', 0, 'u32']] as const);
/** An entry with an id (ext4's named user/group entries; every entry of the xattr form). */
const AclEntryLayout = defineStruct('acl entry', 8, [
  ['e_tag', 0, 'u16'],
  ['e_perm', 2, 'u16'],
  ['e_id', 4, 'u32'],
] as const);
/** ext4_acl_entry_short: owner, group, mask, other. */
const AclShortEntryLayout = defineStruct('acl short entry', 4, [
  ['e_tag', 0, 'u16'],
  ['e_perm', 2, 'u16'],
] as const);

export interface AclEntry {
  tag: number;
  perm: number;
  /** uid / gid for ACL_USER / ACL_GROUP, else unused. */
  id: number;
}

const hasId = (tag: number) => tag === ACL_USER || tag === ACL_GROUP;
const TAGS = new Set([ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER]);
const bad = (why: string) => new Ext4Error('EINVAL', `POSIX ACL: ${why}`);

/** Entries of an xattr-form value (what setfacl passes to setxattr). EINVAL when malformed. */
export function aclFromXattr(v: Uint8Array): AclEntry[] {
  if (v.length < 4 || (v.length - 4) % 8) throw bad(`value of ${v.length} bytes`);
  if (AclHeaderLayout.decode(v).a_version !== XATTR_ACL_VERSION) throw bad('not version 2');
  const out: AclEntry[] = [];
  for (let off = 4; off < v.length; off += 8) {
    const e = AclEntryLayout.decode(v, off);
    if (!TAGS.has(e.e_tag)) throw bad(`unknown tag 0x${e.e_tag.toString(16)}`);
    if (e.e_perm & ~7) throw bad(`permissions 0x${e.e_perm.toString(16)}`);
    out.push({ tag: e.e_tag, perm: e.e_perm, id: hasId(e.e_tag) ? e.e_id : ACL_UNDEFINED_ID });
  }
  checkAcl(out);
  return out;
}

/** posix_acl_valid: one owner, group and other, a mask when there are named entries, sorted. */
function checkAcl(acl: readonly AclEntry[]): void {
  const count = (t: number) => acl.filter((e) => e.tag === t).length;
  if (count(ACL_USER_OBJ) !== 1 || count(ACL_GROUP_OBJ) !== 1 || count(ACL_OTHER) !== 1 || count(ACL_MASK) > 1) throw bad('needs one owner, group and other entry');
  if ((count(ACL_USER) || count(ACL_GROUP)) && !count(ACL_MASK)) throw bad('named entries need a mask');
  for (let i = 1; i < acl.length; i++) {
    const a = acl[i - 1]!, b = acl[i]!;
    if (a.tag > b.tag || (a.tag === b.tag && (!hasId(a.tag) || a.id >= b.id))) throw bad('entries out of order or repeated');
  }
}

export function aclToXattr(acl: readonly AclEntry[]): Uint8Array {
  const v = new Uint8Array(4 + 8 * acl.length);
  AclHeaderLayout.encode({ a_version: XATTR_ACL_VERSION }, v);
  acl.forEach((e, i) => AclEntryLayout.encode({ e_tag: e.tag, e_perm: e.perm, e_id: hasId(e.tag) ? e.id : ACL_UNDEFINED_ID }, v, 4 + 8 * i));
  return v;
}

/** ext4_acl_to_disk. */
export function aclToDisk(acl: readonly AclEntry[]): Uint8Array {
  const v = new Uint8Array(4 + acl.reduce((n, e) => n + (hasId(e.tag) ? 8 : 4), 0));
  AclHeaderLayout.encode({ a_version: EXT4_ACL_VERSION }, v);
  let off = 4;
  for (const e of acl) {
    if (hasId(e.tag)) AclEntryLayout.encode({ e_tag: e.tag, e_perm: e.perm, e_id: e.id }, v, off);
    else AclShortEntryLayout.encode({ e_tag: e.tag, e_perm: e.perm }, v, off);
    off += hasId(e.tag) ? 8 : 4;
  }
  return v;
}

/** ext4_acl_from_disk. EFSCORRUPTED when the stored value is malformed. */
export function aclFromDisk(v: Uint8Array, ino: number, name: string): AclEntry[] {
  const corrupt = (why: string) => new Ext4Error('EFSCORRUPTED', `${name}: ${why}`, { structure: `posix acl ${name}`, location: { kind: 'inode', ino } });
  if (v.length < 4 || AclHeaderLayout.decode(v).a_version !== EXT4_ACL_VERSION) throw corrupt('not an ext4 ACL (version 1)');
  const out: AclEntry[] = [];
  for (let off = 4; off < v.length; ) {
    if (off + 4 > v.length) throw corrupt('truncated entry');
    const s = AclShortEntryLayout.decode(v, off);
    if (!TAGS.has(s.e_tag)) throw corrupt(`unknown tag 0x${s.e_tag.toString(16)}`);
    if (hasId(s.e_tag)) {
      if (off + 8 > v.length) throw corrupt('truncated entry');
      out.push({ tag: s.e_tag, perm: s.e_perm, id: AclEntryLayout.decode(v, off).e_id });
      off += 8;
    } else {
      out.push({ tag: s.e_tag, perm: s.e_perm, id: ACL_UNDEFINED_ID });
      off += 4;
    }
  }
  return out;
}

/**
 * posix_acl_equiv_mode: the permission bits the ACL implies, and whether the
 * ACL says nothing more than those bits (then ext4 keeps no xattr for it).
 */
export function aclModeBits(acl: readonly AclEntry[]): { mode: number; equivalent: boolean } {
  let mode = 0, equivalent = true;
  for (const e of acl) {
    if (e.tag === ACL_USER_OBJ) mode |= (e.perm & 7) << 6;
    else if (e.tag === ACL_GROUP_OBJ) mode |= (e.perm & 7) << 3;
    else if (e.tag === ACL_OTHER) mode |= e.perm & 7;
    else if (e.tag === ACL_MASK) {
      mode = (mode & ~0o70) | ((e.perm & 7) << 3);
      equivalent = false;
    } else equivalent = false;
  }
  // The mask entry sorts after the group entry, so its bits win as above.
  return { mode, equivalent };
}

/** posix_acl_chmod (__posix_acl_chmod): owner, mask (else group) and other take the new bits. */
export function aclChmod(acl: readonly AclEntry[], mode: number): AclEntry[] {
  const hasMask = acl.some((e) => e.tag === ACL_MASK);
  return acl.map((e) => {
    if (e.tag === ACL_USER_OBJ) return { ...e, perm: (mode >> 6) & 7 };
    if (e.tag === ACL_OTHER) return { ...e, perm: mode & 7 };
    if (e.tag === (hasMask ? ACL_MASK : ACL_GROUP_OBJ)) return { ...e, perm: (mode >> 3) & 7 };
    return e;
  });
}
