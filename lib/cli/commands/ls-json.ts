/**
 * `ls --json`'s output — `JSON.stringify(rows, null, 2) + '\n'` as UTF-8, byte for byte — written
 * straight into one growing byte buffer as walkList hands over each row: no row object, no JSON
 * text, no encoding pass (for 10,000 rows the native serializer, encoding its text and collecting
 * the garbage of both cost more than reading the directory and its inodes). The bytes go in
 * through lib/codec/json-bytes.ts: constant pieces as 32-bit words, numbers four digits per store.
 *
 * Strings are escaped as JSON.stringify escapes them: `"` and `\` with a backslash, \b \t \n \f \r
 * by name, other characters below U+0020 as \u00xx, everything else (U+007F, U+2028, …) as its
 * UTF-8. An all-ASCII directory's names are copied from its blocks; any other name, a path
 * given by the user and a symlink's target go through JSON.stringify itself (U+FFFD for invalid
 * UTF-8 was decided by decodeName already; lone surrogates, which only a user's path can hold, as
 * \udxxx).
 */
import { JsonBytes, escapedUtf8, piece, type Piece } from '../../codec/json-bytes.js';
import type { DirListSource } from '../../ext4/dir-list-wasm.js';
import type { Inode, InodeSummary } from '../../ext4/inode.js';
import type { ListDir, ListEntry, ListExtra, ListSink } from '../../ops/inspect.js';
import { TYPE_OF_MODE, WasmRows } from './ls-json-wasm.js';

const FIELD = (name: string) => `,\n    "${name}": `;
const P = {
  firstRow: piece('[\n  {\n    "path": "'),
  nextRow: piece(',\n  {\n    "path": "'),
  name: piece(`"${FIELD('name')}"`),
  ino: piece(`"${FIELD('ino')}`),
  size: piece(FIELD('size')),
  nlink: piece(FIELD('nlink')),
  uid: piece(FIELD('uid')),
  gid: piece(FIELD('gid')),
  mtime: piece(FIELD('mtime')),
  major: piece(`${FIELD('rdev')}{\n      "major": `),
  minor: piece(',\n      "minor": '),
  rdevEnd: piece('\n    }'),
  target: piece(`${FIELD('target')}"`),
  quote: piece('"'),
  rowEnd: piece('\n  }'),
  end: piece('\n]\n'),
  none: piece('[]\n'),
};
/** `"type"` and the start of `"mode"`, per type (what sits between ino and mode). */
const TYPE_MODE: Record<string, Piece> = Object.fromEntries(
  ['file', 'dir', 'symlink', 'chardev', 'blockdev', 'fifo', 'socket'].map((t) => [t, piece(`${FIELD('type')}"${t}"${FIELD('mode')}`)]),
);

/** Bytes a row needs besides its path and strings (pieces, ten numbers of up to 17 characters). */
const ROW_FIXED = 512;
/** A generous guess of a row's bytes besides its directory's path (a 6-character name takes 198 with a 7-character path). */
const ROW_GUESS = 320;
/** The most reserved ahead for one directory (past it the buffer grows as it fills). */
const RESERVE_MAX = 64 << 20;

/** The rows of `ls --json` as bytes: a ListSink for walkList, then finish(). */
export class LsJson implements ListSink {
  private out = new JsonBytes();
  /** The output before `out` (and `pending`), in order. */
  private readonly chunks: Uint8Array[] = [];
  /** A whole directory's rows still in the module's memory (directory()), after `chunks`, before `out`. */
  private pending: Uint8Array | null = null;
  private rows = 0;
  private dir: ListDir | null = null;
  /** The current directory's path, escaped ('' for the root: a row's path is it, '/', the name). */
  private prefix: Uint8Array = new Uint8Array(0);
  /** The plain rows' writer (ls-json-wasm.ts), null without WebAssembly; `inDir`: it has the current directory's names. */
  private readonly wasm: WasmRows | null;
  private inDir = false;

  /** Where whole plain directories are read from (dir-list-wasm.ts), or null: row by row. */
  private readonly source: DirListSource | null;

