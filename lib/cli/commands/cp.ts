/**
 * `ext4kit cp [-r] [-p] SRC… DST`, the image side written `IMAGE:PATH` as
 * e2cp does: host → image, image → host, image → image (the same image or
 * another). A single file into an image is replaced whole or not at all
 * (writeFile: new blocks, then one transaction that swaps them in); -r copies
 * trees (importTree: batched transactions). Without -p the copies get the
 * time of the copy and the copier's owner (0:0 in an image), the source's
 * mode; with -p owner, mode, times and xattrs are kept.
 */
import * as nodeFs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as nodePath from 'node:path';
import type { Command } from 'commander';
import { Filesystem } from '../../node.js';
import { Ext4Error, isExt4Error } from '../../errors.js';
import { exportTree } from '../../ops/export-tree.js';
import { importTree } from '../../ops/import-tree.js';
import { writeFile } from '../../ops/write-file.js';
import { setXattr, utimes } from '../../ops/attrs.js';
import { countEntry, emptySummary, type TreeEntry, type TreeSummary } from '../../ops/tree-entry.js';
import { readHostTree, writeHostTree } from '../host-tree.js';
import { openFs, printJson, type CliContext } from '../util.js';
import { imageSide, withWritable } from '../write-open.js';

interface CpCliOptions { recursive?: boolean; preserve?: boolean; json?: boolean }

type Side = { image: string; path: string } | { image: null; path: string };

function sideOf(arg: string): Side {
  return imageSide(arg) ?? { image: null, path: arg };
}

function baseName(p: string): string {
  return p.split('/').filter(Boolean).pop() ?? '';
}

function joinImage(dir: string, name: string): string {
  return `${dir.replace(/\/+$/, '')}/${name}`;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('cp')
    .description('copy files between the host and images (IMAGE:PATH names a path inside an image, as e2cp)')
    .argument('<paths...>', 'SRC… DST; each may be IMAGE:PATH')
    .option('-r, --recursive', 'copy directories and their contents')
    .option('-p, --preserve', 'keep mode, owner, times and xattrs')
    .option('--json', 'print a JSON summary')
    .action(async (args: string[], opts: CpCliOptions, cmd: Command) => {
      if (args.length < 2) cmd.error('error: cp needs SRC… DST', { exitCode: 2, code: 'ext4kit.usage' });
      const dst = sideOf(args[args.length - 1]!);
      const srcs = args.slice(0, -1).map(sideOf);
      const summary = emptySummary();
      const warn = (m: string) => ctx.io.stderr.write(`ext4kit: warning: ${m}\n`);
      if (dst.image === null) {
        for (const s of srcs) {
          if (s.image === null) throw new Ext4Error('EINVAL', `${s.path}: host to host copies are cp(1)'s job`);
          await toHost(s as { image: string; path: string }, dst.path, opts, cmd, summary, warn);
        }
      } else {
        const dstImage = dst.image;
        await withWritable(dstImage, cmd, ctx, async (fs) => {
          const sources = new Map<string, Filesystem>();
          try {
            for (const s of srcs) {
              let from: Filesystem | null = null;
              if (s.image !== null) {
                if (sameFile(s.image, dstImage)) from = fs;
                else {
                  from = sources.get(s.image) ?? null;
                  if (!from) sources.set(s.image, (from = (await openFs(s.image, cmd)) as Filesystem));
                }
              }
              await toImage(fs, s.path, from, dst.path, opts, summary, warn);
            }
          } finally {
            for (const f of sources.values()) await f.close();
          }
        });
      }
      if (opts.json) await printJson(ctx, summary);
    });
}

function sameFile(a: string, b: string): boolean {
  const x = nodeFs.statSync(a), y = nodeFs.statSync(b);
  return x.dev === y.dev && x.ino === y.ino;
}

/** Entries with the copier's ownership and no times (the copy's time) unless -p. */
async function* plain(entries: AsyncIterable<TreeEntry>, preserve: boolean | undefined, uid: number, gid: number, summary: TreeSummary): AsyncGenerator<TreeEntry> {
  for await (const e of entries) {
    countEntry(summary, e);
    yield preserve ? e : { ...e, uid, gid, atime: undefined, mtime: undefined, xattrs: [] };
  }
}

