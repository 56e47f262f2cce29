/**
 * Local extent-tree edits (ext4-format.md §7.2), cursor-style as e2fsprogs'
 * lib/ext2fs/extent.c and the kernel's fs/ext4/extents.c work: the entries
 * that change are found by comparing the tree's leaves with the new extent
 * list, and only the nodes covering them are rewritten — a leaf that
 * overflows spills into a neighbour or splits, one that empties is freed,
 * and the change climbs the index path (keys, splits, merges) to the root,
 * which grows a level when it overflows and pulls its only child up when
 * that fits (ext4_ext_grow_indepth / ext4_ext_try_to_merge_up).
 *
 * Shape rule. e2fsck (e2fsck_should_rebuild_extents, see shapeProblem)
 * wants every level nearly packed: the slots left unused at one level must
 * not exceed one block's worth of entries, a non-full node counting one slot
 * fewer. Nodes are therefore left with cap-1 entries where possible (that
 * slot is free under the rule and takes a later insert without a split),
 * and an edit that would push its level over the limit widens its window
 * to neighbouring nodes (toward free room) until redistributing the window
 * keeps the level within it; in the worst case that window is the whole
 * level. Anything the local path cannot make right (tiny trees, an input
 * tree already over the limit at a level the edit does not reach) is laid
 * out anew.
 */
import { Ext4Error, type Location } from '../errors.js';
import { bytesEqual } from './bytes.js';
import {
  MAX_EXTENT_DEPTH, extentBlockChecksum, nodeCapacity, readHeader, readIndexEntry, readLeafEntry, writeTailChecksum,
  writeHeader, writeIndexEntry, writeLeafEntry, type Extent,
} from './extents.js';
import { ROOT_CAPACITY, effectiveMax, shapeProblem, type LevelStat } from './extent-tree.js';

export interface TreeEditOptions {
  ino: number;
  blockSize: number;
  /** inodeSeed for node checksums, or null without metadata_csum. */
  csumSeed: number | null;
  /** Current contents of a tree block. */
  readBlock(n: number): Promise<Uint8Array>;
  /** Allocate `count` blocks for new nodes, near `goal`. */
  allocate(count: number, goal: number): Promise<number[]>;
  /** Goal for new tree blocks when no neighbouring node gives one. */
  goal: number;
}

export interface TreeEditResult {
  /** The new 60-byte i_block. */
  iblock: Uint8Array;
  /** Tree blocks whose bytes change. */
  writes: Map<number, Uint8Array>;
  /** Tree blocks no longer used. */
  freed: number[];
  /** Tree blocks newly allocated. */
  allocated: number[];
  /** Tree blocks (below the root) of the new tree. */
  treeBlockCount: number;
  depth: number;
  /** How the tree was changed: not at all, locally, or laid out anew. */
  mode: 'unchanged' | 'local' | 'rebuilt';
}

interface Node {
  /** 0 until allocated. */
  block: number;
  /** 0 for a leaf. */
  height: number;
  /** eh_max. */
  max: number;
  /** First logical block covered (the parent's index key). */
  key: number;
  extents: Extent[];
  kids: Node[];
  /** Bytes of `block` before the edit (to skip unchanged writes); null for a freshly allocated block. */
  raw: Uint8Array | null;
  parent: Node | null;
  /** Position in its level, for loaded nodes. */
  pos: number;
  /** Allocation goal for a new node: a neighbour's block. */
  hint: number;
  dead: boolean;
  /** The node that took this one's place with the same block and key (its parent was left as it was). */
  next: Node | null;
}

type Item = Extent | Node;

interface Tree {
  depth: number;
  root: Node;
  /** levels[h]: the nodes of height h (0 = leaves), in logical order. */
  levels: Node[][];
}

const count = (n: Node): number => (n.height === 0 ? n.extents.length : n.kids.length);
const keyOf = (it: Item): number => ('kids' in it ? it.key : it.logical);
const slackOf = (n: Node): number => effectiveMax(count(n), n.max, false) - count(n);

