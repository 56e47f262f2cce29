/**
 * Typed errors. Every failure ext4kit reports carries an errno-like `code`
 * and, where it comes from on-disk data, the structure and its location so
 * that a user (or a repair script) can find the bad bytes: `location` is a
 * typed object (`{ kind: 'block', block }`, `{ kind: 'inode', ino }`, …) and
 * the message names it in words, e.g. "bad extent header magic (inode 12
 * extent tree at block 4711)".
 */
export type ErrorCode =
  | 'EFSCORRUPTED' // on-disk structure is inconsistent (kernel: EUCLEAN)
  | 'EFSBADCRC' // metadata checksum mismatch (kernel: EBADMSG)
  | 'EINVAL'
  | 'ENOSPC'
  | 'EBUSY'
  | 'EROFS'
  | 'ESTALE'
  | 'ENOENT'
  | 'ENOTDIR'
  | 'EISDIR'
  | 'ELOOP'
  | 'EEXIST'
  | 'EOPNOTSUPP'
  | 'EFBIG'
  | 'EPERM'
  | 'EIO'
  | 'ENAMETOOLONG'
  | 'ENOMEM'
  | 'E2BIG'
  | 'ENOTEMPTY' | 'EMLINK' | 'EXDEV' // namespace operations (lib/ops/namespace.ts)
  | 'ENODATA' | 'ERANGE' | 'EACCES'; // xattrs (lib/ops/attrs.ts): no such attribute; name too long or empty; a default ACL on a non-directory

/** Where a problem is. Block numbers are filesystem blocks unless the kind says otherwise. */
export type Location =
  /** A filesystem block, or `count` blocks from it; `level` for an indirect block (1 = single). */
  | { kind: 'block'; block: number; count?: number; level?: number }
  /** A byte on the device, or `length` bytes from it. */
  | { kind: 'byte'; offset: number; length?: number }
  /** A block group; `block` when a group's bitmap or table block is meant. */
  | { kind: 'group'; group: number; block?: number }
  | { kind: 'inode'; ino: number }
  /** A field of the structure (`s_state`, `i_block[12]`, `features`), `note` saying which use of it. */
  | { kind: 'field'; field: string; index?: number; note?: string }
  /** A block of a file (the orphan file, the journal inode), `physical` where it lies. */
  | { kind: 'logical-block'; block: number; physical?: number }
  /** A block of the journal (log block number), what it holds and the transaction it belongs to. */
  | { kind: 'journal-block'; block: number; role?: string; tid?: number }
  /** A journal transaction, or the transactions `tid`..`lastTid`. */
  | { kind: 'transaction'; tid: number; lastTid?: number }
  /** Logical block `block` of directory `dir`, `physical` where it lies. */
  | { kind: 'directory-block'; dir: number; block: number; physical?: number }
  /** The inline data of directory `dir`: its i_block area or its system.data xattr. */
  | { kind: 'inline-data'; dir: number; area?: 'i_block' | 'system.data' }
  /** An entry, index, slot or byte offset inside another location (an extent node's entry 3). */
  | { kind: 'part'; of: Location; part: 'entry' | 'index' | 'slot' | 'offset'; index: number }
  /** Anything the kinds above do not name (kept word for word). */
  | { kind: 'text'; text: string };

export type LocationKind = Location['kind'];

/** The words a message uses for a location: "block 12", "group 3 block 99", "i_block[12]". */
export function describeLocation(loc: Location): string;
export function describeLocation(loc: Location | undefined): string | undefined;
export function describeLocation(loc: Location | undefined): string | undefined {
  if (loc === undefined) return undefined;
  switch (loc.kind) {
    case 'block':
      if (loc.count !== undefined && loc.count !== 1) return `blocks ${loc.block}..${loc.block + loc.count - 1}`;
      return loc.level !== undefined ? `block ${loc.block} (level ${loc.level})` : `block ${loc.block}`;
    case 'byte':
      if (loc.length === undefined) return `byte ${loc.offset}`;
      return loc.length > 0 ? `bytes ${loc.offset}..${loc.offset + loc.length - 1}` : `byte ${loc.offset} (empty range)`;
    case 'group':
      return loc.block !== undefined ? `group ${loc.group} block ${loc.block}` : `group ${loc.group}`;
    case 'inode':
      return `inode ${loc.ino}`;
    case 'field':
      return `${loc.field}${loc.index !== undefined ? `[${loc.index}]` : ''}${loc.note ? ` (${loc.note})` : ''}`;
    case 'logical-block':
      return `logical block ${loc.block}${loc.physical !== undefined ? ` (block ${loc.physical})` : ''}`;
    case 'journal-block': {
      const extra = [loc.role, loc.tid !== undefined ? `tid ${loc.tid}` : undefined].filter((x) => x !== undefined);
      return `journal block ${loc.block}${extra.length ? ` (${extra.join(', ')})` : ''}`;
    }
    case 'transaction':
      return loc.lastTid !== undefined ? `tids ${loc.tid}..${loc.lastTid}` : `tid ${loc.tid}`;
    case 'directory-block':
      return `directory ${loc.dir} block ${loc.block}${loc.physical !== undefined ? ` (physical ${loc.physical})` : ''}`;
    case 'inline-data':
      return `directory ${loc.dir} inline data${loc.area ? ` ${loc.area}` : ''}`;
    case 'part':
      return `${describeLocation(loc.of)} ${loc.part} ${loc.index}`;
    case 'text':
      return loc.text;
  }
}

