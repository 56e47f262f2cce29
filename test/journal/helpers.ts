/**
 * Test helpers for the journal tests: real tools (mkfs.ext4, debugfs, e2fsck,
 * loop mounts) and a tiny image-file adapter that maps the journal inode's
 * blocks from `debugfs -R "ex <8>"` (the Filesystem object is not used here).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, fsyncSync, mkdtempSync, openSync, readSync, rmSync, writeSync, statSync, copyFileSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSuperblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, SuperblockLayout, type Superblock } from '../../lib/ext4/superblock.js';
import type { ReplayTarget } from '../../lib/ext4/journal-replay.js';
import type { JournalAccess } from '../../lib/jbd2/recovery.js';
import { e2fsckClean as e2fsckStrict, haveTools, oracleGate } from '../helpers/tools.js';

export const PATH_ENV = { ...process.env, PATH: `/usr/sbin:/sbin:${process.env.PATH ?? ''}`, E2FSPROGS_FAKE_TIME: undefined };

export function haveTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { env: PATH_ENV }).status === 0;
}

/** Under CI a missing tool throws (oracleGate) instead of skipping the journal tests. */
export const HAVE_E2FSPROGS = haveTools(['mkfs.ext4', 'debugfs', 'e2fsck']);

export function run(cmd: string, args: string[], input?: string): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { env: PATH_ENV, input, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function must(cmd: string, args: string[], input?: string): string {
  const r = run(cmd, args, input);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r.stdout + r.stderr;
}

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `ext4kit-${tag}-`));
}

export function removeDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
}

export function mkfs(path: string, sizeMiB: number, opts: string[] = []): void {
  must('mkfs.ext4', ['-q', '-F', ...opts, path, `${sizeMiB}M`]);
}

/** debugfs -w with a command script; returns its output. */
export function debugfsW(img: string, script: string[]): string {
  return must('debugfs', ['-w', '-f', '-', img], script.join('\n') + '\n');
}

export function debugfsR(img: string, request: string): string {
  return must('debugfs', ['-R', request, img]);
}

export interface Extent {
  logical: number;
  physical: number;
  length: number;
}

/** Leaf extents of an inode from `debugfs -R "ex <ino>"`. */
export function inodeExtents(img: string, ino = 8): Extent[] {
  const out = debugfsR(img, `ex <${ino}>`);
  const ext: Extent[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\/\s*(\d+)\s+\d+\/\s*\d+\s+(\d+)\s*-\s*(\d+)\s+(\d+)\s*-\s*(\d+)\s+(\d+)/.exec(line);
    if (!m) continue;
    if (m[1] !== m[2]) continue; // index node
    ext.push({ logical: Number(m[3]), physical: Number(m[5]), length: Number(m[7]) });
  }
  if (!ext.length) throw new Error(`no extents for inode ${ino} in:\n${out}`);
  return ext;
}

export function readSb(img: string): Superblock {
  const fd = openSync(img, 'r');
  try {
    const b = Buffer.alloc(SUPERBLOCK_SIZE);
    readSync(fd, b, 0, SUPERBLOCK_SIZE, SUPERBLOCK_OFFSET);
    return parseSuperblock(new Uint8Array(b));
  } finally {
    closeSync(fd);
  }
}

/** Direct access to an image file: fs blocks, journal blocks (via the journal inode's extents), the superblock. */
export class ImageFile {
  readonly fd: number;
  readonly bs: number;
  readonly extents: Extent[];
  readonly journalBlocks: number;
  writesFs: number[] = [];
  flushes = 0;

  constructor(readonly path: string) {
    const sb = readSb(path);
    this.bs = sb.blockSize;
    this.extents = inodeExtents(path, sb.s_journal_inum || 8);
    this.journalBlocks = this.extents.reduce((a, e) => Math.max(a, e.logical + e.length), 0);
    this.fd = openSync(path, 'r+');
  }

  close(): void {
    closeSync(this.fd);
  }

  phys(jb: number): number {
    for (const e of this.extents) if (jb >= e.logical && jb < e.logical + e.length) return e.physical + jb - e.logical;
    throw new Error(`journal block ${jb} not mapped`);
  }

