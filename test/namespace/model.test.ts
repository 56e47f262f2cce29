/**
 * Model-based random sequences: the same namespace operations (create,
 * mkdir, symlink, link, unlink, rmdir, rename within and across directories,
 * over existing targets) applied to a host directory (Linux itself is the
 * model) and to an image through lib/ops/namespace.ts, with fixed seeds. The
 * error code of every operation must match the host's; the whole tree
 * (names, types, link counts, symlink targets) is compared through ext4kit
 * every few steps and at the end, then e2fsck -fn and a kernel mount compare
 * the image with the host tree.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as nodefs from 'node:fs';
import * as path from 'node:path';
import { Filesystem } from '../../lib/node.js';
import type { Filesystem as CoreFilesystem } from '../../lib/ext4/filesystem.js';
import { createFile, link, mkdir, rename, rmdir, symlink, unlink } from '../../lib/ops/namespace.js';
import { isExt4Error } from '../../lib/errors.js';
import { expectE2fsckClean, mkfs, oracleGate, withLoopMount } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import { CAN_MOUNT, HAVE_E2FSPROGS, LOOP_SKIP, cleanupImages, scratchPath } from '../ops/helpers.js';
import { mulberry32 } from '../../lib/io/prng.js';

afterAll(() => cleanupImages());

const NOW = { sec: 1_750_000_000, nsec: 0 };
const NAMES = ['a', 'b', 'c', 'd', 'e', 'long-name-' + 'z'.repeat(90)];

type Tree = Record<string, string>;

/** The host tree: path → "type nlink [target]". */
function hostTree(root: string): Tree {
  const out: Tree = {};
  const walk = (rel: string) => {
    for (const n of nodefs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const st = nodefs.lstatSync(path.join(root, r));
      const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
      out[r] = `${type} ${st.nlink}${type === 'symlink' ? ` ${nodefs.readlinkSync(path.join(root, r))}` : ''}`;
      if (type === 'dir') walk(r);
    }
  };
  walk('');
  return out;
}

/** The same view through ext4kit (lost+found left out). */
async function imageTree(fs: CoreFilesystem): Promise<Tree> {
  const out: Tree = {};
  const dec = new TextDecoder();
  const walk = async (rel: string) => {
    const names: string[] = [];
    for await (const e of fs.readdir(`/${rel}`)) if (e.name !== '.' && e.name !== '..' && !(rel === '' && e.name === 'lost+found')) names.push(e.name);
    for (const n of names.sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const ino = await fs.resolve(`/${r}`, { followLast: false });
      out[r] = `${ino.type} ${ino.linksCount}${ino.type === 'symlink' ? ` ${dec.decode(await fs.readlink(ino))}` : ''}`;
      if (ino.type === 'dir') await walk(r);
    }
  };
  await walk('');
  return out;
}

async function codeOfImage(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (isExt4Error(e)) return e.code;
    throw e;
  }
}

function codeOfHost(fn: () => void): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