function newNode(height: number, max: number, items: Item[]): Node {
  return {
    block: 0, height, max, key: items.length ? keyOf(items[0]!) : 0,
    extents: height === 0 ? (items as Extent[]) : [], kids: height > 0 ? (items as Node[]) : [],
    raw: null, parent: null, pos: -1, hint: 0, dead: false, next: null,
  };
}

async function load(iblock: Uint8Array, o: TreeEditOptions): Promise<Tree> {
  const structure = `inode ${o.ino} extent tree`;
  const rh = readHeader(iblock, () => ({ kind: 'field', field: 'i_block' }), structure);
  const root = newNode(rh.depth, ROOT_CAPACITY, []);
  root.raw = iblock;
  const levels: Node[][] = Array.from({ length: rh.depth }, () => []);
  const seen = new Set<number>();
  // Depth ≤ 5 (readHeader) bounds the recursion; `seen` rules out cycles.
  const fill = async (node: Node, bytes: Uint8Array, entries: number): Promise<void> => {
    if (node.height === 0) {
      for (let i = 0; i < entries; i++) node.extents.push(readLeafEntry(bytes, i));
      return;
    }
    for (let i = 0; i < entries; i++) {
      const idx = readIndexEntry(bytes, i);
      const where: Location = { kind: 'block', block: idx.leaf };
      if (seen.has(idx.leaf)) throw new Ext4Error('EFSCORRUPTED', `tree block ${idx.leaf} is referenced twice`, { structure, location: where });
      seen.add(idx.leaf);
      const data = await o.readBlock(idx.leaf);
      const h = readHeader(data, () => where, structure);
      if (h.depth !== node.height - 1 || h.entries === 0) throw new Ext4Error('EFSCORRUPTED', `node depth ${h.depth} with ${h.entries} entries under a node of depth ${node.height}`, { structure, location: where });
      const child = newNode(h.depth, h.max, []);
      Object.assign(child, { block: idx.leaf, key: idx.logical, raw: data, parent: node, pos: levels[h.depth]!.length });
      levels[h.depth]!.push(child);
      node.kids.push(child);
      await fill(child, data, h.entries);
    }
  };
  await fill(root, iblock, rh.entries);
  return { depth: rh.depth, root, levels };
}

/**
 * Node count for a window of `w` nodes that is to hold `t` entries, and the
 * slots it leaves unused (its part of the level's slack). Least slack wins:
 * with k ≤ t/(cap-1) nodes there is none (every node holds cap-1 or cap
 * entries), so the count closest to `w` in that range is taken (a merge when
 * below `w`); otherwise the fewest nodes, ceil(t/cap).
 */
function choose(t: number, w: number, cap: number): { k: number; slack: number } {
  if (t === 0) return { k: 0, slack: 0 };
  const kmin = Math.ceil(t / cap), kzero = Math.floor(t / (cap - 1));
  if (kzero >= kmin) return { k: Math.min(Math.max(w, kmin), kzero), slack: 0 };
  return { k: kmin, slack: kmin * (cap - 1) - t };
}

/**
 * Entries per node, no node full unless `t` needs it (those spread evenly).
 * `leftFill` (a window at the level's end, where appends land) leaves cap-1
 * in each node but the last, which keeps the room.
 */
function sizes(t: number, k: number, cap: number, leftFill: boolean): number[] {
  const out: number[] = [];
  if (leftFill && t <= k * (cap - 1)) {
    let rem = t;
    for (let i = 0; i < k; i++) {
      const s = Math.min(cap - 1, rem - (k - 1 - i));
      out.push(s);
      rem -= s;
    }
    return out;
  }
  const base = Math.floor(t / k), extra = t % k;
  for (let i = 0; i < k; i++) out.push(base + (Math.floor(((i + 1) * extra) / k) - Math.floor((i * extra) / k)));
  return out;
}

interface Solution {
  a: number;
  b: number;
  items: Item[];
  sizes: number[];
}