  readFs(b: number): Uint8Array {
    const buf = Buffer.alloc(this.bs);
    const n = readSync(this.fd, buf, 0, this.bs, b * this.bs);
    if (n !== this.bs) throw new Error(`short read of block ${b}`);
    return new Uint8Array(buf);
  }

  writeFs(b: number, data: Uint8Array): void {
    if (data.length !== this.bs) throw new Error('bad block length');
    writeSync(this.fd, data, 0, this.bs, b * this.bs);
  }

  readJournal(jb: number): Uint8Array {
    return this.readFs(this.phys(jb));
  }

  writeJournal(jb: number, data: Uint8Array): void {
    this.writeFs(this.phys(jb), data);
  }

  journalAccess(): JournalAccess {
    return { blockSize: this.bs, blockCount: this.journalBlocks, readBlock: async (jb) => this.readJournal(jb) };
  }

  readSuperblock(): Superblock {
    const b = Buffer.alloc(SUPERBLOCK_SIZE);
    readSync(this.fd, b, 0, SUPERBLOCK_SIZE, SUPERBLOCK_OFFSET);
    return parseSuperblock(new Uint8Array(b));
  }

  writeSuperblockBytes(bytes: Uint8Array): void {
    writeSync(this.fd, bytes, 0, SUPERBLOCK_SIZE, SUPERBLOCK_OFFSET);
  }

  replayTarget(now?: number): ReplayTarget {
    return {
      device: {
        writeBlock: async (b, d) => {
          this.writesFs.push(b);
          this.writeFs(b, d);
        },
        flush: async () => {
          this.flushes++;
          fsyncSync(this.fd);
        },
      },
      journal: { ...this.journalAccess(), writeBlock: async (jb, d) => this.writeJournal(jb, d) },
      superblock: { read: () => this.readSuperblock(), write: async (bytes) => this.writeSuperblockBytes(bytes) },
      now,
    };
  }
}

export function copy(src: string, dst: string): void {
  copyFileSync(src, dst);
}

/** e2fsck -p -E journal_only: replay only. (-f would force a full check: check_if_skip returns before journal_only's shortcut.) */
export function e2fsckJournalOnly(img: string): { status: number; out: string } {
  const r = run('e2fsck', ['-p', '-E', 'journal_only', img]);
  return { status: r.status, out: r.stdout + r.stderr };
}

/**
 * e2fsck -fn must exit 0 AND print no problem (the suite's strict rule, test/helpers/tools.ts:
 * e2fsck -n exits 0 for some problems it only reports, such as wrong free counts).
 */
export function e2fsckClean(img: string): { ok: boolean; out: string } {
  const r = e2fsckStrict(img);
  return { ok: r.ok, out: r.problems.length ? `problems:\n${r.problems.join('\n')}\n--- full output ---\n${r.output}` : r.output };
}

export interface ByteDiff {
  offset: number;
  /** fs block and offset within it. */
  block: number;
  at: number;
}

/** Every differing byte between two same-size files. */
export function diffImages(a: string, b: string, bs: number): ByteDiff[] {
  const A = readFileSync(a), B = readFileSync(b);
  if (A.length !== B.length) throw new Error(`sizes differ: ${A.length} vs ${B.length}`);
  const out: ByteDiff[] = [];
  const CH = 1 << 16;
  for (let o = 0; o < A.length; o += CH) {
    const e = Math.min(A.length, o + CH);
    if (A.compare(B, o, e, o, e) === 0) continue;
    for (let i = o; i < e; i++) if (A[i] !== B[i]) out.push({ offset: i, block: Math.floor(i / bs), at: i % bs });
  }
  return out;
}

/** Superblock fields (byte ranges within the 1024-byte superblock) a comparison may ignore. */
export function sbFieldRange(name: string): [number, number] {
  const off = SuperblockLayout.offsetOf(name as never);
  return [SUPERBLOCK_OFFSET + off, SUPERBLOCK_OFFSET + off + SuperblockLayout.sizeOf(name as never)];
}

/** Drop diffs inside the given absolute byte ranges; return the rest. */
export function withoutRanges(d: ByteDiff[], ranges: [number, number][]): ByteDiff[] {
  return d.filter((x) => !ranges.some(([s, e]) => x.offset >= s && x.offset < e));
}