const N = '(\\d+)';
/** Location words → typed location, for callers that still pass words (see `ErrorDetail.location`). */
const SHAPES: readonly [RegExp, (m: string[]) => Location][] = [
  [new RegExp(`^block ${N}(?: \\(level ${N}\\))?$`), (m) => ({ kind: 'block', block: +m[1]!, ...(m[2] ? { level: +m[2] } : {}) })],
  [new RegExp(`^blocks ${N}\\.\\.${N}$`), (m) => ({ kind: 'block', block: +m[1]!, count: +m[2]! - +m[1]! + 1 })],
  [new RegExp(`^byte ${N}$`), (m) => ({ kind: 'byte', offset: +m[1]! })],
  [new RegExp(`^byte ${N} \\(empty range\\)$`), (m) => ({ kind: 'byte', offset: +m[1]!, length: 0 })],
  [new RegExp(`^bytes ${N}\\.\\.${N}$`), (m) => ({ kind: 'byte', offset: +m[1]!, length: +m[2]! - +m[1]! + 1 })],
  [new RegExp(`^group ${N}(?: block ${N})?$`), (m) => ({ kind: 'group', group: +m[1]!, ...(m[2] ? { block: +m[2] } : {}) })],
  [new RegExp(`^inode ${N}$`), (m) => ({ kind: 'inode', ino: +m[1]! })],
  [new RegExp(`^logical block ${N}(?: \\(block ${N}\\))?$`), (m) => ({ kind: 'logical-block', block: +m[1]!, ...(m[2] ? { physical: +m[2] } : {}) })],
  [
    new RegExp(`^journal block ${N}(?: \\((?:(.*?)(?:, )?)(?:tid ${N})?\\))?$`),
    (m) => ({ kind: 'journal-block', block: +m[1]!, ...(m[2] ? { role: m[2] } : {}), ...(m[3] ? { tid: +m[3] } : {}) }),
  ],
  [new RegExp(`^tid ${N}$`), (m) => ({ kind: 'transaction', tid: +m[1]! })],
  [new RegExp(`^tids ${N}\\.\\.${N}$`), (m) => ({ kind: 'transaction', tid: +m[1]!, lastTid: +m[2]! })],
  [
    new RegExp(`^directory ${N} block ${N}(?: \\(physical ${N}\\))?$`),
    (m) => ({ kind: 'directory-block', dir: +m[1]!, block: +m[2]!, ...(m[3] ? { physical: +m[3] } : {}) }),
  ],
  [new RegExp(`^directory ${N} inline data(?: (i_block|system\\.data))?$`), (m) => ({ kind: 'inline-data', dir: +m[1]!, ...(m[2] ? { area: m[2] as 'i_block' | 'system.data' } : {}) })],
  [new RegExp(`^(.+) (entry|index|slot|offset) ${N}$`), (m) => ({ kind: 'part', of: parseLocation(m[1]!), part: m[2] as 'entry', index: +m[3]! })],
  [/^([a-z][a-z0-9_]*)(?:\[(\d+)\])?(?: \(([^()]+)\))?$/, (m) => ({ kind: 'field', field: m[1]!, ...(m[2] ? { index: +m[2] } : {}), ...(m[3] ? { note: m[3] } : {}) })],
];

/**
 * The typed location for location words ("block 12" → `{ kind: 'block', block: 12 }`); words no
 * kind describes exactly become `{ kind: 'text' }`. Always `describeLocation(parseLocation(s)) === s`.
 */
export function parseLocation(words: string): Location {
  for (const [re, make] of SHAPES) {
    const m = re.exec(words);
    if (!m) continue;
    const loc = make(m as string[]);
    if (describeLocation(loc) === words && Object.values(loc).every((v) => typeof v !== 'number' || Number.isSafeInteger(v))) return loc;
  }
  return { kind: 'text', text: words };
}

export interface ErrorDetail {
  /** The on-disk structure, e.g. "superblock", "extent block", "inode 12". */
  structure?: string;
  /** Where it is (typed; `describeLocation` gives the words the message uses). */
  location?: Location;
  cause?: unknown;
}

export class Ext4Error extends Error {
  readonly code: ErrorCode;
  readonly structure?: string;
  readonly location?: Location;

  constructor(code: ErrorCode, message: string, detail: ErrorDetail = {}) {
    const location = detail.location;
    const where = [detail.structure, location && describeLocation(location)].filter(Boolean).join(' at ');
    super(where ? `${message} (${where})` : message, detail.cause !== undefined ? { cause: detail.cause } : undefined);
    this.name = 'Ext4Error';
    this.code = code;
    this.structure = detail.structure;
    this.location = location;
  }

  /** What `JSON.stringify` gives: code, message, structure and location (typed), for scripts and logs. */
  toJSON(): { name: string; code: ErrorCode; message: string; structure?: string; location?: Location } {
    return { name: this.name, code: this.code, message: this.message, structure: this.structure, location: this.location };
  }
}

/** Shorthand for a corruption error naming the structure and where it is. */
export function corrupted(structure: string, location: Location, message: string): Ext4Error {
  return new Ext4Error('EFSCORRUPTED', message, { structure, location });
}

export function isExt4Error(e: unknown, code?: ErrorCode): e is Ext4Error {
  return e instanceof Ext4Error && (code === undefined || e.code === code);
}