/**
 * Extra nodes a window may take, once it satisfies the shape rule, to bring
 * its level's slack down further (to zero if it can): the rule leaves room
 * for about one block's worth of slack per level, and a level near that
 * limit makes the next split or large punch widen a window again.
 */
const OVERSHOOT = 16;

/**
 * Choose the window [a, b] of `level` (at least the given one) and its new
 * node sizes so that the level's slack stays within e2fsck's limit
 * (shapeProblem). A window that already fits is kept, except that a split
 * gives way to a neighbour that can take the overflow. Otherwise the window
 * widens one neighbour at a time, each time toward the side that lowers the
 * slack more (ties: toward the nearer node with room), and then a little
 * further while that still lowers the slack. Null only if even the whole
 * level fails, which cannot happen (ceil(t/cap) nodes leave less than cap
 * slots unused).
 */
function solve(level: Node[], a0: number, b0: number, items: Item[], cap: number, stat: LevelStat): Solution | null {
  const last = level.length - 1;
  const leftFill = b0 === last;
  const levelSlack = stat.max - stat.entries;
  let a = a0, b = b0, t = items.length, inside = 0;
  for (let i = a; i <= b; i++) inside += slackOf(level[i]!);
  const evaluate = (tt: number, w: number, ins: number) => {
    const c = choose(tt, w, cap);
    return { k: c.k, s: levelSlack - ins + c.slack };
  };
  let cur = evaluate(t, b - a + 1, inside);
  type Best = { a: number; b: number; t: number; k: number; s: number };
  let best: Best | null = cur.s <= cap ? { a, b, t, k: cur.k, s: cur.s } : null;
  const fitsAsIs = best !== null;
  if (best && cur.k <= b - a + 1) return finish(level, best, a0, b0, items, cap, leftFill);
  const room = (i: number) => cap - count(level[i]!);
  const nearest = (from: number, step: number) => {
    let i = from;
    while (i >= 0 && i <= last && room(i) <= 0) i += step;
    return i < 0 || i > last ? Infinity : Math.abs(i - from);
  };
  let firstValidWidth = best ? b - a + 1 : 0;
  while (a > 0 || b < last) {
    const l = a > 0 ? level[a - 1]! : null, r = b < last ? level[b + 1]! : null;
    const el = l ? evaluate(t + count(l), b - a + 2, inside + slackOf(l)) : null;
    const er = r ? evaluate(t + count(r), b - a + 2, inside + slackOf(r)) : null;
    let goLeft: boolean;
    if (!el || !er) goLeft = !!el;
    else if (el.s !== er.s) goLeft = el.s < er.s;
    else goLeft = nearest(a - 1, -1) < nearest(b + 1, 1);
    const n = goLeft ? l! : r!;
    if (goLeft) a--;
    else b++;
    t += count(n);
    inside += slackOf(n);
    cur = goLeft ? el! : er!;
    const w = b - a + 1;
    if (fitsAsIs) {
      // The window fitted with a split: take the neighbour instead only if that needs no new node.
      if (cur.s <= cap && cur.k <= w) best = { a, b, t, k: cur.k, s: cur.s };
      break;
    }
    if (cur.s <= cap && (!best || cur.s < best.s)) best = { a, b, t, k: cur.k, s: cur.s };
    if (best && !firstValidWidth) firstValidWidth = w;
    if (best && (best.s <= 0 || w >= firstValidWidth + OVERSHOOT)) break;
  }
  return best ? finish(level, best, a0, b0, items, cap, leftFill) : null;
}

function finish(level: Node[], best: { a: number; b: number; t: number; k: number }, a0: number, b0: number, items: Item[], cap: number, leftFill: boolean): Solution {
  const all: Item[] = [];
  for (let i = best.a; i < a0; i++) all.push(...itemsOf(level[i]!));
  all.push(...items);
  for (let i = b0 + 1; i <= best.b; i++) all.push(...itemsOf(level[i]!));
  return { a: best.a, b: best.b, items: all, sizes: sizes(best.t, best.k, cap, leftFill && best.b === level.length - 1) };
}

