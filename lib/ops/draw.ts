/**
 * A picture of the block map: one cell per N blocks, coloured by what owns
 * most of its blocks — free space, fixed metadata (superblock copies, GDT,
 * bitmaps, inode tables), the journal, directories, mapping metadata
 * (extent-tree nodes, indirect blocks, xattr blocks, symlink blocks), and
 * file data coloured by that file's fragmentation (e4defrag's per-file
 * ratio, report.ts: contiguous green … highly fragmented red).
 *
 * Ownership comes from the reverse map (fsmap.ts). The cell size N is the
 * smallest number of blocks that keeps the picture at most `maxCells` cells
 * (default 262,144). A cell takes the class with the most blocks in it; ties
 * go to the class listed first in CLASS_ORDER (metadata before data before
 * free), so a cell is free only if at least half its blocks are.
 *
 * The SVG is compact: free space is one background rectangle per region,
 * every other run of equal cells in a row is one <rect>, colours are CSS
 * classes. The grid group carries data-* attributes (columns, rows, cells,
 * blocks per cell) so tools can read the picture back.
 */
import type { Filesystem } from '../ext4/filesystem.js';
import { info } from './inspect.js';
import { buildReverseMap, fsmap, type FsmapOwner } from './fsmap.js';
import { bestExtentCount, fiemapExtents, fileRatio } from './report.js';
import { INCOMPAT } from '../ext4/superblock.js';
import { INODE_FLAGS, type Inode } from '../ext4/inode.js';

export const CLASS_ORDER = [
  'metadata',
  'journal',
  'directory',
  'mapping',
  'file-high',
  'file-medium',
  'file-low',
  'file-contiguous',
  'unknown',
  'free',
] as const;

export type CellClass = (typeof CLASS_ORDER)[number];

export const CLASS_INFO: Record<CellClass, { colour: string; label: string }> = {
  metadata: { colour: '#4b5472', label: 'filesystem metadata (superblocks, GDT, bitmaps, inode tables)' },
  journal: { colour: '#8e5bb5', label: 'journal' },
  directory: { colour: '#2f6fd0', label: 'directories' },
  mapping: { colour: '#27b5c9', label: 'extent-tree, indirect, xattr and symlink blocks' },
  'file-high': { colour: '#d7191c', label: 'file data, highly fragmented (ratio ≥ 10)' },
  'file-medium': { colour: '#f08a2c', label: 'file data, fragmented (1 ≤ ratio < 10)' },
  'file-low': { colour: '#b5d94f', label: 'file data, slightly fragmented (0 < ratio < 1)' },
  'file-contiguous': { colour: '#2ca02c', label: 'file data, contiguous' },
  unknown: { colour: '#111111', label: 'in use, owner unknown' },
  free: { colour: '#ececec', label: 'free' },
};

const FREE = CLASS_ORDER.indexOf('free');

export type FileFragClass = 'file-contiguous' | 'file-low' | 'file-medium' | 'file-high';

/** The colour class of a file from e4defrag's per-file ratio ((physical runs − best) × 100 / blocks). */
export function fileClass(physical: number, best: number, ratio: number): FileFragClass {
  if (physical <= best || !(ratio > 0)) return 'file-contiguous';
  if (ratio < 1) return 'file-low';
  if (ratio < 10) return 'file-medium';
  return 'file-high';
}

export interface BlockMapOptions {
  /** Upper bound on the number of cells (default 262,144). */
  maxCells?: number;
  /** Cells per row (default: a power of two near √(2·cells)). */
  columns?: number;
}

export interface BlockMapGrid {
  blockSize: number;
  blocksCount: number;
  /** Blocks per cell (N). */
  cellBlocks: number;
  cells: number;
  columns: number;
  rows: number;
  /** Class index (into CLASS_ORDER) of every cell. */
  cellClass: Uint8Array;
  /** Blocks per class. */
  blocks: Record<CellClass, number>;
  /** Cells per class. */
  cellsPerClass: Record<CellClass, number>;
  /** Regular files with data, per fragmentation class. */
  files: Record<FileFragClass, number>;
}

function zeroRecord<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
}