  /**
   * `wasm: false`: every row written by the JS below (tests compare the two). `source`: whole
   * plain directories are listed from it by WebAssembly (directory()).
   */
  constructor(opts: { wasm?: boolean; source?: DirListSource } = {}) {
    this.wasm = opts.wasm === false ? null : WasmRows.create();
    this.source = opts.source ?? null;
  }

  /**
   * A whole directory's rows, when dir-list-wasm.ts is sure of them (a plain directory: see
   * there); false: nothing was written, and walkList hands its rows one by one.
   */
  async directory(path: string, dir: Inode, recursive: boolean): Promise<boolean> {
    const w = this.wasm, src = this.source;
    if (!w || src === null) return false;
    this.flushRows();
    this.settle();
    // The row-by-row writer's area is the lister's too (its module is made here at the first
    // directory): the next directory listed row by row begins afresh.
    this.dir = null;
    this.inDir = false;
    const lister = w.dirs;
    if (!lister) return false;
    const rows = this.rows;
    const prefix = path === '/' ? new Uint8Array(0) : escapedUtf8(path);
    const pad = (prefix.length + 7) & ~7;
    let start = -1, end = -1;
    const ok = await lister.list(
      src,
      dir,
      recursive,
      (n, namesBytes) => WasmRows.rowsAtBytes(n, namesBytes, prefix.length),
      (b) => {
        // The path first, then the rows, back to back.
        if (start < 0) {
          w.put(prefix, b.outAt);
          start = b.outAt + pad;
          end = start;
        }
        end = w.rowsAt(b.n, b.recsAt, b.addrsAt, b.lensAt, start - pad, prefix.length, end, this.rows === 0);
        this.rows += b.n;
        return end;
      },
    );
    if (!ok) {
      this.rows = rows;
      return false;
    }
    // The rows stay in the module's memory until it is needed again (settle): a listing that is
    // one directory writes them from there, never copied.
    if (end > start) {
      if (this.out.p > 0) {
        this.chunks.push(this.out.text());
        this.out = new JsonBytes();
      }
      this.pending = w.view(start, end);
    }
    return true;
  }

  /** The rows left in the module's memory, copied out (the memory is about to be used again). */
  private settle(): void {
    if (this.pending === null) return;
    this.chunks.push(this.pending.slice());
    this.pending = null;
  }

  entry(d: ListDir, i: number, s: InodeSummary, extra: ListExtra | null): boolean {
    const t = d.table;
    if (d !== this.dir) {
      this.settle();
      this.flushRows();
      this.dir = d;
      this.prefix = d.path === '/' ? new Uint8Array(0) : escapedUtf8(d.path);
      // Room for the whole directory at once: growing by doubling copied the output and touched
      // twice its size in fresh pages (about 4 ms per MB here); room reserved but never written
      // is never touched.
      this.out.reserve(Math.min(RESERVE_MAX, t.length * (ROW_GUESS + this.prefix.length)));
      this.inDir = this.wasm !== null && t.ascii && this.wasm.begin(this.prefix, t);
    }
    // A row of an ASCII name and 32-bit numbers: queued for the module.
    if (this.inDir && extra === null && s.size <= 0xffffffff && (s.mtime | 0) === s.mtime && TYPE_OF_MODE[(s.mode >>> 12) & 15] === s.type) {
      if (this.wasm!.add(i, t.ino[i]!, s.mode, s.size, s.linksCount, s.uid, s.gid, s.mtime)) this.flushRows();
      return false;
    }
    this.flushRows();
    const len = t.nameLen[i]!;
    const o = this.out;
    // Escaping multiplies a byte by at most 6 (\u00xx); the path holds the name, then the name again.
    o.reserve(ROW_FIXED + this.prefix.length + 12 * len);
    let p = o.put(this.rows++ === 0 ? P.firstRow : P.nextRow, o.p);
    p = o.bytes(this.prefix, p);
    const buf = o.buf;
    buf[p++] = 0x2f; // '/'
    const nameAt = p;
    p = t.ascii ? o.escapedAscii(t.chunks[t.chunk[i]!]!, t.nameStart[i]!, len, p) : o.bytes(escapedUtf8(t.names()[i]!), p);
    // The name field is the name after its last '/' (only a corrupt name holds one), as escaped above.
    let base = nameAt;
    for (let k = nameAt; k < p; k++) if (buf[k] === 0x2f) base = k + 1;
    const nameEnd = p;
    p = o.put(P.name, p);
    buf.copyWithin(p, base, nameEnd);
    p += nameEnd - base;
    o.p = this.fields(p, t.ino[i]!, s);
    if (extra) this.extra(extra);
    o.p = o.put(P.rowEnd, o.p);
    return false;
  }