function itemsOf(n: Node): Item[] {
  return n.height === 0 ? n.extents : n.kids;
}

function encode(n: Node, o: TreeEditOptions, cap: number): Uint8Array {
  const b = new Uint8Array(o.blockSize);
  writeHeader(b, { entries: count(n), max: cap, depth: n.height });
  if (n.height === 0) n.extents.forEach((e, i) => writeLeafEntry(b, i, e));
  else n.kids.forEach((k, i) => writeIndexEntry(b, i, k.key, k.block));
  if (o.csumSeed !== null) writeTailChecksum(b, cap, extentBlockChecksum(b, cap, o.csumSeed));
  return b;
}

function encodeRoot(depth: number, items: readonly Item[]): Uint8Array {
  const b = new Uint8Array(60);
  writeHeader(b, { entries: items.length, max: ROOT_CAPACITY, depth });
  items.forEach((it, i) => ('kids' in it ? writeIndexEntry(b, i, it.key, it.block) : writeLeafEntry(b, i, it)));
  return b;
}

const sameExtent = (x: Extent, y: Extent) => x.logical === y.logical && x.physical === y.physical && x.length === y.length && x.unwritten === y.unwritten;

/** Levels further up that `n` nodes need when packed full. */
function levelsAbove(n: number, cap: number): number {
  let c = 0;
  while (n > ROOT_CAPACITY) {
    n = Math.ceil(n / cap);
    c++;
  }
  return c;
}

/**
 * Lay `list` out as a new tree — per level the least slack, then the most
 * nodes (cap-1 entries each where possible, full ones spread evenly), never
 * an extra level — reusing the old tree's blocks in order.
 */
async function rebuild(t: Tree, list: readonly Extent[], o: TreeEditOptions): Promise<TreeEditResult> {
  const cap = nodeCapacity(o.blockSize);
  const made: Node[] = [];
  let items: Item[] = [...list];
  let depth = 0;
  while (items.length > ROOT_CAPACITY) {
    const n = items.length;
    // No slack (choose), as many nodes as that allows (free slots for inserts), no extra level.
    const packed = Math.ceil(n / cap);
    const k0 = choose(n, Math.ceil(n / (cap - 1)), cap).k;
    const k = levelsAbove(k0, cap) > levelsAbove(packed, cap) ? packed : k0;
    const next: Node[] = [];
    let off = 0;
    for (const s of sizes(n, k, cap, false)) {
      next.push(newNode(depth, cap, items.slice(off, off + s)));
      off += s;
    }
    made.push(...next);
    items = next;
    if (++depth >= MAX_EXTENT_DEPTH) throw new Ext4Error('EFBIG', `inode ${o.ino}: extent tree would need depth ${depth}`);
  }
  const old = t.levels.flat().sort((x, y) => x.block - y.block);
  const allocated = made.length > old.length ? await o.allocate(made.length - old.length, o.goal) : [];
  if (allocated.length !== Math.max(0, made.length - old.length)) throw new Ext4Error('ENOSPC', 'no space for extent tree blocks');
  const raws = new Map(old.map((n) => [n.block, n.raw]));
  const pool = [...old.slice(0, made.length).map((n) => n.block), ...allocated].sort((x, y) => x - y);
  made.forEach((n, i) => { n.block = pool[i]!; });
  const writes = new Map<number, Uint8Array>();
  for (const n of made) {
    const bytes = encode(n, o, cap);
    const raw = raws.get(n.block);
    if (!raw || !bytesEqual(raw, bytes)) writes.set(n.block, bytes);
  }
  return {
    iblock: encodeRoot(depth, items), writes, freed: old.slice(made.length).map((n) => n.block), allocated,
    treeBlockCount: made.length, depth, mode: 'rebuilt',
  };
}

