/**
 * Helpers for test/report: images populated by the kernel through a loop
 * mount, the real tools' output (filefrag, e4defrag, e2freefrag) and parsers
 * for it, a minimal XML well-formedness check for the SVG.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expectE2fsckClean, mkfs, run, withLoopMount, which, type FsKind } from '../helpers/tools.js';
import { prngBytes } from '../helpers/tree.js';
import { Filesystem } from '../../lib/node.js';

export const LANG_C = { LANG: 'C', LC_ALL: 'C' };

/** Write `data` at `pos` in `file` and fsync, so the kernel allocates now (one allocation per call). */
export function writeSync(file: string, data: Uint8Array, pos?: number): void {
  const fd = fs.openSync(file, fs.existsSync(file) ? 'r+' : 'w');
  try {
    const at = pos ?? fs.fstatSync(fd).size;
    fs.writeSync(fd, data, 0, data.length, at);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Append `n` deterministic bytes to each file in turn, `rounds` times, fsync after every append: interleaved fragments. */
export function interleave(files: string[], rounds: number, n: number, seed: string): void {
  for (let r = 0; r < rounds; r++) for (const f of files) writeSync(f, prngBytes(`${seed}|${f}|${r}`, n));
}

/**
 * mkfs an image, loop-mount it read-write, let `populate` create files
 * through the kernel, unmount; e2fsck -fn must be clean afterwards.
 */
export async function kernelImage(img: string, kind: FsKind, sizeMiB: number, mkfsOpts: string[], populate: (mnt: string) => void | Promise<void>, mountType?: string): Promise<string> {
  mkfs(kind, img, sizeMiB * 1024 * 1024, mkfsOpts);
  await withLoopMount(img, async (mnt) => {
    await populate(mnt);
    run('sync', []);
  }, mountType ? { type: mountType } : {});
  expectE2fsckClean(img, 'after populating through the kernel');
  return img;
}

export async function withFs<T>(img: string, fn: (f: Filesystem) => Promise<T>): Promise<T> {
  const f = await Filesystem.open(img);
  try {
    return await fn(f);
  } finally {
    await f.close();
  }
}

/** The e2fsprogs version of the installed e4defrag ("1.47.0"), or null if it is missing. */
export function e4defragVersion(): string | null {
  if (!which('e4defrag')) return null;
  const r = run('e4defrag', ['-c', '/nonexistent-path-for-version'], { okStatus: true, env: LANG_C });
  const m = /^e4defrag (\d+\.\d+(?:\.\d+)?)/m.exec(r.stdout);
  return m ? m[1]! : null;
}

/** e4defrag ≥ 1.47.1 skips files of at most one block; older ones only files without blocks. */
export function skipsSingleBlock(version: string): boolean {
  const [a = 0, b = 0, c = 0] = version.split('.').map(Number);
  return a > 1 || (a === 1 && (b > 47 || (b === 47 && c >= 1)));
}

/** Run e4defrag (any exit status) and return stdout without its version banner. */
export function e4defrag(args: string[]): string {
  const r = run('e4defrag', args, { okStatus: true, env: LANG_C });
  return r.stdout.replace(/^e4defrag [^\n]*\n/, '');
}

export interface E4FileLine {
  index: number;
  total: number;
  path: string;
  now: number;
  best: number;
  sizeKB: number;
}

/** The per-file lines of `e4defrag -c -v DIR` (terminal escapes removed, names longer than 40 on their own line). */
export function parseE4defragVerbose(out: string): E4FileLine[] {
  const lines = out.replace(/\x1b\[79;0H\x1b\[K/g, '\n').split('\n');
  const res: E4FileLine[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    let m = /^\[(\d+)\/(\d+)\](\/.*?)\s+(\d+)\/(\d+)\s+(\d+) KB$/.exec(l);
    if (m) {
      res.push({ index: Number(m[1]), total: Number(m[2]), path: m[3]!, now: Number(m[4]), best: Number(m[5]), sizeKB: Number(m[6]) });
      continue;
    }
    m = /^\[(\d+)\/(\d+)\](\/.*)$/.exec(l);
    const n = /^\s+(\d+)\/(\d+)\s+(\d+) KB$/.exec(lines[i + 1] ?? '');
    if (m && n) {
      res.push({ index: Number(m[1]), total: Number(m[2]), path: m[3]!, now: Number(n[1]), best: Number(n[2]), sizeKB: Number(n[3]) });
      i++;
    }
  }
  return res;
}

/** Totals of an e4defrag -c report. */
export function parseE4defragTotals(out: string): { now: number; best: number; avgKB: number; score: string; needs: boolean } | null {
  const t = /Total\/best extents\s+(\d+)\/(\d+)/.exec(out);
  const a = /Average size per extent\s+(\d+) KB/.exec(out);
  const s = /Fragmentation score\s+(\S+)/.exec(out);
  if (!t || !a || !s) return null;
  return { now: Number(t[1]), best: Number(t[2]), avgKB: Number(a[1]), score: s[1]!, needs: /needs defragmentation\./.test(out) };
}

/** `filefrag -v` on absolute paths, one invocation. */
export function filefragV(paths: string[]): string {
  return run('filefrag', ['-v', ...paths], { env: LANG_C }).stdout;
}

/** Rows of `filefrag -v` output per file: physical first..last and length. */
export function parseFilefrag(out: string): Map<string, { rows: { logical: number; logicalEnd: number; physical: number; physicalEnd: number; length: number }[]; count: number }> {
  const res = new Map<string, { rows: { logical: number; logicalEnd: number; physical: number; physicalEnd: number; length: number }[]; count: number }>();
  let cur: { rows: { logical: number; logicalEnd: number; physical: number; physicalEnd: number; length: number }[]; count: number } | null = null;
  for (const l of out.split('\n')) {
    let m = /^File size of (.*) is \d+ /.exec(l);
    if (m) {
      cur = { rows: [], count: -1 };
      res.set(m[1]!, cur);
      continue;
    }
    m = /^\s*\d+:\s+(\d+)\.\.\s*(\d+):\s+(\d+)\.\.\s*(\d+):\s+(\d+):/.exec(l);
    if (m && cur) {
      cur.rows.push({ logical: Number(m[1]), logicalEnd: Number(m[2]), physical: Number(m[3]), physicalEnd: Number(m[4]), length: Number(m[5]) });
      continue;
    }
    m = /^(.*): (\d+) extents? found/.exec(l);
    if (m) {
      const e = res.get(m[1]!);
      if (e) e.count = Number(m[2]);
    }
  }
  return res;
}

/** Every regular file and directory under a mounted tree (lstat, no symlinks followed), sorted. */
export function listTree(root: string, filter: (st: fs.Stats) => boolean = (st) => st.isFile() || st.isDirectory()): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const abs = path.join(root, rel);
    const st = fs.lstatSync(abs);
    if (filter(st)) out.push(rel || '/');
    if (st.isDirectory()) for (const n of fs.readdirSync(abs).sort()) walk(rel === '' ? `/${n}` : `${rel}/${n}`);
  };
  walk('');
  return out;
}

/**
 * A minimal XML 1.0 well-formedness check: one root element, every tag
 * closed in order, attributes quoted and unique, no bare '<' or '&' in text
 * or attribute values. Returns the elements (name + attributes) in document order.
 */
export function parseXml(xml: string): { name: string; attrs: Record<string, string>; text: string }[] {
  const elements: { name: string; attrs: Record<string, string>; text: string }[] = [];
  const stack: { name: string; text: string; el: { name: string; attrs: Record<string, string>; text: string } }[] = [];
  let i = 0;
  let roots = 0;
  const checkText = (t: string, where: string) => {
    if (/<|&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(t)) throw new Error(`bad character data ${where}: ${t.slice(0, 80)}`);
  };
  if (xml.startsWith('<?xml')) {
    const e = xml.indexOf('?>');
    if (e < 0) throw new Error('unterminated XML declaration');
    i = e + 2;
  }
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const text = lt < 0 ? xml.slice(i) : xml.slice(i, lt);
    checkText(text, `at ${i}`);
    if (stack.length) stack[stack.length - 1]!.el.text += text;
    else if (text.trim()) throw new Error(`text outside the root element at ${i}`);
    if (lt < 0) break;
    const gt = xml.indexOf('>', lt);
    if (gt < 0) throw new Error(`unterminated tag at ${lt}`);
    const tag = xml.slice(lt + 1, gt);
    i = gt + 1;
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      const open = stack.pop();
      if (!open || open.name !== name) throw new Error(`</${name}> closes <${open?.name ?? 'nothing'}>`);
      continue;
    }
    const selfClosing = tag.endsWith('/');
    const body = selfClosing ? tag.slice(0, -1) : tag;
    const m = /^([A-Za-z_][\w.:-]*)/.exec(body);
    if (!m) throw new Error(`bad tag <${tag.slice(0, 40)}>`);
    const name = m[1]!;
    const attrs: Record<string, string> = {};
    let rest = body.slice(name.length);
    const attrRe = /^\s+([A-Za-z_][\w.:-]*)\s*=\s*("([^"]*)"|'([^']*)')/;
    for (;;) {
      const a = attrRe.exec(rest);
      if (!a) break;
      if (a[1]! in attrs) throw new Error(`duplicate attribute ${a[1]} in <${name}>`);
      const v = a[3] ?? a[4] ?? '';
      checkText(v, `in attribute ${a[1]} of <${name}>`);
      attrs[a[1]!] = v;
      rest = rest.slice(a[0].length);
    }
    if (rest.trim()) throw new Error(`junk in tag <${name}>: ${rest.slice(0, 40)}`);
    if (stack.length === 0) {
      roots++;
      if (roots > 1) throw new Error('more than one root element');
    }
    const el = { name, attrs, text: '' };
    elements.push(el);
    if (!selfClosing) stack.push({ name, text: '', el });
  }
  if (stack.length) throw new Error(`unclosed <${stack[stack.length - 1]!.name}>`);
  if (roots !== 1) throw new Error('no root element');
  return elements;
}
