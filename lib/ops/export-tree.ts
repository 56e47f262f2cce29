/**
 * A tree of the image as a stream of TreeEntry (what importTree and the
 * CLI's host-directory and tar writers consume): depth-first pre-order,
 * each directory's entries sorted by name bytes (the same image gives the
 * same stream), a second name of an inode as a 'hardlink' entry after the
 * first. File data is read lazily while the consumer iterates `data`
 * (holes read as zeros; writers turn all-zero blocks back into holes).
 * A file with holes also carries `sparse`: where its data is and a reader of
 * just those bytes, so a tar writer stores a sparse member (as GNU tar
 * --sparse does) without reading the holes.
 */
import { Ext4Error } from '../errors.js';
import type { Filesystem } from '../ext4/filesystem.js';
import type { FileMap } from '../ext4/file-map.js';
import type { Inode } from '../ext4/inode.js';
import { decodeRdev } from './inspect.js';
import type { DataRun, TreeEntry, TreeXattr } from './tree-entry.js';

/** Chunk size of file data (a multiple of every block size). */
const EXPORT_CHUNK = 1024 * 1024;

/** An entry as exportTree gives it: a regular file with holes carries `sparse` (its data runs:
 * mapped, written extents in order, clipped to i_size; holes and unwritten extents are not runs). */
export type ExportedEntry = TreeEntry;
export type { DataRun, SparseFile } from './tree-entry.js';

/**
 * The tree under `path` (followed if a symlink). The root entry has path ''
 * when `path` is a directory; a non-directory is one entry named by its last
 * component.
 */
export async function* exportTree(fs: Filesystem, path = '/'): AsyncGenerator<ExportedEntry> {
  const root = await fs.resolve(path, { followLast: true });
  const seen = new Map<number, string>();
  if (root.type !== 'dir') {
    const name = path.split('/').filter(Boolean).pop() ?? '';
    yield await entryOf(fs, root, name, seen);
    return;
  }
  yield await entryOf(fs, root, '', seen);
  // Depth-first pre-order (a directory's subtree right after it), as tar writes archives: GNU tar
  // sets a directory's times when it leaves the directory, so a later member inside would undo them.
  const dirsSeen = new Set<number>([root.ino]);
  const stack: { rel: string; children: Child[]; i: number }[] = [{ rel: '', children: await childrenOf(fs, root), i: 0 }];
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    if (top.i >= top.children.length) {
      stack.pop();
      continue;
    }
    const c = top.children[top.i++]!;
    const inode = await fs.readInode(c.ino);
    const p = top.rel ? `${top.rel}/${c.name}` : c.name;
    yield await entryOf(fs, inode, p, seen);
    if (inode.type === 'dir') {
      if (dirsSeen.has(inode.ino)) throw new Ext4Error('EFSCORRUPTED', `${p}: directory ${inode.ino} reached twice`, { structure: `inode ${inode.ino}` });
      dirsSeen.add(inode.ino);
      stack.push({ rel: p, children: await childrenOf(fs, inode), i: 0 });
    }
  }
}

interface Child { name: string; bytes: Uint8Array; ino: number }

/** A directory's entries but '.' and '..', in name-byte order. */
async function childrenOf(fs: Filesystem, dir: Inode): Promise<Child[]> {
  const children: Child[] = [];
  for await (const d of fs.readdir(dir)) if (d.name !== '.' && d.name !== '..') children.push({ name: d.name, bytes: d.nameBytes, ino: d.ino });
  return children.sort((a, b) => compareBytes(a.bytes, b.bytes));
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

async function entryOf(fs: Filesystem, inode: Inode, path: string, seen: Map<number, string>): Promise<ExportedEntry> {
  const type = inode.type;
  if (type === null) throw new Ext4Error('EFSCORRUPTED', `${path || '/'}: inode ${inode.ino} has an invalid file type`, { structure: `inode ${inode.ino}` });
  const base = { path, mode: inode.mode & 0o7777, uid: inode.uid, gid: inode.gid, atime: inode.atime, mtime: inode.mtime };
  if (type !== 'dir' && inode.linksCount > 1) {
    const first = seen.get(inode.ino);
    if (first !== undefined) return { ...base, type: 'hardlink', target: first };
    seen.set(inode.ino, path);
  }
  const xattrs: TreeXattr[] = [];
  for (const x of await fs.xattrs(inode)) {
    if (x.name === 'system.data') continue; // inline data's own attribute, not a user-visible one
    if (x.value) xattrs.push({ name: x.name, value: x.value });
  }
  const e: ExportedEntry = { ...base, type, xattrs };
  if (type === 'file') {
    e.size = inode.size;
    if (inode.size === 0) e.data = new Uint8Array(0);
    else {
      const map = await fs.fileMap(inode);
      e.data = readRuns(fs, inode, map, [{ offset: 0, length: inode.size }]);
      const runs = dataRuns(map, fs.blockSize, inode.size);
      const inRuns = runs.reduce((n, r) => n + r.length, 0);
      if (inRuns < inode.size) e.sparse = { runs, data: () => readRuns(fs, inode, map, runs) };
    }
  } else if (type === 'symlink') e.target = await fs.readlink(inode);
  else if (type === 'chardev' || type === 'blockdev') e.rdev = decodeRdev(inode);
  return e;
}

/** Where a file's data is, from its map (inline files are all data). */
function dataRuns(map: FileMap, blockSize: number, size: number): DataRun[] {
  if (map.kind === 'inline') return [{ offset: 0, length: size }];
  const runs: DataRun[] = [];
  for (const x of map.extents) {
    if (x.unwritten) continue; // reads as zeros: a hole to the reader (and to SEEK_DATA)
    const offset = x.logical * blockSize;
    if (offset >= size) break;
    const end = Math.min(size, (x.logical + x.length) * blockSize);
    const last = runs[runs.length - 1];
    if (last && last.offset + last.length === offset) last.length = end - last.offset;
    else runs.push({ offset, length: end - offset });
  }
  return runs;
}

/** The bytes of `runs` in order, in chunks of at most EXPORT_CHUNK (fresh arrays). */
async function* readRuns(fs: Filesystem, inode: Inode, map: FileMap, runs: readonly DataRun[]): AsyncGenerator<Uint8Array> {
  for (const r of runs) {
    for (let at = r.offset; at < r.offset + r.length; at += EXPORT_CHUNK) {
      yield await fs.read(inode, at, Math.min(EXPORT_CHUNK, r.offset + r.length - at), map);
    }
  }
}