export function summarize(d: ByteDiff[]): string {
  const by = new Map<number, number[]>();
  for (const x of d) {
    const l = by.get(x.block) ?? [];
    l.push(x.at);
    by.set(x.block, l);
  }
  return [...by].map(([b, l]) => `block ${b}: ${l.length} bytes @ ${l.slice(0, 8).join(',')}${l.length > 8 ? '…' : ''}`).join('\n');
}

/** Loop mounting: root + losetup + mount present and a loop device usable. Under CI a failure throws (oracleGate). */
export function loopSupport(): { ok: boolean; why: string } {
  const r = probeLoopSupport();
  oracleGate(r.ok ? null : r.why);
  return r;
}

function probeLoopSupport(): { ok: boolean; why: string } {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return { ok: false, why: 'not root' };
  if (!haveTool('losetup') || !haveTool('mount')) return { ok: false, why: 'losetup/mount missing' };
  if (!existsSync('/dev/loop-control')) return { ok: false, why: 'no /dev/loop-control' };
  const d = tempDir('loopprobe');
  try {
    const img = join(d, 'p.img');
    mkfs(img, 8);
    const r = run('losetup', ['-f', '--show', img]);
    if (r.status !== 0) return { ok: false, why: `losetup failed: ${r.stderr.trim()}` };
    const dev = r.stdout.trim();
    const mnt = join(d, 'm');
    must('mkdir', ['-p', mnt]);
    const m = run('mount', ['-t', 'ext4', dev, mnt]);
    if (m.status === 0) run('umount', [mnt]);
    run('losetup', ['-d', dev]);
    return m.status === 0 ? { ok: true, why: '' } : { ok: false, why: `mount failed: ${m.stderr.trim()}` };
  } finally {
    removeDir(d);
  }
}

/** Attach, mount, run fn(mountpoint, loopdev), always unmount and detach. */
export async function withLoopMount<T>(img: string, mnt: string, opts: string[], fn: (mnt: string, dev: string) => Promise<T> | T): Promise<T> {
  const dev = must('losetup', ['-f', '--show', img]).trim();
  let mounted = false;
  try {
    must('mkdir', ['-p', mnt]);
    must('mount', ['-t', 'ext4', ...(opts.length ? ['-o', opts.join(',')] : []), dev, mnt]);
    mounted = true;
    return await fn(mnt, dev);
  } finally {
    if (mounted) run('umount', [mnt]);
    run('losetup', ['-d', dev]);
  }
}

export function fileSize(p: string): number {
  return statSync(p).size;
}

export { readFileSync, writeFileSync, execFileSync };

/** Deterministic pseudo-random bytes. */
export function prng(seed: number): (n: number) => Uint8Array {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      s ^= s << 13; s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5; s >>>= 0;
      b[i] = s & 0xff;
    }
    return b;
  };
}

/** First `count` free blocks at or after `start` (debugfs ffb). */
export function freeBlocks(img: string, count: number, start: number): number[] {
  const out = debugfsR(img, `ffb ${count} ${start}`);
  const m = /Free blocks found:\s*([\d\s]+)/.exec(out);
  if (!m) throw new Error(`ffb failed: ${out}`);
  return m[1]!.trim().split(/\s+/).map(Number).slice(0, count);
}

// ---------------------------------------------------------------------------
// Installing logs built by ext4kit's log writer into a real image
// ---------------------------------------------------------------------------
import { JCOMPAT, JINCOMPAT, parseJournalSuperblock, refreshJournalSuperblock, serializeJournalSuperblock, type JournalSuperblock } from '../../lib/jbd2/format.js';
import { buildTransaction, type BuiltTransaction } from '../../lib/jbd2/log-writer.js';
import { INCOMPAT, serializeSuperblock } from '../../lib/ext4/superblock.js';

export interface LogSpec {
  /** Journal checksum version to set in the journal superblock. */
  csum: 0 | 2 | 3;
  /** 64-bit tags/revoke records. */
  is64: boolean;
  asyncCommit?: boolean;
  firstTid: number;
  /** Log block of the first transaction (default s_first). */
  start?: number;
  txs: { blocks: { fsBlock: number; data: Uint8Array }[]; revokes?: number[] }[];
  /** Commit time of the first transaction (seconds); later ones +1 each. */
  time?: number;
  /** Set needs_recovery in the ext4 superblock (default true). */
  setRecover?: boolean;
}