/** Compute the grid: every block's owner class, accumulated per cell. */
export async function blockMap(fs: Filesystem, opts: BlockMapOptions = {}): Promise<BlockMapGrid> {
  const sb = fs.sb;
  const bs = fs.blockSize;
  const total = sb.blocksCount;
  const maxCells = Math.max(1, Math.floor(opts.maxCells ?? 262_144));
  const cellBlocks = Math.max(1, Math.ceil(total / maxCells));
  const cells = Math.ceil(total / cellBlocks);
  const columns = Math.max(1, Math.min(cells, Math.floor(opts.columns ?? 2 ** Math.max(0, Math.round(Math.log2(Math.sqrt(cells * 2)))))));
  const rows = Math.ceil(cells / columns);
  const K = CLASS_ORDER.length;
  const counts = new Uint32Array(cells * K);
  const blocks = zeroRecord(CLASS_ORDER);
  const files = zeroRecord(['file-contiguous', 'file-low', 'file-medium', 'file-high'] as const);

  const rmap = await buildReverseMap(fs);
  // classify each owning inode once
  const inodeClass = new Map<number, { data: CellClass; meta: CellClass }>();
  const flex = sb.s_feature_incompat & INCOMPAT.FLEX_BG ? 2 ** sb.s_log_groups_per_flex : 1;
  const classify = async (ino: number): Promise<{ data: CellClass; meta: CellClass }> => {
    const known = inodeClass.get(ino);
    if (known) return known;
    let c: { data: CellClass; meta: CellClass };
    let inode: Inode | null = null;
    try {
      inode = await fs.readInode(ino);
    } catch {
      inode = null;
    }
    if (!inode) c = { data: 'unknown', meta: 'unknown' };
    else if (ino === sb.s_journal_inum) c = { data: 'journal', meta: 'journal' };
    else if (ino < sb.s_first_ino && ino !== 2) c = { data: 'metadata', meta: 'metadata' };
    else if (inode.type === 'dir') c = { data: 'directory', meta: 'directory' };
    else if (inode.type === 'file' && !(inode.flags & INODE_FLAGS.EA_INODE)) {
      let fc: FileFragClass = 'file-contiguous';
      try {
        const list = await fiemapExtents(fs, inode);
        const ext = list.filter((e) => e.unit === bs);
        if (ext.length) {
          const byPhys = [...ext].sort((a, b) => a.physical - b.physical);
          let physical = 0, n = 0;
          for (let i = 0; i < byPhys.length; i++) {
            const a = byPhys[i]!, b = byPhys[(i + 1) % byPhys.length]!;
            if (a.physical + a.length !== b.physical || a.logical + a.length !== b.logical) physical++;
            n += a.length;
          }
          const best = bestExtentCount(n, sb.s_blocks_per_group, flex);
          const ratio = fileRatio(physical, best, n);
          fc = fileClass(physical, best, ratio);
          files[fc]++;
        }
      } catch {
        fc = 'file-contiguous';
      }
      c = { data: fc, meta: 'mapping' };
    } else c = { data: 'mapping', meta: 'mapping' };
    inodeClass.set(ino, c);
    return c;
  };
  for (const r of rmap.runs) await classify(r.ino);

  const classOf = (o: FsmapOwner): CellClass => {
    if (typeof o === 'string') {
      switch (o) {
        case 'free':
          return 'free';
        case 'journal':
          return 'journal';
        case 'unknown':
          return 'unknown';
        default:
          return 'metadata';
      }
    }
    const c = inodeClass.get(o.ino);
    if (!c) return 'unknown';
    return o.kind === 'data' ? c.data : c.meta;
  };

  for (const rec of await fsmap(fs, { reverseMap: rmap })) {
    const cls = classOf(rec.owner);
    const k = CLASS_ORDER.indexOf(cls);
    let b = rec.start / bs;
    const end = b + rec.len / bs;
    blocks[cls] += end - b;
    while (b < end) {
      const cell = Math.floor(b / cellBlocks);
      const cellEnd = Math.min(end, (cell + 1) * cellBlocks);
      counts[cell * K + k]! += cellEnd - b;
      b = cellEnd;
    }
  }

  const cellClass = new Uint8Array(cells);
  const cellsPerClass = zeroRecord(CLASS_ORDER);
  for (let c = 0; c < cells; c++) {
    let bestK = FREE, bestN = -1;
    for (let k = 0; k < K; k++) {
      const n = counts[c * K + k]!;
      if (n > bestN) {
        bestN = n;
        bestK = k;
      }
    }
    cellClass[c] = bestK;
    cellsPerClass[CLASS_ORDER[bestK]!]++;
  }
  return { blockSize: bs, blocksCount: total, cellBlocks, cells, columns, rows, cellClass, blocks, cellsPerClass, files };
}

export interface DrawMapOptions extends BlockMapOptions {
  /** Width of the picture in pixels (default 1024); cells are square, at least 1 px. */
  width?: number;
  /** Heading (default "ext4kit block map"). */
  title?: string;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** XML 1.0 forbids most control characters even escaped: drop them from labels. */
function clean(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/g, '');
}

