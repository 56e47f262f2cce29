/**
 * File contents: reads (holes and unwritten extents as zeros, large direct reads for data),
 * streams, inline data, symlink targets and xattrs, through the volume's block view.
 */
import { Ext4Error } from '../errors.js';
import { INODE_FLAGS, type Inode } from './inode.js';
import { findExtent } from './extents.js';
import { parseInodeXattrs, parseXattrBlock, type XattrEntry } from './xattr.js';
import { isFastSymlink, readFileMap, type FileMap } from './file-map.js';
import type { InodeStore } from './inode-store.js';
import type { Volume } from './volume.js';

/**
 * Largest single device read for file data, and `stream`'s default chunk. Not larger: every read
 * gets a fresh buffer, and glibc hands buffers above ~4 MiB back to the kernel when they are freed,
 * so each new one page-faults in (measured: 8 MiB chunks read a cached 256 MiB file 10x slower
 * than 1 MiB chunks, nearly all of it in the kernel).
 */
export const DATA_READ_CHUNK = 1024 * 1024;

export class FileReader {
  constructor(private readonly vol: Volume, private readonly inodes: InodeStore) {}

  /** How the inode's logical blocks map to the disk; `readBlock` lets a transaction supply its own view of tree blocks. */
  fileMap(inode: Inode, readBlock: (n: number) => Promise<Uint8Array> = (n) => this.vol.readBlock(n)): Promise<FileMap> {
    return readFileMap({ blockSize: this.vol.blockSize, verify: this.vol.verify, sb: this.vol.sb, inodeCsumSeed: (i) => this.inodes.inodeCsumSeed(i) }, inode, { readBlock });
  }

  /**
   * Read `length` bytes of the file at `position` (clipped to i_size). Holes and
   * unwritten extents read as zeros. Pass a FileMap to avoid re-walking the tree.
   */
  async read(inode: Inode, position: number, length: number, map?: FileMap): Promise<Uint8Array> {
    if (position < 0 || length < 0) throw new Ext4Error('EINVAL', 'negative position or length');
    const end = Math.min(inode.size, position + length);
    if (end <= position) return new Uint8Array(0);
    const m = map ?? (await this.fileMap(inode));
    if (m.kind === 'inline') {
      const out = new Uint8Array(end - position);
      const data = await this.inlineData(inode);
      out.set(data.subarray(Math.min(position, data.length), Math.min(end, data.length)));
      return out;
    }
    const bs = this.vol.blockSize;
    let lb = Math.floor(position / bs);
    const lastLb = Math.floor((end - 1) / bs);
    let { index, extent: first } = findExtent(m.extents, lb);
    // The whole range in one written extent and one device read (every chunk of `stream` over a
    // contiguous file): return the device's buffer itself — no second allocation, no copy.
    if (first && !first.unwritten && first.logical + first.length > lastLb && (lastLb - lb + 1) * bs <= DATA_READ_CHUNK) {
      const data = await this.vol.readBlocks(first.physical + (lb - first.logical), lastLb - lb + 1);
      const s = position - lb * bs;
      return data.subarray(s, s + (end - position));
    }
    const out = new Uint8Array(end - position);
    while (lb <= lastLb) {
      const e = m.extents[index];
      if (!e || e.logical > lastLb) break;
      if (e.logical + e.length <= lb) { index++; continue; }
      const from = Math.max(lb, e.logical);
      const to = Math.min(lastLb + 1, e.logical + e.length);
      if (!e.unwritten) {
        for (let b = from; b < to; ) {
          const n = Math.min(to - b, DATA_READ_CHUNK / bs);
          const data = await this.vol.readBlocks(e.physical + (b - e.logical), n);
          const fileOff = b * bs;
          const s = Math.max(position, fileOff), t = Math.min(end, fileOff + n * bs);
          out.set(data.subarray(s - fileOff, t - fileOff), s - position);
          b += n;
        }
      }
      lb = to;
      index++;
    }
    return out;
  }

  /**
   * Read the file's bytes at `position` into `dest` (at most dest.length, clipped to i_size) and
   * return how many were read. Holes and unwritten extents are zero-filled; whole blocks go from
   * the device straight into `dest` (no allocation), so a caller can reuse one buffer.
   */
  async readInto(inode: Inode, position: number, dest: Uint8Array, map?: FileMap): Promise<number> {
    if (position < 0 || !Number.isSafeInteger(position)) throw new Ext4Error('EINVAL', 'bad position');
    const end = Math.min(inode.size, position + dest.length);
    if (end <= position) return 0;
    const m = map ?? (await this.fileMap(inode));
    if (m.kind === 'inline') {
      dest.set(await this.read(inode, position, end - position, m));
      return end - position;
    }
    const bs = this.vol.blockSize;
    // A partial first and last block go through read() (a block each at most).
    const headEnd = Math.min(end, Math.ceil(position / bs) * bs);
    if (headEnd > position) dest.set(await this.read(inode, position, headEnd - position, m), 0);
    const alignedEnd = Math.max(headEnd, Math.floor(end / bs) * bs);
    const at = (lb: number) => lb * bs - position;
    let lb = headEnd / bs;
    const stop = alignedEnd / bs;
    let { index } = findExtent(m.extents, lb);
    while (lb < stop) {
      const e = m.extents[index];
      if (!e || e.logical >= stop) {
        dest.fill(0, at(lb), at(stop));
        break;
      }
      if (e.logical + e.length <= lb) {
        index++;
        continue;
      }
      if (e.logical > lb) {
        dest.fill(0, at(lb), at(e.logical)); // hole
        lb = e.logical;
        continue;
      }
      const to = Math.min(stop, e.logical + e.length);
      if (e.unwritten) dest.fill(0, at(lb), at(to));
      else await this.vol.readBlocksInto(e.physical + (lb - e.logical), to - lb, dest.subarray(at(lb), at(to)));
      lb = to;
      index++;
    }
    if (end > alignedEnd) dest.set(await this.read(inode, alignedEnd, end - alignedEnd, m), alignedEnd - position);
    return end - position;
  }