export interface InstalledLog {
  jsb: JournalSuperblock;
  built: BuiltTransaction[];
}

/** Rewrite the journal superblock's features for `spec`, build the transactions and write them with needs_recovery set. */
export function installLog(img: string, spec: LogSpec): InstalledLog {
  const f = new ImageFile(img);
  try {
    let jsb = parseJournalSuperblock(f.readJournal(0), { kind: 'field', field: 'jsb' }, { fsBlockSize: f.bs });
    let inc = jsb.s_feature_incompat & ~(JINCOMPAT.CSUM_V2 | JINCOMPAT.CSUM_V3 | JINCOMPAT['64BIT'] | JINCOMPAT.ASYNC_COMMIT);
    if (spec.csum === 3) inc |= JINCOMPAT.CSUM_V3;
    if (spec.csum === 2) inc |= JINCOMPAT.CSUM_V2;
    if (spec.is64) inc |= JINCOMPAT['64BIT'];
    if (spec.asyncCommit) inc |= JINCOMPAT.ASYNC_COMMIT;
    if (spec.txs.some((t) => t.revokes?.length)) inc |= JINCOMPAT.REVOKE;
    jsb.s_feature_incompat = inc >>> 0;
    jsb.s_feature_compat &= ~JCOMPAT.CHECKSUM;
    jsb.s_checksum_type = spec.csum ? 4 : 0;
    jsb = refreshJournalSuperblock(jsb);
    const start = spec.start ?? jsb.s_first;
    jsb.s_sequence = spec.firstTid >>> 0;
    jsb.s_start = start;
    jsb = refreshJournalSuperblock(jsb);
    const built: BuiltTransaction[] = [];
    let pos = start;
    let tid = spec.firstTid >>> 0;
    let sec = spec.time ?? 1_700_000_000;
    for (const t of spec.txs) {
      const b = buildTransaction({ jsb, tid, startBlock: pos, blocks: t.blocks, revokes: t.revokes ?? [], commitTime: { sec, nsec: 1000 } });
      for (const w of b.writes) f.writeJournal(w.journalBlock, w.data);
      f.writeJournal(b.commitBlock.journalBlock, b.commitBlock.data);
      built.push(b);
      pos = b.nextBlock;
      tid = (tid + 1) >>> 0;
      sec++;
    }
    // Whatever follows the last commit must not look like a continuation: zero one block.
    f.writeJournal(pos, new Uint8Array(f.bs));
    f.writeJournal(0, serializeJournalSuperblock(jsb));
    if (spec.setRecover !== false) {
      const sb = f.readSuperblock();
      sb.s_feature_incompat |= INCOMPAT.RECOVER;
      f.writeSuperblockBytes(serializeSuperblock(sb));
    }
    fsyncSync(f.fd);
    return { jsb, built };
  } finally {
    f.close();
  }
}

/** Patch bytes of journal block `jb` in place (XOR `mask` at `offset`). */
export function corruptJournal(img: string, jb: number, offset: number, mask = 0xff): void {
  const f = new ImageFile(img);
  try {
    const b = f.readJournal(jb);
    b[offset] = b[offset]! ^ mask;
    f.writeJournal(jb, b);
  } finally {
    f.close();
  }
}

/** Read-modify-write journal block `jb`. */
export function patchJournal(img: string, jb: number, fn: (b: Uint8Array) => void): void {
  const f = new ImageFile(img);
  try {
    const b = f.readJournal(jb);
    fn(b);
    f.writeJournal(jb, b);
  } finally {
    f.close();
  }
}

/** Rewrite the journal superblock through `fn`. */
export function patchJsb(img: string, fn: (jsb: JournalSuperblock) => void): void {
  const f = new ImageFile(img);
  try {
    const jsb = parseJournalSuperblock(f.readJournal(0), { kind: 'field', field: 'jsb' }, { fsBlockSize: f.bs });
    fn(jsb);
    f.writeJournal(0, serializeJournalSuperblock(jsb));
  } finally {
    f.close();
  }
}