function human(bytes: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0, v = bytes;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${u[i]}`;
}

function pct(n: number, d: number): string {
  return d ? `${((n * 100) / d).toFixed(1)}%` : '0%';
}

/** Render a grid as SVG (header with the filesystem's identity and totals, the map, a legend). */
export function renderSvg(grid: BlockMapGrid, meta: { title: string; label: string; uuid: string; width?: number }): string {
  const width = Math.max(200, Math.floor(meta.width ?? 1024));
  const cellPx = Math.max(1, Math.floor(width / grid.columns));
  const mapW = grid.columns * cellPx;
  const mapH = grid.rows * cellPx;
  const pad = 12;
  const W = Math.max(width, mapW + 2 * pad);
  const headerH = 70;
  const present = CLASS_ORDER.filter((c) => grid.blocks[c] > 0);
  const legendTop = headerH + mapH + 16;
  const legendH = present.length * 18 + 10;
  const H = legendTop + legendH + pad;
  const total = grid.blocksCount;
  const used = total - grid.blocks.free;
  const fileCount = grid.files['file-contiguous'] + grid.files['file-low'] + grid.files['file-medium'] + grid.files['file-high'];
  const fragmented = fileCount - grid.files['file-contiguous'];
  const parts: string[] = [];
  parts.push('<?xml version="1.0" encoding="UTF-8"?>');
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<title>${esc(clean(meta.title))}</title>`);
  parts.push(`<style>${CLASS_ORDER.map((c, i) => `.c${i}{fill:${CLASS_INFO[c].colour}}`).join('')}</style>`);
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  parts.push(`<text x="${pad}" y="20" font-size="16" font-weight="bold">${esc(clean(meta.title))}</text>`);
  const ident = `label "${clean(meta.label)}" · UUID ${meta.uuid} · ${human(total * grid.blockSize)} · ${total} blocks of ${grid.blockSize} bytes`;
  parts.push(`<text x="${pad}" y="38">${esc(ident)}</text>`);
  const totals =
    `used ${used} blocks (${pct(used, total)}) · free ${grid.blocks.free} (${pct(grid.blocks.free, total)}) · ` +
    `${fileCount} files with data, ${fragmented} fragmented · 1 cell = ${grid.cellBlocks} block${grid.cellBlocks === 1 ? '' : 's'} (${grid.cells} cells)`;
  parts.push(`<text x="${pad}" y="56">${esc(totals)}</text>`);
  // the map: cells are unit squares scaled by cellPx
  parts.push(
    `<g id="map" transform="translate(${pad} ${headerH}) scale(${cellPx})" shape-rendering="crispEdges" ` +
      `data-columns="${grid.columns}" data-rows="${grid.rows}" data-cells="${grid.cells}" data-cell-blocks="${grid.cellBlocks}" data-free-class="c${FREE}">`,
  );
  const fullRows = Math.floor(grid.cells / grid.columns);
  const lastRow = grid.cells % grid.columns;
  if (fullRows) parts.push(`<rect class="c${FREE}" width="${grid.columns}" height="${fullRows}"/>`);
  if (lastRow) parts.push(`<rect class="c${FREE}" y="${fullRows}" width="${lastRow}" height="1"/>`);
  for (let r = 0; r < grid.rows; r++) {
    const rowStart = r * grid.columns;
    const rowEnd = Math.min(grid.cells, rowStart + grid.columns);
    let c = rowStart;
    while (c < rowEnd) {
      const k = grid.cellClass[c]!;
      let e = c + 1;
      while (e < rowEnd && grid.cellClass[e] === k) e++;
      if (k !== FREE) parts.push(`<rect class="c${k}" x="${c - rowStart}" y="${r}" width="${e - c}" height="1"/>`);
      c = e;
    }
  }
  parts.push('</g>');
  // legend
  parts.push(`<g id="legend" transform="translate(${pad} ${legendTop})">`);
  present.forEach((c, i) => {
    const k = CLASS_ORDER.indexOf(c);
    const y = i * 18;
    let text = `${CLASS_INFO[c].label}: ${grid.blocks[c]} blocks (${pct(grid.blocks[c], total)})`;
    if (c.startsWith('file-')) text += `, ${grid.files[c as FileFragClass]} files`;
    parts.push(`<rect class="c${k}" y="${y}" width="14" height="14" stroke="#888" stroke-width="0.5" data-class="${c}"/>`);
    parts.push(`<text x="20" y="${y + 11}">${esc(text)}</text>`);
  });
  parts.push('</g>');
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

/** The block-map picture of a filesystem as an SVG document. */
export async function drawMap(fs: Filesystem, opts: DrawMapOptions = {}): Promise<string> {
  const grid = await blockMap(fs, opts);
  const i = info(fs);
  return renderSvg(grid, { title: opts.title ?? 'ext4kit block map', label: i.label, uuid: i.uuid, width: opts.width });
}