/**
 * Give the tree rooted in `iblock` the extents `list` (normalised: sorted,
 * no overlaps, lengths within limits), touching as little of it as the
 * shape rule allows. Nothing is written here: the caller applies `writes`,
 * frees `freed` and stores `iblock`.
 */
export async function editExtentTree(iblock: Uint8Array, list: readonly Extent[], o: TreeEditOptions): Promise<TreeEditResult> {
  const cap = nodeCapacity(o.blockSize);
  const t = await load(iblock, o);
  const leaves = t.levels[0] ?? [];
  if (t.depth === 0 || leaves.length === 0 || list.length <= ROOT_CAPACITY) return rebuild(t, list, o);

  // The entries that change: old[p, oldEnd) becomes list[p, list.length - s).
  const starts: number[] = [];
  const old: Extent[] = [];
  for (const l of leaves) {
    starts.push(old.length);
    for (const e of l.extents) old.push(e);
  }
  let p = 0;
  while (p < old.length && p < list.length && sameExtent(old[p]!, list[p]!)) p++;
  let s = 0;
  while (s < old.length - p && s < list.length - p && sameExtent(old[old.length - 1 - s]!, list[list.length - 1 - s]!)) s++;
  const treeBlocks = t.levels.reduce((a, l) => a + l.length, 0);
  if (p === old.length && p === list.length) return { iblock: iblock.slice(), writes: new Map(), freed: [], allocated: [], treeBlockCount: treeBlocks, depth: t.depth, mode: 'unchanged' };
  const oldEnd = old.length - s;
  const leafOf = (i: number): number => {
    let lo = 0, hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (starts[mid]! <= i) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  let la: number, lb: number;
  if (oldEnd > p) {
    la = leafOf(p);
    lb = leafOf(oldEnd - 1);
  } else {
    // A pure insertion between old[p-1] and old[p]: into whichever of their leaves has room (left first: keys stay).
    const left = p > 0 ? leafOf(p - 1) : -1, right = p < old.length ? leafOf(p) : -1;
    la = left < 0 ? right : right < 0 || left === right || count(leaves[left]!) < cap || count(leaves[right]!) >= cap ? left : right;
    lb = la;
  }
  const firstLeaf = leaves[la]!, lastLeaf = leaves[lb]!;
  let items: Item[] = [...firstLeaf.extents.slice(0, p - starts[la]!), ...list.slice(p, list.length - s), ...lastLeaf.extents.slice(oldEnd - starts[lb]!)];

  const stats: LevelStat[] = t.levels.map((level) => {
    let entries = 0, max = 0;
    for (const n of level) {
      entries += count(n);
      max += effectiveMax(count(n), n.max, false);
    }
    return { entries, max };
  });
  const made: Node[] = [];
  const pool: Node[] = [];
  let depth = t.depth;
  let a = la, b = lb;
  let top: Node[] = t.levels[depth - 1]!;
  let rootDirty = false;
  for (let h = 0; ; h++) {
    const level = t.levels[h]!;
    const sol = solve(level, a, b, items, cap, stats[h]!);
    if (!sol) return rebuild(t, list, o);
    const olds = level.slice(sol.a, sol.b + 1);
    const nn: Node[] = [];
    let off = 0;
    let lastBlock = sol.a > 0 ? level[sol.a - 1]!.block : 0;
    const rightBlock = sol.b < level.length - 1 ? level[sol.b + 1]!.block : 0;
    for (const [i, size] of sol.sizes.entries()) {
      const n = newNode(h, cap, sol.items.slice(off, off + size));
      off += size;
      const reuse = olds[i];
      if (reuse) {
        n.block = reuse.block;
        n.raw = reuse.raw;
        lastBlock = reuse.block;
      } else n.hint = lastBlock || rightBlock || o.goal;
      nn.push(n);
    }
    made.push(...nn);
    pool.push(...olds.slice(nn.length));
    const st = stats[h]!;
    for (const n of olds) {
      st.entries -= count(n);
      st.max -= effectiveMax(count(n), n.max, false);
    }
    for (const n of nn) {
      st.entries += count(n);
      st.max += effectiveMax(count(n), n.max, false);
    }
    const replaced = (): Node[] => [...level.slice(0, sol.a), ...nn, ...level.slice(sol.b + 1)];
    // Same blocks under the same keys: the parent's bytes do not change, nothing above does.
    const same = nn.length === olds.length && nn.every((n, i) => n.block === olds[i]!.block && n.key === olds[i]!.key);
    if (same) olds.forEach((n, i) => { n.next = nn[i]!; });
    if (h === depth - 1) {
      top = replaced();
      rootDirty = !same;
      break;
    }
    if (same) break;
    const pa = olds[0]!.parent!, pb = olds[olds.length - 1]!.parent!;
    const first = pa.kids[0]!.pos, lastKid = pb.kids[pb.kids.length - 1]!.pos;
    items = [...level.slice(first, sol.a), ...nn, ...level.slice(sol.b + 1, lastKid + 1)];
    a = pa.pos;
    b = pb.pos;
  }

  // The root: grow a level while it overflows, pull its only child up while that fits.
  while (top.length > ROOT_CAPACITY) {
    const n = top.length;
    const k = Math.ceil(n / (cap - 1));
    const next: Node[] = [];
    let off = 0;
    for (const sz of sizes(n, k, cap, false)) {
      const node = newNode(depth, cap, top.slice(off, off + sz));
      node.hint = node.kids[0]!.block || o.goal;
      next.push(node);
      off += sz;
    }
    made.push(...next);
    stats.push({ entries: n, max: next.reduce((x, m) => x + effectiveMax(count(m), cap, false), 0) });
    top = next;
    rootDirty = true;
    if (++depth >= MAX_EXTENT_DEPTH) throw new Ext4Error('EFBIG', `inode ${o.ino}: extent tree would need depth ${depth}`);
  }
  const current = (n: Node): Node => {
    while (n.next) n = n.next;
    return n;
  };
  while (depth > 1 && top.length === 1 && count(top[0]!) <= ROOT_CAPACITY) {
    const only = top[0]!;
    only.dead = true;
    if (only.block) pool.push(only);
    top = only.kids.map(current);
    stats.pop();
    depth--;
    rootDirty = true;
  }
  const rootStat: LevelStat = { entries: top.length, max: ROOT_CAPACITY };
  if (shapeProblem([rootStat, ...[...stats].reverse()], o.blockSize)) return rebuild(t, list, o);

  // Blocks for new nodes: those this edit retired first, then the allocator (near a neighbour).
  const live = made.filter((n) => !n.dead);
  const needy = live.filter((n) => n.block === 0);
  let reused = 0;
  for (; reused < needy.length && reused < pool.length; reused++) {
    needy[reused]!.block = pool[reused]!.block;
    needy[reused]!.raw = pool[reused]!.raw;
  }
  const rest = needy.slice(reused);
  let allocated: number[] = [];
  if (rest.length) {
    const goal = rest[0]!.hint || rest[0]!.kids[0]?.block || o.goal;
    allocated = await o.allocate(rest.length, goal);
    if (allocated.length !== rest.length) throw new Ext4Error('ENOSPC', 'no space for extent tree blocks');
    rest.forEach((n, i) => { n.block = allocated[i]!; });
  }
  const freed = pool.slice(reused).map((n) => n.block);
  // Keys of grown index nodes come from kids that may have been allocated just now: keys are logical, unaffected.
  const writes = new Map<number, Uint8Array>();
  for (const n of live) {
    const bytes = encode(n, o, cap);
    if (!n.raw || !bytesEqual(n.raw, bytes)) writes.set(n.block, bytes);
  }
  return {
    iblock: rootDirty ? encodeRoot(depth, top) : iblock.slice(), writes, freed, allocated,
    treeBlockCount: treeBlocks + allocated.length - freed.length, depth, mode: 'local',
  };
}
