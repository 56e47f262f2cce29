/**
 * filefrag -v and e4defrag -c on the shared mkfs -d images and the committed
 * fixtures, loop-mounted read-only (ext3 by the ext4 driver): our text must
 * be identical, e4defrag's per-file numbers equal. Every tool run gets a
 * fresh mount (a cold extent-status cache, see lib/ops/report.ts).
 */
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { missingTools, oracleGate, skipReason, withLoopMount } from '../helpers/tools.js';
import { e4defrag, e4defragVersion, filefragV, listTree, parseE4defragVerbose, skipsSingleBlock, withFs } from './helpers.js';
import { fileFrag, formatFileFrag, formatFragReport, fragReport, type FileFrag } from '../../lib/ops/report.js';
import { subjects } from './subjects.js';

const loopWhy = skipReason('loop') ?? oracleGate(missingTools(['filefrag', 'e4defrag'])); // under CI: throws instead
if (loopWhy) console.log(`skipping mounted-image report checks: ${loopWhy}`);

describe.skipIf(loopWhy !== null)('filefrag -v and e4defrag -c on mkfs -d images and fixtures', () => {
  for (const s of subjects.filter((x) => x.mountable)) {
    it(`${s.name}: filefrag -v text, e4defrag -c text and -v numbers are identical`, async () => {
      const img = s.copy();
      const paths = await withLoopMount(img, (mnt) => listTree(mnt), { readOnly: true, type: s.type });
      const ours: FileFrag[] = await withFs(img, async (f) => {
        const out: FileFrag[] = [];
        for (const p of paths) out.push(await fileFrag(f, p));
        return out;
      });
      const skipSingleBlock = skipsSingleBlock(e4defragVersion()!);
      const report = await withFs(img, (f) => fragReport(f, ['/'], { skipSingleBlock }));
      await withLoopMount(img, (mnt) => {
        const abs = (p: string) => (p === '/' ? mnt : mnt + p);
        expect(formatFileFrag(ours, { name: (f) => abs(f.path) })).toBe(filefragV(paths.map(abs)));
      }, { readOnly: true, type: s.type });
      // one e4defrag -c -v run (fresh mount: a cold extent-status cache): every file's numbers, and
      // from "<Fragmented files>" on, the same text as `e4defrag -c` prints
      await withLoopMount(img, (mnt) => {
        const real = fs.realpathSync(mnt);
        const out = e4defrag(['-c', '-v', real]);
        const t = report.targets[0]!;
        expect(t.files.map((f) => ({ index: f.index, total: t.entries, path: real + f.path, now: f.now, best: f.best, sizeKB: f.sizePerExtentKB }))).toEqual(parseE4defragVerbose(out));
        const tail = out.slice(out.search(/^(<Fragmented files>| In this directory)/m));
        expect(formatFragReport(report, { pathPrefix: real, argName: () => real })).toBe(tail);
      }, { readOnly: true, type: s.type });
    });
  }
});