/** Copy host path or image path `src` (from `from`, or the host when null) to `dst` in `fs`. */
async function toImage(fs: Filesystem, src: string, from: Filesystem | null, dst: string, opts: CpCliOptions, summary: TreeSummary, warn: (m: string) => void): Promise<void> {
  const dstNode = await fs.resolve(dst, { followLast: true }).catch((e: unknown) => {
    if (isExt4Error(e) && e.code === 'ENOENT') return null;
    throw e;
  });
  const srcIsDir = from ? (await from.resolve(src, { followLast: true })).type === 'dir' : nodeFs.statSync(src).isDirectory();
  const target = dstNode?.type === 'dir' ? joinImage(dst, baseName(src)) : dst;
  if (srcIsDir) {
    if (!opts.recursive) throw new Ext4Error('EISDIR', `${src}: is a directory (use -r)`);
    if (from === fs && (target + '/').startsWith(src.replace(/\/+$/, '') + '/')) throw new Ext4Error('EINVAL', `cannot copy ${src} into itself`);
    const entries = from ? exportTree(from, src) : (await readHostTree(src, { xattrs: !!opts.preserve, warn })).entries;
    const s = await importTree(fs, plain(entries, opts.preserve, 0, 0, summary), { at: target });
    summary.transactions += s.transactions;
    return;
  }
  // One file: replaced whole or not at all.
  const one = from ? exportTree(from, src) : (await readHostTree(src, { xattrs: !!opts.preserve, warn })).entries;
  for await (const e of one) {
    countEntry(summary, e);
    if (e.type !== 'file') {
      // symlinks and special files: a one-entry tree import
      const s = await importTree(fs, plain(oneOf(e, baseName(target)), opts.preserve, 0, 0, emptySummary()), { at: target.replace(/\/[^/]*$/, '') || '/' });
      summary.transactions += s.transactions;
      continue;
    }
    const o = opts.preserve ? { mode: e.mode, uid: e.uid, gid: e.gid } : { mode: e.mode };
    await writeFile(fs, target, e.data ?? new Uint8Array(0), o);
    if (opts.preserve) {
      for (const x of e.xattrs ?? []) await setXattr(fs, target, x.name, x.value);
      if (e.mtime) await utimes(fs, target, e.atime ?? e.mtime, e.mtime);
    }
  }
}

async function* oneOf(e: TreeEntry, name: string): AsyncGenerator<TreeEntry> {
  yield { ...e, path: name };
}

/** Copy image path `s` to host path `dst`. */
async function toHost(s: { image: string; path: string }, dst: string, opts: CpCliOptions, cmd: Command, summary: TreeSummary, warn: (m: string) => void): Promise<void> {
  const fs = (await openFs(s.image, cmd)) as Filesystem;
  try {
    const node = await fs.resolve(s.path, { followLast: true });
    const dstIsDir = nodeFs.existsSync(dst) && nodeFs.statSync(dst).isDirectory();
    const uid = process.getuid?.() ?? 0, gid = process.getgid?.() ?? 0;
    if (node.type === 'dir') {
      if (!opts.recursive) throw new Ext4Error('EISDIR', `${s.path}: is a directory (use -r)`);
      const target = dstIsDir ? nodePath.join(dst, baseName(s.path) || 'root') : dst;
      await writeHostTree(target, plain(exportTree(fs, s.path), opts.preserve, uid, gid, summary), { warn, xattrs: !!opts.preserve });
      return;
    }
    const target = dstIsDir ? nodePath.join(dst, baseName(s.path)) : dst;
    const dir = nodePath.dirname(target);
    const name = nodePath.basename(target);
    // Replace an existing host file as cp does (not atomically: cp(1) does not either).
    await fsp.rm(target, { force: true });
    const entries = plain(exportTree(fs, s.path), opts.preserve, uid, gid, summary);
    await writeHostTree(dir, renameTo(entries, name), { warn, xattrs: !!opts.preserve });
  } finally {
    await fs.close();
  }
}

async function* renameTo(entries: AsyncIterable<TreeEntry>, name: string): AsyncGenerator<TreeEntry> {
  for await (const e of entries) yield { ...e, path: name };
}