  /**
   * Stream a file's bytes in chunks (bounded memory). Each chunk is a fresh array, unless
   * `reuseBuffer` is set: then every chunk is a view of ONE buffer that the next iteration
   * overwrites (consume or copy it before asking for the next) — no allocation per chunk, which
   * is what makes bulk reads run at the speed of the device.
   */
  async *stream(inode: Inode, chunkBytes = DATA_READ_CHUNK, opts: { reuseBuffer?: boolean } = {}): AsyncGenerator<Uint8Array> {
    const map = await this.fileMap(inode);
    const chunk = Math.max(this.vol.blockSize, Math.floor(chunkBytes / this.vol.blockSize) * this.vol.blockSize);
    if (opts.reuseBuffer) {
      // (a plain array: an aligned one — lib/io/aligned.ts — maps a memory per stream, and a
      // caller streaming many files would map one per file; the caller may keep the last chunk)
      const buf = new Uint8Array(Math.min(chunk, inode.size));
      for (let pos = 0; pos < inode.size; pos += chunk) {
        const n = await this.readInto(inode, pos, buf.subarray(0, Math.min(chunk, inode.size - pos)), map);
        yield buf.subarray(0, n);
      }
      return;
    }
    for (let pos = 0; pos < inode.size; pos += chunk) yield await this.read(inode, pos, Math.min(chunk, inode.size - pos), map);
  }

  /** Inline data: i_block (60 bytes) followed by the system.data xattr value. */
  async inlineData(inode: Inode): Promise<Uint8Array> {
    const data = inode.base.i_block;
    const ent = parseInodeXattrs(inode.raw, inode.extraIsize, inode.ino).find((x) => x.index === 7 && x.name === 'system.data');
    const extra = ent?.value ?? new Uint8Array(0);
    const all = new Uint8Array(60 + extra.length);
    all.set(data);
    all.set(extra, 60);
    return all.subarray(0, Math.min(all.length, inode.type === 'dir' ? all.length : inode.size));
  }

  // ---------------------------------------------------------------- symlinks, xattrs

  async readlink(inode: Inode): Promise<Uint8Array> {
    if (inode.type !== 'symlink') throw new Ext4Error('EINVAL', `inode ${inode.ino} is not a symlink`);
    if (inode.size > 4096 || inode.size === 0) throw new Ext4Error('EFSCORRUPTED', `symlink size ${inode.size} is invalid`, { structure: `inode ${inode.ino}` });
    if (inode.flags & INODE_FLAGS.ENCRYPT) throw new Ext4Error('EOPNOTSUPP', `symlink ${inode.ino} is encrypted`);
    if (isFastSymlink(inode, this.vol.blockSize)) return inode.base.i_block.slice(0, inode.size);
    return this.read(inode, 0, inode.size);
  }

  /** All xattrs (in-inode first, then the external block); EA-inode values are read. */
  async xattrs(inode: Inode): Promise<XattrEntry[]> {
    const list = parseInodeXattrs(inode.raw, inode.extraIsize, inode.ino);
    if (inode.fileAcl) {
      if (inode.fileAcl < this.vol.sb.s_first_data_block || inode.fileAcl >= this.vol.sb.blocksCount)
        throw new Ext4Error('EFSCORRUPTED', `xattr block ${inode.fileAcl} is outside the filesystem (${this.vol.sb.blocksCount} blocks)`, { structure: `inode ${inode.ino}`, location: { kind: 'field', field: 'i_file_acl' } });
      const blk = await this.vol.readBlock(inode.fileAcl);
      list.push(...parseXattrBlock(blk, inode.fileAcl, { fsSeed: this.vol.sb.hasMetadataCsum ? this.vol.fsSeed : null, verify: this.vol.verify }));
    }
    for (const x of list) {
      if (x.value === null && x.valueInode) {
        const vi = await this.inodes.readInode(x.valueInode);
        if (!(vi.flags & INODE_FLAGS.EA_INODE)) throw new Ext4Error('EFSCORRUPTED', `xattr ${x.name} points at inode ${x.valueInode} which is not an EA inode`, { structure: `inode ${inode.ino} xattrs` });
        x.value = await this.read(vi, 0, x.valueSize);
      }
    }
    return list;
  }
}