describe.skipIf(!HAVE_E2FSPROGS)('random namespace sequences against the host', () => {
  for (const { seed, steps, bs } of [{ seed: 1, steps: 800, bs: 1024 }, { seed: 2, steps: 800, bs: 4096 }]) {
    it(`seed ${seed}: ${steps} operations, ${bs}-byte blocks`, async () => {
      const host = tmpDir(`ns-model-${seed}`);
      const img = scratchPath(`ns-model-${seed}.img`);
      mkfs('ext4', img, 32 * 1024 * 1024, ['-b', String(bs)]);
      const rnd = mulberry32(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
      // A random path of 1..3 components, mostly under directories that exist.
      let tree: Tree = {};
      const randomPath = (): string => {
        const all = Object.keys(tree);
        const dirs = ['', ...all.filter((p) => tree[p]!.startsWith('dir '))];
        const base = rnd() < 0.9 ? pick(dirs) : pick(all.concat(['nowhere']));
        return base ? `${base}/${pick(NAMES)}` : pick(NAMES);
      };
      /** Mostly a path that exists (the source of unlink, rmdir, link, rename). */
      const existingPath = (): string => {
        const all = Object.keys(tree);
        return all.length && rnd() < 0.75 ? pick(all) : randomPath();
      };
      const fs = await Filesystem.open(img, { write: true, now: NOW });
      const counts: Record<string, number> = {};
      try {
        for (let step = 0; step < steps; step++) {
          tree = hostTree(host);
          const r = rnd();
          const a = r < 0.46 ? randomPath() : existingPath(), b = randomPath();
          const H = (p: string) => path.join(host, p);
          let what: string, hc: string, ic: string;
          if (r < 0.22) {
            what = `create ${a}`;
            hc = codeOfHost(() => nodefs.closeSync(nodefs.openSync(H(a), 'wx')));
            ic = await codeOfImage(createFile(fs, `/${a}`, { exclusive: true }));
          } else if (r < 0.4) {
            what = `mkdir ${a}`;
            hc = codeOfHost(() => nodefs.mkdirSync(H(a)));
            ic = await codeOfImage(mkdir(fs, `/${a}`));
          } else if (r < 0.46) {
            const target = pick(['t', '../x', 'q'.repeat(70)]);
            what = `symlink ${a} → ${target}`;
            hc = codeOfHost(() => nodefs.symlinkSync(target, H(a)));
            ic = await codeOfImage(symlink(fs, target, `/${a}`));
          } else if (r < 0.56) {
            what = `link ${a} ${b}`;
            hc = codeOfHost(() => nodefs.linkSync(H(a), H(b)));
            ic = await codeOfImage(link(fs, `/${a}`, `/${b}`));
          } else if (r < 0.7) {
            what = `unlink ${a}`;
            hc = codeOfHost(() => nodefs.unlinkSync(H(a)));
            ic = await codeOfImage(unlink(fs, `/${a}`));
          } else if (r < 0.82) {
            what = `rmdir ${a}`;
            hc = codeOfHost(() => nodefs.rmdirSync(H(a)));
            ic = await codeOfImage(rmdir(fs, `/${a}`));
          } else {
            what = `rename ${a} ${b}`;
            hc = codeOfHost(() => nodefs.renameSync(H(a), H(b)));
            ic = await codeOfImage(rename(fs, `/${a}`, `/${b}`));
          }
          // Linux reports EEXIST or ENOTEMPTY for a rename over a non-empty directory (rename(2)).
          if (hc === 'EEXIST' && ic === 'ENOTEMPTY' && what.startsWith('rename')) hc = 'ENOTEMPTY';
          expect(ic, `step ${step}: ${what} (host ${hc})`).toBe(hc);
          counts[`${what.split(' ')[0]} ${hc}`] = (counts[`${what.split(' ')[0]} ${hc}`] ?? 0) + 1;
          if (step % 40 === 39 || step === steps - 1) expect(await imageTree(fs), `after step ${step}: ${what}`).toEqual(hostTree(host));
        }
      } finally {
        await fs.close();
      }
      // Every kind of operation succeeded many times, and failed in several ways.
      for (const op of ['create', 'mkdir', 'symlink', 'link', 'unlink', 'rmdir', 'rename']) expect(counts[`${op} ok`] ?? 0, `${op} ok`).toBeGreaterThan(3);
      expect(Object.keys(counts).length).toBeGreaterThan(15);
      expectE2fsckClean(img, `seed ${seed}`);
      const want = hostTree(host);
      expect(Object.keys(want).length).toBeGreaterThan(20);
      if (!CAN_MOUNT) {
        oracleGate(LOOP_SKIP);
        return;
      }
      await withLoopMount(img, (mp) => {
        const got = hostTree(mp);
        delete got['lost+found'];
        expect(got).toEqual(want);
      }, { readOnly: true });
      nodefs.rmSync(host, { recursive: true, force: true });
    });
  }
});