  single(e: ListEntry): boolean {
    this.settle();
    this.flushRows();
    const path = escapedUtf8(e.path), name = escapedUtf8(e.name);
    const o = this.out;
    o.reserve(ROW_FIXED + path.length + name.length);
    let p = o.put(this.rows++ === 0 ? P.firstRow : P.nextRow, o.p);
    p = o.bytes(path, p);
    p = o.put(P.name, p);
    p = o.bytes(name, p);
    o.p = this.fields(p, e.ino, { type: e.type, mode: e.mode, size: e.size, linksCount: e.nlink, uid: e.uid, gid: e.gid, mtime: e.mtime });
    this.extra(e);
    o.p = o.put(P.rowEnd, o.p);
    return false;
  }

  /** The whole output: the rows' array and a newline. */
  finish(): Uint8Array {
    const parts = this.finishChunks();
    if (parts.length === 1) return parts[0]!;
    const all = new Uint8Array(parts.reduce((n, c) => n + c.length, 0));
    let p = 0;
    for (const c of parts) {
      all.set(c, p);
      p += c.length;
    }
    return all;
  }

  /** The same in pieces, in order (a whole directory's rows as the module wrote them). */
  finishChunks(): Uint8Array[] {
    this.flushRows();
    const o = this.out;
    o.reserve(8);
    o.p = o.put(this.rows === 0 ? P.none : P.end, o.p);
    const parts = [...this.chunks];
    if (this.pending !== null) parts.push(this.pending);
    parts.push(o.text());
    return parts;
  }

  /** The rows queued for the module, written and copied to the output. */
  private flushRows(): void {
    const w = this.wasm;
    if (w === null || w.n === 0) return;
    const n = w.n;
    const bytes = w.flush(this.rows === 0);
    this.rows += n;
    const o = this.out;
    o.reserve(bytes.length);
    o.buf.set(bytes, o.p);
    o.p += bytes.length;
  }

  /** ino, type, mode, size, nlink, uid, gid, mtime (ino's piece and the path's end quote first). */
  private fields(p: number, ino: number, s: Pick<InodeSummary, 'type' | 'mode' | 'size' | 'linksCount' | 'uid' | 'gid' | 'mtime'>): number {
    const o = this.out;
    p = o.int(ino, o.put(P.ino, p));
    p = o.int(s.mode & 0o7777, o.put(TYPE_MODE[s.type!]!, p));
    p = o.int(s.size, o.put(P.size, p));
    p = o.int(s.linksCount, o.put(P.nlink, p));
    p = o.int(s.uid, o.put(P.uid, p));
    p = o.int(s.gid, o.put(P.gid, p));
    return o.int(s.mtime, o.put(P.mtime, p));
  }

  /** A device's number or a symlink's target, after mtime. */
  private extra(x: ListExtra): void {
    const o = this.out;
    if (x.rdev) {
      const p = o.int(x.rdev.minor, o.put(P.minor, o.int(x.rdev.major, o.put(P.major, o.p))));
      o.p = o.put(P.rdevEnd, p);
    } else if (x.target !== undefined) {
      const target = escapedUtf8(x.target);
      o.reserve(ROW_FIXED + target.length);
      o.p = o.put(P.quote, o.bytes(target, o.put(P.target, o.p)));
    }
  }
}
